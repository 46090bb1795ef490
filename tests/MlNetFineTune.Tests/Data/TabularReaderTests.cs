using MlNetFineTune.Data;
using Xunit;

namespace MlNetFineTune.Tests;

public sealed class TabularReaderTests : IDisposable
{
    private readonly DataTestFiles _files = new();

    public void Dispose() => _files.Dispose();

    private static List<string[]> Values(IEnumerable<DataRecord> records)
        => records.Select(r => Enumerable.Range(0, r.Count).Select(i => r[i] ?? "<null>").ToArray()).ToList();

    [Fact]
    public void Tsv_SelectsColumnsByNameInRequestedOrder()
    {
        string path = _files.Write("reviews.tsv", "id\ttext\tlabel\n1\tgood movie\tpos\n2\tbad movie\tneg\n");
        var records = TabularReader.Load(path, ["label", "text"]);
        Assert.Equal(2, records.Count);
        Assert.Equal(["pos", "good movie"], Values(records)[0]);
        Assert.Equal("bad movie", records[1]["text"]);
        Assert.Equal(2, records[0].Line);
        Assert.Equal(3, records[1].Line);
        Assert.Equal(2, records[1].Number);
        Assert.Equal(3, records[0].GetColumn(1));   // "1\t" -> the text starts at column 3
        Assert.Equal(14, records[0].GetColumn(0));  // "1\tgood movie\t" -> the label starts at column 14
    }

    [Fact]
    public void Reader_ExposesHeaderAndAllColumnsWhenNoneSelected()
    {
        string path = _files.Write("a.csv", "x,y\n1,2\n");
        using var reader = TabularReader.Open(path);
        Assert.Equal(TabularFormat.Csv, reader.Format);
        Assert.Equal(',', reader.Delimiter);
        Assert.Equal(["x", "y"], reader.Header);
        var rows = Values(reader.ReadRecords());
        Assert.Equal(["1", "2"], Assert.Single(rows));
    }

    [Fact]
    public void Csv_Rfc4180_QuotesDoubledQuotesEmbeddedDelimitersAndNewlines()
    {
        string content =
            "text,label\r\n" +
            "\"He said \"\"hi\"\", then left\",pos\r\n" +
            "\"line one\nline two\",neg\r\n" +
            "\"crlf\r\ninside\",pos\r\n" +
            "\"\",neg\r\n" +
            "plain,pos\r\n";
        string path = _files.Write("rfc.csv", content);
        var records = TabularReader.Load(path, ["text", "label"]);
        Assert.Equal(
            [
                ["He said \"hi\", then left", "pos"],
                ["line one\nline two", "neg"],
                ["crlf\r\ninside", "pos"],
                ["", "neg"],
                ["plain", "pos"],
            ],
            Values(records));
        // Line numbers follow the physical lines, embedded line breaks included.
        Assert.Equal([2, 3, 5, 7, 8], records.Select(r => r.Line));
    }

    [Theory]
    [InlineData("\n")]
    [InlineData("\r\n")]
    [InlineData("")]
    public void Csv_LastLineWithOrWithoutLineBreak(string end)
    {
        string path = _files.Write("end.csv", "text,label\r\na,pos\r\n\"b\",neg" + end);
        Assert.Equal([["a", "pos"], ["b", "neg"]], Values(TabularReader.Load(path)));
    }

    [Fact]
    public void Bom_IsSkippedAndDoesNotShiftColumns()
    {
        byte[] bytes = [0xEF, 0xBB, 0xBF, .. DataTestFiles.Bytes("text,label\nhello,\n")];
        string path = _files.WriteBytes("bom.csv", bytes);
        using var reader = TabularReader.Open(path);
        Assert.Equal("text", reader.Header[0]);
        var record = Assert.Single(reader.ReadRecords(["label"]));
        Assert.Equal("", record[0]);
        Assert.Equal(7, record.GetColumn(0));
    }

    [Fact]
    public void Tsv_AcceptsQuotesInsideUnquotedFieldsAndPandasStyleQuoting()
    {
        string content =
            "text\tlabel\n" +
            "He said \"hi\" twice\tpos\n" +      // quotes inside an unquoted field
            "\"Great\" movie, really\tpos\n" +   // a leading quote that does not enclose the field
            "\"tab\there\"\tneg\n" +             // pandas/Python csv quoting of a value with a tab
            "\"say \"\"x\"\"\"\tneg\n" +         // quoted with doubled quotes
            "5\" screen\tpos\n";
        string path = _files.Write("quotes.tsv", content);
        Assert.Equal(
            [
                ["He said \"hi\" twice", "pos"],
                ["\"Great\" movie, really", "pos"],
                ["tab\there", "neg"],
                ["say \"x\"", "neg"],
                ["5\" screen", "pos"],
            ],
            Values(TabularReader.Load(path)));
    }

    [Fact]
    public void BlankLinesAreSkipped()
    {
        string path = _files.Write("blank.tsv", "\ntext\tlabel\n\na\tpos\r\n\r\nb\tneg\n\n");
        var records = TabularReader.Load(path);
        Assert.Equal([["a", "pos"], ["b", "neg"]], Values(records));
        Assert.Equal([4, 6], records.Select(r => r.Line));
    }

    [Fact]
    public void ColumnNames_MatchExactlyThenIgnoringCaseAndSpaces()
    {
        string path = _files.Write("case.csv", "Text , LABEL\nx,y\n");
        var record = Assert.Single(TabularReader.Load(path, ["text", "label"]));
        Assert.Equal(["x", "y"], Values([record])[0]);
    }

    [Fact]
    public void Semicolon_DelimiterOption()
    {
        string path = _files.Write("semi.csv", "text;label\n\"a;b\";pos\n");
        var records = TabularReader.Load(path, options: new TabularReaderOptions { Delimiter = ';' });
        Assert.Equal([["a;b", "pos"]], Values(records));
    }

    [Fact]
    public void Gzip_IsDecompressedByExtensionAndByMagicNumber()
    {
        string content = "text\tlabel\nüber gut\tpos\n\"multi\nline\"\tneg\n";
        string gz = _files.WriteGzip("reviews.tsv.gz", content);
        Assert.Equal([["über gut", "pos"], ["multi\nline", "neg"]], Values(TabularReader.Load(gz)));
        string disguised = _files.WriteGzip("disguised.tsv", content);
        Assert.Equal(2, TabularReader.Load(disguised).Count);
    }

    [Fact]
    public void Read_Streams_RowsBeforeABadRowAreDelivered()
    {
        string path = _files.Write("stream.tsv", "text\tlabel\na\tpos\nb\tneg\nbroken row\n");
        var first = TabularReader.Read(path).Take(2).ToList();
        Assert.Equal(2, first.Count);
        Assert.Throws<DataFormatException>(() => TabularReader.Read(path).ToList());
    }

    [Theory]
    [InlineData(TabularFormat.Csv)]
    [InlineData(TabularFormat.Tsv)]
    public void Writer_RoundTripsAwkwardValues(TabularFormat format)
    {
        string[][] rows =
        [
            ["plain", "1"],
            ["with, comma\tand tab", "2"],
            ["\"quoted\" start", "3"],
            ["end \"quote\"", "4"],
            ["multi\nline\r\nvalue\rcr", "5"],
            ["", "6"],
            ["emoji 😀 and ü", "7"],
            [" spaces ", "8"],
        ];
        string path = _files.Path(format == TabularFormat.Csv ? "rt.csv" : "rt.tsv");
        TabularWriter.Write(path, ["text", "label"], rows);
        Assert.Equal(rows, Values(TabularReader.Load(path)));
    }

    // ---- errors: every one names file, line and column, in the message and in the properties ----

    [Fact]
    public void Error_RowWithTooManyColumns()
    {
        string path = _files.Write("reviews.tsv", "text\tlabel\ngood movie\tpos\nbad\tmovie\tneg\n");
        var ex = Assert.Throws<DataFormatException>(() => TabularReader.Load(path));
        Assert.Equal(path, ex.FilePath);
        Assert.Equal(3, ex.Line);
        Assert.Equal(11, ex.Column);
        Assert.StartsWith($"{path}:3:11: expected 2 columns as in the header (line 1), got 3", ex.Message);
        Assert.Contains("tab", ex.Message);
    }

    [Fact]
    public void Error_RowWithTooFewColumns()
    {
        string path = _files.Write("few.csv", "text,label\ngood,pos\njusttext\n");
        var ex = Assert.Throws<DataFormatException>(() => TabularReader.Load(path));
        Assert.Equal((3, 9), (ex.Line, ex.Column));
        Assert.StartsWith($"{path}:3:9: expected 2 columns as in the header (line 1), got 1", ex.Message);
    }

    [Fact]
    public void Error_UnbalancedQuote_PointsWhereTheQuoteOpened()
    {
        string path = _files.Write("open.csv", "text,label\n\"fine\",pos\nok,\"neg\nmore,pos\n");
        var ex = Assert.Throws<DataFormatException>(() => TabularReader.Load(path));
        Assert.Equal((3, 4), (ex.Line, ex.Column));
        Assert.StartsWith($"{path}:3:4: unbalanced quote", ex.Message);
        Assert.Null(ex.ByteOffset);
    }

    [Fact]
    public void Error_UnbalancedQuote_InTsv()
    {
        string path = _files.Write("open.tsv", "text\tlabel\na\tpos\n\"never closed\tneg\nb\tpos\n");
        var ex = Assert.Throws<DataFormatException>(() => TabularReader.Load(path));
        Assert.Equal((3, 1), (ex.Line, ex.Column));
        Assert.Contains("unbalanced quote", ex.Message);
    }

    [Fact]
    public void Error_Csv_TextAfterClosingQuote()
    {
        string path = _files.Write("after.csv", "text,label\n\"He said \"hi\" ok\",pos\n");
        var ex = Assert.Throws<DataFormatException>(() => TabularReader.Load(path));
        Assert.Equal((2, 11), (ex.Line, ex.Column));
        Assert.Contains("after the closing quote of the field opened at 2:1", ex.Message);
    }

    [Fact]
    public void Error_Csv_BareQuoteInUnquotedField_UnlessAllowed()
    {
        string path = _files.Write("bare.csv", "text,label\n5\" screen,pos\n");
        var ex = Assert.Throws<DataFormatException>(() => TabularReader.Load(path));
        Assert.Equal((2, 2), (ex.Line, ex.Column));
        Assert.Contains("quote inside an unquoted field", ex.Message);
        var lenient = TabularReader.Load(path, options: new TabularReaderOptions { AllowBareQuotes = true });
        Assert.Equal("5\" screen", Assert.Single(lenient)[0]);
    }

    [Fact]
    public void Error_MissingColumn_ListsTheAvailableOnes()
    {
        string path = _files.Write("cols.tsv", "review\tsentiment\nx\tpos\n");
        var ex = Assert.Throws<DataFormatException>(() => TabularReader.Load(path, ["text", "label"]));
        Assert.Equal((1, 1), (ex.Line, ex.Column));
        Assert.Equal($"{path}:1:1: missing column 'text': the header has 'review', 'sentiment'", ex.Message);
    }

    [Fact]
    public void Error_MissingColumn_HintsAtTheWrongDelimiter()
    {
        string path = _files.Write("tabs.csv", "text\tlabel\nx\tpos\n");
        var ex = Assert.Throws<DataFormatException>(() => TabularReader.Load(path, ["label"]));
        Assert.Contains("looks tab-separated", ex.Message);
    }

    [Theory]
    [InlineData(new byte[0])]
    [InlineData(new byte[] { 0xEF, 0xBB, 0xBF })]
    [InlineData(new byte[] { (byte)'\n', (byte)'\r', (byte)'\n' })]
    public void Error_EmptyFile(byte[] bytes)
    {
        string path = _files.WriteBytes("empty.tsv", bytes);
        var ex = Assert.Throws<DataFormatException>(() => TabularReader.Open(path));
        Assert.Equal((1, 1), (ex.Line, ex.Column));
        Assert.StartsWith($"{path}:1:1: empty file", ex.Message);
    }

    [Fact]
    public void Error_InvalidUtf8_ReportsByteOffsetLineAndColumn()
    {
        // "text\tlabel\n" = 11 bytes, "héllo\tpos\n" = 11 bytes, so line 3 starts at offset 22 and 0xFF sits at 24.
        byte[] bytes = [.. DataTestFiles.Bytes("text\tlabel\nhéllo\tpos\nab"), 0xFF, .. DataTestFiles.Bytes("c\tneg\n")];
        string path = _files.WriteBytes("latin1.tsv", bytes);
        var ex = Assert.Throws<DataFormatException>(() => TabularReader.Load(path));
        Assert.Equal(24, ex.ByteOffset);
        Assert.Equal((3, 3), (ex.Line, ex.Column));
        Assert.StartsWith($"{path}:3:3: invalid UTF-8: byte 0xFF at byte offset 24", ex.Message);
    }

    [Fact]
    public void Error_InvalidUtf8_ColumnCountsCharactersAndBomCountsInOffset()
    {
        // BOM (3) + "text\n" (5): line 2 starts at offset 8; "é" is 2 bytes, so the Latin-1 byte 0xE9 is at 10.
        byte[] bytes = [0xEF, 0xBB, 0xBF, .. DataTestFiles.Bytes("text\né"), 0xE9, (byte)'\n'];
        string path = _files.WriteBytes("mixed.tsv", bytes);
        var ex = Assert.Throws<DataFormatException>(() => TabularReader.Load(path));
        Assert.Equal(10, ex.ByteOffset);
        Assert.Equal((2, 2), (ex.Line, ex.Column));
    }

    [Fact]
    public void Error_InvalidUtf8_InGzip_OffsetIsInTheDecompressedData()
    {
        byte[] bytes = [.. DataTestFiles.Bytes("text,label\nok,pos\nx"), 0xC3, (byte)',', .. DataTestFiles.Bytes("neg\n")];
        string path = _files.WriteGzip("bad.csv.gz", bytes);
        var ex = Assert.Throws<DataFormatException>(() => TabularReader.Load(path));
        Assert.Equal(19, ex.ByteOffset);
        Assert.Equal((3, 2), (ex.Line, ex.Column));
        Assert.Contains("decompressed", ex.Message);
    }

    [Fact]
    public void Error_TruncatedUtf8AtEndOfFile()
    {
        byte[] bytes = [.. DataTestFiles.Bytes("text\nab"), 0xE2, 0x82];
        string path = _files.WriteBytes("truncated.tsv", bytes);
        var ex = Assert.Throws<DataFormatException>(() => TabularReader.Load(path));
        Assert.Equal(7, ex.ByteOffset);
        Assert.Equal((2, 3), (ex.Line, ex.Column));
    }

    [Fact]
    public void Error_CorruptGzip()
    {
        byte[] good = File.ReadAllBytes(_files.WriteGzip("good.tsv.gz", "text\tlabel\n" + string.Concat(Enumerable.Repeat("some text\tpos\n", 100))));
        byte[] corrupt = [.. good[..10], 0x07, .. new byte[40]];   // after the gzip header, a reserved deflate block type
        string path = _files.WriteBytes("corrupt.tsv.gz", corrupt);
        var ex = Assert.Throws<DataFormatException>(() => TabularReader.Load(path));
        Assert.Contains("corrupt gzip data", ex.Message);
        Assert.Equal((1, 1), (ex.Line, ex.Column));
    }

    [Fact]
    public void Error_AmbiguousColumnName()
    {
        string path = _files.Write("dup.csv", "text,label,text\na,b,c\n");
        var ex = Assert.Throws<DataFormatException>(() => TabularReader.Load(path, ["text"]));
        Assert.Equal((1, 12), (ex.Line, ex.Column));
        Assert.Contains("columns 1 and 3", ex.Message);
        Assert.Equal("b", Assert.Single(TabularReader.Load(path, ["label"]))[0]);
    }

    [Fact]
    public void Error_InvalidUtf8_FarIntoALargeFile()
    {
        // Crosses several 64 KiB decoding blocks, with a multi-byte character straddling block boundaries.
        var text = new System.Text.StringBuilder("text\tlabel\n");
        for (int i = 0; i < 20000; i++)
        {
            text.Append("naïve ").Append(i).Append("\tpos\n");
        }
        byte[] head = DataTestFiles.Bytes(text.ToString());
        byte[] bytes = [.. head, (byte)'z', 0x80, .. DataTestFiles.Bytes("\tneg\n")];
        string path = _files.WriteBytes("large.tsv", bytes);
        var ex = Assert.Throws<DataFormatException>(() => TabularReader.Read(path).Count());
        Assert.Equal(head.Length + 1, ex.ByteOffset);
        Assert.Equal((20002, 2), (ex.Line, ex.Column));
    }
}

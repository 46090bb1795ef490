using System.Text.Json;
using MlNetFineTune.Data;
using Xunit;

namespace MlNetFineTune.Tests;

public sealed class JsonlReaderTests : IDisposable
{
    private readonly DataTestFiles _files = new();

    public void Dispose() => _files.Dispose();

    [Fact]
    public void Read_StringsNumbersBooleansAndNull_OtherFieldsIgnored()
    {
        string path = _files.Write("data.jsonl",
            "{\"text\": \"good\", \"label\": 1, \"meta\": {\"a\": [1, 2, {\"b\": null}]}}\n" +
            "\n" +
            "  {\"label\": \"neg\", \"text\": \"caf\\u00e9 😀\"}  \r\n" +
            "{\"text\": \"x\", \"label\": 0.5}\n" +
            "{\"text\": \"y\", \"label\": true}\n" +
            "{\"text\": \"z\", \"label\": null}");
        var records = JsonlReader.Load(path, ["text", "label"]);
        Assert.Equal(["good", "café 😀", "x", "y", "z"], records.Select(r => r[0]));
        Assert.Equal(["1", "neg", "0.5", "true", null], records.Select(r => r[1]));
        Assert.Equal([1, 3, 4, 5, 6], records.Select(r => r.Line));
        Assert.Equal(28, records[1].GetColumn(0));   // where each value starts on its line
        Assert.Equal(13, records[1].GetColumn(1));
    }

    [Fact]
    public void Error_SyntaxError_ReportsLineAndColumn()
    {
        string path = _files.Write("bad.jsonl", "{\"text\": \"a\", \"label\": 1}\n{\"text\": \"a\", \"label\": }\n");
        var ex = Assert.Throws<DataFormatException>(() => JsonlReader.Load(path, ["text", "label"]));
        Assert.Equal((2, 24), (ex.Line, ex.Column));
        Assert.StartsWith($"{path}:2:24: invalid JSON: ", ex.Message);
        Assert.DoesNotContain("LineNumber", ex.Message);
        Assert.IsAssignableFrom<JsonException>(ex.InnerException);
    }

    [Fact]
    public void Error_SyntaxError_ColumnCountsCharactersNotBytes()
    {
        // "é" and "😀" take 2 and 4 bytes but one column each: the '1' where ':' belongs is column 24 (byte 28).
        string path = _files.Write("col.jsonl", "{\"text\": \"é😀\", \"label\" 1}\n");
        var ex = Assert.Throws<DataFormatException>(() => JsonlReader.Load(path, ["text", "label"]));
        Assert.Equal((1, 24), (ex.Line, ex.Column));
    }

    [Fact]
    public void Error_UnterminatedObject()
    {
        string path = _files.Write("open.jsonl", "{\"text\": \"a\", \"label\": 1\n");
        var ex = Assert.Throws<DataFormatException>(() => JsonlReader.Load(path, ["text"]));
        Assert.Equal(1, ex.Line);
        Assert.NotNull(ex.Column);
    }

    [Fact]
    public void Error_MissingField_ListsThePresentOnes()
    {
        string path = _files.Write("missing.jsonl", "{\"text\": \"a\", \"label\": 1}\n  {\"review\": \"b\", \"stars\": 4}\n");
        var ex = Assert.Throws<DataFormatException>(() => JsonlReader.Load(path, ["text", "label"]));
        Assert.Equal((2, 3), (ex.Line, ex.Column));
        Assert.Equal($"{path}:2:3: missing field 'text': it has 'review', 'stars'", ex.Message);
    }

    [Fact]
    public void Error_ArrayWhereAValueIsExpected()
    {
        string path = _files.Write("array.jsonl", "{\"text\": \"a\", \"label\": [1]}\n");
        var ex = Assert.Throws<DataFormatException>(() => JsonlReader.Load(path, ["text", "label"]));
        Assert.Equal((1, 24), (ex.Line, ex.Column));
        Assert.Contains("field 'label' must be a string or a number, found an array", ex.Message);
    }

    [Theory]
    [InlineData("[1, 2]", 1, "expected a JSON object")]
    [InlineData("  \"text\"", 3, "expected a JSON object")]
    [InlineData("{\"text\": \"a\"} {\"text\": \"b\"}", 15, "invalid JSON")]
    public void Error_NotOneObjectPerLine(string line, int column, string reason)
    {
        string path = _files.Write("notobj.jsonl", "{\"text\": \"ok\"}\n" + line + "\n");
        var ex = Assert.Throws<DataFormatException>(() => JsonlReader.Load(path, ["text"]));
        Assert.Equal((2, column), (ex.Line, ex.Column));
        Assert.Contains(reason, ex.Message);
    }

    [Fact]
    public void Error_InvalidUtf8()
    {
        byte[] bytes = [.. DataTestFiles.Bytes("{\"text\": \"a\"}\n{\"text\": \""), 0xFE, .. DataTestFiles.Bytes("\"}\n")];
        string path = _files.WriteBytes("bytes.jsonl", bytes);
        var ex = Assert.Throws<DataFormatException>(() => JsonlReader.Load(path, ["text"]));
        Assert.Equal(24, ex.ByteOffset);
        Assert.Equal((2, 11), (ex.Line, ex.Column));
    }

    [Fact]
    public void Gzip_AndStreamOverload()
    {
        string content = "{\"text\": \"a\", \"label\": \"x\"}\n{\"text\": \"b\", \"label\": \"y\"}\n";
        string gz = _files.WriteGzip("d.jsonl.gz", content);
        Assert.Equal(["x", "y"], JsonlReader.Load(gz, ["label"]).Select(r => r[0]));
        using var stream = new MemoryStream(DataTestFiles.Bytes(content));
        Assert.Equal(["a", "b"], JsonlReader.Read(stream, "mem.jsonl", ["text"]).Select(r => r[0]));
    }

    [Fact]
    public void Writer_RoundTrip()
    {
        string path = _files.Path("w.jsonl");
        string?[][] rows = [["a \"quoted\"\nline", "pos"], ["ünïcødé 😀", null], ["", "1"]];
        JsonlWriter.Write(path, ["text", "label"], rows);
        var back = JsonlReader.Load(path, ["text", "label"]);
        Assert.Equal(rows, back.Select(r => new[] { r[0], r[1] }));
        Assert.Contains("ünïcødé", File.ReadAllText(path));
    }
}

using MlNetFineTune.Data;
using Xunit;

namespace MlNetFineTune.Tests;

public sealed class ConllTests : IDisposable
{
    private readonly DataTestFiles _files = new();

    public void Dispose() => _files.Dispose();

    private static NerSentence S(string tokensAndTags)
    {
        var pairs = tokensAndTags.Split(' ').Select(p => p.Split('/')).ToArray();
        return new NerSentence(pairs.Select(p => p[0]).ToArray(), pairs.Select(p => p[1]).ToArray());
    }

    [Fact]
    public void Read_Conll2003_TokenFirstTagLast_DocstartSkipped()
    {
        string content =
            "-DOCSTART- -X- -X- O\n" +
            "\n" +
            "EU NNP B-NP B-ORG\n" +
            "rejects VBZ B-VP O\n" +
            "German JJ B-NP B-MISC\n" +
            "\n" +
            "Peter NNP B-NP B-PER\n" +
            "Blackburn NNP I-NP I-PER\n";
        var sentences = ConllReader.Read(_files.Write("train.conll", content)).ToList();
        Assert.Equal([S("EU/B-ORG rejects/O German/B-MISC"), S("Peter/B-PER Blackburn/I-PER")], sentences);
    }

    [Fact]
    public void Read_TabsCrlfExtraBlankLinesAndNoTrailingNewline()
    {
        string content = "\r\n\r\nParis\tB-LOC\r\nis  \t O\r\n\r\n\r\n\r\n  \t\r\nBob B-PER";
        var sentences = ConllReader.Read(_files.Write("t.txt", content)).ToList();
        Assert.Equal([S("Paris/B-LOC is/O"), S("Bob/B-PER")], sentences);
    }

    [Fact]
    public void EmptySentencesAreSkipped_AndADocstartEndsASentence()
    {
        string content = "a O\n\n\n\nb B-X\n-DOCSTART- O\nc O\n\n\n";
        var sentences = ConllReader.Read(_files.Write("e.conll", content)).ToList();
        Assert.Equal([S("a/O"), S("b/B-X"), S("c/O")], sentences);
    }

    [Theory]
    [InlineData("Paris X-LOC", 7, "invalid tag 'X-LOC'")]
    [InlineData("Paris B-", 7, "the entity type after 'B-' is empty")]
    [InlineData("Paris NNP b-LOC", 11, "invalid tag 'b-LOC'")]
    [InlineData("Paris  \t E-LOC", 10, "for BIOES data choose TagScheme.Bioes")]
    [InlineData("Paris", 6, "expected a token and its tag")]
    public void Error_InvalidTag_ReportsLineAndColumn(string badLine, int column, string reason)
    {
        string path = _files.Write("bad.conll", "The O\ncity O\n\n" + badLine + "\n");
        var ex = Assert.Throws<DataFormatException>(() => NerDataset.LoadConll(path));
        Assert.Equal(path, ex.FilePath);
        Assert.Equal((4, column), (ex.Line, ex.Column));
        Assert.StartsWith($"{path}:4:{column}: ", ex.Message);
        Assert.Contains(reason, ex.Message);
    }

    [Fact]
    public void Bioes_TagsAreValidInTheBioesScheme()
    {
        string path = _files.Write("bioes.conll", "New B-LOC\nYork E-LOC\nis O\nbig S-MISC\n");
        var data = NerDataset.LoadConll(path, TagScheme.Bioes);
        Assert.Equal(0, data.IllFormedTagCount);
        Assert.Equal(["LOC", "MISC"], data.EntityTypes);
    }

    [Fact]
    public void InsideAfterOutside_IsAcceptedAndCounted()
    {
        string path = _files.Write("lenient.conll", "the O\nI-PER I-PER\nx I-LOC\n\ny B-PER\nz I-LOC\n");
        var data = NerDataset.LoadConll(path);
        Assert.Equal(2, data.Count);
        Assert.Equal(3, data.IllFormedTagCount);  // I-PER after O, I-LOC after I-PER, I-LOC after B-PER
        Assert.Equal("I-PER", data[0].Tokens[1]);  // the token is the first column even when it looks like a tag
    }

    [Fact]
    public void TagVocabulary_OutsideFirstThenSorted()
    {
        string path = _files.Write("vocab.conll", "a B-PER\nb O\nc B-LOC\nd I-LOC\n");
        var data = NerDataset.LoadConll(path);
        Assert.Equal(["O", "B-LOC", "B-PER", "I-LOC", "I-PER"], data.Tags);
        Assert.Equal(0, data.Tags.GetId("O"));
        Assert.Equal(["O", "B-LOC", "B-PER", "E-LOC", "E-PER", "I-LOC", "I-PER", "S-LOC", "S-PER"],
            data.ConvertTo(TagScheme.Bioes).Tags);
    }

    [Fact]
    public void BioBioesConversion()
    {
        string[] bio = ["B-PER", "I-PER", "I-PER", "O", "B-LOC", "B-LOC", "I-LOC", "O", "I-ORG", "I-ORG", "I-MISC"];
        string[] bioes = ["B-PER", "I-PER", "E-PER", "O", "S-LOC", "B-LOC", "E-LOC", "O", "B-ORG", "E-ORG", "S-MISC"];
        Assert.Equal(bioes, NerTags.BioToBioes(bio));
        string[] back = NerTags.BioesToBio(bioes);
        Assert.Equal(["B-PER", "I-PER", "I-PER", "O", "B-LOC", "B-LOC", "I-LOC", "O", "B-ORG", "I-ORG", "B-MISC"], back);
        Assert.Equal(bioes, NerTags.BioToBioes(back));
        Assert.Throws<ArgumentException>(() => NerTags.BioToBioes(["S-PER"]));
        Assert.Throws<ArgumentException>(() => NerTags.BioesToBio(["X-PER"]));
    }

    [Fact]
    public void CountIllFormed_Bioes()
    {
        Assert.Equal(0, NerTags.CountIllFormed(["B-A", "I-A", "E-A", "S-B", "O"], TagScheme.Bioes));
        Assert.Equal(1, NerTags.CountIllFormed(["B-A", "O"], TagScheme.Bioes));       // never ended
        Assert.Equal(1, NerTags.CountIllFormed(["O", "E-A"], TagScheme.Bioes));       // ended, never begun
        Assert.Equal(1, NerTags.CountIllFormed(["B-A", "E-B"], TagScheme.Bioes));     // type changes
        Assert.Equal(1, NerTags.CountIllFormed(["B-A", "I-A"], TagScheme.Bioes));     // runs off the end
    }

    [Theory]
    [InlineData("ner.conll")]
    [InlineData("ner.conll.gz")]
    public void WriteThenRead_RoundTrips(string name)
    {
        NerSentence[] sentences =
        [
            S("Angela/B-PER Merkel/I-PER visited/O Zürich/B-LOC ./O"),
            S("Ø/O 😀/S-MISC"),
            S("I-PER/O"),
        ];
        string path = _files.Path(name);
        ConllWriter.Write(path, sentences);
        Assert.Equal(sentences, ConllReader.Read(path, TagScheme.Bioes));
        var data = NerDataset.LoadConll(path, TagScheme.Bioes);
        string again = _files.Path("again.conll");
        data.SaveConll(again);
        Assert.Equal(sentences, NerDataset.LoadConll(again, TagScheme.Bioes));
    }

    [Fact]
    public void Writer_RejectsTokensWithWhitespace()
    {
        var writer = new StringWriter();
        Assert.Throws<ArgumentException>(() => ConllWriter.Write(writer, [S("a/O"), new NerSentence(["New York"], ["B-LOC"])]));
        writer = new StringWriter();
        ConllWriter.Write(writer, [S("a/O b/B-X"), new NerSentence([], []), S("c/O")], '\t');
        Assert.Equal("a\tO\nb\tB-X\n\nc\tO\n\n", writer.ToString());
    }

    [Fact]
    public void Error_EmptyFile_AndInvalidUtf8()
    {
        string empty = _files.Write("empty.conll", "\n\n-DOCSTART- O\n\n");
        var ex = Assert.Throws<DataFormatException>(() => NerDataset.LoadConll(empty));
        Assert.StartsWith($"{empty}:1:1: empty file", ex.Message);

        byte[] bytes = [.. DataTestFiles.Bytes("a O\nb"), 0xC0, 0xAF, .. DataTestFiles.Bytes(" O\n")];
        string bad = _files.WriteBytes("bad.conll", bytes);
        ex = Assert.Throws<DataFormatException>(() => NerDataset.LoadConll(bad));
        Assert.Equal(5, ex.ByteOffset);
        Assert.Equal((2, 2), (ex.Line, ex.Column));
    }

    [Fact]
    public void Split_IsASeededRandomSplitBySentence()
    {
        var sentences = Enumerable.Range(0, 50).Select(i => S($"w{i}/B-PER x/O")).ToList();
        var data = new NerDataset(sentences, source: "n.conll");
        var (train, validation) = data.Split(0.2, seed: 3);
        Assert.Equal(40, train.Count);
        Assert.Equal(10, validation.Count);
        Assert.Equal(sentences.OrderBy(s => s.Tokens[0], StringComparer.Ordinal),
            train.Concat(validation).OrderBy(s => s.Tokens[0], StringComparer.Ordinal));
        Assert.Same(data.Tags, validation.Tags);
        Assert.Equal(validation.Sentences, data.Split(0.2, seed: 3).Validation.Sentences);
        Assert.NotEqual(validation.Sentences, data.Split(0.2, seed: 4).Validation.Sentences);
    }

    [Fact]
    public void EnsureTrainable_RequiresAnEntity()
    {
        var allOutside = new NerDataset([S("a/O b/O")], source: "o.conll");
        var ex = Assert.Throws<DataValidationException>(() => allOutside.EnsureTrainable());
        Assert.StartsWith("o.conll: every one of the 2 tokens is tagged O", ex.Message);
    }

    [Fact]
    public void LoadFromEnumerable_ChecksTags()
    {
        var items = new[] { (Words: new[] { "Bob", "ran" }, Labels: new[] { "B-PER", "O" }) };
        var data = NerDataset.LoadFromEnumerable(items, i => i.Words, i => i.Labels);
        Assert.Equal(S("Bob/B-PER ran/O"), Assert.Single(data));
        var bad = new[] { (Words: new[] { "Bob" }, Labels: new[] { "PER" }) };
        var ex = Assert.Throws<DataFormatException>(() => NerDataset.LoadFromEnumerable(bad, i => i.Words, i => i.Labels));
        Assert.StartsWith("<memory>:1: item 1: invalid tag 'PER'", ex.Message);
    }
}

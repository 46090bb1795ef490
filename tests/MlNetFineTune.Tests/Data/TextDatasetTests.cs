using MlNetFineTune.Data;
using Xunit;

namespace MlNetFineTune.Tests;

public sealed class TextDatasetTests : IDisposable
{
    private readonly DataTestFiles _files = new();

    public void Dispose() => _files.Dispose();

    private static readonly TextExample[] Awkward =
    [
        new("A \"quoted\" review, with a comma", "and a pair\tvalue", "pos"),
        new("multi\nline\r\nreview", "", "neg"),
        new("\"Great\" movie", "ünïcødé 😀", "pos"),
        new("", "x", "neutral"),
    ];

    [Theory]
    [InlineData("data.tsv")]
    [InlineData("data.csv")]
    [InlineData("data.jsonl")]
    [InlineData("data.tsv.gz")]
    [InlineData("data.csv.gz")]
    [InlineData("data.jsonl.gz")]
    public void SaveThenLoad_RoundTripsEachFormat(string name)
    {
        string path = _files.Path(name);
        var columns = new TextColumns(TextPair: "hypothesis");
        new TextDataset(Awkward).Save(path, columns);
        var loaded = TextDataset.LoadTextClassification(path, columns);
        Assert.Equal(Awkward, loaded.Examples);
        Assert.Equal(path, loaded.Source);
        Assert.Equal(["neg", "neutral", "pos"], loaded.Labels);
        Assert.True(loaded.HasTextPair);
        Assert.Equal([2, 0, 2, 1], loaded.GetLabelIds());
    }

    [Fact]
    public void Load_CustomColumnNames_TrimsLabels_IgnoresOtherColumns()
    {
        string path = _files.Write("imdb.csv", "id,review,sentiment\n1,great,\" positive \"\n2,awful,negative\n");
        var data = TextDataset.LoadTextClassification(path, new TextColumns(Label: "sentiment", Text: "review"));
        Assert.Equal([new TextExample("great", null, "positive"), new TextExample("awful", null, "negative")], data.Examples);
        Assert.False(data.HasTextPair);
        Assert.True(data.IsLabeled);
    }

    [Fact]
    public void Load_Jsonl_NumericLabelsSortNumerically()
    {
        string path = _files.Write("stars.jsonl",
            "{\"text\": \"a\", \"label\": 10}\n{\"text\": \"b\", \"label\": 2}\n{\"text\": \"c\", \"label\": \"1\"}\n");
        var data = TextDataset.LoadTextClassification(path);
        Assert.Equal(["1", "2", "10"], data.Labels);
        Assert.Equal([2, 1, 0], data.GetLabelIds());
    }

    [Fact]
    public void Load_FirstSeenLabelOrder()
    {
        string path = _files.Write("order.tsv", "text\tlabel\na\tpos\nb\tneg\nc\tpos\n");
        var data = TextDataset.LoadTextClassification(path, labelOrder: LabelOrder.FirstSeen);
        Assert.Equal(["pos", "neg"], data.Labels);
    }

    [Fact]
    public void Load_Unlabeled_WhenTheLabelColumnIsNull()
    {
        string path = _files.Write("predict.tsv", "text\na\nb\n");
        var data = TextDataset.LoadTextClassification(path, new TextColumns(Label: null));
        Assert.Equal(2, data.Count);
        Assert.All(data, e => Assert.Null(e.Label));
        Assert.Empty(data.Labels);
        Assert.False(data.IsLabeled);
    }

    [Fact]
    public void Error_EmptyLabelValue_PointsAtTheField()
    {
        string path = _files.Write("reviews.tsv", "text\tlabel\ngood\tpos\nno label here\t \n");
        var ex = Assert.Throws<DataFormatException>(() => TextDataset.LoadTextClassification(path));
        Assert.Equal((3, 15), (ex.Line, ex.Column));
        Assert.Equal($"{path}:3:15: empty label value in column 'label'", ex.Message);
    }

    [Fact]
    public void Error_NullLabelInJsonl()
    {
        string path = _files.Write("null.jsonl", "{\"text\": \"a\", \"label\": \"x\"}\n{\"text\": \"b\", \"label\": null}\n");
        var ex = Assert.Throws<DataFormatException>(() => TextDataset.LoadTextClassification(path));
        Assert.Equal((2, 24), (ex.Line, ex.Column));
        Assert.Contains("empty label value", ex.Message);
    }

    [Fact]
    public void Error_MissingColumn_ListsAvailable()
    {
        string path = _files.Write("cols.csv", "review,stars\nx,1\n");
        var ex = Assert.Throws<DataFormatException>(() => TextDataset.LoadTextClassification(path));
        Assert.Equal($"{path}:1:1: missing column 'text': the header has 'review', 'stars'", ex.Message);
    }

    [Fact]
    public void Error_HeaderButNoRows_AndEmptyFiles()
    {
        string headerOnly = _files.Write("header.csv", "text,label\n");
        var ex = Assert.Throws<DataFormatException>(() => TextDataset.LoadTextClassification(headerOnly));
        Assert.Contains("no data rows", ex.Message);

        string empty = _files.Write("empty.csv", "");
        ex = Assert.Throws<DataFormatException>(() => TextDataset.LoadTextClassification(empty));
        Assert.Equal($"{empty}:1:1: empty file: expected a header row naming the columns (comma-separated)", ex.Message);

        string emptyJsonl = _files.Write("empty.jsonl", "\n\n");
        ex = Assert.Throws<DataFormatException>(() => TextDataset.LoadTextClassification(emptyJsonl));
        Assert.StartsWith($"{emptyJsonl}:1:1: empty file", ex.Message);
    }

    [Fact]
    public void Error_UnknownExtension()
    {
        string path = _files.Write("data.txt", "text\tlabel\n");
        Assert.Throws<ArgumentException>(() => TextDataset.LoadTextClassification(path));
    }

    [Fact]
    public void EnsureTrainable_SingleClassNamesTheFileAndTheLabel()
    {
        string path = _files.Write("onlypos.tsv", "text\tlabel\na\tpos\nb\tpos\n");
        var data = TextDataset.LoadTextClassification(path);
        var ex = Assert.Throws<DataValidationException>(() => data.EnsureTrainable());
        Assert.Equal(path, ex.FilePath);
        Assert.StartsWith($"{path}: every one of the 2 training examples has the label 'pos'", ex.Message);

        var ok = TextDataset.LoadTextClassification(_files.Write("two.tsv", "text\tlabel\na\tpos\nb\tneg\n"));
        Assert.Same(ok, ok.EnsureTrainable());
    }

    [Fact]
    public void LoadFromEnumerable_WithPropertySelectors()
    {
        var reviews = new[]
        {
            new Review("loved it", 1, null),
            new Review("hated it", 0, "aside"),
            new Review("meh", 10, null),
        };
        var data = TextDataset.LoadFromEnumerable(reviews, r => r.Body, r => r.Stars, r => r.Note);
        Assert.Equal(TextDataset.MemorySource, data.Source);
        Assert.Equal(["0", "1", "10"], data.Labels);
        Assert.Equal(new TextExample("hated it", "aside", "0"), data[1]);

        var ex = Assert.Throws<DataFormatException>(() =>
            TextDataset.LoadFromEnumerable(reviews, r => r.Stars == 0 ? null : r.Body, r => r.Stars));
        Assert.Equal(2, ex.Line);
        Assert.Null(ex.Column);
        Assert.StartsWith("<memory>:2: item 2: the text is null", ex.Message);
    }

    private sealed record Review(string Body, int Stars, string? Note);

    [Fact]
    public void UnseenLabelsAtEvaluation_AreCountedNotThrown()
    {
        var train = new TextDataset([new TextExample("a", Label: "pos"), new TextExample("b", Label: "neg")]);
        var eval = new TextDataset(
            [new TextExample("c", Label: "pos"), new TextExample("d", Label: "neutral"), new TextExample("e", Label: "neutral")]);
        var mapping = eval.MapLabels(train.Labels);
        Assert.Equal([1, LabelVocabulary.UnknownId, LabelVocabulary.UnknownId], mapping.Ids);
        Assert.Equal(2, mapping.UnknownCount);
        Assert.Equal(1, mapping.KnownCount);
        Assert.Equal(2, mapping.UnknownLabels["neutral"]);
        Assert.Throws<InvalidOperationException>(() => eval.WithLabels(train.Labels).GetLabelIds());
    }

    [Fact]
    public void Split_IsStratifiedAndSharesTheLabelVocabulary()
    {
        var examples = Enumerable.Range(0, 100).Select(i => new TextExample($"t{i}", Label: i % 4 == 0 ? "rare" : "common"));
        var data = new TextDataset(examples, source: "x.tsv");
        var (train, validation) = data.Split(0.2, seed: 7);
        Assert.Equal(80, train.Count);
        Assert.Equal(20, validation.Count);
        Assert.Equal(5, validation.Count(e => e.Label == "rare"));
        Assert.Same(data.Labels, train.Labels);
        Assert.Same(data.Labels, validation.Labels);
        Assert.Equal("x.tsv", validation.Source);
        Assert.Equal(25, data.CountByLabel()["rare"]);
    }
}

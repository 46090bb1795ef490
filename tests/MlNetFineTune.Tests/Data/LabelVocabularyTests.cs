using MlNetFineTune.Data;
using Xunit;

namespace MlNetFineTune.Tests;

public sealed class LabelVocabularyTests
{
    [Fact]
    public void Sorted_IsOrdinalForText()
    {
        var vocab = LabelVocabulary.Build(["pos", "neg", "Neutral", "neutral", "pos"]);
        Assert.Equal(["Neutral", "neg", "neutral", "pos"], vocab);
        Assert.Equal(3, vocab.GetId("pos"));
        Assert.Equal("neg", vocab.GetLabel(1));
    }

    [Theory]
    [InlineData(new[] { "1", "0" }, new[] { "0", "1" })]
    [InlineData(new[] { "10", "2", "1", "0" }, new[] { "0", "1", "2", "10" })]
    [InlineData(new[] { "1", "-1", "0" }, new[] { "-1", "0", "1" })]
    [InlineData(new[] { "0.5", "1e1", "2" }, new[] { "0.5", "2", "1e1" })]
    [InlineData(new[] { "10", "2", "b", "a" }, new[] { "10", "2", "a", "b" })]
    [InlineData(new[] { "NaN", "1" }, new[] { "1", "NaN" })]
    public void Sorted_IsNumericWhenEveryLabelIsANumber(string[] labels, string[] expected)
        => Assert.Equal(expected, LabelVocabulary.Build(labels));

    [Fact]
    public void FirstSeen_KeepsOrderOfFirstOccurrence_AndSkipsNulls()
    {
        var vocab = LabelVocabulary.Build(["b", null, "a", "b", "c"], LabelOrder.FirstSeen);
        Assert.Equal(["b", "a", "c"], vocab);
    }

    [Fact]
    public void Map_CountsUnknownAndMissingLabels()
    {
        var vocab = new LabelVocabulary(["neg", "pos"]);
        var mapping = vocab.Map(["pos", "meh", null, "neg", "meh", "great"]);
        Assert.Equal([1, -1, -1, 0, -1, -1], mapping.Ids);
        Assert.Equal(3, mapping.UnknownCount);
        Assert.Equal(1, mapping.MissingCount);
        Assert.Equal(2, mapping.KnownCount);
        Assert.Equal(["meh", "great"], mapping.UnknownLabels.Keys);
        Assert.Equal([2, 1], mapping.UnknownLabels.Values);
    }

    [Fact]
    public void Lookups()
    {
        var vocab = new LabelVocabulary(["a", "b"]);
        Assert.True(vocab.TryGetId("b", out int id));
        Assert.Equal(1, id);
        Assert.False(vocab.TryGetId("c", out _));
        Assert.False(vocab.Contains("c"));
        var ex = Assert.Throws<KeyNotFoundException>(() => vocab.GetId("c"));
        Assert.Contains("'a', 'b'", ex.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => vocab.GetLabel(2));
        Assert.Throws<ArgumentException>(() => new LabelVocabulary(["a", "a"]));
    }
}

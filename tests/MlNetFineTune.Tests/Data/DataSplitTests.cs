using MlNetFineTune.Data;
using MlNetFineTune.Tensors;
using Xunit;

namespace MlNetFineTune.Tests;

public sealed class DataSplitTests
{
    private static List<(int Id, string Label)> Make(params (string Label, int Count)[] classes)
    {
        var items = new List<(int, string)>();
        int id = 0;
        // Interleave the classes so that order carries no information.
        int max = classes.Max(c => c.Count);
        for (int i = 0; i < max; i++)
        {
            foreach (var (label, count) in classes)
            {
                if (i < count)
                {
                    items.Add((id++, label));
                }
            }
        }
        return items;
    }

    [Fact]
    public void Stratified_KeepsClassProportions()
    {
        var items = Make(("a", 700), ("b", 200), ("c", 100));
        var (train, validation) = DataSplit.StratifiedSplit(items, x => x.Label, 0.2, seed: 42);
        Assert.Equal(200, validation.Count);
        Assert.Equal(800, train.Count);
        Assert.Equal(140, validation.Count(x => x.Label == "a"));
        Assert.Equal(40, validation.Count(x => x.Label == "b"));
        Assert.Equal(20, validation.Count(x => x.Label == "c"));
    }

    [Fact]
    public void Stratified_IsAPartitionInInputOrder()
    {
        var items = Make(("a", 37), ("b", 11), ("c", 5));
        var (train, validation) = DataSplit.StratifiedSplit(items, x => x.Label, 0.3, seed: 1);
        Assert.Equal(items.Count, train.Count + validation.Count);
        Assert.Equal(items.Select(x => x.Id).Order(), train.Concat(validation).Select(x => x.Id).Order());
        Assert.Equal(train.Select(x => x.Id).Order(), train.Select(x => x.Id));
        Assert.Equal(validation.Select(x => x.Id).Order(), validation.Select(x => x.Id));
    }

    [Fact]
    public void Stratified_IsDeterministicBySeed()
    {
        var items = Make(("a", 60), ("b", 40));
        var first = DataSplit.StratifiedSplit(items, x => x.Label, 0.25, seed: 5).Validation.Select(x => x.Id).ToArray();
        var again = DataSplit.StratifiedSplit(items, x => x.Label, 0.25, seed: 5).Validation.Select(x => x.Id).ToArray();
        var other = DataSplit.StratifiedSplit(items, x => x.Label, 0.25, seed: 6).Validation.Select(x => x.Id).ToArray();
        var viaRng = DataSplit.StratifiedSplit(items, x => x.Label, 0.25, new Rng(5)).Validation.Select(x => x.Id).ToArray();
        Assert.Equal(first, again);
        Assert.Equal(first, viaRng);
        Assert.NotEqual(first, other);
    }

    [Fact]
    public void Stratified_RareClassesGetOneValidationExampleWhenPossible()
    {
        var items = Make(("a", 50), ("b", 2), ("c", 1));
        var (train, validation) = DataSplit.StratifiedSplit(items, x => x.Label, 0.1, seed: 0);
        Assert.Equal(5, validation.Count);             // round(53 * 0.1)
        Assert.Equal(4, validation.Count(x => x.Label == "a"));
        Assert.Equal(1, validation.Count(x => x.Label == "b"));
        Assert.Equal(1, train.Count(x => x.Label == "b"));
        Assert.Equal(1, train.Count(x => x.Label == "c")); // a single example stays in training
    }

    [Fact]
    public void Stratified_EveryClassInValidationEvenWhenTheFractionIsSmall()
    {
        var items = Make(("a", 100), ("b", 3), ("c", 3), ("d", 3));
        var validation = DataSplit.StratifiedSplit(items, x => x.Label, 0.02, seed: 9).Validation;
        Assert.Equal(["a", "b", "c", "d"], validation.Select(x => x.Label).Distinct().Order());
    }

    [Fact]
    public void RandomSplit_SizeAndDeterminism()
    {
        var items = Enumerable.Range(0, 101).ToArray();
        var (train, validation) = DataSplit.RandomSplit(items, 0.1, seed: 2);
        Assert.Equal(10, validation.Count);
        Assert.Equal(91, train.Count);
        Assert.Equal(items, train.Concat(validation).Order());
        Assert.Equal(validation, DataSplit.RandomSplit(items, 0.1, seed: 2).Validation);
    }

    [Theory]
    [InlineData(0.0)]
    [InlineData(1.0)]
    [InlineData(double.NaN)]
    public void BadFraction_Throws(double fraction)
        => Assert.Throws<ArgumentOutOfRangeException>(() => DataSplit.RandomSplit([1, 2, 3], fraction, seed: 0));

    [Fact]
    public void TooFewExamples_Throws()
        => Assert.Throws<ArgumentException>(() => DataSplit.StratifiedSplit(["x"], x => x, 0.5, seed: 0));
}

using MlNetFineTune.AutoML;
using Xunit;

namespace MlNetFineTune.AutoML.Tests;

public class PrunerTests
{
    private static TrialRecord T(int n, TrialState state, params double[] curve) =>
        new(n, n, state, new Dictionary<string, double>(), curve.Length > 0 ? curve.Max() : null,
            curve.Select((v, i) => (i + 1, v)).ToDictionary(x => x.Item1, x => x.v), curve.Length, "w", 0, 1, null);

    [Fact]
    public void AshaRungsArePowersOfTheReductionFactor()
    {
        var asha = new AshaPruner(minResource: 1, reductionFactor: 3);
        Assert.True(asha.IsRung(1));
        Assert.False(asha.IsRung(2));
        Assert.True(asha.IsRung(3));
        Assert.True(asha.IsRung(9));
        Assert.False(asha.IsRung(6));
    }

    [Fact]
    public void AshaKeepsTheTopThirdAtARung()
    {
        var asha = new AshaPruner();
        // Six trials recorded epoch 1 values 0.50..0.75; with the new one seven values: one in three (2) goes on.
        var study = Enumerable.Range(0, 6).Select(i => T(i, TrialState.Complete, 0.50 + 0.05 * i)).ToList();
        Assert.False(asha.ShouldPrune(99, 1, 0.80, study, maximize: true));  // best: promoted
        Assert.False(asha.ShouldPrune(99, 1, 0.75, study, maximize: true));  // ties the second best
        Assert.True(asha.ShouldPrune(99, 1, 0.68, study, maximize: true));   // third: stops
        Assert.True(asha.ShouldPrune(99, 1, 0.40, study, maximize: true));
        Assert.False(asha.ShouldPrune(99, 2, 0.10, study, maximize: true));  // epoch 2 is no rung
        // Minimising flips the order.
        Assert.False(asha.ShouldPrune(99, 1, 0.45, study, maximize: false));
        Assert.True(asha.ShouldPrune(99, 1, 0.70, study, maximize: false));
    }

    [Fact]
    public void AshaWithFewTrialsOnlyLetsTheBestGoOn()
    {
        var asha = new AshaPruner();
        var study = new List<TrialRecord> { T(0, TrialState.Complete, 0.6) };
        Assert.False(asha.ShouldPrune(1, 1, 0.7, study, true));
        Assert.True(asha.ShouldPrune(1, 1, 0.5, study, true));
        Assert.False(asha.ShouldPrune(0, 1, 0.6, [], true)); // the first trial alone
    }

    [Fact]
    public void MedianPrunerWaitsForStartupTrialsThenComparesAtTheSameEpoch()
    {
        var median = new MedianPruner(startupTrials: 3);
        var two = new List<TrialRecord> { T(0, TrialState.Complete, 0.6, 0.7), T(1, TrialState.Complete, 0.5, 0.8) };
        Assert.False(median.ShouldPrune(9, 1, 0.1, two, true)); // only two finished
        var study = two.Append(T(2, TrialState.Complete, 0.4, 0.9)).Append(T(3, TrialState.Running, 0.0)).ToList();
        Assert.True(median.ShouldPrune(9, 1, 0.45, study, true));  // median at epoch 1 is 0.5
        Assert.False(median.ShouldPrune(9, 1, 0.55, study, true));
        Assert.True(median.ShouldPrune(9, 2, 0.75, study, true));  // median at epoch 2 is 0.8
        Assert.False(new MedianPruner(3, warmupSteps: 2).ShouldPrune(9, 2, 0.1, study, true));
    }

    [Fact]
    public void NoPrunerNeverPrunes() => Assert.False(new NoPruner().ShouldPrune(0, 1, -1e9, [T(0, TrialState.Complete, 1.0)], true));
}

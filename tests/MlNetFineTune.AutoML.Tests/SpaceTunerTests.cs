using MlNetFineTune.AutoML;
using Xunit;

namespace MlNetFineTune.AutoML.Tests;

public class SpaceTunerTests
{
    private static readonly SearchSpace Space3x3x2 = new([
        new FloatParam("learningRate", 1e-3, 1e-2, Log: true), new IntParam("epochs", 2, 8, Grid: [2, 4, 8]), new ChoiceParam("batchSize", [16, 32])], SearchSpaces.Known);

    private static TrialRecord Done(int n, IReadOnlyDictionary<string, double> p, double value) =>
        new(n, n, TrialState.Complete, p, value, new Dictionary<int, double>(), 1, "t", 0, 1, null);

    /// <summary>Runs a tuner on f for <paramref name="trials"/> trials; returns the suggestions and the best value.</summary>
    private static (List<IReadOnlyDictionary<string, double>> Suggestions, double Best) Optimise(ITuner tuner, SearchSpace space, Func<IReadOnlyDictionary<string, double>, double> f, int trials)
    {
        var history = new List<TrialRecord>();
        var list = new List<IReadOnlyDictionary<string, double>>();
        for (int i = 0; i < trials; i++)
        {
            var p = tuner.Suggest(space, i, history, maximize: true);
            if (p is null) break;
            Assert.All(space.Parameters, d => Assert.True(d.Contains(p[d.Name]), $"{d.Name}={p[d.Name]} outside its domain"));
            list.Add(p);
            history.Add(Done(i, p, f(p)));
        }
        return (list, history.Max(t => t.Value!.Value));
    }

    [Fact]
    public void GridVisitsEveryPointOnceThenStops()
    {
        Assert.Equal(18, Space3x3x2.GridSize);
        var (points, _) = Optimise(new GridTuner(), Space3x3x2, _ => 0, 100);
        Assert.Equal(18, points.Count);
        var keys = points.Select(p => $"{p["learningRate"]:R}|{p["epochs"]}|{p["batchSize"]}").ToList();
        Assert.Equal(18, keys.Distinct().Count());
        Assert.Equal(new double[] { 2, 4, 8 }, points.Select(p => p["epochs"]).Distinct().OrderBy(x => x));
        Assert.Equal(3, points.Select(p => p["learningRate"]).Distinct().Count());
    }

    [Fact]
    public void RandomAndTpeAreReproducibleBySeed()
    {
        static double F(IReadOnlyDictionary<string, double> p) => -Math.Pow(Math.Log10(p["learningRate"]) + 2.3, 2) - Math.Abs(p["epochs"] - 5) * 0.1;
        foreach (Func<int, ITuner> make in new Func<int, ITuner>[] { s => new RandomTuner(s), s => new TpeTuner(s) })
        {
            var a = Optimise(make(7), Space3x3x2, F, 15).Suggestions;
            var b = Optimise(make(7), Space3x3x2, F, 15).Suggestions;
            var c = Optimise(make(8), Space3x3x2, F, 15).Suggestions;
            Assert.Equal(a.Select(x => string.Join(",", x.Values)), b.Select(x => string.Join(",", x.Values)));
            Assert.NotEqual(a.Select(x => string.Join(",", x.Values)), c.Select(x => string.Join(",", x.Values)));
        }
    }

    [Fact]
    public void TpeBeatsRandomOnASyntheticObjective()
    {
        var space = new SearchSpace([new FloatParam("x", -5, 5), new FloatParam("y", 1e-5, 1, Log: true), new IntParam("n", 1, 20), new ChoiceParam("c", ["a", "b", "c", "d"])]);
        static double F(IReadOnlyDictionary<string, double> p) =>
            -(Math.Pow(p["x"] - 1.7, 2) + Math.Pow(Math.Log10(p["y"]) + 3.2, 2) + Math.Pow((p["n"] - 13) / 4.0, 2) + (p["c"] == 2 ? 0 : 0.3));
        const int Seeds = 10;
        double tpe = 0, random = 0;
        int tpeWins = 0;
        var detail = new List<string>();
        for (int seed = 1; seed <= Seeds; seed++)
        {
            double t = Optimise(new TpeTuner(seed), space, F, 60).Best, r = Optimise(new RandomTuner(seed), space, F, 60).Best;
            tpe += t; random += r;
            if (t > r) tpeWins++;
            detail.Add($"seed {seed}: tpe {t:0.000} random {r:0.000}");
        }
        Console.WriteLine(string.Join("; ", detail));
        Assert.True(tpe > random, $"TPE mean best {tpe / Seeds:0.000} vs random {random / Seeds:0.000}");
        Assert.True(tpeWins >= 6, $"TPE won {tpeWins} of {Seeds} seeds: {string.Join("; ", detail)}");
    }

    [Fact]
    public void TpeConcentratesNearTheOptimumAfterStartup()
    {
        var space = new SearchSpace([new FloatParam("x", 0, 1)]);
        var (s, _) = Optimise(new TpeTuner(3, startupTrials: 5), space, p => -Math.Abs(p["x"] - 0.8), 30);
        double lateMean = s.Skip(15).Average(p => Math.Abs(p["x"] - 0.8));
        double earlyMean = s.Take(5).Average(p => Math.Abs(p["x"] - 0.8));
        Assert.True(lateMean < earlyMean, $"late trials {lateMean:0.000} from the optimum vs startup {earlyMean:0.000}");
    }

    [Fact]
    public void EmptySpaceIsRefused()
    {
        var ex = Assert.Throws<SearchSpaceException>(() => new SearchSpace([]));
        Assert.Contains("empty", ex.Message);
        var file = Path.Combine(TestEnv.TempDir(), "space.json");
        File.WriteAllText(file, "{}");
        ex = Assert.Throws<SearchSpaceException>(() => SearchSpace.FromFile(file, SearchSpaces.Known));
        Assert.Contains(file, ex.Message);
        Assert.Contains("empty", ex.Message);
    }

    [Theory]
    [InlineData("{\"learningRate\": {\"type\": \"loguniform\", \"low\": 0.1, \"high\": 0.001}}", "learningRate", "below high")]
    [InlineData("{\"learningRate\": {\"type\": \"loguniform\", \"low\": 0, \"high\": 0.1}}", "learningRate", "low > 0")]
    [InlineData("{\"epochs\": {\"type\": \"int\", \"low\": 9, \"high\": 2}}", "epochs", "above high")]
    [InlineData("{\"batchSize\": {\"type\": \"choice\", \"values\": []}}", "batchSize", "empty")]
    [InlineData("{\"batchSize\": {\"type\": \"choice\", \"values\": [16, 16]}}", "batchSize", "twice")]
    [InlineData("{\"epochs\": {\"type\": \"int\", \"low\": 2, \"high\": 4, \"grid\": [3, 7]}}", "epochs", "outside")]
    [InlineData("{\"learningRat\": {\"type\": \"uniform\", \"low\": 0.1, \"high\": 0.2}}", "learningRat", "unknown parameter")]
    [InlineData("{\"epochs\": {\"type\": \"gaussian\", \"low\": 1, \"high\": 2}}", "epochs", "unknown type")]
    [InlineData("{\"epochs\": {\"type\": \"int\", \"low\": 1, \"hi\": 2}}", "epochs", "unknown key")]
    [InlineData("{\"epochs\": {\"type\": \"int\", \"low\": 1}}", "epochs", "\"high\" is missing")]
    [InlineData("[1, 2]", "space.json", "JSON object")]
    [InlineData("{not json", "space.json", "not valid JSON")]
    public void BadSpaceFilesNameTheFileAndParameter(string json, string parameter, string expected)
    {
        var file = Path.Combine(TestEnv.TempDir(), "space.json");
        File.WriteAllText(file, json);
        var ex = Assert.Throws<SearchSpaceException>(() => SearchSpace.FromFile(file, SearchSpaces.Known));
        Assert.Contains(file, ex.Message);
        Assert.Contains(parameter, ex.Message);
        Assert.Contains(expected, ex.Message);
    }

    [Fact]
    public void SpaceFileRoundTripsAndDefaultsDifferByFamily()
    {
        var json = "{\"learningRate\": {\"type\": \"loguniform\", \"low\": 1e-4, \"high\": 1e-2}, \"epochs\": {\"type\": \"int\", \"low\": 2, \"high\": 8}, " +
            "\"batchSize\": {\"type\": \"choice\", \"values\": [16, 32, 64]}, \"freeze\": {\"type\": \"choice\", \"values\": [\"none\", \"gradual\"]}}";
        var space = SearchSpace.FromJson(json, SearchSpaces.Known);
        Assert.Equal(space.ToJson(), SearchSpace.FromJson(space.ToJson(), SearchSpaces.Known).ToJson());
        Assert.Equal(32, space["batchSize"].External(1));
        Assert.Equal("gradual", space["freeze"].External(1));
        Assert.True(space["learningRate"] is FloatParam { Log: true });

        var cnn = SearchSpaces.Default("text-classification", "default");
        var transformer = SearchSpaces.Default("text-classification", "/models/bert-base");
        Assert.True(((FloatParam)cnn["learningRate"]).Low > ((FloatParam)transformer["learningRate"]).High);
        Assert.False(cnn.Has("freeze"));
        Assert.True(transformer.Has("freeze"));
        Assert.Throws<ArgumentException>(() => SearchSpaces.Default("regression", "default"));
    }
}

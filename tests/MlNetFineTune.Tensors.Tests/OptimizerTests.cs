using System.Globalization;
using System.Text.Json;
using MlNetFineTune.Tensors.Optim;
using Xunit;
using Xunit.Abstractions;

namespace MlNetFineTune.Tensors.Tests;

/// <summary>
/// Optimizers, learning-rate schedules and gradient clipping against the PyTorch 1.13 trajectories
/// (tests/golden/README.md, "Optimizer trajectories"), plus unit tests of the API.
/// </summary>
public class OptimizerTests(ITestOutputHelper output)
{
    // Trajectory tolerances: |ours - torch| <= Atol + Rtol * |torch|.
    private const float Rtol = 1e-5f;
    private const float Atol = 1e-6f;

    public static IEnumerable<object[]> OptimCases() =>
        GoldenCase.AllNames().Where(n => n.StartsWith("optim_", StringComparison.Ordinal)).Select(n => new object[] { n });

    [Fact]
    public void AllTenOptimizerFixturesArePresent()
    {
        var names = OptimCases().Select(c => (string)c[0]).ToList();
        Assert.Equal(10, names.Count);
        Assert.All(names, n => Assert.Equal("optim", new GoldenCase(n).Op));
    }

    // ------------------------------------------------------------------ golden trajectories

    [Theory]
    [MemberData(nameof(OptimCases))]
    public void MatchesPyTorchTrajectory(string name)
    {
        var c = new GoldenCase(name);
        var stats = ReplayFixture(c);
        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{name}: params max |diff| {stats.MaxAbs:E2}, max rel {stats.MaxRel:E2}, max ulps {stats.MaxUlps}, bitwise equal {stats.Equal}/{stats.Total}; " +
            $"lr max rel {stats.LrMaxRel:E2}; total_norm max rel {stats.NormMaxRel:E2}"));
    }

    internal sealed class Deviation
    {
        public double MaxAbs, MaxRel, LrMaxRel, NormMaxRel;
        public long MaxUlps;
        public int Equal, Total;
    }

    /// <summary>Replays the 10 steps of a fixture, asserting along the way; returns the deviations seen.</summary>
    internal static Deviation ReplayFixture(GoldenCase c)
    {
        var prm = c.Params;
        var tensors = new Dictionary<string, Tensor>
        {
            ["p0"] = Leaf(c["in.p0"], "p0"),
            ["p1"] = Leaf(c["in.p1"], "p1"),
        };
        var groups = new List<ParamGroup>();
        foreach (var g in prm.GetProperty("groups").EnumerateArray())
        {
            var group = new ParamGroup(g.GetProperty("params").EnumerateArray().Select(e => tensors[e.GetString()!]),
                learningRate: OptDouble(g, "lr"), weightDecay: OptDouble(g, "weight_decay"));
            if (g.TryGetProperty("momentum", out var m)) group.Momentum = m.GetDouble();
            if (g.TryGetProperty("dampening", out var d)) group.Dampening = d.GetDouble();
            if (g.TryGetProperty("nesterov", out var n)) group.Nesterov = n.GetBoolean();
            if (g.TryGetProperty("betas", out var b)) { group.Beta1 = b[0].GetDouble(); group.Beta2 = b[1].GetDouble(); }
            if (g.TryGetProperty("eps", out var e)) group.Epsilon = e.GetDouble();
            groups.Add(group);
        }

        Optimizer opt = c.Str("optimizer") switch
        {
            "sgd" => new Sgd(groups, new SgdOptions
            {
                LearningRate = prm.GetProperty("lr").GetDouble(),
                Momentum = prm.GetProperty("momentum").GetDouble(),
                Dampening = prm.GetProperty("dampening").GetDouble(),
                WeightDecay = prm.GetProperty("weight_decay").GetDouble(),
                Nesterov = prm.GetProperty("nesterov").GetBoolean(),
            }),
            "adamw" => new AdamW(groups, new AdamWOptions
            {
                LearningRate = prm.GetProperty("lr").GetDouble(),
                Beta1 = prm.GetProperty("betas")[0].GetDouble(),
                Beta2 = prm.GetProperty("betas")[1].GetDouble(),
                Epsilon = prm.GetProperty("eps").GetDouble(),
                WeightDecay = prm.GetProperty("weight_decay").GetDouble(),
            }),
            var o => throw new NotSupportedException($"optimizer '{o}'"),
        };
        Assert.False(c.Bool("amsgrad"), "amsgrad is not supported");

        var sp = prm.GetProperty("schedule_params");
        LrSchedule? schedule = c.Str("schedule") switch
        {
            "constant" => null,
            "linear_warmup_decay" => LrSchedule.LinearWarmupDecay(sp.GetProperty("warmup_steps").GetInt32(), sp.GetProperty("total_steps").GetInt32()),
            "cosine" => LrSchedule.Cosine(sp.GetProperty("warmup_steps").GetInt32(), sp.GetProperty("total_steps").GetInt32(), sp.GetProperty("num_cycles").GetDouble()),
            "one_cycle" => LrSchedule.OneCycle(sp.GetProperty("total_steps").GetInt32(), sp.GetProperty("pct_start").GetDouble(),
                sp.GetProperty("div_factor").GetDouble(), sp.GetProperty("final_div_factor").GetDouble()),
            var s => throw new NotSupportedException($"schedule '{s}'"),
        };
        var scheduler = schedule is null ? null : new LrScheduler(opt, schedule);
        float? clip = c.NullableFloat("clip_grad_norm");
        int steps = c.Int("num_steps");
        var lr = c["lr"].ToArray();
        Assert.Equal([steps, opt.Groups.Count], c["lr"].Shape);

        var dev = new Deviation();
        string[] names = ["p0", "p1"];
        for (int k = 0; k < steps; k++)
        {
            foreach (var n in names)
            {
                var g = c[$"grad.step{k}.{n}"];
                tensors[n].Grad = Tensor.FromArray(g.ToArray(), [.. g.Shape]);
            }
            if (clip is float maxNorm)
            {
                float total = GradClip.ClipGradNorm([tensors["p0"], tensors["p1"]], maxNorm);
                float expected = c[$"out.step{k}.total_norm"].Item();
                double rel = Math.Abs((double)total - expected) / Math.Abs(expected);
                dev.NormMaxRel = Math.Max(dev.NormMaxRel, rel);
                Assert.True(rel <= 1e-5, $"{c.Name} step {k}: total norm {total:R}, expected {expected:R}");
            }
            for (int gi = 0; gi < opt.Groups.Count; gi++)
            {
                float actual = (float)opt.Groups[gi].LearningRate;
                float expected = lr[k * opt.Groups.Count + gi];
                double rel = expected == 0 ? Math.Abs(actual) : Math.Abs((double)actual - expected) / Math.Abs(expected);
                dev.LrMaxRel = Math.Max(dev.LrMaxRel, rel);
                Assert.True(rel <= 1e-6, $"{c.Name} step {k} group {gi}: lr {actual:R}, expected {expected:R}");
            }
            opt.Step();
            scheduler?.Step();
            foreach (var n in names)
                Compare(tensors[n], c[$"out.step{k}.{n}"], $"{c.Name} step {k} {n}", dev);
        }
        Assert.Equal(steps, opt.StepCount);
        return dev;
    }

    private static void Compare(Tensor actual, Tensor expected, string what, Deviation dev)
    {
        Assert.Equal(expected.Shape, actual.Shape);
        var a = actual.ToArray();
        var e = expected.ToArray();
        for (int i = 0; i < a.Length; i++)
        {
            double diff = Math.Abs((double)a[i] - e[i]);
            dev.MaxAbs = Math.Max(dev.MaxAbs, diff);
            dev.MaxRel = Math.Max(dev.MaxRel, diff / Math.Max(Math.Abs(e[i]), 1e-30));
            dev.MaxUlps = Math.Max(dev.MaxUlps, Math.Abs((long)BitConverter.SingleToInt32Bits(a[i]) - BitConverter.SingleToInt32Bits(e[i])));
            dev.Total++;
            if (BitConverter.SingleToInt32Bits(a[i]) == BitConverter.SingleToInt32Bits(e[i])) dev.Equal++;
            Assert.True(!float.IsNaN(a[i]) && diff <= Atol + Rtol * Math.Abs(e[i]),
                $"{what}: element {i} is {a[i]:R}, expected {e[i]:R} (|diff| {diff:E2} > {Atol} + {Rtol}*|expected|)");
        }
    }

    private static Tensor Leaf(Tensor stored, string name)
    {
        var t = Tensor.FromArray(stored.ToArray(), [.. stored.Shape]);
        t.Name = name;
        t.RequiresGrad = true;
        return t;
    }

    private static double? OptDouble(JsonElement e, string key) =>
        e.TryGetProperty(key, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetDouble() : null;

    // ------------------------------------------------------------------ basic behaviour

    [Fact]
    public void ParametersWithoutGradAreSkippedAndGetNoState()
    {
        var a = Tensor.FromArray([1f, 2f, 3f]).RequireGrad();
        var b = Tensor.FromArray([4f, 5f]).RequireGrad();
        var opt = new AdamW([a, b], learningRate: 0.1);
        a.Grad = Tensor.FromArray([1f, -1f, 0.5f]);
        opt.Step();
        Assert.Equal([4f, 5f], b.ToArray());
        Assert.NotEqual([1f, 2f, 3f], a.ToArray());
        Assert.Null(opt.GetState(b));
        Assert.Equal(1, opt.GetState(a)!.Step);
        var sd = opt.StateDict();
        Assert.Contains("0.0.exp_avg", sd.Keys);
        Assert.DoesNotContain(sd.Keys, k => k.StartsWith("0.1.", StringComparison.Ordinal));

        // A later step with b's grad gives b its first update (bias-corrected from t = 1).
        b.Grad = Tensor.FromArray([1f, 1f]);
        opt.Step();
        Assert.Equal(2, opt.GetState(a)!.Step);
        Assert.Equal(1, opt.GetState(b)!.Step);
        Assert.Equal(2, opt.StepCount);
    }

    [Fact]
    public void SgdMomentumSkipsParamWithoutGradAndKeepsItsBuffer()
    {
        var a = Tensor.FromArray([1f, 2f]).RequireGrad();
        var opt = new Sgd([a], learningRate: 0.1, momentum: 0.9);
        a.Grad = Tensor.FromArray([1f, 1f]);
        opt.Step();
        var after1 = a.ToArray();
        var buf = (float[])opt.GetState(a)!.Buffers[Sgd.MomentumBuffer].Clone();
        a.Grad = null;
        opt.Step();
        Assert.Equal(after1, a.ToArray());
        Assert.Equal(buf, opt.GetState(a)!.Buffers[Sgd.MomentumBuffer]);
    }

    [Fact]
    public void ZeroGradClearsEveryGradient()
    {
        var a = Tensor.FromArray([1f, 2f]).RequireGrad();
        var b = Tensor.FromArray([3f]).RequireGrad();
        var c = Tensor.FromArray([4f]).RequireGrad();
        var opt = new Sgd([new ParamGroup([a]), new ParamGroup([b, c], learningRate: 0.5)], new SgdOptions { LearningRate = 0.1 });
        a.Grad = Tensor.FromArray([1f, 1f]);
        b.Grad = Tensor.FromArray([1f]);
        opt.ZeroGrad();
        Assert.Null(a.Grad);
        Assert.Null(b.Grad);
        Assert.Null(c.Grad);
    }

    [Fact]
    public void GroupsInheritDefaultsAndKeepOverrides()
    {
        var a = Tensor.FromArray([1f]).RequireGrad();
        var b = Tensor.FromArray([1f]).RequireGrad();
        var opt = new AdamW([new ParamGroup([a]), new ParamGroup([b], learningRate: 0.5, weightDecay: 0) { Beta1 = 0.8 }],
            new AdamWOptions { LearningRate = 0.01 });
        var (g0, g1) = (opt.Groups[0], opt.Groups[1]);
        Assert.Equal(0.01, g0.LearningRate);
        Assert.Equal(0.01, g0.InitialLearningRate);
        Assert.Equal(0.01, g0.WeightDecay);
        Assert.Equal(0.9, g0.Beta1);
        Assert.Equal(0.999, g0.Beta2);
        Assert.Equal(1e-8, g0.Epsilon);
        Assert.Equal(0.5, g1.LearningRate);
        Assert.Equal(0.0, g1.WeightDecay);
        Assert.Equal(0.8, g1.Beta1);
        Assert.Throws<InvalidOperationException>(() => new ParamGroup([a]).LearningRate);
    }

    [Fact]
    public void PerGroupLearningRatesAreUsed()
    {
        var a = Tensor.FromArray([1f, 1f]).RequireGrad();
        var b = Tensor.FromArray([1f, 1f]).RequireGrad();
        var opt = new Sgd([new ParamGroup([a]), new ParamGroup([b], learningRate: 0.5)], new SgdOptions { LearningRate = 0.25 });
        a.Grad = Tensor.FromArray([1f, 2f]);
        b.Grad = Tensor.FromArray([1f, 2f]);
        opt.Step();
        Assert.Equal([0.75f, 0.5f], a.ToArray());
        Assert.Equal([0.5f, 0f], b.ToArray());
    }

    [Fact]
    public void WorksWithAutogradGradients()
    {
        // Minimise sum((w - 3)^2) with AdamW(wd 0): w approaches 3.
        var w = Tensor.FromArray([0f, 10f, -5f]).RequireGrad();
        var opt = new AdamW([w], learningRate: 0.1, weightDecay: 0);
        for (int i = 0; i < 500; i++)
        {
            opt.ZeroGrad();
            var d = w - 3f;
            (d * d).Sum().Backward();
            opt.Step();
        }
        Assert.All(w.ToArray(), v => Assert.InRange(v, 2.9f, 3.1f));
        Assert.True(w.IsLeaf);
        Assert.Null(w.GradFnName);
    }

    [Fact]
    public void NonContiguousGradientIsRead()
    {
        var p = Tensor.Zeros(2, 3).RequireGrad();
        var q = Tensor.Zeros(2, 3).RequireGrad();
        var g = Tensor.FromArray([1f, 2f, 3f, 4f, 5f, 6f], 3, 2);
        p.Grad = g.Transpose(0, 1);
        q.Grad = g.Transpose(0, 1).Contiguous();
        var opt = new Sgd([p, q], learningRate: 1.0, momentum: 0.5);
        opt.Step();
        Assert.Equal(q.ToArray(), p.ToArray());
    }

    [Fact]
    public void GradientShapeMismatchThrows()
    {
        var p = Tensor.Zeros(2, 3).RequireGrad();
        p.Grad = Tensor.Zeros(6);
        var opt = new Sgd([p], learningRate: 0.1);
        var e = Assert.Throws<InvalidOperationException>(opt.Step);
        Assert.Contains("[6]", e.Message);
    }

    // ------------------------------------------------------------------ state dict

    private static (Tensor A, Tensor B) TwoParams() =>
        (Tensor.RandN(new Rng(11), 4, 7).RequireGrad(), Tensor.RandN(new Rng(12), 19).RequireGrad());

    private static Tensor Grad(int step, int which, int n) => Tensor.RandN(new Rng((ulong)(1000 + 10 * step + which)), n);

    private static void Feed(Tensor a, Tensor b, int step)
    {
        a.Grad = Grad(step, 0, a.Numel).Reshape([.. a.Shape]);
        b.Grad = step % 3 == 2 ? null : Grad(step, 1, b.Numel); // b sometimes has no gradient
    }

    public static IEnumerable<object[]> Optimizers() =>
    [
        ["adamw"], ["sgd_momentum"], ["sgd_nesterov"], ["sgd_plain"],
    ];

    private static Optimizer Make(string kind, Tensor a, Tensor b) => kind switch
    {
        "adamw" => new AdamW([new ParamGroup([a], learningRate: 0.05), new ParamGroup([b], learningRate: 0.01, weightDecay: 0)]),
        "sgd_momentum" => new Sgd([new ParamGroup([a]), new ParamGroup([b], weightDecay: 0.1) { Dampening = 0.2 }],
            new SgdOptions { LearningRate = 0.05, Momentum = 0.9, WeightDecay = 0.01 }),
        "sgd_nesterov" => new Sgd([a, b], learningRate: 0.05, momentum: 0.9, nesterov: true),
        _ => new Sgd([a, b], learningRate: 0.05),
    };

    [Theory]
    [MemberData(nameof(Optimizers))]
    public void StateDictRoundTripResumesBitwise(string kind)
    {
        const int total = 12, split = 5;
        var (a, b) = TwoParams();

        // Reference: uninterrupted run with a schedule.
        var opt = Make(kind, a, b);
        var sched = new LrScheduler(opt, LrSchedule.Cosine(2, total));
        IReadOnlyDictionary<string, float[]>? checkpoint = null;
        float[]? ckA = null, ckB = null;
        for (int k = 0; k < total; k++)
        {
            if (k == split) { checkpoint = opt.StateDict(); ckA = a.ToArray(); ckB = b.ToArray(); }
            Feed(a, b, k);
            opt.Step();
            sched.Step();
        }

        // Resume: fresh parameters from the checkpoint, fresh optimizer + scheduler, load the state.
        var a2 = Tensor.FromArray(ckA!, [.. a.Shape]).RequireGrad();
        var b2 = Tensor.FromArray(ckB!).RequireGrad();
        var opt2 = Make(kind, a2, b2);
        var sched2 = new LrScheduler(opt2, LrSchedule.Cosine(2, total));
        opt2.LoadStateDict(checkpoint!);
        sched2.LoadState((int)opt2.StepCount);
        Assert.Equal(split, opt2.StepCount);
        for (int k = split; k < total; k++)
        {
            Feed(a2, b2, k);
            opt2.Step();
            sched2.Step();
        }
        Assert.Equal(Bits(a.ToArray()), Bits(a2.ToArray()));
        Assert.Equal(Bits(b.ToArray()), Bits(b2.ToArray()));
        Assert.Equal(opt.StepCount, opt2.StepCount);
        var s1 = opt.StateDict();
        var s2 = opt2.StateDict();
        Assert.Equal(s1.Keys.Order(), s2.Keys.Order());
        foreach (var key in s1.Keys) Assert.Equal(Bits(s1[key]), Bits(s2[key]));

        // Sanity: the state made a difference (a fresh optimizer diverges), unless there is none.
        if (kind != "sgd_plain")
        {
            var a3 = Tensor.FromArray(ckA!, [.. a.Shape]).RequireGrad();
            var b3 = Tensor.FromArray(ckB!).RequireGrad();
            var opt3 = Make(kind, a3, b3);
            var sched3 = new LrScheduler(opt3, LrSchedule.Cosine(2, total));
            sched3.LoadState(split);
            for (int k = split; k < total; k++) { Feed(a3, b3, k); opt3.Step(); sched3.Step(); }
            Assert.NotEqual(Bits(a.ToArray()), Bits(a3.ToArray()));
        }
    }

    [Fact]
    public void StateDictIsACopyAndHasExpectedKeys()
    {
        var (a, b) = TwoParams();
        var opt = new AdamW([a, b]);
        Feed(a, b, 0);
        opt.Step();
        var sd = opt.StateDict();
        Assert.Equal(
            new[] { "0.0.exp_avg", "0.0.exp_avg_sq", "0.0.step", "0.1.exp_avg", "0.1.exp_avg_sq", "0.1.step", "step_count" },
            sd.Keys.Order(StringComparer.Ordinal).ToArray());
        Assert.Equal(28, sd["0.0.exp_avg"].Length);
        Assert.Equal([1f, 0f], sd["0.0.step"]);
        Assert.Equal([1f, 0f], sd["step_count"]);
        sd["0.0.exp_avg"][0] = 12345f;
        Assert.NotEqual(12345f, opt.StateDict()["0.0.exp_avg"][0]);
    }

    [Fact]
    public void StepCountsAboveFloatPrecisionRoundTrip()
    {
        var a = Tensor.FromArray([1f]).RequireGrad();
        var opt = new AdamW([a]);
        long big = (1L << 24) * 5 + 3;
        opt.LoadStateDict(new Dictionary<string, float[]>
        {
            ["step_count"] = [3f, 5f],
            ["0.0.step"] = [3f, 5f],
            ["0.0.exp_avg"] = [0f],
            ["0.0.exp_avg_sq"] = [0f],
        });
        Assert.Equal(big, opt.StepCount);
        Assert.Equal(big, opt.GetState(a)!.Step);
        Assert.Equal([3f, 5f], opt.StateDict()["0.0.step"]);
    }

    [Fact]
    public void LoadStateDictRejectsMismatches()
    {
        var (a, b) = TwoParams();
        var opt = new AdamW([a, b]);
        Feed(a, b, 0);
        opt.Step();
        var good = opt.StateDict();

        var wrongShape = new Dictionary<string, float[]>(good) { ["0.1.exp_avg"] = new float[18] };
        var e = Assert.Throws<ArgumentException>(() => opt.LoadStateDict(wrongShape));
        Assert.Contains("0.1.exp_avg", e.Message);
        Assert.Contains("18", e.Message);
        Assert.Contains("[19]", e.Message);

        var unknown = new Dictionary<string, float[]>(good) { ["0.0.momentum_buffer"] = new float[28] };
        Assert.Contains("momentum_buffer", Assert.Throws<ArgumentException>(() => opt.LoadStateDict(unknown)).Message);

        var badGroup = new Dictionary<string, float[]>(good) { ["3.0.exp_avg"] = new float[28] };
        Assert.Contains("group 3", Assert.Throws<ArgumentException>(() => opt.LoadStateDict(badGroup)).Message);

        var badParam = new Dictionary<string, float[]>(good) { ["0.2.step"] = [1f, 0f] };
        Assert.Contains("parameter 2", Assert.Throws<ArgumentException>(() => opt.LoadStateDict(badParam)).Message);

        var incomplete = new Dictionary<string, float[]>(good);
        incomplete.Remove("0.0.exp_avg_sq");
        Assert.Contains("0.0.exp_avg_sq", Assert.Throws<ArgumentException>(() => opt.LoadStateDict(incomplete)).Message);

        var noStep = new Dictionary<string, float[]>(good);
        noStep.Remove("0.1.step");
        Assert.Contains("0.1.step", Assert.Throws<ArgumentException>(() => opt.LoadStateDict(noStep)).Message);

        var badStep = new Dictionary<string, float[]>(good) { ["0.0.step"] = [1.5f, 0f] };
        Assert.Contains("0.0.step", Assert.Throws<ArgumentException>(() => opt.LoadStateDict(badStep)).Message);

        var malformed = new Dictionary<string, float[]>(good) { ["exp_avg"] = [1f] };
        Assert.Throws<ArgumentException>(() => opt.LoadStateDict(malformed));

        // Failed loads leave the state untouched.
        var after = opt.StateDict();
        foreach (var key in good.Keys) Assert.Equal(Bits(good[key]), Bits(after[key]));
    }

    // ------------------------------------------------------------------ validation

    public static IEnumerable<object[]> InvalidSgd() =>
    [
        [new Func<Tensor, Optimizer>(p => new Sgd([p], learningRate: -0.1)), "-0.1"],
        [new Func<Tensor, Optimizer>(p => new Sgd([p], learningRate: double.NaN)), "NaN"],
        [new Func<Tensor, Optimizer>(p => new Sgd([p], learningRate: 0.1, momentum: -0.5)), "-0.5"],
        [new Func<Tensor, Optimizer>(p => new Sgd([p], learningRate: 0.1, weightDecay: -0.25)), "-0.25"],
        [new Func<Tensor, Optimizer>(p => new Sgd([p], learningRate: 0.1, nesterov: true)), "momentum 0"],
        [new Func<Tensor, Optimizer>(p => new Sgd([p], learningRate: 0.1, momentum: 0.9, dampening: 0.1, nesterov: true)), "dampening 0.1"],
        [new Func<Tensor, Optimizer>(p => new Sgd([new ParamGroup([p], learningRate: -3)], new SgdOptions { LearningRate = 0.1 })), "-3"],
        [new Func<Tensor, Optimizer>(p => new AdamW([p], learningRate: -1e-3)), "-0.001"],
        [new Func<Tensor, Optimizer>(p => new AdamW([p], beta1: 1.0)), "beta1: 1"],
        [new Func<Tensor, Optimizer>(p => new AdamW([p], beta2: -0.1)), "beta2: -0.1"],
        [new Func<Tensor, Optimizer>(p => new AdamW([p], epsilon: -1e-8)), "-1E-08"],
        [new Func<Tensor, Optimizer>(p => new AdamW([p], weightDecay: -0.01)), "-0.01"],
        [new Func<Tensor, Optimizer>(p => new AdamW([new ParamGroup([p]) { Beta2 = 1.5 }])), "1.5"],
    ];

    [Theory]
    [MemberData(nameof(InvalidSgd))]
    public void InvalidHyperParametersThrowNamingTheValue(Func<Tensor, Optimizer> make, string expectedInMessage)
    {
        var p = Tensor.Zeros(2).RequireGrad();
        var e = Assert.Throws<ArgumentException>(() => make(p));
        Assert.Contains(expectedInMessage, e.Message);
    }

    [Fact]
    public void InvalidParametersAndGroupsThrow()
    {
        var p = Tensor.Zeros(2, 3).RequireGrad();
        Assert.Throws<ArgumentException>(() => new Sgd(Array.Empty<Tensor>(), learningRate: 0.1));
        Assert.Contains("more than one", Assert.Throws<ArgumentException>(() => new Sgd([p, p], learningRate: 0.1)).Message);
        Assert.Contains("more than one", Assert.Throws<ArgumentException>(
            () => new AdamW([new ParamGroup([p]), new ParamGroup([p])])).Message);
        Assert.Contains("contiguous", Assert.Throws<ArgumentException>(() => new Sgd([Tensor.Zeros(2, 3).Transpose(0, 1)], learningRate: 0.1)).Message);
        Assert.Contains("non-leaf", Assert.Throws<ArgumentException>(() => new Sgd([p * 2f], learningRate: 0.1)).Message);
        Assert.Throws<ArgumentException>(() => new Sgd([Tensor.ArangeInt64(3)], learningRate: 0.1));

        var group = new ParamGroup([Tensor.Zeros(1)]);
        _ = new AdamW([group]);
        Assert.Throws<ArgumentException>(() => new AdamW([group]));
    }

    [Fact]
    public void AddParamGroupAppendsAGroup()
    {
        var a = Tensor.Zeros(2).RequireGrad();
        var b = Tensor.Zeros(2).RequireGrad();
        var opt = new Sgd([a], learningRate: 0.1);
        opt.AddParamGroup(new ParamGroup([b], learningRate: 1.0));
        Assert.Equal(2, opt.Groups.Count);
        b.Grad = Tensor.Ones(2);
        opt.Step();
        Assert.Equal([-1f, -1f], b.ToArray());
        Assert.Throws<ArgumentException>(() => opt.AddParamGroup(new ParamGroup([a])));
    }

    [Fact]
    public void InvalidLearningRateSetLaterFailsAtStep()
    {
        var a = Tensor.Zeros(2).RequireGrad();
        var opt = new Sgd([a], learningRate: 0.1);
        opt.Groups[0].LearningRate = -1;
        a.Grad = Tensor.Ones(2);
        Assert.Contains("-1", Assert.Throws<InvalidOperationException>(opt.Step).Message);
    }

    // ------------------------------------------------------------------ schedules

    [Fact]
    public void LinearWarmupDecayMultipliers()
    {
        var s = LrSchedule.LinearWarmupDecay(3, 10);
        Assert.Equal(0.0, s.Multiplier(0));
        Assert.Equal(1.0 / 3, s.Multiplier(1));
        Assert.Equal(2.0 / 3, s.Multiplier(2));
        Assert.Equal(1.0, s.Multiplier(3));
        Assert.Equal(4.0 / 7, s.Multiplier(6));
        Assert.Equal(1.0 / 7, s.Multiplier(9));
        Assert.Equal(0.0, s.Multiplier(10));
        Assert.Equal(0.0, s.Multiplier(15));
        Assert.Equal(0.5, LrSchedule.LinearWarmupDecay(0, 2).Multiplier(1)); // no warm-up
    }

    [Fact]
    public void CosineMultipliers()
    {
        var s = LrSchedule.Cosine(2, 10);
        Assert.Equal(0.0, s.Multiplier(0));
        Assert.Equal(0.5, s.Multiplier(1));
        Assert.Equal(1.0, s.Multiplier(2));
        Assert.Equal(0.5, s.Multiplier(6), 15);
        Assert.Equal(0.5 * (1 + Math.Cos(Math.PI * 0.25)), s.Multiplier(4), 15);
        Assert.Equal(0.0, s.Multiplier(10), 15);
        Assert.Equal(1.0, LrSchedule.Cosine(0, 10, numCycles: 1).Multiplier(10), 15); // a full period comes back up
    }

    [Fact]
    public void OneCycleLearningRates()
    {
        var s = LrSchedule.OneCycle(10);
        const double max = 0.05;
        Assert.Equal(max / 25, s.LearningRate(max, 0), 15);
        Assert.Equal(max / 25 + (max - max / 25) / 2, s.LearningRate(max, 1), 15); // halfway up the cosine (end step 2)
        Assert.Equal(max, s.LearningRate(max, 2), 15);
        Assert.Equal(max / 25 / 1e4, s.LearningRate(max, 9), 15);
        Assert.Equal(1.0 / 25, s.Multiplier(0), 15);
        Assert.True(s.LearningRate(max, 5) < max && s.LearningRate(max, 5) > max / 25 / 1e4);
        Assert.Throws<ArgumentOutOfRangeException>(() => s.LearningRate(max, 11));
        Assert.Throws<ArgumentOutOfRangeException>(() => LrSchedule.OneCycle(0));
        Assert.Throws<ArgumentOutOfRangeException>(() => LrSchedule.OneCycle(10, pctStart: 1.5));
    }

    [Fact]
    public void ConstantAndLambdaSchedules()
    {
        Assert.Equal(1.0, LrSchedule.Constant().Multiplier(123));
        Assert.Equal(0.25, LrSchedule.Lambda(s => 1.0 / (s + 1)).LearningRate(1.0, 3));
        Assert.Throws<ArgumentOutOfRangeException>(() => LrSchedule.Constant().Multiplier(-1));
        Assert.Throws<ArgumentOutOfRangeException>(() => LrSchedule.LinearWarmupDecay(-1, 10));
    }

    [Fact]
    public void SchedulerSetsBaseTimesMultiplierForEveryStep()
    {
        var a = Tensor.Zeros(1).RequireGrad();
        var b = Tensor.Zeros(1).RequireGrad();
        var opt = new AdamW([new ParamGroup([a], learningRate: 0.1), new ParamGroup([b], learningRate: 0.01)]);
        var schedule = LrSchedule.LinearWarmupDecay(3, 10);
        var sched = new LrScheduler(opt, schedule);
        for (int k = 0; k <= 10; k++)
        {
            Assert.Equal(k, sched.StepCount);
            Assert.Equal(0.1 * schedule.Multiplier(k), opt.Groups[0].LearningRate);
            Assert.Equal(0.01 * schedule.Multiplier(k), opt.Groups[1].LearningRate);
            Assert.Equal([0.1, 0.01], sched.BaseLearningRates);
            sched.Step();
        }
        sched.LoadState(3);
        Assert.Equal(0.1, opt.Groups[0].LearningRate);

        // A finished one-cycle schedule refuses to step further, leaving the rates as they were.
        var opt2 = new Sgd([Tensor.Zeros(1)], learningRate: 1.0);
        var oc = new LrScheduler(opt2, LrSchedule.OneCycle(2));
        oc.Step();
        oc.Step();
        double last = opt2.Groups[0].LearningRate;
        Assert.Throws<ArgumentOutOfRangeException>(oc.Step);
        Assert.Equal(2, oc.StepCount);
        Assert.Equal(last, opt2.Groups[0].LearningRate);
    }

    // ------------------------------------------------------------------ gradient clipping

    [Fact]
    public void ClipGradNormScalesOnlyAboveTheLimit()
    {
        var a = Tensor.Zeros(2).RequireGrad();
        var b = Tensor.Zeros(1).RequireGrad();
        var c = Tensor.Zeros(3).RequireGrad(); // no grad: ignored
        a.Grad = Tensor.FromArray([3f, 0f]);
        b.Grad = Tensor.FromArray([4f]);
        float total = GradClip.ClipGradNorm([a, b, c], maxNorm: 10f);
        Assert.Equal(5f, total);
        Assert.Equal([3f, 0f], a.Grad.ToArray()); // below the limit: untouched
        Assert.Null(c.Grad);

        total = GradClip.ClipGradNorm([a, b, c], maxNorm: 1f);
        Assert.Equal(5f, total);
        float coef = 1f / (5f + 1e-6f) * 1f;
        Assert.Equal([3f * coef, 0f], a.Grad.ToArray());
        Assert.Equal([4f * coef], b.Grad.ToArray());
        Assert.InRange(GradClip.GradNorm([a, b]), 0.999f, 1.0f);

        Assert.Equal(0f, GradClip.ClipGradNorm([c], 1f));
        Assert.Throws<ArgumentOutOfRangeException>(() => GradClip.ClipGradNorm([a], -1f));
        Assert.Throws<ArgumentOutOfRangeException>(() => GradClip.ClipGradNorm([a], 1f, normType: 0f));
    }

    [Fact]
    public void ClipGradNormOtherNormsAndNonFinite()
    {
        var a = Tensor.Zeros(3).RequireGrad();
        var b = Tensor.Zeros(2).RequireGrad();
        a.Grad = Tensor.FromArray([1f, -7f, 2f]);
        b.Grad = Tensor.FromArray([3f, -4f]);
        Assert.Equal(7f, GradClip.GradNorm([a, b], float.PositiveInfinity));
        Assert.Equal(17f, GradClip.GradNorm([a, b], 1f));
        Assert.Equal(MathF.Pow(1 + 343 + 8 + 27 + 64, 1f / 3), GradClip.GradNorm([a, b], 3f), 4);

        float total = GradClip.ClipGradNorm([a, b], 3.5f, float.PositiveInfinity);
        Assert.Equal(7f, total);
        Assert.Equal(3.5f, MathF.Abs(a.Grad.ToArray()[1]), 5);

        b.Grad = Tensor.FromArray([float.NaN, 1f]);
        Assert.Throws<InvalidOperationException>(() => GradClip.ClipGradNorm([a, b], 1f, errorIfNonFinite: true));
        Assert.True(float.IsNaN(GradClip.ClipGradNorm([a, b], 1f)));
    }

    [Fact]
    public void ClipGradNormHandlesStridedGradients()
    {
        var p = Tensor.Zeros(3, 2).RequireGrad();
        p.Grad = Tensor.FromArray([3f, 0f, 0f, 0f, 4f, 0f], 2, 3).Transpose(0, 1);
        float total = GradClip.ClipGradNorm([p], 1f);
        Assert.Equal(5f, total);
        Assert.True(p.Grad!.IsContiguous);
        Assert.Equal(1f, GradClip.GradNorm([p]), 5);

        var q = Tensor.Zeros(2, 2).RequireGrad();
        q.Grad = Tensor.FromArray([5f, -5f]).Reshape(1, 2).Expand(2, 2);
        GradClip.ClipGradValue([q], 2f);
        Assert.Equal([2f, -2f, 2f, -2f], q.Grad!.ToArray());
    }

    private static int[] Bits(float[] x) => Array.ConvertAll(x, BitConverter.SingleToInt32Bits);
}

/// <summary>The vectorised update loops give bitwise the same result on every SIMD path.</summary>
[Collection("GlobalKernelState")]
public class OptimizerSimdTests
{
    public static IEnumerable<object[]> Kinds() => [["adamw"], ["sgd"], ["sgd_nesterov_wd"], ["sgd_plain_wd"]];

    private static float[] Run(string kind, Cpu.SimdLevel level)
    {
        using var _ = Cpu.Simd.Force(level);
        var p = Tensor.RandN(new Rng(5), 1037).RequireGrad();
        Optimizer opt = kind switch
        {
            "adamw" => new AdamW([p], learningRate: 0.01),
            "sgd" => new Sgd([p], learningRate: 0.05, momentum: 0.9, dampening: 0.3),
            "sgd_nesterov_wd" => new Sgd([p], learningRate: 0.05, momentum: 0.9, weightDecay: 0.01, nesterov: true),
            _ => new Sgd([p], learningRate: 0.05, weightDecay: 0.01),
        };
        for (int k = 0; k < 6; k++)
        {
            p.Grad = Tensor.RandN(new Rng((ulong)(77 + k)), 1037);
            opt.Step();
        }
        return p.ToArray();
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public void EverySimdLevelIsBitwiseIdentical(string kind)
    {
        var scalar = Run(kind, Cpu.SimdLevel.Scalar);
        foreach (var level in new[] { Cpu.SimdLevel.Vector256, Cpu.SimdLevel.Vector512 })
        {
            var v = Run(kind, level);
            Assert.Equal(Array.ConvertAll(scalar, BitConverter.SingleToInt32Bits), Array.ConvertAll(v, BitConverter.SingleToInt32Bits));
        }
    }

    [Theory]
    [MemberData(nameof(OptimizerTests.OptimCases), MemberType = typeof(OptimizerTests))]
    public void TrajectoriesMatchOnEverySimdPath(string name)
    {
        foreach (var level in new[] { Cpu.SimdLevel.Scalar, Cpu.SimdLevel.Vector256, Cpu.SimdLevel.Vector512 })
        {
            using var _ = Cpu.Simd.Force(level);
            OptimizerTests.ReplayFixture(new GoldenCase(name));
        }
    }
}

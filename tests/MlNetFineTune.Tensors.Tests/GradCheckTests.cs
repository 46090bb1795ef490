using System.Globalization;
using System.Text;
using Xunit;
using Xunit.Abstractions;

namespace MlNetFineTune.Tensors.Tests;

/// <summary>
/// Finite-difference gradient checks for every differentiable op and view of <see cref="Ops"/>.
/// For each case: leaves x (contiguous, RequiresGrad) are snapped to a 2^-10 grid so that every perturbation
/// x ± h, x ± 2h (h = 2^-7) is exact in float32; a seeded random upstream gradient G is drawn;
/// the analytic gradient comes from <c>f(x).Backward(G)</c>; the numeric one differentiates
/// L(x) = sum(f(x) * G) (accumulated in double) with the 4-point central stencil
/// (8 (L(x+h) - L(x-h)) - (L(x+2h) - L(x-2h))) / 12h, whose truncation error is O(h^4).
/// A case passes when |analytic - numeric| &lt;= Tol * max(1, |numeric|) for every element of every leaf.
/// Inputs of piecewise ops are kept at least 0.1 from kinks (and max-pool / max candidates 0.1 apart),
/// so the stencil (reach 2h ~ 0.016) never crosses one.
/// </summary>
public sealed class GradCheckTests(ITestOutputHelper output)
{
    /// <summary>Relative / absolute tolerance of the analytic-vs-numeric comparison.</summary>
    internal const double Tol = 2e-3;

    /// <summary>Finite-difference step (a power of two, so perturbations of grid values are exact).</summary>
    internal const double Step = 1.0 / 128;

    /// <summary>Leaves are rounded to multiples of this before the check.</summary>
    internal const double Grid = 1.0 / 1024;

    // =============================================================================================
    // The checker
    // =============================================================================================

    /// <summary>One failed comparison (or a structural problem) of a gradient check.</summary>
    internal sealed record Mismatch(string Case, int Input, int Element, string Index, double Analytic, double Numeric,
        string? Note = null, string Upstream = "")
    {
        public override string ToString() => Note is not null
            ? $"[{Case}] input {Input}{Upstream}: {Note}"
            : string.Create(CultureInfo.InvariantCulture,
                $"[{Case}] input {Input} element {Element} {Index}{Upstream}: analytic {Analytic:G7} vs numeric {Numeric:G7} (|diff| {Math.Abs(Analytic - Numeric):G3})");
    }

    /// <summary>Result of one gradient check: all mismatches and the worst error as a fraction of its tolerance.</summary>
    internal sealed record CheckResult(List<Mismatch> Mismatches, double WorstRatio, int Elements);

    /// <summary>
    /// Core helper. <paramref name="leaves"/> must be contiguous float leaves; they are snapped to the grid,
    /// marked RequiresGrad and their Grad cleared. The analytic gradient is taken twice, once with G contiguous
    /// and once with the same G values laid out non-contiguously (a step-2 slice), and both are compared with
    /// the numeric gradient. Nothing is asserted here; callers decide.
    /// </summary>
    internal static CheckResult GradCheck(string name, Func<Tensor[], Tensor> f, Tensor[] leaves, ulong seed, double tol = Tol)
    {
        var mismatches = new List<Mismatch>();
        for (int k = 0; k < leaves.Length; k++)
        {
            var leaf = leaves[k];
            if (leaf.DType != DType.Float32 || !leaf.IsLeaf || !leaf.IsContiguous)
                throw new ArgumentException($"GradCheck '{name}': input {k} must be a contiguous Float32 leaf.");
            var span = leaf.AsSpan();
            for (int i = 0; i < span.Length; i++) span[i] = (float)(Math.Round(span[i] / Grid) * Grid);
            leaf.RequiresGrad = true;
            leaf.ZeroGrad();
        }

        var y = f(leaves);
        if (!y.RequiresGrad)
        {
            mismatches.Add(new Mismatch(name, -1, -1, "", 0, 0, "output does not require grad (nothing was recorded)"));
            return new CheckResult(mismatches, double.PositiveInfinity, 0);
        }
        var g = Tensor.RandN(new Rng(seed), y.Shape.ToArray());
        var gd = Array.ConvertAll(g.ToArray(), v => (double)v);
        y.Backward(g);
        var passes = new List<(string Upstream, float[][] Grads)>();
        if (!ReadGrads(name, leaves, "", mismatches, out var analytic)) return new CheckResult(mismatches, double.PositiveInfinity, 0);
        passes.Add(("", analytic));

        if (y.Rank >= 1 && y.Numel > 0)
        {
            const string upstream = " [non-contiguous upstream grad]";
            foreach (var leaf in leaves) leaf.ZeroGrad();
            f(leaves).Backward(NonContiguousCopy(g));
            if (!ReadGrads(name, leaves, upstream, mismatches, out var analyticNc)) return new CheckResult(mismatches, double.PositiveInfinity, 0);
            passes.Add((upstream, analyticNc));
        }

        double worst = 0;
        int elements = 0;
        using (Tensor.NoGrad())
        {
            for (int k = 0; k < leaves.Length; k++)
            {
                var leaf = leaves[k];
                int n = leaf.Numel;
                for (int i = 0; i < n; i++)
                {
                    float orig = leaf.AsSpan()[i];
                    double lp1 = LossAt(f, leaves, gd, k, i, (float)(orig + Step));
                    double lm1 = LossAt(f, leaves, gd, k, i, (float)(orig - Step));
                    double lp2 = LossAt(f, leaves, gd, k, i, (float)(orig + 2 * Step));
                    double lm2 = LossAt(f, leaves, gd, k, i, (float)(orig - 2 * Step));
                    leaf.AsSpan()[i] = orig;
                    double numeric = (8 * (lp1 - lm1) - (lp2 - lm2)) / (12 * Step);
                    double allowed = tol * Math.Max(1.0, Math.Abs(numeric));
                    elements++;
                    foreach (var (upstream, grads) in passes)
                    {
                        double a = grads[k][i];
                        double err = Math.Abs(a - numeric);
                        if (double.IsNaN(err) || err > allowed)
                            mismatches.Add(new Mismatch(name, k, i, FormatIndex(i, leaf.Shape), a, numeric, Upstream: upstream));
                        worst = Math.Max(worst, double.IsNaN(err) ? double.PositiveInfinity : err / allowed);
                    }
                }
            }
        }
        return new CheckResult(mismatches, worst, elements);
    }

    // Copies each leaf's Grad (zeros when none arrived); false after recording a shape mismatch.
    private static bool ReadGrads(string name, Tensor[] leaves, string upstream, List<Mismatch> mismatches, out float[][] grads)
    {
        grads = new float[leaves.Length][];
        for (int k = 0; k < leaves.Length; k++)
        {
            var grad = leaves[k].Grad;
            if (grad is null) grads[k] = new float[leaves[k].Numel];
            else if (!grad.Shape.SequenceEqual(leaves[k].Shape))
            {
                mismatches.Add(new Mismatch(name, k, -1, "", 0, 0,
                    $"grad shape [{string.Join(", ", grad.Shape)}] differs from input shape [{string.Join(", ", leaves[k].Shape)}]", upstream));
                return false;
            }
            else grads[k] = grad.ToArray();
        }
        return true;
    }

    // The same values as g, as a step-2 slice along the last dim of a twice-as-wide buffer (non-contiguous
    // whenever that dim has more than one element).
    private static Tensor NonContiguousCopy(Tensor g)
    {
        var shape = g.Shape.ToArray();
        var values = g.ToArray();
        var buf = new float[2 * values.Length];
        for (int i = 0; i < values.Length; i++) { buf[2 * i] = values[i]; buf[2 * i + 1] = float.NaN; }
        var wide = (int[])shape.Clone();
        wide[^1] *= 2;
        using (Tensor.NoGrad()) return Ops.Slice(Tensor.FromArray(buf, wide), -1, 0, wide[^1], 2);
    }

    private static double LossAt(Func<Tensor[], Tensor> f, Tensor[] leaves, double[] g, int k, int i, float value)
    {
        leaves[k].AsSpan()[i] = value;
        var y = f(leaves).ToArray();
        if (y.Length != g.Length) throw new InvalidOperationException($"output size changed from {g.Length} to {y.Length} under perturbation");
        double s = 0;
        for (int j = 0; j < y.Length; j++) s += y[j] * g[j];
        return s;
    }

    private static string FormatIndex(int flat, IReadOnlyList<int> shape)
    {
        var idx = new int[shape.Count];
        for (int d = shape.Count - 1; d >= 0; d--)
        {
            if (shape[d] == 0) continue;
            idx[d] = flat % shape[d];
            flat /= shape[d];
        }
        return "[" + string.Join(", ", idx) + "]";
    }

    private static ulong StableHash(string s)
    {
        ulong h = 1469598103934665603UL;
        foreach (char ch in s) { h ^= ch; h *= 1099511628211UL; }
        return h;
    }

    /// <summary>Per-test case collector with seeded input generators.</summary>
    internal sealed class Checker(string test, ITestOutputHelper? log)
    {
        private readonly Rng _rng = new(StableHash(test));
        public List<string> Failures { get; } = [];
        public int Cases { get; private set; }

        /// <summary>Gradient-checks <paramref name="f"/> at <paramref name="leaves"/>; records failures (and exceptions) instead of throwing.</summary>
        public void Check(string label, Func<Tensor[], Tensor> f, params Tensor[] leaves)
        {
            Cases++;
            string name = $"{test}: {label}";
            try
            {
                var r = GradCheck(name, f, leaves, StableHash(name));
                log?.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{name}: {r.Elements} elements, worst |diff|/tol = {r.WorstRatio:F3}"));
                const int maxShown = 6;
                foreach (var m in r.Mismatches.Take(maxShown)) Failures.Add(m.ToString());
                if (r.Mismatches.Count > maxShown) Failures.Add($"[{name}] ... and {r.Mismatches.Count - maxShown} more mismatching elements");
            }
            catch (Exception e)
            {
                Failures.Add($"[{name}] threw {e.GetType().Name}: {e.Message}");
            }
        }

        /// <summary>Records a failure unless <paramref name="ok"/>.</summary>
        public void Expect(bool ok, string what)
        {
            Cases++;
            if (!ok) Failures.Add($"[{test}] {what}");
        }

        // ---- seeded input generators (all contiguous leaves) ----

        /// <summary>Standard normal values.</summary>
        public Tensor N(params int[] shape) => Tensor.RandN(_rng, shape);

        /// <summary>Uniform values in [lo, hi).</summary>
        public Tensor U(float lo, float hi, params int[] shape) => Tensor.RandUniform(_rng, lo, hi, shape);

        /// <summary>|x| uniform in [lo, hi) with a random sign (away from 0).</summary>
        public Tensor Signed(float lo, float hi, params int[] shape)
        {
            var t = Tensor.RandUniform(_rng, lo, hi, shape);
            var s = t.AsSpan();
            for (int i = 0; i < s.Length; i++) if (_rng.NextFloat() < 0.5f) s[i] = -s[i];
            return t;
        }

        /// <summary>Uniform in [lo, hi) but at least <paramref name="margin"/> away from every kink.</summary>
        public Tensor Away(float lo, float hi, float[] kinks, float margin, params int[] shape)
        {
            var t = Tensor.Zeros(shape);
            var s = t.AsSpan();
            for (int i = 0; i < s.Length; i++)
            {
                float v;
                do v = lo + (hi - lo) * _rng.NextFloat();
                while (kinks.Any(k => Math.Abs(v - k) < margin));
                s[i] = v;
            }
            return t;
        }

        /// <summary>Scales a generated leaf in place (it stays a leaf) and returns it.</summary>
        public Tensor MulBy(Tensor t, float s)
        {
            var span = t.AsSpan();
            for (int i = 0; i < span.Length; i++) span[i] *= s;
            return t;
        }

        /// <summary>Distinct values (k - n/2) * spacing in shuffled order: no ties for max / max-pool.</summary>
        public Tensor Distinct(float spacing, params int[] shape)
        {
            int n = shape.Aggregate(1, (a, b) => a * b);
            var v = new float[n];
            for (int i = 0; i < n; i++) v[i] = (i - n / 2) * spacing;
            _rng.Shuffle(v);
            return Tensor.FromArray(v, shape);
        }
    }

    private void Run(Action<Checker> body, [System.Runtime.CompilerServices.CallerMemberName] string test = "")
    {
        var c = new Checker(test, output);
        body(c);
        Assert.True(c.Cases > 0, $"{test}: no cases were run");
        if (c.Failures.Count > 0)
            Assert.Fail($"{test}: {c.Failures.Count} failure(s) in {c.Cases} case(s):\n" + string.Join("\n", c.Failures));
    }

    private static Tensor I64(long[] v, params int[] shape) => Tensor.FromArray(v, shape);

    // =============================================================================================
    // Self-tests: the helper must detect wrong gradients
    // =============================================================================================

    // x*x with a caller-supplied backward, recorded through the engine's internal hook.
    private static Tensor CustomSquare(Tensor x, Func<Tensor, Tensor, Tensor?> backward)
    {
        Tensor y;
        using (Tensor.NoGrad()) y = Ops.Mul(x, x);
        return Tensor.Record(y, "custom_square", [x], g => [backward(g, x)]);
    }

    [Fact]
    public void SelfTest_CorrectCustomGradientPasses()
    {
        var c = new Checker(nameof(SelfTest_CorrectCustomGradientPasses), output);
        var r = GradCheck("square ok", x => CustomSquare(x[0], (g, xi) => Ops.Mul(g, Ops.MulScalar(xi, 2f))), [c.N(3, 4)], 1);
        Assert.Empty(r.Mismatches);
        Assert.Equal(12, r.Elements);
        Assert.True(r.WorstRatio < 0.1, $"worst ratio {r.WorstRatio} should be far below 1 for an exact gradient");
    }

    [Fact]
    public void SelfTest_DetectsSlightlyScaledGradient()
    {
        var c = new Checker(nameof(SelfTest_DetectsSlightlyScaledGradient), output);
        // 3% too large: must be caught on the larger elements.
        var r = GradCheck("square x1.03", x => CustomSquare(x[0], (g, xi) => Ops.Mul(g, Ops.MulScalar(xi, 2.06f))), [c.U(1f, 2f, 3, 4)], 2);
        Assert.NotEmpty(r.Mismatches);
        var m = r.Mismatches[0];
        Assert.Equal("square x1.03", m.Case);
        Assert.Equal(0, m.Input);
        Assert.Contains("analytic", m.ToString());
        Assert.Contains("numeric", m.ToString());
    }

    [Fact]
    public void SelfTest_DetectsWrongSignMissingAndSingleElementErrors()
    {
        var c = new Checker(nameof(SelfTest_DetectsWrongSignMissingAndSingleElementErrors), output);
        var neg = GradCheck("wrong sign", x => CustomSquare(x[0], (g, xi) => Ops.Mul(g, Ops.MulScalar(xi, -2f))), [c.N(2, 3)], 3);
        Assert.NotEmpty(neg.Mismatches);

        var none = GradCheck("missing", x => CustomSquare(x[0], (_, _) => null), [c.U(0.5f, 1f, 2, 3)], 4);
        Assert.NotEmpty(none.Mismatches);

        // Correct everywhere except one element (flat index 4).
        var one = GradCheck("one element off", x => CustomSquare(x[0], (g, xi) =>
        {
            var t = Ops.Mul(g, Ops.MulScalar(xi, 2f)).ToArray();
            t[4] += 0.5f;
            return Tensor.FromArray(t, 2, 3);
        }), [c.N(2, 3)], 5);
        // Reported once per upstream-gradient layout (contiguous and non-contiguous G).
        Assert.Equal(2, one.Mismatches.Count);
        Assert.All(one.Mismatches, m => Assert.Equal((4, "[1, 1]"), (m.Element, m.Index)));
        Assert.Contains(one.Mismatches, m => m.ToString().Contains("non-contiguous upstream grad", StringComparison.Ordinal));
    }

    [Fact]
    public void SelfTest_CheckerReportsMismatchesAndExceptions()
    {
        var c = new Checker("probe", null);
        c.Check("bad", x => CustomSquare(x[0], (g, xi) => Ops.Mul(g, xi)), c.U(1f, 2f, 2, 2));
        c.Check("throws", x => Ops.MatMul(x[0], x[1]), c.N(2, 3), c.N(2, 3));
        Assert.Equal(2, c.Cases);
        Assert.Contains(c.Failures, f => f.StartsWith("[probe: bad] input 0 element", StringComparison.Ordinal));
        Assert.Contains(c.Failures, f => f.StartsWith("[probe: throws] threw ArgumentException", StringComparison.Ordinal));
    }

    // =============================================================================================
    // Elementwise binary ops (tensor-tensor) with broadcasting and non-contiguous operands
    // =============================================================================================

    private static void BinaryCases(Checker c, Func<Tensor, Tensor, Tensor> op,
        Func<int[], Tensor> lhs, Func<int[], Tensor> rhs, Func<int[], Tensor> both)
    {
        c.Check("same shape [3,4]", x => op(x[0], x[1]), lhs([3, 4]), rhs([3, 4]));
        c.Check("same shape [3,37] (vector body + tail)", x => op(x[0], x[1]), lhs([3, 37]), rhs([3, 37]));
        c.Check("both broadcast [3,1,4] (x) [2,1]", x => op(x[0], x[1]), lhs([3, 1, 4]), rhs([2, 1]));
        c.Check("both broadcast [1,3] (x) [4,1]", x => op(x[0], x[1]), lhs([1, 3]), rhs([4, 1]));
        c.Check("rank broadcast [4] (x) [2,3,4]", x => op(x[0], x[1]), lhs([4]), rhs([2, 3, 4]));
        c.Check("rhs 0-d scalar", x => op(x[0], x[1]), lhs([3, 4]), rhs([]));
        c.Check("lhs single element [1]", x => op(x[0], x[1]), lhs([1]), rhs([2, 3]));
        c.Check("0-d (x) 0-d", x => op(x[0], x[1]), lhs([]), rhs([]));
        c.Check("transposed lhs, step-2 sliced rhs", x => op(x[0].T, Ops.Slice(x[1], 1, 0, 8, 2)), lhs([4, 3]), rhs([3, 8]));
        c.Check("narrowed lhs, transposed rhs", x => op(Ops.Narrow(x[0], 0, 1, 3), x[1].T), lhs([5, 4]), rhs([4, 3]));
        c.Check("expanded lhs view, permuted rhs", x => op(x[0].Expand(2, 3, 4), Ops.Permute(x[1], 2, 0, 1)), lhs([3, 1]), rhs([3, 4, 2]));
        c.Check("transposed lhs, narrowed rhs broadcast [3,1]", x => op(x[0].T, Ops.Narrow(x[1], 1, 1, 1)), lhs([4, 3]), rhs([3, 3]));
        c.Check("same tensor both operands", x => op(x[0], x[0]), both([3, 4]));
        c.Check("same tensor, one side transposed", x => op(x[0], x[0].T), both([3, 3]));
    }

    [Fact]
    public void Add() => Run(c => BinaryCases(c, Ops.Add, s => c.N(s), s => c.N(s), s => c.N(s)));

    [Fact]
    public void Sub() => Run(c => BinaryCases(c, Ops.Sub, s => c.N(s), s => c.N(s), s => c.N(s)));

    [Fact]
    public void Mul() => Run(c => BinaryCases(c, Ops.Mul, s => c.N(s), s => c.N(s), s => c.N(s)));

    [Fact]
    public void Div() => Run(c => BinaryCases(c, Ops.Div, s => c.N(s), s => c.Signed(0.5f, 2f, s), s => c.Signed(0.5f, 2f, s)));

    [Fact]
    public void Pow_TensorExponent() => Run(c => BinaryCases(c, Ops.Pow, s => c.U(0.5f, 2f, s), s => c.U(-1.5f, 1.5f, s), s => c.U(0.5f, 2f, s)));

    [Fact]
    public void TensorOperators() => Run(c =>
    {
        c.Check("a + b * c - a / b", x => x[0] + x[1] * x[2] - x[0] / x[1], c.N(2, 3), c.Signed(0.5f, 2f, 2, 3), c.N(3));
        c.Check("-a + 2 - a * 3 + 0.5 * a / 4", x => -x[0] + 2f - x[0] * 3f + 0.5f * x[0] / 4f - 1f, c.N(2, 3));
    });

    // =============================================================================================
    // Elementwise unary ops and scalar ops
    // =============================================================================================

    private static void UnaryCases(Checker c, Func<Tensor, Tensor> op, Func<int[], Tensor> gen)
    {
        c.Check("[3,4]", x => op(x[0]), gen([3, 4]));
        c.Check("[5,37] (vector body + tail)", x => op(x[0]), gen([5, 37]));
        c.Check("0-d", x => op(x[0]), gen([]));
        c.Check("transposed view", x => op(x[0].T), gen([4, 3]));
        c.Check("step-2 slice view", x => op(Ops.Slice(x[0], 1, 1, 9, 2)), gen([3, 9]));
        c.Check("narrowed view", x => op(Ops.Narrow(x[0], 0, 1, 2)), gen([4, 5]));
        c.Check("expanded view [3,1]->[2,3,4]", x => op(x[0].Expand(2, 3, 4)), gen([3, 1]));
        c.Check("used twice: op(x) * x", x => Ops.Mul(op(x[0]), x[0]), gen([2, 5]));
    }

    [Fact]
    public void Neg() => Run(c => UnaryCases(c, Ops.Neg, s => c.N(s)));

    [Fact]
    public void AddScalar() => Run(c => UnaryCases(c, x => Ops.AddScalar(x, 1.75f), s => c.N(s)));

    [Fact]
    public void MulScalar() => Run(c => UnaryCases(c, x => Ops.MulScalar(x, -2.5f), s => c.N(s)));

    [Fact]
    public void Pow_ScalarExponent() => Run(c =>
    {
        foreach (float e in new[] { 2f, 3f, 1f, 0f })
            c.Check($"x^{e} on +-(0.2,2)", x => Ops.Pow(x[0], e), c.Signed(0.2f, 2f, 3, 17));
        foreach (float e in new[] { 0.5f, -1.5f, 2.7f, -1f })
        {
            c.Check($"x^{e} on (0.5,2)", x => Ops.Pow(x[0], e), c.U(0.5f, 2f, 3, 17));
            c.Check($"x^{e} on transposed view", x => Ops.Pow(x[0].T, e), c.U(0.5f, 2f, 4, 3));
        }
        c.Check("x^2 on expanded view", x => Ops.Pow(x[0].Expand(3, 4), 2f), c.N(1, 4));
    });

    [Fact]
    public void Sqrt() => Run(c => UnaryCases(c, Ops.Sqrt, s => c.U(0.5f, 3f, s)));

    [Fact]
    public void Rsqrt() => Run(c => UnaryCases(c, Ops.Rsqrt, s => c.U(0.5f, 3f, s)));

    [Fact]
    public void Exp() => Run(c => UnaryCases(c, Ops.Exp, s => c.U(-1.5f, 1.5f, s)));

    [Fact]
    public void Log() => Run(c => UnaryCases(c, Ops.Log, s => c.U(0.5f, 3f, s)));

    [Fact]
    public void Abs() => Run(c => UnaryCases(c, Ops.Abs, s => c.Signed(0.1f, 2f, s)));

    [Fact]
    public void Clamp() => Run(c =>
    {
        float[] kinks = [-0.5f, 0.7f];
        UnaryCases(c, x => Ops.Clamp(x, -0.5f, 0.7f), s => c.Away(-1.5f, 1.5f, kinks, 0.1f, s));
        c.Check("min only", x => Ops.Clamp(x[0], min: -0.5f), c.Away(-1.5f, 1.5f, kinks, 0.1f, 4, 9));
        c.Check("max only", x => Ops.Clamp(x[0], max: 0.7f), c.Away(-1.5f, 1.5f, kinks, 0.1f, 4, 9));
    });

    [Fact]
    public void Tanh() => Run(c => UnaryCases(c, Ops.Tanh, s => c.U(-2f, 2f, s)));

    [Fact]
    public void Sigmoid() => Run(c => UnaryCases(c, Ops.Sigmoid, s => c.U(-3f, 3f, s)));

    [Fact]
    public void Relu() => Run(c => UnaryCases(c, Ops.Relu, s => c.Away(-2f, 2f, [0f], 0.1f, s)));

    [Fact]
    public void Relu6() => Run(c => UnaryCases(c, Ops.Relu6, s => c.Away(-1.5f, 7.5f, [0f, 6f], 0.1f, s)));

    [Fact]
    public void Gelu_Exact() => Run(c => UnaryCases(c, x => Ops.Gelu(x), s => c.U(-3f, 3f, s)));

    [Fact]
    public void Gelu_Tanh() => Run(c => UnaryCases(c, x => Ops.Gelu(x, GeluApproximation.Tanh), s => c.U(-3f, 3f, s)));

    // =============================================================================================
    // Reductions
    // =============================================================================================

    [Fact]
    public void Sum() => Run(c =>
    {
        c.Check("all", x => Ops.Sum(x[0]), c.N(3, 4));
        c.Check("dim 1", x => Ops.Sum(x[0], [1]), c.N(3, 4, 2));
        c.Check("dims 0,2 keepDim", x => Ops.Sum(x[0], [0, 2], keepDim: true), c.N(3, 4, 2));
        c.Check("dim -1", x => Ops.Sum(x[0], [-1]), c.N(3, 5));
        c.Check("all keepDim", x => Ops.Sum(x[0], null, keepDim: true), c.N(2, 3));
        c.Check("permuted view, dim 0", x => Ops.Sum(Ops.Permute(x[0], 2, 0, 1), [0]), c.N(3, 4, 2));
        c.Check("expanded view, dim 1", x => Ops.Sum(x[0].Expand(3, 4), [1]), c.N(3, 1));
        c.Check("sliced view, all", x => Ops.Sum(Ops.Slice(x[0], 0, 0, 5, 2)), c.N(5, 3));
        c.Check("method form", x => x[0].Sum([0]), c.N(3, 2));
        c.Check("leading dim 0 (column sums)", x => Ops.Sum(x[0], [0]), c.N(6, 5));
        c.Check("leading dims 0,1 keepDim", x => Ops.Sum(x[0], [1, 0], keepDim: true), c.N(3, 4, 5));
    });

    [Fact]
    public void SumOverLeadingDimsMatchesTheTransposedPath()
    {
        // The column-sum fast path (contiguous, leading dims) against the same sum taken through a permuted view.
        var rng = new Rng(7);
        var big = Tensor.RandN(rng, 2, 300, 70);
        var x = Ops.Narrow(big, 0, 1, 1).Reshape(300, 70);           // contiguous with a storage offset
        Assert.True(x.IsContiguous);
        var fast = Ops.Sum(x, [0]).ToArray();
        var slow = Ops.Sum(Ops.Permute(Ops.Contiguous(Ops.Permute(x, 1, 0)), 1, 0), [0]).ToArray();
        var xd = x.ToArray();
        for (int j = 0; j < 70; j++)
        {
            double exact = 0;
            for (int i = 0; i < 300; i++) exact += xd[i * 70 + j];
            Assert.True(Math.Abs(fast[j] - exact) < 1e-4, $"column {j}: {fast[j]} vs {exact}");
            Assert.True(Math.Abs(fast[j] - slow[j]) < 1e-4, $"column {j}: {fast[j]} vs {slow[j]}");
        }
        var three = Ops.Sum(Tensor.RandN(rng, 4, 5, 6), [0, 1], keepDim: true);
        Assert.Equal(new[] { 1, 1, 6 }, three.Shape);
    }

    [Fact]
    public void Mean() => Run(c =>
    {
        c.Check("all", x => Ops.Mean(x[0]), c.N(3, 4));
        c.Check("dim 1", x => Ops.Mean(x[0], [1]), c.N(3, 4, 2));
        c.Check("dims 0,2 keepDim", x => Ops.Mean(x[0], [0, 2], keepDim: true), c.N(3, 4, 2));
        c.Check("transposed view, dim -1", x => Ops.Mean(x[0].T, [-1]), c.N(4, 3));
        c.Check("expanded view, all", x => Ops.Mean(x[0].Expand(2, 3, 4)), c.N(3, 1));
        c.Check("method form", x => x[0].Mean([1], keepDim: true), c.N(3, 2));
    });

    [Fact]
    public void Var() => Run(c =>
    {
        c.Check("all, unbiased", x => Ops.Var(x[0]), c.N(3, 4));
        c.Check("all, biased", x => Ops.Var(x[0], unbiased: false), c.N(3, 4));
        c.Check("dim 1, unbiased", x => Ops.Var(x[0], [1]), c.N(3, 5));
        c.Check("dims 0,2 keepDim biased", x => Ops.Var(x[0], [0, 2], unbiased: false, keepDim: true), c.N(3, 4, 2));
        c.Check("transposed view, dim 0", x => Ops.Var(x[0].T, [0]), c.N(4, 3));
        c.Check("narrowed view, dim -1", x => Ops.Var(Ops.Narrow(x[0], 1, 1, 4), [-1]), c.N(3, 6));
    });

    [Fact]
    public void Max_Dim() => Run(c =>
    {
        c.Check("dim 1", x => Ops.Max(x[0], 1).Values, c.Distinct(0.1f, 3, 5));
        c.Check("dim 0 keepDim", x => Ops.Max(x[0], 0, keepDim: true).Values, c.Distinct(0.1f, 3, 5));
        c.Check("dim -1 of 3-D", x => Ops.Max(x[0], -1).Values, c.Distinct(0.1f, 2, 3, 4));
        c.Check("dim 1 of transposed view", x => Ops.Max(x[0].T, 1).Values, c.Distinct(0.1f, 4, 3));
        c.Check("dim 0 of step-2 slice", x => Ops.Max(Ops.Slice(x[0], 1, 0, 6, 2), 0).Values, c.Distinct(0.1f, 4, 6));
        c.Check("all elements", x => Ops.Max(x[0]), c.Distinct(0.1f, 3, 4));
        c.Check("all elements of transposed view", x => Ops.Max(x[0].T), c.Distinct(0.1f, 3, 4));
    });

    [Fact]
    public void Amax() => Run(c =>
    {
        c.Check("all", x => Ops.Amax(x[0]), c.Distinct(0.1f, 3, 4));
        c.Check("dims 0,2", x => Ops.Amax(x[0], [0, 2]), c.Distinct(0.1f, 2, 3, 4));
        c.Check("dim 1 keepDim", x => Ops.Amax(x[0], [1], keepDim: true), c.Distinct(0.1f, 3, 5));
        c.Check("transposed view, dim -1", x => Ops.Amax(x[0].T, [-1]), c.Distinct(0.1f, 4, 3));
        c.Check("expanded view (ties across copies), dim 0", x => Ops.Amax(x[0].Expand(3, 4), [1]), c.Distinct(0.1f, 3, 1));
    });

    [Fact]
    public void MaxAndAmax_Ties()
    {
        // Not finite-differentiable: check the documented sub-gradients directly.
        var x = Tensor.FromArray([1f, 3f, 3f, 2f], 1, 4).RequireGrad();
        Ops.Amax(x, [1]).Backward(Tensor.FromArray([2f], 1));
        Assert.Equal(new[] { 0f, 1f, 1f, 0f }, x.Grad!.ToArray());
        var z = Tensor.FromArray([1f, 3f, 3f, 2f], 1, 4).RequireGrad();
        Ops.Max(z, 1).Values.Backward(Tensor.FromArray([2f], 1));
        Assert.Equal(new[] { 0f, 2f, 0f, 0f }, z.Grad!.ToArray());
    }

    // =============================================================================================
    // Linear algebra
    // =============================================================================================

    [Fact]
    public void MatMul_2D() => Run(c =>
    {
        c.Check("[3,4] @ [4,5]", x => Ops.MatMul(x[0], x[1]), c.N(3, 4), c.N(4, 5));
        c.Check("a.T @ b", x => Ops.MatMul(x[0].T, x[1]), c.N(4, 3), c.N(4, 5));
        c.Check("a @ b.T", x => Ops.MatMul(x[0], x[1].T), c.N(3, 4), c.N(5, 4));
        c.Check("a.T @ b.T", x => Ops.MatMul(x[0].T, x[1].T), c.N(4, 3), c.N(5, 4));
        c.Check("narrowed columns (row stride > cols) @ narrowed rows", x => Ops.MatMul(Ops.Narrow(x[0], 1, 1, 4), Ops.Narrow(x[1], 0, 2, 4)), c.N(3, 6), c.N(7, 5));
        c.Check("step-2 sliced (needs copy) @ expanded column", x => Ops.MatMul(Ops.Slice(x[0], 1, 0, 8, 2), x[1].Expand(4, 3)), c.N(3, 8), c.N(4, 1));
        c.Check("larger [9,17] @ [17,11]", x => Ops.MatMul(x[0], x[1]), c.N(9, 17), c.N(17, 11));
        c.Check("method form", x => x[0].MatMul(x[1]), c.N(2, 3), c.N(3, 2));
        c.Check("only rhs requires grad (lhs constant)", x => Ops.MatMul(Tensor.FromArray([1f, 2f, -1f, 0.5f, 3f, -2f], 2, 3), x[0]), c.N(3, 2));
    });

    [Fact]
    public void MatMul_HeadsSplitFromSequence() => Run(c =>
    {
        // [b, s, h, d] viewed as [b, h, s, d]: the batch dims (b, h) have no single stride, so each matrix is
        // read through its own offset (attention's q k^T and p v).
        c.Check("q @ k^T over split heads", x => Ops.MatMul(x[0].Permute(0, 2, 1, 3), x[1].Permute(0, 2, 3, 1)), c.N(2, 5, 3, 4), c.N(2, 6, 3, 4));
        c.Check("p @ v over split heads", x => Ops.MatMul(x[0], x[1].Permute(0, 2, 1, 3)), c.N(2, 3, 5, 6), c.N(2, 6, 3, 4));
    });

    [Fact]
    public void MatMulThroughOffsetsEqualsMatMulOfCopies()
    {
        var rng = new Rng(3);
        var q = Tensor.RandN(rng, 3, 17, 4, 8).Permute(0, 2, 1, 3);
        var k = Tensor.RandN(rng, 3, 19, 4, 8).Permute(0, 2, 3, 1);
        var viaOffsets = Ops.MatMul(q, k).ToArray();
        var viaCopies = Ops.MatMul(Ops.Contiguous(q), Ops.Contiguous(k)).ToArray();
        // Equal up to rounding: the copy is row-major where the view is read transposed, so the kernels differ.
        Assert.Equal(viaCopies.Length, viaOffsets.Length);
        for (int i = 0; i < viaCopies.Length; i++)
            Assert.True(Math.Abs(viaCopies[i] - viaOffsets[i]) <= 1e-5f * (1 + Math.Abs(viaCopies[i])), $"element {i}: {viaOffsets[i]} vs {viaCopies[i]}");
    }

    [Fact]
    public void MatMul_SameTensorBothOperands() => Run(c =>
    {
        c.Check("x @ x", x => Ops.MatMul(x[0], x[0]), c.N(3, 3));
        c.Check("x @ x.T", x => Ops.MatMul(x[0], x[0].T), c.N(3, 4));
        c.Check("x.T @ x", x => Ops.MatMul(x[0].T, x[0]), c.N(3, 4));
        c.Check("batched x @ x^T", x => Ops.MatMul(x[0], x[0].Transpose(-2, -1)), c.N(2, 3, 4));
        c.Check("vector x . x", x => Ops.MatMul(Ops.Unsqueeze(x[0], 0), Ops.Unsqueeze(x[0], 1)), c.N(5));
    });

    [Fact]
    public void MatMul_Batched() => Run(c =>
    {
        c.Check("[2,3,4] @ [2,4,5]", x => Ops.MatMul(x[0], x[1]), c.N(2, 3, 4), c.N(2, 4, 5));
        c.Check("[2,3,4] @ [4,5] (rhs broadcast)", x => Ops.MatMul(x[0], x[1]), c.N(2, 3, 4), c.N(4, 5));
        c.Check("[3,4] @ [2,4,5] (lhs broadcast)", x => Ops.MatMul(x[0], x[1]), c.N(3, 4), c.N(2, 4, 5));
        c.Check("both broadcast [2,1,3,4] @ [3,4,5]", x => Ops.MatMul(x[0], x[1]), c.N(2, 1, 3, 4), c.N(3, 4, 5));
        c.Check("both broadcast [1,2,3,4] @ [2,1,4,2]", x => Ops.MatMul(x[0], x[1]), c.N(1, 2, 3, 4), c.N(2, 1, 4, 2));
        c.Check("transposed matrices in batch", x => Ops.MatMul(x[0].Transpose(-2, -1), x[1].Transpose(1, 2)), c.N(2, 4, 3), c.N(2, 5, 4));
        c.Check("batch dim from transpose(0,1)", x => Ops.MatMul(x[0].Transpose(0, 1), x[1]), c.N(3, 2, 4), c.N(2, 4, 2));
        c.Check("expanded batch (stride 0)", x => Ops.MatMul(x[0].Unsqueeze(0).Expand(2, 3, 4), x[1]), c.N(3, 4), c.N(2, 4, 5));
        c.Check("permuted 4-D (non-collapsible batch)", x => Ops.MatMul(Ops.Permute(x[0], 1, 0, 2, 3), x[1]), c.N(3, 2, 2, 4), c.N(4, 3));
    });

    [Fact]
    public void MatMul_Vectors() => Run(c =>
    {
        c.Check("[4] @ [4,3]", x => Ops.MatMul(x[0], x[1]), c.N(4), c.N(4, 3));
        c.Check("[3,4] @ [4]", x => Ops.MatMul(x[0], x[1]), c.N(3, 4), c.N(4));
        c.Check("[4] @ [2,4,3]", x => Ops.MatMul(x[0], x[1]), c.N(4), c.N(2, 4, 3));
        c.Check("[2,3,4] @ [4]", x => Ops.MatMul(x[0], x[1]), c.N(2, 3, 4), c.N(4));
        c.Check("step-2 slice vector @ transposed matrix", x => Ops.MatMul(Ops.Slice(x[0], 0, 0, 8, 2), x[1].T), c.N(8), c.N(3, 4));
    });

    [Fact]
    public void MatMul_VectorDotVector() => Run(c =>
    {
        // PyTorch: matmul of two 1-D tensors is their dot product, a 0-d tensor.
        c.Check("[4] @ [4] (dot)", x => Ops.MatMul(x[0], x[1]), c.N(4), c.N(4));
        c.Check("[4] @ [4] same tensor", x => Ops.MatMul(x[0], x[0]), c.N(4));
    });

    [Fact]
    public void Linear() => Run(c =>
    {
        c.Check("[3,4] W[5,4] b[5]", x => Ops.Linear(x[0], x[1], x[2]), c.N(3, 4), c.N(5, 4), c.N(5));
        c.Check("[2,3,4] W[5,4] b[5]", x => Ops.Linear(x[0], x[1], x[2]), c.N(2, 3, 4), c.N(5, 4), c.N(5));
        c.Check("no bias", x => Ops.Linear(x[0], x[1]), c.N(3, 4), c.N(2, 4));
        c.Check("1-D input", x => Ops.Linear(x[0], x[1], x[2]), c.N(4), c.N(3, 4), c.N(3));
        c.Check("transposed input and weight", x => Ops.Linear(x[0].T, x[1].T, x[2]), c.N(4, 3), c.N(4, 5), c.N(5));
        c.Check("narrowed input, sliced bias", x => Ops.Linear(Ops.Narrow(x[0], 1, 1, 4), x[1], Ops.Slice(x[2], 0, 0, 6, 2)), c.N(3, 6), c.N(3, 4), c.N(6));
        c.Check("same tensor as input and weight", x => Ops.Linear(x[0], x[0]), c.N(3, 3));
        c.Check("larger [7,19] W[13,19]", x => Ops.Linear(x[0], x[1], x[2]), c.N(7, 19), c.N(13, 19), c.N(13));
    });

    // =============================================================================================
    // NN ops
    // =============================================================================================

    [Fact]
    public void Embedding() => Run(c =>
    {
        var ids = I64([1, 3, 1, 0, 4, 3], 2, 3);
        c.Check("Int64 ids with repeats", x => Ops.Embedding(ids, x[0]), c.N(5, 3));
        var ids32 = Tensor.FromArray(new[] { 2, 2, 0, 4 }, 4);
        c.Check("Int32 ids", x => Ops.Embedding(ids32, x[0]), c.N(5, 3));
        c.Check("transposed weight view", x => Ops.Embedding(ids, x[0].T), c.N(3, 5));
        // With paddingIdx the padding row gets no gradient by design; mask its outputs so FD agrees,
        // and check the other rows numerically.
        var pad = Tensor.FromArray(new float[] { 0, 1, 0, 0, 0, 1 }, 2, 3, 1);
        c.Check("paddingIdx (padding outputs masked)", x => Ops.MaskedFill(Ops.Embedding(ids, x[0], paddingIdx: 3), pad, 0f), c.N(5, 3));
        c.Check("transposed ids view", x => Ops.Embedding(I64([1, 3, 1, 0, 4, 3], 3, 2).T, x[0]), c.N(5, 3));
        c.Check("used twice: emb(ids) * emb(ids2)", x => Ops.Mul(Ops.Embedding(ids, x[0]), Ops.Embedding(I64([0, 0, 2, 1, 1, 4], 2, 3), x[0])), c.N(5, 2));
    });

    [Fact]
    public void Embedding_PaddingRowGetsNoGradient()
    {
        var w = Tensor.RandN(new Rng(11), 5, 3).RequireGrad();
        var y = Ops.Embedding(I64([1, 3, 1, 3], 4), w, paddingIdx: 3);
        y.Backward(Tensor.Ones(4, 3));
        var g = w.Grad!.ToArray();
        for (int j = 0; j < 3; j++)
        {
            Assert.Equal(0f, g[3 * 3 + j]);
            Assert.Equal(2f, g[1 * 3 + j]);
            Assert.Equal(0f, g[0 * 3 + j]);
        }
    }

    [Fact]
    public void LayerNorm() => Run(c =>
    {
        c.Check("[3,5] over [5], affine", x => Ops.LayerNorm(x[0], [5], x[1], x[2]), c.N(3, 5), c.N(5), c.N(5));
        c.Check("[4,20] over [20], affine", x => Ops.LayerNorm(x[0], [20], x[1], x[2]), c.N(4, 20), c.N(20), c.N(20));
        c.Check("no weight, no bias", x => Ops.LayerNorm(x[0], [6], null, null), c.N(3, 6));
        c.Check("weight only", x => Ops.LayerNorm(x[0], [6], x[1], null), c.N(3, 6), c.N(6));
        c.Check("bias only", x => Ops.LayerNorm(x[0], [6], null, x[1]), c.N(3, 6), c.N(6));
        c.Check("[2,2,3] over [2,3]", x => Ops.LayerNorm(x[0], [2, 3], x[1], x[2]), c.N(2, 2, 3), c.N(2, 3), c.N(2, 3));
        c.Check("transposed input, sliced weight", x => Ops.LayerNorm(x[0].T, [4], Ops.Slice(x[1], 0, 1, 8, 2), x[2]), c.N(4, 3), c.N(8), c.N(4));
        c.Check("expanded input rows", x => Ops.LayerNorm(x[0].Expand(3, 5), [5], x[1], x[2]), c.N(1, 5), c.N(5), c.N(5));
        c.Check("eps 0.1", x => Ops.LayerNorm(x[0], [5], x[1], x[2], eps: 0.1f), c.N(3, 5), c.N(5), c.N(5));
    });

    [Fact]
    public void BatchNorm2d_Train() => Run(c =>
    {
        c.Check("affine", x => Ops.BatchNorm2d(x[0], x[1], x[2], Tensor.Zeros(3), Tensor.Ones(3), training: true), c.N(2, 3, 2, 3), c.N(3), c.N(3));
        c.Check("no affine", x => Ops.BatchNorm2d(x[0], null, null, Tensor.Zeros(2), Tensor.Ones(2), training: true), c.N(3, 2, 2, 2));
        c.Check("NHWC leaf permuted to NCHW", x => Ops.BatchNorm2d(Ops.Permute(x[0], 0, 3, 1, 2), x[1], x[2], Tensor.Zeros(3), Tensor.Ones(3), training: true), c.N(2, 2, 3, 3), c.N(3), c.N(3));
        c.Check("sliced weight view, eps 0.01", x => Ops.BatchNorm2d(x[0], Ops.Slice(x[1], 0, 0, 6, 2), x[2], Tensor.Zeros(3), Tensor.Ones(3), training: true, eps: 0.01f), c.N(2, 3, 2, 2), c.N(6), c.N(3));
    });

    [Fact]
    public void BatchNorm2d_Eval() => Run(c =>
    {
        var rm = Tensor.FromArray([0.3f, -0.2f, 0.1f], 3);
        var rv = Tensor.FromArray([0.8f, 1.5f, 0.6f], 3);
        c.Check("affine", x => Ops.BatchNorm2d(x[0], x[1], x[2], rm, rv, training: false), c.N(2, 3, 2, 3), c.N(3), c.N(3));
        c.Check("no affine", x => Ops.BatchNorm2d(x[0], null, null, rm, rv, training: false), c.N(2, 3, 2, 2));
        c.Check("NHWC leaf permuted to NCHW", x => Ops.BatchNorm2d(Ops.Permute(x[0], 0, 3, 1, 2), x[1], x[2], rm, rv, training: false), c.N(2, 2, 3, 3), c.N(3), c.N(3));
    });

    [Fact]
    public void Softmax() => Run(c =>
    {
        c.Check("dim -1", x => Ops.Softmax(x[0]), c.N(3, 5));
        c.Check("dim 0", x => Ops.Softmax(x[0], 0), c.N(3, 5));
        c.Check("dim 1 of 3-D", x => Ops.Softmax(x[0], 1), c.N(2, 3, 4));
        c.Check("long rows [2,37]", x => Ops.Softmax(x[0]), c.N(2, 37));
        c.Check("transposed view, dim -1", x => Ops.Softmax(x[0].T), c.N(4, 3));
        c.Check("expanded view, dim 0", x => Ops.Softmax(x[0].Expand(3, 4), 0), c.N(1, 4));
        c.Check("used twice: softmax(x) * x", x => Ops.Mul(Ops.Softmax(x[0]), x[0]), c.N(3, 4));
    });

    [Fact]
    public void AttentionSoftmax() => Run(c =>
    {
        var pad = Tensor.FromArray(new float[] { 0, 0, -10000, 0, 0, 0, 0, -10000 }, 2, 1, 1, 4);
        var full = Tensor.RandN(new Rng(3), 2, 1, 3, 4);
        c.Check("no mask", x => Ops.AttentionSoftmax(x[0], 0.5f), c.N(2, 3, 4));
        c.Check("padding mask [B,1,1,S]", x => Ops.AttentionSoftmax(x[0], 0.125f, pad), c.N(2, 2, 3, 4));
        c.Check("full mask [B,1,S,S]", x => Ops.AttentionSoftmax(x[0], 1f, full), c.N(2, 2, 3, 4));
        c.Check("mask broadcast on the last dim [S,1]", x => Ops.AttentionSoftmax(x[0], 2f, Tensor.RandN(new Rng(4), 3, 1)), c.N(2, 3, 4));
        c.Check("transposed scores", x => Ops.AttentionSoftmax(x[0].Transpose(-1, -2), 0.7f, pad), c.N(2, 2, 4, 3));
        c.Check("used twice", x => Ops.Mul(Ops.AttentionSoftmax(x[0], 0.3f), x[0]), c.N(3, 4));
    });

    [Fact]
    public void AttentionSoftmaxEqualsTheUnfusedOpsAndRejectsBadMasks()
    {
        var rng = new Rng(11);
        var x = Tensor.RandN(rng, 2, 3, 5, 7);
        var mask = Tensor.FromArray(Enumerable.Range(0, 14).Select(i => i % 4 == 0 ? -10000f : 0f).ToArray(), 2, 1, 1, 7);
        var fused = Ops.AttentionSoftmax(x, 0.25f, mask).ToArray();
        var plain = Ops.Softmax(Ops.Add(Ops.MulScalar(x, 0.25f), mask), -1).ToArray();
        for (int i = 0; i < fused.Length; i++) Assert.Equal(plain[i], fused[i], 6);
        Assert.Contains("does not broadcast", Assert.Throws<ArgumentException>(() => Ops.AttentionSoftmax(x, 1f, Tensor.Zeros(3, 1, 1, 7))).Message);
        Assert.Contains("requires grad", Assert.Throws<ArgumentException>(() => Ops.AttentionSoftmax(x, 1f, Tensor.Zeros(7).RequireGrad())).Message);
    }

    [Fact]
    public void LogSoftmax() => Run(c =>
    {
        c.Check("dim -1", x => Ops.LogSoftmax(x[0]), c.N(3, 5));
        c.Check("dim 0", x => Ops.LogSoftmax(x[0], 0), c.N(3, 5));
        c.Check("dim 1 of 3-D", x => Ops.LogSoftmax(x[0], 1), c.N(2, 3, 4));
        c.Check("long rows [2,37]", x => Ops.LogSoftmax(x[0]), c.N(2, 37));
        c.Check("transposed view, dim -1", x => Ops.LogSoftmax(x[0].T), c.N(4, 3));
        c.Check("step-2 sliced view, dim 0", x => Ops.LogSoftmax(Ops.Slice(x[0], 1, 0, 8, 2), 0), c.N(3, 8));
    });

    [Fact]
    public void Dropout() => Run(c =>
    {
        c.Check("p=0.3 training (seeded mask)", x => Ops.Dropout(x[0], 0.3f, new Rng(7)), c.N(4, 9));
        c.Check("p=0.5 transposed view", x => Ops.Dropout(x[0].T, 0.5f, new Rng(8)), c.N(5, 3));
        c.Check("p=0.3 expanded view", x => Ops.Dropout(x[0].Expand(4, 3), 0.3f, new Rng(9)), c.N(1, 3));
        c.Check("eval is identity", x => Ops.Dropout(x[0], 0.3f, new Rng(7), training: false), c.N(3, 4));
        c.Check("p=0", x => Ops.Dropout(x[0], 0f, new Rng(7)), c.N(3, 4));
    });

    // =============================================================================================
    // Convolution and pooling
    // =============================================================================================

    [Fact]
    public void Conv2d() => Run(c =>
    {
        c.Check("3x3 pad 1 bias", x => Ops.Conv2d(x[0], x[1], x[2], padding: (1, 1)), c.N(2, 3, 5, 5), c.N(4, 3, 3, 3), c.N(4));
        c.Check("3x3 stride 2 pad 1 no bias", x => Ops.Conv2d(x[0], x[1], stride: (2, 2), padding: (1, 1)), c.N(2, 2, 6, 5), c.N(3, 2, 3, 3));
        c.Check("3x3 dilation 2 pad 2", x => Ops.Conv2d(x[0], x[1], x[2], padding: (2, 2), dilation: (2, 2)), c.N(1, 2, 6, 6), c.N(3, 2, 3, 3), c.N(3));
        c.Check("2x3 kernel, stride (1,2), pad (0,1)", x => Ops.Conv2d(x[0], x[1], x[2], stride: (1, 2), padding: (0, 1)), c.N(2, 2, 4, 6), c.N(3, 2, 2, 3), c.N(3));
        c.Check("1x1", x => Ops.Conv2d(x[0], x[1], x[2]), c.N(2, 3, 3, 4), c.N(5, 3, 1, 1), c.N(5));
        c.Check("groups 2", x => Ops.Conv2d(x[0], x[1], x[2], padding: (1, 1), groups: 2), c.N(2, 4, 4, 4), c.N(6, 2, 3, 3), c.N(6));
        c.Check("groups 2 stride 2 dilation 2", x => Ops.Conv2d(x[0], x[1], null, stride: (2, 2), padding: (1, 1), dilation: (2, 2), groups: 2), c.N(1, 4, 7, 6), c.N(4, 2, 3, 3));
        c.Check("NHWC leaf permuted to NCHW, permuted weight", x => Ops.Conv2d(Ops.Permute(x[0], 0, 3, 1, 2), Ops.Permute(x[1], 3, 0, 1, 2), x[2], padding: (1, 1)), c.N(2, 4, 4, 3), c.N(3, 3, 3, 2), c.N(2));
        c.Check("same tensor used as input twice (sum of two convs)", x => Ops.Add(Ops.Conv2d(x[0], x[1]), Ops.Conv2d(x[0], x[2])), c.N(1, 2, 4, 4), c.N(2, 2, 3, 3), c.N(2, 2, 3, 3));
    });

    [Fact]
    public void Conv2d_Depthwise() => Run(c =>
    {
        c.Check("3x3 pad 1 bias", x => Ops.Conv2d(x[0], x[1], x[2], padding: (1, 1), groups: 3), c.N(2, 3, 5, 5), c.N(3, 1, 3, 3), c.N(3));
        c.Check("multiplier 2", x => Ops.Conv2d(x[0], x[1], x[2], padding: (1, 1), groups: 3), c.N(1, 3, 4, 5), c.N(6, 1, 3, 3), c.N(6));
        c.Check("stride 2 pad 1 no bias", x => Ops.Conv2d(x[0], x[1], null, stride: (2, 2), padding: (1, 1), groups: 4), c.N(2, 4, 6, 5), c.N(4, 1, 3, 3));
        c.Check("dilation 2 pad 2", x => Ops.Conv2d(x[0], x[1], x[2], padding: (2, 2), dilation: (2, 2), groups: 2), c.N(1, 2, 6, 6), c.N(2, 1, 3, 3), c.N(2));
        c.Check("wide rows (vector path)", x => Ops.Conv2d(x[0], x[1], x[2], padding: (1, 1), groups: 2), c.N(1, 2, 3, 21), c.N(2, 1, 3, 3), c.N(2));
        c.Check("NHWC leaf permuted to NCHW", x => Ops.Conv2d(Ops.Permute(x[0], 0, 3, 1, 2), x[1], x[2], padding: (1, 1), groups: 3), c.N(1, 4, 4, 3), c.N(3, 1, 3, 3), c.N(3));
    });

    [Fact]
    public void MaxPool2d() => Run(c =>
    {
        c.Check("2x2 stride 2", x => Ops.MaxPool2d(x[0], (2, 2)), c.Distinct(0.1f, 2, 2, 4, 4));
        c.Check("3x3 stride 1 pad 1 (overlapping windows)", x => Ops.MaxPool2d(x[0], (3, 3), (1, 1), (1, 1)), c.Distinct(0.1f, 1, 2, 4, 5));
        c.Check("3x3 stride 2 pad 1", x => Ops.MaxPool2d(x[0], (3, 3), (2, 2), (1, 1)), c.Distinct(0.1f, 2, 1, 5, 5));
        c.Check("2x3 stride (1,2)", x => Ops.MaxPool2d(x[0], (2, 3), (1, 2)), c.Distinct(0.1f, 1, 2, 4, 7));
        c.Check("NHWC leaf permuted to NCHW", x => Ops.MaxPool2d(Ops.Permute(x[0], 0, 3, 1, 2), (2, 2)), c.Distinct(0.1f, 2, 4, 4, 2));
    });

    [Fact]
    public void AvgPool2d() => Run(c =>
    {
        c.Check("2x2 stride 2", x => Ops.AvgPool2d(x[0], (2, 2)), c.N(2, 2, 4, 4));
        c.Check("3x3 stride 2 pad 1 include pad", x => Ops.AvgPool2d(x[0], (3, 3), (2, 2), (1, 1)), c.N(1, 2, 5, 6));
        c.Check("3x3 stride 2 pad 1 exclude pad", x => Ops.AvgPool2d(x[0], (3, 3), (2, 2), (1, 1), countIncludePad: false), c.N(1, 2, 5, 6));
        c.Check("3x3 stride 1 pad 1 exclude pad (overlapping)", x => Ops.AvgPool2d(x[0], (3, 3), (1, 1), (1, 1), countIncludePad: false), c.N(1, 1, 4, 5));
        c.Check("2x3 stride (1,2)", x => Ops.AvgPool2d(x[0], (2, 3), (1, 2)), c.N(1, 2, 4, 7));
        c.Check("NHWC leaf permuted to NCHW", x => Ops.AvgPool2d(Ops.Permute(x[0], 0, 3, 1, 2), (2, 2)), c.N(2, 4, 4, 2));
    });

    [Fact]
    public void GlobalAvgPool2d() => Run(c =>
    {
        c.Check("[2,3,3,4]", x => Ops.GlobalAvgPool2d(x[0]), c.N(2, 3, 3, 4));
        c.Check("keepDim", x => Ops.GlobalAvgPool2d(x[0], keepDim: true), c.N(2, 3, 3, 4));
        c.Check("NHWC leaf permuted to NCHW", x => Ops.GlobalAvgPool2d(Ops.Permute(x[0], 0, 3, 1, 2)), c.N(2, 3, 4, 3));
        c.Check("expanded batch", x => Ops.GlobalAvgPool2d(x[0].Expand(3, 2, 2, 3)), c.N(1, 2, 2, 3));
    });

    [Fact]
    public void ZeroPad2d() => Run(c =>
    {
        c.Check("asymmetric (1,2,0,1)", x => Ops.ZeroPad2d(x[0], 1, 2, 0, 1), c.N(2, 2, 3, 4));
        c.Check("symmetric (1,1,1,1)", x => Ops.ZeroPad2d(x[0], 1, 1, 1, 1), c.N(1, 2, 3, 3));
        c.Check("NHWC leaf permuted to NCHW", x => Ops.ZeroPad2d(Ops.Permute(x[0], 0, 3, 1, 2), 0, 1, 2, 0), c.N(1, 3, 4, 2));
    });

    // =============================================================================================
    // Losses
    // =============================================================================================

    [Fact]
    public void CrossEntropy() => Run(c =>
    {
        var t = I64([2, 0, 4, 1], 4);
        var w = Tensor.FromArray([0.5f, 1.5f, 1f, 2f, 0.7f], 5);
        foreach (var red in new[] { Reduction.Mean, Reduction.Sum, Reduction.None })
        {
            c.Check($"{red}", x => Ops.CrossEntropy(x[0], t, reduction: red), c.N(4, 5));
            c.Check($"{red} class weights", x => Ops.CrossEntropy(x[0], t, w, reduction: red), c.N(4, 5));
            c.Check($"{red} label smoothing 0.1", x => Ops.CrossEntropy(x[0], t, labelSmoothing: 0.1f, reduction: red), c.N(4, 5));
            c.Check($"{red} weights + smoothing 0.2", x => Ops.CrossEntropy(x[0], t, w, labelSmoothing: 0.2f, reduction: red), c.N(4, 5));
            c.Check($"{red} ignore -100 + weights + smoothing", x => Ops.CrossEntropy(x[0], I64([2, -100, 4, 1], 4), w, 0.1f, reduction: red), c.N(4, 5));
        }
        c.Check("custom ignore index 2", x => Ops.CrossEntropy(x[0], t, ignoreIndex: 2), c.N(4, 5));
        c.Check("Int32 targets", x => Ops.CrossEntropy(x[0], Tensor.FromArray(new[] { 1, 1, 3, 0 }, 4)), c.N(4, 5));
        c.Check("transposed logits", x => Ops.CrossEntropy(x[0].T, t, w, 0.1f), c.N(5, 4));
        c.Check("narrowed logits, smoothing 1.0", x => Ops.CrossEntropy(Ops.Narrow(x[0], 1, 1, 5), t, labelSmoothing: 1f), c.N(4, 7));
    });

    [Fact]
    public void BinaryCrossEntropyWithLogits() => Run(c =>
    {
        var pw = Tensor.FromArray([0.5f, 2f, 1f, 3f], 4);
        foreach (var red in new[] { Reduction.Mean, Reduction.Sum, Reduction.None })
        {
            c.Check($"{red}, grad to logits and target", x => Ops.BinaryCrossEntropyWithLogits(x[0], x[1], reduction: red), c.U(-3f, 3f, 3, 4), c.U(0.05f, 0.95f, 3, 4));
            c.Check($"{red}, pos weight", x => Ops.BinaryCrossEntropyWithLogits(x[0], x[1], pw, red), c.U(-3f, 3f, 3, 4), c.U(0.05f, 0.95f, 3, 4));
        }
        c.Check("constant 0/1 targets", x => Ops.BinaryCrossEntropyWithLogits(x[0], Tensor.FromArray([1f, 0f, 0f, 1f, 1f, 0f], 2, 3)), c.U(-3f, 3f, 2, 3));
        c.Check("transposed logits, sliced target", x => Ops.BinaryCrossEntropyWithLogits(x[0].T, Ops.Slice(x[1], 1, 0, 8, 2), pw), c.U(-3f, 3f, 4, 3), c.U(0.05f, 0.95f, 3, 8));
        c.Check("large logits (stability)", x => Ops.BinaryCrossEntropyWithLogits(x[0], x[1]), c.Signed(8f, 20f, 2, 3), c.U(0.05f, 0.95f, 2, 3));
    });

    // =============================================================================================
    // Masking, joining and indexing
    // =============================================================================================

    [Fact]
    public void MaskedFill() => Run(c =>
    {
        var m = I64([1, 0, 0, 1, 0, 1, 1, 0, 0, 0, 1, 0], 3, 4);
        c.Check("full Int64 mask", x => Ops.MaskedFill(x[0], m, -5f), c.N(3, 4));
        c.Check("broadcast float mask [1,4]", x => Ops.MaskedFill(x[0], Tensor.FromArray([0f, 1f, 0f, 1f], 1, 4), 0f), c.N(3, 4));
        c.Check("broadcast mask [3,1]", x => Ops.MaskedFill(x[0], I64([0, 1, 0], 3, 1), 2f), c.N(3, 4));
        c.Check("transposed input", x => Ops.MaskedFill(x[0].T, m, 1f), c.N(4, 3));
        c.Check("expanded input", x => Ops.MaskedFill(x[0].Expand(3, 4), m, 1f), c.N(1, 4));
    });

    [Fact]
    public void Where() => Run(c =>
    {
        var cond = Tensor.FromArray([1f, 0f, 0f, 1f, 0f, 1f, 1f, 0f, 0f, 0f, 1f, 1f], 3, 4);
        c.Check("same shapes", x => Ops.Where(cond, x[0], x[1]), c.N(3, 4), c.N(3, 4));
        c.Check("a and b both broadcast [3,1] / [4]", x => Ops.Where(cond, x[0], x[1]), c.N(3, 1), c.N(4));
        c.Check("cond broadcast [4] (Int64), a [3,4], b 0-d", x => Ops.Where(I64([1, 0, 1, 0], 4), x[0], x[1]), c.N(3, 4), c.N());
        c.Check("all three broadcast: cond [3,1], a [1,4], b [2,1,1]", x => Ops.Where(I64([1, 0, 1], 3, 1), x[0], x[1]), c.N(1, 4), c.N(2, 1, 1));
        c.Check("transposed a, sliced b", x => Ops.Where(cond, x[0].T, Ops.Slice(x[1], 1, 1, 8, 2)), c.N(4, 3), c.N(3, 8));
        c.Check("same tensor both branches", x => Ops.Where(cond, x[0], Ops.Exp(x[0])), c.U(-1f, 1f, 3, 4));
    });

    [Fact]
    public void Concat() => Run(c =>
    {
        c.Check("dim 0, three inputs", x => Ops.Concat([x[0], x[1], x[2]], 0), c.N(2, 3), c.N(1, 3), c.N(3, 3));
        c.Check("dim 1", x => Ops.Concat([x[0], x[1]], 1), c.N(2, 3), c.N(2, 2));
        c.Check("dim -1 of 3-D", x => Ops.Concat([x[0], x[1]], -1), c.N(2, 2, 3), c.N(2, 2, 1));
        c.Check("non-contiguous inputs (transposed, expanded, sliced)", x => Ops.Concat([x[0].T, x[1].Expand(2, 3), Ops.Slice(x[2], 1, 0, 6, 2)], 0), c.N(3, 2), c.N(1, 3), c.N(2, 6));
        c.Check("same tensor twice", x => Ops.Concat([x[0], x[1], x[0]], 1), c.N(2, 2), c.N(2, 1));
        c.Check("single input", x => Ops.Concat([x[0]], 0), c.N(2, 3));
        c.Check("with a constant input", x => Ops.Concat([Tensor.Ones(1, 3), x[0]], 0), c.N(2, 3));
    });

    [Fact]
    public void Stack() => Run(c =>
    {
        c.Check("dim 0", x => Ops.Stack([x[0], x[1]], 0), c.N(2, 3), c.N(2, 3));
        c.Check("dim 1", x => Ops.Stack([x[0], x[1], x[2]], 1), c.N(2, 3), c.N(2, 3), c.N(2, 3));
        c.Check("dim -1", x => Ops.Stack([x[0], x[1]], -1), c.N(2, 3), c.N(2, 3));
        c.Check("non-contiguous + same tensor twice", x => Ops.Stack([x[0].T, x[1], x[0].T], 0), c.N(3, 2), c.N(2, 3));
    });

    [Fact]
    public void Split() => Run(c =>
    {
        // Each part scaled differently and re-joined, so every part's gradient is distinguishable.
        static Tensor Rejoin(Tensor[] parts, int dim) => Ops.Concat(parts.Select((p, i) => Ops.MulScalar(Ops.Exp(p), i + 1f)).ToArray(), dim);
        c.Check("size 2 along dim 1 (last part smaller)", x => Rejoin(Ops.Split(x[0], 2, 1), 1), c.U(-1f, 1f, 3, 5));
        c.Check("sections [1,3,1] along dim 0", x => Rejoin(Ops.Split(x[0], [1, 3, 1], 0), 0), c.U(-1f, 1f, 5, 2));
        c.Check("of a transposed view", x => Rejoin(Ops.Split(x[0].T, 2, 0), 0), c.U(-1f, 1f, 3, 4));
        c.Check("only one part used", x => Ops.Exp(Ops.Split(x[0], 2, 1)[1]), c.U(-1f, 1f, 3, 5));
    });

    [Fact]
    public void Gather() => Run(c =>
    {
        c.Check("dim 1, repeated indices", x => Ops.Gather(x[0], 1, I64([0, 0, 3, 2, 1, 2], 3, 2)), c.N(3, 4));
        c.Check("dim 0", x => Ops.Gather(x[0], 0, I64([2, 0, 1, 2, 2, 2, 0, 1], 2, 4)), c.N(3, 4));
        c.Check("index smaller in other dims", x => Ops.Gather(x[0], 1, I64([3, 1, 0, 0], 2, 2)), c.N(3, 4));
        c.Check("3-D dim 2", x => Ops.Gather(x[0], 2, I64([1, 0, 2, 2, 0, 1, 1, 1, 2, 0, 0, 0], 2, 3, 2)), c.N(2, 3, 3));
        c.Check("transposed input", x => Ops.Gather(x[0].T, 1, I64([0, 0, 3, 2, 1, 2], 3, 2)), c.N(4, 3));
        c.Check("expanded input", x => Ops.Gather(x[0].Expand(3, 4), 0, I64([1, 0, 2, 2, 0, 1, 1, 1], 2, 4)), c.N(1, 4));
        c.Check("transposed index view", x => Ops.Gather(x[0], 1, I64([0, 3, 2, 0, 1, 2], 2, 3).T), c.N(3, 4));
        c.Check("Int32 index", x => Ops.Gather(x[0], 1, Tensor.FromArray(new[] { 1, 1, 0, 2 }, 2, 2)), c.N(2, 3));
    });

    [Fact]
    public void ScatterAdd() => Run(c =>
    {
        c.Check("dim 1, repeated indices, grads to x and src", x => Ops.ScatterAdd(x[0], 1, I64([0, 0, 3, 2, 1, 2], 3, 2), x[1]), c.N(3, 4), c.N(3, 2));
        c.Check("dim 0", x => Ops.ScatterAdd(x[0], 0, I64([2, 0, 1, 2, 2, 2, 0, 1], 2, 4), x[1]), c.N(3, 4), c.N(2, 4));
        c.Check("transposed x, sliced src", x => Ops.ScatterAdd(x[0].T, 1, I64([3, 1, 1, 0, 2, 2], 3, 2), Ops.Slice(x[1], 1, 0, 4, 2)), c.N(4, 3), c.N(3, 4));
        c.Check("expanded src", x => Ops.ScatterAdd(x[0], 1, I64([0, 2, 1, 0, 3, 3], 3, 2), x[1].Expand(3, 2)), c.N(3, 4), c.N(1, 2));
        c.Check("only src requires grad (x constant)", x => Ops.ScatterAdd(Tensor.Ones(2, 3), 1, I64([2, 2, 0, 1], 2, 2), x[0]), c.N(2, 2));
        c.Check("same tensor as x and src", x => Ops.ScatterAdd(x[0], 1, I64([1, 0, 2, 2, 0, 1], 2, 3), x[0]), c.N(2, 3));
    });

    [Fact]
    public void IndexSelect() => Run(c =>
    {
        c.Check("dim 0, repeats", x => Ops.IndexSelect(x[0], 0, I64([2, 0, 2], 3)), c.N(3, 4));
        c.Check("dim 1", x => Ops.IndexSelect(x[0], 1, I64([3, 1, 1, 0, 3], 5)), c.N(3, 4));
        c.Check("3-D dim 1", x => Ops.IndexSelect(x[0], 1, I64([1, 2, 1], 3)), c.N(2, 3, 2));
        c.Check("Int32 index, dim -1", x => Ops.IndexSelect(x[0], -1, Tensor.FromArray(new[] { 0, 0, 2 }, 3)), c.N(2, 3));
        c.Check("transposed input", x => Ops.IndexSelect(x[0].T, 0, I64([2, 0, 2], 3)), c.N(4, 3));
        c.Check("expanded input", x => Ops.IndexSelect(x[0].Expand(3, 4), 0, I64([1, 1], 2)), c.N(1, 4));
    });

    // =============================================================================================
    // Views
    // =============================================================================================

    [Fact]
    public void Reshape() => Run(c =>
    {
        c.Check("view path [3,4]->[2,6]", x => Ops.Reshape(x[0], 2, 6), c.N(3, 4));
        c.Check("-1 inference", x => Ops.Reshape(x[0], -1, 3), c.N(2, 2, 3));
        c.Check("copy path (transposed input)", x => Ops.Reshape(x[0].T, 12), c.N(4, 3));
        c.Check("copy path (expanded input)", x => Ops.Reshape(x[0].Expand(2, 3), 6), c.N(1, 3));
        c.Check("same shape returns input", x => Ops.Reshape(x[0], 3, 4), c.N(3, 4));
        c.Check("then op", x => Ops.Exp(Ops.Reshape(Ops.Narrow(x[0], 1, 0, 2), 6)), c.U(-1f, 1f, 3, 4));
        c.Check("to 0-d", x => Ops.Reshape(x[0]), c.N(1));
        c.Check("method form", x => x[0].Reshape(4, 3), c.N(2, 6));
    });

    [Fact]
    public void ViewAs() => Run(c =>
    {
        c.Check("[3,4]->[2,6]", x => Ops.ViewAs(x[0], 2, 6), c.N(3, 4));
        c.Check("narrowed rows viewed as flat rows", x => Ops.ViewAs(Ops.Narrow(x[0], 0, 1, 2), 2, 2, 2), c.N(4, 4));
        c.Check("transposed view split last dim", x => Ops.ViewAs(x[0].T, 4, 2, 2), c.N(4, 4));
        c.Check("method form", x => Ops.Exp(x[0].View(-1)), c.U(-1f, 1f, 2, 3));
    });

    [Fact]
    public void PermuteAndTranspose() => Run(c =>
    {
        c.Check("permute (2,0,1)", x => Ops.Permute(x[0], 2, 0, 1), c.N(2, 3, 4));
        c.Check("permute negative dims", x => Ops.Permute(x[0], -1, 0, -2), c.N(2, 3, 4));
        c.Check("transpose(0,2)", x => Ops.Transpose(x[0], 0, 2), c.N(2, 3, 4));
        c.Check("T then op", x => Ops.Mul(x[0].T, x[1]), c.N(3, 2), c.N(2, 3));
        c.Check("permute of permute then contiguous", x => Ops.Contiguous(x[0].Permute(1, 2, 0).Permute(2, 0, 1).Transpose(1, 2)), c.N(2, 3, 4));
    });

    [Fact]
    public void NarrowAndSlice() => Run(c =>
    {
        c.Check("narrow dim 0", x => Ops.Narrow(x[0], 0, 1, 2), c.N(4, 3));
        c.Check("narrow negative start", x => Ops.Narrow(x[0], 1, -3, 2), c.N(2, 5));
        c.Check("narrow method form, then exp", x => Ops.Exp(x[0].Narrow(-1, 2, 3)), c.U(-1f, 1f, 3, 6));
        c.Check("slice step 2", x => Ops.Slice(x[0], 1, 0, 7, 2), c.N(3, 7));
        c.Check("slice negative start/end, step 3", x => Ops.Slice(x[0], 0, -7, -1, 3), c.N(8, 2));
        c.Check("slice clamps end", x => Ops.Slice(x[0], 1, 1, 100), c.N(2, 4));
        c.Check("overlapping narrows summed", x => Ops.Add(Ops.Narrow(x[0], 1, 0, 3), Ops.Narrow(x[0], 1, 1, 3)), c.N(2, 4));
        c.Check("slice of transposed", x => Ops.Slice(x[0].T, 0, 1, 4, 2), c.N(3, 4));
    });

    [Fact]
    public void Expand() => Run(c =>
    {
        c.Check("size-1 dims", x => Ops.Expand(x[0], 3, 4), c.N(3, 1));
        c.Check("new leading dims", x => Ops.Expand(x[0], 2, 3, 4), c.N(4));
        c.Check("-1 keeps size", x => Ops.Expand(x[0], 2, -1, 4), c.N(3, 1));
        c.Check("expand of transposed", x => Ops.Expand(x[0].T, 2, 3, 2), c.N(2, 3));
        c.Check("expand of expand then op", x => Ops.Exp(Ops.Expand(Ops.Expand(x[0], 3, 2), 2, 3, 2)), c.U(-1f, 1f, 1, 2));
        c.Check("0-d to [2,3]", x => Ops.Expand(x[0], 2, 3), c.N());
    });

    [Fact]
    public void UnsqueezeSqueezeFlatten() => Run(c =>
    {
        c.Check("unsqueeze 0", x => Ops.Unsqueeze(x[0], 0), c.N(2, 3));
        c.Check("unsqueeze -1", x => Ops.Unsqueeze(x[0], -1), c.N(2, 3));
        c.Check("unsqueeze middle of transposed", x => Ops.Unsqueeze(x[0].T, 1), c.N(2, 3));
        c.Check("squeeze all", x => Ops.Squeeze(x[0]), c.N(1, 3, 1, 2));
        c.Check("squeeze dim 2", x => Ops.Squeeze(x[0], 2), c.N(1, 3, 1, 2));
        c.Check("squeeze of transposed", x => Ops.Squeeze(x[0].Transpose(0, 2)), c.N(2, 1, 3));
        c.Check("flatten all", x => Ops.Flatten(x[0]), c.N(2, 3, 2));
        c.Check("flatten 1..2", x => Ops.Flatten(x[0], 1, 2), c.N(2, 3, 2, 2));
        c.Check("flatten of permuted (copy)", x => Ops.Flatten(Ops.Permute(x[0], 2, 0, 1), 1), c.N(2, 3, 2));
        c.Check("flatten 0-d", x => Ops.Flatten(x[0]), c.N());
    });

    [Fact]
    public void Contiguous() => Run(c =>
    {
        c.Check("of transposed", x => Ops.Contiguous(x[0].T), c.N(3, 4));
        c.Check("of expanded", x => Ops.Contiguous(x[0].Expand(3, 4)), c.N(3, 1));
        c.Check("of sliced, then op", x => Ops.Exp(Ops.Slice(x[0], 0, 0, 5, 2).Contiguous()), c.U(-1f, 1f, 5, 2));
        c.Check("of contiguous (identity)", x => Ops.Contiguous(x[0]), c.N(2, 3));
    });

    // =============================================================================================
    // Autograd semantics
    // =============================================================================================

    [Fact]
    public void Graph_TensorUsedTwiceAccumulates() => Run(c =>
    {
        c.Check("x * exp(x) + x", x => Ops.Add(Ops.Mul(x[0], Ops.Exp(x[0])), x[0]), c.U(-1f, 1f, 3, 4));
        c.Check("diamond: h = tanh(x); h*h + h", x => { var h = Ops.Tanh(x[0]); return Ops.Add(Ops.Mul(h, h), h); }, c.N(3, 4));
        c.Check("x through two views", x => Ops.Mul(x[0].T, Ops.Reshape(x[0], 3, 2)), c.N(2, 3));
        c.Check("deep chain", x =>
        {
            var h = x[0];
            for (int i = 0; i < 4; i++) h = Ops.Add(Ops.Tanh(Ops.Linear(h, x[1], x[2])), h);
            return Ops.Softmax(h);
        }, c.N(2, 3), c.MulBy(c.N(3, 3), 0.5f), c.N(3));

        var x = Tensor.RandN(new Rng(3), 2, 3).RequireGrad();
        Ops.Add(x, x).Backward(Tensor.Ones(2, 3));
        c.Expect(x.Grad!.ToArray().All(v => v == 2f), "x + x must give gradient 2 everywhere");
    });

    [Fact]
    public void Backward_CalledTwiceAccumulatesIntoGrad()
    {
        var rng = new Rng(21);
        var x = Tensor.RandN(rng, 3, 4).RequireGrad();
        var w = Tensor.RandN(rng, 4, 2).RequireGrad();
        var g = Tensor.RandN(rng, 3, 2);
        var y = Ops.Tanh(Ops.MatMul(x, w));
        y.Backward(g, retainGraph: true);
        var gx1 = x.Grad!.ToArray();
        var gw1 = w.Grad!.ToArray();
        y.Backward(g); // same graph again (retained by the first pass)
        var gx2 = x.Grad!.ToArray();
        var gw2 = w.Grad!.ToArray();
        for (int i = 0; i < gx1.Length; i++) Assert.Equal(2 * gx1[i], gx2[i], 5);
        for (int i = 0; i < gw1.Length; i++) Assert.Equal(2 * gw1[i], gw2[i], 5);

        // A fresh graph also accumulates; ZeroGrad resets.
        Ops.Sum(x).Backward();
        var gx3 = x.Grad!.ToArray();
        for (int i = 0; i < gx1.Length; i++) Assert.Equal(2 * gx1[i] + 1f, gx3[i], 5);
        x.ZeroGrad();
        Assert.Null(x.Grad);
        Ops.Sum(x).Backward();
        Assert.All(x.Grad!.ToArray(), v => Assert.Equal(1f, v));
    }

    [Fact]
    public void Detach_StopsGradient()
    {
        var x = Tensor.FromArray([0.5f, -1.25f, 2f, 3f], 2, 2).RequireGrad();
        var d = x.Detach();
        Assert.False(d.RequiresGrad);
        Assert.True(d.IsLeaf);
        var y = Ops.Mul(d, x); // d/dx = d (not 2x)
        y.Backward(Tensor.Ones(2, 2));
        Assert.Equal(x.ToArray(), x.Grad!.ToArray());

        // Only through the detached branch: nothing recorded at all.
        var z = Ops.Exp(x.Detach());
        Assert.False(z.RequiresGrad);
        Assert.Null(z.GradFnName);
        Assert.Throws<InvalidOperationException>(() => z.Backward(Tensor.Ones(2, 2)));

        // And the checker sees it: FD differentiates through the shared storage, autograd does not.
        var c = new Checker(nameof(Detach_StopsGradient), output);
        var r = GradCheck("detach", t => Ops.Mul(t[0].Detach(), t[0]), [c.U(1f, 2f, 2, 2)], 9);
        Assert.NotEmpty(r.Mismatches);
    }

    [Fact]
    public void NoGrad_RecordsNothing()
    {
        var x = Tensor.RandN(new Rng(5), 2, 3).RequireGrad();
        Tensor y, v;
        using (Tensor.NoGrad())
        {
            Assert.False(Tensor.IsGradEnabled);
            using (Tensor.NoGrad()) Assert.False(Tensor.IsGradEnabled);
            Assert.False(Tensor.IsGradEnabled); // still inside the outer scope
            y = Ops.Sum(Ops.Mul(Ops.Exp(x), x));
            v = x.T;
        }
        Assert.True(Tensor.IsGradEnabled);
        Assert.False(y.RequiresGrad);
        Assert.Null(y.GradFnName);
        Assert.True(y.IsLeaf);
        Assert.False(v.RequiresGrad);
        Assert.Throws<InvalidOperationException>(() => y.Backward());
        Assert.Null(x.Grad);

        var z = Ops.Sum(Ops.Exp(x));
        Assert.True(z.RequiresGrad);
        Assert.Equal("sum", z.GradFnName);
    }
}

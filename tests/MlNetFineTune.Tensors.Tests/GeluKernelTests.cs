using MlNetFineTune.Tensors.Cpu;
using Xunit;

namespace MlNetFineTune.Tensors.Tests;

/// <summary>The GELU forward-with-derivative kernel a training step uses, at every SIMD level.</summary>
[Collection("GlobalKernelState")]
public sealed class GeluKernelTests
{
    private static readonly SimdLevel[] AllLevels = [SimdLevel.Scalar, SimdLevel.Vector256, SimdLevel.Vector512];

    // d/dx x Phi(x) = Phi(x) + x phi(x); tanh form: its own derivative. In double precision.
    private static double Derivative(double x, bool tanh)
    {
        if (!tanh)
        {
            double cdf = 0.5 * (1 + Erf(x / Math.Sqrt(2)));
            return cdf + x * Math.Exp(-0.5 * x * x) / Math.Sqrt(2 * Math.PI);
        }
        double c = Math.Sqrt(2 / Math.PI), th = Math.Tanh(c * (x + 0.044715 * x * x * x));
        return 0.5 * (1 + th) + 0.5 * x * (1 - th * th) * c * (1 + 3 * 0.044715 * x * x);
    }

    // erf by its Taylor series (|x| < 3) or continued-fraction complement: double precision, independent of the kernel.
    private static double Erf(double x)
    {
        double ax = Math.Abs(x);
        if (ax < 3)
        {
            double sum = 0, term = ax;
            for (int k = 0; k < 200; k++)
            {
                sum += term / (2 * k + 1);
                term *= -ax * ax / (k + 1);
            }
            return Math.Sign(x) * 2 / Math.Sqrt(Math.PI) * sum;
        }
        return Math.Sign(x) * (1 - Erfc(ax));
    }

    // erfc for x >= 3 by its continued fraction (no cancellation in the far tail).
    private static double Erfc(double x)
    {
        double f = 0;
        for (int k = 60; k >= 1; k--) f = k / 2.0 / (x + f);
        return Math.Exp(-x * x) / Math.Sqrt(Math.PI) / (x + f);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void GeluAndDerivative_ForwardIsGeluBitwise_DerivativeMatchesDoublePrecision(bool tanh)
    {
        // 8 * 16 + 5 elements: vector bodies and scalar tails at every level.
        var x = Enumerable.Range(0, 133).Select(i => -9f + i * 0.1357f).Concat([0f, -0f, 1e-20f, -30f, 30f]).ToArray();
        foreach (var level in AllLevels.Where(l => l <= Simd.Hardware))
        {
            using var scope = Simd.Force(level);
            var want = new float[x.Length];
            VecKernels.Gelu(x, want, tanh);
            var y = new float[x.Length];
            var d = new float[x.Length];
            VecKernels.GeluAndDerivative(x, y, d, tanh);
            Assert.True(want.AsSpan().SequenceEqual(y), $"{level} tanh={tanh}: forward differs from Gelu");
            for (int i = 0; i < x.Length; i++)
            {
                double r = Derivative(x[i], tanh);
                Assert.True(Math.Abs(d[i] - r) <= 2e-6 * (1 + Math.Abs(r)), $"{level} tanh={tanh}: d gelu({x[i]}) = {d[i]}, want {r}");
            }
        }
    }

    [Fact]
    public void ExactGelu_SpecialValues_AtEveryLevel()
    {
        // Each value fills a whole 16-wide block, so every level's vector body sees it (and the scalar tail the last).
        float[] special = [float.NaN, float.PositiveInfinity, float.NegativeInfinity, 30f, -30f, -13.5f, -12f, 0f, -0f];
        var x = special.SelectMany(v => Enumerable.Repeat(v, 16)).Concat([float.NaN, -13.5f, 30f]).ToArray();
        foreach (var level in AllLevels)
        {
            using var scope = Simd.Force(level);
            var y = new float[x.Length];
            var y2 = new float[x.Length];
            var d = new float[x.Length];
            VecKernels.Gelu(x, y, tanhApprox: false);
            VecKernels.GeluAndDerivative(x, y2, d, tanhApprox: false);
            for (int i = 0; i < x.Length; i++)
            {
                float v = x[i];
                string at = $"{level}: gelu({v}) at {i}";
                if (float.IsNaN(v) || float.IsNegativeInfinity(v)) Assert.True(float.IsNaN(y[i]), $"{at} = {y[i]}, want NaN");
                else if (v >= 0) Assert.Equal(v, y[i]);                       // Phi = 1 exactly from 30 up; 0 and -0 kept
                else if (v < -13f) Assert.True(y[i] <= 0f && y[i] > -1e-36f, $"{at} = {y[i]}");   // Phi under the normal range
                else
                {
                    // -12: x Phi(x) = -2.13178e-32 (Phi from erfc's continued fraction); float exp of an argument
                    // near -74 carries its rounding (ulp 8e-6) into the result.
                    double want = v * 0.5 * Erfc(-v / Math.Sqrt(2));
                    Assert.True(Math.Abs(y[i] - want) <= 2e-5 * Math.Abs(want), $"{at} = {y[i]}, want {want}");
                }
                if (!float.IsNaN(y[i])) Assert.Equal(BitConverter.SingleToInt32Bits(y[i]), BitConverter.SingleToInt32Bits(y2[i]));
                else Assert.True(float.IsNaN(y2[i]), $"{at}: the forward with derivative gave {y2[i]}");
                if (float.IsNaN(v)) Assert.True(float.IsNaN(d[i]), $"{level}: d gelu(NaN) = {d[i]}");
                else if (Math.Abs(v) == 30f || v == -13.5f) Assert.True(Math.Abs(d[i] - (v > 0 ? 1f : 0f)) < 1e-36f, $"{level}: d gelu({v}) = {d[i]}");
            }
        }
    }

    [Fact]
    public void GeluGradient_IsTheSavedDerivativeTimesTheIncomingGradient()
    {
        var rng = new Rng(4);
        var x = Tensor.RandN(rng, 0f, 2f, 3, 37).RequireGrad();
        var gy = Tensor.RandN(rng, 3, 37);
        Ops.Sum(Ops.Mul(Ops.Gelu(x), gy)).Backward();
        var xs = x.ToArray();
        var g = x.Grad!.ToArray();
        var gys = gy.ToArray();
        for (int i = 0; i < xs.Length; i++)
        {
            double r = gys[i] * Derivative(xs[i], false);
            Assert.True(Math.Abs(g[i] - r) <= 2e-6 * (1 + Math.Abs(r)), $"[{i}] {g[i]} vs {r}");
        }
    }

    [Theory]
    [InlineData(GeluApproximation.None)]
    [InlineData(GeluApproximation.Tanh)]
    public void LinearGelu_WithGradients_SavesTheDerivativeOverItsGemmOutput_SameGradientsAsGeluOfLinear(GeluApproximation approx)
    {
        var rng = new Rng(6);
        var x0 = Tensor.RandN(rng, 4, 9, 48);
        var w0 = Tensor.RandN(rng, 0f, 0.3f, 70, 48);
        var b0 = Tensor.RandN(rng, 70);
        var gy = Tensor.RandN(rng, 4, 9, 70);
        (float[] Y, float[] Gx, float[] Gw, float[] Gb) Run(Func<Tensor, Tensor, Tensor, Tensor> f)
        {
            var x = x0.Detach().RequireGrad();
            var w = w0.Detach().RequireGrad();
            var b = b0.Detach().RequireGrad();
            var y = f(x, w, b);
            Ops.Sum(Ops.Mul(y, gy)).Backward();
            return (y.ToArray(), x.Grad!.ToArray(), w.Grad!.ToArray(), b.Grad!.ToArray());
        }
        var fused = Run((x, w, b) => Ops.LinearGelu(x, w, b, approx));
        var plain = Run((x, w, b) => Ops.Gelu(Ops.Linear(x, w, b), approx));
        Assert.Equal(plain.Y, fused.Y);
        Assert.Equal(plain.Gx, fused.Gx);
        Assert.Equal(plain.Gw, fused.Gw);
        Assert.Equal(plain.Gb, fused.Gb);
    }
}

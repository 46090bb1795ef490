using System.Runtime.Intrinsics;
using MlNetFineTune.Tensors.Cpu;
using Xunit;

namespace MlNetFineTune.Tensors.Tests;

/// <summary>The vector exp behind softmax and GELU, against double-precision Math.Exp.</summary>
public sealed class VecMathTests
{
    private static IEnumerable<float> Arguments()
    {
        for (float x = -90f; x <= 90f; x += 0.0137f) yield return x;
        foreach (var x in new[] { 0f, -0f, 1e-8f, -1e-8f, 0.34657359f, -0.34657359f, 0.6931472f, 88.7f, 88.72f, -87.3f, -87.33f })
            yield return x;
    }

    private static void Check(float x, float got)
    {
        double want = Math.Exp(x);
        if (x < -87.33654f) { Assert.Equal(0f, got); return; }     // documented: subnormal results flush to 0
        if (want > float.MaxValue) { Assert.Equal(float.PositiveInfinity, got); return; }
        double rel = Math.Abs(got - want) / want;
        Assert.True(rel <= 2e-7, $"exp({x:R}) = {got:R}, want {want:R} (relative error {rel:E2})");
    }

    [Fact]
    public void Vector256ExpIsWithinAnUlpOfMathExp()
    {
        if (!Vector256.IsHardwareAccelerated) return;
        foreach (var x in Arguments()) Check(x, VecMath.Exp(Vector256.Create(x)).GetElement(3));
    }

    [Fact]
    public void Vector512ExpIsWithinAnUlpOfMathExp()
    {
        if (!Vector512.IsHardwareAccelerated) return;
        foreach (var x in Arguments()) Check(x, VecMath.Exp(Vector512.Create(x)).GetElement(11));
    }

    [Theory]
    [InlineData(float.NegativeInfinity, 0f)]
    [InlineData(-1e30f, 0f)]
    [InlineData(-10000f, 0f)]
    [InlineData(89f, float.PositiveInfinity)]
    [InlineData(float.PositiveInfinity, float.PositiveInfinity)]
    [InlineData(float.NaN, float.NaN)]
    public void SpecialValues(float x, float want)
    {
        Assert.Equal(want, VecMath.Exp(Vector256.Create(x)).GetElement(0));
        if (Vector512.IsHardwareAccelerated) Assert.Equal(want, VecMath.Exp(Vector512.Create(x)).GetElement(0));
    }

    [Fact]
    public void LanesAreIndependent()
    {
        var v = Vector256.Create(-100f, 0f, 1f, float.NaN, 89f, -1f, 2.5f, -87f);
        var e = VecMath.Exp(v);
        for (int i = 0; i < 8; i++)
        {
            float x = v.GetElement(i), got = e.GetElement(i);
            if (float.IsNaN(x)) Assert.True(float.IsNaN(got));
            else Check(x, got);
        }
    }
}

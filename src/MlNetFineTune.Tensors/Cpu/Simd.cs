using System.Runtime.Intrinsics;

namespace MlNetFineTune.Tensors.Cpu;

/// <summary>Which SIMD width the CPU kernels use.</summary>
public enum SimdLevel
{
    /// <summary>Plain scalar loops (every machine).</summary>
    Scalar = 0,
    /// <summary>256-bit vectors (AVX2/FMA class machines).</summary>
    Vector256 = 256,
    /// <summary>512-bit vectors (AVX-512 class machines).</summary>
    Vector512 = 512,
}

/// <summary>
/// Chooses the kernel path at run time. The best level the hardware supports is the default; the
/// environment variable <c>MLFT_SIMD</c> (<c>scalar</c>, <c>256</c>, <c>512</c>) or <see cref="Force"/>
/// caps it, so tests can exercise every path on one machine.
/// </summary>
public static class Simd
{
    /// <summary>The best level this machine supports.</summary>
    public static SimdLevel Hardware { get; } =
        Vector512.IsHardwareAccelerated ? SimdLevel.Vector512 :
        Vector256.IsHardwareAccelerated ? SimdLevel.Vector256 : SimdLevel.Scalar;

    private static SimdLevel _level = Initial();

    /// <summary>The level kernels use now.</summary>
    public static SimdLevel Level => _level;

    private static SimdLevel Initial()
    {
        var env = Environment.GetEnvironmentVariable("MLFT_SIMD");
        if (string.IsNullOrWhiteSpace(env)) return Hardware;
        SimdLevel wanted = env.Trim().ToLowerInvariant() switch
        {
            "scalar" or "0" => SimdLevel.Scalar,
            "256" or "avx2" or "vector256" => SimdLevel.Vector256,
            "512" or "avx512" or "vector512" => SimdLevel.Vector512,
            _ => throw new InvalidOperationException($"MLFT_SIMD='{env}' is not one of scalar, 256, 512."),
        };
        return (SimdLevel)Math.Min((int)wanted, (int)Hardware);
    }

    /// <summary>
    /// Uses the <paramref name="level"/> path until the returned scope is disposed. A level above
    /// <see cref="Hardware"/> still runs correctly (the kernels use only the portable Vector APIs, which the
    /// runtime emulates in software), only slowly: that is how tests check the Vector512 path on machines
    /// without AVX-512. Not thread-safe with concurrent kernel calls; meant for tests.
    /// </summary>
    public static IDisposable Force(SimdLevel level)
    {
        var previous = _level;
        _level = level;
        return new Restore(previous);
    }

    private sealed class Restore(SimdLevel previous) : IDisposable
    {
        public void Dispose() => _level = previous;
    }
}

using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using MlNetFineTune.Tensors.Cpu;

namespace MlNetFineTune.Benchmarks;

/// <summary>
/// What the machine's cores can do at most, measured where the workloads run, so GEMM figures can be read against
/// it: fp32 FMA throughput of a loop that touches no memory (twelve independent FMA chains, more than the 2 pipes x 4
/// cycles of latency = 8 a Zen 3-5 or Skylake core needs in flight), and of the same loop loading its two B vectors per
/// step from a 4 KB buffer (L1), as a GEMM micro-kernel does. The vectors are as wide as the GEMM kernels' (Vector512
/// where <see cref="Simd.Level"/> is Vector512, else Vector256): a 512-bit FMA is twice the flops of a 256-bit one only
/// on cores with a 512-bit data path (Zen 5, server Intel), and the probe measures which this machine has. Each thread
/// runs its own loop for the whole window; the figures are the per-chunk GFLOP/s summed over threads: the best chunk
/// and the median.
/// </summary>
/// <remarks>
/// On a shared virtual machine the loops spread differently: a core whose host sibling (SMT) runs someone else's
/// code can keep its FMA pipes while it loses load bandwidth and L1, so figures for code that reads memory swing more
/// than the register-only loop. Measured on the 2-core Zen 3 EPYC VM of sessions 4-10, one thread, 4.8 MFLOP calls: the
/// register-only loop and an L2-resident 96x96x256 GEMM alternated call by call, deciles 104 104 103 103 103 103 103
/// 102 100 97 against 85 71 67 66 64 61 60 58 56 53 GFLOP/s; the loop with L1 loads alone 104 104 91 87 85 83 81 80 79
/// 77. At 2 threads the register-only loop's best chunks reach 208 GFLOP/s (3.25 GHz x 64 flops per cycle). On the
/// AVX-512 EPYC (Zen 5, family 26) VM of session 11 the Vector512 loop reaches 521 (best) / 507 (median) at 2 threads,
/// 4.07 GHz x 128 flops per cycle: two 512-bit FMA pipes per core; its Vector256 loop only half that (260 / 252).
/// </remarks>
internal static unsafe class MachineProbe
{
    /// <summary>Best and median GFLOP/s over all threads together.</summary>
    internal readonly record struct Peak(double Best, double Median, string Kind);

    /// <summary>Whether the probe runs Vector512 FMAs (the GEMM kernels' width here).</summary>
    public static bool Wide => Simd.Level == SimdLevel.Vector512 && Avx512F.IsSupported;

    /// <summary>The register-only and L1-load FMA loops at <paramref name="threads"/> threads, each for about <paramref name="seconds"/>.</summary>
    public static (Peak Registers, Peak L1Loads)? Measure(int threads, double seconds)
    {
        if (!Fma.IsSupported || !Avx.IsSupported) return null;
        return (Run(threads, seconds, loads: false), Run(threads, seconds, loads: true));
    }

    private const long ChunkIters = 25_000;          // 25,000 x 12 FMAs x 16 (Vector256) flops = 4.8 MFLOP, ~50 us at peak
    private static double ChunkFlops => ChunkIters * 12 * (Wide ? 32 : 16);

    private static Peak Run(int threads, double seconds, bool loads)
    {
        var perThread = new List<double>[threads];
        var start = new Barrier(threads);
        var workers = new Thread[threads];
        for (int t = 0; t < threads; t++)
        {
            int id = t;
            perThread[id] = new List<double>();
            workers[t] = new Thread(() =>
            {
                float* buf = (float*)NativeMemory.AlignedAlloc(4096, 64);
                try
                {
                    for (int i = 0; i < 1024; i++) buf[i] = 1f;
                    RunLoop(1000, buf, loads);                 // compiled and warm before the window
                    start.SignalAndWait();
                    long end = Stopwatch.GetTimestamp() + (long)(seconds * Stopwatch.Frequency);
                    while (Stopwatch.GetTimestamp() < end)
                    {
                        long t0 = Stopwatch.GetTimestamp();
                        RunLoop(ChunkIters, buf, loads);
                        double s = (Stopwatch.GetTimestamp() - t0) / (double)Stopwatch.Frequency;
                        perThread[id].Add(ChunkFlops / s / 1e9);
                    }
                }
                finally { NativeMemory.AlignedFree(buf); }
            }) { IsBackground = true };
            workers[t].Start();
        }
        foreach (var w in workers) w.Join();
        // Per thread best and median, summed: the threads ran side by side over the same window.
        double best = 0, median = 0;
        foreach (var list in perThread)
        {
            if (list.Count == 0) continue;
            list.Sort();
            best += list[^1];
            median += list[list.Count / 2];
        }
        string width = Wide ? "Vector512" : "Vector256";
        return new Peak(best, median, loads ? $"{width} FMA + 2 loads per 12 FMAs from L1" : $"{width} register-only FMA");
    }

    private static float RunLoop(long iters, float* buf, bool loads) => Wide ? Loop512(iters, buf, loads) : Loop(iters, buf, loads);

    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static float Loop512(long iters, float* buf, bool loads)
    {
        var a = Vector512.Create(1.0000001f);
        var b0 = Vector512.Create(0.9999999f);
        var b1 = b0;
        Vector512<float> c0 = Vector512<float>.Zero, c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0,
            c6 = c0, c7 = c0, c8 = c0, c9 = c0, c10 = c0, c11 = c0;
        for (long i = 0; i < iters; i++)
        {
            if (loads)
            {
                float* p = buf + ((int)i & 31) * 32;
                b0 = Avx512F.LoadAlignedVector512(p);
                b1 = Avx512F.LoadAlignedVector512(p + 16);
            }
            c0 = Avx512F.FusedMultiplyAdd(a, b0, c0); c1 = Avx512F.FusedMultiplyAdd(a, b1, c1);
            c2 = Avx512F.FusedMultiplyAdd(a, b0, c2); c3 = Avx512F.FusedMultiplyAdd(a, b1, c3);
            c4 = Avx512F.FusedMultiplyAdd(a, b0, c4); c5 = Avx512F.FusedMultiplyAdd(a, b1, c5);
            c6 = Avx512F.FusedMultiplyAdd(a, b0, c6); c7 = Avx512F.FusedMultiplyAdd(a, b1, c7);
            c8 = Avx512F.FusedMultiplyAdd(a, b0, c8); c9 = Avx512F.FusedMultiplyAdd(a, b1, c9);
            c10 = Avx512F.FusedMultiplyAdd(a, b0, c10); c11 = Avx512F.FusedMultiplyAdd(a, b1, c11);
        }
        return (c0 + c1 + c2 + c3 + c4 + c5 + c6 + c7 + c8 + c9 + c10 + c11).GetElement(0);
    }

    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static float Loop(long iters, float* buf, bool loads)
    {
        var a = Vector256.Create(1.0000001f);
        var b0 = Vector256.Create(0.9999999f);
        var b1 = b0;
        Vector256<float> c0 = Vector256<float>.Zero, c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0,
            c6 = c0, c7 = c0, c8 = c0, c9 = c0, c10 = c0, c11 = c0;
        for (long i = 0; i < iters; i++)
        {
            if (loads)
            {
                float* p = buf + ((int)i & 63) * 16;
                b0 = Avx.LoadAlignedVector256(p);
                b1 = Avx.LoadAlignedVector256(p + 8);
            }
            c0 = Fma.MultiplyAdd(a, b0, c0); c1 = Fma.MultiplyAdd(a, b1, c1);
            c2 = Fma.MultiplyAdd(a, b0, c2); c3 = Fma.MultiplyAdd(a, b1, c3);
            c4 = Fma.MultiplyAdd(a, b0, c4); c5 = Fma.MultiplyAdd(a, b1, c5);
            c6 = Fma.MultiplyAdd(a, b0, c6); c7 = Fma.MultiplyAdd(a, b1, c7);
            c8 = Fma.MultiplyAdd(a, b0, c8); c9 = Fma.MultiplyAdd(a, b1, c9);
            c10 = Fma.MultiplyAdd(a, b0, c10); c11 = Fma.MultiplyAdd(a, b1, c11);
        }
        return (c0 + c1 + c2 + c3 + c4 + c5 + c6 + c7 + c8 + c9 + c10 + c11).GetElement(0);
    }
}

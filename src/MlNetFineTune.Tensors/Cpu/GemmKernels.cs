// The micro-kernels are fully unrolled, one local per accumulator, so the JIT keeps every accumulator in a
// register (checked with DOTNET_JitDisasm for the Vector256 kernel: 12 ymm accumulators, 2 B vectors, 1
// broadcast, no spills). When editing, keep every row and column of a kernel consistent.
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace MlNetFineTune.Tensors.Cpu;

/// <summary>
/// GEMM micro-kernels. Each multiplies a packed A micro-panel (kc x MR, MR values per k step) by a packed
/// B micro-panel (kc x NR, NR values per k step) and writes (overwrite) or adds the MR x NR tile to C
/// (row stride ldc). Accumulators start at zero and run over k in order, so the result of an element does
/// not depend on where its tile sits or which thread runs it.
/// </summary>
internal static unsafe class GemmKernels
{
    /// <summary>
    /// The Vector256 kernels prefetch the packed B this many floats ahead (32 k steps, one cache line per step),
    /// running into the next micro-panel near the end of this one. Weights packed ahead are read from memory (L3, or
    /// DRAM when the model's weights outgrow the cache) by the first row panel that uses them, once per forward; the
    /// prefetch hides that latency. Interleaved, 2 threads: one 32-token BERT-mini sentence 2.95 -> 2.60 ms median,
    /// [32x256]@[256x1024] with 24 weights cycling 221 -> 190 us, 256x256x4096 TN 100 -> 116 GFLOP/s median;
    /// 1024^3 and 512^3 unchanged.
    /// </summary>
    private const int BPrefetchFloats = 512;

    /// <summary>
    /// Turns the B prefetch off (for measurements). A field without an initialiser on purpose: a static
    /// initialiser gives the class a static constructor, and the kernels then ran 2.5x slower inside BERT.
    /// </summary>
    internal static bool NoBPrefetch;

    /// <summary>
    /// Turns off the four-step unrolling of the Vector256 kernels' k loop (for measurements). Unrolled, an iteration
    /// issues 97 instructions for 48 FMAs (prefetches included) instead of 4 x 29. On this VM, whose cores lose load
    /// and front-end throughput to something outside the guest in spells, the L1/L2-resident 6x16 kernel's mean went
    /// from 78.5 to 88.2 GFLOP/s (one thread, kc 256 and 1024, variants alternated call by call; the deciles meet at
    /// 101-102 when the core runs undisturbed). Each accumulator still sums over k in order: the same bits. A field
    /// without an initialiser, as <see cref="NoBPrefetch"/>.
    /// </summary>
    internal static bool NoUnroll;

    /// <summary>
    /// 12x32 Vector512 micro-kernel: C[12,32] (=|+=) sum_p A_panel[p,0..12) * B_panel[p,0..32); with
    /// <paramref name="init"/> (only with overwrite) C[r, j] = init[j] + sum_p ..., the sum starting from init.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void Kernel512_12x32(int kc, float* a, float* b, float* c, nint ldc, bool overwrite, float* init = null)
        => Kernel512x32<TwelveRows>(kc, a, b, c, ldc, overwrite, init);

    /// <summary>
    /// The first eight rows of a 12x32 Vector512 tile (A a 12-row packed panel): for a last row panel of five to eight
    /// rows (m = 32 is 12 + 12 + 8), two thirds of the 12-row kernel's work, the same products in the same order.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void Kernel512_8x32(int kc, float* a, float* b, float* c, nint ldc, bool overwrite, float* init = null)
        => Kernel512x32<EightRows>(kc, a, b, c, ldc, overwrite, init);

    /// <summary>The first four rows of a 12x32 Vector512 tile: for a last row panel of at most four rows.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void Kernel512_4x32(int kc, float* a, float* b, float* c, nint ldc, bool overwrite, float* init = null)
        => Kernel512x32<FourRows>(kc, a, b, c, ldc, overwrite, init);

    /// <summary>
    /// The 12-, 8- and 4-row Vector512 kernels in one body (as <see cref="Kernel256x16{TRows}"/>): 24, 16 or 8
    /// accumulators, two B vectors, one broadcast, 27 of the 32 zmm registers at most. A k step is two cache lines of
    /// packed B; the kernel prefetches B as the Vector256 kernels do (<see cref="NoBPrefetch"/>).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Kernel512x32<TRows>(int kc, float* a, float* b, float* c, nint ldc, bool overwrite, float* init)
        where TRows : struct, IKernelRows
    {
        bool eight = typeof(TRows) != typeof(FourRows), twelve = typeof(TRows) == typeof(TwelveRows);
        Vector512<float> i0 = init == null ? Vector512<float>.Zero : Vector512.Load(init);
        Vector512<float> i1 = init == null ? Vector512<float>.Zero : Vector512.Load(init + 16);
        Vector512<float> c00 = i0, c01 = i1, c10 = i0, c11 = i1, c20 = i0, c21 = i1, c30 = i0, c31 = i1, c40 = i0, c41 = i1, c50 = i0, c51 = i1, c60 = i0, c61 = i1, c70 = i0, c71 = i1, c80 = i0, c81 = i1, c90 = i0, c91 = i1, c100 = i0, c101 = i1, c110 = i0, c111 = i1;
        Vector512<float> b0, b1, av;
        nint pf = NoBPrefetch ? 0 : BPrefetchFloats;
        for (int p = 0; p < kc; p++)
        {
            if (pf != 0 && Sse.IsSupported) { Sse.Prefetch0(b + pf); Sse.Prefetch0(b + pf + 16); }
            b0 = Vector512.Load(b + 0); b1 = Vector512.Load(b + 16);
            av = Vector512.Create(a[0]); c00 = Vector512.FusedMultiplyAdd(av, b0, c00); c01 = Vector512.FusedMultiplyAdd(av, b1, c01);
            av = Vector512.Create(a[1]); c10 = Vector512.FusedMultiplyAdd(av, b0, c10); c11 = Vector512.FusedMultiplyAdd(av, b1, c11);
            av = Vector512.Create(a[2]); c20 = Vector512.FusedMultiplyAdd(av, b0, c20); c21 = Vector512.FusedMultiplyAdd(av, b1, c21);
            av = Vector512.Create(a[3]); c30 = Vector512.FusedMultiplyAdd(av, b0, c30); c31 = Vector512.FusedMultiplyAdd(av, b1, c31);
            if (eight)
            {
                av = Vector512.Create(a[4]); c40 = Vector512.FusedMultiplyAdd(av, b0, c40); c41 = Vector512.FusedMultiplyAdd(av, b1, c41);
                av = Vector512.Create(a[5]); c50 = Vector512.FusedMultiplyAdd(av, b0, c50); c51 = Vector512.FusedMultiplyAdd(av, b1, c51);
                av = Vector512.Create(a[6]); c60 = Vector512.FusedMultiplyAdd(av, b0, c60); c61 = Vector512.FusedMultiplyAdd(av, b1, c61);
                av = Vector512.Create(a[7]); c70 = Vector512.FusedMultiplyAdd(av, b0, c70); c71 = Vector512.FusedMultiplyAdd(av, b1, c71);
            }
            if (twelve)
            {
                av = Vector512.Create(a[8]); c80 = Vector512.FusedMultiplyAdd(av, b0, c80); c81 = Vector512.FusedMultiplyAdd(av, b1, c81);
                av = Vector512.Create(a[9]); c90 = Vector512.FusedMultiplyAdd(av, b0, c90); c91 = Vector512.FusedMultiplyAdd(av, b1, c91);
                av = Vector512.Create(a[10]); c100 = Vector512.FusedMultiplyAdd(av, b0, c100); c101 = Vector512.FusedMultiplyAdd(av, b1, c101);
                av = Vector512.Create(a[11]); c110 = Vector512.FusedMultiplyAdd(av, b0, c110); c111 = Vector512.FusedMultiplyAdd(av, b1, c111);
            }
            a += 12;
            b += 32;
        }
        if (!overwrite)
        {
            c00 += Vector512.Load(c + 0 * ldc + 0); c01 += Vector512.Load(c + 0 * ldc + 16);
            c10 += Vector512.Load(c + 1 * ldc + 0); c11 += Vector512.Load(c + 1 * ldc + 16);
            c20 += Vector512.Load(c + 2 * ldc + 0); c21 += Vector512.Load(c + 2 * ldc + 16);
            c30 += Vector512.Load(c + 3 * ldc + 0); c31 += Vector512.Load(c + 3 * ldc + 16);
            if (eight)
            {
                c40 += Vector512.Load(c + 4 * ldc + 0); c41 += Vector512.Load(c + 4 * ldc + 16);
                c50 += Vector512.Load(c + 5 * ldc + 0); c51 += Vector512.Load(c + 5 * ldc + 16);
                c60 += Vector512.Load(c + 6 * ldc + 0); c61 += Vector512.Load(c + 6 * ldc + 16);
                c70 += Vector512.Load(c + 7 * ldc + 0); c71 += Vector512.Load(c + 7 * ldc + 16);
            }
            if (twelve)
            {
                c80 += Vector512.Load(c + 8 * ldc + 0); c81 += Vector512.Load(c + 8 * ldc + 16);
                c90 += Vector512.Load(c + 9 * ldc + 0); c91 += Vector512.Load(c + 9 * ldc + 16);
                c100 += Vector512.Load(c + 10 * ldc + 0); c101 += Vector512.Load(c + 10 * ldc + 16);
                c110 += Vector512.Load(c + 11 * ldc + 0); c111 += Vector512.Load(c + 11 * ldc + 16);
            }
        }
        Vector512.Store(c00, c + 0 * ldc + 0); Vector512.Store(c01, c + 0 * ldc + 16);
        Vector512.Store(c10, c + 1 * ldc + 0); Vector512.Store(c11, c + 1 * ldc + 16);
        Vector512.Store(c20, c + 2 * ldc + 0); Vector512.Store(c21, c + 2 * ldc + 16);
        Vector512.Store(c30, c + 3 * ldc + 0); Vector512.Store(c31, c + 3 * ldc + 16);
        if (eight)
        {
            Vector512.Store(c40, c + 4 * ldc + 0); Vector512.Store(c41, c + 4 * ldc + 16);
            Vector512.Store(c50, c + 5 * ldc + 0); Vector512.Store(c51, c + 5 * ldc + 16);
            Vector512.Store(c60, c + 6 * ldc + 0); Vector512.Store(c61, c + 6 * ldc + 16);
            Vector512.Store(c70, c + 7 * ldc + 0); Vector512.Store(c71, c + 7 * ldc + 16);
        }
        if (twelve)
        {
            Vector512.Store(c80, c + 8 * ldc + 0); Vector512.Store(c81, c + 8 * ldc + 16);
            Vector512.Store(c90, c + 9 * ldc + 0); Vector512.Store(c91, c + 9 * ldc + 16);
            Vector512.Store(c100, c + 10 * ldc + 0); Vector512.Store(c101, c + 10 * ldc + 16);
            Vector512.Store(c110, c + 11 * ldc + 0); Vector512.Store(c111, c + 11 * ldc + 16);
        }
    }

    /// <summary>
    /// 6x16 Vector256 micro-kernel: C[6,16] (=|+=) sum_p A_panel[p,0..6) * B_panel[p,0..16); with
    /// <paramref name="init"/> (only with overwrite) C[r, j] = init[j] + sum_p ..., the sum starting from init.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void Kernel256_6x16(int kc, float* a, float* b, float* c, nint ldc, bool overwrite, float* init = null)
        => Kernel256x16<SixRows>(kc, a, b, c, ldc, overwrite, init);

    /// <summary>
    /// The first four rows of a 6x16 Vector256 tile: C[4,16] (=|+=) sum_p A_panel[p,0..4) * B_panel[p,0..16), A a
    /// 6-row packed panel. For a last row panel of at most four rows (m = 32 ends in one of two rows): two thirds
    /// of the 6-row kernel's work, the same products in the same order for the rows it computes.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void Kernel256_4x16(int kc, float* a, float* b, float* c, nint ldc, bool overwrite, float* init = null)
        => Kernel256x16<FourRows>(kc, a, b, c, ldc, overwrite, init);

    /// <summary>Row count of a <see cref="Kernel256x16{TRows}"/> instance (a struct, so each gets its own code).</summary>
    private interface IKernelRows;
    private struct SixRows : IKernelRows;
    private struct FourRows : IKernelRows;
    private struct EightRows : IKernelRows;
    private struct TwelveRows : IKernelRows;

    /// <summary>
    /// The 6x16 and 4x16 Vector256 kernels in one body: <typeparamref name="TRows"/> is a struct, so the JIT compiles
    /// one instance per row count with <c>six</c> a constant, and the four-row instance has no trace of rows 4 and 5
    /// (checked in the disassembly: 12 and 8 accumulators in registers, no spills).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Kernel256x16<TRows>(int kc, float* a, float* b, float* c, nint ldc, bool overwrite, float* init)
        where TRows : struct, IKernelRows
    {
        bool six = typeof(TRows) == typeof(SixRows);
        // init (with overwrite): 16 values every row starts from instead of zero (a linear layer's bias).
        Vector256<float> i0 = init == null ? Vector256<float>.Zero : Vector256.Load(init);
        Vector256<float> i1 = init == null ? Vector256<float>.Zero : Vector256.Load(init + 8);
        Vector256<float> c00 = i0, c01 = i1, c10 = i0, c11 = i1, c20 = i0, c21 = i1, c30 = i0, c31 = i1, c40 = i0, c41 = i1, c50 = i0, c51 = i1;
        Vector256<float> b0, b1, av;
        nint pf = NoBPrefetch ? 0 : BPrefetchFloats;
        int p = 0;
        if (!NoUnroll)
        {
            for (; p + 4 <= kc; p += 4)
            {
                if (pf != 0 && Sse.IsSupported)
                {
                    Sse.Prefetch0(b + pf); Sse.Prefetch0(b + pf + 16); Sse.Prefetch0(b + pf + 32); Sse.Prefetch0(b + pf + 48);
                }
                b0 = Vector256.Load(b + 0); b1 = Vector256.Load(b + 8);
                av = Vector256.Create(a[0]); c00 = Vector256.FusedMultiplyAdd(av, b0, c00); c01 = Vector256.FusedMultiplyAdd(av, b1, c01);
                av = Vector256.Create(a[1]); c10 = Vector256.FusedMultiplyAdd(av, b0, c10); c11 = Vector256.FusedMultiplyAdd(av, b1, c11);
                av = Vector256.Create(a[2]); c20 = Vector256.FusedMultiplyAdd(av, b0, c20); c21 = Vector256.FusedMultiplyAdd(av, b1, c21);
                av = Vector256.Create(a[3]); c30 = Vector256.FusedMultiplyAdd(av, b0, c30); c31 = Vector256.FusedMultiplyAdd(av, b1, c31);
                if (six)
                {
                    av = Vector256.Create(a[4]); c40 = Vector256.FusedMultiplyAdd(av, b0, c40); c41 = Vector256.FusedMultiplyAdd(av, b1, c41);
                    av = Vector256.Create(a[5]); c50 = Vector256.FusedMultiplyAdd(av, b0, c50); c51 = Vector256.FusedMultiplyAdd(av, b1, c51);
                }
                b0 = Vector256.Load(b + 16); b1 = Vector256.Load(b + 24);
                av = Vector256.Create(a[6]); c00 = Vector256.FusedMultiplyAdd(av, b0, c00); c01 = Vector256.FusedMultiplyAdd(av, b1, c01);
                av = Vector256.Create(a[7]); c10 = Vector256.FusedMultiplyAdd(av, b0, c10); c11 = Vector256.FusedMultiplyAdd(av, b1, c11);
                av = Vector256.Create(a[8]); c20 = Vector256.FusedMultiplyAdd(av, b0, c20); c21 = Vector256.FusedMultiplyAdd(av, b1, c21);
                av = Vector256.Create(a[9]); c30 = Vector256.FusedMultiplyAdd(av, b0, c30); c31 = Vector256.FusedMultiplyAdd(av, b1, c31);
                if (six)
                {
                    av = Vector256.Create(a[10]); c40 = Vector256.FusedMultiplyAdd(av, b0, c40); c41 = Vector256.FusedMultiplyAdd(av, b1, c41);
                    av = Vector256.Create(a[11]); c50 = Vector256.FusedMultiplyAdd(av, b0, c50); c51 = Vector256.FusedMultiplyAdd(av, b1, c51);
                }
                b0 = Vector256.Load(b + 32); b1 = Vector256.Load(b + 40);
                av = Vector256.Create(a[12]); c00 = Vector256.FusedMultiplyAdd(av, b0, c00); c01 = Vector256.FusedMultiplyAdd(av, b1, c01);
                av = Vector256.Create(a[13]); c10 = Vector256.FusedMultiplyAdd(av, b0, c10); c11 = Vector256.FusedMultiplyAdd(av, b1, c11);
                av = Vector256.Create(a[14]); c20 = Vector256.FusedMultiplyAdd(av, b0, c20); c21 = Vector256.FusedMultiplyAdd(av, b1, c21);
                av = Vector256.Create(a[15]); c30 = Vector256.FusedMultiplyAdd(av, b0, c30); c31 = Vector256.FusedMultiplyAdd(av, b1, c31);
                if (six)
                {
                    av = Vector256.Create(a[16]); c40 = Vector256.FusedMultiplyAdd(av, b0, c40); c41 = Vector256.FusedMultiplyAdd(av, b1, c41);
                    av = Vector256.Create(a[17]); c50 = Vector256.FusedMultiplyAdd(av, b0, c50); c51 = Vector256.FusedMultiplyAdd(av, b1, c51);
                }
                b0 = Vector256.Load(b + 48); b1 = Vector256.Load(b + 56);
                av = Vector256.Create(a[18]); c00 = Vector256.FusedMultiplyAdd(av, b0, c00); c01 = Vector256.FusedMultiplyAdd(av, b1, c01);
                av = Vector256.Create(a[19]); c10 = Vector256.FusedMultiplyAdd(av, b0, c10); c11 = Vector256.FusedMultiplyAdd(av, b1, c11);
                av = Vector256.Create(a[20]); c20 = Vector256.FusedMultiplyAdd(av, b0, c20); c21 = Vector256.FusedMultiplyAdd(av, b1, c21);
                av = Vector256.Create(a[21]); c30 = Vector256.FusedMultiplyAdd(av, b0, c30); c31 = Vector256.FusedMultiplyAdd(av, b1, c31);
                if (six)
                {
                    av = Vector256.Create(a[22]); c40 = Vector256.FusedMultiplyAdd(av, b0, c40); c41 = Vector256.FusedMultiplyAdd(av, b1, c41);
                    av = Vector256.Create(a[23]); c50 = Vector256.FusedMultiplyAdd(av, b0, c50); c51 = Vector256.FusedMultiplyAdd(av, b1, c51);
                }
                a += 24;
                b += 64;
            }
        }
        for (; p < kc; p++)
        {
            if (pf != 0 && Sse.IsSupported) Sse.Prefetch0(b + pf);
            b0 = Vector256.Load(b + 0); b1 = Vector256.Load(b + 8);
            av = Vector256.Create(a[0]); c00 = Vector256.FusedMultiplyAdd(av, b0, c00); c01 = Vector256.FusedMultiplyAdd(av, b1, c01);
            av = Vector256.Create(a[1]); c10 = Vector256.FusedMultiplyAdd(av, b0, c10); c11 = Vector256.FusedMultiplyAdd(av, b1, c11);
            av = Vector256.Create(a[2]); c20 = Vector256.FusedMultiplyAdd(av, b0, c20); c21 = Vector256.FusedMultiplyAdd(av, b1, c21);
            av = Vector256.Create(a[3]); c30 = Vector256.FusedMultiplyAdd(av, b0, c30); c31 = Vector256.FusedMultiplyAdd(av, b1, c31);
            if (six)
            {
                av = Vector256.Create(a[4]); c40 = Vector256.FusedMultiplyAdd(av, b0, c40); c41 = Vector256.FusedMultiplyAdd(av, b1, c41);
                av = Vector256.Create(a[5]); c50 = Vector256.FusedMultiplyAdd(av, b0, c50); c51 = Vector256.FusedMultiplyAdd(av, b1, c51);
            }
            a += 6;
            b += 16;
        }
        if (!overwrite)
        {
            c00 += Vector256.Load(c + 0 * ldc + 0); c01 += Vector256.Load(c + 0 * ldc + 8);
            c10 += Vector256.Load(c + 1 * ldc + 0); c11 += Vector256.Load(c + 1 * ldc + 8);
            c20 += Vector256.Load(c + 2 * ldc + 0); c21 += Vector256.Load(c + 2 * ldc + 8);
            c30 += Vector256.Load(c + 3 * ldc + 0); c31 += Vector256.Load(c + 3 * ldc + 8);
            if (six)
            {
                c40 += Vector256.Load(c + 4 * ldc + 0); c41 += Vector256.Load(c + 4 * ldc + 8);
                c50 += Vector256.Load(c + 5 * ldc + 0); c51 += Vector256.Load(c + 5 * ldc + 8);
            }
        }
        Vector256.Store(c00, c + 0 * ldc + 0); Vector256.Store(c01, c + 0 * ldc + 8);
        Vector256.Store(c10, c + 1 * ldc + 0); Vector256.Store(c11, c + 1 * ldc + 8);
        Vector256.Store(c20, c + 2 * ldc + 0); Vector256.Store(c21, c + 2 * ldc + 8);
        Vector256.Store(c30, c + 3 * ldc + 0); Vector256.Store(c31, c + 3 * ldc + 8);
        if (six)
        {
            Vector256.Store(c40, c + 4 * ldc + 0); Vector256.Store(c41, c + 4 * ldc + 8);
            Vector256.Store(c50, c + 5 * ldc + 0); Vector256.Store(c51, c + 5 * ldc + 8);
        }
    }

    /// <summary>4x4 scalar micro-kernel.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void KernelScalar4x4(int kc, float* a, float* b, float* c, nint ldc, bool overwrite)
    {
        float c00 = 0, c01 = 0, c02 = 0, c03 = 0, c10 = 0, c11 = 0, c12 = 0, c13 = 0, c20 = 0, c21 = 0, c22 = 0, c23 = 0, c30 = 0, c31 = 0, c32 = 0, c33 = 0;
        for (int p = 0; p < kc; p++)
        {
            float b0 = b[0], b1 = b[1], b2 = b[2], b3 = b[3];
            float a0 = a[0];
            c00 += a0 * b0;
            c01 += a0 * b1;
            c02 += a0 * b2;
            c03 += a0 * b3;
            float a1 = a[1];
            c10 += a1 * b0;
            c11 += a1 * b1;
            c12 += a1 * b2;
            c13 += a1 * b3;
            float a2 = a[2];
            c20 += a2 * b0;
            c21 += a2 * b1;
            c22 += a2 * b2;
            c23 += a2 * b3;
            float a3 = a[3];
            c30 += a3 * b0;
            c31 += a3 * b1;
            c32 += a3 * b2;
            c33 += a3 * b3;
            a += 4;
            b += 4;
        }
        if (overwrite)
        {
            c[0 * ldc + 0] = c00; c[0 * ldc + 1] = c01; c[0 * ldc + 2] = c02; c[0 * ldc + 3] = c03;
            c[1 * ldc + 0] = c10; c[1 * ldc + 1] = c11; c[1 * ldc + 2] = c12; c[1 * ldc + 3] = c13;
            c[2 * ldc + 0] = c20; c[2 * ldc + 1] = c21; c[2 * ldc + 2] = c22; c[2 * ldc + 3] = c23;
            c[3 * ldc + 0] = c30; c[3 * ldc + 1] = c31; c[3 * ldc + 2] = c32; c[3 * ldc + 3] = c33;
        }
        else
        {
            c[0 * ldc + 0] += c00; c[0 * ldc + 1] += c01; c[0 * ldc + 2] += c02; c[0 * ldc + 3] += c03;
            c[1 * ldc + 0] += c10; c[1 * ldc + 1] += c11; c[1 * ldc + 2] += c12; c[1 * ldc + 3] += c13;
            c[2 * ldc + 0] += c20; c[2 * ldc + 1] += c21; c[2 * ldc + 2] += c22; c[2 * ldc + 3] += c23;
            c[3 * ldc + 0] += c30; c[3 * ldc + 1] += c31; c[3 * ldc + 2] += c32; c[3 * ldc + 3] += c33;
        }
    }
}

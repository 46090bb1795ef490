using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace MlNetFineTune.Tensors.Cpu;

/// <summary>Single-precision general matrix multiply on row-major arrays.</summary>
/// <remarks>
/// Large products use a packed, register-blocked algorithm in the style of BLIS/GotoBLAS (see
/// <c>GemmPacked.cs</c>): A is packed into MR-row micro-panels and B into NR-column micro-panels per
/// KC x NC / MC x KC cache block, and a SIMD micro-kernel (<c>GemmKernels.cs</c>) chosen by
/// <see cref="Simd.Level"/> computes MR x NR tiles of C. The threads of <see cref="WorkerPool"/> share one
/// packed copy of each B block and claim row blocks (for short wide products, row x column blocks) of C
/// from a counter, so a thread slowed down by other load on the machine is covered by the others. Deep
/// products with a small C (weight gradients: k in the thousands, k at least twice m and n) are instead split
/// into k segments of about 1,024 that threads take whole, summed into C in segment order. Each element of C
/// is always reduced over k in the same order, whoever computes it (the segments depend on the shape only),
/// so results are bitwise reproducible: identical from run to run and at every thread count. Small products
/// (m*n*k below 32K, or m == 1) take a direct, unpacked path, single-threaded except a one-row product with B
/// transposed of at least 64K multiply-adds, whose columns are split over the threads.
/// </remarks>
public static class Gemm
{
    /// <summary>Products with m*n*k below this take the direct (unpacked, single-threaded) path.</summary>
    internal const long SmallWork = 32 * 1024;

    /// <summary>Test hook: when set, overrides <see cref="Simd.Level"/> for the kernel choice, even above
    /// what the hardware accelerates (Vector512 then runs in software emulation: correct, slow).</summary>
    internal static SimdLevel? KernelOverride;

    /// <summary>Test hook: replaces the KC, MC, NC cache block sizes (MC/NC are rounded up to MR/NR).</summary>
    internal static (int Kc, int Mc, int Nc)? BlockingOverride;

    /// <summary>Test hook: when true, even small products use the packed path.</summary>
    internal static bool ForcePacked;

    internal static SimdLevel CurrentLevel => KernelOverride ?? Simd.Level;

    /// <summary>
    /// C[m,n] = (accumulate ? C : 0) + sum_k op(A)[m,k] * op(B)[k,n], all row-major.
    /// op(A) is A (m x k, row stride lda) or, when <paramref name="transA"/>, A stored as k x m (row stride lda).
    /// op(B) is B (k x n, row stride ldb) or, when <paramref name="transB"/>, B stored as n x k (row stride ldb).
    /// C is m x n with row stride ldc. Offsets index into the arrays.
    /// </summary>
    public static void Sgemm(bool transA, bool transB, int m, int n, int k,
        float[] a, int aOffset, int lda,
        float[] b, int bOffset, int ldb,
        float[] c, int cOffset, int ldc,
        bool accumulate)
        => SgemmEpilogue(transA, transB, m, n, k, a, aOffset, lda, b, bOffset, ldb, c, cOffset, ldc, accumulate, null, 0, GemmActivation.None);

    /// <summary>
    /// <see cref="Sgemm"/> followed, tile by tile while C is still in cache, by C[i, j] += bias[biasOffset + j]
    /// (when <paramref name="bias"/> is given) and then <paramref name="activation"/>: a linear layer's bias and
    /// activation without separate passes over C. When C is overwritten, the vector kernels start each sum
    /// from the bias (no pass at all); otherwise it is added to each finished tile, after the products and the
    /// old C. The two orders differ by rounding only; either way the result is the same at every thread count.
    /// </summary>
    public static void SgemmEpilogue(bool transA, bool transB, int m, int n, int k,
        float[] a, int aOffset, int lda,
        float[] b, int bOffset, int ldb,
        float[] c, int cOffset, int ldc,
        bool accumulate, float[]? bias, int biasOffset, GemmActivation activation)
        => SgemmEpilogue(transA, transB, m, n, k, a, aOffset, lda, b, bOffset, ldb, c, cOffset, ldc, accumulate, bias, biasOffset,
            activation, packedB: null);

    /// <summary>
    /// <see cref="SgemmEpilogue(bool, bool, int, int, int, float[], int, int, float[], int, int, float[], int, int, bool, float[], int, GemmActivation)"/>
    /// with op(B) also given packed ahead (<see cref="PackedMatrix"/>, which must hold exactly op(B)): the packed
    /// path then reads it instead of packing B; the small direct path, or a pack made for other block sizes,
    /// reads <paramref name="b"/>. Same result either way.
    /// </summary>
    internal static unsafe void SgemmEpilogue(bool transA, bool transB, int m, int n, int k,
        float[] a, int aOffset, int lda,
        float[] b, int bOffset, int ldb,
        float[] c, int cOffset, int ldc,
        bool accumulate, float[]? bias, int biasOffset, GemmActivation activation, PackedMatrix? packedB)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        ArgumentNullException.ThrowIfNull(c);
        ArgumentOutOfRangeException.ThrowIfNegative(m);
        ArgumentOutOfRangeException.ThrowIfNegative(n);
        ArgumentOutOfRangeException.ThrowIfNegative(k);
        if (m == 0 || n == 0) return;
        CheckOperand(nameof(a), a.Length, aOffset, 0, 1, transA ? k : m, transA ? m : k, lda);
        CheckOperand(nameof(b), b.Length, bOffset, 0, 1, transB ? n : k, transB ? k : n, ldb);
        CheckOperand(nameof(c), c.Length, cOffset, 0, 1, m, n, ldc);
        if (bias is not null) CheckOperand(nameof(bias), bias.Length, biasOffset, 0, 1, 1, n, n);

        fixed (float* pa = a, pb = b, pc = c, pbias = bias)
        {
            var epilogue = new GemmEpilogue(bias is null ? null : pbias + biasOffset, activation);
            Multiply(CurrentLevel, transA, transB, m, n, k, pa + aOffset, lda, pb + bOffset, ldb,
                pc + cOffset, ldc, accumulate, WorkerPool.Threads, epilogue, packedB);
        }
    }

    /// <summary>
    /// Batched <see cref="Sgemm"/>: for i in [0, <paramref name="batch"/>), multiplies the matrices that start
    /// at aOffset + i*strideA, bOffset + i*strideB into the one at cOffset + i*strideC, exactly as
    /// <see cref="Sgemm"/> would. A stride of 0 broadcasts that operand to every batch. A strideC of 0 makes
    /// the batches run one after the other into the same C (so with <paramref name="accumulate"/> they sum
    /// into it; without, the last one wins). Small matrices run in parallel over the batch.
    /// </summary>
    public static unsafe void SgemmBatched(int batch, bool transA, bool transB, int m, int n, int k,
        float[] a, int aOffset, int lda, long strideA,
        float[] b, int bOffset, int ldb, long strideB,
        float[] c, int cOffset, int ldc, long strideC,
        bool accumulate)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        ArgumentNullException.ThrowIfNull(c);
        ArgumentOutOfRangeException.ThrowIfNegative(batch);
        ArgumentOutOfRangeException.ThrowIfNegative(m);
        ArgumentOutOfRangeException.ThrowIfNegative(n);
        ArgumentOutOfRangeException.ThrowIfNegative(k);
        ArgumentOutOfRangeException.ThrowIfNegative(strideA);
        ArgumentOutOfRangeException.ThrowIfNegative(strideB);
        ArgumentOutOfRangeException.ThrowIfNegative(strideC);
        if (batch == 0 || m == 0 || n == 0) return;
        CheckOperand(nameof(a), a.Length, aOffset, strideA, batch, transA ? k : m, transA ? m : k, lda);
        CheckOperand(nameof(b), b.Length, bOffset, strideB, batch, transB ? n : k, transB ? k : n, ldb);
        CheckOperand(nameof(c), c.Length, cOffset, strideC, batch, m, n, ldc);

        fixed (float* pa = a, pb = b, pc = c)
            RunBatch(batch, transA, transB, m, n, k, pa + aOffset, lda, (nint)strideA, null, pb + bOffset, ldb, (nint)strideB, null,
                pc + cOffset, ldc, (nint)strideC, accumulate);
    }

    // Runs `batch` products: over the batch on the pool when the products are small or many (C matrices must not
    // overlap), else one after another with every thread inside each. Matrix i of A starts at a + offA[i] when
    // offsets are given, else at a + i * strideA (the same for B).
    private static unsafe void RunBatch(int batch, bool transA, bool transB, int m, int n, int k,
        float* a, int lda, nint strideA, long[]? offA, float* b, int ldb, nint strideB, long[]? offB,
        float* c, int ldc, nint strideC, bool accumulate)
    {
        int threads = WorkerPool.Threads;
        long work = (long)m * n * k;
        bool overBatch = batch > 1 && strideC != 0 && threads > 1 && (work < (1L << 22) || batch >= 4 * threads);
        var job = BatchJob.ForThisThread();
        job.Level = CurrentLevel;
        job.TransA = transA; job.TransB = transB;
        job.M = m; job.N = n; job.K = k;
        job.A = a; job.Lda = lda; job.StrideA = strideA; job.OffA = offA;
        job.B = b; job.Ldb = ldb; job.StrideB = strideB; job.OffB = offB;
        job.C = c; job.Ldc = ldc; job.StrideC = strideC;
        job.Accumulate = accumulate;
        try
        {
            if (overBatch) WorkerPool.For(batch, 1, job, static (j, start, end) => j.RunRange(start, end, 1));
            else job.RunRange(0, batch, threads);
        }
        finally
        {
            job.A = job.B = job.C = null;
            job.OffA = job.OffB = null;
        }
    }

    /// <summary>
    /// As <see cref="SgemmBatched"/>, with an explicit start offset per matrix of A and of B (for batches whose
    /// dims do not collapse to one stride, e.g. attention heads split out of [batch, seq, heads, dim]); C is
    /// matrix i at cOffset + i * strideC.
    /// </summary>
    public static unsafe void SgemmBatchedOffsets(int batch, bool transA, bool transB, int m, int n, int k,
        float[] a, long[] aOffsets, int lda, float[] b, long[] bOffsets, int ldb,
        float[] c, int cOffset, int ldc, long strideC, bool accumulate)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        ArgumentNullException.ThrowIfNull(c);
        if (aOffsets.Length < batch || bOffsets.Length < batch) throw new ArgumentException("SgemmBatchedOffsets: fewer offsets than matrices.");
        if (batch == 0 || m == 0 || n == 0) return;
        for (int i = 0; i < batch; i++)
        {
            CheckOperand(nameof(a), a.Length, checked((int)aOffsets[i]), 0, 1, transA ? k : m, transA ? m : k, lda);
            CheckOperand(nameof(b), b.Length, checked((int)bOffsets[i]), 0, 1, transB ? n : k, transB ? k : n, ldb);
        }
        CheckOperand(nameof(c), c.Length, cOffset, strideC, batch, m, n, ldc);
        fixed (float* pa = a, pb = b, pc = c)
            RunBatch(batch, transA, transB, m, n, k, pa, lda, 0, aOffsets, pb, ldb, 0, bOffsets, pc + cOffset, ldc, (nint)strideC, accumulate);
    }

    private sealed unsafe class BatchJob
    {
        [ThreadStatic] private static BatchJob? t_job;
        public static BatchJob ForThisThread() => t_job ??= new BatchJob();

        public SimdLevel Level;
        public bool TransA, TransB, Accumulate;
        public int M, N, K, Lda, Ldb, Ldc;
        public float* A, B, C;
        public nint StrideA, StrideB, StrideC;
        public long[]? OffA, OffB;   // per-matrix offsets instead of StrideA / StrideB when set

        public void RunRange(int start, int end, int maxThreads)
        {
            for (int i = start; i < end; i++)
                Multiply(Level, TransA, TransB, M, N, K, A + (OffA is null ? i * StrideA : (nint)OffA[i]), Lda,
                    B + (OffB is null ? i * StrideB : (nint)OffB[i]), Ldb, C + i * StrideC, Ldc, Accumulate, maxThreads);
        }
    }

    // Throws unless every element of `count` matrices (rows x cols, row stride ld, starting at
    // offset + i*stride) lies inside an array of `length` elements.
    private static void CheckOperand(string name, int length, int offset, long stride, int count, int rows, int cols, int ld)
    {
        if (offset < 0) throw new ArgumentOutOfRangeException(name, $"Offset of {name} is negative.");
        if (ld < 0) throw new ArgumentOutOfRangeException(name, $"Leading dimension of {name} is negative.");
        if (rows == 0 || cols == 0) return;
        long last = offset + (count - 1) * stride + (long)(rows - 1) * ld + cols;
        if (last > length)
            throw new ArgumentException(
                $"{name}: {count} matrix(es) of {rows}x{cols} (ld {ld}, offset {offset}, stride {stride}) need {last} elements; the array has {length}.", name);
    }

    /// <summary>The GEMM on raw pointers (already offset and validated); uses at most maxThreads threads.</summary>
    internal static unsafe void Multiply(SimdLevel level, bool transA, bool transB, int m, int n, int k,
        float* a, nint lda, float* b, nint ldb, float* c, nint ldc, bool accumulate, int maxThreads,
        in GemmEpilogue epilogue = default, PackedMatrix? packedB = null)
    {
        if (m == 0 || n == 0) return;
        if (k == 0)
        {
            if (!accumulate)
                for (int i = 0; i < m; i++) new Span<float>(c + i * ldc, n).Clear();
            if (epilogue.Active) epilogue.Apply(c, ldc, m, n, 0);
            return;
        }
        if (!TakesPackedPath(m, n, k))
        {
            if (m == 1 && transB && maxThreads > 1 && (long)n * k >= RowSplitMinWork && n >= 16)
                DirectRowSplit(level, transA, n, k, a, lda, b, ldb, c, accumulate);
            else
                Direct(level, transA, transB, m, n, k, a, lda, b, ldb, c, ldc, accumulate);
            if (epilogue.Active) epilogue.Apply(c, ldc, m, n, 0);
            return;
        }
        int segments = packedB == null && !epilogue.Active ? KSegments(m, n, k) : 1;
        if (segments > 1)
        {
            MultiplySplitK(level, transA, transB, m, n, k, a, lda, b, ldb, c, ldc, accumulate, maxThreads, segments);
            return;
        }
        GemmPacked.Multiply(level, transA, transB, m, n, k, a, lda, b, ldb, c, ldc, accumulate, maxThreads, epilogue,
            packedB != null && packedB.Fits(GemmBlocking.For(level), n, k) ? packedB : null);
    }

    /// <summary>
    /// A one-row product with B transposed (a linear layer on one token) of at least this many multiply-adds
    /// splits its columns over the threads: it streams the whole weight once and does little arithmetic per byte,
    /// so two cores fetch it from memory faster than one. Each column is computed as it would be alone.
    /// </summary>
    internal const long RowSplitMinWork = 1L << 16;

    private static unsafe void DirectRowSplit(SimdLevel level, bool transA, int n, int k, float* a, nint lda, float* b, nint ldb,
        float* c, bool accumulate)
    {
        // Chunks of eight columns (the direct path's group); a = one row (transA: one column, stride lda).
        var job = new RowSplitJob { Level = level, TransA = transA, K = k, N = n, A = a, Lda = lda, B = b, Ldb = ldb, C = c, Accumulate = accumulate };
        WorkerPool.For((n + 7) / 8, 16, job, static (j, s0, s1) => j.Run(s0, s1));
    }

    private sealed unsafe class RowSplitJob
    {
        public SimdLevel Level;
        public bool TransA, Accumulate;
        public int K, N;
        public float* A, B, C;
        public nint Lda, Ldb;

        public void Run(int g0, int g1)
        {
            int j0 = g0 * 8, j1 = Math.Min(N, g1 * 8);
            Direct(Level, TransA, true, 1, j1 - j0, K, A, Lda, B + j0 * Ldb, Ldb, C + j0, 0, Accumulate);
        }
    }

    /// <summary>Test hook: products with k at least this (and k at least twice m and n) split k into segments.</summary>
    internal static int SplitKMin = 2048;

    /// <summary>
    /// Turns the claiming of split-k segments off (for measurements): each thread then runs a fixed share, as before
    /// session 10. Claimed, a thread slowed down by other load on the machine does fewer segments instead of holding
    /// up the product. A field without an initialiser, as the kernels' switches.
    /// </summary>
    internal static bool SplitKStatic;

    /// <summary>
    /// Test hook: fill the split-k partial products with NaN before each product, so a segment that is never computed
    /// shows (the scratch is reused, and would otherwise still hold the same product's partials from an earlier call).
    /// </summary>
    internal static bool PoisonSplitKScratch;

    /// <summary>k-range length per segment of a split product (test hook).</summary>
    internal static int SplitKSegment = 1024;

    /// <summary>
    /// How many k segments a product is split into: more than one for a deep product with a small output (a
    /// weight gradient, C[out, in] summed over thousands of rows), whose per-k-block work is too small to share
    /// well between threads that step through the k blocks together. Depends on the shape only, never on the
    /// thread count, so results stay the same at every thread count.
    /// </summary>
    internal static int KSegments(int m, int n, int k)
    {
        if (k < SplitKMin || k < 2L * Math.Max(m, n)) return 1;
        return Math.Clamp(k / Math.Max(1, SplitKSegment), 1, 8);
    }

    /// <summary>
    /// C (+)= op(A) op(B) as <paramref name="segments"/> products over consecutive k ranges, each on one thread
    /// with its own packing (threads claim whole segments as they finish: no per-k-block hand-offs); segment 0 goes straight
    /// into C, the others into scratch, then C += P1, += P2, ... in that order.
    /// </summary>
    private static unsafe void MultiplySplitK(SimdLevel level, bool transA, bool transB, int m, int n, int k,
        float* a, nint lda, float* b, nint ldb, float* c, nint ldc, bool accumulate, int maxThreads, int segments)
    {
        var job = SplitKJob.ForThisThread();
        long plane = (long)m * n;
        job.Level = level; job.TransA = transA; job.TransB = transB;
        job.M = m; job.N = n; job.K = k; job.Segments = segments;
        job.A = a; job.Lda = lda; job.B = b; job.Ldb = ldb; job.C = c; job.Ldc = ldc; job.Accumulate = accumulate;
        job.Partials = SplitKJob.Scratch((segments - 1) * plane);
        if (PoisonSplitKScratch) new Span<float>(job.Partials, checked((int)((segments - 1) * plane))).Fill(float.NaN);
        try
        {
            if (maxThreads > 1 && SplitKStatic) WorkerPool.For(segments, 1, job, static (j, s0, s1) => j.RunSegments(s0, s1));
            else if (maxThreads > 1)
            {
                job.ResetClaims();
                WorkerPool.RunTeam(Math.Min(maxThreads, segments), job, static (j, member, size) => j.RunClaimed());
            }
            else job.RunSegments(0, segments);
            // C += P1 + ... in segment order, rows in parallel (each row's sums are the same whoever does them).
            if (maxThreads > 1) WorkerPool.For(m, 16, job, static (j, r0, r1) => j.Reduce(r0, r1));
            else job.Reduce(0, m);
        }
        finally { job.A = job.B = job.C = job.Partials = null; }
    }

    private sealed unsafe class SplitKJob
    {
        [ThreadStatic] private static SplitKJob? t_job;
        [ThreadStatic] private static float[]? t_scratch;
        public static SplitKJob ForThisThread() => t_job ??= new SplitKJob();

        // The caller's scratch for the partial products: pinned, grown on demand, reused.
        public static float* Scratch(long floats)
        {
            if (t_scratch == null || t_scratch.Length < floats)
                t_scratch = GC.AllocateUninitializedArray<float>(checked((int)Math.Max(floats, 16)), pinned: true);
            return (float*)System.Runtime.CompilerServices.Unsafe.AsPointer(ref System.Runtime.InteropServices.MemoryMarshal.GetArrayDataReference(t_scratch));
        }

        public SimdLevel Level;
        public bool TransA, TransB, Accumulate;
        public int M, N, K, Segments;
        public float* A, B, C, Partials;
        public nint Lda, Ldb, Ldc;

        private int _claimed;

        public void ResetClaims() => _claimed = 0;

        // Segments go to whichever member asks next: a member slowed down by other load on the machine takes fewer.
        public void RunClaimed()
        {
            int s;
            while ((s = Interlocked.Increment(ref _claimed) - 1) < Segments) RunSegments(s, s + 1);
        }

        public void RunSegments(int s0, int s1)
        {
            for (int s = s0; s < s1; s++)
            {
                var (p0, p1) = GemmPacked.KBlock(K, Segments, s);
                float* a = TransA ? A + p0 * Lda : A + p0;
                float* b = TransB ? B + p0 : B + p0 * Ldb;
                if (s == 0) GemmPacked.Multiply(Level, TransA, TransB, M, N, p1 - p0, a, Lda, b, Ldb, C, Ldc, Accumulate, 1);
                else GemmPacked.Multiply(Level, TransA, TransB, M, N, p1 - p0, a, Lda, b, Ldb, Partial(s), N, false, 1);
            }
        }

        public void Reduce(int r0, int r1)
        {
            for (int i = r0; i < r1; i++)
            {
                var row = new Span<float>(C + i * Ldc, N);
                for (int s = 1; s < Segments; s++)
                    System.Numerics.Tensors.TensorPrimitives.Add(row, new ReadOnlySpan<float>(Partial(s) + (nint)i * N, N), row);
            }
        }

        // Segment s's partial product (s >= 1), M x N with row stride N.
        private float* Partial(int s) => Partials + (s - 1) * (nint)M * N;
    }

    /// <summary>True when a product of this shape takes the packed path (where a B packed ahead is used).</summary>
    internal static bool TakesPackedPath(int m, int n, int k) =>
        m > 0 && n > 0 && k > 0 && (ForcePacked || ((long)m * n * k >= SmallWork && m > 1));

    // ---------------------------------------------------------------------------------------------------
    // Direct path for small products: no packing, no threads. C is written once per element.

    [SkipLocalsInit]
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void Direct(SimdLevel level, bool transA, bool transB, int m, int n, int k,
        float* a, nint lda, float* b, nint ldb, float* c, nint ldc, bool accumulate)
    {
        nint aRow = transA ? 1 : lda, aCol = transA ? lda : 1;
        if (!transB)
        {
            for (int i = 0; i < m; i++)
            {
                float* ai = a + i * aRow;
                float* ci = c + i * ldc;
                int j = 0;
                if (level == SimdLevel.Vector512) j = DirectRow512(n, k, ai, aCol, b, ldb, ci, accumulate);
                else if (level == SimdLevel.Vector256) j = DirectRow256(n, k, ai, aCol, b, ldb, ci, accumulate);
                for (; j < n; j++)
                {
                    float s = 0;
                    float* bj = b + j;
                    for (int p = 0; p < k; p++) s += ai[p * aCol] * bj[p * ldb];
                    ci[j] = accumulate ? ci[j] + s : s;
                }
            }
        }
        else
        {
            for (int i = 0; i < m; i++)
            {
                float* ai = a + i * aRow;
                float* ci = c + i * ldc;
                int j = 0;
                // With vectors (Vector512 too) every column is summed in 256-bit lanes, eight columns at a time and then
                // one at a time, so a column's bits depend neither on its position nor on n.
                if (aCol == 1 && level != SimdLevel.Scalar && k >= 8)
                    for (; j + 8 <= n; j += 8) Dot8Rows256(ai, b + j * ldb, ldb, k, ci + j, accumulate);
                for (; j < n; j++)
                {
                    float* bj = b + j * ldb;
                    float s;
                    if (aCol == 1 && level != SimdLevel.Scalar) s = Dot(ai, bj, k);
                    else
                    {
                        s = 0;
                        for (int p = 0; p < k; p++) s += ai[p * aCol] * bj[p];
                    }
                    ci[j] = accumulate ? ci[j] + s : s;
                }
            }
        }
    }

    // One dot product in 256-bit lanes (the per-column form of Dot8Rows256).
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe float Dot(float* x, float* y, int k)
    {
        int p = 0;
        float s = 0;
        if (k >= 8)
        {
            var acc = Vector256<float>.Zero;
            for (; p + 8 <= k; p += 8) acc = Vector256.FusedMultiplyAdd(Vector256.Load(x + p), Vector256.Load(y + p), acc);
            s = Vector256.Sum(acc);
        }
        for (; p < k; p++) s += x[p] * y[p];
        return s;
    }

    /// <summary>
    /// Eight dot products x . b_r (r &lt; 8, rows ldb apart) at once: eight independent FMA chains (one chain is
    /// bound by the FMA latency, a quarter of the core's throughput) and one load of x for eight rows. Each sum
    /// runs exactly as <see cref="Dot"/> runs it, so the results are the same bits.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void Dot8Rows256(float* x, float* b, nint ldb, int k, float* c, bool accumulate)
    {
        Vector256<float> s0 = default, s1 = default, s2 = default, s3 = default, s4 = default, s5 = default, s6 = default, s7 = default;
        float* b0 = b, b1 = b + ldb, b2 = b + 2 * ldb, b3 = b + 3 * ldb, b4 = b + 4 * ldb, b5 = b + 5 * ldb, b6 = b + 6 * ldb, b7 = b + 7 * ldb;
        int p = 0;
        for (; p + 8 <= k; p += 8)
        {
            var xv = Vector256.Load(x + p);
            s0 = Vector256.FusedMultiplyAdd(xv, Vector256.Load(b0 + p), s0);
            s1 = Vector256.FusedMultiplyAdd(xv, Vector256.Load(b1 + p), s1);
            s2 = Vector256.FusedMultiplyAdd(xv, Vector256.Load(b2 + p), s2);
            s3 = Vector256.FusedMultiplyAdd(xv, Vector256.Load(b3 + p), s3);
            s4 = Vector256.FusedMultiplyAdd(xv, Vector256.Load(b4 + p), s4);
            s5 = Vector256.FusedMultiplyAdd(xv, Vector256.Load(b5 + p), s5);
            s6 = Vector256.FusedMultiplyAdd(xv, Vector256.Load(b6 + p), s6);
            s7 = Vector256.FusedMultiplyAdd(xv, Vector256.Load(b7 + p), s7);
        }
        Finish(c + 0, Vector256.Sum(s0), x, b0, p, k, accumulate);
        Finish(c + 1, Vector256.Sum(s1), x, b1, p, k, accumulate);
        Finish(c + 2, Vector256.Sum(s2), x, b2, p, k, accumulate);
        Finish(c + 3, Vector256.Sum(s3), x, b3, p, k, accumulate);
        Finish(c + 4, Vector256.Sum(s4), x, b4, p, k, accumulate);
        Finish(c + 5, Vector256.Sum(s5), x, b5, p, k, accumulate);
        Finish(c + 6, Vector256.Sum(s6), x, b6, p, k, accumulate);
        Finish(c + 7, Vector256.Sum(s7), x, b7, p, k, accumulate);

        static void Finish(float* c, float s, float* x, float* y, int p, int k, bool accumulate)
        {
            for (; p < k; p++) s += x[p] * y[p];
            *c = accumulate ? *c + s : s;
        }
    }

    // One row of C for non-transposed B: columns in chunks of up to 4 vectors, k innermost. Returns the
    // first column not done.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe int DirectRow256(int n, int k, float* ai, nint aCol, float* b, nint ldb, float* ci, bool accumulate)
    {
        int j = 0;
        for (; j + 32 <= n; j += 32)
        {
            Vector256<float> s0 = default, s1 = default, s2 = default, s3 = default;
            float* bp = b + j;
            for (int p = 0; p < k; p++, bp += ldb)
            {
                var av = Vector256.Create(ai[p * aCol]);
                s0 = Vector256.FusedMultiplyAdd(av, Vector256.Load(bp), s0);
                s1 = Vector256.FusedMultiplyAdd(av, Vector256.Load(bp + 8), s1);
                s2 = Vector256.FusedMultiplyAdd(av, Vector256.Load(bp + 16), s2);
                s3 = Vector256.FusedMultiplyAdd(av, Vector256.Load(bp + 24), s3);
            }
            if (accumulate)
            {
                s0 += Vector256.Load(ci + j); s1 += Vector256.Load(ci + j + 8);
                s2 += Vector256.Load(ci + j + 16); s3 += Vector256.Load(ci + j + 24);
            }
            s0.Store(ci + j); s1.Store(ci + j + 8); s2.Store(ci + j + 16); s3.Store(ci + j + 24);
        }
        for (; j + 8 <= n; j += 8)
        {
            Vector256<float> s0 = default;
            float* bp = b + j;
            for (int p = 0; p < k; p++, bp += ldb)
                s0 = Vector256.FusedMultiplyAdd(Vector256.Create(ai[p * aCol]), Vector256.Load(bp), s0);
            if (accumulate) s0 += Vector256.Load(ci + j);
            s0.Store(ci + j);
        }
        return j;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe int DirectRow512(int n, int k, float* ai, nint aCol, float* b, nint ldb, float* ci, bool accumulate)
    {
        int j = 0;
        for (; j + 64 <= n; j += 64)
        {
            Vector512<float> s0 = default, s1 = default, s2 = default, s3 = default;
            float* bp = b + j;
            for (int p = 0; p < k; p++, bp += ldb)
            {
                var av = Vector512.Create(ai[p * aCol]);
                s0 = Vector512.FusedMultiplyAdd(av, Vector512.Load(bp), s0);
                s1 = Vector512.FusedMultiplyAdd(av, Vector512.Load(bp + 16), s1);
                s2 = Vector512.FusedMultiplyAdd(av, Vector512.Load(bp + 32), s2);
                s3 = Vector512.FusedMultiplyAdd(av, Vector512.Load(bp + 48), s3);
            }
            if (accumulate)
            {
                s0 += Vector512.Load(ci + j); s1 += Vector512.Load(ci + j + 16);
                s2 += Vector512.Load(ci + j + 32); s3 += Vector512.Load(ci + j + 48);
            }
            s0.Store(ci + j); s1.Store(ci + j + 16); s2.Store(ci + j + 32); s3.Store(ci + j + 48);
        }
        for (; j + 16 <= n; j += 16)
        {
            Vector512<float> s0 = default;
            float* bp = b + j;
            for (int p = 0; p < k; p++, bp += ldb)
                s0 = Vector512.FusedMultiplyAdd(Vector512.Create(ai[p * aCol]), Vector512.Load(bp), s0);
            if (accumulate) s0 += Vector512.Load(ci + j);
            s0.Store(ci + j);
        }
        return j;
    }
}

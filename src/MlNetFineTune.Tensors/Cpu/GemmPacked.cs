using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace MlNetFineTune.Tensors.Cpu;

/// <summary>Micro-kernel tile shape and cache block sizes of one SIMD level.</summary>
internal readonly record struct GemmBlocking(SimdLevel Level, int MR, int NR, int KC, int MC, int NC)
{
    /// <summary>
    /// Block sizes per level. Sized for L1d 32-48 KB, L2 0.5-2 MB, a shared L3: the B micro-panel
    /// (KC x NR) stays in L1 while the A micro-panels of one MC x KC block stream from L2, and the KC x NC
    /// block of B (shared by all threads) sits in L3.
    /// </summary>
    public static GemmBlocking For(SimdLevel level)
    {
        var bk = level switch
        {
            // KC 1024, MC 120, NC 2048, as Vector256 (below): B micro-panel 1024*32*4 = 128 KB (L2, under the kernel's
            // B prefetch), A block 120*1024*4 = 480 KB (L2 1 MB on Zen 5), B block 8 MB (L3). On the AVX-512 EPYC (Zen 5)
            // VM, 2 threads, variants alternated call by call, median GFLOP/s, three runs: the first 192 / 240 / 4096
            // against this, 256x1024x4096 TN 343 -> 367, 4096x1024x256 NT 376 -> 407, 32x1024x256 NT 140 -> 171,
            // 32x256x1024 NT 101 -> 125, 256^3 340 -> 346, one 32-token sentence 1.20 -> 1.10 ms; KC 192 -> 512 (MC 240):
            // 1024^3 303 -> 367, 4096x256x1024 355 -> 392; KC 512 (MC 240, NC 4096) against this: 1024^3 401 / 403,
            // 2048^3 394 / 403, 4096x256x1024 378 / 389.
            SimdLevel.Vector512 => new GemmBlocking(level, 12, 32, 1024, 120, 2048),
            // KC 1024, MC 96, NC 2048: B micro-panel 1024*16*4 = 64 KB (streamed from L2 under the kernel's B prefetch),
            // A block 96*1024*4 = 384 KB (L2), B block 1024*2048*4 = 8 MB (L3, shared). A product with k <= 1024 runs
            // in one k block: C is written once and every kernel call runs the whole depth. Against the earlier 384 /
            // 144 / 4096 (2 threads, interleaved calls, a quiet spell, median GFLOP/s): 4096x256x1024 NN 156 -> 173,
            // NT 157 -> 176, 1024^3 152 -> 161, 2048^3 158 -> 162, 1024x4096x1024 125 -> 134; k <= 384 unchanged, and
            // the split-k weight-gradient shapes (segments of 1024) unchanged. NC 2048 against 4096: the same speed,
            // half the packed-B buffer.
            SimdLevel.Vector256 => new GemmBlocking(level, 6, 16, 1024, 96, 2048),
            _ => new GemmBlocking(SimdLevel.Scalar, 4, 4, 256, 128, 4096),
        };
        if (Gemm.BlockingOverride is { } o)
            bk = bk with
            {
                KC = Math.Max(1, o.Kc),
                MC = Math.Max(1, (o.Mc + bk.MR - 1) / bk.MR) * bk.MR,
                NC = Math.Max(1, (o.Nc + bk.NR - 1) / bk.NR) * bk.NR,
            };
        return bk;
    }
}

/// <summary>
/// The packed GEMM driver (BLIS loop structure):
/// <code>
/// for jc over N in NC blocks
///   for pc over K in KC blocks
///     pack B[pc.., jc..] into NR-column micro-panels   (shared by the team; chunks claimed by members)
///     for ic over M in row blocks of at most MC           (units claimed by members)
///       pack A[ic.., pc..] into MR-row micro-panels    (per thread, L2)
///       for jr over NR panels
///         for ir over MR panels: micro-kernel C[ir, jr] (+)= Apanel * Bpanel
/// </code>
/// Members claim work with atomic counters, so a member slowed down by other load on the machine is
/// covered by the others; with a team the packed B blocks alternate between two buffers.
/// Packing reads op(A) / op(B) straight from the caller's storage, so transposed operands are never
/// materialised. Block boundaries over k depend only on k, never on the thread count.
/// </summary>
internal static unsafe class GemmPacked
{
    /// <summary>Minimum multiply-adds per thread before a product is split over threads.</summary>
    internal const long MinWorkPerThread = 1L << 19;

    /// <summary>
    /// Packing a run-wise operand (B as stored, or A transposed) prefetches the source row this many rows ahead:
    /// the rows lie a row stride apart (often a page or more), where the hardware prefetcher stops
    /// (1024x256x4096 TN 166 -> 172 GFLOP/s, 768x256x4096 TN 164 -> 170 at 2 threads; 0 turns it off).
    /// </summary>
    internal static int PrefetchRows = 8;

    /// <summary>
    /// Turns off the prefetch in interleaved packing (for measurements): a panel's packing fetches the same rows of
    /// the next panel a line at a time (a panel's rows are often short runs of a few lines, too short for the
    /// hardware prefetcher). 4096x256x256 NT 126 -> 131 GFLOP/s median at 2 threads, 4096x1024x256 NT 132 -> 134.
    /// A field without an initialiser, as in GemmKernels.
    /// </summary>
    internal static bool NoInterleavePrefetch;

    /// <summary>
    /// Turns off the split tail (for measurements): see <see cref="SplitTail"/>. A field without an initialiser, as in
    /// GemmKernels.
    /// </summary>
    internal static bool NoTailSplit;

    /// <summary>
    /// Turns off the smaller kernels for a last row panel (for measurements and tests): every panel then runs the
    /// level's full MR-row kernel, through the tile buffer when it has fewer rows. A 12-row Vector512 panel's first 8
    /// or 4 rows (a 6-row Vector256 panel's first 4) come out with the same bits either way. A field without an
    /// initialiser, as in GemmKernels.
    /// </summary>
    internal static bool NoSmallPanelKernels;

    /// <summary>
    /// Packs a partial A panel (fewer rows than MR) one row at a time, as before the vector packing covered it (for
    /// measurements). A field without an initialiser, as in GemmKernels.
    /// </summary>
    internal static bool NoPartialInterleave;

    /// <summary>
    /// Whether an mc-row block of A ends in two panels of at most four rows instead of a full panel and one of one or
    /// two rows (Vector256, A packed by interleaving). The 4-row kernel's eight FMA chains already take as long per k
    /// step for one or two rows as for four, so 32 rows as 6+6+6+6+4+4 cost 32 cycles per k step against 34 for
    /// 6+6+6+6+6+2. Which panel computes a row never changes its value (every element is reduced over k in order).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static bool SplitTail(in GemmBlocking bk, bool transA, int mc) => SplitTailWith(bk, transA, mc, NoTailSplit);

    // With the switch read once per product, so the packing and the kernels of one product always agree.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool SplitTailWith(in GemmBlocking bk, bool transA, int mc, bool off) =>
        !off && !transA && bk.Level == SimdLevel.Vector256 && mc > bk.MR && mc % bk.MR is 1 or 2;

    /// <summary>The first row and the row count of packed panel q of an mc-row block (see <see cref="SplitTail"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static (int Row, int Rows) Panel(int mr, int mc, int q, bool splitTail)
    {
        if (splitTail)
        {
            int last = (mc - 1) / mr, t0 = (last - 1) * mr;
            if (q == last - 1) return (t0, 4);
            if (q == last) return (t0 + 4, mc - t0 - 4);
        }
        return (q * mr, Math.Min(mr, mc - q * mr));
    }

    public static void Multiply(SimdLevel level, bool transA, bool transB, int m, int n, int k,
        float* a, nint lda, float* b, nint ldb, float* c, nint ldc, bool accumulate, int maxThreads,
        in GemmEpilogue epilogue = default, PackedMatrix? packedB = null)
    {
        var bk = GemmBlocking.For(level);
        if (packedB != null && !packedB.Fits(bk, n, k))
            throw new ArgumentException($"Packed B holds {packedB.K}x{packedB.N} for {packedB.Blocking}; the product needs {k}x{n} for {bk}.", nameof(packedB));
        long work = (long)m * n * k;
        int team = (int)Math.Clamp(work / MinWorkPerThread, 1, Math.Max(1, maxThreads));

        // Blocks over k and n: equal sizes (n blocks aligned to NR), independent of the thread count.
        var (kBlocks, kcMax, nPanels, nBlocks, ncPanelsMax) = Blocks(bk, n, k);

        var job = Job.ForThisThread();
        job.Bk = bk;
        job.TransA = transA; job.TransB = transB;
        job.M = m; job.N = n; job.K = k;
        job.A = a; job.Lda = lda; job.B = b; job.Ldb = ldb; job.C = c; job.Ldc = ldc;
        job.Accumulate = accumulate;
        job.Epilogue = epilogue;
        job.KBlocks = kBlocks; job.NPanels = nPanels; job.NBlocks = nBlocks;
        job.Packed = packedB;
        job.TailSplitOff = NoTailSplit;
        if (packedB == null)
        {
            long bBlock = ((long)kcMax * ncPanelsMax * bk.NR + 15) & ~15L;
            job.BPack = Buffers.PackB(team > 1 ? 2 * bBlock : bBlock);
            job.BBlock = (nint)bBlock;
        }
        job.Reset(MaxUnits(bk, m, ncPanelsMax, team));
        try
        {
            if (team <= 1) job.Run(0, 1);
            else WorkerPool.RunTeam(team, job, static (j, member, size) => j.RunGuarded(member, size));
        }
        catch (Exception) when (job.Failure != null)
        {
            // A member failed and the others bailed out of their barriers: report the original error.
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(job.Failure).Throw();
        }
        finally
        {
            job.A = job.B = job.C = job.BPack = null;
            job.Packed = null;
            job.Epilogue = default;
        }
    }

    /// <summary>
    /// The blocks over k and n of a product with n columns and depth k: k in kBlocks equal blocks of at most
    /// KC (kcMax the largest), n in nPanels NR-column panels grouped into nBlocks blocks of at most NC columns
    /// (ncPanelsMax panels the largest). They depend on the shape and blocking only, never on the thread count.
    /// </summary>
    internal static (int KBlocks, int KcMax, int NPanels, int NBlocks, int NcPanelsMax) Blocks(in GemmBlocking bk, int n, int k)
    {
        int kBlocks = (k + bk.KC - 1) / bk.KC;
        int kcMax = (k + kBlocks - 1) / kBlocks;
        int nPanels = (n + bk.NR - 1) / bk.NR;
        int nBlocks = (nPanels * bk.NR + bk.NC - 1) / bk.NC;
        int ncPanelsMax = (nPanels + nBlocks - 1) / nBlocks;
        return (kBlocks, kcMax, nPanels, nBlocks, ncPanelsMax);
    }

    /// <summary>Panels [jp0, jp1) of n block jb and rows [p0, p1) of k block kb (the same split the driver uses).</summary>
    internal static (int Jp0, int Jp1) NBlock(int nPanels, int nBlocks, int jb) =>
        ((int)((long)nPanels * jb / nBlocks), (int)((long)nPanels * (jb + 1) / nBlocks));

    internal static (int P0, int P1) KBlock(int k, int kBlocks, int kb) =>
        ((int)((long)k * kb / kBlocks), (int)((long)k * (kb + 1) / kBlocks));

    // Row blocks: at most MC rows (the A block stays in L2); with a team, small enough that every member
    // gets several units, so a member slowed down by other load is covered by the others.
    private static (int UnitPanels, int RowBlocks) RowBlocks(in GemmBlocking bk, int m, int team)
    {
        int mPanels = (m + bk.MR - 1) / bk.MR;
        int maxPanels = Math.Max(1, bk.MC / bk.MR);
        int unitPanels = team == 1
            ? Math.Min(maxPanels, mPanels)
            : Math.Clamp((mPanels + team * 6 - 1) / (team * 6), Math.Min(Math.Min(4, mPanels), maxPanels), maxPanels);
        return (unitPanels, (mPanels + unitPanels - 1) / unitPanels);
    }

    // Few row blocks: also split the columns, so every member has work.
    private static int ColChunks(int rowBlocks, int ncPanels, int team) =>
        team == 1 || rowBlocks >= team * 3 ? 1 : Math.Max(1, Math.Min(ncPanels, (team * 6 + rowBlocks - 1) / rowBlocks));

    // The most units any block can have, for any team size up to `team` (the pool may run a smaller team).
    private static int MaxUnits(in GemmBlocking bk, int m, int ncPanelsMax, int team)
    {
        int max = 1;
        for (int t = 1; t <= team; t++)
        {
            int rowBlocks = RowBlocks(bk, m, t).RowBlocks;
            max = Math.Max(max, rowBlocks * ColChunks(rowBlocks, ncPanelsMax, t));
        }
        return max;
    }

    private sealed class Job
    {
        [ThreadStatic] private static Job? t_job;
        public static Job ForThisThread() => t_job ??= new Job();

        public GemmBlocking Bk;
        public GemmEpilogue Epilogue;
        public bool TransA, TransB, Accumulate;
        public int M, N, K, KBlocks, NPanels, NBlocks;
        public float* A, B, C, BPack;
        public nint Lda, Ldb, Ldc, BBlock;
        public PackedMatrix? Packed;   // B packed ahead (then BPack is unused and no member packs B)
        public bool TailSplitOff;      // GemmPacked.NoTailSplit when the product started

        // Work counters shared by the team. They only grow during one product (block after block), so a
        // claim can never be confused with one of an earlier block.
        private int _bClaimed, _bPacked, _uClaimed;
        // Units finished, counted per step modulo 3 (steps s-2, s-1 and s can be in flight at once).
        private readonly int[] _uDone = new int[3];
        private Exception? _failure;
        // Per unit of the current NC block: 1 + the last step (k block) whose unit is finished. A unit of
        // step s adds onto the C tiles that the same unit of step s-1 wrote, so it waits for that one.
        private int[] _unitStep = new int[64];

        public Exception? Failure => Volatile.Read(ref _failure);

        public void Reset(int maxUnits)
        {
            _bClaimed = _bPacked = _uClaimed = 0;
            _uDone[0] = _uDone[1] = _uDone[2] = 0;
            _failure = null;
            if (_unitStep.Length < maxUnits) _unitStep = new int[Math.Max(maxUnits, _unitStep.Length * 2)];
            else Array.Clear(_unitStep, 0, maxUnits);
        }

        // Claims the next item below `end`, if any.
        private static bool TryClaim(ref int counter, int end, out int item)
        {
            while (true)
            {
                int v = Volatile.Read(ref counter);
                if (v >= end) { item = 0; return false; }
                if (Interlocked.CompareExchange(ref counter, v + 1, v) == v) { item = v; return true; }
            }
        }

        // Waits (spinning, then yielding) until counter >= target. Only ever waits for work another member
        // has already claimed, so the wait is short unless that member was descheduled.
        private void WaitFor(ref int counter, int target)
        {
            if (Volatile.Read(ref counter) >= target) return;
            var spin = new SpinWait();
            while (Volatile.Read(ref counter) < target)
            {
                if (Failure != null) throw new OperationCanceledException("Another GEMM thread failed.");
                spin.SpinOnce(sleep1Threshold: -1);
            }
        }

        public void RunGuarded(int member, int team)
        {
            try { Run(member, team); }
            catch (Exception ex) when (ex is not OperationCanceledException || Failure == null)
            {
                Interlocked.CompareExchange(ref _failure, ex, null);
                throw;
            }
        }

        /// <summary>
        /// One team member's share. Per (NC, KC) block: the B block is packed in chunks of NR panels that
        /// members claim, then the C block is computed in units (an MR-aligned row block times a range of
        /// NR panels) that members claim; a member packs the A rows of each unit it takes (once per row block).
        /// Who computes a unit never changes what is computed: each C element is reduced over k in the same
        /// order, so the result is bitwise the same at every thread count and under any scheduling.
        /// </summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public void Run(int member, int team)
        {
            var bk = Bk;
            int mr = bk.MR, nr = bk.NR;
            int m = M, n = N, k = K;
            int kBlocks = KBlocks, nBlocks = NBlocks, nPanels = NPanels;

            var (unitPanels, rowBlocks) = RowBlocks(bk, m, team);
            // A bias over a product that overwrites C starts the vector kernels' sums at the first k block
            // (instead of a pass over each finished tile): C = bias + sum_p a b.
            bool foldBias = Epilogue.Bias != null && !Accumulate && bk.Level != SimdLevel.Scalar;
            float* apack = Buffers.PackA((long)unitPanels * mr * ((k + kBlocks - 1) / kBlocks));

            int bBase = 0, uBase = 0;
            int done0 = 0, done1 = 0, done2 = 0;   // units expected in _uDone[0..2] through the last step
            int step = 0;
            var packed = Packed;
            for (int jb = 0; jb < nBlocks; jb++)
            {
                var (jp0, jp1) = NBlock(nPanels, nBlocks, jb);
                int j0 = jp0 * nr;
                int nc = Math.Min(n, jp1 * nr) - j0;
                int ncPanels = jp1 - jp0;
                int colChunks = ColChunks(rowBlocks, ncPanels, team);
                int chunkPanels = team == 1 ? ncPanels : Math.Max(1, (ncPanels + team * 4 - 1) / (team * 4));
                int bChunks = (ncPanels + chunkPanels - 1) / chunkPanels;
                int units = rowBlocks * colChunks;

                for (int kb = 0; kb < kBlocks; kb++, step++)
                {
                    var (p0, p1) = KBlock(k, kBlocks, kb);
                    int kc = p1 - p0;
                    bool overwrite = kb == 0 && !Accumulate;

                    // With a team the packed B blocks alternate between two buffers; the one for this block
                    // was last read by step-2, whose units must all be done before it is overwritten. (A
                    // member past this wait has seen step-2 finish, so step+1 units, which share its
                    // counter, cannot be counted before all step-2 units are.)
                    float* bpack = packed != null ? packed.Block(jb, kb)
                        : team > 1 && (step & 1) != 0 ? BPack + BBlock : BPack;
                    int bEnd = bBase + bChunks;
                    int slot = step % 3;
                    if (packed != null)
                    {
                        // B was packed ahead, every block in its own place: nothing to pack, no buffer to wait for.
                    }
                    else if (team > 1)
                    {
                        if (step >= 2)
                        {
                            int prev = (step - 2) % 3;
                            WaitFor(ref _uDone[prev], prev == 0 ? done0 : prev == 1 ? done1 : done2);
                        }
                        while (TryClaim(ref _bClaimed, bEnd, out int chunk))
                        {
                            int c0 = (chunk - bBase) * chunkPanels, c1 = Math.Min(ncPanels, c0 + chunkPanels);
                            PackB(bk, TransB, B, Ldb, p0, kc, j0 + c0 * nr, Math.Min(nc, c1 * nr) - c0 * nr,
                                bpack + (nint)c0 * kc * nr);
                            Interlocked.Increment(ref _bPacked);
                        }
                        WaitFor(ref _bPacked, bEnd);
                    }
                    else
                    {
                        PackB(bk, TransB, B, Ldb, p0, kc, j0, nc, bpack);
                    }

                    int uEnd = uBase + units;
                    int packedRowBlock = -1;
                    while (true)
                    {
                        int u;
                        if (team > 1)
                        {
                            if (!TryClaim(ref _uClaimed, uEnd, out int claimed)) break;
                            u = claimed - uBase;
                        }
                        else
                        {
                            u = packedRowBlock + 1;
                            if (u >= units) break;
                        }
                        int rb = u / colChunks, cc = u - rb * colChunks;
                        int i0 = rb * unitPanels * mr;
                        int mc = Math.Min(m, i0 + unitPanels * mr) - i0;
                        if (rb != packedRowBlock)
                        {
                            PackA(bk, TransA, A, Lda, i0, mc, p0, kc, apack, SplitTailWith(bk, TransA, mc, TailSplitOff));
                            packedRowBlock = rb;
                        }
                        int cp0 = (int)((long)ncPanels * cc / colChunks), cp1 = (int)((long)ncPanels * (cc + 1) / colChunks);
                        if (team > 1 && kb > 0) WaitFor(ref _unitStep[u], step);
                        Macro(bk, mc, nc, kc, cp0, cp1, apack, bpack, C + i0 * Ldc + j0, Ldc, overwrite,
                            overwrite && foldBias ? Epilogue.Bias + j0 : null,
                            kb == kBlocks - 1 ? (foldBias ? Epilogue.WithoutBias() : Epilogue.At(j0)) : default,
                            SplitTailWith(bk, TransA, mc, TailSplitOff));
                        if (team > 1)
                        {
                            // Raise, never lower: at the first k block of an NC block a unit does not wait,
                            // so the same unit index of the previous NC block may finish after it.
                            ref int mark = ref _unitStep[u];
                            int seen;
                            while ((seen = Volatile.Read(ref mark)) < step + 1 && Interlocked.CompareExchange(ref mark, step + 1, seen) != seen) { }
                            Interlocked.Increment(ref _uDone[slot]);
                        }
                    }

                    bBase = bEnd;
                    uBase = uEnd;
                    if (slot == 0) done0 += units; else if (slot == 1) done1 += units; else done2 += units;
                }
            }
        }
    }

    /// <summary>Runs the micro-kernel over an mc x nc block of C for NR panels [cp0, cp1).</summary>
    [SkipLocalsInit]
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Macro(in GemmBlocking bk, int mc, int nc, int kc, int cp0, int cp1,
        float* apack, float* bpack, float* c, nint ldc, bool overwrite, float* biasInit, GemmEpilogue epilogue, bool splitTail)
    {
        int mr = bk.MR, nr = bk.NR;
        bool small = !NoSmallPanelKernels;
        float* tile = stackalloc float[16 * 32];
        float* padded = stackalloc float[32];
        var level = bk.Level;
        for (int jp = cp0; jp < cp1; jp++)
        {
            int j = jp * nr;
            int cols = Math.Min(nr, nc - j);
            float* bp = bpack + (nint)jp * kc * nr;
            // Per-column starting values (vector kernels, overwrite only); a ragged last panel reads them zero-padded.
            float* init = null;
            if (biasInit != null)
            {
                if (cols == nr) init = biasInit + j;
                else
                {
                    for (int q = 0; q < nr; q++) padded[q] = q < cols ? biasInit[j + q] : 0f;
                    init = padded;
                }
            }
            int panels = (mc + mr - 1) / mr;
            for (int ip = 0; ip < panels; ip++)
            {
                var (i, rows) = Panel(mr, mc, ip, splitTail);
                float* ap = apack + (nint)ip * mr * kc;
                float* cij = c + i * ldc + j;
                int kr = small ? KernelRows(level, rows) : mr;
                if (cols == nr && kr == rows)
                {
                    if (Sse.IsSupported)
                    {
                        // The kernel reads the C tile only at its end: start fetching it now.
                        for (int r = 0; r < rows; r++)
                        {
                            float* cr = cij + r * ldc;
                            for (int q = 0; q < nr; q += 16) Sse.Prefetch0(cr + q);
                            Sse.Prefetch0(cr + nr - 1);
                        }
                    }
                    // A full panel, or a last one (or a split tail's) of exactly as many rows as a smaller kernel computes.
                    PanelKernel(level, kr, kc, ap, bp, cij, ldc, overwrite, init);
                }
                else
                {
                    // Through the tile buffer (NR-wide rows): the kernel computes kr rows, C takes rows x cols.
                    PanelKernel(level, kr, kc, ap, bp, tile, nr, true, init);
                    for (int r = 0; r < rows; r++)
                    {
                        float* src = tile + r * nr;
                        float* dst = cij + r * ldc;
                        if (overwrite) for (int q = 0; q < cols; q++) dst[q] = src[q];
                        else for (int q = 0; q < cols; q++) dst[q] += src[q];
                    }
                }
                if (epilogue.Active) epilogue.Apply(cij, ldc, rows, cols, j);
            }
        }
    }

    /// <summary>
    /// The rows the kernel for a panel of <paramref name="rows"/> rows computes: the smallest of the level's kernels
    /// (Vector512 12, 8 or 4 rows; Vector256 6 or 4; scalar 4) that covers them.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static int KernelRows(SimdLevel level, int rows) => level switch
    {
        SimdLevel.Vector512 => rows <= 4 ? 4 : rows <= 8 ? 8 : 12,
        SimdLevel.Vector256 => rows <= 4 ? 4 : 6,
        _ => 4,
    };

    /// <summary>
    /// Runs the level's kernel that computes <paramref name="rows"/> rows (one of <see cref="KernelRows"/>' answers) of
    /// a packed panel into c; <paramref name="init"/> (per-column starting sums, with overwrite) only at the vector levels.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void PanelKernel(SimdLevel level, int rows, int kc, float* a, float* b, float* c, nint ldc, bool overwrite, float* init)
    {
        if (level == SimdLevel.Vector512)
        {
            if (rows > 8) GemmKernels.Kernel512_12x32(kc, a, b, c, ldc, overwrite, init);
            else if (rows > 4) GemmKernels.Kernel512_8x32(kc, a, b, c, ldc, overwrite, init);
            else GemmKernels.Kernel512_4x32(kc, a, b, c, ldc, overwrite, init);
        }
        else if (level == SimdLevel.Vector256)
        {
            if (rows > 4) GemmKernels.Kernel256_6x16(kc, a, b, c, ldc, overwrite, init);
            else GemmKernels.Kernel256_4x16(kc, a, b, c, ldc, overwrite, init);
        }
        else
        {
            Debug.Assert(init == null, "the scalar kernel starts from zero");
            GemmKernels.KernelScalar4x4(kc, a, b, c, ldc, overwrite);
        }
    }

    // ---------------------------------------------------------------------------------------------------
    // Packing. A and B are packed by the same two routines: "interleave" gathers R source rows that run
    // along k into R-wide k steps (op(A) as stored, or op(B) transposed), and "runs" copies R-wide runs
    // that already lie along a source row (op(A) transposed, or op(B) as stored).

    /// <summary>
    /// Packs rows [i0, i0+mc) x k-range [p0, p0+kc) of op(A) into MR-row micro-panels: panel q holds, for
    /// each p, the MR values op(A)[i0+q*MR+r, p0+p] (zero past row mc), except that with <paramref name="splitTail"/>
    /// (A as stored; see <see cref="SplitTail"/>) the last two panels hold the rows
    /// <see cref="Panel"/> gives them.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void PackA(in GemmBlocking bk, bool transA, float* a, nint lda, int i0, int mc, int p0, int kc, float* dst, bool splitTail)
    {
        int mr = bk.MR;
        if (!transA)
        {
            // op(A)[i, p] = a[i*lda + p].
            int panels = (mc + mr - 1) / mr;
            for (int q = 0; q < panels; q++, dst += (nint)mr * kc)
            {
                var (row, rows) = Panel(mr, mc, q, splitTail);
                PackInterleave(a + (i0 + row) * lda + p0, lda, rows, mr, kc, dst);
            }
        }
        else
        {
            // op(A)[i, p] = a[p*lda + i].
            PackRuns(a + (nint)p0 * lda + i0, lda, mc, mr, kc, dst);
        }
    }

    /// <summary>
    /// Packs k-range [p0, p0+kc) x columns [j0, j0+nc) of op(B) into NR-column micro-panels: panel q holds,
    /// for each p, the NR values op(B)[p0+p, j0+q*NR+j] (zero past column nc).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void PackB(in GemmBlocking bk, bool transB, float* b, nint ldb, int p0, int kc, int j0, int nc, float* dst)
    {
        int nr = bk.NR;
        if (!transB)
        {
            // op(B)[p, j] = b[p*ldb + j]: four panels at a time, so each source row is read in runs of 4 NR
            // (4-8 cache lines) before moving a row stride on; one panel at a time read one or two lines per row,
            // and a row stride of a page or more then defeats the prefetcher (256x1024x4096 TN: 148-151 ->
            // 156-159 GFLOP/s at 2 threads).
            int g = 4 * nr;
            for (int j = 0; j < nc; j += g, dst += (nint)g * kc)
                PackRuns(b + (nint)p0 * ldb + j0 + j, ldb, Math.Min(g, nc - j), nr, kc, dst);
        }
        else
        {
            // op(B)[p, j] = b[j*ldb + p].
            for (int j = 0; j < nc; j += nr, dst += (nint)nr * kc)
                PackInterleave(b + (j0 + j) * ldb + p0, ldb, Math.Min(nr, nc - j), nr, kc, dst);
        }
    }

    /// <summary>
    /// dst[p*r + x] = src[x*ld + p] for x &lt; rows (0 for rows &lt;= x &lt; r), p &lt; kc: the source rows run
    /// along k. Rows in groups of four (then one pair) are transposed 4 k steps at a time with SSE shuffles, in a
    /// last partial panel too (m = 32 ends in an 8-row panel of 12 at Vector512); the rest one by one.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void PackInterleave(float* src, nint ld, int rows, int r, int kc, float* dst)
    {
        int p = 0, vectorRows = 0;
        if (Sse.IsSupported && rows >= 2 && kc >= 4 && (!NoPartialInterleave || rows == r))
        {
            // Four source rows at a time over all of k (few read streams), 4x4 transposes.
            int kc4 = kc & ~3;
            nint ld2 = ld * 2, ld3 = ld * 3;
            int x = 0;
            nint ahead = r * ld;   // the same rows of the next panel
            bool pf = !NoInterleavePrefetch;
            for (; x + 4 <= rows; x += 4)
            {
                float* s = src + x * ld;
                float* d = dst + x;
                for (int q = 0; q < kc4; q += 4, d += 4 * r)
                {
                    if (pf && (q & 15) == 0)
                    {
                        Sse.Prefetch0(s + ahead + q);
                        Sse.Prefetch0(s + ahead + ld + q);
                        Sse.Prefetch0(s + ahead + ld2 + q);
                        Sse.Prefetch0(s + ahead + ld3 + q);
                    }
                    var r0 = Sse.LoadVector128(s + q);
                    var r1 = Sse.LoadVector128(s + ld + q);
                    var r2 = Sse.LoadVector128(s + ld2 + q);
                    var r3 = Sse.LoadVector128(s + ld3 + q);
                    var t0 = Sse.UnpackLow(r0, r1);    // r0p0 r1p0 r0p1 r1p1
                    var t1 = Sse.UnpackHigh(r0, r1);   // r0p2 r1p2 r0p3 r1p3
                    var t2 = Sse.UnpackLow(r2, r3);
                    var t3 = Sse.UnpackHigh(r2, r3);
                    Sse.Store(d, Sse.MoveLowToHigh(t0, t2));
                    Sse.Store(d + r, Sse.MoveHighToLow(t2, t0));
                    Sse.Store(d + 2 * r, Sse.MoveLowToHigh(t1, t3));
                    Sse.Store(d + 3 * r, Sse.MoveHighToLow(t3, t1));
                }
            }
            if (x + 2 <= rows)
            {
                float* s = src + x * ld;
                float* d = dst + x;
                for (int q = 0; q < kc4; q += 4, d += 4 * r)
                {
                    if (pf && (q & 15) == 0)
                    {
                        Sse.Prefetch0(s + ahead + q);
                        Sse.Prefetch0(s + ahead + ld + q);
                    }
                    var r0 = Sse.LoadVector128(s + q);
                    var r1 = Sse.LoadVector128(s + ld + q);
                    var u0 = Sse.UnpackLow(r0, r1);    // r0p0 r1p0 r0p1 r1p1
                    var u1 = Sse.UnpackHigh(r0, r1);   // r0p2 r1p2 r0p3 r1p3
                    Sse.StoreLow(d, u0);
                    Sse.StoreHigh(d + r, u0);
                    Sse.StoreLow(d + 2 * r, u1);
                    Sse.StoreHigh(d + 3 * r, u1);
                }
                x += 2;
            }
            p = kc4;
            vectorRows = x;
        }
        for (int x = 0; x < rows; x++)
        {
            float* s = src + x * ld;
            float* d = dst + x;
            for (int q = x < vectorRows ? p : 0; q < kc; q++) d[(nint)q * r] = s[q];
        }
        for (int x = rows; x < r; x++)
            for (int q = 0; q < kc; q++) dst[(nint)q * r + x] = 0;
    }

    /// <summary>
    /// dst[q*r*kc + p*r + x] = src[p*ld + q*r + x] for q*r + x &lt; cols (0 past cols), p &lt; kc: copies the
    /// source rows (each cols long, along the panel dimension) into ceil(cols/r) panels of r-wide k steps,
    /// reading each source row once.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void PackRuns(float* src, nint ld, int cols, int r, int kc, float* dst)
    {
        int full = cols / r, rest = cols - full * r;
        nint panel = (nint)r * kc;
        bool v128 = Vector128.IsHardwareAccelerated, v256 = Vector256.IsHardwareAccelerated;
        int ahead = PrefetchRows;
        for (int p = 0; p < kc; p++, src += ld)
        {
            float* d = dst + (nint)p * r;
            float* s = src;
            if (ahead > 0 && Sse.IsSupported && p + ahead < kc)
            {
                float* f = src + ahead * ld;
                for (int q = 0; q < cols; q += 16) Sse.Prefetch0(f + q);
                Sse.Prefetch0(f + cols - 1);
            }
            if (r == 16 && v256)
            {
                for (int q = 0; q < full; q++, s += 16, d += panel)
                {
                    Vector256.Store(Vector256.Load(s), d);
                    Vector256.Store(Vector256.Load(s + 8), d + 8);
                }
            }
            else if (r == 32 && v256)
            {
                for (int q = 0; q < full; q++, s += 32, d += panel)
                {
                    Vector256.Store(Vector256.Load(s), d);
                    Vector256.Store(Vector256.Load(s + 8), d + 8);
                    Vector256.Store(Vector256.Load(s + 16), d + 16);
                    Vector256.Store(Vector256.Load(s + 24), d + 24);
                }
            }
            else if (r == 6 && v128)
            {
                for (int q = 0; q < full; q++, s += 6, d += panel)
                {
                    Vector128.Store(Vector128.Load(s), d);
                    *(long*)(d + 4) = *(long*)(s + 4);
                }
            }
            else if (r == 12 && v128)
            {
                for (int q = 0; q < full; q++, s += 12, d += panel)
                {
                    Vector128.Store(Vector128.Load(s), d);
                    Vector128.Store(Vector128.Load(s + 4), d + 4);
                    Vector128.Store(Vector128.Load(s + 8), d + 8);
                }
            }
            else if (r == 4 && v128)
            {
                for (int q = 0; q < full; q++, s += 4, d += panel)
                    Vector128.Store(Vector128.Load(s), d);
            }
            else
            {
                for (int q = 0; q < full; q++, s += r, d += panel)
                    for (int x = 0; x < r; x++) d[x] = s[x];
            }
            if (rest > 0)
            {
                int x = 0;
                for (; x < rest; x++) d[x] = s[x];
                for (; x < r; x++) d[x] = 0;
            }
        }
    }

    /// <summary>Per-thread pack buffers: pinned (never move), 64-byte aligned, grown on demand, reused.</summary>
    private static class Buffers
    {
        [ThreadStatic] private static float[]? t_a;
        [ThreadStatic] private static float[]? t_b;

        public static float* PackA(long floats) => Get(ref t_a, floats);
        public static float* PackB(long floats) => Get(ref t_b, floats);

        private static float* Get(ref float[]? buffer, long floats)
        {
            if (buffer == null || buffer.Length < floats + 16)
            {
                long size = Math.Max(floats + 16, buffer == null ? 0 : Math.Min((long)buffer.Length * 3 / 2, Array.MaxLength));
                buffer = GC.AllocateUninitializedArray<float>(checked((int)size), pinned: true);
            }
            nint addr = (nint)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(buffer));
            return (float*)((addr + 63) & ~(nint)63);
        }
    }
}

/// <summary>
/// What a GEMM does to each finished tile of C while it is still in cache: add a per-column bias (a linear
/// layer's bias, C[i, j] += bias[j]) and/or apply an activation. Fusing them saves the separate passes over C.
/// </summary>
internal readonly unsafe struct GemmEpilogue(float* bias, GemmActivation activation)
{
    /// <summary>Bias per column of C, already offset to the column the current block starts at.</summary>
    public readonly float* Bias = bias;
    public readonly GemmActivation Activation = activation;

    public bool Active => Bias != null || Activation != GemmActivation.None;

    /// <summary>The same epilogue for a block of C that starts at column <paramref name="j0"/>.</summary>
    public GemmEpilogue At(int j0) => new(Bias == null ? null : Bias + j0, Activation);

    /// <summary>The activation alone (the bias was folded into the kernel's sums).</summary>
    public GemmEpilogue WithoutBias() => new(null, Activation);

    /// <summary>Applies it to the rows x cols tile at c (row stride ldc) that starts at column j of the block.</summary>
    public void Apply(float* c, nint ldc, int rows, int cols, int j)
    {
        float* bias = Bias == null ? null : Bias + j;
        // A tile row is 16-32 floats: inline vector bias adds and exact GELU (a library call per row cost more
        // than the work); the same arithmetic as VecKernels.Gelu, so the same values.
        bool v256 = Vector256.IsHardwareAccelerated && Simd.Level != SimdLevel.Scalar;
        bool v512 = v256 && Vector512.IsHardwareAccelerated && Simd.Level == SimdLevel.Vector512;
        bool gelu = Activation == GemmActivation.Gelu;
        for (int r = 0; r < rows; r++)
        {
            float* row = c + r * ldc;
            int q = 0;
            if (v512 && (bias != null || gelu))
            {
                for (; q + 16 <= cols; q += 16)
                {
                    var v = Vector512.Load(row + q);
                    if (bias != null) v += Vector512.Load(bias + q);
                    if (gelu) v = VecKernels.GeluExact(v);
                    v.Store(row + q);
                }
            }
            if (v256 && (bias != null || gelu))
            {
                for (; q + 8 <= cols; q += 8)
                {
                    var v = Vector256.Load(row + q);
                    if (bias != null) v += Vector256.Load(bias + q);
                    if (gelu) v = VecKernels.GeluExact(v);
                    v.Store(row + q);
                }
            }
            if (bias != null) for (int t = q; t < cols; t++) row[t] += bias[t];
            if (gelu) { for (; q < cols; q++) row[q] *= VecKernels.NormalCdf(row[q]); }
            else if (Activation == GemmActivation.GeluTanh) VecKernels.Gelu(new Span<float>(row, cols), new Span<float>(row, cols), tanhApprox: true);
        }
    }
}

/// <summary>An activation a GEMM can apply to its output (<see cref="GemmEpilogue"/>).</summary>
public enum GemmActivation
{
    /// <summary>None.</summary>
    None,
    /// <summary>Exact GELU, x * Phi(x).</summary>
    Gelu,
    /// <summary>GELU, tanh approximation.</summary>
    GeluTanh,
}

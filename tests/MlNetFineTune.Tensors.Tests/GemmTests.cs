using MlNetFineTune.Tensors.Cpu;
using Xunit;

namespace MlNetFineTune.Tensors.Tests;

/// <summary>Tests that change process-wide kernel state (Simd.Force, WorkerPool.SetThreads, Gemm test hooks).</summary>
[CollectionDefinition("GlobalKernelState", DisableParallelization = true)]
public sealed class GlobalKernelStateCollection
{
}

[Collection("GlobalKernelState")]
public sealed class GemmTests
{
    private static readonly SimdLevel[] AllLevels = [SimdLevel.Scalar, SimdLevel.Vector256, SimdLevel.Vector512];

    private static IEnumerable<SimdLevel> Levels => AllLevels.Where(l => l <= Simd.Hardware);

    private static readonly (bool TransA, bool TransB)[] Transposes = [(false, false), (false, true), (true, false), (true, true)];

    /// <summary>One operand laid out with an offset and a padded leading dimension.</summary>
    private sealed class Operand
    {
        public required float[] Data;
        public required int Offset;
        public required int Ld;
        public required int Rows;   // as stored
        public required int Cols;   // as stored

        public float At(int r, int c) => Data[Offset + r * Ld + c];

        public static Operand Random(int rows, int cols, int offset, int pad, Random rng)
        {
            int ld = cols + pad;
            var data = new float[offset + Math.Max(0, rows - 1) * ld + cols + 7];
            for (int i = 0; i < data.Length; i++) data[i] = (float)(rng.NextDouble() * 2 - 1);
            return new Operand { Data = data, Offset = offset, Ld = ld, Rows = rows, Cols = cols };
        }
    }

    private sealed record Problem(bool TransA, bool TransB, int M, int N, int K, Operand A, Operand B, Operand C0,
        double[] Product, double[] AbsProduct)
    {
        public float OpA(int i, int p) => TransA ? A.At(p, i) : A.At(i, p);
        public float OpB(int p, int j) => TransB ? B.At(j, p) : B.At(p, j);
        public string Describe() => $"{M}x{N}x{K} tA={TransA} tB={TransB}";
    }

    private static Problem MakeProblem(bool transA, bool transB, int m, int n, int k, int seed, int pad = 3, int offset = 5)
    {
        var rng = new Random(seed);
        var a = transA ? Operand.Random(k, m, offset, pad, rng) : Operand.Random(m, k, offset, pad, rng);
        var b = transB ? Operand.Random(n, k, offset + 2, pad + 1, rng) : Operand.Random(k, n, offset + 2, pad + 1, rng);
        var c = Operand.Random(m, n, offset + 1, pad + 2, rng);
        var product = new double[m * n];
        var abs = new double[m * n];
        var p0 = new Problem(transA, transB, m, n, k, a, b, c, product, abs);
        var opA = new double[m * k];
        var opB = new double[k * n];
        for (int i = 0; i < m; i++) for (int p = 0; p < k; p++) opA[i * k + p] = p0.OpA(i, p);
        for (int p = 0; p < k; p++) for (int j = 0; j < n; j++) opB[p * n + j] = p0.OpB(p, j);
        for (int i = 0; i < m; i++)
        for (int p = 0; p < k; p++)
        {
            double av = opA[i * k + p];
            for (int j = 0; j < n; j++)
            {
                double t = av * opB[p * n + j];
                product[i * n + j] += t;
                abs[i * n + j] += Math.Abs(t);
            }
        }
        return p0;
    }

    private static float[] Run(Problem pr, bool accumulate)
    {
        var c = (float[])pr.C0.Data.Clone();
        Gemm.Sgemm(pr.TransA, pr.TransB, pr.M, pr.N, pr.K,
            pr.A.Data, pr.A.Offset, pr.A.Ld, pr.B.Data, pr.B.Offset, pr.B.Ld, c, pr.C0.Offset, pr.C0.Ld, accumulate);
        return c;
    }

    private static void Verify(Problem pr, bool accumulate, float[] c, string what)
    {
        double tol = 1e-5 * Math.Sqrt(pr.K + 1);
        var inWindow = new bool[c.Length];
        for (int i = 0; i < pr.M; i++)
        for (int j = 0; j < pr.N; j++)
        {
            int idx = pr.C0.Offset + i * pr.C0.Ld + j;
            inWindow[idx] = true;
            double c0 = pr.C0.Data[idx];
            double expected = pr.Product[i * pr.N + j] + (accumulate ? c0 : 0);
            double scale = pr.AbsProduct[i * pr.N + j] + (accumulate ? Math.Abs(c0) : 0) + 1e-30;
            double err = Math.Abs(c[idx] - expected);
            if (!(err <= tol * scale))
                Assert.Fail($"{what}: C[{i},{j}] = {c[idx]}, expected {expected} (err {err:E2} > {tol * scale:E2})");
        }
        for (int idx = 0; idx < c.Length; idx++)
            if (!inWindow[idx] && BitConverter.SingleToInt32Bits(c[idx]) != BitConverter.SingleToInt32Bits(pr.C0.Data[idx]))
                Assert.Fail($"{what}: C element {idx} outside the m x n window was written.");
    }

    private static void WithThreads(int threads, Action body)
    {
        int saved = WorkerPool.Threads;
        WorkerPool.SetThreads(threads);
        try { body(); }
        finally { WorkerPool.SetThreads(saved); }
    }

    private static void WithHooks(bool forcePacked, (int, int, int)? blocking, Action body)
    {
        bool savedForce = Gemm.ForcePacked;
        var savedBlocking = Gemm.BlockingOverride;
        Gemm.ForcePacked = forcePacked;
        Gemm.BlockingOverride = blocking;
        try { body(); }
        finally
        {
            Gemm.ForcePacked = savedForce;
            Gemm.BlockingOverride = savedBlocking;
        }
    }

    // Checks one problem on every SIMD path, at 1 and 2 threads, with and without accumulate; the results
    // at 1 and 2 threads must also be bitwise equal.
    private static void CheckAllPaths(Problem pr, string name)
    {
        foreach (var level in Levels)
        {
            using var scope = Simd.Force(level);
            foreach (bool accumulate in new[] { false, true })
            {
                float[]? first = null;
                foreach (int threads in new[] { 1, 2 })
                {
                    string what = $"{name} {pr.M}x{pr.N}x{pr.K} tA={pr.TransA} tB={pr.TransB} acc={accumulate} {level} threads={threads}";
                    float[] c = [];
                    WithThreads(threads, () => c = Run(pr, accumulate));
                    Verify(pr, accumulate, c, what);
                    if (first == null) first = c;
                    else Assert.True(first.AsSpan().SequenceEqual(c), $"{what}: differs bitwise from threads=1");
                }
            }
        }
    }

    public static TheoryData<int, int, int> Shapes => new()
    {
        { 1, 1, 1 },
        { 1, 37, 1 },
        { 1, 40, 300 },     // m == 1 (direct path even though large)
        { 1, 300, 260 },    // m == 1 with B^T and enough work: columns split over the threads
        { 3, 1, 9 },
        { 7, 13, 5 },
        { 6, 16, 8 },
        { 17, 33, 65 },
        { 13, 47, 257 },
        { 9, 21, 1030 },    // k straddles the Vector256 KC (1024): two k blocks at the default blocking
        { 12, 32, 192 },    // exactly one Vector512 tile, kc = KC(512)
        { 25, 65, 193 },
        { 150, 40, 30 },    // m straddles MC (96 for Vector256)
        { 64, 64, 64 },
    };

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Sgemm_MatchesReference_AllPathsAndTransposes(int m, int n, int k)
    {
        int seed = m * 1000003 + n * 1009 + k;
        foreach (var (tA, tB) in Transposes)
        {
            var pr = MakeProblem(tA, tB, m, n, k, seed++);
            CheckAllPaths(pr, "default");
            WithHooks(forcePacked: true, blocking: null, () => CheckAllPaths(pr, "packed"));
        }
    }

    // Sgemm followed by a separate bias pass and GELU over each row: what the fused epilogue must reproduce.
    // The fused product's reference: the pre-activation in double precision (products, old C, bias), rounded
    // once, then the activation; with each element's error allowance (the GEMM's, carried through the
    // activation, whose slope is below 1.2, plus the activation's own rounding). The kernels may add the bias
    // before or after the products, so the float results differ from an unfused float pass by rounding only.
    private static (float[] Want, double[] Allowed) Unfused(Problem pr, bool accumulate, float[] bias, GemmActivation act)
    {
        var want = (float[])pr.C0.Data.Clone();
        var allowed = new double[want.Length];
        double tol = 1e-5 * Math.Sqrt(pr.K + 1);
        for (int i = 0; i < pr.M; i++)
        {
            var row = want.AsSpan(pr.C0.Offset + i * pr.C0.Ld, pr.N);
            for (int j = 0; j < pr.N; j++)
            {
                double c0 = accumulate ? row[j] : 0;
                double pre = pr.Product[i * pr.N + j] + c0 + bias[3 + j];
                double scale = pr.AbsProduct[i * pr.N + j] + Math.Abs(c0) + Math.Abs(bias[3 + j]);
                row[j] = (float)pre;
                allowed[pr.C0.Offset + i * pr.C0.Ld + j] = 1.2 * tol * scale;
            }
            if (act != GemmActivation.None) VecKernels.Gelu(row, row, act == GemmActivation.GeluTanh);
            for (int j = 0; j < pr.N; j++) allowed[pr.C0.Offset + i * pr.C0.Ld + j] += 2e-6 * (1 + Math.Abs(row[j]));
        }
        return (want, allowed);
    }

    private static void CheckEpilogue(Problem pr, string name)
    {
        var rng = new Random(pr.M + pr.N);
        var bias = Enumerable.Range(0, pr.N + 5).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        foreach (var level in Levels)
        {
            using var scope = Simd.Force(level);
            foreach (bool accumulate in new[] { false, true })
            foreach (var act in new[] { GemmActivation.None, GemmActivation.Gelu, GemmActivation.GeluTanh })
            {
                var (want, allowed) = Unfused(pr, accumulate, bias, act);
                float[]? first = null;
                foreach (int threads in new[] { 1, 2 })
                {
                    string what = $"{name} {pr.M}x{pr.N}x{pr.K} tA={pr.TransA} tB={pr.TransB} acc={accumulate} {act} {level} threads={threads}";
                    var c = (float[])pr.C0.Data.Clone();
                    WithThreads(threads, () => Gemm.SgemmEpilogue(pr.TransA, pr.TransB, pr.M, pr.N, pr.K,
                        pr.A.Data, pr.A.Offset, pr.A.Ld, pr.B.Data, pr.B.Offset, pr.B.Ld, c, pr.C0.Offset, pr.C0.Ld, accumulate,
                        bias, 3, act));
                    for (int i = 0; i < c.Length; i++)
                        Assert.True(Math.Abs(c[i] - want[i]) <= allowed[i], $"{what}: [{i}] {c[i]} vs {want[i]} (allowed {allowed[i]:E2})");
                    if (first == null) first = c;
                    else Assert.True(first.AsSpan().SequenceEqual(c), $"{what}: differs bitwise from threads=1");
                }
            }
        }
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void SgemmEpilogue_AddsBiasAndActivation_AllPaths(int m, int n, int k)
    {
        int seed = m * 7919 + n * 31 + k;
        foreach (var (tA, tB) in Transposes)
        {
            var pr = MakeProblem(tA, tB, m, n, k, seed++);
            CheckEpilogue(pr, "default");
            WithHooks(forcePacked: true, blocking: null, () => CheckEpilogue(pr, "packed"));
        }
        // Many k, m and n blocks with ragged edges: the epilogue must run once per tile, after the last k block.
        WithHooks(forcePacked: true, blocking: (37, 20, 40), () => CheckEpilogue(MakeProblem(false, true, 71, 101, 130, seed), "small-blocks"));
    }

    [Fact]
    public void LinearGelu_EqualsGeluOfLinear_AndKeepsTheGraphWhenGradientsAreNeeded()
    {
        var rng = new Rng(8);
        var x = Tensor.RandN(rng, 5, 9, 48);
        var w = Tensor.RandN(rng, 0f, 0.2f, 70, 48);
        var b = Tensor.RandN(rng, 70);
        foreach (var approx in new[] { GeluApproximation.None, GeluApproximation.Tanh })
        {
            var fused = Ops.LinearGelu(x, w, b, approx).ToArray();
            var plain = Ops.Gelu(Ops.Linear(x, w, b), approx).ToArray();
            for (int i = 0; i < fused.Length; i++) Assert.True(Math.Abs(fused[i] - plain[i]) <= 1e-6f * (1 + Math.Abs(plain[i])));
        }
        Assert.Equal(new[] { 5, 9, 70 }, Ops.LinearGelu(x, w, null).Shape);
        var wg = w.Detach().RequireGrad();
        var y = Ops.LinearGelu(x, wg, b);
        Assert.Equal("gelu", y.GradFnName);
        Ops.Sum(y).Backward();
        Assert.NotNull(wg.Grad);
        Assert.Contains("does not end in 48", Assert.Throws<ArgumentException>(() => Ops.LinearGelu(Tensor.Zeros(2, 47), w, b)).Message);
    }

    // A random product: shape (m in [minM, maxM), n, k from 1), transposes, accumulate, cache blocking (a third
    // of the time the default) and SIMD level, drawn in that order.
    private static (Problem Pr, bool Accumulate, (int, int, int)? Blocking, SimdLevel Level) RandomCase(Random rng,
        int minM, int maxM, int maxN, int maxK, int seed)
    {
        int m = rng.Next(minM, maxM), n = rng.Next(1, maxN), k = rng.Next(1, maxK);
        bool tA = rng.Next(2) == 0, tB = rng.Next(2) == 0, accumulate = rng.Next(2) == 0;
        var blocking = rng.Next(3) == 0 ? ((int, int, int)?)null : (rng.Next(1, 70), rng.Next(1, 50), rng.Next(1, 90));
        var pr = MakeProblem(tA, tB, m, n, k, seed, pad: rng.Next(0, 3), offset: rng.Next(0, 4));
        return (pr, accumulate, blocking, Levels.ElementAt(rng.Next(Levels.Count())));
    }

    // Runs pr through SgemmEpilogue with op(B) packed ahead (PackedMatrix) for the current level and blocking.
    private static unsafe float[] RunPrepacked(Problem pr, bool accumulate, float[]? bias, GemmActivation act, PackedMatrix? pack = null)
    {
        if (pack == null)
            fixed (float* pb = pr.B.Data)
                pack = PackedMatrix.PackB(Gemm.CurrentLevel, pr.TransB, pr.N, pr.K, pb + pr.B.Offset, pr.B.Ld);
        var c = (float[])pr.C0.Data.Clone();
        Gemm.SgemmEpilogue(pr.TransA, pr.TransB, pr.M, pr.N, pr.K, pr.A.Data, pr.A.Offset, pr.A.Ld, pr.B.Data, pr.B.Offset, pr.B.Ld,
            c, pr.C0.Offset, pr.C0.Ld, accumulate, bias, bias == null ? 0 : 3, act, pack);
        return c;
    }

    // For each m, (n, k) and op(B) form, with and without bias and GELU, accumulating or not, B packed ahead or per call,
    // at 1 and 2 threads (the packed path): the product with a switch set (off(true)) must be bitwise the product without
    // it (off(false)), and right; the switch is set back to `restore` after each product.
    private static void CheckSwitchKeepsBits(string what, Action<bool> off, bool restore, int[] ms, (int N, int K)[] nks, int seed)
    {
        foreach (int m in ms)
        foreach (var (n, k) in nks)
        foreach (bool transB in new[] { true, false })
        {
            var pr = MakeProblem(false, transB, m, n, k, seed++);
            var rng = new Random(seed);
            var bias = Enumerable.Range(0, n + 3).Select(_ => (float)(rng.NextDouble() - 0.5)).ToArray();
            foreach (bool accumulate in new[] { false, true })
            foreach (var (b, act) in new[] { ((float[]?)null, GemmActivation.None), (bias, GemmActivation.Gelu), (bias, GemmActivation.None) })
            foreach (bool prepacked in new[] { false, true })
            foreach (int threads in new[] { 1, 2 })
            {
                string where = $"{pr.Describe()} acc={accumulate} bias={b != null} {act} prepacked={prepacked} threads={threads}";
                float[] Run(bool set)
                {
                    off(set);
                    try { return RunPackedPath(pr, accumulate, b, act, prepacked, threads); }
                    finally { off(restore); }
                }
                var got = Run(false);
                Assert.True(Run(true).AsSpan().SequenceEqual(got), $"{where}: {what} changed bits");
                if (b == null) Verify(pr, accumulate, got, where);
                else
                {
                    var (want, allowed) = Unfused(pr, accumulate, b, act);
                    for (int i = 0; i < got.Length; i++)
                        Assert.True(Math.Abs(got[i] - want[i]) <= allowed[i], $"{where}: [{i}] {got[i]} vs {want[i]} (allowed {allowed[i]:E2})");
                }
            }
        }
    }

    // Runs pr through SgemmEpilogue on the packed path (bias at offset 3 when given) at `threads` threads, with op(B)
    // packed ahead or packed per call.
    private static float[] RunPackedPath(Problem pr, bool accumulate, float[]? bias, GemmActivation act, bool prepacked, int threads)
    {
        float[] got = [];
        WithHooks(forcePacked: true, blocking: null, () => WithThreads(threads, () =>
        {
            if (prepacked) got = RunPrepacked(pr, accumulate, bias, act);
            else
            {
                got = (float[])pr.C0.Data.Clone();
                Gemm.SgemmEpilogue(pr.TransA, pr.TransB, pr.M, pr.N, pr.K, pr.A.Data, pr.A.Offset, pr.A.Ld, pr.B.Data, pr.B.Offset, pr.B.Ld,
                    got, pr.C0.Offset, pr.C0.Ld, accumulate, bias, bias == null ? 0 : 3, act);
            }
        }));
        return got;
    }

    [Fact]
    public void SgemmWithPackedB_IsBitwiseTheProductThatPacksPerCall_AllLevelsBlockingsAndThreads()
    {
        var rng = new Random(77);
        for (int it = 0; it < 40; it++)
        {
            // Small blockings cross many k and n blocks (ragged), so every block of the pack is addressed.
            var (pr, accumulate, blocking, level) = RandomCase(rng, 2, 90, 130, 300, 900 + it);
            var bias = rng.Next(2) == 0 ? null : Enumerable.Range(0, pr.N + 3).Select(_ => (float)(rng.NextDouble() - 0.5)).ToArray();
            var act = (GemmActivation)rng.Next(3);
            using var scope = Simd.Force(level);
            WithHooks(forcePacked: true, blocking, () =>
            {
                string what = $"case {it}: {pr.Describe()} acc={accumulate} bias={bias != null} {act} {level} blocking={blocking}";
                float[] want = [];
                WithThreads(1, () =>
                {
                    want = (float[])pr.C0.Data.Clone();
                    Gemm.SgemmEpilogue(pr.TransA, pr.TransB, pr.M, pr.N, pr.K, pr.A.Data, pr.A.Offset, pr.A.Ld, pr.B.Data, pr.B.Offset, pr.B.Ld,
                        want, pr.C0.Offset, pr.C0.Ld, accumulate, bias, bias == null ? 0 : 3, act);
                });
                if (bias == null && act == GemmActivation.None) Verify(pr, accumulate, want, what);
                foreach (int threads in new[] { 1, 2 })
                {
                    float[] got = [];
                    WithThreads(threads, () => got = RunPrepacked(pr, accumulate, bias, act));
                    Assert.True(want.AsSpan().SequenceEqual(got), $"{what} threads={threads}: packed-ahead B differs from packing per call");
                }
            });
        }
    }

    [Fact]
    public void Sgemm_SplitTail_IsBitwiseTheUnsplitProduct_AndRight()
    {
        // Blocks ending in one or two rows end in two panels of at most four rows instead (Vector256, A as stored):
        // each row must come out with the same bits as from the 6-row panels, with bias, GELU, accumulation, packed
        // or prepacked B, at one and two threads.
        if (Simd.Hardware < SimdLevel.Vector256) return;
        using var scope = Simd.Force(SimdLevel.Vector256);
        var bk = GemmBlocking.For(SimdLevel.Vector256);
        int[] ms = [7, 8, 13, 14, 31, 32, 38, 128, 151];
        foreach (int m in ms)
            Assert.True(GemmPacked.SplitTail(bk, false, Math.Min(m, bk.MC)) || m > bk.MC, $"m={m} does not exercise the split tail");
        bool before = GemmPacked.NoTailSplit;
        CheckSwitchKeepsBits("the split tail", off => GemmPacked.NoTailSplit = off, before, ms, [(16, 24), (40, 300)], 4242);
    }

    [Fact]
    public unsafe void SgemmWithPackedB_PackForOtherBlockSizes_IsNotUsed_AndTheResultStaysRight()
    {
        var pr = MakeProblem(false, true, 40, 70, 90, 5);
        PackedMatrix pack = null!;
        WithHooks(forcePacked: true, blocking: (16, 12, 32), () =>
        {
            fixed (float* pb = pr.B.Data) pack = PackedMatrix.PackB(Gemm.CurrentLevel, true, pr.N, pr.K, pb + pr.B.Offset, pr.B.Ld);
        });
        // Default block sizes now: the pack's k blocks do not match, so the product packs B itself.
        Verify(pr, false, RunPrepacked(pr, false, null, GemmActivation.None, pack), "pack for other blocks");
        // Driven directly with a pack that does not fit, the packed driver refuses rather than read it wrongly.
        var c = new float[pr.M * pr.N];
        var ex = Assert.Throws<ArgumentException>(() =>
        {
            fixed (float* pa = pr.A.Data, pb = pr.B.Data, pc = c)
                GemmPacked.Multiply(Gemm.CurrentLevel, false, true, pr.M, pr.N, pr.K, pa + pr.A.Offset, pr.A.Ld, pb + pr.B.Offset, pr.B.Ld,
                    pc, pr.N, false, 1, default, pack);
        });
        Assert.Contains("Packed B holds 90x70", ex.Message);
    }

    [Fact]
    public void Sgemm_SplitK_DeepProducts_MatchReference_SameAtOneAndTwoThreads()
    {
        // A weight-gradient shape that splits with the default knobs (k = 2100: two segments).
        Assert.Equal(2, Gemm.KSegments(40, 30, 2100));
        Assert.Equal(1, Gemm.KSegments(1100, 30, 2100));   // k under twice m: not split
        Assert.Equal(1, Gemm.KSegments(40, 30, 2000));     // not deep enough
        int seed = 41;
        int savedMin = Gemm.SplitKMin, savedSeg = Gemm.SplitKSegment;
        // Every product starts from poisoned partials: a segment no thread computes cannot hide behind the partial
        // an earlier call of the same product left in the reused scratch.
        Gemm.PoisonSplitKScratch = true;
        try
        {
            foreach (var (tA, tB) in Transposes)
                CheckAllPaths(MakeProblem(tA, tB, 40, 30, 2100, seed++), "split-k default");

            // Many small segments (forced), ragged k blocks inside each, every transpose, accumulate or not.
            Gemm.SplitKMin = 64;
            Gemm.SplitKSegment = 37;
            var rng = new Random(99);
            for (int it = 0; it < 12; it++)
            {
                int m = rng.Next(2, 40), n = rng.Next(2, 40), k = rng.Next(90, 400);
                Assert.True(Gemm.KSegments(m, n, k) > 1);
                var (tA, tB) = Transposes[it % 4];
                WithHooks(forcePacked: false, blocking: rng.Next(2) == 0 ? null : (rng.Next(5, 40), 12, 32),
                    () => CheckAllPaths(MakeProblem(tA, tB, m, n, k, 700 + it), $"split-k forced {it}"));
            }
        }
        finally
        {
            Gemm.SplitKMin = savedMin;
            Gemm.SplitKSegment = savedSeg;
            Gemm.PoisonSplitKScratch = false;
        }
    }

    [Fact]
    public void Sgemm_LargeOddShape_MatchesReference()
    {
        int seed = 7;
        foreach (var (tA, tB) in Transposes)
            CheckAllPaths(MakeProblem(tA, tB, 300, 200, 700, seed++), "300x200x700");
    }

    [Fact]
    public void Sgemm_ManySmallCacheBlocks_MatchesReference()
    {
        // Tiny KC/MC/NC so a moderate product crosses many k, m and n block boundaries (with ragged edges).
        int seed = 11;
        WithHooks(forcePacked: true, blocking: (37, 20, 40), () =>
        {
            foreach (var (tA, tB) in Transposes)
                CheckAllPaths(MakeProblem(tA, tB, 71, 101, 130, seed++), "small-blocks");
        });
    }

    [Fact]
    public void Sgemm_TwoThreads_ManyBlocks_BitwiseEqualToOneThread_Repeatedly()
    {
        // Many k blocks and small row blocks, so the two threads hand C tiles to each other from one k
        // block to the next: a race there shows up as a difference from the single-thread result.
        WithHooks(forcePacked: true, blocking: (16, 24, 64), () =>
        {
            var pr = MakeProblem(false, false, 190, 150, 300, 21);
            float[] expected = [];
            WithThreads(1, () => expected = Run(pr, accumulate: true));
            Verify(pr, true, expected, "one thread");
            WithThreads(2, () =>
            {
                for (int rep = 0; rep < 40; rep++)
                    Assert.True(expected.AsSpan().SequenceEqual(Run(pr, accumulate: true)), $"repetition {rep}");
            });
        });
    }

    [Fact]
    public void Sgemm_RandomShapesAndBlockings_MatchReference_SameAtOneAndTwoThreads()
    {
        var rng = new Random(1234);
        for (int it = 0; it < 60; it++)
        {
            var (pr, accumulate, blocking, level) = RandomCase(rng, 1, 120, 120, 200, 500 + it);
            using var scope = Simd.Force(level);
            WithHooks(forcePacked: rng.Next(4) != 0, blocking, () =>
            {
                string what = $"case {it}: {pr.Describe()} acc={accumulate} {level} blocking={blocking}";
                float[] one = [], two = [];
                WithThreads(1, () => one = Run(pr, accumulate));
                WithThreads(2, () => two = Run(pr, accumulate));
                Verify(pr, accumulate, one, what);
                Assert.True(one.AsSpan().SequenceEqual(two), $"{what}: threads 1 and 2 differ");
            });
        }
    }

    [Fact]
    public void Sgemm_SmallPanelKernels_AreBitwiseTheFullKernel_AndRight()
    {
        // A last row panel of fewer rows than MR runs the smallest kernel that covers it (Vector512: 4, 8 or 12 rows of
        // a 12-row panel; Vector256: 4 or 6 of 6), straight into C when it covers exactly the panel's rows. Each row must
        // come out with the bits the full kernel gives it (GemmPacked.NoSmallPanelKernels), and right, with bias, GELU,
        // accumulation, packed or prepacked B, at one and two threads. A level the hardware lacks runs emulated.
        var savedOverride = Gemm.KernelOverride;
        try
        {
            foreach (var level in new[] { SimdLevel.Vector256, SimdLevel.Vector512 })
            {
                using var scope = level <= Simd.Hardware ? Simd.Force(level) : null;
                Gemm.KernelOverride = level <= Simd.Hardware ? savedOverride : level;
                bool before = GemmPacked.NoSmallPanelKernels;
                CheckSwitchKeepsBits($"{level}: the smaller kernel", full => GemmPacked.NoSmallPanelKernels = full, before,
                    [1, 3, 4, 5, 8, 9, 12, 13, 16, 20, 27, 32], [(32, 24), (45, 70)], 5151 + (int)level);
            }
        }
        finally { Gemm.KernelOverride = savedOverride; }
    }

    [Fact]
    public unsafe void PackA_PartialPanels_HoldTheRowsThenZeros()
    {
        // A row panel with fewer rows than MR holds op(A)'s rows interleaved by k and zeros in the rows past them, over
        // the whole depth, whatever the buffer held before (the vector transposes cover partial panels too).
        foreach (var level in new[] { SimdLevel.Vector256, SimdLevel.Vector512 })
        {
            var bk = GemmBlocking.For(level);
            int mr = bk.MR;
            foreach (int rows in Enumerable.Range(1, mr))
            foreach (int kc in new[] { 1, 3, 4, 9, 16 })
            {
                int lda = kc + 3;
                var a = Enumerable.Range(0, (rows + 1) * lda).Select(i => (float)(i + 1)).ToArray();
                var dst = Enumerable.Repeat(float.NaN, mr * kc).ToArray();
                fixed (float* pa = a, pd = dst)
                    GemmPacked.PackA(bk, false, pa, lda, 1, rows, 2, kc, pd, splitTail: false);
                for (int p = 0; p < kc; p++)
                for (int x = 0; x < mr; x++)
                {
                    float want = x < rows ? a[(1 + x) * lda + 2 + p] : 0f;
                    Assert.True(dst[p * mr + x] == want, $"{level} rows={rows} kc={kc}: packed[{p}, {x}] = {dst[p * mr + x]}, expected {want}");
                }
            }
        }
    }

    [Fact]
    public void Sgemm_Vector512Kernel_MatchesReference_EvenWithoutHardware()
    {
        // Without AVX-512 the Vector512 kernel runs in software emulation: slow, but it must still be right.
        var saved = Gemm.KernelOverride;
        Gemm.KernelOverride = SimdLevel.Vector512;
        try
        {
            int seed = 99;
            WithHooks(forcePacked: true, blocking: (50, 24, 64), () =>
            {
                foreach (var (tA, tB) in Transposes)
                foreach (bool accumulate in new[] { false, true })
                {
                    var pr = MakeProblem(tA, tB, 27, 70, 61, seed++);
                    Verify(pr, accumulate, Run(pr, accumulate), $"Vector512 kernel tA={tA} tB={tB} acc={accumulate}");
                }
            });
            var small = MakeProblem(false, true, 5, 40, 33, 3);
            Verify(small, true, Run(small, true), "Vector512 direct path");
            var row = MakeProblem(false, false, 3, 70, 9, 4);
            Verify(row, false, Run(row, false), "Vector512 direct path rows");
        }
        finally
        {
            Gemm.KernelOverride = saved;
        }
    }

    [Fact]
    public void Sgemm_KZero_ClearsOrKeepsC()
    {
        var c = new float[] { 1, 2, 3, 4, 5, 6 };
        Gemm.Sgemm(false, false, 2, 2, 0, [], 0, 0, [], 0, 2, c, 1, 3, accumulate: true);
        Assert.Equal(new float[] { 1, 2, 3, 4, 5, 6 }, c);
        Gemm.Sgemm(false, false, 2, 2, 0, [], 0, 0, [], 0, 2, c, 1, 3, accumulate: false);
        Assert.Equal(new float[] { 1, 0, 0, 4, 0, 0 }, c);
    }

    [Fact]
    public void Sgemm_OutOfRangeOperands_Throw()
    {
        var a = new float[6];
        var b = new float[6];
        var c = new float[4];
        Assert.Throws<ArgumentException>(() => Gemm.Sgemm(false, false, 2, 2, 3, a, 1, 3, b, 0, 2, c, 0, 2, false));
        Assert.Throws<ArgumentException>(() => Gemm.Sgemm(false, false, 2, 2, 3, a, 0, 3, b, 0, 2, c, 1, 2, false));
        Assert.Throws<ArgumentException>(() => Gemm.Sgemm(false, true, 2, 2, 3, a, 0, 3, b, 0, 4, c, 0, 2, false));
        Assert.Throws<ArgumentOutOfRangeException>(() => Gemm.Sgemm(false, false, -1, 2, 3, a, 0, 3, b, 0, 2, c, 0, 2, false));
    }

    [Fact]
    public void Sgemm_OneRowTimesTransposedB_IsEachColumnsOwnDotProduct()
    {
        // A row vector times B^T (a linear layer on one token): the direct path computes eight columns at once; each
        // column must be the same bits as that column computed alone (a one-column product), tails in n and k included.
        // Every level, Vector512 in software emulation where the hardware lacks it.
        var savedOverride = Gemm.KernelOverride;
        try
        {
            foreach (var level in AllLevels)
            {
                using var scope = level <= Simd.Hardware ? Simd.Force(level) : null;
                Gemm.KernelOverride = level <= Simd.Hardware ? savedOverride : level;
                CheckColumns(level);
            }
        }
        finally { Gemm.KernelOverride = savedOverride; }

        static void CheckColumns(SimdLevel level)
        {
            foreach (var (n, k) in new[] { (37, 45), (16, 8), (9, 300), (8, 7) })
            {
                var pr = MakeProblem(false, true, 1, n, k, n * 31 + k);
                foreach (bool accumulate in new[] { false, true })
                {
                    var c = Run(pr, accumulate);
                    Verify(pr, accumulate, c, $"1x{n}x{k} NT {level} acc={accumulate}");
                    for (int j = 0; j < n; j++)
                    {
                        var one = (float[])pr.C0.Data.Clone();
                        Gemm.Sgemm(false, true, 1, 1, k, pr.A.Data, pr.A.Offset, pr.A.Ld, pr.B.Data, pr.B.Offset + j * pr.B.Ld, pr.B.Ld,
                            one, pr.C0.Offset + j, pr.C0.Ld, accumulate);
                        int idx = pr.C0.Offset + j;
                        Assert.True(BitConverter.SingleToInt32Bits(one[idx]) == BitConverter.SingleToInt32Bits(c[idx]),
                            $"1x{n}x{k} {level} acc={accumulate} column {j}: {c[idx]:R} vs alone {one[idx]:R}");
                    }
                }
            }
        }
    }

    [Fact]
    public void Sgemm_IsBitwiseDeterministic_TwiceInARow()
    {
        foreach (var level in Levels)
        {
            using var scope = Simd.Force(level);
            foreach (var (tA, tB) in Transposes)
            {
                var pr = MakeProblem(tA, tB, 131, 201, 290, 5);
                foreach (int threads in new[] { 1, 2 })
                {
                    WithThreads(threads, () =>
                    {
                        var first = Run(pr, accumulate: true);
                        var second = Run(pr, accumulate: true);
                        Assert.True(first.AsSpan().SequenceEqual(second), $"{level} tA={tA} tB={tB} threads={threads}: two runs differ");
                    });
                }
            }
        }
    }

    [Theory]
    [InlineData(false, false)]
    [InlineData(true, true)]
    [InlineData(false, true)]
    [InlineData(true, false)]
    public void SgemmBatched_MatchesPerBatchSgemm_WithBroadcast(bool transA, bool transB)
    {
        const int batch = 5, m = 9, n = 21, k = 14;
        var rng = new Random(transA ? 1 : 2);
        int aRows = transA ? k : m, aCols = transA ? m : k, lda = aCols + 2;
        int bRows = transB ? n : k, bCols = transB ? k : n, ldb = bCols + 1;
        int ldc = n + 3;
        long strideA = aRows * lda + 4, strideB = bRows * ldb + 1, strideC = m * ldc + 2;
        float[] Rand(long len) { var x = new float[len]; for (int i = 0; i < len; i++) x[i] = (float)(rng.NextDouble() * 2 - 1); return x; }
        var a = Rand(3 + batch * strideA);
        var b = Rand(1 + batch * strideB);
        var c0 = Rand(2 + batch * strideC);

        foreach (var level in Levels)
        {
            using var scope = Simd.Force(level);
            foreach (var (sa, sb) in new[] { (strideA, strideB), (0L, strideB), (strideA, 0L) })
            foreach (bool accumulate in new[] { false, true })
            {
                // Expected: one Sgemm per batch (Sgemm itself is checked against the reference above).
                var expected = (float[])c0.Clone();
                for (int i = 0; i < batch; i++)
                    Gemm.Sgemm(transA, transB, m, n, k, a, 3 + (int)(i * sa), lda, b, 1 + (int)(i * sb), ldb,
                        expected, 2 + (int)(i * strideC), ldc, accumulate);
                foreach (int threads in new[] { 1, 2 })
                {
                    var c = (float[])c0.Clone();
                    WithThreads(threads, () => Gemm.SgemmBatched(batch, transA, transB, m, n, k,
                        a, 3, lda, sa, b, 1, ldb, sb, c, 2, ldc, strideC, accumulate));
                    Assert.True(expected.AsSpan().SequenceEqual(c), $"{level} strides=({sa},{sb}) acc={accumulate} threads={threads}");
                }
            }
        }
    }

    [Fact]
    public void SgemmBatched_MatchesReference_LargerMatricesAndStrideZeroC()
    {
        // Big enough that each matrix takes the packed path; B (stored n x k) is broadcast.
        const int batch = 3, m = 70, n = 90, k = 110;
        var rng = new Random(40);
        var a = new float[batch * m * k];
        var b = new float[n * k];
        for (int i = 0; i < a.Length; i++) a[i] = (float)(rng.NextDouble() * 2 - 1);
        for (int i = 0; i < b.Length; i++) b[i] = (float)(rng.NextDouble() * 2 - 1);

        float[]? first = null;
        foreach (int threads in new[] { 1, 2 })
        {
            var c = new float[batch * m * n];
            WithThreads(threads, () => Gemm.SgemmBatched(batch, false, true, m, n, k, a, 0, k, m * k, b, 0, k, 0, c, 0, n, m * n, false));
            for (int bi = 0; bi < batch; bi++)
            {
                double tol = 1e-5 * Math.Sqrt(k + 1);
                for (int i = 0; i < m; i++)
                for (int j = 0; j < n; j++)
                {
                    double s = 0, abs = 0;
                    for (int p = 0; p < k; p++)
                    {
                        double t = (double)a[bi * m * k + i * k + p] * b[j * k + p];
                        s += t;
                        abs += Math.Abs(t);
                    }
                    double err = Math.Abs(c[bi * m * n + i * n + j] - s);
                    Assert.True(err <= tol * abs, $"batch {bi} C[{i},{j}] err {err:E2} threads={threads}");
                }
            }
            if (first == null) first = c;
            else Assert.True(first.AsSpan().SequenceEqual(c), "threads 1 and 2 differ");
        }

        // strideC == 0: the batches run in order into one C; with accumulate they sum.
        var sum = new float[m * n];
        Gemm.SgemmBatched(batch, false, true, m, n, k, a, 0, k, m * k, b, 0, k, 0, sum, 0, n, 0, accumulate: true);
        var expected = new float[m * n];
        for (int i = 0; i < batch; i++) Gemm.Sgemm(false, true, m, n, k, a, i * m * k, k, b, 0, k, expected, 0, n, true);
        Assert.True(expected.AsSpan().SequenceEqual(sum), "strideC = 0 with accumulate");
    }

    [Fact]
    public void WorkerPool_RunsEveryTask_PropagatesExceptions_NestsSerially()
    {
        WithThreads(2, () =>
        {
            var hits = new int[37];
            WorkerPool.Run(hits.Length, t => Interlocked.Increment(ref hits[t]));
            Assert.All(hits, h => Assert.Equal(1, h));

            var covered = new int[1001];
            WorkerPool.For(covered.Length, 10, (s, e) =>
            {
                for (int i = s; i < e; i++) Interlocked.Increment(ref covered[i]);
                // Nested: runs serially on this thread.
                int outer = Environment.CurrentManagedThreadId, inner = -1;
                WorkerPool.Run(1, _ => inner = Environment.CurrentManagedThreadId);
                Assert.Equal(outer, inner);
            });
            Assert.All(covered, h => Assert.Equal(1, h));

            var ex = Assert.Throws<InvalidOperationException>(() =>
                WorkerPool.Run(4, t => { if (t == 3) throw new InvalidOperationException("boom"); }));
            Assert.Equal("boom", ex.Message);

            // Still usable afterwards.
            int sum = 0;
            WorkerPool.Run(8, t => Interlocked.Add(ref sum, t));
            Assert.Equal(28, sum);
        });
    }

    [Theory]
    [InlineData(1, 1)]
    [InlineData(5, 7)]
    [InlineData(33, 8)]
    [InlineData(64, 67)]
    [InlineData(300, 256)]
    [InlineData(129, 1030)]
    public void Sum_OverLeadingDims_IsEachColumnSummedInRowOrder_AtEveryLevelAndThreadCount(int rows, int cols)
    {
        // The bias-gradient reduction: every column summed in row order, in float, so the vector groups, the
        // single-vector columns and the scalar tail all give exactly the sequential sum.
        var rng = new Random(rows * 1000 + cols);
        var data = new float[rows * cols];
        for (int i = 0; i < data.Length; i++) data[i] = (float)(rng.NextDouble() * 2 - 1) * (i % 5 == 0 ? 1000f : 1f);
        var expected = new float[cols];
        for (int j = 0; j < cols; j++)
        {
            float a = 0;
            for (int i = 0; i < rows; i++) a += data[i * cols + j];
            expected[j] = a;
        }
        foreach (var level in new[] { SimdLevel.Scalar, SimdLevel.Vector256 })
        {
            if ((int)level > (int)Simd.Hardware) continue;
            foreach (int threads in new[] { 1, 2 })
                WithThreads(threads, () =>
                {
                    using (Simd.Force(level))
                    {
                        var got = Ops.Sum(Tensor.FromArray(data, rows, cols), [0]).ToArray();
                        Assert.Equal(expected, got);
                    }
                });
        }
    }
}

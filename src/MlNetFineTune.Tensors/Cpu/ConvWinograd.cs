using System.Buffers;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace MlNetFineTune.Tensors.Cpu;

/// <summary>
/// Winograd F(2x2, 3x3) for 3x3, stride-1, undilated, ungrouped convolutions (Lavin and Gray, 2015).
/// Each 2x2 block of outputs ("tile") is computed from the 4x4 input patch under it:
/// <code>
///   Y = A^T [ (G g G^T) .* (B^T d B) ] A      (g: 3x3 kernel, d: 4x4 patch, .*: elementwise)
/// </code>
/// Summed over input channels, the 16 elementwise products become 16 independent GEMMs,
/// M[e] (OutC x tiles) = U[e] (OutC x C) * V[e] (C x tiles), with 16 * OutC * C * tiles multiply-adds against
/// 36 * OutC * C * tiles for im2col + GEMM: 2.25x fewer. The transforms only add, subtract and halve; the
/// kernel tests hold the results to the same 1e-5 relative tolerance as the direct paths, and the ResNet-18
/// activation and gradient fixtures from PyTorch pass unchanged.
/// Tiles are processed in chunks of whole tile rows (running on from one image into the next), each chunk on one
/// thread: transform its patches, run the 16 GEMMs (serial inside the chunk when there are several chunks),
/// transform back. The chunking depends on the shape only, never on the thread count, so the forward and the
/// input gradient are bitwise the same at any thread count; the weight gradient sums per-thread partials in a
/// fixed order, so it depends on the thread count only (as the im2col path's does).
/// The gradient of the input of such a convolution is the same kind of convolution of the output gradient
/// with the kernels turned 180 degrees and the channel axes swapped, so it runs through the same path.
/// The transforms run eight tiles at a time: along each tile row on planes with 8 or more tiles per row (the row's
/// last eight overlapping the group before them), and across tile rows and images on narrower planes (AVX2 gathers,
/// see <see cref="Narrow"/>); the kernel transforms eight kernels at a time.
/// </summary>
internal static class ConvWinograd
{
    /// <summary>Input and output channels from which the Winograd path is used (tests lower it to 1).</summary>
    internal static int MinChannels = 16;

    /// <summary>
    /// Input and output channels up to which the Winograd path is used. Each chunk repacks the 16 OutC x C
    /// kernel matrices for its GEMMs, so the chunk must hold enough tiles to amortise that: ResNet-18's 512-channel
    /// layers (7x7 and 2x2 outputs) ran 20-60% slower than im2col + GEMM, its 64-256-channel layers 20-25% faster.
    /// </summary>
    internal static int MaxChannels = 256;

    /// <summary>Switch for benchmarks and tests (false: always im2col + GEMM).</summary>
    internal static bool Enabled = true;

    /// <summary>
    /// Bytes of transformed patches (V, 16 x C x tiles) per chunk. ResNet-18 16 x 224, 2 threads, forward ms of
    /// the 3x3 layers at 64 / 128 / 256 channels: 512 KB 23.7 / 24.2 / 24.8, 2 MB 20.1 / 18.0 / 18.7, 8 MB 20.0 /
    /// 20.7 / 20.4 (im2col + GEMM: 25.5 / 23.1 / 24.1).
    /// </summary>
    internal static int ChunkBytes = 2 * 1024 * 1024;

    internal static bool Applies(in Conv2dShape s)
        => Enabled && s.KH == 3 && s.KW == 3 && s.StrideH == 1 && s.StrideW == 1 && s.DilationH == 1 &&
           s.DilationW == 1 && s.Groups == 1 && s.PadH <= 2 && s.PadW <= 2 &&
           Math.Min(s.C, s.OutC) >= MinChannels && Math.Max(s.C, s.OutC) <= MaxChannels &&
           (s.OW >= 15 || NarrowPays(s));

    /// <summary>
    /// Outputs narrower than 15 (under 8 tiles per row) transform eight tiles at a time across tile rows and images
    /// with AVX2 gathers (<see cref="Narrow"/>); that pays from <see cref="MinChannels"/> on, as long as the plane
    /// cuts into at least this many chunks, so both threads transform. 2 threads, ms forward / input
    /// gradient / weight gradient against im2col + GEMM: batch 64, 8x8 outputs at 128 channels (4 chunks) 8.0 / 8.2 /
    /// 9.2 against 13.4 / 13.7 / 14.1 (and 13.1 / 13.4 / 15.5 with the transforms one tile at a time); 4x4 at 256
    /// channels (4 chunks) 9.1 / 9.5 / 10.3 against 15.4 / 17.0 / 17.4; batch 256, 8x8 at 32 channels (4 chunks) 4.1-4.7
    /// / 4.4-4.6 / 4.9 against 5.7-5.8 / 5.5-5.8 / 5.9, at 16 channels (2 chunks) 1.8 / 1.7 / 2.0 against 2.2 / 2.2 /
    /// 2.2. In one chunk the transforms run on one thread: batch 64, 8x8 at 32 channels 2.2 / 2.2 / 2.5 against 1.6 /
    /// 1.5 / 1.5; batch 16, 7x7 at 128 channels 3.4 / 3.2 / 4.6 against 3.1 / 2.7 / 3.1 (both left to im2col).
    /// Tests lower it to 1.
    /// </summary>
    internal static int NarrowMinChunks = 2;

    /// <summary>
    /// Without AVX2 the narrow transforms run one tile at a time, which pays only with this many channels (ResNet-18
    /// 64 x 64, forward / weight-gradient ms: 8x8 outputs at 128 channels 9.5-12.8 / 11.7-13.8 against 9.5 / 8.9 for
    /// im2col + GEMM; 4x4 outputs at 256 channels 8.5 / 9.3 against 10.3 / 10.0).
    /// </summary>
    internal static int ScalarNarrowMinChannels = 256;

    private static bool NarrowPays(in Conv2dShape s)
    {
        if (!Narrow((s.OW + 1) / 2)) return Math.Min(s.C, s.OutC) >= ScalarNarrowMinChannels;
        return new Plan(s).Chunks >= NarrowMinChunks;
    }

    /// <summary>y = conv(x, w) + bias for a shape where <see cref="Applies"/>.</summary>
    internal static void Forward(in Conv2dShape s, float[] x, float[] w, float[]? bias, float[] y)
        => RunWithKernels(s, s, x, w, transposed: false, bias, y);

    // Transforms the kernels w (OutC x C of `forward`) once, then runs convolution `run` of x into y with them.
    private static void RunWithKernels(in Conv2dShape forward, Conv2dShape run, float[] x, float[] w, bool transposed,
        float[]? bias, float[] y)
    {
        var u = ArrayPool<float>.Shared.Rent(16 * forward.OutC * forward.C);
        try
        {
            TransformWeights(w, forward.OutC, forward.C, u);
            Run(run, x, u, transposed, bias, y);
        }
        finally
        {
            ArrayPool<float>.Shared.Return(u);
        }
    }

    /// <summary>
    /// gx = d(sum gy * y)/dx for a shape where <see cref="Applies"/>: the stride-1 convolution of gy with the
    /// flipped, channel-swapped kernels and padding 2 - pad, whose output is exactly H x W. Its transformed
    /// kernels need no transform of their own: G J = P G for the 3x3 flip J, with P swapping rows 0 and 3, so
    /// G (J g J) G^T = P U P^T, i.e. matrix e = 4a + b of the flipped kernels is the forward transform's
    /// U[4 p(a) + p(b)] (computed again here), transposed.
    /// </summary>
    internal static void BackwardInput(in Conv2dShape s, float[] gy, float[] w, float[] gx)
    {
        var t = new Conv2dShape(s.N, s.OutC, s.OH, s.OW, s.C, 3, 3, 1, 1, 2 - s.PadH, 2 - s.PadW, 1, 1, 1);
        if (t.OH != s.H || t.OW != s.W)
            throw new InvalidOperationException($"Conv2d Winograd: transposed shape {t} does not give the input size of {s}.");
        RunWithKernels(s, t, gy, w, transposed: true, null, gx);
    }

    /// <summary>
    /// gw (+)= d(sum gy * y)/dw for a shape where <see cref="Applies"/>. With m = U .* V per tile,
    /// dL/dm = A dY A^T, so dL/dU[e] = sum over tiles of (A dY A^T)[e] (OutC x tiles) times V[e]^T (tiles x C):
    /// 16 GEMMs per chunk, accumulated per thread (the threads' sums are added in a fixed order, so the result
    /// depends on the thread count only), then dL/dg = G^T dL/dU G.
    /// </summary>
    internal static void BackwardWeight(in Conv2dShape s, float[] gy, float[] x, float[] gw, bool accumulate)
    {
        int len = 16 * s.OutC * s.C;
        var plan = new Plan(s);
        int parts = Math.Min(WorkerPool.Threads, plan.Chunks);
        var partials = new float[parts][];
        var shape = s;
        try
        {
            for (int t = 0; t < parts; t++) partials[t] = ArrayPool<float>.Shared.Rent(len);
            // One range of chunks per part, split by the chunk count alone.
            WorkerPool.For(parts, 1, (p0, p1) =>
            {
                using var ws = new Workspace(shape, plan);
                for (int part = p0; part < p1; part++)
                {
                    var du = partials[part];
                    int k0 = (int)((long)plan.Chunks * part / parts), k1 = (int)((long)plan.Chunks * (part + 1) / parts);
                    for (int k = k0; k < k1; k++)
                    {
                        var (g0, g1, nt) = plan.Chunk(k);
                        if (ws.Tiles != null)
                        {
                            ws.Tiles.Fill(shape, plan, g0, g1);
                            InputTransformNarrow(shape, x, ws.Tiles, plan.Tw, ws.V, nt, ws.Phases);
                            GradientTransformNarrow(shape, gy, ws.Tiles, ws.M, nt);
                        }
                        else
                            foreach (var (n, i0, i1, off) in plan.Segments(g0, g1))
                            {
                                InputTransform(shape, x, n, i0, i1, plan.Tw, ws.V, nt, off, ws.Phases);
                                GradientTransform(shape, gy, n, i0, i1, plan.Tw, ws.M, nt, off);
                            }
                        int o = shape.OutC, cc = shape.C;
                        for (int e = 0; e < 16; e++)
                            Gemm.Sgemm(false, true, o, cc, nt, ws.M, e * o * nt, nt, ws.V, e * cc * nt, nt, du, e * o * cc, cc, k > k0);
                    }
                }
            });
            var sum = partials[0].AsSpan(0, len);
            for (int t = 1; t < parts; t++) System.Numerics.Tensors.TensorPrimitives.Add(sum, partials[t].AsSpan(0, len), sum);
            InverseTransformWeights(partials[0], s.OutC, s.C, gw, accumulate);
        }
        finally
        {
            foreach (var a in partials) if (a != null) ArrayPool<float>.Shared.Return(a);
        }
    }

    /// <summary>
    /// How the tiles are cut into chunks: runs of whole tile rows over the batch (image after image), with V
    /// (16 x C x tiles) within <see cref="ChunkBytes"/>. Depends on the shape alone, never on the thread count.
    /// </summary>
    private readonly struct Plan
    {
        public readonly int Tw, Th, Rows, Chunks, MaxTiles;
        public readonly long TotalRows;

        public Plan(in Conv2dShape s)
        {
            Tw = (s.OW + 1) / 2;
            Th = (s.OH + 1) / 2;
            TotalRows = (long)s.N * Th;
            Rows = (int)Math.Clamp(ChunkBytes / (64L * s.C * Tw), 1, TotalRows);
            Chunks = (int)((TotalRows + Rows - 1) / Rows);
            MaxTiles = Rows * Tw;
        }

        /// <summary>Chunk k: global tile rows [G0, G1) and its tile count.</summary>
        public (long G0, long G1, int Nt) Chunk(int k)
        {
            long g0 = (long)k * Rows, g1 = Math.Min(TotalRows, g0 + Rows);
            return (g0, g1, (int)(g1 - g0) * Tw);
        }

        /// <summary>Each image's share of tile rows [g0, g1): tile rows [I0, I1) of image N, at tile offset Off.</summary>
        public IEnumerable<(int N, int I0, int I1, int Off)> Segments(long g0, long g1)
        {
            for (long g = g0; g < g1;)
            {
                int n = (int)(g / Th), i0 = (int)(g % Th), i1 = (int)Math.Min(Th, i0 + (g1 - g));
                yield return (n, i0, i1, (int)(g - g0) * Tw);
                g += i1 - i0;
            }
        }
    }

    /// <summary>One thread's transformed patches (V), products (M) and phase rows, from the array pool.</summary>
    private sealed class Workspace : IDisposable
    {
        public readonly float[] V, M, Phases;
        /// <summary>For narrow planes (see <see cref="Narrow"/>): the chunk's segments and where its tiles lie.</summary>
        public readonly NarrowTiles? Tiles;

        public Workspace(in Conv2dShape s, in Plan plan)
        {
            V = ArrayPool<float>.Shared.Rent(16 * s.C * plan.MaxTiles);
            M = ArrayPool<float>.Shared.Rent(16 * s.OutC * plan.MaxTiles);
            // A narrow chunk holds the padded rows (2 (Tw + 1) floats each) of all its segments (each at least one tile
            // row: at most 4 rows per tile row); a wide one the two phase rows of one segment.
            bool narrow = Narrow(plan.Tw);
            Phases = ArrayPool<float>.Shared.Rent(2 * ((narrow ? 4 : 2) * plan.Rows + 2) * (plan.Tw + 1));
            if (narrow) Tiles = new NarrowTiles(plan.MaxTiles, plan.Rows + 1);
        }

        public void Dispose()
        {
            ArrayPool<float>.Shared.Return(V);
            ArrayPool<float>.Shared.Return(M);
            ArrayPool<float>.Shared.Return(Phases);
            Tiles?.Dispose();
        }
    }

    /// <summary>
    /// M[e, o, t] = (A dY A^T)[e] for the chunk's tiles, dY the 2x2 output-gradient tile of channel o (0 past the
    /// output edge); A = [1 0; 1 1; 1 -1; 0 -1].
    /// </summary>
    private static unsafe void GradientTransform(in Conv2dShape s, float[] gy, int n, int i0, int i1, int tw,
        float[] m, int nt, int off)
    {
        int oc = s.OutC, oh = s.OH, ow = s.OW, op = oh * ow;
        long es = (long)oc * nt;
        if (16 * es > m.Length) throw new InvalidOperationException("Conv2d Winograd: work buffer too small.");
        bool vector = Simd.Level >= SimdLevel.Vector256 && Vector256.IsHardwareAccelerated;
        // The tile row's two gradient rows split into even and odd columns (0 past the edges): tile j is
        // (e0[j], o0[j]; e1[j], o1[j]).
        float[]? rented = null;
        Span<float> split = 4 * tw <= 1024 ? stackalloc float[4 * tw] : (rented = ArrayPool<float>.Shared.Rent(4 * tw)).AsSpan(0, 4 * tw);
        try
        {
            fixed (float* pm = m, pg = gy, ps = split)
            {
                float* e0 = ps, o0 = ps + tw, e1 = ps + 2 * tw, o1 = ps + 3 * tw, end = pg + gy.Length;
                for (int o = 0; o < oc; o++)
                {
                    float* plane = pg + ((long)n * oc + o) * op;
                    float* dst = pm + (long)o * nt;
                    for (int i = i0; i < i1; i++)
                    {
                        int t0 = off + (i - i0) * tw, y0 = 2 * i;
                        float* row0 = plane + y0 * ow;
                        float* row1 = y0 + 1 < oh ? plane + (y0 + 1) * ow : null;
                        // Even columns 2j (all inside: tw = ceil(ow / 2)), odd columns 2j + 1 while inside, else 0.
                        if (NoSplitRow)
                        {
                            Deinterleave(row0, e0, tw, 0, tw, end);
                            Deinterleave(row0 + 1, o0, tw, 0, ow / 2, end);
                        }
                        else SplitRow(row0, ow, 0, e0, o0, tw);
                        if (row1 != null)
                        {
                            if (NoSplitRow)
                            {
                                Deinterleave(row1, e1, tw, 0, tw, end);
                                Deinterleave(row1 + 1, o1, tw, 0, ow / 2, end);
                            }
                            else SplitRow(row1, ow, 0, e1, o1, tw);
                        }
                        else
                        {
                            new Span<float>(e1, tw).Clear();
                            new Span<float>(o1, tw).Clear();
                        }
                        int jj = 0;
                        if (vector && tw >= 8)
                        {
                            // The row's last eight tiles overlap the group before them (written again, the same values)
                            // rather than go one at a time.
                            for (; jj < tw; jj += 8)
                            {
                                if (jj + 8 > tw) jj = tw - 8;
                                var g00 = Vector256.Load(e0 + jj); var g01 = Vector256.Load(o0 + jj);
                                var g10 = Vector256.Load(e1 + jj); var g11 = Vector256.Load(o1 + jj);
                                GradientRows(dst + t0 + jj, g00, g01, g10, g11, es);
                            }
                        }
                        for (; jj < tw; jj++)
                        {
                            GradientTileScalar(dst + t0 + jj, e0[jj], o0[jj], e1[jj], o1[jj], es);
                        }
                    }
                }
            }
        }
        finally
        {
            if (rented != null) ArrayPool<float>.Shared.Return(rented);
        }
    }

    // M for eight tiles from their 2x2 gradient tiles: the rows of A dY, (g0), (g0 + g1), (g0 - g1), (-g1), each row
    // (a, b) times A^T: a, a + b, a - b, -b.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe void GradientRows(float* q, Vector256<float> g00, Vector256<float> g01, Vector256<float> g10,
        Vector256<float> g11, long es)
    {
        Row(q, 0, g00, g01, es);
        Row(q, 4 * es, g00 + g10, g01 + g11, es);
        Row(q, 8 * es, g00 - g10, g01 - g11, es);
        Row(q, 12 * es, -g10, -g11, es);

        static void Row(float* q, long off, Vector256<float> a, Vector256<float> b, long es)
        {
            a.Store(q + off);
            (a + b).Store(q + off + es);
            (a - b).Store(q + off + 2 * es);
            (-b).Store(q + off + 3 * es);
        }
    }

    // M for one tile, with the same sums as GradientRows.
    private static unsafe void GradientTileScalar(float* q, float g00, float g01, float g10, float g11, long es)
    {
        Row(q, 0, g00, g01, es);
        Row(q, 4 * es, g00 + g10, g01 + g11, es);
        Row(q, 8 * es, g00 - g10, g01 - g11, es);
        Row(q, 12 * es, -g10, -g11, es);

        static void Row(float* q, long off, float a, float b, long es)
        {
            q[off] = a;
            q[off + es] = a + b;
            q[off + 2 * es] = a - b;
            q[off + 3 * es] = -b;
        }
    }

    /// <summary>gw[o, i] (+)= G^T dU[:, o, i] G (3x3 from 4x4); G^T = [1 1/2 1/2 0; 0 1/2 -1/2 0; 0 1/2 1/2 1].</summary>
    private static unsafe void InverseTransformWeights(float[] du, int oc, int c, float[] gw, bool accumulate)
    {
        int plane = oc * c;
        if ((long)plane * 16 > du.Length || (long)plane * 9 > gw.Length)
            throw new InvalidOperationException("Conv2d Winograd: gradient or transform buffer too small.");
        bool vector = Simd.Level >= SimdLevel.Vector256 && Vector256.IsHardwareAccelerated;
        WorkerPool.For(plane, 1024, (p0, p1) =>
        {
            Span<float> t = stackalloc float[12];
            float* lanes = stackalloc float[72];
            int idx = p0;
            fixed (float* pd = du, pg = gw)
            {
                if (vector)
                {
                    // Eight kernels at a time: dU is contiguous over kernels; the nine results per kernel go out
                    // through a transposing buffer (the kernels' 72 floats are consecutive in gw).
                    var half = Vector256.Create(0.5f);
                    for (; idx + 8 <= p1; idx += 8)
                    {
                        float* q = pd + idx;
                        InverseColumn(q, plane, half, out var t00, out var t10, out var t20);
                        InverseColumn(q + plane, plane, half, out var t01, out var t11, out var t21);
                        InverseColumn(q + 2L * plane, plane, half, out var t02, out var t12, out var t22);
                        InverseColumn(q + 3L * plane, plane, half, out var t03, out var t13, out var t23);
                        InverseRow(lanes, t00, t01, t02, t03, half);
                        InverseRow(lanes + 24, t10, t11, t12, t13, half);
                        InverseRow(lanes + 48, t20, t21, t22, t23, half);
                        float* dst = pg + (long)idx * 9;
                        for (int l = 0; l < 8; l++)
                            for (int k = 0; k < 9; k++)
                            {
                                if (accumulate) dst[l * 9 + k] += lanes[k * 8 + l];
                                else dst[l * 9 + k] = lanes[k * 8 + l];
                            }
                    }
                }
                for (; idx < p1; idx++)
                {
                    // t = G^T dU (3 x 4), by columns b.
                    for (int b = 0; b < 4; b++)
                    {
                        float d0 = pd[b * plane + idx], d1 = pd[(4 + b) * plane + idx];
                        float d2 = pd[(8 + b) * plane + idx], d3 = pd[(12 + b) * plane + idx];
                        t[b] = d0 + 0.5f * (d1 + d2);
                        t[4 + b] = 0.5f * (d1 - d2);
                        t[8 + b] = 0.5f * (d1 + d2) + d3;
                    }
                    float* dst = pg + (long)idx * 9;
                    for (int a = 0; a < 3; a++)
                    {
                        float a0 = t[4 * a], a1 = t[4 * a + 1], a2 = t[4 * a + 2], a3 = t[4 * a + 3];
                        float v0 = a0 + 0.5f * (a1 + a2), v1 = 0.5f * (a1 - a2), v2 = 0.5f * (a1 + a2) + a3;
                        if (accumulate) { dst[3 * a] += v0; dst[3 * a + 1] += v1; dst[3 * a + 2] += v2; }
                        else { dst[3 * a] = v0; dst[3 * a + 1] = v1; dst[3 * a + 2] = v2; }
                    }
                }
            }
        });
    }

    // Column b of t = G^T dU for eight kernels (dU[b], dU[4 + b], dU[8 + b], dU[12 + b] at q, q + 4 plane, ...), with the
    // scalar loop's sums.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe void InverseColumn(float* q, int plane, Vector256<float> half,
        out Vector256<float> t0, out Vector256<float> t1, out Vector256<float> t2)
    {
        var d0 = Vector256.Load(q); var d1 = Vector256.Load(q + 4L * plane);
        var d2 = Vector256.Load(q + 8L * plane); var d3 = Vector256.Load(q + 12L * plane);
        t0 = d0 + (d1 + d2) * half;
        t1 = (d1 - d2) * half;
        t2 = (d1 + d2) * half + d3;
    }

    // Row a of t times G for eight kernels: results 3a, 3a + 1, 3a + 2 at lanes[0], lanes[8], lanes[16].
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe void InverseRow(float* lanes, Vector256<float> a0, Vector256<float> a1, Vector256<float> a2,
        Vector256<float> a3, Vector256<float> half)
    {
        (a0 + (a1 + a2) * half).Store(lanes);
        ((a1 - a2) * half).Store(lanes + 8);
        ((a1 + a2) * half + a3).Store(lanes + 16);
    }

    /// <summary>U[e, o, i] = (G g G^T)[e] for each kernel g = w[o, i] (16 matrices of OutC x C).</summary>
    private static unsafe void TransformWeights(float[] w, int oc, int c, float[] u)
    {
        int plane = oc * c;
        if ((long)plane * 9 > w.Length || (long)plane * 16 > u.Length)
            throw new InvalidOperationException("Conv2d Winograd: weight or transform buffer too small.");
        bool gather = Avx2.IsSupported && Simd.Level >= SimdLevel.Vector256;
        WorkerPool.For(oc, Math.Max(1, 4096 / Math.Max(1, c)), (o0, o1) =>
        {
            fixed (float* pw = w, pu = u)
            {
                int idx = o0 * c, end = o1 * c;
                if (gather)
                {
                    // Eight kernels at a time (72 consecutive floats), element k of each gathered nine apart.
                    var nine = Vector256.Create(0, 9, 18, 27, 36, 45, 54, 63);
                    var half = Vector256.Create(0.5f);
                    for (; idx + 8 <= end; idx += 8)
                    {
                        float* g = pw + (long)idx * 9;
                        float* dst = pu + idx;
                        var g0 = Avx2.GatherVector256(g, nine, 4); var g1 = Avx2.GatherVector256(g + 1, nine, 4); var g2 = Avx2.GatherVector256(g + 2, nine, 4);
                        var g3 = Avx2.GatherVector256(g + 3, nine, 4); var g4 = Avx2.GatherVector256(g + 4, nine, 4); var g5 = Avx2.GatherVector256(g + 5, nine, 4);
                        var g6 = Avx2.GatherVector256(g + 6, nine, 4); var g7 = Avx2.GatherVector256(g + 7, nine, 4); var g8 = Avx2.GatherVector256(g + 8, nine, 4);
                        // Rows of G g, as the scalar loop computes them; then each row times G^T.
                        WeightRow(dst, 0, g0, g1, g2, plane, half);
                        WeightRow(dst, 4L * plane, (g0 + g3 + g6) * half, (g1 + g4 + g7) * half, (g2 + g5 + g8) * half, plane, half);
                        WeightRow(dst, 8L * plane, (g0 - g3 + g6) * half, (g1 - g4 + g7) * half, (g2 - g5 + g8) * half, plane, half);
                        WeightRow(dst, 12L * plane, g6, g7, g8, plane, half);
                    }
                }
                for (; idx < end; idx++)
                {
                    float* g = pw + (long)idx * 9;
                    float* dst = pu + idx;
                    // Rows a of t = G g (4 x 3), G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1]; then U row a = t_a G^T.
                    for (int a = 0; a < 4; a++)
                    {
                        float t0, t1, t2;
                        if (a == 0) { t0 = g[0]; t1 = g[1]; t2 = g[2]; }
                        else if (a == 3) { t0 = g[6]; t1 = g[7]; t2 = g[8]; }
                        else
                        {
                            float sign = a == 1 ? 1f : -1f;
                            t0 = 0.5f * (g[0] + sign * g[3] + g[6]);
                            t1 = 0.5f * (g[1] + sign * g[4] + g[7]);
                            t2 = 0.5f * (g[2] + sign * g[5] + g[8]);
                        }
                        dst[(long)(4 * a) * plane] = t0;
                        dst[(long)(4 * a + 1) * plane] = 0.5f * (t0 + t1 + t2);
                        dst[(long)(4 * a + 2) * plane] = 0.5f * (t0 - t1 + t2);
                        dst[(long)(4 * a + 3) * plane] = t2;
                    }
                }
            }
        });
    }

    // One row (t0, t1, t2) of G g for eight kernels times G^T: U[off + b * plane] for b = 0..3.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe void WeightRow(float* dst, long off, Vector256<float> t0, Vector256<float> t1, Vector256<float> t2,
        int plane, Vector256<float> half)
    {
        t0.Store(dst + off);
        ((t0 + t1 + t2) * half).Store(dst + off + plane);
        ((t0 - t1 + t2) * half).Store(dst + off + 2L * plane);
        t2.Store(dst + off + 3L * plane);
    }

    /// <summary>The U matrix that matrix e of the flipped kernels transposes: rows and columns 0 and 3 swapped.</summary>
    private static int FlippedIndex(int e)
    {
        int a = e >> 2, b = e & 3;
        static int P(int v) => v == 0 ? 3 : v == 3 ? 0 : v;
        return 4 * P(a) + P(b);
    }

    // The convolution s of x by the kernels in u (transposed: u holds the forward's U and s is the transposed
    // convolution of the input gradient, so matrix e is U[FlippedIndex(e)]^T).
    private static void Run(Conv2dShape s, float[] x, float[] u, bool transposed, float[]? bias, float[] y)
    {
        var plan = new Plan(s);
        var shape = s;
        WorkerPool.For(plan.Chunks, 1, (k0, k1) =>
        {
            using var ws = new Workspace(shape, plan);
            for (int k = k0; k < k1; k++)
            {
                var (g0, g1, nt) = plan.Chunk(k);
                if (ws.Tiles != null)
                {
                    ws.Tiles.Fill(shape, plan, g0, g1);
                    InputTransformNarrow(shape, x, ws.Tiles, plan.Tw, ws.V, nt, ws.Phases);
                }
                else
                    foreach (var (n, i0, i1, off) in plan.Segments(g0, g1))
                        InputTransform(shape, x, n, i0, i1, plan.Tw, ws.V, nt, off, ws.Phases);
                int oc = shape.OutC, cc = shape.C;
                for (int e = 0; e < 16; e++)
                {
                    if (transposed)
                        Gemm.Sgemm(true, false, oc, nt, cc, u, FlippedIndex(e) * oc * cc, oc, ws.V, e * cc * nt, nt, ws.M, e * oc * nt, nt, false);
                    else
                        Gemm.Sgemm(false, false, oc, nt, cc, u, e * oc * cc, cc, ws.V, e * cc * nt, nt, ws.M, e * oc * nt, nt, false);
                }
                if (ws.Tiles != null) OutputTransformNarrow(shape, ws.M, ws.Tiles, nt, bias, y);
                else
                    foreach (var (n, i0, i1, off) in plan.Segments(g0, g1))
                        OutputTransform(shape, ws.M, n, i0, i1, plan.Tw, nt, off, bias, y);
            }
        });
    }

    /// <summary>
    /// V[e, ch, t] = (B^T d B)[e] for the tiles t of tile rows [i0, i1) of image n (t = off + (i - i0) * tw + j) and
    /// every channel, where d is the 4x4 input patch at rows 2i - PadH .., columns 2j - PadW .. (0 outside).
    /// B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1].
    /// </summary>
    private static unsafe void InputTransform(in Conv2dShape s, float[] x, int n, int i0, int i1, int tw,
        float[] v, int nt, int off, float[] phases)
    {
        int h = s.H, w = s.W, c = s.C, hw = h * w;
        int prow = 2 * (i1 - i0) + 2, wq = tw + 1, plane = prow * wq;
        bool vector = Simd.Level >= SimdLevel.Vector256 && Vector256.IsHardwareAccelerated;
        if ((long)16 * c * nt > v.Length || 2L * plane > phases.Length)
            throw new InvalidOperationException("Conv2d Winograd: work buffer too small.");
        float* d = stackalloc float[16];
        float* bt = stackalloc float[16];
        fixed (float* pv = v, pp = phases, px = x)
        {
            float* even = pp, odd = pp + plane;
            for (int ch = 0; ch < c; ch++)
            {
                // Padded rows 2*i0 .. 2*i1 + 1 of this channel, split into even and odd padded columns: tile j
                // reads columns 2j .. 2j + 3 = even[j], odd[j], even[j + 1], odd[j + 1].
                BuildPhases(s, px + ((long)n * c + ch) * hw, i0, prow, wq, even, odd, px + x.Length);
                float* dst = pv + (long)ch * nt;
                long es = (long)c * nt; // stride between the 16 V matrices
                for (int i = i0; i < i1; i++)
                {
                    int r0 = 2 * (i - i0), t0 = off + (i - i0) * tw;
                    int j = 0;
                    if (vector && tw >= 8)
                    {
                        // The row's last eight tiles overlap the group before them (written again, the same values) rather
                        // than go one at a time.
                        for (; j < tw; j += 8)
                        {
                            if (j + 8 > tw) j = tw - 8;
                            // d[a][b] for 8 tiles: row r0 + a, column b.
                            var d00 = Vector256.Load(even + r0 * wq + j); var d01 = Vector256.Load(odd + r0 * wq + j);
                            var d02 = Vector256.Load(even + r0 * wq + j + 1); var d03 = Vector256.Load(odd + r0 * wq + j + 1);
                            var d10 = Vector256.Load(even + (r0 + 1) * wq + j); var d11 = Vector256.Load(odd + (r0 + 1) * wq + j);
                            var d12 = Vector256.Load(even + (r0 + 1) * wq + j + 1); var d13 = Vector256.Load(odd + (r0 + 1) * wq + j + 1);
                            var d20 = Vector256.Load(even + (r0 + 2) * wq + j); var d21 = Vector256.Load(odd + (r0 + 2) * wq + j);
                            var d22 = Vector256.Load(even + (r0 + 2) * wq + j + 1); var d23 = Vector256.Load(odd + (r0 + 2) * wq + j + 1);
                            var d30 = Vector256.Load(even + (r0 + 3) * wq + j); var d31 = Vector256.Load(odd + (r0 + 3) * wq + j);
                            var d32 = Vector256.Load(even + (r0 + 3) * wq + j + 1); var d33 = Vector256.Load(odd + (r0 + 3) * wq + j + 1);
                            InputRows(d00, d01, d02, d03, d10, d11, d12, d13, d20, d21, d22, d23, d30, d31, d32, d33, dst + t0 + j, es);
                        }
                    }
                    for (; j < tw; j++) InputTileScalar(even, odd, wq, (r0 * wq) + j, dst + t0 + j, es, d, bt);
                }
            }
        }
    }

    /// <summary>
    /// Turns off the gathered transforms of narrow planes (for measurements and tests): a field without an initialiser,
    /// as in GemmKernels.
    /// </summary>
    internal static bool NoNarrowVector;

    // V for eight tiles from their 4x4 patches d[a][b]: the rows of B^T d, each times B.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe void InputRows(
        Vector256<float> d00, Vector256<float> d01, Vector256<float> d02, Vector256<float> d03,
        Vector256<float> d10, Vector256<float> d11, Vector256<float> d12, Vector256<float> d13,
        Vector256<float> d20, Vector256<float> d21, Vector256<float> d22, Vector256<float> d23,
        Vector256<float> d30, Vector256<float> d31, Vector256<float> d32, Vector256<float> d33, float* o, long es)
    {
        // Rows of B^T d.
        var b00 = d00 - d20; var b01 = d01 - d21; var b02 = d02 - d22; var b03 = d03 - d23;
        var b10 = d10 + d20; var b11 = d11 + d21; var b12 = d12 + d22; var b13 = d13 + d23;
        var b20 = d20 - d10; var b21 = d21 - d11; var b22 = d22 - d12; var b23 = d23 - d13;
        var b30 = d10 - d30; var b31 = d11 - d31; var b32 = d12 - d32; var b33 = d13 - d33;
        Store4(b00, b01, b02, b03, o, 0 * es, es);
        Store4(b10, b11, b12, b13, o, 4 * es, es);
        Store4(b20, b21, b22, b23, o, 8 * es, es);
        Store4(b30, b31, b32, b33, o, 12 * es, es);
    }

    // V for one tile whose patch starts at phase element `start` (patch row r0, tile column j: r0 * wq + j), with the
    // same sums as InputRows.
    private static unsafe void InputTileScalar(float* even, float* odd, int wq, int start, float* o, long es, float* d, float* bt)
    {
        for (int a = 0; a < 4; a++)
        {
            // Patch columns 2j .. 2j + 3 are even[j], odd[j], even[j + 1], odd[j + 1].
            int at = start + a * wq;
            d[4 * a] = even[at];
            d[4 * a + 1] = odd[at];
            d[4 * a + 2] = even[at + 1];
            d[4 * a + 3] = odd[at + 1];
        }
        InputTileFromPatch(d, o, es, bt);
    }

    // V for one tile from its 4x4 patch d (row-major), with the same sums as InputRows.
    private static unsafe void InputTileFromPatch(float* d, float* o, long es, float* bt)
    {
        for (int b = 0; b < 4; b++)
        {
            bt[b] = d[b] - d[8 + b];
            bt[4 + b] = d[4 + b] + d[8 + b];
            bt[8 + b] = d[8 + b] - d[4 + b];
            bt[12 + b] = d[4 + b] - d[12 + b];
        }
        for (int a = 0; a < 4; a++)
        {
            float* r = bt + 4 * a;
            o[(4 * a + 0) * es] = r[0] - r[2];
            o[(4 * a + 1) * es] = r[1] + r[2];
            o[(4 * a + 2) * es] = r[2] - r[1];
            o[(4 * a + 3) * es] = r[1] - r[3];
        }
    }

    // The phase rows of padded rows 2*i0 .. 2*i0 + prow - 1 of one input plane: even[r * wq + q] holds padded column 2q,
    // odd[r * wq + q] padded column 2q + 1 (0 in the padding).
    // `end`: the end of the array src lies in (the vector split may read one element past a row, never past the array).
    private static unsafe void BuildPhases(in Conv2dShape s, float* src, int i0, int prow, int wq, float* even, float* odd, float* end)
    {
        int h = s.H, w = s.W;
        for (int r = 0; r < prow; r++)
        {
            int ih = 2 * i0 + r - s.PadH;
            float* e = even + r * wq, o = odd + r * wq;
            if ((uint)ih >= (uint)h)
            {
                new Span<float>(e, wq).Clear();
                new Span<float>(o, wq).Clear();
                continue;
            }
            // Even phase q reads input column 2q - PadW, odd phase 2q + 1 - PadW; zero outside [0, w).
            float* row = src + ih * w;
            if (NoSplitRow)
            {
                Deinterleave(row - s.PadW, e, wq, Math.Min(wq, (s.PadW + 1) / 2), Math.Min(wq, (w + s.PadW + 1) / 2), end);
                Deinterleave(row + 1 - s.PadW, o, wq, Math.Min(wq, s.PadW / 2), Math.Min(wq, (w + s.PadW) / 2), end);
            }
            else SplitRow(row, w, s.PadW, e, o, wq);
        }
    }

    /// <summary>
    /// Turns off <see cref="SplitRow"/> (the phases built one at a time by <see cref="Deinterleave"/>), for
    /// measurements and tests: a field without an initialiser, as in GemmKernels.
    /// </summary>
    internal static bool NoSplitRow;

    /// <summary>
    /// Both phases of one input row in one pass: even[q] = row[2q - padW], odd[q] = row[2q + 1 - padW] for q in
    /// [0, wq), 0 where that column lies outside [0, w). Input column i goes to phase (i + padW) mod 2, element
    /// (i + padW) / 2, so sixteen columns are eight elements of each phase: two loads, two shuffles, two stores
    /// (the phase-at-a-time split loads every column twice and keeps half). Reads row[0 .. w) only.
    /// </summary>
    private static unsafe void SplitRow(float* row, int w, int padW, float* even, float* odd, int wq)
    {
        int e0 = Math.Min(wq, (padW + 1) / 2), e1 = Math.Clamp((w + padW + 1) / 2, e0, wq);
        int o0 = Math.Min(wq, padW / 2), o1 = Math.Clamp((w + padW) / 2, o0, wq);
        for (int q = 0; q < e0; q++) even[q] = 0f;
        for (int q = e1; q < wq; q++) even[q] = 0f;
        for (int q = 0; q < o0; q++) odd[q] = 0f;
        for (int q = o1; q < wq; q++) odd[q] = 0f;
        // Columns from iEnd on would land at element wq or later.
        int iEnd = Math.Min(w, 2 * wq - padW);
        // Column 2k goes to lo[k + loOff], column 2k + 1 to hi[k + hiOff].
        float* lo = (padW & 1) == 0 ? even : odd, hi = (padW & 1) == 0 ? odd : even;
        int loOff = padW >> 1, hiOff = (padW + 1) >> 1;
        int i = 0;
        if (Avx2.IsSupported)
        {
            for (; i + 16 <= iEnd; i += 16)
            {
                var a = Vector256.Load(row + i);
                var b = Vector256.Load(row + i + 8);
                ConvKernels.EvenLanes(a, b).Store(lo + (i >> 1) + loOff);
                ConvKernels.OddLanes(a, b).Store(hi + (i >> 1) + hiOff);
            }
        }
        for (; i < iEnd; i++)
        {
            int t = i + padW;
            ((t & 1) == 0 ? even : odd)[t >> 1] = row[i];
        }
    }

    /// <summary>
    /// Whether a chunk's transforms run across its tiles in order, eight at a time (tile rows and images one after
    /// the other), instead of along each tile row: planes under 8 tiles per row (outputs narrower than 15), where the
    /// row-wise vectors never fill. Needs AVX2's gathers for the input patches.
    /// </summary>
    private static bool Narrow(int tw) => tw < 8 && !NoNarrowVector && Avx2.IsSupported &&
        Simd.Level >= SimdLevel.Vector256 && Vector256.IsHardwareAccelerated;

    /// <summary>Where each tile of a chunk lies, for the narrow transforms (see <see cref="Narrow"/>).</summary>
    private sealed class NarrowTiles : IDisposable
    {
        /// <summary>Tile t's patch start in the chunk's padded rows (the segments' rows follow each other, pw apart).</summary>
        public readonly int[] Patch;
        /// <summary>Tile t's top-left output element in an [N, OutC, OH, OW] array at channel 0.</summary>
        public readonly int[] Output;
        /// <summary>Tile t: bit 0 set when its right column is inside the output, bit 1 when its lower row is.</summary>
        public readonly byte[] Inside;
        /// <summary>The chunk's segments (see <see cref="Plan.Segments"/>), and each one's first padded row.</summary>
        public readonly (int N, int I0, int I1, int Off)[] Segments;
        public readonly int[] SegmentRow;
        /// <summary>The chunk's padded rows in all, and its segment count.</summary>
        public int Rows, Count;
        public bool AllInside;

        public NarrowTiles(int maxTiles, int maxSegments)
        {
            Patch = ArrayPool<int>.Shared.Rent(maxTiles);
            Output = ArrayPool<int>.Shared.Rent(maxTiles);
            Inside = ArrayPool<byte>.Shared.Rent(maxTiles);
            Segments = new (int, int, int, int)[maxSegments];
            SegmentRow = ArrayPool<int>.Shared.Rent(maxSegments);
        }

        /// <summary>Lays out chunk [g0, g1): its segments and where each of its tiles lies.</summary>
        public void Fill(in Conv2dShape s, in Plan plan, long g0, long g1)
        {
            int count = 0, tw = plan.Tw, pw = 2 * (tw + 1);
            foreach (var seg in plan.Segments(g0, g1)) Segments[count++] = seg;
            int rows = 0;
            bool all = true;
            for (int k = 0; k < count; k++)
            {
                var (n, i0, i1, off) = Segments[k];
                SegmentRow[k] = rows;
                for (int i = i0; i < i1; i++)
                    for (int j = 0; j < tw; j++)
                    {
                        int t = off + (i - i0) * tw + j;
                        Patch[t] = (rows + 2 * (i - i0)) * pw + 2 * j;
                        Output[t] = checked(n * s.OutC * s.OH * s.OW + 2 * i * s.OW + 2 * j);
                        byte inside = (byte)((2 * j + 1 < s.OW ? 1 : 0) | (2 * i + 1 < s.OH ? 2 : 0));
                        Inside[t] = inside;
                        all &= inside == 3;
                    }
                rows += 2 * (i1 - i0) + 2;
            }
            Rows = rows;
            AllInside = all;
            Count = count;
        }

        public void Dispose()
        {
            ArrayPool<int>.Shared.Return(Patch);
            ArrayPool<int>.Shared.Return(Output);
            ArrayPool<byte>.Shared.Return(Inside);
            ArrayPool<int>.Shared.Return(SegmentRow);
        }
    }

    /// <summary>
    /// <see cref="InputTransform"/> of a whole chunk of a narrow plane: per channel, the zero-padded rows of every
    /// segment one after another (a plain copy, no split into column phases), then eight tiles at a time in tile
    /// order, each lane gathering its 4x4 patch.
    /// </summary>
    private static unsafe void InputTransformNarrow(in Conv2dShape s, float[] x, NarrowTiles tiles, int tw, float[] v, int nt,
        float[] padded)
    {
        int c = s.C, hw = s.H * s.W, pw = 2 * (tw + 1);
        if ((long)16 * c * nt > v.Length || (long)tiles.Rows * pw > padded.Length)
            throw new InvalidOperationException("Conv2d Winograd: work buffer too small.");
        float* d = stackalloc float[16];
        float* bt = stackalloc float[16];
        long es = (long)c * nt;
        fixed (float* pv = v, pp = padded, px = x)
        fixed (int* pidx = tiles.Patch)
        {
            float* r1 = pp + pw, r2 = pp + 2 * pw, r3 = pp + 3 * pw;
            for (int ch = 0; ch < c; ch++)
            {
                for (int k = 0; k < tiles.Count; k++)
                {
                    var (n, i0, i1, _) = tiles.Segments[k];
                    BuildPadded(s, px + ((long)n * c + ch) * hw, i0, 2 * (i1 - i0) + 2, pw, pp + (long)tiles.SegmentRow[k] * pw);
                }
                float* dst = pv + (long)ch * nt;
                int t = 0;
                for (; t + 8 <= nt; t += 8)
                {
                    var ix = Vector256.Load(pidx + t);
                    var d00 = Avx2.GatherVector256(pp, ix, 4); var d01 = Avx2.GatherVector256(pp + 1, ix, 4);
                    var d02 = Avx2.GatherVector256(pp + 2, ix, 4); var d03 = Avx2.GatherVector256(pp + 3, ix, 4);
                    var d10 = Avx2.GatherVector256(r1, ix, 4); var d11 = Avx2.GatherVector256(r1 + 1, ix, 4);
                    var d12 = Avx2.GatherVector256(r1 + 2, ix, 4); var d13 = Avx2.GatherVector256(r1 + 3, ix, 4);
                    var d20 = Avx2.GatherVector256(r2, ix, 4); var d21 = Avx2.GatherVector256(r2 + 1, ix, 4);
                    var d22 = Avx2.GatherVector256(r2 + 2, ix, 4); var d23 = Avx2.GatherVector256(r2 + 3, ix, 4);
                    var d30 = Avx2.GatherVector256(r3, ix, 4); var d31 = Avx2.GatherVector256(r3 + 1, ix, 4);
                    var d32 = Avx2.GatherVector256(r3 + 2, ix, 4); var d33 = Avx2.GatherVector256(r3 + 3, ix, 4);
                    InputRows(d00, d01, d02, d03, d10, d11, d12, d13, d20, d21, d22, d23, d30, d31, d32, d33, dst + t, es);
                }
                for (; t < nt; t++)
                {
                    float* patch = pp + pidx[t];
                    for (int a = 0; a < 4; a++)
                        for (int b = 0; b < 4; b++) d[4 * a + b] = patch[a * pw + b];
                    InputTileFromPatch(d, dst + t, es, bt);
                }
            }
        }
    }

    // Padded rows 2*i0 .. 2*i0 + prow - 1 of one input plane, pw columns each: dst[r * pw + col] = input column
    // col - PadW of input row 2*i0 + r - PadH (0 outside the input).
    private static unsafe void BuildPadded(in Conv2dShape s, float* src, int i0, int prow, int pw, float* dst)
    {
        int h = s.H, w = s.W, lo = Math.Min(s.PadW, pw), hi = Math.Clamp(s.PadW + w, lo, pw);
        for (int r = 0; r < prow; r++)
        {
            int ih = 2 * i0 + r - s.PadH;
            var row = new Span<float>(dst + (long)r * pw, pw);
            if ((uint)ih >= (uint)h) { row.Clear(); continue; }
            row.Slice(0, lo).Clear();
            new ReadOnlySpan<float>(src + (long)ih * w, hi - lo).CopyTo(row.Slice(lo));
            row.Slice(hi).Clear();
        }
    }

    /// <summary>
    /// <see cref="OutputTransform"/> of a whole chunk of a narrow plane: eight tiles at a time in tile order (M is
    /// contiguous over tiles), each lane's 2x2 outputs then written where its tile lies.
    /// </summary>
    private static unsafe void OutputTransformNarrow(in Conv2dShape s, float[] m, NarrowTiles tiles, int nt, float[]? bias, float[] y)
    {
        int oc = s.OutC, ow = s.OW, op = s.OH * ow;
        long es = (long)oc * nt;
        if (16 * es > m.Length) throw new InvalidOperationException("Conv2d Winograd: work buffer too small.");
        float* lanes = stackalloc float[32];
        fixed (float* pm = m, py = y)
        fixed (int* pos = tiles.Output)
        fixed (byte* inside = tiles.Inside)
        {
            for (int o = 0; o < oc; o++)
            {
                float b = bias?[o] ?? 0f;
                var vb = Vector256.Create(b);
                float* src = pm + (long)o * nt;
                float* yo = py + (long)o * op;
                int t = 0;
                for (; t + 8 <= nt; t += 8)
                {
                    OutputTiles(src + t, es, vb, out var y00, out var y01, out var y10, out var y11);
                    y00.Store(lanes);
                    y01.Store(lanes + 8);
                    y10.Store(lanes + 16);
                    y11.Store(lanes + 24);
                    for (int l = 0; l < 8; l++)
                        WriteTile(yo + pos[t + l], ow, inside[t + l], lanes[l], lanes[8 + l], lanes[16 + l], lanes[24 + l]);
                }
                for (; t < nt; t++)
                {
                    OutputTileScalar(src + t, es, b, out float y00, out float y01, out float y10, out float y11);
                    WriteTile(yo + pos[t], ow, inside[t], y00, y01, y10, y11);
                }
            }
        }
    }

    /// <summary>
    /// <see cref="GradientTransform"/> of a whole chunk of a narrow plane: eight tiles at a time in tile order, each
    /// lane gathering its 2x2 gradient tile (tiles past an odd output edge, and the last few, one at a time).
    /// </summary>
    private static unsafe void GradientTransformNarrow(in Conv2dShape s, float[] gy, NarrowTiles tiles, float[] m, int nt)
    {
        int oc = s.OutC, ow = s.OW, op = s.OH * ow;
        long es = (long)oc * nt;
        if (16 * es > m.Length) throw new InvalidOperationException("Conv2d Winograd: work buffer too small.");
        int vectorTiles = tiles.AllInside ? nt & ~7 : 0;
        fixed (float* pm = m, pg = gy)
        fixed (int* pos = tiles.Output)
        fixed (byte* inside = tiles.Inside)
        {
            for (int o = 0; o < oc; o++)
            {
                float* go = pg + (long)o * op;
                float* dst = pm + (long)o * nt;
                int t = 0;
                for (; t < vectorTiles; t += 8)
                {
                    var ix = Vector256.Load(pos + t);
                    var g00 = Avx2.GatherVector256(go, ix, 4); var g01 = Avx2.GatherVector256(go + 1, ix, 4);
                    var g10 = Avx2.GatherVector256(go + ow, ix, 4); var g11 = Avx2.GatherVector256(go + ow + 1, ix, 4);
                    GradientRows(dst + t, g00, g01, g10, g11, es);
                }
                for (; t < nt; t++)
                {
                    float* at = go + pos[t];
                    int ins = inside[t];
                    float g00 = at[0], g01 = (ins & 1) != 0 ? at[1] : 0f;
                    float g10 = (ins & 2) != 0 ? at[ow] : 0f, g11 = ins == 3 ? at[ow + 1] : 0f;
                    GradientTileScalar(dst + t, g00, g01, g10, g11, es);
                }
            }
        }
    }

    // dst[q] = src[2q] for q in [q0, q1) (clamped so q0 <= q1), 0 for the rest of [0, wq).
    private static unsafe void Deinterleave(float* src, float* dst, int wq, int q0, int q1, float* end)
    {
        q1 = Math.Max(q0, q1);
        for (int q = 0; q < q0; q++) dst[q] = 0f;
        int p = q0;
        if (Avx2.IsSupported)
        {
            // Eight at a time from 16 source floats: the last of them (after src[2p + 14]) may lie past the row, so it
            // must lie inside the array (`end`); it is shuffled away.
            for (; p + 8 <= q1 && src + 2 * p + 16 <= end; p += 8)
            {
                ConvKernels.EvenLanes(Vector256.Load(src + 2 * p), Vector256.Load(src + 2 * p + 8)).Store(dst + p);
            }
        }
        for (; p < q1; p++) dst[p] = src[2 * p];
        for (int q = q1; q < wq; q++) dst[q] = 0f;
    }

    // One row (B^T d)[a, :] of 8 tiles times B: the four V matrices 4a .. 4a + 3.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe void Store4(Vector256<float> r0, Vector256<float> r1, Vector256<float> r2, Vector256<float> r3,
        float* o, long off, long es)
    {
        (r0 - r2).Store(o + off);
        (r1 + r2).Store(o + off + es);
        (r2 - r1).Store(o + off + 2 * es);
        (r1 - r3).Store(o + off + 3 * es);
    }

    /// <summary>
    /// y[n, o, 2i + r, 2j + q] = (A^T m A)[r, q] (+ bias[o]) for the chunk's tiles, m[a][b] = M[4a + b, o, t];
    /// A^T = [1 1 1 0; 0 1 -1 -1]. The second row / column of a tile past an odd output edge is dropped.
    /// </summary>
    private static unsafe void OutputTransform(in Conv2dShape s, float[] m, int n, int i0, int i1, int tw, int nt,
        int off, float[]? bias, float[] y)
    {
        int oc = s.OutC, oh = s.OH, ow = s.OW, op = oh * ow;
        long es = (long)oc * nt;
        if (16 * es > m.Length) throw new InvalidOperationException("Conv2d Winograd: work buffer too small.");
        bool vector = Simd.Level >= SimdLevel.Vector256 && Vector256.IsHardwareAccelerated;
        fixed (float* pm = m, py = y)
        {
            float* lo = stackalloc float[8];
            float* hi = stackalloc float[8];
            for (int o = 0; o < oc; o++)
            {
                float b = bias?[o] ?? 0f;
                float* src = pm + (long)o * nt;
                float* dstPlane = py + ((long)n * oc + o) * op;
                for (int i = i0; i < i1; i++)
                {
                    int t0 = off + (i - i0) * tw, y0 = 2 * i;
                    bool secondRow = y0 + 1 < oh;
                    int j = 0;
                    if (vector && tw >= 8)
                    {
                        var vb = Vector256.Create(b);
                        // The row's last eight tiles overlap the group before them (written again, the same values) rather
                        // than go one at a time.
                        for (; j < tw; j += 8)
                        {
                            if (j + 8 > tw) j = tw - 8;
                            OutputTiles(src + t0 + j, es, vb, out var y00, out var y01, out var y10, out var y11);
                            WriteRow(dstPlane + y0 * ow, 2 * j, ow, y00, y01, lo, hi);
                            if (secondRow) WriteRow(dstPlane + (y0 + 1) * ow, 2 * j, ow, y10, y11, lo, hi);
                        }
                    }
                    for (; j < tw; j++)
                    {
                        OutputTileScalar(src + t0 + j, es, b, out float y00, out float y01, out float y10, out float y11);
                        int inside = (2 * j + 1 < ow ? 1 : 0) | (secondRow ? 2 : 0);
                        WriteTile(dstPlane + y0 * ow + 2 * j, ow, inside, y00, y01, y10, y11);
                    }
                }
            }
        }
    }

    // Y = A^T m A (+ bias) for eight tiles: y00, y01 the tiles' top rows (columns 2j, 2j + 1), y10, y11 their lower rows.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe void OutputTiles(float* q, long es, Vector256<float> vb, out Vector256<float> y00, out Vector256<float> y01,
        out Vector256<float> y10, out Vector256<float> y11)
    {
        var m00 = Vector256.Load(q); var m01 = Vector256.Load(q + es); var m02 = Vector256.Load(q + 2 * es); var m03 = Vector256.Load(q + 3 * es);
        var m10 = Vector256.Load(q + 4 * es); var m11 = Vector256.Load(q + 5 * es); var m12 = Vector256.Load(q + 6 * es); var m13 = Vector256.Load(q + 7 * es);
        var m20 = Vector256.Load(q + 8 * es); var m21 = Vector256.Load(q + 9 * es); var m22 = Vector256.Load(q + 10 * es); var m23 = Vector256.Load(q + 11 * es);
        var m30 = Vector256.Load(q + 12 * es); var m31 = Vector256.Load(q + 13 * es); var m32 = Vector256.Load(q + 14 * es); var m33 = Vector256.Load(q + 15 * es);
        // s = A^T m (2 x 4), then Y = s A (2 x 2), the sums in the scalar tail's order.
        var s00 = m00 + m10 + m20; var s01 = m01 + m11 + m21; var s02 = m02 + m12 + m22; var s03 = m03 + m13 + m23;
        var s10 = m10 - m20 - m30; var s11 = m11 - m21 - m31; var s12 = m12 - m22 - m32; var s13 = m13 - m23 - m33;
        y00 = s00 + s01 + s02 + vb;
        y01 = s01 - s02 - s03 + vb;
        y10 = s10 + s11 + s12 + vb;
        y11 = s11 - s12 - s13 + vb;
    }

    // Y = A^T m A (+ bias) for one tile, with OutputTiles' sums.
    private static unsafe void OutputTileScalar(float* q, long es, float b, out float y00, out float y01, out float y10, out float y11)
    {
        float s0 = q[0] + q[4 * es] + q[8 * es], s1 = q[es] + q[5 * es] + q[9 * es];
        float s2 = q[2 * es] + q[6 * es] + q[10 * es], s3 = q[3 * es] + q[7 * es] + q[11 * es];
        float u0 = q[4 * es] - q[8 * es] - q[12 * es], u1 = q[5 * es] - q[9 * es] - q[13 * es];
        float u2 = q[6 * es] - q[10 * es] - q[14 * es], u3 = q[7 * es] - q[11 * es] - q[15 * es];
        y00 = s0 + s1 + s2 + b;
        y01 = s1 - s2 - s3 + b;
        y10 = u0 + u1 + u2 + b;
        y11 = u1 - u2 - u3 + b;
    }

    // One tile's 2x2 outputs at `at` (rows ow apart): `inside` bit 0 when its right column is inside the output, bit 1
    // when its lower row is.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe void WriteTile(float* at, int ow, int inside, float y00, float y01, float y10, float y11)
    {
        at[0] = y00;
        if ((inside & 1) != 0) at[1] = y01;
        if ((inside & 2) != 0)
        {
            at[ow] = y10;
            if (inside == 3) at[ow + 1] = y11;
        }
    }

    // Output columns x0 .. x0 + 15 of one row: even columns from `left`, odd from `right` (dropped past ow).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe void WriteRow(float* row, int x0, int ow, Vector256<float> left, Vector256<float> right,
        float* lo, float* hi)
    {
        if (x0 + 16 <= ow && Avx.IsSupported)
        {
            // Interleave in registers: (l0 r0 l1 r1 | l4 r4 l5 r5) and (l2 r2 l3 r3 | l6 r6 l7 r7), then their halves.
            var u0 = Avx.UnpackLow(left, right);
            var u1 = Avx.UnpackHigh(left, right);
            Avx.Permute2x128(u0, u1, 0x20).Store(row + x0);
            Avx.Permute2x128(u0, u1, 0x31).Store(row + x0 + 8);
            return;
        }
        left.Store(lo);
        right.Store(hi);
        int end = Math.Min(16, ow - x0);
        for (int q = 0; q < end; q++) row[x0 + q] = (q & 1) == 0 ? lo[q >> 1] : hi[q >> 1];
    }
}

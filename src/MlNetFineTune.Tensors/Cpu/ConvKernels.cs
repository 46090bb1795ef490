using System.Buffers;
using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace MlNetFineTune.Tensors.Cpu;

/// <summary>
/// The geometry of a 2-D convolution on NCHW tensors, PyTorch semantics: input [N, C, H, W], weight
/// [OutC, C/Groups, KH, KW], output [N, OutC, OH, OW] with
/// OH = (H + 2*PadH - DilationH*(KH-1) - 1) / StrideH + 1 (and likewise OW).
/// The constructor validates everything and throws <see cref="ArgumentException"/> naming the bad values.
/// </summary>
public readonly record struct Conv2dShape
{
    /// <summary>Batch size (0 allowed: the kernels then do nothing except clear non-accumulated gradients).</summary>
    public int N { get; }
    /// <summary>Input channels.</summary>
    public int C { get; }
    /// <summary>Input height.</summary>
    public int H { get; }
    /// <summary>Input width.</summary>
    public int W { get; }
    /// <summary>Output channels.</summary>
    public int OutC { get; }
    /// <summary>Kernel height.</summary>
    public int KH { get; }
    /// <summary>Kernel width.</summary>
    public int KW { get; }
    /// <summary>Vertical stride.</summary>
    public int StrideH { get; }
    /// <summary>Horizontal stride.</summary>
    public int StrideW { get; }
    /// <summary>Zero padding added to the top and to the bottom.</summary>
    public int PadH { get; }
    /// <summary>Zero padding added to the left and to the right.</summary>
    public int PadW { get; }
    /// <summary>Vertical dilation.</summary>
    public int DilationH { get; }
    /// <summary>Horizontal dilation.</summary>
    public int DilationW { get; }
    /// <summary>Number of groups; C and OutC are both divisible by it.</summary>
    public int Groups { get; }
    /// <summary>Output height.</summary>
    public int OH { get; }
    /// <summary>Output width.</summary>
    public int OW { get; }

    /// <summary>Creates and validates a convolution shape.</summary>
    /// <exception cref="ArgumentException">A size is out of range, C or OutC is not divisible by groups,
    /// the output would be empty, or a tensor would be larger than an array can hold.</exception>
    public Conv2dShape(int n, int c, int h, int w, int outC, int kh, int kw,
        int strideH = 1, int strideW = 1, int padH = 0, int padW = 0,
        int dilationH = 1, int dilationW = 1, int groups = 1)
    {
        if (n < 0) throw new ArgumentException($"Conv2d: batch size N={n} must be >= 0.", nameof(n));
        if (c < 1 || h < 1 || w < 1)
            throw new ArgumentException($"Conv2d: input C={c}, H={h}, W={w} must all be >= 1.", nameof(c));
        if (outC < 1) throw new ArgumentException($"Conv2d: OutC={outC} must be >= 1.", nameof(outC));
        if (kh < 1 || kw < 1)
            throw new ArgumentException($"Conv2d: kernel KH={kh}, KW={kw} must both be >= 1.", nameof(kh));
        if (strideH < 1 || strideW < 1)
            throw new ArgumentException($"Conv2d: stride ({strideH}, {strideW}) must be >= 1.", nameof(strideH));
        if (padH < 0 || padW < 0)
            throw new ArgumentException($"Conv2d: padding ({padH}, {padW}) must be >= 0.", nameof(padH));
        if (dilationH < 1 || dilationW < 1)
            throw new ArgumentException($"Conv2d: dilation ({dilationH}, {dilationW}) must be >= 1.", nameof(dilationH));
        if (groups < 1) throw new ArgumentException($"Conv2d: groups={groups} must be >= 1.", nameof(groups));
        if (c % groups != 0)
            throw new ArgumentException($"Conv2d: input channels C={c} are not divisible by groups={groups}.", nameof(groups));
        if (outC % groups != 0)
            throw new ArgumentException($"Conv2d: output channels OutC={outC} are not divisible by groups={groups}.", nameof(groups));

        long numH = (long)h + 2L * padH - (long)dilationH * (kh - 1) - 1;
        long numW = (long)w + 2L * padW - (long)dilationW * (kw - 1) - 1;
        if (numH < 0)
            throw new ArgumentException(
                $"Conv2d: output height would be < 1: H={h} + 2*padH={padH} is smaller than the dilated kernel " +
                $"dilationH={dilationH}*(KH={kh}-1)+1={(long)dilationH * (kh - 1) + 1}.", nameof(h));
        if (numW < 0)
            throw new ArgumentException(
                $"Conv2d: output width would be < 1: W={w} + 2*padW={padW} is smaller than the dilated kernel " +
                $"dilationW={dilationW}*(KW={kw}-1)+1={(long)dilationW * (kw - 1) + 1}.", nameof(w));
        long oh = numH / strideH + 1, ow = numW / strideW + 1;

        long inLen = (long)n * c * h * w;
        long outLen = (long)n * outC * oh * ow;
        long wLen = (long)outC * (c / groups) * kh * kw;
        long colLen = (long)(c / groups) * kh * kw * oh * ow;
        long max = Array.MaxLength;
        if (inLen > max || outLen > max || wLen > max || colLen > max || oh > max || ow > max)
            throw new ArgumentException(
                $"Conv2d: tensor too large (input {inLen}, output {outLen}, weight {wLen}, im2col {colLen} elements; " +
                $"the limit is {max}).", nameof(n));

        N = n; C = c; H = h; W = w; OutC = outC; KH = kh; KW = kw;
        StrideH = strideH; StrideW = strideW; PadH = padH; PadW = padW;
        DilationH = dilationH; DilationW = dilationW; Groups = groups;
        OH = (int)oh; OW = (int)ow;
    }

    /// <summary>Input channels per group.</summary>
    public int CPerGroup => C / Groups;
    /// <summary>Output channels per group.</summary>
    public int OutCPerGroup => OutC / Groups;
    /// <summary>True when every input channel is its own group (Groups == C &gt; 1): the depthwise path.</summary>
    public bool IsDepthwise => Groups == C && C > 1;
    /// <summary>Output channels per input channel on the depthwise path (OutC / C).</summary>
    public int DepthMultiplier => OutC / C;
    /// <summary>1x1 kernel, stride 1, no padding: the input already is the im2col matrix.</summary>
    public bool IsPointwise => KH == 1 && KW == 1 && StrideH == 1 && StrideW == 1 && PadH == 0 && PadW == 0;
    /// <summary>N*C*H*W.</summary>
    public int InputLength => N * C * H * W;
    /// <summary>N*OutC*OH*OW.</summary>
    public int OutputLength => N * OutC * OH * OW;
    /// <summary>OutC*(C/Groups)*KH*KW.</summary>
    public int WeightLength => OutC * CPerGroup * KH * KW;
    /// <summary>OutC.</summary>
    public int BiasLength => OutC;

    /// <summary>
    /// PyTorch's convolution output size (input + 2*pad - dilation*(kernel-1) - 1) / stride + 1, validated.
    /// </summary>
    public static int OutputSize(int input, int kernel, int stride = 1, int pad = 0, int dilation = 1)
    {
        if (input < 1 || kernel < 1 || stride < 1 || pad < 0 || dilation < 1)
            throw new ArgumentException(
                $"Conv2d: invalid size input={input}, kernel={kernel}, stride={stride}, pad={pad}, dilation={dilation}.");
        long num = (long)input + 2L * pad - (long)dilation * (kernel - 1) - 1;
        if (num < 0)
            throw new ArgumentException(
                $"Conv2d: output size would be < 1 for input={input}, kernel={kernel}, pad={pad}, dilation={dilation}.");
        return (int)(num / stride + 1);
    }

    internal void EnsureInitialized()
    {
        if (Groups == 0) throw new ArgumentException("Conv2d: the Conv2dShape is default (not constructed).");
    }
}

/// <summary>
/// 2-D convolution kernels on NCHW float arrays (PyTorch semantics). The general path is im2col + GEMM per
/// image and group (1x1 stride-1 unpadded convolutions use the input directly as the column matrix); the
/// depthwise path (Groups == C) uses direct loops over zero-padded, stride-phase-split copies of each
/// plane, vectorised along the width for every stride. Work is split over images or
/// channels with <see cref="WorkerPool"/>; results are bitwise deterministic at a fixed thread count.
/// </summary>
public static class ConvKernels
{
    /// <summary>Below about this many multiply-adds per work item set, a loop is not split over threads.</summary>
    internal static int MinParallelWork = 1 << 15;

    private static readonly bool UseFma =
        System.Runtime.Intrinsics.X86.Fma.IsSupported || System.Runtime.Intrinsics.Arm.AdvSimd.IsSupported;

    // ------------------------------------------------------------------------------------------------
    // Public entry points
    // ------------------------------------------------------------------------------------------------

    /// <summary>y[N, OutC, OH, OW] = conv(x[N, C, H, W], w[OutC, C/groups, KH, KW]) + bias[OutC] (bias optional).</summary>
    public static void Conv2dForward(in Conv2dShape s, float[] x, float[] w, float[]? bias, float[] y)
        => Conv2dForward(s, x, w, bias, y, Simd.Level);

    /// <summary>gx[N, C, H, W] = d(sum gy * y)/dx (gx is overwritten).</summary>
    public static void Conv2dBackwardInput(in Conv2dShape s, float[] gy, float[] w, float[] gx)
        => Conv2dBackwardInput(s, gy, w, gx, Simd.Level);

    /// <summary>gw[OutC, C/groups, KH, KW] (+)= d(sum gy * y)/dw, summed over the batch.</summary>
    public static void Conv2dBackwardWeight(in Conv2dShape s, float[] gy, float[] x, float[] gw, bool accumulate)
        => Conv2dBackwardWeight(s, gy, x, gw, accumulate, Simd.Level);

    /// <summary>gb[OutC] (+)= sum of gy over N, OH, OW.</summary>
    public static void Conv2dBackwardBias(in Conv2dShape s, float[] gy, float[] gb, bool accumulate)
        => Conv2dBackwardBias(s, gy, gb, accumulate, Simd.Level);

    // Internal overloads take the SIMD level explicitly so tests can run every vector path (a Vector512 path
    // runs, emulated, even where the hardware lacks it).

    internal static void Conv2dForward(in Conv2dShape s, float[] x, float[] w, float[]? bias, float[] y, SimdLevel level)
    {
        s.EnsureInitialized();
        CheckLength(x, s.InputLength, nameof(x), "N*C*H*W", s);
        CheckLength(w, s.WeightLength, nameof(w), "OutC*(C/groups)*KH*KW", s);
        if (bias != null) CheckLength(bias, s.BiasLength, nameof(bias), "OutC", s);
        CheckLength(y, s.OutputLength, nameof(y), "N*OutC*OH*OW", s);
        if (s.N == 0) return;
        if (s.IsDepthwise) DepthwiseForward(s, x, w, bias, y, level);
        else if (ConvWinograd.Applies(s)) ConvWinograd.Forward(s, x, w, bias, y);
        else if (UseBatchedColumns(s)) BatchedForward(s, x, w, bias, y);
        else GemmForward(s, x, w, bias, y);
    }

    internal static void Conv2dBackwardInput(in Conv2dShape s, float[] gy, float[] w, float[] gx, SimdLevel level)
    {
        s.EnsureInitialized();
        CheckLength(gy, s.OutputLength, nameof(gy), "N*OutC*OH*OW", s);
        CheckLength(w, s.WeightLength, nameof(w), "OutC*(C/groups)*KH*KW", s);
        CheckLength(gx, s.InputLength, nameof(gx), "N*C*H*W", s);
        if (s.N == 0) return;
        if (s.IsDepthwise) DepthwiseBackwardInput(s, gy, w, gx, level);
        else if (ConvWinograd.Applies(s)) ConvWinograd.BackwardInput(s, gy, w, gx);
        else if (UseBatchedColumns(s)) BatchedBackwardInput(s, gy, w, gx);
        else GemmBackwardInput(s, gy, w, gx);
    }

    internal static void Conv2dBackwardWeight(in Conv2dShape s, float[] gy, float[] x, float[] gw, bool accumulate, SimdLevel level)
    {
        s.EnsureInitialized();
        CheckLength(gy, s.OutputLength, nameof(gy), "N*OutC*OH*OW", s);
        CheckLength(x, s.InputLength, nameof(x), "N*C*H*W", s);
        CheckLength(gw, s.WeightLength, nameof(gw), "OutC*(C/groups)*KH*KW", s);
        if (s.N == 0)
        {
            if (!accumulate) Array.Clear(gw);
            return;
        }
        if (s.IsDepthwise) DepthwiseBackwardWeight(s, gy, x, gw, accumulate, level);
        else if (ConvWinograd.Applies(s)) ConvWinograd.BackwardWeight(s, gy, x, gw, accumulate);
        else if (UseBatchedColumns(s)) BatchedBackwardWeight(s, gy, x, gw, accumulate);
        else GemmBackwardWeight(s, gy, x, gw, accumulate);
    }

    internal static void Conv2dBackwardBias(in Conv2dShape s, float[] gy, float[] gb, bool accumulate, SimdLevel level)
    {
        s.EnsureInitialized();
        CheckLength(gy, s.OutputLength, nameof(gy), "N*OutC*OH*OW", s);
        CheckLength(gb, s.BiasLength, nameof(gb), "OutC", s);
        int n = s.N, outC = s.OutC, plane = s.OH * s.OW;
        WorkerPool.For(outC, MinChunk((long)n * plane), (o0, o1) =>
        {
            for (int oc = o0; oc < o1; oc++)
            {
                double acc = 0;
                for (int i = 0; i < n; i++)
                    acc += Sum(gy.AsSpan((i * outC + oc) * plane, plane), level);
                gb[oc] = accumulate ? (float)(gb[oc] + acc) : (float)acc;
            }
        });
    }

    private static void CheckLength(Array a, int expected, string name, string formula, in Conv2dShape s)
    {
        ArgumentNullException.ThrowIfNull(a, name);
        if (a.Length != expected)
            throw new ArgumentException(
                $"Conv2d: {name} has length {a.Length} but {formula} = {expected} for {s}.", name);
    }

    /// <summary>Minimum chunk (in items) so each thread gets at least <see cref="MinParallelWork"/> work.</summary>
    internal static int MinChunk(long workPerItem)
    {
        long chunk = MinParallelWork / Math.Max(1, workPerItem);
        return (int)Math.Clamp(chunk, 1, int.MaxValue);
    }

    private static (int Start, int End) Split(int count, int chunks, int t)
        => ((int)((long)count * t / chunks), (int)((long)count * (t + 1) / chunks));

    // ------------------------------------------------------------------------------------------------
    // General path: im2col + GEMM
    // ------------------------------------------------------------------------------------------------

    /// <summary>Split the batch over threads (each image serial inside) rather than threading each image?</summary>
    private static int ImageChunks(int n)
    {
        int threads = WorkerPool.Threads;
        return threads > 1 && n >= threads ? Math.Min(threads, n) : 1;
    }

    private static int ColLength(in Conv2dShape s)
        => s.IsPointwise ? 0 : s.CPerGroup * s.KH * s.KW * s.OH * s.OW;

    private static void GemmForward(Conv2dShape s, float[] x, float[] w, float[]? bias, float[] y)
    {
        int colLen = ColLength(s);
        int chunks = ImageChunks(s.N);
        if (chunks > 1)
        {
            WorkerPool.Run(chunks, t =>
            {
                var (start, end) = Split(s.N, chunks, t);
                float[]? col = colLen > 0 ? ArrayPool<float>.Shared.Rent(colLen) : null;
                try
                {
                    for (int n = start; n < end; n++) ForwardImage(s, n, x, w, bias, y, col, parallel: false);
                }
                finally
                {
                    if (col != null) ArrayPool<float>.Shared.Return(col);
                }
            });
        }
        else
        {
            float[]? col = colLen > 0 ? ArrayPool<float>.Shared.Rent(colLen) : null;
            try
            {
                for (int n = 0; n < s.N; n++) ForwardImage(s, n, x, w, bias, y, col, parallel: true);
            }
            finally
            {
                if (col != null) ArrayPool<float>.Shared.Return(col);
            }
        }
    }

    /// <summary>
    /// Column block size in bytes for images whose im2col exceeds twice this: the columns are built and multiplied
    /// a block at a time (whole output rows on the padded-plane path, runs of output pixels otherwise), so the
    /// block is still in cache when the GEMM packs it (0: no blocking).
    /// </summary>
    internal static int ColumnBlockBytes = 2 * 1024 * 1024;

    private static int ColumnBlock(in Conv2dShape s)
    {
        // Measured on ResNet-18's 16 x 224 layers (2 threads, padded-plane im2col; forward / weight gradient ms):
        // unblocked, the 7x7 stride-2 stem took 45 / 45 and the 56x56 3x3 layers 34 / 31; 384 KB blocks gave
        // 33 / 39 and 27 / 27 but slowed the 28x28 3x3 layers (23 -> 31, a GEMM N of 56); 2 MB blocks keep the
        // stem and 56x56 gains (33 / 38, 26 / 27) and leave 28x28 unblocked. Small strided kernels keep the
        // whole-image columns.
        if (ColumnBlockBytes <= 0 || s.IsPointwise || (s.StrideW > 1 && s.KH * s.KW < 25)) return 0;
        long k = (long)s.CPerGroup * s.KH * s.KW, p = (long)s.OH * s.OW;
        if (k * p * 4 <= 2L * ColumnBlockBytes) return 0;
        return (int)Math.Min(p, Math.Max(64, ColumnBlockBytes / (k * 4) / 16 * 16));
    }

    private static void ForwardImage(in Conv2dShape s, int n, float[] x, float[] w, float[]? bias, float[] y,
        float[]? col, bool parallel)
    {
        int cg = s.CPerGroup, ocg = s.OutCPerGroup, p = s.OH * s.OW, hw = s.H * s.W, k = cg * s.KH * s.KW;
        int block = col is null ? 0 : ColumnBlock(s);
        if (block > 0 && UsePaddedPlanes(s))
        {
            for (int g = 0; g < s.Groups; g++)
            {
                int yOff = (n * s.OutC + g * ocg) * p, gg = g;
                PaddedRowBlocks(s, x, n, g, block, col!, (q0, nb) => ForwardProduct(ocg, k, w, gg, bias, col!, 0, y, yOff, p, q0, nb));
            }
            return;
        }
        if (block > 0)
        {
            for (int g = 0; g < s.Groups; g++)
            {
                int xOff = (n * s.C + g * cg) * hw;
                int yOff = (n * s.OutC + g * ocg) * p;
                for (int q0 = 0; q0 < p; q0 += block)
                {
                    int q1 = Math.Min(p, q0 + block), nb = q1 - q0;
                    Im2colRange(s, x, xOff, col!, q0, q1);
                    ForwardProduct(ocg, k, w, g, bias, col!, 0, y, yOff, p, q0, nb);
                }
            }
            return;
        }
        for (int g = 0; g < s.Groups; g++)
        {
            int xOff = (n * s.C + g * cg) * hw;
            int yOff = (n * s.OutC + g * ocg) * p;
            float[] b;
            int bOff;
            if (col == null)
            {
                b = x;
                bOff = xOff;
            }
            else
            {
                Im2col(s, x, xOff, col, parallel);
                b = col;
                bOff = 0;
            }
            ForwardProduct(ocg, k, w, g, bias, b, bOff, y, yOff, p, 0, p);
        }
    }

    /// <summary>
    /// Output pixels [q0, q0 + nb) of group g: y_g[:, q0..] = bias + W_g [OCg, K] * B [K, nb] (B at bOff, row
    /// stride nb), into y at yOff with row stride p.
    /// </summary>
    private static void ForwardProduct(int ocg, int k, float[] w, int g, float[]? bias, float[] b, int bOff,
        float[] y, int yOff, int p, int q0, int nb)
    {
        bool acc = false;
        if (bias != null)
        {
            for (int oc = 0; oc < ocg; oc++) y.AsSpan(yOff + oc * p + q0, nb).Fill(bias[g * ocg + oc]);
            acc = true;
        }
        Gemm.Sgemm(false, false, ocg, nb, k, w, g * ocg * k, k, b, bOff, nb, y, yOff + q0, p, acc);
    }

    private static void GemmBackwardInput(Conv2dShape s, float[] gy, float[] w, float[] gx)
    {
        int colLen = ColLength(s);
        int chunks = ImageChunks(s.N);
        if (chunks > 1)
        {
            WorkerPool.Run(chunks, t =>
            {
                var (start, end) = Split(s.N, chunks, t);
                float[]? col = colLen > 0 ? ArrayPool<float>.Shared.Rent(colLen) : null;
                try
                {
                    for (int n = start; n < end; n++) BackwardInputImage(s, n, gy, w, gx, col, parallel: false);
                }
                finally
                {
                    if (col != null) ArrayPool<float>.Shared.Return(col);
                }
            });
        }
        else
        {
            float[]? col = colLen > 0 ? ArrayPool<float>.Shared.Rent(colLen) : null;
            try
            {
                for (int n = 0; n < s.N; n++) BackwardInputImage(s, n, gy, w, gx, col, parallel: true);
            }
            finally
            {
                if (col != null) ArrayPool<float>.Shared.Return(col);
            }
        }
    }

    private static void BackwardInputImage(in Conv2dShape s, int n, float[] gy, float[] w, float[] gx,
        float[]? col, bool parallel)
    {
        int cg = s.CPerGroup, ocg = s.OutCPerGroup, p = s.OH * s.OW, hw = s.H * s.W, k = cg * s.KH * s.KW;
        for (int g = 0; g < s.Groups; g++)
        {
            int gyOff = (n * s.OutC + g * ocg) * p;
            int gxOff = (n * s.C + g * cg) * hw;
            if (col == null)
            {
                // Pointwise: gx_g [Cg, HW] = W_g^T [Cg, OCg] * gy_g [OCg, HW].
                Gemm.Sgemm(true, false, k, p, ocg, w, g * ocg * k, k, gy, gyOff, p, gx, gxOff, p, false);
            }
            else
            {
                Gemm.Sgemm(true, false, k, p, ocg, w, g * ocg * k, k, gy, gyOff, p, col, 0, p, false);
                Col2im(s, col, gx, gxOff, parallel);
            }
        }
    }

    private static void GemmBackwardWeight(Conv2dShape s, float[] gy, float[] x, float[] gw, bool accumulate)
    {
        int colLen = ColLength(s);
        int chunks = ImageChunks(s.N);
        if (chunks > 1)
        {
            // Each chunk of images sums into its own buffer (chunk 0 straight into gw); the partials are then
            // added in chunk order, so the result depends only on the thread count.
            int len = s.WeightLength;
            var partials = new float[chunks][];
            partials[0] = gw;
            for (int t = 1; t < chunks; t++) partials[t] = ArrayPool<float>.Shared.Rent(len);
            try
            {
                WorkerPool.Run(chunks, t =>
                {
                    var (start, end) = Split(s.N, chunks, t);
                    float[]? col = colLen > 0 ? ArrayPool<float>.Shared.Rent(colLen) : null;
                    try
                    {
                        bool acc = t == 0 && accumulate;
                        for (int n = start; n < end; n++)
                        {
                            BackwardWeightImage(s, n, gy, x, partials[t], acc, col, parallel: false);
                            acc = true;
                        }
                    }
                    finally
                    {
                        if (col != null) ArrayPool<float>.Shared.Return(col);
                    }
                });
                var dst = gw.AsSpan();
                for (int t = 1; t < chunks; t++) TensorPrimitives.Add(dst, partials[t].AsSpan(0, len), dst);
            }
            finally
            {
                for (int t = 1; t < chunks; t++) ArrayPool<float>.Shared.Return(partials[t]);
            }
        }
        else
        {
            float[]? col = colLen > 0 ? ArrayPool<float>.Shared.Rent(colLen) : null;
            try
            {
                for (int n = 0; n < s.N; n++)
                    BackwardWeightImage(s, n, gy, x, gw, accumulate || n > 0, col, parallel: true);
            }
            finally
            {
                if (col != null) ArrayPool<float>.Shared.Return(col);
            }
        }
    }

    private static void BackwardWeightImage(in Conv2dShape s, int n, float[] gy, float[] x, float[] gw,
        bool accumulate, float[]? col, bool parallel)
    {
        int cg = s.CPerGroup, ocg = s.OutCPerGroup, p = s.OH * s.OW, hw = s.H * s.W, k = cg * s.KH * s.KW;
        int block = col is null ? 0 : ColumnBlock(s);
        if (block > 0 && UsePaddedPlanes(s))
        {
            // As the forward: gw_g (+)= gy_g[:, block] * col_block^T, block by block.
            for (int g = 0; g < s.Groups; g++)
            {
                int gyOff = (n * s.OutC + g * ocg) * p, gwOff = g * ocg * k;
                bool acc = accumulate;
                PaddedRowBlocks(s, x, n, g, block, col!, (q0, nb) =>
                {
                    Gemm.Sgemm(false, true, ocg, k, nb, gy, gyOff + q0, p, col!, 0, nb, gw, gwOff, k, acc);
                    acc = true;
                });
            }
            return;
        }
        for (int g = 0; g < s.Groups; g++)
        {
            int gyOff = (n * s.OutC + g * ocg) * p;
            int xOff = (n * s.C + g * cg) * hw;
            float[] b;
            int bOff;
            if (col == null)
            {
                b = x;
                bOff = xOff;
            }
            else
            {
                Im2col(s, x, xOff, col, parallel);
                b = col;
                bOff = 0;
            }
            // gw_g [OCg, K] (+)= gy_g [OCg, P] * col^T (col is K x P).
            Gemm.Sgemm(false, true, ocg, k, p, gy, gyOff, p, b, bOff, p, gw, g * ocg * k, k, accumulate);
        }
    }

    // ------------------------------------------------------------------------------------------------
    // Small output planes: one GEMM over the whole batch
    //
    // With a few output pixels per image (ResNet's last stages on small inputs: 2x2, 4x4) a GEMM per image has
    // an N of 4-16, too thin for the micro-kernel. The columns of all images are laid side by side instead,
    // colAll[K, N*P] (image n in columns n*P .. n*P+P), so the batch is a single [OutC, K] x [K, N*P] product.
    // ------------------------------------------------------------------------------------------------

    /// <summary>
    /// Output pixels per image below which a non-grouped convolution batches its columns. ResNet-18, 2 threads,
    /// padded-plane im2col: batching won at 7x7 (16 x 224: 3x3 512 forward 23.5 vs 32.6 ms per image) and below,
    /// and lost at 8x8 (64 x 64: 3x3 128 forward 10.9 vs 9.4 ms) and 14x14 (16 x 224: 3x3 256 29.6 vs 23.8 ms).
    /// </summary>
    internal static int BatchedColumnsMaxPlane = 50;

    private static bool UseBatchedColumns(in Conv2dShape s)
    {
        int p = s.OH * s.OW;
        long k = (long)s.CPerGroup * s.KH * s.KW;
        return s.Groups == 1 && s.N > 1 && p < BatchedColumnsMaxPlane && k * s.N * p <= 1L << 24;
    }

    // colAll[K, N*P]: every image's im2col (a plain copy of x for pointwise convolutions).
    private static float[] BatchedColumns(in Conv2dShape s, float[] x, out int k, out int cols)
    {
        int p = s.OH * s.OW, kk = s.C * s.KH * s.KW, total = s.N * p, n = s.N, chw = s.C * s.H * s.W;
        var all = ArrayPool<float>.Shared.Rent(kk * total);
        var shape = s;
        WorkerPool.For(n, 1, (n0, n1) =>
        {
            for (int i = n0; i < n1; i++)
            {
                // Image i's columns go straight to colAll[:, i*P .. i*P + P) (row stride N*P).
                if (shape.IsPointwise)
                    for (int r = 0; r < kk; r++) Array.Copy(x, i * chw + r * p, all, r * total + i * p, p);
                else if (UsePaddedPlanes(shape))
                    Im2colPadded(shape, x, i * chw, all, 0, shape.C, i * p, total);
                else
                    Im2colRange(shape, x, i * chw, all, 0, p, 0, shape.C, colOffset: i * p, colStride: total);
            }
        });
        k = kk;
        cols = total;
        return all;
    }

    // gyAll[OutC, N*P] from gy[N, OutC, P].
    private static float[] BatchedGradients(in Conv2dShape s, float[] gy)
    {
        int p = s.OH * s.OW, oc = s.OutC, total = s.N * p;
        var all = ArrayPool<float>.Shared.Rent(oc * total);
        for (int i = 0; i < s.N; i++)
            for (int o = 0; o < oc; o++) Array.Copy(gy, (i * oc + o) * p, all, o * total + i * p, p);
        return all;
    }

    private static void BatchedForward(Conv2dShape s, float[] x, float[] w, float[]? bias, float[] y)
    {
        var colAll = BatchedColumns(s, x, out int k, out int cols);
        int p = s.OH * s.OW, oc = s.OutC;
        var outAll = ArrayPool<float>.Shared.Rent(oc * cols);
        try
        {
            Gemm.Sgemm(false, false, oc, cols, k, w, 0, k, colAll, 0, cols, outAll, 0, cols, false);
            for (int i = 0; i < s.N; i++)
                for (int o = 0; o < oc; o++)
                {
                    var dst = y.AsSpan((i * oc + o) * p, p);
                    var src = outAll.AsSpan(o * cols + i * p, p);
                    if (bias is null) src.CopyTo(dst);
                    else TensorPrimitives.Add(src, bias[o], dst);
                }
        }
        finally
        {
            ArrayPool<float>.Shared.Return(colAll);
            ArrayPool<float>.Shared.Return(outAll);
        }
    }

    private static void BatchedBackwardInput(Conv2dShape s, float[] gy, float[] w, float[] gx)
    {
        int p = s.OH * s.OW, oc = s.OutC, k = s.C * s.KH * s.KW, cols = s.N * p, chw = s.C * s.H * s.W;
        var gyAll = BatchedGradients(s, gy);
        var dCol = ArrayPool<float>.Shared.Rent(k * cols);
        try
        {
            // dCol[K, N*P] = W^T [K, OutC] x gyAll [OutC, N*P], then each image's block goes back through col2im.
            Gemm.Sgemm(true, false, k, cols, oc, w, 0, k, gyAll, 0, cols, dCol, 0, cols, false);
            var shape = s;
            if (!s.IsPointwise && UsePaddedPlanes(s))
            {
                // Each image's block of dCol goes straight through the padded col2im (row stride N*P).
                WorkerPool.For(s.N, 1, (n0, n1) =>
                {
                    for (int i = n0; i < n1; i++) Col2imPadded(shape, dCol, i * p, cols, gx, i * chw, 0, shape.C);
                });
                return;
            }
            WorkerPool.For(s.N, 1, (n0, n1) =>
            {
                var col = ArrayPool<float>.Shared.Rent(k * p);
                try
                {
                    for (int i = n0; i < n1; i++)
                    {
                        for (int r = 0; r < k; r++) Array.Copy(dCol, r * cols + i * p, col, r * p, p);
                        if (shape.IsPointwise) Array.Copy(col, 0, gx, i * chw, chw);
                        else Col2imChannels(shape, col, gx, i * chw, 0, shape.C);
                    }
                }
                finally
                {
                    ArrayPool<float>.Shared.Return(col);
                }
            });
        }
        finally
        {
            ArrayPool<float>.Shared.Return(gyAll);
            ArrayPool<float>.Shared.Return(dCol);
        }
    }

    private static void BatchedBackwardWeight(Conv2dShape s, float[] gy, float[] x, float[] gw, bool accumulate)
    {
        var colAll = BatchedColumns(s, x, out int k, out int cols);
        var gyAll = BatchedGradients(s, gy);
        try
        {
            // gw [OutC, K] (+)= gyAll [OutC, N*P] x colAll^T [N*P, K].
            Gemm.Sgemm(false, true, s.OutC, k, cols, gyAll, 0, cols, colAll, 0, cols, gw, 0, k, accumulate);
        }
        finally
        {
            ArrayPool<float>.Shared.Return(colAll);
            ArrayPool<float>.Shared.Return(gyAll);
        }
    }

    /// <summary>
    /// col[(c*KH + kh)*KW + kw, oh*OW + ow] = x[c, oh*sH - pH + kh*dH, ow*sW - pW + kw*dW] (0 outside) for the
    /// C/groups channels starting at <paramref name="xOff"/>.
    /// </summary>
    private static void Im2col(Conv2dShape s, float[] x, int xOff, float[] col, bool parallel)
    {
        int cg = s.CPerGroup;
        long perChannel = (long)s.KH * s.KW * s.OH * s.OW;
        if (parallel && WorkerPool.Threads > 1 && cg > 1 && cg * perChannel >= 2L * MinParallelWork)
            WorkerPool.For(cg, MinChunk(perChannel), (c0, c1) => Im2colChannels(s, x, xOff, col, c0, c1));
        else
            Im2colChannels(s, x, xOff, col, 0, cg);
    }

    private static void Im2colChannels(in Conv2dShape s, float[] x, int xOff, float[] col, int c0, int c1)
    {
        if (UsePaddedPlanes(s)) Im2colPadded(s, x, xOff, col, c0, c1, 0, s.OH * s.OW);
        else Im2colRange(s, x, xOff, col, 0, s.OH * s.OW, c0, c1);
    }

    // ------------------------------------------------------------------------------------------------
    // Whole-plane im2col / col2im through a zero-padded copy of each input plane
    //
    // With the padding materialised, tap (kh, kw) of output row oh reads (or, backward, adds to) one run of OW
    // elements, stride StrideW, with no bounds checks: pad[(oh*sH + kh*dH) * Wp + kw*dW + ow*sW]. The row-by-row
    // clamping of Im2colRange costs several calls per run, which dominated for the small planes of the later
    // ResNet stages (1.5 ns per element at 8x8, 6 ns at 2x2, against about 0.3 ns here).
    // ------------------------------------------------------------------------------------------------

    /// <summary>Padded plane rows and columns that the output can reach.</summary>
    private static (int Hp, int Wp) PaddedPlane(in Conv2dShape s)
        => ((s.OH - 1) * s.StrideH + (s.KH - 1) * s.DilationH + 1, (s.OW - 1) * s.StrideW + (s.KW - 1) * s.DilationW + 1);

    /// <summary>
    /// Use the padded plane when building it writes at most as many floats as the columns (not for strided 1x1
    /// kernels, which read a quarter of the plane or less). The bound was half the column writes until the small
    /// stride-2 3x3 planes of ResNet-18 at 64x64 (outputs 8x8, 4x4, 2x2, whose padded planes are 17x17, 9x9,
    /// 5x5) were measured on the row-clamped path: at batch 64, 2 threads, their forward took 3.9 / 3.6 / 3.4 ms
    /// there and 2.4 / 2.1 / 2.1 ms through padded planes (backward 7.1 / 6.1 / 6.5 against 5.3 / 4.5 / 5.1), and
    /// the whole train step 197.8 -> 192.9 ms (median of 102 steps each, alternated).
    /// </summary>
    internal static bool UsePaddedPlanes(in Conv2dShape s)
    {
        if (NoPaddedPlanes) return false;
        var (hp, wp) = PaddedPlane(s);
        return (long)hp * wp <= (long)s.KH * s.KW * s.OH * s.OW;
    }

    /// <summary>Turns the padded-plane path off (every im2col / col2im row-clamped), for tests and measurements.</summary>
    internal static bool NoPaddedPlanes;

    private const int StackPlaneFloats = 4096;

    /// <summary>
    /// Spare floats after a padded plane (or the last of several): the stride-2 gathers and scatter-adds of the last
    /// tap read (and write back unchanged) one float past their run, which for the plane's last row lies past the plane.
    /// </summary>
    private const int PlaneSlack = 8;

    /// <summary>The padded columns [lo, hi) that hold input columns 0, 1, ... (the rest are padding).</summary>
    private static (int Lo, int Hi) InputColumns(in Conv2dShape s, int wp)
    {
        int lo = Math.Min(s.PadW, wp);
        return (lo, Math.Clamp(s.PadW + s.W, lo, wp));
    }

    /// <summary>pad[Hp, Wp] = the plane at x[xOff..] shifted by (PadH, PadW), zero outside the input.</summary>
    private static void PadPlane(in Conv2dShape s, ReadOnlySpan<float> plane, Span<float> pad, int hp, int wp)
    {
        int h = s.H, w = s.W;
        var (lo, hi) = InputColumns(s, wp);
        for (int r = 0; r < hp; r++)
        {
            var dst = pad.Slice(r * wp, wp);
            int ih = r - s.PadH;
            if ((uint)ih >= (uint)h) { dst.Clear(); continue; }
            dst.Slice(0, lo).Clear();
            plane.Slice(ih * w, hi - lo).CopyTo(dst.Slice(lo));
            dst.Slice(hi).Clear();
        }
    }

    /// <summary>
    /// Im2col of the whole output plane for channels [c0, c1) of the group at <paramref name="xOff"/>: row r of
    /// the columns is col[colOffset + r * ld ..] (OH*OW elements).
    /// </summary>
    private static unsafe void Im2colPadded(in Conv2dShape s, float[] x, int xOff, float[] col, int c0, int c1,
        int colOffset, int ld)
    {
        var (hp, wp) = PaddedPlane(s);
        int len = hp * wp, oh = s.OH, hw = s.H * s.W;
        if ((long)colOffset + (long)(c1 * s.KH * s.KW - 1) * ld + oh * s.OW > col.Length)
            throw new InvalidOperationException("Conv2d: column buffer too small.");
        float[]? rented = null;
        Span<float> pad = len <= StackPlaneFloats ? stackalloc float[len + PlaneSlack] : (rented = ArrayPool<float>.Shared.Rent(len + PlaneSlack)).AsSpan(0, len + PlaneSlack);
        try
        {
            fixed (float* pp = pad, pc = col)
            {
                for (int c = c0; c < c1; c++)
                {
                    PadPlane(s, x.AsSpan(xOff + c * hw, hw), pad, hp, wp);
                    GatherTaps(s, pp, wp, oh, pc + colOffset + (long)c * s.KH * s.KW * ld, ld);
                }
            }
        }
        finally
        {
            if (rented != null) ArrayPool<float>.Shared.Return(rented);
        }
    }

    /// <summary>
    /// Builds the im2col columns of image n, group g, a block of whole output rows at a time (about
    /// <paramref name="block"/> pixels) from one padded copy of the group's planes, and after each block calls
    /// use(first pixel, pixels) with col holding that block's K x pixels columns.
    /// </summary>
    private static void PaddedRowBlocks(in Conv2dShape s, float[] x, int n, int g, int block, float[] col, Action<int, int> use)
    {
        int rows = Math.Max(1, block / s.OW), ow = s.OW, hw = s.H * s.W, cg = s.CPerGroup;
        var (hp, wp) = PaddedPlane(s);
        var padded = ArrayPool<float>.Shared.Rent(cg * hp * wp + PlaneSlack);
        try
        {
            int xOff = (n * s.C + g * cg) * hw;
            for (int c = 0; c < cg; c++)
                PadPlane(s, x.AsSpan(xOff + c * hw, hw), padded.AsSpan(c * hp * wp, hp * wp), hp, wp);
            for (int y0 = 0; y0 < s.OH; y0 += rows)
            {
                int y1 = Math.Min(s.OH, y0 + rows);
                Im2colPaddedRows(s, padded, hp, wp, col, y0, y1);
                use(y0 * ow, (y1 - y0) * ow);
            }
        }
        finally
        {
            ArrayPool<float>.Shared.Return(padded);
        }
    }

    /// <summary>
    /// Im2col of output rows [y0, y1) from padded planes (channel c at padded[c * Hp * Wp]): row r of the
    /// columns is col[r * (y1 - y0) * OW ..].
    /// </summary>
    private static unsafe void Im2colPaddedRows(in Conv2dShape s, float[] padded, int hp, int wp, float[] col, int y0, int y1)
    {
        int nb = (y1 - y0) * s.OW, cg = s.CPerGroup, sH = s.StrideH;
        if ((long)cg * s.KH * s.KW * nb > col.Length || (long)cg * hp * wp > padded.Length)
            throw new InvalidOperationException("Conv2d: column or padded buffer too small.");
        fixed (float* pp = padded, pc = col)
        {
            for (int c = 0; c < cg; c++)
                GatherTaps(s, pp + (long)c * hp * wp + y0 * sH * wp, wp, y1 - y0, pc + (long)c * s.KH * s.KW * nb, nb);
        }
    }

    /// <summary>
    /// Col2im of the whole plane for channels [c0, c1): the gx planes at <paramref name="gxOff"/> are overwritten
    /// with the scatter-add of col rows col[colOffset + r * ld ..]. Each element sums its taps in (kh, kw) order
    /// from zero, the same order as the row-clamped path.
    /// </summary>
    private static unsafe void Col2imPadded(in Conv2dShape s, float[] col, int colOffset, int ld, float[] gx, int gxOff,
        int c0, int c1)
    {
        var (hp, wp) = PaddedPlane(s);
        int len = hp * wp, oh = s.OH, ow = s.OW, sH = s.StrideH, sW = s.StrideW, h = s.H, w = s.W;
        int p = oh * ow;
        if ((long)colOffset + (long)(c1 * s.KH * s.KW - 1) * ld + p > col.Length)
            throw new InvalidOperationException("Conv2d: column buffer too small.");
        float[]? rented = null;
        Span<float> pad = len <= StackPlaneFloats ? stackalloc float[len + PlaneSlack] : (rented = ArrayPool<float>.Shared.Rent(len + PlaneSlack)).AsSpan(0, len + PlaneSlack);
        var (lo, hi) = InputColumns(s, wp);
        try
        {
            fixed (float* pp = pad, pc = col)
            {
                for (int c = c0; c < c1; c++)
                {
                    pad.Clear();
                    for (int kh = 0; kh < s.KH; kh++)
                    for (int kw = 0; kw < s.KW; kw++)
                    {
                        float* src = pc + colOffset + (long)((c * s.KH + kh) * s.KW + kw) * ld;
                        float* dst = pp + kh * s.DilationH * wp + kw * s.DilationW;
                        for (int y = 0; y < oh; y++, src += ow, dst += sH * wp)
                        {
                            if (sW == 1) AddRun(src, dst, ow);
                            else if (sW == 2 && !NoStride2Vector) AddToEvens(src, dst, ow, slack: true);
                            else for (int xo = 0; xo < ow; xo++) dst[xo * sW] += src[xo];
                        }
                    }
                    var plane = gx.AsSpan(gxOff + c * h * w, h * w);
                    for (int ih = 0; ih < h; ih++)
                    {
                        var dstRow = plane.Slice(ih * w, w);
                        int r = ih + s.PadH;
                        if (r >= hp) { dstRow.Clear(); continue; }
                        // Input columns iw = cc - PadW for padded columns cc in [lo, hi); the rest get no tap.
                        pad.Slice(r * wp + lo, hi - lo).CopyTo(dstRow);
                        dstRow.Slice(hi - lo).Clear();
                    }
                }
            }
        }
        finally
        {
            if (rented != null) ArrayPool<float>.Shared.Return(rented);
        }
    }

    /// <summary>
    /// The KH*KW column rows of one channel for <paramref name="rows"/> output rows: row (kh, kw) goes to
    /// dst[(kh*KW + kw) * ld ..] and reads the padded plane from its row kh*dH, column kw*dW (src is the plane at
    /// the first output row's first padded row; Wp its row length).
    /// </summary>
    private static unsafe void GatherTaps(in Conv2dShape s, float* src, int wp, int rows, float* dst, int ld)
    {
        int ow = s.OW, sW = s.StrideW;
        nint rowStep = (nint)s.StrideH * wp;
        for (int kh = 0; kh < s.KH; kh++)
        for (int kw = 0; kw < s.KW; kw++)
        {
            float* d = dst + (long)(kh * s.KW + kw) * ld;
            float* p = src + kh * s.DilationH * wp + kw * s.DilationW;
            for (int y = 0; y < rows; y++, d += ow, p += rowStep)
            {
                if (sW == 1) CopyRun(p, d, ow);
                else if (sW == 2 && !NoStride2Vector) GatherEvens(p, d, ow, slack: true);
                else for (int xo = 0; xo < ow; xo++) d[xo] = p[xo * sW];
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe void CopyRun(float* src, float* dst, int n)
    {
        int i = 0;
        if (Vector256.IsHardwareAccelerated)
            for (; i + 8 <= n; i += 8) Vector256.Store(Vector256.Load(src + i), dst + i);
        if (Vector128.IsHardwareAccelerated)
            for (; i + 4 <= n; i += 4) Vector128.Store(Vector128.Load(src + i), dst + i);
        for (; i < n; i++) dst[i] = src[i];
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe void AddRun(float* src, float* dst, int n)
    {
        int i = 0;
        if (Vector256.IsHardwareAccelerated)
            for (; i + 8 <= n; i += 8) Vector256.Store(Vector256.Load(dst + i) + Vector256.Load(src + i), dst + i);
        if (Vector128.IsHardwareAccelerated)
            for (; i + 4 <= n; i += 4) Vector128.Store(Vector128.Load(dst + i) + Vector128.Load(src + i), dst + i);
        for (; i < n; i++) dst[i] += src[i];
    }

    /// <summary>
    /// Turns off the vector stride-2 gathers and scatter-adds (<see cref="GatherEvens"/>, <see cref="AddToEvens"/>)
    /// for measurements and tests. A field without an initialiser, as the GEMM kernels' switches.
    /// </summary>
    internal static bool NoStride2Vector;

    /// <summary>
    /// The output columns [lo, hi) within [x0, x1) whose stride-2 tap 2 xo + offW lies inside a row of w input
    /// columns (lo &lt;= hi; empty when none does).
    /// </summary>
    private static (int Lo, int Hi) Stride2Inside(int offW, int w, int x0, int x1)
    {
        int lo = Math.Clamp((1 - offW) / 2, x0, x1);
        return (lo, Math.Clamp((w - offW + 1) / 2, lo, x1));
    }

    /// <summary>
    /// dst[i] = src[2i] for i &lt; n, reading src[0 .. 2n - 2] only. With AVX2 eight at a time from 16 floats; the
    /// last eight, whose 16 floats would end one past src[2n - 2], are taken as the odd elements of the 16 floats
    /// one earlier (they overlap the group before: the same values written again). The taps of stride-2
    /// convolutions (ResNet's stem and downsampling convolutions) read their rows this way. With
    /// <paramref name="slack"/> the caller guarantees src[2n - 1] is readable too (a padded plane with spare floats
    /// after it, <see cref="PlaneSlack"/>): then every group of 8 takes the 16 floats that end there, and runs of 4 to
    /// 7 (the 4x4 and 8x8 outputs of ResNet-18 at 64 x 64) go four at a time with SSE; the values are the same.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe void GatherEvens(float* src, float* dst, int n, bool slack = false)
    {
        if (Avx2.IsSupported && (n >= 9 || (slack && n >= 8)))
        {
            int i = 0;
            for (; i + 9 <= n || (slack && i + 8 <= n); i += 8)
            {
                EvenLanes(Vector256.Load(src + 2 * i), Vector256.Load(src + 2 * i + 8)).Store(dst + i);
            }
            if (i < n)
            {
                int last = n - 8;
                OddLanes(Vector256.Load(src + 2 * last - 1), Vector256.Load(src + 2 * last + 7)).Store(dst + last);
            }
            return;
        }
        int j = 0;
        if (slack && Sse.IsSupported)
        {
            // a0 a2 b0 b2 from src[2j .. 2j + 7], the last of which may be the slack float.
            for (; j + 4 <= n; j += 4)
                Sse.Shuffle(Vector128.Load(src + 2 * j), Vector128.Load(src + 2 * j + 4), 0b10_00_10_00).Store(dst + j);
        }
        for (; j < n; j++) dst[j] = src[2 * j];
    }

    /// <summary>
    /// The even lanes of the sixteen floats a, b (a0 a2 a4 a6 b0 b2 b4 b6), AVX2: a shuffle gives (a0 a2 b0 b2 | a4 a6
    /// b4 b6), a 64-bit permute puts the pairs in order. The stride-2 gathers and the Winograd column splits use it.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector256<float> EvenLanes(Vector256<float> a, Vector256<float> b) =>
        Avx2.Permute4x64(Avx.Shuffle(a, b, 0b10_00_10_00).AsDouble(), 0b11_01_10_00).AsSingle();

    /// <summary>The odd lanes of the sixteen floats a, b (a1 a3 a5 a7 b1 b3 b5 b7), as <see cref="EvenLanes"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector256<float> OddLanes(Vector256<float> a, Vector256<float> b) =>
        Avx2.Permute4x64(Avx.Shuffle(a, b, 0b11_01_11_01).AsDouble(), 0b11_01_10_00).AsSingle();

    /// <summary>
    /// dst[2i] += src[i] for i &lt; n, touching dst[0 .. 2n - 2] only. With AVX2 eight at a time: 16 floats of dst
    /// get src interleaved with -0 (x + -0 is x exactly, for -0 too, so the odd elements keep their bits); the
    /// rest one at a time. The same sums as the scalar loop, bit for bit. With <paramref name="slack"/> the caller
    /// guarantees dst[2n - 1] is there to be read and written back (it gets + -0, so keeps its bits): groups of 8 then
    /// run up to the end, and groups of 4 with SSE after them.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe void AddToEvens(float* src, float* dst, int n, bool slack = false)
    {
        int i = 0;
        if (Avx2.IsSupported)
        {
            var negZero = Vector256.Create(-0f);
            for (; i + 9 <= n || (slack && i + 8 <= n); i += 8)
            {
                var v = Vector256.Load(src + i);
                var lo = Avx.UnpackLow(v, negZero);    // s0 z s1 z | s4 z s5 z
                var hi = Avx.UnpackHigh(v, negZero);   // s2 z s3 z | s6 z s7 z
                float* d = dst + 2 * i;
                (Vector256.Load(d) + Avx.Permute2x128(lo, hi, 0x20)).Store(d);
                (Vector256.Load(d + 8) + Avx.Permute2x128(lo, hi, 0x31)).Store(d + 8);
            }
        }
        if (slack && Sse.IsSupported)
        {
            var negZero = Vector128.Create(-0f);
            for (; i + 4 <= n; i += 4)
            {
                var v = Vector128.Load(src + i);
                float* d = dst + 2 * i;
                (Vector128.Load(d) + Sse.UnpackLow(v, negZero)).Store(d);          // s0 z s1 z
                (Vector128.Load(d + 4) + Sse.UnpackHigh(v, negZero)).Store(d + 4); // s2 z s3 z
            }
        }
        for (; i < n; i++) dst[2 * i] += src[i];
    }

    /// <summary>
    /// The im2col columns of output pixels [q0, q1): col[row * (q1 - q0) + (q - q0)] for the rows (c, kh, kw) of
    /// channels [c0, c1) (all C/groups by default) of the group at <paramref name="xOff"/>.
    /// </summary>
    private static unsafe void Im2colRange(in Conv2dShape s, float[] x, int xOff, float[] col, int q0, int q1, int c0 = 0, int c1 = -1,
        int colOffset = 0, int colStride = -1)
    {
        if (c1 < 0) c1 = s.CPerGroup;
        int h = s.H, w = s.W, ow = s.OW, nb = q1 - q0;
        int ld = colStride < 0 ? nb : colStride;   // row stride of col (the batched path writes one image's columns into a wider matrix)
        int sH = s.StrideH, sW = s.StrideW;
        for (int c = c0; c < c1; c++)
        for (int kh = 0; kh < s.KH; kh++)
        for (int kw = 0; kw < s.KW; kw++)
        {
            int row = (c * s.KH + kh) * s.KW + kw;
            var dst = col.AsSpan(colOffset + row * ld, nb);
            int offW = kw * s.DilationW - s.PadW;
            int offH = kh * s.DilationH - s.PadH;
            int q = q0;
            while (q < q1)
            {
                int y = q / ow, x0 = q - y * ow, x1 = Math.Min(ow, x0 + (q1 - q));
                var dstRow = dst.Slice(q - q0, x1 - x0);
                int ih = y * sH + offH;
                if ((uint)ih >= (uint)h) dstRow.Clear();
                else
                {
                    int srcBase = xOff + (c * h + ih) * w;
                    if (sW == 1)
                    {
                        // Output columns xo in [x0, x1) read input column xo + offW when inside the row.
                        int lo = Math.Clamp(-offW, x0, x1), hi = Math.Clamp(w - offW, lo, x1);
                        dstRow.Slice(0, lo - x0).Clear();
                        // No copy when the tap stays in the padding for the whole run (its start would then lie
                        // before the row, even before the array for the first row).
                        if (hi > lo) x.AsSpan(srcBase + lo + offW, hi - lo).CopyTo(dstRow.Slice(lo - x0));
                        dstRow.Slice(hi - x0).Clear();
                    }
                    else if (sW == 2 && !NoStride2Vector)
                    {
                        // Output columns xo in [lo, hi) read input column 2 xo + offW when inside the row.
                        var (lo, hi) = Stride2Inside(offW, w, x0, x1);
                        dstRow.Slice(0, lo - x0).Clear();
                        if (hi > lo)
                            fixed (float* ps = &x[srcBase + 2 * lo + offW], pd = &dstRow[lo - x0])
                                GatherEvens(ps, pd, hi - lo);
                        dstRow.Slice(hi - x0).Clear();
                    }
                    else
                    {
                        for (int xo = x0; xo < x1; xo++)
                        {
                            int iw = xo * sW + offW;
                            dstRow[xo - x0] = (uint)iw < (uint)w ? x[srcBase + iw] : 0f;
                        }
                    }
                }
                q += x1 - x0;
            }
        }
    }

    /// <summary>Overwrites the C/groups gx planes at <paramref name="gxOff"/> with the scatter-add of col.</summary>
    private static void Col2im(Conv2dShape s, float[] col, float[] gx, int gxOff, bool parallel)
    {
        int cg = s.CPerGroup;
        long perChannel = (long)s.KH * s.KW * s.OH * s.OW;
        if (parallel && WorkerPool.Threads > 1 && cg > 1 && cg * perChannel >= 2L * MinParallelWork)
            WorkerPool.For(cg, MinChunk(perChannel), (c0, c1) => Col2imChannels(s, col, gx, gxOff, c0, c1));
        else
            Col2imChannels(s, col, gx, gxOff, 0, cg);
    }

    private static unsafe void Col2imChannels(in Conv2dShape s, float[] col, float[] gx, int gxOff, int c0, int c1)
    {
        if (UsePaddedPlanes(s))
        {
            Col2imPadded(s, col, 0, s.OH * s.OW, gx, gxOff, c0, c1);
            return;
        }
        int h = s.H, w = s.W, oh = s.OH, ow = s.OW, p = oh * ow;
        int sH = s.StrideH, sW = s.StrideW;
        for (int c = c0; c < c1; c++)
        {
            var plane = gx.AsSpan(gxOff + c * h * w, h * w);
            plane.Clear();
            for (int kh = 0; kh < s.KH; kh++)
            for (int kw = 0; kw < s.KW; kw++)
            {
                int row = (c * s.KH + kh) * s.KW + kw;
                var src = col.AsSpan(row * p, p);
                int offW = kw * s.DilationW - s.PadW;
                int offH = kh * s.DilationH - s.PadH;
                for (int y = 0; y < oh; y++)
                {
                    int ih = y * sH + offH;
                    if ((uint)ih >= (uint)h) continue;
                    var srcRow = src.Slice(y * ow, ow);
                    var dstRow = plane.Slice(ih * w, w);
                    if (sW == 1)
                    {
                        int lo = Math.Max(0, -offW), hi = Math.Min(ow, w - offW);
                        if (hi <= lo) continue;
                        var d = dstRow.Slice(lo + offW, hi - lo);
                        TensorPrimitives.Add(d, srcRow.Slice(lo, hi - lo), d);
                    }
                    else if (sW == 2 && !NoStride2Vector)
                    {
                        // Output columns xo in [lo, hi) add into input column 2 xo + offW (inside the row).
                        var (lo, hi) = Stride2Inside(offW, w, 0, ow);
                        if (hi > lo)
                            fixed (float* ps = &srcRow[lo], pd = &dstRow[2 * lo + offW])
                                AddToEvens(ps, pd, hi - lo);
                    }
                    else
                    {
                        for (int xo = 0; xo < ow; xo++)
                        {
                            int iw = xo * sW + offW;
                            if ((uint)iw < (uint)w) dstRow[iw] += srcRow[xo];
                        }
                    }
                }
            }
        }
    }

    // ------------------------------------------------------------------------------------------------
    // Depthwise path (Groups == C): output channel oc = c*multiplier + m reads input channel c only.
    //
    // Each input plane is copied once into sW zero-padded "phase" planes: phase r holds the padded columns
    // r, r + sW, r + 2*sW, ... so that for every stride the taps of one output row read a contiguous run:
    // tap (kh, kw) with kw*dW = q*sW + r reads phase r, row oh*sH + kh*dH, columns ow + q. With sH == 1 the
    // rows of a block are also one contiguous run (the row stride Wq is the same for the output block and
    // the phase plane), so each tap is a single long vectorised axpy / dot over a block of output rows; the
    // Wq - OW extra columns per row are scratch and are dropped (forward) or kept zero (backward).
    // ------------------------------------------------------------------------------------------------

    /// <summary>Floats per block of output rows processed at once (about 8 KB, so a block stays in L1).</summary>
    private const int BlockFloats = 2048;

    private readonly struct DwGeometry
    {
        public readonly int Wq;           // phase-plane row length (>= OW)
        public readonly int Hr;           // phase-plane rows: padded input rows the output can reach
        public readonly int PhaseLen;     // Hr * Wq
        public readonly int RowsPerBlock; // output rows per block (1 unless StrideH == 1)
        public readonly int BlockLen;     // RowsPerBlock * Wq

        public DwGeometry(in Conv2dShape s)
        {
            Wq = s.OW + (s.KW - 1) * s.DilationW / s.StrideW;
            Hr = (s.OH - 1) * s.StrideH + (s.KH - 1) * s.DilationH + 1;
            long phases = (long)Hr * Wq * s.StrideW;
            if (phases > Array.MaxLength)
                throw new ArgumentException($"Conv2d: depthwise padded plane of {phases} elements is too large for {s}.");
            PhaseLen = Hr * Wq;
            RowsPerBlock = s.StrideH == 1 ? Math.Clamp(BlockFloats / Wq, 1, s.OH) : 1;
            BlockLen = RowsPerBlock * Wq;
        }

        /// <summary>Offset in the phase planes of tap (kh, kw) for output row oh, column 0.</summary>
        public int TapOffset(in Conv2dShape s, int oh, int kh, int kw)
        {
            int col = kw * s.DilationW;
            return col % s.StrideW * PhaseLen + (oh * s.StrideH + kh * s.DilationH) * Wq + col / s.StrideW;
        }
    }

    /// <summary>phases[r][pr][i] = x[pr - PadH, i*StrideW + r - PadW], zero outside the input.</summary>
    private static void BuildPhases(in Conv2dShape s, in DwGeometry g, ReadOnlySpan<float> xPlane, Span<float> phases)
    {
        int h = s.H, w = s.W, sW = s.StrideW, pH = s.PadH, pW = s.PadW, wq = g.Wq;
        for (int r = 0; r < sW; r++)
        {
            var phase = phases.Slice(r * g.PhaseLen, g.PhaseLen);
            for (int pr = 0; pr < g.Hr; pr++)
            {
                var row = phase.Slice(pr * wq, wq);
                int ih = pr - pH;
                if ((uint)ih >= (uint)h)
                {
                    row.Clear();
                    continue;
                }
                var xRow = xPlane.Slice(ih * w, w);
                if (sW == 1)
                {
                    int lo = Math.Min(wq, pW), hi = Math.Min(wq, w + pW);
                    row.Slice(0, lo).Clear();
                    if (hi > lo) xRow.Slice(lo - pW, hi - lo).CopyTo(row.Slice(lo));
                    row.Slice(Math.Max(lo, hi)).Clear();
                }
                else
                {
                    var (lo, hi) = PhaseRange(w, sW, pW, r, wq);
                    row.Slice(0, lo).Clear();
                    if (hi > lo)
                    {
                        // Strided gather; PhaseRange keeps (i*sW + r - pW) inside xRow for i in [lo, hi).
                        int first = lo * sW + r - pW;
                        if ((uint)first >= (uint)w || (long)(hi - 1 - lo) * sW + first >= w)
                            throw new InvalidOperationException("Depthwise phase range out of bounds.");
                        ref float src = ref Unsafe.Add(ref MemoryMarshal.GetReference(xRow), first);
                        ref float dst = ref Unsafe.Add(ref MemoryMarshal.GetReference(row), lo);
                        for (int k = 0, e = hi - lo; k < e; k++) Unsafe.Add(ref dst, k) = Unsafe.Add(ref src, k * sW);
                    }
                    row.Slice(hi).Clear();
                }
            }
        }
    }

    /// <summary>
    /// The phase columns [lo, hi) (hi &lt;= wq) whose input column i*sW + r - pW lies inside [0, w).
    /// </summary>
    private static (int Lo, int Hi) PhaseRange(int w, int sW, int pW, int r, int wq)
    {
        int before = pW - r;
        int lo = before > 0 ? (before + sW - 1) / sW : 0;
        int lastNum = w - 1 + pW - r;
        int hi = lastNum < 0 ? 0 : Math.Min(wq, lastNum / sW + 1);
        lo = Math.Min(lo, hi);
        return (lo, hi);
    }

    /// <summary>gx[ih, iw] = phases[(iw + PadW) % StrideW][ih + PadH][(iw + PadW) / StrideW] (0 where unreached).</summary>
    private static void GatherPhases(in Conv2dShape s, in DwGeometry g, ReadOnlySpan<float> phases, Span<float> gxPlane)
    {
        int h = s.H, w = s.W, sW = s.StrideW, pH = s.PadH, pW = s.PadW, wq = g.Wq;
        for (int ih = 0; ih < h; ih++)
        {
            var gxRow = gxPlane.Slice(ih * w, w);
            int pr = ih + pH;
            if (pr >= g.Hr)
            {
                gxRow.Clear();
                continue;
            }
            if (sW == 1)
            {
                int count = Math.Clamp(wq - pW, 0, w);
                if (count > 0) phases.Slice(pr * wq + pW, count).CopyTo(gxRow);
                gxRow.Slice(count).Clear();
            }
            else
            {
                gxRow.Clear();
                for (int r = 0; r < sW; r++)
                {
                    var (lo, hi) = PhaseRange(w, sW, pW, r, wq);
                    if (hi <= lo) continue;
                    int first = lo * sW + r - pW;
                    if ((uint)first >= (uint)w || (long)(hi - 1 - lo) * sW + first >= w)
                        throw new InvalidOperationException("Depthwise phase range out of bounds.");
                    var phaseRow = phases.Slice(r * g.PhaseLen + pr * wq + lo, hi - lo);
                    ref float src = ref MemoryMarshal.GetReference(phaseRow);
                    ref float dst = ref Unsafe.Add(ref MemoryMarshal.GetReference(gxRow), first);
                    for (int k = 0, e = hi - lo; k < e; k++) Unsafe.Add(ref dst, k * sW) = Unsafe.Add(ref src, k);
                }
            }
        }
    }

    /// <summary>
    /// The gy rows [oh0, oh0 + rows) laid out with row stride Wq and zero gaps (or the rows themselves when
    /// they are already contiguous with that stride).
    /// </summary>
    private static ReadOnlySpan<float> GyBlock(in Conv2dShape s, in DwGeometry g, ReadOnlySpan<float> gyPlane,
        int oh0, int rows, Span<float> block)
    {
        int ow = s.OW, wq = g.Wq, len = (rows - 1) * wq + ow;
        if (rows == 1 || wq == ow) return gyPlane.Slice(oh0 * ow, len);
        for (int i = 0; i < rows; i++)
        {
            gyPlane.Slice((oh0 + i) * ow, ow).CopyTo(block.Slice(i * wq));
            if (i < rows - 1) block.Slice(i * wq + ow, wq - ow).Clear();
        }
        return block.Slice(0, len);
    }

    private static void DepthwiseForward(Conv2dShape s, float[] x, float[] w, float[]? bias, float[] y, SimdLevel level)
    {
        var g = new DwGeometry(s);
        int c = s.C;
        long work = (long)s.DepthMultiplier * s.OH * s.OW * s.KH * s.KW;
        WorkerPool.For(s.N * c, MinChunk(work), (i0, i1) =>
        {
            var phases = ArrayPool<float>.Shared.Rent(g.PhaseLen * s.StrideW);
            var block = ArrayPool<float>.Shared.Rent(g.BlockLen);
            try
            {
                for (int i = i0; i < i1; i++)
                    DepthwiseForwardPlane(s, g, i / c, i % c, x, w, bias, y, phases, block, level);
            }
            finally
            {
                ArrayPool<float>.Shared.Return(block);
                ArrayPool<float>.Shared.Return(phases);
            }
        });
    }

    private static void DepthwiseForwardPlane(in Conv2dShape s, in DwGeometry g, int n, int c, float[] x, float[] w,
        float[]? bias, float[] y, float[] phaseBuffer, float[] blockBuffer, SimdLevel level)
    {
        int oh = s.OH, ow = s.OW, kh = s.KH, kw = s.KW, mult = s.DepthMultiplier, wq = g.Wq;
        var phases = phaseBuffer.AsSpan(0, g.PhaseLen * s.StrideW);
        BuildPhases(s, g, new ReadOnlySpan<float>(x, (n * s.C + c) * s.H * s.W, s.H * s.W), phases);
        for (int m = 0; m < mult; m++)
        {
            int oc = c * mult + m;
            var yPlane = y.AsSpan((n * s.OutC + oc) * oh * ow, oh * ow);
            var wk = new ReadOnlySpan<float>(w, oc * kh * kw, kh * kw);
            float b = bias != null ? bias[oc] : 0f;
            for (int oh0 = 0; oh0 < oh; oh0 += g.RowsPerBlock)
            {
                int rows = Math.Min(g.RowsPerBlock, oh - oh0), len = (rows - 1) * wq + ow;
                bool direct = rows == 1 || wq == ow;
                var acc = direct ? yPlane.Slice(oh0 * ow, len) : blockBuffer.AsSpan(0, len);
                acc.Fill(b);
                for (int r = 0; r < kh; r++)
                for (int q = 0; q < kw; q++)
                    Axpy(wk[r * kw + q], phases.Slice(g.TapOffset(s, oh0, r, q), len), acc, level);
                if (!direct)
                    for (int i = 0; i < rows; i++)
                        acc.Slice(i * wq, ow).CopyTo(yPlane.Slice((oh0 + i) * ow, ow));
            }
        }
    }

    private static void DepthwiseBackwardInput(Conv2dShape s, float[] gy, float[] w, float[] gx, SimdLevel level)
    {
        var g = new DwGeometry(s);
        int c = s.C;
        long work = (long)s.DepthMultiplier * s.OH * s.OW * s.KH * s.KW;
        WorkerPool.For(s.N * c, MinChunk(work), (i0, i1) =>
        {
            var phases = ArrayPool<float>.Shared.Rent(g.PhaseLen * s.StrideW);
            var block = ArrayPool<float>.Shared.Rent(g.BlockLen);
            try
            {
                for (int i = i0; i < i1; i++)
                    DepthwiseBackwardInputPlane(s, g, i / c, i % c, gy, w, gx, phases, block, level);
            }
            finally
            {
                ArrayPool<float>.Shared.Return(block);
                ArrayPool<float>.Shared.Return(phases);
            }
        });
    }

    private static void DepthwiseBackwardInputPlane(in Conv2dShape s, in DwGeometry g, int n, int c, float[] gy,
        float[] w, float[] gx, float[] phaseBuffer, float[] blockBuffer, SimdLevel level)
    {
        // Scatter form of the forward: phases[tap position] += w[tap] * gy, then un-pad into gx.
        int oh = s.OH, ow = s.OW, kh = s.KH, kw = s.KW, mult = s.DepthMultiplier, wq = g.Wq;
        var phases = phaseBuffer.AsSpan(0, g.PhaseLen * s.StrideW);
        phases.Clear();
        for (int m = 0; m < mult; m++)
        {
            int oc = c * mult + m;
            var gyPlane = new ReadOnlySpan<float>(gy, (n * s.OutC + oc) * oh * ow, oh * ow);
            var wk = new ReadOnlySpan<float>(w, oc * kh * kw, kh * kw);
            for (int oh0 = 0; oh0 < oh; oh0 += g.RowsPerBlock)
            {
                int rows = Math.Min(g.RowsPerBlock, oh - oh0), len = (rows - 1) * wq + ow;
                var src = GyBlock(s, g, gyPlane, oh0, rows, blockBuffer);
                for (int r = 0; r < kh; r++)
                for (int q = 0; q < kw; q++)
                    Axpy(wk[r * kw + q], src, phases.Slice(g.TapOffset(s, oh0, r, q), len), level);
            }
        }
        GatherPhases(s, g, phases, gx.AsSpan((n * s.C + c) * s.H * s.W, s.H * s.W));
    }

    private static void DepthwiseBackwardWeight(Conv2dShape s, float[] gy, float[] x, float[] gw, bool accumulate,
        SimdLevel level)
    {
        // Parallel over input channels: gw[oc] for the multiplier outputs of channel c is summed over the whole
        // batch by one thread, so no reduction crosses threads.
        var g = new DwGeometry(s);
        int mult = s.DepthMultiplier, taps = s.KH * s.KW;
        long work = (long)s.N * mult * s.OH * s.OW * taps;
        WorkerPool.For(s.C, MinChunk(work), (c0, c1) =>
        {
            var phases = ArrayPool<float>.Shared.Rent(g.PhaseLen * s.StrideW);
            var block = ArrayPool<float>.Shared.Rent(g.BlockLen);
            var acc = new double[mult * taps];
            try
            {
                for (int c = c0; c < c1; c++)
                {
                    Array.Clear(acc);
                    DepthwiseBackwardWeightChannel(s, g, c, gy, x, acc, phases, block, level);
                    var dst = gw.AsSpan(c * mult * taps, mult * taps);
                    for (int i = 0; i < dst.Length; i++)
                        dst[i] = accumulate ? (float)(dst[i] + acc[i]) : (float)acc[i];
                }
            }
            finally
            {
                ArrayPool<float>.Shared.Return(block);
                ArrayPool<float>.Shared.Return(phases);
            }
        });
    }

    private static void DepthwiseBackwardWeightChannel(in Conv2dShape s, in DwGeometry g, int c, float[] gy,
        float[] x, double[] acc, float[] phaseBuffer, float[] blockBuffer, SimdLevel level)
    {
        int oh = s.OH, ow = s.OW, kh = s.KH, kw = s.KW, mult = s.DepthMultiplier, wq = g.Wq, taps = kh * kw;
        var phases = phaseBuffer.AsSpan(0, g.PhaseLen * s.StrideW);
        for (int n = 0; n < s.N; n++)
        {
            BuildPhases(s, g, new ReadOnlySpan<float>(x, (n * s.C + c) * s.H * s.W, s.H * s.W), phases);
            for (int m = 0; m < mult; m++)
            {
                int oc = c * mult + m;
                var gyPlane = new ReadOnlySpan<float>(gy, (n * s.OutC + oc) * oh * ow, oh * ow);
                for (int oh0 = 0; oh0 < oh; oh0 += g.RowsPerBlock)
                {
                    int rows = Math.Min(g.RowsPerBlock, oh - oh0), len = (rows - 1) * wq + ow;
                    var src = GyBlock(s, g, gyPlane, oh0, rows, blockBuffer);
                    for (int r = 0; r < kh; r++)
                    for (int q = 0; q < kw; q++)
                        acc[m * taps + r * kw + q] += Dot(src, phases.Slice(g.TapOffset(s, oh0, r, q), len), level);
                }
            }
        }
    }

    // ------------------------------------------------------------------------------------------------
    // Vector helpers (explicit level so that every path is reachable from tests)
    // ------------------------------------------------------------------------------------------------

    /// <summary>y += a * x (x.Length &gt;= y.Length).</summary>
    internal static void Axpy(float a, ReadOnlySpan<float> x, Span<float> y, SimdLevel level)
    {
        int n = y.Length;
        if (x.Length < n) throw new ArgumentException("Axpy: x is shorter than y.", nameof(x));
        ref float xr = ref MemoryMarshal.GetReference(x);
        ref float yr = ref MemoryMarshal.GetReference(y);
        int i = 0;
        if (level == SimdLevel.Vector512 && n >= Vector512<float>.Count)
        {
            var va = Vector512.Create(a);
            for (; i <= n - Vector512<float>.Count; i += Vector512<float>.Count)
            {
                var xv = Vector512.LoadUnsafe(ref xr, (nuint)i);
                var yv = Vector512.LoadUnsafe(ref yr, (nuint)i);
                yv = UseFma ? Vector512.FusedMultiplyAdd(va, xv, yv) : yv + va * xv;
                yv.StoreUnsafe(ref yr, (nuint)i);
            }
        }
        if (level >= SimdLevel.Vector256 && n - i >= Vector256<float>.Count)
        {
            var va = Vector256.Create(a);
            for (; i <= n - Vector256<float>.Count; i += Vector256<float>.Count)
            {
                var xv = Vector256.LoadUnsafe(ref xr, (nuint)i);
                var yv = Vector256.LoadUnsafe(ref yr, (nuint)i);
                yv = UseFma ? Vector256.FusedMultiplyAdd(va, xv, yv) : yv + va * xv;
                yv.StoreUnsafe(ref yr, (nuint)i);
            }
        }
        for (; i < n; i++) Unsafe.Add(ref yr, i) += a * Unsafe.Add(ref xr, i);
    }

    /// <summary>sum_i a[i] * b[i] over a.Length (b.Length &gt;= a.Length).</summary>
    internal static float Dot(ReadOnlySpan<float> a, ReadOnlySpan<float> b, SimdLevel level)
    {
        int n = a.Length;
        if (b.Length < n) throw new ArgumentException("Dot: b is shorter than a.", nameof(b));
        ref float ar = ref MemoryMarshal.GetReference(a);
        ref float br = ref MemoryMarshal.GetReference(b);
        int i = 0;
        float sum = 0;
        if (level == SimdLevel.Vector512 && n >= Vector512<float>.Count)
        {
            var acc0 = Vector512<float>.Zero;
            var acc1 = Vector512<float>.Zero;
            const int w = 16;
            for (; i <= n - 2 * w; i += 2 * w)
            {
                acc0 = MulAdd(Vector512.LoadUnsafe(ref ar, (nuint)i), Vector512.LoadUnsafe(ref br, (nuint)i), acc0);
                acc1 = MulAdd(Vector512.LoadUnsafe(ref ar, (nuint)(i + w)), Vector512.LoadUnsafe(ref br, (nuint)(i + w)), acc1);
            }
            if (i <= n - w)
            {
                acc0 = MulAdd(Vector512.LoadUnsafe(ref ar, (nuint)i), Vector512.LoadUnsafe(ref br, (nuint)i), acc0);
                i += w;
            }
            sum = Vector512.Sum(acc0 + acc1);
        }
        else if (level >= SimdLevel.Vector256 && n >= Vector256<float>.Count)
        {
            var acc0 = Vector256<float>.Zero;
            var acc1 = Vector256<float>.Zero;
            const int w = 8;
            for (; i <= n - 2 * w; i += 2 * w)
            {
                acc0 = MulAdd(Vector256.LoadUnsafe(ref ar, (nuint)i), Vector256.LoadUnsafe(ref br, (nuint)i), acc0);
                acc1 = MulAdd(Vector256.LoadUnsafe(ref ar, (nuint)(i + w)), Vector256.LoadUnsafe(ref br, (nuint)(i + w)), acc1);
            }
            if (i <= n - w)
            {
                acc0 = MulAdd(Vector256.LoadUnsafe(ref ar, (nuint)i), Vector256.LoadUnsafe(ref br, (nuint)i), acc0);
                i += w;
            }
            sum = Vector256.Sum(acc0 + acc1);
        }
        for (; i < n; i++) sum += Unsafe.Add(ref ar, i) * Unsafe.Add(ref br, i);
        return sum;
    }

    /// <summary>sum_i a[i].</summary>
    internal static float Sum(ReadOnlySpan<float> a, SimdLevel level)
    {
        int n = a.Length;
        ref float ar = ref MemoryMarshal.GetReference(a);
        int i = 0;
        float sum = 0;
        if (level == SimdLevel.Vector512 && n >= Vector512<float>.Count)
        {
            var acc0 = Vector512<float>.Zero;
            var acc1 = Vector512<float>.Zero;
            const int w = 16;
            for (; i <= n - 2 * w; i += 2 * w)
            {
                acc0 += Vector512.LoadUnsafe(ref ar, (nuint)i);
                acc1 += Vector512.LoadUnsafe(ref ar, (nuint)(i + w));
            }
            if (i <= n - w)
            {
                acc0 += Vector512.LoadUnsafe(ref ar, (nuint)i);
                i += w;
            }
            sum = Vector512.Sum(acc0 + acc1);
        }
        else if (level >= SimdLevel.Vector256 && n >= Vector256<float>.Count)
        {
            var acc0 = Vector256<float>.Zero;
            var acc1 = Vector256<float>.Zero;
            const int w = 8;
            for (; i <= n - 2 * w; i += 2 * w)
            {
                acc0 += Vector256.LoadUnsafe(ref ar, (nuint)i);
                acc1 += Vector256.LoadUnsafe(ref ar, (nuint)(i + w));
            }
            if (i <= n - w)
            {
                acc0 += Vector256.LoadUnsafe(ref ar, (nuint)i);
                i += w;
            }
            sum = Vector256.Sum(acc0 + acc1);
        }
        for (; i < n; i++) sum += Unsafe.Add(ref ar, i);
        return sum;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> MulAdd(Vector512<float> a, Vector512<float> b, Vector512<float> c)
        => UseFma ? Vector512.FusedMultiplyAdd(a, b, c) : c + a * b;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> MulAdd(Vector256<float> a, Vector256<float> b, Vector256<float> c)
        => UseFma ? Vector256.FusedMultiplyAdd(a, b, c) : c + a * b;
}

using System.Runtime.Intrinsics;

namespace MlNetFineTune.Tensors.Cpu;

/// <summary>
/// 2-D pooling and padding kernels on NCHW float arrays with PyTorch semantics (ceil_mode false,
/// dilation 1). Planes (n, c) are split over <see cref="WorkerPool"/> threads; no reduction crosses planes,
/// so results never depend on the thread count.
/// </summary>
public static class PoolKernels
{
    // ------------------------------------------------------------------------------------------------
    // Output sizes
    // ------------------------------------------------------------------------------------------------

    /// <summary>
    /// Pooling output size (input + 2*pad - kernel) / stride + 1, validated like PyTorch (kernel &gt;= 1,
    /// stride &gt;= 1, 0 &lt;= pad &lt;= kernel/2, output &gt;= 1).
    /// </summary>
    public static int PoolOutputSize(int input, int kernel, int stride, int pad)
        => OutputSize(input, kernel, stride, pad, "Pool2d", "");

    /// <summary>(OH, OW) of a 2-D max or average pooling; see <see cref="PoolOutputSize"/>.</summary>
    public static (int OH, int OW) Pool2dOutputSize(int h, int w, int kh, int kw, int sh, int sw, int ph, int pw)
        => Pool2dOutputSize(h, w, kh, kw, sh, sw, ph, pw, "Pool2d");

    private static (int OH, int OW) Pool2dOutputSize(int h, int w, int kh, int kw, int sh, int sw, int ph, int pw,
        string op)
    {
        string geometry = $" (H={h}, W={w}, kernel=({kh}, {kw}), stride=({sh}, {sw}), padding=({ph}, {pw}))";
        return (OutputSize(h, kh, sh, ph, op, geometry), OutputSize(w, kw, sw, pw, op, geometry));
    }

    private static int OutputSize(int input, int kernel, int stride, int pad, string op, string geometry)
    {
        if (input < 1)
            throw new ArgumentException($"{op}: input size {input} must be >= 1.{geometry}", nameof(input));
        if (kernel < 1)
            throw new ArgumentException($"{op}: kernel size {kernel} must be >= 1.{geometry}", nameof(kernel));
        if (stride < 1) throw new ArgumentException($"{op}: stride {stride} must be >= 1.{geometry}", nameof(stride));
        if (pad < 0 || pad > kernel / 2)
            throw new ArgumentException(
                $"{op}: padding {pad} must be between 0 and half the kernel size {kernel} (<= {kernel / 2}).{geometry}",
                nameof(pad));
        long num = (long)input + 2L * pad - kernel;
        if (num < 0)
            throw new ArgumentException(
                $"{op}: output size would be < 1: input {input} + 2*padding {pad} is smaller than kernel {kernel}.{geometry}",
                nameof(kernel));
        return (int)(num / stride + 1);
    }

    /// <summary>(H + top + bottom, W + left + right); negative pads crop, like torch.nn.ZeroPad2d.</summary>
    public static (int OH, int OW) ZeroPad2dOutputSize(int h, int w, int left, int right, int top, int bottom)
    {
        if (h < 1 || w < 1) throw new ArgumentException($"ZeroPad2d: input H={h}, W={w} must be >= 1.", nameof(h));
        long oh = (long)h + top + bottom, ow = (long)w + left + right;
        if (oh < 1 || ow < 1 || oh > Array.MaxLength || ow > Array.MaxLength)
            throw new ArgumentException(
                $"ZeroPad2d: output size ({oh}, {ow}) is invalid for H={h}, W={w}, left={left}, right={right}, " +
                $"top={top}, bottom={bottom}.", nameof(left));
        return ((int)oh, (int)ow);
    }

    // ------------------------------------------------------------------------------------------------
    // Max pooling
    // ------------------------------------------------------------------------------------------------

    /// <summary>
    /// y[N, C, OH, OW] = max over each window of x[N, C, H, W]; padding acts as -inf. A NaN wins (the last
    /// one in row-major order, as PyTorch), and among equal values the first wins. argmax[N, C, OH, OW] gets the flat index ih*W + iw of
    /// the chosen element within its H*W plane (as PyTorch's return_indices).
    /// </summary>
    public static void MaxPool2dForward(int n, int c, int h, int w, int kh, int kw, int sh, int sw, int ph, int pw,
        float[] x, float[] y, int[] argmax)
    {
        ArgumentNullException.ThrowIfNull(argmax);
        MaxPool2dForward(n, c, h, w, kh, kw, sh, sw, ph, pw, x, y, argmax.AsMemory());
    }

    /// <summary>
    /// <see cref="MaxPool2dForward(int, int, int, int, int, int, int, int, int, int, float[], float[], int[])"/> with
    /// the argmax in any int memory (the max-pool op keeps it in a pooled buffer, <see cref="IntView"/>).
    /// </summary>
    internal static void MaxPool2dForward(int n, int c, int h, int w, int kh, int kw, int sh, int sw, int ph, int pw,
        float[] x, float[] y, Memory<int> argmax)
    {
        var (oh, ow) = CheckPool(n, c, h, w, kh, kw, sh, sw, ph, pw, "MaxPool2d");
        CheckLength(x, (long)n * c * h * w, nameof(x), "N*C*H*W", "MaxPool2d");
        CheckLength(y, (long)n * c * oh * ow, nameof(y), "N*C*OH*OW", "MaxPool2d");
        CheckLength(argmax.Length, (long)n * c * oh * ow, nameof(argmax), "N*C*OH*OW", "MaxPool2d");
        int hw = h * w, op = oh * ow;
        var g = new MaxPoolGeometry(h, w, oh, ow, kh, kw, sh, sw, ph, pw);
        bool vector = Simd.Level >= SimdLevel.Vector256;
        WorkerPool.For(n * c, ConvKernels.MinChunk((long)op * kh * kw), (p0, p1) =>
        {
            var phases = System.Buffers.ArrayPool<float>.Shared.Rent(g.PhaseLen * sw);
            try
            {
                for (int p = p0; p < p1; p++)
                    MaxPoolPlane(g, new ReadOnlySpan<float>(x, p * hw, hw), phases, y.AsSpan(p * op, op),
                        argmax.Span.Slice(p * op, op), vector);
            }
            finally
            {
                System.Buffers.ArrayPool<float>.Shared.Return(phases);
            }
        });
    }

    // Max pooling reads each input plane through StrideW "phase" planes padded with -inf: phase r holds padded
    // columns r, r + sW, r + 2 sW, ... (padded column cc is input column cc - PadW), so tap (a, b) of the
    // outputs (yo, xo .. xo + 7) is the contiguous run phase[b % sW][yo*sH + a][xo + b / sW ..], and eight
    // outputs are taken at once with compare-and-select, no branches. Padding never wins (-inf is not > -inf),
    // and each output starts at its first in-bounds index, so an all -inf window still names a real element.
    private readonly record struct MaxPoolGeometry(int H, int W, int OH, int OW, int KH, int KW, int SH, int SW,
        int PH, int PW)
    {
        public int Hp => (OH - 1) * SH + KH;          // padded rows the windows reach
        public int Wq => OW + (KW - 1) / SW;          // phase row length
        public int PhaseLen => Hp * Wq;
    }

    private static unsafe void MaxPoolPlane(in MaxPoolGeometry g, ReadOnlySpan<float> xp, float[] phases,
        Span<float> yp, Span<int> ap, bool vector)
    {
        int h = g.H, w = g.W, sh = g.SH, sw = g.SW, ph = g.PH, pw = g.PW, wq = g.Wq, hp = g.Hp, len = g.PhaseLen;
        for (int r = 0; r < sw; r++)
        {
            // Phase column j is padded column j*sW + r, input column iw = j*sW + r - PadW: in bounds for j in [j0, j1).
            int j0 = Math.Min(wq, Math.Max(0, (pw - r + sw - 1) / sw));
            int j1 = Math.Clamp((w + pw - r + sw - 1) / sw, j0, wq);
            for (int row = 0; row < hp; row++)
            {
                var dst = phases.AsSpan(r * len + row * wq, wq);
                int ih = row - ph;
                if ((uint)ih >= (uint)h)
                {
                    dst.Fill(float.NegativeInfinity);
                    continue;
                }
                dst.Slice(0, j0).Fill(float.NegativeInfinity);
                var src = xp.Slice(ih * w);
                if (sw == 1) src.Slice(j0 + r - pw, j1 - j0).CopyTo(dst.Slice(j0));
                else if (j1 > j0)
                {
                    // Strided gather; the first and last reads are in bounds (j0 and j1 - 1 are), so all are.
                    _ = src[j0 * sw + r - pw];
                    _ = src[(j1 - 1) * sw + r - pw];
                    fixed (float* ps = src, pd = dst)
                    {
                        float* s0 = ps + r - pw;
                        for (int j = j0; j < j1; j++) pd[j] = s0[j * sw];
                    }
                }
                dst.Slice(j1).Fill(float.NegativeInfinity);
            }
        }

        // Phase-plane offset of tap (a, b) relative to output (yo, xo) = (0, 0); the divisions stay out of the loops.
        int taps = g.KH * g.KW;
        Span<int> tapOffsets = taps <= 64 ? stackalloc int[taps] : new int[taps];
        for (int a = 0; a < g.KH; a++)
            for (int b = 0; b < g.KW; b++) tapOffsets[a * g.KW + b] = b % sw * len + a * wq + b / sw;
        fixed (float* pph = phases, py = yp)
        fixed (int* pa = ap, pt = tapOffsets)
        {
            for (int yo = 0; yo < g.OH; yo++)
            {
                int ih0 = Math.Max(yo * sh - ph, 0);
                int xo = 0;
                if (vector)
                {
                    var lanes = Vector256.Create(0, 1, 2, 3, 4, 5, 6, 7);
                    for (; xo + 8 <= g.OW; xo += 8)
                    {
                        var iwStart = (lanes + Vector256.Create(xo)) * sw - Vector256.Create(pw);
                        var best = Vector256.Create(ih0 * w) + Vector256.Max(iwStart, Vector256<int>.Zero);
                        var max = Vector256.Create(float.NegativeInfinity);
                        float* src = pph + yo * sh * wq + xo;
                        for (int a = 0; a < g.KH; a++)
                        {
                            var rowIdx = Vector256.Create((yo * sh + a - ph) * w) + iwStart;
                            for (int b = 0; b < g.KW; b++)
                            {
                                var v = Vector256.Load(src + pt[a * g.KW + b]);
                                // Take v when it is greater, or NaN (NaN wins; the last NaN in the window).
                                var take = Vector256.GreaterThan(v, max) | ~Vector256.Equals(v, v);
                                max = Vector256.ConditionalSelect(take, v, max);
                                best = Vector256.ConditionalSelect(take.AsInt32(), rowIdx + Vector256.Create(b), best);
                            }
                        }
                        max.Store(py + yo * g.OW + xo);
                        best.Store(pa + yo * g.OW + xo);
                    }
                }
                for (; xo < g.OW; xo++)
                {
                    int iwStart = xo * sw - pw;
                    int best = ih0 * w + Math.Max(iwStart, 0);
                    float max = float.NegativeInfinity;
                    float* src = pph + yo * sh * wq + xo;
                    for (int a = 0; a < g.KH; a++)
                    {
                        for (int b = 0; b < g.KW; b++)
                        {
                            float v = src[pt[a * g.KW + b]];
                            if (v > max || float.IsNaN(v))
                            {
                                max = v;
                                best = (yo * sh + a - ph) * w + iwStart + b;
                            }
                        }
                    }
                    py[yo * g.OW + xo] = max;
                    pa[yo * g.OW + xo] = best;
                }
            }
        }
    }

    /// <summary>
    /// gx[N, C, H, W] = 0, then gx[plane, argmax[i]] += gy[i] for every output i (overlapping windows sum).
    /// Takes the forward's geometry; argmax is what <see cref="MaxPool2dForward(int, int, int, int, int, int, int, int, int, int, float[], float[], int[])"/> wrote.
    /// </summary>
    public static void MaxPool2dBackward(int n, int c, int h, int w, int kh, int kw, int sh, int sw, int ph, int pw,
        float[] gy, int[] argmax, float[] gx)
    {
        ArgumentNullException.ThrowIfNull(argmax);
        MaxPool2dBackward(n, c, h, w, kh, kw, sh, sw, ph, pw, gy, (ReadOnlyMemory<int>)argmax, gx);
    }

    /// <summary>The backward with the argmax in any int memory (see the forward's overload).</summary>
    internal static void MaxPool2dBackward(int n, int c, int h, int w, int kh, int kw, int sh, int sw, int ph, int pw,
        float[] gy, ReadOnlyMemory<int> argmax, float[] gx)
    {
        var (oh, ow) = CheckPool(n, c, h, w, kh, kw, sh, sw, ph, pw, "MaxPool2d");
        CheckLength(gy, (long)n * c * oh * ow, nameof(gy), "N*C*OH*OW", "MaxPool2d");
        CheckLength(argmax.Length, (long)n * c * oh * ow, nameof(argmax), "N*C*OH*OW", "MaxPool2d");
        CheckLength(gx, (long)n * c * h * w, nameof(gx), "N*C*H*W", "MaxPool2d");
        int hw = h * w, op = oh * ow;
        WorkerPool.For(n * c, ConvKernels.MinChunk(op + hw), (p0, p1) =>
        {
            for (int p = p0; p < p1; p++)
            {
                var gxp = gx.AsSpan(p * hw, hw);
                var gyp = new ReadOnlySpan<float>(gy, p * op, op);
                var ap = argmax.Span.Slice(p * op, op);
                gxp.Clear();
                for (int i = 0; i < op; i++)
                {
                    int idx = ap[i];
                    if ((uint)idx >= (uint)hw)
                        throw new ArgumentException(
                            $"MaxPool2d: argmax[{p * op + i}] = {idx} is outside the H*W = {hw} plane.", nameof(argmax));
                    gxp[idx] += gyp[i];
                }
            }
        });
    }

    // ------------------------------------------------------------------------------------------------
    // Average pooling
    // ------------------------------------------------------------------------------------------------

    /// <summary>
    /// y = mean over each window of x. The divisor is the window size kh*kw when
    /// <paramref name="countIncludePad"/>, else the number of in-bounds elements (PyTorch's count_include_pad).
    /// </summary>
    public static void AvgPool2dForward(int n, int c, int h, int w, int kh, int kw, int sh, int sw, int ph, int pw,
        bool countIncludePad, float[] x, float[] y)
    {
        var (oh, ow) = CheckPool(n, c, h, w, kh, kw, sh, sw, ph, pw, "AvgPool2d");
        CheckLength(x, (long)n * c * h * w, nameof(x), "N*C*H*W", "AvgPool2d");
        CheckLength(y, (long)n * c * oh * ow, nameof(y), "N*C*OH*OW", "AvgPool2d");
        int hw = h * w, op = oh * ow;
        WorkerPool.For(n * c, ConvKernels.MinChunk((long)op * kh * kw), (p0, p1) =>
        {
            for (int p = p0; p < p1; p++)
            {
                var xp = new ReadOnlySpan<float>(x, p * hw, hw);
                var yp = y.AsSpan(p * op, op);
                for (int yo = 0; yo < oh; yo++)
                for (int xo = 0; xo < ow; xo++)
                {
                    var win = Window(yo, xo, h, w, kh, kw, sh, sw, ph, pw, countIncludePad);
                    if (win.Divisor == 0)
                    {
                        yp[yo * ow + xo] = 0;
                        continue;
                    }
                    float sum = 0;
                    for (int ih = win.H0; ih < win.H1; ih++)
                    for (int iw = win.W0; iw < win.W1; iw++)
                        sum += xp[ih * w + iw];
                    yp[yo * ow + xo] = sum / win.Divisor;
                }
            }
        });
    }

    /// <summary>gx = 0, then each gy[window] / divisor is added to every in-bounds element of its window.</summary>
    public static void AvgPool2dBackward(int n, int c, int h, int w, int kh, int kw, int sh, int sw, int ph, int pw,
        bool countIncludePad, float[] gy, float[] gx)
    {
        var (oh, ow) = CheckPool(n, c, h, w, kh, kw, sh, sw, ph, pw, "AvgPool2d");
        CheckLength(gy, (long)n * c * oh * ow, nameof(gy), "N*C*OH*OW", "AvgPool2d");
        CheckLength(gx, (long)n * c * h * w, nameof(gx), "N*C*H*W", "AvgPool2d");
        int hw = h * w, op = oh * ow;
        WorkerPool.For(n * c, ConvKernels.MinChunk((long)op * kh * kw), (p0, p1) =>
        {
            for (int p = p0; p < p1; p++)
            {
                var gxp = gx.AsSpan(p * hw, hw);
                var gyp = new ReadOnlySpan<float>(gy, p * op, op);
                gxp.Clear();
                for (int yo = 0; yo < oh; yo++)
                for (int xo = 0; xo < ow; xo++)
                {
                    var win = Window(yo, xo, h, w, kh, kw, sh, sw, ph, pw, countIncludePad);
                    if (win.Divisor == 0) continue;
                    float g = gyp[yo * ow + xo] / win.Divisor;
                    for (int ih = win.H0; ih < win.H1; ih++)
                    for (int iw = win.W0; iw < win.W1; iw++)
                        gxp[ih * w + iw] += g;
                }
            }
        });
    }

    private readonly record struct PoolWindow(int H0, int H1, int W0, int W1, int Divisor);

    private static PoolWindow Window(int yo, int xo, int h, int w, int kh, int kw, int sh, int sw, int ph, int pw,
        bool countIncludePad)
    {
        // Mirrors PyTorch's avg_pool2d: the window is clipped to the padded input for the divisor and to the
        // input for the sum.
        int ih0 = yo * sh - ph, iw0 = xo * sw - pw;
        int ih1 = Math.Min(ih0 + kh, h + ph), iw1 = Math.Min(iw0 + kw, w + pw);
        int poolSize = (ih1 - ih0) * (iw1 - iw0);
        ih0 = Math.Max(ih0, 0);
        iw0 = Math.Max(iw0, 0);
        ih1 = Math.Min(ih1, h);
        iw1 = Math.Min(iw1, w);
        if (ih0 >= ih1 || iw0 >= iw1) return new PoolWindow(0, 0, 0, 0, 0);
        return new PoolWindow(ih0, ih1, iw0, iw1, countIncludePad ? poolSize : (ih1 - ih0) * (iw1 - iw0));
    }

    // ------------------------------------------------------------------------------------------------
    // Global average pooling
    // ------------------------------------------------------------------------------------------------

    /// <summary>(N, C) -&gt; y[N, C] = mean of each H*W plane of x[N, C, H, W].</summary>
    public static void GlobalAvgPoolForward(int n, int c, int h, int w, float[] x, float[] y)
    {
        CheckPlanes(n, c, h, w, "GlobalAvgPool");
        CheckLength(x, (long)n * c * h * w, nameof(x), "N*C*H*W", "GlobalAvgPool");
        CheckLength(y, (long)n * c, nameof(y), "N*C", "GlobalAvgPool");
        int hw = h * w;
        var level = Simd.Level;
        WorkerPool.For(n * c, ConvKernels.MinChunk(hw), (p0, p1) =>
        {
            for (int p = p0; p < p1; p++)
                y[p] = ConvKernels.Sum(new ReadOnlySpan<float>(x, p * hw, hw), level) / hw;
        });
    }

    /// <summary>gx[n, c, :, :] = gy[n, c] / (H*W) (gx is overwritten).</summary>
    public static void GlobalAvgPoolBackward(int n, int c, int h, int w, float[] gy, float[] gx)
    {
        CheckPlanes(n, c, h, w, "GlobalAvgPool");
        CheckLength(gy, (long)n * c, nameof(gy), "N*C", "GlobalAvgPool");
        CheckLength(gx, (long)n * c * h * w, nameof(gx), "N*C*H*W", "GlobalAvgPool");
        int hw = h * w;
        WorkerPool.For(n * c, ConvKernels.MinChunk(hw), (p0, p1) =>
        {
            for (int p = p0; p < p1; p++) gx.AsSpan(p * hw, hw).Fill(gy[p] / hw);
        });
    }

    // ------------------------------------------------------------------------------------------------
    // Zero padding
    // ------------------------------------------------------------------------------------------------

    /// <summary>
    /// y[N, C, H+top+bottom, W+left+right] = x surrounded by zeros; negative pads crop (torch.nn.ZeroPad2d).
    /// </summary>
    public static void ZeroPad2dForward(int n, int c, int h, int w, int left, int right, int top, int bottom,
        float[] x, float[] y)
    {
        CheckPlanes(n, c, h, w, "ZeroPad2d");
        var (oh, ow) = ZeroPad2dOutputSize(h, w, left, right, top, bottom);
        CheckLength(x, (long)n * c * h * w, nameof(x), "N*C*H*W", "ZeroPad2d");
        CheckLength(y, (long)n * c * oh * ow, nameof(y), "N*C*OH*OW", "ZeroPad2d");
        int hw = h * w, op = oh * ow;
        int lo = Math.Max(0, left), hi = (int)Math.Min(ow, (long)w + left); // output columns taken from x
        WorkerPool.For(n * c, ConvKernels.MinChunk(op), (p0, p1) =>
        {
            for (int p = p0; p < p1; p++)
            {
                var xp = new ReadOnlySpan<float>(x, p * hw, hw);
                var yp = y.AsSpan(p * op, op);
                for (int yo = 0; yo < oh; yo++)
                {
                    var row = yp.Slice(yo * ow, ow);
                    int ih = yo - top;
                    if ((uint)ih >= (uint)h || hi <= lo)
                    {
                        row.Clear();
                        continue;
                    }
                    row.Slice(0, lo).Clear();
                    xp.Slice(ih * w + lo - left, hi - lo).CopyTo(row.Slice(lo));
                    row.Slice(hi).Clear();
                }
            }
        });
    }

    /// <summary>gx[N, C, H, W] = the matching crop of gy (zero where the input was cropped away).</summary>
    public static void ZeroPad2dBackward(int n, int c, int h, int w, int left, int right, int top, int bottom,
        float[] gy, float[] gx)
    {
        CheckPlanes(n, c, h, w, "ZeroPad2d");
        var (oh, ow) = ZeroPad2dOutputSize(h, w, left, right, top, bottom);
        CheckLength(gy, (long)n * c * oh * ow, nameof(gy), "N*C*OH*OW", "ZeroPad2d");
        CheckLength(gx, (long)n * c * h * w, nameof(gx), "N*C*H*W", "ZeroPad2d");
        int hw = h * w, op = oh * ow;
        int lo = Math.Max(0, -left), hi = (int)Math.Min(w, (long)ow - left); // input columns that survive
        WorkerPool.For(n * c, ConvKernels.MinChunk(hw), (p0, p1) =>
        {
            for (int p = p0; p < p1; p++)
            {
                var gyp = new ReadOnlySpan<float>(gy, p * op, op);
                var gxp = gx.AsSpan(p * hw, hw);
                for (int ih = 0; ih < h; ih++)
                {
                    var row = gxp.Slice(ih * w, w);
                    int yo = ih + top;
                    if ((uint)yo >= (uint)oh || hi <= lo)
                    {
                        row.Clear();
                        continue;
                    }
                    row.Slice(0, lo).Clear();
                    gyp.Slice(yo * ow + lo + left, hi - lo).CopyTo(row.Slice(lo));
                    row.Slice(hi).Clear();
                }
            }
        });
    }

    // ------------------------------------------------------------------------------------------------
    // Validation
    // ------------------------------------------------------------------------------------------------

    private static void CheckPlanes(int n, int c, int h, int w, string op)
    {
        if (n < 0 || c < 1 || h < 1 || w < 1)
            throw new ArgumentException($"{op}: N={n} must be >= 0 and C={c}, H={h}, W={w} must be >= 1.", nameof(n));
        if ((long)n * c * h * w > Array.MaxLength)
            throw new ArgumentException($"{op}: N*C*H*W = {(long)n * c * h * w} elements is too large.", nameof(n));
    }

    private static (int OH, int OW) CheckPool(int n, int c, int h, int w, int kh, int kw, int sh, int sw, int ph, int pw,
        string op)
    {
        CheckPlanes(n, c, h, w, op);
        var r = Pool2dOutputSize(h, w, kh, kw, sh, sw, ph, pw, op);
        if ((long)n * c * r.OH * r.OW > Array.MaxLength)
            throw new ArgumentException($"{op}: N*C*OH*OW = {(long)n * c * r.OH * r.OW} elements is too large.", nameof(n));
        return r;
    }

    private static void CheckLength(Array a, long expected, string name, string formula, string op)
    {
        ArgumentNullException.ThrowIfNull(a, name);
        CheckLength(a.Length, expected, name, formula, op);
    }

    private static void CheckLength(int length, long expected, string name, string formula, string op)
    {
        if (length != expected)
            throw new ArgumentException($"{op}: {name} has length {length} but {formula} = {expected}.", name);
    }

    /// <summary>
    /// The first <paramref name="length"/> floats of <paramref name="storage"/> seen as ints (the same bits): an int
    /// buffer that comes from the float buffer pool (<see cref="TensorBuffers"/>), so it is recycled with a step's
    /// activations instead of being allocated (and its pages faulted in) on every call.
    /// </summary>
    internal static Memory<int> IntView(float[] storage, int length) => new FloatsAsInts(storage).Memory.Slice(0, length);

    private sealed class FloatsAsInts(float[] storage) : System.Buffers.MemoryManager<int>
    {
        public override Span<int> GetSpan() => System.Runtime.InteropServices.MemoryMarshal.Cast<float, int>(storage.AsSpan());
        public override System.Buffers.MemoryHandle Pin(int elementIndex = 0) => throw new NotSupportedException("FloatsAsInts is not pinnable.");
        public override void Unpin() { }
        protected override void Dispose(bool disposing) { }
    }
}

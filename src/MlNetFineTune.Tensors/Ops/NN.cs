using MlNetFineTune.Tensors.Cpu;

namespace MlNetFineTune.Tensors;

/// <summary>Which GELU formula to use.</summary>
public enum GeluApproximation
{
    /// <summary>x * Phi(x) with the exact error function (PyTorch's default, BERT's "gelu").</summary>
    None,
    /// <summary>The tanh approximation (GPT-2's "gelu_new").</summary>
    Tanh,
}

public static partial class Ops
{
    // Rows of the last dim after moving `dim` last; returns the moved dense data and a function to move back.
    private static (float[] Data, int Rows, int Len, int[] MovedShape, int[] Perm) RowsAlong(Tensor x, int d)
    {
        int rank = x.Rank;
        if (d == rank - 1) return (x.Dense<float>(), x.Numel / Math.Max(x.ShapeArr[d], 1), x.ShapeArr[d], x.ShapeArr, []);
        var perm = new int[rank];
        int p = 0;
        for (int i = 0; i < rank; i++) if (i != d) perm[p++] = i;
        perm[rank - 1] = d;
        Tensor moved;
        using (Tensor.NoGrad()) moved = Permute(x.Detach(), perm);
        return (moved.Dense<float>(), x.Numel / Math.Max(x.ShapeArr[d], 1), x.ShapeArr[d], moved.ShapeArr, perm);
    }

    private static Tensor FromRows(float[] data, int[] movedShape, int[] perm)
    {
        var t = new Tensor(data, (int[])movedShape.Clone());
        if (perm.Length == 0) return t;
        var inverse = new int[perm.Length];
        for (int i = 0; i < perm.Length; i++) inverse[perm[i]] = i;
        using (Tensor.NoGrad()) return Contiguous(Permute(t, inverse));
    }

    private static Tensor RowOp(Tensor x, int dim, string op, bool log)
    {
        RequireFloat(x, op, "x");
        int d = ShapeUtil.NormDim(dim, x.Rank, op);
        var (data, rows, len, moved, perm) = RowsAlong(x, d);
        var y = TensorBuffers.Rent(data.Length);
        WorkerPool.For(rows, Math.Max(1, 8192 / Math.Max(len, 1)), (s, e) =>
        {
            for (int r = s; r < e; r++)
            {
                var src = data.AsSpan(r * len, len);
                var dst = y.AsSpan(r * len, len);
                if (log) VecKernels.LogSoftmax(src, dst); else VecKernels.Softmax(src, dst);
            }
        });
        var result = FromRows(y, moved, perm);
        return Tensor.Record(result, op, [x], g =>
        {
            var (gd, _, _, _, _) = RowsAlong(g, d);
            var gx = TensorBuffers.Rent(gd.Length);
            WorkerPool.For(rows, Math.Max(1, 8192 / Math.Max(len, 1)), (s, e) =>
            {
                for (int r = s; r < e; r++)
                {
                    var yr = y.AsSpan(r * len, len);
                    var gr = gd.AsSpan(r * len, len);
                    if (log) VecKernels.LogSoftmaxBackward(yr, gr, gx.AsSpan(r * len, len));
                    else VecKernels.SoftmaxBackward(yr, gr, gx.AsSpan(r * len, len));
                }
            });
            return [FromRows(gx, moved, perm)];
        });
    }

    /// <summary>Softmax over <paramref name="dim"/>.</summary>
    public static Tensor Softmax(Tensor x, int dim = -1) => RowOp(x, dim, "softmax", log: false);

    /// <summary>Log-softmax over <paramref name="dim"/>.</summary>
    public static Tensor LogSoftmax(Tensor x, int dim = -1) => RowOp(x, dim, "log_softmax", log: true);

    /// <summary>
    /// softmax(scores * scale + mask) over the last dimension, in one pass: the attention step of a transformer.
    /// <paramref name="mask"/> (optional, no gradient) broadcasts to <paramref name="scores"/>, e.g. [B, 1, 1, S]
    /// for a padding mask. Equal to <c>Softmax(Add(MulScalar(scores, scale), mask), -1)</c> but without the two
    /// intermediate tensors, and its backward is one pass too.
    /// </summary>
    public static Tensor AttentionSoftmax(Tensor scores, float scale, Tensor? mask = null)
    {
        RequireFloat(scores, "attention_softmax", "scores");
        if (scores.Rank == 0) throw new ArgumentException("attention_softmax: scores must have at least one dimension.");
        int rank = scores.Rank, len = scores.ShapeArr[^1], rows = scores.Numel / Math.Max(len, 1);
        int[] maskStrides = [];
        float[]? md = null;
        int mOffset = 0;
        if (mask is not null)
        {
            RequireFloat(mask, "attention_softmax", "mask");
            if (mask.RequiresGrad)
                throw new ArgumentException($"attention_softmax: mask{mask.Describe()} requires grad; the fused op gives the mask no gradient (use Softmax(Add(...)) for a learned mask).");
            if (mask.Rank > rank)
                throw new ArgumentException($"attention_softmax: mask {ShapeUtil.Format(mask.ShapeArr)} has more dimensions than scores {ShapeUtil.Format(scores.ShapeArr)}.");
            for (int i = 0; i < mask.Rank; i++)
            {
                int ms = mask.ShapeArr[^(i + 1)], ss = scores.ShapeArr[^(i + 1)];
                if (ms != ss && ms != 1)
                    throw new ArgumentException($"attention_softmax: mask {ShapeUtil.Format(mask.ShapeArr)} does not broadcast to scores {ShapeUtil.Format(scores.ShapeArr)}.");
            }
            // Strides of the mask as seen at the scores' shape: 0 along broadcast dimensions.
            maskStrides = new int[rank];
            for (int i = 0; i < mask.Rank; i++)
            {
                int d = rank - mask.Rank + i;
                maskStrides[d] = mask.ShapeArr[i] == 1 ? 0 : mask.StridesArr[i];
            }
            md = mask.F;
            mOffset = mask.Offset;
        }
        var xd = scores.Dense<float>();
        var y = TensorBuffers.Rent(xd.Length);
        int[] shape = scores.ShapeArr;
        WorkerPool.For(rows, Math.Max(1, 8192 / Math.Max(len, 1)), (s, e) =>
        {
            for (int r = s; r < e; r++)
            {
                var dst = y.AsSpan(r * len, len);
                var src = xd.AsSpan(r * len, len);
                if (md is null)
                {
                    System.Numerics.Tensors.TensorPrimitives.Multiply(src, scale, dst);
                }
                else
                {
                    // Offset of this row's mask: decompose the row index over the leading dimensions.
                    int off = mOffset, rem = r;
                    for (int d = rank - 2; d >= 0; d--)
                    {
                        int size = shape[d];
                        off += rem % size * maskStrides[d];
                        rem /= size;
                    }
                    int ls = maskStrides[rank - 1];
                    if (ls == 0)
                    {
                        System.Numerics.Tensors.TensorPrimitives.Multiply(src, scale, dst);
                        System.Numerics.Tensors.TensorPrimitives.Add(dst, md[off], dst);
                    }
                    else if (ls == 1) System.Numerics.Tensors.TensorPrimitives.MultiplyAdd(src, scale, md.AsSpan(off, len), dst);
                    else for (int i = 0; i < len; i++) dst[i] = src[i] * scale + md[off + i * ls];
                }
                VecKernels.Softmax(dst, dst);
            }
        });
        return Tensor.Record(new Tensor(y, (int[])shape.Clone()), "attention_softmax", [scores], g =>
        {
            var gd = g.Dense<float>();
            var gx = TensorBuffers.Rent(gd.Length);
            WorkerPool.For(rows, Math.Max(1, 8192 / Math.Max(len, 1)), (s, e) =>
            {
                for (int r = s; r < e; r++)
                {
                    // d/dscores = scale * (softmax's backward)
                    var o = gx.AsSpan(r * len, len);
                    VecKernels.SoftmaxBackward(y.AsSpan(r * len, len), gd.AsSpan(r * len, len), o);
                    System.Numerics.Tensors.TensorPrimitives.Multiply(o, scale, o);
                }
            });
            return [new Tensor(gx, shape)];
        });
    }

    /// <summary>GELU activation.</summary>
    public static Tensor Gelu(Tensor x, GeluApproximation approximate = GeluApproximation.None) => Gelu(x, approximate, overwriteInput: false);

    /// <summary>
    /// GELU; with <paramref name="overwriteInput"/> (for a caller whose x is private, contiguous and read by
    /// nothing else, e.g. the GEMM output inside <see cref="LinearGelu"/>) the derivative a training step saves
    /// is written over x instead of into a new buffer.
    /// </summary>
    internal static Tensor Gelu(Tensor x, GeluApproximation approximate, bool overwriteInput)
    {
        RequireFloat(x, "gelu", "x");
        bool tanh = approximate == GeluApproximation.Tanh;
        var src = x.Dense<float>();
        var y = TensorBuffers.Rent(src.Length);
        if (!Tensor.AnyRequiresGrad(x))
        {
            Broadcasting.Chunked(src.Length, (s, e) => VecKernels.Gelu(src.AsSpan(s, e - s), y.AsSpan(s, e - s), tanh));
            return new Tensor(y, (int[])x.ShapeArr.Clone());
        }
        // With gradients the forward also writes the derivative, saved instead of x: the backward is one multiply.
        var deriv = overwriteInput && ReferenceEquals(src, x.Storage) ? src : TensorBuffers.Rent(src.Length);
        Broadcasting.Chunked(src.Length, (s, e) => VecKernels.GeluAndDerivative(src.AsSpan(s, e - s), y.AsSpan(s, e - s), deriv.AsSpan(s, e - s), tanh));
        return Tensor.Record(new Tensor(y, (int[])x.ShapeArr.Clone()), "gelu", [x], g =>
        {
            var gd = g.Dense<float>();
            var gx = TensorBuffers.Rent(gd.Length);
            Broadcasting.Chunked(gd.Length, (s, e) => System.Numerics.Tensors.TensorPrimitives.Multiply(gd.AsSpan(s, e - s), deriv.AsSpan(s, e - s), gx.AsSpan(s, e - s)));
            return [new Tensor(gx, x.ShapeArr)];
        });
    }

    /// <summary>Inverted dropout: zeroes each element with probability p and scales the rest by 1/(1-p).</summary>
    public static Tensor Dropout(Tensor x, float p, Rng rng, bool training = true)
    {
        RequireFloat(x, "dropout", "x");
        CheckDropoutP(p);
        if (!training || p == 0) return x;
        ArgumentNullException.ThrowIfNull(rng);
        return DropoutCore(x, null, p, rng);
    }

    /// <summary>
    /// Dropout(x) + residual (a transformer's "dropout, then add the residual") in one pass: the same mask, drawn
    /// from <paramref name="rng"/> exactly as <see cref="Dropout"/> draws it, and bitwise the same result as
    /// <c>Add(Dropout(x, p, rng, training), residual)</c>, without the intermediate tensor. Shapes that differ
    /// (broadcasting) take the two ops.
    /// </summary>
    public static Tensor DropoutAdd(Tensor x, Tensor residual, float p, Rng rng, bool training = true)
    {
        RequireFloat(x, "dropout_add", "x");
        RequireFloat(residual, "dropout_add", "residual");
        CheckDropoutP(p);
        if (!training || p == 0) return Add(x, residual);
        ArgumentNullException.ThrowIfNull(rng);
        if (!ShapeUtil.SameShape(x.ShapeArr, residual.ShapeArr)) return Add(DropoutCore(x, null, p, rng), residual);
        return DropoutCore(x, residual, p, rng);
    }

    private static void CheckDropoutP(float p)
    {
        if (p < 0 || p >= 1) throw new ArgumentOutOfRangeException(nameof(p), $"dropout: probability {p} must be in [0, 1).");
    }

    // Inverted dropout of x (p in (0, 1)), plus residual (same shape) when given.
    private static Tensor DropoutCore(Tensor x, Tensor? residual, float p, Rng rng)
    {
        var src = x.Dense<float>();
        var res = residual?.Dense<float>();
        int n = src.Length;
        float scale = 1f / (1f - p);
        // Keep an element when a 32-bit uniform draw is at least p * 2^32. The elements are cut into fixed chunks,
        // each drawing from its own stream seeded from one draw of rng, so chunks run in parallel and the mask
        // depends on the seed alone, never on the thread count. The mask is kept as bytes (a quarter of a float
        // mask) for the backward pass.
        uint threshold = (uint)Math.Min(uint.MaxValue, Math.Round(p * 4294967296.0));
        ulong streamSeed = rng.NextUInt64();
        var keep = new byte[n];
        var y = TensorBuffers.Rent(n);
        int chunks = (n + DropoutChunk - 1) / DropoutChunk;
        WorkerPool.For(chunks, 1, (cs, ce) =>
        {
            for (int c = cs; c < ce; c++)
            {
                var r = new Rng(streamSeed ^ (0x9E3779B97F4A7C15UL * (ulong)(c + 1)));
                int start = c * DropoutChunk, end = Math.Min(n, start + DropoutChunk);
                var yc = y.AsSpan(start, end - start);
                VecKernels.DropoutChunk(src.AsSpan(start, end - start), yc, keep.AsSpan(start, end - start), r, threshold, scale);
                if (res != null) System.Numerics.Tensors.TensorPrimitives.Add(yc, res.AsSpan(start, end - start), yc);
            }
        });
        var shape = (int[])x.ShapeArr.Clone();
        Tensor[] inputs = residual is null ? [x] : [x, residual];
        return Tensor.Record(new Tensor(y, shape), residual is null ? "dropout" : "dropout_add", inputs, g =>
        {
            var gd = g.Dense<float>();
            var gx = TensorBuffers.Rent(n);
            WorkerPool.For(chunks, 1, (cs, ce) =>
            {
                int start = cs * DropoutChunk, end = Math.Min(n, ce * DropoutChunk);
                VecKernels.MaskedScale(gd.AsSpan(start, end - start), keep.AsSpan(start, end - start), scale, gx.AsSpan(start, end - start));
            });
            return residual is null ? [new Tensor(gx, shape)] : [new Tensor(gx, shape), g];
        });
    }

    private const int DropoutChunk = 1 << 14;

    /// <summary>Looks up rows of <paramref name="weight"/> [V, D] for integer <paramref name="ids"/>; rows at paddingIdx get no gradient.</summary>
    public static Tensor Embedding(Tensor ids, Tensor weight, int? paddingIdx = null)
    {
        RequireFloat(weight, "embedding", "weight");
        if (weight.Rank != 2) throw new ArgumentException($"embedding: weight{weight.Describe()} must be 2-D [vocab, dim].");
        var idx = IndexData(ids, "embedding");
        int v = weight.ShapeArr[0], dDim = weight.ShapeArr[1];
        var w = Contiguous(weight.Detach());
        var wd = w.F;
        var rows = new int[idx.Length];
        for (int i = 0; i < idx.Length; i++)
        {
            if (idx[i] < 0 || idx[i] >= v)
                throw new ArgumentOutOfRangeException(nameof(ids), $"embedding: id {idx[i]} at position {i} is outside the vocabulary of {v} rows (weight{weight.Describe()}).");
            rows[i] = (int)idx[i];
        }
        var y = TensorBuffers.Rent(idx.Length * dDim);   // every row is copied in
        for (int i = 0; i < rows.Length; i++) Array.Copy(wd, w.Offset + rows[i] * dDim, y, i * dDim, dDim);
        int[] outShape = [.. ids.ShapeArr, dDim];
        return Tensor.Record(new Tensor(y, outShape), "embedding", [weight], g =>
        {
            // Sparse-style: only rows that were looked up are touched.
            var gd = g.Dense<float>();
            var gw = TensorBuffers.RentZeroed(v * dDim);
            for (int i = 0; i < rows.Length; i++)
            {
                if (paddingIdx is int pi && rows[i] == pi) continue;
                var dst = gw.AsSpan(rows[i] * dDim, dDim);
                System.Numerics.Tensors.TensorPrimitives.Add(dst, gd.AsSpan(i * dDim, dDim), dst);
            }
            return [new Tensor(gw, [v, dDim])];
        });
    }

    /// <summary>Layer normalisation over the trailing dims in <paramref name="normalizedShape"/>.</summary>
    public static Tensor LayerNorm(Tensor x, int[] normalizedShape, Tensor? weight, Tensor? bias, float eps = 1e-5f)
    {
        RequireFloat(x, "layer_norm", "x");
        int k = normalizedShape.Length;
        bool ok = k <= x.Rank;
        for (int i = 0; ok && i < k; i++) ok = x.ShapeArr[x.Rank - k + i] == normalizedShape[i];
        if (!ok) throw new ArgumentException($"layer_norm: input {ShapeUtil.Format(x.ShapeArr)} does not end in normalized shape {ShapeUtil.Format(normalizedShape)}.");
        int len = ShapeUtil.Numel(normalizedShape), rows = x.Numel / Math.Max(len, 1);
        if (weight is not null && weight.Numel != len) throw new ArgumentException($"layer_norm: weight {ShapeUtil.Format(weight.ShapeArr)} does not match {ShapeUtil.Format(normalizedShape)}.");
        if (bias is not null && bias.Numel != len) throw new ArgumentException($"layer_norm: bias {ShapeUtil.Format(bias.ShapeArr)} does not match {ShapeUtil.Format(normalizedShape)}.");
        var xd = x.Dense<float>();
        var wd = weight?.Dense<float>();
        var bd = bias?.Dense<float>();
        var y = TensorBuffers.Rent(xd.Length); // every row is written
        var mean = new float[rows];
        var rstd = new float[rows];
        WorkerPool.For(rows, Math.Max(1, 8192 / Math.Max(len, 1)), (s, e) =>
        {
            for (int r = s; r < e; r++)
                (mean[r], rstd[r]) = VecKernels.LayerNorm(xd.AsSpan(r * len, len), wd ?? default, bd ?? default, eps, y.AsSpan(r * len, len));
        });
        var shape = (int[])x.ShapeArr.Clone();
        Tensor[] inputs = [x, .. weight is null ? Array.Empty<Tensor>() : [weight], .. bias is null ? Array.Empty<Tensor>() : [bias]];
        return Tensor.Record(new Tensor(y, shape), "layer_norm", inputs, g =>
        {
            var gd = g.Dense<float>();
            var gx = TensorBuffers.Rent(xd.Length);
            int threads = Math.Max(1, Math.Min(WorkerPool.Threads, rows));
            var gwPart = new float[threads][];
            var gbPart = new float[threads][];
            WorkerPool.Run(threads, t =>
            {
                int r0 = (int)((long)rows * t / threads), r1 = (int)((long)rows * (t + 1) / threads);
                var gwp = gwPart[t] = new float[len];
                var gbp = gbPart[t] = new float[len];
                var xhat = new float[len];
                var gxh = new float[len];
                for (int r = r0; r < r1; r++)
                {
                    var xr = xd.AsSpan(r * len, len);
                    var gr = gd.AsSpan(r * len, len);
                    float m = mean[r], rs = rstd[r];
                    // Vectorised row passes (the row stays in L1): xhat = (x - m) rs; gw += g xhat; gb += g;
                    // gxh = g w; gx = rs (gxh - mean(gxh) - xhat mean(gxh xhat)).
                    System.Numerics.Tensors.TensorPrimitives.Subtract(xr, m, xhat);
                    System.Numerics.Tensors.TensorPrimitives.Multiply(xhat, rs, xhat);
                    System.Numerics.Tensors.TensorPrimitives.MultiplyAdd(gr, xhat, gwp, gwp);
                    System.Numerics.Tensors.TensorPrimitives.Add(gbp, gr, gbp);
                    if (wd is null) gr.CopyTo(gxh);
                    else System.Numerics.Tensors.TensorPrimitives.Multiply(gr, wd, gxh);
                    float meanG = VecKernels.Sum(gxh) / len;
                    float meanGX = VecKernels.Dot(gxh, xhat) / len;
                    var gxr = gx.AsSpan(r * len, len);
                    System.Numerics.Tensors.TensorPrimitives.Subtract(gxh, meanG, gxr);
                    System.Numerics.Tensors.TensorPrimitives.MultiplyAdd(xhat, -meanGX, gxr, gxr);
                    System.Numerics.Tensors.TensorPrimitives.Multiply(gxr, rs, gxr);
                }
            });
            Tensor? gW = null, gB = null;
            if (weight is not null)
            {
                var a = new float[len];
                foreach (var p in gwPart) if (p is not null) for (int i = 0; i < len; i++) a[i] += p[i];
                gW = new Tensor(a, weight.ShapeArr);
            }
            if (bias is not null)
            {
                var a = new float[len];
                foreach (var p in gbPart) if (p is not null) for (int i = 0; i < len; i++) a[i] += p[i];
                gB = new Tensor(a, bias.ShapeArr);
            }
            var list = new List<Tensor?> { new Tensor(gx, shape) };
            if (weight is not null) list.Add(gW);
            if (bias is not null) list.Add(gB);
            return [.. list];
        });
    }

    /// <summary>
    /// Batch normalisation over N, H, W of an [N, C, H, W] input. In training it normalises with the batch
    /// statistics and updates the running buffers in place (momentum, unbiased running variance); in eval
    /// it uses the running buffers.
    /// </summary>
    public static Tensor BatchNorm2d(Tensor x, Tensor? weight, Tensor? bias, Tensor runningMean, Tensor runningVar,
        bool training, float momentum = 0.1f, float eps = 1e-5f)
    {
        RequireFloat(x, "batch_norm2d", "x");
        if (x.Rank != 4) throw new ArgumentException($"batch_norm2d: input {ShapeUtil.Format(x.ShapeArr)} must be [N, C, H, W].");
        int n = x.ShapeArr[0], c = x.ShapeArr[1], hw = x.ShapeArr[2] * x.ShapeArr[3];
        foreach (var (t, name) in new[] { (weight, "weight"), (bias, "bias"), (runningMean, "running_mean"), (runningVar, "running_var") })
            if (t is not null && t.Numel != c) throw new ArgumentException($"batch_norm2d: {name} {ShapeUtil.Format(t.ShapeArr)} must have {c} elements for input {ShapeUtil.Format(x.ShapeArr)}.");
        var xd = x.Dense<float>();
        var wd = weight?.Dense<float>();
        var bd = bias?.Dense<float>();
        var mean = new float[c];
        var rstd = new float[c];
        int m = n * hw;
        if (training)
        {
            if (m <= 1) throw new ArgumentException($"batch_norm2d: training needs more than one value per channel, input {ShapeUtil.Format(x.ShapeArr)}.");
            if (!runningMean.IsContiguous || !runningVar.IsContiguous)
                throw new ArgumentException("batch_norm2d: running_mean and running_var must be contiguous buffers (they are updated in place).");
            float[] rm = runningMean.F, rv = runningVar.F;
            int rmo = runningMean.Offset, rvo = runningVar.Offset;
            WorkerPool.For(c, 1, (c0, c1) =>
            {
                for (int ch = c0; ch < c1; ch++)
                {
                    double s = 0;
                    for (int b = 0; b < n; b++) s += VecKernels.Sum(xd.AsSpan((b * c + ch) * hw, hw));
                    double mu = s / m;
                    double ss = 0;
                    for (int b = 0; b < n; b++) ss += VecKernels.SumSquaredDeviation(xd.AsSpan((b * c + ch) * hw, hw), (float)mu);
                    double var = ss / m;
                    mean[ch] = (float)mu;
                    rstd[ch] = (float)(1.0 / Math.Sqrt(var + eps));
                    rm[rmo + ch] = (1 - momentum) * rm[rmo + ch] + momentum * (float)mu;
                    rv[rvo + ch] = (1 - momentum) * rv[rvo + ch] + momentum * (float)(ss / (m - 1));
                }
            });
        }
        else
        {
            var rm = runningMean.Dense<float>();
            var rv = runningVar.Dense<float>();
            for (int ch = 0; ch < c; ch++) { mean[ch] = rm[ch]; rstd[ch] = 1f / MathF.Sqrt(rv[ch] + eps); }
        }
        var y = TensorBuffers.Rent(xd.Length);
        WorkerPool.For(n * c, 1, (s0, s1) =>
        {
            for (int bc = s0; bc < s1; bc++)
            {
                int ch = bc % c;
                float scale = rstd[ch] * (wd?[ch] ?? 1f);
                float shift = (bd?[ch] ?? 0f) - mean[ch] * scale;
                VecKernels.Affine(xd.AsSpan(bc * hw, hw), scale, shift, y.AsSpan(bc * hw, hw));
            }
        });
        var shape = (int[])x.ShapeArr.Clone();
        Tensor[] inputs = [x, .. weight is null ? Array.Empty<Tensor>() : [weight], .. bias is null ? Array.Empty<Tensor>() : [bias]];
        return Tensor.Record(new Tensor(y, shape), "batch_norm2d", inputs, g =>
        {
            var gd = g.Dense<float>();
            var gx = TensorBuffers.Rent(xd.Length);
            var gw = new float[c];
            var gb = new float[c];
            WorkerPool.For(c, 1, (c0, c1) =>
            {
                for (int ch = c0; ch < c1; ch++)
                {
                    double sg = 0, sgx = 0;
                    float mu = mean[ch], rs = rstd[ch];
                    for (int b = 0; b < n; b++)
                    {
                        var (rowG, rowGX) = VecKernels.SumAndCenteredDot(gd.AsSpan((b * c + ch) * hw, hw), xd.AsSpan((b * c + ch) * hw, hw), mu);
                        sg += rowG;
                        sgx += rowGX;
                    }
                    sgx *= rs;
                    gw[ch] = (float)sgx;
                    gb[ch] = (float)sg;
                    float w = wd?[ch] ?? 1f;
                    // Training: gx = w rs (g - k1 - xhat k2), xhat = (x - mu) rs, i.e. a g + b x + d.
                    float k1 = (float)(sg / m), k2 = (float)(sgx / m);
                    float a = w * rs, bx = -w * rs * rs * k2, d = w * rs * (mu * rs * k2 - k1);
                    for (int b = 0; b < n; b++)
                    {
                        var gr = gd.AsSpan((b * c + ch) * hw, hw);
                        var xr = xd.AsSpan((b * c + ch) * hw, hw);
                        var gxr = gx.AsSpan((b * c + ch) * hw, hw);
                        System.Numerics.Tensors.TensorPrimitives.Multiply(gr, a, gxr);
                        if (training)
                        {
                            System.Numerics.Tensors.TensorPrimitives.MultiplyAdd(xr, bx, gxr, gxr);
                            System.Numerics.Tensors.TensorPrimitives.Add(gxr, d, gxr);
                        }
                    }
                }
            });
            var list = new List<Tensor?> { new Tensor(gx, shape) };
            if (weight is not null) list.Add(new Tensor(gw, weight.ShapeArr));
            if (bias is not null) list.Add(new Tensor(gb, bias.ShapeArr));
            return [.. list];
        });
    }
}

using MlNetFineTune.Tensors.Cpu;

namespace MlNetFineTune.Tensors;

public static partial class Ops
{
    // How GEMM can read the last two dims of t directly: row-major (trans=false, ld=row stride) or
    // column-major (trans=true, ld=column stride). Null when neither holds (needs a copy).
    private static (bool Trans, int Ld)? MatrixLayout(Tensor t)
    {
        int r = t.Rank;
        int rows = t.ShapeArr[r - 2], cols = t.ShapeArr[r - 1];
        int sr = t.StridesArr[r - 2], sc = t.StridesArr[r - 1];
        if ((sc == 1 || cols == 1) && (sr >= cols || rows == 1)) return (false, rows == 1 ? Math.Max(cols, 1) : sr);
        if ((sr == 1 || rows == 1) && (sc >= rows || cols == 1)) return (true, cols == 1 ? Math.Max(rows, 1) : sc);
        return null;
    }

    // One stride that walks all batch dims of t (already expanded to batchShape), or null if they don't collapse.
    private static long? BatchStride(Tensor t, int[] batchShape)
    {
        int nb = batchShape.Length;
        long stride = -1;
        long expectedNext = -1;
        for (int i = nb - 1; i >= 0; i--)
        {
            if (batchShape[i] == 1) continue;
            int s = t.StridesArr[i];
            if (stride < 0) { stride = s; expectedNext = (long)s * batchShape[i]; continue; }
            if (stride == 0 && s == 0) continue;
            if (s != expectedNext) return null;
            expectedNext = (long)s * batchShape[i];
        }
        return stride < 0 ? 0 : stride;
    }

    // The storage offset of every matrix of t (batch dims expanded to batchShape), in row-major batch order.
    private static long[] BatchOffsets(Tensor t, int[] batchShape)
    {
        int nb = batchShape.Length, count = ShapeUtil.Numel(batchShape);
        var offsets = new long[count];
        var index = new int[nb];
        long off = t.Offset;
        for (int i = 0; i < count; i++)
        {
            offsets[i] = off;
            for (int d = nb - 1; d >= 0; d--)
            {
                if (++index[d] < batchShape[d]) { off += t.StridesArr[d]; break; }
                off -= (long)t.StridesArr[d] * (batchShape[d] - 1);
                index[d] = 0;
            }
        }
        return offsets;
    }

    /// <summary>
    /// Matrix product with PyTorch's matmul semantics: 1-D operands are promoted, leading batch dims broadcast.
    /// Transposed views are passed to GEMM as transposed operands, never copied.
    /// </summary>
    public static Tensor MatMul(Tensor a, Tensor b)
    {
        RequireFloat(a, "matmul", "a"); RequireFloat(b, "matmul", "b");
        if (a.Rank == 0 || b.Rank == 0) throw new ArgumentException($"matmul: both operands need at least one dimension, got {ShapeUtil.Format(a.ShapeArr)} and {ShapeUtil.Format(b.ShapeArr)}.");
        if (a.Rank == 1 && b.Rank == 1) return Reshape(MatMul(Unsqueeze(a, 0), Unsqueeze(b, 1)), []);
        if (a.Rank == 1) return Squeeze(MatMul(Unsqueeze(a, 0), b), -2);
        if (b.Rank == 1) return Squeeze(MatMul(a, Unsqueeze(b, 1)), -1);

        int m = a.ShapeArr[^2], k = a.ShapeArr[^1], k2 = b.ShapeArr[^2], n = b.ShapeArr[^1];
        if (k != k2)
            throw new ArgumentException($"matmul: shapes {ShapeUtil.Format(a.ShapeArr)} and {ShapeUtil.Format(b.ShapeArr)} are incompatible (inner dimensions {k} and {k2} differ).");
        int[] batchShape;
        try { batchShape = ShapeUtil.Broadcast(a.ShapeArr[..^2], b.ShapeArr[..^2], "matmul"); }
        catch (ArgumentException)
        {
            throw new ArgumentException($"matmul: batch dimensions of {ShapeUtil.Format(a.ShapeArr)} and {ShapeUtil.Format(b.ShapeArr)} cannot be broadcast together.");
        }
        int batch = ShapeUtil.Numel(batchShape);

        Tensor ae = a.Detach(), be = b.Detach();
        if (batchShape.Length > 0)
        {
            ae = Expand(ae, [.. batchShape, m, k]);
            be = Expand(be, [.. batchShape, k, n]);
        }
        var la = MatrixLayout(ae);
        long? sa = BatchStride(ae, batchShape);
        if (la is null) { ae = Contiguous(Reshape(Contiguous(ae), [.. batchShape, m, k])); la = (false, k); sa = (long)m * k; }
        var lb = MatrixLayout(be);
        long? sb = BatchStride(be, batchShape);
        if (lb is null) { be = Contiguous(Reshape(Contiguous(be), [.. batchShape, k, n])); lb = (false, n); sb = (long)k * n; }

        int[] outShape = [.. batchShape, m, n];
        var c = TensorBuffers.Rent(ShapeUtil.Numel(outShape));   // the GEMM writes every element (zeros when k = 0)
        if (c.Length > 0 && (sa is null || sb is null))
        {
            // Batch dims that no single stride walks (heads split out of [batch, seq, heads, dim]): each matrix
            // is read where it lies, through its own offset, instead of copying the operand.
            Gemm.SgemmBatchedOffsets(batch, la.Value.Trans, lb.Value.Trans, m, n, k, ae.F, BatchOffsets(ae, batchShape), la.Value.Ld,
                be.F, BatchOffsets(be, batchShape), lb.Value.Ld, c, 0, n, (long)m * n, accumulate: false);
        }
        else if (c.Length > 0)
        {
            if (batch == 1)
                Gemm.Sgemm(la.Value.Trans, lb.Value.Trans, m, n, k, ae.F, ae.Offset, la.Value.Ld, be.F, be.Offset, lb.Value.Ld, c, 0, n, accumulate: false);
            else
                Gemm.SgemmBatched(batch, la.Value.Trans, lb.Value.Trans, m, n, k, ae.F, ae.Offset, la.Value.Ld, sa.GetValueOrDefault(),
                    be.F, be.Offset, lb.Value.Ld, sb.GetValueOrDefault(), c, 0, n, (long)m * n, accumulate: false);
        }
        var result = new Tensor(c, outShape);
        int[] aShape = a.ShapeArr, bShape = b.ShapeArr;
        return Tensor.Record(result, "matmul", [a, b], g => [
            a.RequiresGrad ? SumTo(MatMul(g, Transpose(b, -2, -1)), aShape) : null,
            b.RequiresGrad ? SumTo(MatMul(Transpose(a, -2, -1), g), bShape) : null]);
    }

    /// <summary>Validates linear's operands; returns the weight's (out, in) sizes.</summary>
    private static (int OutF, int InF) CheckLinear(Tensor x, Tensor weight, Tensor? bias)
    {
        RequireFloat(x, "linear", "x"); RequireFloat(weight, "linear", "weight");
        if (weight.Rank != 2) throw new ArgumentException($"linear: weight{weight.Describe()} must be 2-D [out, in].");
        int outF = weight.ShapeArr[0], inF = weight.ShapeArr[1];
        if (x.Rank == 0 || x.ShapeArr[^1] != inF)
            throw new ArgumentException($"linear: input {ShapeUtil.Format(x.ShapeArr)} does not end in {inF}, the weight's input size ({ShapeUtil.Format(weight.ShapeArr)}).");
        if (bias is not null && (bias.Rank != 1 || bias.ShapeArr[0] != outF))
            throw new ArgumentException($"linear: bias {ShapeUtil.Format(bias.ShapeArr)} must be [{outF}].");
        return (outF, inF);
    }

    /// <summary>y[rows, outF] = x2 W^T (+ bias) then the activation, the bias and activation fused into the GEMM.</summary>
    private static float[] LinearForward(Tensor x2, Tensor w, Tensor? bias, int rows, int inF, int outF, GemmActivation act)
    {
        var y = TensorBuffers.Rent(rows * outF);   // the GEMM writes every element (k = 0 included)
        if (y.Length > 0)
        {
            var bd = bias?.Dense<float>();
            Gemm.SgemmEpilogue(false, true, rows, outF, inF, x2.F, x2.Offset, inF, w.F, w.Offset, inF, y, 0, outF,
                accumulate: false, bd, 0, act, WeightPackCache.ForLinear(w, rows, outF, inF));
        }
        return y;
    }

    /// <summary>
    /// GELU(Linear(x, weight, bias)): a transformer's feed-forward input layer. Without gradients (inference) the
    /// bias and GELU are applied to each GEMM tile while it is in cache; with gradients it is exactly
    /// <c>Gelu(Linear(x, weight, bias), approximate)</c>, whose backward needs the pre-activation.
    /// </summary>
    public static Tensor LinearGelu(Tensor x, Tensor weight, Tensor? bias = null, GeluApproximation approximate = GeluApproximation.None)
    {
        // With gradients: GELU of a private GEMM output, whose storage then holds the saved derivative.
        if (Tensor.AnyRequiresGrad(x, weight, bias)) return Gelu(Linear(x, weight, bias), approximate, overwriteInput: true);
        var (outF, inF) = CheckLinear(x, weight, bias);
        int rows = x.Numel / Math.Max(inF, 1);
        var x2 = Contiguous(Reshape(x, rows, inF));
        var w = weight.IsContiguous ? weight : Contiguous(weight);
        var act = approximate == GeluApproximation.Tanh ? GemmActivation.GeluTanh : GemmActivation.Gelu;
        return new Tensor(LinearForward(x2, w, bias, rows, inF, outF, act), [.. x.ShapeArr[..^1], outF]);
    }

    /// <summary>y = x W^T + b for x [..., in], W [out, in], b [out] (optional).</summary>
    public static Tensor Linear(Tensor x, Tensor weight, Tensor? bias = null)
    {
        var (outF, inF) = CheckLinear(x, weight, bias);

        int rows = x.Numel / Math.Max(inF, 1);
        var x2 = Contiguous(Reshape(x.Detach(), rows, inF));
        var w = weight.IsContiguous ? weight : Contiguous(weight.Detach());
        var y = LinearForward(x2, w, bias, rows, inF, outF, GemmActivation.None);
        int[] outShape = [.. x.ShapeArr[..^1], outF];
        var result = new Tensor(y, outShape);
        Tensor[] inputs = bias is null ? [x, weight] : [x, weight, bias];
        int[] xShape = x.ShapeArr;
        return Tensor.Record(result, "linear", inputs, g =>
        {
            var g2 = Contiguous(Reshape(g, rows, outF));
            Tensor? gx = null, gw = null, gb = null;
            if (x.RequiresGrad)
            {
                var gxd = TensorBuffers.Rent(rows * inF);   // written by the GEMM, zeros when outF = 0
                Gemm.Sgemm(false, false, rows, inF, outF, g2.F, g2.Offset, outF, w.F, w.Offset, inF, gxd, 0, inF, accumulate: false);
                gx = new Tensor(gxd, xShape);
            }
            if (weight.RequiresGrad)
            {
                var gwd = TensorBuffers.Rent(outF * inF);   // written by the GEMM, zeros when rows = 0
                Gemm.Sgemm(true, false, outF, inF, rows, g2.F, g2.Offset, outF, x2.F, x2.Offset, inF, gwd, 0, inF, accumulate: false);
                gw = new Tensor(gwd, [outF, inF]);
            }
            if (bias is not null && bias.RequiresGrad) gb = Sum(g2, [0]);
            return bias is null ? [gx, gw] : [gx, gw, gb];
        });
    }
}

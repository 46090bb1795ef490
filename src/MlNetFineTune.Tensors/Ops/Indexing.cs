namespace MlNetFineTune.Tensors;

public static partial class Ops
{
    private static long[] IndexData(Tensor index, string op)
    {
        if (index.DType == DType.Float32)
            throw new ArgumentException($"{op}: index{index.Describe()} must be Int64 or Int32, not Float32.");
        return index.ToInt64Array();
    }

    private static int CheckIndex(long v, int size, string op, int dim)
    {
        if (v < 0 || v >= size)
            throw new ArgumentOutOfRangeException(nameof(v), $"{op}: index {v} is out of range for dimension {dim} of size {size}.");
        return (int)v;
    }

    /// <summary>
    /// out[i][j][k] = x[index[i][j][k]][j][k] along <paramref name="dim"/> (torch.gather). index has x's rank and
    /// sizes no larger than x's in the other dims.
    /// </summary>
    public static Tensor Gather(Tensor x, int dim, Tensor index)
    {
        RequireFloat(x, "gather", "x");
        int d = ShapeUtil.NormDim(dim, x.Rank, "gather");
        if (index.Rank != x.Rank)
            throw new ArgumentException($"gather: index {ShapeUtil.Format(index.ShapeArr)} must have the same rank as x {ShapeUtil.Format(x.ShapeArr)}.");
        for (int i = 0; i < x.Rank; i++)
            if (i != d && index.ShapeArr[i] > x.ShapeArr[i])
                throw new ArgumentException($"gather: index {ShapeUtil.Format(index.ShapeArr)} is larger than x {ShapeUtil.Format(x.ShapeArr)} in dimension {i}.");
        var idx = IndexData(index, "gather");
        var xd = x.F;
        var outShape = (int[])index.ShapeArr.Clone();
        var r = new float[idx.Length];
        var pos = new int[x.Rank];
        for (int o = 0; o < idx.Length; o++)
        {
            int src = x.Offset;
            for (int k = 0; k < x.Rank; k++)
                src += (k == d ? CheckIndex(idx[o], x.ShapeArr[d], "gather", d) : pos[k]) * x.StridesArr[k];
            r[o] = xd[src];
            Advance(pos, outShape);
        }
        var inShape = x.ShapeArr;
        return Tensor.Record(new Tensor(r, outShape), "gather", [x], g => [ScatterAdd(Tensor.Zeros(inShape), d, index, g)]);
    }

    /// <summary>
    /// A copy of <paramref name="x"/> with src added at positions given by index along dim (torch.scatter_add).
    /// Differentiable in x and src.
    /// </summary>
    public static Tensor ScatterAdd(Tensor x, int dim, Tensor index, Tensor src)
    {
        RequireFloat(x, "scatter_add", "x"); RequireFloat(src, "scatter_add", "src");
        int d = ShapeUtil.NormDim(dim, x.Rank, "scatter_add");
        if (index.Rank != x.Rank || !ShapeUtil.SameShape(index.ShapeArr, src.ShapeArr))
            throw new ArgumentException($"scatter_add: index {ShapeUtil.Format(index.ShapeArr)} and src {ShapeUtil.Format(src.ShapeArr)} must match and have x's rank {x.Rank}.");
        var idx = IndexData(index, "scatter_add");
        var r = x.Dense<float>();
        r = ReferenceEquals(r, x.Storage) ? (float[])r.Clone() : r;
        var s = src.Dense<float>();
        var xs = Tensor.ContiguousStrides(x.ShapeArr);
        var pos = new int[x.Rank];
        var ishape = index.ShapeArr;
        for (int o = 0; o < idx.Length; o++)
        {
            int dst = 0;
            for (int k = 0; k < x.Rank; k++)
                dst += (k == d ? CheckIndex(idx[o], x.ShapeArr[d], "scatter_add", d) : pos[k]) * xs[k];
            r[dst] += s[o];
            Advance(pos, ishape);
        }
        return Tensor.Record(new Tensor(r, (int[])x.ShapeArr.Clone()), "scatter_add", [x, src], g => [g, src.RequiresGrad ? Gather(g, d, index) : null]);
    }

    private static void Advance(int[] pos, int[] shape)
    {
        for (int k = shape.Length - 1; k >= 0; k--)
        {
            if (++pos[k] < shape[k]) return;
            pos[k] = 0;
        }
    }

    /// <summary>Selects entries of <paramref name="x"/> along <paramref name="dim"/> by a 1-D index (torch.index_select).</summary>
    public static Tensor IndexSelect(Tensor x, int dim, Tensor index)
    {
        RequireFloat(x, "index_select", "x");
        int d = ShapeUtil.NormDim(dim, x.Rank, "index_select");
        if (index.Rank > 1) throw new ArgumentException($"index_select: index {ShapeUtil.Format(index.ShapeArr)} must be 1-D.");
        var idx = IndexData(index, "index_select");
        var xc = Contiguous(x.Detach());
        var xd = xc.F;
        int outer = 1, inner = 1, size = x.ShapeArr[d];
        for (int i = 0; i < d; i++) outer *= x.ShapeArr[i];
        for (int i = d + 1; i < x.Rank; i++) inner *= x.ShapeArr[i];
        var outShape = (int[])x.ShapeArr.Clone();
        outShape[d] = idx.Length;
        var r = new float[outer * idx.Length * inner];
        var checkedIdx = new int[idx.Length];
        for (int j = 0; j < idx.Length; j++) checkedIdx[j] = CheckIndex(idx[j], size, "index_select", d);
        for (int o = 0; o < outer; o++)
            for (int j = 0; j < idx.Length; j++)
                Array.Copy(xd, xc.Offset + (o * size + checkedIdx[j]) * inner, r, (o * idx.Length + j) * inner, inner);
        var inShape = x.ShapeArr;
        return Tensor.Record(new Tensor(r, outShape), "index_select", [x], g =>
        {
            var gd = Contiguous(g).Dense<float>();
            var gx = new float[ShapeUtil.Numel(inShape)];
            for (int o = 0; o < outer; o++)
                for (int j = 0; j < checkedIdx.Length; j++)
                {
                    int s = (o * checkedIdx.Length + j) * inner, t = (o * size + checkedIdx[j]) * inner;
                    for (int i = 0; i < inner; i++) gx[t + i] += gd[s + i];
                }
            return [new Tensor(gx, inShape)];
        });
    }

    /// <summary>Joins tensors along an existing dimension.</summary>
    public static Tensor Concat(IReadOnlyList<Tensor> tensors, int dim)
    {
        if (tensors.Count == 0) throw new ArgumentException("concat: no tensors given.");
        var first = tensors[0];
        int d = ShapeUtil.NormDim(dim, first.Rank, "concat");
        int total = 0;
        foreach (var t in tensors)
        {
            RequireFloat(t, "concat", "input");
            bool ok = t.Rank == first.Rank;
            for (int i = 0; ok && i < t.Rank; i++) ok = i == d || t.ShapeArr[i] == first.ShapeArr[i];
            if (!ok)
                throw new ArgumentException($"concat: shapes {ShapeUtil.Format(first.ShapeArr)} and {ShapeUtil.Format(t.ShapeArr)} differ outside dimension {d}.");
            total += t.ShapeArr[d];
        }
        var outShape = (int[])first.ShapeArr.Clone();
        outShape[d] = total;
        var result = Tensor.Zeros(outShape);
        int at = 0;
        var starts = new int[tensors.Count];
        for (int i = 0; i < tensors.Count; i++)
        {
            starts[i] = at;
            int len = tensors[i].ShapeArr[d];
            using (Tensor.NoGrad()) CopyInto(tensors[i], Narrow(result, d, at, len));
            at += len;
        }
        var inputs = tensors.ToArray();
        return Tensor.Record(result, "concat", inputs, g =>
        {
            var gs = new Tensor?[inputs.Length];
            for (int i = 0; i < inputs.Length; i++)
                if (inputs[i].RequiresGrad) gs[i] = Contiguous(Narrow(g, d, starts[i], inputs[i].ShapeArr[d]));
            return gs;
        });
    }

    /// <summary>Joins equally shaped tensors along a new dimension.</summary>
    public static Tensor Stack(IReadOnlyList<Tensor> tensors, int dim)
    {
        if (tensors.Count == 0) throw new ArgumentException("stack: no tensors given.");
        int rank = tensors[0].Rank;
        int d = dim < 0 ? dim + rank + 1 : dim;
        foreach (var t in tensors)
            if (!ShapeUtil.SameShape(t.ShapeArr, tensors[0].ShapeArr))
                throw new ArgumentException($"stack: shapes {ShapeUtil.Format(tensors[0].ShapeArr)} and {ShapeUtil.Format(t.ShapeArr)} differ.");
        return Concat(tensors.Select(t => Unsqueeze(t, d)).ToArray(), d);
    }

    /// <summary>Splits into views of <paramref name="splitSize"/> along a dimension (the last may be smaller).</summary>
    public static Tensor[] Split(Tensor x, int splitSize, int dim)
    {
        if (splitSize < 1) throw new ArgumentOutOfRangeException(nameof(splitSize), "split: size must be positive.");
        int d = ShapeUtil.NormDim(dim, x.Rank, "split");
        var parts = new List<Tensor>();
        for (int s = 0; s < x.ShapeArr[d]; s += splitSize)
            parts.Add(Narrow(x, d, s, Math.Min(splitSize, x.ShapeArr[d] - s)));
        return [.. parts];
    }

    /// <summary>Splits into views of the given sizes along a dimension.</summary>
    public static Tensor[] Split(Tensor x, int[] sections, int dim)
    {
        int d = ShapeUtil.NormDim(dim, x.Rank, "split");
        if (sections.Sum() != x.ShapeArr[d] || sections.Any(s => s < 0))
            throw new ArgumentException($"split: sections {ShapeUtil.Format(sections)} do not add up to size {x.ShapeArr[d]} of dimension {d}.");
        var parts = new Tensor[sections.Length];
        int at = 0;
        for (int i = 0; i < sections.Length; i++) { parts[i] = Narrow(x, d, at, sections[i]); at += sections[i]; }
        return parts;
    }

    private static float[] MaskValues(Tensor mask, int[] shape, string op)
    {
        var m = mask.DType == DType.Float32 ? mask.Detach() : ToFloat(mask);
        ShapeUtil.Broadcast(shape, m.ShapeArr, op);
        return Expand(m, shape).Dense<float>();
    }

    /// <summary>x with <paramref name="value"/> where mask is non-zero (mask broadcasts to x).</summary>
    public static Tensor MaskedFill(Tensor x, Tensor mask, float value)
    {
        RequireFloat(x, "masked_fill", "x");
        var shape = ShapeUtil.Broadcast(x.ShapeArr, mask.ShapeArr, "masked_fill");
        if (!ShapeUtil.SameShape(shape, x.ShapeArr))
            throw new ArgumentException($"masked_fill: mask {ShapeUtil.Format(mask.ShapeArr)} must broadcast to x {ShapeUtil.Format(x.ShapeArr)}.");
        var m = MaskValues(mask, shape, "masked_fill");
        var r = (float[])x.Dense<float>().Clone();
        for (int i = 0; i < r.Length; i++) if (m[i] != 0) r[i] = value;
        return Tensor.Record(new Tensor(r, (int[])shape.Clone()), "masked_fill", [x], g =>
        {
            var gd = (float[])g.Dense<float>().Clone();
            for (int i = 0; i < gd.Length; i++) if (m[i] != 0) gd[i] = 0;
            return [new Tensor(gd, shape)];
        });
    }

    /// <summary>Elementwise cond ? a : b, all three broadcast together.</summary>
    public static Tensor Where(Tensor cond, Tensor a, Tensor b)
    {
        RequireFloat(a, "where", "a"); RequireFloat(b, "where", "b");
        var shape = ShapeUtil.Broadcast(ShapeUtil.Broadcast(a.ShapeArr, b.ShapeArr, "where"), cond.ShapeArr, "where");
        var c = MaskValues(cond, shape, "where");
        var ad = Expand(a.Detach(), shape).Dense<float>();
        var bd = Expand(b.Detach(), shape).Dense<float>();
        var r = new float[c.Length];
        for (int i = 0; i < r.Length; i++) r[i] = c[i] != 0 ? ad[i] : bd[i];
        int[] sa = a.ShapeArr, sb = b.ShapeArr;
        return Tensor.Record(new Tensor(r, shape), "where", [a, b], g =>
        {
            var gd = g.Dense<float>();
            var ga = new float[gd.Length];
            var gb = new float[gd.Length];
            for (int i = 0; i < gd.Length; i++) { if (c[i] != 0) ga[i] = gd[i]; else gb[i] = gd[i]; }
            return [
                a.RequiresGrad ? SumTo(new Tensor(ga, shape), sa) : null,
                b.RequiresGrad ? SumTo(new Tensor(gb, shape), sb) : null];
        });
    }
}

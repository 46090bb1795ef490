namespace MlNetFineTune.Tensors;

/// <summary>The engine's differentiable ops. Each op keeps its forward and its backward together.</summary>
public static partial class Ops
{
    private static Tensor View(Tensor x, int[] shape, int[] strides, int offset) =>
        new(x.Storage, x.DType, shape, strides, offset);

    /// <summary>A contiguous copy, or <paramref name="x"/> itself when it already is contiguous.</summary>
    public static Tensor Contiguous(Tensor x)
    {
        if (x.IsContiguous) return x;
        Array storage = x.DType switch
        {
            DType.Float32 => CopyDense<float>(x),
            DType.Int64 => CopyDense<long>(x),
            _ => CopyDense<int>(x),
        };
        var r = new Tensor(storage, x.DType, (int[])x.ShapeArr.Clone(), Tensor.ContiguousStrides(x.ShapeArr), 0);
        return Tensor.Record(r, "contiguous", [x], g => [g]);
    }

    private static T[] CopyDense<T>(Tensor x)
    {
        // Every element is copied in. Float copies come from the buffer pool like other op outputs (a transformer
        // layer's head merge is one per layer), so inference recycles them instead of faulting in fresh pages.
        var dst = typeof(T) == typeof(float) ? (T[])(object)Cpu.TensorBuffers.Rent(x.Numel) : GC.AllocateUninitializedArray<T>(x.Numel);
        StridedCopy.Copy((T[])x.Storage, x.Offset, x.ShapeArr, x.StridesArr, dst);
        return dst;
    }

    /// <summary>Same elements, new shape; one dimension may be -1. A view when strides allow, else a copy.</summary>
    public static Tensor Reshape(Tensor x, params int[] shape)
    {
        var target = InferShape(x, shape);
        if (ShapeUtil.SameShape(target, x.ShapeArr)) return x;
        var strides = ViewStrides(x.ShapeArr, x.StridesArr, target);
        Tensor r;
        if (strides is null)
        {
            var c = Contiguous(x.Detach());
            r = View(c, target, Tensor.ContiguousStrides(target), c.Offset);
        }
        else r = View(x, target, strides, x.Offset);
        var inShape = x.ShapeArr;
        return Tensor.Record(r, "reshape", [x], g => [Reshape(g, inShape)]);
    }

    /// <summary>Like <see cref="Reshape"/> but fails instead of copying.</summary>
    public static Tensor ViewAs(Tensor x, params int[] shape)
    {
        var target = InferShape(x, shape);
        var strides = ViewStrides(x.ShapeArr, x.StridesArr, target)
            ?? throw new InvalidOperationException($"view: tensor{x.Describe()} with strides {ShapeUtil.Format(x.StridesArr)} cannot be viewed as {ShapeUtil.Format(target)} without a copy; use Reshape.");
        var inShape = x.ShapeArr;
        return Tensor.Record(View(x, target, strides, x.Offset), "view", [x], g => [Reshape(g, inShape)]);
    }

    private static int[] InferShape(Tensor x, int[] shape)
    {
        var target = (int[])shape.Clone();
        int infer = -1;
        long known = 1;
        for (int i = 0; i < target.Length; i++)
        {
            if (target[i] == -1)
            {
                if (infer >= 0) throw new ArgumentException($"reshape: only one dimension can be -1 in {ShapeUtil.Format(shape)}.");
                infer = i;
            }
            else if (target[i] < 0) throw new ArgumentException($"reshape: invalid size {target[i]} in {ShapeUtil.Format(shape)}.");
            else known *= target[i];
        }
        int n = x.Numel;
        if (infer >= 0)
        {
            if (known == 0 || n % known != 0)
                throw new ArgumentException($"reshape: tensor{x.Describe()} with {n} elements cannot be reshaped to {ShapeUtil.Format(shape)}.");
            target[infer] = (int)(n / known);
        }
        else if (known != n)
            throw new ArgumentException($"reshape: tensor{x.Describe()} with {n} elements cannot be reshaped to {ShapeUtil.Format(shape)}.");
        return target;
    }

    // Strides for viewing (shape, strides) as target without copying, or null (as PyTorch's computeStride).
    private static int[]? ViewStrides(int[] shape, int[] strides, int[] target)
    {
        var result = new int[target.Length];
        if (ShapeUtil.Numel(shape) == 0 || shape.Length == 0)
            return Tensor.ContiguousStrides(target);
        int viewD = target.Length - 1;
        long chunkBase = strides[^1];
        long tensorNumel = 1, viewNumel = 1;
        for (int d = shape.Length - 1; d >= 0; d--)
        {
            tensorNumel *= shape[d];
            if (d == 0 || (shape[d - 1] != 1 && strides[d - 1] != tensorNumel * chunkBase))
            {
                while (viewD >= 0 && (viewNumel < tensorNumel || target[viewD] == 1))
                {
                    result[viewD] = (int)(viewNumel * chunkBase);
                    viewNumel *= target[viewD];
                    viewD--;
                }
                if (viewNumel != tensorNumel) return null;
                if (d > 0)
                {
                    chunkBase = strides[d - 1];
                    tensorNumel = 1;
                    viewNumel = 1;
                }
            }
        }
        return viewD == -1 ? result : null;
    }

    /// <summary>Reorders dimensions (a view).</summary>
    public static Tensor Permute(Tensor x, params int[] dims)
    {
        int rank = x.Rank;
        if (dims.Length != rank) throw new ArgumentException($"permute: {dims.Length} dims given for tensor{x.Describe()} of rank {rank}.");
        var seen = new bool[rank];
        var shape = new int[rank];
        var strides = new int[rank];
        var inverse = new int[rank];
        for (int i = 0; i < rank; i++)
        {
            int d = ShapeUtil.NormDim(dims[i], rank, "permute");
            if (seen[d]) throw new ArgumentException($"permute: dimension {d} repeated in {ShapeUtil.Format(dims)}.");
            seen[d] = true;
            shape[i] = x.ShapeArr[d];
            strides[i] = x.StridesArr[d];
            inverse[d] = i;
        }
        return Tensor.Record(View(x, shape, strides, x.Offset), "permute", [x], g => [Permute(g, inverse)]);
    }

    /// <summary>Swaps two dimensions (a view).</summary>
    public static Tensor Transpose(Tensor x, int dim0, int dim1)
    {
        int rank = x.Rank;
        int a = ShapeUtil.NormDim(dim0, rank, "transpose"), b = ShapeUtil.NormDim(dim1, rank, "transpose");
        var perm = new int[rank];
        for (int i = 0; i < rank; i++) perm[i] = i;
        (perm[a], perm[b]) = (perm[b], perm[a]);
        return Permute(x, perm);
    }

    /// <summary>Elements [start, start+length) along <paramref name="dim"/> (a view).</summary>
    public static Tensor Narrow(Tensor x, int dim, int start, int length)
    {
        int d = ShapeUtil.NormDim(dim, x.Rank, "narrow");
        int size = x.ShapeArr[d];
        if (start < 0) start += size;
        if (start < 0 || length < 0 || start + length > size)
            throw new ArgumentOutOfRangeException(nameof(start), $"narrow: range [{start}, {start + length}) is outside dimension {d} of size {size} in tensor{x.Describe()}.");
        var shape = (int[])x.ShapeArr.Clone();
        shape[d] = length;
        var r = View(x, shape, x.StridesArr, x.Offset + start * x.StridesArr[d]);
        var inShape = x.ShapeArr;
        return Tensor.Record(r, "narrow", [x], g =>
        {
            var gx = Tensor.Zeros(inShape);
            CopyInto(g, Narrow(gx, d, start, length));
            return [gx];
        });
    }

    /// <summary>Python-style slice [start:end:step] along a dimension (a view; negative indices count from the end).</summary>
    public static Tensor Slice(Tensor x, int dim, int start, int end, int step = 1)
    {
        int d = ShapeUtil.NormDim(dim, x.Rank, "slice");
        if (step < 1) throw new ArgumentOutOfRangeException(nameof(step), "slice: step must be positive.");
        int size = x.ShapeArr[d];
        if (start < 0) start += size;
        if (end < 0) end += size;
        start = Math.Clamp(start, 0, size);
        end = Math.Clamp(end, start, size);
        int len = (end - start + step - 1) / step;
        var shape = (int[])x.ShapeArr.Clone();
        var strides = (int[])x.StridesArr.Clone();
        shape[d] = len;
        strides[d] *= step;
        var r = View(x, shape, strides, x.Offset + start * x.StridesArr[d]);
        var inShape = x.ShapeArr;
        return Tensor.Record(r, "slice", [x], g =>
        {
            var gx = Tensor.Zeros(inShape);
            CopyInto(g, Slice(gx, d, start, end, step));
            return [gx];
        });
    }

    /// <summary>Broadcasts size-1 dimensions (and new leading ones) to <paramref name="shape"/> (a view; -1 keeps a size).</summary>
    public static Tensor Expand(Tensor x, params int[] shape)
    {
        int rank = shape.Length, lead = rank - x.Rank;
        if (lead < 0) throw new ArgumentException($"expand: target {ShapeUtil.Format(shape)} has fewer dimensions than tensor{x.Describe()}.");
        var outShape = new int[rank];
        var strides = new int[rank];
        for (int i = 0; i < rank; i++)
        {
            int j = i - lead;
            int want = shape[i];
            if (j < 0)
            {
                if (want < 0) throw new ArgumentException($"expand: -1 not allowed for new dimension {i}.");
                outShape[i] = want;
                strides[i] = 0;
                continue;
            }
            int have = x.ShapeArr[j];
            if (want == -1) want = have;
            if (have != want && have != 1)
                throw new ArgumentException($"expand: tensor{x.Describe()} cannot be expanded to {ShapeUtil.Format(shape)} (dimension {i}: {have} vs {want}).");
            outShape[i] = want;
            strides[i] = have == want ? x.StridesArr[j] : 0;
        }
        var inShape = x.ShapeArr;
        return Tensor.Record(View(x, outShape, strides, x.Offset), "expand", [x], g => [SumTo(g, inShape)]);
    }

    /// <summary>Inserts a size-1 dimension at <paramref name="dim"/> (a view).</summary>
    public static Tensor Unsqueeze(Tensor x, int dim)
    {
        int d = dim < 0 ? dim + x.Rank + 1 : dim;
        if (d < 0 || d > x.Rank) throw new ArgumentOutOfRangeException(nameof(dim), $"unsqueeze: dimension {dim} out of range for rank {x.Rank}.");
        var shape = x.ShapeArr.ToList();
        var strides = x.StridesArr.ToList();
        shape.Insert(d, 1);
        strides.Insert(d, d < x.Rank ? x.StridesArr[d] * x.ShapeArr[d] : 1);
        var inShape = x.ShapeArr;
        return Tensor.Record(View(x, [.. shape], [.. strides], x.Offset), "unsqueeze", [x], g => [Reshape(g, inShape)]);
    }

    /// <summary>Removes dimension <paramref name="dim"/> if it has size 1, or every size-1 dimension when null (a view).</summary>
    public static Tensor Squeeze(Tensor x, int? dim = null)
    {
        var shape = new List<int>();
        var strides = new List<int>();
        int only = dim is int dd ? ShapeUtil.NormDim(dd, x.Rank, "squeeze") : -1;
        for (int i = 0; i < x.Rank; i++)
        {
            bool drop = x.ShapeArr[i] == 1 && (only < 0 || only == i);
            if (drop) continue;
            shape.Add(x.ShapeArr[i]);
            strides.Add(x.StridesArr[i]);
        }
        var inShape = x.ShapeArr;
        return Tensor.Record(View(x, [.. shape], [.. strides], x.Offset), "squeeze", [x], g => [Reshape(g, inShape)]);
    }

    /// <summary>Merges dimensions <paramref name="startDim"/>..<paramref name="endDim"/> into one.</summary>
    public static Tensor Flatten(Tensor x, int startDim = 0, int endDim = -1)
    {
        if (x.Rank == 0) return Reshape(x, 1);
        int s = ShapeUtil.NormDim(startDim, x.Rank, "flatten"), e = ShapeUtil.NormDim(endDim, x.Rank, "flatten");
        var shape = new List<int>();
        for (int i = 0; i < s; i++) shape.Add(x.ShapeArr[i]);
        int merged = 1;
        for (int i = s; i <= e; i++) merged *= x.ShapeArr[i];
        shape.Add(merged);
        for (int i = e + 1; i < x.Rank; i++) shape.Add(x.ShapeArr[i]);
        return Reshape(x, [.. shape]);
    }

    /// <summary>Writes the values of <paramref name="src"/> (broadcast) into the view <paramref name="dst"/>. Not recorded.</summary>
    internal static void CopyInto(Tensor src, Tensor dst)
    {
        var s = src.Dense<float>();
        var shape = dst.ShapeArr;
        if (!ShapeUtil.SameShape(src.ShapeArr, shape))
        {
            s = Expand(src.Detach(), shape).Dense<float>();
        }
        var d = dst.F;
        int rank = shape.Length, n = s.Length;
        if (n == 0) return;
        if (dst.IsContiguous) { Array.Copy(s, 0, d, dst.Offset, n); return; }
        var idx = new int[rank];
        for (int i = 0; i < n; i++)
        {
            int o = dst.Offset;
            for (int k = 0; k < rank; k++) o += idx[k] * dst.StridesArr[k];
            d[o] = s[i];
            for (int k = rank - 1; k >= 0; k--)
            {
                if (++idx[k] < shape[k]) break;
                idx[k] = 0;
            }
        }
    }

    /// <summary>Sums <paramref name="g"/> over the dimensions that broadcasting added to reach its shape from <paramref name="shape"/>.</summary>
    public static Tensor SumTo(Tensor g, int[] shape)
    {
        if (ShapeUtil.SameShape(g.ShapeArr, shape)) return g;
        int lead = g.Rank - shape.Length;
        var dims = new List<int>();
        for (int i = 0; i < g.Rank; i++)
        {
            int j = i - lead;
            if (j < 0 || (shape[j] == 1 && g.ShapeArr[i] != 1)) dims.Add(i);
        }
        var s = dims.Count > 0 ? Sum(g, [.. dims], keepDim: true) : g;
        return Reshape(s, shape);
    }
}

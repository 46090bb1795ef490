using MlNetFineTune.Tensors.Cpu;

namespace MlNetFineTune.Tensors;

public static partial class Ops
{
    // Which dims a reduction removes (every dim when dims is null or empty), checked, with the result shapes.
    private static (bool[] Reduce, int Outer, int Inner, int[] OutShape, int[] KeepShape) ReduceShapes(Tensor x, int[]? dims, bool keepDim, string op)
    {
        RequireFloat(x, op, "x");
        int rank = x.Rank;
        var reduce = new bool[rank];
        if (dims is null || dims.Length == 0) Array.Fill(reduce, true);
        else foreach (var d in dims)
            {
                int nd = ShapeUtil.NormDim(d, rank, op);
                if (reduce[nd]) throw new ArgumentException($"{op}: dimension {nd} listed twice.");
                reduce[nd] = true;
            }
        var outShape = new List<int>();
        var keepShape = new int[rank];
        int outer = 1, inner = 1;
        for (int i = 0; i < rank; i++)
            if (!reduce[i]) { outShape.Add(x.ShapeArr[i]); outer *= x.ShapeArr[i]; keepShape[i] = x.ShapeArr[i]; }
            else { inner *= x.ShapeArr[i]; keepShape[i] = 1; }
        return (reduce, outer, inner, keepDim ? keepShape : [.. outShape], keepShape);
    }

    // Moves the reduced dims last and returns the dense data as [outer, inner] rows plus the result shapes.
    private static (float[] Data, int Outer, int Inner, int[] OutShape, int[] KeepShape) ReduceLayout(Tensor x, int[]? dims, bool keepDim, string op)
    {
        var (reduce, outer, inner, outShape, keepShape) = ReduceShapes(x, dims, keepDim, op);
        int[] perm = [.. Enumerable.Range(0, x.Rank).Where(i => !reduce[i]), .. Enumerable.Range(0, x.Rank).Where(i => reduce[i])];
        Tensor moved;
        using (Tensor.NoGrad()) moved = Permute(x.Detach(), perm);
        return (moved.Dense<float>(), outer, inner, outShape, keepShape);
    }

    // Column sums of a contiguous [rows, cols] block: each column added in row order by one thread, so the
    // result does not depend on the thread count.
    private static float[] ColumnSums(float[] data, int offset, int rows, int cols)
    {
        var r = new float[cols];
        if (rows == 0 || cols == 0) return r;
        int chunk = Math.Max(64, (int)Math.Min(cols, 262144L / Math.Max(rows, 1)));
        WorkerPool.For(cols, chunk, (s, e) =>
        {
            var acc = r.AsSpan(s, e - s);
            for (int i = 0; i < rows; i++)
                System.Numerics.Tensors.TensorPrimitives.Add(acc, data.AsSpan(offset + i * cols + s, e - s), acc);
        });
        return r;
    }

    /// <summary>Sum over <paramref name="dims"/> (every dim when null or empty).</summary>
    public static Tensor Sum(Tensor x, int[]? dims = null, bool keepDim = false)
    {
        var (reduce, outer, inner, outShape, keepShape) = ReduceShapes(x, dims, keepDim, "sum");
        // A contiguous x reduced over exactly its leading dims (a bias gradient: the rows of [rows, cols]) adds
        // whole rows with vector adds instead of transposing the data first.
        int lead = 0;
        while (lead < reduce.Length && reduce[lead]) lead++;
        float[] r;
        if (x.IsContiguous && lead > 0 && lead < reduce.Length && !reduce.Skip(lead).Any(b => b))
            r = ColumnSums(x.F, x.Offset, inner, outer);
        else
        {
            var data = ReduceLayout(x, dims, keepDim, "sum").Data;
            r = new float[outer];
            WorkerPool.For(outer, Math.Max(1, 16384 / Math.Max(inner, 1)), (s, e) =>
            {
                for (int o = s; o < e; o++) r[o] = VecKernels.Sum(data.AsSpan(o * inner, inner));
            });
        }
        var inShape = x.ShapeArr;
        return Tensor.Record(new Tensor(r, outShape), "sum", [x], g => [Expand(Reshape(g, keepShape), inShape)]);
    }

    /// <summary>Mean over <paramref name="dims"/> (every dim when null or empty).</summary>
    public static Tensor Mean(Tensor x, int[]? dims = null, bool keepDim = false)
    {
        var (data, outer, inner, outShape, keepShape) = ReduceLayout(x, dims, keepDim, "mean");
        var r = new float[outer];
        float inv = 1f / inner;
        WorkerPool.For(outer, Math.Max(1, 16384 / Math.Max(inner, 1)), (s, e) =>
        {
            for (int o = s; o < e; o++) r[o] = VecKernels.Sum(data.AsSpan(o * inner, inner)) * inv;
        });
        var inShape = x.ShapeArr;
        return Tensor.Record(new Tensor(r, outShape), "mean", [x], g => [Expand(Reshape(MulScalar(g, inv), keepShape), inShape)]);
    }

    /// <summary>Variance over <paramref name="dims"/>; unbiased divides by n-1 (PyTorch's default).</summary>
    public static Tensor Var(Tensor x, int[]? dims = null, bool unbiased = true, bool keepDim = false)
    {
        var (data, outer, inner, outShape, keepShape) = ReduceLayout(x, dims, keepDim, "var");
        var r = new float[outer];
        float denom = unbiased ? inner - 1 : inner;
        for (int o = 0; o < outer; o++)
        {
            var row = data.AsSpan(o * inner, inner);
            float mean = VecKernels.Sum(row) / inner;
            double ss = 0;
            foreach (var v in row) { double d = v - mean; ss += d * d; }
            r[o] = (float)(ss / denom);
        }
        var inShape = x.ShapeArr;
        return Tensor.Record(new Tensor(r, outShape), "var", [x], g =>
        {
            // d var / dx = 2 (x - mean) / denom
            var mean = Mean(x, dims, keepDim: true);
            var centred = Sub(x, mean);
            return [Mul(centred, Reshape(MulScalar(g, 2f / denom), keepShape))];
        });
    }

    /// <summary>Largest value over one dimension, with the index of its first occurrence.</summary>
    public static (Tensor Values, Tensor Indices) Max(Tensor x, int dim, bool keepDim = false)
    {
        int d = ShapeUtil.NormDim(dim, x.Rank, "max");
        var (data, outer, inner, outShape, keepShape) = ReduceLayout(x, [d], keepDim, "max");
        if (inner == 0) throw new ArgumentException($"max: cannot reduce an empty dimension of tensor{x.Describe()}.");
        var vals = new float[outer];
        var idx = new long[outer];
        for (int o = 0; o < outer; o++)
        {
            var row = data.AsSpan(o * inner, inner);
            int best = 0;
            float bv = row[0];
            for (int i = 1; i < row.Length; i++)
                if (row[i] > bv || float.IsNaN(row[i]) && !float.IsNaN(bv)) { bv = row[i]; best = i; }
            vals[o] = bv;
            idx[o] = best;
        }
        var indices = new Tensor(idx, DType.Int64, (int[])outShape.Clone(), Tensor.ContiguousStrides(outShape), 0);
        var inShape = x.ShapeArr;
        var values = Tensor.Record(new Tensor(vals, outShape), "max", [x], g =>
        {
            var gk = Reshape(g, keepShape);
            var ik = Reshape(indices, keepShape);
            return [ScatterAdd(Tensor.Zeros(inShape), d, ik, gk)];
        });
        return (values, indices);
    }

    /// <summary>Largest value over several dims (torch.amax); the gradient is shared evenly among ties.</summary>
    public static Tensor Amax(Tensor x, int[]? dims = null, bool keepDim = false)
    {
        var (data, outer, inner, outShape, keepShape) = ReduceLayout(x, dims, keepDim, "amax");
        if (inner == 0) throw new ArgumentException($"amax: cannot reduce an empty dimension of tensor{x.Describe()}.");
        var r = new float[outer];
        for (int o = 0; o < outer; o++) r[o] = VecKernels.Max(data.AsSpan(o * inner, inner));
        var inShape = x.ShapeArr;
        var result = new Tensor(r, outShape);
        return Tensor.Record(result, "amax", [x], g =>
        {
            var xd = x.Dense<float>();
            var m = Expand(Reshape(result, keepShape), inShape).Dense<float>();
            var ge = Expand(Reshape(g, keepShape), inShape).Dense<float>();
            var mask = new float[xd.Length];
            for (int i = 0; i < xd.Length; i++) mask[i] = xd[i] == m[i] ? 1f : 0f;
            var maskT = new Tensor(mask, inShape);
            var count = Expand(Sum(maskT, dims, keepDim: true), inShape).Dense<float>();
            var gx = new float[xd.Length];
            for (int i = 0; i < xd.Length; i++) gx[i] = mask[i] * ge[i] / count[i];
            return [new Tensor(gx, inShape)];
        });
    }

    /// <summary>Largest value over all elements (gradient goes to the first maximum).</summary>
    public static Tensor Max(Tensor x)
    {
        var flat = Reshape(x, -1);
        return Reshape(Max(flat, 0).Values, []);
    }
}

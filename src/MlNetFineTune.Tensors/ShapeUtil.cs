namespace MlNetFineTune.Tensors;

internal static class ShapeUtil
{
    public static int Numel(int[] shape)
    {
        int n = 1;
        foreach (var s in shape) n *= s;
        return n;
    }

    public static int CheckedNumel(int[] shape)
    {
        long n = 1;
        foreach (var s in shape)
        {
            if (s < 0) throw new ArgumentException($"Shape {Format(shape)} has a negative dimension.");
            n *= s;
            if (n > Array.MaxLength) throw new ArgumentException($"Shape {Format(shape)} has more than {Array.MaxLength} elements.");
        }
        return (int)n;
    }

    public static string Format(IReadOnlyList<int> shape) => "[" + string.Join(", ", shape) + "]";

    public static int NormDim(int dim, int rank, string op)
    {
        int d = dim < 0 ? dim + rank : dim;
        if (d < 0 || d >= rank)
            throw new ArgumentOutOfRangeException(nameof(dim), $"{op}: dimension {dim} is out of range for a tensor of rank {rank}.");
        return d;
    }

    public static bool IsContiguous(int[] shape, int[] strides)
    {
        int expected = 1;
        for (int i = shape.Length - 1; i >= 0; i--)
        {
            if (shape[i] == 1) continue;
            if (strides[i] != expected) return false;
            expected *= shape[i];
        }
        return true;
    }

    public static int[] Broadcast(int[] a, int[] b, string op)
    {
        int rank = Math.Max(a.Length, b.Length);
        var r = new int[rank];
        for (int i = 0; i < rank; i++)
        {
            int da = i - (rank - a.Length) >= 0 ? a[i - (rank - a.Length)] : 1;
            int db = i - (rank - b.Length) >= 0 ? b[i - (rank - b.Length)] : 1;
            if (da != db && da != 1 && db != 1)
                throw new ArgumentException($"{op}: shapes {Format(a)} and {Format(b)} cannot be broadcast together (dimension {i}: {da} vs {db}).");
            r[i] = da == 1 ? db : da;
        }
        return r;
    }

    /// <summary>Strides of <paramref name="t"/> seen through broadcasting to <paramref name="shape"/> (0 on broadcast dims).</summary>
    public static int[] BroadcastStrides(Tensor t, int[] shape)
    {
        int rank = shape.Length, lead = rank - t.Rank;
        var s = new int[rank];
        for (int i = 0; i < rank; i++)
        {
            int j = i - lead;
            s[i] = j < 0 || t.ShapeArr[j] == 1 ? 0 : t.StridesArr[j];
        }
        return s;
    }

    public static bool SameShape(int[] a, int[] b) => a.AsSpan().SequenceEqual(b);
}

/// <summary>Strided gather of elements into a dense buffer.</summary>
internal static class StridedCopy
{
    public static void Copy<T>(T[] src, int offset, int[] shape, int[] strides, T[] dst)
    {
        int rank = shape.Length;
        int n = ShapeUtil.Numel(shape);
        if (n == 0) return;
        if (rank == 0) { dst[0] = src[offset]; return; }
        int inner = shape[rank - 1], innerStride = strides[rank - 1];
        int outer = n / inner;
        var idx = new int[rank];
        int o = 0;
        for (int r = 0; r < outer; r++)
        {
            int s = offset;
            for (int d = 0; d < rank - 1; d++) s += idx[d] * strides[d];
            if (innerStride == 1) Array.Copy(src, s, dst, o, inner);
            else for (int i = 0; i < inner; i++) dst[o + i] = src[s + i * innerStride];
            o += inner;
            for (int d = rank - 2; d >= 0; d--)
            {
                if (++idx[d] < shape[d]) break;
                idx[d] = 0;
            }
        }
    }
}

using System.Numerics.Tensors;
using MlNetFineTune.Tensors.Cpu;

namespace MlNetFineTune.Tensors;

/// <summary>A binary elementwise kernel over spans, in its three broadcast forms.</summary>
internal interface IBinaryKernel
{
    static abstract void VV(ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> d);
    static abstract void VS(ReadOnlySpan<float> a, float b, Span<float> d);
    static abstract void SV(float a, ReadOnlySpan<float> b, Span<float> d);
    static abstract float S(float a, float b);
}

internal struct AddK : IBinaryKernel
{
    public static void VV(ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> d) => TensorPrimitives.Add(a, b, d);
    public static void VS(ReadOnlySpan<float> a, float b, Span<float> d) => TensorPrimitives.Add(a, b, d);
    public static void SV(float a, ReadOnlySpan<float> b, Span<float> d) => TensorPrimitives.Add(b, a, d);
    public static float S(float a, float b) => a + b;
}

internal struct SubK : IBinaryKernel
{
    public static void VV(ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> d) => TensorPrimitives.Subtract(a, b, d);
    public static void VS(ReadOnlySpan<float> a, float b, Span<float> d) => TensorPrimitives.Subtract(a, b, d);
    public static void SV(float a, ReadOnlySpan<float> b, Span<float> d) => TensorPrimitives.Subtract(a, b, d);
    public static float S(float a, float b) => a - b;
}

internal struct MulK : IBinaryKernel
{
    public static void VV(ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> d) => TensorPrimitives.Multiply(a, b, d);
    public static void VS(ReadOnlySpan<float> a, float b, Span<float> d) => TensorPrimitives.Multiply(a, b, d);
    public static void SV(float a, ReadOnlySpan<float> b, Span<float> d) => TensorPrimitives.Multiply(b, a, d);
    public static float S(float a, float b) => a * b;
}

internal struct DivK : IBinaryKernel
{
    public static void VV(ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> d) => TensorPrimitives.Divide(a, b, d);
    public static void VS(ReadOnlySpan<float> a, float b, Span<float> d) => TensorPrimitives.Divide(a, b, d);
    public static void SV(float a, ReadOnlySpan<float> b, Span<float> d) => TensorPrimitives.Divide(a, b, d);
    public static float S(float a, float b) => a / b;
}

internal struct PowK : IBinaryKernel
{
    public static void VV(ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> d) { for (int i = 0; i < d.Length; i++) d[i] = MathF.Pow(a[i], b[i]); }
    public static void VS(ReadOnlySpan<float> a, float b, Span<float> d) { for (int i = 0; i < d.Length; i++) d[i] = MathF.Pow(a[i], b); }
    public static void SV(float a, ReadOnlySpan<float> b, Span<float> d) { for (int i = 0; i < d.Length; i++) d[i] = MathF.Pow(a, b[i]); }
    public static float S(float a, float b) => MathF.Pow(a, b);
}

internal static class Broadcasting
{
    private const int ParallelThreshold = 1 << 16;

    /// <summary>Applies <typeparamref name="TK"/> to a and b broadcast to <paramref name="outShape"/>; returns a dense result.</summary>
    public static float[] Binary<TK>(Tensor a, Tensor b, int[] outShape) where TK : struct, IBinaryKernel
    {
        int n = ShapeUtil.Numel(outShape);
        var result = TensorBuffers.Rent(n);   // every element is written below
        if (n == 0) return result;
        var da = a.F;
        var db = b.F;

        // Fast paths: same shape contiguous, or one side a single element.
        if (a.IsContiguous && b.IsContiguous && a.Numel == n && b.Numel == n)
        {
            int ao = a.Offset, bo = b.Offset;
            Chunked(n, (s, e) => TK.VV(da.AsSpan(ao + s, e - s), db.AsSpan(bo + s, e - s), result.AsSpan(s, e - s)));
            return result;
        }
        if (b.Numel == 1 && a.IsContiguous && a.Numel == n)
        {
            float bv = db[b.Offset];
            int ao = a.Offset;
            Chunked(n, (s, e) => TK.VS(da.AsSpan(ao + s, e - s), bv, result.AsSpan(s, e - s)));
            return result;
        }
        if (a.Numel == 1 && b.IsContiguous && b.Numel == n)
        {
            float av = da[a.Offset];
            int bo = b.Offset;
            Chunked(n, (s, e) => TK.SV(av, db.AsSpan(bo + s, e - s), result.AsSpan(s, e - s)));
            return result;
        }

        var sa = ShapeUtil.BroadcastStrides(a, outShape);
        var sb = ShapeUtil.BroadcastStrides(b, outShape);
        Coalesce(outShape, sa, sb, out var shape, out var stA, out var stB);
        int rank = shape.Length;
        int inner = shape[rank - 1], ia = stA[rank - 1], ib = stB[rank - 1];
        int outer = n / inner;
        int aOff = a.Offset, bOff = b.Offset;
        int minRows = Math.Max(1, ParallelThreshold / Math.Max(inner, 1));
        WorkerPool.For(outer, n >= ParallelThreshold ? minRows : outer, (r0, r1) =>
        {
            var idx = new int[rank];
            // Position the odometer at row r0.
            int rem = r0;
            for (int d = rank - 2; d >= 0; d--) { idx[d] = rem % shape[d]; rem /= shape[d]; }
            for (int r = r0; r < r1; r++)
            {
                int pa = aOff, pb = bOff;
                for (int d = 0; d < rank - 1; d++) { pa += idx[d] * stA[d]; pb += idx[d] * stB[d]; }
                var dst = result.AsSpan(r * inner, inner);
                if (ia == 1 && ib == 1) TK.VV(da.AsSpan(pa, inner), db.AsSpan(pb, inner), dst);
                else if (ia == 1 && ib == 0) TK.VS(da.AsSpan(pa, inner), db[pb], dst);
                else if (ia == 0 && ib == 1) TK.SV(da[pa], db.AsSpan(pb, inner), dst);
                else for (int i = 0; i < inner; i++) dst[i] = TK.S(da[pa + i * ia], db[pb + i * ib]);
                for (int d = rank - 2; d >= 0; d--)
                {
                    if (++idx[d] < shape[d]) break;
                    idx[d] = 0;
                }
            }
        });
        return result;
    }

    /// <summary>Runs body over [0,n) in contiguous chunks, in parallel when n is large.</summary>
    public static void Chunked(int n, Action<int, int> body)
    {
        if (n < ParallelThreshold) body(0, n);
        else WorkerPool.For(n, ParallelThreshold / 2, body);
    }

    /// <summary>Merges adjacent dimensions that are contiguous with each other in every operand; drops size-1 dims.</summary>
    public static void Coalesce(int[] shape, int[] s1, int[] s2, out int[] outShape, out int[] o1, out int[] o2)
    {
        var sh = new List<int>(); var a = new List<int>(); var b = new List<int>();
        for (int i = 0; i < shape.Length; i++)
        {
            if (shape[i] == 1) continue;
            if (sh.Count > 0)
            {
                int last = sh.Count - 1;
                if (a[last] == s1[i] * shape[i] && b[last] == s2[i] * shape[i])
                {
                    sh[last] *= shape[i];
                    a[last] = s1[i];
                    b[last] = s2[i];
                    continue;
                }
            }
            sh.Add(shape[i]); a.Add(s1[i]); b.Add(s2[i]);
        }
        if (sh.Count == 0) { sh.Add(1); a.Add(0); b.Add(0); }
        outShape = [.. sh]; o1 = [.. a]; o2 = [.. b];
    }
}

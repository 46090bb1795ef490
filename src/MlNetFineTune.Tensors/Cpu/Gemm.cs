namespace MlNetFineTune.Tensors.Cpu;

/// <summary>Single-precision general matrix multiply on row-major arrays.</summary>
public static class Gemm
{
    /// <summary>
    /// C[m,n] = (accumulate ? C : 0) + sum_k op(A)[m,k] * op(B)[k,n], all row-major.
    /// op(A) is A (m x k, row stride lda) or, when <paramref name="transA"/>, A stored as k x m (row stride lda).
    /// op(B) is B (k x n, row stride ldb) or, when <paramref name="transB"/>, B stored as n x k (row stride ldb).
    /// C is m x n with row stride ldc. Offsets index into the arrays.
    /// </summary>
    public static void Sgemm(bool transA, bool transB, int m, int n, int k,
        float[] a, int aOffset, int lda,
        float[] b, int bOffset, int ldb,
        float[] c, int cOffset, int ldc,
        bool accumulate)
    {
        // Placeholder reference implementation; replaced by the packed kernel.
        for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++)
        {
            float s = 0;
            for (int p = 0; p < k; p++)
            {
                float av = transA ? a[aOffset + p * lda + i] : a[aOffset + i * lda + p];
                float bv = transB ? b[bOffset + j * ldb + p] : b[bOffset + p * ldb + j];
                s += av * bv;
            }
            int ci = cOffset + i * ldc + j;
            c[ci] = accumulate ? c[ci] + s : s;
        }
    }
}

using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace MlNetFineTune.Tensors.Cpu;

/// <summary>
/// Row kernels (sum, max, softmax, log-softmax, layer norm, GELU) with Vector512, Vector256 and scalar
/// paths chosen by <see cref="Simd.Level"/>. Lane order depends only on the index, never on the address,
/// so results are bitwise reproducible for a given level.
/// </summary>
public static class VecKernels
{
    /// <summary>Sum of the span.</summary>
    public static float Sum(ReadOnlySpan<float> x)
    {
        ref float p = ref MemoryMarshal.GetReference(x);
        int n = x.Length, i = 0;
        float s = 0;
        if (Simd.Level == SimdLevel.Vector512 && n >= 32)
        {
            var a0 = Vector512<float>.Zero; var a1 = Vector512<float>.Zero;
            for (; i <= n - 32; i += 32)
            {
                a0 += Vector512.LoadUnsafe(ref p, (nuint)i);
                a1 += Vector512.LoadUnsafe(ref p, (nuint)(i + 16));
            }
            s = Vector512.Sum(a0 + a1);
        }
        else if (Simd.Level >= SimdLevel.Vector256 && n >= 16)
        {
            var a0 = Vector256<float>.Zero; var a1 = Vector256<float>.Zero;
            for (; i <= n - 16; i += 16)
            {
                a0 += Vector256.LoadUnsafe(ref p, (nuint)i);
                a1 += Vector256.LoadUnsafe(ref p, (nuint)(i + 8));
            }
            s = Vector256.Sum(a0 + a1);
        }
        for (; i < n; i++) s += Unsafe.Add(ref p, i);
        return s;
    }

    /// <summary>Sum of a[i]*b[i].</summary>
    public static float Dot(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        ref float pa = ref MemoryMarshal.GetReference(a);
        ref float pb = ref MemoryMarshal.GetReference(b);
        int n = a.Length, i = 0;
        float s = 0;
        if (Simd.Level == SimdLevel.Vector512 && n >= 16)
        {
            var acc = Vector512<float>.Zero;
            for (; i <= n - 16; i += 16)
                acc = Vector512.FusedMultiplyAdd(Vector512.LoadUnsafe(ref pa, (nuint)i), Vector512.LoadUnsafe(ref pb, (nuint)i), acc);
            s = Vector512.Sum(acc);
        }
        else if (Simd.Level >= SimdLevel.Vector256 && n >= 8)
        {
            var acc = Vector256<float>.Zero;
            for (; i <= n - 8; i += 8)
                acc = Vector256.FusedMultiplyAdd(Vector256.LoadUnsafe(ref pa, (nuint)i), Vector256.LoadUnsafe(ref pb, (nuint)i), acc);
            s = Vector256.Sum(acc);
        }
        for (; i < n; i++) s += Unsafe.Add(ref pa, i) * Unsafe.Add(ref pb, i);
        return s;
    }

    /// <summary>Largest element (NaN propagates).</summary>
    public static float Max(ReadOnlySpan<float> x)
    {
        ref float p = ref MemoryMarshal.GetReference(x);
        int n = x.Length, i = 0;
        float m = float.NegativeInfinity;
        if (Simd.Level == SimdLevel.Vector512 && n >= 16)
        {
            var acc = Vector512.Create(float.NegativeInfinity);
            for (; i <= n - 16; i += 16) acc = Vector512.Max(acc, Vector512.LoadUnsafe(ref p, (nuint)i));
            for (int k = 0; k < 16; k++) m = MathF.Max(m, acc[k]);
        }
        else if (Simd.Level >= SimdLevel.Vector256 && n >= 8)
        {
            var acc = Vector256.Create(float.NegativeInfinity);
            for (; i <= n - 8; i += 8) acc = Vector256.Max(acc, Vector256.LoadUnsafe(ref p, (nuint)i));
            for (int k = 0; k < 8; k++) m = MathF.Max(m, acc[k]);
        }
        for (; i < n; i++) m = MathF.Max(m, Unsafe.Add(ref p, i));
        return m;
    }

    /// <summary>d[i] = exp(x[i] - shift); returns the sum of d.</summary>
    public static float ExpShifted(ReadOnlySpan<float> x, float shift, Span<float> d)
    {
        ref float p = ref MemoryMarshal.GetReference(x);
        ref float q = ref MemoryMarshal.GetReference(d);
        int n = x.Length, i = 0;
        float s = 0;
        if (Simd.Level == SimdLevel.Vector512 && n >= 16)
        {
            var sh = Vector512.Create(shift);
            var acc = Vector512<float>.Zero;
            for (; i <= n - 16; i += 16)
            {
                var e = VecMath.Exp(Vector512.LoadUnsafe(ref p, (nuint)i) - sh);
                e.StoreUnsafe(ref q, (nuint)i);
                acc += e;
            }
            s = Vector512.Sum(acc);
        }
        else if (Simd.Level >= SimdLevel.Vector256 && n >= 8)
        {
            var sh = Vector256.Create(shift);
            var acc = Vector256<float>.Zero;
            for (; i <= n - 8; i += 8)
            {
                var e = VecMath.Exp(Vector256.LoadUnsafe(ref p, (nuint)i) - sh);
                e.StoreUnsafe(ref q, (nuint)i);
                acc += e;
            }
            s = Vector256.Sum(acc);
        }
        for (; i < n; i++)
        {
            float e = MathF.Exp(Unsafe.Add(ref p, i) - shift);
            Unsafe.Add(ref q, i) = e;
            s += e;
        }
        return s;
    }

    /// <summary>d = x * s (d may alias x).</summary>
    public static void Scale(ReadOnlySpan<float> x, float s, Span<float> d)
    {
        ref float p = ref MemoryMarshal.GetReference(x);
        ref float q = ref MemoryMarshal.GetReference(d);
        int n = x.Length, i = 0;
        if (Simd.Level == SimdLevel.Vector512)
            for (; i <= n - 16; i += 16) (Vector512.LoadUnsafe(ref p, (nuint)i) * s).StoreUnsafe(ref q, (nuint)i);
        else if (Simd.Level == SimdLevel.Vector256)
            for (; i <= n - 8; i += 8) (Vector256.LoadUnsafe(ref p, (nuint)i) * s).StoreUnsafe(ref q, (nuint)i);
        for (; i < n; i++) Unsafe.Add(ref q, i) = Unsafe.Add(ref p, i) * s;
    }

    /// <summary>Softmax of one row.</summary>
    public static void Softmax(ReadOnlySpan<float> x, Span<float> y)
    {
        float m = Max(x);
        float s = ExpShifted(x, m, y);
        Scale(y, 1f / s, y);
    }

    /// <summary>Log-softmax of one row.</summary>
    public static void LogSoftmax(ReadOnlySpan<float> x, Span<float> y)
    {
        float m = Max(x);
        float s = ExpShifted(x, m, y);
        float shift = m + MathF.Log(s);
        for (int i = 0; i < x.Length; i++) y[i] = x[i] - shift;
    }

    /// <summary>Softmax backward for one row: gx = y * (gy - sum(gy * y)).</summary>
    public static void SoftmaxBackward(ReadOnlySpan<float> y, ReadOnlySpan<float> gy, Span<float> gx)
    {
        float dot = Dot(gy, y);
        System.Numerics.Tensors.TensorPrimitives.Subtract(gy, dot, gx);
        System.Numerics.Tensors.TensorPrimitives.Multiply(gx, y, gx);
    }

    /// <summary>Log-softmax backward for one row: gx = gy - exp(y) * sum(gy).</summary>
    public static void LogSoftmaxBackward(ReadOnlySpan<float> y, ReadOnlySpan<float> gy, Span<float> gx)
    {
        float s = Sum(gy);
        for (int i = 0; i < y.Length; i++) gx[i] = gy[i] - MathF.Exp(y[i]) * s;
    }

    /// <summary>
    /// Layer norm of one row: y = (x - mean) * rstd * w + b (w, b optional). Returns (mean, rstd);
    /// variance is biased, computed two-pass for accuracy.
    /// </summary>
    public static (float Mean, float Rstd) LayerNorm(ReadOnlySpan<float> x, ReadOnlySpan<float> w, ReadOnlySpan<float> b, float eps, Span<float> y)
    {
        int n = x.Length;
        float mean = Sum(x) / n;
        // y holds the centred values while we compute the variance.
        System.Numerics.Tensors.TensorPrimitives.Subtract(x, mean, y);
        float var = Dot(y, y) / n;
        float rstd = 1f / MathF.Sqrt(var + eps);
        ref float py = ref MemoryMarshal.GetReference(y);
        int k = 0;
        bool hasW = !w.IsEmpty, hasB = !b.IsEmpty;
        if (Simd.Level == SimdLevel.Vector512 && hasW && hasB)
        {
            ref float pw = ref MemoryMarshal.GetReference(w);
            ref float pb = ref MemoryMarshal.GetReference(b);
            var r = Vector512.Create(rstd);
            for (; k <= n - 16; k += 16)
                Vector512.FusedMultiplyAdd(Vector512.LoadUnsafe(ref py, (nuint)k) * r, Vector512.LoadUnsafe(ref pw, (nuint)k), Vector512.LoadUnsafe(ref pb, (nuint)k)).StoreUnsafe(ref py, (nuint)k);
        }
        else if (Simd.Level == SimdLevel.Vector256 && hasW && hasB)
        {
            ref float pw = ref MemoryMarshal.GetReference(w);
            ref float pb = ref MemoryMarshal.GetReference(b);
            var r = Vector256.Create(rstd);
            for (; k <= n - 8; k += 8)
                Vector256.FusedMultiplyAdd(Vector256.LoadUnsafe(ref py, (nuint)k) * r, Vector256.LoadUnsafe(ref pw, (nuint)k), Vector256.LoadUnsafe(ref pb, (nuint)k)).StoreUnsafe(ref py, (nuint)k);
        }
        for (; k < n; k++)
        {
            float v = y[k] * rstd;
            if (hasW) v *= w[k];
            if (hasB) v += b[k];
            y[k] = v;
        }
        return (mean, rstd);
    }

    private const float InvSqrt2 = 0.70710678118654752f;
    private const float InvSqrt2Pi = 0.39894228040143268f;
    private const float Sqrt2OverPi = 0.79788456080286536f;

    // erfc(z) for z >= 0 via the Chebyshev-fitted form of Numerical Recipes (fractional error < 1.2e-7).
    private static float ErfcPos(float z)
    {
        float t = 1f / (1f + 0.5f * z);
        float poly = -z * z - 1.26551223f + t * (1.00002368f + t * (0.37409196f + t * (0.09678418f +
            t * (-0.18628806f + t * (0.27886807f + t * (-1.13520398f + t * (1.48851587f +
            t * (-0.82215223f + t * 0.17087277f))))))));
        return t * MathF.Exp(poly);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> ErfcPos(Vector512<float> z)
    {
        // The same polynomial as the scalar form, in t, evaluated by Estrin's scheme: independent pairs, then
        // powers of t, so the dependency chain is about half as long as Horner's (this kernel is latency-bound).
        var t = Vector512<float>.One / (Vector512<float>.One + z * 0.5f);
        var t2 = t * t;
        var t4 = t2 * t2;
        var q0 = Vector512.FusedMultiplyAdd(t, Vector512.Create(1.00002368f), Vector512.Create(-1.26551223f));
        var q1 = Vector512.FusedMultiplyAdd(t, Vector512.Create(0.09678418f), Vector512.Create(0.37409196f));
        var q2 = Vector512.FusedMultiplyAdd(t, Vector512.Create(0.27886807f), Vector512.Create(-0.18628806f));
        var q3 = Vector512.FusedMultiplyAdd(t, Vector512.Create(1.48851587f), Vector512.Create(-1.13520398f));
        var q4 = Vector512.FusedMultiplyAdd(t, Vector512.Create(0.17087277f), Vector512.Create(-0.82215223f));
        var r0 = Vector512.FusedMultiplyAdd(q1, t2, q0);
        var r1 = Vector512.FusedMultiplyAdd(q3, t2, q2);
        var poly = Vector512.FusedMultiplyAdd(Vector512.FusedMultiplyAdd(q4, t4, r1), t4, r0) - z * z;
        // poly - z^2 = ln(erfc(z) / t) is at most about 0 (never above exp's range), and a NaN z makes t NaN: the
        // exp needs neither its overflow nor its NaN select (the same values, NaN and infinities included; exact
        // GELU 1.66 -> 1.51 ns per element, one thread, best of 400 passes over 16K floats).
        return t * VecMath.Exp(poly, fullRange: false);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> ErfcPos(Vector256<float> z)
    {
        // The same polynomial as the scalar form, in t, evaluated by Estrin's scheme: independent pairs, then
        // powers of t, so the dependency chain is about half as long as Horner's (this kernel is latency-bound).
        var t = Vector256<float>.One / (Vector256<float>.One + z * 0.5f);
        var t2 = t * t;
        var t4 = t2 * t2;
        var q0 = Vector256.FusedMultiplyAdd(t, Vector256.Create(1.00002368f), Vector256.Create(-1.26551223f));
        var q1 = Vector256.FusedMultiplyAdd(t, Vector256.Create(0.09678418f), Vector256.Create(0.37409196f));
        var q2 = Vector256.FusedMultiplyAdd(t, Vector256.Create(0.27886807f), Vector256.Create(-0.18628806f));
        var q3 = Vector256.FusedMultiplyAdd(t, Vector256.Create(1.48851587f), Vector256.Create(-1.13520398f));
        var q4 = Vector256.FusedMultiplyAdd(t, Vector256.Create(0.17087277f), Vector256.Create(-0.82215223f));
        var r0 = Vector256.FusedMultiplyAdd(q1, t2, q0);
        var r1 = Vector256.FusedMultiplyAdd(q3, t2, q2);
        var poly = Vector256.FusedMultiplyAdd(Vector256.FusedMultiplyAdd(q4, t4, r1), t4, r0) - z * z;
        // poly - z^2 = ln(erfc(z) / t) is at most about 0 (never above exp's range), and a NaN z makes t NaN: the
        // exp needs neither its overflow nor its NaN select (the same values, NaN and infinities included; exact
        // GELU 1.66 -> 1.51 ns per element, one thread, best of 400 passes over 16K floats).
        return t * VecMath.Exp(poly, fullRange: false);
    }

    /// <summary>Standard normal CDF Phi(x) = 0.5 * erfc(-x / sqrt 2), accurate in both tails.</summary>
    public static float NormalCdf(float x)
    {
        float e = 0.5f * ErfcPos(MathF.Abs(x) * InvSqrt2);
        return x >= 0 ? 1f - e : e;
    }

    /// <summary>Error function.</summary>
    public static float Erf(float x)
    {
        float e = ErfcPos(MathF.Abs(x));
        return x >= 0 ? 1f - e : e - 1f;
    }

    /// <summary>Standard normal CDF Phi of eight lanes (the vector form of <see cref="NormalCdf(float)"/>'s erfc).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> NormalCdf(Vector256<float> v)
    {
        var e = ErfcPos(Vector256.Abs(v) * InvSqrt2) * 0.5f;
        return Vector256.ConditionalSelect(Vector256.GreaterThanOrEqual(v, Vector256<float>.Zero), Vector256<float>.One - e, e);
    }

    /// <summary>Standard normal CDF Phi of sixteen lanes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> NormalCdf(Vector512<float> v)
    {
        var e = ErfcPos(Vector512.Abs(v) * InvSqrt2) * 0.5f;
        return Vector512.ConditionalSelect(Vector512.GreaterThanOrEqual(v, Vector512<float>.Zero), Vector512<float>.One - e, e);
    }

    /// <summary>Exact GELU x * Phi(x) of eight lanes (the vector body of <see cref="Gelu"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector256<float> GeluExact(Vector256<float> v) => v * NormalCdf(v);

    /// <summary>Exact GELU x * Phi(x) of sixteen lanes (the vector body of <see cref="Gelu"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector512<float> GeluExact(Vector512<float> v) => v * NormalCdf(v);

    /// <summary>GELU, exact (x * Phi(x)) or the tanh approximation.</summary>
    public static void Gelu(ReadOnlySpan<float> x, Span<float> y, bool tanhApprox)
    {
        int n = x.Length, i = 0;
        ref float p = ref MemoryMarshal.GetReference(x);
        ref float q = ref MemoryMarshal.GetReference(y);
        if (!tanhApprox)
        {
            if (Simd.Level == SimdLevel.Vector512)
            {
                for (; i <= n - 16; i += 16)
                    GeluExact(Vector512.LoadUnsafe(ref p, (nuint)i)).StoreUnsafe(ref q, (nuint)i);
            }
            else if (Simd.Level == SimdLevel.Vector256)
            {
                for (; i <= n - 8; i += 8)
                    GeluExact(Vector256.LoadUnsafe(ref p, (nuint)i)).StoreUnsafe(ref q, (nuint)i);
            }
            for (; i < n; i++) { float v = Unsafe.Add(ref p, i); Unsafe.Add(ref q, i) = v * NormalCdf(v); }
        }
        else
        {
            for (; i < n; i++)
            {
                float v = Unsafe.Add(ref p, i);
                float inner = Sqrt2OverPi * (v + 0.044715f * v * v * v);
                Unsafe.Add(ref q, i) = 0.5f * v * (1f + MathF.Tanh(inner));
            }
        }
    }

    /// <summary>
    /// Dropout of one chunk: element i is kept when its 32-bit draw (two per 64-bit output of rng, low half first)
    /// is at least threshold; kept elements are scaled, the others zeroed; keep gets 1 or 0.
    /// </summary>
    public static void DropoutChunk(ReadOnlySpan<float> x, Span<float> y, Span<byte> keep, Rng rng, uint threshold, float scale)
    {
        int n = x.Length, i = 0;
        ref float px = ref MemoryMarshal.GetReference(x);
        ref float py = ref MemoryMarshal.GetReference(y);
        ref byte pk = ref MemoryMarshal.GetReference(keep);
        // The generator stepped as a local copy (the same sequence as rng.NextUInt64), and no data-dependent
        // branches: a dropped element is the scaled value ANDed with a zero mask.
        var gen = rng.State;
        for (; i + 1 < n; i += 2)
        {
            ulong bits = gen.Next();
            int k0 = (uint)bits >= threshold ? 1 : 0, k1 = (uint)(bits >> 32) >= threshold ? 1 : 0;
            Unsafe.Add(ref pk, i) = (byte)k0;
            Unsafe.Add(ref pk, i + 1) = (byte)k1;
            Unsafe.Add(ref py, i) = BitConverter.Int32BitsToSingle(BitConverter.SingleToInt32Bits(Unsafe.Add(ref px, i) * scale) & -k0);
            Unsafe.Add(ref py, i + 1) = BitConverter.Int32BitsToSingle(BitConverter.SingleToInt32Bits(Unsafe.Add(ref px, i + 1) * scale) & -k1);
        }
        rng.State = gen;
        if (i < n)
        {
            bool k0 = (uint)rng.NextUInt64() >= threshold;
            Unsafe.Add(ref pk, i) = k0 ? (byte)1 : (byte)0;
            Unsafe.Add(ref py, i) = k0 ? Unsafe.Add(ref px, i) * scale : 0f;
        }
    }

    /// <summary>gx = keep ? gy * scale : 0 (keep is 0 or 1 per element).</summary>
    public static void MaskedScale(ReadOnlySpan<float> gy, ReadOnlySpan<byte> keep, float scale, Span<float> gx)
    {
        int n = gy.Length, i = 0;
        ref float pg = ref MemoryMarshal.GetReference(gy);
        ref byte pk = ref MemoryMarshal.GetReference(keep);
        ref float po = ref MemoryMarshal.GetReference(gx);
        if (Simd.Level >= SimdLevel.Vector256)
        {
            var s = Vector256.Create(scale);
            for (; i <= n - 8; i += 8)
            {
                var bytes = Vector128.CreateScalarUnsafe(Unsafe.ReadUnaligned<ulong>(ref Unsafe.Add(ref pk, i))).AsByte();
                var words = Vector128.WidenLower(bytes);                                    // 8 x ushort
                var m = Vector256.Create(Vector128.WidenLower(words), Vector128.WidenUpper(words)); // 8 x uint
                var kept = ~Vector256.Equals(m, Vector256<uint>.Zero).AsSingle();            // all ones where kept
                ((Vector256.LoadUnsafe(ref pg, (nuint)i) * s) & kept).StoreUnsafe(ref po, (nuint)i);
            }
        }
        for (; i < n; i++) Unsafe.Add(ref po, i) = Unsafe.Add(ref pk, i) != 0 ? Unsafe.Add(ref pg, i) * scale : 0f;
    }

    /// <summary>y = x * a + b.</summary>
    public static void Affine(ReadOnlySpan<float> x, float a, float b, Span<float> y)
    {
        int n = x.Length, i = 0;
        ref float px = ref MemoryMarshal.GetReference(x);
        ref float py = ref MemoryMarshal.GetReference(y);
        if (Simd.Level >= SimdLevel.Vector256)
        {
            var va = Vector256.Create(a);
            var vb = Vector256.Create(b);
            for (; i <= n - 8; i += 8)
                Vector256.FusedMultiplyAdd(Vector256.LoadUnsafe(ref px, (nuint)i), va, vb).StoreUnsafe(ref py, (nuint)i);
        }
        for (; i < n; i++) Unsafe.Add(ref py, i) = MathF.FusedMultiplyAdd(Unsafe.Add(ref px, i), a, b);
    }

    /// <summary>Sum of (x - mu)^2 over a row, in float vector lanes (the caller adds rows in double).</summary>
    public static float SumSquaredDeviation(ReadOnlySpan<float> x, float mu)
    {
        int n = x.Length, i = 0;
        ref float px = ref MemoryMarshal.GetReference(x);
        float s = 0;
        if (Simd.Level >= SimdLevel.Vector256 && n >= 8)
        {
            var m = Vector256.Create(mu);
            Vector256<float> a0 = Vector256<float>.Zero, a1 = Vector256<float>.Zero;
            for (; i <= n - 16; i += 16)
            {
                var d0 = Vector256.LoadUnsafe(ref px, (nuint)i) - m;
                var d1 = Vector256.LoadUnsafe(ref px, (nuint)(i + 8)) - m;
                a0 = Vector256.FusedMultiplyAdd(d0, d0, a0);
                a1 = Vector256.FusedMultiplyAdd(d1, d1, a1);
            }
            for (; i <= n - 8; i += 8)
            {
                var d0 = Vector256.LoadUnsafe(ref px, (nuint)i) - m;
                a0 = Vector256.FusedMultiplyAdd(d0, d0, a0);
            }
            s = Vector256.Sum(a0 + a1);
        }
        for (; i < n; i++) { float d = Unsafe.Add(ref px, i) - mu; s += d * d; }
        return s;
    }

    /// <summary>(sum g, sum g * (x - mu)) over a row, in float vector lanes (the caller adds rows in double).</summary>
    public static (float SumG, float SumGX) SumAndCenteredDot(ReadOnlySpan<float> g, ReadOnlySpan<float> x, float mu)
    {
        int n = g.Length, i = 0;
        ref float pg = ref MemoryMarshal.GetReference(g);
        ref float px = ref MemoryMarshal.GetReference(x);
        float sg = 0, sgx = 0;
        if (Simd.Level >= SimdLevel.Vector256 && n >= 8)
        {
            var m = Vector256.Create(mu);
            Vector256<float> ag = Vector256<float>.Zero, agx = Vector256<float>.Zero;
            for (; i <= n - 8; i += 8)
            {
                var gv = Vector256.LoadUnsafe(ref pg, (nuint)i);
                ag += gv;
                agx = Vector256.FusedMultiplyAdd(gv, Vector256.LoadUnsafe(ref px, (nuint)i) - m, agx);
            }
            sg = Vector256.Sum(ag);
            sgx = Vector256.Sum(agx);
        }
        for (; i < n; i++)
        {
            float gv = Unsafe.Add(ref pg, i);
            sg += gv;
            sgx += gv * (Unsafe.Add(ref px, i) - mu);
        }
        return (sg, sgx);
    }

    /// <summary>Gradient of a clamp to (0, hi): gx = gy where 0 &lt; x &lt; hi, else 0 (NaN inputs give 0).</summary>
    public static void ClampGrad(ReadOnlySpan<float> x, ReadOnlySpan<float> gy, Span<float> gx, float hi)
    {
        int n = x.Length, i = 0;
        ref float px = ref MemoryMarshal.GetReference(x);
        ref float pg = ref MemoryMarshal.GetReference(gy);
        ref float po = ref MemoryMarshal.GetReference(gx);
        if (Simd.Level == SimdLevel.Vector512)
        {
            var h = Vector512.Create(hi);
            for (; i <= n - 16; i += 16)
            {
                var v = Vector512.LoadUnsafe(ref px, (nuint)i);
                var keep = Vector512.GreaterThan(v, Vector512<float>.Zero) & Vector512.LessThan(v, h);
                (Vector512.LoadUnsafe(ref pg, (nuint)i) & keep).StoreUnsafe(ref po, (nuint)i);
            }
        }
        else if (Simd.Level == SimdLevel.Vector256)
        {
            var h = Vector256.Create(hi);
            for (; i <= n - 8; i += 8)
            {
                var v = Vector256.LoadUnsafe(ref px, (nuint)i);
                var keep = Vector256.GreaterThan(v, Vector256<float>.Zero) & Vector256.LessThan(v, h);
                (Vector256.LoadUnsafe(ref pg, (nuint)i) & keep).StoreUnsafe(ref po, (nuint)i);
            }
        }
        for (; i < n; i++)
        {
            float v = Unsafe.Add(ref px, i);
            Unsafe.Add(ref po, i) = v > 0 && v < hi ? Unsafe.Add(ref pg, i) : 0f;
        }
    }

    /// <summary>
    /// GELU forward that also writes its derivative: y = gelu(x), the same values as <see cref="Gelu"/>, and
    /// d = d gelu(x) / dx = Phi(x) + x phi(x) (tanh form: its own derivative). A training step saves d, so the
    /// backward pass is one multiply instead of a second erfc and exp.
    /// </summary>
    public static void GeluAndDerivative(ReadOnlySpan<float> x, Span<float> y, Span<float> d, bool tanhApprox)
    {
        int n = x.Length, i = 0;
        if (!tanhApprox)
        {
            ref float px = ref MemoryMarshal.GetReference(x);
            ref float py = ref MemoryMarshal.GetReference(y);
            ref float pd = ref MemoryMarshal.GetReference(d);
            if (Simd.Level == SimdLevel.Vector512)
            {
                for (; i <= n - 16; i += 16)
                {
                    var v = Vector512.LoadUnsafe(ref px, (nuint)i);
                    var phi = NormalCdf(v);
                    (v * phi).StoreUnsafe(ref py, (nuint)i);
                    (phi + v * InvSqrt2Pi * VecMath.Exp(v * v * -0.5f, fullRange: false)).StoreUnsafe(ref pd, (nuint)i);   // -v^2/2 <= 0; a NaN v makes phi NaN
                }
            }
            else if (Simd.Level == SimdLevel.Vector256)
            {
                for (; i <= n - 8; i += 8)
                {
                    var v = Vector256.LoadUnsafe(ref px, (nuint)i);
                    var phi = NormalCdf(v);
                    (v * phi).StoreUnsafe(ref py, (nuint)i);
                    (phi + v * InvSqrt2Pi * VecMath.Exp(v * v * -0.5f, fullRange: false)).StoreUnsafe(ref pd, (nuint)i);   // -v^2/2 <= 0; a NaN v makes phi NaN
                }
            }
        }
        for (; i < n; i++)
        {
            float v = x[i];
            if (!tanhApprox)
            {
                float cdf = NormalCdf(v);
                y[i] = v * cdf;
                d[i] = cdf + v * InvSqrt2Pi * MathF.Exp(-0.5f * v * v);
            }
            else
            {
                float th = MathF.Tanh(Sqrt2OverPi * (v + 0.044715f * v * v * v));
                y[i] = 0.5f * v * (1f + th);
                d[i] = 0.5f * (1f + th) + 0.5f * v * (1f - th * th) * Sqrt2OverPi * (1f + 3f * 0.044715f * v * v);
            }
        }
    }
}

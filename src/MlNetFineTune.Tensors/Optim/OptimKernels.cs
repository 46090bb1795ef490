using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using MlNetFineTune.Tensors.Cpu;

namespace MlNetFineTune.Tensors.Optim;

/// <summary>
/// Fused single-pass update loops. Each element goes through exactly the float32 operations of PyTorch 1.13's
/// single-tensor CPU path, including its fused multiply-adds: <c>a.add_(b, alpha=s)</c> is <c>fma(s, b, a)</c> and
/// <c>a.addcmul_(b, c, value=s)</c> is <c>fma(s*b, c, a)</c> (GCC contracts these in the AVX2/AVX-512 kernels), while
/// <c>addcdiv_</c> is <c>a + (s*b)/c</c>. The vector paths use the same lane-wise operations as the scalar tail, so
/// results are bitwise identical for every <see cref="Simd.Level"/>.
/// </summary>
internal static class OptimKernels
{
    /// <summary>SGD without momentum: <c>d = g (+ wd·p); p = p - lr·d</c>.</summary>
    public static void Sgd(Span<float> param, ReadOnlySpan<float> grad, bool hasWd, float wd, float negLr)
    {
        ref float p = ref MemoryMarshal.GetReference(param);
        ref float g = ref MemoryMarshal.GetReference(grad);
        int n = param.Length, i = 0;
        if (Simd.Level == SimdLevel.Vector512)
        {
            var vwd = Vector512.Create(wd); var vlr = Vector512.Create(negLr);
            for (; i <= n - 16; i += 16)
            {
                var pv = Vector512.LoadUnsafe(ref p, (nuint)i);
                var d = Vector512.LoadUnsafe(ref g, (nuint)i);
                if (hasWd) d = Vector512.FusedMultiplyAdd(vwd, pv, d);
                Vector512.FusedMultiplyAdd(vlr, d, pv).StoreUnsafe(ref p, (nuint)i);
            }
        }
        else if (Simd.Level == SimdLevel.Vector256)
        {
            var vwd = Vector256.Create(wd); var vlr = Vector256.Create(negLr);
            for (; i <= n - 8; i += 8)
            {
                var pv = Vector256.LoadUnsafe(ref p, (nuint)i);
                var d = Vector256.LoadUnsafe(ref g, (nuint)i);
                if (hasWd) d = Vector256.FusedMultiplyAdd(vwd, pv, d);
                Vector256.FusedMultiplyAdd(vlr, d, pv).StoreUnsafe(ref p, (nuint)i);
            }
        }
        for (; i < n; i++)
        {
            float pv = Unsafe.Add(ref p, i);
            float d = Unsafe.Add(ref g, i);
            if (hasWd) d = MathF.FusedMultiplyAdd(wd, pv, d);
            Unsafe.Add(ref p, i) = MathF.FusedMultiplyAdd(negLr, d, pv);
        }
    }

    /// <summary>
    /// SGD with momentum: <c>d = g (+ wd·p)</c>; <c>buf = d</c> on the first step, else <c>buf = momentum·buf + (1-dampening)·d</c>;
    /// <c>d = d + momentum·buf</c> (Nesterov) or <c>d = buf</c>; <c>p = p - lr·d</c>.
    /// </summary>
    public static void SgdMomentum(Span<float> param, ReadOnlySpan<float> grad, Span<float> buffer, bool hasWd, float wd,
        float momentum, float oneMinusDampening, bool nesterov, bool first, float negLr)
    {
        ref float p = ref MemoryMarshal.GetReference(param);
        ref float g = ref MemoryMarshal.GetReference(grad);
        ref float b = ref MemoryMarshal.GetReference(buffer);
        int n = param.Length, i = 0;
        if (Simd.Level == SimdLevel.Vector512)
        {
            var vwd = Vector512.Create(wd); var vm = Vector512.Create(momentum);
            var vc = Vector512.Create(oneMinusDampening); var vlr = Vector512.Create(negLr);
            for (; i <= n - 16; i += 16)
            {
                var pv = Vector512.LoadUnsafe(ref p, (nuint)i);
                var d = Vector512.LoadUnsafe(ref g, (nuint)i);
                if (hasWd) d = Vector512.FusedMultiplyAdd(vwd, pv, d);
                var bv = first ? d : Vector512.FusedMultiplyAdd(vc, d, Vector512.LoadUnsafe(ref b, (nuint)i) * vm);
                bv.StoreUnsafe(ref b, (nuint)i);
                d = nesterov ? Vector512.FusedMultiplyAdd(vm, bv, d) : bv;
                Vector512.FusedMultiplyAdd(vlr, d, pv).StoreUnsafe(ref p, (nuint)i);
            }
        }
        else if (Simd.Level == SimdLevel.Vector256)
        {
            var vwd = Vector256.Create(wd); var vm = Vector256.Create(momentum);
            var vc = Vector256.Create(oneMinusDampening); var vlr = Vector256.Create(negLr);
            for (; i <= n - 8; i += 8)
            {
                var pv = Vector256.LoadUnsafe(ref p, (nuint)i);
                var d = Vector256.LoadUnsafe(ref g, (nuint)i);
                if (hasWd) d = Vector256.FusedMultiplyAdd(vwd, pv, d);
                var bv = first ? d : Vector256.FusedMultiplyAdd(vc, d, Vector256.LoadUnsafe(ref b, (nuint)i) * vm);
                bv.StoreUnsafe(ref b, (nuint)i);
                d = nesterov ? Vector256.FusedMultiplyAdd(vm, bv, d) : bv;
                Vector256.FusedMultiplyAdd(vlr, d, pv).StoreUnsafe(ref p, (nuint)i);
            }
        }
        for (; i < n; i++)
        {
            float pv = Unsafe.Add(ref p, i);
            float d = Unsafe.Add(ref g, i);
            if (hasWd) d = MathF.FusedMultiplyAdd(wd, pv, d);
            float bv = first ? d : MathF.FusedMultiplyAdd(oneMinusDampening, d, Unsafe.Add(ref b, i) * momentum);
            Unsafe.Add(ref b, i) = bv;
            d = nesterov ? MathF.FusedMultiplyAdd(momentum, bv, d) : bv;
            Unsafe.Add(ref p, i) = MathF.FusedMultiplyAdd(negLr, d, pv);
        }
    }

    /// <summary>
    /// AdamW: <c>p *= decay</c>; <c>m = b1·m + c1·g</c>; <c>v = b2·v + (c2·g)·g</c>;
    /// <c>p += (negStep·m) / (sqrt(v)/bc2Sqrt + eps)</c>.
    /// </summary>
    public static void AdamW(Span<float> param, ReadOnlySpan<float> grad, Span<float> expAvg, Span<float> expAvgSq,
        float decay, float beta1, float oneMinusBeta1, float beta2, float oneMinusBeta2, float bc2Sqrt, float eps, float negStepSize)
    {
        ref float p = ref MemoryMarshal.GetReference(param);
        ref float g = ref MemoryMarshal.GetReference(grad);
        ref float m = ref MemoryMarshal.GetReference(expAvg);
        ref float v = ref MemoryMarshal.GetReference(expAvgSq);
        int n = param.Length, i = 0;
        if (Simd.Level == SimdLevel.Vector512)
        {
            var vdecay = Vector512.Create(decay); var vb1 = Vector512.Create(beta1); var vc1 = Vector512.Create(oneMinusBeta1);
            var vb2 = Vector512.Create(beta2); var vc2 = Vector512.Create(oneMinusBeta2); var vbc = Vector512.Create(bc2Sqrt);
            var veps = Vector512.Create(eps); var vstep = Vector512.Create(negStepSize);
            for (; i <= n - 16; i += 16)
            {
                var gv = Vector512.LoadUnsafe(ref g, (nuint)i);
                var pv = Vector512.LoadUnsafe(ref p, (nuint)i) * vdecay;
                var mv = Vector512.FusedMultiplyAdd(vc1, gv, Vector512.LoadUnsafe(ref m, (nuint)i) * vb1);
                var sv = Vector512.FusedMultiplyAdd(vc2 * gv, gv, Vector512.LoadUnsafe(ref v, (nuint)i) * vb2);
                mv.StoreUnsafe(ref m, (nuint)i);
                sv.StoreUnsafe(ref v, (nuint)i);
                var denom = Vector512.Sqrt(sv) / vbc + veps;
                (pv + vstep * mv / denom).StoreUnsafe(ref p, (nuint)i);
            }
        }
        else if (Simd.Level == SimdLevel.Vector256)
        {
            var vdecay = Vector256.Create(decay); var vb1 = Vector256.Create(beta1); var vc1 = Vector256.Create(oneMinusBeta1);
            var vb2 = Vector256.Create(beta2); var vc2 = Vector256.Create(oneMinusBeta2); var vbc = Vector256.Create(bc2Sqrt);
            var veps = Vector256.Create(eps); var vstep = Vector256.Create(negStepSize);
            for (; i <= n - 8; i += 8)
            {
                var gv = Vector256.LoadUnsafe(ref g, (nuint)i);
                var pv = Vector256.LoadUnsafe(ref p, (nuint)i) * vdecay;
                var mv = Vector256.FusedMultiplyAdd(vc1, gv, Vector256.LoadUnsafe(ref m, (nuint)i) * vb1);
                var sv = Vector256.FusedMultiplyAdd(vc2 * gv, gv, Vector256.LoadUnsafe(ref v, (nuint)i) * vb2);
                mv.StoreUnsafe(ref m, (nuint)i);
                sv.StoreUnsafe(ref v, (nuint)i);
                var denom = Vector256.Sqrt(sv) / vbc + veps;
                (pv + vstep * mv / denom).StoreUnsafe(ref p, (nuint)i);
            }
        }
        for (; i < n; i++)
        {
            float gv = Unsafe.Add(ref g, i);
            float pv = Unsafe.Add(ref p, i) * decay;
            float mv = MathF.FusedMultiplyAdd(oneMinusBeta1, gv, Unsafe.Add(ref m, i) * beta1);
            float sv = MathF.FusedMultiplyAdd(oneMinusBeta2 * gv, gv, Unsafe.Add(ref v, i) * beta2);
            Unsafe.Add(ref m, i) = mv;
            Unsafe.Add(ref v, i) = sv;
            float denom = MathF.Sqrt(sv) / bc2Sqrt + eps;
            Unsafe.Add(ref p, i) = pv + negStepSize * mv / denom;
        }
    }
}

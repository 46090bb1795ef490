using System.Numerics.Tensors;

namespace MlNetFineTune.Tensors.Optim;

/// <summary>Gradient clipping (<c>torch.nn.utils.clip_grad_norm_</c> / <c>clip_grad_value_</c>), in place on <see cref="Tensor.Grad"/>.</summary>
public static class GradClip
{
    /// <summary>
    /// Scales the gradients of <paramref name="parameters"/> so that their total norm is at most
    /// <paramref name="maxNorm"/>, like <c>torch.nn.utils.clip_grad_norm_</c>: the total norm is the
    /// <paramref name="normType"/>-norm of the per-tensor norms (float32), and every gradient is multiplied by
    /// <c>maxNorm / (total + 1e-6)</c> when that is below 1. Parameters without a gradient are ignored.
    /// </summary>
    /// <param name="parameters">The parameters whose gradients are clipped.</param>
    /// <param name="maxNorm">The largest allowed total norm (≥ 0).</param>
    /// <param name="normType">The p of the p-norm (&gt; 0), or <see cref="float.PositiveInfinity"/> for the max norm.</param>
    /// <param name="errorIfNonFinite">Throw instead of clipping when the total norm is NaN or infinite.</param>
    /// <returns>The total norm of the gradients before clipping (0 when no parameter has a gradient).</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="maxNorm"/> or <paramref name="normType"/> is invalid.</exception>
    /// <exception cref="InvalidOperationException">A gradient is not Float32, or the norm is not finite and <paramref name="errorIfNonFinite"/> is set.</exception>
    public static float ClipGradNorm(IEnumerable<Tensor> parameters, float maxNorm, float normType = 2f, bool errorIfNonFinite = false)
    {
        if (!(maxNorm >= 0)) throw new ArgumentOutOfRangeException(nameof(maxNorm), maxNorm, $"maxNorm must be >= 0; got {maxNorm}.");
        var grads = Grads(parameters);
        float total = TotalNorm(grads, normType);
        if (errorIfNonFinite && !float.IsFinite(total))
            throw new InvalidOperationException(
                $"The total norm of order {normType} of the gradients is {total}, so they cannot be clipped. Pass errorIfNonFinite: false to clip anyway.");
        // torch: clip_coef = max_norm / (total_norm + 1e-6), which Tensor.__rtruediv__ evaluates as reciprocal(...) * max_norm.
        float coef = 1f / (total + 1e-6f) * maxNorm;
        if (!(coef >= 1f)) // also NaN, which (as in torch) poisons the gradients
            foreach (var (p, g) in grads) Scale(p, g, coef);
        return total;
    }

    /// <summary>The total <paramref name="normType"/>-norm of the gradients, computed as <see cref="ClipGradNorm"/> does, without clipping.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="normType"/> is not &gt; 0.</exception>
    public static float GradNorm(IEnumerable<Tensor> parameters, float normType = 2f) => TotalNorm(Grads(parameters), normType);

    /// <summary>Clamps every gradient element of <paramref name="parameters"/> to [-clipValue, clipValue] (<c>clip_grad_value_</c>).</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="clipValue"/> is negative or NaN.</exception>
    public static void ClipGradValue(IEnumerable<Tensor> parameters, float clipValue)
    {
        if (!(clipValue >= 0)) throw new ArgumentOutOfRangeException(nameof(clipValue), clipValue, $"clipValue must be >= 0; got {clipValue}.");
        foreach (var (p, g) in Grads(parameters))
        {
            var s = Writable(p, g);
            TensorPrimitives.Clamp(s, -clipValue, clipValue, s);
        }
    }

    private static List<(Tensor Param, Tensor Grad)> Grads(IEnumerable<Tensor> parameters)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        var grads = new List<(Tensor, Tensor)>();
        foreach (var p in parameters)
        {
            if (p is null) throw new ArgumentException("A parameter is null.", nameof(parameters));
            var g = p.Grad;
            if (g is null) continue;
            if (g.DType != DType.Float32)
                throw new InvalidOperationException($"Gradient of parameter{p.Describe()} is {g.DType}; expected Float32.");
            grads.Add((p, g));
        }
        return grads;
    }

    private static float TotalNorm(List<(Tensor Param, Tensor Grad)> grads, float normType)
    {
        if (!(normType > 0))
            throw new ArgumentOutOfRangeException(nameof(normType), normType, $"normType must be > 0 (or +infinity); got {normType}.");
        if (grads.Count == 0) return 0f;
        var norms = new float[grads.Count];
        for (int i = 0; i < norms.Length; i++)
        {
            var g = grads[i].Grad;
            norms[i] = Norm(g.IsContiguous ? g.AsSpan() : g.Dense<float>(), normType);
        }
        return Norm(norms, normType);
    }

    private static float Norm(ReadOnlySpan<float> x, float p)
    {
        if (x.Length == 0) return 0f;
        if (p == 2f) return MathF.Sqrt(TensorPrimitives.SumOfSquares(x));
        if (p == 1f) return TensorPrimitives.SumOfMagnitudes(x);
        if (float.IsPositiveInfinity(p)) return MathF.Abs(TensorPrimitives.MaxMagnitude(x));
        float acc = 0f;
        foreach (float v in x) acc += MathF.Pow(MathF.Abs(v), p);
        return MathF.Pow(acc, 1f / p);
    }

    private static void Scale(Tensor param, Tensor grad, float c)
    {
        var s = Writable(param, grad);
        TensorPrimitives.Multiply(s, c, s);
    }

    /// <summary>
    /// The gradient's elements for writing in place. A non-contiguous gradient (a strided or broadcast view) is first
    /// replaced on the parameter by a contiguous copy, since its elements may overlap.
    /// </summary>
    private static Span<float> Writable(Tensor param, Tensor grad)
    {
        if (grad.IsContiguous) return grad.AsSpan();
        var copy = Tensor.Wrap(grad.ToArray(), grad.ShapeArr);
        param.Grad = copy;
        return copy.AsSpan();
    }
}

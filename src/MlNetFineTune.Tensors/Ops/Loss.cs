using MlNetFineTune.Tensors.Cpu;

namespace MlNetFineTune.Tensors;

/// <summary>How a loss combines per-example values.</summary>
public enum Reduction
{
    /// <summary>Weighted mean (PyTorch's default).</summary>
    Mean,
    /// <summary>Sum.</summary>
    Sum,
    /// <summary>One value per example.</summary>
    None,
}

public static partial class Ops
{
    /// <summary>
    /// Cross-entropy of logits [N, C] against integer targets [N], with PyTorch 1.13's semantics for class
    /// weights, label smoothing and ignore-index (ignored rows add nothing and do not count in the mean).
    /// </summary>
    public static Tensor CrossEntropy(Tensor logits, Tensor target, Tensor? weight = null, float labelSmoothing = 0f,
        int ignoreIndex = -100, Reduction reduction = Reduction.Mean)
    {
        RequireFloat(logits, "cross_entropy", "logits");
        if (logits.Rank != 2)
            throw new ArgumentException($"cross_entropy: logits {ShapeUtil.Format(logits.ShapeArr)} must be [N, C] (reshape [N, T, C] to [N*T, C]).");
        int n = logits.ShapeArr[0], c = logits.ShapeArr[1];
        if (target.Rank != 1 || target.ShapeArr[0] != n)
            throw new ArgumentException($"cross_entropy: target {ShapeUtil.Format(target.ShapeArr)} must be [{n}] for logits {ShapeUtil.Format(logits.ShapeArr)}.");
        if (labelSmoothing < 0 || labelSmoothing > 1) throw new ArgumentOutOfRangeException(nameof(labelSmoothing), $"cross_entropy: label smoothing {labelSmoothing} must be in [0, 1].");
        if (weight is not null && weight.Numel != c) throw new ArgumentException($"cross_entropy: weight {ShapeUtil.Format(weight.ShapeArr)} must have {c} elements.");
        if (weight is not null && Tensor.AnyRequiresGrad(weight))
            throw new ArgumentException("cross_entropy: class weights are constants here; pass weight.Detach().");
        var y = IndexData(target, "cross_entropy");
        var x = logits.Dense<float>();
        var w = weight?.Dense<float>();
        var logp = new float[x.Length];
        for (int i = 0; i < n; i++) VecKernels.LogSoftmax(x.AsSpan(i * c, c), logp.AsSpan(i * c, c));

        float eps = labelSmoothing;
        var nll = new double[n];
        var smooth = new double[n];
        double weightSum = 0;
        for (int i = 0; i < n; i++)
        {
            if (y[i] == ignoreIndex) continue;
            if (y[i] < 0 || y[i] >= c)
                throw new ArgumentOutOfRangeException(nameof(target), $"cross_entropy: target {y[i]} at row {i} is outside [0, {c}) (ignore index is {ignoreIndex}).");
            int t = (int)y[i];
            double wt = w?[t] ?? 1.0;
            nll[i] = -wt * logp[i * c + t];
            double s = 0;
            for (int k = 0; k < c; k++) s -= (w?[k] ?? 1.0) * logp[i * c + k];
            smooth[i] = s;
            weightSum += wt;
        }
        // PyTorch: the mean divides both terms by the summed weights of the non-ignored targets (their count
        // without class weights).
        double nllDen = reduction == Reduction.Mean ? weightSum : 1.0;
        double smoothDen = nllDen;
        float[] outData;
        int[] outShape;
        if (reduction == Reduction.None)
        {
            outData = new float[n];
            for (int i = 0; i < n; i++) outData[i] = (float)((1 - eps) * nll[i] + eps / c * smooth[i]);
            outShape = [n];
        }
        else
        {
            double total = 0, ts = 0;
            for (int i = 0; i < n; i++) { total += nll[i]; ts += smooth[i]; }
            outData = [(float)((1 - eps) * total / nllDen + eps / c * ts / smoothDen)];
            outShape = [];
        }
        return Tensor.Record(new Tensor(outData, outShape), "cross_entropy", [logits], g =>
        {
            var gd = g.Dense<float>();
            var gx = new float[x.Length];
            for (int i = 0; i < n; i++)
            {
                if (y[i] == ignoreIndex) continue;
                int t = (int)y[i];
                double gi = reduction == Reduction.None ? gd[i] : gd[0];
                double a = gi * (1 - eps) / nllDen;          // scale of the nll term
                double b = gi * eps / c / smoothDen;          // scale of the smoothing term
                double wt = w?[t] ?? 1.0;
                double sumW = 0;
                if (w is null) sumW = c; else for (int k = 0; k < c; k++) sumW += w[k];
                // d/dx_k of -wt*logp_t = wt*(p_k - [k==t]); of -sum_j w_j logp_j = sumW*p_k - w_k
                for (int k = 0; k < c; k++)
                {
                    double p = Math.Exp(logp[i * c + k]);
                    double d = a * wt * (p - (k == t ? 1 : 0)) + b * (sumW * p - (w?[k] ?? 1.0));
                    gx[i * c + k] = (float)d;
                }
            }
            return [new Tensor(gx, [n, c])];
        });
    }

    /// <summary>
    /// Binary cross-entropy on logits (numerically stable), with optional positive-class weight
    /// (broadcast over the last dim) as in PyTorch.
    /// </summary>
    public static Tensor BinaryCrossEntropyWithLogits(Tensor logits, Tensor target, Tensor? posWeight = null, Reduction reduction = Reduction.Mean)
    {
        RequireFloat(logits, "binary_cross_entropy_with_logits", "logits");
        RequireFloat(target, "binary_cross_entropy_with_logits", "target");
        if (!ShapeUtil.SameShape(logits.ShapeArr, target.ShapeArr))
            throw new ArgumentException($"binary_cross_entropy_with_logits: logits {ShapeUtil.Format(logits.ShapeArr)} and target {ShapeUtil.Format(target.ShapeArr)} differ.");
        if (posWeight is not null && Tensor.AnyRequiresGrad(posWeight))
            throw new ArgumentException("binary_cross_entropy_with_logits: pos_weight is a constant here; pass posWeight.Detach().");
        var shape = logits.ShapeArr;
        var x = logits.Dense<float>();
        var t = target.Dense<float>();
        var pw = posWeight is null ? null : Expand(posWeight.Detach(), shape).Dense<float>();
        int n = x.Length;
        var loss = new double[n];
        for (int i = 0; i < n; i++)
        {
            double xi = x[i], ti = t[i];
            double lw = pw is null ? 1.0 : 1.0 + (pw[i] - 1.0) * ti;
            double softplusNeg = Math.Max(-xi, 0) + Math.Log(Math.Exp(-Math.Max(-xi, 0)) + Math.Exp(-xi - Math.Max(-xi, 0)));
            loss[i] = (1 - ti) * xi + lw * softplusNeg;
        }
        Tensor result;
        if (reduction == Reduction.None) result = new Tensor(Array.ConvertAll(loss, v => (float)v), (int[])shape.Clone());
        else
        {
            double s = loss.Sum();
            result = Tensor.Scalar((float)(reduction == Reduction.Mean ? s / n : s));
        }
        return Tensor.Record(result, "binary_cross_entropy_with_logits", [logits, target], g =>
        {
            var gd = g.Dense<float>();
            var gx = new float[n];
            var gt = new float[n];
            for (int i = 0; i < n; i++)
            {
                double gi = reduction == Reduction.None ? gd[i] : reduction == Reduction.Mean ? gd[0] / (double)n : gd[0];
                double xi = x[i], ti = t[i];
                double lw = pw is null ? 1.0 : 1.0 + (pw[i] - 1.0) * ti;
                double sigNeg = 1.0 / (1.0 + Math.Exp(xi));
                gx[i] = (float)(gi * ((1 - ti) - lw * sigNeg));
                double softplusNeg = Math.Max(-xi, 0) + Math.Log(Math.Exp(-Math.Max(-xi, 0)) + Math.Exp(-xi - Math.Max(-xi, 0)));
                gt[i] = (float)(gi * (-xi + (pw is null ? 0 : (pw[i] - 1.0)) * softplusNeg));
            }
            return [new Tensor(gx, shape), target.RequiresGrad ? new Tensor(gt, shape) : null];
        });
    }
}

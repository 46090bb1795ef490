using MlNetFineTune.Tensors;
using MlNetFineTune.Tensors.Cpu;

namespace MlNetFineTune.Models.Nn;

/// <summary>
/// Inference-only fusion of linear layers that read the same input (a transformer's query, key and value projections):
/// one product y = x [W1; W2; ...]^T + [b1; b2; ...] instead of one per layer, so the input is packed once and the
/// threads split one wider product. It applies only without gradients and only where every part's own product and the
/// fused one take the GEMM's packed path in one k segment; there each output column is computed exactly as in its own
/// layer's product (every element is reduced over k in order by the same kernel arithmetic, whatever its column), so
/// the outputs are bitwise those of the separate layers. The concatenated weight (as much memory again as the parts'
/// weights) is built on first use and rebuilt when any part's weight or bias storage is written through
/// <see cref="Tensor.AsSpan"/>, as the optimizers, weight loading and initialisers write.
/// </summary>
internal sealed class FusedLinear(params Linear[] parts)
{
    /// <summary>Turns the fusion off (for measurements and tests). A field without an initialiser.</summary>
    internal static bool Disabled;

    private static int s_builds;

    /// <summary>Concatenated weights built since the process started (tests: a write must trigger a rebuild).</summary>
    internal static int Builds => Volatile.Read(ref s_builds);

    private readonly Linear[] _parts = parts;
    private Snapshot? _current;

    private sealed class Snapshot(Tensor weight, Tensor? bias, StorageVersions.Box[] boxes, int[] stamps)
    {
        public readonly Tensor Weight = weight;
        public readonly Tensor? Bias = bias;

        public bool IsCurrent()
        {
            for (int i = 0; i < boxes.Length; i++)
                if (boxes[i].Value != stamps[i]) return false;
            return true;
        }
    }

    /// <summary>
    /// x [..., in] through all parts at once: [..., sum of the parts' outputs], the parts' outputs side by side; null
    /// where the fusion does not apply (gradients on, disabled, parts that differ in input size or bias, or products
    /// that would not all take the packed path), and the caller runs the parts one by one.
    /// </summary>
    public Tensor? Forward(Tensor x)
    {
        if (Disabled || Tensor.IsGradEnabled || x.Rank < 1) return null;
        int k = _parts[0].InFeatures, rows = x.Numel / Math.Max(1, x.Shape[^1]);
        bool withBias = _parts[0].Bias is not null;
        int total = 0;
        foreach (var p in _parts)
        {
            if (p.InFeatures != k || (p.Bias is not null) != withBias || !SingleSegmentPacked(rows, p.OutFeatures, k)) return null;
            total += p.OutFeatures;
        }
        if (x.Shape[^1] != k || !SingleSegmentPacked(rows, total, k)) return null;
        var snap = _current;
        if (snap is null || !snap.IsCurrent()) _current = snap = Build(total, k, withBias);
        return Ops.Linear(x, snap.Weight, snap.Bias);
    }

    private static bool SingleSegmentPacked(int m, int n, int k) => Gemm.TakesPackedPath(m, n, k) && Gemm.KSegments(m, n, k) == 1;

    private Snapshot Build(int total, int k, bool withBias)
    {
        var tensors = _parts.SelectMany(p => p.Bias is null ? new[] { p.Weight } : new[] { p.Weight, p.Bias }).ToArray();
        // Stamps read before the copies: a write during the copy makes the snapshot stale at once.
        var boxes = tensors.Select(t => StorageVersions.Track(t.Storage)).ToArray();
        var stamps = boxes.Select(b => b.Value).ToArray();
        var w = new float[total * k];
        var b = withBias ? new float[total] : null;
        int row = 0;
        foreach (var p in _parts)
        {
            Read(p.Weight).CopyTo(w.AsSpan(row * k, p.OutFeatures * k));
            if (b is not null) Read(p.Bias!).CopyTo(b.AsSpan(row, p.OutFeatures));
            row += p.OutFeatures;
        }
        // A leaf that requires gradients, as a parameter: the no-grad product then keeps its pack (WeightPackCache).
        var weight = Tensor.FromArray(w, total, k);
        weight.RequiresGrad = true;
        Interlocked.Increment(ref s_builds);
        return new Snapshot(weight, b is null ? null : Tensor.FromArray(b, total), boxes, stamps);
    }

    // The values of a parameter without marking its storage written (AsSpan would).
    private static ReadOnlySpan<float> Read(Tensor t) =>
        t.IsContiguous ? t.F.AsSpan(t.Offset, t.Numel) : t.ToArray();
}

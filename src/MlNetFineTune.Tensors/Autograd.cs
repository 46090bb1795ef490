using MlNetFineTune.Tensors.Cpu;

namespace MlNetFineTune.Tensors;

/// <summary>
/// The record of the op that produced a tensor: its inputs and how to map an output gradient to theirs. A backward
/// pass without retainGraph frees it once used (as PyTorch does), which lets the activations it saved be collected
/// while the rest of the pass still runs.
/// </summary>
internal sealed class GradNode(string name, Tensor[] inputs, Func<Tensor, Tensor?[]> backward)
{
    public string Name { get; } = name;
    public Tensor[] Inputs { get; private set; } = inputs;
    public Func<Tensor, Tensor?[]>? Backward { get; private set; } = backward;

    /// <summary>True once a backward pass has used and freed this node.</summary>
    public bool Freed => Backward is null;

    public void Free()
    {
        Backward = null;
        Inputs = [];
    }
}

public sealed partial class Tensor
{
    [ThreadStatic] private static int _noGradDepth;

    private bool _requiresGrad;

    internal GradNode? GradFn;

    /// <summary>True while a <see cref="NoGrad"/> scope is open on this thread.</summary>
    public static bool IsGradEnabled => _noGradDepth == 0;

    /// <summary>Whether gradients flow to this tensor. Settable on leaves (parameters, inputs).</summary>
    public bool RequiresGrad
    {
        get => _requiresGrad;
        set
        {
            if (!value && GradFn != null)
                throw new InvalidOperationException($"Tensor{Describe()} is the result of '{GradFn.Name}'; call Detach() instead of clearing RequiresGrad.");
            if (value && DType != DType.Float32)
                throw new InvalidOperationException($"Tensor{Describe()} is {DType}; only Float32 tensors can require gradients.");
            _requiresGrad = value;
        }
    }

    /// <summary>The accumulated gradient of a leaf after <see cref="Backward(bool)"/>.</summary>
    public Tensor? Grad { get; set; }

    /// <summary>True for tensors not produced by a recorded op.</summary>
    public bool IsLeaf => GradFn is null;

    /// <summary>The name of the op that produced this tensor, if recorded.</summary>
    public string? GradFnName => GradFn?.Name;

    /// <summary>Sets <see cref="RequiresGrad"/> and returns this tensor.</summary>
    public Tensor RequireGrad(bool value = true)
    {
        RequiresGrad = value;
        return this;
    }

    /// <summary>Opens a scope in which ops record no graph (inference, optimizer updates).</summary>
    public static IDisposable NoGrad() => new NoGradScope();

    private sealed class NoGradScope : IDisposable
    {
        private bool _disposed;
        public NoGradScope() => _noGradDepth++;
        public void Dispose()
        {
            if (_disposed) return;
            _disposed = true;
            _noGradDepth--;
        }
    }

    /// <summary>A view of the same data that is cut from the graph.</summary>
    public Tensor Detach() => new(Storage, DType, ShapeArr, StridesArr, Offset) { Name = Name };

    /// <summary>Clears the accumulated gradient.</summary>
    public void ZeroGrad() => Grad = null;

    /// <summary>Attaches <paramref name="backward"/> to <paramref name="result"/> when any input needs a gradient.</summary>
    internal static Tensor Record(Tensor result, string op, Tensor[] inputs, Func<Tensor, Tensor?[]> backward)
    {
        if (!IsGradEnabled) return result;
        bool any = false;
        foreach (var t in inputs) any |= t._requiresGrad;
        if (!any) return result;
        result._requiresGrad = true;
        result.GradFn = new GradNode(op, inputs, backward);
        return result;
    }

    internal static bool AnyRequiresGrad(params Tensor?[] inputs)
    {
        if (!IsGradEnabled) return false;
        foreach (var t in inputs) if (t is not null && t._requiresGrad) return true;
        return false;
    }

    /// <summary>
    /// Diagnostics: while set (per thread), every backward pass adds each op's gradient time (ms), call count and
    /// managed allocation (MB, approximate) under the op's name. Null (the default) records nothing.
    /// </summary>
    [ThreadStatic] public static Dictionary<string, (double Ms, int Count, double Mb)>? BackwardProfile;

    /// <summary>
    /// Back-propagates from a one-element tensor (its gradient is 1). The graph is freed as the pass goes, so each
    /// op's saved activations can be collected as soon as its gradient is computed; pass
    /// <paramref name="retainGraph"/> = true to back-propagate through the same graph again.
    /// </summary>
    public void Backward(bool retainGraph = false)
    {
        if (Numel != 1)
            throw new InvalidOperationException($"Backward() without a gradient needs a one-element tensor; tensor{Describe()} has {Numel}. Pass an output gradient.");
        Backward(Full(1f, ShapeArr), retainGraph);
    }

    /// <summary>
    /// Back-propagates <paramref name="gradient"/> (same shape as this tensor) through the recorded graph, freeing it
    /// unless <paramref name="retainGraph"/> is true.
    /// </summary>
    public void Backward(Tensor gradient, bool retainGraph = false)
    {
        ArgumentNullException.ThrowIfNull(gradient);
        if (!_requiresGrad)
            throw new InvalidOperationException($"Tensor{Describe()} does not require grad and has no recorded graph.");
        if (!ShapeUtil.SameShape(gradient.ShapeArr, ShapeArr))
            throw new ArgumentException($"Backward: gradient shape {ShapeUtil.Format(gradient.ShapeArr)} differs from tensor shape {ShapeUtil.Format(ShapeArr)}.");

        var order = TopologicalOrder(this);
        var grads = new Dictionary<Tensor, Tensor>(ReferenceEqualityComparer.Instance) { [this] = gradient };
        using var _ = NoGrad();
        // Gradient buffers rented during the pass are recorded; once no pending gradient refers to one, it is
        // recycled for later rentals (see TensorBuffers). Nothing outside this pass can see those buffers:
        // leaves get their own (adopted or copied) buffer.
        using var recording = TensorBuffers.Record();
        var dead = new List<Tensor>();
        for (int i = order.Count - 1; i >= 0; i--)
        {
            var t = order[i];
            order[i] = null!; // the list must not keep activations alive once their gradient has passed
            if (!grads.Remove(t, out var g)) continue;
            if (t.GradFn is null)
            {
                if (t._requiresGrad) AccumulateLeaf(t, g, grads);
                Recycle(g, grads);
                continue;
            }
            var prof = BackwardProfile;
            long t0 = prof is null ? 0 : System.Diagnostics.Stopwatch.GetTimestamp();
            long a0 = prof is null ? 0 : GC.GetAllocatedBytesForCurrentThread();
            var node = t.GradFn;
            var inputGrads = node.Backward!(g);
            if (prof is not null)
            {
                var el = System.Diagnostics.Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
                double mb = (GC.GetAllocatedBytesForCurrentThread() - a0) / 1048576.0;
                prof[node.Name] = prof.TryGetValue(node.Name, out var pv) ? (pv.Ms + el, pv.Count + 1, pv.Mb + mb) : (el, 1, mb);
            }
            var inputs = node.Inputs;
            if (!retainGraph) node.Free();
            dead.Clear();
            dead.Add(g);
            for (int k = 0; k < inputs.Length; k++)
            {
                var gi = k < inputGrads.Length ? inputGrads[k] : null;
                if (gi is null) continue;
                var x = inputs[k];
                if (!x._requiresGrad) { dead.Add(gi); continue; }
                if (!ShapeUtil.SameShape(gi.ShapeArr, x.ShapeArr))
                    throw new InvalidOperationException($"Internal error: '{node.Name}' produced gradient {ShapeUtil.Format(gi.ShapeArr)} for input {ShapeUtil.Format(x.ShapeArr)}.");
                if (!grads.TryGetValue(x, out var prev)) { grads[x] = gi; continue; }
                if (OwnedDense(prev, grads, inputGrads, x))
                {
                    // prev is a recorded buffer nothing else refers to: accumulate in place.
                    System.Numerics.Tensors.TensorPrimitives.Add(prev.AsSpan(), gi.Dense<float>(), prev.AsSpan());
                    dead.Add(gi);
                }
                else
                {
                    grads[x] = Ops.Add(prev, gi);
                    dead.Add(prev);
                    dead.Add(gi);
                }
            }
            foreach (var d in dead) Recycle(d, grads);
            g = null!;
        }
    }

    /// <summary>True when a pending gradient (other than <paramref name="except"/>'s) refers to <paramref name="buffer"/>.</summary>
    private static bool Pending(float[] buffer, Dictionary<Tensor, Tensor> grads, Tensor? except = null)
    {
        foreach (var (k, v) in grads)
            if (!ReferenceEquals(k, except) && ReferenceEquals(v.Storage, buffer)) return true;
        return false;
    }

    /// <summary>Hands the buffer of a gradient that is no longer needed back for reuse, unless a pending gradient still refers to it.</summary>
    private static void Recycle(Tensor t, Dictionary<Tensor, Tensor> grads)
    {
        if (t.Storage is float[] buffer && TensorBuffers.IsRecorded(buffer) && !Pending(buffer, grads))
            TensorBuffers.ReleaseIfRecorded(buffer);
    }

    /// <summary>
    /// True when <paramref name="t"/> (the pending gradient of <paramref name="owner"/>) is a dense, recorded
    /// buffer that no other pending gradient and none of <paramref name="fresh"/> refers to, so it may be updated in place.
    /// </summary>
    private static bool OwnedDense(Tensor t, Dictionary<Tensor, Tensor> grads, Tensor?[] fresh, Tensor owner)
    {
        if (t.Storage is not float[] buffer || !TensorBuffers.IsRecorded(buffer)) return false;
        if (t.Offset != 0 || buffer.Length != t.Numel || !t.IsContiguous) return false;
        foreach (var f in fresh)
            if (f is not null && ReferenceEquals(f.Storage, buffer)) return false;
        return !Pending(buffer, grads, except: owner);
    }

    private static void AccumulateLeaf(Tensor leaf, Tensor g, Dictionary<Tensor, Tensor> grads)
    {
        if (leaf.Grad is null)
        {
            // Own the buffer: the incoming gradient may alias an intermediate or another leaf's grad, unless it is
            // a buffer rented in this pass that nothing else refers to, which the leaf can simply keep.
            if (g.Storage is float[] buffer && TensorBuffers.IsRecorded(buffer) && g.Offset == 0 && buffer.Length == g.Numel
                && g.IsContiguous && !Pending(buffer, grads))
            {
                TensorBuffers.Forget(buffer);
                leaf.Grad = Wrap(buffer, leaf.ShapeArr);
                return;
            }
            leaf.Grad = Wrap(g.ToArray(), leaf.ShapeArr);
            return;
        }
        var dst = leaf.Grad.AsSpan();
        var src = g.Dense<float>();
        System.Numerics.Tensors.TensorPrimitives.Add(dst, src, dst);
    }

    private static List<Tensor> TopologicalOrder(Tensor root)
    {
        var order = new List<Tensor>();
        var visited = new HashSet<Tensor>(ReferenceEqualityComparer.Instance);
        var stack = new Stack<(Tensor T, bool Expanded)>();
        stack.Push((root, false));
        while (stack.Count > 0)
        {
            var (t, expanded) = stack.Pop();
            if (expanded) { order.Add(t); continue; }
            if (!visited.Add(t)) continue;
            stack.Push((t, true));
            if (t.GradFn is null) continue;
            if (t.GradFn.Freed)
                throw new InvalidOperationException(
                    $"Backward: the graph through '{t.GradFn.Name}' (tensor{t.Describe()}) was freed by an earlier backward pass. " +
                    "Pass retainGraph: true to the first Backward to back-propagate through it twice.");
            foreach (var x in t.GradFn.Inputs)
                if (x._requiresGrad && !visited.Contains(x)) stack.Push((x, false));
        }
        return order;
    }
}

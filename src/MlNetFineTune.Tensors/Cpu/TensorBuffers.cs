namespace MlNetFineTune.Tensors.Cpu;

/// <summary>
/// Recycles the large float buffers of gradients that a backward pass creates and consumes. Ops take their
/// output buffers from <see cref="Rent"/>; while a backward pass runs, every buffer rented on its thread is
/// recorded, and the pass hands a recorded buffer back (<see cref="ReleaseIfRecorded"/>) once no gradient it
/// still holds refers to it. Buffers that were not rented during the pass (activations, parameters, the
/// caller's gradient) are never recorded, so they are never recycled. The next forward pass rents the
/// recycled buffers for its activations, which spares the GC about half the managed allocation of a training
/// step and the page faults of fresh memory.
/// </summary>
internal static class TensorBuffers
{
    /// <summary>
    /// Smaller buffers are left to the GC's gen0, which is cheap for them. 4,096 floats (16 KB), so the activations
    /// of a short sentence (32 tokens x 256 = 8,192 floats) are recycled too: with 32,768 the GC zeroed them fresh
    /// on every call, and the 32-token BERT-mini forward took 2.21 / 2.06 / 2.14 ms median against 2.15 / 1.99 /
    /// 2.06 ms (three interleaved runs, 2 threads); 32 x 128 batches and training steps unchanged (all large).
    /// </summary>
    public const int MinPooledLength = 1 << 12;

    /// <summary>
    /// Most bytes held for reuse; beyond it returned buffers are left to the GC. MobileNetV2 forward at 32 x 224^2:
    /// 256 MB held too few of its 50-150 MB activations, so each call faulted fresh pages in (1,005 ms); 1 GB holds
    /// them (706 ms). The 20-step BERT-mini training peak stayed at 1,022 MB either way.
    /// </summary>
    public static long MaxPooledBytes
    {
        get => Volatile.Read(ref _maxPooledBytes);
        set
        {
            ArgumentOutOfRangeException.ThrowIfNegative(value);
            Volatile.Write(ref _maxPooledBytes, value);
            if (value < PooledBytes) Trim();
        }
    }

    private static long _maxPooledBytes = 1024L << 20;

    private static readonly Dictionary<int, Stack<float[]>> Free = [];
    private static readonly Lock Gate = new();
    private static long _pooledBytes;

    [ThreadStatic] private static HashSet<float[]>? _recorded;

    /// <summary>Bytes currently held for reuse (diagnostics and tests).</summary>
    public static long PooledBytes { get { lock (Gate) return _pooledBytes; } }

    /// <summary>A float buffer of exactly <paramref name="length"/> elements with undefined contents.</summary>
    public static float[] Rent(int length)
    {
        float[]? a = null;
        if (length >= MinPooledLength)
        {
            lock (Gate)
            {
                if (Free.TryGetValue(length, out var stack) && stack.Count > 0)
                {
                    a = stack.Pop();
                    _pooledBytes -= (long)length * sizeof(float);
                }
            }
        }
        a ??= GC.AllocateUninitializedArray<float>(length);
        if (length >= MinPooledLength) _recorded?.Add(a);
        return a;
    }

    /// <summary>A zero-filled buffer of exactly <paramref name="length"/> elements.</summary>
    public static float[] RentZeroed(int length)
    {
        var a = Rent(length);
        Array.Clear(a);
        return a;
    }

    /// <summary>Off: backward passes record nothing, so nothing is recycled or adopted (tests compare both ways).</summary>
    public static bool Enabled { get; set; } = true;

    /// <summary>Starts recording rentals on this thread; dispose to stop (and forget what was recorded).</summary>
    public static IDisposable Record() => new Recording(Enabled);

    /// <summary>
    /// Hands <paramref name="buffer"/> back for reuse if it was rented while the current recording was active
    /// (and not handed back already). The caller guarantees nothing will read or write it any more.
    /// </summary>
    public static bool ReleaseIfRecorded(float[] buffer)
    {
        if (_recorded is null || !_recorded.Remove(buffer)) return false;
        long bytes = (long)buffer.Length * sizeof(float);
        lock (Gate)
        {
            if (_pooledBytes + bytes > MaxPooledBytes) return false;
            if (!Free.TryGetValue(buffer.Length, out var stack)) Free[buffer.Length] = stack = new Stack<float[]>();
            stack.Push(buffer);
            _pooledBytes += bytes;
        }
        return true;
    }

    /// <summary>Stops tracking <paramref name="buffer"/>: its new owner keeps it (it is never handed back).</summary>
    public static void Forget(float[] buffer) => _recorded?.Remove(buffer);

    /// <summary>True when <paramref name="buffer"/> was rented during the current recording and is not yet handed back.</summary>
    public static bool IsRecorded(float[] buffer) => _recorded is not null && _recorded.Contains(buffer);

    /// <summary>
    /// Hands back every buffer rented during the current recording that is not in <paramref name="live"/>; the
    /// live ones stay recorded. For inference code that knows which values are still needed (no graph recorded):
    /// an executor's live values, or a block's result (<see cref="RecycleIntermediates"/>).
    /// </summary>
    public static void ReleaseRecordedNotIn(HashSet<float[]> live)
    {
        var recorded = _recorded;
        if (recorded is null || recorded.Count == 0) return;
        List<float[]>? dead = null;
        foreach (var buffer in recorded)
            if (!live.Contains(buffer)) (dead ??= []).Add(buffer);
        if (dead is not null) foreach (var buffer in dead) ReleaseIfRecorded(buffer);
    }

    /// <summary>Forgets everything recorded so far in the current recording (none of it will be handed back).</summary>
    public static void ForgetRecorded() => _recorded?.Clear();

    /// <summary>
    /// Runs <paramref name="block"/> and, when its result carries no autograd graph (inference: no-grad mode or
    /// nothing requires grad), recycles the buffers of every tensor the block created except the result's. The
    /// block must not store any tensor it creates anywhere but in its result (a transformer layer's forward).
    /// <paramref name="consumedInput"/>, when given, is a tensor the block reads that nothing reads afterwards and no one
    /// else holds (a layer's input made by the layer before): its buffer is recycled with the intermediates.
    /// </summary>
    public static Tensor RecycleIntermediates(Func<Tensor> block, Tensor? consumedInput = null)
    {
        using var recording = Record();
        var result = block();
        if (!result.RequiresGrad)
        {
            var keep = new HashSet<float[]>(ReferenceEqualityComparer.Instance);
            if (result.Storage is float[] kept) keep.Add(kept);
            if (consumedInput is { RequiresGrad: false, Storage: float[] dead } && dead.Length >= MinPooledLength && !keep.Contains(dead))
                _recorded?.Add(dead);
            ReleaseRecordedNotIn(keep);
        }
        return result;
    }

    /// <summary>Drops every held buffer (tests; memory pressure).</summary>
    public static void Trim()
    {
        lock (Gate)
        {
            Free.Clear();
            _pooledBytes = 0;
        }
    }

    private sealed class Recording : IDisposable
    {
        private readonly HashSet<float[]>? _previous = _recorded;
        private bool _disposed;

        public Recording(bool enabled) => _recorded = enabled ? new HashSet<float[]>(ReferenceEqualityComparer.Instance) : null;

        public void Dispose()
        {
            if (_disposed) return;
            _disposed = true;
            var mine = _recorded;
            _recorded = _previous;
            // What this recording neither handed back nor gave away (Forget) was still rented inside the enclosing
            // one: it stays recorded there, so a step scope hands it back at its end.
            if (_previous is not null && mine is not null && !ReferenceEquals(mine, _previous)) _previous.UnionWith(mine);
        }
    }

    /// <summary>
    /// Records every buffer rented on this thread until disposed, then hands back all of them that nothing adopted
    /// (<see cref="Forget"/>: a parameter's gradient) or handed back already. See <see cref="BufferPool.StepScope"/>.
    /// </summary>
    public static IDisposable StepScope() => new Step(Enabled);

    private sealed class Step(bool enabled) : IDisposable
    {
        private readonly Recording _recording = new(enabled);
        private bool _disposed;

        public void Dispose()
        {
            if (_disposed) return;
            _disposed = true;
            try { ReleaseRecordedNotIn(NoneLive); }
            finally { _recording.Dispose(); }
        }
    }

    private static readonly HashSet<float[]> NoneLive = new(ReferenceEqualityComparer.Instance);
}

/// <summary>
/// The pool of large float buffers the engine recycles between ops and steps (backward passes hand back their
/// gradient buffers; inference hands back dead intermediate activations). It keeps at most <see cref="Capacity"/>
/// bytes for reuse, for the life of the process; <see cref="Trim"/> hands them all to the GC.
/// </summary>
public static class BufferPool
{
    /// <summary>Most bytes kept for reuse (default 1 GiB; 0 turns recycling into plain allocation). Lowering it below
    /// what is held empties the pool.</summary>
    public static long Capacity
    {
        get => TensorBuffers.MaxPooledBytes;
        set => TensorBuffers.MaxPooledBytes = value;
    }

    /// <summary>Bytes held for reuse now.</summary>
    public static long PooledBytes => TensorBuffers.PooledBytes;

    /// <summary>Drops every pooled buffer (the GC reclaims them), e.g. after a large inference batch.</summary>
    public static void Trim() => TensorBuffers.Trim();

    /// <summary>
    /// Scopes one training step (forward, backward, optimizer step): when disposed, every pooled-size buffer rented
    /// on this thread inside it (activations, saved values, gradients of intermediates) goes back to the pool for the
    /// next step, except the gradients parameters adopted. Without it those buffers go to the GC and the next step
    /// allocates fresh memory. Every tensor created inside the scope is dead once it is disposed: read what is still
    /// needed (the loss with <see cref="Tensor.Item"/>, metrics) before the end, and keep no tensor from inside it.
    /// Parameters, optimizer state and tensors created outside the scope are never touched.
    /// </summary>
    /// <example><code>
    /// using (BufferPool.StepScope())
    /// {
    ///     var loss = Ops.CrossEntropy(model.Forward(x), y);
    ///     lossSum += loss.Item();
    ///     loss.Backward();
    ///     optimizer.Step();
    ///     optimizer.ZeroGrad();
    /// }
    /// </code></example>
    public static IDisposable StepScope() => TensorBuffers.StepScope();
}

using System.Runtime.CompilerServices;

namespace MlNetFineTune.Tensors.Cpu;

/// <summary>
/// Inference-time cache of linear-layer weights packed for the GEMM. Without gradients (inside
/// <see cref="Tensor.NoGrad"/>), a linear layer with few input rows spends as long packing its weight into the
/// kernel's panel layout as multiplying (one 32-token sentence through BERT-mini: ~40% of the time). The first
/// such call packs the weight once and keeps the pack with the weight tensor; later calls reuse it until the
/// weight's storage is written (any <see cref="Tensor.AsSpan"/> on a tensor over that storage, which is how
/// optimizers, weight loading and initialisers write, invalidates it). Results are bitwise the same as without
/// the cache.
/// </summary>
/// <remarks>
/// Only parameters are cached (leaf tensors that require gradients): their storage is never recycled by the
/// buffer pool. A pack costs about as much memory as the weight itself, and lives as long as the weight tensor.
/// Writing a weight through a span taken before the cached call (instead of a fresh <see cref="Tensor.AsSpan"/>)
/// is not seen: take the span again for each update, as the optimizers do.
/// </remarks>
public static class WeightPackCache
{
    /// <summary>Whether no-grad linear layers cache their packed weights (default true).</summary>
    public static bool Enabled { get; set; } = true;

    /// <summary>
    /// Products with more rows than this pack per call as usual (default 512): there the packing is a few percent
    /// of the multiply and the memory for the pack buys little.
    /// </summary>
    public static int MaxRows
    {
        get => s_maxRows;
        set
        {
            ArgumentOutOfRangeException.ThrowIfNegative(value, nameof(MaxRows));
            s_maxRows = value;
        }
    }

    private static int s_maxRows = 512;

    private static int s_packs;

    /// <summary>Weight packs built since the process started (a pack built again after a write counts again).</summary>
    public static int PacksBuilt => Volatile.Read(ref s_packs);

    /// <summary>
    /// A weight tensor's pack (always W^T of the tensor itself, whose shape and offset never change) and the write
    /// count of its storage when it was made.
    /// </summary>
    internal sealed class Entry(PackedMatrix pack, StorageVersions.Box version, int stamp)
    {
        public readonly PackedMatrix Pack = pack;
        public readonly StorageVersions.Box Version = version;
        public readonly int Stamp = stamp;
    }

    /// <summary>
    /// The packed op(B) of a linear layer y = x W^T (B = <paramref name="weight"/> [n, k], transposed) for a product
    /// with <paramref name="rows"/> rows, or null when the cache does not apply (gradients on, not a parameter, too
    /// many rows, a product too small to pack, disabled).
    /// </summary>
    internal static unsafe PackedMatrix? ForLinear(Tensor weight, int rows, int n, int k)
    {
        if (!Enabled || Tensor.IsGradEnabled || rows > MaxRows || !weight.RequiresGrad || !weight.IsLeaf
            || !weight.IsContiguous || weight.Storage is not float[] data || !Gemm.TakesPackedPath(rows, n, k))
            return null;
        var level = Gemm.CurrentLevel;
        if (weight.PackCache is { } e && e.Stamp == e.Version.Value && e.Pack.Fits(GemmBlocking.For(level), n, k))
            return e.Pack;
        var box = StorageVersions.Track(data);
        int stamp = box.Value;   // read before packing: a write during packing makes the pack stale at once
        PackedMatrix pack;
        fixed (float* pw = data)
            pack = PackedMatrix.PackB(level, transB: true, n, k, pw + weight.Offset, k);
        weight.PackCache = new Entry(pack, box, stamp);
        Interlocked.Increment(ref s_packs);
        return pack;
    }
}

/// <summary>
/// Write counters for storage arrays that something cached derived data from (<see cref="WeightPackCache"/>).
/// <see cref="Tensor.AsSpan"/> bumps its storage's counter; until the first array is tracked that is one
/// volatile read.
/// </summary>
internal static class StorageVersions
{
    internal sealed class Box
    {
        private int _value;
        public int Value => Volatile.Read(ref _value);
        public void Bump() => Interlocked.Increment(ref _value);
    }

    private static readonly ConditionalWeakTable<Array, Box> s_boxes = new();
    private static volatile bool s_tracking;

    /// <summary>The counter of <paramref name="storage"/>, created on first use.</summary>
    public static Box Track(Array storage)
    {
        s_tracking = true;
        return s_boxes.GetValue(storage, static _ => new Box());
    }

    /// <summary>Records a (possible) write to <paramref name="storage"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Written(Array storage)
    {
        if (s_tracking && s_boxes.TryGetValue(storage, out var box)) box.Bump();
    }
}

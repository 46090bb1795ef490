using System.Collections;
using System.Numerics;
using MlNetFineTune.Tensors;

namespace MlNetFineTune.Models.Formats;

// Object graph produced by the restricted unpickler (see TorchCheckpoint.LoadObject):
//   None -> null, bool -> bool, int -> long (or BigInteger when it does not fit), float -> double,
//   str -> string, bytes/bytearray -> byte[], list -> List<object?>, tuple / torch.Size -> PickleTuple,
//   dict / OrderedDict -> PickleDict, set / frozenset -> PickleSet, tensor -> TorchTensorValue,
//   storage -> TorchStorage, an allow-listed class or function referenced but not called -> PickleGlobal.

/// <summary>A Python tuple (also <c>torch.Size</c>).</summary>
public sealed class PickleTuple : IReadOnlyList<object?>
{
    private readonly object?[] _items;

    internal PickleTuple(object?[] items) => _items = items;

    internal static readonly PickleTuple Empty = new([]);

    /// <summary>Number of items.</summary>
    public int Count => _items.Length;

    /// <summary>Item <paramref name="index"/>.</summary>
    public object? this[int index] => _items[index];

    /// <inheritdoc />
    public IEnumerator<object?> GetEnumerator() => ((IEnumerable<object?>)_items).GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => _items.GetEnumerator();

    /// <inheritdoc />
    public override string ToString() => $"tuple({_items.Length})";
}

/// <summary>A Python dict or <c>collections.OrderedDict</c>, in insertion order.</summary>
public sealed class PickleDict : IEnumerable<KeyValuePair<object?, object?>>
{
    private readonly OrderedDictionary<TorchPickleKey, object?> _items = new();
    private Dictionary<string, object?>? _attributes;

    internal PickleDict(bool isOrderedDict) => IsOrderedDict = isOrderedDict;

    /// <summary>True for <c>collections.OrderedDict</c> (what <c>state_dict()</c> returns), false for a plain dict.</summary>
    public bool IsOrderedDict { get; }

    /// <summary>Number of items.</summary>
    public int Count => _items.Count;

    /// <summary>The keys, in insertion order.</summary>
    public IEnumerable<object?> Keys => _items.Keys.Select(k => k.Value);

    /// <summary>
    /// Instance attributes set by a pickle BUILD opcode (for a state dict: <c>_metadata</c>, the per-module
    /// versions), or empty.
    /// </summary>
    public IReadOnlyDictionary<string, object?> Attributes =>
        (IReadOnlyDictionary<string, object?>?)_attributes ?? new Dictionary<string, object?>();

    /// <summary>The value under <paramref name="key"/>; throws <see cref="KeyNotFoundException"/> when absent.</summary>
    public object? this[object? key] => TryGetValue(key, out var v) ? v : throw new KeyNotFoundException($"Key '{key}' is not in the dict.");

    /// <summary>Looks a key up (keys compare like Python's for str, int, bool, float, None and tuples of those).</summary>
    public bool TryGetValue(object? key, out object? value)
    {
        if (!TorchPickleKey.IsHashable(key, 0)) { value = null; return false; }
        return _items.TryGetValue(new TorchPickleKey(key), out value);
    }

    /// <summary>True when <paramref name="key"/> is present.</summary>
    public bool ContainsKey(object? key) => TryGetValue(key, out _);

    internal void Set(TorchPickleKey key, object? value) => _items[key] = value;

    internal void SetAttribute(string name, object? value) => (_attributes ??= new Dictionary<string, object?>(StringComparer.Ordinal))[name] = value;

    /// <inheritdoc />
    public IEnumerator<KeyValuePair<object?, object?>> GetEnumerator()
    {
        foreach (var kv in _items) yield return new KeyValuePair<object?, object?>(kv.Key.Value, kv.Value);
    }

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

    /// <inheritdoc />
    public override string ToString() => $"{(IsOrderedDict ? "OrderedDict" : "dict")}({Count})";
}

/// <summary>A Python set or frozenset (items in pickle order; duplicates are kept as written).</summary>
public sealed class PickleSet : IReadOnlyList<object?>
{
    private readonly List<object?> _items = new();

    internal PickleSet(bool isFrozen) => IsFrozen = isFrozen;

    /// <summary>True for a frozenset.</summary>
    public bool IsFrozen { get; }

    /// <summary>Number of items.</summary>
    public int Count => _items.Count;

    /// <summary>Item <paramref name="index"/> in pickle order.</summary>
    public object? this[int index] => _items[index];

    internal void Add(object? item) => _items.Add(item);

    /// <inheritdoc />
    public IEnumerator<object?> GetEnumerator() => _items.GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();
}

/// <summary>An allow-listed Python global that appears in the pickle as a value (referenced, not called).</summary>
public sealed record PickleGlobal(string Module, string Name)
{
    /// <summary><c>module.name</c>.</summary>
    public string FullName => Module + "." + Name;

    /// <inheritdoc />
    public override string ToString() => FullName;
}

/// <summary>Element type of a tensor as stored in a PyTorch checkpoint.</summary>
public enum TorchDType
{
    /// <summary>torch.float32 (FloatStorage); loads as <see cref="DType.Float32"/>.</summary>
    Float32,
    /// <summary>torch.float64 (DoubleStorage); converted (rounded) to <see cref="DType.Float32"/>.</summary>
    Float64,
    /// <summary>torch.float16 (HalfStorage); converted exactly to <see cref="DType.Float32"/>.</summary>
    Float16,
    /// <summary>torch.bfloat16 (BFloat16Storage); converted exactly to <see cref="DType.Float32"/>.</summary>
    BFloat16,
    /// <summary>torch.int64 (LongStorage); loads as <see cref="DType.Int64"/>.</summary>
    Int64,
    /// <summary>torch.int32 (IntStorage); loads as <see cref="DType.Int32"/>.</summary>
    Int32,
    /// <summary>torch.int16 (ShortStorage); widened to <see cref="DType.Int32"/>.</summary>
    Int16,
    /// <summary>torch.int8 (CharStorage); widened to <see cref="DType.Int32"/>.</summary>
    Int8,
    /// <summary>torch.uint8 (ByteStorage); widened to <see cref="DType.Int32"/> (0..255).</summary>
    UInt8,
    /// <summary>torch.bool (BoolStorage); loads as <see cref="DType.Int32"/> 0 / 1.</summary>
    Bool,
    /// <summary>torch.complex64 (ComplexFloatStorage); recognised but not loadable.</summary>
    Complex64,
    /// <summary>torch.complex128 (ComplexDoubleStorage); recognised but not loadable.</summary>
    Complex128,
}

/// <summary>A storage referenced by the checkpoint: the record <c>data/&lt;Key&gt;</c> (zip) or a legacy storage block.</summary>
public sealed class TorchStorage
{
    internal TorchStorage(string key, TorchDType dtype, string location, long numel, long rootNumel, long elementOffset)
    {
        Key = key;
        DType = dtype;
        Location = location;
        Numel = numel;
        RootNumel = rootNumel;
        ElementOffset = elementOffset;
    }

    /// <summary>The storage key (the zip record is <c>&lt;archive&gt;/data/&lt;Key&gt;</c>).</summary>
    public string Key { get; }

    /// <summary>Element type.</summary>
    public TorchDType DType { get; }

    /// <summary>Device the storage was saved from, e.g. <c>cpu</c> or <c>cuda:0</c> (informational; data is loaded on the CPU).</summary>
    public string Location { get; }

    /// <summary>Number of elements visible through this storage.</summary>
    public long Numel { get; }

    /// <summary>Number of elements of the underlying stored block (differs from <see cref="Numel"/> only for legacy storage views).</summary>
    public long RootNumel { get; }

    /// <summary>Element offset of this storage in the stored block (non-zero only for legacy storage views).</summary>
    public long ElementOffset { get; }

    /// <inheritdoc />
    public override string ToString() => $"{DType}Storage[{Numel}] key '{Key}' ({Location})";
}

/// <summary>
/// A tensor in the checkpoint's object graph: its storage and geometry exactly as saved. <see cref="Tensor"/>
/// holds the dense engine tensor once the graph has been materialized (always, for <see cref="TorchCheckpoint.LoadObject(string, TorchLoadOptions?)"/>).
/// </summary>
public sealed class TorchTensorValue
{
    internal TorchTensorValue(TorchStorage storage, long storageOffset, long[] size, long[] stride, bool requiresGrad)
    {
        Storage = storage;
        StorageOffset = storageOffset;
        _size = size;
        _stride = stride;
        RequiresGrad = requiresGrad;
    }

    private readonly long[] _size;
    private readonly long[] _stride;

    /// <summary>The storage the tensor views.</summary>
    public TorchStorage Storage { get; }

    /// <summary>Element type as saved.</summary>
    public TorchDType SourceDType => Storage.DType;

    /// <summary>Element offset of the tensor's first element in <see cref="Storage"/>.</summary>
    public long StorageOffset { get; }

    /// <summary>Sizes, as saved.</summary>
    public IReadOnlyList<long> Size => _size;

    /// <summary>Strides in elements, as saved.</summary>
    public IReadOnlyList<long> Stride => _stride;

    /// <summary>The saved <c>requires_grad</c> flag.</summary>
    public bool RequiresGrad { get; internal set; }

    /// <summary>True when the tensor was saved as an <c>nn.Parameter</c>.</summary>
    public bool IsParameter { get; internal set; }

    /// <summary>The dense engine tensor (null until materialized).</summary>
    public Tensor? Tensor { get; internal set; }

    internal long[] SizeArray => _size;
    internal long[] StrideArray => _stride;

    /// <inheritdoc />
    public override string ToString() => $"tensor {SourceDType} [{string.Join(", ", _size)}]";
}

/// <summary>One named tensor of a flattened checkpoint: the name, the saved tensor and the loaded engine tensor.</summary>
public sealed class TorchTensorEntry
{
    internal TorchTensorEntry(string name, TorchTensorValue value, Tensor tensor)
    {
        Name = name;
        Value = value;
        Tensor = tensor;
    }

    /// <summary>State-dict name (nested dict keys joined by '.').</summary>
    public string Name { get; }

    /// <summary>The saved tensor (dtype, size, stride, storage).</summary>
    public TorchTensorValue Value { get; }

    /// <summary>The dense engine tensor, named <see cref="Name"/>.</summary>
    public Tensor Tensor { get; }
}

/// <summary>Hashable-key wrapper giving Python-like equality for dict keys.</summary>
internal readonly struct TorchPickleKey : IEquatable<TorchPickleKey>
{
    internal const int MaxDepth = 16;

    public TorchPickleKey(object? value) => Value = value;

    public object? Value { get; }

    /// <summary>Python-hashable values: None, bool, int, float, str, bytes, tuples / frozensets of those (bounded depth).</summary>
    public static bool IsHashable(object? v, int depth)
    {
        if (depth > MaxDepth) return false;
        switch (v)
        {
            case null: case bool: case long: case BigInteger: case double: case string: case byte[]: case PickleGlobal:
                return true;
            case PickleTuple t:
                foreach (var item in t) if (!IsHashable(item, depth + 1)) return false;
                return true;
            default:
                return false;
        }
    }

    public bool Equals(TorchPickleKey other) => Eq(Value, other.Value, 0);

    public override bool Equals(object? obj) => obj is TorchPickleKey k && Equals(k);

    public override int GetHashCode() => Hash(Value, 0);

    private static object? Norm(object? v) => v switch
    {
        bool b => b ? 1L : 0L,
        BigInteger bi when bi >= long.MinValue && bi <= long.MaxValue => (long)bi,
        double d when d == Math.Floor(d) && d >= -9.2e18 && d <= 9.2e18 => (long)d,
        _ => v,
    };

    private static bool Eq(object? a, object? b, int depth)
    {
        if (depth > MaxDepth) return ReferenceEquals(a, b);
        a = Norm(a);
        b = Norm(b);
        switch (a)
        {
            case null: return b is null;
            case long x1: return b is long y1 && x1 == y1;
            case BigInteger x2: return b is BigInteger y2 && x2 == y2;
            case double x3: return b is double y3 && x3.Equals(y3);
            case string x4: return b is string y4 && string.Equals(x4, y4, StringComparison.Ordinal);
            case byte[] x5: return b is byte[] y5 && x5.AsSpan().SequenceEqual(y5);
            case PickleTuple x6:
                if (b is not PickleTuple y6 || x6.Count != y6.Count) return false;
                for (int i = 0; i < x6.Count; i++) if (!Eq(x6[i], y6[i], depth + 1)) return false;
                return true;
            default: return Equals(a, b);
        }
    }

    private static int Hash(object? v, int depth)
    {
        if (depth > MaxDepth) return 0;
        v = Norm(v);
        switch (v)
        {
            case null: return 0x5bd1e995;
            case string s: return StringComparer.Ordinal.GetHashCode(s);
            case byte[] b:
            {
                var h = new HashCode();
                h.AddBytes(b);
                return h.ToHashCode();
            }
            case PickleTuple t:
            {
                var h = new HashCode();
                h.Add(t.Count);
                foreach (var item in t) h.Add(Hash(item, depth + 1));
                return h.ToHashCode();
            }
            default: return v.GetHashCode();
        }
    }
}

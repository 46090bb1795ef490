namespace MlNetFineTune.Imaging;

/// <summary>Element type of an IDX file: the third byte of its magic number.</summary>
public enum IdxDataType : byte
{
    /// <summary>0x08: unsigned byte (<see cref="byte"/>).</summary>
    UInt8 = 0x08,
    /// <summary>0x09: signed byte (<see cref="sbyte"/>).</summary>
    Int8 = 0x09,
    /// <summary>0x0B: 16-bit signed integer, big-endian in the file (<see cref="short"/>).</summary>
    Int16 = 0x0B,
    /// <summary>0x0C: 32-bit signed integer, big-endian in the file (<see cref="int"/>).</summary>
    Int32 = 0x0C,
    /// <summary>0x0D: IEEE 754 single, big-endian in the file (<see cref="float"/>).</summary>
    Float32 = 0x0D,
    /// <summary>0x0E: IEEE 754 double, big-endian in the file (<see cref="double"/>).</summary>
    Float64 = 0x0E,
}

/// <summary>Helpers for <see cref="IdxDataType"/>.</summary>
public static class IdxDataTypes
{
    /// <summary>True for the six element types the IDX format defines.</summary>
    public static bool IsDefined(byte code) => code is 0x08 or 0x09 or 0x0B or 0x0C or 0x0D or 0x0E;

    /// <summary>Bytes per element: 1, 1, 2, 4, 4 or 8.</summary>
    public static int ElementSize(this IdxDataType type) => type switch
    {
        IdxDataType.UInt8 or IdxDataType.Int8 => 1,
        IdxDataType.Int16 => 2,
        IdxDataType.Int32 or IdxDataType.Float32 => 4,
        IdxDataType.Float64 => 8,
        _ => throw new ArgumentOutOfRangeException(nameof(type), type, "not an IDX element type"),
    };

    /// <summary>The .NET element type of <see cref="IdxTensor.Data"/> for this IDX type.</summary>
    public static Type ClrType(this IdxDataType type) => type switch
    {
        IdxDataType.UInt8 => typeof(byte),
        IdxDataType.Int8 => typeof(sbyte),
        IdxDataType.Int16 => typeof(short),
        IdxDataType.Int32 => typeof(int),
        IdxDataType.Float32 => typeof(float),
        IdxDataType.Float64 => typeof(double),
        _ => throw new ArgumentOutOfRangeException(nameof(type), type, "not an IDX element type"),
    };
}

/// <summary>
/// The content of one IDX file: element type, dimensions (outermost first, as in the file) and the elements in
/// row-major order, already converted from the file's big-endian to the machine's byte order.
/// </summary>
public sealed class IdxTensor
{
    private readonly int[] _shape;

    /// <summary>Element type (from the magic number).</summary>
    public IdxDataType DataType { get; }

    /// <summary>Dimensions, outermost first (e.g. [N, rows, cols] for images).</summary>
    public IReadOnlyList<int> Shape => _shape;

    /// <summary>Number of dimensions (the magic number's last byte).</summary>
    public int Rank => _shape.Length;

    /// <summary>
    /// The elements, row-major: a <c>byte[]</c>, <c>sbyte[]</c>, <c>short[]</c>, <c>int[]</c>, <c>float[]</c> or
    /// <c>double[]</c> according to <see cref="DataType"/>. Use <see cref="As{T}"/> for a typed view.
    /// </summary>
    public Array Data { get; }

    /// <summary>Number of elements (the product of <see cref="Shape"/>).</summary>
    public int Length => Data.Length;

    /// <summary>Wraps already-read data; checks that the array type and length agree with the type and shape.</summary>
    public IdxTensor(IdxDataType dataType, IReadOnlyList<int> shape, Array data)
    {
        ArgumentNullException.ThrowIfNull(shape);
        ArgumentNullException.ThrowIfNull(data);
        if (!IdxDataTypes.IsDefined((byte)dataType))
            throw new ArgumentOutOfRangeException(nameof(dataType), dataType, "not an IDX element type");
        if (shape.Count is < 1 or > 255)
            throw new ArgumentException("an IDX tensor has 1 to 255 dimensions", nameof(shape));
        long count = 1;
        foreach (int d in shape)
        {
            if (d < 0) throw new ArgumentException("dimensions must not be negative", nameof(shape));
            count *= d;
            if (count > Array.MaxLength) throw new ArgumentException("too many elements", nameof(shape));
        }
        if (data.GetType().GetElementType() != dataType.ClrType() || data.Rank != 1)
            throw new ArgumentException($"data must be a {dataType.ClrType().Name}[] for {dataType}", nameof(data));
        if (data.Length != count)
            throw new ArgumentException($"data has {data.Length} elements, the shape needs {count}", nameof(data));
        DataType = dataType;
        _shape = [.. shape];
        Data = data;
    }

    /// <summary>The elements as a <typeparamref name="T"/>[] (no copy); <typeparamref name="T"/> must match <see cref="DataType"/>.</summary>
    public T[] As<T>() where T : unmanaged =>
        // Exact type check: the runtime lets an sbyte[] pass as a byte[] (and int[] as uint[]) in an 'as' cast.
        Data.GetType() == typeof(T[]) ? (T[])Data : throw new InvalidOperationException(
            $"this IDX tensor holds {DataType} ({DataType.ClrType().Name}) elements, not {typeof(T).Name}");

    /// <summary>The elements converted to <see cref="float"/> (a new array; doubles are rounded).</summary>
    public float[] ToSingleArray()
    {
        var result = new float[Data.Length];
        // Dispatch on DataType, not on the array's type: an sbyte[] also matches 'is byte[]' in the runtime.
        switch (DataType)
        {
            case IdxDataType.UInt8: { var b = As<byte>(); for (int i = 0; i < b.Length; i++) result[i] = b[i]; break; }
            case IdxDataType.Int8: { var sb = As<sbyte>(); for (int i = 0; i < sb.Length; i++) result[i] = sb[i]; break; }
            case IdxDataType.Int16: { var s = As<short>(); for (int i = 0; i < s.Length; i++) result[i] = s[i]; break; }
            case IdxDataType.Int32: { var n = As<int>(); for (int i = 0; i < n.Length; i++) result[i] = n[i]; break; }
            case IdxDataType.Float32: As<float>().CopyTo(result, 0); break;
            case IdxDataType.Float64: { var d = As<double>(); for (int i = 0; i < d.Length; i++) result[i] = (float)d[i]; break; }
        }
        return result;
    }

    public override string ToString() => $"IdxTensor({DataType}, [{string.Join(", ", _shape)}])";
}

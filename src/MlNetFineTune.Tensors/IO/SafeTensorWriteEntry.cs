using System.Buffers.Binary;
using System.Runtime.InteropServices;

namespace MlNetFineTune.Tensors.IO;

/// <summary>
/// One tensor to write with <see cref="SafeTensorsWriter"/>: a name, the dtype to store, a shape and the
/// data. The data is referenced, not copied; it is converted to the stored dtype while writing.
/// </summary>
public sealed class SafeTensorWriteEntry
{
    private enum DataKind
    {
        Float,
        Int64,
        Int32,
        Raw,
    }

    private readonly long[] _shape;
    private readonly DataKind _kind;
    private readonly ReadOnlyMemory<float> _floats;
    private readonly ReadOnlyMemory<long> _longs;
    private readonly ReadOnlyMemory<int> _ints;
    private readonly ReadOnlyMemory<byte> _raw;

    /// <summary>A floating-point tensor stored as <c>F32</c>, <c>F16</c> or <c>BF16</c>.</summary>
    /// <param name="name">Tensor name (any string except <c>__metadata__</c>).</param>
    /// <param name="dtype"><see cref="SafeTensorDType.F32"/>, <see cref="SafeTensorDType.F16"/> or <see cref="SafeTensorDType.BF16"/>; narrowing rounds to nearest even.</param>
    /// <param name="shape">Dimensions, outermost first; empty for a scalar.</param>
    /// <param name="data">Row-major values; the length must equal the product of <paramref name="shape"/>.</param>
    public SafeTensorWriteEntry(string name, SafeTensorDType dtype, IReadOnlyList<long> shape, ReadOnlyMemory<float> data)
        : this(name, dtype, shape, DataKind.Float, data.Length, [SafeTensorDType.F32, SafeTensorDType.F16, SafeTensorDType.BF16], "float")
    {
        _floats = data;
    }

    /// <summary>An integer tensor stored as <c>I64</c> or <c>I32</c> (every value must then fit in an <see cref="int"/>; checked while writing).</summary>
    /// <param name="name">Tensor name (any string except <c>__metadata__</c>).</param>
    /// <param name="dtype"><see cref="SafeTensorDType.I64"/> or <see cref="SafeTensorDType.I32"/>.</param>
    /// <param name="shape">Dimensions, outermost first; empty for a scalar.</param>
    /// <param name="data">Row-major values; the length must equal the product of <paramref name="shape"/>.</param>
    public SafeTensorWriteEntry(string name, SafeTensorDType dtype, IReadOnlyList<long> shape, ReadOnlyMemory<long> data)
        : this(name, dtype, shape, DataKind.Int64, data.Length, [SafeTensorDType.I64, SafeTensorDType.I32], "long")
    {
        _longs = data;
    }

    /// <summary>An integer tensor stored as <c>I32</c> or <c>I64</c>.</summary>
    /// <param name="name">Tensor name (any string except <c>__metadata__</c>).</param>
    /// <param name="dtype"><see cref="SafeTensorDType.I32"/> or <see cref="SafeTensorDType.I64"/>.</param>
    /// <param name="shape">Dimensions, outermost first; empty for a scalar.</param>
    /// <param name="data">Row-major values; the length must equal the product of <paramref name="shape"/>.</param>
    public SafeTensorWriteEntry(string name, SafeTensorDType dtype, IReadOnlyList<long> shape, ReadOnlyMemory<int> data)
        : this(name, dtype, shape, DataKind.Int32, data.Length, [SafeTensorDType.I32, SafeTensorDType.I64], "int")
    {
        _ints = data;
    }

    private SafeTensorWriteEntry(string name, SafeTensorDType dtype, IReadOnlyList<long> shape, DataKind kind,
        long dataLength, SafeTensorDType[] allowed, string dataType)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(shape);
        if (name == "__metadata__")
        {
            throw new ArgumentException("'__metadata__' is reserved and cannot be a tensor name.", nameof(name));
        }
        _ = dtype.GetBitSize(); // throws for undefined values
        if (kind != DataKind.Raw && Array.IndexOf(allowed, dtype) < 0)
        {
            throw new ArgumentException(
                $"Tensor '{name}': {dtype} cannot be written from {dataType} data (supported: {string.Join(", ", allowed)}).", nameof(dtype));
        }

        Name = name;
        DType = dtype;
        _kind = kind;
        _shape = new long[shape.Count];
        long count = 1;
        for (int i = 0; i < _shape.Length; i++)
        {
            long dimension = shape[i];
            if (dimension < 0)
            {
                throw new ArgumentException($"Tensor '{name}': dimension {i} is negative ({dimension}).", nameof(shape));
            }
            if (count != 0 && dimension > long.MaxValue / count)
            {
                throw new ArgumentException($"Tensor '{name}': the element count of the shape overflows.", nameof(shape));
            }
            _shape[i] = dimension;
            count *= dimension;
        }
        ElementCount = count;

        int bits = dtype.GetBitSize();
        if (count > long.MaxValue / bits || count * bits % 8 != 0)
        {
            throw new ArgumentException(
                $"Tensor '{name}': {count} elements of {dtype} do not make a whole number of bytes or overflow.", nameof(shape));
        }
        ByteLength = count * bits / 8;

        long expected = kind == DataKind.Raw ? ByteLength : count;
        if (dataLength != expected)
        {
            throw new ArgumentException(
                $"Tensor '{name}': the data holds {dataLength} {(kind == DataKind.Raw ? "bytes" : "elements")} but the shape [{string.Join(", ", _shape)}] of {dtype} needs {expected}.",
                "data");
        }
    }

    /// <summary>
    /// A tensor of any dtype given as its raw little-endian, row-major bytes (for example copied from
    /// <see cref="SafeTensorsFile.ReadRaw(string)"/>).
    /// </summary>
    /// <param name="name">Tensor name (any string except <c>__metadata__</c>).</param>
    /// <param name="dtype">The stored dtype.</param>
    /// <param name="shape">Dimensions, outermost first; empty for a scalar.</param>
    /// <param name="data">The bytes; the length must equal the product of <paramref name="shape"/> times the dtype size.</param>
    public static SafeTensorWriteEntry FromRaw(string name, SafeTensorDType dtype, IReadOnlyList<long> shape, ReadOnlyMemory<byte> data) =>
        new(name, dtype, shape, data);

    private SafeTensorWriteEntry(string name, SafeTensorDType dtype, IReadOnlyList<long> shape, ReadOnlyMemory<byte> data)
        : this(name, dtype, shape, DataKind.Raw, data.Length, [], "raw")
    {
        _raw = data;
    }

    /// <summary>The tensor name.</summary>
    public string Name { get; }

    /// <summary>The dtype stored in the file.</summary>
    public SafeTensorDType DType { get; }

    /// <summary>The dimensions (a copy).</summary>
    public long[] Shape => (long[])_shape.Clone();

    internal long[] ShapeNoCopy => _shape;

    /// <summary>Number of elements.</summary>
    public long ElementCount { get; }

    /// <summary>Number of bytes the tensor takes in the file.</summary>
    public long ByteLength { get; }

    /// <summary>Writes the stored representation to <paramref name="destination"/>, converting through <paramref name="scratch"/>.</summary>
    internal void WriteData(Stream destination, byte[] scratch)
    {
        switch (_kind)
        {
            case DataKind.Raw:
                destination.Write(_raw.Span);
                break;
            case DataKind.Float when DType == SafeTensorDType.F32 && BitConverter.IsLittleEndian:
                destination.Write(MemoryMarshal.AsBytes(_floats.Span));
                break;
            case DataKind.Int64 when DType == SafeTensorDType.I64 && BitConverter.IsLittleEndian:
                destination.Write(MemoryMarshal.AsBytes(_longs.Span));
                break;
            case DataKind.Int32 when DType == SafeTensorDType.I32 && BitConverter.IsLittleEndian:
                destination.Write(MemoryMarshal.AsBytes(_ints.Span));
                break;
            default:
                WriteConverted(destination, scratch);
                break;
        }
    }

    private void WriteConverted(Stream destination, byte[] scratch)
    {
        int size = DType.GetByteSize();
        int perChunk = scratch.Length / size;
        int total = _kind switch
        {
            DataKind.Float => _floats.Length,
            DataKind.Int64 => _longs.Length,
            _ => _ints.Length,
        };
        for (int start = 0; start < total; start += perChunk)
        {
            int count = Math.Min(perChunk, total - start);
            Span<byte> chunk = scratch.AsSpan(0, count * size);
            switch (_kind)
            {
                case DataKind.Float:
                    EncodeFloats(_floats.Span.Slice(start, count), chunk);
                    break;
                case DataKind.Int64:
                    EncodeLongs(_longs.Span.Slice(start, count), chunk, start);
                    break;
                default:
                    EncodeInts(_ints.Span.Slice(start, count), chunk);
                    break;
            }
            destination.Write(chunk);
        }
    }

    private void EncodeFloats(ReadOnlySpan<float> values, Span<byte> output)
    {
        switch (DType)
        {
            case SafeTensorDType.F32:
                for (int i = 0; i < values.Length; i++)
                {
                    BinaryPrimitives.WriteSingleLittleEndian(output.Slice(i * 4, 4), values[i]);
                }
                break;
            case SafeTensorDType.F16:
                for (int i = 0; i < values.Length; i++)
                {
                    BinaryPrimitives.WriteUInt16LittleEndian(output.Slice(i * 2, 2), BitConverter.HalfToUInt16Bits((Half)values[i]));
                }
                break;
            default: // BF16
                for (int i = 0; i < values.Length; i++)
                {
                    BinaryPrimitives.WriteUInt16LittleEndian(output.Slice(i * 2, 2), ToBFloat16Bits(values[i]));
                }
                break;
        }
    }

    private void EncodeLongs(ReadOnlySpan<long> values, Span<byte> output, int firstIndex)
    {
        if (DType == SafeTensorDType.I64)
        {
            for (int i = 0; i < values.Length; i++)
            {
                BinaryPrimitives.WriteInt64LittleEndian(output.Slice(i * 8, 8), values[i]);
            }
            return;
        }
        for (int i = 0; i < values.Length; i++)
        {
            long value = values[i];
            if (value is < int.MinValue or > int.MaxValue)
            {
                throw new ArgumentException(
                    $"Tensor '{Name}': element {firstIndex + i} ({value}) does not fit in I32.", "data");
            }
            BinaryPrimitives.WriteInt32LittleEndian(output.Slice(i * 4, 4), (int)value);
        }
    }

    private void EncodeInts(ReadOnlySpan<int> values, Span<byte> output)
    {
        if (DType == SafeTensorDType.I64)
        {
            for (int i = 0; i < values.Length; i++)
            {
                BinaryPrimitives.WriteInt64LittleEndian(output.Slice(i * 8, 8), values[i]);
            }
            return;
        }
        for (int i = 0; i < values.Length; i++)
        {
            BinaryPrimitives.WriteInt32LittleEndian(output.Slice(i * 4, 4), values[i]);
        }
    }

    /// <summary>Rounds a float to bfloat16 bits (round to nearest, ties to even; NaN stays a quiet NaN).</summary>
    internal static ushort ToBFloat16Bits(float value)
    {
        uint bits = BitConverter.SingleToUInt32Bits(value);
        if (float.IsNaN(value))
        {
            return (ushort)((bits >> 16) | 0x0040);
        }
        uint rounding = 0x7FFF + ((bits >> 16) & 1);
        return (ushort)((bits + rounding) >> 16);
    }
}

namespace MlNetFineTune.Tensors.IO;

/// <summary>
/// One validated tensor entry of a safetensors header: name, element type, shape and where its bytes lie.
/// Instances are immutable.
/// </summary>
public sealed class SafeTensorInfo
{
    private readonly long[] _shape;

    internal SafeTensorInfo(string name, SafeTensorDType dtype, long[] shape, long dataBegin, long dataEnd, long elementCount)
    {
        Name = name;
        DType = dtype;
        _shape = shape;
        DataBegin = dataBegin;
        DataEnd = dataEnd;
        ElementCount = elementCount;
    }

    /// <summary>The tensor's name (the key in the header).</summary>
    public string Name { get; }

    /// <summary>The element type.</summary>
    public SafeTensorDType DType { get; }

    /// <summary>The dimensions, outermost first (row-major). Empty for a scalar. Each access returns a new copy.</summary>
    public long[] Shape => (long[])_shape.Clone();

    /// <summary>Number of dimensions (0 for a scalar).</summary>
    public int Rank => _shape.Length;

    /// <summary>Size of dimension <paramref name="axis"/>.</summary>
    public long GetDimension(int axis) => _shape[axis];

    /// <summary>Start of the tensor's bytes, relative to the start of the data buffer (not of the file).</summary>
    public long DataBegin { get; }

    /// <summary>One past the end of the tensor's bytes, relative to the start of the data buffer.</summary>
    public long DataEnd { get; }

    /// <summary>Size of the tensor's data in bytes (<see cref="DataEnd"/> - <see cref="DataBegin"/>).</summary>
    public long ByteLength => DataEnd - DataBegin;

    /// <summary>Number of elements: the product of <see cref="Shape"/> (1 for a scalar).</summary>
    public long ElementCount { get; }

    /// <inheritdoc />
    public override string ToString() =>
        $"{Name}: {DType}[{string.Join(", ", _shape)}] bytes [{DataBegin}, {DataEnd})";
}

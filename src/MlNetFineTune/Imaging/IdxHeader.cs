using System.Globalization;

namespace MlNetFineTune.Imaging;

/// <summary>
/// The header of an IDX file: magic number (two zero bytes, the element type, the number of dimensions) followed
/// by one big-endian unsigned 32-bit size per dimension. The data, row-major and big-endian, follows at
/// <see cref="HeaderLength"/>.
/// </summary>
/// <param name="DataType">Element type (third byte of the magic number).</param>
/// <param name="Shape">Dimensions, outermost first.</param>
/// <param name="Compressed">True when the file was gzip-compressed (offsets in errors then count gunzipped bytes).</param>
public sealed record IdxHeader(IdxDataType DataType, IReadOnlyList<int> Shape, bool Compressed)
{
    /// <summary>The 32-bit magic number, e.g. 0x00000803 for unsigned-byte data with 3 dimensions.</summary>
    public uint Magic => ((uint)DataType << 8) | (uint)Shape.Count;

    /// <summary>Bytes before the data: 4 + 4 per dimension.</summary>
    public int HeaderLength => 4 + 4 * Shape.Count;

    /// <summary>Number of elements (the product of the dimensions).</summary>
    public long ElementCount
    {
        get
        {
            long n = 1;
            foreach (int d in Shape) n *= d;
            return n;
        }
    }

    /// <summary>Bytes of data after the header.</summary>
    public long DataLength => ElementCount * DataType.ElementSize();

    /// <summary>E.g. "magic 0x00000803 (UInt8, 3 dimensions [1000, 28, 28])".</summary>
    public string Describe() =>
        "magic 0x" + Magic.ToString("X8", CultureInfo.InvariantCulture) + " (" + DataType + ", " +
        Shape.Count.ToString(CultureInfo.InvariantCulture) + (Shape.Count == 1 ? " dimension [" : " dimensions [") +
        string.Join(", ", Shape.Select(d => d.ToString(CultureInfo.InvariantCulture))) + "])";

    // Records compare IReadOnlyList by reference; compare shapes by value instead.
    public bool Equals(IdxHeader? other) =>
        other is not null && DataType == other.DataType && Compressed == other.Compressed && Shape.SequenceEqual(other.Shape);

    public override int GetHashCode()
    {
        var h = new HashCode();
        h.Add(DataType);
        h.Add(Compressed);
        foreach (int d in Shape) h.Add(d);
        return h.ToHashCode();
    }

    public override string ToString() => Describe() + (Compressed ? ", gzip" : "");
}

using System.Buffers.Binary;
using System.IO.Compression;
using System.Runtime.InteropServices;

namespace MlNetFineTune.Imaging;

/// <summary>
/// Reads IDX files, the format of MNIST and Fashion-MNIST (<c>train-images-idx3-ubyte</c>, ...): a magic number
/// (two zero bytes, an element-type byte, a dimension-count byte), one big-endian 32-bit size per dimension, then
/// the elements row-major and big-endian. Element types: 0x08 unsigned byte, 0x09 signed byte, 0x0B int16,
/// 0x0C int32, 0x0D float32, 0x0E float64.
/// </summary>
/// <remarks>
/// <para>Files and streams are gunzipped transparently when they start with the gzip magic (1F 8B), whatever their
/// name. The header is validated before any data is allocated: magic, element type, dimension count, and that the
/// declared size fits a .NET array; for an uncompressed file (or seekable stream) the remaining length must equal
/// the declared data length exactly, checked before allocating. For gzip data, whose length is only known once
/// it is decompressed, the buffer grows as data arrives (so a lying header cannot make it allocate more than
/// about twice what is really there) and must end exactly where the header says.</para>
/// <para>Every problem is an <see cref="ImageFormatException"/> whose message starts with the file's path and
/// ends with the byte offset, in the IDX data (counting gunzipped bytes when the file is compressed), where it
/// was found.</para>
/// </remarks>
public static class IdxReader
{
    /// <summary>Magic number of an image file: unsigned bytes, 3 dimensions [count, rows, cols].</summary>
    public const uint ImagesMagic = 0x00000803;

    /// <summary>Magic number of a label file: unsigned bytes, 1 dimension [count].</summary>
    public const uint LabelsMagic = 0x00000801;

    private const int InitialUnknownLengthBuffer = 1 << 20;

    /// <summary>Reads an image file (magic 0x00000803): <paramref name="path"/> may be gzip-compressed.</summary>
    /// <returns>The image count, rows and columns of each image, and all pixels, image after image, row-major.</returns>
    public static (int Count, int Rows, int Cols, byte[] Pixels) ReadImages(string path) =>
        WithFile(path, s => ReadImages(s, path));

    /// <summary>Reads an image file (magic 0x00000803) from <paramref name="stream"/> (to its end; may be gzip).
    /// <paramref name="source"/> names it in errors. The stream is not closed.</summary>
    public static (int Count, int Rows, int Cols, byte[] Pixels) ReadImages(Stream stream, string? source = null)
    {
        var (header, data) = ReadCore(stream, source, h => CheckImagesHeader(h, source));
        return (header.Shape[0], header.Shape[1], header.Shape[2], data);
    }

    /// <summary>Reads a label file (magic 0x00000801): one byte per example. <paramref name="path"/> may be gzip-compressed.</summary>
    public static byte[] ReadLabels(string path) => WithFile(path, s => ReadLabels(s, path));

    /// <summary>Reads a label file (magic 0x00000801) from <paramref name="stream"/> (to its end; may be gzip).
    /// <paramref name="source"/> names it in errors. The stream is not closed.</summary>
    public static byte[] ReadLabels(Stream stream, string? source = null) =>
        ReadCore(stream, source, h => CheckLabelsHeader(h, source)).Data;

    /// <summary>Reads any IDX file (all six element types, any number of dimensions); may be gzip-compressed.</summary>
    public static IdxTensor ReadTensor(string path) => WithFile(path, s => ReadTensor(s, path));

    /// <summary>Reads any IDX file from <paramref name="stream"/> (to its end; may be gzip).
    /// <paramref name="source"/> names it in errors. The stream is not closed.</summary>
    public static IdxTensor ReadTensor(Stream stream, string? source = null)
    {
        var (header, data) = ReadCore(stream, source, static _ => { });
        return new IdxTensor(header.DataType, header.Shape, Convert(header.DataType, data));
    }

    /// <summary>Reads only the header of an IDX file (gunzipping as needed), without reading its data.</summary>
    public static IdxHeader ReadHeader(string path) => WithFile(path, s => ReadHeader(s, path));

    /// <summary>Reads only the header from <paramref name="stream"/>; the stream is left after it (or inside the gzip data).</summary>
    public static IdxHeader ReadHeader(Stream stream, string? source = null)
    {
        ArgumentNullException.ThrowIfNull(stream);
        using var input = Open(stream, source);
        return ReadHeaderCore(input);
    }

    /// <summary>
    /// Reads an images file and a labels file that describe the same examples and checks that their counts match
    /// (the images file's header is checked against the labels before its pixels are read). With
    /// <paramref name="classCount"/>, every label must also be below it.
    /// </summary>
    public static IdxDataset ReadDataset(string imagesPath, string labelsPath, int? classCount = null)
    {
        ArgumentNullException.ThrowIfNull(imagesPath);
        ArgumentNullException.ThrowIfNull(labelsPath);
        if (classCount is int k) ArgumentOutOfRangeException.ThrowIfNegativeOrZero(k, nameof(classCount));
        byte[] labels = ReadLabels(labelsPath);
        if (classCount is int classes)
        {
            for (int i = 0; i < labels.Length; i++)
            {
                if (labels[i] >= classes)
                    throw new ImageFormatException(
                        $"label {labels[i]} of example {i} is outside 0..{classes - 1}", labelsPath, 8 + (long)i);
            }
        }
        var (header, pixels) = WithFile(imagesPath, s => ReadCore(s, imagesPath, h =>
        {
            CheckImagesHeader(h, imagesPath);
            if (h.Shape[0] != labels.Length)
                throw new ImageFormatException(
                    $"holds {h.Shape[0]} images but the labels file {labelsPath} holds {labels.Length} labels", imagesPath, 4);
        }));
        return new IdxDataset(header.Shape[0], header.Shape[1], header.Shape[2], pixels, labels, imagesPath, labelsPath);
    }

    private static T WithFile<T>(string path, Func<Stream, T> read)
    {
        ArgumentNullException.ThrowIfNull(path);
        using var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.SequentialScan);
        return read(fs);
    }

    private static void CheckImagesHeader(IdxHeader h, string? source)
    {
        if (h.Magic != ImagesMagic)
            throw new ImageFormatException(
                "expected IDX images (magic 0x00000803: unsigned bytes, 3 dimensions [count, rows, cols]), found " + h.Describe(),
                source, 0);
        if (h.Shape[1] == 0 || h.Shape[2] == 0)
            throw new ImageFormatException(
                $"images of {h.Shape[1]} x {h.Shape[2]} pixels: rows and columns must be at least 1", source, h.Shape[1] == 0 ? 8 : 12);
    }

    private static void CheckLabelsHeader(IdxHeader h, string? source)
    {
        if (h.Magic != LabelsMagic)
            throw new ImageFormatException(
                "expected IDX labels (magic 0x00000801: unsigned bytes, 1 dimension [count]), found " + h.Describe(), source, 0);
    }

    // ---- core -------------------------------------------------------------------------------------------------

    private static (IdxHeader Header, byte[] Data) ReadCore(Stream stream, string? source, Action<IdxHeader> validate)
    {
        ArgumentNullException.ThrowIfNull(stream);
        using var input = Open(stream, source);
        IdxHeader header = ReadHeaderCore(input);
        validate(header);
        byte[] data = ReadData(input, header);
        return (header, data);
    }

    private static Input Open(Stream stream, string? source)
    {
        if (!stream.CanRead) throw new ArgumentException("the stream is not readable", nameof(stream));
        long? rawRemaining = null;
        if (stream.CanSeek)
        {
            try { rawRemaining = stream.Length - stream.Position; }
            catch (NotSupportedException) { rawRemaining = null; }
        }
        Span<byte> magic = stackalloc byte[2];
        int got = Fill(stream, magic);
        var prefixed = new PrefixStream(magic[..got].ToArray(), stream);
        if (got == 2 && magic[0] == 0x1F && magic[1] == 0x8B)
            return new Input(new GZipStream(prefixed, CompressionMode.Decompress, leaveOpen: true), source, compressed: true, knownLength: null);
        return new Input(prefixed, source, compressed: false, knownLength: rawRemaining);
    }

    private static IdxHeader ReadHeaderCore(Input input)
    {
        Span<byte> magic = stackalloc byte[4];
        int got = input.Read(magic);
        if (got < 4)
            throw input.Error(got == 0
                ? "empty: an IDX file starts with a 4-byte magic number"
                : $"only {got} bytes: too short for the 4-byte IDX magic number", got);
        uint magicValue = BinaryPrimitives.ReadUInt32BigEndian(magic);
        if (magic[0] != 0 || magic[1] != 0)
            throw input.Error($"not an IDX file: magic 0x{magicValue:X8} does not start with two zero bytes", 0);
        if (!IdxDataTypes.IsDefined(magic[2]))
            throw input.Error($"unknown IDX element type 0x{magic[2]:X2} in magic 0x{magicValue:X8} (known: 08 ubyte, 09 sbyte, 0B int16, 0C int32, 0D float32, 0E float64)", 2);
        var type = (IdxDataType)magic[2];
        int rank = magic[3];
        if (rank == 0)
            throw input.Error($"magic 0x{magicValue:X8} declares 0 dimensions", 3);

        var dimBytes = new byte[4 * rank];
        got = input.Read(dimBytes);
        if (got < dimBytes.Length)
            throw input.Error($"the file ends inside the header: magic 0x{magicValue:X8} declares {rank} dimensions, which need a {4 + 4 * rank}-byte header", 4 + got);
        var shape = new int[rank];
        for (int i = 0; i < rank; i++)
        {
            uint d = BinaryPrimitives.ReadUInt32BigEndian(dimBytes.AsSpan(4 * i));
            if (d > int.MaxValue)
                throw input.Error($"dimension {i} is {d}, more than {int.MaxValue}", 4 + 4 * i);
            shape[i] = (int)d;
        }
        // The element count, saturating once past Array.MaxLength (each factor is < 2^31, so no overflow);
        // a zero dimension makes it 0 whatever the others are.
        long count = Array.IndexOf(shape, 0) >= 0 ? 0 : 1;
        foreach (int d in shape)
            if (count <= Array.MaxLength) count *= d;
        var header = new IdxHeader(type, shape, input.Compressed);
        if (count > Array.MaxLength || count * type.ElementSize() > Array.MaxLength)
            throw input.Error($"{header.Describe()} declares more data than one array can hold ({Array.MaxLength} bytes)", 4);
        return header;
    }

    private static byte[] ReadData(Input input, IdxHeader header)
    {
        int headerLength = header.HeaderLength;
        int length = (int)header.DataLength;
        if (input.KnownLength is long total)
        {
            long available = total - headerLength;
            if (available < length)
                throw input.Error($"truncated: {header.Describe()} needs {length} data bytes after the {headerLength}-byte header, but only {Math.Max(available, 0)} follow", total);
            if (available > length)
                throw input.Error($"{available - length} unexpected bytes after the {length} data bytes that {header.Describe()} declares", headerLength + (long)length);
            var exact = new byte[length];
            int got = input.Read(exact);
            if (got < length)
                throw input.Error($"truncated: {header.Describe()} needs {length} data bytes after the {headerLength}-byte header, but only {got} follow", headerLength + (long)got);
            return exact;
        }

        // Unknown length (gzip or a non-seekable stream): grow as data arrives, never beyond the declared length.
        var buffer = new byte[Math.Min(length, InitialUnknownLengthBuffer)];
        int filled = 0;
        while (filled < length)
        {
            if (filled == buffer.Length)
                Array.Resize(ref buffer, (int)Math.Min(length, Math.Max(2L * buffer.Length, 1)));
            int n = input.Read(buffer.AsSpan(filled));
            if (n == 0)
                throw input.Error($"truncated: {header.Describe()} needs {length} data bytes after the {headerLength}-byte header, but only {filled} follow", headerLength + (long)filled);
            filled += n;
        }
        Span<byte> probe = stackalloc byte[1];
        if (input.Read(probe) != 0)
            throw input.Error($"unexpected bytes after the {length} data bytes that {header.Describe()} declares", headerLength + (long)length);
        return buffer;
    }

    private static Array Convert(IdxDataType type, byte[] data)
    {
        switch (type)
        {
            case IdxDataType.UInt8:
                return data;
            case IdxDataType.Int8:
                return MemoryMarshal.Cast<byte, sbyte>(data).ToArray();
            case IdxDataType.Int16:
            {
                var result = MemoryMarshal.Cast<byte, short>(data).ToArray();
                if (BitConverter.IsLittleEndian) BinaryPrimitives.ReverseEndianness(result, result);
                return result;
            }
            case IdxDataType.Int32:
            {
                var result = MemoryMarshal.Cast<byte, int>(data).ToArray();
                if (BitConverter.IsLittleEndian) BinaryPrimitives.ReverseEndianness(result, result);
                return result;
            }
            case IdxDataType.Float32:
            {
                var result = MemoryMarshal.Cast<byte, float>(data).ToArray();
                if (BitConverter.IsLittleEndian)
                {
                    var bits = MemoryMarshal.Cast<float, int>(result.AsSpan());
                    BinaryPrimitives.ReverseEndianness(bits, bits);
                }
                return result;
            }
            case IdxDataType.Float64:
            {
                var result = MemoryMarshal.Cast<byte, double>(data).ToArray();
                if (BitConverter.IsLittleEndian)
                {
                    var bits = MemoryMarshal.Cast<double, long>(result.AsSpan());
                    BinaryPrimitives.ReverseEndianness(bits, bits);
                }
                return result;
            }
            default:
                throw new ArgumentOutOfRangeException(nameof(type), type, "not an IDX element type");
        }
    }

    private static int Fill(Stream stream, Span<byte> buffer)
    {
        int total = 0;
        while (total < buffer.Length)
        {
            int n = stream.Read(buffer[total..]);
            if (n == 0) break;
            total += n;
        }
        return total;
    }

    /// <summary>The IDX byte stream (gunzipped when needed), with the source name and position for errors.</summary>
    private sealed class Input(Stream stream, string? source, bool compressed, long? knownLength) : IDisposable
    {
        public bool Compressed { get; } = compressed;

        /// <summary>Total IDX bytes available from the start, when known before reading (uncompressed, seekable).</summary>
        public long? KnownLength { get; } = knownLength;

        public long Position { get; private set; }

        public int Read(Span<byte> buffer)
        {
            int got;
            try
            {
                got = Fill(stream, buffer);
            }
            catch (InvalidDataException e)
            {
                throw Error("corrupt gzip data: " + e.Message, Position, e);
            }
            Position += got;
            return got;
        }

        public ImageFormatException Error(string message, long offset, Exception? inner = null) =>
            new(Compressed ? message + " (offsets count gunzipped bytes)" : message, source, offset, inner);

        public void Dispose()
        {
            if (Compressed) stream.Dispose(); // the GZipStream (leaveOpen: true); never the caller's stream
        }
    }

    /// <summary>Gives back the bytes already read to sniff the gzip magic, then the rest of the inner stream.</summary>
    private sealed class PrefixStream(byte[] prefix, Stream inner) : Stream
    {
        private int _used;

        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override int Read(Span<byte> buffer)
        {
            if (buffer.IsEmpty) return 0;
            if (_used < prefix.Length)
            {
                int n = Math.Min(prefix.Length - _used, buffer.Length);
                prefix.AsSpan(_used, n).CopyTo(buffer);
                _used += n;
                return n;
            }
            return inner.Read(buffer);
        }

        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}

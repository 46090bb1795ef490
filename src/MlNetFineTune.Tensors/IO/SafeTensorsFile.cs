using System.Buffers;
using System.Buffers.Binary;
using System.Diagnostics;
using System.Diagnostics.CodeAnalysis;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace MlNetFineTune.Tensors.IO;

/// <summary>
/// A read-only view of a safetensors file (Hugging Face format): an 8-byte little-endian header length
/// <c>N</c>, <c>N</c> bytes of UTF-8 JSON describing each tensor (dtype, shape, data offsets) plus an
/// optional <c>__metadata__</c> string map, then the little-endian, row-major tensor data.
/// </summary>
/// <remarks>
/// <para>
/// The whole header is validated when the file is opened, before anything proportional to the declared
/// tensor sizes is allocated; every problem raises <see cref="SafeTensorsFormatException"/> naming the
/// source and the tensor/field at fault. Validation follows the reference implementation: known dtypes,
/// non-negative integer shapes and offsets, byte sizes that match shape × dtype size (overflow-checked),
/// no duplicate names, and offsets that cover the data buffer contiguously (no holes, no overlaps, no
/// trailing bytes).
/// </para>
/// <para>
/// A file opened with <see cref="Open"/> is not loaded into memory: each read fetches just that tensor's
/// bytes with positional reads. Reads may be issued from several threads at once. Dispose the instance to
/// release the file handle.
/// </para>
/// </remarks>
public sealed class SafeTensorsFile : IDisposable
{
    /// <summary>The largest header accepted (100 MB, like the reference implementation).</summary>
    public const long MaxHeaderLength = SafeTensorsHeader.MaxHeaderLength;

    private const int ChunkBytes = 64 * 1024;

    private readonly DataSource _source;
    private readonly SafeTensorInfo[] _tensors;
    private readonly Dictionary<string, SafeTensorInfo> _byName;
    private readonly IReadOnlyList<SafeTensorInfo> _tensorsView;
    private readonly IReadOnlyDictionary<string, string> _metadata;
    private bool _disposed;

    private SafeTensorsFile(DataSource source)
    {
        _source = source;
        SourceName = source.Name;

        long total = source.Length;
        Span<byte> prefix = stackalloc byte[SafeTensorsHeader.PrefixLength];
        int prefixLength = (int)Math.Min(total, SafeTensorsHeader.PrefixLength);
        source.Read(0, prefix[..prefixLength]);
        long headerLength = SafeTensorsHeader.ReadHeaderLength(prefix[..prefixLength], total, SourceName);

        byte[] headerBytes = new byte[headerLength];
        source.Read(SafeTensorsHeader.PrefixLength, headerBytes);
        DataStart = SafeTensorsHeader.PrefixLength + headerLength;
        SafeTensorsHeader header = SafeTensorsHeader.Parse(headerBytes, total - DataStart, SourceName);

        HeaderLength = headerLength;
        DataLength = header.DataLength;
        _tensors = header.Tensors;
        _tensorsView = Array.AsReadOnly(_tensors);
        _metadata = header.Metadata.AsReadOnly();
        _byName = new Dictionary<string, SafeTensorInfo>(_tensors.Length, StringComparer.Ordinal);
        foreach (SafeTensorInfo tensor in _tensors)
        {
            _byName.Add(tensor.Name, tensor);
        }
    }

    /// <summary>The file path, or the name given when opening from memory or a stream; used in error messages.</summary>
    public string SourceName { get; }

    /// <summary>Length in bytes of the JSON header (the value of the 8-byte prefix).</summary>
    public long HeaderLength { get; }

    /// <summary>Absolute offset of the data buffer in the file (8 + <see cref="HeaderLength"/>).</summary>
    public long DataStart { get; }

    /// <summary>Length of the data buffer in bytes.</summary>
    public long DataLength { get; }

    /// <summary>All tensors, in the order their data appears in the file.</summary>
    public IReadOnlyList<SafeTensorInfo> Tensors => _tensorsView;

    /// <summary>The <c>__metadata__</c> string map of the header (empty when the header has none).</summary>
    public IReadOnlyDictionary<string, string> Metadata => _metadata;

    /// <summary>Gets the tensor called <paramref name="name"/>.</summary>
    /// <exception cref="KeyNotFoundException">There is no such tensor.</exception>
    public SafeTensorInfo this[string name] => Get(name);

    /// <summary>Whether a tensor called <paramref name="name"/> exists.</summary>
    public bool Contains(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        return _byName.ContainsKey(name);
    }

    /// <summary>Looks up a tensor by name.</summary>
    /// <returns><see langword="true"/> when the tensor exists.</returns>
    public bool TryGet(string name, [MaybeNullWhen(false)] out SafeTensorInfo info)
    {
        ArgumentNullException.ThrowIfNull(name);
        return _byName.TryGetValue(name, out info);
    }

    /// <summary>
    /// Opens a safetensors file for reading. Only the header is read now; tensor data is read on demand.
    /// </summary>
    /// <param name="path">Path of the file; it is used as <see cref="SourceName"/>.</param>
    /// <exception cref="SafeTensorsFormatException">The file is not valid safetensors.</exception>
    /// <exception cref="IOException">The file cannot be opened or read.</exception>
    public static SafeTensorsFile Open(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        SafeFileHandle handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read,
            FileShare.Read | FileShare.Delete, FileOptions.RandomAccess);
        var source = new FileSource(handle, path);
        try
        {
            return new SafeTensorsFile(source);
        }
        catch
        {
            source.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Reads safetensors content held in memory. The array is not copied: do not modify it while the
    /// returned instance is in use.
    /// </summary>
    /// <param name="bytes">The complete file contents.</param>
    /// <param name="sourceName">Name to use in error messages (defaults to <c>&lt;memory&gt;</c>).</param>
    /// <exception cref="SafeTensorsFormatException">The content is not valid safetensors.</exception>
    public static SafeTensorsFile FromBytes(byte[] bytes, string? sourceName = null)
    {
        ArgumentNullException.ThrowIfNull(bytes);
        return FromMemory(bytes, sourceName);
    }

    /// <summary>
    /// Reads safetensors content held in memory. The memory is not copied: do not modify it while the
    /// returned instance is in use.
    /// </summary>
    /// <param name="bytes">The complete file contents.</param>
    /// <param name="sourceName">Name to use in error messages (defaults to <c>&lt;memory&gt;</c>).</param>
    /// <exception cref="SafeTensorsFormatException">The content is not valid safetensors.</exception>
    public static SafeTensorsFile FromMemory(ReadOnlyMemory<byte> bytes, string? sourceName = null) =>
        new(new MemorySource(bytes, sourceName ?? "<memory>"));

    /// <summary>
    /// Reads safetensors content from a stream. A seekable stream is read on demand from its current
    /// position (which counts as the start of the file) to its end, and must not be used by others while
    /// the returned instance is in use. A non-seekable stream is read into memory: first the header, which
    /// is validated, then exactly the data it declares (the stream must end there).
    /// </summary>
    /// <param name="stream">The stream to read.</param>
    /// <param name="sourceName">Name to use in error messages (defaults to the file name of a <see cref="FileStream"/>, else <c>&lt;stream&gt;</c>).</param>
    /// <param name="leaveOpen">
    /// When <see langword="false"/> (the default) the stream is owned by this method: it is disposed with the
    /// returned instance, or right away if opening fails or the stream was non-seekable and is fully buffered.
    /// </param>
    /// <exception cref="SafeTensorsFormatException">The content is not valid safetensors.</exception>
    public static SafeTensorsFile FromStream(Stream stream, string? sourceName = null, bool leaveOpen = false)
    {
        ArgumentNullException.ThrowIfNull(stream);
        if (!stream.CanRead)
        {
            throw new ArgumentException("The stream must be readable.", nameof(stream));
        }
        string name = sourceName ?? (stream as FileStream)?.Name ?? "<stream>";

        if (!stream.CanSeek)
        {
            try
            {
                byte[] content = ReadNonSeekable(stream, name, out int length);
                return new SafeTensorsFile(new MemorySource(content.AsMemory(0, length), name));
            }
            finally
            {
                if (!leaveOpen)
                {
                    stream.Dispose();
                }
            }
        }

        var source = new StreamSource(stream, name, leaveOpen);
        try
        {
            return new SafeTensorsFile(source);
        }
        catch
        {
            source.Dispose();
            throw;
        }
    }

    /// <summary>Reads the raw little-endian bytes of a tensor (any dtype).</summary>
    /// <exception cref="KeyNotFoundException">There is no such tensor.</exception>
    /// <exception cref="NotSupportedException">The tensor is larger than an array can hold.</exception>
    public byte[] ReadRaw(string name)
    {
        SafeTensorInfo info = Get(name);
        var result = new byte[CheckArrayLength(info, info.ByteLength)];
        ReadRaw(info, result);
        return result;
    }

    /// <summary>Reads the raw little-endian bytes of a tensor into <paramref name="destination"/>, whose length must equal <see cref="SafeTensorInfo.ByteLength"/>.</summary>
    public void ReadRaw(string name, Span<byte> destination)
    {
        SafeTensorInfo info = Get(name);
        CheckDestination(info, destination.Length, info.ByteLength);
        ReadRaw(info, destination);
    }

    /// <summary>
    /// Reads a floating-point tensor as <see cref="float"/>: <c>F32</c> as is, <c>F16</c> and <c>BF16</c>
    /// widened exactly (subnormals, infinities and NaNs included).
    /// </summary>
    /// <exception cref="KeyNotFoundException">There is no such tensor.</exception>
    /// <exception cref="NotSupportedException">The tensor has another dtype, or is larger than an array can hold.</exception>
    public float[] ReadFloat32(string name)
    {
        SafeTensorInfo info = Get(name);
        CheckConvertible(info, "float", SafeTensorDType.F32, SafeTensorDType.F16, SafeTensorDType.BF16);
        var result = new float[CheckArrayLength(info, info.ElementCount)];
        ReadFloat32(info, result);
        return result;
    }

    /// <summary>
    /// Reads a floating-point tensor (<c>F32</c>, <c>F16</c>, <c>BF16</c>) into <paramref name="destination"/>,
    /// whose length must equal <see cref="SafeTensorInfo.ElementCount"/>.
    /// </summary>
    public void ReadFloat32(string name, Span<float> destination)
    {
        SafeTensorInfo info = Get(name);
        CheckConvertible(info, "float", SafeTensorDType.F32, SafeTensorDType.F16, SafeTensorDType.BF16);
        CheckDestination(info, destination.Length, info.ElementCount);
        ReadFloat32(info, destination);
    }

    /// <summary>
    /// Reads an integer tensor as <see cref="long"/>: from <c>I64</c> or <c>I32</c> (also <c>I16</c>,
    /// <c>I8</c>, <c>U8</c>, <c>U16</c>, <c>U32</c>, and <c>U64</c> values up to <see cref="long.MaxValue"/>).
    /// </summary>
    /// <exception cref="KeyNotFoundException">There is no such tensor.</exception>
    /// <exception cref="NotSupportedException">The tensor has a non-integer dtype, or is larger than an array can hold.</exception>
    /// <exception cref="SafeTensorsFormatException">A <c>U64</c> value does not fit.</exception>
    public long[] ReadInt64(string name)
    {
        SafeTensorInfo info = Get(name);
        CheckConvertible(info, "long", IntegerDTypes);
        var result = new long[CheckArrayLength(info, info.ElementCount)];
        ReadInt64(info, result);
        return result;
    }

    /// <summary>Reads an integer tensor into <paramref name="destination"/>, whose length must equal <see cref="SafeTensorInfo.ElementCount"/>. See <see cref="ReadInt64(string)"/>.</summary>
    public void ReadInt64(string name, Span<long> destination)
    {
        SafeTensorInfo info = Get(name);
        CheckConvertible(info, "long", IntegerDTypes);
        CheckDestination(info, destination.Length, info.ElementCount);
        ReadInt64(info, destination);
    }

    /// <summary>
    /// Reads an integer tensor as <see cref="int"/>: from <c>I32</c>, or from <c>I64</c> with a range check
    /// (also <c>I16</c>, <c>I8</c>, <c>U8</c>, <c>U16</c>, and range-checked <c>U32</c>/<c>U64</c>).
    /// </summary>
    /// <exception cref="KeyNotFoundException">There is no such tensor.</exception>
    /// <exception cref="NotSupportedException">The tensor has a non-integer dtype, or is larger than an array can hold.</exception>
    /// <exception cref="SafeTensorsFormatException">A value does not fit in an <see cref="int"/>; the message gives the tensor, index and value.</exception>
    public int[] ReadInt32(string name)
    {
        SafeTensorInfo info = Get(name);
        CheckConvertible(info, "int", IntegerDTypes);
        var result = new int[CheckArrayLength(info, info.ElementCount)];
        ReadInt32(info, result);
        return result;
    }

    /// <summary>Reads an integer tensor into <paramref name="destination"/>, whose length must equal <see cref="SafeTensorInfo.ElementCount"/>. See <see cref="ReadInt32(string)"/>.</summary>
    public void ReadInt32(string name, Span<int> destination)
    {
        SafeTensorInfo info = Get(name);
        CheckConvertible(info, "int", IntegerDTypes);
        CheckDestination(info, destination.Length, info.ElementCount);
        ReadInt32(info, destination);
    }

    /// <summary>Releases the file handle or stream (a no-op for in-memory content).</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }
        _disposed = true;
        _source.Dispose();
    }

    // ----- lookup and argument checks -----

    private static readonly SafeTensorDType[] IntegerDTypes =
    [
        SafeTensorDType.I64, SafeTensorDType.I32, SafeTensorDType.I16, SafeTensorDType.I8,
        SafeTensorDType.U8, SafeTensorDType.U16, SafeTensorDType.U32, SafeTensorDType.U64,
    ];

    private SafeTensorInfo Get(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (!_byName.TryGetValue(name, out SafeTensorInfo? info))
        {
            throw new KeyNotFoundException(
                $"Tensor '{SafeTensorsFormatException.Shorten(name)}' not found in safetensors data '{SourceName}'.");
        }
        return info;
    }

    private void CheckConvertible(SafeTensorInfo info, string target, params ReadOnlySpan<SafeTensorDType> supported)
    {
        foreach (SafeTensorDType candidate in supported)
        {
            if (candidate == info.DType)
            {
                return;
            }
        }
        throw new NotSupportedException(
            $"Tensor '{SafeTensorsFormatException.Shorten(info.Name)}' in '{SourceName}' has dtype {info.DType}, which cannot be read as {target} " +
            $"(supported: {string.Join(", ", supported.ToArray())}).");
    }

    private int CheckArrayLength(SafeTensorInfo info, long length)
    {
        if (length > Array.MaxLength)
        {
            throw new NotSupportedException(
                $"Tensor '{SafeTensorsFormatException.Shorten(info.Name)}' in '{SourceName}' has {length} elements/bytes, more than an array can hold.");
        }
        return (int)length;
    }

    private static void CheckDestination(SafeTensorInfo info, int actual, long expected)
    {
        if (actual != expected)
        {
            throw new ArgumentException(
                $"The destination holds {actual} elements but tensor '{SafeTensorsFormatException.Shorten(info.Name)}' needs {expected}.",
                "destination");
        }
    }

    // ----- reading -----

    private void ReadRaw(SafeTensorInfo info, Span<byte> destination) =>
        _source.Read(DataStart + info.DataBegin, destination);

    private void ReadFloat32(SafeTensorInfo info, Span<float> destination)
    {
        switch (info.DType)
        {
            case SafeTensorDType.F32:
                ReadRaw(info, MemoryMarshal.AsBytes(destination));
                if (!BitConverter.IsLittleEndian)
                {
                    Span<uint> bits = MemoryMarshal.Cast<float, uint>(destination);
                    BinaryPrimitives.ReverseEndianness(bits, bits);
                }
                break;
            case SafeTensorDType.F16:
                ReadConverted<float, HalfToSingle>(info, destination);
                break;
            case SafeTensorDType.BF16:
                ReadConverted<float, BFloat16ToSingle>(info, destination);
                break;
            default:
                throw new UnreachableException();
        }
    }

    private void ReadInt64(SafeTensorInfo info, Span<long> destination)
    {
        switch (info.DType)
        {
            case SafeTensorDType.I64:
                ReadRaw(info, MemoryMarshal.AsBytes(destination));
                if (!BitConverter.IsLittleEndian)
                {
                    BinaryPrimitives.ReverseEndianness(destination, destination);
                }
                break;
            case SafeTensorDType.I32: ReadConverted<long, IntegerConverter<int, long>>(info, destination); break;
            case SafeTensorDType.I16: ReadConverted<long, IntegerConverter<short, long>>(info, destination); break;
            case SafeTensorDType.I8: ReadConverted<long, IntegerConverter<sbyte, long>>(info, destination); break;
            case SafeTensorDType.U8: ReadConverted<long, IntegerConverter<byte, long>>(info, destination); break;
            case SafeTensorDType.U16: ReadConverted<long, IntegerConverter<ushort, long>>(info, destination); break;
            case SafeTensorDType.U32: ReadConverted<long, IntegerConverter<uint, long>>(info, destination); break;
            case SafeTensorDType.U64: ReadConverted<long, IntegerConverter<ulong, long>>(info, destination); break;
            default: throw new UnreachableException();
        }
    }

    private void ReadInt32(SafeTensorInfo info, Span<int> destination)
    {
        switch (info.DType)
        {
            case SafeTensorDType.I32:
                ReadRaw(info, MemoryMarshal.AsBytes(destination));
                if (!BitConverter.IsLittleEndian)
                {
                    BinaryPrimitives.ReverseEndianness(destination, destination);
                }
                break;
            case SafeTensorDType.I64: ReadConverted<int, IntegerConverter<long, int>>(info, destination); break;
            case SafeTensorDType.I16: ReadConverted<int, IntegerConverter<short, int>>(info, destination); break;
            case SafeTensorDType.I8: ReadConverted<int, IntegerConverter<sbyte, int>>(info, destination); break;
            case SafeTensorDType.U8: ReadConverted<int, IntegerConverter<byte, int>>(info, destination); break;
            case SafeTensorDType.U16: ReadConverted<int, IntegerConverter<ushort, int>>(info, destination); break;
            case SafeTensorDType.U32: ReadConverted<int, IntegerConverter<uint, int>>(info, destination); break;
            case SafeTensorDType.U64: ReadConverted<int, IntegerConverter<ulong, int>>(info, destination); break;
            default: throw new UnreachableException();
        }
    }

    /// <summary>Reads a tensor chunk by chunk, converting each element with <typeparamref name="TConverter"/>.</summary>
    private void ReadConverted<T, TConverter>(SafeTensorInfo info, Span<T> destination)
        where TConverter : IElementConverter<T>
    {
        int sourceSize = TConverter.SourceSize;
        long position = DataStart + info.DataBegin;
        long byteCount = (long)destination.Length * sourceSize;
        if (byteCount <= int.MaxValue && _source.TryGetSpan(position, (int)byteCount, out ReadOnlySpan<byte> whole))
        {
            ConvertChunk<T, TConverter>(info, whole, destination, 0);
            return;
        }

        byte[] buffer = ArrayPool<byte>.Shared.Rent(ChunkBytes);
        try
        {
            int perChunk = ChunkBytes / sourceSize;
            for (int done = 0; done < destination.Length; done += perChunk)
            {
                int count = Math.Min(perChunk, destination.Length - done);
                Span<byte> chunk = buffer.AsSpan(0, count * sourceSize);
                _source.Read(position + (long)done * sourceSize, chunk);
                ConvertChunk<T, TConverter>(info, chunk, destination.Slice(done, count), done);
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private void ConvertChunk<T, TConverter>(SafeTensorInfo info, ReadOnlySpan<byte> source, Span<T> destination, long firstIndex)
        where TConverter : IElementConverter<T>
    {
        int bad = TConverter.Convert(source, destination);
        if (bad >= 0)
        {
            ReadOnlySpan<byte> raw = source.Slice(bad * TConverter.SourceSize, TConverter.SourceSize);
            throw new SafeTensorsFormatException(SourceName, info.Name, null,
                $"element {firstIndex + bad} ({TConverter.Describe(raw)}) does not fit in {typeof(T).Name}.");
        }
    }

    private interface IElementConverter<T>
    {
        /// <summary>Bytes per source element.</summary>
        static abstract int SourceSize { get; }

        /// <summary>Converts all elements; returns -1, or the index of the first element that does not fit.</summary>
        static abstract int Convert(ReadOnlySpan<byte> source, Span<T> destination);

        /// <summary>Text for an offending source element.</summary>
        static abstract string Describe(ReadOnlySpan<byte> element);
    }

    private readonly struct HalfToSingle : IElementConverter<float>
    {
        public static int SourceSize => 2;

        public static int Convert(ReadOnlySpan<byte> source, Span<float> destination)
        {
            for (int i = 0; i < destination.Length; i++)
            {
                ushort bits = BinaryPrimitives.ReadUInt16LittleEndian(source.Slice(i * 2, 2));
                destination[i] = (float)BitConverter.UInt16BitsToHalf(bits);
            }
            return -1;
        }

        public static string Describe(ReadOnlySpan<byte> element) =>
            BinaryPrimitives.ReadUInt16LittleEndian(element).ToString("x4", System.Globalization.CultureInfo.InvariantCulture);
    }

    private readonly struct BFloat16ToSingle : IElementConverter<float>
    {
        public static int SourceSize => 2;

        public static int Convert(ReadOnlySpan<byte> source, Span<float> destination)
        {
            for (int i = 0; i < destination.Length; i++)
            {
                uint bits = BinaryPrimitives.ReadUInt16LittleEndian(source.Slice(i * 2, 2));
                destination[i] = BitConverter.UInt32BitsToSingle(bits << 16);
            }
            return -1;
        }

        public static string Describe(ReadOnlySpan<byte> element) =>
            BinaryPrimitives.ReadUInt16LittleEndian(element).ToString("x4", System.Globalization.CultureInfo.InvariantCulture);
    }

    private readonly struct IntegerConverter<TSource, TTarget> : IElementConverter<TTarget>
        where TSource : unmanaged, IBinaryInteger<TSource>
        where TTarget : unmanaged, IBinaryInteger<TTarget>
    {
        public static int SourceSize => Unsafe.SizeOf<TSource>();

        public static int Convert(ReadOnlySpan<byte> source, Span<TTarget> destination)
        {
            int size = Unsafe.SizeOf<TSource>();
            bool unsigned = !TSource.IsNegative(TSource.AllBitsSet);
            for (int i = 0; i < destination.Length; i++)
            {
                TSource value = TSource.ReadLittleEndian(source.Slice(i * size, size), unsigned);
                TTarget converted = TTarget.CreateSaturating(value);
                if (TSource.CreateSaturating(converted) != value)
                {
                    return i;
                }
                destination[i] = converted;
            }
            return -1;
        }

        public static string Describe(ReadOnlySpan<byte> element) =>
            TSource.ReadLittleEndian(element, !TSource.IsNegative(TSource.AllBitsSet)).ToString(null, System.Globalization.CultureInfo.InvariantCulture);
    }

    // ----- data sources -----

    private static byte[] ReadNonSeekable(Stream stream, string name, out int length)
    {
        // Grow with the data actually received, so a lying header cannot make us allocate much.
        using var buffer = new MemoryStream();
        int prefixLength = (int)CopyAtMost(stream, buffer, SafeTensorsHeader.PrefixLength);
        long headerLength = SafeTensorsHeader.ReadHeaderLength(buffer.GetBuffer().AsSpan(0, prefixLength), null, name);
        long gotHeader = CopyAtMost(stream, buffer, headerLength);
        if (gotHeader < headerLength)
        {
            throw new SafeTensorsFormatException(name, null, null,
                $"header length {headerLength} exceeds the {gotHeader} bytes that follow the length prefix.");
        }

        SafeTensorsHeader header = SafeTensorsHeader.Parse(
            buffer.GetBuffer().AsMemory(SafeTensorsHeader.PrefixLength, (int)headerLength), null, name);
        long room = Array.MaxLength - buffer.Length;
        long wanted = Math.Min(header.DataLength, room);
        long gotData = CopyAtMost(stream, buffer, wanted);
        if (gotData < wanted)
        {
            throw new SafeTensorsFormatException(name, null, null,
                $"the header declares {header.DataLength} bytes of tensor data but the stream ends after {gotData}.");
        }
        if (header.DataLength > room)
        {
            throw new NotSupportedException(
                $"Safetensors stream '{name}' is too large to buffer in memory; open the file by path or use a seekable stream.");
        }
        if (stream.ReadByte() >= 0)
        {
            throw new SafeTensorsFormatException(name, null, null,
                $"the stream continues after the {header.DataLength} bytes of tensor data the header declares; the data buffer must be covered exactly.");
        }

        length = (int)buffer.Length;
        return buffer.GetBuffer();
    }

    private static long CopyAtMost(Stream source, MemoryStream destination, long count)
    {
        byte[] chunk = ArrayPool<byte>.Shared.Rent(ChunkBytes);
        try
        {
            long copied = 0;
            while (copied < count)
            {
                int read = source.Read(chunk, 0, (int)Math.Min(chunk.Length, count - copied));
                if (read == 0)
                {
                    break;
                }
                destination.Write(chunk, 0, read);
                copied += read;
            }
            return copied;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(chunk);
        }
    }

    private abstract class DataSource(string name) : IDisposable
    {
        public string Name { get; } = name;

        public abstract long Length { get; }

        /// <summary>Fills <paramref name="destination"/> from <paramref name="position"/>; a short read is a format error.</summary>
        public abstract void Read(long position, Span<byte> destination);

        public virtual bool TryGetSpan(long position, int length, out ReadOnlySpan<byte> span)
        {
            span = default;
            return false;
        }

        public virtual void Dispose()
        {
        }

        protected SafeTensorsFormatException Truncated(long position, long wanted) =>
            new(Name, null, null,
                $"unexpected end of data reading {wanted} bytes at offset {position} (the file was truncated or changed after it was opened).");
    }

    private sealed class MemorySource(ReadOnlyMemory<byte> memory, string name) : DataSource(name)
    {
        public override long Length => memory.Length;

        public override void Read(long position, Span<byte> destination)
        {
            if (position < 0 || position > memory.Length - destination.Length)
            {
                throw Truncated(position, destination.Length);
            }
            memory.Span.Slice((int)position, destination.Length).CopyTo(destination);
        }

        public override bool TryGetSpan(long position, int length, out ReadOnlySpan<byte> span)
        {
            if (position < 0 || position > memory.Length - length)
            {
                throw Truncated(position, length);
            }
            span = memory.Span.Slice((int)position, length);
            return true;
        }
    }

    private sealed class FileSource(SafeFileHandle handle, string name) : DataSource(name)
    {
        public override long Length => RandomAccess.GetLength(handle);

        public override void Read(long position, Span<byte> destination)
        {
            int done = 0;
            while (done < destination.Length)
            {
                int read = RandomAccess.Read(handle, destination[done..], position + done);
                if (read == 0)
                {
                    throw Truncated(position, destination.Length);
                }
                done += read;
            }
        }

        public override void Dispose() => handle.Dispose();
    }

    private sealed class StreamSource : DataSource
    {
        private readonly Stream _stream;
        private readonly long _origin;
        private readonly long _length;
        private readonly bool _leaveOpen;
        private readonly Lock _lock = new();

        public StreamSource(Stream stream, string name, bool leaveOpen)
            : base(name)
        {
            _stream = stream;
            _origin = stream.Position;
            _length = Math.Max(0, stream.Length - _origin);
            _leaveOpen = leaveOpen;
        }

        public override long Length => _length;

        public override void Read(long position, Span<byte> destination)
        {
            lock (_lock)
            {
                _stream.Position = _origin + position;
                int done = 0;
                while (done < destination.Length)
                {
                    int read = _stream.Read(destination[done..]);
                    if (read == 0)
                    {
                        throw Truncated(position, destination.Length);
                    }
                    done += read;
                }
            }
        }

        public override void Dispose()
        {
            if (!_leaveOpen)
            {
                _stream.Dispose();
            }
        }
    }
}

using System.Buffers.Binary;

namespace MlNetFineTune.Imaging;

/// <summary>Chunk type codes (the 4 ASCII letters as a big-endian integer).</summary>
internal static class PngChunkType
{
    public const uint IHDR = 0x49484452;
    public const uint PLTE = 0x504C5445;
    public const uint IDAT = 0x49444154;
    public const uint IEND = 0x49454E44;
    public const uint tRNS = 0x74524E53;
    public const uint CgBI = 0x43674249;

    public static string Name(uint type) => string.Create(4, type, static (s, t) =>
    {
        for (int i = 0; i < 4; i++) s[i] = (char)((t >> (24 - 8 * i)) & 0xFF);
    });

    /// <summary>Each of the 4 bytes is an ASCII letter (A-Z, a-z).</summary>
    public static bool IsValid(uint type)
    {
        for (int i = 0; i < 4; i++)
        {
            uint b = (type >> (24 - 8 * i)) & 0xFF;
            if (!(b is >= 'A' and <= 'Z' || b is >= 'a' and <= 'z')) return false;
        }
        return true;
    }

    /// <summary>Critical chunks have an upper-case first letter (bit 5 of the first byte clear).</summary>
    public static bool IsCritical(uint type) => (type & 0x20000000u) == 0;
}

/// <summary>A chunk header: where it starts (its length field), its data length and type.</summary>
internal readonly record struct PngChunk(long Offset, int Length, uint Type)
{
    public string Name => PngChunkType.Name(Type);
}

/// <summary>
/// Sequential chunk reader over a (possibly non-seekable) stream. Tracks the byte position relative to where
/// the stream was when decoding started, verifies every chunk's CRC, and never reads ahead of the current chunk.
/// </summary>
internal sealed class PngChunkReader
{
    private readonly Stream _stream;
    private byte[]? _skipBuffer;

    public PngChunkReader(Stream stream, string? source)
    {
        _stream = stream;
        Source = source;
    }

    public string? Source { get; }

    /// <summary>Bytes consumed so far.</summary>
    public long Position { get; private set; }

    public ImageFormatException Error(string message, long? offset, Exception? inner = null) => new(message, Source, offset, inner);

    /// <summary>Reads 1..buffer.Length bytes; 0 only at end of stream (or for an empty buffer).</summary>
    public int ReadSome(Span<byte> buffer)
    {
        if (buffer.IsEmpty) return 0;
        int n = _stream.Read(buffer);
        Position += n;
        return n;
    }

    /// <summary>Reads until <paramref name="buffer"/> is full or the stream ends; returns the count read.</summary>
    public int ReadFull(Span<byte> buffer)
    {
        int total = 0;
        while (total < buffer.Length)
        {
            int n = ReadSome(buffer[total..]);
            if (n == 0) break;
            total += n;
        }
        return total;
    }

    /// <summary>Reads the next chunk header; false when the stream ends exactly at a chunk boundary.</summary>
    public bool TryReadChunkHeader(out PngChunk chunk)
    {
        long offset = Position;
        Span<byte> h = stackalloc byte[8];
        int n = ReadFull(h);
        if (n == 0)
        {
            chunk = default;
            return false;
        }
        if (n < 8) throw Error($"file ends inside a chunk header ({n} of 8 bytes)", offset);
        uint length = BinaryPrimitives.ReadUInt32BigEndian(h);
        uint type = BinaryPrimitives.ReadUInt32BigEndian(h[4..]);
        if (!PngChunkType.IsValid(type))
            throw Error($"invalid chunk type bytes 0x{type:X8} (not 4 ASCII letters): corrupt or not PNG data", offset);
        if (length > int.MaxValue)
            throw Error($"chunk '{PngChunkType.Name(type)}' declares length {length}, above the PNG limit of 2^31-1", offset);
        chunk = new PngChunk(offset, (int)length, type);
        return true;
    }

    /// <summary>The running CRC after the chunk's type bytes (the CRC covers type and data).</summary>
    public static uint StartCrc(in PngChunk chunk)
    {
        Span<byte> t = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(t, chunk.Type);
        return PngCrc32.Update(PngCrc32.Initial, t);
    }

    /// <summary>Reads the whole data of a (small, length-checked) chunk and verifies its CRC.</summary>
    public byte[] ReadData(in PngChunk chunk)
    {
        var data = new byte[chunk.Length];
        int n = ReadFull(data);
        if (n < chunk.Length) throw Truncated(chunk, n);
        VerifyCrc(chunk, PngCrc32.Update(StartCrc(chunk), data));
        return data;
    }

    /// <summary>Skips a chunk's data without holding it in memory, verifying its CRC.</summary>
    public void Skip(in PngChunk chunk)
    {
        _skipBuffer ??= new byte[8192];
        uint crc = StartCrc(chunk);
        long remaining = chunk.Length;
        while (remaining > 0)
        {
            int n = ReadSome(_skipBuffer.AsSpan(0, (int)Math.Min(remaining, _skipBuffer.Length)));
            if (n == 0) throw Truncated(chunk, chunk.Length - remaining);
            crc = PngCrc32.Update(crc, _skipBuffer.AsSpan(0, n));
            remaining -= n;
        }
        VerifyCrc(chunk, crc);
    }

    /// <summary>Reads the 4-byte CRC that follows the chunk data and compares it with the running value.</summary>
    public void VerifyCrc(in PngChunk chunk, uint runningCrc)
    {
        Span<byte> b = stackalloc byte[4];
        int n = ReadFull(b);
        if (n < 4) throw Error($"file ends inside chunk '{chunk.Name}' (its CRC is missing)", chunk.Offset);
        uint stored = BinaryPrimitives.ReadUInt32BigEndian(b);
        uint computed = PngCrc32.Finish(runningCrc);
        if (stored != computed)
            throw Error($"CRC mismatch in chunk '{chunk.Name}' (stored 0x{stored:X8}, computed 0x{computed:X8}): the file is corrupt", chunk.Offset);
    }

    public ImageFormatException Truncated(in PngChunk chunk, long got) =>
        Error($"file ends inside chunk '{chunk.Name}' after {got} of its {chunk.Length} data bytes", chunk.Offset);
}

/// <summary>
/// The concatenated data of consecutive IDAT chunks as a read-only stream, pulled one chunk at a time (CRCs are
/// verified as each chunk is finished). Ends at the first non-IDAT chunk, whose header is left in
/// <see cref="Pending"/>, or at a clean end of file (<see cref="Pending"/> null).
/// </summary>
internal sealed class PngIdatStream : Stream
{
    private readonly PngChunkReader _reader;
    private PngChunk _current;
    private long _remaining;
    private uint _crc;
    private bool _ended;
    private bool _draining;

    public PngIdatStream(PngChunkReader reader, PngChunk first)
    {
        _reader = reader;
        Begin(first);
    }

    /// <summary>The chunk being read (for error offsets).</summary>
    public PngChunk Current => _current;

    /// <summary>
    /// True once a read (other than <see cref="Drain"/> or <see cref="CheckCurrentChunk"/>) found the IDAT run
    /// exhausted. The inflater only asks for more input while its zlib stream is unfinished, so after the image data
    /// this means the zlib stream was cut short (end of deflate data and Adler-32 trailer missing).
    /// </summary>
    public bool RanDry { get; private set; }

    /// <summary>True once a read of the underlying stream has thrown.</summary>
    public bool SourceFailed { get; private set; }

    /// <summary>After the end: the header of the chunk that followed the IDAT run, or null at end of file.</summary>
    public PngChunk? Pending { get; private set; }

    private void Begin(PngChunk chunk)
    {
        _current = chunk;
        _remaining = chunk.Length;
        _crc = PngChunkReader.StartCrc(chunk);
    }

    public override int Read(Span<byte> buffer)
    {
        try
        {
            return ReadCore(buffer);
        }
        catch (IOException)
        {
            SourceFailed = true; // lets the inflating code tell the caller's own I/O errors from zlib's
            throw;
        }
    }

    private int ReadCore(Span<byte> buffer)
    {
        if (buffer.IsEmpty) return 0;
        while (!_ended)
        {
            if (_remaining > 0)
            {
                int n = _reader.ReadSome(buffer[..(int)Math.Min(buffer.Length, _remaining)]);
                if (n == 0) throw _reader.Truncated(_current, _current.Length - _remaining);
                _crc = PngCrc32.Update(_crc, buffer[..n]);
                _remaining -= n;
                return n;
            }
            _reader.VerifyCrc(_current, _crc);
            if (!_reader.TryReadChunkHeader(out var next))
            {
                _ended = true;
            }
            else if (next.Type == PngChunkType.IDAT)
            {
                Begin(next);
            }
            else
            {
                Pending = next;
                _ended = true;
            }
        }
        if (!_draining) RanDry = true;
        return 0;
    }

    /// <summary>
    /// Reads the rest of the current chunk and verifies its CRC (throwing the CRC or truncation error). Called
    /// before reporting a problem found in the decompressed data, so a damaged chunk is reported as such rather
    /// than as the garbage it decompresses to. Everything before the current chunk was already CRC-checked.
    /// </summary>
    public void CheckCurrentChunk()
    {
        if (_ended) return;
        Span<byte> sink = stackalloc byte[4096];
        while (_remaining > 0)
        {
            int n = _reader.ReadSome(sink[..(int)Math.Min(sink.Length, _remaining)]);
            if (n == 0) throw _reader.Truncated(_current, _current.Length - _remaining);
            _crc = PngCrc32.Update(_crc, sink[..n]);
            _remaining -= n;
        }
        _reader.VerifyCrc(_current, _crc);
        _ended = true; // not read further: an error is about to be thrown
    }

    /// <summary>Consumes (and CRC-checks) whatever is left of the IDAT run.</summary>
    public void Drain()
    {
        _draining = true;
        Span<byte> sink = stackalloc byte[4096];
        while (Read(sink) > 0) { }
    }

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));
    public override int ReadByte()
    {
        Span<byte> one = stackalloc byte[1];
        return Read(one) == 1 ? one[0] : -1;
    }

    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
    public override void Flush() { }
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
}

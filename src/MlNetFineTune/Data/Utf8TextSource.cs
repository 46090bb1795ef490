using System.Buffers;
using System.Text;
using System.Text.Unicode;

namespace MlNetFineTune.Data;

/// <summary>
/// Streams characters out of UTF-8 bytes, strictly: an invalid byte is reported (as a
/// <see cref="DataFormatException"/> with its byte offset) when the reader reaches it, not when the block that
/// holds it is decoded, so the line and column are exact. Tracks the 1-based line and column (in code points) of
/// the next character; CRLF, LF and a lone CR each end a line. Skips a leading BOM.
/// </summary>
internal sealed class Utf8TextSource : IDisposable
{
    private const int BufferSize = 1 << 16;
    private static readonly SearchValues<char> s_lineBreaks = SearchValues.Create("\r\n");

    private readonly Stream _stream;
    private readonly bool _leaveOpen;
    private readonly byte[] _bytes = new byte[BufferSize];
    private readonly char[] _chars = new char[BufferSize];
    private int _byteCount;        // undecoded bytes at the start of _bytes
    private long _byteBase;        // offset in the stream of _bytes[0]
    private bool _streamEnded;
    private int _charPos, _charLen;
    private long _invalidOffset = -1;
    private byte _invalidByte;
    private bool _atStart = true;

    internal Utf8TextSource(Stream stream, string filePath, bool compressed, bool leaveOpen = false)
    {
        _stream = stream;
        _leaveOpen = leaveOpen;
        FilePath = filePath;
        IsCompressed = compressed;
    }

    internal static Utf8TextSource Open(string path)
    {
        var stream = DataFiles.OpenRead(path, out bool compressed);
        return new Utf8TextSource(stream, path, compressed);
    }

    internal string FilePath { get; }

    internal bool IsCompressed { get; }

    /// <summary>1-based line of the next character.</summary>
    internal int Line { get; private set; } = 1;

    /// <summary>1-based column (code points) of the next character.</summary>
    internal int Column { get; private set; } = 1;

    internal DataFormatException Error(int line, int column, string reason) => new(FilePath, line, column, reason);

    internal DataFormatException Error(string reason) => new(FilePath, Line, Column, reason);

    /// <summary>The next character without consuming it; -1 at the end of the data or before an invalid byte.</summary>
    internal int Peek() => _charPos < _charLen || Fill() ? _chars[_charPos] : -1;

    /// <summary>Consumes the next character; -1 at the end; throws at an invalid byte.</summary>
    internal int Read()
    {
        if (_charPos >= _charLen && !Fill())
        {
            ThrowIfInvalid();
            return -1;
        }
        char c = _chars[_charPos++];
        if (c == '\n')
        {
            Line++;
            Column = 1;
        }
        else if (c == '\r')
        {
            if (Peek() != '\n')
            {
                Line++;
                Column = 1;
            }
        }
        else if (!char.IsLowSurrogate(c))
        {
            Column++;
        }
        return c;
    }

    /// <summary>
    /// Consumes characters up to (not including) the first of <paramref name="stops"/>, appending them to
    /// <paramref name="sink"/> when given. <paramref name="stops"/> must contain CR and LF. Returns the stop
    /// character, or -1 at the end of the data (or before an invalid byte: call <see cref="ThrowIfInvalid"/>).
    /// </summary>
    internal int ReadUntil(SearchValues<char> stops, StringBuilder? sink)
    {
        while (true)
        {
            if (_charPos >= _charLen && !Fill())
            {
                return -1;
            }
            var span = _chars.AsSpan(_charPos, _charLen - _charPos);
            int i = span.IndexOfAny(stops);
            var chunk = i < 0 ? span : span[..i];
            sink?.Append(chunk);
            Column += CodePoints(chunk);
            _charPos += chunk.Length;
            if (i >= 0)
            {
                return span[i];
            }
        }
    }

    /// <summary>Reads one line without its terminator into <paramref name="line"/>; false at the end of the data.</summary>
    internal bool ReadLine(StringBuilder line)
    {
        line.Clear();
        int stop = ReadUntil(s_lineBreaks, line);
        if (stop < 0)
        {
            ThrowIfInvalid();
            return line.Length > 0;
        }
        Read();
        if (stop == '\r' && Peek() == '\n')
        {
            Read();
        }
        return true;
    }

    /// <summary>Throws the pending invalid-UTF-8 error, if the reader has reached it.</summary>
    internal void ThrowIfInvalid()
    {
        if (_invalidOffset >= 0 && _charPos >= _charLen)
        {
            string where = IsCompressed ? " of the decompressed data" : "";
            throw new DataFormatException(FilePath, Line, Column,
                $"invalid UTF-8: byte 0x{_invalidByte:X2} at byte offset {_invalidOffset}{where} does not start a valid UTF-8 sequence; save the file as UTF-8",
                _invalidOffset);
        }
    }

    private static int CodePoints(ReadOnlySpan<char> chunk)
    {
        int n = chunk.Length;
        if (chunk.ContainsAnyInRange('\uDC00', '\uDFFF'))
        {
            foreach (char c in chunk)
            {
                if (char.IsLowSurrogate(c))
                {
                    n--;
                }
            }
        }
        return n;
    }

    private bool Fill()
    {
        while (_charPos >= _charLen)
        {
            if (_invalidOffset >= 0)
            {
                return false;
            }
            if (!_streamEnded && _byteCount < _bytes.Length)
            {
                int n = ReadStream(_bytes.AsSpan(_byteCount));
                if (n == 0)
                {
                    _streamEnded = true;
                }
                _byteCount += n;
            }
            if (_byteCount == 0 && _streamEnded)
            {
                return false;
            }
            var status = Utf8.ToUtf16(_bytes.AsSpan(0, _byteCount), _chars, out int read, out int written,
                replaceInvalidSequences: false, isFinalBlock: _streamEnded);
            _charPos = 0;
            _charLen = written;
            if (status == System.Buffers.OperationStatus.InvalidData)
            {
                _invalidOffset = _byteBase + read;
                _invalidByte = _bytes[read];
            }
            Buffer.BlockCopy(_bytes, read, _bytes, 0, _byteCount - read);
            _byteCount -= read;
            _byteBase += read;
            if (_atStart && _charLen > 0)
            {
                _atStart = false;
                if (_chars[0] == '\uFEFF')
                {
                    _charPos = 1;
                }
            }
        }
        return true;
    }

    private int ReadStream(Span<byte> buffer)
    {
        try
        {
            return _stream.Read(buffer);
        }
        catch (InvalidDataException ex)
        {
            throw new DataFormatException(FilePath, Line, Column,
                $"corrupt gzip data after {_byteBase + _byteCount} decompressed bytes: {ex.Message}",
                _byteBase + _byteCount, ex);
        }
    }

    public void Dispose()
    {
        if (!_leaveOpen)
        {
            _stream.Dispose();
        }
    }
}

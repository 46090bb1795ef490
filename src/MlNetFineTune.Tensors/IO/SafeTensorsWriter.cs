using System.Buffers.Binary;
using System.Globalization;
using System.Text;

namespace MlNetFineTune.Tensors.IO;

/// <summary>
/// Writes safetensors files that are byte-for-byte what the reference implementation
/// (<c>safetensors.serialize</c> / <c>save_file</c>) produces for the same tensors: tensors are laid
/// out by descending dtype alignment (the order of <see cref="SafeTensorDType"/>, so <c>I64</c> before
/// <c>F32</c> before <c>F16</c>) and then by name (ordinal UTF-8), the header is compact JSON with
/// <c>__metadata__</c> first, and it is padded with spaces to a multiple of 8 bytes.
/// </summary>
/// <remarks>
/// Metadata keys are written in ordinal order (the reference writes them in hash order, so for more
/// than one key its output is not deterministic anyway).
/// </remarks>
public static class SafeTensorsWriter
{
    /// <summary>The largest header written (100 MB; readers reject larger ones).</summary>
    public const long MaxHeaderLength = SafeTensorsHeader.MaxHeaderLength;

    private const int ChunkBytes = 64 * 1024;

    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>
    /// Writes a safetensors file atomically: the content goes to a temporary file in the same directory,
    /// which is flushed to disk and then moved over <paramref name="path"/>. If anything fails (including
    /// the enumeration of <paramref name="tensors"/>), the temporary file is deleted and an existing file
    /// at <paramref name="path"/> is left untouched.
    /// </summary>
    /// <param name="path">Destination file.</param>
    /// <param name="tensors">The tensors; names must be unique.</param>
    /// <param name="metadata">Optional <c>__metadata__</c> string map; omitted from the header when <see langword="null"/>.</param>
    /// <exception cref="ArgumentException">Duplicate or invalid names, invalid strings, a header over 100 MB, or an <c>I32</c> value out of range.</exception>
    public static void Write(string path, IEnumerable<SafeTensorWriteEntry> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        Prepared prepared = Prepare(tensors, metadata);

        string fullPath = Path.GetFullPath(path);
        string directory = Path.GetDirectoryName(fullPath) ?? Directory.GetCurrentDirectory();
        string temp = Path.Combine(directory, $".{Path.GetFileName(fullPath)}.{Guid.NewGuid():N}.tmp");
        try
        {
            using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, bufferSize: ChunkBytes))
            {
                WritePrepared(stream, prepared);
                stream.Flush(flushToDisk: true);
            }
            File.Move(temp, fullPath, overwrite: true);
        }
        catch
        {
            TryDelete(temp);
            throw;
        }
    }

    /// <summary>Writes safetensors content to <paramref name="destination"/> (which is left open).</summary>
    /// <param name="destination">A writable stream.</param>
    /// <param name="tensors">The tensors; names must be unique.</param>
    /// <param name="metadata">Optional <c>__metadata__</c> string map; omitted from the header when <see langword="null"/>.</param>
    public static void Write(Stream destination, IEnumerable<SafeTensorWriteEntry> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentNullException.ThrowIfNull(destination);
        Prepared prepared = Prepare(tensors, metadata);
        WritePrepared(destination, prepared);
    }

    /// <summary>Returns safetensors content as a byte array.</summary>
    /// <param name="tensors">The tensors; names must be unique.</param>
    /// <param name="metadata">Optional <c>__metadata__</c> string map; omitted from the header when <see langword="null"/>.</param>
    /// <exception cref="NotSupportedException">The content would exceed the maximum array length.</exception>
    public static byte[] WriteToBytes(IEnumerable<SafeTensorWriteEntry> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        Prepared prepared = Prepare(tensors, metadata);
        long total = SafeTensorsHeader.PrefixLength + prepared.Header.Length + prepared.DataLength;
        if (total > Array.MaxLength)
        {
            throw new NotSupportedException($"The safetensors content ({total} bytes) is too large for a byte array; write it to a file instead.");
        }
        var result = new byte[total];
        using (var stream = new MemoryStream(result, writable: true))
        {
            WritePrepared(stream, prepared);
        }
        return result;
    }

    /// <summary>
    /// Builds the header that <see cref="Write(string, IEnumerable{SafeTensorWriteEntry}, IReadOnlyDictionary{string, string})"/>
    /// would write (the JSON text including its space padding, without the 8-byte length prefix).
    /// </summary>
    public static byte[] BuildHeader(IEnumerable<SafeTensorWriteEntry> tensors, IReadOnlyDictionary<string, string>? metadata = null) =>
        Prepare(tensors, metadata).Header;

    private sealed record Prepared(byte[] Header, SafeTensorWriteEntry[] Tensors, long DataLength);

    private static Prepared Prepare(IEnumerable<SafeTensorWriteEntry> tensors, IReadOnlyDictionary<string, string>? metadata)
    {
        ArgumentNullException.ThrowIfNull(tensors);

        var entries = new List<(SafeTensorWriteEntry Entry, byte[] Name)>();
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (SafeTensorWriteEntry? entry in tensors)
        {
            if (entry is null)
            {
                throw new ArgumentException("The tensor list contains null.", nameof(tensors));
            }
            if (!names.Add(entry.Name))
            {
                throw new ArgumentException($"Duplicate tensor name '{entry.Name}'.", nameof(tensors));
            }
            entries.Add((entry, Encode(entry.Name, "tensor name")));
        }

        // Reference order: descending dtype (alignment), then name by UTF-8 bytes.
        entries.Sort((a, b) =>
        {
            int byType = b.Entry.DType.CompareTo(a.Entry.DType);
            return byType != 0 ? byType : a.Name.AsSpan().SequenceCompareTo(b.Name);
        });

        var json = new MemoryStream();
        json.WriteByte((byte)'{');
        bool first = true;
        if (metadata is not null)
        {
            var pairs = new List<(byte[] Key, byte[] Value)>(metadata.Count);
            foreach (KeyValuePair<string, string> pair in metadata)
            {
                if (pair.Key is null || pair.Value is null)
                {
                    throw new ArgumentException("Metadata keys and values must not be null.", nameof(metadata));
                }
                pairs.Add((Encode(pair.Key, "metadata key"), Encode(pair.Value, $"metadata value of '{pair.Key}'")));
            }
            pairs.Sort((a, b) => a.Key.AsSpan().SequenceCompareTo(b.Key));

            WriteString(json, "__metadata__"u8);
            json.WriteByte((byte)':');
            json.WriteByte((byte)'{');
            for (int i = 0; i < pairs.Count; i++)
            {
                if (i > 0)
                {
                    json.WriteByte((byte)',');
                }
                WriteString(json, pairs[i].Key);
                json.WriteByte((byte)':');
                WriteString(json, pairs[i].Value);
            }
            json.WriteByte((byte)'}');
            first = false;
        }

        long offset = 0;
        foreach ((SafeTensorWriteEntry entry, byte[] name) in entries)
        {
            if (!first)
            {
                json.WriteByte((byte)',');
            }
            first = false;
            WriteString(json, name);
            WriteAscii(json, ":{\"dtype\":\"");
            WriteAscii(json, entry.DType.ToHeaderName());
            WriteAscii(json, "\",\"shape\":[");
            long[] shape = entry.ShapeNoCopy;
            for (int i = 0; i < shape.Length; i++)
            {
                if (i > 0)
                {
                    json.WriteByte((byte)',');
                }
                WriteAscii(json, shape[i].ToString(CultureInfo.InvariantCulture));
            }
            if (entry.ByteLength > long.MaxValue - offset)
            {
                throw new ArgumentException("The total size of the tensors overflows.", nameof(tensors));
            }
            long end = offset + entry.ByteLength;
            WriteAscii(json, "],\"data_offsets\":[");
            WriteAscii(json, offset.ToString(CultureInfo.InvariantCulture));
            json.WriteByte((byte)',');
            WriteAscii(json, end.ToString(CultureInfo.InvariantCulture));
            WriteAscii(json, "]}");
            offset = end;
            if (json.Length > MaxHeaderLength)
            {
                break; // reported below
            }
        }
        json.WriteByte((byte)'}');

        while (json.Length % 8 != 0)
        {
            json.WriteByte((byte)' ');
        }
        if (json.Length > MaxHeaderLength)
        {
            throw new ArgumentException(
                $"The safetensors header would exceed {MaxHeaderLength} bytes; readers reject such files.", nameof(tensors));
        }

        var ordered = new SafeTensorWriteEntry[entries.Count];
        for (int i = 0; i < ordered.Length; i++)
        {
            ordered[i] = entries[i].Entry;
        }
        return new Prepared(json.ToArray(), ordered, offset);
    }

    private static void WritePrepared(Stream destination, Prepared prepared)
    {
        Span<byte> prefix = stackalloc byte[SafeTensorsHeader.PrefixLength];
        BinaryPrimitives.WriteUInt64LittleEndian(prefix, (ulong)prepared.Header.Length);
        destination.Write(prefix);
        destination.Write(prepared.Header);
        byte[] scratch = new byte[ChunkBytes];
        foreach (SafeTensorWriteEntry entry in prepared.Tensors)
        {
            entry.WriteData(destination, scratch);
        }
    }

    private static byte[] Encode(string text, string what)
    {
        try
        {
            return StrictUtf8.GetBytes(text);
        }
        catch (EncoderFallbackException ex)
        {
            throw new ArgumentException($"The {what} '{text}' is not valid UTF-16 (unpaired surrogate).", ex);
        }
    }

    private static void WriteAscii(MemoryStream json, string text)
    {
        foreach (char c in text)
        {
            json.WriteByte((byte)c);
        }
    }

    /// <summary>Writes a JSON string the way serde_json does: only <c>"</c>, <c>\</c> and control characters are escaped.</summary>
    private static void WriteString(MemoryStream json, ReadOnlySpan<byte> utf8)
    {
        json.WriteByte((byte)'"');
        foreach (byte b in utf8)
        {
            switch (b)
            {
                case (byte)'"': json.WriteByte((byte)'\\'); json.WriteByte((byte)'"'); break;
                case (byte)'\\': json.WriteByte((byte)'\\'); json.WriteByte((byte)'\\'); break;
                case 0x08: json.WriteByte((byte)'\\'); json.WriteByte((byte)'b'); break;
                case 0x0C: json.WriteByte((byte)'\\'); json.WriteByte((byte)'f'); break;
                case 0x0A: json.WriteByte((byte)'\\'); json.WriteByte((byte)'n'); break;
                case 0x0D: json.WriteByte((byte)'\\'); json.WriteByte((byte)'r'); break;
                case 0x09: json.WriteByte((byte)'\\'); json.WriteByte((byte)'t'); break;
                case < 0x20:
                    const string Hex = "0123456789abcdef";
                    WriteAscii(json, "\\u00");
                    json.WriteByte((byte)Hex[b >> 4]);
                    json.WriteByte((byte)Hex[b & 0xF]);
                    break;
                default: json.WriteByte(b); break;
            }
        }
        json.WriteByte((byte)'"');
    }

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}

using System.Globalization;
using System.IO.Compression;
using System.Text;

namespace MlNetFineTune.Models.Formats;

/// <summary>Container common to both formats.</summary>
internal interface ITorchContainer : ITorchStorageSource, IDisposable
{
    /// <summary>Unpickles the checkpoint object, recording every tensor built into <paramref name="tensors"/>.</summary>
    object? ReadObject(List<TorchTensorValue> tensors);
}

/// <summary>
/// The torch &gt;= 1.6 zip format: <c>&lt;archive&gt;/data.pkl</c>, <c>&lt;archive&gt;/data/&lt;key&gt;</c>,
/// <c>&lt;archive&gt;/version</c> and optionally <c>&lt;archive&gt;/byteorder</c>. Entries are read into memory
/// (STORED or DEFLATED); nothing is ever written to disk.
/// </summary>
internal sealed class TorchZipReader : ITorchContainer
{
    private const int MaxSmallRecord = 64;
    private const long MaxDeflateRatio = 1100; // deflate cannot expand more than ~1032:1

    private readonly Stream _stream;
    private readonly string _file;
    private readonly TorchLoadOptions _opt;
    private readonly ZipArchive _zip;
    private readonly Dictionary<string, ZipArchiveEntry> _entries = new(StringComparer.Ordinal);
    private readonly string _prefix;

    public TorchZipReader(Stream stream, string file, TorchLoadOptions options)
    {
        _stream = stream;
        _file = file;
        _opt = options;
        try
        {
            _zip = new ZipArchive(stream, ZipArchiveMode.Read, leaveOpen: true);
            foreach (var e in _zip.Entries)
            {
                string name = e.FullName;
                string? why = UnsafeNameReason(name);
                if (why is not null)
                    throw new UnsafeCheckpointException(
                        $"{file}: refused to open: zip entry name '{name}' {why}; such names can escape a directory (zip-slip). "
                        + "Nothing was extracted.", file, name, null);
                if (!_entries.TryAdd(name, e))
                    throw Error($"the zip holds two entries named '{name}'.", name);
            }
        }
        catch (Exception ex) when (IsZipFailure(ex))
        {
            throw new TorchCheckpointFormatException(
                $"{file}: not a readable PyTorch checkpoint: the zip container is corrupt or truncated ({ex.Message})", file, null, null, ex);
        }

        if (_entries.Keys.Any(n => n.EndsWith("/constants.pkl", StringComparison.Ordinal) || n.Contains("/code/", StringComparison.Ordinal)))
            throw Error("this is a TorchScript archive (torch.jit.save), not a torch.save checkpoint; "
                + "save the model's state_dict() with torch.save instead.", null);
        var pickles = _entries.Keys.Where(n => n.EndsWith("/data.pkl", StringComparison.Ordinal) && n.IndexOf('/') == n.Length - 9).ToList();
        if (pickles.Count == 0) throw Error("the zip has no '<archive>/data.pkl' entry, so it is not a torch.save checkpoint.", null);
        if (pickles.Count > 1) throw Error($"the zip has {pickles.Count} top-level folders with a data.pkl ({string.Join(", ", pickles)}).", null);
        _prefix = pickles[0][..^"data.pkl".Length];

        string? version = ReadSmallText("version") ?? ReadSmallText(".data/version");
        if (version is not null && (!int.TryParse(version, NumberStyles.None, CultureInfo.InvariantCulture, out int v) || v < 1))
            throw Error($"invalid format version '{version}'.", _prefix + "version");

        string? byteOrder = ReadSmallText("byteorder");
        BigEndian = byteOrder switch
        {
            null or "little" => false,
            "big" => true,
            _ => throw Error($"invalid byteorder '{byteOrder}' (expected 'little' or 'big').", _prefix + "byteorder"),
        };
    }

    public bool BigEndian { get; }

    public object? ReadObject(List<TorchTensorValue> tensors)
    {
        string name = _prefix + "data.pkl";
        byte[] pickle = ReadEntry(_entries[name], _opt.MaxPickleBytes, "pickle");
        var resolver = new TorchStorageResolver(legacy: false, CheckStorageRecord);
        using var ms = new MemoryStream(pickle, writable: false);
        return new TorchRestrictedUnpickler(ms, _file, name, _opt, resolver.Resolve, tensors).Load();
    }

    private void CheckStorageRecord(string key, TorchDType dtype, long numel)
    {
        string name = _prefix + "data/" + key;
        if (!_entries.TryGetValue(name, out var e)) throw new TorchPickleError($"storage record '{name}' is missing from the zip.");
        long expected = numel * TorchTensorMaterializer.ElementSize(dtype);
        long length;
        try
        {
            length = e.Length;
        }
        catch (Exception ex) when (IsZipFailure(ex))
        {
            throw new TorchPickleError($"storage record '{name}' is unreadable: {ex.Message}");
        }
        if (length != expected)
            throw new TorchPickleError($"storage record '{name}' holds {length} bytes but {numel} {dtype} elements need {expected}.");
    }

    public byte[] ReadStorage(TorchStorage storage)
    {
        string name = _prefix + "data/" + storage.Key;
        long expected = storage.RootNumel * TorchTensorMaterializer.ElementSize(storage.DType);
        var bytes = ReadEntry(_entries[name], expected, "storage");
        if (bytes.LongLength != expected) throw Error($"storage record holds {bytes.Length} bytes, expected {expected}.", name);
        return bytes;
    }

    private string? ReadSmallText(string relative)
    {
        if (!_entries.TryGetValue(_prefix + relative, out var e)) return null;
        var bytes = ReadEntry(e, MaxSmallRecord, "record");
        return Encoding.ASCII.GetString(bytes).Trim();
    }

    /// <summary>Reads a whole entry, checking its declared sizes before allocating and its CRC afterwards.</summary>
    private byte[] ReadEntry(ZipArchiveEntry e, long maxBytes, string what)
    {
        string name = e.FullName;
        try
        {
            long length = e.Length;
            long compressed = e.CompressedLength;
            if (length < 0 || compressed < 0 || compressed > _stream.Length)
                throw Error($"{what} entry declares impossible sizes ({length} bytes, {compressed} compressed).", name);
            if (length > maxBytes)
                throw Error($"{what} entry of {length} bytes is larger than the {maxBytes}-byte limit.", name);
            if (length > compressed * MaxDeflateRatio + 1024)
                throw Error($"{what} entry claims {length} bytes from {compressed} compressed bytes, an impossible ratio.", name);
            var buf = new byte[length];
            using (var s = e.Open())
            {
                int read = s.ReadAtLeast(buf, buf.Length, throwOnEndOfStream: false);
                if (read < buf.Length) throw Error($"{what} entry ends after {read} of its {length} bytes (truncated file?).", name);
                if (s.ReadByte() >= 0) throw Error($"{what} entry holds more than its declared {length} bytes.", name);
            }
            if (_opt.VerifyCrc32)
            {
                uint crc = TorchZipCrc32.Compute(buf);
                if (crc != e.Crc32) throw Error($"{what} entry CRC-32 is {crc:x8} but the zip says {e.Crc32:x8} (corrupt file).", name);
            }
            return buf;
        }
        catch (Exception ex) when (IsZipFailure(ex))
        {
            throw Error($"{what} entry is unreadable: {ex.Message}", name, ex);
        }
    }

    private TorchCheckpointFormatException Error(string message, string? entry, Exception? inner = null) =>
        new($"{_file}: {(entry is null ? "" : entry + ": ")}{message}", _file, entry, null, inner);

    internal static bool IsZipFailure(Exception ex) =>
        ex is not TorchCheckpointFormatException
        && ex is InvalidDataException or IOException or NotSupportedException or ArgumentException or OverflowException or FormatException;

    /// <summary>Why an entry name is unsafe (zip-slip), or null.</summary>
    internal static string? UnsafeNameReason(string name)
    {
        if (name.Length == 0) return "is empty";
        if (name.Contains('\\')) return "contains a backslash";
        if (name.Contains('\0')) return "contains a NUL character";
        if (name[0] == '/') return "is an absolute path";
        if (name.Length >= 2 && name[1] == ':' && char.IsAsciiLetter(name[0])) return "starts with a drive letter";
        foreach (var seg in name.Split('/'))
            if (seg == "..") return "contains a '..' path segment";
        return null;
    }

    public void Dispose() => _zip.Dispose();
}

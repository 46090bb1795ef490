using System.Buffers.Binary;
using System.Numerics;

namespace MlNetFineTune.Models.Formats;

/// <summary>
/// The legacy (torch &lt; 1.6, or <c>_use_new_zipfile_serialization=False</c>) format: consecutive pickles of the
/// magic number, the protocol version (1001) and a sys_info dict, then the data pickle, then a pickled list of
/// storage keys, then for each key an 8-byte element count followed by the storage's raw bytes.
/// </summary>
internal sealed class TorchLegacyReader : ITorchContainer
{
    private static readonly BigInteger MagicNumber = BigInteger.Parse("119547037146038801333356", System.Globalization.CultureInfo.InvariantCulture); // 0x1950a86a20f9469cfc6c
    private const long ProtocolVersion = 1001;

    private readonly Stream _s;
    private readonly string _file;
    private readonly TorchLoadOptions _opt;
    private readonly Dictionary<string, long> _dataOffsets = new(StringComparer.Ordinal);

    public TorchLegacyReader(Stream stream, string file, TorchLoadOptions options)
    {
        _s = stream;
        _file = file;
        _opt = options;
    }

    public bool BigEndian { get; private set; }

    public object? ReadObject(List<TorchTensorValue> tensors)
    {
        var magic = Header("magic number");
        if (!(magic is BigInteger m && m == MagicNumber))
            throw Error("the file starts with a pickle but not with torch's magic number, so it is not a PyTorch checkpoint.", "magic number", 0);
        long versionOffset = _s.Position;
        if (Header("protocol version") is not long version || version != ProtocolVersion)
            throw Error($"unsupported legacy protocol version (expected {ProtocolVersion}).", "protocol version", versionOffset);
        long sysOffset = _s.Position;
        if (Header("sys_info") is not PickleDict sysInfo)
            throw Error("sys_info must be a dict.", "sys_info", sysOffset);
        if (sysInfo.TryGetValue("little_endian", out var le))
        {
            if (le is not bool little) throw Error("sys_info['little_endian'] must be a bool.", "sys_info", sysOffset);
            BigEndian = !little;
        }

        var resolver = new TorchStorageResolver(legacy: true, checkRoot: null);
        var result = new TorchRestrictedUnpickler(_s, _file, $"data pickle (starting at file offset {_s.Position})", _opt, resolver.Resolve, tensors).Load();

        long keysOffset = _s.Position;
        var keysObj = new TorchRestrictedUnpickler(_s, _file, $"storage key list pickle (starting at file offset {keysOffset})", _opt, null, null).Load();
        if (keysObj is not List<object?> keys) throw Error("the storage key list is not a list.", "storage key list", keysOffset);

        foreach (var k in keys)
        {
            long at = _s.Position;
            if (k is not string key) throw Error("storage keys must be strings.", "storage key list", keysOffset);
            string section = $"storage '{key}'";
            if (!resolver.Roots.TryGetValue(key, out var storage))
                throw Error("the key list names a storage the data pickle never references.", section, at);
            if (_dataOffsets.ContainsKey(key)) throw Error("the key list names this storage twice.", section, at);
            var header = new byte[8];
            if (_s.ReadAtLeast(header, 8, throwOnEndOfStream: false) < 8) throw Error("unexpected end of file (truncated).", section, at);
            long numel = BigEndian ? BinaryPrimitives.ReadInt64BigEndian(header) : BinaryPrimitives.ReadInt64LittleEndian(header);
            if (numel != storage.RootNumel)
                throw Error($"the block holds {numel} elements but the pickle says {storage.RootNumel}.", section, at);
            long bytes = numel * TorchTensorMaterializer.ElementSize(storage.DType);
            if (bytes > _s.Length - _s.Position)
                throw Error($"the block needs {bytes} bytes but only {_s.Length - _s.Position} are left (truncated file).", section, at);
            _dataOffsets[key] = _s.Position;
            _s.Seek(bytes, SeekOrigin.Current);
        }
        foreach (var key in resolver.Roots.Keys)
            if (!_dataOffsets.ContainsKey(key))
                throw Error("the data pickle references this storage but the file has no data for it.", $"storage '{key}'", null);
        return result;
    }

    private object? Header(string section) =>
        new TorchRestrictedUnpickler(_s, _file, $"{section} pickle (starting at file offset {_s.Position})", _opt, null, null).Load();

    public byte[] ReadStorage(TorchStorage storage)
    {
        long offset = _dataOffsets[storage.Key];
        var buf = new byte[storage.RootNumel * TorchTensorMaterializer.ElementSize(storage.DType)];
        _s.Seek(offset, SeekOrigin.Begin);
        if (_s.ReadAtLeast(buf, buf.Length, throwOnEndOfStream: false) < buf.Length)
            throw Error("unexpected end of file (truncated).", $"storage '{storage.Key}'", offset);
        return buf;
    }

    private TorchCheckpointFormatException Error(string message, string section, long? offset) =>
        new($"{_file}: legacy-format {section}{(offset is null ? "" : $" at file offset {offset}")}: {message}", _file, section, offset);

    public void Dispose() { }
}

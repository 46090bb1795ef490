using System.Globalization;
using System.Numerics;
using MlNetFineTune.Tensors;

namespace MlNetFineTune.Models.Formats;

/// <summary>
/// Reads PyTorch checkpoints written by <c>torch.save</c> (<c>pytorch_model.bin</c>, torchvision <c>.pth</c>,
/// <c>.pt</c>) without executing anything.
/// </summary>
/// <remarks>
/// <para><b>Formats.</b> The zip format of torch &gt;= 1.6 (<c>&lt;archive&gt;/data.pkl</c>, <c>&lt;archive&gt;/data/&lt;key&gt;</c>,
/// <c>&lt;archive&gt;/version</c>, optional <c>&lt;archive&gt;/byteorder</c>; any top folder name; STORED or DEFLATED entries,
/// read in memory, CRC-checked) and the legacy non-zip format (torch &lt; 1.6 or <c>_use_new_zipfile_serialization=False</c>).
/// TorchScript archives and the pre-0.4 tar format are refused with a message.</para>
/// <para><b>Safety.</b> The pickle is decoded by a restricted unpickler: only tensor/parameter rebuild functions
/// (<c>torch._utils._rebuild_tensor[_v2]</c>, <c>_rebuild_parameter[_with_state]</c>, <c>torch._tensor._rebuild_from_type_v2</c>),
/// <c>torch.*Storage</c> tags, <c>collections.OrderedDict</c>, <c>torch.Size</c>, <c>set</c>/<c>frozenset</c> and
/// <c>_codecs.encode</c> are recognised, and they are interpreted, never imported. Any other global raises
/// <see cref="UnsafePickleException"/> at the opcode naming it. Zip entry names with <c>..</c>, absolute paths, drive
/// letters or backslashes raise <see cref="UnsafeCheckpointException"/>. Sizes are checked before allocation (storage
/// element counts against record lengths, tensor extents against storages, lengths against remaining bytes) and
/// the stack, MARK nesting and memo are bounded (see <see cref="TorchLoadOptions"/>).</para>
/// <para><b>Tensors.</b> Views are gathered into dense row-major tensors (storage offset and strides honoured, stride 0
/// included); each name gets its own tensor even when storages are shared. float32 stays float32; float16, bfloat16
/// (exact) and float64 (rounded) become float32; int64 stays int64; int32, int16, int8, uint8 and bool become int32
/// (bool as 0/1). Complex tensors are refused with a format error; quantized ones use globals outside the allow-list.</para>
/// <para><b>Names.</b> The object is flattened: dict keys (str; ints as decimals, e.g. optimizer state) are joined with
/// '.', list/tuple items use their index, non-tensor values (epoch numbers, strings, hyper-parameters) are skipped,
/// and a bare saved tensor is named "". So <c>{"state_dict": {"fc.weight": t}, "epoch": 3}</c> gives
/// <c>"state_dict.fc.weight"</c>; set <see cref="TorchLoadOptions.StateDictKey"/> = "state_dict" to get <c>"fc.weight"</c>.
/// Order is the pickle's (the state dict's) order. A dict/list object referenced from two places is walked only at the first.</para>
/// <para>Every failure raises <see cref="TorchCheckpointFormatException"/> (or one of its security subclasses) naming
/// the file, the entry and, for pickles, the opcode offset.</para>
/// </remarks>
public static class TorchCheckpoint
{
    /// <summary>Loads the tensors of a checkpoint file as an ordered name → tensor map (see the class remarks for naming).</summary>
    public static IReadOnlyDictionary<string, Tensor> Load(string path, TorchLoadOptions? options = null)
    {
        using var fs = OpenFile(path);
        return Load(fs, path, options);
    }

    /// <summary>Loads the tensors of a checkpoint from a readable, seekable stream.</summary>
    /// <param name="stream">The checkpoint bytes (readable and seekable); the whole stream, from position 0, is the checkpoint.</param>
    /// <param name="sourceName">Name used in error messages (e.g. the file name).</param>
    /// <param name="options">Options, or null for the defaults.</param>
    public static IReadOnlyDictionary<string, Tensor> Load(Stream stream, string? sourceName = null, TorchLoadOptions? options = null)
    {
        var entries = LoadEntries(stream, sourceName, options);
        var result = new OrderedDictionary<string, Tensor>(entries.Count, StringComparer.Ordinal);
        foreach (var e in entries) result.Add(e.Name, e.Tensor);
        return result;
    }

    /// <summary>Like <see cref="Load(string, TorchLoadOptions?)"/>, but also returns each tensor's saved dtype, size, stride and storage.</summary>
    public static IReadOnlyList<TorchTensorEntry> LoadEntries(string path, TorchLoadOptions? options = null)
    {
        using var fs = OpenFile(path);
        return LoadEntries(fs, path, options);
    }

    /// <summary>Like <see cref="Load(Stream, string?, TorchLoadOptions?)"/>, but also returns each tensor's saved dtype, size, stride and storage.</summary>
    public static IReadOnlyList<TorchTensorEntry> LoadEntries(Stream stream, string? sourceName = null, TorchLoadOptions? options = null)
    {
        var opt = options ?? TorchLoadOptions.Default;
        string name = sourceName ?? "<stream>";
        using var container = OpenContainer(stream, name, opt);
        var tensors = new List<TorchTensorValue>();
        var root = container.ReadObject(tensors);
        var flat = Flatten(root, opt, name, new TorchTensorBudget(tensors, opt, name));
        var values = flat.Select(f => f.Value).ToList();
        var names = flat.Select(f => f.Name).ToList();
        var built = Materialize(values, names, container, name);
        var result = new TorchTensorEntry[flat.Count];
        for (int i = 0; i < result.Length; i++) result[i] = new TorchTensorEntry(names[i], values[i], built[i]);
        return result;
    }

    /// <summary>
    /// Returns the unpickled object graph for inspection: None → null, bool, int → long (BigInteger when larger),
    /// float → double, str → string, bytes → byte[], list → <see cref="List{T}"/> of object?, tuple → <see cref="PickleTuple"/>,
    /// dict / OrderedDict → <see cref="PickleDict"/>, set → <see cref="PickleSet"/>, tensor → <see cref="TorchTensorValue"/>
    /// (with <see cref="TorchTensorValue.Tensor"/> materialized). <see cref="TorchLoadOptions.StateDictKey"/> is ignored.
    /// </summary>
    public static object? LoadObject(string path, TorchLoadOptions? options = null)
    {
        using var fs = OpenFile(path);
        return LoadObject(fs, path, options);
    }

    /// <summary>Stream overload of <see cref="LoadObject(string, TorchLoadOptions?)"/>.</summary>
    public static object? LoadObject(Stream stream, string? sourceName = null, TorchLoadOptions? options = null)
    {
        var opt = options ?? TorchLoadOptions.Default;
        string name = sourceName ?? "<stream>";
        using var container = OpenContainer(stream, name, opt);
        var tensors = new List<TorchTensorValue>();
        var root = container.ReadObject(tensors);
        var budget = new TorchTensorBudget(tensors, opt, name);
        foreach (var t in tensors) budget.Charge(t);
        var built = Materialize(tensors, null, container, name);
        for (int i = 0; i < tensors.Count; i++) tensors[i].Tensor = built[i];
        return root;
    }

    private static FileStream OpenFile(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        return new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1 << 16);
    }

    private static ITorchContainer OpenContainer(Stream stream, string name, TorchLoadOptions opt)
    {
        ArgumentNullException.ThrowIfNull(stream);
        if (!stream.CanRead || !stream.CanSeek) throw new ArgumentException("The checkpoint stream must be readable and seekable.", nameof(stream));
        var head = new byte[512];
        int n;
        try
        {
            stream.Position = 0;
            n = stream.ReadAtLeast(head, head.Length, throwOnEndOfStream: false);
            stream.Position = 0;
        }
        catch (IOException ex)
        {
            throw new TorchCheckpointFormatException($"{name}: cannot read the checkpoint: {ex.Message}", name, null, 0, ex);
        }
        if (n == 0) throw new TorchCheckpointFormatException($"{name}: the checkpoint is empty.", name, null, 0);
        if (head[0] == 0x80) return new TorchLegacyReader(stream, name, opt);
        if (n >= 262 && head.AsSpan(257, 5).SequenceEqual("ustar"u8))
            throw new TorchCheckpointFormatException(
                $"{name}: this is a tar-based PyTorch checkpoint (torch < 0.4), which is not supported; load it with an old torch and "
                + "re-save it with torch >= 1.6: torch.save(torch.load(path), new_path).", name, null, 0);
        if (n < 4 || head[0] != 'P' || head[1] != 'K')
            throw new TorchCheckpointFormatException(
                $"{name}: not a PyTorch checkpoint: it starts neither with a zip header ('PK') nor with a pickle (0x80).", name, null, 0);
        return new TorchZipReader(stream, name, opt);
    }

    private static Tensor[] Materialize(IReadOnlyList<TorchTensorValue> values, IReadOnlyList<string>? names,
        ITorchContainer container, string file)
    {
        try
        {
            return TorchTensorMaterializer.Materialize(values, names, container);
        }
        catch (Exception ex) when (ex is IOException or EndOfStreamException)
        {
            throw new TorchCheckpointFormatException($"{file}: reading tensor data failed: {ex.Message}", file, null, null, ex);
        }
    }

    // ------------------------------------------------------------------ flattening

    internal static List<(string Name, TorchTensorValue Value)> Flatten(object? root, TorchLoadOptions opt, string file, TorchTensorBudget budget)
    {
        if (opt.StateDictKey is string key)
        {
            if (root is not PickleDict top)
                throw new TorchCheckpointFormatException(
                    $"{file}: StateDictKey '{key}' was given but the checkpoint holds {TorchRestrictedUnpickler.Describe(root)}, not a dict.", file, null, null);
            if (!top.TryGetValue(key, out var inner))
                throw new TorchCheckpointFormatException(
                    $"{file}: the checkpoint has no key '{key}'; its top-level keys are: {string.Join(", ", top.Keys.Select(k => KeyText(k) ?? "?"))}.", file, null, null);
            if (inner is not PickleDict)
                throw new TorchCheckpointFormatException(
                    $"{file}: the value under '{key}' is {TorchRestrictedUnpickler.Describe(inner)}, not a dict.", file, null, null);
            root = inner;
        }

        var result = new List<(string, TorchTensorValue)>();
        var names = new HashSet<string>(StringComparer.Ordinal);
        var visited = new HashSet<object>(ReferenceEqualityComparer.Instance);
        Walk(root, "", 0);
        return result;

        void Walk(object? node, string prefix, int depth)
        {
            switch (node)
            {
                case TorchTensorValue t:
                    if (!names.Add(prefix))
                        throw new TorchCheckpointFormatException($"{file}: two tensors flatten to the same name '{prefix}'.", file, null, null);
                    budget.Charge(t);
                    result.Add((prefix, t));
                    return;
                case PickleDict d:
                    if (!Enter(d, depth, prefix)) return;
                    foreach (var kv in d)
                    {
                        string? k = KeyText(kv.Key);
                        if (k is null)
                        {
                            if (kv.Value is TorchTensorValue or PickleDict or List<object?> or PickleTuple)
                                throw new TorchCheckpointFormatException(
                                    $"{file}: a dict key of type {TorchRestrictedUnpickler.Describe(kv.Key)} under '{prefix}' cannot be part of a tensor name.", file, null, null);
                            continue;
                        }
                        Walk(kv.Value, Join(prefix, k), depth + 1);
                    }
                    return;
                case List<object?> list:
                    if (!Enter(list, depth, prefix)) return;
                    for (int i = 0; i < list.Count; i++) Walk(list[i], Join(prefix, i.ToString(CultureInfo.InvariantCulture)), depth + 1);
                    return;
                case PickleTuple tuple:
                    if (!Enter(tuple, depth, prefix)) return;
                    for (int i = 0; i < tuple.Count; i++) Walk(tuple[i], Join(prefix, i.ToString(CultureInfo.InvariantCulture)), depth + 1);
                    return;
                default:
                    return; // scalars, strings, sets, storages: no tensors to name
            }
        }

        // Containers already walked (cycles, shared sub-objects) are skipped: returns true when new.
        bool Enter(object container, int depth, string prefix)
        {
            if (depth >= opt.MaxNestingDepth)
                throw new TorchCheckpointFormatException(
                    $"{file}: containers are nested more than {opt.MaxNestingDepth} deep at '{prefix}' (TorchLoadOptions.MaxNestingDepth).", file, null, null);
            return visited.Add(container);
        }

        static string Join(string prefix, string key) => prefix.Length == 0 ? key : prefix + "." + key;
    }

    private static string? KeyText(object? key) => key switch
    {
        string s => s,
        long l => l.ToString(CultureInfo.InvariantCulture),
        BigInteger b => b.ToString(CultureInfo.InvariantCulture),
        bool b => b ? "True" : "False",
        null => "None",
        _ => null,
    };
}

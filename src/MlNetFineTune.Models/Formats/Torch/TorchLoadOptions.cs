namespace MlNetFineTune.Models.Formats;

/// <summary>Options for <see cref="TorchCheckpoint"/>. The defaults suit ordinary state dicts.</summary>
public sealed class TorchLoadOptions
{
    /// <summary>Shared default instance.</summary>
    public static TorchLoadOptions Default { get; } = new();

    /// <summary>
    /// When set, the top-level object must be a dict holding this key, and the dict under it is used as the state
    /// dict, without a prefix. Typical values: <c>"state_dict"</c>, <c>"model"</c>, <c>"model_state_dict"</c>.
    /// When null (the default) the whole object is flattened and nested dicts contribute <c>"key."</c> prefixes,
    /// e.g. <c>{"state_dict": {"fc.weight": t}}</c> gives <c>"state_dict.fc.weight"</c>.
    /// </summary>
    public string? StateDictKey { get; init; }

    /// <summary>Verify each zip entry's CRC-32 (as torch's reader does). Default true.</summary>
    public bool VerifyCrc32 { get; init; } = true;

    /// <summary>Largest pickle (data.pkl) accepted, in bytes. Default 256 MiB.</summary>
    public long MaxPickleBytes { get; init; } = 256L << 20;

    /// <summary>Largest number of items on the unpickler stack. Default 1,000,000.</summary>
    public int MaxStackItems { get; init; } = 1_000_000;

    /// <summary>Largest number of nested MARKs (nesting of container literals). Default 1,000.</summary>
    public int MaxMarkDepth { get; init; } = 1_000;

    /// <summary>Largest number of memo entries. Default 4,000,000 (a state dict uses about ten per tensor).</summary>
    public int MaxMemoEntries { get; init; } = 4_000_000;

    /// <summary>Deepest container nesting followed when flattening the object into names. Default 100.</summary>
    public int MaxNestingDepth { get; init; } = 100;

    /// <summary>
    /// Budget for the bytes of all materialized tensors (float32/int32: 4 bytes an element, int64: 8, plus 64 per
    /// tensor). Null (the default) means 4 × the bytes of the distinct storages the checkpoint's tensors use, plus
    /// 64 MiB; this only matters for stride-0 (expanded) or overlapping views, or one tensor referenced under many
    /// names, whose dense copies can be far larger than the file.
    /// </summary>
    public long? MaxTotalTensorBytes { get; init; }
}

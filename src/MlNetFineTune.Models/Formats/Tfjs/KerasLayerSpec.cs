using System.Text.Json;

namespace MlNetFineTune.Models.Formats;

/// <summary>A reference to one output tensor of a layer, as Keras writes it: [layer, node index, tensor index].</summary>
/// <param name="Layer">Layer name.</param>
/// <param name="NodeIndex">Which call of the layer (0 unless the layer is shared).</param>
/// <param name="TensorIndex">Which output of that call (0 for single-output layers).</param>
public sealed record KerasTensorRef(string Layer, int NodeIndex = 0, int TensorIndex = 0);

/// <summary>
/// One layer of a Keras functional-model config (as stored in a TF.js <c>model.json</c>): its class, its
/// <c>config</c> object and the tensors it is called on. Accessors read config entries with Keras's defaults.
/// </summary>
public sealed class KerasLayerSpec
{
    /// <summary>Creates a spec (the config element is cloned, so it outlives its document).</summary>
    public KerasLayerSpec(string name, string className, JsonElement config, IReadOnlyList<KerasTensorRef> inputs, int callCount = 1)
    {
        Name = name;
        ClassName = className;
        Config = config.ValueKind == JsonValueKind.Undefined ? default : config.Clone();
        Inputs = inputs;
        CallCount = callCount;
    }

    /// <summary>Layer name (unique in the model).</summary>
    public string Name { get; }

    /// <summary>Keras class, e.g. Conv2D, BatchNormalization.</summary>
    public string ClassName { get; }

    /// <summary>The layer's config object.</summary>
    public JsonElement Config { get; }

    /// <summary>Input tensors of the (single) call of this layer; empty for an InputLayer.</summary>
    public IReadOnlyList<KerasTensorRef> Inputs { get; }

    /// <summary>How many times the layer is called in the graph (more than one means a shared layer).</summary>
    public int CallCount { get; }

    /// <summary>Config value <paramref name="key"/>, or null when absent or JSON null.</summary>
    public JsonElement? Get(string key) =>
        Config.ValueKind == JsonValueKind.Object && Config.TryGetProperty(key, out var v) && v.ValueKind != JsonValueKind.Null ? v : null;

    /// <summary>True when the config has a non-null <paramref name="key"/>.</summary>
    public bool Has(string key) => Get(key) is not null;

    /// <summary>A string entry.</summary>
    public string? GetString(string key, string? fallback = null) =>
        Get(key) is { } v ? v.ValueKind == JsonValueKind.String ? v.GetString() : throw Bad(key, v, "a string") : fallback;

    /// <summary>A boolean entry.</summary>
    public bool GetBool(string key, bool fallback) =>
        Get(key) is { } v ? v.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw Bad(key, v, "true or false"),
        } : fallback;

    /// <summary>A number entry.</summary>
    public double GetDouble(string key, double fallback) =>
        Get(key) is { } v ? v.ValueKind == JsonValueKind.Number ? v.GetDouble() : throw Bad(key, v, "a number") : fallback;

    /// <summary>A number entry, or null when absent.</summary>
    public double? GetDoubleOrNull(string key) => Get(key) is { } v
        ? v.ValueKind == JsonValueKind.Number ? v.GetDouble() : throw Bad(key, v, "a number")
        : null;

    /// <summary>An integer entry.</summary>
    public int GetInt(string key, int fallback) => Get(key) is { } v ? AsInt(key, v) : fallback;

    /// <summary>An integer or [a, b] entry as a pair (a single integer n gives (n, n)).</summary>
    public (int H, int W) GetPair(string key, (int H, int W) fallback)
    {
        if (Get(key) is not { } v) return fallback;
        if (v.ValueKind == JsonValueKind.Number) { int n = AsInt(key, v); return (n, n); }
        if (v.ValueKind == JsonValueKind.Array && v.GetArrayLength() == 2) return (AsInt(key, v[0]), AsInt(key, v[1]));
        if (v.ValueKind == JsonValueKind.Array && v.GetArrayLength() == 1) { int n = AsInt(key, v[0]); return (n, n); }
        throw Bad(key, v, "an integer or a pair of integers");
    }

    /// <summary>An array of integers (JSON null items become -1, as for unknown dimensions).</summary>
    public int[]? GetIntArray(string key)
    {
        if (Get(key) is not { } v) return null;
        if (v.ValueKind != JsonValueKind.Array) throw Bad(key, v, "an array");
        return v.EnumerateArray().Select(e => e.ValueKind == JsonValueKind.Null ? -1 : AsInt(key, e)).ToArray();
    }

    private int AsInt(string key, JsonElement v)
    {
        if (v.ValueKind == JsonValueKind.Number && v.TryGetDouble(out var d) && d == Math.Floor(d) && d >= int.MinValue && d <= int.MaxValue)
            return (int)d;
        throw Bad(key, v, "an integer");
    }

    private InvalidDataException Bad(string key, JsonElement v, string expected) =>
        new($"Keras layer '{Name}' ({ClassName}): config '{key}' is {v.GetRawText()}, expected {expected}.");

    /// <inheritdoc />
    public override string ToString() =>
        $"{Name} ({ClassName}) <- [{string.Join(", ", Inputs.Select(i => i.Layer))}]";
}

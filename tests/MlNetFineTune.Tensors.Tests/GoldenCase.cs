using System.Text.Json;
using MlNetFineTune.Tensors.IO;

namespace MlNetFineTune.Tensors.Tests;

/// <summary>One PyTorch reference fixture (see tests/golden/README.md for the format).</summary>
public sealed class GoldenCase
{
    public string Name { get; }
    public string Op { get; }
    public JsonElement Params { get; }
    public string[] Inputs { get; }
    public string[] Differentiable { get; }
    private readonly Dictionary<string, Tensor> _tensors = new();

    public static string Directory => Path.Combine(AppContext.BaseDirectory, "golden");

    public static IEnumerable<string> AllNames() =>
        System.IO.Directory.GetFiles(Directory, "*.safetensors").Select(Path.GetFileNameWithoutExtension).Order().Select(n => n!);

    public GoldenCase(string name)
    {
        Name = name;
        using var file = SafeTensorsFile.Open(Path.Combine(Directory, name + ".safetensors"));
        Op = file.Metadata["op"];
        Params = JsonDocument.Parse(file.Metadata.TryGetValue("params", out var p) ? p : "{}").RootElement.Clone();
        Inputs = JsonSerializer.Deserialize<string[]>(file.Metadata.TryGetValue("inputs", out var i) ? i : "[]")!;
        Differentiable = JsonSerializer.Deserialize<string[]>(file.Metadata.TryGetValue("differentiable", out var d) ? d : "[]")!;
        foreach (var info in file.Tensors)
        {
            var shape = info.Shape.Select(s => (int)s).ToArray();
            _tensors[info.Name] = info.DType is SafeTensorDType.I64 or SafeTensorDType.I32
                ? Tensor.FromArray(file.ReadInt64(info.Name)).Reshape(shape)
                : Tensor.FromArray(file.ReadFloat32(info.Name)).Reshape(shape);
        }
    }

    public bool Has(string name) => _tensors.ContainsKey(name);

    public Tensor this[string name] => _tensors.TryGetValue(name, out var t) ? t
        : throw new KeyNotFoundException($"Golden case '{Name}' has no tensor '{name}'.");

    public IEnumerable<string> Names => _tensors.Keys;

    public bool Bool(string key, bool fallback = false) =>
        Params.TryGetProperty(key, out var v) && v.ValueKind is JsonValueKind.True or JsonValueKind.False ? v.GetBoolean() : fallback;

    public int Int(string key) => Params.GetProperty(key).GetInt32();

    public float Float(string key) => Params.GetProperty(key).GetSingle();

    public float? NullableFloat(string key) =>
        Params.TryGetProperty(key, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetSingle() : null;

    public string Str(string key) => Params.GetProperty(key).GetString()!;

    public int[]? Ints(string key) =>
        Params.TryGetProperty(key, out var v) && v.ValueKind == JsonValueKind.Array ? v.EnumerateArray().Select(e => e.GetInt32()).ToArray() : null;

    public (int, int) Pair(string key)
    {
        var a = Ints(key)!;
        return (a[0], a[1]);
    }

    public string[] NoncontiguousInputs =>
        Params.TryGetProperty("noncontiguous_inputs", out var v) ? v.EnumerateArray().Select(e => e.GetString()!).ToArray()
        : Params.TryGetProperty("noncontiguous", out _) ? ["x"] : [];
}

/// <summary>Element-wise comparison with |a - b| &lt;= atol + rtol * |b|, reporting the worst element.</summary>
public static class Close
{
    public static void Assert(Tensor actual, Tensor expected, float rtol, float atol, string what)
    {
        Xunit.Assert.True(actual.Shape.SequenceEqual(expected.Shape),
            $"{what}: shape {Fmt(actual.Shape)} differs from expected {Fmt(expected.Shape)}");
        var a = actual.ToArray();
        var e = expected.ToArray();
        int worst = -1;
        double worstExcess = 0;
        for (int i = 0; i < a.Length; i++)
        {
            double err = Math.Abs((double)a[i] - e[i]);
            double allowed = atol + rtol * Math.Abs(e[i]);
            bool bad = double.IsNaN(a[i]) != double.IsNaN(e[i]) || err > allowed;
            if (bad && (worst < 0 || err - allowed > worstExcess)) { worst = i; worstExcess = err - allowed; }
        }
        if (worst >= 0)
            Xunit.Assert.Fail($"{what}: element {worst} is {a[worst]:R}, expected {e[worst]:R} (|diff| {Math.Abs(a[worst] - e[worst]):E2} > atol {atol} + rtol {rtol}*|expected|).");
    }

    public static double MaxRelError(Tensor actual, Tensor expected, float atol)
    {
        var a = actual.ToArray();
        var e = expected.ToArray();
        double m = 0;
        for (int i = 0; i < a.Length; i++) m = Math.Max(m, Math.Abs(a[i] - e[i]) / (atol + Math.Abs(e[i])));
        return m;
    }

    private static string Fmt(IReadOnlyList<int> s) => "[" + string.Join(", ", s) + "]";
}

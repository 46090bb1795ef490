using System.Text.Json;
using MlNetFineTune.Tensors;

namespace MlNetFineTune.Models.Formats;

/// <summary>
/// A TF.js layers model (<c>model.json</c> + binary weight shards), as written by tensorflowjs_converter or
/// <c>model.save()</c>: the Keras model topology (functional <c>Model</c>/<c>Functional</c> or
/// <c>Sequential</c>) and the weights manifest. The shards are read in manifest order as one concatenated
/// buffer, checked against the manifest (byte sizes from shapes and stored dtypes), and weights are decoded to
/// float32 on demand (<see cref="ReadWeight"/>) with TF.js's own dequantization.
/// </summary>
public sealed class TfjsLayersModel
{
    private readonly byte[] _data;
    private readonly Dictionary<string, TfjsWeightSpec> _byName;
    private readonly Dictionary<string, KerasLayerSpec> _layersByName;

    private TfjsLayersModel(string source, JsonElement root, JsonElement modelConfig, IReadOnlyList<KerasLayerSpec> layers,
        IReadOnlyList<KerasTensorRef> inputs, IReadOnlyList<KerasTensorRef> outputs, IReadOnlyList<TfjsWeightSpec> weights,
        IReadOnlyList<string> shardFiles, byte[] data)
    {
        Source = source;
        Format = Str(root, "format");
        GeneratedBy = Str(root, "generatedBy");
        ConvertedBy = Str(root, "convertedBy");
        var topology = root.GetProperty("modelTopology");
        KerasVersion = Str(topology, "keras_version");
        Backend = Str(topology, "backend");
        ModelClassName = Str(modelConfig, "class_name") ?? "";
        ModelName = modelConfig.TryGetProperty("config", out var c) && c.ValueKind == JsonValueKind.Object ? Str(c, "name") : null;
        Layers = layers;
        Inputs = inputs;
        Outputs = outputs;
        WeightSpecs = weights;
        ShardFiles = shardFiles;
        _data = data;
        _byName = new Dictionary<string, TfjsWeightSpec>(StringComparer.Ordinal);
        foreach (var w in weights)
            if (!_byName.TryAdd(w.Name, w))
                throw new InvalidDataException($"TF.js model '{source}': weight '{w.Name}' appears twice in the weightsManifest.");
        _layersByName = new Dictionary<string, KerasLayerSpec>(StringComparer.Ordinal);
        foreach (var l in layers)
            if (!_layersByName.TryAdd(l.Name, l))
                throw new InvalidDataException($"TF.js model '{source}': two layers are named '{l.Name}'.");
    }

    /// <summary>Where the model was read from (the model.json path, or "memory").</summary>
    public string Source { get; }

    /// <summary>The <c>format</c> field ("layers-model"), if present.</summary>
    public string? Format { get; }

    /// <summary>The <c>generatedBy</c> field, if present.</summary>
    public string? GeneratedBy { get; }

    /// <summary>The <c>convertedBy</c> field, if present.</summary>
    public string? ConvertedBy { get; }

    /// <summary>Keras version that wrote the topology (e.g. "2.2.4", "tfjs-layers 4.22.0").</summary>
    public string? KerasVersion { get; }

    /// <summary>Backend named in the topology.</summary>
    public string? Backend { get; }

    /// <summary>Model class: Model, Functional or Sequential.</summary>
    public string ModelClassName { get; }

    /// <summary>The model's name.</summary>
    public string? ModelName { get; }

    /// <summary>Layers in config order (a Keras config lists them in topological order).</summary>
    public IReadOnlyList<KerasLayerSpec> Layers { get; }

    /// <summary>The model's input tensors.</summary>
    public IReadOnlyList<KerasTensorRef> Inputs { get; }

    /// <summary>The model's output tensors.</summary>
    public IReadOnlyList<KerasTensorRef> Outputs { get; }

    /// <summary>Every weight of the manifest, in manifest order, with offsets into the shard data.</summary>
    public IReadOnlyList<TfjsWeightSpec> WeightSpecs { get; }

    /// <summary>Shard file names in reading order.</summary>
    public IReadOnlyList<string> ShardFiles { get; }

    /// <summary>The layer named <paramref name="name"/>.</summary>
    public KerasLayerSpec GetLayer(string name) =>
        _layersByName.TryGetValue(name, out var l) ? l : throw new KeyNotFoundException($"TF.js model '{Source}' has no layer '{name}'.");

    /// <summary>True when a layer named <paramref name="name"/> exists.</summary>
    public bool HasLayer(string name) => _layersByName.ContainsKey(name);

    /// <summary>The manifest entry <paramref name="name"/>, if any.</summary>
    public bool TryGetWeightSpec(string name, out TfjsWeightSpec spec) => _byName.TryGetValue(name, out spec!);

    /// <summary>Decodes weight <paramref name="name"/> to float32 (TF.js layout, e.g. a conv kernel is HWIO).</summary>
    public float[] ReadWeight(string name)
    {
        if (!_byName.TryGetValue(name, out var spec))
            throw new KeyNotFoundException($"TF.js model '{Source}' has no weight '{name}' in its weightsManifest.");
        return TfjsDequantizer.Decode(_data.AsSpan(checked((int)spec.Offset), checked((int)spec.ByteLength)), spec);
    }

    /// <summary>Weight <paramref name="name"/> as a tensor of its manifest shape (TF layout).</summary>
    public Tensor ReadTensor(string name)
    {
        var v = ReadWeight(name);
        var t = Tensor.Wrap(v, _byName[name].Shape);
        t.Name = name;
        return t;
    }

    /// <summary>Every weight decoded, by name (TF layout).</summary>
    public Dictionary<string, Tensor> ReadAllTensors() =>
        WeightSpecs.ToDictionary(w => w.Name, w => ReadTensor(w.Name), StringComparer.Ordinal);

    // ------------------------------------------------------------------------------------------ loading

    /// <summary>
    /// Reads <c>model.json</c> (pass its folder or the file itself) and its shards. Shard paths must be plain
    /// relative names inside that folder: absolute paths, <c>..</c> segments and URLs are rejected.
    /// </summary>
    /// <exception cref="FileNotFoundException">model.json or a shard listed in the manifest is missing.</exception>
    /// <exception cref="InvalidDataException">Malformed JSON, or the shard sizes do not match the manifest.</exception>
    public static TfjsLayersModel Load(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        string jsonPath = Directory.Exists(path) ? Path.Combine(path, "model.json") : path;
        if (!File.Exists(jsonPath))
            throw new FileNotFoundException($"TF.js model file '{jsonPath}' does not exist.", jsonPath);
        string dir = Path.GetDirectoryName(Path.GetFullPath(jsonPath))!;
        byte[] json = File.ReadAllBytes(jsonPath);
        return Parse(json, jsonPath, shard =>
        {
            string full = Path.Combine(dir, shard);
            if (!File.Exists(full))
                throw new FileNotFoundException(
                    $"TF.js weight shard '{shard}' listed in the weightsManifest of '{jsonPath}' does not exist (expected at '{full}').", full);
            return File.ReadAllBytes(full);
        });
    }

    /// <summary>Parses a model.json held in memory; <paramref name="readShard"/> returns the bytes of a shard path.</summary>
    public static TfjsLayersModel Parse(ReadOnlySpan<byte> modelJson, string source, Func<string, byte[]> readShard)
    {
        ArgumentNullException.ThrowIfNull(readShard);
        JsonElement root;
        try
        {
            var reader = new Utf8JsonReader(modelJson, new JsonReaderOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true });
            root = JsonElement.ParseValue(ref reader);
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"TF.js model '{source}' is not valid JSON: {e.Message}", e);
        }
        if (root.ValueKind != JsonValueKind.Object)
            throw new InvalidDataException($"TF.js model '{source}': expected a JSON object at the top level.");
        if (Str(root, "format") == "graph-model")
            throw new NotSupportedException($"TF.js model '{source}' is a graph model (format \"graph-model\"); only layers models (Keras topologies) are supported.");
        if (!root.TryGetProperty("modelTopology", out var topology) || topology.ValueKind != JsonValueKind.Object)
            throw new InvalidDataException($"TF.js model '{source}' has no 'modelTopology' object; it is not a TF.js layers model.");
        if (topology.TryGetProperty("node", out _))
            throw new NotSupportedException($"TF.js model '{source}' holds a TensorFlow GraphDef (a graph model); only layers models are supported.");
        var modelConfig = topology.TryGetProperty("model_config", out var mc) ? mc : topology;
        if (modelConfig.ValueKind != JsonValueKind.Object || Str(modelConfig, "class_name") is not string cls)
            throw new InvalidDataException($"TF.js model '{source}': modelTopology has no model_config with a class_name.");

        var (layers, inputs, outputs) = cls switch
        {
            "Model" or "Functional" => ParseFunctional(modelConfig.GetProperty("config"), source),
            "Sequential" => ParseSequential(modelConfig.GetProperty("config"), source),
            _ => throw new NotSupportedException($"TF.js model '{source}': model class '{cls}' is not supported (Model, Functional, Sequential)."),
        };

        var (specs, shardFiles, data) = ReadWeights(root, source, readShard);
        return new TfjsLayersModel(source, root.Clone(), modelConfig.Clone(), layers, inputs, outputs, specs, shardFiles, data);
    }

    private static string? Str(JsonElement o, string key) =>
        o.ValueKind == JsonValueKind.Object && o.TryGetProperty(key, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;

    private static (List<KerasLayerSpec>, List<KerasTensorRef>, List<KerasTensorRef>) ParseFunctional(JsonElement config, string source)
    {
        if (!config.TryGetProperty("layers", out var layersEl) || layersEl.ValueKind != JsonValueKind.Array)
            throw new InvalidDataException($"TF.js model '{source}': model_config.config has no 'layers' array.");
        var layers = new List<KerasLayerSpec>();
        foreach (var l in layersEl.EnumerateArray())
        {
            string cls = Str(l, "class_name") ?? throw new InvalidDataException($"TF.js model '{source}': a layer has no class_name: {Trim(l.GetRawText())}");
            var cfg = l.TryGetProperty("config", out var c) ? c : default;
            string name = Str(l, "name") ?? Str(cfg, "name") ?? throw new InvalidDataException($"TF.js model '{source}': a {cls} layer has no name.");
            var nodes = new List<List<KerasTensorRef>>();
            if (l.TryGetProperty("inbound_nodes", out var inbound) && inbound.ValueKind == JsonValueKind.Array)
                foreach (var node in inbound.EnumerateArray()) nodes.Add(ParseNode(node, name, source));
            layers.Add(new KerasLayerSpec(name, cls, cfg, nodes.Count > 0 ? nodes[0] : [], Math.Max(1, nodes.Count)));
        }
        var inputs = ParseRefs(config, "input_layers", source);
        var outputs = ParseRefs(config, "output_layers", source);
        if (inputs.Count == 0) inputs = layers.Where(l => l.ClassName == "InputLayer").Select(l => new KerasTensorRef(l.Name)).ToList();
        return (layers, inputs, outputs);
    }

    // Keras 2: [[name, node, tensor, kwargs], ...]; Keras 3: {"args": [...], "kwargs": {...}} with keras_history.
    private static List<KerasTensorRef> ParseNode(JsonElement node, string layer, string source)
    {
        var refs = new List<KerasTensorRef>();
        if (node.ValueKind == JsonValueKind.Array)
        {
            foreach (var t in node.EnumerateArray())
            {
                if (t.ValueKind != JsonValueKind.Array || t.GetArrayLength() < 3 || t[0].ValueKind != JsonValueKind.String)
                    throw new InvalidDataException($"TF.js model '{source}': layer '{layer}' has a malformed inbound node entry {Trim(t.GetRawText())}.");
                refs.Add(new KerasTensorRef(t[0].GetString()!, t[1].GetInt32(), t[2].GetInt32()));
            }
        }
        else if (node.ValueKind == JsonValueKind.Object)
        {
            if (node.TryGetProperty("args", out var args)) CollectHistory(args, refs);
        }
        else throw new InvalidDataException($"TF.js model '{source}': layer '{layer}' has a malformed inbound node {Trim(node.GetRawText())}.");
        return refs;
    }

    private static void CollectHistory(JsonElement e, List<KerasTensorRef> refs)
    {
        if (e.ValueKind == JsonValueKind.Array)
            foreach (var x in e.EnumerateArray()) CollectHistory(x, refs);
        else if (e.ValueKind == JsonValueKind.Object)
        {
            if (e.TryGetProperty("config", out var c) && c.ValueKind == JsonValueKind.Object
                && c.TryGetProperty("keras_history", out var h) && h.ValueKind == JsonValueKind.Array && h.GetArrayLength() >= 3)
                refs.Add(new KerasTensorRef(h[0].GetString()!, h[1].GetInt32(), h[2].GetInt32()));
        }
    }

    private static List<KerasTensorRef> ParseRefs(JsonElement config, string key, string source)
    {
        var list = new List<KerasTensorRef>();
        if (!config.TryGetProperty(key, out var el) || el.ValueKind != JsonValueKind.Array) return list;
        // Keras 3 writes a single tensor as ["name", 0, 0] instead of [["name", 0, 0]].
        List<JsonElement> entries = el.GetArrayLength() > 0 && el[0].ValueKind == JsonValueKind.String ? [el] : el.EnumerateArray().ToList();
        foreach (var r in entries)
        {
            if (r.ValueKind != JsonValueKind.Array || r.GetArrayLength() < 1 || r[0].ValueKind != JsonValueKind.String)
                throw new InvalidDataException($"TF.js model '{source}': malformed {key} entry {Trim(r.GetRawText())}.");
            list.Add(new KerasTensorRef(r[0].GetString()!, r.GetArrayLength() > 1 ? r[1].GetInt32() : 0, r.GetArrayLength() > 2 ? r[2].GetInt32() : 0));
        }
        return list;
    }

    private static (List<KerasLayerSpec>, List<KerasTensorRef>, List<KerasTensorRef>) ParseSequential(JsonElement config, string source)
    {
        var layersEl = config.ValueKind == JsonValueKind.Array ? config
            : config.TryGetProperty("layers", out var l) ? l
            : throw new InvalidDataException($"TF.js model '{source}': Sequential config has no 'layers'.");
        var layers = new List<KerasLayerSpec>();
        string? prev = null;
        foreach (var e in layersEl.EnumerateArray())
        {
            string cls = Str(e, "class_name") ?? throw new InvalidDataException($"TF.js model '{source}': a layer has no class_name.");
            var cfg = e.TryGetProperty("config", out var c) ? c : default;
            string name = Str(cfg, "name") ?? Str(e, "name") ?? $"{cls.ToLowerInvariant()}_{layers.Count}";
            if (prev is null && cls != "InputLayer")
            {
                if (!cfg.TryGetProperty("batch_input_shape", out var bis))
                    throw new InvalidDataException($"TF.js model '{source}': the first Sequential layer '{name}' has no batch_input_shape.");
                using var doc = JsonDocument.Parse($"{{\"batch_input_shape\": {bis.GetRawText()}, \"name\": \"{name}_input\"}}");
                layers.Add(new KerasLayerSpec($"{name}_input", "InputLayer", doc.RootElement, []));
                prev = $"{name}_input";
            }
            layers.Add(new KerasLayerSpec(name, cls, cfg, prev is null ? [] : [new KerasTensorRef(prev)]));
            prev = name;
        }
        if (prev is null) throw new InvalidDataException($"TF.js model '{source}': Sequential model has no layers.");
        return (layers, [new KerasTensorRef(layers[0].Name)], [new KerasTensorRef(prev)]);
    }

    private static string Trim(string s) => s.Length <= 200 ? s : s[..200] + "...";

    // ------------------------------------------------------------------------------------------ weights

    private static (List<TfjsWeightSpec>, List<string>, byte[]) ReadWeights(JsonElement root, string source, Func<string, byte[]> readShard)
    {
        var specs = new List<TfjsWeightSpec>();
        var files = new List<string>();
        if (!root.TryGetProperty("weightsManifest", out var manifest) || manifest.ValueKind == JsonValueKind.Null)
            return (specs, files, []);
        if (manifest.ValueKind != JsonValueKind.Array)
            throw new InvalidDataException($"TF.js model '{source}': weightsManifest must be an array of {{paths, weights}} groups.");

        var groups = new List<(List<string> Paths, List<(string Name, int[] Shape, string DType, TfjsQuantization? Q, long Bytes)> Weights)>();
        foreach (var g in manifest.EnumerateArray())
        {
            if (!g.TryGetProperty("paths", out var pathsEl) || pathsEl.ValueKind != JsonValueKind.Array)
                throw new InvalidDataException($"TF.js model '{source}': a weightsManifest group has no 'paths' array.");
            var paths = new List<string>();
            foreach (var p in pathsEl.EnumerateArray())
            {
                string path = p.ValueKind == JsonValueKind.String ? p.GetString()! : throw new InvalidDataException($"TF.js model '{source}': shard path {p.GetRawText()} is not a string.");
                CheckShardPath(path, source);
                paths.Add(path);
            }
            var weights = new List<(string, int[], string, TfjsQuantization?, long)>();
            if (g.TryGetProperty("weights", out var ws) && ws.ValueKind == JsonValueKind.Array)
                foreach (var w in ws.EnumerateArray()) weights.Add(ParseWeight(w, source));
            groups.Add((paths, weights));
        }

        // Read every shard once, in manifest order.
        var buffers = new List<byte[]>();
        foreach (var (paths, _) in groups)
            foreach (var p in paths)
            {
                buffers.Add(readShard(p) ?? throw new FileNotFoundException($"TF.js weight shard '{p}' of '{source}' could not be read."));
                files.Add(p);
            }
        long total = buffers.Sum(b => (long)b.Length);
        if (total > Array.MaxLength) throw new InvalidDataException($"TF.js model '{source}': {total} bytes of weights is too large.");
        var data = new byte[total];

        long offset = 0;
        int shardIndex = 0;
        foreach (var (paths, weights) in groups)
        {
            long groupStart = offset;
            var sizes = new List<(string Path, long Bytes)>();
            foreach (var p in paths)
            {
                var b = buffers[shardIndex++];
                b.CopyTo(data, offset);
                offset += b.Length;
                sizes.Add((p, b.Length));
            }
            long have = offset - groupStart;
            long at = 0;
            foreach (var (name, shape, dtype, q, bytes) in weights)
            {
                var spec = new TfjsWeightSpec(name, shape, dtype, q, groupStart + at, bytes);
                if (at + bytes > have)
                {
                    // Locate the shard in which the missing bytes should have been.
                    long acc = 0;
                    string where = sizes.Count == 0 ? "(none)" : sizes[^1].Path;
                    foreach (var (p, n) in sizes)
                    {
                        if (at < acc + n) { where = p; break; }
                        acc += n;
                    }
                    throw new InvalidDataException(
                        $"TF.js weights of '{source}' are truncated: weight {spec} needs bytes [{at}, {at + bytes}) of its group, " +
                        $"but the group's shards ({string.Join(", ", sizes.Select(s => $"{s.Path}: {s.Bytes} bytes"))}) hold only {have} bytes " +
                        $"(the weight starts in '{where}'; the last shard '{(sizes.Count > 0 ? sizes[^1].Path : "?")}' is probably truncated or a shard is missing).");
                }
                specs.Add(spec);
                at += bytes;
            }
            if (at != have)
                throw new InvalidDataException(
                    $"TF.js weights of '{source}': the shards ({string.Join(", ", sizes.Select(s => $"{s.Path}: {s.Bytes} bytes"))}) hold {have} bytes " +
                    $"but the manifest's weights{(weights.Count > 0 ? $" (last: '{weights[^1].Name}')" : "")} describe {at}; the shards do not match model.json.");
        }
        return (specs, files, data);
    }

    private static (string, int[], string, TfjsQuantization?, long) ParseWeight(JsonElement w, string source)
    {
        string name = Str(w, "name") ?? throw new InvalidDataException($"TF.js model '{source}': a weight entry has no name: {Trim(w.GetRawText())}");
        if (!w.TryGetProperty("shape", out var shapeEl) || shapeEl.ValueKind != JsonValueKind.Array)
            throw new InvalidDataException($"TF.js model '{source}': weight '{name}' has no shape.");
        var shape = new int[shapeEl.GetArrayLength()];
        int i = 0;
        foreach (var s in shapeEl.EnumerateArray())
        {
            if (s.ValueKind != JsonValueKind.Number || !s.TryGetInt32(out int v) || v < 0)
                throw new InvalidDataException($"TF.js model '{source}': weight '{name}' has an invalid shape {shapeEl.GetRawText()}.");
            shape[i++] = v;
        }
        string dtype = Str(w, "dtype") ?? "float32";
        TfjsQuantization? q = null;
        if (w.TryGetProperty("quantization", out var qe) && qe.ValueKind == JsonValueKind.Object)
        {
            string qd = Str(qe, "dtype") ?? throw new InvalidDataException($"TF.js model '{source}': weight '{name}' has a quantization without dtype.");
            double? Num(string k) => qe.TryGetProperty(k, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetDouble() : null;
            q = new TfjsQuantization(qd, Num("min"), Num("scale"), Str(qe, "original_dtype"));
            if (qd is not ("uint8" or "uint16" or "float16"))
                throw new InvalidDataException($"TF.js model '{source}': weight '{name}' has unsupported quantization dtype '{qd}' (uint8, uint16, float16).");
            if (qd is "uint8" or "uint16" && (q.Min is null || q.Scale is null))
                throw new InvalidDataException($"TF.js model '{source}': weight '{name}' is {qd}-quantized but its quantization lacks 'min' or 'scale'.");
        }
        string stored = q?.DType ?? dtype;
        int per = TfjsWeightSpec.BytesPerElement(stored);
        if (per == 0)
            throw new InvalidDataException($"TF.js model '{source}': weight '{name}' has unsupported dtype '{stored}' (float32, int32, bool, or quantized uint8/uint16/float16).");
        long numel = 1;
        foreach (var d in shape) numel = checked(numel * d);
        return (name, shape, dtype, q, numel * per);
    }

    /// <summary>Rejects shard paths that could leave the model folder.</summary>
    internal static void CheckShardPath(string path, string source)
    {
        if (string.IsNullOrWhiteSpace(path))
            throw new InvalidDataException($"TF.js model '{source}': empty shard path in the weightsManifest.");
        if (path.Contains("://", StringComparison.Ordinal))
            throw new InvalidDataException($"TF.js model '{source}': shard path '{path}' is a URL; only files beside model.json are read.");
        if (Path.IsPathRooted(path) || path.StartsWith('/') || path.StartsWith('\\') || (path.Length >= 2 && path[1] == ':'))
            throw new InvalidDataException($"TF.js model '{source}': shard path '{path}' is absolute; shard paths must be relative to model.json.");
        foreach (var seg in path.Split('/', '\\'))
            if (seg == "..")
                throw new InvalidDataException($"TF.js model '{source}': shard path '{path}' contains '..'; shard paths must stay inside the model folder.");
        if (path.IndexOf('\0') >= 0)
            throw new InvalidDataException($"TF.js model '{source}': shard path contains a NUL character.");
    }
}

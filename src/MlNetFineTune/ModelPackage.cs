using System.IO.Compression;
using System.Reflection;
using System.Text.Json;
using System.Text.Json.Nodes;
using MlNetFineTune.Tensors;
using MlNetFineTune.Tensors.IO;

namespace MlNetFineTune;

/// <summary>
/// The single file a trained model lives in: <c>model.zip</c> holding <c>manifest.json</c> (task, labels,
/// architecture, tokenizer, training options, metrics, toolkit version), <c>weights.safetensors</c> and the
/// tokenizer's files. Written to a temporary file and renamed, so a failure never leaves half a model.
/// </summary>
public sealed class ModelPackage
{
    /// <summary>The manifest format this build writes and reads.</summary>
    public const string Format = "mlnetfinetune-model";

    /// <summary>The manifest version this build writes; older or newer majors are refused.</summary>
    public const int Version = 1;

    /// <summary>The manifest (task-specific fields live under their own keys).</summary>
    public JsonObject Manifest { get; }

    /// <summary>Named weight tensors.</summary>
    public IReadOnlyDictionary<string, Tensor> Weights { get; }

    /// <summary>Extra files by name (tokenizer.json, vocab.txt, ...).</summary>
    public IReadOnlyDictionary<string, byte[]> Files { get; }

    /// <summary>Creates a package in memory.</summary>
    public ModelPackage(JsonObject manifest, IReadOnlyDictionary<string, Tensor> weights, IReadOnlyDictionary<string, byte[]>? files = null)
    {
        Manifest = manifest;
        Weights = weights;
        Files = files ?? new Dictionary<string, byte[]>();
    }

    /// <summary>The toolkit version stamped into manifests.</summary>
    public static string ToolkitVersion { get; } =
        typeof(ModelPackage).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "0.0.0";

    /// <summary>Writes the package atomically (temp file in the same folder, then rename).</summary>
    public void Save(string path, ISet<string>? halfPrecisionTensors = null)
    {
        var full = Path.GetFullPath(path);
        var dir = Path.GetDirectoryName(full)!;
        Directory.CreateDirectory(dir);
        var tmp = Path.Combine(dir, $".{Path.GetFileName(full)}.{Guid.NewGuid():N}.tmp");
        try
        {
            var manifest = (JsonObject)Manifest.DeepClone();
            manifest["format"] = Format;
            manifest["version"] = Version;
            manifest["toolkitVersion"] = ToolkitVersion;
            using (var fs = new FileStream(tmp, FileMode.CreateNew, FileAccess.Write))
            using (var zip = new ZipArchive(fs, ZipArchiveMode.Create))
            {
                Write(zip, "manifest.json", JsonSerializer.SerializeToUtf8Bytes(manifest, new JsonSerializerOptions { WriteIndented = true }), CompressionLevel.Optimal);
                Write(zip, "weights.safetensors", SafeTensorBytes(halfPrecisionTensors), CompressionLevel.Fastest);
                foreach (var (name, bytes) in Files) Write(zip, CheckEntryName(name, path), bytes, CompressionLevel.Optimal);
            }
            File.Move(tmp, full, overwrite: true);
        }
        catch
        {
            try { File.Delete(tmp); } catch (IOException) { }
            throw;
        }
    }

    private byte[] SafeTensorBytes(ISet<string>? half)
    {
        var entries = Weights.Select(kv =>
        {
            var shape = kv.Value.Shape.Select(d => (long)d).ToArray();
            return kv.Value.DType switch
            {
                DType.Float32 => new SafeTensorWriteEntry(kv.Key, half?.Contains(kv.Key) == true ? SafeTensorDType.F16 : SafeTensorDType.F32, shape, kv.Value.ToArray()),
                _ => new SafeTensorWriteEntry(kv.Key, SafeTensorDType.I64, shape, kv.Value.ToInt64Array()),
            };
        });
        return SafeTensorsWriter.WriteToBytes(entries);
    }

    private static void Write(ZipArchive zip, string name, byte[] bytes, CompressionLevel level)
    {
        var e = zip.CreateEntry(name, level);
        e.LastWriteTime = new DateTimeOffset(2020, 1, 1, 0, 0, 0, TimeSpan.Zero);
        using var s = e.Open();
        s.Write(bytes);
    }

    private static string CheckEntryName(string name, string path)
    {
        if (name.Length == 0 || name.Contains("..") || name.Contains('\\') || Path.IsPathRooted(name) || name is "manifest.json" or "weights.safetensors")
            throw new ArgumentException($"{path}: invalid package file name '{name}'.");
        return name;
    }

    /// <summary>Reads a package; errors name the file and what is wrong, and newer manifest versions are refused.</summary>
    public static ModelPackage Load(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"Model file '{path}' does not exist.", path);
        try
        {
            using var zip = ZipFile.OpenRead(path);
            JsonObject manifest = ReadManifest(zip, path);
            var weightsEntry = zip.GetEntry("weights.safetensors") ?? throw new InvalidDataException($"{path}: weights.safetensors is missing.");
            var weightBytes = ReadAll(weightsEntry, path);
            var weights = new Dictionary<string, Tensor>(StringComparer.Ordinal);
            using (var st = SafeTensorsFile.FromBytes(weightBytes, path + "!weights.safetensors"))
                foreach (var info in st.Tensors) weights[info.Name] = SafeTensors.Read(st, info);
            var files = new Dictionary<string, byte[]>(StringComparer.Ordinal);
            foreach (var e in zip.Entries)
            {
                if (e.FullName is "manifest.json" or "weights.safetensors" || e.FullName.EndsWith('/')) continue;
                if (e.FullName.Contains("..") || e.FullName.Contains('\\') || e.FullName.StartsWith('/'))
                    throw new InvalidDataException($"{path}: entry '{e.FullName}' has an unsafe path.");
                files[e.FullName] = ReadAll(e, path);
            }
            return new ModelPackage(manifest, weights, files);
        }
        catch (InvalidDataException ex) when (!ex.Message.StartsWith(path, StringComparison.Ordinal))
        {
            throw new InvalidDataException($"{path}: {ex.Message}", ex);
        }
    }

    private static JsonObject ReadManifest(ZipArchive zip, string path)
    {
        var entry = zip.GetEntry("manifest.json") ?? throw new InvalidDataException($"{path}: manifest.json is missing; not a MlNetFineTune model.");
        JsonObject manifest;
        try { manifest = JsonNode.Parse(ReadAll(entry, path)) as JsonObject ?? throw new InvalidDataException($"{path}: manifest.json is not an object."); }
        catch (JsonException ex) { throw new InvalidDataException($"{path}: manifest.json line {ex.LineNumber + 1}: {ex.Message}", ex); }
        if (manifest["format"]?.GetValue<string>() != Format)
            throw new InvalidDataException($"{path}: manifest format is '{manifest["format"]}', expected '{Format}'.");
        int version = manifest["version"]?.GetValue<int>() ?? -1;
        if (version != Version)
            throw new InvalidDataException($"{path}: manifest version {version} is not supported by this toolkit (reads version {Version}); " +
                $"it was written by MlNetFineTune {manifest["toolkitVersion"]}.");
        return manifest;
    }

    private static byte[] ReadAll(ZipArchiveEntry e, string path)
    {
        if (e.Length > 2L * 1024 * 1024 * 1024) throw new InvalidDataException($"{path}: entry '{e.FullName}' is too large ({e.Length} bytes).");
        using var s = e.Open();
        var ms = new MemoryStream((int)e.Length);
        s.CopyTo(ms);
        return ms.ToArray();
    }
}

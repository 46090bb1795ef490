using System.Text.Json;
using MlNetFineTune.Models.Formats;
using MlNetFineTune.Tensors;
using MlNetFineTune.Tensors.IO;

namespace MlNetFineTune.Models;

/// <summary>Reads weight files in the formats users already have.</summary>
public static class Checkpoints
{
    /// <summary>
    /// Loads named tensors from a safetensors file, a PyTorch checkpoint (.bin, .pt, .pth), or a Hugging
    /// Face model directory (model.safetensors, sharded model.safetensors.index.json, or pytorch_model.bin).
    /// </summary>
    public static IReadOnlyDictionary<string, Tensor> Load(string path)
    {
        if (Directory.Exists(path)) return LoadDirectory(path);
        if (!File.Exists(path)) throw new FileNotFoundException($"Checkpoint '{path}' does not exist.", path);
        string ext = Path.GetExtension(path).ToLowerInvariant();
        if (ext == ".safetensors") return SafeTensors.Load(path);
        if (ext == ".json" && path.EndsWith(".index.json", StringComparison.OrdinalIgnoreCase)) return LoadIndex(path);
        return TorchCheckpoint.Load(path);
    }

    private static IReadOnlyDictionary<string, Tensor> LoadDirectory(string dir)
    {
        foreach (var name in new[] { "model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json" })
        {
            var p = Path.Combine(dir, name);
            if (File.Exists(p)) return Load(p);
        }
        throw new FileNotFoundException($"No weights in '{dir}': expected model.safetensors, model.safetensors.index.json or pytorch_model.bin.");
    }

    // Sharded checkpoints: {"weight_map": {"tensor name": "shard file"}}.
    private static IReadOnlyDictionary<string, Tensor> LoadIndex(string indexPath)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(indexPath));
        if (!doc.RootElement.TryGetProperty("weight_map", out var map) || map.ValueKind != JsonValueKind.Object)
            throw new InvalidDataException($"{indexPath}: 'weight_map' object is missing.");
        var dir = Path.GetDirectoryName(Path.GetFullPath(indexPath))!;
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var shard in map.EnumerateObject().Select(p => p.Value.GetString()!).Distinct())
        {
            if (shard.Contains("..") || Path.IsPathRooted(shard))
                throw new InvalidDataException($"{indexPath}: shard '{shard}' points outside the model directory.");
            foreach (var (k, v) in Load(Path.Combine(dir, shard))) result[k] = v;
        }
        return result;
    }
}

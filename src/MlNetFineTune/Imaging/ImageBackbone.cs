using System.Text.Json.Nodes;
using MlNetFineTune.Models.Formats;
using MlNetFineTune.Models.Nn;
using MlNetFineTune.Models.Vision;
using MlNetFineTune.Tensors;

namespace MlNetFineTune.Imaging;

/// <summary>A pretrained image network cut at a feature layer, plus how it wants its pixels.</summary>
internal sealed class ImageBackbone
{
    private static readonly float[] ImageNetMean = [0.485f, 0.456f, 0.406f];
    private static readonly float[] ImageNetStd = [0.229f, 0.224f, 0.225f];

    public required string Kind { get; init; }          // "keras", "resnet"
    public required string Source { get; init; }        // "mobilenet_v2", "inception_v3", a path, "scratch"
    public required Module Module { get; init; }
    public required IImageBackbone Network { get; init; }
    public required int FeatureSize { get; init; }
    public string? OutputLayer { get; init; }
    /// <summary>TF.js files to embed in model.zip so a Keras backbone can be rebuilt without the repository.</summary>
    public IReadOnlyDictionary<string, byte[]>? SourceFiles { get; init; }

    /// <summary>Pixels 0..255 [C, H, W] to the network's input scale.</summary>
    public FloatImage Normalize(FloatImage img) => Kind == "keras"
        ? ImageTransforms.Normalize(img, 255f, [0f, 0f, 0f], [1f, 1f, 1f])                // nsfwjs: x / 255
        : ImageTransforms.Normalize(img, 255f, ImageNetMean, ImageNetStd);                 // torchvision

    /// <summary>Pooled features [N, F].</summary>
    public Tensor Features(Tensor images) => Network.Features(images);

    /// <summary>Layer groups bottom to top (for freezing and learning-rate decay).</summary>
    public IReadOnlyList<string> LayerGroups(string prefix)
    {
        if (Network is ResNet r)
        {
            string[] groups = ["conv1", "bn1", .. Enumerable.Range(1, r.Config.Layers.Length).Select(i => $"layer{i}")];
            return groups.Select(g => prefix + g).ToList();
        }
        var keras = (KerasModel)Network;
        return keras.Layers.Where(l => l.Parameters().Any()).Select(l => prefix + l.LayerName).ToList();
    }

    /// <summary>The folder of a shipped Keras backbone (data/models/&lt;name&gt;), searched above the application and the working folder.</summary>
    public static string ShippedDirectory(string name)
    {
        foreach (var start in new[] { AppContext.BaseDirectory, Directory.GetCurrentDirectory() })
            for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
            {
                var candidate = Path.Combine(dir.FullName, "data", "models", name);
                if (File.Exists(Path.Combine(candidate, "model.json"))) return candidate;
            }
        throw new DirectoryNotFoundException($"The shipped backbone data/models/{name} was not found.");
    }

    /// <summary>default/mobilenet_v2, inception_v3, scratch (a randomly initialised ResNet-18), a TF.js folder, or a torchvision .pth.</summary>
    public static ImageBackbone Create(string spec, string? outputLayer, Rng rng)
    {
        spec = string.IsNullOrWhiteSpace(spec) ? "default" : spec;
        if (spec == "scratch")
        {
            var net = new ResNet(ResNetConfig.FromName("resnet18"), rng, includeClassifier: false);
            return new ImageBackbone { Kind = "resnet", Source = "scratch", Module = net, Network = net, FeatureSize = net.FeatureSize };
        }
        string dir = spec is "default" or "mobilenet_v2" ? ShippedDirectory("mobilenet_v2")
            : spec == "inception_v3" ? ShippedDirectory("inception_v3") : spec;
        if (File.Exists(dir) && !dir.EndsWith(".json", StringComparison.OrdinalIgnoreCase))
        {
            var state = Models.Checkpoints.Load(dir);
            var net = ResNet.FromStateDict(state, rng, dir);
            var backbone = new ResNet(net.Config, rng, includeClassifier: false);
            backbone.LoadStateDict(state.Where(kv => !kv.Key.StartsWith("fc.", StringComparison.Ordinal)).ToDictionary(kv => kv.Key, kv => kv.Value));
            return new ImageBackbone { Kind = "resnet", Source = Path.GetFileName(dir), Module = backbone, Network = backbone, FeatureSize = backbone.FeatureSize };
        }
        var files = ReadTfjsFiles(dir);
        var model = KerasModel.FromTfjs(TfjsLayersModel.Parse(files["model.json"], dir, f => files[f]), outputLayer);
        int features = model.Features(Tensor.Zeros(1, 3, 64, 64)).Shape[1];
        return new ImageBackbone
        {
            Kind = "keras", Source = spec, Module = model, Network = model, FeatureSize = features,
            OutputLayer = model.OutputLayer, SourceFiles = files,
        };
    }

    private static Dictionary<string, byte[]> ReadTfjsFiles(string dir)
    {
        if (!File.Exists(Path.Combine(dir, "model.json"))) throw new FileNotFoundException($"'{dir}' has no model.json (expected a TF.js layers model folder or a torchvision .pth).");
        var files = new Dictionary<string, byte[]>(StringComparer.Ordinal) { ["model.json"] = File.ReadAllBytes(Path.Combine(dir, "model.json")) };
        foreach (var f in Directory.GetFiles(dir).Where(f => Path.GetFileName(f).StartsWith("group", StringComparison.Ordinal) || Path.GetExtension(f) == ".bin"))
            files[Path.GetFileName(f)] = File.ReadAllBytes(f);
        return files;
    }

    public void Describe(JsonObject manifest, Dictionary<string, byte[]> files, string prefix)
    {
        manifest["backbone"] = new JsonObject { ["kind"] = Kind, ["source"] = Source, ["outputLayer"] = OutputLayer, ["featureSize"] = FeatureSize };
        if (Kind == "keras" && SourceFiles is not null)
            foreach (var (name, bytes) in SourceFiles) files[prefix + name] = bytes;
    }

    public static ImageBackbone FromPackage(ModelPackage package, string prefix, string path)
    {
        var b = package.Manifest["backbone"]!.AsObject();
        string kind = b["kind"]!.GetValue<string>();
        var rng = new Rng(0);
        if (kind == "keras")
        {
            string? layer = b["outputLayer"]?.GetValue<string>();
            var files = package.Files.Where(kv => kv.Key.StartsWith(prefix, StringComparison.Ordinal)).ToDictionary(kv => kv.Key[prefix.Length..], kv => kv.Value);
            if (!files.TryGetValue("model.json", out var json)) throw new InvalidDataException($"{path}: the Keras backbone's model.json is missing.");
            var model = KerasModel.FromTfjs(TfjsLayersModel.Parse(json, path, f => files.TryGetValue(f, out var bytes) ? bytes : throw new InvalidDataException($"{path}: shard '{f}' is missing.")), layer);
            return new ImageBackbone { Kind = kind, Source = b["source"]!.GetValue<string>(), Module = model, Network = model, FeatureSize = b["featureSize"]!.GetValue<int>(), OutputLayer = layer, SourceFiles = files };
        }
        var state = package.Weights.Where(kv => kv.Key.StartsWith("backbone.", StringComparison.Ordinal)).ToDictionary(kv => kv.Key[9..], kv => kv.Value);
        var net = ResNet.FromStateDict(state, rng, path);
        return new ImageBackbone { Kind = kind, Source = b["source"]!.GetValue<string>(), Module = net, Network = net, FeatureSize = net.FeatureSize };
    }
}

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

    /// <summary>
    /// default/mobilenet_v2, inception_v3, scratch (the default's MobileNetV2 architecture with freshly initialised
    /// weights), resnet18-scratch (a randomly initialised ResNet-18), a TF.js folder, or a torchvision .pth.
    /// </summary>
    public static ImageBackbone Create(string spec, string? outputLayer, Rng rng)
    {
        spec = string.IsNullOrWhiteSpace(spec) ? "default" : spec;
        if (spec == "scratch")
        {
            var shipped = ReadTfjsFiles(ShippedDirectory("mobilenet_v2"));
            var fresh = KerasModel.FromTfjs(TfjsLayersModel.Parse(shipped["model.json"], "mobilenet_v2", f => shipped[f]), outputLayer);
            Reinitialize(fresh, rng);
            // Keras's 0.999 momentum suits fine-tuning settled statistics; fresh ones must follow the weights
            // within a few hundred steps, so scratch uses PyTorch's default (0.1 in its convention).
            foreach (var (_, m) in fresh.NamedModules())
                if (m is KerasBatchNorm bn) bn.Momentum = 0.1f;
            int size = fresh.Features(Tensor.Zeros(1, 3, 64, 64)).Shape[1];
            // The topology is embedded in model.zip as usual; the trained weights come from the state dict.
            return new ImageBackbone
            {
                Kind = "keras", Source = "scratch", Module = fresh, Network = fresh, FeatureSize = size,
                OutputLayer = fresh.OutputLayer, SourceFiles = shipped,
            };
        }
        if (spec == "resnet18-scratch")
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

    /// <summary>
    /// Fresh weights for every layer, as Keras would initialise an untrained model, except that convolutions use He
    /// normal (fan-in; ReLU6 networks trained from scratch need it): dense layers Glorot uniform, biases and batch-norm
    /// shifts 0, batch-norm scales 1, moving means 0 and variances 1.
    /// </summary>
    internal static void Reinitialize(Module model, Rng rng)
    {
        foreach (var (name, t) in model.NamedParameters().Concat(model.NamedBuffers()))
        {
            var data = t.AsSpan();
            var shape = t.Shape;
            string leaf = name[(name.LastIndexOf('.') + 1)..];
            if (leaf.EndsWith("weight", StringComparison.Ordinal) && shape.Count == 4)
            {
                int fanIn = shape[1] * shape[2] * shape[3];
                float std = MathF.Sqrt(2f / fanIn);
                for (int i = 0; i < data.Length; i++) data[i] = rng.NextNormal() * std;
            }
            else if (leaf == "weight" && shape.Count == 2)
            {
                float limit = MathF.Sqrt(6f / (shape[0] + shape[1]));
                for (int i = 0; i < data.Length; i++) data[i] = (rng.NextFloat() * 2 - 1) * limit;
            }
            else if (leaf is "weight" or "running_var") data.Fill(1f);     // batch-norm scale (rank 1), moving variance
            else data.Clear();                                               // biases, batch-norm shifts, moving means
        }
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

using MlNetFineTune.Models.Nn;
using MlNetFineTune.Tensors;

namespace MlNetFineTune.Models.Vision;

/// <summary>A network that maps images [N, 3, H, W] to pooled feature vectors [N, FeatureSize].</summary>
public interface IImageBackbone
{
    /// <summary>Length of the pooled feature vector.</summary>
    int FeatureSize { get; }

    /// <summary>Pooled features for a batch of images.</summary>
    Tensor Features(Tensor images);
}

/// <summary>Which residual block a ResNet stacks.</summary>
public enum ResNetBlock
{
    /// <summary>Two 3x3 convolutions (ResNet-18/34).</summary>
    Basic,
    /// <summary>1x1, 3x3, 1x1 with 4x expansion (ResNet-50/101/152).</summary>
    Bottleneck,
}

/// <summary>ResNet shape: block type, blocks per stage and stage widths (torchvision uses 64, 128, 256, 512).</summary>
public sealed record ResNetConfig(ResNetBlock Block, int[] Layers, int[] Widths, int NumClasses = 1000)
{
    /// <summary>torchvision's resnet18/34/50 shapes.</summary>
    public static ResNetConfig FromName(string name, int numClasses = 1000) => name switch
    {
        "resnet18" => new(ResNetBlock.Basic, [2, 2, 2, 2], [64, 128, 256, 512], numClasses),
        "resnet34" => new(ResNetBlock.Basic, [3, 4, 6, 3], [64, 128, 256, 512], numClasses),
        "resnet50" => new(ResNetBlock.Bottleneck, [3, 4, 6, 3], [64, 128, 256, 512], numClasses),
        "resnet101" => new(ResNetBlock.Bottleneck, [3, 4, 23, 3], [64, 128, 256, 512], numClasses),
        _ => throw new NotSupportedException($"Unknown ResNet '{name}' (resnet18, resnet34, resnet50, resnet101)."),
    };

    /// <summary>Output channels of a block relative to its width.</summary>
    public int Expansion => Block == ResNetBlock.Bottleneck ? 4 : 1;
}

/// <summary>
/// torchvision's ResNet with its state-dict names (conv1, bn1, layer1.0.conv1, ..., layerN.0.downsample.0/1, fc),
/// usable as a classifier or as a backbone returning pooled features.
/// </summary>
public sealed class ResNet : Module, IImageBackbone
{
    private readonly Conv2d _conv1;
    private readonly BatchNorm2d _bn1;
    private readonly List<Sequential> _stages = [];

    /// <summary>The architecture.</summary>
    public ResNetConfig Config { get; }

    /// <summary>The final classifier ("fc"), null when built as a pure backbone.</summary>
    public Linear? Fc { get; }

    /// <inheritdoc />
    public int FeatureSize { get; }

    /// <summary>Builds the network with torchvision's initialisation (Kaiming normal convs, BN 1/0).</summary>
    public ResNet(ResNetConfig config, Rng rng, bool includeClassifier = true)
    {
        Config = config;
        if (config.Layers.Length != config.Widths.Length || config.Layers.Length == 0)
            throw new ArgumentException($"ResNet: {config.Layers.Length} stage depths but {config.Widths.Length} widths.");
        int inplanes = config.Widths[0];
        _conv1 = RegisterModule("conv1", KaimingConv(3, inplanes, 7, rng, stride: 2, padding: 3));
        _bn1 = RegisterModule("bn1", new BatchNorm2d(inplanes));
        for (int s = 0; s < config.Layers.Length; s++)
        {
            int width = config.Widths[s];
            int stride = s == 0 ? 1 : 2;
            var stage = new Sequential();
            for (int b = 0; b < config.Layers[s]; b++)
            {
                stage.Add(new Block(config.Block, inplanes, width, b == 0 ? stride : 1, rng));
                inplanes = width * config.Expansion;
            }
            _stages.Add(RegisterModule($"layer{s + 1}", stage));
        }
        FeatureSize = inplanes;
        if (includeClassifier) Fc = RegisterModule("fc", new Linear(inplanes, config.NumClasses, rng));
    }

    /// <summary>
    /// Infers the architecture of a torchvision ResNet state dict (block type from <c>layer1.0.conv3</c>,
    /// stage depths from the block indices, widths from the conv shapes, classes from <c>fc</c>), builds it
    /// and loads the weights. Shape errors name the parameter and both shapes.
    /// </summary>
    public static ResNet FromStateDict(IReadOnlyDictionary<string, Tensor> state, Rng rng, string source = "checkpoint")
    {
        bool bottleneck = state.ContainsKey("layer1.0.conv3.weight");
        var layers = new List<int>();
        var widths = new List<int>();
        for (int s = 1; ; s++)
        {
            int blocks = 0;
            while (state.ContainsKey($"layer{s}.{blocks}.conv1.weight")) blocks++;
            if (blocks == 0) break;
            layers.Add(blocks);
            widths.Add(state[$"layer{s}.0.conv1.weight"].Shape[0]);
        }
        if (layers.Count == 0 || !state.ContainsKey("conv1.weight"))
            throw new InvalidDataException($"{source}: not a torchvision ResNet state dict (no conv1.weight / layer1.0.conv1.weight).");
        if (state["conv1.weight"].Shape[0] != widths[0])
            throw new InvalidDataException($"{source}: stem width {state["conv1.weight"].Shape[0]} differs from layer1 width {widths[0]}; not a torchvision ResNet layout.");
        bool hasFc = state.TryGetValue("fc.weight", out var fc);
        var config = new ResNetConfig(bottleneck ? ResNetBlock.Bottleneck : ResNetBlock.Basic, [.. layers], [.. widths], hasFc ? fc!.Shape[0] : 1000);
        var model = new ResNet(config, rng, includeClassifier: hasFc);
        var own = model.StateDict();
        var toLoad = state.Where(kv => own.ContainsKey(kv.Key)).ToDictionary(kv => kv.Key, kv => kv.Value);
        var unexpected = state.Keys.Where(k => !own.ContainsKey(k)).ToList();
        var missing = own.Keys.Where(k => !state.ContainsKey(k) && !k.EndsWith("num_batches_tracked", StringComparison.Ordinal)).ToList();
        if (missing.Count > 0 || unexpected.Count > 0)
            throw new InvalidDataException($"{source}: ResNet state dict does not match the inferred {config.Block} {string.Join("-", layers)} layout: " +
                $"missing [{string.Join(", ", missing.Take(5))}], unexpected [{string.Join(", ", unexpected.Take(5))}].");
        try { model.LoadStateDict(toLoad, strict: false); }
        catch (InvalidDataException ex) { throw new InvalidDataException($"{source}: {ex.Message}", ex); }
        return model;
    }

    internal static Conv2d KaimingConv(int cin, int cout, int k, Rng rng, int stride = 1, int padding = 0)
    {
        var conv = new Conv2d(cin, cout, (k, k), rng, (stride, stride), (padding, padding), bias: false);
        // kaiming_normal_(mode="fan_out", nonlinearity="relu"), as torchvision initialises convolutions.
        float std = MathF.Sqrt(2f / (cout * k * k));
        Tensor.RandN(rng, 0f, std, conv.Weight.Shape.ToArray()).AsSpan().CopyTo(conv.Weight.AsSpan());
        return conv;
    }

    /// <inheritdoc />
    public Tensor Features(Tensor images)
    {
        if (images.Rank != 4 || images.Shape[1] != 3)
            throw new ArgumentException($"ResNet expects images [N, 3, H, W], got [{string.Join(", ", images.Shape)}].");
        var x = Ops.Relu(_bn1.Forward(_conv1.Forward(images)));
        x = Ops.MaxPool2d(x, (3, 3), (2, 2), (1, 1));
        foreach (var stage in _stages) x = stage.Forward(x);
        return Ops.GlobalAvgPool2d(x);
    }

    /// <summary>Class logits (needs the classifier).</summary>
    public Tensor Forward(Tensor images)
    {
        if (Fc is null) throw new InvalidOperationException("This ResNet was built without its classifier; use Features().");
        return Fc.Forward(Features(images));
    }

    private sealed class Block : UnaryModule
    {
        private readonly ResNetBlock _kind;
        private readonly Conv2d _c1, _c2;
        private readonly Conv2d? _c3;
        private readonly BatchNorm2d _b1, _b2;
        private readonly BatchNorm2d? _b3;
        private readonly Sequential? _downsample;

        public Block(ResNetBlock kind, int inplanes, int width, int stride, Rng rng)
        {
            _kind = kind;
            int outC = kind == ResNetBlock.Bottleneck ? width * 4 : width;
            if (kind == ResNetBlock.Basic)
            {
                _c1 = RegisterModule("conv1", KaimingConv(inplanes, width, 3, rng, stride, 1));
                _b1 = RegisterModule("bn1", new BatchNorm2d(width));
                _c2 = RegisterModule("conv2", KaimingConv(width, width, 3, rng, 1, 1));
                _b2 = RegisterModule("bn2", new BatchNorm2d(width));
            }
            else
            {
                _c1 = RegisterModule("conv1", KaimingConv(inplanes, width, 1, rng));
                _b1 = RegisterModule("bn1", new BatchNorm2d(width));
                _c2 = RegisterModule("conv2", KaimingConv(width, width, 3, rng, stride, 1));
                _b2 = RegisterModule("bn2", new BatchNorm2d(width));
                _c3 = RegisterModule("conv3", KaimingConv(width, outC, 1, rng));
                _b3 = RegisterModule("bn3", new BatchNorm2d(outC));
            }
            if (stride != 1 || inplanes != outC)
                _downsample = RegisterModule("downsample", new Sequential(KaimingConv(inplanes, outC, 1, rng, stride), new BatchNorm2d(outC)));
        }

        public override Tensor Forward(Tensor x)
        {
            var h = Ops.Relu(_b1.Forward(_c1.Forward(x)));
            if (_kind == ResNetBlock.Basic) h = _b2.Forward(_c2.Forward(h));
            else h = _b3!.Forward(_c3!.Forward(Ops.Relu(_b2.Forward(_c2.Forward(h)))));
            var identity = _downsample?.Forward(x) ?? x;
            return Ops.Relu(Ops.Add(h, identity));
        }
    }
}

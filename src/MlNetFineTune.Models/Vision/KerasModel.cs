using MlNetFineTune.Tensors.Cpu;
using MlNetFineTune.Models.Formats;
using MlNetFineTune.Models.Nn;
using MlNetFineTune.Tensors;

namespace MlNetFineTune.Models.Vision;

/// <summary>
/// A Keras functional (or Sequential) image model read from a TF.js layers model and run in this engine,
/// NCHW internally. Only the part of the graph needed for <see cref="OutputLayer"/> is built, so a model can be
/// cut at any layer (<c>KerasModel.Load(dir, outputLayer: "block_13_expand_relu")</c>);
/// <see cref="Features"/> returns that layer's output global-average-pooled.
/// </summary>
/// <remarks>
/// <para>
/// Parameters keep the Keras layer names with PyTorch-style suffixes: <c>Conv1.weight</c> (OIHW),
/// <c>bn_Conv1.weight</c>/<c>.bias</c> (gamma/beta) and <c>bn_Conv1.running_mean</c>/<c>.running_var</c>
/// (buffers), <c>dense.weight</c> ([out, in]); a '.' in a Keras layer name becomes '_'.
/// <see cref="Module.Freeze"/> with a layer name freezes that layer; <see cref="FreezeUpTo"/>, <see cref="FreezeLayersWithPrefix"/> and <see cref="FreezeAsInSource"/>
/// freeze groups of layers.
/// </para>
/// <para>
/// The model is returned in evaluation mode (batch norm uses the moving statistics, dropout is off). After
/// <see cref="Module.Train"/>, batch norm normalises with batch statistics and updates the moving statistics
/// with PyTorch momentum = 1 - Keras momentum (0.001 for MobileNetV2's 0.999) and the unbiased batch variance
/// (as PyTorch and TF's fused batch norm do); unlike TF 2.x Keras it does this
/// for every layer, including ones the source marked <c>trainable: false</c> (freeze their parameters and keep
/// the model in Eval, or call Train only on the parts you fine-tune).
/// </para>
/// <para>
/// Input: images [N, C, H, W] (C from the model's InputLayer, RGB for the shipped models) already scaled as the
/// weights expect. The shipped nsfwjs MobileNetV2 and InceptionV3 (data/models/) expect RGB <c>x / 255</c> in
/// [0, 1] (nsfwjs divides by 255 and resizes bilinearly to 224x224 / 299x299); use <see cref="Preprocess"/> or
/// <see cref="FromRgbBytes"/>. The cut graphs are fully convolutional, so other sizes work too (InceptionV3
/// needs at least 75x75, MobileNetV2 at least 32x32).
/// </para>
/// </remarks>
public sealed class KerasModel : Module, IImageBackbone
{
    /// <summary>nsfwjs scales pixels by 1/255: input = rgb / PixelDivisor.</summary>
    public const float PixelDivisor = 255f;

    private readonly List<KerasLayer> _layers = [];
    private readonly Dictionary<string, KerasLayer> _byName = new(StringComparer.Ordinal);
    private readonly Dictionary<string, int> _lastUse = new(StringComparer.Ordinal);
    private readonly KerasInputLayer _input;
    private int _featureSize;

    private KerasModel(TfjsLayersModel source, string outputLayer)
    {
        Source = source.Source;
        if (!source.HasLayer(outputLayer))
            throw new ArgumentException($"TF.js model '{source.Source}' has no layer '{outputLayer}'.", nameof(outputLayer));
        OutputLayer = outputLayer;

        var order = Ancestors(source, outputLayer);
        var weights = new KerasWeightSource(source);
        KerasInputLayer? input = null;
        foreach (var spec in order)
        {
            if (spec.CallCount > 1)
                throw new NotSupportedException($"Keras layer '{spec.Name}' ({spec.ClassName}) is called {spec.CallCount} times; shared layers are not supported.");
            foreach (var r in spec.Inputs)
                if (r.NodeIndex != 0 || r.TensorIndex != 0)
                    throw new NotSupportedException($"Keras layer '{spec.Name}' takes output {r.TensorIndex} of call {r.NodeIndex} of '{r.Layer}'; only single-call, single-output layers are supported.");
            var ins = spec.Inputs.Select(r => _byName[r.Layer]).ToList();
            var layer = Create(spec, ins, weights);
            weights.CheckAllUsed(spec);
            if (layer is KerasInputLayer il)
            {
                if (input is not null)
                    throw new NotSupportedException($"The graph up to '{outputLayer}' has several inputs ('{input.LayerName}', '{il.LayerName}'); KerasModel takes one image input.");
                input = il;
            }
            RegisterModule(ModuleName(spec.Name), layer);
            _layers.Add(layer);
            _byName[spec.Name] = layer;
            for (int i = 0; i < spec.Inputs.Count; i++) _lastUse[spec.Inputs[i].Layer] = _layers.Count - 1;
        }
        _input = input ?? throw new InvalidDataException($"The graph up to '{outputLayer}' in '{source.Source}' has no InputLayer.");
        if (_input.OutputRank != 4)
            throw new NotSupportedException($"KerasModel needs an image input [N, H, W, C]; InputLayer '{_input.LayerName}' has shape [{string.Join(", ", _input.BatchShape)}].");
        Eval();

        var last = _byName[outputLayer];
        _featureSize = last.OutputChannels;
        if (_featureSize < 0 && InputSize is { } size)
        {
            using (Tensor.NoGrad()) _featureSize = Features(Tensor.Zeros(1, InputChannels, size.Height, size.Width)).Shape[1];
        }
    }

    /// <summary>Reads a TF.js layers model (folder with model.json, or the file) and builds it up to <paramref name="outputLayer"/>.</summary>
    /// <param name="path">Folder holding model.json and its shards (or the model.json file).</param>
    /// <param name="outputLayer">Layer to stop at; default: <see cref="DefaultOutputLayer"/> (the last image
    /// feature map before any classification head).</param>
    public static KerasModel Load(string path, string? outputLayer = null) => FromTfjs(TfjsLayersModel.Load(path), outputLayer);

    /// <summary>Builds the graph of an already read TF.js model up to <paramref name="outputLayer"/>.</summary>
    public static KerasModel FromTfjs(TfjsLayersModel source, string? outputLayer = null)
    {
        ArgumentNullException.ThrowIfNull(source);
        return new KerasModel(source, outputLayer ?? DefaultOutputLayer(source));
    }

    /// <summary>Where the model was read from.</summary>
    public string Source { get; }

    /// <summary>The layer whose output <see cref="Forward"/> returns and <see cref="Features"/> pools.</summary>
    public string OutputLayer { get; }

    /// <summary>The built layers in execution (topological) order, starting with the InputLayer.</summary>
    public IReadOnlyList<KerasLayer> Layers => _layers;

    /// <summary>The built layer named <paramref name="name"/>.</summary>
    public KerasLayer GetLayer(string name) => _byName.TryGetValue(name, out var l) ? l
        : throw new KeyNotFoundException($"Layer '{name}' is not part of this model (built up to '{OutputLayer}' from '{Source}').");

    /// <summary>Image channels the input layer expects (3 for RGB).</summary>
    public int InputChannels => _input.OutputChannels;

    /// <summary>Fixed (height, width) from the input layer's batch_input_shape, or null when unspecified.</summary>
    public (int Height, int Width)? InputSize =>
        _input.BatchShape.Length == 4 && _input.BatchShape[1] > 0 && _input.BatchShape[2] > 0 ? (_input.BatchShape[1], _input.BatchShape[2]) : null;

    /// <inheritdoc />
    /// <remarks>Channels of <see cref="OutputLayer"/> (1280 for MobileNetV2's out_relu, 2048 for InceptionV3's mixed10).</remarks>
    public int FeatureSize => _featureSize >= 0 ? _featureSize
        : throw new InvalidOperationException($"The feature size of '{OutputLayer}' depends on the image size; call Features once first.");

    /// <summary>Pooled features [N, FeatureSize]: the output layer global-average-pooled (as is when it is not an image map).</summary>
    public Tensor Features(Tensor images)
    {
        var y = Forward(images);
        var f = y.Rank == 4 ? Ops.GlobalAvgPool2d(y) : y.Rank == 2 ? y : Ops.Flatten(y, 1);
        if (_featureSize < 0) _featureSize = f.Shape[1];
        return f;
    }

    /// <summary>The raw output of <see cref="OutputLayer"/> ([N, C, H, W] for image maps).</summary>
    public Tensor Forward(Tensor images) => Run(images, [OutputLayer])[OutputLayer];

    /// <summary>
    /// Outputs of the named layers (which must be part of the built graph) from one forward pass; image maps
    /// are NCHW (Keras's NHWC transposed).
    /// </summary>
    public IReadOnlyDictionary<string, Tensor> ForwardLayers(Tensor images, params string[] layerNames)
    {
        ArgumentNullException.ThrowIfNull(layerNames);
        foreach (var n in layerNames) GetLayer(n);
        return Run(images, layerNames);
    }

    private Dictionary<string, Tensor> Run(Tensor images, IReadOnlyCollection<string> keep)
    {
        ArgumentNullException.ThrowIfNull(images);
        if (images.Rank != 4 || (InputChannels > 0 && images.Shape[1] != InputChannels))
            throw new ArgumentException($"KerasModel expects images [N, {InputChannels}, H, W], got [{string.Join(", ", images.Shape)}].", nameof(images));
        var values = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        var args = new List<Tensor>(4);
        // Inference (no value carries a graph): once a layer has run, every buffer rented so far that no live value
        // refers to is dead, and is recycled for the layers after it. Stops for the rest of the pass at the first
        // value that requires grad (its graph may hold intermediates).
        using var recording = TensorBuffers.Record();
        bool recycle = true;
        var live = new HashSet<float[]>(ReferenceEqualityComparer.Instance);
        for (int i = 0; i < _layers.Count; i++)
        {
            var layer = _layers[i];
            args.Clear();
            if (layer == _input) args.Add(images);
            else foreach (var r in layer.Spec.Inputs) args.Add(values[r.Layer]);
            try
            {
                values[layer.LayerName] = layer.Call(args);
            }
            catch (ArgumentException e) when (layer != _input)
            {
                throw new ArgumentException(
                    $"Keras layer '{layer.LayerName}' ({layer.ClassName}) failed on input {string.Join(", ", args.Select(a => $"[{string.Join(", ", a.Shape)}]"))} " +
                    $"(images [{string.Join(", ", images.Shape)}]; too small an image for this network?): {e.Message}", nameof(images), e);
            }
            foreach (var r in layer.Spec.Inputs)
                if (_lastUse[r.Layer] == i && !keep.Contains(r.Layer)) values.Remove(r.Layer);
            if (!recycle) continue;
            if (values[layer.LayerName].RequiresGrad)
            {
                recycle = false;
                TensorBuffers.ForgetRecorded();
                continue;
            }
            live.Clear();
            if (images.Storage is float[] input) live.Add(input);
            foreach (var v in values.Values)
                if (v.Storage is float[] a) live.Add(a);
            TensorBuffers.ReleaseRecordedNotIn(live);
        }
        return keep.ToDictionary(k => k, k => values[k], StringComparer.Ordinal);
    }

    // ------------------------------------------------------------------------------------------ input

    /// <summary>Scales pixel values 0..255 as the shipped nsfwjs models expect: <c>x / 255</c> (RGB, NCHW).</summary>
    public static Tensor Preprocess(Tensor pixels) => Ops.Div(pixels, Tensor.Scalar(PixelDivisor));

    /// <summary>Interleaved RGB bytes (N x H x W x 3, row-major) to a scaled [N, 3, H, W] batch (x / 255).</summary>
    public static Tensor FromRgbBytes(ReadOnlySpan<byte> rgb, int count, int height, int width)
    {
        long need = (long)count * height * width * 3;
        if (count < 1 || height < 1 || width < 1 || rgb.Length != need)
            throw new ArgumentException($"FromRgbBytes: {rgb.Length} bytes do not hold {count} RGB images of {height}x{width} ({need} bytes).", nameof(rgb));
        var d = new float[need];
        int hw = height * width;
        for (int n = 0; n < count; n++)
            for (int p = 0; p < hw; p++)
                for (int c = 0; c < 3; c++)
                    d[(n * 3 + c) * hw + p] = rgb[(n * hw + p) * 3 + c] / PixelDivisor;
        return Tensor.Wrap(d, count, 3, height, width);
    }

    // ------------------------------------------------------------------------------------------ freezing

    /// <summary>Freezes the parameters of every built layer up to and including <paramref name="layerName"/> (execution order). Returns the number of tensors frozen.</summary>
    public int FreezeUpTo(string layerName)
    {
        int idx = _layers.IndexOf(GetLayer(layerName));
        return FreezeLayers(_layers.Take(idx + 1));
    }

    /// <summary>
    /// Freezes layers whose Keras name starts with one of <paramref name="namePrefixes"/> as a plain string
    /// prefix (so "block_1_" covers block_1_expand, block_1_depthwise, ...; note "block_1" would also match
    /// block_10 to block_16). <see cref="Module.Freeze"/> instead matches whole layer names.
    /// </summary>
    public int FreezeLayersWithPrefix(params string[] namePrefixes) =>
        FreezeLayers(_layers.Where(l => namePrefixes.Any(p => l.LayerName.StartsWith(p, StringComparison.Ordinal))));

    /// <summary>Freezes the layers the source model marked <c>trainable: false</c> (nsfwjs MobileNetV2: up to block_10; InceptionV3: up to mixed5).</summary>
    public int FreezeAsInSource() => FreezeLayers(_layers.Where(l => !l.SourceTrainable));

    private int FreezeLayers(IEnumerable<KerasLayer> layers)
    {
        var names = layers.Where(l => l.NamedParameters().Any()).Select(l => ModuleName(l.LayerName)).ToArray();
        return names.Length == 0 ? 0 : Freeze(names);
    }

    // ------------------------------------------------------------------------------------------ graph

    /// <summary>
    /// The layer a model is cut at by default: the model's output when that is an image map; otherwise the
    /// image map feeding its head, found by walking back from the output through single-input layers until a
    /// 4-D map, then past the pooling layers that fed a Flatten / global pooling. For the nsfwjs models
    /// this gives out_relu (MobileNetV2) and mixed10 (InceptionV3), so their content-class head
    /// (AveragePooling2D, Flatten, Dense, Dropout, softmax) is never built.
    /// </summary>
    public static string DefaultOutputLayer(TfjsLayersModel source)
    {
        ArgumentNullException.ThrowIfNull(source);
        if (source.Outputs.Count == 0) throw new InvalidDataException($"TF.js model '{source.Source}' lists no output layers.");
        string output = source.Outputs[0].Layer;
        var ranks = new Dictionary<string, int>(StringComparer.Ordinal);
        string name = output;
        bool flattened = false;
        while (RankOf(source, name, ranks) != 4)
        {
            var l = source.GetLayer(name);
            if (l.Inputs.Count != 1) return output;
            if (l.ClassName is "Flatten" or "GlobalAveragePooling2D" or "GlobalMaxPooling2D" or "Reshape") flattened = true;
            name = l.Inputs[0].Layer;
        }
        while (flattened && source.GetLayer(name) is { ClassName: "AveragePooling2D" or "MaxPooling2D", Inputs.Count: 1 } pool)
            name = pool.Inputs[0].Layer;
        return name;
    }

    private static int RankOf(TfjsLayersModel source, string name, Dictionary<string, int> memo)
    {
        if (memo.TryGetValue(name, out int r)) return r;
        var l = source.GetLayer(name);
        memo[name] = -1; // cycle guard
        r = l.ClassName switch
        {
            "InputLayer" => (l.GetIntArray("batch_input_shape") ?? l.GetIntArray("batch_shape") ?? []).Length,
            "Flatten" => 2,
            "GlobalAveragePooling2D" or "GlobalMaxPooling2D" => l.GetBool("keepdims", false) ? 4 : 2,
            "Reshape" => (l.GetIntArray("target_shape") ?? []).Length + 1,
            _ => l.Inputs.Count > 0 ? RankOf(source, l.Inputs[0].Layer, memo) : -1,
        };
        memo[name] = r;
        return r;
    }

    private static List<KerasLayerSpec> Ancestors(TfjsLayersModel source, string output)
    {
        var needed = new HashSet<string>(StringComparer.Ordinal);
        var stack = new Stack<string>();
        stack.Push(output);
        while (stack.Count > 0)
        {
            var n = stack.Pop();
            if (!needed.Add(n)) continue;
            if (!source.HasLayer(n)) throw new InvalidDataException($"TF.js model '{source.Source}': a layer takes input from '{n}', which does not exist.");
            foreach (var r in source.GetLayer(n).Inputs) stack.Push(r.Layer);
        }
        // Config order is topological in Keras; verify, and fall back to a depth-first order otherwise.
        var order = source.Layers.Where(l => needed.Contains(l.Name)).ToList();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        bool topological = true;
        foreach (var l in order)
        {
            if (l.Inputs.Any(i => !seen.Contains(i.Layer))) { topological = false; break; }
            seen.Add(l.Name);
        }
        if (topological) return order;
        var result = new List<KerasLayerSpec>();
        var state = new Dictionary<string, int>(StringComparer.Ordinal);
        void Visit(string n)
        {
            if (state.TryGetValue(n, out int s))
            {
                if (s == 1) throw new InvalidDataException($"TF.js model '{source.Source}': the layer graph has a cycle through '{n}'.");
                return;
            }
            state[n] = 1;
            var l = source.GetLayer(n);
            foreach (var i in l.Inputs) Visit(i.Layer);
            state[n] = 2;
            result.Add(l);
        }
        Visit(output);
        return result;
    }

    private static string ModuleName(string layerName) => layerName.Replace('.', '_');

    /// <summary>Keras classes <see cref="KerasModel"/> can build.</summary>
    public static IReadOnlyList<string> SupportedLayerClasses { get; } =
    [
        "InputLayer", "Conv2D", "DepthwiseConv2D", "SeparableConv2D", "BatchNormalization", "ReLU", "LeakyReLU",
        "Activation", "Softmax", "ZeroPadding2D", "Cropping2D", "Add", "Subtract", "Multiply", "Average", "Concatenate",
        "MaxPooling2D", "AveragePooling2D", "GlobalAveragePooling2D", "GlobalMaxPooling2D", "Dense", "Dropout",
        "Flatten", "Reshape",
    ];

    private static KerasLayer Create(KerasLayerSpec spec, List<KerasLayer> ins, KerasWeightSource weights)
    {
        int rank = ins.Count > 0 ? ins[0].OutputRank : 0;
        int ch = ins.Count > 0 ? ins[0].OutputChannels : -1;
        if (spec.ClassName != "InputLayer" && ins.Count == 0)
            throw new InvalidDataException($"Keras layer '{spec.Name}' ({spec.ClassName}) has no inbound nodes.");
        bool spatial = spec.ClassName is "Conv2D" or "Conv2DTranspose" or "DepthwiseConv2D" or "SeparableConv2D" or "ZeroPadding2D"
            or "Cropping2D" or "MaxPooling2D" or "AveragePooling2D" or "GlobalAveragePooling2D" or "GlobalMaxPooling2D";
        if (spatial && rank != 4 && SupportedLayerClasses.Contains(spec.ClassName))
            throw new NotSupportedException($"Keras layer '{spec.Name}' ({spec.ClassName}) needs a 4-D image input but gets a rank-{rank} tensor.");
        return spec.ClassName switch
        {
            "InputLayer" => new KerasInputLayer(spec),
            "Conv2D" => new KerasConv2D(spec, ch, weights),
            "DepthwiseConv2D" => new KerasDepthwiseConv2D(spec, ch, weights),
            "SeparableConv2D" => new KerasSeparableConv2D(spec, ch, weights),
            "BatchNormalization" => new KerasBatchNorm(spec, rank, ch, weights),
            "ReLU" or "LeakyReLU" or "Activation" or "Softmax" => new KerasActivation(spec, rank, ch),
            "ZeroPadding2D" or "Cropping2D" => new KerasPad(spec, ch),
            "Add" or "Subtract" or "Multiply" or "Average" or "Concatenate" => new KerasMerge(spec, ins),
            "MaxPooling2D" or "AveragePooling2D" => new KerasPool(spec, ch),
            "GlobalAveragePooling2D" or "GlobalMaxPooling2D" => new KerasGlobalPool(spec, ch),
            "Dense" => new KerasDense(spec, rank, ch, weights),
            "Dropout" or "Flatten" or "Reshape" => new KerasShapeLayer(spec, rank, ch),
            _ => throw new NotSupportedException(
                $"Keras layer '{spec.Name}' has class '{spec.ClassName}', which KerasModel does not support (supported: {string.Join(", ", SupportedLayerClasses)})."),
        };
    }
}

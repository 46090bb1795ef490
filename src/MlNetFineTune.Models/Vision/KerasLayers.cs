using MlNetFineTune.Models.Formats;
using MlNetFineTune.Models.Nn;
using MlNetFineTune.Tensors;

namespace MlNetFineTune.Models.Vision;

/// <summary>
/// One layer of a <see cref="KerasModel"/>. Rank-4 tensors flow through the graph as NCHW (Keras's NHWC
/// tensors transposed); every other rank keeps Keras's layout. Parameters are registered under PyTorch-style
/// names (<c>weight</c>, <c>bias</c>, <c>running_mean</c>, <c>running_var</c>), so in the model they read
/// <c>&lt;layer name&gt;.weight</c> and so on.
/// </summary>
public abstract class KerasLayer : Module
{
    private protected KerasLayer(KerasLayerSpec spec)
    {
        Spec = spec;
        SourceTrainable = spec.GetBool("trainable", true);
    }

    /// <summary>The layer's name in the Keras config.</summary>
    public string LayerName => Spec.Name;

    /// <summary>The Keras class (Conv2D, BatchNormalization, ...).</summary>
    public string ClassName => Spec.ClassName;

    /// <summary>The parsed Keras config.</summary>
    public KerasLayerSpec Spec { get; }

    /// <summary>Names of the layers feeding this one.</summary>
    public IReadOnlyList<string> InputLayers => Spec.Inputs.Select(i => i.Layer).ToArray();

    /// <summary>The <c>trainable</c> flag the source model stored for this layer.</summary>
    public bool SourceTrainable { get; }

    /// <summary>Keras rank of the output (4 for image tensors, held as NCHW).</summary>
    public int OutputRank { get; private protected set; }

    /// <summary>Size of the output's channel (last Keras) axis, or -1 when it depends on the input size.</summary>
    public int OutputChannels { get; private protected set; }

    /// <summary>Applies the layer to its input tensors (in <see cref="InputLayers"/> order).</summary>
    public abstract Tensor Call(IReadOnlyList<Tensor> inputs);

    private protected Tensor Single(IReadOnlyList<Tensor> inputs) => inputs.Count == 1
        ? inputs[0]
        : throw new ArgumentException($"Keras layer '{LayerName}' ({ClassName}) takes one input, got {inputs.Count}.");

    private protected void Require4d(Tensor x)
    {
        if (x.Rank != 4)
            throw new ArgumentException($"Keras layer '{LayerName}' ({ClassName}) needs a 4-D image tensor, got [{string.Join(", ", x.Shape)}].");
    }

    /// <summary>Keras/TF "same" padding: (before, after) for one spatial dimension; after may be one larger.</summary>
    public static (int Before, int After) SamePadding(int size, int kernel, int stride, int dilation = 1)
    {
        int effective = (kernel - 1) * dilation + 1;
        int output = (size + stride - 1) / stride;
        int total = Math.Max((output - 1) * stride + effective - size, 0);
        return (total / 2, total - total / 2);
    }

    /// <summary>Maps a Keras axis of a rank-<paramref name="rank"/> tensor to the axis of the internal layout.</summary>
    internal static int InternalAxis(int kerasAxis, int rank, string layer)
    {
        int a = kerasAxis < 0 ? kerasAxis + rank : kerasAxis;
        if (a < 0 || a >= rank) throw new InvalidDataException($"Keras layer '{layer}': axis {kerasAxis} is out of range for rank {rank}.");
        if (rank != 4) return a;
        return a switch { 0 => 0, 1 => 2, 2 => 3, _ => 1 };
    }

    /// <summary>Applies a Keras activation by name; softmax runs over the channel axis.</summary>
    internal static Tensor Activate(string activation, Tensor x, string layer) => activation switch
    {
        "linear" or "identity" or "" => x,
        "relu" => Ops.Relu(x),
        "relu6" => Ops.Relu6(x),
        "sigmoid" => Ops.Sigmoid(x),
        "tanh" => Ops.Tanh(x),
        "softmax" => Ops.Softmax(x, x.Rank == 4 ? 1 : -1),
        "swish" or "silu" => Ops.Mul(x, Ops.Sigmoid(x)),
        "hard_sigmoid" => Ops.Clamp(Ops.AddScalar(Ops.MulScalar(x, 0.2f), 0.5f), 0f, 1f),
        "gelu" => Ops.Gelu(x),
        _ => throw new NotSupportedException($"Keras layer '{layer}': activation '{activation}' is not supported (linear, relu, relu6, sigmoid, tanh, softmax, swish, hard_sigmoid, gelu)."),
    };

    private static readonly HashSet<string> KnownActivations =
        ["linear", "identity", "", "relu", "relu6", "sigmoid", "tanh", "softmax", "swish", "silu", "hard_sigmoid", "gelu"];

    internal static void CheckActivation(string activation, string layer)
    {
        if (!KnownActivations.Contains(activation))
            throw new NotSupportedException($"Keras layer '{layer}': activation '{activation}' is not supported (linear, relu, relu6, sigmoid, tanh, softmax, swish, hard_sigmoid, gelu).");
    }

    /// <summary>Turns a TF-layout weight into a fresh leaf tensor with permuted dimensions.</summary>
    internal static Tensor Permuted(Tensor w, params int[] perm)
    {
        var p = Ops.Contiguous(Ops.Permute(w, perm));
        return Tensor.Wrap(p.ToArray(), p.Shape.ToArray());
    }
}

/// <summary>Collects weights for the layers being built and checks their shapes.</summary>
internal sealed class KerasWeightSource
{
    private readonly TfjsLayersModel _model;
    private readonly Dictionary<string, List<TfjsWeightSpec>> _byLayer = new(StringComparer.Ordinal);
    private readonly HashSet<string> _used = new(StringComparer.Ordinal);

    public KerasWeightSource(TfjsLayersModel model)
    {
        _model = model;
        foreach (var w in model.WeightSpecs)
        {
            Add(w.LayerName, w);
            int slash = w.LayerName.LastIndexOf('/');
            if (slash >= 0) Add(w.LayerName[(slash + 1)..], w);
        }
    }

    private void Add(string key, TfjsWeightSpec w)
    {
        if (!_byLayer.TryGetValue(key, out var list)) _byLayer[key] = list = [];
        list.Add(w);
    }

    private IEnumerable<TfjsWeightSpec> Of(string layer)
    {
        if (!_byLayer.TryGetValue(layer, out var list)) return [];
        var exact = list.Where(w => w.LayerName == layer).ToList();
        return exact.Count > 0 ? exact : list;
    }

    /// <summary>Weight <paramref name="param"/> of <paramref name="spec"/>, checked against <paramref name="expected"/>.</summary>
    public Tensor Get(KerasLayerSpec spec, string param, int[] expected, string why)
    {
        var matches = Of(spec.Name).Where(w => w.ParamName == param).ToList();
        if (matches.Count == 0)
            throw new InvalidDataException(
                $"Keras layer '{spec.Name}' ({spec.ClassName}) needs weight '{spec.Name}/{param}' [{string.Join(", ", expected)}] but the weightsManifest of '{_model.Source}' has none" +
                $" (weights for this layer: {string.Join(", ", Of(spec.Name).Select(w => w.Name).DefaultIfEmpty("none"))}).");
        if (matches.Count > 1)
            throw new InvalidDataException($"Keras layer '{spec.Name}': weight '{param}' matches several manifest entries ({string.Join(", ", matches.Select(m => m.Name))}).");
        var w = matches[0];
        bool ok = w.Shape.Length == expected.Length;
        for (int i = 0; ok && i < expected.Length; i++) ok = expected[i] < 0 || expected[i] == w.Shape[i];
        if (!ok)
            throw new InvalidDataException(
                $"Keras layer '{spec.Name}' ({spec.ClassName}): weight '{w.Name}' has shape [{string.Join(", ", w.Shape)}] in the weightsManifest of '{_model.Source}', " +
                $"but {why} needs [{string.Join(", ", expected.Select(e => e < 0 ? "?" : e.ToString(System.Globalization.CultureInfo.InvariantCulture)))}].");
        _used.Add(w.Name);
        return _model.ReadTensor(w.Name);
    }

    /// <summary>Fails when the manifest has weights for <paramref name="spec"/> that the layer did not take.</summary>
    public void CheckAllUsed(KerasLayerSpec spec)
    {
        var extra = Of(spec.Name).Where(w => !_used.Contains(w.Name)).Select(w => w.Name).ToList();
        if (extra.Count > 0)
            throw new InvalidDataException(
                $"Keras layer '{spec.Name}' ({spec.ClassName}) does not use weight(s) {string.Join(", ", extra)} from the weightsManifest of '{_model.Source}' " +
                "(the layer config and the weights disagree, e.g. use_bias/center/scale).");
    }
}

internal sealed class KerasInputLayer : KerasLayer
{
    public KerasInputLayer(KerasLayerSpec spec) : base(spec)
    {
        int[]? shape = spec.GetIntArray("batch_input_shape") ?? spec.GetIntArray("batch_shape");
        if (shape is null && spec.GetIntArray("input_shape") is { } s) shape = [-1, .. s];
        if (shape is null) throw new InvalidDataException($"Keras InputLayer '{spec.Name}' has no batch_input_shape.");
        BatchShape = shape;
        OutputRank = shape.Length;
        OutputChannels = shape[^1];
    }

    public int[] BatchShape { get; }

    public override Tensor Call(IReadOnlyList<Tensor> inputs) => Single(inputs);
}

/// <summary>Conv2D: kernel HWIO -> weight OIHW; "same" padding as TF (asymmetric via zero padding).</summary>
internal sealed class KerasConv2D : KerasLayer
{
    private readonly Tensor _weight;
    private readonly Tensor? _bias;
    private readonly (int H, int W) _kernel, _stride, _dilation;
    private readonly bool _same;
    private readonly int _groups;
    private readonly string _activation;

    public KerasConv2D(KerasLayerSpec spec, int inChannels, KerasWeightSource weights) : base(spec)
    {
        int filters = spec.GetInt("filters", -1);
        _kernel = spec.GetPair("kernel_size", (-1, -1));
        _stride = spec.GetPair("strides", (1, 1));
        _dilation = spec.GetPair("dilation_rate", (1, 1));
        _groups = spec.GetInt("groups", 1);
        _same = KerasPadding.IsSame(spec);
        _activation = spec.GetString("activation", "linear")!;
        CheckActivation(_activation, spec.Name);
        if (filters < 1 || _kernel.H < 1 || _kernel.W < 1)
            throw new InvalidDataException($"Keras layer '{spec.Name}' (Conv2D): needs filters and kernel_size.");
        if (_groups < 1 || (inChannels > 0 && inChannels % _groups != 0))
            throw new InvalidDataException($"Keras layer '{spec.Name}' (Conv2D): {inChannels} input channels are not divisible by groups {_groups}.");
        string why = $"the layer config (kernel_size [{_kernel.H}, {_kernel.W}], filters {filters}{(_groups > 1 ? $", groups {_groups}" : "")}) with {inChannels} input channels";
        var k = weights.Get(spec, "kernel", [_kernel.H, _kernel.W, inChannels > 0 ? inChannels / _groups : -1, filters], why);
        _weight = RegisterParameter("weight", Permuted(k, 3, 2, 0, 1));
        if (spec.GetBool("use_bias", true))
            _bias = RegisterParameter("bias", weights.Get(spec, "bias", [filters], why));
        OutputRank = 4;
        OutputChannels = filters;
    }

    public override Tensor Call(IReadOnlyList<Tensor> inputs)
    {
        var x = Single(inputs);
        Require4d(x);
        var (x2, pad) = KerasPadding.Apply(x, _same, _kernel, _stride, _dilation);
        var y = Ops.Conv2d(x2, _weight, _bias, _stride, pad, _dilation, _groups);
        return Activate(_activation, y, LayerName);
    }
}

/// <summary>DepthwiseConv2D: depthwise_kernel [kh, kw, in, m] -> weight [in*m, 1, kh, kw], groups = in.</summary>
internal sealed class KerasDepthwiseConv2D : KerasLayer
{
    private readonly Tensor _weight;
    private readonly Tensor? _bias;
    private readonly (int H, int W) _kernel, _stride, _dilation;
    private readonly bool _same;
    private readonly int _groups;
    private readonly string _activation;

    public KerasDepthwiseConv2D(KerasLayerSpec spec, int inChannels, KerasWeightSource weights) : base(spec)
    {
        _kernel = spec.GetPair("kernel_size", (-1, -1));
        _stride = spec.GetPair("strides", (1, 1));
        _dilation = spec.GetPair("dilation_rate", (1, 1));
        int mult = spec.GetInt("depth_multiplier", 1);
        _same = KerasPadding.IsSame(spec);
        _activation = spec.GetString("activation", "linear")!;
        CheckActivation(_activation, spec.Name);
        if (inChannels < 1) throw new InvalidDataException($"Keras layer '{spec.Name}' (DepthwiseConv2D): the number of input channels is unknown.");
        string why = $"the layer config (kernel_size [{_kernel.H}, {_kernel.W}], depth_multiplier {mult}) with {inChannels} input channels";
        var k = weights.Get(spec, "depthwise_kernel", [_kernel.H, _kernel.W, inChannels, mult], why);
        var w = Ops.Reshape(Permuted(k, 2, 3, 0, 1), inChannels * mult, 1, _kernel.H, _kernel.W);
        _weight = RegisterParameter("weight", Tensor.Wrap(w.ToArray(), inChannels * mult, 1, _kernel.H, _kernel.W));
        if (spec.GetBool("use_bias", true))
            _bias = RegisterParameter("bias", weights.Get(spec, "bias", [inChannels * mult], why));
        _groups = inChannels;
        OutputRank = 4;
        OutputChannels = inChannels * mult;
    }

    public override Tensor Call(IReadOnlyList<Tensor> inputs)
    {
        var x = Single(inputs);
        Require4d(x);
        var (x2, pad) = KerasPadding.Apply(x, _same, _kernel, _stride, _dilation);
        var y = Ops.Conv2d(x2, _weight, _bias, _stride, pad, _dilation, _groups);
        return Activate(_activation, y, LayerName);
    }
}

/// <summary>SeparableConv2D: a depthwise convolution then a 1x1 convolution.</summary>
internal sealed class KerasSeparableConv2D : KerasLayer
{
    private readonly Tensor _depthwise, _pointwise;
    private readonly Tensor? _bias;
    private readonly (int H, int W) _kernel, _stride, _dilation;
    private readonly bool _same;
    private readonly int _groups;
    private readonly string _activation;

    public KerasSeparableConv2D(KerasLayerSpec spec, int inChannels, KerasWeightSource weights) : base(spec)
    {
        int filters = spec.GetInt("filters", -1);
        _kernel = spec.GetPair("kernel_size", (-1, -1));
        _stride = spec.GetPair("strides", (1, 1));
        _dilation = spec.GetPair("dilation_rate", (1, 1));
        int mult = spec.GetInt("depth_multiplier", 1);
        _same = KerasPadding.IsSame(spec);
        _activation = spec.GetString("activation", "linear")!;
        CheckActivation(_activation, spec.Name);
        if (inChannels < 1) throw new InvalidDataException($"Keras layer '{spec.Name}' (SeparableConv2D): the number of input channels is unknown.");
        string why = $"the layer config (kernel_size [{_kernel.H}, {_kernel.W}], depth_multiplier {mult}, filters {filters}) with {inChannels} input channels";
        var dk = weights.Get(spec, "depthwise_kernel", [_kernel.H, _kernel.W, inChannels, mult], why);
        var pk = weights.Get(spec, "pointwise_kernel", [1, 1, inChannels * mult, filters], why);
        _depthwise = RegisterParameter("depthwise_weight", Tensor.Wrap(Permuted(dk, 2, 3, 0, 1).ToArray(), inChannels * mult, 1, _kernel.H, _kernel.W));
        _pointwise = RegisterParameter("pointwise_weight", Permuted(pk, 3, 2, 0, 1));
        if (spec.GetBool("use_bias", true)) _bias = RegisterParameter("bias", weights.Get(spec, "bias", [filters], why));
        _groups = inChannels;
        OutputRank = 4;
        OutputChannels = filters;
    }

    public override Tensor Call(IReadOnlyList<Tensor> inputs)
    {
        var x = Single(inputs);
        Require4d(x);
        var (x2, pad) = KerasPadding.Apply(x, _same, _kernel, _stride, _dilation);
        var y = Ops.Conv2d(x2, _depthwise, null, _stride, pad, _dilation, _groups);
        y = Ops.Conv2d(y, _pointwise, _bias);
        return Activate(_activation, y, LayerName);
    }
}

/// <summary>Keras padding modes on NCHW tensors.</summary>
internal static class KerasPadding
{
    public static bool IsSame(KerasLayerSpec spec)
    {
        if (spec.GetString("data_format", "channels_last") != "channels_last")
            throw new NotSupportedException($"Keras layer '{spec.Name}' ({spec.ClassName}): data_format '{spec.GetString("data_format")}' is not supported (channels_last only).");
        return spec.GetString("padding", "valid") switch
        {
            "same" => true,
            "valid" => false,
            var p => throw new NotSupportedException($"Keras layer '{spec.Name}' ({spec.ClassName}): padding '{p}' is not supported (valid, same)."),
        };
    }

    /// <summary>For "same": symmetric padding goes to the op, an asymmetric remainder is zero padding first.</summary>
    public static (Tensor X, (int H, int W) Padding) Apply(Tensor x, bool same, (int H, int W) kernel, (int H, int W) stride, (int H, int W) dilation)
    {
        if (!same) return (x, (0, 0));
        var (t, b) = KerasLayer.SamePadding(x.Shape[2], kernel.H, stride.H, dilation.H);
        var (l, r) = KerasLayer.SamePadding(x.Shape[3], kernel.W, stride.W, dilation.W);
        if (t == b && l == r) return (x, (t, l));
        return (Ops.ZeroPad2d(x, l, r, t, b), (0, 0));
    }
}

/// <summary>BatchNormalization over the channel axis: gamma/beta -> weight/bias, moving stats -> buffers.</summary>
internal sealed class KerasBatchNorm : KerasLayer
{
    private readonly Tensor? _weight, _bias;
    private readonly Tensor _mean, _var;

    public KerasBatchNorm(KerasLayerSpec spec, int inRank, int inChannels, KerasWeightSource weights) : base(spec)
    {
        int axis = spec.Get("axis") is { ValueKind: System.Text.Json.JsonValueKind.Array } a
            ? (a.GetArrayLength() == 1 ? a[0].GetInt32() : throw new NotSupportedException($"Keras layer '{spec.Name}' (BatchNormalization): multi-axis normalization is not supported."))
            : spec.GetInt("axis", -1);
        if (inRank is not (2 or 4) || InternalAxis(axis, inRank, spec.Name) != 1)
            throw new NotSupportedException($"Keras layer '{spec.Name}' (BatchNormalization): only the channel (last) axis of a 2-D or 4-D tensor is supported (axis {axis}, rank {inRank}).");
        if (inChannels < 1) throw new InvalidDataException($"Keras layer '{spec.Name}' (BatchNormalization): the number of channels is unknown.");
        Epsilon = (float)spec.GetDouble("epsilon", 1e-3);
        double momentum = spec.GetDouble("momentum", 0.99);
        Momentum = (float)(1 - momentum);
        string why = $"the layer with {inChannels} channels";
        if (spec.GetBool("scale", true)) _weight = RegisterParameter("weight", weights.Get(spec, "gamma", [inChannels], why));
        if (spec.GetBool("center", true)) _bias = RegisterParameter("bias", weights.Get(spec, "beta", [inChannels], why));
        _mean = RegisterBuffer("running_mean", weights.Get(spec, "moving_mean", [inChannels], why));
        _var = RegisterBuffer("running_var", weights.Get(spec, "moving_variance", [inChannels], why));
        OutputRank = inRank;
        OutputChannels = inChannels;
    }

    /// <summary>Keras epsilon (1e-3 by default).</summary>
    public float Epsilon { get; }

    /// <summary>Keras momentum: moving = momentum * moving + (1 - momentum) * batch.</summary>
    public float KerasMomentum => 1 - Momentum;

    /// <summary>
    /// The same update in PyTorch's convention: 1 - Keras momentum (0.001 for 0.999). Settable: a network trained
    /// from scratch needs faster-moving statistics than a pretrained one being fine-tuned.
    /// </summary>
    public float Momentum { get; set; }

    public override Tensor Call(IReadOnlyList<Tensor> inputs)
    {
        var x = Single(inputs);
        if (x.Rank == 4) return Ops.BatchNorm2d(x, _weight, _bias, _mean, _var, Training, Momentum, Epsilon);
        var shape = x.Shape.ToArray();
        var y = Ops.BatchNorm2d(Ops.Reshape(x, x.Numel / shape[^1], shape[^1], 1, 1), _weight, _bias, _mean, _var, Training, Momentum, Epsilon);
        return Ops.Reshape(y, shape);
    }
}

/// <summary>ReLU (max_value, negative_slope, threshold 0), LeakyReLU, Activation and Softmax layers.</summary>
internal sealed class KerasActivation : KerasLayer
{
    private readonly Func<Tensor, Tensor> _f;

    public KerasActivation(KerasLayerSpec spec, int inRank, int inChannels) : base(spec)
    {
        OutputRank = inRank;
        OutputChannels = inChannels;
        switch (spec.ClassName)
        {
            case "Activation":
                {
                    string act = spec.GetString("activation", "linear")!;
                    CheckActivation(act, spec.Name);
                    _f = x => Activate(act, x, spec.Name);
                    break;
                }
            case "Softmax":
                {
                    int axis = spec.GetInt("axis", -1);
                    _f = x => Ops.Softmax(x, InternalAxis(axis, x.Rank, spec.Name));
                    break;
                }
            case "LeakyReLU":
                {
                    float alpha = (float)(spec.GetDoubleOrNull("alpha") ?? spec.GetDouble("negative_slope", 0.3));
                    _f = x => Leaky(x, alpha, null);
                    break;
                }
            case "ReLU":
                {
                    double? max = spec.GetDoubleOrNull("max_value");
                    float slope = (float)spec.GetDouble("negative_slope", 0);
                    if (spec.GetDouble("threshold", 0) != 0)
                        throw new NotSupportedException($"Keras layer '{spec.Name}' (ReLU): a non-zero threshold is not supported.");
                    if (max is double m && m < 0) throw new InvalidDataException($"Keras layer '{spec.Name}' (ReLU): max_value {m} is negative.");
                    if (slope == 0 && max is null) _f = Ops.Relu;
                    else if (slope == 0 && max == 6) _f = Ops.Relu6;
                    else _f = x => Leaky(x, slope, max is double mm ? (float)mm : null);
                    break;
                }
            default:
                throw new NotSupportedException($"Keras layer '{spec.Name}': class {spec.ClassName} is not an activation.");
        }
    }

    private static Tensor Leaky(Tensor x, float slope, float? max)
    {
        var y = slope == 0 ? Ops.Relu(x) : Ops.Sub(Ops.Relu(x), Ops.MulScalar(Ops.Relu(Ops.Neg(x)), slope));
        return max is float m ? Ops.Clamp(y, null, m) : y;
    }

    public override Tensor Call(IReadOnlyList<Tensor> inputs) => _f(Single(inputs));
}

/// <summary>ZeroPadding2D and Cropping2D: ((top, bottom), (left, right)).</summary>
internal sealed class KerasPad : KerasLayer
{
    private readonly int _top, _bottom, _left, _right;
    private readonly bool _crop;

    public KerasPad(KerasLayerSpec spec, int inChannels) : base(spec)
    {
        _crop = spec.ClassName == "Cropping2D";
        string key = _crop ? "cropping" : "padding";
        if (spec.GetString("data_format", "channels_last") != "channels_last")
            throw new NotSupportedException($"Keras layer '{spec.Name}' ({spec.ClassName}): data_format channels_first is not supported.");
        var v = spec.Get(key);
        if (v is null) { _top = _bottom = _left = _right = _crop ? 0 : 1; }
        else if (v.Value.ValueKind == System.Text.Json.JsonValueKind.Number) { _top = _bottom = _left = _right = v.Value.GetInt32(); }
        else if (v.Value.ValueKind == System.Text.Json.JsonValueKind.Array && v.Value.GetArrayLength() == 2
                 && v.Value[0].ValueKind == System.Text.Json.JsonValueKind.Number)
        {
            _top = _bottom = v.Value[0].GetInt32();
            _left = _right = v.Value[1].GetInt32();
        }
        else if (v.Value.ValueKind == System.Text.Json.JsonValueKind.Array && v.Value.GetArrayLength() == 2)
        {
            _top = v.Value[0][0].GetInt32(); _bottom = v.Value[0][1].GetInt32();
            _left = v.Value[1][0].GetInt32(); _right = v.Value[1][1].GetInt32();
        }
        else throw new InvalidDataException($"Keras layer '{spec.Name}' ({spec.ClassName}): cannot read {key} {v.Value.GetRawText()}.");
        OutputRank = 4;
        OutputChannels = inChannels;
    }

    public override Tensor Call(IReadOnlyList<Tensor> inputs)
    {
        var x = Single(inputs);
        Require4d(x);
        if (!_crop) return Ops.ZeroPad2d(x, _left, _right, _top, _bottom);
        int h = x.Shape[2], w = x.Shape[3];
        if (_top + _bottom >= h || _left + _right >= w)
            throw new ArgumentException($"Keras layer '{LayerName}' (Cropping2D): cropping ({_top}, {_bottom}), ({_left}, {_right}) leaves nothing of {h}x{w}.");
        return Ops.Contiguous(Ops.Narrow(Ops.Narrow(x, 2, _top, h - _top - _bottom), 3, _left, w - _left - _right));
    }
}

/// <summary>Add, Subtract, Multiply, Average and Concatenate.</summary>
internal sealed class KerasMerge : KerasLayer
{
    private readonly int _axis;

    public KerasMerge(KerasLayerSpec spec, IReadOnlyList<KerasLayer> inputs) : base(spec)
    {
        if (inputs.Count < 2 && spec.ClassName != "Concatenate")
            throw new InvalidDataException($"Keras layer '{spec.Name}' ({spec.ClassName}) needs at least two inputs, got {inputs.Count}.");
        OutputRank = inputs[0].OutputRank;
        _axis = spec.GetInt("axis", -1);
        if (spec.ClassName == "Concatenate")
        {
            int a = _axis < 0 ? _axis + OutputRank : _axis;
            OutputChannels = a == OutputRank - 1
                ? (inputs.Any(i => i.OutputChannels < 0) ? -1 : inputs.Sum(i => i.OutputChannels))
                : inputs[0].OutputChannels;
        }
        else
        {
            if (spec.ClassName is "Subtract" && inputs.Count != 2)
                throw new InvalidDataException($"Keras layer '{spec.Name}' (Subtract) needs exactly two inputs.");
            OutputChannels = inputs.Max(i => i.OutputChannels);
        }
    }

    public override Tensor Call(IReadOnlyList<Tensor> inputs)
    {
        switch (ClassName)
        {
            case "Concatenate":
                return inputs.Count == 1 ? inputs[0] : Ops.Concat(inputs, InternalAxis(_axis, inputs[0].Rank, LayerName));
            case "Subtract":
                return Ops.Sub(inputs[0], inputs[1]);
        }
        var acc = inputs[0];
        for (int i = 1; i < inputs.Count; i++)
        {
            acc = ClassName switch
            {
                "Add" or "Average" => Ops.Add(acc, inputs[i]),
                "Multiply" => Ops.Mul(acc, inputs[i]),
                _ => throw new NotSupportedException($"Keras layer '{LayerName}': merge {ClassName} is not supported."),
            };
        }
        return ClassName == "Average" ? Ops.MulScalar(acc, 1f / inputs.Count) : acc;
    }
}

/// <summary>MaxPooling2D / AveragePooling2D with Keras "valid" and "same" padding.</summary>
internal sealed class KerasPool : KerasLayer
{
    private readonly (int H, int W) _pool, _stride;
    private readonly bool _same, _max;

    public KerasPool(KerasLayerSpec spec, int inChannels) : base(spec)
    {
        _max = spec.ClassName == "MaxPooling2D";
        _pool = spec.GetPair("pool_size", (2, 2));
        _stride = spec.Has("strides") ? spec.GetPair("strides", _pool) : _pool;
        _same = KerasPadding.IsSame(spec);
        OutputRank = 4;
        OutputChannels = inChannels;
    }

    public override Tensor Call(IReadOnlyList<Tensor> inputs)
    {
        var x = Single(inputs);
        Require4d(x);
        if (!_same)
            return _max ? Ops.MaxPool2d(x, _pool, _stride) : Ops.AvgPool2d(x, _pool, _stride);
        var (t, b) = SamePadding(x.Shape[2], _pool.H, _stride.H);
        var (l, r) = SamePadding(x.Shape[3], _pool.W, _stride.W);
        if (_max)
        {
            // The op pads symmetrically with -inf. An extra trailing pad (b = t + 1) is emulated by repeating the
            // last row/column: every window that reaches it also holds the original last row/column, so the
            // maximum is unchanged, exactly as with TF's -inf padding.
            if (b > t) x = Ops.Concat([x, Ops.Narrow(x, 2, x.Shape[2] - 1, 1)], 2);
            if (r > l) x = Ops.Concat([x, Ops.Narrow(x, 3, x.Shape[3] - 1, 1)], 3);
            return Ops.MaxPool2d(x, _pool, _stride, (t, l));
        }
        if (t == b && l == r)
            return Ops.AvgPool2d(x, _pool, _stride, (t, l), countIncludePad: false);
        // Asymmetric: TF averages over the in-bounds elements only, so divide the zero-padded window sums by the
        // in-bounds counts.
        var sums = Ops.AvgPool2d(Ops.ZeroPad2d(x, l, r, t, b), _pool, _stride);
        Tensor counts;
        using (Tensor.NoGrad())
            counts = Ops.AvgPool2d(Ops.ZeroPad2d(Tensor.Ones(1, 1, x.Shape[2], x.Shape[3]), l, r, t, b), _pool, _stride);
        return Ops.Div(sums, counts);
    }
}

/// <summary>GlobalAveragePooling2D / GlobalMaxPooling2D (keepdims supported).</summary>
internal sealed class KerasGlobalPool : KerasLayer
{
    private readonly bool _keep, _max;

    public KerasGlobalPool(KerasLayerSpec spec, int inChannels) : base(spec)
    {
        if (spec.GetString("data_format", "channels_last") != "channels_last")
            throw new NotSupportedException($"Keras layer '{spec.Name}' ({spec.ClassName}): data_format channels_first is not supported.");
        _keep = spec.GetBool("keepdims", false);
        _max = spec.ClassName == "GlobalMaxPooling2D";
        OutputRank = _keep ? 4 : 2;
        OutputChannels = inChannels;
    }

    public override Tensor Call(IReadOnlyList<Tensor> inputs)
    {
        var x = Single(inputs);
        Require4d(x);
        return _max ? Ops.Amax(x, [2, 3], _keep) : Ops.GlobalAvgPool2d(x, _keep);
    }
}

/// <summary>Dense: kernel [in, units] -> weight [units, in]; applied to the last Keras axis.</summary>
internal sealed class KerasDense : KerasLayer
{
    private readonly Tensor _weight;
    private readonly Tensor? _bias;
    private readonly string _activation;

    public KerasDense(KerasLayerSpec spec, int inRank, int inChannels, KerasWeightSource weights) : base(spec)
    {
        int units = spec.GetInt("units", -1);
        if (units < 1) throw new InvalidDataException($"Keras layer '{spec.Name}' (Dense) has no units.");
        _activation = spec.GetString("activation", "linear")!;
        CheckActivation(_activation, spec.Name);
        string why = $"the layer config (units {units}) with {(inChannels > 0 ? inChannels.ToString(System.Globalization.CultureInfo.InvariantCulture) : "?")} input features";
        var k = weights.Get(spec, "kernel", [inChannels, units], why);
        _weight = RegisterParameter("weight", Permuted(k, 1, 0));
        if (spec.GetBool("use_bias", true)) _bias = RegisterParameter("bias", weights.Get(spec, "bias", [units], why));
        OutputRank = inRank;
        OutputChannels = units;
    }

    public override Tensor Call(IReadOnlyList<Tensor> inputs)
    {
        var x = Single(inputs);
        int inF = _weight.Shape[1];
        if (x.Shape[x.Rank == 4 ? 1 : x.Rank - 1] != inF)
            throw new ArgumentException($"Keras layer '{LayerName}' (Dense) expects {inF} input features, got a tensor [{string.Join(", ", x.Shape)}] (for Flatten inputs the image size must match the one the model was built for).");
        if (x.Rank == 4)
        {
            var y4 = Ops.Linear(Ops.Permute(x, 0, 2, 3, 1), _weight, _bias); // NHWC
            y4 = _activation == "softmax" ? Ops.Softmax(y4, -1) : Activate(_activation, y4, LayerName);
            return Ops.Contiguous(Ops.Permute(y4, 0, 3, 1, 2));
        }
        return Activate(_activation, Ops.Linear(x, _weight, _bias), LayerName);
    }
}

/// <summary>Dropout (active only in training mode), Flatten (in Keras's NHWC order) and Reshape.</summary>
internal sealed class KerasShapeLayer : KerasLayer
{
    private readonly float _rate;
    private readonly Rng? _rng;
    private readonly int[]? _target;

    public KerasShapeLayer(KerasLayerSpec spec, int inRank, int inChannels) : base(spec)
    {
        switch (spec.ClassName)
        {
            case "Dropout":
                _rate = (float)spec.GetDouble("rate", 0);
                if (_rate < 0 || _rate >= 1) throw new InvalidDataException($"Keras layer '{spec.Name}' (Dropout): rate {_rate} must be in [0, 1).");
                _rng = new Rng(spec.Has("seed") ? (ulong)spec.GetDouble("seed", 0) : StableHash(spec.Name));
                OutputRank = inRank;
                OutputChannels = inChannels;
                break;
            case "Flatten":
                OutputRank = 2;
                OutputChannels = inRank <= 2 ? inChannels : -1;
                break;
            case "Reshape":
                _target = spec.GetIntArray("target_shape") ?? throw new InvalidDataException($"Keras layer '{spec.Name}' (Reshape) has no target_shape.");
                OutputRank = _target.Length + 1;
                OutputChannels = _target[^1];
                break;
            default:
                throw new NotSupportedException($"Keras layer '{spec.Name}': class {spec.ClassName} is not supported.");
        }
    }

    private static ulong StableHash(string s)
    {
        ulong h = 14695981039346656037UL;
        foreach (char c in s) { h ^= c; h *= 1099511628211UL; }
        return h;
    }

    public override Tensor Call(IReadOnlyList<Tensor> inputs)
    {
        var x = Single(inputs);
        switch (ClassName)
        {
            case "Dropout":
                return Ops.Dropout(x, _rate, _rng!, Training);
            case "Flatten":
                if (x.Rank == 2) return x;
                if (x.Rank == 4) x = Ops.Permute(x, 0, 2, 3, 1);
                return Ops.Reshape(Ops.Contiguous(x), x.Shape[0], x.Numel / Math.Max(x.Shape[0], 1));
            default:
                {
                    if (x.Rank == 4) x = Ops.Contiguous(Ops.Permute(x, 0, 2, 3, 1));
                    int n = x.Shape[0];
                    var shape = new int[_target!.Length + 1];
                    shape[0] = n;
                    int unknown = -1;
                    long known = 1;
                    for (int i = 0; i < _target.Length; i++)
                    {
                        shape[i + 1] = _target[i];
                        if (_target[i] < 0) unknown = i + 1; else known *= _target[i];
                    }
                    long per = x.Numel / Math.Max(n, 1);
                    if (unknown > 0) shape[unknown] = (int)(per / Math.Max(known, 1));
                    if (shape.Skip(1).Aggregate(1L, (a, s) => a * s) != per)
                        throw new ArgumentException($"Keras layer '{LayerName}' (Reshape): cannot reshape [{string.Join(", ", x.Shape)}] to [N, {string.Join(", ", _target)}].");
                    var y = Ops.Reshape(Ops.Contiguous(x), shape);
                    return y.Rank == 4 ? Ops.Contiguous(Ops.Permute(y, 0, 3, 1, 2)) : y;
                }
        }
    }
}

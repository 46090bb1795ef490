using MlNetFineTune.Tensors;

namespace MlNetFineTune.Models.Nn;

/// <summary>Initialisers matching PyTorch's defaults (with an explicit RNG).</summary>
public static class Init
{
    /// <summary>U(-bound, bound) with bound = 1/sqrt(fanIn): PyTorch's default for Linear and Conv weights and biases.</summary>
    public static Tensor DefaultUniform(Rng rng, int fanIn, params int[] shape)
    {
        float bound = fanIn > 0 ? 1f / MathF.Sqrt(fanIn) : 0f;
        return Tensor.RandUniform(rng, -bound, bound, shape);
    }

    /// <summary>N(0, std) (BERT uses std = initializer_range = 0.02).</summary>
    public static Tensor Normal(Rng rng, float std, params int[] shape) => Tensor.RandN(rng, 0f, std, shape);
}

/// <summary>y = x W^T + b, weight [out, in] as PyTorch.</summary>
public sealed class Linear : UnaryModule
{
    /// <summary>Weight [OutFeatures, InFeatures].</summary>
    public Tensor Weight { get; }
    /// <summary>Bias [OutFeatures] or null.</summary>
    public Tensor? Bias { get; }
    /// <summary>Input size.</summary>
    public int InFeatures { get; }
    /// <summary>Output size.</summary>
    public int OutFeatures { get; }

    /// <summary>Creates the layer with PyTorch's default initialisation from <paramref name="rng"/>.</summary>
    public Linear(int inFeatures, int outFeatures, Rng rng, bool bias = true)
    {
        InFeatures = inFeatures;
        OutFeatures = outFeatures;
        Weight = RegisterParameter("weight", Init.DefaultUniform(rng, inFeatures, outFeatures, inFeatures));
        if (bias) Bias = RegisterParameter("bias", Init.DefaultUniform(rng, inFeatures, outFeatures));
    }

    /// <inheritdoc />
    public override Tensor Forward(Tensor input) => Ops.Linear(input, Weight, Bias);
}

/// <summary>A lookup table of vectors, weight [num, dim].</summary>
public sealed class Embedding : UnaryModule
{
    /// <summary>Weight [NumEmbeddings, EmbeddingDim].</summary>
    public Tensor Weight { get; }
    /// <summary>Row that receives no gradient, if any.</summary>
    public int? PaddingIdx { get; }

    /// <summary>Creates the table with N(0, 1) rows (PyTorch's default) and a zero padding row.</summary>
    public Embedding(int num, int dim, Rng rng, int? paddingIdx = null, float std = 1f)
    {
        var w = Init.Normal(rng, std, num, dim);
        if (paddingIdx is int p) w.AsSpan().Slice(p * dim, dim).Clear();
        Weight = RegisterParameter("weight", w);
        PaddingIdx = paddingIdx;
    }

    /// <inheritdoc />
    public override Tensor Forward(Tensor ids) => Ops.Embedding(ids, Weight, PaddingIdx);
}

/// <summary>Layer normalisation over the last dimension.</summary>
public sealed class LayerNorm : UnaryModule
{
    /// <summary>Scale.</summary>
    public Tensor Weight { get; }
    /// <summary>Shift.</summary>
    public Tensor Bias { get; }
    /// <summary>Epsilon added to the variance.</summary>
    public float Eps { get; }

    /// <summary>Creates the layer (weight 1, bias 0).</summary>
    public LayerNorm(int size, float eps = 1e-5f)
    {
        Weight = RegisterParameter("weight", Tensor.Ones(size));
        Bias = RegisterParameter("bias", Tensor.Zeros(size));
        Eps = eps;
    }

    /// <inheritdoc />
    public override Tensor Forward(Tensor input) => Ops.LayerNorm(input, [Weight.Numel], Weight, Bias, Eps);
}

/// <summary>2-D convolution, weight [out, in/groups, kh, kw].</summary>
public sealed class Conv2d : UnaryModule
{
    /// <summary>Weight [Out, In/Groups, KH, KW].</summary>
    public Tensor Weight { get; }
    /// <summary>Bias [Out] or null.</summary>
    public Tensor? Bias { get; }
    /// <summary>Stride.</summary>
    public (int H, int W) Stride { get; }
    /// <summary>Symmetric zero padding.</summary>
    public (int H, int W) Padding { get; }
    /// <summary>Dilation.</summary>
    public (int H, int W) Dilation { get; }
    /// <summary>Groups (in channels for depthwise).</summary>
    public int Groups { get; }

    /// <summary>Creates the layer with PyTorch's default initialisation.</summary>
    public Conv2d(int inChannels, int outChannels, (int H, int W) kernel, Rng rng, (int H, int W)? stride = null,
        (int H, int W)? padding = null, (int H, int W)? dilation = null, int groups = 1, bool bias = true)
    {
        if (groups < 1 || inChannels % groups != 0 || outChannels % groups != 0)
            throw new ArgumentException($"Conv2d: in {inChannels} and out {outChannels} channels must be divisible by groups {groups}.");
        int fanIn = inChannels / groups * kernel.H * kernel.W;
        Weight = RegisterParameter("weight", Init.DefaultUniform(rng, fanIn, outChannels, inChannels / groups, kernel.H, kernel.W));
        if (bias) Bias = RegisterParameter("bias", Init.DefaultUniform(rng, fanIn, outChannels));
        Stride = stride ?? (1, 1);
        Padding = padding ?? (0, 0);
        Dilation = dilation ?? (1, 1);
        Groups = groups;
    }

    /// <inheritdoc />
    public override Tensor Forward(Tensor input) => Ops.Conv2d(input, Weight, Bias, Stride, Padding, Dilation, Groups);
}

/// <summary>Batch normalisation over N, H, W with running statistics.</summary>
public sealed class BatchNorm2d : UnaryModule
{
    /// <summary>Scale.</summary>
    public Tensor Weight { get; }
    /// <summary>Shift.</summary>
    public Tensor Bias { get; }
    /// <summary>Running mean (buffer).</summary>
    public Tensor RunningMean { get; }
    /// <summary>Running variance (buffer).</summary>
    public Tensor RunningVar { get; }
    /// <summary>Batches seen in training (buffer, as torchvision checkpoints carry it).</summary>
    public Tensor NumBatchesTracked { get; }
    /// <summary>Epsilon (1e-5 PyTorch, 1e-3 Keras).</summary>
    public float Eps { get; }
    /// <summary>Running-statistics momentum.</summary>
    public float Momentum { get; }

    /// <summary>Creates the layer (weight 1, bias 0, mean 0, var 1).</summary>
    public BatchNorm2d(int channels, float eps = 1e-5f, float momentum = 0.1f)
    {
        Weight = RegisterParameter("weight", Tensor.Ones(channels));
        Bias = RegisterParameter("bias", Tensor.Zeros(channels));
        RunningMean = RegisterBuffer("running_mean", Tensor.Zeros(channels));
        RunningVar = RegisterBuffer("running_var", Tensor.Ones(channels));
        NumBatchesTracked = RegisterBuffer("num_batches_tracked", Tensor.FromArray(new long[] { 0 }).Reshape([]));
        Eps = eps;
        Momentum = momentum;
    }

    /// <inheritdoc />
    public override Tensor Forward(Tensor input)
    {
        if (Training)
        {
            var counter = (long[])NumBatchesTracked.Storage;
            counter[NumBatchesTracked.Offset]++;
        }
        return Ops.BatchNorm2d(input, Weight, Bias, RunningMean, RunningVar, Training, Momentum, Eps);
    }
}

/// <summary>Inverted dropout, active only in training mode.</summary>
public sealed class Dropout(float p, Rng rng) : UnaryModule
{
    /// <summary>Drop probability.</summary>
    public float P { get; } = p >= 0 && p < 1 ? p : throw new ArgumentOutOfRangeException(nameof(p), $"Dropout probability {p} must be in [0, 1).");

    /// <summary>The generator that draws the masks.</summary>
    public Rng Rng { get; set; } = rng;

    /// <inheritdoc />
    public override Tensor Forward(Tensor input) => Ops.Dropout(input, P, Rng, Training);
}

/// <summary>An activation function as a module.</summary>
public sealed class Activation(string name) : UnaryModule
{
    /// <summary>Hugging Face / Keras name: relu, relu6, gelu, gelu_new, tanh, sigmoid, linear.</summary>
    public string Name { get; } = Resolve(name) is null ? throw new NotSupportedException($"Unknown activation '{name}'.") : name;

    private static Func<Tensor, Tensor>? Resolve(string name) => name switch
    {
        "relu" => Ops.Relu,
        "relu6" => Ops.Relu6,
        "gelu" => x => Ops.Gelu(x),
        "gelu_new" or "gelu_pytorch_tanh" or "gelu_fast" => x => Ops.Gelu(x, GeluApproximation.Tanh),
        "tanh" => Ops.Tanh,
        "sigmoid" => Ops.Sigmoid,
        "linear" or "identity" => x => x,
        _ => null,
    };

    /// <summary>Applies the named activation.</summary>
    public static Tensor Apply(string name, Tensor x) =>
        (Resolve(name) ?? throw new NotSupportedException($"Unknown activation '{name}'."))(x);

    /// <inheritdoc />
    public override Tensor Forward(Tensor input) => Apply(Name, input);
}

/// <summary>Children applied in order; named "0", "1", ... like torch.nn.Sequential.</summary>
public sealed class Sequential : UnaryModule
{
    private readonly List<UnaryModule> _layers = [];

    /// <summary>Creates the chain.</summary>
    public Sequential(params UnaryModule[] layers)
    {
        foreach (var l in layers) Add(l);
    }

    /// <summary>Appends a layer (named by its index).</summary>
    public Sequential Add(UnaryModule layer)
    {
        RegisterModule(_layers.Count.ToString(System.Globalization.CultureInfo.InvariantCulture), layer);
        _layers.Add(layer);
        return this;
    }

    /// <summary>The layers.</summary>
    public IReadOnlyList<UnaryModule> Layers => _layers;

    /// <inheritdoc />
    public override Tensor Forward(Tensor input)
    {
        foreach (var l in _layers) input = l.Forward(input);
        return input;
    }
}

/// <summary>An indexed list of modules, named "0", "1", ... like torch.nn.ModuleList.</summary>
public sealed class ModuleList<T> : Module where T : Module
{
    private readonly List<T> _items = [];

    /// <summary>Appends a module.</summary>
    public void Add(T item)
    {
        RegisterModule(_items.Count.ToString(System.Globalization.CultureInfo.InvariantCulture), item);
        _items.Add(item);
    }

    /// <summary>Number of modules.</summary>
    public int Count => _items.Count;

    /// <summary>Module at <paramref name="i"/>.</summary>
    public T this[int i] => _items[i];

    /// <summary>The modules.</summary>
    public IReadOnlyList<T> Items => _items;
}

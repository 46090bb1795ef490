namespace MlNetFineTune.Tensors.Optim;

/// <summary>Defaults of an <see cref="Sgd"/> optimizer (the keyword arguments of <c>torch.optim.SGD</c>).</summary>
public sealed class SgdOptions
{
    /// <summary>Learning rate (required, as in PyTorch).</summary>
    public required double LearningRate { get; init; }

    /// <summary>Momentum factor; 0 (the default) disables momentum.</summary>
    public double Momentum { get; init; }

    /// <summary>Dampening for momentum (default 0).</summary>
    public double Dampening { get; init; }

    /// <summary>L2 penalty added to the gradient: <c>d = g + weight_decay·p</c> (default 0).</summary>
    public double WeightDecay { get; init; }

    /// <summary>Nesterov momentum (default false); needs momentum &gt; 0 and dampening 0.</summary>
    public bool Nesterov { get; init; }
}

/// <summary>
/// Stochastic gradient descent with optional momentum, dampening, Nesterov momentum and L2 weight decay: the
/// update of PyTorch 1.13's <c>torch.optim.SGD</c> (single-tensor path), in the same float32 arithmetic.
/// </summary>
/// <remarks>
/// Per parameter: <c>d = g + wd·p</c>; with momentum, <c>buf = d</c> at the parameter's first update and
/// <c>buf = momentum·buf + (1-dampening)·d</c> afterwards, then <c>d = d + momentum·buf</c> (Nesterov) or
/// <c>d = buf</c>; finally <c>p -= lr·d</c>. State: <c>momentum_buffer</c> (only with momentum).
/// </remarks>
public sealed class Sgd : Optimizer
{
    /// <summary>The name of the momentum buffer in the state dict.</summary>
    public const string MomentumBuffer = "momentum_buffer";

    private static readonly string[] Buffers = [MomentumBuffer];

    /// <summary>Creates SGD over one group of <paramref name="parameters"/>.</summary>
    /// <exception cref="ArgumentException">An invalid hyper-parameter (message names the value) or parameter.</exception>
    public Sgd(IEnumerable<Tensor> parameters, double learningRate, double momentum = 0, double dampening = 0, double weightDecay = 0, bool nesterov = false)
        : this(parameters, new SgdOptions { LearningRate = learningRate, Momentum = momentum, Dampening = dampening, WeightDecay = weightDecay, Nesterov = nesterov })
    {
    }

    /// <summary>Creates SGD over one group of <paramref name="parameters"/> with <paramref name="options"/>.</summary>
    /// <exception cref="ArgumentException">An invalid hyper-parameter (message names the value) or parameter.</exception>
    public Sgd(IEnumerable<Tensor> parameters, SgdOptions options)
        : this([SingleGroup(parameters)], options)
    {
    }

    /// <summary>Creates SGD over several <paramref name="groups"/>; what a group does not set comes from <paramref name="options"/>.</summary>
    /// <exception cref="ArgumentException">No groups, an invalid hyper-parameter (message names the value) or parameter.</exception>
    public Sgd(IEnumerable<ParamGroup> groups, SgdOptions options)
    {
        ArgumentNullException.ThrowIfNull(groups);
        ArgumentNullException.ThrowIfNull(options);
        Options = options;
        Validate(options.LearningRate, options.Momentum, options.Dampening, options.WeightDecay, options.Nesterov, null);
        foreach (var g in groups) AddParamGroup(g);
        if (Groups.Count == 0) throw new ArgumentException("The optimizer got an empty parameter list.", nameof(groups));
    }

    /// <summary>The defaults groups inherit.</summary>
    public SgdOptions Options { get; }

    /// <inheritdoc />
    protected override double DefaultLearningRate => Options.LearningRate;

    /// <inheritdoc />
    protected override double DefaultWeightDecay => Options.WeightDecay;

    /// <inheritdoc />
    protected override IReadOnlyCollection<string> StateBufferNames => Buffers;

    /// <inheritdoc />
    protected override void ResolveGroup(ParamGroup group)
    {
        group.Momentum ??= Options.Momentum;
        group.Dampening ??= Options.Dampening;
        group.Nesterov ??= Options.Nesterov;
    }

    /// <inheritdoc />
    protected override void ValidateGroup(ParamGroup group) =>
        Validate(group.LearningRate, Momentum(group), Dampening(group), group.WeightDecay, Nesterov(group), group);

    /// <inheritdoc />
    protected override void UpdateParameter(ParamGroup group, Tensor parameter, ReadOnlySpan<float> grad, ParameterState state)
    {
        double wd = group.WeightDecay;
        double momentum = Momentum(group);
        float negLr = (float)-group.LearningRate;
        var p = parameter.AsSpan();
        if (momentum == 0)
        {
            OptimKernels.Sgd(p, grad, wd != 0, (float)wd, negLr);
            return;
        }
        bool first = !state.TryGetBuffer(MomentumBuffer, out var buf);
        buf ??= state.GetOrCreateBuffer(MomentumBuffer);
        OptimKernels.SgdMomentum(p, grad, buf, wd != 0, (float)wd, (float)momentum, (float)(1 - Dampening(group)), Nesterov(group), first, negLr);
    }

    private double Momentum(ParamGroup g) => g.Momentum ?? Options.Momentum;

    private double Dampening(ParamGroup g) => g.Dampening ?? Options.Dampening;

    private bool Nesterov(ParamGroup g) => g.Nesterov ?? Options.Nesterov;

    private void Validate(double lr, double momentum, double dampening, double weightDecay, bool nesterov, ParamGroup? group)
    {
        CheckNonNegative(lr, "learning rate", group);
        CheckNonNegative(momentum, "momentum", group);
        if (double.IsNaN(dampening) || double.IsInfinity(dampening))
            throw new ArgumentException($"Invalid dampening: {Fmt(dampening)}{Where(group)}; it must be a finite number.");
        CheckNonNegative(weightDecay, "weight decay", group);
        if (nesterov && (momentum <= 0 || dampening != 0))
            throw new ArgumentException(
                $"Nesterov momentum requires a momentum > 0 and zero dampening; got momentum {Fmt(momentum)} and dampening {Fmt(dampening)}{Where(group)}.");
    }
}

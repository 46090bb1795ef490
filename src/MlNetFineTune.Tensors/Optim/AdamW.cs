namespace MlNetFineTune.Tensors.Optim;

/// <summary>Defaults of an <see cref="AdamW"/> optimizer (the keyword arguments of <c>torch.optim.AdamW</c>).</summary>
public sealed class AdamWOptions
{
    /// <summary>Learning rate (default 1e-3).</summary>
    public double LearningRate { get; init; } = 1e-3;

    /// <summary>First-moment decay β1 (default 0.9).</summary>
    public double Beta1 { get; init; } = 0.9;

    /// <summary>Second-moment decay β2 (default 0.999).</summary>
    public double Beta2 { get; init; } = 0.999;

    /// <summary>Term added to the denominator (default 1e-8).</summary>
    public double Epsilon { get; init; } = 1e-8;

    /// <summary>Decoupled weight decay: <c>p *= 1 - lr·weight_decay</c> before the Adam update (default 0.01).</summary>
    public double WeightDecay { get; init; } = 0.01;
}

/// <summary>
/// Adam with decoupled weight decay (Loshchilov &amp; Hutter) and bias correction: the update of PyTorch 1.13's
/// <c>torch.optim.AdamW</c> (single-tensor path, amsgrad off), in the same float32 arithmetic.
/// </summary>
/// <remarks>
/// Per parameter, with t the parameter's 1-based update count: <c>p *= 1 - lr·wd</c>;
/// <c>m = β1·m + (1-β1)·g</c>; <c>v = β2·v + (1-β2)·g²</c>;
/// <c>p -= (lr / (1-β1^t)) · m / (sqrt(v)/sqrt(1-β2^t) + ε)</c>. State: <c>exp_avg</c>, <c>exp_avg_sq</c> and the step.
/// </remarks>
public sealed class AdamW : Optimizer
{
    /// <summary>The name of the first-moment buffer in the state dict.</summary>
    public const string ExpAvg = "exp_avg";

    /// <summary>The name of the second-moment buffer in the state dict.</summary>
    public const string ExpAvgSq = "exp_avg_sq";

    private static readonly string[] Buffers = [ExpAvg, ExpAvgSq];

    /// <summary>Creates AdamW over one group of <paramref name="parameters"/>.</summary>
    /// <exception cref="ArgumentException">An invalid hyper-parameter (message names the value) or parameter.</exception>
    public AdamW(IEnumerable<Tensor> parameters, double learningRate = 1e-3, double beta1 = 0.9, double beta2 = 0.999, double epsilon = 1e-8, double weightDecay = 0.01)
        : this(parameters, new AdamWOptions { LearningRate = learningRate, Beta1 = beta1, Beta2 = beta2, Epsilon = epsilon, WeightDecay = weightDecay })
    {
    }

    /// <summary>Creates AdamW over one group of <paramref name="parameters"/> with <paramref name="options"/>.</summary>
    /// <exception cref="ArgumentException">An invalid hyper-parameter (message names the value) or parameter.</exception>
    public AdamW(IEnumerable<Tensor> parameters, AdamWOptions options)
        : this([SingleGroup(parameters)], options)
    {
    }

    /// <summary>Creates AdamW over several <paramref name="groups"/>; what a group does not set comes from <paramref name="options"/> (or the defaults).</summary>
    /// <exception cref="ArgumentException">No groups, an invalid hyper-parameter (message names the value) or parameter.</exception>
    public AdamW(IEnumerable<ParamGroup> groups, AdamWOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(groups);
        Options = options ?? new AdamWOptions();
        Validate(Options.LearningRate, Options.Beta1, Options.Beta2, Options.Epsilon, Options.WeightDecay, null);
        foreach (var g in groups) AddParamGroup(g);
        if (Groups.Count == 0) throw new ArgumentException("The optimizer got an empty parameter list.", nameof(groups));
    }

    /// <summary>The defaults groups inherit.</summary>
    public AdamWOptions Options { get; }

    /// <inheritdoc />
    protected override double DefaultLearningRate => Options.LearningRate;

    /// <inheritdoc />
    protected override double DefaultWeightDecay => Options.WeightDecay;

    /// <inheritdoc />
    protected override IReadOnlyCollection<string> StateBufferNames => Buffers;

    /// <inheritdoc />
    protected override void ResolveGroup(ParamGroup group)
    {
        group.Beta1 ??= Options.Beta1;
        group.Beta2 ??= Options.Beta2;
        group.Epsilon ??= Options.Epsilon;
    }

    /// <inheritdoc />
    protected override void ValidateGroup(ParamGroup group) =>
        Validate(group.LearningRate, Beta1(group), Beta2(group), Epsilon(group), group.WeightDecay, group);

    /// <inheritdoc />
    protected override void ValidateLoadedState(ParamGroup group, Tensor parameter, ParameterState state, string keyPrefix)
    {
        foreach (var name in Buffers)
            if (!state.TryGetBuffer(name, out _))
                throw new ArgumentException($"State of parameter '{keyPrefix.TrimEnd('.')}' lacks '{keyPrefix}{name}'.", "state");
    }

    /// <inheritdoc />
    protected override void UpdateParameter(ParamGroup group, Tensor parameter, ReadOnlySpan<float> grad, ParameterState state)
    {
        double lr = group.LearningRate, wd = group.WeightDecay;
        double beta1 = Beta1(group), beta2 = Beta2(group), eps = Epsilon(group);
        var expAvg = state.GetOrCreateBuffer(ExpAvg);
        var expAvgSq = state.GetOrCreateBuffer(ExpAvgSq);

        // Scalars in double (Python floats), rounded to float32 where the tensor op consumes them, as in torch.
        double step = state.Step;
        double biasCorrection1 = 1 - Math.Pow(beta1, step);
        double biasCorrection2 = 1 - Math.Pow(beta2, step);
        double stepSize = lr / biasCorrection1;
        double biasCorrection2Sqrt = Math.Sqrt(biasCorrection2);

        OptimKernels.AdamW(parameter.AsSpan(), grad, expAvg, expAvgSq,
            decay: (float)(1 - lr * wd),
            beta1: (float)beta1, oneMinusBeta1: (float)(1 - beta1),
            beta2: (float)beta2, oneMinusBeta2: (float)(1 - beta2),
            bc2Sqrt: (float)biasCorrection2Sqrt, eps: (float)eps, negStepSize: (float)-stepSize);
    }

    private double Beta1(ParamGroup g) => g.Beta1 ?? Options.Beta1;

    private double Beta2(ParamGroup g) => g.Beta2 ?? Options.Beta2;

    private double Epsilon(ParamGroup g) => g.Epsilon ?? Options.Epsilon;

    private void Validate(double lr, double beta1, double beta2, double eps, double weightDecay, ParamGroup? group)
    {
        CheckNonNegative(lr, "learning rate", group);
        CheckNonNegative(eps, "epsilon", group);
        CheckUnitInterval(beta1, "beta1", group);
        CheckUnitInterval(beta2, "beta2", group);
        CheckNonNegative(weightDecay, "weight decay", group);
    }
}

namespace MlNetFineTune.Tensors.Optim;

/// <summary>
/// A set of parameters that share hyper-parameters, like a PyTorch <c>param_group</c>. Anything a group does not
/// set is inherited from the optimizer's defaults when the group is added to an optimizer (the way
/// <c>torch.optim.Optimizer.add_param_group</c> fills in missing keys), so after construction every value the
/// optimizer uses is readable on the group.
/// </summary>
/// <remarks>
/// <para><see cref="LearningRate"/> is the rate the next <see cref="Optimizer.Step"/> uses; an
/// <see cref="LrScheduler"/> overwrites it every step from <see cref="InitialLearningRate"/> (PyTorch's
/// <c>initial_lr</c>), which is kept separately.</para>
/// <para>Hyper-parameters are <see cref="double"/>s, like the Python floats PyTorch keeps in its groups; the
/// update kernels round them to float32 exactly where PyTorch does.</para>
/// </remarks>
public sealed class ParamGroup
{
    private readonly Tensor[] _parameters;
    private double? _learningRate;
    private double? _initialLearningRate;
    private double? _weightDecay;

    /// <summary>Creates a group over <paramref name="parameters"/>.</summary>
    /// <param name="parameters">The tensors this group updates (leaf, contiguous, Float32).</param>
    /// <param name="learningRate">The group's learning rate; null inherits the optimizer's.</param>
    /// <param name="weightDecay">The group's weight decay; null inherits the optimizer's.</param>
    public ParamGroup(IEnumerable<Tensor> parameters, double? learningRate = null, double? weightDecay = null)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        _parameters = parameters.ToArray();
        for (int i = 0; i < _parameters.Length; i++)
            if (_parameters[i] is null) throw new ArgumentException($"Parameter {i} of the group is null.", nameof(parameters));
        _learningRate = learningRate;
        _weightDecay = weightDecay;
    }

    /// <summary>The parameters of this group, in order (the order defines the state-dict indices).</summary>
    public IReadOnlyList<Tensor> Parameters => _parameters;

    /// <summary>An optional label for diagnostics.</summary>
    public string? Name { get; set; }

    /// <summary>
    /// The learning rate used by the next <see cref="Optimizer.Step"/> (PyTorch's <c>group["lr"]</c>).
    /// Schedulers write it; it can also be set by hand.
    /// </summary>
    /// <exception cref="InvalidOperationException">Read before the group has a value (neither given nor inherited yet).</exception>
    public double LearningRate
    {
        get => _learningRate ?? throw Unresolved(nameof(LearningRate));
        set => _learningRate = value;
    }

    /// <summary>
    /// The base learning rate that schedules scale (PyTorch's <c>initial_lr</c>). Defaults to the learning rate the
    /// group has when it is added to an optimizer; setting it changes what an <see cref="LrScheduler"/> uses from
    /// its next application on.
    /// </summary>
    /// <exception cref="InvalidOperationException">Read before the group has a value.</exception>
    public double InitialLearningRate
    {
        get => _initialLearningRate ?? _learningRate ?? throw Unresolved(nameof(InitialLearningRate));
        set => _initialLearningRate = value;
    }

    /// <summary>The weight decay (L2 for <see cref="Sgd"/>, decoupled for <see cref="AdamW"/>).</summary>
    /// <exception cref="InvalidOperationException">Read before the group has a value.</exception>
    public double WeightDecay
    {
        get => _weightDecay ?? throw Unresolved(nameof(WeightDecay));
        set => _weightDecay = value;
    }

    /// <summary>SGD momentum factor; null inherits the optimizer's.</summary>
    public double? Momentum { get; set; }

    /// <summary>SGD dampening for momentum; null inherits the optimizer's.</summary>
    public double? Dampening { get; set; }

    /// <summary>SGD Nesterov momentum; null inherits the optimizer's.</summary>
    public bool? Nesterov { get; set; }

    /// <summary>AdamW first-moment decay β1; null inherits the optimizer's.</summary>
    public double? Beta1 { get; set; }

    /// <summary>AdamW second-moment decay β2; null inherits the optimizer's.</summary>
    public double? Beta2 { get; set; }

    /// <summary>AdamW denominator term ε; null inherits the optimizer's.</summary>
    public double? Epsilon { get; set; }

    /// <summary>The optimizer this group belongs to, once added.</summary>
    internal Optimizer? Owner { get; set; }

    internal bool HasLearningRate => _learningRate.HasValue;

    internal bool HasWeightDecay => _weightDecay.HasValue;

    internal void PinInitialLearningRate() => _initialLearningRate ??= _learningRate;

    private InvalidOperationException Unresolved(string what) =>
        new($"{what} of parameter group{(Name is null ? "" : $" '{Name}'")} is not set and the group has not been added to an optimizer yet.");
}

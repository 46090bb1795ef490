using System.Globalization;

namespace MlNetFineTune.Tensors.Optim;

/// <summary>
/// Base class of the first-order optimizers (<see cref="Sgd"/>, <see cref="AdamW"/>), modelled on
/// <c>torch.optim.Optimizer</c>: parameters are organised in <see cref="Groups"/> with their own hyper-parameters,
/// <see cref="Step"/> updates every parameter that has a <see cref="Tensor.Grad"/> in place, and per-parameter state
/// can be exported with <see cref="StateDict"/> and restored with <see cref="LoadStateDict"/> to resume training.
/// </summary>
/// <remarks>
/// <para>Parameters must be contiguous Float32 leaf tensors; they are updated in place in their storage (no graph is
/// recorded). Parameters whose <see cref="Tensor.Grad"/> is null are skipped and get no state, as in PyTorch.</para>
/// <para>State dict keys: <c>"{group}.{param}.{buffer}"</c> for each buffer (one float per element),
/// <c>"{group}.{param}.step"</c> for the per-parameter update count and <c>"step_count"</c> for
/// <see cref="StepCount"/>. Counts are stored as two floats <c>[count mod 2^24, count / 2^24]</c> so they stay
/// exact. Hyper-parameters are not part of the state: recreate the optimizer with the same configuration (and an
/// <see cref="LrScheduler"/> at the same step) before loading.</para>
/// </remarks>
public abstract class Optimizer
{
    /// <summary>The key of the optimizer-wide step counter in <see cref="StateDict"/>.</summary>
    public const string StepCountKey = "step_count";

    /// <summary>The per-parameter key suffix of the update counter in <see cref="StateDict"/>.</summary>
    public const string StepKey = "step";

    private const long CountRadix = 1L << 24;

    private readonly List<ParamGroup> _groups = [];
    private readonly List<ParameterState?[]> _state = [];
    private readonly HashSet<Tensor> _parameters = new(ReferenceEqualityComparer.Instance);

    /// <summary>Creates an optimizer without groups; derived constructors add them with <see cref="AddParamGroup"/>.</summary>
    protected Optimizer() { }

    /// <summary>The parameter groups, in order.</summary>
    public IReadOnlyList<ParamGroup> Groups => _groups;

    /// <summary>Every parameter of every group, in group order.</summary>
    public IEnumerable<Tensor> Parameters => _groups.SelectMany(g => g.Parameters);

    /// <summary>The number of <see cref="Step"/> calls so far (restored by <see cref="LoadStateDict"/>).</summary>
    public long StepCount { get; private set; }

    /// <summary>The learning rate a group gets when it does not set one.</summary>
    protected abstract double DefaultLearningRate { get; }

    /// <summary>The weight decay a group gets when it does not set one.</summary>
    protected abstract double DefaultWeightDecay { get; }

    /// <summary>The names of the per-parameter buffers this optimizer keeps (the only buffer names <see cref="LoadStateDict"/> accepts).</summary>
    protected abstract IReadOnlyCollection<string> StateBufferNames { get; }

    /// <summary>
    /// Fills in the optimizer-specific hyper-parameters a new group does not set. Called by
    /// <see cref="AddParamGroup"/> after the learning rate and weight decay are resolved, before <see cref="ValidateGroup"/>.
    /// </summary>
    protected virtual void ResolveGroup(ParamGroup group) { }

    /// <summary>
    /// Checks a group's hyper-parameters; throws <see cref="ArgumentException"/> naming the bad value. Called when the
    /// group is added and again by every <see cref="Step"/> (values may have been changed since).
    /// </summary>
    protected virtual void ValidateGroup(ParamGroup group)
    {
        CheckNonNegative(group.LearningRate, "learning rate", group);
        CheckNonNegative(group.WeightDecay, "weight decay", group);
    }

    /// <summary>
    /// Updates one parameter in place from its gradient. <paramref name="state"/>.<see cref="ParameterState.Step"/>
    /// has already been incremented, so it is the 1-based number of this update.
    /// </summary>
    /// <param name="group">The parameter's group (hyper-parameters).</param>
    /// <param name="parameter">The parameter (contiguous; write through <see cref="Tensor.AsSpan"/>).</param>
    /// <param name="grad">The gradient, dense row-major, same element count as the parameter.</param>
    /// <param name="state">The parameter's state.</param>
    protected abstract void UpdateParameter(ParamGroup group, Tensor parameter, ReadOnlySpan<float> grad, ParameterState state);

    /// <summary>
    /// Checks that a state loaded by <see cref="LoadStateDict"/> is complete for this optimizer; throws
    /// <see cref="ArgumentException"/> otherwise. <paramref name="keyPrefix"/> is <c>"{group}.{param}."</c>.
    /// </summary>
    protected virtual void ValidateLoadedState(ParamGroup group, Tensor parameter, ParameterState state, string keyPrefix) { }

    /// <summary>
    /// Adds a group (like <c>add_param_group</c>): unset hyper-parameters are inherited from the optimizer, the
    /// values are validated and the group's <see cref="ParamGroup.InitialLearningRate"/> is pinned.
    /// </summary>
    /// <exception cref="ArgumentException">A parameter is not a contiguous Float32 leaf, already belongs to a group, or a hyper-parameter is invalid.</exception>
    public void AddParamGroup(ParamGroup group)
    {
        ArgumentNullException.ThrowIfNull(group);
        if (group.Owner is not null)
            throw new ArgumentException("The parameter group already belongs to an optimizer.", nameof(group));
        var seen = new HashSet<Tensor>(ReferenceEqualityComparer.Instance);
        for (int i = 0; i < group.Parameters.Count; i++)
        {
            var p = group.Parameters[i];
            string what = $"Parameter {i}{(p.Name is null ? "" : $" '{p.Name}'")} of group {_groups.Count}";
            if (p.DType != DType.Float32) throw new ArgumentException($"{what} is {p.DType}; only Float32 tensors can be optimized.", nameof(group));
            if (!p.IsLeaf) throw new ArgumentException($"{what} is the result of '{p.GradFnName}'; can't optimize a non-leaf tensor.", nameof(group));
            if (!p.IsContiguous) throw new ArgumentException($"{what} is not contiguous; the optimizer updates parameters in place and needs contiguous storage.", nameof(group));
            if (_parameters.Contains(p) || !seen.Add(p))
                throw new ArgumentException($"{what} appears in more than one parameter group.", nameof(group));
        }

        if (!group.HasLearningRate) group.LearningRate = DefaultLearningRate;
        if (!group.HasWeightDecay) group.WeightDecay = DefaultWeightDecay;
        ResolveGroup(group);
        ValidateGroup(group);
        group.PinInitialLearningRate();

        group.Owner = this;
        _groups.Add(group);
        _state.Add(new ParameterState?[group.Parameters.Count]);
        foreach (var p in group.Parameters) _parameters.Add(p);
    }

    /// <summary>
    /// Applies one update to every parameter that has a gradient, in place, then increments <see cref="StepCount"/>.
    /// Gradients are read, never modified.
    /// </summary>
    /// <exception cref="InvalidOperationException">A group's hyper-parameter became invalid, or a gradient's shape or type differs from its parameter's.</exception>
    public void Step()
    {
        using var _ = Tensor.NoGrad();
        for (int g = 0; g < _groups.Count; g++)
        {
            var group = _groups[g];
            try
            {
                ValidateGroup(group);
            }
            catch (ArgumentException e)
            {
                throw new InvalidOperationException(e.Message, e);
            }
            var states = _state[g];
            for (int i = 0; i < group.Parameters.Count; i++)
            {
                var p = group.Parameters[i];
                var grad = p.Grad;
                if (grad is null) continue;
                if (grad.DType != DType.Float32 || !ShapeUtil.SameShape(grad.ShapeArr, p.ShapeArr))
                    throw new InvalidOperationException(
                        $"Gradient of parameter {g}.{i}{(p.Name is null ? "" : $" '{p.Name}'")} is {grad.DType} {ShapeUtil.Format(grad.ShapeArr)}; expected Float32 {ShapeUtil.Format(p.ShapeArr)}.");
                ReadOnlySpan<float> gs = grad.IsContiguous ? grad.AsSpan() : grad.Dense<float>();
                var state = states[i] ??= new ParameterState(p.Numel);
                state.Step++;
                UpdateParameter(group, p, gs, state);
            }
        }
        StepCount++;
    }

    /// <summary>Clears the gradient of every parameter (sets <see cref="Tensor.Grad"/> to null).</summary>
    public void ZeroGrad() => ZeroGrad(setToNone: true);

    /// <summary>
    /// Clears the gradient of every parameter, as PyTorch's <c>zero_grad(set_to_none)</c>: with
    /// <paramref name="setToNone"/> each <see cref="Tensor.Grad"/> becomes null (the next backward pass allocates
    /// new ones); without, each gradient is filled with zeros in place and the next backward pass adds into the same
    /// memory (no fresh allocation per step; a parameter then always has a gradient, so the optimizer updates it,
    /// with weight decay, even when the loss did not reach it).
    /// </summary>
    public void ZeroGrad(bool setToNone)
    {
        foreach (var group in _groups)
            foreach (var p in group.Parameters)
            {
                if (!setToNone && p.Grad is { IsContiguous: true, Storage: float[] }) p.Grad.AsSpan().Clear();
                else p.ZeroGrad();
            }
    }

    /// <summary>The state of <paramref name="parameter"/>, or null when it has not been updated yet.</summary>
    /// <exception cref="ArgumentException">The tensor is not a parameter of this optimizer.</exception>
    public ParameterState? GetState(Tensor parameter)
    {
        ArgumentNullException.ThrowIfNull(parameter);
        for (int g = 0; g < _groups.Count; g++)
            for (int i = 0; i < _groups[g].Parameters.Count; i++)
                if (ReferenceEquals(_groups[g].Parameters[i], parameter)) return _state[g][i];
        throw new ArgumentException($"Tensor{parameter.Describe()} is not a parameter of this optimizer.", nameof(parameter));
    }

    /// <summary>
    /// A copy of the optimizer state for checkpointing: <c>"{group}.{param}.{buffer}"</c> buffers,
    /// <c>"{group}.{param}.step"</c> counts and <c>"step_count"</c> (see the class remarks for the encoding).
    /// Parameters that have never been updated have no entries.
    /// </summary>
    public IReadOnlyDictionary<string, float[]> StateDict()
    {
        var d = new Dictionary<string, float[]>(StringComparer.Ordinal) { [StepCountKey] = EncodeCount(StepCount) };
        for (int g = 0; g < _groups.Count; g++)
        {
            for (int i = 0; i < _state[g].Length; i++)
            {
                var s = _state[g][i];
                if (s is null) continue;
                string prefix = Prefix(g, i);
                d[prefix + StepKey] = EncodeCount(s.Step);
                foreach (var (name, buffer) in s.Buffers) d[prefix + name] = (float[])buffer.Clone();
            }
        }
        return d;
    }

    /// <summary>
    /// Replaces the optimizer state with a copy of <paramref name="state"/> (as produced by <see cref="StateDict"/>
    /// of an optimizer with the same groups and parameter shapes). Parameters without entries start fresh. Nothing
    /// changes when validation fails.
    /// </summary>
    /// <exception cref="ArgumentException">An unknown key, a group or parameter index out of range, a buffer whose length differs from its parameter, a malformed count, or an incomplete parameter state.</exception>
    public void LoadStateDict(IReadOnlyDictionary<string, float[]> state)
    {
        ArgumentNullException.ThrowIfNull(state);
        var fresh = new ParameterState?[_groups.Count][];
        for (int g = 0; g < _groups.Count; g++) fresh[g] = new ParameterState?[_groups[g].Parameters.Count];
        long stepCount = 0;
        var buffers = StateBufferNames;
        var hasStep = new HashSet<(int, int)>();

        foreach (var (key, values) in state)
        {
            if (values is null) throw new ArgumentException($"State entry '{key}' is null.", nameof(state));
            if (key == StepCountKey)
            {
                stepCount = DecodeCount(values, key);
                continue;
            }
            var parts = key.Split('.', 3);
            if (parts.Length != 3
                || !int.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out int g)
                || !int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out int i))
                throw new ArgumentException($"State entry '{key}' is not '{StepCountKey}' or '{{group}}.{{param}}.{{name}}'.", nameof(state));
            if (g >= _groups.Count)
                throw new ArgumentException($"State entry '{key}' refers to group {g}, but the optimizer has {_groups.Count} group(s).", nameof(state));
            var parameters = _groups[g].Parameters;
            if (i >= parameters.Count)
                throw new ArgumentException($"State entry '{key}' refers to parameter {i} of group {g}, which has {parameters.Count} parameter(s).", nameof(state));
            var p = parameters[i];
            var s = fresh[g][i] ??= new ParameterState(p.Numel);
            string name = parts[2];
            if (name == StepKey)
            {
                s.Step = DecodeCount(values, key);
                hasStep.Add((g, i));
            }
            else if (buffers.Contains(name))
            {
                if (values.Length != p.Numel)
                    throw new ArgumentException(
                        $"State entry '{key}' has {values.Length} values, but parameter {g}.{i}{(p.Name is null ? "" : $" '{p.Name}'")} has shape {ShapeUtil.Format(p.ShapeArr)} ({p.Numel} elements).",
                        nameof(state));
                s.SetBuffer(name, (float[])values.Clone());
            }
            else
            {
                throw new ArgumentException(
                    $"State entry '{key}' names an unknown buffer '{name}'; {GetType().Name} keeps {string.Join(", ", buffers.Select(b => $"'{b}'"))} and '{StepKey}'.",
                    nameof(state));
            }
        }

        for (int g = 0; g < fresh.Length; g++)
        {
            for (int i = 0; i < fresh[g].Length; i++)
            {
                var s = fresh[g][i];
                if (s is null) continue;
                string prefix = Prefix(g, i);
                if (!hasStep.Contains((g, i)))
                    throw new ArgumentException($"State of parameter {g}.{i} has buffers but no '{prefix}{StepKey}' entry.", nameof(state));
                ValidateLoadedState(_groups[g], _groups[g].Parameters[i], s, prefix);
            }
        }

        for (int g = 0; g < fresh.Length; g++) _state[g] = fresh[g];
        StepCount = stepCount;
    }

    /// <summary>One group over <paramref name="parameters"/>, which must not be empty.</summary>
    /// <exception cref="ArgumentException">The list is empty.</exception>
    protected static ParamGroup SingleGroup(IEnumerable<Tensor> parameters)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        var group = new ParamGroup(parameters);
        if (group.Parameters.Count == 0) throw new ArgumentException("The optimizer got an empty parameter list.", nameof(parameters));
        return group;
    }

    /// <summary>Throws <see cref="ArgumentException"/> unless <paramref name="value"/> is a finite number ≥ 0.</summary>
    protected void CheckNonNegative(double value, string what, ParamGroup? group = null)
    {
        if (!(value >= 0) || double.IsInfinity(value))
            throw new ArgumentException($"Invalid {what}: {Fmt(value)}{Where(group)}; it must be a finite number >= 0.");
    }

    /// <summary>Throws <see cref="ArgumentException"/> unless 0 ≤ <paramref name="value"/> &lt; 1.</summary>
    protected void CheckUnitInterval(double value, string what, ParamGroup? group = null)
    {
        if (!(value >= 0 && value < 1))
            throw new ArgumentException($"Invalid {what}: {Fmt(value)}{Where(group)}; it must be in [0, 1).");
    }

    /// <summary>Formats a hyper-parameter for error messages (round-trip, invariant culture).</summary>
    protected static string Fmt(double value) => value.ToString("R", CultureInfo.InvariantCulture);

    /// <summary>" in group N" (or " in group 'name'") for error messages; empty for the optimizer defaults.</summary>
    protected string Where(ParamGroup? group) =>
        group is null ? "" : group.Name is not null ? $" in parameter group '{group.Name}'" : $" in parameter group {(_groups.IndexOf(group) is int k and >= 0 ? k : _groups.Count)}";

    private static string Prefix(int g, int i) => string.Create(CultureInfo.InvariantCulture, $"{g}.{i}.");

    private static float[] EncodeCount(long count) => [count % CountRadix, count / CountRadix];

    private static long DecodeCount(float[] values, string key)
    {
        bool ok = values.Length is 1 or 2;
        long count = 0;
        if (ok)
        {
            float lo = values[0], hi = values.Length == 2 ? values[1] : 0f;
            ok = lo >= 0 && hi >= 0 && lo == MathF.Floor(lo) && hi == MathF.Floor(hi) && hi < CountRadix && (values.Length == 1 || lo < CountRadix);
            if (ok) count = (long)hi * CountRadix + (long)lo;
        }
        if (!ok) throw new ArgumentException($"State entry '{key}' is not a step count ([count mod 2^24, count / 2^24] of non-negative integers): [{string.Join(", ", values)}].", "state");
        return count;
    }
}

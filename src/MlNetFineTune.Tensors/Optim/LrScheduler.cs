namespace MlNetFineTune.Tensors.Optim;

/// <summary>
/// Drives an optimizer's learning rates from an <see cref="LrSchedule"/>, like a PyTorch
/// <c>torch.optim.lr_scheduler</c>: construction applies step 0, and each <see cref="Step"/> (called after
/// <see cref="Optimizer.Step"/>) advances and applies the next step, so the rate in effect for optimizer step k is
/// <c>schedule.LearningRate(group.InitialLearningRate, k)</c>, i.e. base · multiplier(k).
/// </summary>
/// <example>
/// <code>
/// var opt = new AdamW(model.Parameters, learningRate: 5e-5);
/// var sched = new LrScheduler(opt, LrSchedule.LinearWarmupDecay(warmupSteps: 100, totalSteps: 1000));
/// for (...) { loss.Backward(); opt.Step(); sched.Step(); opt.ZeroGrad(); }
/// </code>
/// </example>
public sealed class LrScheduler
{
    /// <summary>Attaches <paramref name="schedule"/> to <paramref name="optimizer"/> and sets every group's rate for step 0.</summary>
    public LrScheduler(Optimizer optimizer, LrSchedule schedule)
    {
        ArgumentNullException.ThrowIfNull(optimizer);
        ArgumentNullException.ThrowIfNull(schedule);
        Optimizer = optimizer;
        Schedule = schedule;
        Apply(0);
    }

    /// <summary>The optimizer whose groups this scheduler sets.</summary>
    public Optimizer Optimizer { get; }

    /// <summary>The schedule.</summary>
    public LrSchedule Schedule { get; }

    /// <summary>Scheduler steps taken so far (PyTorch's <c>last_epoch</c>); the rates currently set are for this step.</summary>
    public int StepCount { get; private set; }

    /// <summary>The base rate of each group (<see cref="ParamGroup.InitialLearningRate"/>), read live.</summary>
    public IReadOnlyList<double> BaseLearningRates => Optimizer.Groups.Select(g => g.InitialLearningRate).ToArray();

    /// <summary>The rate currently set on each group (PyTorch's <c>get_last_lr()</c>).</summary>
    public IReadOnlyList<double> LastLearningRates => Optimizer.Groups.Select(g => g.LearningRate).ToArray();

    /// <summary>Advances one step and sets every group's learning rate for it.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The schedule has no rate for the next step (a finished <see cref="OneCycleLrSchedule"/>); nothing changes.</exception>
    public void Step() => Apply(checked(StepCount + 1));

    /// <summary>
    /// Jumps to scheduler step <paramref name="stepCount"/> (e.g. the optimizer's <see cref="Optimizer.StepCount"/>
    /// when resuming from a checkpoint) and sets every group's rate for it.
    /// </summary>
    public void LoadState(int stepCount)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(stepCount);
        Apply(stepCount);
    }

    private void Apply(int step)
    {
        var groups = Optimizer.Groups;
        var rates = new double[groups.Count];
        for (int g = 0; g < rates.Length; g++) rates[g] = Schedule.LearningRate(groups[g].InitialLearningRate, step);
        for (int g = 0; g < rates.Length; g++) groups[g].LearningRate = rates[g];
        StepCount = step;
    }
}

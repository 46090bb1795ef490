namespace MlNetFineTune.Tensors.Optim;

/// <summary>
/// A learning-rate schedule: the learning rate for scheduler step <c>s</c> (0 for the first optimizer step) as a
/// function of a group's base learning rate. Most schedules are a multiplier of the base rate (PyTorch's
/// <c>LambdaLR</c>); <see cref="OneCycle"/> computes the rate itself. Arithmetic is in double, like the Python
/// schedulers. Apply one to an optimizer with <see cref="LrScheduler"/>.
/// </summary>
public abstract class LrSchedule
{
    /// <summary>The factor applied to the base learning rate at scheduler step <paramref name="step"/> (≥ 0).</summary>
    public abstract double Multiplier(int step);

    /// <summary>The learning rate at scheduler step <paramref name="step"/> for a group whose base rate is <paramref name="baseLearningRate"/>.</summary>
    public virtual double LearningRate(double baseLearningRate, int step) => baseLearningRate * Multiplier(step);

    /// <summary>A multiplier of 1 at every step.</summary>
    public static LrSchedule Constant() => ConstantLrSchedule.Instance;

    /// <summary>
    /// Linear warm-up from 0 to 1 over <paramref name="warmupSteps"/>, then linear decay to 0 at
    /// <paramref name="totalSteps"/> (Hugging Face <c>get_linear_schedule_with_warmup</c>).
    /// </summary>
    public static LrSchedule LinearWarmupDecay(int warmupSteps, int totalSteps) => new LinearWarmupDecayLrSchedule(warmupSteps, totalSteps);

    /// <summary>
    /// Linear warm-up, then cosine decay over <paramref name="numCycles"/> periods (0.5: from 1 down to 0 at
    /// <paramref name="totalSteps"/>) (Hugging Face <c>get_cosine_schedule_with_warmup</c>).
    /// </summary>
    public static LrSchedule Cosine(int warmupSteps, int totalSteps, double numCycles = 0.5) => new CosineLrSchedule(warmupSteps, totalSteps, numCycles);

    /// <summary>
    /// PyTorch's <c>OneCycleLR</c> (two phases, cosine annealing, no momentum cycling) with the group's base rate as
    /// <c>max_lr</c>: from <c>max_lr/divFactor</c> up to <c>max_lr</c> over the first <paramref name="pctStart"/> of
    /// <paramref name="totalSteps"/>, then down to <c>max_lr/divFactor/finalDivFactor</c> at step totalSteps-1.
    /// </summary>
    public static LrSchedule OneCycle(int totalSteps, double pctStart = 0.3, double divFactor = 25, double finalDivFactor = 1e4) =>
        new OneCycleLrSchedule(totalSteps, pctStart, divFactor, finalDivFactor);

    /// <summary>Any multiplier function (PyTorch's <c>LambdaLR</c>).</summary>
    public static LrSchedule Lambda(Func<int, double> multiplier) => new LambdaLrSchedule(multiplier);

    /// <summary>Throws when <paramref name="step"/> is negative.</summary>
    protected static void CheckStep(int step)
    {
        if (step < 0) throw new ArgumentOutOfRangeException(nameof(step), step, "The schedule step must be >= 0.");
    }
}

/// <summary>Multiplier 1 at every step.</summary>
public sealed class ConstantLrSchedule : LrSchedule
{
    internal static readonly ConstantLrSchedule Instance = new();

    private ConstantLrSchedule() { }

    /// <inheritdoc />
    public override double Multiplier(int step)
    {
        CheckStep(step);
        return 1.0;
    }

    /// <inheritdoc />
    public override double LearningRate(double baseLearningRate, int step)
    {
        CheckStep(step);
        return baseLearningRate;
    }
}

/// <summary>
/// <c>m(s) = s / max(1, warmup)</c> for <c>s &lt; warmup</c>, else <c>max(0, (total - s) / max(1, total - warmup))</c>
/// (Hugging Face <c>get_linear_schedule_with_warmup</c>).
/// </summary>
public sealed class LinearWarmupDecayLrSchedule : LrSchedule
{
    /// <summary>Creates the schedule.</summary>
    /// <exception cref="ArgumentOutOfRangeException">A negative step count.</exception>
    public LinearWarmupDecayLrSchedule(int warmupSteps, int totalSteps)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(warmupSteps);
        ArgumentOutOfRangeException.ThrowIfNegative(totalSteps);
        WarmupSteps = warmupSteps;
        TotalSteps = totalSteps;
    }

    /// <summary>Steps of linear warm-up.</summary>
    public int WarmupSteps { get; }

    /// <summary>The step at which the multiplier reaches 0.</summary>
    public int TotalSteps { get; }

    /// <inheritdoc />
    public override double Multiplier(int step)
    {
        CheckStep(step);
        if (step < WarmupSteps) return (double)step / Math.Max(1, WarmupSteps);
        return Math.Max(0.0, (double)((long)TotalSteps - step) / Math.Max(1, (long)TotalSteps - WarmupSteps));
    }
}

/// <summary>
/// <c>m(s) = s / max(1, warmup)</c> for <c>s &lt; warmup</c>, else
/// <c>max(0, 0.5·(1 + cos(π·numCycles·2·progress)))</c> with <c>progress = (s - warmup) / max(1, total - warmup)</c>
/// (Hugging Face <c>get_cosine_schedule_with_warmup</c>).
/// </summary>
public sealed class CosineLrSchedule : LrSchedule
{
    /// <summary>Creates the schedule.</summary>
    /// <exception cref="ArgumentOutOfRangeException">A negative step count or a negative or non-finite cycle count.</exception>
    public CosineLrSchedule(int warmupSteps, int totalSteps, double numCycles = 0.5)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(warmupSteps);
        ArgumentOutOfRangeException.ThrowIfNegative(totalSteps);
        if (!(numCycles >= 0) || double.IsInfinity(numCycles))
            throw new ArgumentOutOfRangeException(nameof(numCycles), numCycles, $"numCycles must be a finite number >= 0; got {numCycles}.");
        WarmupSteps = warmupSteps;
        TotalSteps = totalSteps;
        NumCycles = numCycles;
    }

    /// <summary>Steps of linear warm-up.</summary>
    public int WarmupSteps { get; }

    /// <summary>The length of the schedule.</summary>
    public int TotalSteps { get; }

    /// <summary>Number of cosine periods after the warm-up (0.5 decays once from 1 to 0).</summary>
    public double NumCycles { get; }

    /// <inheritdoc />
    public override double Multiplier(int step)
    {
        CheckStep(step);
        if (step < WarmupSteps) return (double)step / Math.Max(1, WarmupSteps);
        double progress = (double)((long)step - WarmupSteps) / Math.Max(1, (long)TotalSteps - WarmupSteps);
        return Math.Max(0.0, 0.5 * (1.0 + Math.Cos(Math.PI * NumCycles * 2.0 * progress)));
    }
}

/// <summary>
/// PyTorch 1.13 <c>OneCycleLR</c> with <c>anneal_strategy='cos'</c>, <c>three_phase=False</c> and
/// <c>cycle_momentum=False</c>; <c>max_lr</c> is the base learning rate given to <see cref="LearningRate"/>.
/// </summary>
/// <remarks>
/// initial = max/divFactor, min = initial/finalDivFactor. Phase 1 ends at step <c>pctStart·total - 1</c> (initial → max),
/// phase 2 at <c>total - 1</c> (max → min), each <c>cos_anneal(a, b, pct) = b + (a - b)/2·(1 + cos(π·pct))</c> with
/// pct the fraction of the phase. Like PyTorch, steps beyond <see cref="TotalSteps"/> are an error.
/// </remarks>
public sealed class OneCycleLrSchedule : LrSchedule
{
    /// <summary>Creates the schedule.</summary>
    /// <exception cref="ArgumentOutOfRangeException">totalSteps ≤ 0, pctStart outside [0, 1], or a factor that is not a finite positive number.</exception>
    public OneCycleLrSchedule(int totalSteps, double pctStart = 0.3, double divFactor = 25, double finalDivFactor = 1e4)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(totalSteps);
        if (!(pctStart >= 0 && pctStart <= 1))
            throw new ArgumentOutOfRangeException(nameof(pctStart), pctStart, $"pctStart must be in [0, 1]; got {pctStart}.");
        if (!(divFactor > 0) || double.IsInfinity(divFactor))
            throw new ArgumentOutOfRangeException(nameof(divFactor), divFactor, $"divFactor must be a finite number > 0; got {divFactor}.");
        if (!(finalDivFactor > 0) || double.IsInfinity(finalDivFactor))
            throw new ArgumentOutOfRangeException(nameof(finalDivFactor), finalDivFactor, $"finalDivFactor must be a finite number > 0; got {finalDivFactor}.");
        TotalSteps = totalSteps;
        PctStart = pctStart;
        DivFactor = divFactor;
        FinalDivFactor = finalDivFactor;
    }

    /// <summary>Steps in the cycle.</summary>
    public int TotalSteps { get; }

    /// <summary>Fraction of the cycle spent increasing the rate.</summary>
    public double PctStart { get; }

    /// <summary>initial_lr = max_lr / DivFactor.</summary>
    public double DivFactor { get; }

    /// <summary>min_lr = initial_lr / FinalDivFactor.</summary>
    public double FinalDivFactor { get; }

    /// <inheritdoc />
    public override double Multiplier(int step) => LearningRate(1.0, step);

    /// <inheritdoc />
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="step"/> is negative or greater than <see cref="TotalSteps"/>.</exception>
    public override double LearningRate(double baseLearningRate, int step)
    {
        CheckStep(step);
        if (step > TotalSteps)
            throw new ArgumentOutOfRangeException(nameof(step), step, $"Tried to step {step} times; the one-cycle schedule has {TotalSteps} total steps.");
        double maxLr = baseLearningRate;
        double initialLr = maxLr / DivFactor;
        double minLr = initialLr / FinalDivFactor;
        double end1 = PctStart * TotalSteps - 1;
        double end2 = TotalSteps - 1;
        if (step <= end1) return Anneal(initialLr, maxLr, Pct(step, 0, end1));
        return Anneal(maxLr, minLr, Pct(step, end1, end2));
    }

    // PyTorch divides by the phase length; a zero-length phase (which PyTorch cannot run) is treated as already finished.
    private static double Pct(double step, double start, double end) => end == start ? 1.0 : (step - start) / (end - start);

    private static double Anneal(double start, double end, double pct)
    {
        double cosOut = Math.Cos(Math.PI * pct) + 1;
        return end + (start - end) / 2.0 * cosOut;
    }
}

/// <summary>A schedule defined by a multiplier function (PyTorch's <c>LambdaLR</c>).</summary>
public sealed class LambdaLrSchedule : LrSchedule
{
    private readonly Func<int, double> _multiplier;

    /// <summary>Creates the schedule.</summary>
    public LambdaLrSchedule(Func<int, double> multiplier)
    {
        ArgumentNullException.ThrowIfNull(multiplier);
        _multiplier = multiplier;
    }

    /// <inheritdoc />
    public override double Multiplier(int step)
    {
        CheckStep(step);
        return _multiplier(step);
    }
}

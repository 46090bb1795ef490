namespace MlNetFineTune.AutoML;

/// <summary>Decides after each epoch whether a running trial should stop.</summary>
public interface IPruner
{
    /// <summary>
    /// Whether <paramref name="trial"/>, having just reported <paramref name="value"/> at <paramref name="step"/>
    /// (1-based epoch), should stop, given every trial of the study (their intermediate values included).
    /// </summary>
    bool ShouldPrune(int trial, int step, double value, IReadOnlyList<TrialRecord> study, bool maximize);
}

/// <summary>Never prunes.</summary>
public sealed class NoPruner : IPruner
{
    /// <inheritdoc/>
    public bool ShouldPrune(int trial, int step, double value, IReadOnlyList<TrialRecord> study, bool maximize) => false;
}

/// <summary>
/// Asynchronous successive halving (ASHA), as Optuna's SuccessiveHalvingPruner: rungs at epochs
/// r·η^k (r = <see cref="MinResource"/>, η = <see cref="ReductionFactor"/>); a trial reaching a rung goes on only if
/// its value is among the top 1/η of the values every trial has recorded at that rung (while fewer than η
/// trials have reached it, only the best goes on).
/// </summary>
public sealed class AshaPruner(int minResource = 1, int reductionFactor = 3) : IPruner
{
    /// <summary>The first rung's epoch.</summary>
    public int MinResource { get; } = minResource >= 1 ? minResource : throw new ArgumentOutOfRangeException(nameof(minResource));

    /// <summary>η: one in η trials goes on at each rung.</summary>
    public int ReductionFactor { get; } = reductionFactor >= 2 ? reductionFactor : throw new ArgumentOutOfRangeException(nameof(reductionFactor));

    /// <summary>Whether <paramref name="step"/> is a rung.</summary>
    public bool IsRung(int step)
    {
        for (long r = MinResource; r <= step; r *= ReductionFactor)
            if (r == step) return true;
        return false;
    }

    /// <inheritdoc/>
    public bool ShouldPrune(int trial, int step, double value, IReadOnlyList<TrialRecord> study, bool maximize)
    {
        if (!IsRung(step) || !double.IsFinite(value)) return false;
        var competing = study.Where(t => t.Number != trial && t.State != TrialState.Failed && t.State != TrialState.Waiting && t.Intermediate.TryGetValue(step, out _))
            .Select(t => t.Intermediate[step]).Append(value).ToList();
        int promotable = competing.Count / ReductionFactor - 1;
        if (promotable < 0) promotable = 0;
        competing.Sort();
        if (!maximize) competing.Reverse();
        double threshold = competing[competing.Count - 1 - promotable];
        return maximize ? value < threshold : value > threshold;
    }
}

/// <summary>
/// Median pruner (Optuna's MedianPruner): after <see cref="StartupTrials"/> finished trials and past
/// <see cref="WarmupSteps"/> epochs, stops a trial whose best value so far is worse than the median of the
/// finished trials' values at the same epoch.
/// </summary>
public sealed class MedianPruner(int startupTrials = 3, int warmupSteps = 0) : IPruner
{
    /// <summary>Finished trials needed before pruning starts.</summary>
    public int StartupTrials { get; } = startupTrials;

    /// <summary>Epochs during which no trial is pruned.</summary>
    public int WarmupSteps { get; } = warmupSteps;

    /// <inheritdoc/>
    public bool ShouldPrune(int trial, int step, double value, IReadOnlyList<TrialRecord> study, bool maximize)
    {
        if (step <= WarmupSteps || !double.IsFinite(value)) return false;
        var finished = study.Where(t => t.Number != trial && t.IsFinished).ToList();
        if (finished.Count < StartupTrials) return false;
        var atStep = finished.Where(t => t.Intermediate.ContainsKey(step)).Select(t => t.Intermediate[step]).OrderBy(v => v).ToArray();
        if (atStep.Length == 0) return false;
        double median = atStep.Length % 2 == 1 ? atStep[atStep.Length / 2] : 0.5 * (atStep[atStep.Length / 2 - 1] + atStep[atStep.Length / 2]);
        var mine = study.FirstOrDefault(t => t.Number == trial);
        double best = value;
        if (mine is not null)
            foreach (var (s, v) in mine.Intermediate)
                if (s <= step) best = maximize ? Math.Max(best, v) : Math.Min(best, v);
        return maximize ? best < median : best > median;
    }
}

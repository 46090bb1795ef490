using System.Diagnostics;

namespace MlNetFineTune.AutoML;

/// <summary>What one trial gives back.</summary>
/// <param name="Value">The final metric (the best epoch's validation metric for training objectives).</param>
/// <param name="Cost">Compute used: epochs trained times training examples.</param>
/// <param name="Artifact">The trained model, kept in memory by the worker that made it (may be null).</param>
public sealed record TrialOutcome(double Value, double Cost, object? Artifact = null);

/// <summary>A trial to evaluate, its parameters and its link to the pruner.</summary>
public sealed class TrialContext
{
    private readonly Func<int, double, bool, bool> _report;

    internal TrialContext(TrialRecord trial, SearchSpace space, CancellationToken token, Func<int, double, bool, bool> report)
    {
        Trial = trial;
        Space = space;
        Token = token;
        _report = report;
    }

    /// <summary>The stored trial.</summary>
    public TrialRecord Trial { get; }

    /// <summary>The search space.</summary>
    public SearchSpace Space { get; }

    /// <summary>Cancelled when the pruner stops the trial, at the trial's time limit, the sweep's deadline, or Ctrl+C.</summary>
    public CancellationToken Token { get; }

    /// <summary>Whether the pruner stopped the trial.</summary>
    public bool Pruned { get; internal set; }

    /// <summary>The value of parameter <paramref name="name"/> as the trainer takes it, or <paramref name="fallback"/> when the space lacks it.</summary>
    public T Get<T>(string name, T fallback)
    {
        if (!Trial.Params.TryGetValue(name, out var v) || !Space.Has(name)) return fallback;
        var x = Space[name].External(v);
        return x is T t ? t : (T)Convert.ChangeType(x, typeof(T), System.Globalization.CultureInfo.InvariantCulture);
    }

    /// <summary>
    /// Records epoch <paramref name="step"/>'s value; true when the trial should stop (pruned; the token is then cancelled).
    /// A <paramref name="last"/> epoch is recorded but never pruned: its compute is spent already.
    /// </summary>
    public bool Report(int step, double value, bool last = false) => _report(step, value, last);

    /// <summary>A context outside any study (to retrain a stored trial's configuration).</summary>
    public static TrialContext Detached(TrialRecord trial, SearchSpace space, CancellationToken token = default) =>
        new(trial, space, token, (_, _, _) => false);
}

/// <summary>Trains and scores one configuration.</summary>
public interface IObjective
{
    /// <summary>Runs the trial; on cancellation returns the best so far (or throws <see cref="OperationCanceledException"/> if there is none).</summary>
    TrialOutcome Run(TrialContext context);
}

/// <summary>Budgets and timing of a sweep.</summary>
public sealed record SweepOptions
{
    /// <summary>Trials in the study (re-queued copies do not count); null: as many as the tuner proposes before the time budget.</summary>
    public int? MaxTrials { get; init; }
    /// <summary>Wall-clock budget of this worker: no trial starts after it, and a running one stops at it with its best so far.</summary>
    public TimeSpan? TimeBudget { get; init; }
    /// <summary>Limit per trial: the trial stops there and keeps its best epoch.</summary>
    public TimeSpan? TrialTimeout { get; init; }
    /// <summary>How often a running trial's heartbeat is written.</summary>
    public TimeSpan HeartbeatInterval { get; init; } = TimeSpan.FromSeconds(5);
    /// <summary>A running trial whose heartbeat is older than this is marked failed and re-queued.</summary>
    public TimeSpan StaleAfter { get; init; } = TimeSpan.FromSeconds(60);
    /// <summary>Copies queued per trial after stale failures.</summary>
    public int MaxRetries { get; init; } = 2;
    /// <summary>How long to wait when other workers hold the remaining trials.</summary>
    public TimeSpan PollInterval { get; init; } = TimeSpan.FromSeconds(1);
    /// <summary>Higher metric is better.</summary>
    public bool Maximize { get; init; } = true;
    /// <summary>This worker's id in storage (default: host:pid:random).</summary>
    public string? WorkerId { get; init; }
    /// <summary>After its own budget, wait for trials other workers still run (so the outputs see the whole study).</summary>
    public bool WaitForOthers { get; init; } = true;
}

/// <summary>How a sweep ended for this worker.</summary>
public sealed record SweepResult(IReadOnlyList<TrialRecord> Trials, TrialRecord? Best, object? BestArtifact, int TrialsRunHere, bool Cancelled)
{
    /// <summary>Compute of every trial in the study (epochs x examples).</summary>
    public double TotalCost => Trials.Sum(t => t.Cost);
}

/// <summary>
/// One worker of a study: claims trials from storage, runs them with heartbeats, reports per-epoch values to the
/// pruner, and records outcomes. Several workers (processes, machines) on the same storage and study cooperate.
/// </summary>
public sealed class Sweep(StudyStorage storage, string study, SearchSpace space, ITuner tuner, IPruner pruner, SweepOptions options)
{
    /// <summary>Called after each trial this worker ends (also with trials others ended, when seen); for leaderboards.</summary>
    public event Action<TrialRecord, IReadOnlyList<TrialRecord>>? TrialFinished;

    /// <summary>The worker id written to storage.</summary>
    public string WorkerId { get; } = options.WorkerId ?? $"{Environment.MachineName}:{Environment.ProcessId}:{Guid.NewGuid().ToString("N")[..6]}";

    /// <summary>Runs until the budget is used, the grid is done, or <paramref name="cancellationToken"/> fires; returns the best so far.</summary>
    public SweepResult Run(IObjective objective, CancellationToken cancellationToken = default)
    {
        storage.EnsureStudy(study, options.Maximize, space);
        var clock = Stopwatch.StartNew();
        int maxTrials = options.MaxTrials ?? (options.TimeBudget is null && tuner is not GridTuner
            ? throw new ArgumentException("Give a trial budget (--max-trials) or a time budget (--train-time).")
            : int.MaxValue);
        object? bestArtifact = null;
        TrialRecord? bestHere = null;
        int ran = 0;
        bool cancelled = false;
        while (true)
        {
            if (cancellationToken.IsCancellationRequested) { cancelled = true; break; }
            bool outOfTime = options.TimeBudget is TimeSpan budget && clock.Elapsed >= budget;
            var claim = outOfTime
                ? new Claim(storage.Trials(study).Any(t => t.State is TrialState.Running) && options.WaitForOthers ? ClaimKind.Wait : ClaimKind.Done)
                : storage.Claim(study, WorkerId, maxTrials, options.StaleAfter.TotalSeconds, options.MaxRetries,
                    (index, history) => tuner.Suggest(space, index, history, options.Maximize));
            if (claim.Kind == ClaimKind.Done) break;
            if (claim.Kind == ClaimKind.Wait)
            {
                if (!options.WaitForOthers && !outOfTime && storage.Trials(study).All(t => t.State != TrialState.Waiting)) break;
                if (cancellationToken.WaitHandle.WaitOne(options.PollInterval)) { cancelled = true; break; }
                continue;
            }
            var (record, artifact) = RunTrial(claim.Trial!, objective, clock, cancellationToken);
            ran++;
            if (record is null) continue;
            if (artifact is not null && record.State == TrialState.Complete && record.Value is double v
                && (bestHere is null || Better(v, bestHere.Value!.Value)))
            {
                bestHere = record;
                bestArtifact = artifact;
            }
            TrialFinished?.Invoke(record, storage.Trials(study));
        }
        var all = storage.Trials(study);
        var best = BestOf(all, options.Maximize);
        return new SweepResult(all, best, best is not null && bestHere is not null && best.Number == bestHere.Number ? bestArtifact : null, ran, cancelled);
    }

    private bool Better(double a, double b) => options.Maximize ? a > b : a < b;

    /// <summary>The best complete trial (a pruned one only when none completed).</summary>
    public static TrialRecord? BestOf(IReadOnlyList<TrialRecord> trials, bool maximize)
    {
        var pool = trials.Where(t => t.State == TrialState.Complete && t.Value is not null).ToList();
        if (pool.Count == 0) pool = trials.Where(t => t.State == TrialState.Pruned && t.Value is not null).ToList();
        if (pool.Count == 0) return null;
        return maximize ? pool.OrderByDescending(t => t.Value).ThenBy(t => t.Number).First() : pool.OrderBy(t => t.Value).ThenBy(t => t.Number).First();
    }

    private (TrialRecord? Record, object? Artifact) RunTrial(TrialRecord trial, IObjective objective, Stopwatch clock, CancellationToken sweepToken)
    {
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(sweepToken);
        bool timedOut = false, lost = false;
        var limits = new List<TimeSpan>();
        if (options.TrialTimeout is TimeSpan tt) limits.Add(tt);
        if (options.TimeBudget is TimeSpan tb) limits.Add(tb - clock.Elapsed > TimeSpan.Zero ? tb - clock.Elapsed : TimeSpan.Zero);
        Timer? limitTimer = limits.Count == 0 ? null : new Timer(_ => { timedOut = true; try { cts.Cancel(); } catch (ObjectDisposedException) { } }, null, limits.Min(), Timeout.InfiniteTimeSpan);
        using var heartbeat = new Timer(_ =>
        {
            try
            {
                if (!storage.Heartbeat(study, trial.Number, WorkerId)) { lost = true; cts.Cancel(); }
            }
            catch (Exception) { /* a missed beat is retried at the next tick */ }
        }, null, TimeSpan.Zero, options.HeartbeatInterval);

        TrialContext? context = null;
        context = new TrialContext(trial, space, cts.Token, (step, value, last) =>
        {
            storage.Report(study, trial.Number, step, value);
            if (context!.Pruned) return true;
            if (last) return false;
            if (pruner.ShouldPrune(trial.Number, step, value, storage.Trials(study), options.Maximize))
            {
                context.Pruned = true;
                cts.Cancel();
                return true;
            }
            return false;
        });
        TrialState state;
        double? value = null;
        double cost = 0;
        string? message = null;
        object? artifact = null;
        try
        {
            var outcome = objective.Run(context);
            limitTimer?.Dispose();
            (value, cost, artifact) = (outcome.Value, outcome.Cost, outcome.Artifact);
            if (lost) return (null, null);
            if (sweepToken.IsCancellationRequested && !context.Pruned)
            {
                storage.Release(study, trial.Number, WorkerId);
                return (null, null);
            }
            state = context.Pruned ? TrialState.Pruned : TrialState.Complete;
            if (timedOut && !context.Pruned) message = "stopped at the time limit; best epoch kept";
        }
        catch (OperationCanceledException) when (!context.Pruned || sweepToken.IsCancellationRequested || lost)
        {
            limitTimer?.Dispose();
            if (lost) return (null, null);
            if (sweepToken.IsCancellationRequested) { storage.Release(study, trial.Number, WorkerId); return (null, null); }
            state = TrialState.Failed;
            message = "stopped at the time limit before its first epoch ended";
        }
        catch (Exception ex)
        {
            limitTimer?.Dispose();
            if (lost) return (null, null);
            state = TrialState.Failed;
            message = $"{ex.GetType().Name}: {ex.Message}";
        }
        if (state == TrialState.Pruned)
        {
            // A pruned trial's value is its best epoch so far (what its model holds).
            var reported = storage.Trials(study).FirstOrDefault(t => t.Number == trial.Number)?.Intermediate;
            if (reported is { Count: > 0 }) value = options.Maximize ? reported.Values.Max() : reported.Values.Min();
        }
        heartbeat.Dispose();
        if (!storage.Finish(study, trial.Number, WorkerId, state, value, cost, message)) return (null, null);
        return (storage.Trials(study).First(t => t.Number == trial.Number), artifact);
    }
}

namespace MlNetFineTune.AutoML;

/// <summary>The states a trial passes through in storage.</summary>
public enum TrialState
{
    /// <summary>Queued (a re-queued trial of a dead worker, or released on cancellation); the next free worker claims it.</summary>
    Waiting,
    /// <summary>Claimed by a worker that keeps its heartbeat fresh.</summary>
    Running,
    /// <summary>Trained to the end (or to its time limit) with a final value.</summary>
    Complete,
    /// <summary>Stopped early by the pruner; its value is the best intermediate value.</summary>
    Pruned,
    /// <summary>Threw, or its worker stopped beating.</summary>
    Failed,
}

/// <summary>One trial as stored.</summary>
/// <param name="Number">Unique, increasing within the study.</param>
/// <param name="Logical">The index of the configuration: a re-queued copy shares it with the trial it repeats. Budgets and tuners count logical trials.</param>
public sealed record TrialRecord(
    int Number, int Logical, TrialState State, IReadOnlyDictionary<string, double> Params, double? Value,
    IReadOnlyDictionary<int, double> Intermediate, double Cost, string? Worker, double? Started, double? Finished, string? Message)
{
    /// <summary>Whether the trial is over with a value a tuner can learn from.</summary>
    public bool IsFinished => State is TrialState.Complete or TrialState.Pruned;
}

/// <summary>Proposes the parameters of the next trial.</summary>
public interface ITuner
{
    /// <summary>
    /// Parameters for logical trial <paramref name="index"/> (0-based) given the finished trials; null when the
    /// tuner has nothing left to propose (a grid that is done). Must depend only on its arguments and the seed.
    /// </summary>
    IReadOnlyDictionary<string, double>? Suggest(SearchSpace space, int index, IReadOnlyList<TrialRecord> history, bool maximize);
}

/// <summary>Every point of the grid, in order (the last parameter varies fastest).</summary>
public sealed class GridTuner : ITuner
{
    /// <inheritdoc/>
    public IReadOnlyDictionary<string, double>? Suggest(SearchSpace space, int index, IReadOnlyList<TrialRecord> history, bool maximize)
    {
        if (index >= space.GridSize) return null;
        var result = new Dictionary<string, double>();
        long rest = index;
        for (int i = space.Parameters.Count - 1; i >= 0; i--)
        {
            var points = space.Parameters[i].GridPoints();
            result[space.Parameters[i].Name] = points[(int)(rest % points.Count)];
            rest /= points.Count;
        }
        return space.Parameters.ToDictionary(p => p.Name, p => result[p.Name]);
    }
}

/// <summary>Independent uniform (log-uniform) draws from a stream fixed by (seed, trial index).</summary>
public sealed class RandomTuner(int seed) : ITuner
{
    /// <inheritdoc/>
    public IReadOnlyDictionary<string, double>? Suggest(SearchSpace space, int index, IReadOnlyList<TrialRecord> history, bool maximize)
    {
        var rng = SplitMix.For(seed, index);
        return space.Parameters.ToDictionary(p => p.Name, p => p.Sample(rng));
    }
}

/// <summary>
/// Tree-structured Parzen estimator, as Optuna's default (univariate) TPE: after <see cref="StartupTrials"/> random
/// trials, the finished trials are split into the best gamma(n) = min(ceil(0.1 n), 25) ("good", l) and the rest
/// ("bad", g); per parameter a Parzen estimator (truncated Gaussians in the (log) range with a wide prior
/// component, bandwidth from neighbour distances; smoothed counts for choices) is fit to each set, and of
/// <see cref="Candidates"/> draws from l the one maximising l(x)/g(x), the expected-improvement ratio, is taken.
/// Pruned trials rank below complete ones, by how far they got and then by their last value.
/// </summary>
public sealed class TpeTuner(int seed, int startupTrials = 5, int candidates = 24) : ITuner
{
    /// <summary>Random trials before the model is used.</summary>
    public int StartupTrials { get; } = startupTrials;

    /// <summary>Draws from l(x) scored per parameter.</summary>
    public int Candidates { get; } = candidates;

    /// <inheritdoc/>
    public IReadOnlyDictionary<string, double>? Suggest(SearchSpace space, int index, IReadOnlyList<TrialRecord> history, bool maximize)
    {
        var rng = SplitMix.For(seed, index);
        var finished = history.Where(t => t.IsFinished && t.Value is double v && double.IsFinite(v)).ToList();
        if (finished.Count < StartupTrials) return space.Parameters.ToDictionary(p => p.Name, p => p.Sample(rng));

        // Rank: complete trials first by value, then pruned ones by the epoch reached and their last value.
        double sign = maximize ? 1 : -1;
        var ranked = finished
            .OrderByDescending(t => t.State == TrialState.Complete ? 1 : 0)
            .ThenByDescending(t => t.State == TrialState.Complete ? 0 : (t.Intermediate.Count == 0 ? 0 : t.Intermediate.Keys.Max()))
            .ThenByDescending(t => sign * (t.State == TrialState.Complete || t.Intermediate.Count == 0 ? t.Value!.Value : t.Intermediate[t.Intermediate.Keys.Max()]))
            .ThenBy(t => t.Number)
            .ToList();
        int nGood = Math.Min((int)Math.Ceiling(0.1 * ranked.Count), 25);
        nGood = Math.Max(1, nGood);
        var good = ranked.Take(nGood).ToList();
        var bad = ranked.Skip(nGood).ToList();

        var result = new Dictionary<string, double>();
        foreach (var p in space.Parameters)
        {
            var goodValues = good.Where(t => t.Params.ContainsKey(p.Name)).Select(t => t.Params[p.Name]).ToArray();
            var badValues = bad.Where(t => t.Params.ContainsKey(p.Name)).Select(t => t.Params[p.Name]).ToArray();
            result[p.Name] = p switch
            {
                ChoiceParam c => SuggestChoice(c, goodValues, badValues, rng),
                FloatParam f => SuggestNumeric(f.Log, f.Low, f.High, false, goodValues, badValues, rng),
                IntParam i => SuggestNumeric(i.Log, i.Low, i.High, true, goodValues, badValues, rng),
                _ => p.Sample(rng),
            };
        }
        return result;
    }

    private double SuggestChoice(ChoiceParam c, double[] good, double[] bad, SplitMix rng)
    {
        int k = c.Choices.Count;
        double[] Weights(double[] obs)
        {
            var w = Enumerable.Repeat(1.0 / k, k).ToArray(); // prior weight 1 spread over the choices
            foreach (var o in obs) w[(int)Math.Round(o)] += 1;
            double s = w.Sum();
            return w.Select(x => x / s).ToArray();
        }
        var l = Weights(good);
        var g = Weights(bad);
        double best = double.NegativeInfinity;
        int bestIndex = 0;
        for (int n = 0; n < Candidates; n++)
        {
            double u = rng.NextDouble(), acc = 0;
            int pick = k - 1;
            for (int j = 0; j < k; j++) { acc += l[j]; if (u < acc) { pick = j; break; } }
            double score = Math.Log(l[pick]) - Math.Log(g[pick]);
            if (score > best) { best = score; bestIndex = pick; }
        }
        return bestIndex;
    }

    private double SuggestNumeric(bool log, double low, double high, bool integer, double[] good, double[] bad, SplitMix rng)
    {
        // Work in the (log) range; integers widen by half a step each side and round at the end.
        double lo = integer ? low - 0.5 : low, hi = integer ? high + 0.5 : high;
        if (log) { lo = Math.Log(Math.Max(lo, integer ? 0.5 : lo)); hi = Math.Log(hi); }
        Func<double, double> to = log ? Math.Log : x => x;
        var l = Parzen.Fit(good.Select(to).ToArray(), lo, hi);
        var g = Parzen.Fit(bad.Select(to).ToArray(), lo, hi);
        double best = double.NegativeInfinity, bestX = 0.5 * (lo + hi);
        for (int n = 0; n < Candidates; n++)
        {
            double x = l.Sample(rng);
            double score = l.LogPdf(x) - g.LogPdf(x);
            if (score > best) { best = score; bestX = x; }
        }
        double value = log ? Math.Exp(bestX) : bestX;
        if (integer) return Math.Clamp(Math.Round(value), low, high);
        return Math.Clamp(value, low, high);
    }
}

/// <summary>A mixture of Gaussians truncated to [Low, High]: one per observation and a wide prior at the centre.</summary>
internal sealed class Parzen
{
    private readonly double[] _mu, _sigma, _weight;
    private readonly double _low, _high;

    private Parzen(double[] mu, double[] sigma, double[] weight, double low, double high) => (_mu, _sigma, _weight, _low, _high) = (mu, sigma, weight, low, high);

    public static Parzen Fit(double[] observations, double low, double high)
    {
        double range = high - low;
        var mus = observations.Append(0.5 * (low + high)).ToArray();
        int n = mus.Length;
        var order = Enumerable.Range(0, n).OrderBy(i => mus[i]).ToArray();
        var sigma = new double[n];
        double minSigma = range / Math.Min(100.0, 1.0 + observations.Length), maxSigma = range;
        for (int r = 0; r < n; r++)
        {
            int i = order[r];
            double left = r > 0 ? mus[i] - mus[order[r - 1]] : mus[i] - low;
            double right = r < n - 1 ? mus[order[r + 1]] - mus[i] : high - mus[i];
            sigma[i] = Math.Clamp(Math.Max(left, right), minSigma, maxSigma);
        }
        sigma[n - 1] = range; // the prior component
        var weight = Enumerable.Repeat(1.0 / n, n).ToArray();
        return new Parzen(mus, sigma, weight, low, high);
    }

    public double Sample(SplitMix rng)
    {
        double u = rng.NextDouble(), acc = 0;
        int k = _mu.Length - 1;
        for (int j = 0; j < _mu.Length; j++) { acc += _weight[j]; if (u < acc) { k = j; break; } }
        for (int attempt = 0; attempt < 100; attempt++)
        {
            double x = _mu[k] + _sigma[k] * rng.NextGaussian();
            if (x >= _low && x <= _high) return x;
        }
        return Math.Clamp(_mu[k], _low, _high);
    }

    public double LogPdf(double x)
    {
        double p = 0;
        for (int j = 0; j < _mu.Length; j++)
        {
            double z = (x - _mu[j]) / _sigma[j];
            double mass = Phi((_high - _mu[j]) / _sigma[j]) - Phi((_low - _mu[j]) / _sigma[j]);
            p += _weight[j] * Math.Exp(-0.5 * z * z) / (_sigma[j] * Math.Sqrt(2 * Math.PI) * Math.Max(mass, 1e-12));
        }
        return Math.Log(Math.Max(p, 1e-300));
    }

    private static double Phi(double z) => 0.5 * (1 + Erf(z / Math.Sqrt(2)));

    private static double Erf(double x)
    {
        // Abramowitz-Stegun 7.1.26 (|error| < 1.5e-7), enough for mixture weights.
        double t = 1 / (1 + 0.3275911 * Math.Abs(x));
        double y = 1 - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * Math.Exp(-x * x);
        return x >= 0 ? y : -y;
    }
}

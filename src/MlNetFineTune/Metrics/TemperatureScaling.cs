namespace MlNetFineTune.Metrics;

/// <summary>
/// Temperature scaling (Guo et al. 2017): one scalar <c>T &gt; 0</c> fitted on a validation set so that
/// <c>softmax(logits / T)</c> minimises the negative log-likelihood of the true labels. It leaves the argmax,
/// and so accuracy, unchanged. A binary model uses the same code on its two-column logits (a model with a
/// single logit <c>z</c> can pass the rows <c>[0, z]</c>).
/// </summary>
public static class TemperatureScaling
{
    /// <summary>Smallest temperature <see cref="Fit(ReadOnlySpan{float}, ReadOnlySpan{int}, double, double)"/> returns by default.</summary>
    public const double DefaultMinTemperature = 0.05;

    /// <summary>Largest temperature <see cref="Fit(ReadOnlySpan{float}, ReadOnlySpan{int}, double, double)"/> returns by default.</summary>
    public const double DefaultMaxTemperature = 20;

    // Golden-section search in u = ln T stops once the bracket is this narrow (relative change of T ~1e-9).
    private const double LogTolerance = 1e-9;

    /// <summary>
    /// Fits the temperature on row-major <c>N x C</c> logits, <c>C = logits.Length / labels.Length</c>.
    /// </summary>
    /// <remarks>
    /// The NLL is convex in <c>1/T</c>, hence unimodal in <c>ln T</c>; a golden-section search in <c>ln T</c>
    /// over <c>[minTemperature, maxTemperature]</c> finds its minimum deterministically. On separable data the
    /// NLL keeps falling as <c>T -&gt; 0</c>, and the bound stops it. If <c>T = 1</c> lies in the bounds and is at
    /// least as good as the search result (for instance when the NLL is flat), 1 is returned, so the fitted
    /// temperature never makes the validation NLL worse than the raw logits. Rows whose label is outside
    /// <c>[0, C)</c> are skipped; with none left, 1 is returned (clamped to the bounds).
    /// </remarks>
    /// <param name="logits">Row-major logits, <c>labels.Length * C</c> values, C at least 2.</param>
    /// <param name="labels">True class ids.</param>
    /// <param name="minTemperature">Lower bound of the search, positive.</param>
    /// <param name="maxTemperature">Upper bound of the search, at least <paramref name="minTemperature"/>.</param>
    public static double Fit(ReadOnlySpan<float> logits, ReadOnlySpan<int> labels,
        double minTemperature = DefaultMinTemperature, double maxTemperature = DefaultMaxTemperature)
    {
        if (labels.Length == 0)
            throw new ArgumentException("Temperature scaling needs at least one labelled row.", nameof(labels));
        if (logits.Length % labels.Length != 0)
            throw new ArgumentException(
                $"{logits.Length} logits do not split into {labels.Length} rows.", nameof(logits));
        int c = logits.Length / labels.Length;
        if (c < 2) throw new ArgumentException($"Logits have {c} column(s); at least 2 are needed.", nameof(logits));
        if (!(minTemperature > 0) || !(maxTemperature >= minTemperature) || double.IsInfinity(maxTemperature))
            throw new ArgumentOutOfRangeException(nameof(minTemperature),
                $"Need 0 < minTemperature <= maxTemperature < infinity, got [{minTemperature}, {maxTemperature}].");
        CheckFinite(logits);

        bool any = false;
        foreach (int y in labels) any |= (uint)y < (uint)c;
        double fallback = Math.Clamp(1.0, minTemperature, maxTemperature);
        if (!any || minTemperature == maxTemperature) return fallback;

        double lo = Math.Log(minTemperature), hi = Math.Log(maxTemperature);
        double invPhi = (Math.Sqrt(5) - 1) / 2;
        double a = lo, b = hi;
        double x1 = b - invPhi * (b - a), x2 = a + invPhi * (b - a);
        double f1 = Nll(logits, labels, c, Math.Exp(x1)), f2 = Nll(logits, labels, c, Math.Exp(x2));
        while (b - a > LogTolerance)
        {
            if (f1 <= f2)
            {
                b = x2; x2 = x1; f2 = f1;
                x1 = b - invPhi * (b - a);
                f1 = Nll(logits, labels, c, Math.Exp(x1));
            }
            else
            {
                a = x1; x1 = x2; f1 = f2;
                x2 = a + invPhi * (b - a);
                f2 = Nll(logits, labels, c, Math.Exp(x2));
            }
        }
        double best = Math.Clamp(Math.Exp((a + b) / 2), minTemperature, maxTemperature);
        double bestNll = Nll(logits, labels, c, best);
        // When the minimum lies at a bound (separable data) the search only creeps up to it; return the bound
        // itself. An interior minimum is strictly better than both bounds, so this cannot move it.
        foreach (double edge in (ReadOnlySpan<double>)[minTemperature, maxTemperature])
        {
            double f = Nll(logits, labels, c, edge);
            if (f <= bestNll) { best = edge; bestNll = f; }
        }
        if (fallback == 1.0 && Nll(logits, labels, c, 1.0) <= bestNll) return 1.0;
        return best;
    }

    /// <summary>Fits the temperature on one logit row per label.</summary>
    /// <param name="logits">One row of <c>C</c> logits per label, all rows the same length.</param>
    /// <param name="labels">True class ids.</param>
    /// <param name="minTemperature">Lower bound of the search, positive.</param>
    /// <param name="maxTemperature">Upper bound of the search.</param>
    public static double Fit(IReadOnlyList<float[]> logits, ReadOnlySpan<int> labels,
        double minTemperature = DefaultMinTemperature, double maxTemperature = DefaultMaxTemperature)
    {
        if (logits.Count != labels.Length)
            throw new ArgumentException($"{logits.Count} logit rows but {labels.Length} labels.", nameof(logits));
        return Fit(Flatten(logits), labels, minTemperature, maxTemperature);
    }

    /// <summary>Probabilities <c>softmax(logits / T)</c> of row-major <c>N x numClasses</c> logits.</summary>
    /// <param name="logits">Row-major logits.</param>
    /// <param name="numClasses">Number of columns.</param>
    /// <param name="temperature">The temperature, positive.</param>
    public static float[] Apply(ReadOnlySpan<float> logits, int numClasses, double temperature)
    {
        if (numClasses < 1) throw new ArgumentOutOfRangeException(nameof(numClasses), numClasses, "At least one class is needed.");
        if (logits.Length % numClasses != 0)
            throw new ArgumentException($"{logits.Length} logits do not split into rows of {numClasses}.", nameof(logits));
        CheckTemperature(temperature);
        var result = new float[logits.Length];
        var scaled = new double[numClasses];
        for (int offset = 0; offset < logits.Length; offset += numClasses)
        {
            var row = logits.Slice(offset, numClasses);
            double max = double.NegativeInfinity;
            for (int j = 0; j < numClasses; j++) max = Math.Max(max, row[j] / temperature);
            double sum = 0;
            for (int j = 0; j < numClasses; j++) sum += scaled[j] = Math.Exp(row[j] / temperature - max);
            for (int j = 0; j < numClasses; j++) result[offset + j] = (float)(scaled[j] / sum);
        }
        return result;
    }

    /// <summary>Probabilities <c>softmax(logits / T)</c>, one row per logit row.</summary>
    /// <param name="logits">Logit rows.</param>
    /// <param name="temperature">The temperature, positive.</param>
    public static float[][] Apply(IReadOnlyList<float[]> logits, double temperature)
    {
        ArgumentNullException.ThrowIfNull(logits);
        CheckTemperature(temperature);
        var result = new float[logits.Count][];
        for (int i = 0; i < result.Length; i++)
        {
            var row = logits[i] ?? throw new ArgumentException($"Logit row {i} is null.", nameof(logits));
            result[i] = row.Length == 0 ? [] : Apply(row, row.Length, temperature);
        }
        return result;
    }

    /// <summary>
    /// Mean negative log-likelihood of the true labels under <c>softmax(logits / T)</c>, in double precision and
    /// without clipping; rows whose label is outside <c>[0, C)</c> are skipped (0 when none is left).
    /// </summary>
    /// <param name="logits">Row-major <c>N x numClasses</c> logits.</param>
    /// <param name="labels">True class ids.</param>
    /// <param name="numClasses">Number of columns.</param>
    /// <param name="temperature">The temperature, positive.</param>
    public static double NegativeLogLikelihood(ReadOnlySpan<float> logits, ReadOnlySpan<int> labels, int numClasses,
        double temperature = 1)
    {
        if (numClasses < 1) throw new ArgumentOutOfRangeException(nameof(numClasses), numClasses, "At least one class is needed.");
        if ((long)labels.Length * numClasses != logits.Length)
            throw new ArgumentException(
                $"Expected {labels.Length} rows x {numClasses} classes = {(long)labels.Length * numClasses} logits, got {logits.Length}.",
                nameof(logits));
        CheckTemperature(temperature);
        return Nll(logits, labels, numClasses, temperature);
    }

    private static double Nll(ReadOnlySpan<float> logits, ReadOnlySpan<int> labels, int c, double temperature)
    {
        double inv = 1 / temperature;
        double total = 0;
        int count = 0;
        for (int i = 0; i < labels.Length; i++)
        {
            int y = labels[i];
            if ((uint)y >= (uint)c) continue;
            var row = logits.Slice(i * c, c);
            double max = double.NegativeInfinity;
            for (int j = 0; j < c; j++) max = Math.Max(max, row[j] * inv);
            double sum = 0;
            for (int j = 0; j < c; j++) sum += Math.Exp(row[j] * inv - max);
            total += max + Math.Log(sum) - row[y] * inv;
            count++;
        }
        return count == 0 ? 0 : total / count;
    }

    private static float[] Flatten(IReadOnlyList<float[]> rows)
    {
        ArgumentNullException.ThrowIfNull(rows);
        if (rows.Count == 0) return [];
        int c = rows[0]?.Length ?? 0;
        var flat = new float[(long)rows.Count * c];
        for (int i = 0; i < rows.Count; i++)
        {
            var row = rows[i] ?? throw new ArgumentException($"Logit row {i} is null.", nameof(rows));
            if (row.Length != c)
                throw new ArgumentException($"Logit row {i} has {row.Length} values but row 0 has {c}.", nameof(rows));
            row.CopyTo(flat, (long)i * c);
        }
        return flat;
    }

    private static void CheckFinite(ReadOnlySpan<float> logits)
    {
        for (int i = 0; i < logits.Length; i++)
            if (!float.IsFinite(logits[i]))
                throw new ArgumentException($"Logit {i} is {logits[i]}; logits must be finite.", nameof(logits));
    }

    private static void CheckTemperature(double temperature)
    {
        if (!(temperature > 0) || double.IsInfinity(temperature))
            throw new ArgumentOutOfRangeException(nameof(temperature), temperature, "The temperature must be positive and finite.");
    }
}

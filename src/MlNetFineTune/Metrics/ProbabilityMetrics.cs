namespace MlNetFineTune.Metrics;

/// <summary>
/// One bin of a reliability diagram: the predictions whose confidence (largest class probability) falls in
/// <c>(Lower, Upper]</c> (the first bin also holds confidence 0).
/// </summary>
/// <param name="Lower">Lower edge of the bin, exclusive.</param>
/// <param name="Upper">Upper edge of the bin, inclusive.</param>
/// <param name="Count">Number of predictions in the bin.</param>
/// <param name="Accuracy">Fraction of those predictions whose argmax class is the true class (0 when empty).</param>
/// <param name="Confidence">Mean confidence of those predictions (0 when empty).</param>
public readonly record struct CalibrationBin(double Lower, double Upper, int Count, double Accuracy, double Confidence);

/// <summary>
/// Metrics on predicted probabilities, as pure functions on flat row-major arrays (<c>N x C</c>).
/// Rows whose label is outside <c>[0, C)</c> are skipped by every function here.
/// </summary>
public static class ProbabilityMetrics
{
    /// <summary>Probabilities are clipped to <c>[ProbabilityClip, 1 - ProbabilityClip]</c> before the log, as
    /// scikit-learn's <c>log_loss</c> does with <c>eps=1e-15</c> (its default before 1.2).</summary>
    public const double ProbabilityClip = 1e-15;

    /// <summary>Number of equal-width confidence bins of the expected calibration error (Guo et al. 2017).</summary>
    public const int DefaultCalibrationBins = 15;

    /// <summary>
    /// Mean negative log probability of the true class, each probability clipped to
    /// <c>[1e-15, 1 - 1e-15]</c> first. Rows are not renormalised after clipping (scikit-learn 1.2 renormalises;
    /// for a row that sums to 1 the two differ by about 1e-15 per clipped entry). Returns 0 when no row has a
    /// known label.
    /// </summary>
    /// <param name="probabilities">Row-major <c>N x numClasses</c> probabilities.</param>
    /// <param name="labels">True class ids, one per row.</param>
    /// <param name="numClasses">Number of columns.</param>
    public static double LogLoss(ReadOnlySpan<float> probabilities, ReadOnlySpan<int> labels, int numClasses)
    {
        CheckShape(probabilities, labels, numClasses);
        double sum = 0;
        int count = 0;
        for (int i = 0; i < labels.Length; i++)
        {
            int y = labels[i];
            if ((uint)y >= (uint)numClasses) continue;
            double p = Math.Clamp((double)probabilities[i * numClasses + y], ProbabilityClip, 1 - ProbabilityClip);
            sum -= Math.Log(p);
            count++;
        }
        return count == 0 ? 0 : sum / count;
    }

    /// <summary>
    /// Area under the ROC curve for a binary problem, identical to scikit-learn's <c>roc_auc_score</c>:
    /// tied scores are ranked by their average rank (Mann-Whitney U), which is the same number as the
    /// trapezoidal area under the ROC curve with ties taken as one diagonal step.
    /// </summary>
    /// <param name="isPositive">Whether each row belongs to the positive class.</param>
    /// <param name="scores">Score of the positive class for each row (higher means more positive).</param>
    /// <returns>The AUC, or <c>null</c> when the rows hold only one class (or none), where it is undefined.</returns>
    public static double? RocAuc(ReadOnlySpan<bool> isPositive, ReadOnlySpan<float> scores)
    {
        if (isPositive.Length != scores.Length)
            throw new ArgumentException($"isPositive has {isPositive.Length} rows but scores has {scores.Length}.", nameof(scores));
        int n = scores.Length;
        long positives = 0;
        for (int i = 0; i < n; i++)
        {
            if (!float.IsFinite(scores[i]))
                throw new ArgumentException($"Score of row {i} is {scores[i]}; scores must be finite.", nameof(scores));
            if (isPositive[i]) positives++;
        }
        long negatives = n - positives;
        if (positives == 0 || negatives == 0) return null;

        var order = new int[n];
        for (int i = 0; i < n; i++) order[i] = i;
        var keys = scores.ToArray();
        Array.Sort(keys, order);

        // Ranks are 1-based; a run of ties shares the mean of its ranks. Twice the rank is an integer,
        // so the sum stays exact in a long.
        long twiceRankSumPositive = 0;
        for (int start = 0; start < n;)
        {
            int end = start;
            while (end + 1 < n && keys[end + 1] == keys[start]) end++;
            long twiceMeanRank = (start + 1) + (end + 1);
            for (int k = start; k <= end; k++)
                if (isPositive[order[k]]) twiceRankSumPositive += twiceMeanRank;
            start = end + 1;
        }
        double u = twiceRankSumPositive / 2.0 - positives * (positives + 1) / 2.0;
        return u / ((double)positives * negatives);
    }

    /// <summary>
    /// Expected calibration error as defined by Guo et al. 2017 ("On Calibration of Modern Neural Networks"):
    /// each row's confidence is its largest probability and its prediction that column (the first one on ties);
    /// rows are put in <paramref name="bins"/> equal-width bins <c>((m-1)/M, m/M]</c> of confidence, and
    /// <c>ECE = sum over bins of |B_m|/n * |accuracy(B_m) - mean confidence(B_m)|</c>.
    /// Returns 0 when no row has a known label.
    /// </summary>
    /// <param name="probabilities">Row-major <c>N x numClasses</c> probabilities.</param>
    /// <param name="labels">True class ids, one per row.</param>
    /// <param name="numClasses">Number of columns.</param>
    /// <param name="bins">Number of bins (15 by default, as in the paper).</param>
    public static double ExpectedCalibrationError(ReadOnlySpan<float> probabilities, ReadOnlySpan<int> labels,
        int numClasses, int bins = DefaultCalibrationBins)
    {
        var diagram = ReliabilityDiagram(probabilities, labels, numClasses, bins);
        long total = 0;
        foreach (var b in diagram) total += b.Count;
        if (total == 0) return 0;
        double ece = 0;
        foreach (var b in diagram)
            if (b.Count > 0) ece += (double)b.Count / total * Math.Abs(b.Accuracy - b.Confidence);
        return ece;
    }

    /// <summary>
    /// The bins behind <see cref="ExpectedCalibrationError"/>: <paramref name="bins"/> equal-width bins of
    /// confidence, edges <c>m / bins</c> computed in double precision, upper edge inclusive.
    /// </summary>
    /// <param name="probabilities">Row-major <c>N x numClasses</c> probabilities.</param>
    /// <param name="labels">True class ids, one per row.</param>
    /// <param name="numClasses">Number of columns.</param>
    /// <param name="bins">Number of bins.</param>
    public static CalibrationBin[] ReliabilityDiagram(ReadOnlySpan<float> probabilities, ReadOnlySpan<int> labels,
        int numClasses, int bins = DefaultCalibrationBins)
    {
        CheckShape(probabilities, labels, numClasses);
        if (bins < 1) throw new ArgumentOutOfRangeException(nameof(bins), bins, "At least one bin is needed.");
        var counts = new int[bins];
        var correct = new int[bins];
        var confidenceSums = new double[bins];
        for (int i = 0; i < labels.Length; i++)
        {
            int y = labels[i];
            if ((uint)y >= (uint)numClasses) continue;
            var row = probabilities.Slice(i * numClasses, numClasses);
            int predicted = ArgMax(row);
            double confidence = row[predicted];
            int bin = BinOf(confidence, bins);
            counts[bin]++;
            confidenceSums[bin] += confidence;
            if (predicted == y) correct[bin]++;
        }
        var result = new CalibrationBin[bins];
        for (int m = 0; m < bins; m++)
        {
            int c = counts[m];
            result[m] = new CalibrationBin((double)m / bins, (double)(m + 1) / bins, c,
                c == 0 ? 0 : (double)correct[m] / c, c == 0 ? 0 : confidenceSums[m] / c);
        }
        return result;
    }

    /// <summary>Index of the largest value; the first one wins ties (as numpy's <c>argmax</c>).</summary>
    internal static int ArgMax(ReadOnlySpan<float> row)
    {
        int best = 0;
        for (int j = 1; j < row.Length; j++)
            if (row[j] > row[best]) best = j;
        return best;
    }

    /// <summary>Bin m (0-based) holds <c>(m/bins, (m+1)/bins]</c>; values at or below 0 go to bin 0 and above 1 to the last.</summary>
    internal static int BinOf(double confidence, int bins)
    {
        int bin = (int)Math.Ceiling(confidence * bins) - 1;
        bin = Math.Clamp(bin, 0, bins - 1);
        // The product can round across an edge; settle against the edges themselves.
        while (bin > 0 && confidence <= (double)bin / bins) bin--;
        while (bin < bins - 1 && confidence > (double)(bin + 1) / bins) bin++;
        return bin;
    }

    internal static void CheckShape(ReadOnlySpan<float> probabilities, ReadOnlySpan<int> labels, int numClasses)
    {
        if (numClasses < 1) throw new ArgumentOutOfRangeException(nameof(numClasses), numClasses, "At least one class is needed.");
        if ((long)labels.Length * numClasses != probabilities.Length)
            throw new ArgumentException(
                $"Expected {labels.Length} rows x {numClasses} classes = {(long)labels.Length * numClasses} probabilities, got {probabilities.Length}.",
                nameof(probabilities));
    }
}

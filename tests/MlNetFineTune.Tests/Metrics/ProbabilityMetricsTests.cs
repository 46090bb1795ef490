using MlNetFineTune.Metrics;
using Xunit;

namespace MlNetFineTune.Tests;

// AUC expectations from scikit-learn 1.2.1 roc_auc_score; ECE from the float64 reference _ECELoss of
// Guo et al.'s temperature_scaling code (bins (m-1)/15 < conf <= m/15).
public class ProbabilityMetricsTests
{
    private const double Tol = 1e-12;

    [Fact]
    public void RocAuc_with_ties_within_and_across_classes_matches_sklearn()
    {
        bool[] y = [false, false, true, true, false, true, true, false, true];
        float[] s = [0.1f, 0.4f, 0.35f, 0.8f, 0.4f, 0.4f, 0.1f, 0.9f, 0.8f];
        Assert.Equal(0.475, ProbabilityMetrics.RocAuc(y, s)!.Value, Tol);

        bool[] y2 = [true, false, true, false, true, true];
        float[] s2 = [0.3f, 0.3f, 0.3f, 0.7f, 0.7f, 0.9f];
        Assert.Equal(0.5625, ProbabilityMetrics.RocAuc(y2, s2)!.Value, Tol);
    }

    [Fact]
    public void RocAuc_is_order_independent_and_null_without_both_classes()
    {
        bool[] y = [true, false, true, false];
        Assert.Equal(0.75, ProbabilityMetrics.RocAuc(y, [0.9f, 0.1f, 0.2f, 0.5f]));
        Assert.Equal(0.75, ProbabilityMetrics.RocAuc([false, true, false, true], [0.5f, 0.2f, 0.1f, 0.9f]));
        Assert.Null(ProbabilityMetrics.RocAuc([true, true], [0.1f, 0.2f]));
        Assert.Null(ProbabilityMetrics.RocAuc([], []));
        Assert.Throws<ArgumentException>(() => ProbabilityMetrics.RocAuc([true, false], [0.1f, float.NaN]));
    }

    [Fact]
    public void LogLoss_clips_exact_zero_and_one()
    {
        // Columns: true-class probability 0 -> -log(1e-15); 1 -> -log(1 - 1e-15).
        Assert.Equal(34.538776394910684, ProbabilityMetrics.LogLoss([1f, 0f], [1], 2), Tol);
        Assert.Equal(9.992007221626415e-16, ProbabilityMetrics.LogLoss([0f, 1f], [1], 2), 1e-20);
        Assert.Equal((34.538776394910684 + 0.6931471805599453) / 2,
            ProbabilityMetrics.LogLoss([1f, 0f, 0.5f, 0.5f], [1, 0], 2), Tol);
        // Unknown labels are skipped.
        Assert.Equal(0.6931471805599453, ProbabilityMetrics.LogLoss([1f, 0f, 0.5f, 0.5f], [9, 0], 2), Tol);
    }

    [Fact]
    public void Ece_matches_reference_over_several_bins()
    {
        float[] p =
        [
            0.9f, 0.05f, 0.05f, 0.9f, 0.05f, 0.05f, 0.55f, 0.25f, 0.2f, 0.15f, 0.7f, 0.15f,
            0.025f, 0.025f, 0.95f, 0.4f, 0.35f, 0.25f, 0.3f, 0.3f, 0.4f,
        ];
        int[] y = [0, 1, 0, 1, 2, 1, 0];
        Assert.Equal(0.34285713945116314, ProbabilityMetrics.ExpectedCalibrationError(p, y, 3), Tol);

        var bins = ProbabilityMetrics.ReliabilityDiagram(p, y, 3);
        Assert.Equal(15, bins.Length);
        Assert.Equal(7, bins.Sum(b => b.Count));
        Assert.Equal(2, bins[13].Count); // the two 0.9s: one right, one wrong
        Assert.Equal(0.5, bins[13].Accuracy);
        Assert.Equal(2, bins[6].Count);  // 0.4f is a hair above 6/15, both wrong
        Assert.Equal(0.0, bins[6].Accuracy);
        Assert.Equal(1.0, bins[14].Upper);
    }

    [Fact]
    public void Bins_are_closed_on_the_right()
    {
        Assert.Equal(0, ProbabilityMetrics.BinOf(0.0, 15));
        Assert.Equal(0, ProbabilityMetrics.BinOf(1.0 / 15, 15));
        Assert.Equal(8, ProbabilityMetrics.BinOf(9.0 / 15, 15));
        Assert.Equal(9, ProbabilityMetrics.BinOf(9.0 / 15 + 1e-12, 15));
        Assert.Equal(14, ProbabilityMetrics.BinOf(14.0 / 15 + 1e-12, 15));
        Assert.Equal(14, ProbabilityMetrics.BinOf(1.0, 15));
        for (int m = 1; m <= 15; m++)
        {
            Assert.Equal(m - 1, ProbabilityMetrics.BinOf((double)m / 15, 15));
            Assert.Equal(m - 1, ProbabilityMetrics.BinOf((m - 0.5) / 15, 15));
        }
    }
}

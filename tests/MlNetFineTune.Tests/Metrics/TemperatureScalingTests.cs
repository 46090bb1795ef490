using MlNetFineTune.Metrics;
using Xunit;

namespace MlNetFineTune.Tests;

// Reference optima from scipy 1.10 minimize_scalar(method='bounded', xatol=1e-12) on ln T in [ln 0.05, ln 20],
// NLL by scipy.special.logsumexp in float64.
public class TemperatureScalingTests
{
    private static readonly float[] Logits =
    [
        2.0f, 0.5f, -1.0f, 0.25f, 1.5f, -0.5f, 3.0f, -1.0f, 0.0f, -0.5f, 0.75f, 2.5f,
        1.0f, 1.0f, 0.0f, 0.0f, 2.0f, 1.0f, 1.5f, -2.0f, 0.5f, -1.0f, 0.0f, 3.5f,
    ];

    private static readonly int[] Labels = [0, 1, 1, 2, 0, 2, 0, 2];

    [Fact]
    public void Fit_matches_scipy_on_a_small_multiclass_set()
    {
        double t = TemperatureScaling.Fit(Logits, Labels);
        Assert.Equal(1.7248694884110884, t, 1e-6);
        Assert.Equal(0.8631361170525798, TemperatureScaling.NegativeLogLikelihood(Logits, Labels, 3, t), 1e-12);
        Assert.Equal(0.9382608696217972, TemperatureScaling.NegativeLogLikelihood(Logits, Labels, 3), 1e-12);
        Assert.Equal(0.8667270850610528, TemperatureScaling.NegativeLogLikelihood(Logits, Labels, 3, 2.0), 1e-12);
    }

    [Fact]
    public void Fit_on_jagged_rows_equals_flat()
    {
        var rows = Logits.Chunk(3).ToArray();
        Assert.Equal(TemperatureScaling.Fit(Logits, Labels), TemperatureScaling.Fit(rows, Labels));
    }

    [Fact]
    public void Binary_two_column_logits_match_scipy()
    {
        float[] logits = [0, 3f, 0, -2f, 0, 1f, 0, -0.5f, 0, 2.5f, 0, 0.25f];
        int[] labels = [1, 0, 0, 0, 1, 1];
        double t = TemperatureScaling.Fit(logits, labels);
        Assert.Equal(0.9110104374396737, t, 1e-6);
        Assert.Equal(0.43519419831063183, TemperatureScaling.NegativeLogLikelihood(logits, labels, 2, t), 1e-12);
    }

    [Fact]
    public void Overconfident_logits_get_a_temperature_above_one_and_better_calibration()
    {
        const int n = 3000, c = 5;
        var (logits, labels) = Synthetic(n, c, scale: 3.0, seed: 42);

        double t = TemperatureScaling.Fit(logits, labels);
        Assert.InRange(t, 2.4, 3.6); // the logits were sharpened three-fold

        double nllBefore = TemperatureScaling.NegativeLogLikelihood(logits, labels, c);
        double nllAfter = TemperatureScaling.NegativeLogLikelihood(logits, labels, c, t);
        Assert.True(nllAfter <= nllBefore, $"NLL {nllBefore} -> {nllAfter}");

        var before = TemperatureScaling.Apply(logits, c, 1.0);
        var after = TemperatureScaling.Apply(logits, c, t);
        double eceBefore = ProbabilityMetrics.ExpectedCalibrationError(before, labels, c);
        double eceAfter = ProbabilityMetrics.ExpectedCalibrationError(after, labels, c);
        Assert.True(eceAfter <= eceBefore, $"ECE {eceBefore} -> {eceAfter}");
        Assert.True(eceAfter < 0.05, $"ECE after scaling {eceAfter}");

        // Scaling never changes the argmax, so accuracy is untouched.
        for (int i = 0; i < n; i++)
            Assert.Equal(ProbabilityMetrics.ArgMax(before.AsSpan(i * c, c)), ProbabilityMetrics.ArgMax(after.AsSpan(i * c, c)));
    }

    [Fact]
    public void Underconfident_logits_get_a_temperature_below_one()
    {
        var (logits, labels) = Synthetic(3000, 4, scale: 0.4, seed: 7);
        double t = TemperatureScaling.Fit(logits, labels);
        Assert.InRange(t, 0.3, 0.5);
    }

    [Fact]
    public void Separable_data_stops_at_the_lower_bound()
    {
        float[] logits = [3, 0, 0, 2, 1, 4, 0.5f, 0];
        int[] labels = [0, 1, 1, 0];
        Assert.Equal(TemperatureScaling.DefaultMinTemperature, TemperatureScaling.Fit(logits, labels));
        Assert.Equal(0.5, TemperatureScaling.Fit(logits, labels, minTemperature: 0.5, maxTemperature: 4));
    }

    [Fact]
    public void Always_wrong_data_stops_at_the_upper_bound()
    {
        float[] logits = [3, 0, 0, 2, 1, 4, 0.5f, 0];
        int[] labels = [1, 0, 0, 1];
        Assert.Equal(TemperatureScaling.DefaultMaxTemperature, TemperatureScaling.Fit(logits, labels));
    }

    [Fact]
    public void Flat_likelihood_and_no_known_labels_give_one()
    {
        Assert.Equal(1.0, TemperatureScaling.Fit(new float[12], [0, 1, 2, 1]));
        Assert.Equal(1.0, TemperatureScaling.Fit([1f, 2f, 3f, 4f], [-1, 2]));
    }

    [Fact]
    public void Apply_is_a_stable_softmax_of_logits_over_t()
    {
        var p = TemperatureScaling.Apply([1f, 2f, 3f], 3, 2.0);
        float[] expected = [0.18632372f, 0.30719587f, 0.5064804f]; // numpy, float64 softmax cast to float32
        for (int j = 0; j < 3; j++) Assert.Equal(expected[j], p[j], 1e-7f);

        var big = TemperatureScaling.Apply([1000f, 0f, -1000f, 1000f], 2, 1.0);
        Assert.Equal([1f, 0f, 0f, 1f], big);

        var rows = TemperatureScaling.Apply([[1f, 2f, 3f], [0f, 0f, 0f]], 2.0);
        Assert.Equal(p, rows[0]);
        Assert.Equal(1f / 3, rows[1][0], 1e-7f);
    }

    [Fact]
    public void Invalid_arguments_throw()
    {
        Assert.Throws<ArgumentException>(() => TemperatureScaling.Fit([1f, 2f, 3f], [0, 1]));
        Assert.Throws<ArgumentException>(() => TemperatureScaling.Fit([1f, 2f], [0, 1]));
        Assert.Throws<ArgumentException>(() => TemperatureScaling.Fit([1f, float.NaN], [0]));
        Assert.Throws<ArgumentException>(() => TemperatureScaling.Fit(Array.Empty<float>(), Array.Empty<int>()));
        Assert.Throws<ArgumentOutOfRangeException>(() => TemperatureScaling.Fit([1f, 2f], [0], minTemperature: 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => TemperatureScaling.Apply([1f, 2f], 2, -1));
        Assert.Throws<ArgumentException>(() => TemperatureScaling.Apply([1f, 2f, 3f], 2, 1));
    }

    // Base logits ~ N(0, 1.5^2); each label is drawn from softmax(base), so the base logits are calibrated
    // and the returned ones (base * scale) want T = scale.
    private static (float[] Logits, int[] Labels) Synthetic(int n, int c, double scale, ulong seed)
    {
        var rng = new SplitMix64(seed);
        var logits = new float[n * c];
        var labels = new int[n];
        var baseRow = new double[c];
        for (int i = 0; i < n; i++)
        {
            double max = double.NegativeInfinity;
            for (int j = 0; j < c; j++) max = Math.Max(max, baseRow[j] = 1.5 * rng.NextGaussian());
            double sum = 0;
            for (int j = 0; j < c; j++) sum += Math.Exp(baseRow[j] - max);
            double u = rng.NextDouble() * sum;
            int y = c - 1;
            for (int j = 0; j < c; j++)
            {
                u -= Math.Exp(baseRow[j] - max);
                if (u < 0) { y = j; break; }
            }
            labels[i] = y;
            for (int j = 0; j < c; j++) logits[i * c + j] = (float)(scale * baseRow[j]);
        }
        return (logits, labels);
    }

    private sealed class SplitMix64(ulong state)
    {
        private ulong _state = state;

        public ulong Next()
        {
            ulong z = _state += 0x9E3779B97F4A7C15UL;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
            return z ^ (z >> 31);
        }

        public double NextDouble() => (Next() >> 11) * (1.0 / (1UL << 53));

        public double NextGaussian()
        {
            double u1 = 1.0 - NextDouble(); // (0, 1]
            double u2 = NextDouble();
            return Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2);
        }
    }
}

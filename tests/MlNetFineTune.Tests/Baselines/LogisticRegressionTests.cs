using MlNetFineTune.Baselines;
using MlNetFineTune.Data;
using Xunit;

namespace MlNetFineTune.Tests.Baselines;

// Reference optima from scikit-learn 1.2.1, LogisticRegression(C=..., tol=1e-12, max_iter=10000) (lbfgs), and
// scipy 1.10 BFGS on the same objective, on the dense matrix below.
public class LogisticRegressionTests
{
    private static readonly double[][] Dense =
    [
        [1, 0, 2], [0, 1, 0], [1, 1, 0], [0, 0, 1], [2, 0, 0], [0, 2, 1],
    ];

    internal static SparseMatrix Sparse(double[][] rows)
    {
        var pointers = new List<int> { 0 };
        var columns = new List<int>();
        var values = new List<double>();
        foreach (var row in rows)
        {
            for (int j = 0; j < row.Length; j++)
                if (row[j] != 0) { columns.Add(j); values.Add(row[j]); }
            pointers.Add(columns.Count);
        }
        return new SparseMatrix(rows.Length, rows[0].Length, [.. pointers], [.. columns], [.. values]);
    }

    [Fact]
    public void Binary_matches_scikit_learn()
    {
        var lr = LogisticRegression.Fit(Sparse(Dense), [1, 0, 1, 0, 1, 0], 2);
        Assert.True(lr.Converged);
        double[] w = [1.0885245072522003, -0.3460162037506831, 0.04263937449004435];
        for (int j = 0; j < 3; j++) Assert.Equal(w[j], lr.Weights[j], 1e-5);
        Assert.Equal(-0.4948741057638909, lr.Intercepts[0], 1e-5);
        double[] p1 = [0.6634996529929145, 0.30134730766206436, 0.5615941109196522, 0.3888295702261076, 0.8431923101447856, 0.2415377708692496];
        var probs = lr.PredictProbabilities(Sparse(Dense));
        for (int i = 0; i < p1.Length; i++)
        {
            Assert.Equal(p1[i], probs[2 * i + 1], 1e-5);
            Assert.Equal(1.0, probs[2 * i] + probs[2 * i + 1], 1e-6);
        }

        var smallC = LogisticRegression.Fit(Sparse(Dense), [1, 0, 1, 0, 1, 0], 2, new LogisticRegressionOptions { C = 0.5 });
        double[] w2 = [0.6829090064044512, -0.26214244760478517, 0.019603248841919312];
        for (int j = 0; j < 3; j++) Assert.Equal(w2[j], smallC.Weights[j], 1e-5);
        Assert.Equal(-0.28566636181673155, smallC.Intercepts[0], 1e-5);
    }

    [Fact]
    public void Multinomial_reaches_the_optimum()
    {
        // scikit-learn 1.2.1 stops this one early (its largest gradient component is 3e-6 there); the reference
        // is the optimum of the same objective, mean cross-entropy + ||W||^2 / (2 C n), from scipy's BFGS with
        // gtol 1e-14. The unpenalised intercepts are unique only up to a common shift: both solvers keep them
        // summing to 0.
        var tight = new LogisticRegressionOptions { C = 2.0, GradientTolerance = 1e-12, FunctionTolerance = 0 };
        var lr = LogisticRegression.Fit(Sparse(Dense), [0, 1, 2, 1, 0, 2], 3, tight);
        var loose = LogisticRegression.Fit(Sparse(Dense), [0, 1, 2, 1, 0, 2], 3, new LogisticRegressionOptions { C = 2.0 });
        Assert.True(lr.Converged);
        Assert.True(loose.Converged);
        double[][] w =
        [
            [1.0164448395034824, -0.6543813643568535, 0.5073322763534519],
            [-1.1629150793774166, -0.49701118618258144, -0.3829678607670065],
            [0.14647023987393412, 1.151392550539435, -0.12436441558644509],
        ];
        double[] b = [-0.7744731702317366, 1.4857058441702868, -0.7112326739385502];
        double[][] sklearn =
        [
            [1.0164545606713111, -0.654377044239027, 0.5073310528022614],
            [-1.162927115425182, -0.49700580631144026, -0.3829777926426855],
            [0.14647255475387053, 1.1513828505504673, -0.12435326015957607],
        ];
        for (int k = 0; k < 3; k++)
        {
            for (int j = 0; j < 3; j++)
            {
                Assert.Equal(w[k][j], lr.Weights[k * 3 + j], 1e-8);
                Assert.Equal(w[k][j], loose.Weights[k * 3 + j], 1e-4);
                Assert.Equal(sklearn[k][j], lr.Weights[k * 3 + j], 1e-4);
            }
            Assert.Equal(b[k], lr.Intercepts[k], 1e-8);
            Assert.Equal(b[k], loose.Intercepts[k], 1e-4);
        }
        var probs = lr.PredictProbabilities(Sparse(Dense));
        Assert.Equal(0.7640042752670083, probs[0], 1e-6);
        Assert.Equal(0.13960153784235305, probs[1], 1e-6);
        Assert.Equal(0.09639418689063858, probs[2], 1e-6);
    }

    [Fact]
    public void Fitting_is_deterministic_and_checks_its_input()
    {
        var x = Sparse(Dense);
        int[] y = [1, 0, 1, 0, 1, 0];
        var a = LogisticRegression.Fit(x, y, 2);
        var b = LogisticRegression.Fit(x, y, 2);
        Assert.Equal(a.Weights.ToArray(), b.Weights.ToArray());
        Assert.Equal(a.PredictProbabilities(x), b.PredictProbabilities(x));
        Assert.Throws<ArgumentException>(() => LogisticRegression.Fit(x, [1, 0, 1], 2));
        Assert.Throws<ArgumentException>(() => LogisticRegression.Fit(x, [1, 0, 1, 0, 1, 2], 2));
        Assert.Throws<ArgumentOutOfRangeException>(() => LogisticRegression.Fit(x, y, 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => LogisticRegression.Fit(x, y, 2, new LogisticRegressionOptions { C = 0 }));
        Assert.Throws<ArgumentException>(() => a.PredictProbabilities(Sparse([[1.0, 2.0]])));
    }

    [Fact]
    public void Without_intercept_the_intercepts_are_zero()
    {
        var lr = LogisticRegression.Fit(Sparse(Dense), [1, 0, 1, 0, 1, 0], 2, new LogisticRegressionOptions { FitIntercept = false });
        Assert.Equal(0.0, lr.Intercepts[0]);
        Assert.True(lr.Converged);
    }
}

public class TfidfLogisticRegressionTests
{
    // Three classes told apart by their vocabulary, with shared filler words.
    private static TextDataset Synthetic(int perClass, int offset)
    {
        string[][] words =
        [
            ["superb", "wonderful", "moving", "brilliant", "delight"],
            ["awful", "boring", "dreadful", "waste", "terrible"],
            ["documentary", "footage", "interviews", "archival", "narrator"],
        ];
        string[] labels = ["positive", "negative", "factual"];
        string[] filler = ["the", "film", "was", "and", "this", "movie", "really"];
        var examples = new List<TextExample>();
        for (int i = 0; i < perClass; i++)
            for (int c = 0; c < 3; c++)
            {
                int n = i + offset;
                var text = $"{filler[n % 7]} {words[c][n % 5]} {filler[(n + 3) % 7]} {words[c][(n + 2) % 5]} {filler[(n + 5) % 7]}";
                examples.Add(new TextExample(text, null, labels[c]));
            }
        return new TextDataset(examples);
    }

    [Fact]
    public void Learns_a_separable_three_class_problem_and_reports_classification_metrics()
    {
        var baseline = new TfidfLogisticRegression(new TfidfLogisticRegressionOptions { LogisticRegression = new() { C = 10 } })
            .Fit(Synthetic(20, 0));
        var metrics = baseline.Evaluate(Synthetic(10, 100));
        Assert.Equal(1.0, metrics.Accuracy);
        Assert.Equal(30, metrics.Count);
        Assert.Equal(["factual", "negative", "positive"], metrics.ClassNames);
        Assert.Null(metrics.Auc); // three classes
        Assert.InRange(metrics.Ece, 0, 1);
        Assert.Equal(3, baseline.Classifier.ClassCount);
        Assert.True(baseline.Classifier.Converged);
        Assert.True(baseline.FitSeconds >= 0);

        var p = baseline.Predict("what a superb and brilliant film");
        Assert.Equal("positive", p.PredictedLabel);
        Assert.Equal(3, p.Scores.Count);
        Assert.Equal(1.0, p.Scores.Sum(), 1e-5);
    }

    [Fact]
    public void Binary_data_gets_an_auc_and_unknown_labels_are_counted_not_scored()
    {
        var train = new TextDataset(Synthetic(20, 0).Where(e => e.Label != "factual"));
        var baseline = new TfidfLogisticRegression().Fit(train);
        Assert.Equal(2, baseline.Labels.Count);
        var test = Synthetic(5, 50); // holds 5 "factual" rows the model never saw
        var metrics = baseline.Evaluate(test);
        Assert.Equal(5, metrics.UnknownLabelCount);
        Assert.Equal(10, metrics.Count);
        Assert.NotNull(metrics.Auc);
        Assert.Equal(1.0, metrics.Accuracy);
    }

    [Fact]
    public void Is_deterministic()
    {
        var train = Synthetic(15, 0);
        var test = Synthetic(5, 40);
        var a = new TfidfLogisticRegression().Fit(train).PredictProbabilities(test.Examples);
        var b = new TfidfLogisticRegression().Fit(train).PredictProbabilities(test.Examples);
        Assert.Equal(a, b);
    }

    [Fact]
    public void Refuses_untrainable_data_and_use_before_fit()
    {
        var one = new TextDataset([new TextExample("good film", null, "pos"), new TextExample("great film", null, "pos")]);
        Assert.Throws<DataValidationException>(() => new TfidfLogisticRegression().Fit(one));
        Assert.Throws<InvalidOperationException>(() => new TfidfLogisticRegression().Evaluate(one));
        Assert.Throws<InvalidOperationException>(() => new TfidfLogisticRegression().Predict("x"));
    }
}

using System.Text.Json;
using MlNetFineTune.Metrics;
using Xunit;

namespace MlNetFineTune.Tests;

// Expected values come from scikit-learn 1.2.1 (accuracy_score, precision_recall_fscore_support with
// zero_division=0, confusion_matrix, log_loss with eps=1e-15, roc_auc_score) and, for the ECE, from the
// reference _ECELoss of Guo et al.'s temperature_scaling code run in float64. Probabilities are dyadic where
// possible so that float32 holds them exactly.
public class ClassificationMetricsTests
{
    private const double Tol = 1e-12;

    private static readonly int[] BinaryLabels = [0, 1, 1, 0, 1, 0, 1, 0];

    // Ties: two rows at 0.5/0.5 (argmax takes class 0), and equal class-1 scores across classes.
    private static readonly float[][] BinaryProbs =
    [
        [0.75f, 0.25f], [0.25f, 0.75f], [0.5f, 0.5f], [0.5f, 0.5f],
        [0.125f, 0.875f], [0.875f, 0.125f], [0.75f, 0.25f], [0.25f, 0.75f],
    ];

    private static readonly string[] Animals = ["cat", "dog", "bird", "fish"];

    // bird occurs but is never predicted; fish neither occurs nor is predicted; -1 and 7 are unknown labels.
    private static readonly int[] MultiLabels = [0, 0, 0, 1, 1, 2, 2, 1, -1, 7];

    private static readonly float[][] MultiProbs =
    [
        [0.5f, 0.25f, 0.125f, 0.125f], [0.625f, 0.25f, 0.0625f, 0.0625f], [0.25f, 0.5f, 0.125f, 0.125f],
        [0.125f, 0.75f, 0.0625f, 0.0625f], [0.5f, 0.375f, 0.0625f, 0.0625f], [0.375f, 0.25f, 0.25f, 0.125f],
        [0.25f, 0.5f, 0.1875f, 0.0625f], [0f, 1f, 0f, 0f], [0.25f, 0.25f, 0.25f, 0.25f], [0.25f, 0.25f, 0.25f, 0.25f],
    ];

    [Fact]
    public void Binary_with_ties_matches_sklearn()
    {
        var m = ClassificationMetrics.Compute(BinaryLabels, BinaryProbs, ["neg", "pos"]);

        Assert.Equal(8, m.Count);
        Assert.Equal(0, m.UnknownLabelCount);
        Assert.Equal(0.625, m.Accuracy, Tol);
        Assert.Equal(0.6, m.PerClass[0].Precision, Tol);
        Assert.Equal(0.6666666666666666, m.PerClass[1].Precision, Tol);
        Assert.Equal(0.75, m.PerClass[0].Recall, Tol);
        Assert.Equal(0.5, m.PerClass[1].Recall, Tol);
        Assert.Equal(0.6666666666666665, m.PerClass[0].F1, Tol);
        Assert.Equal(0.5714285714285715, m.PerClass[1].F1, Tol);
        Assert.Equal(4, m.PerClass[0].Support);
        Assert.Equal(4, m.PerClass[1].Support);
        Assert.Equal(0.6333333333333333, m.MacroPrecision, Tol);
        Assert.Equal(0.625, m.MacroRecall, Tol);
        Assert.Equal(0.6190476190476191, m.MacroF1, Tol);
        Assert.Equal(0.625, m.MicroPrecision, Tol);
        Assert.Equal(0.625, m.MicroRecall, Tol);
        Assert.Equal(0.625, m.MicroF1, Tol);
        Assert.Equal(new int[,] { { 3, 1 }, { 2, 2 } }, m.ConfusionMatrix);
        Assert.Equal(0.6251637516890348, m.LogLoss, Tol);
        Assert.NotNull(m.Auc);
        Assert.Equal(0.71875, m.Auc.Value, Tol);
        Assert.Equal(0.15625, m.Ece, Tol);
    }

    [Fact]
    public void Multiclass_with_unpredicted_and_absent_classes_matches_sklearn()
    {
        var m = ClassificationMetrics.Compute(MultiLabels, MultiProbs, Animals);

        Assert.Equal(8, m.Count);
        Assert.Equal(2, m.UnknownLabelCount);
        Assert.Equal(0.5, m.Accuracy, Tol);

        double[] precision = [0.5, 0.5, 0.0, 0.0];
        double[] recall = [0.6666666666666666, 0.6666666666666666, 0.0, 0.0];
        double[] f1 = [0.5714285714285715, 0.5714285714285715, 0.0, 0.0];
        int[] support = [3, 3, 2, 0];
        int[] predicted = [4, 4, 0, 0];
        bool[] averaged = [true, true, true, false];
        for (int k = 0; k < 4; k++)
        {
            var c = m.PerClass[k];
            Assert.Equal(k, c.ClassId);
            Assert.Equal(Animals[k], c.ClassName);
            Assert.Equal(precision[k], c.Precision, Tol);
            Assert.Equal(recall[k], c.Recall, Tol);
            Assert.Equal(f1[k], c.F1, Tol);
            Assert.Equal(support[k], c.Support);
            Assert.Equal(predicted[k], c.PredictedCount);
            Assert.Equal(averaged[k], c.IncludedInAverage);
        }

        // Macro over cat, dog, bird (labels=None): fish is in neither y_true nor y_pred.
        Assert.Equal(0.3333333333333333, m.MacroPrecision, Tol);
        Assert.Equal(0.4444444444444444, m.MacroRecall, Tol);
        Assert.Equal(0.380952380952381, m.MacroF1, Tol);
        Assert.Equal(0.5, m.MicroF1, Tol);
        Assert.Equal(new int[,] { { 2, 1, 0, 0 }, { 1, 2, 0, 0 }, { 1, 1, 0, 0 }, { 0, 0, 0, 0 } }, m.ConfusionMatrix);
        Assert.Equal(0.8597784113850803, m.LogLoss, Tol);
        Assert.Null(m.Auc);
        Assert.Equal(0.25, m.Ece, Tol);
    }

    [Fact]
    public void Flat_jagged_and_name_labels_agree()
    {
        var jagged = ClassificationMetrics.Compute(MultiLabels, MultiProbs, Animals);
        var flat = ClassificationMetrics.Compute(MultiLabels, MultiProbs.SelectMany(r => r).ToArray(), Animals);
        string?[] names = ["cat", "cat", "cat", "dog", "dog", "bird", "bird", "dog", "lion", null];
        var byName = ClassificationMetrics.Compute(names, MultiProbs.SelectMany(r => r).ToArray(), Animals);

        foreach (var other in new[] { flat, byName })
        {
            Assert.Equal(jagged.Count, other.Count);
            Assert.Equal(jagged.UnknownLabelCount, other.UnknownLabelCount);
            Assert.Equal(jagged.MacroF1, other.MacroF1);
            Assert.Equal(jagged.LogLoss, other.LogLoss);
            Assert.Equal(jagged.Ece, other.Ece);
            Assert.Equal(jagged.ConfusionMatrix, other.ConfusionMatrix);
        }
    }

    [Fact]
    public void Perfect_one_hot_predictions_clip_the_log()
    {
        int[] labels = [0, 1, 2, 1, 0];
        float[][] probs = [[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 1, 0], [1, 0, 0]];
        var m = ClassificationMetrics.Compute(labels, probs, ["a", "b", "c"]);

        Assert.Equal(1.0, m.Accuracy);
        Assert.Equal(1.0, m.MacroPrecision);
        Assert.Equal(1.0, m.MacroRecall);
        Assert.Equal(1.0, m.MacroF1);
        Assert.Equal(1.0, m.MicroF1);
        // -log(1 - 1e-15): clipped, so not exactly 0 (sklearn, which renormalises after clipping: 2.1e-15).
        Assert.Equal(9.992007221626415e-16, m.LogLoss, 1e-20);
        Assert.Equal(2.1094237467877998e-15, m.LogLoss, 1e-14);
        Assert.Equal(0.0, m.Ece, Tol);
        Assert.Null(m.Auc);
    }

    [Fact]
    public void Perfect_binary_has_auc_one()
    {
        var m = ClassificationMetrics.Compute([0, 1, 1, 0], new float[] { 1, 0, 0, 1, 0, 1, 1, 0 }, ["n", "p"]);
        Assert.Equal(1.0, m.Auc);
        Assert.Equal(1.0, m.Accuracy);
    }

    [Fact]
    public void Worst_one_hot_predictions_match_sklearn()
    {
        int[] labels = [0, 1, 0, 1];
        float[][] probs = [[0, 1], [1, 0], [0, 1], [1, 0]];
        var m = ClassificationMetrics.Compute(labels, probs, ["n", "p"]);

        Assert.Equal(0.0, m.Accuracy);
        Assert.Equal(0.0, m.MacroPrecision);
        Assert.Equal(0.0, m.MacroRecall);
        Assert.Equal(0.0, m.MacroF1);
        Assert.Equal(new int[,] { { 0, 2 }, { 2, 0 } }, m.ConfusionMatrix);
        Assert.Equal(34.538776394910684, m.LogLoss, Tol); // -log(1e-15)
        Assert.Equal(0.0, m.Auc);
        Assert.Equal(1.0, m.Ece, Tol);
    }

    [Fact]
    public void All_tied_scores_give_auc_one_half()
    {
        int[] labels = [0, 1, 1, 0, 1];
        var probs = Enumerable.Repeat(new[] { 0.5f, 0.5f }, 5).ToArray();
        var m = ClassificationMetrics.Compute(labels, probs, ["n", "p"]);

        Assert.Equal(0.5, m.Auc);
        Assert.Equal(0.4, m.Accuracy, Tol);
        Assert.Equal(0.2, m.MacroPrecision, Tol);
        Assert.Equal(0.5, m.MacroRecall, Tol);
        Assert.Equal(0.28571428571428575, m.MacroF1, Tol);
        Assert.Equal(0.6931471805599453, m.LogLoss, Tol);
        Assert.Equal(0.1, m.Ece, Tol);
    }

    [Fact]
    public void Auc_is_null_when_one_class_is_present()
    {
        var m = ClassificationMetrics.Compute([1, 1, 1], new float[] { 0.2f, 0.8f, 0.6f, 0.4f, 0.5f, 0.5f }, ["n", "p"]);
        Assert.Null(m.Auc);
        Assert.False(m.ToDictionary().ContainsKey("auc"));
        Assert.Equal(1.0 / 3, m.Accuracy, Tol);
    }

    [Fact]
    public void All_labels_unknown_gives_zeros()
    {
        var m = ClassificationMetrics.Compute([-1, 5], new float[] { 0.5f, 0.5f, 0.5f, 0.5f }, ["n", "p"]);
        Assert.Equal(0, m.Count);
        Assert.Equal(2, m.UnknownLabelCount);
        Assert.Equal(0.0, m.Accuracy);
        Assert.Equal(0.0, m.MacroF1);
        Assert.Equal(0.0, m.LogLoss);
        Assert.Equal(0.0, m.Ece);
        Assert.Null(m.Auc);
    }

    [Fact]
    public void ToDictionary_has_the_documented_keys_and_serialises()
    {
        var binary = ClassificationMetrics.Compute(BinaryLabels, BinaryProbs, ["neg", "pos"]).ToDictionary();
        foreach (var key in new[] { "accuracy", "macroF1", "microF1", "macroPrecision", "macroRecall", "logLoss", "auc", "ece", "perClass", "confusionMatrix" })
            Assert.True(binary.ContainsKey(key), key);
        Assert.Equal(0.71875, (double)binary["auc"], Tol);

        var multi = ClassificationMetrics.Compute(MultiLabels, MultiProbs, Animals).ToDictionary();
        Assert.False(multi.ContainsKey("auc"));
        Assert.Equal(2, multi["unknownLabelCount"]);
        var perClass = (Dictionary<string, object>)multi["perClass"];
        Assert.Equal(Animals, perClass.Keys);
        var bird = (Dictionary<string, object>)perClass["bird"];
        Assert.Equal(0.0, bird["precision"]);
        Assert.Equal(2, bird["support"]);

        string json = JsonSerializer.Serialize(multi);
        Assert.Contains("\"confusionMatrix\":[[2,1,0,0],[1,2,0,0],[1,1,0,0],[0,0,0,0]]", json);
        Assert.Contains("\"accuracy\":0.5", json);
        Assert.Contains("\"dog\":{\"precision\":0.5,", json);
    }

    [Fact]
    public void Invalid_inputs_throw()
    {
        Assert.Throws<ArgumentException>(() => ClassificationMetrics.Compute([0, 1], new float[] { 1, 0, 0 }, ["a", "b"]));
        Assert.Throws<ArgumentException>(() => ClassificationMetrics.Compute([0], new[] { new[] { 1f, 0f, 0f } }, ["a", "b"]));
        Assert.Throws<ArgumentException>(() => ClassificationMetrics.Compute([0], new float[] { 1, 0 }, ["a", "a"]));
        Assert.Throws<ArgumentException>(() => ClassificationMetrics.Compute([0], new float[] { float.NaN, 0 }, ["a", "b"]));
        Assert.Throws<ArgumentException>(() => ClassificationMetrics.Compute([0], new float[] { 1, 0 }, Array.Empty<string>()));
    }
}

namespace MlNetFineTune.Metrics;

/// <summary>Precision, recall, F1 and support of one class, one-vs-rest.</summary>
public sealed class ClassMetrics
{
    internal ClassMetrics(int classId, string className, int support, int predictedCount, int truePositives)
    {
        ClassId = classId;
        ClassName = className;
        Support = support;
        PredictedCount = predictedCount;
        TruePositives = truePositives;
        // zero_division=0: a class never predicted has precision 0, a class never true has recall 0.
        Precision = predictedCount == 0 ? 0 : (double)truePositives / predictedCount;
        Recall = support == 0 ? 0 : (double)truePositives / support;
        int denominator = support + predictedCount; // 2tp + fp + fn
        F1 = denominator == 0 ? 0 : 2.0 * truePositives / denominator;
    }

    /// <summary>Column index of the class in the probability rows.</summary>
    public int ClassId { get; }

    /// <summary>Name of the class.</summary>
    public string ClassName { get; }

    /// <summary><c>tp / (tp + fp)</c>, 0 when the class is never predicted.</summary>
    public double Precision { get; }

    /// <summary><c>tp / (tp + fn)</c>, 0 when the class never occurs.</summary>
    public double Recall { get; }

    /// <summary><c>2tp / (2tp + fp + fn)</c> (the harmonic mean of precision and recall), 0 when both are 0.</summary>
    public double F1 { get; }

    /// <summary>Number of evaluated rows whose true label is this class.</summary>
    public int Support { get; }

    /// <summary>Number of evaluated rows predicted (argmax) as this class.</summary>
    public int PredictedCount { get; }

    /// <summary>Number of rows both true and predicted as this class.</summary>
    public int TruePositives { get; }

    /// <summary>
    /// Whether the class occurs among the true or the predicted labels, and so counts in the macro averages
    /// (scikit-learn's <c>labels=None</c>).
    /// </summary>
    public bool IncludedInAverage => Support > 0 || PredictedCount > 0;
}

/// <summary>
/// Metrics of a single-label classifier from true class ids and predicted probability rows, with
/// scikit-learn's semantics:
/// <list type="bullet">
/// <item>The prediction of a row is the argmax of its probabilities (the first column on ties).</item>
/// <item>Per-class precision/recall/F1 use <c>zero_division=0</c>.</item>
/// <item>Macro averages are unweighted means over the classes that occur among the true or the predicted
/// labels (scikit-learn's <c>labels=None</c>); a class of the model absent from both is listed in
/// <see cref="PerClass"/> with zeros but left out of the macro averages.</item>
/// <item>Micro precision, recall and F1 equal <see cref="Accuracy"/> for single-label multiclass data.</item>
/// <item><see cref="LogLoss"/> clips probabilities to <c>[1e-15, 1 - 1e-15]</c>; <see cref="Auc"/> is
/// <c>roc_auc_score</c> on the probability of class 1; <see cref="Ece"/> is the 15-bin expected calibration
/// error of Guo et al. 2017 (see <see cref="ProbabilityMetrics.ExpectedCalibrationError"/>).</item>
/// </list>
/// Rows whose label is unknown to the model (an id outside <c>[0, C)</c>, or a name not among the class
/// names) are left out of every metric and counted in <see cref="UnknownLabelCount"/>. With no row left,
/// every metric is 0 and <see cref="Auc"/> is null.
/// </summary>
public sealed class ClassificationMetrics
{
    private readonly int[,] _confusion;

    private ClassificationMetrics(IReadOnlyList<string> classNames, int count, int unknown, int[,] confusion,
        double logLoss, double? auc, double ece)
    {
        int c = classNames.Count;
        ClassNames = classNames;
        Count = count;
        UnknownLabelCount = unknown;
        _confusion = confusion;
        LogLoss = logLoss;
        Auc = auc;
        Ece = ece;

        var perClass = new ClassMetrics[c];
        int correct = 0;
        for (int k = 0; k < c; k++)
        {
            int support = 0, predicted = 0;
            for (int j = 0; j < c; j++)
            {
                support += confusion[k, j];
                predicted += confusion[j, k];
            }
            correct += confusion[k, k];
            perClass[k] = new ClassMetrics(k, classNames[k], support, predicted, confusion[k, k]);
        }
        PerClass = perClass;

        Accuracy = count == 0 ? 0 : (double)correct / count;
        MicroPrecision = MicroRecall = MicroF1 = Accuracy;

        int averaged = 0;
        double p = 0, r = 0, f = 0;
        foreach (var m in perClass)
        {
            if (!m.IncludedInAverage) continue;
            averaged++;
            p += m.Precision;
            r += m.Recall;
            f += m.F1;
        }
        MacroPrecision = averaged == 0 ? 0 : p / averaged;
        MacroRecall = averaged == 0 ? 0 : r / averaged;
        MacroF1 = averaged == 0 ? 0 : f / averaged;
    }

    /// <summary>Class names, index = class id = column of the probability rows.</summary>
    public IReadOnlyList<string> ClassNames { get; }

    /// <summary>Number of rows evaluated (known labels).</summary>
    public int Count { get; }

    /// <summary>Number of rows left out because their label is unknown to the model.</summary>
    public int UnknownLabelCount { get; }

    /// <summary>Fraction of evaluated rows whose argmax is the true class.</summary>
    public double Accuracy { get; }

    /// <summary>One entry per class of the model, index = class id.</summary>
    public IReadOnlyList<ClassMetrics> PerClass { get; }

    /// <summary>Mean precision over the classes that occur among true or predicted labels.</summary>
    public double MacroPrecision { get; }

    /// <summary>Mean recall over the classes that occur among true or predicted labels.</summary>
    public double MacroRecall { get; }

    /// <summary>Mean F1 over the classes that occur among true or predicted labels.</summary>
    public double MacroF1 { get; }

    /// <summary>Micro-averaged precision; equals <see cref="Accuracy"/> for single-label data.</summary>
    public double MicroPrecision { get; }

    /// <summary>Micro-averaged recall; equals <see cref="Accuracy"/> for single-label data.</summary>
    public double MicroRecall { get; }

    /// <summary>Micro-averaged F1; equals <see cref="Accuracy"/> for single-label data.</summary>
    public double MicroF1 { get; }

    /// <summary>A copy of the <c>C x C</c> confusion matrix: rows are true classes, columns predicted ones.</summary>
    public int[,] ConfusionMatrix => (int[,])_confusion.Clone();

    /// <summary>Mean negative log probability of the true class, probabilities clipped to <c>[1e-15, 1 - 1e-15]</c>.</summary>
    public double LogLoss { get; }

    /// <summary>
    /// ROC AUC of the probability of class 1 (the positive class) for a two-class model; null for more
    /// classes, or when the evaluated rows hold only one class.
    /// </summary>
    public double? Auc { get; }

    /// <summary>Expected calibration error, 15 equal-width bins on the largest probability (Guo et al. 2017).</summary>
    public double Ece { get; }

    /// <summary>Computes the metrics from class ids and one probability row per example.</summary>
    /// <param name="labels">True class ids; ids outside <c>[0, C)</c> are counted as unknown.</param>
    /// <param name="probabilities">One row of <c>C</c> probabilities per label.</param>
    /// <param name="classNames">The <c>C</c> class names, distinct.</param>
    public static ClassificationMetrics Compute(ReadOnlySpan<int> labels, IReadOnlyList<float[]> probabilities,
        IReadOnlyList<string> classNames)
    {
        ArgumentNullException.ThrowIfNull(probabilities);
        CheckClassNames(classNames);
        int c = classNames.Count;
        if (probabilities.Count != labels.Length)
            throw new ArgumentException($"{labels.Length} labels but {probabilities.Count} probability rows.", nameof(probabilities));
        var flat = new float[(long)labels.Length * c];
        for (int i = 0; i < probabilities.Count; i++)
        {
            var row = probabilities[i] ?? throw new ArgumentException($"Probability row {i} is null.", nameof(probabilities));
            if (row.Length != c)
                throw new ArgumentException($"Probability row {i} has {row.Length} values but there are {c} classes.", nameof(probabilities));
            row.CopyTo(flat, (long)i * c);
        }
        return ComputeCore(labels, flat, classNames);
    }

    /// <summary>Computes the metrics from class ids and row-major <c>N x C</c> probabilities.</summary>
    /// <param name="labels">True class ids; ids outside <c>[0, C)</c> are counted as unknown.</param>
    /// <param name="probabilities">Row-major probabilities, <c>labels.Length * classNames.Count</c> values.</param>
    /// <param name="classNames">The <c>C</c> class names, distinct.</param>
    public static ClassificationMetrics Compute(ReadOnlySpan<int> labels, ReadOnlySpan<float> probabilities,
        IReadOnlyList<string> classNames)
    {
        CheckClassNames(classNames);
        return ComputeCore(labels, probabilities, classNames);
    }

    /// <summary>Computes the metrics from class names as labels and row-major <c>N x C</c> probabilities.</summary>
    /// <param name="labels">True class names; a name not among <paramref name="classNames"/> (or null) is counted as unknown.</param>
    /// <param name="probabilities">Row-major probabilities, <c>labels.Count * classNames.Count</c> values.</param>
    /// <param name="classNames">The <c>C</c> class names, distinct; compared ordinally.</param>
    public static ClassificationMetrics Compute(IReadOnlyList<string?> labels, ReadOnlySpan<float> probabilities,
        IReadOnlyList<string> classNames)
    {
        ArgumentNullException.ThrowIfNull(labels);
        CheckClassNames(classNames);
        var ids = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int k = 0; k < classNames.Count; k++) ids[classNames[k]] = k;
        var labelIds = new int[labels.Count];
        for (int i = 0; i < labelIds.Length; i++)
            labelIds[i] = labels[i] is { } name && ids.TryGetValue(name, out int id) ? id : -1;
        return ComputeCore(labelIds, probabilities, classNames);
    }

    private static ClassificationMetrics ComputeCore(ReadOnlySpan<int> labels, ReadOnlySpan<float> probabilities,
        IReadOnlyList<string> classNames)
    {
        int c = classNames.Count;
        ProbabilityMetrics.CheckShape(probabilities, labels, c);
        for (int i = 0; i < probabilities.Length; i++)
            if (!float.IsFinite(probabilities[i]))
                throw new ArgumentException(
                    $"Probability of row {i / c}, class {i % c} is {probabilities[i]}; probabilities must be finite.",
                    nameof(probabilities));

        var confusion = new int[c, c];
        int count = 0, unknown = 0;
        for (int i = 0; i < labels.Length; i++)
        {
            int y = labels[i];
            if ((uint)y >= (uint)c) { unknown++; continue; }
            confusion[y, ProbabilityMetrics.ArgMax(probabilities.Slice(i * c, c))]++;
            count++;
        }

        double? auc = null;
        if (c == 2 && count > 0)
        {
            var positive = new bool[count];
            var scores = new float[count];
            for (int i = 0, k = 0; i < labels.Length; i++)
            {
                if ((uint)labels[i] >= 2u) continue;
                positive[k] = labels[i] == 1;
                scores[k] = probabilities[i * 2 + 1];
                k++;
            }
            auc = ProbabilityMetrics.RocAuc(positive, scores);
        }

        var names = classNames.ToArray();
        return new ClassificationMetrics(names, count, unknown, confusion,
            ProbabilityMetrics.LogLoss(probabilities, labels, c), auc,
            ProbabilityMetrics.ExpectedCalibrationError(probabilities, labels, c));
    }

    /// <summary>
    /// A JSON-friendly view: <c>accuracy</c>, <c>macroF1</c>, <c>microF1</c>, <c>macroPrecision</c>,
    /// <c>macroRecall</c>, <c>microPrecision</c>, <c>microRecall</c>, <c>logLoss</c>, <c>auc</c> (only when
    /// <see cref="Auc"/> has a value), <c>ece</c>, <c>count</c>, <c>unknownLabelCount</c>,
    /// <c>perClass</c> (class name to <c>precision</c>, <c>recall</c>, <c>f1</c>, <c>support</c>, every class
    /// of the model in class-id order) and <c>confusionMatrix</c> (jagged <c>int[C][C]</c>, rows = true).
    /// </summary>
    public Dictionary<string, object> ToDictionary()
    {
        var perClass = new Dictionary<string, object>(StringComparer.Ordinal);
        foreach (var m in PerClass)
        {
            perClass[m.ClassName] = new Dictionary<string, object>
            {
                ["precision"] = m.Precision,
                ["recall"] = m.Recall,
                ["f1"] = m.F1,
                ["support"] = m.Support,
            };
        }
        int c = ClassNames.Count;
        var matrix = new int[c][];
        for (int i = 0; i < c; i++)
        {
            matrix[i] = new int[c];
            for (int j = 0; j < c; j++) matrix[i][j] = _confusion[i, j];
        }
        var result = new Dictionary<string, object>
        {
            ["accuracy"] = Accuracy,
            ["macroF1"] = MacroF1,
            ["microF1"] = MicroF1,
            ["macroPrecision"] = MacroPrecision,
            ["macroRecall"] = MacroRecall,
            ["microPrecision"] = MicroPrecision,
            ["microRecall"] = MicroRecall,
            ["logLoss"] = LogLoss,
        };
        if (Auc is { } auc) result["auc"] = auc;
        result["ece"] = Ece;
        result["count"] = Count;
        result["unknownLabelCount"] = UnknownLabelCount;
        result["perClass"] = perClass;
        result["confusionMatrix"] = matrix;
        return result;
    }

    private static void CheckClassNames(IReadOnlyList<string> classNames)
    {
        ArgumentNullException.ThrowIfNull(classNames);
        if (classNames.Count < 1) throw new ArgumentException("At least one class name is needed.", nameof(classNames));
        var seen = new HashSet<string>(StringComparer.Ordinal);
        for (int k = 0; k < classNames.Count; k++)
        {
            var name = classNames[k] ?? throw new ArgumentException($"Class name {k} is null.", nameof(classNames));
            if (!seen.Add(name)) throw new ArgumentException($"Class name '{name}' appears twice.", nameof(classNames));
        }
    }
}

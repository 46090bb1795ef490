using System.Diagnostics;
using MlNetFineTune.Data;
using MlNetFineTune.Metrics;
using MlNetFineTune.Text;

namespace MlNetFineTune.Baselines;

/// <summary>Options of <see cref="TfidfLogisticRegression"/>: the features and the classifier.</summary>
public sealed record TfidfLogisticRegressionOptions
{
    /// <summary>TF-IDF options (default: word 1-2 grams, sublinear tf, min_df 2, 200,000 features, l2 rows).</summary>
    public TfidfOptions Tfidf { get; init; } = new();

    /// <summary>Logistic-regression options (default: C = 1, intercept, L-BFGS to convergence).</summary>
    public LogisticRegressionOptions LogisticRegression { get; init; } = new();
}

/// <summary>
/// The classical text-classification baseline: TF-IDF word n-grams (<see cref="TfidfVectorizer"/>) and
/// L2-regularised logistic regression (<see cref="Baselines.LogisticRegression"/>; binary for two labels,
/// multinomial for more), the scikit-learn pipeline
/// <c>TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2, max_features=200000)</c> +
/// <c>LogisticRegression(C=1)</c>. It scores with the same <see cref="ClassificationMetrics"/> as the fine-tuned
/// models, so the two compare directly. There is no validation set and no calibration step: the probabilities
/// are the model's own. A text pair is joined with a line break into one document. Deterministic.
/// </summary>
/// <example>
/// <code>
/// var baseline = new TfidfLogisticRegression().Fit(train);
/// ClassificationMetrics metrics = baseline.Evaluate(test);
/// </code>
/// </example>
public sealed class TfidfLogisticRegression
{
    private readonly TfidfLogisticRegressionOptions _options;
    private TfidfVectorizer? _vectorizer;
    private LogisticRegression? _classifier;
    private LabelVocabulary? _labels;

    /// <summary>A baseline with <paramref name="options"/> (null: the defaults).</summary>
    public TfidfLogisticRegression(TfidfLogisticRegressionOptions? options = null)
    {
        _options = options ?? new TfidfLogisticRegressionOptions();
        _options.Tfidf.Validate();
        _options.LogisticRegression.Validate();
    }

    /// <summary>The options.</summary>
    public TfidfLogisticRegressionOptions Options => _options;

    /// <summary>The fitted vectorizer.</summary>
    /// <exception cref="InvalidOperationException">Not fitted yet.</exception>
    public TfidfVectorizer Vectorizer => _vectorizer ?? throw NotFitted();

    /// <summary>The fitted classifier (iterations, convergence, weights).</summary>
    /// <exception cref="InvalidOperationException">Not fitted yet.</exception>
    public LogisticRegression Classifier => _classifier ?? throw NotFitted();

    /// <summary>Label names by id (the training set's vocabulary), the columns of the probabilities.</summary>
    /// <exception cref="InvalidOperationException">Not fitted yet.</exception>
    public LabelVocabulary Labels => _labels ?? throw NotFitted();

    /// <summary>Wall-clock seconds the last <see cref="Fit"/> took (features and solver).</summary>
    public double FitSeconds { get; private set; }

    /// <summary>Fits the features and the classifier on every example of <paramref name="train"/>; returns this object.</summary>
    /// <exception cref="DataValidationException">The data set is empty, has unlabeled examples or a single label.</exception>
    public TfidfLogisticRegression Fit(TextDataset train)
    {
        ArgumentNullException.ThrowIfNull(train);
        train.EnsureTrainable();
        var watch = Stopwatch.StartNew();
        var labels = train.Labels;
        var ids = train.GetLabelIds();
        var vectorizer = new TfidfVectorizer(_options.Tfidf);
        var x = vectorizer.FitTransform(Documents(train.Examples));
        var classifier = LogisticRegression.Fit(x, ids, labels.Count, _options.LogisticRegression);
        (_vectorizer, _classifier, _labels) = (vectorizer, classifier, labels);
        FitSeconds = watch.Elapsed.TotalSeconds;
        return this;
    }

    /// <summary>Class probabilities of <paramref name="examples"/>, row-major <c>N x Labels.Count</c>.</summary>
    public float[] PredictProbabilities(IReadOnlyList<TextExample> examples)
    {
        ArgumentNullException.ThrowIfNull(examples);
        if (_vectorizer is null || _classifier is null) throw NotFitted();
        return _classifier.PredictProbabilities(_vectorizer.Transform(Documents(examples)));
    }

    /// <summary>The predicted label and probabilities of every example.</summary>
    public IReadOnlyList<TextClassificationPrediction> Predict(IReadOnlyList<TextExample> examples)
    {
        var probs = PredictProbabilities(examples);
        var labels = Labels;
        int c = labels.Count;
        var result = new TextClassificationPrediction[examples.Count];
        for (int i = 0; i < result.Length; i++)
        {
            var row = probs[(i * c)..((i + 1) * c)];
            int best = 0;
            for (int k = 1; k < c; k++) if (row[k] > row[best]) best = k;
            result[i] = new TextClassificationPrediction(labels[best], row[best], row);
        }
        return result;
    }

    /// <summary>The predicted label and probabilities of one text.</summary>
    public TextClassificationPrediction Predict(string text, string? textPair = null) => Predict([new TextExample(text, textPair)])[0];

    /// <summary>
    /// Metrics on a labelled data set: accuracy, macro-F1, log-loss, AUC (binary), ECE, as for the fine-tuned
    /// models. Labels the training set never had are counted in <see cref="ClassificationMetrics.UnknownLabelCount"/>, not scored.
    /// </summary>
    public ClassificationMetrics Evaluate(TextDataset data)
    {
        ArgumentNullException.ThrowIfNull(data);
        var labels = Labels;
        var mapping = data.MapLabels(labels);
        return ClassificationMetrics.Compute(mapping.Ids, PredictProbabilities(data.Examples), labels.Labels);
    }

    private static string[] Documents(IReadOnlyList<TextExample> examples)
    {
        var docs = new string[examples.Count];
        for (int i = 0; i < docs.Length; i++)
        {
            var e = examples[i] ?? throw new ArgumentException($"Example {i} is null.", nameof(examples));
            docs[i] = e.TextPair is null ? e.Text ?? "" : (e.Text ?? "") + "\n" + e.TextPair;
        }
        return docs;
    }

    private static InvalidOperationException NotFitted() => new("Fit the baseline before using it.");
}

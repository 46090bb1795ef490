using MlNetFineTune.Data;
using MlNetFineTune.Text;

namespace MlNetFineTune;

/// <summary>
/// The entry point, shaped like ML.NET's MLContext: a seed and catalogs for data, text classification,
/// named-entity recognition and models.
/// </summary>
/// <example>
/// <code>
/// var ctx = new FineTuneContext(seed: 1);
/// var train = ctx.Data.LoadTextClassification("train.tsv");
/// var model = ctx.TextClassification.Trainers.FineTune(new TextClassificationOptions()).Fit(train);
/// model.Save("model.zip");
/// </code>
/// </example>
public sealed class FineTuneContext
{
    /// <summary>Creates a context; the same seed (and thread count) reproduces a run.</summary>
    public FineTuneContext(int seed = 1)
    {
        Seed = seed;
        Data = new DataCatalog(this);
        TextClassification = new TextClassificationCatalog(this);
        NamedEntityRecognition = new NerCatalog(this);
        Model = new ModelCatalog();
    }

    /// <summary>Seed of every random choice made through this context.</summary>
    public int Seed { get; }

    /// <summary>Loading and splitting data.</summary>
    public DataCatalog Data { get; }

    /// <summary>Text classification (binary, multiclass, sentiment) trainers and evaluation.</summary>
    public TextClassificationCatalog TextClassification { get; }

    /// <summary>Named-entity recognition (token classification) trainers and evaluation.</summary>
    public NerCatalog NamedEntityRecognition { get; }

    /// <summary>Saving, loading and prediction engines.</summary>
    public ModelCatalog Model { get; }
}

/// <summary>Data loading.</summary>
public sealed class DataCatalog
{
    private readonly FineTuneContext _ctx;
    internal DataCatalog(FineTuneContext ctx) => _ctx = ctx;

    /// <summary>Loads a TSV, CSV or JSONL file (optionally .gz) with label and text columns.</summary>
    public TextDataset LoadTextClassification(string path, TextColumns? columns = null) => TextDataset.LoadTextClassification(path, columns);

    /// <summary>Wraps in-memory objects.</summary>
    public TextDataset LoadFromEnumerable<T>(IEnumerable<T> items, Func<T, string?> text, Func<T, string?> label, Func<T, string?>? textPair = null) =>
        TextDataset.LoadFromEnumerable(items, text, label, textPair);

    /// <summary>Loads a CoNLL file (token and tag per line, blank line between sentences).</summary>
    public NerDataset LoadConll(string path, TagScheme scheme = TagScheme.Bio) => NerDataset.LoadConll(path, scheme);

    /// <summary>A stratified train/validation split, seeded by the context.</summary>
    public TrainValidationSplit<TextDataset> TrainValidationSplit(TextDataset data, double validationFraction = 0.1) => data.Split(validationFraction, _ctx.Seed);
}

/// <summary>Text classification.</summary>
public sealed class TextClassificationCatalog
{
    internal TextClassificationCatalog(FineTuneContext ctx) => Trainers = new TextClassificationTrainers(ctx);

    /// <summary>The trainers.</summary>
    public TextClassificationTrainers Trainers { get; }

    /// <summary>Evaluates a model on labelled data.</summary>
    public TextClassificationEvaluation Evaluate(TextClassificationModel model, TextDataset data) => model.Evaluate(data);
}

/// <summary>Text classification trainers.</summary>
public sealed class TextClassificationTrainers
{
    private readonly FineTuneContext _ctx;
    internal TextClassificationTrainers(FineTuneContext ctx) => _ctx = ctx;

    /// <summary>Fine-tunes a pretrained backbone (the shipped GloVe model by default) with a classification head.</summary>
    public TextClassificationTrainer FineTune(TextClassificationOptions? options = null) => new(options ?? new TextClassificationOptions(), _ctx.Seed);
}

/// <summary>Named-entity recognition.</summary>
public sealed class NerCatalog
{
    internal NerCatalog(FineTuneContext ctx) => Trainers = new NerTrainers(ctx);

    /// <summary>The trainers.</summary>
    public NerTrainers Trainers { get; }

    /// <summary>Evaluates a model on tagged sentences.</summary>
    public NerEvaluation Evaluate(NerModel model, NerDataset data) => model.Evaluate(data);
}

/// <summary>NER trainers.</summary>
public sealed class NerTrainers
{
    private readonly FineTuneContext _ctx;
    internal NerTrainers(FineTuneContext ctx) => _ctx = ctx;

    /// <summary>Fine-tunes a backbone with a token-classification head.</summary>
    public NerTrainer FineTune(NerOptions? options = null) => new(options ?? new NerOptions(), _ctx.Seed);
}

/// <summary>Saving, loading and prediction engines.</summary>
public sealed class ModelCatalog
{
    /// <summary>Saves a text classifier to model.zip.</summary>
    public void Save(TextClassificationModel model, string path) => model.Save(path);

    /// <summary>Saves an NER model to model.zip.</summary>
    public void Save(NerModel model, string path) => model.Save(path);

    /// <summary>Loads a text classifier.</summary>
    public TextClassificationModel LoadTextClassification(string path) => TextClassificationModel.Load(path);

    /// <summary>Loads an NER model.</summary>
    public NerModel LoadNer(string path) => NerModel.Load(path);

    /// <summary>The task a model.zip holds ("text-classification" or "ner").</summary>
    public string GetTask(string path) => ModelPackage.Load(path).Manifest["task"]?.GetValue<string>() ?? "unknown";

    /// <summary>A single-item prediction engine (not thread-safe, like ML.NET's).</summary>
    public PredictionEngine CreatePredictionEngine(TextClassificationModel model) => new(model);
}

/// <summary>Predicts one text at a time.</summary>
public sealed class PredictionEngine
{
    private readonly TextClassificationModel _model;
    internal PredictionEngine(TextClassificationModel model) => _model = model;

    /// <summary>The label and calibrated probabilities for one text.</summary>
    public TextClassificationPrediction Predict(string text, string? textPair = null) => _model.Predict(text, textPair);
}

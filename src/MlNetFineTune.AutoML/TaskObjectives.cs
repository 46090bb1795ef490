using MlNetFineTune.Data;
using MlNetFineTune.Imaging;
using MlNetFineTune.Text;
using MlNetFineTune.Training;

namespace MlNetFineTune.AutoML;

/// <summary>Parameter names the training objectives understand, and default spaces per task and backbone family.</summary>
public static class SearchSpaces
{
    /// <summary>Every parameter a training objective reads.</summary>
    public static readonly IReadOnlyList<string> Known =
        ["learningRate", "epochs", "batchSize", "warmupRatio", "weightDecay", "labelSmoothing", "freeze", "model", "maxLength"];

    /// <summary>"cnn" for the shipped GloVe models (default, glove, scratch), "transformer" for anything else.</summary>
    public static string Family(string? model) => model is null or "default" or "glove" or "scratch" ? "cnn" : "transformer";

    /// <summary>The default space of a task (text-classification, ner, image-classification) for a backbone.</summary>
    public static SearchSpace Default(string task, string? model)
    {
        bool cnn = Family(model) == "cnn";
        var lr = cnn ? new FloatParam("learningRate", 3e-4, 1e-2, Log: true) : new FloatParam("learningRate", 1e-5, 1e-4, Log: true);
        ParamDomain[] ps = task switch
        {
            "text-classification" => cnn
                ? [lr, new IntParam("epochs", 2, 8), new ChoiceParam("batchSize", [16, 32, 64]), new FloatParam("warmupRatio", 0, 0.2),
                    new FloatParam("weightDecay", 1e-4, 0.1, Log: true), new FloatParam("labelSmoothing", 0, 0.1)]
                : [lr, new IntParam("epochs", 2, 5), new ChoiceParam("batchSize", [8, 16, 32]), new FloatParam("warmupRatio", 0, 0.2),
                    new FloatParam("weightDecay", 1e-4, 0.1, Log: true), new FloatParam("labelSmoothing", 0, 0.1), new ChoiceParam("freeze", ["none", "gradual"])],
            "ner" => cnn
                ? [lr, new IntParam("epochs", 3, 10), new ChoiceParam("batchSize", [16, 32]), new FloatParam("warmupRatio", 0, 0.2),
                    new FloatParam("weightDecay", 1e-4, 0.1, Log: true)]
                : [lr, new IntParam("epochs", 2, 5), new ChoiceParam("batchSize", [8, 16, 32]), new FloatParam("warmupRatio", 0, 0.2),
                    new FloatParam("weightDecay", 1e-4, 0.1, Log: true), new ChoiceParam("freeze", ["none", "gradual"])],
            "image-classification" =>
                [new FloatParam("learningRate", 1e-3, 1e-1, Log: true), new IntParam("epochs", 10, 60), new ChoiceParam("batchSize", [32, 64, 128]),
                    new FloatParam("weightDecay", 1e-5, 1e-2, Log: true), new FloatParam("labelSmoothing", 0, 0.1)],
            _ => throw new ArgumentException($"unknown task '{task}' (text-classification, ner, image-classification)."),
        };
        return new SearchSpace(ps, Known);
    }

    internal static TrainingOptions Apply(TrainingOptions t, TrialContext c) => t with
    {
        WarmupRatio = c.Get("warmupRatio", t.WarmupRatio),
        WeightDecay = c.Get("weightDecay", t.WeightDecay),
        LabelSmoothing = (float)c.Get("labelSmoothing", (double)t.LabelSmoothing),
        Freeze = c.Get<string?>("freeze", null) is string f
            ? Enum.TryParse<FreezeStrategy>(f, ignoreCase: true, out var fs) ? fs : throw new ArgumentException($"freeze: '{f}' is not one of none, backbone, gradual.")
            : t.Freeze,
    };
}

/// <summary>A training objective whose model and metrics the CLI writes out.</summary>
public interface ITaskObjective : IObjective
{
    /// <summary>The JSON key of the optimised validation metric.</summary>
    string Metric { get; }

    /// <summary>The metrics.json object of a trained model (same keys as the task's own command).</summary>
    Dictionary<string, object?> MetricsOf(object model, string modelSpec, TextWriter warnings);

    /// <summary>Writes model.zip.</summary>
    void Save(object model, string path);
}

/// <summary>Reports validation epochs to the trial and counts them.</summary>
internal sealed class TrialProgress(TrialContext context, string metric) : IProgress<TrainingProgress>
{
    public int Epochs { get; private set; }

    public void Report(TrainingProgress value)
    {
        if (value.Phase != "validate" || value.ValidationMetrics is null) return;
        Epochs++;
        if (!value.ValidationMetrics.TryGetValue(metric, out var v)) return;
        context.Report(value.Epoch, v, last: value.Epoch >= value.Epochs);
    }
}

/// <summary>Text classification trials (accuracy on the validation set).</summary>
public sealed class TextClassificationObjective : ITaskObjective
{
    private readonly TextDataset _train, _validation;
    private readonly TextDataset? _test;
    private readonly string _model;
    private readonly int? _maxLength;
    private readonly int _seed;

    /// <summary>Without <paramref name="validation"/>, a stratified 10% of <paramref name="train"/> (fixed by the seed) validates every trial.</summary>
    public TextClassificationObjective(TextDataset train, TextDataset? validation, TextDataset? test, string model, int? maxLength, int seed)
    {
        if (validation is null) { var s = train.Split(0.1, seed); (train, validation) = (s.Train, s.Validation); }
        (_train, _validation, _test, _model, _maxLength, _seed) = (train, validation, test, model, maxLength, seed);
    }

    /// <inheritdoc/>
    public string Metric => "accuracy";

    /// <summary>Training examples per epoch.</summary>
    public int TrainCount => _train.Count;

    /// <inheritdoc/>
    public TrialOutcome Run(TrialContext c)
    {
        var options = new TextClassificationOptions
        {
            Model = c.Get("model", _model),
            Epochs = c.Get<int?>("epochs", null),
            BatchSize = c.Get<int?>("batchSize", null),
            LearningRate = c.Get<double?>("learningRate", null),
            MaxLength = c.Get("maxLength", _maxLength),
            Training = SearchSpaces.Apply(new TrainingOptions(), c),
        };
        var progress = new TrialProgress(c, Metric);
        var model = new FineTuneContext(_seed).TextClassification.Trainers.FineTune(options).Fit(_train, _validation, progress, c.Token);
        if (model.Outcome is null || model.Outcome.History.Count == 0) throw new OperationCanceledException("no epoch finished");
        return new TrialOutcome(model.ValidationMetrics!.Accuracy, (double)model.Outcome.History.Count * _train.Count, model);
    }

    /// <inheritdoc/>
    public Dictionary<string, object?> MetricsOf(object m, string modelSpec, TextWriter warnings)
    {
        var model = (TextClassificationModel)m;
        var metrics = new Dictionary<string, object?>
        {
            ["task"] = "text-classification",
            ["model"] = modelSpec,
            ["validation"] = model.ValidationMetrics?.ToDictionary(),
            ["validationBeforeCalibration"] = model.ValidationBeforeCalibration?.ToDictionary(),
            ["temperature"] = model.Temperature,
        };
        if (_test is not null)
        {
            var eval = model.Evaluate(_test);
            metrics["test"] = eval.ToDictionary();
            if (eval.UnknownLabelCount > 0) warnings.WriteLine($"warning: {eval.UnknownLabelCount} test examples have labels training never saw; they are not scored.");
        }
        metrics["bestEpoch"] = model.Outcome?.BestEpoch;
        metrics["trainSeconds"] = Math.Round(model.Outcome?.TrainSeconds ?? 0, 2);
        return metrics;
    }

    /// <inheritdoc/>
    public void Save(object model, string path) => ((TextClassificationModel)model).Save(path);
}

/// <summary>NER trials (entity F1 on the validation set).</summary>
public sealed class NerObjective : ITaskObjective
{
    private readonly NerDataset _train, _validation;
    private readonly NerDataset? _test;
    private readonly string _model;
    private readonly int? _maxLength;
    private readonly int _seed;

    /// <summary>Without <paramref name="validation"/>, 10% of <paramref name="train"/> (fixed by the seed) validates every trial.</summary>
    public NerObjective(NerDataset train, NerDataset? validation, NerDataset? test, string model, int? maxLength, int seed)
    {
        if (validation is null) { var s = train.Split(0.1, seed); (train, validation) = (s.Train, s.Validation); }
        (_train, _validation, _test, _model, _maxLength, _seed) = (train, validation, test, model, maxLength, seed);
    }

    /// <inheritdoc/>
    public string Metric => "entityF1";

    /// <inheritdoc/>
    public TrialOutcome Run(TrialContext c)
    {
        var options = new NerOptions
        {
            Model = c.Get("model", _model),
            Epochs = c.Get<int?>("epochs", null),
            BatchSize = c.Get<int?>("batchSize", null),
            LearningRate = c.Get<double?>("learningRate", null),
            MaxLength = c.Get("maxLength", _maxLength),
            Training = SearchSpaces.Apply(new TrainingOptions(), c),
        };
        var model = new FineTuneContext(_seed).NamedEntityRecognition.Trainers.FineTune(options).Fit(_train, _validation, new TrialProgress(c, Metric), c.Token);
        var outcome = model.Outcome;
        if (outcome is null || outcome.History.Count == 0) throw new OperationCanceledException("no epoch finished");
        var best = outcome.History.First(h => h.Epoch == outcome.BestEpoch);
        return new TrialOutcome(best.Metrics[Metric], (double)outcome.History.Count * _train.Count, model);
    }

    /// <inheritdoc/>
    public Dictionary<string, object?> MetricsOf(object m, string modelSpec, TextWriter warnings)
    {
        var model = (NerModel)m;
        var best = model.Outcome?.History.FirstOrDefault(h => h.Epoch == model.Outcome.BestEpoch);
        var metrics = new Dictionary<string, object?>
        {
            ["task"] = "ner",
            ["model"] = modelSpec,
            ["validation"] = best?.Metrics,
        };
        if (_test is not null) metrics["test"] = model.Evaluate(_test).ToDictionary();
        metrics["bestEpoch"] = model.Outcome?.BestEpoch;
        metrics["trainSeconds"] = Math.Round(model.Outcome?.TrainSeconds ?? 0, 2);
        return metrics;
    }

    /// <inheritdoc/>
    public void Save(object model, string path) => ((NerModel)model).Save(path);
}

/// <summary>Image classification trials (accuracy on the validation set).</summary>
public sealed class ImageClassificationObjective : ITaskObjective
{
    private readonly ImageDataset _train, _validation;
    private readonly ImageDataset? _test;
    private readonly ImageClassificationOptions _base;
    private readonly int _seed;
    private readonly int _skipped;

    /// <summary>Without <paramref name="validation"/>, a stratified 10% of <paramref name="train"/> validates every trial.</summary>
    public ImageClassificationObjective(ImageDataset train, ImageDataset? validation, ImageDataset? test, ImageClassificationOptions options, int seed, int skippedImages = 0)
    {
        if (validation is null) (train, validation) = train.Split(0.1, seed);
        (_train, _validation, _test, _base, _seed, _skipped) = (train, validation, test, options, seed, skippedImages);
    }

    /// <inheritdoc/>
    public string Metric => "accuracy";

    /// <inheritdoc/>
    public TrialOutcome Run(TrialContext c)
    {
        var options = _base with
        {
            Model = c.Get("model", _base.Model),
            Epochs = c.Get<int?>("epochs", _base.Epochs),
            BatchSize = c.Get<int?>("batchSize", _base.BatchSize),
            LearningRate = c.Get<double?>("learningRate", _base.LearningRate),
            Training = SearchSpaces.Apply(_base.Training, c),
            // The searched values (epochs, learning rate, batch, label smoothing...) are the training loop's: a probe
            // must train its head with the loop, not the closed-form L-BFGS fit that has none of them.
            ProbeSolver = ProbeSolver.Loop,
        };
        var model = new ImageClassificationTrainer(options, _seed).Fit(_train, _validation, new TrialProgress(c, Metric), c.Token);
        if (model.Outcome is null || model.Outcome.History.Count == 0) throw new OperationCanceledException("no epoch finished");
        return new TrialOutcome(model.ValidationMetrics!.Accuracy, (double)model.Outcome.History.Count * _train.Count, model);
    }

    /// <inheritdoc/>
    public Dictionary<string, object?> MetricsOf(object m, string modelSpec, TextWriter warnings)
    {
        var trained = (ImageClassificationModel)m;
        var metrics = new Dictionary<string, object?>
        {
            ["task"] = "image-classification",
            ["model"] = modelSpec,
            ["strategy"] = trained.Strategy?.ToString().ToLowerInvariant(),
            ["featureLayer"] = trained.FeatureLayer,
            ["validation"] = trained.ValidationMetrics?.ToDictionary(),
            ["validationBeforeCalibration"] = trained.ValidationBeforeCalibration?.ToDictionary(),
            ["temperature"] = trained.Temperature,
            ["skippedImages"] = _skipped,
        };
        if (_test is not null) metrics["test"] = trained.Evaluate(_test).ToDictionary();
        metrics["bestEpoch"] = trained.Outcome?.BestEpoch;
        metrics["trainSeconds"] = Math.Round(trained.Outcome?.TrainSeconds ?? 0, 2);
        return metrics;
    }

    /// <inheritdoc/>
    public void Save(object model, string path) => ((ImageClassificationModel)model).Save(path);
}

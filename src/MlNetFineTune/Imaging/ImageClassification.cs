using System.Security.Cryptography;
using System.Text.Json.Nodes;
using MlNetFineTune.Data;
using MlNetFineTune.Metrics;
using MlNetFineTune.Models.Nn;
using MlNetFineTune.Models.Vision;
using MlNetFineTune.Tensors;
using MlNetFineTune.Text;
using MlNetFineTune.Training;

namespace MlNetFineTune.Imaging;

/// <summary>One image (pixels 0..255, [C, H, W]) and its label.</summary>
public sealed record ImageExample(FloatImage Image, string? Label);

/// <summary>Labelled images plus their label vocabulary.</summary>
public sealed class ImageDataset(IEnumerable<ImageExample> examples, LabelVocabulary? labels = null, string? source = null) : List<ImageExample>(examples)
{
    /// <summary>Where the images came from (named in errors).</summary>
    public string Source { get; } = source ?? "<memory>";

    /// <summary>Files left out while loading because they did not decode (only with <see cref="ImageLoadOptions.SkipBadImages"/>).</summary>
    public IReadOnlyList<SkippedImage> Skipped { get; init; } = [];

    /// <summary>Label names by id.</summary>
    public LabelVocabulary Labels { get; } = labels ?? LabelVocabulary.Build(examples.Select(e => e.Label));

    /// <summary>A stratified split sharing this set's labels.</summary>
    public (ImageDataset Train, ImageDataset Validation) Split(double validationFraction, int seed)
    {
        var s = DataSplit.StratifiedSplit(this, e => e.Label ?? "", validationFraction, seed);
        return (new ImageDataset(s.Train, Labels, Source), new ImageDataset(s.Validation, Labels, Source + " (validation split)"));
    }
}

/// <summary>How much of the backbone trains.</summary>
public enum ImageStrategy
{
    /// <summary>Backbone frozen: features are computed once (cached on disk) and only a linear head trains.</summary>
    Probe,
    /// <summary>Everything trains; the backbone at a tenth of the head's learning rate.</summary>
    FineTune,
    /// <summary>The last <see cref="ImageClassificationOptions.PartialLayers"/> parameterised layers train; batch norm of frozen layers stays in eval mode.</summary>
    Partial,
}

/// <summary>How a probe fits its linear head on the cached features.</summary>
public enum ProbeSolver
{
    /// <summary>
    /// Multinomial logistic regression on standardised features solved to its optimum by L-BFGS (L2 strength
    /// <see cref="ImageClassificationOptions.ProbeC"/>), the classical linear-probe recipe; no epochs.
    /// </summary>
    Lbfgs,
    /// <summary>The shared training loop (AdamW, epochs, early stopping, class weights, label smoothing...).</summary>
    Loop,
}

/// <summary>Options of the image classifier (null values take the strategy's defaults).</summary>
public sealed record ImageClassificationOptions
{
    /// <summary>default (shipped MobileNetV2), inception_v3, scratch (ResNet-18 from random), a TF.js folder, or a torchvision .pth.</summary>
    public string Model { get; init; } = "default";
    /// <summary>Probe, fine-tune or partial (null: probe for a pretrained backbone, fine-tune for <c>scratch</c>, whose random features are not worth probing).</summary>
    public ImageStrategy? Strategy { get; init; }
    /// <summary>How a probe fits its head (default <see cref="ProbeSolver.Lbfgs"/>; <see cref="ProbeSolver.Loop"/> for the loop's options).</summary>
    public ProbeSolver ProbeSolver { get; init; } = ProbeSolver.Lbfgs;
    /// <summary>
    /// Inverse L2 strength of the L-BFGS probe, as scikit-learn's C (null, the default: chosen by 5-fold
    /// cross-validation on the training features among 0.01, 0.03, 0.1, 0.3, 1 and 3).
    /// </summary>
    public double? ProbeC { get; init; }
    /// <summary>A probe also learns from the mirror image of every training image (default true; features cached the same way).</summary>
    public bool ProbeFlip { get; init; } = true;
    /// <summary>Fit a temperature on the validation set so probabilities are calibrated (default true; metrics before and after are kept).</summary>
    public bool CalibrateTemperature { get; init; } = true;
    /// <summary>Side of the square network input.</summary>
    public int ImageSize { get; init; } = 96;
    /// <summary>Keras layer whose pooled output is the feature (null: for a probe, chosen on the validation set among a few depths).</summary>
    public string? FeatureLayer { get; init; }
    /// <summary>Parameterised layers left trainable by <see cref="ImageStrategy.Partial"/>.</summary>
    public int PartialLayers { get; init; } = 10;
    /// <summary>Random resized crops and flips while fine-tuning.</summary>
    public bool Augment { get; init; } = true;
    /// <summary>Passes over the data.</summary>
    public int? Epochs { get; init; }
    /// <summary>Images per step.</summary>
    public int? BatchSize { get; init; }
    /// <summary>Peak learning rate of the head.</summary>
    public double? LearningRate { get; init; }
    /// <summary>Fraction held out when no validation set is given.</summary>
    public double ValidationFraction { get; init; } = 0.1;
    /// <summary>Everything else the training loop offers (Epochs, LearningRate and Seed come from this record).</summary>
    public TrainingOptions Training { get; init; } = new();
}

/// <summary>Trains an image classifier with one of the strategies.</summary>
public sealed class ImageClassificationTrainer(ImageClassificationOptions options, int seed)
{
    /// <summary>Candidate probe layers of the shipped MobileNetV2, shallow to deep (the last blocks were retrained on other classes).</summary>
    public static readonly string[] MobileNetProbeLayers = ["block_6_expand_relu", "block_13_expand_relu", "out_relu"];

    /// <summary>Trains and returns the best epoch's model.</summary>
    public ImageClassificationModel Fit(ImageDataset train, ImageDataset? validation = null, IProgress<TrainingProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        if (train.Labels.Count < 2) throw new DataValidationException(train.Source, $"image classification needs at least two labels, found {train.Labels.Count}");
        bool carved = validation is null;
        var full = train;
        if (validation is null) (train, validation) = train.Split(options.ValidationFraction, seed);
        var rng = new Rng((ulong)seed);
        string? layer = options.FeatureLayer;
        bool scratch = options.Model is "scratch" or "resnet18-scratch";
        var strategy = options.Strategy ?? (scratch ? ImageStrategy.FineTune : ImageStrategy.Probe);
        var resolved = options with { Strategy = strategy };
        bool probe = strategy == ImageStrategy.Probe;
        if (probe && layer is null && options.Model is "default" or "mobilenet_v2")
            layer = ChooseProbeLayer(train, validation, rng);
        var backbone = ImageBackbone.Create(options.Model, layer, rng);
        var model = new ImageClassifierModule(backbone, train.Labels.Count, rng);
        // A probe trains a linear layer on cached features: cheap epochs, so many of them with patience. A pretrained
        // network fine-tunes for a few epochs; one from scratch has everything to learn and gets more, and more patience.
        var defaults = probe ? (100, 1e-2) : scratch ? (30, 1e-3) : (5, 1e-3);
        bool patienceUnset = options.Training.PatienceIsDefault;
        var training = TextTraining.Resolve(options.Training, options.Epochs, options.BatchSize, options.LearningRate, defaults, seed) with
        {
            // A pretrained backbone fine-tunes at a tenth of the head's rate; a scratch one has nothing to preserve.
            BackboneLearningRateScale = strategy == ImageStrategy.FineTune && !scratch ? 0.1 : 1.0,
            WeightDecay = probe ? 1e-4 : options.Training.WeightDecay,
            EarlyStoppingPatience = !patienceUnset ? options.Training.EarlyStoppingPatience : probe ? 10 : scratch ? 5 : options.Training.EarlyStoppingPatience,
        };
        // An L-BFGS probe whose validation images were carved out of the training set has used them only to pick
        // the layer: the head is then fitted on all the images (as scikit-learn's LogisticRegressionCV refits), its C
        // chosen and its temperature fitted on 5-fold out-of-fold predictions, which are also what it reports.
        bool refit = probe && options.ProbeSolver == ProbeSolver.Lbfgs && carved;
        IImageTask task = probe
            ? ProbeTaskFor(backbone, model, refit ? full : train, validation)
            : new ImageTask(model, train, validation, resolved, seed);
        float[]? crossFitted = null;
        var outcome = probe && options.ProbeSolver == ProbeSolver.Lbfgs
            ? FitProbeHead((ProbeTask)task, model, train, progress, out crossFitted, scoreOutOfFold: refit)
            : TrainingLoop.Run(task, training, progress, cancellationToken);

        // Calibration on the validation set (the best epoch's weights are restored by now), or on the out-of-fold
        // predictions of a refitted probe.
        var logits = refit ? crossFitted! : task.ValidationLogits();
        var ids = refit ? ((ProbeTask)task).TrainLabels[..((ProbeTask)task).Originals] : task.ValidationLabels;
        var known = Enumerable.Range(0, ids.Length).Where(i => ids[i] >= 0).ToArray();
        var knownLogits = known.SelectMany(i => logits.AsSpan(i * train.Labels.Count, train.Labels.Count).ToArray()).ToArray();
        var knownIds = known.Select(i => ids[i]).ToArray();
        var before = ClassificationMetrics.Compute(knownIds, TemperatureScaling.Apply(knownLogits, train.Labels.Count, 1.0), train.Labels.Labels);
        double temperature = options.CalibrateTemperature && knownIds.Length > 0 ? TemperatureScaling.Fit(knownLogits, knownIds) : 1.0;
        var after = ClassificationMetrics.Compute(knownIds, TemperatureScaling.Apply(knownLogits, train.Labels.Count, temperature), train.Labels.Labels);
        return new ImageClassificationModel(model, train.Labels, options.ImageSize, outcome, resolved, temperature)
        {
            ValidationBeforeCalibration = before,
            ValidationMetrics = after,
        };
    }

    /// <summary>
    /// The L-BFGS probe: logistic regression on features standardised with the training set's mean and standard
    /// deviation, folded back into the linear head (W' = W / std, b' = b - W' mean) so inference is unchanged.
    /// </summary>
    private TrainingOutcome FitProbeHead(ProbeTask task, ImageClassifierModule model, ImageDataset train, IProgress<TrainingProgress>? progress, out float[]? outOfFold, bool chooseC = true, bool scoreOutOfFold = false)
    {
        outOfFold = null;
        var clock = System.Diagnostics.Stopwatch.StartNew();
        int n = task.TrainingExampleCount, f = model.Backbone.FeatureSize, classes = train.Labels.Count;
        var x = task.TrainFeatures;
        var mean = new double[f];
        var std = new double[f];
        for (int i = 0; i < n; i++) for (int j = 0; j < f; j++) mean[j] += x[i * f + j];
        for (int j = 0; j < f; j++) mean[j] /= n;
        for (int i = 0; i < n; i++) for (int j = 0; j < f; j++) { double d = x[i * f + j] - mean[j]; std[j] += d * d; }
        for (int j = 0; j < f; j++) { std[j] = Math.Sqrt(std[j] / n); if (std[j] < 1e-6) std[j] = 1; }
        var vals = new double[n * f];
        for (int i = 0; i < n; i++)
            for (int j = 0; j < f; j++) vals[i * f + j] = (x[i * f + j] - mean[j]) / std[j];
        var all = Baselines.SparseMatrix.FromDense(n, f, vals);
        double c = 1.0;
        if (chooseC)
            (c, outOfFold) = CrossValidate(vals, task.TrainLabels, n, f, classes, task.Originals, options.ProbeC is double given ? [given] : ProbeCGrid);
        else if (options.ProbeC is double given) c = given;
        ChosenProbeC = c;
        var lr = Baselines.LogisticRegression.Fit(all, task.TrainLabels, classes, new Baselines.LogisticRegressionOptions { C = c });
        var w = model.Head.Weight.AsSpan();
        var b = model.Head.Bias!.AsSpan();
        w.Clear();
        b.Clear();
        int rows = lr.Weights.Length / f;                 // 1 for two classes (class 1 against class 0), else one per class
        for (int r = 0; r < rows; r++)
        {
            int k = rows == 1 ? 1 : r;
            double bias = lr.Intercepts[r];
            for (int j = 0; j < f; j++)
            {
                double wj = lr.Weights[r * f + j] / std[j];
                w[k * f + j] = (float)wj;
                bias -= wj * mean[j];
            }
            b[k] = (float)bias;
        }
        // A refitted head has seen the validation images: it reports its out-of-fold estimate instead.
        var evaluation = scoreOutOfFold && outOfFold is not null
            ? ImageTask.Score(outOfFold, task.TrainLabels[..task.Originals], classes)
            : task.Validate(CancellationToken.None);
        double seconds = clock.Elapsed.TotalSeconds;
        progress?.Report(new TrainingProgress("validate", 1, 1, 1, 1, lr.Objective, 0, evaluation.Metrics, TimeSpan.FromSeconds(seconds), TimeSpan.Zero));
        return new TrainingOutcome(1, evaluation.Score, [new EpochRecord(1, lr.Objective, evaluation.Score, evaluation.Metrics, seconds)], false, false, seconds, 0);
    }

    /// <summary>The probe's L2 strength actually used by the last fit (for reports).</summary>
    public double? ChosenProbeC { get; private set; }

    /// <summary>
    /// 5-fold cross-validation over <see cref="ProbeCGrid"/> on the standardised training features: highest mean
    /// accuracy, ties to the lower log-loss. Folds are drawn over the original images, a mirror image always
    /// in its original's fold (rows i and i + originals), seeded by the trainer's seed.
    /// </summary>
    private (double C, float[] OutOfFoldLogProbabilities) CrossValidate(double[] x, int[] y, int n, int f, int classes, int originals, double[] grid)
    {
        var order = Enumerable.Range(0, originals).ToArray();
        new Random(seed).Shuffle(order);
        var fold = new int[n];
        for (int r = 0; r < originals; r++) fold[order[r]] = r % 5;
        for (int i = originals; i < n; i++) fold[i] = fold[i % originals];
        double best = grid[0], bestAcc = -1, bestLoss = double.PositiveInfinity;
        float[] bestOof = new float[originals * classes];
        foreach (var c in grid)
        {
            var oof = new float[originals * classes];
            double correct = 0, loss = 0;
            int count = 0;
            for (int k = 0; k < 5; k++)
            {
                var trainRows = Enumerable.Range(0, n).Where(i => fold[i] != k).ToArray();
                var testRows = Enumerable.Range(0, originals).Where(i => fold[i] == k).ToArray();   // scored on originals only
                if (trainRows.Select(i => y[i]).Distinct().Count() < 2 || testRows.Length == 0) continue;
                var model = Baselines.LogisticRegression.Fit(Rows(x, trainRows, f), trainRows.Select(i => y[i]).ToArray(), classes,
                    new Baselines.LogisticRegressionOptions { C = c, GradientTolerance = 1e-4 });
                var p = model.PredictProbabilities(Rows(x, testRows, f));
                for (int t = 0; t < testRows.Length; t++)
                {
                    int arg = 0;
                    for (int q = 1; q < classes; q++) if (p[t * classes + q] > p[t * classes + arg]) arg = q;
                    if (arg == y[testRows[t]]) correct++;
                    for (int q = 0; q < classes; q++) oof[testRows[t] * classes + q] = (float)Math.Log(Math.Max(p[t * classes + q], 1e-30));
                    loss -= Math.Log(Math.Max(p[t * classes + y[testRows[t]]], 1e-12));
                    count++;
                }
            }
            if (count == 0) continue;
            double acc = correct / count, meanLoss = loss / count;
            if (acc > bestAcc + 1e-12 || (Math.Abs(acc - bestAcc) <= 1e-12 && meanLoss < bestLoss)) { best = c; bestAcc = acc; bestLoss = meanLoss; bestOof = oof; }
        }
        return (best, bestOof);
    }

    private static Baselines.SparseMatrix Rows(double[] x, int[] rows, int f)
    {
        var vals = new double[rows.Length * f];
        for (int r = 0; r < rows.Length; r++) Array.Copy(x, rows[r] * f, vals, r * f, f);
        return Baselines.SparseMatrix.FromDense(rows.Length, f, vals);
    }

    private string ChooseProbeLayer(ImageDataset train, ImageDataset validation, Rng rng)
    {
        // A quick probe per candidate layer on the training set, scored on the validation set.
        string best = MobileNetProbeLayers[^1];
        double bestScore = double.NegativeInfinity;
        foreach (var candidate in MobileNetProbeLayers)
        {
            var backbone = ImageBackbone.Create(options.Model, candidate, new Rng((ulong)seed));
            var model = new ImageClassifierModule(backbone, train.Labels.Count, new Rng((ulong)seed));
            var task = ProbeTaskFor(backbone, model, train, validation);
            var outcome = options.ProbeSolver == ProbeSolver.Lbfgs
                ? FitProbeHead(task, model, train, null, out _, chooseC: false)   // layers compared at C = 1; C is chosen once, for the layer kept
                : TrainingLoop.Run(task, new TrainingOptions { Epochs = 15, BatchSize = 64, LearningRate = 1e-2, WeightDecay = 1e-4, Seed = seed, EarlyStoppingPatience = null });
            if (outcome.BestScore > bestScore) { bestScore = outcome.BestScore; best = candidate; }
        }
        return best;
    }

    private float[] Cached(ImageBackbone backbone, ImageDataset data) => FeatureCache.Get(backbone, data, options.ImageSize);

    /// <summary>The probe's task: cached features of the training images (and, with <see cref="ImageClassificationOptions.ProbeFlip"/>, of their mirror images, appended after them).</summary>
    private ProbeTask ProbeTaskFor(ImageBackbone backbone, ImageClassifierModule model, ImageDataset train, ImageDataset validation)
    {
        var trainFeatures = Cached(backbone, train);
        if (options.ProbeFlip)
        {
            var mirrored = new ImageDataset(train.Select(e => new ImageExample(ImageTransforms.HorizontalFlip(e.Image), e.Label)), train.Labels, train.Source + " (mirrored)");
            trainFeatures = [.. trainFeatures, .. Cached(backbone, mirrored)];
            train = new ImageDataset([.. train, .. mirrored], train.Labels, train.Source);
        }
        return new ProbeTask(model, trainFeatures, Cached(backbone, validation), train, validation) { Originals = options.ProbeFlip ? train.Count / 2 : train.Count };
    }

    private static readonly double[] ProbeCGrid = [0.01, 0.03, 0.1, 0.3, 1, 3];
}

/// <summary>Backbone + linear head; parameter names "backbone.*" and "head.*".</summary>
internal sealed class ImageClassifierModule : Module
{
    public ImageBackbone Backbone { get; }
    public Linear Head { get; }

    public ImageClassifierModule(ImageBackbone backbone, int numLabels, Rng rng)
    {
        Backbone = backbone;
        RegisterModule("backbone", backbone.Module);
        Head = RegisterModule("head", new Linear(backbone.FeatureSize, numLabels, rng));
    }

    public Tensor Forward(Tensor images) => Head.Forward(Backbone.Features(images));
}

/// <summary>Pooled backbone features computed once per (model, layer, size, image content) and kept on disk.</summary>
internal static class FeatureCache
{
    public static string Directory => Environment.GetEnvironmentVariable("MLFT_FEATURE_CACHE")
        ?? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.LocalApplicationData, Environment.SpecialFolderOption.Create), "mlnetfinetune", "features");

    public static float[] Get(ImageBackbone backbone, ImageDataset data, int size)
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        sha.AppendData(System.Text.Encoding.UTF8.GetBytes($"{backbone.Kind}|{backbone.Source}|{backbone.OutputLayer}|{size}|{backbone.FeatureSize}|"));
        // The weights themselves (not just the model's name) key the cache: a changed checkpoint at the same path,
        // or a scratch network from another seed, must not reuse stale features.
        foreach (var (name, t) in backbone.Module.NamedParameters().Concat(backbone.Module.NamedBuffers()))
        {
            sha.AppendData(System.Text.Encoding.UTF8.GetBytes(name));
            sha.AppendData(System.Runtime.InteropServices.MemoryMarshal.AsBytes(t.Contiguous().AsSpan()));
        }
        foreach (var e in data)
            sha.AppendData(System.Runtime.InteropServices.MemoryMarshal.AsBytes(e.Image.Data.AsSpan()));
        var key = Convert.ToHexString(sha.GetHashAndReset());
        var path = Path.Combine(Directory, key + ".f32");
        long expected = (long)data.Count * backbone.FeatureSize * 4;
        if (File.Exists(path) && new FileInfo(path).Length == expected)
        {
            var bytes = File.ReadAllBytes(path);
            var cached = new float[data.Count * backbone.FeatureSize];
            Buffer.BlockCopy(bytes, 0, cached, 0, bytes.Length);
            return cached;
        }
        var features = Compute(backbone, data, size);
        System.IO.Directory.CreateDirectory(Directory);
        var tmp = path + $".{Guid.NewGuid():N}.tmp";
        var outBytes = new byte[features.Length * 4];
        Buffer.BlockCopy(features, 0, outBytes, 0, outBytes.Length);
        File.WriteAllBytes(tmp, outBytes);
        File.Move(tmp, path, overwrite: true);
        return features;
    }

    /// <summary>How many times features were computed by running the backbone (tests check cache hits with it).</summary>
    internal static int BackboneRuns;

    public static float[] Compute(ImageBackbone backbone, IReadOnlyList<ImageExample> data, int size)
    {
        Interlocked.Increment(ref BackboneRuns);
        backbone.Module.Eval();
        var result = new float[data.Count * backbone.FeatureSize];
        using var _ = Tensor.NoGrad();
        for (int s = 0; s < data.Count; s += 32)
        {
            var batch = data.Skip(s).Take(32).Select(e => ImageTask.Prepare(backbone, e.Image, size, null)).ToArray();
            var f = backbone.Features(ImageTransforms.Stack(batch)).ToArray();
            Array.Copy(f, 0, result, s * backbone.FeatureSize, f.Length);
        }
        return result;
    }
}

/// <summary>A training task that can also hand back its validation logits (for calibration).</summary>
internal interface IImageTask : ITrainingTask
{
    /// <summary>Validation labels by id (-1: a label training never saw).</summary>
    int[] ValidationLabels { get; }
    /// <summary>Validation logits [N, C] with the current weights.</summary>
    float[] ValidationLogits();
}

/// <summary>Linear probe on cached features: the head trains, the backbone is not run at all.</summary>
internal sealed class ProbeTask(ImageClassifierModule model, float[] trainFeatures, float[] validFeatures, ImageDataset train, ImageDataset validation) : IImageTask
{
    private readonly int[] _trainLabels = train.Select(e => train.Labels.GetId(e.Label!)).ToArray();

    /// <summary>Cached training features [N, F].</summary>
    public float[] TrainFeatures => trainFeatures;
    /// <summary>Rows that are original images (the rest, if any, are their mirror images in the same order).</summary>
    public int Originals { get; init; } = train.Count;
    /// <summary>Training label ids.</summary>
    public int[] TrainLabels => _trainLabels;
    private readonly int[] _validLabels = validation.Select(e => train.Labels.TryGetId(e.Label ?? "", out var id) ? id : -1).ToArray();
    private readonly int _f = model.Backbone.FeatureSize;

    public Module Model => model.Head;
    public IReadOnlyList<string> BackboneLayerGroups => [];
    public IReadOnlySet<string> FixedParameters { get; } = new HashSet<string>();
    public int TrainingExampleCount => _trainLabels.Length;
    public int? LengthOf(int example) => null;

    public Tensor Loss(IReadOnlyList<int> examples)
    {
        var x = new float[examples.Count * _f];
        for (int i = 0; i < examples.Count; i++) Array.Copy(trainFeatures, examples[i] * _f, x, i * _f, _f);
        var logits = model.Head.Forward(Tensor.Wrap(x, examples.Count, _f));
        return Ops.CrossEntropy(logits, Tensor.FromArray(examples.Select(i => (long)_trainLabels[i]).ToArray()));
    }

    public int[] ValidationLabels => _validLabels;

    public float[] ValidationLogits()
    {
        using var _ = Tensor.NoGrad();
        return model.Head.Forward(Tensor.Wrap((float[])validFeatures.Clone(), _validLabels.Length, _f)).ToArray();
    }

    public Evaluation Validate(CancellationToken cancellationToken) => ImageTask.Score(ValidationLogits(), _validLabels, model.Head.OutFeatures);
}

/// <summary>Fine-tuning (all or the top layers) on images with augmentation.</summary>
internal sealed class ImageTask : IImageTask
{
    private readonly ImageClassifierModule _model;
    private readonly ImageDataset _train, _valid;
    private readonly int[] _trainLabels, _validLabels;
    private readonly ImageClassificationOptions _options;
    private readonly Rng _augment;
    private readonly HashSet<string> _fixed = [];

    public ImageTask(ImageClassifierModule model, ImageDataset train, ImageDataset validation, ImageClassificationOptions options, int seed)
    {
        _model = model;
        _train = train;
        _valid = validation;
        _options = options;
        _augment = new Rng((ulong)seed ^ 0xA5A5A5A5UL);
        _trainLabels = train.Select(e => train.Labels.GetId(e.Label!)).ToArray();
        _validLabels = validation.Select(e => train.Labels.TryGetId(e.Label ?? "", out var id) ? id : -1).ToArray();
        if (options.Strategy == ImageStrategy.Partial)
        {
            var groups = model.Backbone.LayerGroups("backbone.");
            var frozen = groups.Take(Math.Max(0, groups.Count - options.PartialLayers)).ToArray();
            foreach (var (name, _) in model.NamedParameters())
                if (frozen.Any(g => name.StartsWith(g + ".", StringComparison.Ordinal))) _fixed.Add(name);
            _frozenPrefixes = frozen;
        }
    }

    private readonly string[] _frozenPrefixes = [];

    public Module Model => _model;
    public IReadOnlyList<string> BackboneLayerGroups => _model.Backbone.LayerGroups("backbone.");
    public IReadOnlySet<string> FixedParameters => _fixed;
    public int TrainingExampleCount => _train.Count;
    public int? LengthOf(int example) => null;

    internal static FloatImage Prepare(ImageBackbone backbone, FloatImage img, int size, Rng? augment)
    {
        var rgb = ImageTransforms.GrayToRgb(img);
        if (augment is not null)
        {
            rgb = ImageTransforms.RandomResizedCrop(rgb, size, augment, (0.6, 1.0));
            if (augment.NextFloat() < 0.5f) rgb = ImageTransforms.HorizontalFlip(rgb);
        }
        else rgb = ImageTransforms.Resize(rgb, size, size);
        return backbone.Normalize(rgb);
    }

    public Tensor Loss(IReadOnlyList<int> examples)
    {
        // Frozen layers keep batch norm in eval mode (their statistics are part of the pretrained features).
        foreach (var prefix in _frozenPrefixes)
            foreach (var (name, m) in _model.NamedModules())
                if (name == prefix || name.StartsWith(prefix + ".", StringComparison.Ordinal)) m.Eval();
        var images = examples.Select(i => Prepare(_model.Backbone, _train[i].Image, _options.ImageSize, _options.Augment ? _augment : null)).ToArray();
        var logits = _model.Forward(ImageTransforms.Stack(images));
        return Ops.CrossEntropy(logits, Tensor.FromArray(examples.Select(i => (long)_trainLabels[i]).ToArray()));
    }

    public int[] ValidationLabels => _validLabels;

    public float[] ValidationLogits() => Logits(CancellationToken.None);

    public Evaluation Validate(CancellationToken cancellationToken) => Score(Logits(cancellationToken), _validLabels, _model.Head.OutFeatures);

    private float[] Logits(CancellationToken cancellationToken)
    {
        _model.Eval();
        var logits = new List<float>();
        using (Tensor.NoGrad())
            for (int s = 0; s < _valid.Count; s += 32)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var batch = _valid.Skip(s).Take(32).Select(e => Prepare(_model.Backbone, e.Image, _options.ImageSize, null)).ToArray();
                logits.AddRange(_model.Forward(ImageTransforms.Stack(batch)).ToArray());
            }
        return [.. logits];
    }

    internal static Evaluation Score(float[] logits, int[] labels, int classes)
    {
        var m = ClassificationMetrics.Compute(labels, TemperatureScaling.Apply(logits, classes, 1.0),
            Enumerable.Range(0, classes).Select(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture)).ToArray());
        return new Evaluation(m.Accuracy, new Dictionary<string, double> { ["accuracy"] = m.Accuracy, ["macroF1"] = m.MacroF1, ["logLoss"] = m.LogLoss }, m.LogLoss);
    }
}

/// <summary>A trained image classifier.</summary>
public sealed class ImageClassificationModel
{
    private readonly ImageClassifierModule _model;
    private readonly ImageClassificationOptions? _options;

    internal ImageClassificationModel(ImageClassifierModule model, LabelVocabulary labels, int imageSize, TrainingOutcome? outcome, ImageClassificationOptions? options, double temperature)
    {
        Temperature = temperature;
        _model = model;
        Labels = labels;
        ImageSize = imageSize;
        Outcome = outcome;
        _options = options;
    }

    /// <summary>Label names by id.</summary>
    public LabelVocabulary Labels { get; }
    /// <summary>Network input side.</summary>
    public int ImageSize { get; }
    /// <summary>The training run (null for a loaded model).</summary>
    public TrainingOutcome? Outcome { get; }
    /// <summary>Softmax temperature fitted on the validation set (1: uncalibrated).</summary>
    public double Temperature { get; }
    /// <summary>Validation metrics at temperature 1 (null for a loaded model).</summary>
    public ClassificationMetrics? ValidationBeforeCalibration { get; init; }
    /// <summary>Validation metrics at the fitted temperature (null for a loaded model).</summary>
    public ClassificationMetrics? ValidationMetrics { get; init; }
    /// <summary>The strategy it was trained with (null for a loaded model saved before strategies were recorded).</summary>
    public ImageStrategy? Strategy => _options?.Strategy;
    /// <summary>The Keras layer features come from (null for ResNets).</summary>
    public string? FeatureLayer => _model.Backbone.OutputLayer;

    /// <summary>Calibrated class probabilities per image, [N, C] flattened.</summary>
    public float[] PredictProbabilities(IReadOnlyList<FloatImage> images)
    {
        _model.Eval();
        var result = new List<float>();
        using var _ = Tensor.NoGrad();
        for (int s = 0; s < images.Count; s += 32)
        {
            var batch = images.Skip(s).Take(32).Select(i => ImageTask.Prepare(_model.Backbone, i, ImageSize, null)).ToArray();
            result.AddRange(_model.Forward(ImageTransforms.Stack(batch)).ToArray());
        }
        return TemperatureScaling.Apply([.. result], Labels.Count, Temperature);
    }

    /// <summary>The predicted label and its probability for one image.</summary>
    public (string Label, float Probability) Predict(FloatImage image)
    {
        var p = PredictProbabilities([image]);
        int best = 0;
        for (int i = 1; i < p.Length; i++) if (p[i] > p[best]) best = i;
        return (Labels[best], p[best]);
    }

    /// <summary>Metrics on labelled images (same keys as text classification).</summary>
    public ClassificationMetrics Evaluate(ImageDataset data)
    {
        var ids = data.Select(e => Labels.TryGetId(e.Label ?? "", out var id) ? id : -1).ToArray();
        return ClassificationMetrics.Compute(ids, PredictProbabilities(data.Select(e => e.Image).ToArray()), Labels.Labels);
    }

    /// <summary>Writes model.zip (atomically), including the backbone's architecture files.</summary>
    public void Save(string path)
    {
        var manifest = new JsonObject
        {
            ["task"] = "image-classification",
            ["labels"] = new JsonArray(Labels.Labels.Select(l => (JsonNode)l).ToArray()),
            ["imageSize"] = ImageSize,
            ["strategy"] = _options?.Strategy?.ToString(),
            ["temperature"] = Temperature,
        };
        var files = new Dictionary<string, byte[]>();
        _model.Backbone.Describe(manifest, files, "backbone/");
        new ModelPackage(manifest, _model.StateDict(), files).Save(path);
    }

    /// <summary>Reads a model.zip written by <see cref="Save"/>.</summary>
    public static ImageClassificationModel Load(string path)
    {
        var (package, labels) = TextTraining.Load(path, "image-classification");
        var backbone = ImageBackbone.FromPackage(package, "backbone/", path);
        var model = new ImageClassifierModule(backbone, labels.Count, new Rng(0));
        model.LoadStateDict(package.Weights.ToDictionary(kv => kv.Key, kv => kv.Value));
        var strategy = package.Manifest["strategy"]?.GetValue<string>() is string st && Enum.TryParse<ImageStrategy>(st, out var parsed) ? parsed : (ImageStrategy?)null;
        double temperature = package.Manifest["temperature"]?.GetValue<double>() ?? 1.0;
        return new ImageClassificationModel(model, labels, package.Manifest["imageSize"]!.GetValue<int>(), null,
            strategy is null ? null : new ImageClassificationOptions { Strategy = strategy }, temperature);
    }
}

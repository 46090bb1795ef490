using System.Diagnostics;
using System.Globalization;
using MlNetFineTune.Data;
using MlNetFineTune.Text;

namespace MlNetFineTune.Cli;

/// <summary>
/// `mlft demo`: fine-tunes the shipped default (GloVe + CNN) on the shipped IMDB subset and trains the same
/// architecture from scratch on the same data, then prints both models' test metrics side by side.
/// </summary>
internal static class Demo
{
    public static int Run(TextWriter stdout, bool quick, string? output)
    {
        string dataDir = FindData();
        string trainPath = Path.Combine(dataDir, "imdb", quick ? "tiny-train.tsv" : "train.tsv.gz");
        string testPath = Path.Combine(dataDir, "imdb", quick ? "tiny-test.tsv" : "test.tsv.gz");
        var ctx = new FineTuneContext(seed: 1);
        var train = ctx.Data.LoadTextClassification(trainPath);
        var test = ctx.Data.LoadTextClassification(testPath);
        stdout.WriteLine($"demo: IMDB sentiment, {train.Count} training reviews ({Path.GetFileName(trainPath)}), {test.Count} test reviews, {Environment.ProcessorCount} cores");
        output ??= Path.Combine(Path.GetTempPath(), "mlft-demo");
        Directory.CreateDirectory(output);

        var rows = new List<(string Name, TextClassificationEvaluation Eval, double Seconds)>();
        foreach (var spec in new[] { "default", "scratch" })
        {
            var clock = Stopwatch.StartNew();
            var options = new TextClassificationOptions { Model = spec, Epochs = quick ? 10 : 4, MaxLength = quick ? 128 : 200 };
            var model = Progress.Run(stdout, spec, p => ctx.TextClassification.Trainers.FineTune(options).Fit(train, null, p));
            var eval = model.Evaluate(test);
            rows.Add((spec == "default" ? "pretrained GloVe (default)" : "same architecture, scratch", eval, clock.Elapsed.TotalSeconds));
            if (spec == "default")
            {
                model.Save(Path.Combine(output, "model.zip"));
                var sample = "A wonderful, moving film with superb acting.";
                var p = model.Predict(sample);
                stdout.WriteLine($"predict \"{sample}\" -> {p.PredictedLabel} ({p.Probability.ToString("0.000", CultureInfo.InvariantCulture)})");
            }
        }

        var ci = CultureInfo.InvariantCulture;
        stdout.WriteLine();
        stdout.WriteLine($"{"model",-30} {"accuracy",9} {"macroF1",9} {"auc",9} {"ece",9} {"seconds",9}");
        foreach (var (name, eval, seconds) in rows)
        {
            var m = eval.Metrics;
            stdout.WriteLine($"{name,-30} {m.Accuracy.ToString("0.0000", ci),9} {m.MacroF1.ToString("0.0000", ci),9} {(m.Auc ?? double.NaN).ToString("0.0000", ci),9} {m.Ece.ToString("0.0000", ci),9} {seconds.ToString("0.0", ci),9}");
        }
        if (quick) stdout.WriteLine("(--quick: 200 training and 100 test reviews, so these figures swing by several points; `mlft demo` runs the real comparison)");
        stdout.WriteLine($"model saved to {Path.Combine(output, "model.zip")}; try: mlft predict --model {Path.Combine(output, "model.zip")} --text \"Great movie\"");
        return 0;
    }

    /// <summary>
    /// `mlft demo images`: the shipped MobileNetV2 with its default strategy (a probe on the layer chosen on the
    /// validation set), the same architecture from scratch, and logistic regression on raw pixels, trained on the
    /// shipped 1,000 Fashion-MNIST images and scored on the shipped 2,000 test images.
    /// </summary>
    public static int RunImages(TextWriter stdout, bool quick, string? output)
    {
        string dir = Path.Combine(FindData(), "fashion-mnist");
        var train = Imaging.ImageDatasets.LoadIdx(Path.Combine(dir, "train-images-idx3-ubyte.gz"), Path.Combine(dir, "train-labels-idx1-ubyte.gz"));
        var test = Imaging.ImageDatasets.LoadIdx(Path.Combine(dir, "t10k-images-idx3-ubyte.gz"), Path.Combine(dir, "t10k-labels-idx1-ubyte.gz"));
        if (quick)
        {
            train = new Imaging.ImageDataset(train.Where((_, i) => i % 5 == 0), train.Labels, train.Source);
            test = new Imaging.ImageDataset(test.Take(400), test.Labels, test.Source);
        }
        int size = quick ? 48 : 96, scratchEpochs = quick ? 2 : 3;   // the whole demo within 5 minutes on 2 cores
        stdout.WriteLine($"demo images: Fashion-MNIST, {train.Count} training images, {test.Count} test images, input {size}x{size}, {Environment.ProcessorCount} cores");
        output ??= Path.Combine(Path.GetTempPath(), "mlft-demo");
        Directory.CreateDirectory(output);
        var ci = CultureInfo.InvariantCulture;
        var rows = new List<(string Name, double Accuracy, double MacroF1, double Ece, double Seconds)>();

        var clock = Stopwatch.StartNew();
        var pixels = Baselines.PixelLogisticRegression.Fit(train);
        var pm = pixels.Evaluate(test);
        rows.Add(("logistic regression, pixels", pm.Accuracy, pm.MacroF1, pm.Ece, clock.Elapsed.TotalSeconds));

        foreach (var (name, options) in new[]
        {
            ("MobileNetV2 pretrained (default)", new Imaging.ImageClassificationOptions { ImageSize = size }),
            ($"MobileNetV2 scratch, {scratchEpochs} epochs", new Imaging.ImageClassificationOptions { Model = "scratch", ImageSize = size, Epochs = scratchEpochs }),
        })
        {
            clock.Restart();
            var model = Progress.Run(stdout, options.Model, p => new Imaging.ImageClassificationTrainer(options, seed: 1).Fit(train, null, p));
            var m = model.Evaluate(test);
            rows.Add((name, m.Accuracy, m.MacroF1, m.Ece, clock.Elapsed.TotalSeconds));
            if (options.Model == "default")
            {
                stdout.WriteLine($"feature layer chosen on the validation set: {model.FeatureLayer}");
                model.Save(Path.Combine(output, "image-model.zip"));
            }
        }

        stdout.WriteLine();
        stdout.WriteLine($"{"model",-34} {"accuracy",9} {"macroF1",9} {"ece",9} {"seconds",9}");
        foreach (var (name, acc, f1, ece, seconds) in rows)
            stdout.WriteLine($"{name,-34} {acc.ToString("0.0000", ci),9} {f1.ToString("0.0000", ci),9} {ece.ToString("0.0000", ci),9} {seconds.ToString("0.0", ci),9}");
        stdout.WriteLine($"model saved to {Path.Combine(output, "image-model.zip")}; try: mlft predict --model {Path.Combine(output, "image-model.zip")} --image photo.png");
        if (!quick) stdout.WriteLine("the full comparison (1,000 images, official 10,000 test images, scratch trained to convergence): scripts/fashion-mnist-benchmark.sh");
        return 0;
    }

    private static string FindData()
    {
        foreach (var start in new[] { Directory.GetCurrentDirectory(), AppContext.BaseDirectory })
            for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
                if (Directory.Exists(Path.Combine(dir.FullName, "data", "imdb"))) return Path.Combine(dir.FullName, "data");
        throw new DirectoryNotFoundException("The shipped data/imdb folder was not found; run mlft from the repository.");
    }
}

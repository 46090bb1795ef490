using System.Globalization;
using MlNetFineTune.Training;
using Spectre.Console;

namespace MlNetFineTune.Cli;

/// <summary>Live progress bars on a terminal; one plain line per report when output is redirected.</summary>
internal static class Progress
{
    public static T Run<T>(TextWriter stdout, string title, Func<IProgress<TrainingProgress>, T> train)
    {
        bool live = ReferenceEquals(stdout, Console.Out) && !Console.IsOutputRedirected && AnsiConsole.Profile.Capabilities.Interactive;
        if (!live)
        {
            var plain = new SyncProgress(p => stdout.WriteLine(Line(title, p)), everySteps: 20);
            return train(plain);
        }
        T result = default!;
        AnsiConsole.Progress()
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn(), new SpinnerColumn())
            .Start(ctx =>
            {
                ProgressTask? bar = null;
                var reporter = new SyncProgress(p =>
                {
                    bar ??= ctx.AddTask(title, maxValue: p.Epochs * p.StepsPerEpoch);
                    bar.Value = (p.Epoch - 1) * p.StepsPerEpoch + p.Step;
                    bar.Description = $"{title} epoch {p.Epoch}/{p.Epochs} loss {p.Loss.ToString("0.0000", CultureInfo.InvariantCulture)}";
                    if (p.ValidationMetrics is not null) AnsiConsole.MarkupLine(Markup.Escape(Line(title, p)));
                }, everySteps: 1);
                result = train(reporter);
            });
        return result;
    }

    internal static string Line(string title, TrainingProgress p)
    {
        var ci = CultureInfo.InvariantCulture;
        if (p.ValidationMetrics is not null)
            return $"{title} epoch {p.Epoch}/{p.Epochs} validation " +
                string.Join(" ", p.ValidationMetrics.Select(kv => $"{kv.Key}={kv.Value.ToString("0.0000", ci)}")) +
                $" elapsed={p.Elapsed.TotalSeconds.ToString("0.0", ci)}s";
        return $"{title} epoch {p.Epoch}/{p.Epochs} step {p.Step}/{p.StepsPerEpoch} loss={p.Loss.ToString("0.0000", ci)} lr={p.LearningRate.ToString("0.######", ci)}" +
            (p.Remaining is TimeSpan eta ? $" eta={eta.TotalSeconds.ToString("0", ci)}s" : "");
    }

    /// <summary>Reports on the calling thread (IProgress's Progress&lt;T&gt; would post to the thread pool).</summary>
    private sealed class SyncProgress(Action<TrainingProgress> report, int everySteps) : IProgress<TrainingProgress>
    {
        public void Report(TrainingProgress value)
        {
            if (value.ValidationMetrics is not null || value.Step % everySteps == 0 || value.Step == value.StepsPerEpoch) report(value);
        }
    }
}

/// <summary>Metric summaries as a table on a terminal and as aligned lines otherwise.</summary>
internal static class Report
{
    private static readonly string[] Keys = ["accuracy", "macroF1", "microF1", "logLoss", "auc", "ece", "entityF1", "entityPrecision", "entityRecall", "tokenAccuracy"];

    public static void Summary(TextWriter stdout, string title, IReadOnlyDictionary<string, object>? metrics)
    {
        if (metrics is null) return;
        var ci = CultureInfo.InvariantCulture;
        var parts = Keys.Where(metrics.ContainsKey).Select(k => $"{k}={Convert.ToDouble(metrics[k], ci).ToString("0.0000", ci)}");
        stdout.WriteLine($"{title}: {string.Join(" ", parts)}");
    }
}

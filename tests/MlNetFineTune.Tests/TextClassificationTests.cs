using MlNetFineTune.Data;
using MlNetFineTune.Text;
using MlNetFineTune.Training;
using Xunit;

namespace MlNetFineTune.Tests;

/// <summary>Shared small data for the end-to-end tests.</summary>
public static class TestData
{
    public static string RepoRoot { get; } = FindRoot();

    private static string FindRoot()
    {
        var env = Environment.GetEnvironmentVariable("MLFT_REPO_ROOT");
        if (!string.IsNullOrEmpty(env)) return env;
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "MlNetFineTune.sln"))) return dir.FullName;
        throw new DirectoryNotFoundException("MlNetFineTune.sln not found above the test folder.");
    }

    public static string Data(params string[] parts) => Path.Combine([RepoRoot, "data", .. parts]);

    private static readonly string[] Good = ["great", "wonderful", "excellent", "superb", "brilliant", "delightful", "moving", "beautiful", "enjoyable", "fantastic"];
    private static readonly string[] Bad = ["awful", "terrible", "boring", "dreadful", "horrible", "dull", "painful", "stupid", "disappointing", "worst"];
    private static readonly string[] Nouns = ["film", "movie", "story", "plot", "cast", "script", "ending", "picture"];
    private static readonly string[] Frames = ["the {n} was {a}", "what a {a} {n}", "i thought the {n} was {a} and {a2}", "honestly , a {a} {n} from start to finish", "{a} acting and a {a2} {n}"];

    /// <summary>Sentiment sentences whose label follows the adjectives: learnable from word vectors in seconds.</summary>
    public static TextDataset Sentiment(int n, int seed)
    {
        var rng = new Random(seed);
        var rows = new List<TextExample>();
        for (int i = 0; i < n; i++)
        {
            bool pos = i % 2 == 0;
            var words = pos ? Good : Bad;
            var text = Frames[rng.Next(Frames.Length)]
                .Replace("{n}", Nouns[rng.Next(Nouns.Length)])
                .Replace("{a2}", words[rng.Next(words.Length)])
                .Replace("{a}", words[rng.Next(words.Length)]);
            rows.Add(new TextExample(text, null, pos ? "positive" : "negative"));
        }
        return new TextDataset(rows, null, $"sentiment-{seed}");
    }
}

public class TextClassificationTests
{
    [Fact]
    public void ReadmeExampleRuns()
    {
        var dir = Directory.CreateTempSubdirectory("mlft-readme-");
        try
        {
            // --- README example (paths adapted to the test's working folder) ---
            var ctx = new FineTuneContext(seed: 1);
            var train = ctx.Data.LoadTextClassification(TestData.Data("imdb", "tiny-train.tsv"));
            var test = ctx.Data.LoadTextClassification(TestData.Data("imdb", "tiny-test.tsv"));
            var trainer = ctx.TextClassification.Trainers.FineTune(new TextClassificationOptions { Model = "default", Epochs = 2 });
            var model = trainer.Fit(train);
            var metrics = ctx.TextClassification.Evaluate(model, test).Metrics;
            Console.WriteLine($"accuracy {metrics.Accuracy:F3}, macro-F1 {metrics.MacroF1:F3}, ECE {metrics.Ece:F3}");
            ctx.Model.Save(model, Path.Combine(dir.FullName, "model.zip"));
            var loaded = ctx.Model.LoadTextClassification(Path.Combine(dir.FullName, "model.zip"));
            var engine = ctx.Model.CreatePredictionEngine(loaded);
            var prediction = engine.Predict("A wonderful, moving film.");
            Console.WriteLine($"{prediction.PredictedLabel} ({prediction.Probability:P1})");
            // --- end of example ---

            Assert.Equal(100, metrics.Count);
            Assert.Contains(prediction.PredictedLabel, new[] { "negative", "positive" });
            Assert.Equal(1f, prediction.Scores.Sum(), 3);
            // The reloaded model predicts exactly what the trained one does.
            Assert.Equal(model.Predict("A wonderful, moving film.").Scores, prediction.Scores);
        }
        finally
        {
            dir.Delete(true);
        }
    }

    [Fact]
    public void PretrainedDefaultLearnsSentimentAndScratchTrainsToo()
    {
        var ctx = new FineTuneContext(seed: 3);
        var train = TestData.Sentiment(160, 1);
        var test = TestData.Sentiment(100, 2);
        var options = new TextClassificationOptions { Epochs = 6, BatchSize = 16, MaxLength = 32 };
        var pretrained = ctx.TextClassification.Trainers.FineTune(options).Fit(train);
        var scratch = ctx.TextClassification.Trainers.FineTune(options with { Model = "scratch" }).Fit(train);
        var p = pretrained.Evaluate(test).Metrics.Accuracy;
        var s = scratch.Evaluate(test).Metrics.Accuracy;
        Assert.True(p >= 0.95, $"pretrained accuracy {p}");
        Assert.Equal("glove", pretrained.BackboneKind);
        Assert.Equal("scratch", scratch.BackboneKind);
        Assert.True(p >= s, $"pretrained {p} should not lose to scratch {s} with 160 labels");
    }

    [Fact]
    public void SameSeedGivesSameMetrics()
    {
        double Run() => new FineTuneContext(seed: 7).TextClassification.Trainers
            .FineTune(new TextClassificationOptions { Epochs = 2, BatchSize = 16, MaxLength = 32 })
            .Fit(TestData.Sentiment(80, 1)).Evaluate(TestData.Sentiment(40, 2)).Metrics.LogLoss;
        Assert.Equal(Run(), Run());
    }

    [Fact]
    public void TemperatureScalingDoesNotWorsenValidationCalibration()
    {
        var model = new FineTuneContext(seed: 5).TextClassification.Trainers
            .FineTune(new TextClassificationOptions { Epochs = 4, BatchSize = 16, MaxLength = 32 })
            .Fit(TestData.Sentiment(200, 1));
        Assert.NotNull(model.ValidationMetrics);
        Assert.True(model.ValidationMetrics!.LogLoss <= model.ValidationBeforeCalibration!.LogLoss + 1e-9);
        Assert.True(model.Temperature > 0);
    }

    [Fact]
    public void ResumeAfterCancellationReachesTheSameResult()
    {
        var dir = Directory.CreateTempSubdirectory("mlft-resume-");
        try
        {
            var train = TestData.Sentiment(120, 1);
            var valid = TestData.Sentiment(40, 9);
            var test = TestData.Sentiment(60, 2);
            TextClassificationOptions Options(bool resume) => new()
            {
                Epochs = 3, BatchSize = 16, MaxLength = 32,
                Training = new TrainingOptions { CheckpointDirectory = dir.FullName, Resume = resume, EarlyStoppingPatience = null },
            };
            var straight = new FineTuneContext(seed: 11).TextClassification.Trainers
                .FineTune(Options(false) with { Training = new TrainingOptions { EarlyStoppingPatience = null } }).Fit(train, valid);

            // Cancel as soon as epoch 1's validation is reported: the epoch-1 checkpoint is on disk.
            using var cts = new CancellationTokenSource();
            var progress = new InlineProgress(p => { if (p.Phase == "validate" && p.Epoch == 1) cts.Cancel(); });
            var interrupted = new FineTuneContext(seed: 11).TextClassification.Trainers.FineTune(Options(false)).Fit(train, valid, progress, cts.Token);
            Assert.True(interrupted.Outcome!.Cancelled);
            Assert.Single(interrupted.Outcome.History);
            Assert.True(File.Exists(Path.Combine(dir.FullName, "checkpoint.safetensors")));

            var resumed = new FineTuneContext(seed: 11).TextClassification.Trainers.FineTune(Options(true)).Fit(train, valid);
            Assert.Equal(1, resumed.Outcome!.ResumedFromEpoch);
            Assert.Equal(straight.Outcome!.History.Select(h => h.TrainLoss), resumed.Outcome.History.Select(h => h.TrainLoss));
            Assert.Equal(straight.Evaluate(test).Metrics.LogLoss, resumed.Evaluate(test).Metrics.LogLoss);
        }
        finally
        {
            dir.Delete(true);
        }
    }

    [Fact]
    public void SingleClassTrainingSetIsRefusedAndNothingIsWritten()
    {
        var rows = Enumerable.Range(0, 10).Select(i => new TextExample($"text {i}", null, "positive"));
        var ex = Assert.Throws<DataValidationException>(() =>
            new FineTuneContext().TextClassification.Trainers.FineTune().Fit(new TextDataset(rows, null, "one-class.tsv")));
        Assert.Contains("one-class.tsv", ex.Message);
        Assert.Contains("positive", ex.Message);
    }

    [Fact]
    public void UnseenLabelsAtEvaluationAreCountedNotScored()
    {
        var model = new FineTuneContext().TextClassification.Trainers
            .FineTune(new TextClassificationOptions { Epochs = 1, BatchSize = 16, MaxLength = 32 }).Fit(TestData.Sentiment(60, 1));
        var test = new TextDataset([
            new TextExample("a great film", null, "positive"),
            new TextExample("an odd film", null, "neutral"),
            new TextExample("a dull film", null, "negative"),
        ], null, "test.tsv");
        var eval = model.Evaluate(test);
        Assert.Equal(1, eval.UnknownLabelCount);
        Assert.Equal(2, eval.Metrics.Count);
    }

    [Fact]
    public void LongTextsAreTruncatedAndCounted()
    {
        var model = new FineTuneContext().TextClassification.Trainers
            .FineTune(new TextClassificationOptions { Epochs = 1, BatchSize = 16, MaxLength = 8 }).Fit(TestData.Sentiment(40, 1));
        var longText = string.Join(' ', Enumerable.Repeat("great", 50));
        var eval = model.Evaluate(new TextDataset([new TextExample(longText, null, "positive"), new TextExample("dull", null, "negative")], null, "t"));
        Assert.Equal(1, eval.TruncatedCount);
    }

    [Fact]
    public void CorruptModelZipGivesAClearError()
    {
        var path = Path.Combine(Path.GetTempPath(), $"mlft-bad-{Guid.NewGuid():N}.zip");
        File.WriteAllBytes(path, [1, 2, 3, 4]);
        try
        {
            var ex = Assert.ThrowsAny<Exception>(() => TextClassificationModel.Load(path));
            Assert.True(ex is InvalidDataException, ex.GetType().Name);
            Assert.Contains(path, ex.Message);
        }
        finally
        {
            File.Delete(path);
        }
    }

    internal sealed class InlineProgress(Action<TrainingProgress> report) : IProgress<TrainingProgress>
    {
        public void Report(TrainingProgress value) => report(value);
    }
}

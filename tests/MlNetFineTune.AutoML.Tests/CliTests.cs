using System.Text.Json;
using MlNetFineTune.AutoML;
using MlNetFineTune.Cli;
using Xunit;

namespace MlNetFineTune.AutoML.Tests;

/// <summary>`mlft automl` through the command tree the executable uses, on the shipped tiny IMDB files.</summary>
public class CliTests
{
    private static (int Code, string Out, string Err) Mlft(params string[] args)
    {
        var o = new StringWriter();
        var e = new StringWriter();
        int code = Commands.Build(o, e).Parse(args).Invoke();
        return (code, o.ToString(), e.ToString());
    }

    private static string Data(params string[] parts) => Path.Combine([TestEnv.Root, "data", .. parts]);

    private static string SmallSpace()
    {
        var file = Path.Combine(TestEnv.TempDir(), "space.json");
        File.WriteAllText(file, "{\"learningRate\": {\"type\": \"loguniform\", \"low\": 0.001, \"high\": 0.01}, \"epochs\": {\"type\": \"int\", \"low\": 1, \"high\": 2}}");
        return file;
    }

    [Fact]
    public void TextSweepWritesModelMetricsCsvAndReportAndResumes()
    {
        var dir = TestEnv.TempDir();
        string[] args = ["automl", "text-classification", "--dataset", Data("imdb", "tiny-train.tsv"), "--test-dataset", Data("imdb", "tiny-test.tsv"),
            "--max-length", "64", "--search-space", SmallSpace(), "--max-trials", "2", "--tuner", "random", "--pruner", "none", "--output", dir];
        var (code, stdout, stderr) = Mlft(args);
        Assert.True(code == 0, stderr + stdout);
        Assert.Contains("leaderboard (2 trials, 2 run by this process", stdout);
        foreach (var f in new[] { "model.zip", "metrics.json", "trials.csv", "report.html", "study.db" }) Assert.True(File.Exists(Path.Combine(dir, f)), f);
        using (var metrics = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "metrics.json"))))
        {
            var keys = metrics.RootElement.EnumerateObject().Select(p => p.Name).ToArray();
            Assert.Equal(new[] { "task", "model", "validation", "validationBeforeCalibration", "temperature", "test", "bestEpoch", "trainSeconds" }, keys);
            Assert.Equal("text-classification", metrics.RootElement.GetProperty("task").GetString());
        }
        Assert.Equal(3, File.ReadAllLines(Path.Combine(dir, "trials.csv")).Length);
        // The same command again: the study is complete, nothing reruns; the best configuration is retrained for model.zip.
        File.Delete(Path.Combine(dir, "model.zip"));
        (code, stdout, stderr) = Mlft(args);
        Assert.True(code == 0, stderr + stdout);
        Assert.Contains("leaderboard (2 trials, 0 run by this process", stdout);
        Assert.Contains("retraining trial", stdout);
        Assert.True(File.Exists(Path.Combine(dir, "model.zip")));
        // The model evaluates like any model.zip.
        (code, stdout, stderr) = Mlft("evaluate", "--model", Path.Combine(dir, "model.zip"), "--dataset", Data("imdb", "tiny-test.tsv"));
        Assert.True(code == 0, stderr);
    }

    [Theory]
    [InlineData("--tuner", "bayes", "--tuner 'bayes'")]
    [InlineData("--pruner", "hyperband", "--pruner 'hyperband'")]
    [InlineData("--storage", "postgres://u:p@127.0.0.1:1/db?timeout=2", "cannot connect")]
    public void BadOptionsExitTwoWithAClearMessage(string option, string value, string expected)
    {
        var (code, _, stderr) = Mlft("automl", "text-classification", "--dataset", Data("imdb", "tiny-train.tsv"), "--max-trials", "1",
            option, value, "--output", TestEnv.TempDir());
        Assert.Equal(2, code);
        Assert.Contains(expected, stderr);
    }

    [Fact]
    public void UnknownParameterInTheSpaceFileExitsTwo()
    {
        var file = Path.Combine(TestEnv.TempDir(), "space.json");
        File.WriteAllText(file, "{\"dropout\": {\"type\": \"uniform\", \"low\": 0, \"high\": 0.5}}");
        var (code, _, stderr) = Mlft("automl", "text-classification", "--dataset", Data("imdb", "tiny-train.tsv"), "--max-trials", "1",
            "--search-space", file, "--output", TestEnv.TempDir());
        Assert.Equal(2, code);
        Assert.Contains("unknown parameter 'dropout'", stderr);
        Assert.Contains(file, stderr);
    }

    [Fact]
    public void NewerStorageFileExitsTwo()
    {
        var db = Path.Combine(TestEnv.TempDir(), "newer.db");
        StudyStorage.Open("sqlite:" + db).SetSchemaVersionForTests(99);
        var (code, _, stderr) = Mlft("automl", "text-classification", "--dataset", Data("imdb", "tiny-train.tsv"), "--max-trials", "1",
            "--storage", "sqlite:" + db, "--output", TestEnv.TempDir());
        Assert.Equal(2, code);
        Assert.Contains("newer mlft", stderr);
    }
}

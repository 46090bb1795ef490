using System.CommandLine;
using System.Text.Json;
using MlNetFineTune.Cli;
using Xunit;

namespace MlNetFineTune.Cli.Tests;

/// <summary>The mlft commands against the shipped data, through the same command tree the executable uses.</summary>
public class CliTests
{
    private static readonly string Root = FindRoot();

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "MlNetFineTune.sln"))) return dir.FullName;
        throw new DirectoryNotFoundException("MlNetFineTune.sln not found.");
    }

    private static (int Code, string Out, string Err) Mlft(params string[] args)
    {
        var o = new StringWriter();
        var e = new StringWriter();
        int code = Commands.Build(o, e).Parse(args).Invoke();
        return (code, o.ToString(), e.ToString());
    }

    private static string Data(params string[] parts) => Path.Combine([Root, "data", .. parts]);

    [Fact]
    public void TrainEvaluatePredictRoundTrip()
    {
        var dir = Directory.CreateTempSubdirectory("mlft-cli-");
        try
        {
            var (code, stdout, stderr) = Mlft("text-classification", "--dataset", Data("imdb", "tiny-train.tsv"), "--test-dataset", Data("imdb", "tiny-test.tsv"),
                "--label-col", "label", "--text-col", "text", "--epochs", "1", "--max-length", "64", "--output", dir.FullName);
            Assert.True(code == 0, stderr);
            Assert.Contains("test: accuracy=", stdout);
            using var metrics = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir.FullName, "metrics.json")));
            var root = metrics.RootElement;
            Assert.Equal("text-classification", root.GetProperty("task").GetString());
            foreach (var key in new[] { "accuracy", "macroF1", "microF1", "logLoss", "auc", "ece" })
                Assert.True(root.GetProperty("test").TryGetProperty(key, out _), key);
            Assert.True(root.GetProperty("bestEpoch").GetInt32() >= 1);
            Assert.True(root.GetProperty("trainSeconds").GetDouble() > 0);

            var model = Path.Combine(dir.FullName, "model.zip");
            var (ec, eout, eerr) = Mlft("evaluate", "--model", model, "--dataset", Data("imdb", "tiny-test.tsv"), "--json");
            Assert.True(ec == 0, eerr);
            using var ej = JsonDocument.Parse(eout);
            Assert.Equal(root.GetProperty("test").GetProperty("accuracy").GetDouble(), ej.RootElement.GetProperty("accuracy").GetDouble(), 9);

            var (pc, pout, perr) = Mlft("predict", "--model", model, "--text", "A great film", "--json");
            Assert.True(pc == 0, perr);
            using var pj = JsonDocument.Parse(pout.Trim());
            Assert.Contains(pj.RootElement.GetProperty("label").GetString(), new[] { "negative", "positive" });
        }
        finally
        {
            dir.Delete(true);
        }
    }

    [Fact]
    public void NerCommandWritesMetrics()
    {
        var dir = Directory.CreateTempSubdirectory("mlft-cli-ner-");
        try
        {
            var (code, _, stderr) = Mlft("ner", "--dataset", Data("ner", "validation.conll"), "--test-dataset", Data("ner", "test.conll"), "--epochs", "1", "--output", dir.FullName);
            Assert.True(code == 0, stderr);
            using var metrics = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir.FullName, "metrics.json")));
            foreach (var key in new[] { "entityF1", "entityPrecision", "entityRecall", "perType" })
                Assert.True(metrics.RootElement.GetProperty("test").TryGetProperty(key, out _), key);
            var (pc, pout, perr) = Mlft("predict", "--model", Path.Combine(dir.FullName, "model.zip"), "--text", "Anna Smith lives in Paris", "--json");
            Assert.True(pc == 0, perr);
            Assert.Contains("entities", pout);

            // A CoNLL file: one "word, gold, predicted" line per word, a blank line between sentences.
            var (cc, cout, cerr) = Mlft("predict", "--model", Path.Combine(dir.FullName, "model.zip"), "--dataset", Data("ner", "validation.conll"));
            Assert.True(cc == 0, cerr);
            var gold = File.ReadAllText(Data("ner", "validation.conll")).Replace("\r\n", "\n").TrimEnd().Split("\n\n");
            var printed = cout.Replace("\r\n", "\n").TrimEnd().Split("\n\n");
            Assert.Equal(gold.Length, printed.Length);
            var goldLines = gold[0].Split('\n');
            var lines = printed[0].Split('\n');
            Assert.Equal(goldLines.Length, lines.Length);
            for (int i = 0; i < lines.Length; i++)
            {
                var cols = lines[i].Split('\t');
                Assert.Equal(3, cols.Length);
                Assert.Equal(goldLines[i], cols[0] + "\t" + cols[1]);
            }
        }
        finally
        {
            dir.Delete(true);
        }
    }

    [Fact]
    public void ImageClassificationOnShippedFashionMnist()
    {
        var dir = Directory.CreateTempSubdirectory("mlft-cli-img-");
        try
        {
            Environment.SetEnvironmentVariable("MLFT_FEATURE_CACHE", Path.Combine(dir.FullName, "cache"));
            var images = Data("fashion-mnist", "train-images-idx3-ubyte.gz");
            var (code, stdout, stderr) = Mlft("image-classification", "--dataset", images, "--test-dataset", images,
                "--image-size", "48", "--feature-layer", "block_6_expand_relu", "--epochs", "5", "--output", dir.FullName);
            Assert.True(code == 0, stderr);
            Assert.Contains("test: accuracy=", stdout);
            using var metrics = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir.FullName, "metrics.json")));
            Assert.Equal("image-classification", metrics.RootElement.GetProperty("task").GetString());
            Assert.True(metrics.RootElement.GetProperty("test").GetProperty("accuracy").GetDouble() > 0.5);

            var png = Directory.GetFiles(Path.Combine(Root, "tests", "MlNetFineTune.Tests", "Imaging", "fixtures", "png"), "*.png").Order().First();
            var (pc, pout, perr) = Mlft("predict", "--model", Path.Combine(dir.FullName, "model.zip"), "--image", png, "--json");
            Assert.True(pc == 0, perr);
            Assert.Contains("\"label\"", pout);
        }
        finally
        {
            Environment.SetEnvironmentVariable("MLFT_FEATURE_CACHE", null);
            dir.Delete(true);
        }
    }

    [Fact]
    public void BadInputExitsWithTwoAndNamesTheFileAndLine()
    {
        var dir = Directory.CreateTempSubdirectory("mlft-cli-bad-");
        try
        {
            var bad = Path.Combine(dir.FullName, "bad.csv");
            File.WriteAllText(bad, "label,text\npositive,fine\nnegative,\"unbalanced\n");
            var output = Path.Combine(dir.FullName, "out");
            var (code, _, stderr) = Mlft("text-classification", "--dataset", bad, "--output", output);
            Assert.Equal(2, code);
            Assert.Contains("bad.csv:3", stderr);
            Assert.False(File.Exists(Path.Combine(output, "model.zip")));

            var oneClass = Path.Combine(dir.FullName, "one.tsv");
            File.WriteAllText(oneClass, "label\ttext\npositive\ta\npositive\tb\n");
            var (code2, _, err2) = Mlft("text-classification", "--dataset", oneClass, "--output", output);
            Assert.Equal(2, code2);
            Assert.Contains("one.tsv", err2);
            Assert.False(File.Exists(Path.Combine(output, "model.zip")));

            var (code3, _, err3) = Mlft("evaluate", "--model", Path.Combine(dir.FullName, "missing.zip"), "--dataset", bad);
            Assert.Equal(2, code3);
            Assert.Contains("missing.zip", err3);
        }
        finally
        {
            dir.Delete(true);
        }
    }

    [Fact]
    public void DemoQuickRuns()
    {
        var dir = Directory.CreateTempSubdirectory("mlft-demo-");
        try
        {
            var (code, stdout, stderr) = Mlft("demo", "--quick", "--output", dir.FullName);
            Assert.True(code == 0, stderr);
            Assert.Contains("pretrained GloVe (default)", stdout);
            Assert.Contains("same architecture, scratch", stdout);
            Assert.True(File.Exists(Path.Combine(dir.FullName, "model.zip")));
        }
        finally
        {
            dir.Delete(true);
        }
    }

    [Fact]
    public void DemoImagesQuickRuns()
    {
        var dir = Directory.CreateTempSubdirectory("mlft-demo-img-");
        try
        {
            Environment.SetEnvironmentVariable("MLFT_FEATURE_CACHE", Path.Combine(dir.FullName, "cache"));
            var (code, stdout, stderr) = Mlft("demo", "images", "--quick", "--output", dir.FullName);
            Assert.True(code == 0, stderr);
            Assert.Contains("logistic regression, pixels", stdout);
            Assert.Contains("MobileNetV2 pretrained (default)", stdout);
            Assert.Contains("MobileNetV2 scratch", stdout);
            Assert.True(File.Exists(Path.Combine(dir.FullName, "image-model.zip")));
            Assert.Equal(2, Mlft("demo", "pictures").Code);
        }
        finally
        {
            Environment.SetEnvironmentVariable("MLFT_FEATURE_CACHE", null);
            dir.Delete(true);
        }
    }

    [Fact]
    public void ImageFolderWithABadFileFailsWithItsNameOrSkipsIt()
    {
        var dir = Directory.CreateTempSubdirectory("mlft-cli-bad-");
        try
        {
            Environment.SetEnvironmentVariable("MLFT_FEATURE_CACHE", Path.Combine(dir.FullName, "cache"));
            var images = Path.Combine(dir.FullName, "images");
            var pngs = Directory.GetFiles(Path.Combine(Root, "tests", "MlNetFineTune.Tests", "Imaging", "fixtures", "png"), "ct2_bd8*.png").Order().ToArray();
            var jpgs = Directory.GetFiles(Path.Combine(Root, "tests", "MlNetFineTune.Tests", "Imaging", "fixtures", "jpeg"), "baseline_q*.jpg").Order().ToArray();
            Directory.CreateDirectory(Path.Combine(images, "png"));
            Directory.CreateDirectory(Path.Combine(images, "jpg"));
            foreach (var f in pngs.Take(4)) File.Copy(f, Path.Combine(images, "png", Path.GetFileName(f)));
            foreach (var f in jpgs.Take(4)) File.Copy(f, Path.Combine(images, "jpg", Path.GetFileName(f)));
            var bad = Path.Combine(images, "jpg", "zz-truncated.jpg");
            File.WriteAllBytes(bad, File.ReadAllBytes(jpgs[0])[..200]);
            string[] common = ["image-classification", "--dataset", images, "--image-size", "32", "--feature-layer", "block_6_expand_relu", "--epochs", "2", "--output", Path.Combine(dir.FullName, "out")];

            var (code, _, stderr) = Mlft(common);
            Assert.Equal(2, code);
            Assert.Contains(bad, stderr);
            Assert.False(File.Exists(Path.Combine(dir.FullName, "out", "model.zip")));

            (code, _, stderr) = Mlft([.. common, "--skip-bad-images"]);
            Assert.True(code == 0, stderr);
            Assert.Contains(bad, stderr);
            using var metrics = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir.FullName, "out", "metrics.json")));
            Assert.Equal(1, metrics.RootElement.GetProperty("skippedImages").GetInt32());
            Assert.Equal("probe", metrics.RootElement.GetProperty("strategy").GetString());
            Assert.True(metrics.RootElement.GetProperty("temperature").GetDouble() > 0);
        }
        finally
        {
            Environment.SetEnvironmentVariable("MLFT_FEATURE_CACHE", null);
            dir.Delete(true);
        }
    }
}

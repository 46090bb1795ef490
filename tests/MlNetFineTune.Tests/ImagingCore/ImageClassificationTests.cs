using MlNetFineTune.Imaging;
using MlNetFineTune.Tensors;
using Xunit;

namespace MlNetFineTune.Tests;

[Collection("feature-cache")] // tests here set MLFT_FEATURE_CACHE or write to the cache: not in parallel
public class ImageClassificationTests
{
    // Four kinds of synthetic 48x48 gray images: horizontal stripes, vertical stripes, checkerboard, a bright blob.
    internal static ImageDataset Synthetic(int perClass, int seed)
    {
        var rng = new Random(seed);
        var kinds = new[] { "hstripes", "vstripes", "checker", "blob" };
        var list = new List<ImageExample>();
        for (int i = 0; i < perClass; i++)
            for (int k = 0; k < kinds.Length; k++)
            {
                int period = 4 + rng.Next(5), phase = rng.Next(8);
                var d = new float[48 * 48];
                int cx = 12 + rng.Next(24), cy = 12 + rng.Next(24);
                for (int y = 0; y < 48; y++)
                    for (int x = 0; x < 48; x++)
                    {
                        bool on = k switch
                        {
                            0 => (y + phase) / period % 2 == 0,
                            1 => (x + phase) / period % 2 == 0,
                            2 => ((x + phase) / period + (y + phase) / period) % 2 == 0,
                            _ => (x - cx) * (x - cx) + (y - cy) * (y - cy) < 100,
                        };
                        d[y * 48 + x] = Math.Clamp((on ? 200 : 40) + rng.Next(-20, 21), 0, 255);
                    }
                list.Add(new ImageExample(new FloatImage(1, 48, 48, d), kinds[k]));
            }
        return new ImageDataset(list, null, $"synthetic-{seed}");
    }

    [Fact]
    public void ProbeOnTheShippedMobileNetSeparatesSyntheticImagesAndRoundTrips()
    {
        Environment.SetEnvironmentVariable("MLFT_FEATURE_CACHE", Path.Combine(Path.GetTempPath(), "mlft-test-features"));
        var train = Synthetic(8, 1);
        var test = Synthetic(5, 2);
        var trainer = new ImageClassificationTrainer(new ImageClassificationOptions { ImageSize = 64, FeatureLayer = "block_13_expand_relu", Epochs = 40 }, seed: 1);
        var model = trainer.Fit(train);
        var accuracy = model.Evaluate(test).Accuracy;
        Assert.True(accuracy >= 0.8, $"probe accuracy {accuracy}");
        var path = Path.Combine(Path.GetTempPath(), $"mlft-img-{Guid.NewGuid():N}.zip");
        try
        {
            model.Save(path);
            var loaded = ImageClassificationModel.Load(path);
            Assert.Equal(model.PredictProbabilities([test[0].Image]), loaded.PredictProbabilities([test[0].Image]));
            Assert.Equal("block_13_expand_relu", loaded.FeatureLayer);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void SecondProbeReusesTheFeatureCache()
    {
        var cache = Path.Combine(Path.GetTempPath(), $"mlft-cache-{Guid.NewGuid():N}");
        Environment.SetEnvironmentVariable("MLFT_FEATURE_CACHE", cache);
        try
        {
            var train = Synthetic(4, 5);
            var validation = Synthetic(2, 6);
            var options = new ImageClassificationOptions { ImageSize = 48, FeatureLayer = "block_6_expand_relu", Epochs = 2 };
            int before = FeatureCache.BackboneRuns;
            new ImageClassificationTrainer(options, seed: 1).Fit(train, validation);
            Assert.Equal(before + 3, FeatureCache.BackboneRuns);      // train, mirrored train and validation features computed once
            var second = new ImageClassificationTrainer(options, seed: 1).Fit(train, validation);
            Assert.Equal(before + 3, FeatureCache.BackboneRuns);      // no backbone forward the second time
            Assert.Equal(3, Directory.GetFiles(cache).Length);
            Assert.NotNull(second.Outcome);
        }
        finally
        {
            Environment.SetEnvironmentVariable("MLFT_FEATURE_CACHE", null);
            if (Directory.Exists(cache)) Directory.Delete(cache, true);
        }
    }

    [Fact]
    public void OneClassIsRefused()
    {
        var one = new ImageDataset(Synthetic(2, 1).Where(e => e.Label == "blob"), null, "blobs-only");
        var ex = Assert.Throws<MlNetFineTune.Data.DataValidationException>(() => new ImageClassificationTrainer(new ImageClassificationOptions(), 1).Fit(one));
        Assert.Contains("blobs-only", ex.Message);
    }

    [Fact]
    public void FineTuneAndPartialTrainTheBackbone()
    {
        var train = Synthetic(3, 1);
        foreach (var strategy in new[] { ImageStrategy.FineTune, ImageStrategy.Partial })
        {
            var model = new ImageClassificationTrainer(new ImageClassificationOptions
            {
                Model = "default", Strategy = strategy, ImageSize = 48, FeatureLayer = "block_6_expand_relu", Epochs = 1, BatchSize = 6, PartialLayers = 3,
            }, seed: 1).Fit(train, Synthetic(1, 3));
            Assert.Single(model.Outcome!.History);
            Assert.True(double.IsFinite(model.Outcome.History[0].TrainLoss));
        }
    }

    [Fact]
    public void ScratchIsTheDefaultArchitectureFreshlyInitialisedAndFineTuned()
    {
        var train = Synthetic(2, 11);
        var model = new ImageClassificationTrainer(new ImageClassificationOptions { Model = "scratch", ImageSize = 32, Epochs = 1, BatchSize = 8 }, seed: 4)
            .Fit(train, Synthetic(1, 12));
        Assert.Equal(ImageStrategy.FineTune, model.Strategy);                 // a probe on random features is not the default

        var shipped = ImageBackbone.Create("default", null, new MlNetFineTune.Tensors.Rng(1));
        var fresh = ImageBackbone.Create("scratch", null, new MlNetFineTune.Tensors.Rng(1));
        var a = shipped.Module.StateDict();
        var b = fresh.Module.StateDict();
        Assert.Equal(a.Keys.Order(), b.Keys.Order());                          // same architecture, same parameter names
        foreach (var key in a.Keys) Assert.Equal(a[key].Shape, b[key].Shape);
        var conv = a.Keys.First(k => k.EndsWith("weight", StringComparison.Ordinal) && a[k].Shape.Count == 4);
        Assert.NotEqual(a[conv].ToArray(), b[conv].ToArray());                // but not the pretrained weights
        var again = ImageBackbone.Create("scratch", null, new MlNetFineTune.Tensors.Rng(1)).Module.StateDict();
        Assert.Equal(b[conv].ToArray(), again[conv].ToArray());               // reproducible from the seed

        var path = Path.Combine(Path.GetTempPath(), $"mlft-scratch-{Guid.NewGuid():N}.zip");
        try
        {
            model.Save(path);
            var loaded = ImageClassificationModel.Load(path);
            var images = train.Select(e => e.Image).ToArray();
            Assert.Equal(model.PredictProbabilities(images), loaded.PredictProbabilities(images));
            Assert.Equal(model.Temperature, loaded.Temperature);
        }
        finally { File.Delete(path); }
    }

    [Fact]
    public void TemperatureIsFittedOnValidationAndReported()
    {
        var model = new ImageClassificationTrainer(new ImageClassificationOptions { ImageSize = 48, FeatureLayer = "block_6_expand_relu", Epochs = 20 }, seed: 2)
            .Fit(Synthetic(4, 21), Synthetic(3, 22));
        Assert.NotNull(model.ValidationBeforeCalibration);
        Assert.NotNull(model.ValidationMetrics);
        Assert.NotEqual(1.0, model.Temperature);
        Assert.True(model.ValidationMetrics!.LogLoss <= model.ValidationBeforeCalibration!.LogLoss + 1e-9);
        Assert.Equal(model.ValidationBeforeCalibration.Accuracy, model.ValidationMetrics.Accuracy);
        var off = new ImageClassificationTrainer(new ImageClassificationOptions { ImageSize = 48, FeatureLayer = "block_6_expand_relu", Epochs = 20, CalibrateTemperature = false }, seed: 2)
            .Fit(Synthetic(4, 21), Synthetic(3, 22));
        Assert.Equal(1.0, off.Temperature);
    }

    [Fact]
    public void ProbeChoosesItsL2StrengthByCrossValidationUnlessGiven()
    {
        var train = Synthetic(5, 31);
        var validation = Synthetic(2, 32);
        var auto = new ImageClassificationTrainer(new ImageClassificationOptions { ImageSize = 48, FeatureLayer = "block_6_expand_relu" }, seed: 1);
        var model = auto.Fit(train, validation);
        Assert.Contains(auto.ChosenProbeC!.Value, new[] { 0.01, 0.03, 0.1, 0.3, 1, 3 });
        Assert.True(model.ValidationMetrics!.Accuracy > 0.5);

        var given = new ImageClassificationTrainer(new ImageClassificationOptions { ImageSize = 48, FeatureLayer = "block_6_expand_relu", ProbeC = 0.5, ProbeFlip = false }, seed: 1);
        int before = FeatureCache.BackboneRuns;
        given.Fit(train, validation);
        Assert.Equal(0.5, given.ChosenProbeC);
        Assert.True(FeatureCache.BackboneRuns - before <= 2);   // no mirrored features without ProbeFlip (cached ones are not recomputed)

        // The loop solver still trains the head with the shared loop (epochs, early stopping).
        var loop = new ImageClassificationTrainer(new ImageClassificationOptions { ImageSize = 48, FeatureLayer = "block_6_expand_relu", ProbeSolver = ProbeSolver.Loop, Epochs = 3 }, seed: 1)
            .Fit(train, validation);
        Assert.Equal(3, loop.Outcome!.History.Count);
    }
}

using System.CommandLine;
using MlNetFineTune.Imaging;

namespace MlNetFineTune.Cli;

/// <summary>`mlft image-classification`.</summary>
internal static class ImageCommand
{
    /// <summary>--strategy: probe, finetune (fine-tune) or partial; null leaves the trainer's default.</summary>
    internal static ImageStrategy? ParseStrategy(string? value) => value?.ToLowerInvariant() switch
    {
        null => null,
        "probe" => ImageStrategy.Probe,
        "finetune" or "fine-tune" => ImageStrategy.FineTune,
        "partial" => ImageStrategy.Partial,
        var s => throw new ArgumentException($"--strategy '{s}' is not one of probe, finetune, partial."),
    };

    /// <summary>The training set (a folder with train/ validation/ test/ gives all three) and the optional others.</summary>
    internal static (ImageDataset Train, ImageDataset? Validation, ImageDataset? Test) LoadSets(string path, string? labels,
        string? validation, string? validationLabels, string? test, string? testLabels, bool skipBadImages)
    {
        var load = new ImageLoadOptions { SkipBadImages = skipBadImages };
        ImageDataset train;
        ImageDataset? valid = null, testSet = null;
        if (Directory.Exists(path) && Directory.Exists(Path.Combine(path, "train")))
            (train, valid, testSet) = ImageDatasets.LoadFolderSplits(path, load);
        else train = ImageDatasets.Load(path, labels, load);
        if (validation is not null) valid = ImageDatasets.Load(validation, validationLabels, load, train.Labels);
        if (test is not null) testSet = ImageDatasets.Load(test, testLabels, load, train.Labels);
        return (train, valid, testSet);
    }

    public static Command Build(TextWriter stdout, TextWriter stderr)
    {
        var dataset = new Option<string>("--dataset") { Description = "Image folder (root/<class>/<file>, optional train/ validation/ test/) or an IDX images file (.gz ok).", Required = true };
        var labels = new Option<string?>("--labels") { Description = "IDX labels file (default: the images file's labels-idx1 twin)." };
        var validation = new Option<string?>("--validation-dataset") { Description = "Validation images (default: a stratified 10% of the training images)." };
        var validationLabels = new Option<string?>("--validation-labels");
        var test = new Option<string?>("--test-dataset") { Description = "Test images." };
        var testLabels = new Option<string?>("--test-labels");
        var model = new Option<string?>("--model") { Description = "default (shipped MobileNetV2), inception_v3, scratch, a TF.js folder, or a torchvision .pth." };
        var strategy = new Option<string?>("--strategy") { Description = "probe, finetune or partial (default: probe, or finetune for --model scratch)." };
        var skipBad = new Option<bool>("--skip-bad-images") { Description = "Leave out images that do not decode (counted and listed) instead of failing." };
        var size = new Option<int>("--image-size") { Description = "Network input side.", DefaultValueFactory = _ => 96 };
        var layer = new Option<string?>("--feature-layer") { Description = "Keras layer to take features from (default: chosen on the validation set for a probe)." };
        var epochs = new Option<int?>("--epochs");
        var batch = new Option<int?>("--batch-size");
        var lr = new Option<double?>("--learning-rate");
        var seed = new Option<int>("--seed") { DefaultValueFactory = _ => 1 };
        var output = new Option<string>("--output") { Description = "Folder for model.zip and metrics.json.", Required = true };
        var cmd = new Command("image-classification", "Fine-tune an image classifier (probe, finetune or partial).")
        { dataset, labels, validation, validationLabels, test, testLabels, model, strategy, size, layer, epochs, batch, lr, seed, skipBad, output };
        cmd.SetAction(r => Commands.Run(stderr, () =>
        {
            var path = r.GetValue(dataset)!;
            var (train, valid, testSet) = LoadSets(path, r.GetValue(labels), r.GetValue(validation), r.GetValue(validationLabels),
                r.GetValue(test), r.GetValue(testLabels), r.GetValue(skipBad));
            var skipped = new[] { train, valid, testSet }.Where(d => d is not null).SelectMany(d => d!.Skipped).ToList();
            foreach (var bad in skipped) stderr.WriteLine($"skipped: {bad.Reason}");
            if (skipped.Count > 0) stderr.WriteLine($"warning: {skipped.Count} bad images skipped (--skip-bad-images).");
            var options = new ImageClassificationOptions
            {
                Model = r.GetValue(model) ?? "default",
                Strategy = ParseStrategy(r.GetValue(strategy)),
                ImageSize = r.GetValue(size),
                FeatureLayer = r.GetValue(layer),
                Epochs = r.GetValue(epochs),
                BatchSize = r.GetValue(batch),
                LearningRate = r.GetValue(lr),
            };
            var dir = r.GetValue(output)!;
            Directory.CreateDirectory(dir);
            var trained = Progress.Run(stdout, "image-classification", p => new ImageClassificationTrainer(options, r.GetValue(seed)).Fit(train, valid, p));
            var metrics = new Dictionary<string, object?>
            {
                ["task"] = "image-classification",
                ["model"] = options.Model,
                ["strategy"] = trained.Strategy?.ToString().ToLowerInvariant(),
                ["featureLayer"] = trained.FeatureLayer,
                ["validation"] = trained.ValidationMetrics?.ToDictionary(),
                ["validationBeforeCalibration"] = trained.ValidationBeforeCalibration?.ToDictionary(),
                ["temperature"] = trained.Temperature,
                ["skippedImages"] = skipped.Count,
            };
            if (testSet is not null) metrics["test"] = trained.Evaluate(testSet).ToDictionary();
            metrics["bestEpoch"] = trained.Outcome?.BestEpoch;
            metrics["trainSeconds"] = Math.Round(trained.Outcome?.TrainSeconds ?? 0, 2);
            return Commands.WriteOutputs(stdout, dir, metrics, trained.Save);
        }));
        return cmd;
    }
}

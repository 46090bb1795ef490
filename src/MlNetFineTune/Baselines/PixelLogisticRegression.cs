using MlNetFineTune.Data;
using MlNetFineTune.Imaging;
using MlNetFineTune.Metrics;

namespace MlNetFineTune.Baselines;

/// <summary>
/// The classical image baseline: multinomial logistic regression on raw pixels scaled to [0, 1] (L2, C = 1 by
/// default, as scikit-learn's <c>LogisticRegression()</c>). All images must share one size and channel count
/// (IDX data does); it is the yardstick a pretrained backbone has to beat.
/// </summary>
public sealed class PixelLogisticRegression
{
    private readonly int _channels, _height, _width;

    private PixelLogisticRegression(LogisticRegression classifier, LabelVocabulary labels, int channels, int height, int width)
    {
        Classifier = classifier;
        Labels = labels;
        _channels = channels;
        _height = height;
        _width = width;
    }

    /// <summary>The fitted classifier.</summary>
    public LogisticRegression Classifier { get; }

    /// <summary>Label names by id (the training set's).</summary>
    public LabelVocabulary Labels { get; }

    /// <summary>Fits on every image of <paramref name="train"/>.</summary>
    public static PixelLogisticRegression Fit(ImageDataset train, LogisticRegressionOptions? options = null)
    {
        if (train.Count == 0) throw new DataValidationException(train.Source, "has no images");
        if (train.Labels.Count < 2) throw new DataValidationException(train.Source, $"classification needs at least two labels, found {train.Labels.Count}");
        var first = train[0].Image;
        var y = train.Select(e => train.Labels.GetId(e.Label ?? throw new DataValidationException(train.Source, "an image has no label"))).ToArray();
        var x = Pixels(train.Select(e => e.Image).ToArray(), first.Channels, first.Height, first.Width, train.Source);
        return new PixelLogisticRegression(LogisticRegression.Fit(x, y, train.Labels.Count, options), train.Labels, first.Channels, first.Height, first.Width);
    }

    /// <summary>Class probabilities per image, [N, C] flattened.</summary>
    public float[] PredictProbabilities(IReadOnlyList<FloatImage> images, string source = "<images>") =>
        Classifier.PredictProbabilities(Pixels(images, _channels, _height, _width, source));

    /// <summary>Metrics on labelled images; labels training never saw count as errors.</summary>
    public ClassificationMetrics Evaluate(ImageDataset data)
    {
        var ids = data.Select(e => Labels.TryGetId(e.Label ?? "", out var id) ? id : -1).ToArray();
        return ClassificationMetrics.Compute(ids, PredictProbabilities(data.Select(e => e.Image).ToArray(), data.Source), Labels.Labels);
    }

    private static SparseMatrix Pixels(IReadOnlyList<FloatImage> images, int channels, int height, int width, string source)
    {
        int d = channels * height * width;
        var vals = new double[images.Count * d];
        for (int i = 0; i < images.Count; i++)
        {
            var img = images[i];
            if (img.Channels != channels || img.Height != height || img.Width != width)
                throw new DataValidationException(source, $"image {i} is {img.Channels}x{img.Height}x{img.Width} but the pixel baseline was fitted on {channels}x{height}x{width} images (it needs one size)");
            for (int j = 0; j < d; j++) vals[i * d + j] = img.Data[j] / 255.0;
        }
        return SparseMatrix.FromDense(images.Count, d, vals);
    }
}

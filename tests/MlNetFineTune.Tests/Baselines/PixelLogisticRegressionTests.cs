using MlNetFineTune.Baselines;
using MlNetFineTune.Data;
using MlNetFineTune.Imaging;
using Xunit;

namespace MlNetFineTune.Tests.Baselines;

public class PixelLogisticRegressionTests
{
    [Fact]
    public void SeparatesSyntheticImagesAndScoresUnseenOnes()
    {
        var train = ImageClassificationTests.Synthetic(8, 1);
        var test = ImageClassificationTests.Synthetic(5, 2);
        var lr = PixelLogisticRegression.Fit(train);
        Assert.Equal(train.Labels.Labels, lr.Labels.Labels);
        Assert.Equal(1.0, lr.Evaluate(train).Accuracy);          // 2,304 pixels, 32 images: separable
        var m = lr.Evaluate(test);
        Assert.True(m.Accuracy > 0.4, $"accuracy {m.Accuracy} on unseen synthetic images (chance 0.25)");
        var p = lr.PredictProbabilities([test[0].Image]);
        Assert.Equal(4, p.Length);
        Assert.Equal(1.0, p.Sum(), 1e-5);
    }

    [Fact]
    public void ImagesOfAnotherSizeAreRefusedByName()
    {
        var train = ImageClassificationTests.Synthetic(2, 1);
        var lr = PixelLogisticRegression.Fit(train);
        var other = new ImageDataset([new ImageExample(new FloatImage(1, 20, 20, new float[400]), "blob")], train.Labels, "small.idx");
        var e = Assert.Throws<DataValidationException>(() => lr.Evaluate(other));
        Assert.Contains("small.idx", e.Message);
        Assert.Contains("1x20x20", e.Message);
        var mixed = new ImageDataset([.. train, new ImageExample(new FloatImage(1, 20, 20, new float[400]), "blob")], train.Labels, "mixed");
        Assert.Throws<DataValidationException>(() => PixelLogisticRegression.Fit(mixed));
    }
}

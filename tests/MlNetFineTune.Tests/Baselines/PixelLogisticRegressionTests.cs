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

    [Fact]
    public void DenseMatricesKeepEveryEntryAndCheckTheirSize()
    {
        var m = SparseMatrix.FromDense(2, 3, [1, 0, 2, 0, 3, 0]);
        Assert.Equal(2, m.RowCount);
        Assert.Equal(3, m.ColumnCount);
        Assert.Equal(2.0, m[0, 2]);
        Assert.Equal(3.0, m[1, 1]);
        Assert.Equal(0.0, m[1, 2]);
        var e = Assert.Throws<ArgumentException>(() => SparseMatrix.FromDense(2, 3, [1, 2]));
        Assert.Contains("2 x 3", e.Message);
    }
}

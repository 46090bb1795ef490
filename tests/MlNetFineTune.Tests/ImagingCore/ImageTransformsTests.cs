using MlNetFineTune.Imaging;
using MlNetFineTune.Tensors;
using Xunit;

namespace MlNetFineTune.Tests;

public class ImageTransformsTests
{
    // 5 x 7 test pattern: 3.5 * (row * 7 + col) + col^2.
    private static FloatImage Pattern()
    {
        var d = new float[35];
        for (int y = 0; y < 5; y++) for (int x = 0; x < 7; x++) d[y * 7 + x] = 3.5f * (y * 7 + x) + x * x;
        return new FloatImage(1, 5, 7, d);
    }

    private static void Near(float[] expected, float[] actual, float tol)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++) Assert.True(Math.Abs(expected[i] - actual[i]) <= tol, $"[{i}] {actual[i]} vs PIL {expected[i]}");
    }

    [Fact]
    public void ResizeMatchesPillowBilinear()
    {
        // Expected values: Pillow 9.4 Image.resize(..., BILINEAR) on the same pattern in float mode 'F'.
        Near([28.7857f, 44.9412f, 69.5000f, 77.7857f, 93.9412f, 118.5000f], ImageTransforms.Resize(Pattern(), 2, 3).Data, 1e-3f);
        Near([10.5f, 15f, 21.5f, 30f, 40.5f, 53f, 67.5f, 49f, 53.5f, 60f, 68.5f, 79f, 91.5f, 106f, 87.5f, 92f, 98.5f, 107f, 117.5f, 130f, 144.5f],
            ImageTransforms.Resize(Pattern(), 3, 7).Data, 1e-3f);
        var up = ImageTransforms.Resize(Pattern(), 12, 10).Data;
        Near([0f, 2.475f, 6.125f, 10.675f, 16.525f, 23.175f, 30.625f, 39.375f, 49.025f, 57f], up[..10], 1e-3f);
        Near([98f, 100.475f, 104.125f, 108.675f, 114.525f, 121.175f, 128.625f, 137.375f, 147.025f, 155f], up[110..], 1e-3f);
    }

    [Fact]
    public void CropsFlipsAndNormalisation()
    {
        var img = FloatImage.FromBytes(3, 2, 3, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18]);
        Assert.Equal(new float[] { 1, 4, 7, 10, 13, 16 }, img.Data[..6]);              // channel 0, [H, W]
        Assert.Equal(new float[] { 7, 4, 1, 16, 13, 10 }, ImageTransforms.HorizontalFlip(img).Data[..6]);
        Assert.Equal(new float[] { 4, 13 }, ImageTransforms.CenterCrop(img, 2, 1).Data[..2]);
        var n = ImageTransforms.Normalize(img, 255f, [0.5f, 0.5f, 0.5f], [0.25f, 0.25f, 0.25f]);
        Assert.Equal((1f / 255f - 0.5f) / 0.25f, n.Data[0], 5);
        var g = ImageTransforms.GrayToRgb(new FloatImage(1, 1, 2, [3, 4]));
        Assert.Equal(new float[] { 3, 4, 3, 4, 3, 4 }, g.Data);
        Assert.Throws<ArgumentOutOfRangeException>(() => ImageTransforms.Crop(img, 1, 0, 2, 3));
    }

    [Fact]
    public void RandomResizedCropIsSeededAndSized()
    {
        var img = ImageTransforms.Resize(Pattern(), 40, 50);
        var a = ImageTransforms.RandomResizedCrop(img, 16, new Rng(3));
        var b = ImageTransforms.RandomResizedCrop(img, 16, new Rng(3));
        Assert.Equal(16, a.Height);
        Assert.Equal(16, a.Width);
        Assert.Equal(a.Data, b.Data);
        var j = ImageTransforms.ColorJitter(ImageTransforms.GrayToRgb(img), new Rng(1));
        Assert.All(j.Data, v => Assert.InRange(v, 0f, 255f));
        var t = ImageTransforms.Stack([a, b]);
        Assert.Equal(new[] { 2, 1, 16, 16 }, t.Shape);
    }
}

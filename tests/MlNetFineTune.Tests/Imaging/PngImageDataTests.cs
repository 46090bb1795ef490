using MlNetFineTune.Imaging;
using Xunit;

namespace MlNetFineTune.Tests;

/// <summary>The types the PNG (and JPEG) decoders share: <see cref="ImageData"/> and <see cref="ImageFormatException"/>.</summary>
public sealed class PngImageDataTests
{
    [Theory]
    [InlineData(0, 1, 1, 0)]
    [InlineData(1, 0, 1, 0)]
    [InlineData(-1, 1, 1, 1)]
    [InlineData(1, 1, 0, 0)]
    [InlineData(1, 1, 5, 5)]
    [InlineData(2, 2, 3, 11)]
    [InlineData(2, 2, 3, 13)]
    public void ImageData_rejects_inconsistent_sizes(int w, int h, int c, int length) =>
        Assert.Throws<ArgumentException>(() => new ImageData(w, h, c, new byte[length]));

    [Fact]
    public void ImageData_rejects_null_and_wraps_without_copying()
    {
        Assert.Throws<ArgumentNullException>(() => new ImageData(1, 1, 1, null!));
        var px = new byte[] { 1, 2, 3, 4, 5, 6 };
        var img = new ImageData(2, 1, 3, px);
        Assert.Same(px, img.Pixels);
        Assert.Same(img, img.ToRgb());
    }

    [Fact]
    public void ToRgb_expands_gray_and_drops_alpha()
    {
        Assert.Equal(new byte[] { 7, 7, 7, 9, 9, 9 }, new ImageData(2, 1, 1, [7, 9]).ToRgb().Pixels);
        Assert.Equal(new byte[] { 7, 7, 7, 9, 9, 9 }, new ImageData(1, 2, 2, [7, 0, 9, 128]).ToRgb().Pixels);
        var rgb = new ImageData(2, 1, 4, [1, 2, 3, 0, 4, 5, 6, 255]).ToRgb();
        Assert.Equal((2, 1, 3), (rgb.Width, rgb.Height, rgb.Channels));
        Assert.Equal(new byte[] { 1, 2, 3, 4, 5, 6 }, rgb.Pixels);
    }

    [Fact]
    public void ToRgb_of_every_fixture_matches_its_channels()
    {
        foreach (var f in PngFixtures.Images)
        {
            var rgb = PngDecoder.Decode(PngFixtures.Bytes(f.File)).ToRgb();
            Assert.Equal(3, rgb.Channels);
            for (int p = 0; p < f.Width * f.Height; p++)
                for (int c = 0; c < 3; c++)
                    Assert.Equal(f.Pixels[p * f.Channels + (f.Channels >= 3 ? c : 0)], rgb.Pixels[p * 3 + c]);
        }
    }

    [Fact]
    public void ImageFormatException_message_names_source_and_offset()
    {
        var inner = new InvalidOperationException("x");
        var ex = new ImageFormatException("bad thing", "a/b.png", 1234, inner);
        Assert.Equal("a/b.png: bad thing (at byte 1234)", ex.Message);
        Assert.Equal("a/b.png", ex.Source);
        Assert.Equal(1234, ex.Offset);
        Assert.Same(inner, ex.InnerException);
        Assert.IsAssignableFrom<FormatException>(ex);

        Assert.Equal("bad thing", new ImageFormatException("bad thing").Message);
        Assert.Equal("s: bad thing", new ImageFormatException("bad thing", "s").Message);
        Assert.Equal("bad thing (at byte 0)", new ImageFormatException("bad thing", offset: 0).Message);
        Assert.Null(new ImageFormatException("m").Offset);
    }
}

using MlNetFineTune.Imaging;
using Xunit;

namespace MlNetFineTune.Tests;

/// <summary>
/// Decodes every image of the generated PngSuite-like matrix (tests/golden/generate_png_fixtures.py) and compares
/// it with the pixels Pillow decoded from the same file (fixtures/png/expected.json).
/// </summary>
public sealed class PngFixtureTests
{
    public static TheoryData<string> Files()
    {
        var data = new TheoryData<string>();
        foreach (var f in PngFixtures.Images) data.Add(f.File);
        return data;
    }

    [Theory]
    [MemberData(nameof(Files))]
    public void Decodes_fixture_like_the_reference(string file)
    {
        var fx = PngFixtures.Get(file);
        var bytes = PngFixtures.Bytes(file);
        Assert.True(PngDecoder.IsPng(bytes));

        var fromArray = PngDecoder.Decode(bytes, file);
        AssertPixels(fx, fromArray);

        var fromSpan = PngDecoder.Decode(new ReadOnlySpan<byte>(bytes), file);
        Assert.Equal(fromArray.Pixels, fromSpan.Pixels);

        // Sequential, non-seekable, a few bytes per Read; stops right after IEND.
        var trickle = new PngTrickleStream(bytes, file.Length);
        var fromStream = PngDecoder.Decode(trickle, file);
        Assert.Equal(fromArray.Pixels, fromStream.Pixels);
        Assert.Equal(bytes.Length, trickle.BytesRead);
    }

    [Fact]
    public void Matrix_covers_every_colour_type_bit_depth_interlace_and_trns()
    {
        var images = PngFixtures.Images;
        int[][] legal = [[0, 1], [0, 2], [0, 4], [0, 8], [0, 16], [2, 8], [2, 16], [3, 1], [3, 2], [3, 4], [3, 8], [4, 8], [4, 16], [6, 8], [6, 16]];
        foreach (var cb in legal)
            foreach (bool interlaced in new[] { false, true })
                Assert.Contains(images, f => f.ColorType == cb[0] && f.BitDepth == cb[1] && f.Interlaced == interlaced);
        foreach (var cb in legal.Where(cb => cb[0] is 0 or 2 or 3))
            Assert.Contains(images, f => f.ColorType == cb[0] && f.BitDepth == cb[1] && f.Trns);
        for (int filter = 0; filter < 5; filter++)
            Assert.Contains(images, f => f.File.StartsWith($"filter{filter}_", StringComparison.Ordinal));
        Assert.Contains(images, f => f.Width == 1 && f.Height == 1 && f.Interlaced);
        Assert.True(images.Count >= 130, $"expected the committed fixtures, found {images.Count} in {PngFixtures.Dir}");
    }

    [Fact]
    public void Output_channels_follow_colour_type_and_trns()
    {
        foreach (var f in PngFixtures.Images)
        {
            int expected = f.ColorType switch
            {
                0 => f.Trns ? 2 : 1,
                2 or 3 => f.Trns ? 4 : 3,
                4 => 2,
                _ => 4,
            };
            Assert.Equal(expected, f.Channels);
            Assert.Equal(expected, PngDecoder.Decode(PngFixtures.Bytes(f.File), f.File).Channels);
        }
    }

    [Fact]
    public void Sixteen_bit_samples_keep_the_high_byte_and_trns_matches_all_16_bits()
    {
        // 1x2 gray 16-bit: 0x12FF -> 0x12; tRNS 0x1234 makes only the exact match transparent.
        byte[] raw = [0, 0x12, 0x34, 0, 0x12, 0x35];
        var png = PngBuild.Png(PngBuild.Ihdr(1, 2, 16, 0), PngBuild.Chunk("tRNS", [0x12, 0x34]), PngBuild.Idat(raw), PngBuild.Iend());
        var img = PngDecoder.Decode(png);
        Assert.Equal(2, img.Channels);
        Assert.Equal(new byte[] { 0x12, 0, 0x12, 255 }, img.Pixels);
    }

    [Fact]
    public void Low_bit_gray_is_scaled_to_full_range()
    {
        // 4 pixels of 2-bit gray 0,1,2,3 in one byte -> 0, 85, 170, 255.
        var png = PngBuild.Png(PngBuild.Ihdr(4, 1, 2, 0), PngBuild.Idat([0, 0b00_01_10_11]), PngBuild.Iend());
        Assert.Equal(new byte[] { 0, 85, 170, 255 }, PngDecoder.Decode(png).Pixels);
        // 4-bit: 0x0 and 0xF and 0x7 -> 0, 255, 119
        png = PngBuild.Png(PngBuild.Ihdr(3, 1, 4, 0), PngBuild.Idat([0, 0x0F, 0x70]), PngBuild.Iend());
        Assert.Equal(new byte[] { 0, 255, 119 }, PngDecoder.Decode(png).Pixels);
    }

    [Fact]
    public void Palette_with_partial_trns_is_opaque_past_the_trns_entries()
    {
        byte[] plte = [10, 20, 30, 40, 50, 60, 70, 80, 90];
        var png = PngBuild.Png(PngBuild.Ihdr(3, 1, 8, 3), PngBuild.Chunk("PLTE", plte), PngBuild.Chunk("tRNS", [7]),
            PngBuild.Idat([0, 2, 0, 1]), PngBuild.Iend());
        Assert.Equal(new byte[] { 70, 80, 90, 255, 10, 20, 30, 7, 40, 50, 60, 255 }, PngDecoder.Decode(png).Pixels);
    }

    internal static void AssertPixels(PngFixture fx, ImageData img)
    {
        Assert.Equal((fx.Width, fx.Height, fx.Channels), (img.Width, img.Height, img.Channels));
        Assert.Equal(fx.Pixels.Length, img.Pixels.Length);
        for (int i = 0; i < fx.Pixels.Length; i++)
        {
            if (fx.Pixels[i] == img.Pixels[i]) continue;
            int px = i / fx.Channels;
            Assert.Fail($"{fx.File} ({fx.Note}): pixel ({px % fx.Width}, {px / fx.Width}) channel {i % fx.Channels}: expected {fx.Pixels[i]}, got {img.Pixels[i]}");
        }
    }
}

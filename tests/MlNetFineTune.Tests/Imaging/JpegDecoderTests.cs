using System.Globalization;
using System.Text;
using MlNetFineTune.Imaging;
using Xunit;
using Xunit.Abstractions;

namespace MlNetFineTune.Tests;

/// <summary>Decodes the committed fixtures and compares them with the reference decoders' output (see manifest.json).</summary>
public sealed class JpegDecoderTests(ITestOutputHelper output)
{
    public static TheoryData<string> FixtureNames()
    {
        var data = new TheoryData<string>();
        foreach (var c in JpegFixtures.Cases) data.Add(c.Name);
        return data;
    }

    private static ImageData DecodeCase(JpegFixtures.Case c, out JpegInfo info)
    {
        var options = new JpegDecoderOptions
        {
            ApplyExifOrientation = c.ApplyExifOrientation,
            Upsampling = c.Upsampling == "replicate" ? JpegUpsampling.Replicate : JpegUpsampling.Fancy,
        };
        return JpegDecoder.Decode(JpegFixtures.Bytes(c.Jpeg), c.Jpeg, options, out info);
    }

    [Theory]
    [MemberData(nameof(FixtureNames))]
    public void Fixture_matches_reference_decoder(string name)
    {
        var c = JpegFixtures.Cases.Single(x => x.Name == name);
        var actual = DecodeCase(c, out var info);
        var expected = JpegFixtures.ReadPnm(c.Expected);
        var (max, mean) = JpegFixtures.Difference(actual, expected);
        output.WriteLine($"{c.Name}: {info.Process} {info.ColorSpace} {actual.Width}x{actual.Height}x{actual.Channels} " +
                         $"vs {c.Reference}: max {max}, mean {mean.ToString("F4", CultureInfo.InvariantCulture)} (tolerance {c.Tolerance})");
        Assert.True(max <= c.Tolerance, $"{c.Name}: max abs difference {max} > tolerance {c.Tolerance} (mean {mean:F4})");
    }

    [Fact]
    public void Difference_table_over_all_fixtures()
    {
        var sb = new StringBuilder();
        sb.AppendLine("| fixture | process | sampling | reference | max | mean |");
        sb.AppendLine("|---|---|---|---|---|---|");
        int worst = 0;
        foreach (var c in JpegFixtures.Cases)
        {
            var actual = DecodeCase(c, out var info);
            var (max, mean) = JpegFixtures.Difference(actual, JpegFixtures.ReadPnm(c.Expected));
            worst = Math.Max(worst, max);
            string sampling = string.Join(",", info.Components.Select(x => $"{x.HorizontalSampling}x{x.VerticalSampling}"));
            sb.AppendLine(CultureInfo.InvariantCulture, $"| {c.Name} | {info.Process} | {sampling} | {c.Reference} | {max} | {mean:F4} |");
        }
        output.WriteLine(sb.ToString());
        Assert.True(worst <= JpegFixtures.Cases.Max(c => c.Tolerance));
    }

    [Fact]
    public void Expected_failures_from_the_manifest_throw_the_named_exception()
    {
        Assert.NotEmpty(JpegFixtures.Failures);
        foreach (var f in JpegFixtures.Failures)
        {
            var ex = Assert.ThrowsAny<Exception>(() => JpegDecoder.Decode(JpegFixtures.Bytes(f.Jpeg), f.Jpeg));
            Assert.Equal(f.Exception, ex.GetType().Name);
            Assert.StartsWith(f.Jpeg + ": ", ex.Message);
            Assert.Contains("(at byte ", ex.Message);
            output.WriteLine($"{f.Jpeg}: {ex.GetType().Name}: {ex.Message}");
        }
    }

    [Fact]
    public void Arithmetic_coding_is_reported_as_not_supported()
    {
        var ex = Assert.Throws<NotSupportedException>(() => JpegDecoder.Decode(JpegFixtures.Bytes("arithmetic_sof9.jpg"), "a.jpg"));
        Assert.Contains("arithmetic", ex.Message);
        Assert.Contains("SOF9", ex.Message);
    }

    [Fact]
    public void IsJpeg_checks_the_SOI_marker()
    {
        Assert.True(JpegDecoder.IsJpeg(JpegFixtures.Bytes("baseline_q75.jpg")));
        Assert.True(JpegDecoder.IsJpeg([0xFF, 0xD8, 0xFF]));
        Assert.False(JpegDecoder.IsJpeg([0xFF, 0xD8]));
        Assert.False(JpegDecoder.IsJpeg([]));
        Assert.False(JpegDecoder.IsJpeg([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]));
    }

    [Fact]
    public void ReadInfo_reports_the_headers()
    {
        var p = JpegDecoder.ReadInfo(JpegFixtures.Bytes("progressive_420.jpg"));
        Assert.Equal((48, 40, 3), (p.Width, p.Height, p.Channels));
        Assert.Equal(JpegProcess.Progressive, p.Process);
        Assert.Equal(JpegColorSpace.YCbCr, p.ColorSpace);
        Assert.True(p.HasJfif);
        Assert.Equal(-1, p.AdobeTransform);
        Assert.Equal(new[] { (2, 2), (1, 1), (1, 1) }, p.Components.Select(c => (c.HorizontalSampling, c.VerticalSampling)));
        Assert.Equal(1, p.Orientation);

        Assert.Equal(JpegProcess.Baseline, JpegDecoder.ReadInfo(JpegFixtures.Bytes("baseline_q10.jpg")).Process);
        Assert.Equal(JpegProcess.ExtendedSequential, JpegDecoder.ReadInfo(JpegFixtures.Bytes("extended_q1_16bit_dqt.jpg")).Process);
        var g = JpegDecoder.ReadInfo(JpegFixtures.Bytes("gray_q75.jpg"));
        Assert.Equal((JpegColorSpace.Gray, 1), (g.ColorSpace, g.Channels));
        var rgb = JpegDecoder.ReadInfo(JpegFixtures.Bytes("rgb_adobe.jpg"));
        Assert.Equal((JpegColorSpace.Rgb, 0, false), (rgb.ColorSpace, rgb.AdobeTransform, rgb.HasJfif));
        Assert.Equal(JpegColorSpace.Cmyk, JpegDecoder.ReadInfo(JpegFixtures.Bytes("cmyk_adobe.jpg")).ColorSpace);
        Assert.Equal(JpegColorSpace.Ycck, JpegDecoder.ReadInfo(JpegFixtures.Bytes("ycck_adobe.jpg")).ColorSpace);
        Assert.True(JpegDecoder.ReadInfo(JpegFixtures.Bytes("restart_1row.jpg")).RestartInterval > 0);
        Assert.Equal(0, p.RestartInterval);

        var o6 = JpegDecoder.ReadInfo(JpegFixtures.Bytes("exif_mm_o6.jpg"));
        Assert.Equal((6, 24, 16, 16, 24), (o6.Orientation, o6.Width, o6.Height, o6.OrientedWidth, o6.OrientedHeight));
        using var stream = new MemoryStream(JpegFixtures.Bytes("exif_ii_o8.jpg"));
        Assert.Equal(8, JpegDecoder.ReadInfo(stream).Orientation);
    }

    [Fact]
    public void Orientation_is_parsed_for_every_value_and_both_byte_orders()
    {
        for (int o = 1; o <= 8; o++)
            Assert.Equal(o, JpegDecoder.ReadInfo(JpegFixtures.Bytes($"exif_mm_o{o}.jpg")).Orientation);
        foreach (int o in new[] { 2, 5, 6, 8 })
            Assert.Equal(o, JpegDecoder.ReadInfo(JpegFixtures.Bytes($"exif_ii_o{o}.jpg")).Orientation);
    }

    [Fact]
    public void Decode_applies_exif_orientation_by_default_and_can_skip_it()
    {
        var bytes = JpegFixtures.Bytes("exif_mm_o6.jpg");
        var rotated = JpegDecoder.Decode(bytes);
        Assert.Equal((16, 24), (rotated.Width, rotated.Height));
        var raw = JpegDecoder.Decode(bytes, applyExifOrientation: false);
        Assert.Equal((24, 16), (raw.Width, raw.Height));
        Assert.Equal(JpegFixtures.ReadPnm("exif_none.ppm").Pixels, raw.Pixels);
        // Orientation 6 = rotate 90 degrees clockwise: the raw bottom-left pixel becomes the top-left one.
        Assert.Equal(raw.Pixels.AsSpan((15 * 24) * 3, 3).ToArray(), rotated.Pixels.AsSpan(0, 3).ToArray());
    }

    [Fact]
    public void Stream_and_array_decodes_agree()
    {
        var bytes = JpegFixtures.Bytes("progressive_422_large.jpg");
        var a = JpegDecoder.Decode(bytes, "x.jpg");
        using var seekable = new MemoryStream(bytes);
        var b = JpegDecoder.Decode(seekable, "x.jpg");
        using var nonSeekable = new NonSeekableStream(bytes);
        var c = JpegDecoder.Decode(nonSeekable, "x.jpg", JpegDecoderOptions.Default, out var info);
        Assert.Equal(a.Pixels, b.Pixels);
        Assert.Equal(a.Pixels, c.Pixels);
        Assert.Equal((100, 75), (info.Width, info.Height));
        var d = JpegDecoder.DecodeFile(JpegFixtures.PathOf("progressive_422_large.jpg"));
        Assert.Equal(a.Pixels, d.Pixels);
    }

    [Fact]
    public void Gray_decodes_to_one_channel_and_ToRgb_expands_it()
    {
        var g = JpegDecoder.Decode(JpegFixtures.Bytes("gray_q75.jpg"));
        Assert.Equal(1, g.Channels);
        var rgb = g.ToRgb();
        Assert.Equal(3, rgb.Channels);
        Assert.Equal(g.Pixels[5], rgb.Pixels[15]);
        Assert.Equal(g.Pixels[5], rgb.Pixels[17]);
    }

    [Fact]
    public void Pixel_budget_is_enforced_before_decoding()
    {
        var ex = Assert.Throws<ImageFormatException>(() => JpegDecoder.Decode(JpegFixtures.Bytes("baseline_q75.jpg"), "big.jpg",
            new JpegDecoderOptions { MaxPixels = 48 * 40 - 1 }, out _));
        Assert.Contains("pixel budget", ex.Message);
        Assert.Equal("big.jpg", ex.Source);
        Assert.NotNull(ex.Offset);
        JpegDecoder.Decode(JpegFixtures.Bytes("baseline_q75.jpg"), "ok.jpg", new JpegDecoderOptions { MaxPixels = 48 * 40 }, out _);
        Assert.Throws<ArgumentOutOfRangeException>(() =>
            JpegDecoder.Decode(JpegFixtures.Bytes("baseline_q75.jpg"), null, new JpegDecoderOptions { MaxPixels = 0 }, out _));
    }

    [Fact]
    public void ReadOrientation_handles_both_byte_orders_and_malformed_data()
    {
        byte[] Tiff(bool little, int tag, int type, int value, int ifdOffset = 8)
        {
            var b = new List<byte>();
            void U16(int v) { if (little) { b.Add((byte)v); b.Add((byte)(v >> 8)); } else { b.Add((byte)(v >> 8)); b.Add((byte)v); } }
            void U32(int v) { if (little) { U16(v & 0xFFFF); U16(v >>> 16); } else { U16(v >>> 16); U16(v & 0xFFFF); } }
            b.AddRange(little ? "II"u8.ToArray() : "MM"u8.ToArray());
            U16(42);
            U32(ifdOffset);
            while (b.Count < ifdOffset) b.Add(0);
            U16(2);
            U16(0x010F); U16(2); U32(4); U32(0); // Make, ASCII: skipped
            U16(tag); U16(type); U32(1);
            if (type == 3) { U16(value); U16(0); } else U32(value);
            U32(0);
            return b.ToArray();
        }

        for (int o = 1; o <= 8; o++)
        {
            Assert.Equal(o, JpegExif.ReadOrientation(Tiff(true, 0x0112, 3, o)));
            Assert.Equal(o, JpegExif.ReadOrientation(Tiff(false, 0x0112, 3, o, ifdOffset: 12)));
        }
        Assert.Equal(6, JpegExif.ReadOrientation(Tiff(false, 0x0112, 4, 6)));
        Assert.Equal(0, JpegExif.ReadOrientation(Tiff(true, 0x0112, 3, 9)));
        Assert.Equal(0, JpegExif.ReadOrientation(Tiff(true, 0x0113, 3, 6)));
        Assert.Equal(0, JpegExif.ReadOrientation(Tiff(true, 0x0112, 3, 6, ifdOffset: 4000)[..20]));
        Assert.Equal(0, JpegExif.ReadOrientation("XX*\0\0\0\0\0"u8));
        Assert.Equal(0, JpegExif.ReadOrientation(ReadOnlySpan<byte>.Empty));
        var truncated = Tiff(true, 0x0112, 3, 6);
        Assert.Equal(0, JpegExif.ReadOrientation(truncated.AsSpan(0, truncated.Length - 12)));
    }

    [Fact]
    public void ApplyOrientation_maps_pixels_like_exif_transpose()
    {
        // 3x2 gray image:  a b c
        //                  d e f
        var img = new ImageData(3, 2, 1, "abcdef"u8.ToArray());
        string Apply(int o)
        {
            var r = JpegExif.ApplyOrientation(img, o);
            var sb = new StringBuilder();
            for (int y = 0; y < r.Height; y++)
            {
                if (y > 0) sb.Append('/');
                for (int x = 0; x < r.Width; x++) sb.Append((char)r.Pixels[y * r.Width + x]);
            }
            return sb.ToString();
        }
        Assert.Equal("abc/def", Apply(1));
        Assert.Equal("cba/fed", Apply(2));
        Assert.Equal("fed/cba", Apply(3));
        Assert.Equal("def/abc", Apply(4));
        Assert.Equal("ad/be/cf", Apply(5));
        Assert.Equal("da/eb/fc", Apply(6));
        Assert.Equal("fc/eb/da", Apply(7));
        Assert.Equal("cf/be/ad", Apply(8));
        Assert.Same(img, JpegExif.ApplyOrientation(img, 0));
    }

    [Fact]
    public void Missing_EOI_is_tolerated_when_the_scans_are_complete()
    {
        foreach (var name in new[] { "baseline_q75.jpg", "progressive_420.jpg" })
        {
            var bytes = JpegFixtures.Bytes(name);
            Assert.Equal(0xD9, bytes[^1]);
            var full = JpegDecoder.Decode(bytes);
            var cut = JpegDecoder.Decode(bytes[..^2]);
            Assert.Equal(full.Pixels, cut.Pixels);
        }
    }

    private sealed class NonSeekableStream(byte[] data) : Stream
    {
        private readonly MemoryStream _inner = new(data);
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override int Read(byte[] buffer, int offset, int count) => _inner.Read(buffer, offset, Math.Min(count, 7));
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        protected override void Dispose(bool disposing)
        {
            if (disposing) _inner.Dispose();
            base.Dispose(disposing);
        }
    }
}

using System.Buffers.Binary;
using System.IO.Compression;
using MlNetFineTune.Data;
using MlNetFineTune.Imaging;
using Xunit;

namespace MlNetFineTune.Tests;

/// <summary>
/// The image-folder loader on bad input (issue 7's list): truncated PNG and JPEG, a file that is not an image, a
/// zero-byte file, a header claiming 100000 x 100000 pixels, an empty class folder, one class, mixed image sizes and
/// a CMYK JPEG. Errors name the file; SkipBadImages leaves bad files out and lists them.
/// </summary>
[Collection("feature-cache")]
public sealed class ImageFolderInputTests : IDisposable
{
    private readonly DirectoryInfo _root = Directory.CreateTempSubdirectory("mlft-images-");

    public void Dispose() => _root.Delete(recursive: true);

    /// <summary>A minimal valid PNG (8-bit gray or RGB), zlib-compressed with System.IO.Compression.</summary>
    internal static byte[] Png(int width, int height, int channels, Func<int, int, int, byte> pixel)
    {
        var raw = new MemoryStream();
        for (int y = 0; y < height; y++)
        {
            raw.WriteByte(0); // filter: none
            for (int x = 0; x < width; x++)
                for (int c = 0; c < channels; c++) raw.WriteByte(pixel(x, y, c));
        }
        var z = new MemoryStream();
        using (var zs = new ZLibStream(z, CompressionLevel.Fastest, leaveOpen: true)) raw.WriteTo(zs);
        var ihdr = new byte[13];
        BinaryPrimitives.WriteUInt32BigEndian(ihdr, (uint)width);
        BinaryPrimitives.WriteUInt32BigEndian(ihdr.AsSpan(4), (uint)height);
        ihdr[8] = 8;
        ihdr[9] = (byte)(channels == 1 ? 0 : 2);
        var png = new MemoryStream();
        png.Write([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]);
        Chunk(png, "IHDR", ihdr);
        Chunk(png, "IDAT", z.ToArray());
        Chunk(png, "IEND", []);
        return png.ToArray();
    }

    private static void Chunk(Stream s, string type, byte[] data)
    {
        var len = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(len, (uint)data.Length);
        s.Write(len);
        var body = System.Text.Encoding.ASCII.GetBytes(type).Concat(data).ToArray();
        s.Write(body);
        var crc = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(crc, PngBuild.Crc(body));
        s.Write(crc);
    }

    private string Write(string relative, byte[] bytes)
    {
        var path = Path.Combine(_root.FullName, relative);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    private static byte[] Gradient(int w, int h, int channels, int seed) =>
        Png(w, h, channels, (x, y, c) => (byte)((x * 7 + y * 3 + c * 50 + seed * 40) & 0xFF));

    /// <summary>Two readable images per class in two classes, of different sizes and channel counts.</summary>
    private void TwoGoodClasses()
    {
        Write("cats/a.png", Gradient(20, 30, 3, 1));
        Write("cats/b.png", Gradient(64, 48, 1, 2));
        Write("dogs/a.png", Gradient(33, 17, 3, 3));
        Write("dogs/b.jpg", File.ReadAllBytes(Path.Combine(JpegFixtures.Directory, "baseline_q50.jpg")));
    }

    [Fact]
    public void MixedSizesLoadAtTheirOwnSizeAndTrainResized()
    {
        TwoGoodClasses();
        var data = ImageDatasets.LoadFolder(_root.FullName);
        Assert.Equal(4, data.Count);
        Assert.Equal(["cats", "dogs"], data.Labels.Labels);
        Assert.True(data.Select(e => (e.Image.Width, e.Image.Height)).Distinct().Count() >= 3);
        Assert.Contains(data, e => e.Image.Width == 20 && e.Image.Height == 30 && e.Image.Channels == 3);
        Assert.Contains(data, e => e.Image.Width == 64 && e.Image.Height == 48 && e.Image.Channels == 1);

        // Every size goes through the same resize: a probe trains and predicts on all of them.
        var model = new ImageClassificationTrainer(new ImageClassificationOptions
        {
            ImageSize = 32, FeatureLayer = "block_6_expand_relu", Epochs = 2, BatchSize = 4, CalibrateTemperature = false,
        }, seed: 3).Fit(data, data);
        var p = model.PredictProbabilities(data.Select(e => e.Image).ToArray());
        Assert.Equal(4 * 2, p.Length);
        Assert.All(p, v => Assert.True(float.IsFinite(v)));
    }

    [Theory]
    [InlineData("png")]
    [InlineData("jpg")]
    public void TruncatedImageIsNamedOrSkipped(string kind)
    {
        TwoGoodClasses();
        var good = kind == "png" ? Gradient(40, 40, 3, 9) : File.ReadAllBytes(Path.Combine(JpegFixtures.Directory, "baseline_q50.jpg"));
        var bad = Write($"dogs/truncated.{kind}", good[..(good.Length / 2)]);

        var e = Assert.Throws<ImageFormatException>(() => ImageDatasets.LoadFolder(_root.FullName));
        Assert.Equal(bad, e.Source);
        Assert.Contains(bad, e.Message);

        var skipped = ImageDatasets.LoadFolder(_root.FullName, options: new ImageLoadOptions { SkipBadImages = true });
        Assert.Equal(4, skipped.Count);
        var s = Assert.Single(skipped.Skipped);
        Assert.Equal(bad, s.Path);
        Assert.Contains(bad, s.Reason);
    }

    [Fact]
    public void FileThatIsNotAnImageIsNamed()
    {
        TwoGoodClasses();
        var bad = Write("cats/notes.png", "this is a text file, not a picture\n"u8.ToArray());
        var e = Assert.Throws<ImageFormatException>(() => ImageDatasets.LoadFolder(_root.FullName));
        Assert.Contains(bad, e.Message);
        Assert.Contains("not a PNG or JPEG", e.Message);
    }

    [Fact]
    public void ZeroByteFileIsNamedOrSkipped()
    {
        TwoGoodClasses();
        var bad = Write("cats/empty.jpg", []);
        var e = Assert.Throws<ImageFormatException>(() => ImageDatasets.LoadFolder(_root.FullName));
        Assert.Contains(bad, e.Message);
        Assert.Contains("0 bytes", e.Message);
        Assert.Equal(bad, Assert.Single(ImageDatasets.LoadFolder(_root.FullName, options: new ImageLoadOptions { SkipBadImages = true }).Skipped).Path);
    }

    [Fact]
    public void HugeHeaderIsRefusedBeforeAllocating()
    {
        // A PNG whose IHDR claims 100000 x 100000 8-bit RGB pixels (30 GB decoded) followed by a tiny IDAT.
        var ihdr = new byte[13];
        BinaryPrimitives.WriteUInt32BigEndian(ihdr, 100_000);
        BinaryPrimitives.WriteUInt32BigEndian(ihdr.AsSpan(4), 100_000);
        ihdr[8] = 8;
        ihdr[9] = 2;
        var png = new MemoryStream();
        png.Write([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]);
        Chunk(png, "IHDR", ihdr);
        Chunk(png, "IDAT", [0x78, 0x01, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01]);
        Chunk(png, "IEND", []);
        var bad = Write("huge.png", png.ToArray());

        long before = GC.GetAllocatedBytesForCurrentThread();
        var e = Assert.Throws<ImageFormatException>(() => ImageDecoder.Decode(bad));
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Contains(bad, e.Message);
        Assert.Contains("100000 x 100000", e.Message);
        Assert.True(allocated < 1_000_000, $"{allocated} bytes allocated while refusing the header");

        // The same through the folder loader, and a JPEG whose SOF claims 60000 x 60000 (3.6 billion pixels).
        var jpeg = File.ReadAllBytes(Path.Combine(JpegFixtures.Directory, "baseline_q50.jpg"));
        int sof = Enumerable.Range(0, jpeg.Length - 1).First(i => jpeg[i] == 0xFF && jpeg[i + 1] is 0xC0 or 0xC1 or 0xC2);
        BinaryPrimitives.WriteUInt16BigEndian(jpeg.AsSpan(sof + 5), 60_000);
        BinaryPrimitives.WriteUInt16BigEndian(jpeg.AsSpan(sof + 7), 60_000);
        var badJpeg = Write("huge.jpg", jpeg);
        before = GC.GetAllocatedBytesForCurrentThread();
        var je = Assert.Throws<ImageFormatException>(() => ImageDecoder.Decode(badJpeg));
        Assert.True(GC.GetAllocatedBytesForCurrentThread() - before < 1_000_000);
        Assert.Contains(badJpeg, je.Message);
        Assert.Contains("60000 x 60000", je.Message);
    }

    [Fact]
    public void EmptyClassFolderIsNamed()
    {
        TwoGoodClasses();
        Directory.CreateDirectory(Path.Combine(_root.FullName, "birds"));
        var e = Assert.Throws<DataValidationException>(() => ImageDatasets.LoadFolder(_root.FullName));
        Assert.Contains(Path.Combine(_root.FullName, "birds"), e.Message);
        Assert.Contains("no .png or .jpg images", e.Message);
    }

    [Fact]
    public void ClassWhoseImagesAreAllBadIsNamedEvenWhenSkipping()
    {
        TwoGoodClasses();
        Write("birds/x.png", [1, 2, 3]);
        var e = Assert.Throws<DataValidationException>(() => ImageDatasets.LoadFolder(_root.FullName, options: new ImageLoadOptions { SkipBadImages = true }));
        Assert.Contains(Path.Combine(_root.FullName, "birds"), e.Message);
    }

    [Fact]
    public void OneClassFolderIsRefusedByTheTrainer()
    {
        Write("only/a.png", Gradient(20, 20, 3, 1));
        Write("only/b.png", Gradient(20, 20, 3, 2));
        var data = ImageDatasets.LoadFolder(_root.FullName);
        var e = Assert.Throws<DataValidationException>(() => new ImageClassificationTrainer(new ImageClassificationOptions(), 1).Fit(data));
        Assert.Contains(_root.FullName, e.Message);
        Assert.Contains("at least two labels", e.Message);
    }

    [Fact]
    public void CmykJpegIsConvertedToRgb()
    {
        TwoGoodClasses();
        Write("dogs/cmyk.jpg", File.ReadAllBytes(Path.Combine(JpegFixtures.Directory, "cmyk_adobe.jpg")));
        var data = ImageDatasets.LoadFolder(_root.FullName);
        Assert.Equal(5, data.Count);
        var cmyk = data[4]; // cats/a, cats/b, dogs/a.png, dogs/b.jpg, dogs/cmyk.jpg (ordinal order)
        Assert.Equal("dogs", cmyk.Label);
        Assert.Equal(3, cmyk.Image.Channels);
        var direct = ImageDecoder.Decode(Path.Combine(JpegFixtures.Directory, "cmyk_adobe.jpg"));
        Assert.Equal(3, direct.Channels);
        Assert.Equal((direct.Width, direct.Height), (cmyk.Image.Width, cmyk.Image.Height));
    }

    [Fact]
    public void EvaluationFolderWithAClassTrainingNeverSawIsNamed()
    {
        TwoGoodClasses();
        var labels = ImageDatasets.LoadFolder(_root.FullName).Labels;
        var other = Path.Combine(_root.FullName, "..", _root.Name + "-eval");
        try
        {
            Directory.CreateDirectory(Path.Combine(other, "horses"));
            File.WriteAllBytes(Path.Combine(other, "horses", "h.png"), Gradient(10, 10, 3, 5));
            var e = Assert.Throws<DataValidationException>(() => ImageDatasets.LoadFolder(other, labels));
            Assert.Contains("horses", e.Message);
        }
        finally { Directory.Delete(other, recursive: true); }
    }
}

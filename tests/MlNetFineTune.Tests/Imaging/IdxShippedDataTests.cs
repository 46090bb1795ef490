using System.Security.Cryptography;
using MlNetFineTune.Imaging;
using Xunit;

namespace MlNetFineTune.Tests;

/// <summary>
/// The shipped Fashion-MNIST subset (data/fashion-mnist, derived by data/scripts/derive_fashion_mnist.py). The
/// expected values were read from the Debian package's original files (dataset-fashion-mnist
/// 0.0~git20200523.55506a9-1): train subset image i is training image train-source-indices.txt[i] of the full
/// file, test subset image i is test image i.
/// </summary>
public class IdxShippedDataTests
{
    private static readonly string[] ClassNames =
        ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"];

    private static IdxDataset Train() =>
        IdxReader.ReadDataset(IdxTestFiles.Fashion("train-images-idx3-ubyte.gz"), IdxTestFiles.Fashion("train-labels-idx1-ubyte.gz"), classCount: 10);

    private static IdxDataset Test() =>
        IdxReader.ReadDataset(IdxTestFiles.Fashion("t10k-images-idx3-ubyte.gz"), IdxTestFiles.Fashion("t10k-labels-idx1-ubyte.gz"), classCount: 10);

    private static long Sum(ReadOnlySpan<byte> pixels)
    {
        long s = 0;
        foreach (byte b in pixels) s += b;
        return s;
    }

    private static string Sha16(ReadOnlySpan<byte> bytes) => Convert.ToHexStringLower(SHA256.HashData(bytes))[..16];

    [Fact]
    public void TrainSubset_IsClassBalanced1000()
    {
        var d = Train();
        Assert.Equal((1000, 28, 28), (d.Count, d.Rows, d.Cols));
        Assert.Equal(784_000, d.Pixels.Length);
        Assert.Equal(Enumerable.Repeat(100, 10), d.CountPerClass(10));
        Assert.Equal(new byte[] { 9, 0, 0, 3, 0, 2, 7, 2, 5, 5, 0, 9, 5, 5, 7, 9, 1, 0, 6, 4 }, d.Labels[..20]);
        Assert.Equal(57_441_455, Sum(d.Pixels));
        Assert.Equal("b065e72456830f94", Sha16(d.Labels));
    }

    [Fact]
    public void TrainSubset_KnownImages()
    {
        var d = Train();
        // Image 0: Ankle boot, training index 0 in the Debian file.
        var img0 = d.GetImage(0);
        Assert.Equal(9, d.Labels[0]);
        Assert.Equal(76_247, Sum(img0));
        Assert.Equal(433, img0.ToArray().Count(b => b != 0));
        Assert.Equal(96, img0.IndexOfAnyExcept((byte)0));
        Assert.Equal(1, img0[96]);
        Assert.Equal(217, img0[14 * 28 + 14]);
        Assert.Equal(new byte[] { 0, 0, 1, 4, 6, 7, 2, 0, 0, 0, 0, 0, 237, 226, 217, 223, 222, 219, 222, 221, 216, 223, 229, 215, 218, 255, 77, 0 },
            img0.Slice(14 * 28, 28).ToArray());
        Assert.Equal("5bd44e331a6d6998", Sha16(img0));
        // Image 1: T-shirt/top.
        Assert.Equal(0, d.Labels[1]);
        Assert.Equal(84_598, Sum(d.GetImage(1)));
        Assert.Equal(204, d.GetImage(1)[14 * 28 + 14]);
        // Image 999: Pullover, training index 1109 (the 100th Pullover).
        var last = d.GetImage(999);
        Assert.Equal(2, d.Labels[999]);
        Assert.Equal(84_155, Sum(last));
        Assert.Equal(222, last[14 * 28 + 14]);
        Assert.Equal(new byte[] { 0, 0, 0, 0, 0, 0, 223, 216, 225, 231, 209, 227, 229, 225, 228, 229, 222, 231, 203, 206, 227, 216, 231, 84, 0, 0, 0, 0 },
            last.Slice(10 * 28, 28).ToArray());
        Assert.Equal("1e11949b88f5e56c", Sha16(last));
    }

    [Fact]
    public void TestSubset_IsFirst2000()
    {
        var d = Test();
        Assert.Equal((2000, 28, 28), (d.Count, d.Rows, d.Cols));
        Assert.Equal(new[] { 200, 203, 214, 190, 219, 195, 197, 200, 194, 188 }, d.CountPerClass(10));
        Assert.Equal(new byte[] { 9, 2, 1, 1, 6, 1, 4, 6, 5, 7, 4, 5, 7, 3, 4, 1, 2, 4, 8, 0 }, d.Labels[..20]);
        Assert.Equal(114_763_281, Sum(d.Pixels));
        Assert.Equal("a86243d2b2400909", Sha16(d.Labels));

        var img0 = d.GetImage(0);
        Assert.Equal(9, d.Labels[0]);
        Assert.Equal(33_456, Sum(img0));
        Assert.Equal(215, img0.IndexOfAnyExcept((byte)0));
        Assert.Equal(3, img0[215]);
        Assert.Equal(new byte[] { 0, 0, 0, 0, 0, 0, 2, 4, 1, 0, 0, 0, 98, 136, 110, 109, 110, 162, 135, 144, 149, 159, 167, 144, 158, 169, 119, 0 },
            img0.Slice(14 * 28, 28).ToArray());
        Assert.Equal("ffc7351ed0f8bae5", Sha16(img0));
        Assert.Equal(2, d.Labels[1]);
        Assert.Equal(100_994, Sum(d.GetImage(1)));
        Assert.Equal(0, d.Labels[1999]);
        Assert.Equal(59_629, Sum(d.GetImage(1999)));
        Assert.Equal(119, d.GetImage(1999)[11]);
        Assert.Equal("78fa057af182b42c", Sha16(d.GetImage(1999)));
    }

    [Fact]
    public void SeparateReaders_AgreeWithDataset()
    {
        var (count, rows, cols, pixels) = IdxReader.ReadImages(IdxTestFiles.Fashion("t10k-images-idx3-ubyte.gz"));
        byte[] labels = IdxReader.ReadLabels(IdxTestFiles.Fashion("t10k-labels-idx1-ubyte.gz"));
        var d = Test();
        Assert.Equal((d.Count, d.Rows, d.Cols), (count, rows, cols));
        Assert.Equal(d.Pixels, pixels);
        Assert.Equal(d.Labels, labels);

        var t = IdxReader.ReadTensor(IdxTestFiles.Fashion("train-images-idx3-ubyte.gz"));
        Assert.Equal(IdxDataType.UInt8, t.DataType);
        Assert.Equal(new[] { 1000, 28, 28 }, t.Shape);
        Assert.Equal(Train().Pixels, t.As<byte>());
    }

    [Theory]
    [InlineData("train-images-idx3-ubyte.gz", 0x00000803u, new[] { 1000, 28, 28 }, "a7e53275975bcefa1ef1bcac502fe6f5e4fd01774d43792f4a839144acf524f3")]
    [InlineData("train-labels-idx1-ubyte.gz", 0x00000801u, new[] { 1000 }, "9f361592fa79786ffb0f262ede3ea19f20772797efa627328326451c74b21126")]
    [InlineData("t10k-images-idx3-ubyte.gz", 0x00000803u, new[] { 2000, 28, 28 }, "862035b0a96959b614c9574f4c2b0ae9584ca234813e8d6d7adb7838b12ca46b")]
    [InlineData("t10k-labels-idx1-ubyte.gz", 0x00000801u, new[] { 2000 }, "aa3f574d30afaf0d4d9da084a6f8541771e20693d6a97fae6e9a4953fca8f078")]
    public void ShippedFiles_AreGzipIdxWithMtimeZero(string name, uint magic, int[] shape, string gunzippedSha256)
    {
        string path = IdxTestFiles.Fashion(name);
        byte[] file = File.ReadAllBytes(path);
        Assert.Equal(new byte[] { 0x1F, 0x8B, 8 }, file[..3]);
        Assert.Equal(new byte[4], file[4..8]); // gzip MTIME 0: re-derivation is byte-identical
        var header = IdxReader.ReadHeader(path);
        Assert.True(header.Compressed);
        Assert.Equal(magic, header.Magic);
        Assert.Equal(shape, header.Shape);

        using var gz = new System.IO.Compression.GZipStream(new MemoryStream(file), System.IO.Compression.CompressionMode.Decompress);
        using var raw = new MemoryStream();
        gz.CopyTo(raw);
        Assert.Equal(gunzippedSha256, Convert.ToHexStringLower(SHA256.HashData(raw.ToArray())));
    }

    [Fact]
    public void LabelNames_AndSourceIndices()
    {
        Assert.Equal(ClassNames, File.ReadAllText(IdxTestFiles.Fashion("labels.txt")).Split('\n', StringSplitOptions.RemoveEmptyEntries));

        int[] indices = File.ReadAllLines(IdxTestFiles.Fashion("train-source-indices.txt")).Select(int.Parse).ToArray();
        Assert.Equal(1000, indices.Length);
        Assert.Equal(0, indices[0]);
        Assert.Equal(1109, indices[^1]);
        for (int i = 1; i < indices.Length; i++) Assert.True(indices[i] > indices[i - 1], $"indices not increasing at {i}");
        // The first 20 training images are all kept (no class reaches 100 that early).
        Assert.Equal(Enumerable.Range(0, 20), indices[..20]);
    }

    [Fact]
    public void ShippedFolder_IsUnder2MB()
    {
        long total = new DirectoryInfo(IdxTestFiles.FashionDir).EnumerateFiles().Sum(f => f.Length);
        Assert.InRange(total, 1, 2_000_000);
    }
}

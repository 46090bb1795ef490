using System.Buffers.Binary;
using MlNetFineTune.Imaging;
using Xunit;

namespace MlNetFineTune.Tests;

/// <summary>IdxReader on hand-built IDX files: every element type, gzip detection, and every error path.</summary>
public sealed class IdxReaderTests : IDisposable
{
    private readonly IdxTempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private ImageFormatException Fails(Action read, string path, long offset, params string[] fragments)
    {
        var e = Assert.Throws<ImageFormatException>(read);
        Assert.Equal(path, e.Source);
        Assert.StartsWith(path + ": ", e.Message);
        Assert.Equal(offset, e.Offset);
        Assert.EndsWith($"(at byte {offset})", e.Message);
        foreach (string f in fragments) Assert.Contains(f, e.Message);
        return e;
    }

    // ---- reading ------------------------------------------------------------------------------------------

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Images_And_Labels_RoundTrip(bool gzip)
    {
        byte[] images = IdxTestFiles.Images(3, 2, 4);
        byte[] labels = IdxTestFiles.Labels(7, 0, 9);
        string ip = _dir.Write("images.idx", gzip ? IdxTestFiles.Gzip(images) : images);
        string lp = _dir.Write("labels.idx", gzip ? IdxTestFiles.Gzip(labels) : labels);

        var (count, rows, cols, pixels) = IdxReader.ReadImages(ip);
        Assert.Equal((3, 2, 4), (count, rows, cols));
        Assert.Equal(images[16..], pixels);
        Assert.Equal(new byte[] { 7, 0, 9 }, IdxReader.ReadLabels(lp));

        var d = IdxReader.ReadDataset(ip, lp, classCount: 10);
        Assert.Equal(3, d.Count);
        Assert.Equal(images[(16 + 8)..(16 + 16)], d.GetImage(1).ToArray());
        Assert.Equal(new[] { 1, 0, 0, 0, 0, 0, 0, 1, 0, 1 }, d.CountPerClass());
        Assert.Equal(ip, d.ImagesSource);
        Assert.Equal(gzip, IdxReader.ReadHeader(ip).Compressed);
    }

    [Fact]
    public void Gzip_IsDetectedByMagic_NotByName()
    {
        byte[] labels = IdxTestFiles.Labels(1, 2, 3);
        Assert.Equal(new byte[] { 1, 2, 3 }, IdxReader.ReadLabels(_dir.Write("plain-but-named.gz", labels)));
        Assert.Equal(new byte[] { 1, 2, 3 }, IdxReader.ReadLabels(_dir.Write("gzip-but-named.idx1-ubyte", IdxTestFiles.Gzip(labels))));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Streams_NonSeekable_TrickledAndLeftOpen(bool gzip)
    {
        byte[] images = IdxTestFiles.Images(5, 3, 3);
        var s = new IdxTrickleStream(gzip ? IdxTestFiles.Gzip(images) : images, chunk: 1);
        var (count, rows, cols, pixels) = IdxReader.ReadImages(s, "mem");
        Assert.Equal((5, 3, 3), (count, rows, cols));
        Assert.Equal(images[16..], pixels);
        Assert.True(s.CanRead); // not closed by the reader

        using var ms = new MemoryStream(IdxTestFiles.Labels(4, 5));
        Assert.Equal(new byte[] { 4, 5 }, IdxReader.ReadLabels(ms));
        Assert.True(ms.CanRead);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Tensor_AllElementTypes_BigEndian(bool gzip)
    {
        Check(0x08, [2, 3], new byte[] { 0, 1, 2, 253, 254, 255 }, b => [b]);
        Check(0x09, [4], new sbyte[] { -128, -1, 0, 127 }, v => [unchecked((byte)v)]);
        Check(0x0B, [2, 2], new short[] { -32768, -2, 258, 32767 }, v => { var b = new byte[2]; BinaryPrimitives.WriteInt16BigEndian(b, v); return b; });
        Check(0x0C, [3], new[] { int.MinValue, 16909060, -5 }, v => { var b = new byte[4]; BinaryPrimitives.WriteInt32BigEndian(b, v); return b; });
        Check(0x0D, [1, 1, 3], new[] { 1.5f, -0.0078125f, float.MaxValue }, v => { var b = new byte[4]; BinaryPrimitives.WriteSingleBigEndian(b, v); return b; });
        Check(0x0E, [2], new[] { Math.PI, -1e300 }, v => { var b = new byte[8]; BinaryPrimitives.WriteDoubleBigEndian(b, v); return b; });

        void Check<T>(byte type, uint[] dims, T[] values, Func<T, byte[]> encode) where T : unmanaged
        {
            byte[] file = IdxTestFiles.Build(type, dims, values.SelectMany(encode).ToArray());
            var t = IdxReader.ReadTensor(_dir.Write($"t{type:x2}.idx", gzip ? IdxTestFiles.Gzip(file) : file));
            Assert.Equal((IdxDataType)type, t.DataType);
            Assert.Equal(dims.Select(d => (int)d), t.Shape);
            Assert.Equal(values, t.As<T>());
            Assert.Equal(values.Length, t.Length);
            Assert.Equal(values.Select(v => System.Convert.ToSingle(v)), t.ToSingleArray());
        }
    }

    [Fact]
    public void Tensor_As_WrongType_Throws()
    {
        var t = IdxReader.ReadTensor(_dir.Write("l.idx", IdxTestFiles.Labels(1)));
        Assert.Throws<InvalidOperationException>(() => t.As<float>());
        Assert.Throws<InvalidOperationException>(() => t.As<sbyte>());
        // The runtime would let an sbyte[] pass as a byte[]; As<T> must not.
        var signed = IdxReader.ReadTensor(_dir.Write("s.idx", IdxTestFiles.Build(0x09, [1], [0xFF])));
        Assert.Throws<InvalidOperationException>(() => signed.As<byte>());
        Assert.Equal(new sbyte[] { -1 }, signed.As<sbyte>());
    }

    [Fact]
    public void EmptyImagesFile_ZeroCount_IsValid()
    {
        string p = _dir.Write("empty-set.idx", IdxTestFiles.Images(0, 28, 28));
        var (count, rows, cols, pixels) = IdxReader.ReadImages(p);
        Assert.Equal((0, 28, 28, 0), (count, rows, cols, pixels.Length));
    }

    // ---- header errors -------------------------------------------------------------------------------------

    [Fact]
    public void BadMagic_NotIdx()
    {
        byte[] png = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 0];
        string p = _dir.Write("picture.png", png);
        Fails(() => IdxReader.ReadImages(p), p, 0, "not an IDX file", "0x89504E47");
        Fails(() => IdxReader.ReadTensor(p), p, 0, "not an IDX file");
    }

    [Fact]
    public void BadMagic_UnknownType_And_ZeroDims()
    {
        string p = _dir.Write("type0a.idx", IdxTestFiles.Build(0x0A, [1], [0, 0, 0, 0]));
        Fails(() => IdxReader.ReadTensor(p), p, 2, "unknown IDX element type 0x0A");
        string z = _dir.Write("rank0.idx", [0, 0, 8, 0]);
        Fails(() => IdxReader.ReadTensor(z), z, 3, "0 dimensions");
    }

    [Fact]
    public void WrongKind_LabelsReadAsImages_AndViceVersa()
    {
        string labels = _dir.Write("labels.idx", IdxTestFiles.Labels(1, 2));
        string images = _dir.Write("images.idx", IdxTestFiles.Images(2, 2, 2));
        Fails(() => IdxReader.ReadImages(labels), labels, 0, "expected IDX images", "0x00000801");
        Fails(() => IdxReader.ReadLabels(images), images, 0, "expected IDX labels", "0x00000803", "[2, 2, 2]");
    }

    [Fact]
    public void WrongDims_Or_WrongType_ForImages()
    {
        string twoDims = _dir.Write("2d.idx", IdxTestFiles.Build(0x08, [2, 4], new byte[8]));
        Fails(() => IdxReader.ReadImages(twoDims), twoDims, 0, "expected IDX images", "0x00000802", "2 dimensions");
        string floats = _dir.Write("float.idx", IdxTestFiles.Build(0x0D, [1, 1, 1], new byte[4]));
        Fails(() => IdxReader.ReadImages(floats), floats, 0, "0x00000D03", "Float32");
        string zeroRows = _dir.Write("zero-rows.idx", IdxTestFiles.Build(0x08, [3, 0, 28], []));
        Fails(() => IdxReader.ReadImages(zeroRows), zeroRows, 8, "0 x 28");
        string zeroCols = _dir.Write("zero-cols.idx", IdxTestFiles.Build(0x08, [3, 28, 0], []));
        Fails(() => IdxReader.ReadImages(zeroCols), zeroCols, 12, "28 x 0");
    }

    [Fact]
    public void TruncatedHeader()
    {
        string empty = _dir.Write("empty.idx", []);
        Fails(() => IdxReader.ReadLabels(empty), empty, 0, "empty");
        string two = _dir.Write("two.idx", [0, 0]);
        Fails(() => IdxReader.ReadLabels(two), two, 2, "too short");
        byte[] images = IdxTestFiles.Images(1, 2, 2);
        string cut = _dir.Write("cut-header.idx", images[..10]);
        Fails(() => IdxReader.ReadImages(cut), cut, 10, "ends inside the header", "16-byte header");
        string cutGz = _dir.Write("cut-header.idx.gz", IdxTestFiles.Gzip(images[..10]));
        Fails(() => IdxReader.ReadImages(cutGz), cutGz, 10, "ends inside the header", "gunzipped");
    }

    [Fact]
    public void DimensionTooLarge()
    {
        string p = _dir.Write("huge-dim.idx", IdxTestFiles.Build(0x08, [1, 0x80000000u], []));
        Fails(() => IdxReader.ReadTensor(p), p, 8, "dimension 1 is 2147483648");
    }

    [Fact]
    public void DeclaredSizeBeyondAnyArray_FailsBeforeAllocating()
    {
        string p = _dir.Write("too-big.idx", IdxTestFiles.Build(0x08, [65535, 65535, 65535], new byte[16]));
        long before = GC.GetAllocatedBytesForCurrentThread();
        Fails(() => IdxReader.ReadImages(p), p, 4, "more data than one array can hold");
        string f = _dir.Write("too-big-doubles.idx", IdxTestFiles.Build(0x0E, [300_000_000], []));
        Fails(() => IdxReader.ReadTensor(f), f, 4, "more data than one array can hold");
        Assert.True(GC.GetAllocatedBytesForCurrentThread() - before < 16 << 20);
    }

    // ---- data length errors ------------------------------------------------------------------------------

    [Fact]
    public void TruncatedData_Plain_FailsBeforeAllocating()
    {
        // Declares 60,000 x 28 x 28 (47 MB) but holds 100 bytes: rejected from the file length alone.
        byte[] file = IdxTestFiles.Build(0x08, [60000, 28, 28], new byte[100]);
        string p = _dir.Write("train-images-idx3-ubyte", file);
        long before = GC.GetAllocatedBytesForCurrentThread();
        Fails(() => IdxReader.ReadImages(p), p, 116, "truncated", "47040000 data bytes", "only 100 follow");
        Assert.True(GC.GetAllocatedBytesForCurrentThread() - before < 4 << 20);
    }

    [Fact]
    public void TruncatedData_Gzip_AllocatesOnlyWhatArrives()
    {
        byte[] file = IdxTestFiles.Build(0x08, [60000, 28, 28], new byte[100]);
        string p = _dir.Write("train-images-idx3-ubyte.gz", IdxTestFiles.Gzip(file));
        long before = GC.GetAllocatedBytesForCurrentThread();
        Fails(() => IdxReader.ReadImages(p), p, 116, "truncated", "only 100 follow", "gunzipped");
        Assert.True(GC.GetAllocatedBytesForCurrentThread() - before < 8 << 20);
    }

    [Fact]
    public void TruncatedData_GzipStreamCutShort()
    {
        // A complete IDX file whose gzip stream is cut in the middle of the deflate data.
        byte[] gz = IdxTestFiles.Gzip(IdxTestFiles.Images(50, 28, 28, i => (byte)(i * 31 % 251)));
        string p = _dir.Write("cut.gz", gz[..(gz.Length / 2)]);
        var e = Assert.Throws<ImageFormatException>(() => IdxReader.ReadImages(p));
        Assert.Equal(p, e.Source);
        Assert.NotNull(e.Offset);
    }

    [Fact]
    public void CorruptGzip_IsImageFormatException()
    {
        byte[] gz = IdxTestFiles.Gzip(IdxTestFiles.Images(20, 28, 28, i => (byte)(i * 31 % 251)));
        for (int i = 12; i < gz.Length - 8; i++) gz[i] ^= 0x5A;
        string p = _dir.Write("corrupt.gz", gz);
        var e = Assert.Throws<ImageFormatException>(() => IdxReader.ReadTensor(p));
        Assert.Equal(p, e.Source);
        Assert.StartsWith(p + ": ", e.Message);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void TrailingBytes(bool gzip)
    {
        byte[] file = [.. IdxTestFiles.Labels(1, 2, 3), 0xAA, 0xBB];
        string p = _dir.Write("trailing.idx", gzip ? IdxTestFiles.Gzip(file) : file);
        Fails(() => IdxReader.ReadLabels(p), p, 11, "unexpected bytes after the 3 data bytes");
    }

    [Fact]
    public void Stream_ErrorsNameTheSource()
    {
        byte[] cut = IdxTestFiles.Labels(1, 2, 3)[..9];
        var e = Assert.Throws<ImageFormatException>(() => IdxReader.ReadLabels(new MemoryStream(cut), "labels-from-stream"));
        Assert.Equal("labels-from-stream: truncated: magic 0x00000801 (UInt8, 1 dimension [3]) needs 3 data bytes after the 8-byte header, but only 1 follow (at byte 9)", e.Message);
        var anonymous = Assert.Throws<ImageFormatException>(() => IdxReader.ReadLabels(new IdxTrickleStream(cut)));
        Assert.Null(anonymous.Source);
        Assert.StartsWith("truncated", anonymous.Message);
    }

    // ---- datasets ----------------------------------------------------------------------------------------

    [Fact]
    public void Dataset_CountMismatch_NamesBothFiles()
    {
        string ip = _dir.Write("images.gz", IdxTestFiles.Gzip(IdxTestFiles.Images(3, 28, 28)));
        string lp = _dir.Write("labels.gz", IdxTestFiles.Gzip(IdxTestFiles.Labels(1, 2, 3, 4)));
        var e = Fails(() => IdxReader.ReadDataset(ip, lp), ip, 4, "holds 3 images", lp, "holds 4 labels");
        Assert.IsNotType<OutOfMemoryException>(e.InnerException);
    }

    [Fact]
    public void Dataset_LabelOutOfRange()
    {
        string ip = _dir.Write("images.idx", IdxTestFiles.Images(3, 2, 2));
        string lp = _dir.Write("labels.idx", IdxTestFiles.Labels(1, 12, 3));
        Fails(() => IdxReader.ReadDataset(ip, lp, classCount: 10), lp, 9, "label 12 of example 1", "0..9");
        Assert.Equal(3, IdxReader.ReadDataset(ip, lp).Count); // no range check without classCount
    }

    [Fact]
    public void Dataset_WrongFilesSwapped()
    {
        string ip = _dir.Write("images.idx", IdxTestFiles.Images(3, 2, 2));
        string lp = _dir.Write("labels.idx", IdxTestFiles.Labels(1, 2, 3));
        Fails(() => IdxReader.ReadDataset(lp, ip), ip, 0, "expected IDX labels");
    }

    [Fact]
    public void MissingFile_IsFileNotFound()
    {
        Assert.Throws<FileNotFoundException>(() => IdxReader.ReadImages(Path.Combine(_dir.Path, "nope.gz")));
    }
}

using System.Buffers.Binary;
using System.Diagnostics;
using System.Text;
using MlNetFineTune.Imaging;
using Xunit;

namespace MlNetFineTune.Tests;

/// <summary>Malformed, truncated, hostile and over-limit PNG input: always an <see cref="ImageFormatException"/>
/// naming the source and a byte offset, and the documented leniencies (missing IEND, trailing zlib bytes).</summary>
public sealed class PngCorruptTests
{
    private const string Source = "images/bad.png";

    /// <summary>Decoding must fail with an ImageFormatException carrying the source and an offset inside the input.</summary>
    private static ImageFormatException Fails(byte[] png, string? contains = null, long? offset = null)
    {
        var ex = Assert.Throws<ImageFormatException>(() => PngDecoder.Decode(png, Source));
        Assert.Equal(Source, ex.Source);
        Assert.NotNull(ex.Offset);
        Assert.InRange(ex.Offset!.Value, 0, png.Length);
        Assert.StartsWith(Source + ": ", ex.Message, StringComparison.Ordinal);
        Assert.EndsWith($" (at byte {ex.Offset})", ex.Message, StringComparison.Ordinal);
        if (contains is not null) Assert.Contains(contains, ex.Message, StringComparison.Ordinal);
        if (offset is not null) Assert.Equal(offset, ex.Offset);
        return ex;
    }

    private static byte[] Small() => PngBuild.Gray8(5, 4, (x, y) => (byte)(x * 40 + y));

    // ------------------------------------------------------------------ signature

    [Theory]
    [InlineData("", "input is empty")]
    [InlineData("89504E47", "damaged PNG signature")]
    [InlineData("89504E470A1A0A0000000D49484452", "damaged PNG signature")] // CRLF -> LF conversion
    [InlineData("FFD8FFE000104A464946", "JPEG")]
    [InlineData("68656C6C6F20776F726C6421", "not a PNG file")]
    public void Bad_signature(string hex, string message)
    {
        var ex = Fails(Convert.FromHexString(hex), message, offset: 0);
        Assert.False(PngDecoder.IsPng(Convert.FromHexString(hex)));
        Assert.Equal(Source, ex.Source);
    }

    [Fact]
    public void IsPng_needs_the_full_signature()
    {
        Assert.True(PngDecoder.IsPng(PngBuild.Signature));
        Assert.True(PngDecoder.IsPng(Small()));
        Assert.False(PngDecoder.IsPng(PngBuild.Signature.AsSpan(0, 7)));
        Assert.False(PngDecoder.IsPng([]));
        Assert.Equal(PngBuild.Signature, PngDecoder.Signature.ToArray());
    }

    // ------------------------------------------------------------------ CRC

    [Fact]
    public void Crc_mismatch_in_any_chunk_names_the_chunk_and_its_offset()
    {
        var good = PngFixtures.Bytes("ancillary_ct3_bd8_trns.png");
        var chunks = PngBuild.Chunks(good);
        Assert.True(chunks.Count >= 14);
        foreach (var (offset, type, length) in chunks)
        {
            var bad = (byte[])good.Clone();
            bad[offset + 8 + length / 2] ^= 0x10; // a data byte, or the CRC itself for IEND
            Fails(bad, $"CRC mismatch in chunk '{type}'", offset);
        }
    }

    // ------------------------------------------------------------------ truncation and IEND

    [Theory]
    [InlineData("ct3_bd4_trns_adam7.png")]
    [InlineData("idat_one_byte_chunks_ct0_bd2_adam7.png")]
    public void Every_truncation_fails_except_exactly_before_IEND(string file)
    {
        var good = PngFixtures.Bytes(file);
        var expected = PngDecoder.Decode(good);
        int iend = PngBuild.First(good, "IEND").Offset;
        for (int len = 0; len < good.Length; len++)
        {
            var cut = good.AsSpan(0, len).ToArray();
            if (len == iend)
                Assert.Equal(expected.Pixels, PngDecoder.Decode(cut, Source).Pixels); // missing IEND is accepted
            else
                Fails(cut);
        }
    }

    [Fact]
    public void Truncated_inside_IDAT_names_the_chunk()
    {
        var good = PngFixtures.Bytes("ct6_bd8_plain.png");
        var idat = PngBuild.First(good, "IDAT");
        Fails(good.AsSpan(0, idat.Offset + 8 + idat.Length / 2).ToArray(), "file ends inside chunk 'IDAT'", idat.Offset);
        Fails(good.AsSpan(0, idat.Offset + 8 + idat.Length + 2).ToArray(), "file ends inside chunk 'IDAT' (its CRC is missing)", idat.Offset);
    }

    [Fact]
    public void Too_little_image_data_in_intact_chunks()
    {
        // 5 x 4 gray needs 4 rows of 6 bytes; the zlib stream holds 3.
        var png = PngBuild.Png(PngBuild.Ihdr(5, 4, 8, 0), PngBuild.Idat(new byte[18]), PngBuild.Iend());
        Fails(png, "image data ends early: 18 of the 24 decompressed bytes", PngBuild.First(png, "IDAT").Offset);
        // no IDAT at all
        png = PngBuild.Png(PngBuild.Ihdr(5, 4, 8, 0), PngBuild.Iend());
        Fails(png, "IEND before any image data", 33);
        png = PngBuild.Png(PngBuild.Ihdr(5, 4, 8, 0));
        Fails(png, "file ends before any image data", 33);
    }

    [Fact]
    public void Missing_IEND_is_accepted_when_all_data_is_present_but_a_partial_IEND_is_not()
    {
        var good = Small();
        int iend = PngBuild.First(good, "IEND").Offset;
        Assert.Equal(PngDecoder.Decode(good).Pixels, PngDecoder.Decode(good.AsSpan(0, iend).ToArray()).Pixels);
        Fails(good.AsSpan(0, iend + 6).ToArray(), "file ends inside a chunk header", iend);
        Fails(good.AsSpan(0, iend + 8).ToArray(), "file ends inside chunk 'IEND' (its CRC is missing)", iend);
    }

    // ------------------------------------------------------------------ limits and bombs

    [Theory]
    [InlineData(40000u, 1u, "above the decoder limit of 32768")]
    [InlineData(1u, 32769u, "above the decoder limit of 32768")]
    [InlineData(0x80000000u, 1u, "above the decoder limit")]
    [InlineData(0xFFFFFFFFu, 0xFFFFFFFFu, "above the decoder limit")]
    [InlineData(20000u, 20000u, "above the decoder budget")]
    [InlineData(32768u, 32768u, "above the decoder budget")]
    [InlineData(0u, 5u, "empty image")]
    [InlineData(5u, 0u, "empty image")]
    public void Huge_or_empty_dimensions_are_rejected_before_allocating(uint w, uint h, string message)
    {
        var png = PngBuild.Png(PngBuild.Ihdr(w, h, 16, 6), PngBuild.Idat(new byte[100]), PngBuild.Iend());
        var sw = Stopwatch.StartNew();
        Fails(png, message, offset: 8);
        Assert.True(sw.ElapsedMilliseconds < 500, $"took {sw.ElapsedMilliseconds} ms");
    }

    [Fact]
    public void Zlib_bomb_stops_after_the_expected_size()
    {
        // 1 x 1 gray needs 2 decompressed bytes; this IDAT inflates to 64 MiB of zeros (about 65 KB compressed).
        var bomb = PngBuild.Png(PngBuild.Ihdr(1, 1, 8, 0), PngBuild.Idat(new byte[64 << 20]), PngBuild.Iend());
        var stream = new MemoryStream(bomb);
        var sw = Stopwatch.StartNew();
        var ex = Assert.Throws<ImageFormatException>(() => PngDecoder.Decode(stream, Source));
        Assert.Contains("decompresses to more than the 2 bytes", ex.Message, StringComparison.Ordinal);
        Assert.Contains("decompression bomb", ex.Message, StringComparison.Ordinal);
        Assert.Equal(PngBuild.First(bomb, "IDAT").Offset, ex.Offset);
        Assert.True(stream.Position < bomb.Length / 4, $"read {stream.Position} of {bomb.Length} bytes");
        Assert.True(sw.ElapsedMilliseconds < 1000, $"took {sw.ElapsedMilliseconds} ms");
    }

    [Fact]
    public void One_extra_decompressed_byte_is_rejected_but_trailing_compressed_bytes_are_ignored()
    {
        var raw = new byte[4 * 5]; // 4 x 4 gray: 4 rows of 1 + 4
        Fails(PngBuild.Png(PngBuild.Ihdr(4, 4, 8, 0), PngBuild.Idat([.. raw, 0]), PngBuild.Iend()), "decompresses to more than the 20 bytes");

        byte[] z = [.. PngBuild.Zlib(raw), 0xDE, 0xAD, 0xBE, 0xEF]; // junk after the zlib stream, inside IDAT
        var img = PngDecoder.Decode(PngBuild.Png(PngBuild.Ihdr(4, 4, 8, 0), PngBuild.Chunk("IDAT", z), PngBuild.Iend()));
        Assert.Equal(new byte[16], img.Pixels);
    }

    [Fact]
    public void Zlib_stream_cut_before_its_checksum_is_rejected_wherever_the_chunks_split()
    {
        var raw = Enumerable.Range(0, 20).Select(i => (byte)(i % 5 == 0 ? 0 : i)).ToArray();
        var z = PngBuild.Zlib(raw);
        var ihdr = PngBuild.Ihdr(4, 4, 8, 0);
        Fails(PngBuild.Png(ihdr, PngBuild.Chunk("IDAT", z[..^4]), PngBuild.Iend()), "zlib stream in IDAT is cut short", 33);
        Fails(PngBuild.Png(ihdr, PngBuild.Chunk("IDAT", z[..^1])), "zlib stream in IDAT is cut short", 33); // and no IEND

        for (int split = 1; split < z.Length; split++)
        {
            var png = PngBuild.Png(ihdr, PngBuild.Chunk("IDAT", z[..split]), PngBuild.Chunk("IDAT", []), PngBuild.Chunk("IDAT", z[split..]), PngBuild.Iend());
            Assert.Equal(raw.Where((_, i) => i % 5 != 0).ToArray(), PngDecoder.Decode(png).Pixels);
        }
    }

    [Fact]
    public void Missing_IEND_after_trailing_ancillary_chunks_is_accepted()
    {
        var png = PngBuild.Png(PngBuild.Ihdr(1, 1, 8, 0), PngBuild.Idat([0, 77]), PngBuild.Chunk("tEXt", "a\0b"u8));
        Assert.Equal(new byte[] { 77 }, PngDecoder.Decode(png).Pixels);
    }

    [Fact]
    public void Corrupt_zlib_data()
    {
        var raw = Enumerable.Range(0, 4 * 5).Select(i => (byte)(i % 5 == 0 ? 0 : i * 13)).ToArray();
        var z = PngBuild.Zlib(raw);
        byte[] Build(byte[] zdata) => PngBuild.Png(PngBuild.Ihdr(4, 4, 8, 0), PngBuild.Chunk("IDAT", zdata), PngBuild.Iend());

        var badHeader = (byte[])z.Clone();
        badHeader[0] = 0x79; // CM 9
        var adler = (byte[])z.Clone();
        adler[^1] ^= 1;
        byte[] dict = [0x78, 0xBB, 0, 0, 0, 1, .. z[2..]]; // FDICT set
        var garbage = Enumerable.Range(0, 40).Select(i => (byte)(i * 97 + 11)).ToArray();
        foreach (var bad in new[] { badHeader, adler, dict, garbage })
        {
            var ex = Fails(Build(bad), "corrupt zlib data in IDAT", offset: 33);
            Assert.NotNull(ex.InnerException);
        }
    }

    // ------------------------------------------------------------------ header and chunk structure

    [Theory]
    [InlineData(4, 2, "bit depth 4 is invalid for colour type 2")]
    [InlineData(16, 3, "bit depth 16 is invalid for colour type 3")]
    [InlineData(1, 4, "bit depth 1 is invalid for colour type 4")]
    [InlineData(2, 6, "bit depth 2 is invalid for colour type 6")]
    [InlineData(3, 0, "bit depth 3 is invalid for colour type 0")]
    [InlineData(8, 1, "colour type 1 is invalid")]
    [InlineData(8, 5, "colour type 5 is invalid")]
    [InlineData(8, 7, "colour type 7 is invalid")]
    public void Illegal_colour_type_and_bit_depth(int bitDepth, int colorType, string message) =>
        Fails(PngBuild.Png(PngBuild.Ihdr(4, 4, bitDepth, colorType), PngBuild.Idat(new byte[20]), PngBuild.Iend()), message, 8);

    [Fact]
    public void Unknown_methods_and_bad_IHDR_length()
    {
        byte[] Tail(byte[] ihdr) => PngBuild.Png(ihdr, PngBuild.Idat(new byte[20]), PngBuild.Iend());
        Fails(Tail(PngBuild.Ihdr(4, 4, 8, 0, compression: 1)), "compression method 1", 8);
        Fails(Tail(PngBuild.Ihdr(4, 4, 8, 0, filter: 1)), "filter method 1", 8);
        Fails(Tail(PngBuild.Ihdr(4, 4, 8, 0, interlace: 2)), "interlace method 2", 8);
        Fails(Tail(PngBuild.Chunk("IHDR", new byte[12])), "IHDR has length 12, expected 13", 8);
    }

    public static TheoryData<string, string, int> StructureCases() => new()
    {
        { "first chunk is 'gAMA', expected IHDR", "gAMA00000001 IHDR IDAT IEND", 8 },
        { "Apple CgBI PNG", "CgBI50002002 IHDR IDAT IEND", 8 },
        { "duplicate IHDR", "IHDR IHDR IDAT IEND", 33 },
        { "unknown critical chunk 'CRIT'", "IHDR CRIT00 IDAT IEND", 33 },
        { "invalid chunk type bytes 0x49443454", "IHDR ID4T IDAT IEND", 33 },
        { "IDAT chunks are not consecutive", "IHDR IDAT tEXt6100 IDAT IEND", -1 },
        { "PLTE chunk in a grayscale image", "IHDR PLTE000000 IDAT IEND", 33 },
        { "tRNS has length 1; a grayscale image needs 2", "IHDR tRNS00 IDAT IEND", 33 },
        { "tRNS chunk after the image data", "IHDR IDAT tRNS0000 IEND", -1 },
        { "duplicate tRNS chunk", "IHDR tRNS0000 tRNS0000 IDAT IEND", 47 },
        { "IEND has length 1, expected 0", "IHDR IDAT IEND00", -1 },
    };

    /// <summary>A 4 x 4 8-bit gray file from a chunk list: "TYPE" or "TYPEhexdata"; IHDR/IDAT/IEND get valid data.</summary>
    private static byte[] FromList(string list)
    {
        var parts = new List<byte[]>();
        foreach (var item in list.Split(' '))
        {
            string type = item[..4];
            parts.Add(item.Length > 4 ? PngBuild.Chunk(type, Convert.FromHexString(item[4..])) : type switch
            {
                "IHDR" => PngBuild.Ihdr(4, 4, 8, 0),
                "IDAT" => PngBuild.Idat(new byte[20]),
                "IEND" => PngBuild.Iend(),
                _ => PngBuild.Chunk(type, []),
            });
        }
        return PngBuild.Png([.. parts]);
    }

    [Theory]
    [MemberData(nameof(StructureCases))]
    public void Chunk_structure_errors(string message, string chunks, int offset)
    {
        var png = FromList(chunks);
        var ex = Fails(png, message);
        if (offset >= 0) Assert.Equal(offset, ex.Offset);
        else Assert.Equal(PngBuild.Chunks(png).Last(c => message.Contains(c.Type, StringComparison.Ordinal)).Offset, ex.Offset);
    }

    [Fact]
    public void Unknown_ancillary_chunks_are_ignored_and_chunk_lengths_are_checked()
    {
        var img = PngDecoder.Decode(FromList("IHDR crIt0102 IDAT zzZz IEND"));
        Assert.Equal(new byte[16], img.Pixels);

        var huge = FromList("IHDR IDAT IEND");
        BinaryPrimitives.WriteUInt32BigEndian(huge.AsSpan(33), 0x80000000u);
        Fails(huge, "declares length 2147483648", 33);

        var longAncillary = FromList("IHDR tEXt41 IDAT IEND");
        BinaryPrimitives.WriteUInt32BigEndian(longAncillary.AsSpan(33), 0x7FFFFFF0u); // far beyond the file
        Fails(longAncillary, "file ends inside chunk 'tEXt'", 33);
    }

    [Fact]
    public void Palette_errors()
    {
        var ihdr = PngBuild.Ihdr(2, 1, 8, 3);
        var idat = PngBuild.Idat([0, 0, 1]);
        var plte2 = PngBuild.Chunk("PLTE", [1, 2, 3, 4, 5, 6]);
        Assert.Equal(new byte[] { 1, 2, 3, 4, 5, 6 }, PngDecoder.Decode(PngBuild.Png(ihdr, plte2, idat, PngBuild.Iend())).Pixels);

        Fails(PngBuild.Png(ihdr, idat, PngBuild.Iend()), "has no PLTE chunk before IDAT", 33);
        var png = PngBuild.Png(ihdr, PngBuild.Chunk("PLTE", [1, 2, 3]), idat, PngBuild.Iend());
        Fails(png, "palette index 1 is out of range (PLTE has 1 entries) in row 0", PngBuild.First(png, "IDAT").Offset);
        Fails(PngBuild.Png(ihdr, PngBuild.Chunk("PLTE", [1, 2, 3, 4]), idat, PngBuild.Iend()), "PLTE has length 4", 33);
        Fails(PngBuild.Png(ihdr, PngBuild.Chunk("PLTE", new byte[771]), idat, PngBuild.Iend()), "PLTE has length 771", 33);
        // a palette longer than the bit depth can index is accepted (as libpng does); the extra entries are unreachable
        var long1bit = PngBuild.Png(PngBuild.Ihdr(2, 1, 1, 3), PngBuild.Chunk("PLTE", [1, 2, 3, 4, 5, 6, 7, 8, 9]), PngBuild.Idat([0, 0b0100_0000]), PngBuild.Iend());
        Assert.Equal(new byte[] { 1, 2, 3, 4, 5, 6 }, PngDecoder.Decode(long1bit).Pixels);
        Fails(PngBuild.Png(ihdr, PngBuild.Chunk("tRNS", [0]), plte2, idat, PngBuild.Iend()), "tRNS chunk before PLTE", 33);
        Fails(PngBuild.Png(ihdr, plte2, PngBuild.Chunk("tRNS", [0, 0, 0]), idat, PngBuild.Iend()), "tRNS has 3 entries but PLTE only 2", 51);
        Fails(PngBuild.Png(ihdr, plte2, plte2, idat, PngBuild.Iend()), "duplicate PLTE", 51);
        png = PngBuild.Png(ihdr, plte2, idat, plte2, PngBuild.Iend());
        Fails(png, "PLTE chunk after the image data", PngBuild.Chunks(png)[3].Offset);
        Fails(PngBuild.Png(PngBuild.Ihdr(2, 1, 8, 6), PngBuild.Chunk("tRNS", [0, 0]), idat, PngBuild.Iend()), "already has an alpha channel", 33);
    }

    [Fact]
    public void Invalid_filter_type()
    {
        var png = PngBuild.Png(PngBuild.Ihdr(2, 2, 8, 0), PngBuild.Idat([0, 1, 2, 5, 3, 4]), PngBuild.Iend());
        Fails(png, "invalid scanline filter type 5 in row 1", 33);
        png = PngBuild.Png(PngBuild.Ihdr(2, 2, 8, 0, interlace: 1), PngBuild.Idat([0, 1, 9, 2, 0, 3, 4]), PngBuild.Iend());
        Fails(png, "invalid scanline filter type 9 in Adam7 pass 6, row 0", 33);
    }

    // ------------------------------------------------------------------ streams

    [Fact]
    public void Offsets_count_from_the_stream_position_and_reading_stops_after_IEND()
    {
        var a = Small();
        var b = PngFixtures.Bytes("ct2_bd8_plain.png");
        var stream = new MemoryStream([.. "junk"u8, .. a, .. b, .. "trailer"u8]);
        stream.Position = 4;
        Assert.Equal(PngDecoder.Decode(a).Pixels, PngDecoder.Decode(stream, "first").Pixels);
        Assert.Equal(4 + a.Length, stream.Position);
        Assert.Equal(PngDecoder.Decode(b).Pixels, PngDecoder.Decode(stream, "second").Pixels);
        Assert.Equal(4 + a.Length + b.Length, stream.Position);

        var bad = (byte[])b.Clone();
        var idat = PngBuild.First(bad, "IDAT");
        bad[idat.Offset + 20] ^= 1;
        stream = new MemoryStream([.. "junk"u8, .. bad]) { Position = 4 };
        var ex = Assert.Throws<ImageFormatException>(() => PngDecoder.Decode(stream, "s"));
        Assert.Equal(idat.Offset, ex.Offset);
        Assert.Equal("s", ex.Source);
    }

    [Fact]
    public void Stream_io_errors_propagate_unchanged()
    {
        var png = PngFixtures.Bytes("large_ct6_bd8.png");
        var ex = Assert.Throws<IOException>(() => PngDecoder.Decode(new FailingStream(png, png.Length / 2), Source));
        Assert.Equal("disk on fire", ex.Message);
    }

    [Fact]
    public void Null_arguments_and_no_source()
    {
        Assert.Throws<ArgumentNullException>(() => PngDecoder.Decode((byte[])null!));
        Assert.Throws<ArgumentNullException>(() => PngDecoder.Decode((Stream)null!));
        var ex = Assert.Throws<ImageFormatException>(() => PngDecoder.Decode(Encoding.ASCII.GetBytes("GIF89a......")));
        Assert.Null(ex.Source);
        Assert.Equal("not a PNG file (bad signature) (at byte 0)", ex.Message);
    }

    private sealed class FailingStream(byte[] data, int failAt) : Stream
    {
        private int _pos;

        public override int Read(byte[] buffer, int offset, int count)
        {
            if (_pos >= failAt) throw new IOException("disk on fire");
            int n = Math.Min(Math.Min(count, failAt - _pos), 100);
            Array.Copy(data, _pos, buffer, offset, n);
            _pos += n;
            return n;
        }

        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}

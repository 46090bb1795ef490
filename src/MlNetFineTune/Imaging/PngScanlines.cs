using System.IO.Compression;
using System.Numerics;

namespace MlNetFineTune.Imaging;

/// <summary>
/// Inflates the IDAT stream, reverses the scanline filters and converts each scanline to 8-bit output pixels,
/// one row at a time (no buffer for the whole compressed or decompressed stream).
/// </summary>
internal static class PngScanlines
{
    public static ImageData Decode(PngHeader h, PngIdatStream idat, byte[]? palette, byte[]? trns, PngChunkReader reader)
    {
        var unpacker = new RowUnpacker(h, palette, trns);
        int channels = unpacker.Channels;
        int width = h.Width;
        // <= MaxPixelCount * 4 = 2^30 bytes. Not zeroed: every byte is written (Adam7 passes cover each pixel once).
        var pixels = GC.AllocateUninitializedArray<byte>(checked(width * h.Height * channels));
        int outRowBytes = width * channels;
        long expected = h.DecompressedSize;
        long done = 0;
        int maxRow = checked((int)h.RowBytes(width) + 1);
        var cur = new byte[maxRow];
        var prev = new byte[maxRow];
        var passRow = h.Interlaced ? new byte[outRowBytes] : null;
        var passes = h.Interlaced ? PngHeader.Adam7 : [(0, 0, 1, 1)];

        using var z = new ZLibStream(idat, CompressionMode.Decompress, leaveOpen: true);
        try
        {
            for (int p = 0; p < passes.Length; p++)
            {
                var (x0, y0, dx, dy) = passes[p];
                int pw = PngHeader.PassSize(width, x0, dx), ph = PngHeader.PassSize(h.Height, y0, dy);
                if (pw == 0 || ph == 0) continue;
                int rowBytes = (int)h.RowBytes(pw);
                prev.AsSpan(0, rowBytes + 1).Clear();
                for (int r = 0; r < ph; r++)
                {
                    var row = cur.AsSpan(0, rowBytes + 1);
                    int got = ReadFull(z, row);
                    if (got < row.Length)
                        throw DataError(idat, reader,
                            $"image data ends early: {done + got} of the {expected} decompressed bytes an image of {width} x {h.Height} needs" +
                            Where(h, p, r) + " (truncated or corrupt IDAT)");
                    done += got;

                    int filter = row[0];
                    if (filter > 4)
                        throw DataError(idat, reader, $"invalid scanline filter type {filter}{Where(h, p, r)} (allowed 0-4)");
                    Unfilter(filter, row[1..], prev.AsSpan(1, rowBytes), h.FilterStride);

                    int y = y0 + r * dy;
                    int bad;
                    if (dx == 1)
                    {
                        bad = unpacker.Unpack(row[1..], pw, pixels.AsSpan(y * outRowBytes, outRowBytes));
                    }
                    else
                    {
                        bad = unpacker.Unpack(row[1..], pw, passRow);
                        Scatter(passRow!, pixels, y * outRowBytes, x0, dx, pw, channels);
                    }
                    if (bad >= 0)
                        throw DataError(idat, reader, $"palette index {bad} is out of range (PLTE has {unpacker.PaletteCount} entries){Where(h, p, r)}");

                    (cur, prev) = (prev, cur);
                }
            }

            // Nothing may follow: this stops decompression bombs after at most one extra byte, and lets zlib reach
            // (and check) the Adler-32 trailer.
            Span<byte> one = stackalloc byte[1];
            if (z.Read(one) != 0)
                throw reader.Error($"IDAT decompresses to more than the {expected} bytes an image of {width} x {h.Height} needs (corrupt file or decompression bomb)", idat.Current.Offset);
            if (idat.RanDry)
                throw DataError(idat, reader, "the zlib stream in IDAT is cut short: all pixel data is there but the end of the deflate data " +
                    "and its Adler-32 checksum are missing (truncated file?)");
        }
        catch (Exception ex) when (ex is InvalidDataException || (ex is IOException && !idat.SourceFailed))
        {
            // zlib reports a bad header, invalid deflate data or an Adler-32 mismatch as InvalidDataException (with a
            // misleading "unsupported compression method" message) and a preset dictionary as an internal
            // IOException subclass; I/O errors of the caller's stream itself are not caught here.
            throw DataError(idat, reader, $"corrupt zlib data in IDAT after {done} decompressed bytes (bad zlib header, invalid deflate data, " +
                "preset dictionary or Adler-32 checksum mismatch)", ex);
        }
        return new ImageData(width, h.Height, channels, pixels);
    }

    /// <summary>An error in the decompressed data, unless the IDAT chunk being read turns out to be damaged (then
    /// that CRC or truncation error is thrown instead). Not used for oversize data, to stop bombs at once.</summary>
    private static ImageFormatException DataError(PngIdatStream idat, PngChunkReader reader, string message, Exception? inner = null)
    {
        idat.CheckCurrentChunk();
        return reader.Error(message, idat.Current.Offset, inner);
    }

    private static string Where(PngHeader h, int pass, int row) =>
        h.Interlaced ? $" in Adam7 pass {pass + 1}, row {row}" : $" in row {row}";

    private static int ReadFull(Stream s, Span<byte> buffer)
    {
        int total = 0;
        while (total < buffer.Length)
        {
            int n = s.Read(buffer[total..]);
            if (n == 0) break;
            total += n;
        }
        return total;
    }

    private static void Scatter(byte[] passRow, byte[] pixels, int rowStart, int x0, int dx, int count, int channels)
    {
        int dst = rowStart + x0 * channels, step = dx * channels;
        switch (channels)
        {
            case 1:
                for (int i = 0; i < count; i++, dst += step) pixels[dst] = passRow[i];
                break;
            case 3:
                for (int i = 0, s = 0; i < count; i++, dst += step, s += 3)
                {
                    pixels[dst] = passRow[s]; pixels[dst + 1] = passRow[s + 1]; pixels[dst + 2] = passRow[s + 2];
                }
                break;
            default:
                for (int i = 0, s = 0; i < count; i++, dst += step, s += channels)
                    passRow.AsSpan(s, channels).CopyTo(pixels.AsSpan(dst, channels));
                break;
        }
    }

    /// <summary>Reverses filter <paramref name="type"/> (0 None, 1 Sub, 2 Up, 3 Average, 4 Paeth) in place.
    /// <paramref name="prior"/> is the previous unfiltered line of the pass (zeros for its first line), at least as long.</summary>
    internal static unsafe void Unfilter(int type, Span<byte> line, ReadOnlySpan<byte> prior, int bpp)
    {
        int n = line.Length;
        if (prior.Length < n) throw new ArgumentException("prior line too short", nameof(prior));
        if (type == 2 && Vector.IsHardwareAccelerated && n >= Vector<byte>.Count)
        {
            int i = 0;
            for (; i + Vector<byte>.Count <= n; i += Vector<byte>.Count)
                (new Vector<byte>(line[i..]) + new Vector<byte>(prior[i..])).CopyTo(line[i..]);
            for (; i < n; i++) line[i] += prior[i];
            return;
        }
        int head = Math.Min(bpp, n);
        fixed (byte* l = line, p = prior)
        {
            switch (type)
            {
                case 0:
                    break;
                case 1:
                    for (int i = bpp; i < n; i++) l[i] += l[i - bpp];
                    break;
                case 2:
                    for (int i = 0; i < n; i++) l[i] += p[i];
                    break;
                case 3:
                    for (int i = 0; i < head; i++) l[i] += (byte)(p[i] >> 1);
                    for (int i = bpp; i < n; i++) l[i] += (byte)((l[i - bpp] + p[i]) >> 1);
                    break;
                default:
                    for (int i = 0; i < head; i++) l[i] += p[i]; // Paeth(0, b, 0) = b
                    for (int i = bpp; i < n; i++) l[i] += Paeth(l[i - bpp], p[i], p[i - bpp]);
                    break;
            }
        }
    }

    /// <summary>The Paeth predictor without data-dependent branches (ties prefer a, then b, as the spec requires).</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    private static byte Paeth(int a, int b, int c)
    {
        int pa = b - c, pb = a - c, pc = pa + pb;
        pa = (pa ^ (pa >> 31)) - (pa >> 31);
        pb = (pb ^ (pb >> 31)) - (pb >> 31);
        pc = (pc ^ (pc >> 31)) - (pc >> 31);
        int t = (pb - pa) >> 31;            // -1 when pb < pa
        int best = (pa & ~t) | (pb & t), pick = (a & ~t) | (b & t);
        t = (pc - best) >> 31;              // -1 when pc < best
        return (byte)((pick & ~t) | (c & t));
    }

    /// <summary>Converts one unfiltered scanline to output pixels (8 bits per channel).</summary>
    private sealed class RowUnpacker
    {
        private readonly int _colorType, _bitDepth;
        private readonly int _trnsGray = -1;            // colour type 0: the transparent sample value
        private readonly int _trnsR = -1, _trnsG = -1, _trnsB = -1; // colour type 2
        private readonly byte[]? _lut;                  // colour type 3: 256 entries of Channels bytes

        public RowUnpacker(PngHeader h, byte[]? palette, byte[]? trns)
        {
            _colorType = h.ColorType;
            _bitDepth = h.BitDepth;
            switch (h.ColorType)
            {
                case 0:
                    Channels = trns is null ? 1 : 2;
                    if (trns is not null) _trnsGray = trns[0] << 8 | trns[1];
                    break;
                case 2:
                    Channels = trns is null ? 3 : 4;
                    if (trns is not null)
                    {
                        _trnsR = trns[0] << 8 | trns[1];
                        _trnsG = trns[2] << 8 | trns[3];
                        _trnsB = trns[4] << 8 | trns[5];
                    }
                    break;
                case 3:
                    Channels = trns is null ? 3 : 4;
                    PaletteCount = palette!.Length / 3;
                    _lut = new byte[256 * Channels];
                    for (int i = 0; i < PaletteCount; i++)
                    {
                        palette.AsSpan(3 * i, 3).CopyTo(_lut.AsSpan(i * Channels));
                        if (Channels == 4) _lut[i * 4 + 3] = i < trns!.Length ? trns[i] : (byte)255;
                    }
                    break;
                case 4:
                    Channels = 2;
                    break;
                default:
                    Channels = 4;
                    break;
            }
        }

        public int Channels { get; }

        public int PaletteCount { get; }

        /// <summary>Writes <paramref name="count"/> pixels to <paramref name="dst"/>; returns -1, or the first
        /// palette index that has no PLTE entry.</summary>
        public int Unpack(ReadOnlySpan<byte> line, int count, Span<byte> dst)
        {
            switch (_colorType)
            {
                case 0:
                    if (_bitDepth < 8) UnpackLowGray(line, count, dst);
                    else if (_trnsGray < 0) CopyOrHighBytes(line, count, dst);
                    else if (_bitDepth == 8)
                        for (int i = 0; i < count; i++)
                        {
                            byte v = line[i];
                            dst[2 * i] = v;
                            dst[2 * i + 1] = v == _trnsGray ? (byte)0 : (byte)255;
                        }
                    else
                        for (int i = 0; i < count; i++)
                        {
                            dst[2 * i] = line[2 * i];
                            dst[2 * i + 1] = (line[2 * i] << 8 | line[2 * i + 1]) == _trnsGray ? (byte)0 : (byte)255;
                        }
                    return -1;
                case 2:
                    if (_trnsR < 0) CopyOrHighBytes(line, count, dst);
                    else if (_bitDepth == 8)
                        for (int i = 0; i < count; i++)
                        {
                            int s = 3 * i, d = 4 * i;
                            byte r = line[s], g = line[s + 1], b = line[s + 2];
                            dst[d] = r; dst[d + 1] = g; dst[d + 2] = b;
                            dst[d + 3] = r == _trnsR && g == _trnsG && b == _trnsB ? (byte)0 : (byte)255;
                        }
                    else
                        for (int i = 0; i < count; i++)
                        {
                            int s = 6 * i, d = 4 * i;
                            dst[d] = line[s]; dst[d + 1] = line[s + 2]; dst[d + 2] = line[s + 4];
                            bool clear = (line[s] << 8 | line[s + 1]) == _trnsR && (line[s + 2] << 8 | line[s + 3]) == _trnsG
                                && (line[s + 4] << 8 | line[s + 5]) == _trnsB;
                            dst[d + 3] = clear ? (byte)0 : (byte)255;
                        }
                    return -1;
                case 3:
                    return UnpackPalette(line, count, dst);
                default: // 4, 6: no tRNS allowed
                    CopyOrHighBytes(line, count, dst);
                    return -1;
            }
        }

        /// <summary>Output has the file's sample layout: 8-bit copies, 16-bit keeps each sample's high byte.</summary>
        private void CopyOrHighBytes(ReadOnlySpan<byte> line, int count, Span<byte> dst)
        {
            int samples = count * Channels;
            if (_bitDepth == 8) line[..samples].CopyTo(dst);
            else for (int k = 0; k < samples; k++) dst[k] = line[2 * k];
        }

        private void UnpackLowGray(ReadOnlySpan<byte> line, int count, Span<byte> dst)
        {
            int bd = _bitDepth, mask = (1 << bd) - 1, scale = 255 / mask; // 1 -> x255, 2 -> x85, 4 -> x17
            int bit = 0;
            if (_trnsGray < 0)
            {
                for (int i = 0; i < count; i++, bit += bd)
                    dst[i] = (byte)(((line[bit >> 3] >> (8 - bd - (bit & 7))) & mask) * scale);
            }
            else
            {
                for (int i = 0; i < count; i++, bit += bd)
                {
                    int v = (line[bit >> 3] >> (8 - bd - (bit & 7))) & mask;
                    dst[2 * i] = (byte)(v * scale);
                    dst[2 * i + 1] = v == _trnsGray ? (byte)0 : (byte)255;
                }
            }
        }

        private int UnpackPalette(ReadOnlySpan<byte> line, int count, Span<byte> dst)
        {
            int bd = _bitDepth, mask = (1 << bd) - 1, c = Channels, n = PaletteCount;
            var lut = _lut!;
            int bit = 0;
            for (int i = 0; i < count; i++, bit += bd)
            {
                int idx = bd == 8 ? line[i] : (line[bit >> 3] >> (8 - bd - (bit & 7))) & mask;
                if (idx >= n) return idx;
                lut.AsSpan(idx * c, c).CopyTo(dst.Slice(i * c, c));
            }
            return -1;
        }
    }
}

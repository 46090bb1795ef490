using System.Buffers.Binary;

namespace MlNetFineTune.Imaging;

/// <summary>The validated IHDR fields and the sizes derived from them.</summary>
internal sealed class PngHeader
{
    /// <summary>Adam7 passes: x start, y start, x step, y step.</summary>
    public static readonly (int X0, int Y0, int Dx, int Dy)[] Adam7 =
    [
        (0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2),
    ];

    private PngHeader(int width, int height, int bitDepth, int colorType, bool interlaced)
    {
        Width = width;
        Height = height;
        BitDepth = bitDepth;
        ColorType = colorType;
        Interlaced = interlaced;
        Samples = colorType switch { 0 => 1, 2 => 3, 3 => 1, 4 => 2, _ => 4 };
        BitsPerPixel = Samples * bitDepth;
    }

    public int Width { get; }
    public int Height { get; }
    public int BitDepth { get; }

    /// <summary>0 gray, 2 RGB, 3 palette, 4 gray+alpha, 6 RGBA.</summary>
    public int ColorType { get; }

    public bool Interlaced { get; }

    /// <summary>Samples per pixel in the file (palette: 1 index).</summary>
    public int Samples { get; }

    public int BitsPerPixel { get; }

    /// <summary>The byte distance the Sub/Average/Paeth filters look back (at least 1).</summary>
    public int FilterStride => Math.Max(1, BitsPerPixel / 8);

    /// <summary>Bytes of one scanline of <paramref name="pixels"/> pixels, without the filter-type byte.</summary>
    public long RowBytes(int pixels) => ((long)pixels * BitsPerPixel + 7) / 8;

    /// <summary>Pixels in a row (or rows in a column) of a pass: the count of i >= 0 with start + i*step &lt; size.</summary>
    public static int PassSize(int size, int start, int step) => size > start ? (size - start + step - 1) / step : 0;

    /// <summary>Exact size of the decompressed IDAT stream (filter bytes included); empty passes contribute nothing.</summary>
    public long DecompressedSize
    {
        get
        {
            if (!Interlaced) return Height * (RowBytes(Width) + 1);
            long total = 0;
            foreach (var (x0, y0, dx, dy) in Adam7)
            {
                int w = PassSize(Width, x0, dx), h = PassSize(Height, y0, dy);
                if (w > 0 && h > 0) total += h * (RowBytes(w) + 1);
            }
            return total;
        }
    }

    /// <summary>Parses and validates the 13 IHDR data bytes.</summary>
    public static PngHeader Parse(ReadOnlySpan<byte> d, PngChunkReader reader, long offset)
    {
        if (d.Length != 13) throw reader.Error($"IHDR has length {d.Length}, expected 13", offset);
        uint width = BinaryPrimitives.ReadUInt32BigEndian(d);
        uint height = BinaryPrimitives.ReadUInt32BigEndian(d[4..]);
        int bitDepth = d[8], colorType = d[9], compression = d[10], filter = d[11], interlace = d[12];
        if (width == 0 || height == 0) throw reader.Error($"IHDR declares an empty image ({width} x {height})", offset);
        if (width > PngDecoder.MaxDimension || height > PngDecoder.MaxDimension)
            throw reader.Error($"image is {width} x {height}, above the decoder limit of {PngDecoder.MaxDimension} pixels per side", offset);
        if ((long)width * height > PngDecoder.MaxPixelCount)
            throw reader.Error($"image is {width} x {height} = {(long)width * height} pixels, above the decoder budget of {PngDecoder.MaxPixelCount}", offset);
        bool depthOk = colorType switch
        {
            0 => bitDepth is 1 or 2 or 4 or 8 or 16,
            3 => bitDepth is 1 or 2 or 4 or 8,
            2 or 4 or 6 => bitDepth is 8 or 16,
            _ => throw reader.Error($"IHDR colour type {colorType} is invalid (allowed: 0, 2, 3, 4, 6)", offset),
        };
        if (!depthOk) throw reader.Error($"IHDR bit depth {bitDepth} is invalid for colour type {colorType}", offset);
        if (compression != 0) throw reader.Error($"IHDR compression method {compression} is unknown (only 0, zlib)", offset);
        if (filter != 0) throw reader.Error($"IHDR filter method {filter} is unknown (only 0)", offset);
        if (interlace > 1) throw reader.Error($"IHDR interlace method {interlace} is unknown (0 none, 1 Adam7)", offset);
        return new PngHeader((int)width, (int)height, bitDepth, colorType, interlace == 1);
    }
}

namespace MlNetFineTune.Imaging;

/// <summary>EXIF orientation: reading tag 0x0112 from an APP1 Exif segment and applying it to pixels.</summary>
public static class JpegExif
{
    /// <summary>The EXIF/TIFF orientation tag.</summary>
    public const int OrientationTag = 0x0112;

    /// <summary>
    /// Reads the orientation (1..8) from a TIFF structure (the APP1 payload after <c>"Exif\0\0"</c>): byte order
    /// <c>II</c> or <c>MM</c>, magic 42, IFD0, tag 0x0112 of type SHORT (LONG accepted too). Returns 0 when the
    /// structure is malformed, the tag is absent or its value is outside 1..8. Never throws.
    /// </summary>
    public static int ReadOrientation(ReadOnlySpan<byte> tiff)
    {
        if (tiff.Length < 8) return 0;
        bool little;
        if (tiff[0] == (byte)'I' && tiff[1] == (byte)'I') little = true;
        else if (tiff[0] == (byte)'M' && tiff[1] == (byte)'M') little = false;
        else return 0;
        if (U16(tiff, 2, little) != 42) return 0;
        long ifd = U32(tiff, 4, little);
        if (ifd < 8 || ifd > tiff.Length - 2) return 0;
        int count = U16(tiff, (int)ifd, little);
        for (int i = 0; i < count; i++)
        {
            long entry = ifd + 2 + 12L * i;
            if (entry + 12 > tiff.Length) break;
            int e = (int)entry;
            if (U16(tiff, e, little) != OrientationTag) continue;
            int type = U16(tiff, e + 2, little);
            long n = U32(tiff, e + 4, little);
            if (n < 1) return 0;
            long value = type switch
            {
                3 => U16(tiff, e + 8, little), // SHORT, left-justified in the value field
                4 => U32(tiff, e + 8, little), // LONG (non-standard but seen)
                _ => 0,
            };
            return value is >= 1 and <= 8 ? (int)value : 0;
        }
        return 0;
    }

    /// <summary>
    /// Returns the image as it should be displayed for EXIF <paramref name="orientation"/>: 1 (or any value outside
    /// 2..8) unchanged, 2 mirror horizontally, 3 rotate 180, 4 mirror vertically, 5 transpose, 6 rotate 90 clockwise,
    /// 7 transverse, 8 rotate 90 counter-clockwise (the same as Pillow's <c>ImageOps.exif_transpose</c>).
    /// Orientations 5..8 swap width and height.
    /// </summary>
    public static ImageData ApplyOrientation(ImageData image, int orientation)
    {
        ArgumentNullException.ThrowIfNull(image);
        if (orientation is < 2 or > 8) return image;
        int w = image.Width, h = image.Height, ch = image.Channels;
        bool swap = orientation >= 5;
        int ow = swap ? h : w, oh = swap ? w : h;
        var src = image.Pixels;
        var dst = new byte[src.Length];
        for (int y = 0; y < h; y++)
        {
            for (int x = 0; x < w; x++)
            {
                (int dx, int dy) = orientation switch
                {
                    2 => (w - 1 - x, y),
                    3 => (w - 1 - x, h - 1 - y),
                    4 => (x, h - 1 - y),
                    5 => (y, x),
                    6 => (h - 1 - y, x),
                    7 => (h - 1 - y, w - 1 - x),
                    _ => (y, w - 1 - x), // 8
                };
                int s = (y * w + x) * ch, d = (dy * ow + dx) * ch;
                for (int c = 0; c < ch; c++) dst[d + c] = src[s + c];
            }
        }
        return new ImageData(ow, oh, ch, dst);
    }

    private static int U16(ReadOnlySpan<byte> b, int at, bool little) =>
        little ? b[at] | (b[at + 1] << 8) : (b[at] << 8) | b[at + 1];

    private static long U32(ReadOnlySpan<byte> b, int at, bool little) =>
        little
            ? (uint)(b[at] | (b[at + 1] << 8) | (b[at + 2] << 16) | (b[at + 3] << 24))
            : (uint)((b[at] << 24) | (b[at + 1] << 16) | (b[at + 2] << 8) | b[at + 3]);
}

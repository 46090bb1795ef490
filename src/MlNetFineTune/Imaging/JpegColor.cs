namespace MlNetFineTune.Imaging;

/// <summary>Colour conversion of upsampled component rows to gray or RGB output, with libjpeg's integer tables.</summary>
internal static class JpegColor
{
    private const int ScaleBits = 16;
    private const int OneHalf = 1 << (ScaleBits - 1);

    // libjpeg jdcolor.c build_ycc_rgb_table: R = Y + CrR[Cr], G = Y + ((CbG[Cb] + CrG[Cr]) >> 16), B = Y + CbB[Cb].
    private static readonly int[] CrR = new int[256];
    private static readonly int[] CbB = new int[256];
    private static readonly int[] CrG = new int[256];
    private static readonly int[] CbG = new int[256];

    static JpegColor()
    {
        static int Fix(double x) => (int)(x * (1 << ScaleBits) + 0.5);
        for (int i = 0; i < 256; i++)
        {
            int x = i - 128;
            CrR[i] = (Fix(1.40200) * x + OneHalf) >> ScaleBits;
            CbB[i] = (Fix(1.77200) * x + OneHalf) >> ScaleBits;
            CrG[i] = -Fix(0.71414) * x;
            CbG[i] = -Fix(0.34414) * x + OneHalf;
        }
    }

    private static byte Clamp(int v) => (byte)(v < 0 ? 0 : v > 255 ? 255 : v);

    /// <summary>YCbCr to RGB exactly as libjpeg's ycc_rgb_convert.</summary>
    internal static void YccToRgb(int y, int cb, int cr, out byte r, out byte g, out byte b)
    {
        r = Clamp(y + CrR[cr]);
        g = Clamp(y + ((CbG[cb] + CrG[cr]) >> ScaleBits));
        b = Clamp(y + CbB[cb]);
    }

    /// <summary>CMYK ink values to RGB as Pillow's cmyk2rgb: <c>nk - nk * c / 255</c> with nk = 255 - k.</summary>
    internal static byte InkToRgb(int ink, int nk)
    {
        int t = ink * nk + 128;
        return Clamp(nk - (((t >> 8) + t) >> 8));
    }

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)]
    public static ImageData Convert(JpegDecoderCore core)
    {
        int width = core.Width, height = core.Height, n = core.ComponentCount;
        var space = core.CodedColorSpace;
        int channels = space == JpegColorSpace.Gray ? 1 : 3;
        var output = new byte[checked(width * height * channels)];
        var buffers = new byte[n][];
        for (int i = 0; i < n; i++) buffers[i] = new byte[core.RowBufferLength];

        for (int y = 0; y < height; y++)
        {
            var dst = output.AsSpan(y * width * channels, width * channels);
            switch (space)
            {
                case JpegColorSpace.Gray:
                    core.UpsampledRow(0, y, buffers[0])[..width].CopyTo(dst);
                    break;
                case JpegColorSpace.YCbCr:
                {
                    var c0 = core.UpsampledRow(0, y, buffers[0]);
                    var c1 = core.UpsampledRow(1, y, buffers[1]);
                    var c2 = core.UpsampledRow(2, y, buffers[2]);
                    for (int x = 0, o = 0; x < width; x++, o += 3)
                    {
                        int yy = c0[x], cb = c1[x], cr = c2[x];
                        dst[o] = Clamp(yy + CrR[cr]);
                        dst[o + 1] = Clamp(yy + ((CbG[cb] + CrG[cr]) >> ScaleBits));
                        dst[o + 2] = Clamp(yy + CbB[cb]);
                    }
                    break;
                }
                case JpegColorSpace.Rgb:
                {
                    var c0 = core.UpsampledRow(0, y, buffers[0]);
                    var c1 = core.UpsampledRow(1, y, buffers[1]);
                    var c2 = core.UpsampledRow(2, y, buffers[2]);
                    for (int x = 0, o = 0; x < width; x++, o += 3)
                    {
                        dst[o] = c0[x];
                        dst[o + 1] = c1[x];
                        dst[o + 2] = c2[x];
                    }
                    break;
                }
                default: // CMYK or YCCK
                {
                    bool ycck = space == JpegColorSpace.Ycck;
                    bool inverted = core.AdobeInverted;
                    var c0 = core.UpsampledRow(0, y, buffers[0]);
                    var c1 = core.UpsampledRow(1, y, buffers[1]);
                    var c2 = core.UpsampledRow(2, y, buffers[2]);
                    var c3 = core.UpsampledRow(3, y, buffers[3]);
                    for (int x = 0, o = 0; x < width; x++, o += 3)
                    {
                        int cc, mm, yy;
                        if (ycck)
                        {
                            // libjpeg ycck_cmyk_convert: C = 255 - R etc. of the YCbCr conversion, K unchanged.
                            YccToRgb(c0[x], c1[x], c2[x], out byte r, out byte g, out byte b);
                            cc = 255 - r;
                            mm = 255 - g;
                            yy = 255 - b;
                        }
                        else
                        {
                            cc = c0[x];
                            mm = c1[x];
                            yy = c2[x];
                        }
                        int kk = c3[x];
                        if (inverted)
                        {
                            // Adobe writes inverted CMYK (Pillow reads it as "CMYK;I").
                            cc = 255 - cc;
                            mm = 255 - mm;
                            yy = 255 - yy;
                            kk = 255 - kk;
                        }
                        int nk = 255 - kk;
                        dst[o] = InkToRgb(cc, nk);
                        dst[o + 1] = InkToRgb(mm, nk);
                        dst[o + 2] = InkToRgb(yy, nk);
                    }
                    break;
                }
            }
        }
        return new ImageData(width, height, channels, output);
    }
}

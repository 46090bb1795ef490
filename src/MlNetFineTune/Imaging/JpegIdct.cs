using System.Runtime.CompilerServices;

namespace MlNetFineTune.Imaging;

/// <summary>
/// The accurate integer inverse DCT: a port of libjpeg's <c>jpeg_idct_islow</c> (jidctint.c, the Loeffler-Ligtenberg-
/// Moschytz algorithm with 13-bit constants and 2 extra bits between passes). It gives the same samples as djpeg's
/// default <c>-dct int</c> for valid data. Out-of-range results are clamped to 0..255 (libjpeg wraps values more than
/// 384 outside the range, which only corrupt data produces).
/// </summary>
[SkipLocalsInit]
internal static unsafe class JpegIdct
{
    private const int ConstBits = 13;
    private const int Pass1Bits = 2;

    private const int Fix0_298631336 = 2446;
    private const int Fix0_390180644 = 3196;
    private const int Fix0_541196100 = 4433;
    private const int Fix0_765366865 = 6270;
    private const int Fix0_899976223 = 7373;
    private const int Fix1_175875602 = 9633;
    private const int Fix1_501321110 = 12299;
    private const int Fix1_847759065 = 15137;
    private const int Fix1_961570560 = 16069;
    private const int Fix2_053119869 = 16819;
    private const int Fix2_562915447 = 20995;
    private const int Fix3_072711026 = 25172;

    /// <summary>
    /// Dequantises the natural-order block at <paramref name="coefs"/>[<paramref name="offset"/>..+64] with
    /// <paramref name="quant"/> (natural order) and writes 8x8 samples at <paramref name="outOffset"/> with row
    /// stride <paramref name="stride"/>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Transform(short[] coefs, int offset, int[] quant, byte[] output, int outOffset, int stride)
    {
        if ((uint)offset > (uint)(coefs.Length - 64) || quant.Length < 64 ||
            (uint)outOffset > (uint)(output.Length - (7 * stride + 8)))
            throw new ArgumentOutOfRangeException(nameof(offset));
        int* ws = stackalloc int[64];
        fixed (short* block = &coefs[offset])
        fixed (int* q = &quant[0])
        fixed (byte* outBase = &output[outOffset])
            Transform(block, q, ws, outBase, stride);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Transform(short* block, int* q, int* ws, byte* outBase, int stride)
    {
        // Pass 1: columns from the input, results scaled up by 2^Pass1Bits into the workspace.
        for (int c = 0; c < 8; c++)
        {
            if (block[8 + c] == 0 && block[16 + c] == 0 && block[24 + c] == 0 && block[32 + c] == 0 &&
                block[40 + c] == 0 && block[48 + c] == 0 && block[56 + c] == 0)
            {
                int dc = (block[c] * q[c]) << Pass1Bits;
                for (int r = 0; r < 8; r++) ws[r * 8 + c] = dc;
                continue;
            }

            int z2 = block[16 + c] * q[16 + c];
            int z3 = block[48 + c] * q[48 + c];
            int z1 = (z2 + z3) * Fix0_541196100;
            int tmp2 = z1 + z3 * -Fix1_847759065;
            int tmp3 = z1 + z2 * Fix0_765366865;

            z2 = block[c] * q[c];
            z3 = block[32 + c] * q[32 + c];
            int tmp0 = (z2 + z3) << ConstBits;
            int tmp1 = (z2 - z3) << ConstBits;

            int tmp10 = tmp0 + tmp3;
            int tmp13 = tmp0 - tmp3;
            int tmp11 = tmp1 + tmp2;
            int tmp12 = tmp1 - tmp2;

            tmp0 = block[56 + c] * q[56 + c];
            tmp1 = block[40 + c] * q[40 + c];
            tmp2 = block[24 + c] * q[24 + c];
            tmp3 = block[8 + c] * q[8 + c];

            z1 = tmp0 + tmp3;
            z2 = tmp1 + tmp2;
            z3 = tmp0 + tmp2;
            int z4 = tmp1 + tmp3;
            int z5 = (z3 + z4) * Fix1_175875602;

            tmp0 *= Fix0_298631336;
            tmp1 *= Fix2_053119869;
            tmp2 *= Fix3_072711026;
            tmp3 *= Fix1_501321110;
            z1 *= -Fix0_899976223;
            z2 *= -Fix2_562915447;
            z3 *= -Fix1_961570560;
            z4 *= -Fix0_390180644;

            z3 += z5;
            z4 += z5;

            tmp0 += z1 + z3;
            tmp1 += z2 + z4;
            tmp2 += z2 + z3;
            tmp3 += z1 + z4;

            const int s1 = ConstBits - Pass1Bits;
            const int r1 = 1 << (s1 - 1);
            ws[c] = (tmp10 + tmp3 + r1) >> s1;
            ws[56 + c] = (tmp10 - tmp3 + r1) >> s1;
            ws[8 + c] = (tmp11 + tmp2 + r1) >> s1;
            ws[48 + c] = (tmp11 - tmp2 + r1) >> s1;
            ws[16 + c] = (tmp12 + tmp1 + r1) >> s1;
            ws[40 + c] = (tmp12 - tmp1 + r1) >> s1;
            ws[24 + c] = (tmp13 + tmp0 + r1) >> s1;
            ws[32 + c] = (tmp13 - tmp0 + r1) >> s1;
        }

        // Pass 2: rows from the workspace, descaled by 2^(ConstBits + Pass1Bits + 3), level-shifted and clamped.
        const int s2 = ConstBits + Pass1Bits + 3;
        const int r2 = 1 << (s2 - 1);
        for (int r = 0; r < 8; r++)
        {
            int* w = ws + r * 8;
            byte* o = outBase + r * stride;
            if (w[1] == 0 && w[2] == 0 && w[3] == 0 && w[4] == 0 && w[5] == 0 && w[6] == 0 && w[7] == 0)
            {
                byte dc = Clamp(((w[0] + (1 << (Pass1Bits + 2))) >> (Pass1Bits + 3)) + 128);
                new Span<byte>(o, 8).Fill(dc);
                continue;
            }

            int z2 = w[2];
            int z3 = w[6];
            int z1 = (z2 + z3) * Fix0_541196100;
            int tmp2 = z1 + z3 * -Fix1_847759065;
            int tmp3 = z1 + z2 * Fix0_765366865;

            int tmp0 = (w[0] + w[4]) << ConstBits;
            int tmp1 = (w[0] - w[4]) << ConstBits;

            int tmp10 = tmp0 + tmp3;
            int tmp13 = tmp0 - tmp3;
            int tmp11 = tmp1 + tmp2;
            int tmp12 = tmp1 - tmp2;

            tmp0 = w[7];
            tmp1 = w[5];
            tmp2 = w[3];
            tmp3 = w[1];

            z1 = tmp0 + tmp3;
            z2 = tmp1 + tmp2;
            z3 = tmp0 + tmp2;
            int z4 = tmp1 + tmp3;
            int z5 = (z3 + z4) * Fix1_175875602;

            tmp0 *= Fix0_298631336;
            tmp1 *= Fix2_053119869;
            tmp2 *= Fix3_072711026;
            tmp3 *= Fix1_501321110;
            z1 *= -Fix0_899976223;
            z2 *= -Fix2_562915447;
            z3 *= -Fix1_961570560;
            z4 *= -Fix0_390180644;

            z3 += z5;
            z4 += z5;

            tmp0 += z1 + z3;
            tmp1 += z2 + z4;
            tmp2 += z2 + z3;
            tmp3 += z1 + z4;

            o[0] = Clamp(((tmp10 + tmp3 + r2) >> s2) + 128);
            o[7] = Clamp(((tmp10 - tmp3 + r2) >> s2) + 128);
            o[1] = Clamp(((tmp11 + tmp2 + r2) >> s2) + 128);
            o[6] = Clamp(((tmp11 - tmp2 + r2) >> s2) + 128);
            o[2] = Clamp(((tmp12 + tmp1 + r2) >> s2) + 128);
            o[5] = Clamp(((tmp12 - tmp1 + r2) >> s2) + 128);
            o[3] = Clamp(((tmp13 + tmp0 + r2) >> s2) + 128);
            o[4] = Clamp(((tmp13 - tmp0 + r2) >> s2) + 128);
        }
    }

    private static byte Clamp(int v) => (byte)(v < 0 ? 0 : v > 255 ? 255 : v);
}

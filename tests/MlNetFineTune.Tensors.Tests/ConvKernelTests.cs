using MlNetFineTune.Tensors.Cpu;
using Xunit;

namespace MlNetFineTune.Tensors.Tests;

/// <summary>
/// Convolution and pooling kernels against naive double-precision implementations written straight from the
/// definitions, under every SIMD level (levels above the hardware run emulated through the internal
/// explicit-level entry points) and at 1 and 2 worker threads, checking bitwise determinism on repeats.
/// </summary>
[Collection("GlobalKernelState")]
public sealed class ConvKernelTests
{
    private const double RelTol = 1e-5;

    // --------------------------------------------------------------------------------------------
    // Configurations
    // --------------------------------------------------------------------------------------------

    private sealed record ConvCase(int N, int C, int H, int W, int OutC, int KH, int KW,
        int SH = 1, int SW = 1, int PH = 0, int PW = 0, int DH = 1, int DW = 1, int G = 1, bool Bias = true)
    {
        public Conv2dShape Shape => new(N, C, H, W, OutC, KH, KW, SH, SW, PH, PW, DH, DW, G);
    }

    private static readonly Dictionary<string, ConvCase> ConvCases = new()
    {
        ["3x3_s1_p1"] = new(1, 3, 7, 7, 4, 3, 3, PH: 1, PW: 1),
        ["3x3_s1_p1_batch3_odd"] = new(3, 3, 9, 11, 5, 3, 3, PH: 1, PW: 1),
        ["3x3_s2_p1_batch3"] = new(3, 4, 9, 9, 6, 3, 3, 2, 2, 1, 1),
        ["3x3_s1_p0_nobias"] = new(2, 3, 6, 5, 4, 3, 3, Bias: false),
        ["3x3_p3"] = new(1, 2, 5, 5, 3, 3, 3, PH: 3, PW: 3),
        ["7x7_s2_p3_batch3"] = new(3, 3, 15, 13, 4, 7, 7, 2, 2, 3, 3),
        ["7x7_s2_p3_batch1"] = new(1, 3, 11, 11, 2, 7, 7, 2, 2, 3, 3),
        ["3x3_d2_p2"] = new(2, 3, 9, 8, 4, 3, 3, PH: 2, PW: 2, DH: 2, DW: 2),
        ["3x3_s2_d2_p1_batch3"] = new(3, 2, 11, 10, 3, 3, 3, 2, 2, 1, 1, 2, 2),
        ["groups2_3x3_p1"] = new(2, 4, 7, 7, 6, 3, 3, PH: 1, PW: 1, G: 2),
        ["groups2_s2_d2_p1_batch3"] = new(3, 4, 9, 11, 4, 3, 3, 2, 2, 1, 1, 2, 2, G: 2),
        ["groups2_1x1_batch3"] = new(3, 4, 5, 7, 6, 1, 1, G: 2),
        ["1x1_batch3"] = new(3, 5, 5, 5, 7, 1, 1),
        ["1x1_batch1_nobias"] = new(1, 5, 3, 7, 4, 1, 1, Bias: false),
        ["1x1_s2"] = new(2, 3, 7, 7, 4, 1, 1, 2, 2),
        ["1x1_p1"] = new(1, 3, 5, 5, 2, 1, 1, PH: 1, PW: 1),
        ["1x3_p0x1"] = new(2, 3, 5, 9, 4, 1, 3, PW: 1),
        ["3x1_p1x0"] = new(2, 3, 9, 5, 4, 3, 1, PH: 1),
        ["3x5_s2x1_p1x2_d1x2"] = new(1, 2, 7, 9, 3, 3, 5, 2, 1, 1, 2, 1, 2),
        ["whole_input_kernel_out1x1"] = new(2, 3, 5, 4, 2, 5, 4),
        // Output planes under ConvKernels.BatchedColumnsMaxPlane with a batch: one GEMM over all images' columns.
        ["batched_columns_2x2_p1_batch5"] = new(5, 16, 2, 2, 8, 3, 3, PH: 1, PW: 1),
        ["batched_columns_s2_batch4_nobias"] = new(4, 6, 8, 7, 5, 3, 3, 2, 2, 1, 1, Bias: false),
        ["batched_columns_1x1_4x4_batch3"] = new(3, 7, 4, 4, 9, 1, 1),
        // At or above that size: one GEMM per image, images split over the threads.
        ["per_image_16x15_p1_batch3"] = new(3, 3, 16, 15, 4, 3, 3, PH: 1, PW: 1),
        ["per_image_1x1_16x16_batch2"] = new(2, 5, 16, 16, 3, 1, 1),
        // A padded plane over ConvKernels' stack budget (72 x 72 floats), so its scratch comes from the array pool.
        ["per_image_70x70_p1_rented_plane"] = new(1, 2, 70, 70, 3, 3, 3, PH: 1, PW: 1),
        // Winograd F(2x2, 3x3) (Conv2d_Winograd_MatchesNaive forces it at any channel count): 8+ tiles per row for
        // the vector transforms with scalar tails, odd output sizes, padding 2; chunks of 3 tile rows across images.
        ["winograd_wide_odd_p2_batch2"] = new(2, 3, 9, 37, 4, 3, 3, PH: 2, PW: 2),
        ["winograd_chunks_cross_images"] = new(3, 3, 7, 9, 2, 3, 3, PH: 1, PW: 1),
        // Narrow planes (under 8 tiles per row): transforms over eight tiles at a time across tile rows and images
        // (gathered lanes), with tails; even planes (every tile inside), odd ones (edge tiles), one tile per image.
        ["winograd_narrow_8x8_batch3"] = new(3, 5, 8, 8, 6, 3, 3, PH: 1, PW: 1),
        // 16-wide rows: the row split reads one float past each row (inside the array; never past its end).
        ["winograd_wide16_batch2"] = new(2, 3, 6, 16, 4, 3, 3, PH: 1, PW: 1),
        // Wide rows (8+ tiles) without padding (the p2 case above has padding 2, wide16 has 1).
        ["winograd_wide_p0_odd35_batch2"] = new(2, 3, 6, 35, 4, 3, 3),
        ["winograd_narrow_odd_7x5_batch4"] = new(4, 3, 7, 5, 4, 3, 3, PH: 1, PW: 1),
        ["winograd_narrow_4x4_batch5"] = new(5, 4, 4, 4, 3, 3, 3, PH: 1, PW: 1),
        ["winograd_narrow_2x2_p0_batch9"] = new(9, 2, 4, 4, 3, 3, 3),
        ["winograd_narrow_p2_batch3"] = new(3, 2, 5, 6, 3, 3, 3, PH: 2, PW: 2),
        // Stride 2 with outputs of 9+ columns: the vector gathers / scatter-adds (ConvKernels.GatherEvens, AddToEvens),
        // with a last group that overlaps (17 and 19 wide) or ends exactly (16); through padded planes (3x3, 7x7) and
        // through the row-clamped im2col (1x1, padded and not).
        ["s2_7x7_p3_wide37_batch2"] = new(2, 3, 9, 37, 4, 7, 7, 2, 2, 3, 3),
        ["s2_3x3_p1_wide34_batch2"] = new(2, 3, 7, 34, 4, 3, 3, 2, 2, 1, 1),
        ["s2_3x3_p1_wide32_nobias"] = new(1, 2, 6, 32, 3, 3, 3, 2, 2, 1, 1, Bias: false),
        ["s2_1x1_wide40_batch2"] = new(2, 3, 5, 40, 4, 1, 1, 2, 2),
        ["s2_1x1_p1_wide19"] = new(2, 3, 5, 19, 3, 1, 1, 2, 2, 1, 1),
        // ResNet-18's stride-2 3x3 shapes at 64x64 (outputs 8x8, 4x4, 2x2): padded planes (17x17, 9x9, 5x5) no larger
        // than their columns, so through the padded-plane path (Conv2d_PaddedPlanes_BitwiseSameAsRowClamped).
        ["s2_3x3_p1_16x16_batch2"] = new(2, 3, 16, 16, 4, 3, 3, 2, 2, 1, 1),
        ["s2_3x3_p1_8x8_batch3"] = new(3, 2, 8, 8, 3, 3, 3, 2, 2, 1, 1),
        ["s2_3x3_p1_4x4_batch4_nobias"] = new(4, 3, 4, 4, 2, 3, 3, 2, 2, 1, 1, Bias: false),
        // Padded-plane stride-2 runs of 7 (an SSE group of 4, then 3 one at a time) and 12 (a group of 8, then the
        // overlapping last 8): the gathers read one float past a run, the plane's spare floats for its last row.
        ["s2_3x3_p1_13x13_batch2"] = new(2, 3, 13, 13, 4, 3, 3, 2, 2, 1, 1),
        ["s2_3x3_p1_24x23"] = new(1, 2, 24, 23, 3, 3, 3, 2, 2, 1, 1),
        ["block_cols_d2_p2_batch1"] = new(1, 3, 23, 21, 4, 3, 3, 1, 1, 2, 2, 2, 2),
        // A dilated tap that stays in the left padding for a whole output row (the row-clamped im2col once sliced
        // the input from before its start here).
        ["tap_all_in_padding_w1_d2_g2"] = new(1, 4, 29, 1, 4, 2, 3, 3, 1, 0, 2, 1, 2, G: 2),
        ["single_channel_c1"] = new(2, 1, 6, 6, 3, 3, 3, PH: 1, PW: 1),
        ["dw_m1_3x3_s1_p1_batch3"] = new(3, 4, 9, 9, 4, 3, 3, PH: 1, PW: 1, G: 4),
        ["dw_m2_3x3_s1_p1"] = new(1, 3, 7, 11, 6, 3, 3, PH: 1, PW: 1, G: 3),
        ["dw_m1_3x3_s2_p1_batch3"] = new(3, 4, 9, 10, 4, 3, 3, 2, 2, 1, 1, G: 4),
        ["dw_m2_3x3_s2_d2_p2"] = new(2, 3, 11, 9, 6, 3, 3, 2, 2, 2, 2, 2, 2, G: 3),
        ["dw_m1_5x5_d2_p3"] = new(1, 2, 9, 9, 2, 5, 5, PH: 3, PW: 3, DH: 2, DW: 2, G: 2),
        ["dw_m1_wide37_3x3_p1"] = new(2, 3, 5, 37, 3, 3, 3, PH: 1, PW: 1, G: 3),
        ["dw_m2_wide53_7x7_p3_nobias"] = new(1, 2, 6, 53, 4, 7, 7, PH: 3, PW: 3, G: 2, Bias: false),
        ["dw_m1_1x3_p0x1"] = new(2, 3, 5, 19, 3, 1, 3, PW: 1, G: 3),
        ["dw_m2_3x1_p1x0"] = new(1, 3, 9, 21, 6, 3, 1, PH: 1, G: 3),
        ["dw_m1_s2x1_p1"] = new(2, 2, 9, 33, 2, 3, 3, 2, 1, 1, 1, G: 2),
        ["dw_m2_s1x2_p1"] = new(2, 2, 9, 17, 4, 3, 3, 1, 2, 1, 1, G: 2),
        ["dw_m1_3x3_p3_rows_in_padding"] = new(1, 2, 4, 5, 2, 3, 3, PH: 3, PW: 3, G: 2),
        ["dw_m1_7x7_s2_p3_batch3"] = new(3, 3, 13, 15, 3, 7, 7, 2, 2, 3, 3, G: 3),
        ["dw_m1_1x1"] = new(2, 4, 5, 5, 4, 1, 1, G: 4),
        ["dw_m1_wide300_3x3_p1_row_blocks"] = new(1, 2, 13, 300, 2, 3, 3, PH: 1, PW: 1, G: 2),
        ["dw_m2_wide601_s1x2_p1_row_blocks"] = new(1, 2, 9, 601, 4, 3, 3, 1, 2, 1, 1, G: 2),
        ["dw_m1_3x3_s3_p1_d2"] = new(2, 3, 10, 11, 3, 3, 3, 3, 3, 1, 1, 2, 2, G: 3),
    };

    public static TheoryData<string> ConvCaseNames()
    {
        var data = new TheoryData<string>();
        foreach (var name in ConvCases.Keys) data.Add(name);
        return data;
    }

    // --------------------------------------------------------------------------------------------
    // Convolution
    // --------------------------------------------------------------------------------------------

    [Theory]
    [MemberData(nameof(ConvCaseNames))]
    public void Conv2d_AllKernels_MatchNaive_AtEveryLevelAndThreadCount(string name) => CheckConvCase(name);

    [Theory]
    [InlineData("3x3_s1_p1")]
    [InlineData("3x3_s1_p1_batch3_odd")]
    [InlineData("3x3_s1_p0_nobias")]
    [InlineData("3x3_p3")]
    [InlineData("batched_columns_2x2_p1_batch5")]
    [InlineData("per_image_16x15_p1_batch3")]
    [InlineData("per_image_70x70_p1_rented_plane")]
    [InlineData("single_channel_c1")]
    [InlineData("winograd_wide_odd_p2_batch2")]
    [InlineData("winograd_chunks_cross_images")]
    [InlineData("winograd_narrow_8x8_batch3")]
    [InlineData("winograd_wide16_batch2")]
    [InlineData("winograd_narrow_odd_7x5_batch4")]
    [InlineData("winograd_narrow_4x4_batch5")]
    [InlineData("winograd_narrow_2x2_p0_batch9")]
    [InlineData("winograd_narrow_p2_batch3")]
    [InlineData("winograd_wide_p0_odd35_batch2")]
    public void Conv2d_Winograd_MatchesNaive(string name)
    {
        // Every channel count takes the Winograd path here (it starts at 16 channels otherwise); small chunks
        // make the tile rows of one chunk run on from one image into the next.
        int minChannels = ConvWinograd.MinChannels, chunkBytes = ConvWinograd.ChunkBytes, scalarNarrow = ConvWinograd.ScalarNarrowMinChannels, narrowChunks = ConvWinograd.NarrowMinChunks;
        ConvWinograd.MinChannels = 1;
        ConvWinograd.ScalarNarrowMinChannels = 1;
        ConvWinograd.NarrowMinChunks = 1;
        ConvWinograd.ChunkBytes = name == "winograd_chunks_cross_images" ? 64 * 3 * 5 * 3 : chunkBytes;
        try
        {
            Assert.True(ConvWinograd.Applies(ConvCases[name].Shape) == (ConvCases[name].PH <= 2), name);
            CheckConvCase(name);
        }
        finally
        {
            ConvWinograd.MinChannels = minChannels;
            ConvWinograd.ChunkBytes = chunkBytes;
            ConvWinograd.ScalarNarrowMinChannels = scalarNarrow;
            ConvWinograd.NarrowMinChunks = narrowChunks;
        }
    }

    [Theory]
    [InlineData("winograd_wide_odd_p2_batch2")]
    [InlineData("winograd_wide16_batch2")]
    [InlineData("winograd_wide_p0_odd35_batch2")]
    [InlineData("winograd_chunks_cross_images")]
    public void Conv2d_Winograd_SplitRow_BitwiseSameAsPhaseAtATime(string name)
    {
        // Both phases of a row in one pass (ConvWinograd.SplitRow) or one phase at a time: the same copies (padding
        // 0, 1, 2; odd and even widths).
        int minChannels = ConvWinograd.MinChannels, chunkBytes = ConvWinograd.ChunkBytes;
        ConvWinograd.MinChannels = 1;
        ConvWinograd.ChunkBytes = name == "winograd_chunks_cross_images" ? 64 * 3 * 5 * 3 : chunkBytes;
        try
        {
            Assert.True(ConvWinograd.Applies(ConvCases[name].Shape), name);
            CheckSwitchKeepsBits(name, () => ConvWinograd.NoSplitRow, v => ConvWinograd.NoSplitRow = v);
        }
        finally
        {
            ConvWinograd.MinChannels = minChannels;
            ConvWinograd.ChunkBytes = chunkBytes;
        }
    }

    [Fact]
    public void Conv2d_Winograd_NarrowPlanes_TakenWithTwoChunks()
    {
        // Narrow planes take Winograd with the gathered transforms when they cut into 2+ chunks (both threads
        // transform): ResNet-18's 8x8 and 4x4 layers at batch 64, and 8x8 at 32 channels at batch 256 (each measured
        // faster than im2col + GEMM); in one chunk (8x8 at 32 channels, batch 64; 7x7 at 128, batch 16) they were
        // slower. Without AVX2 (transforms one tile at a time) narrow planes need 256 channels.
        var c128 = new Conv2dShape(64, 128, 8, 8, 128, 3, 3, padH: 1, padW: 1);
        var c256 = new Conv2dShape(64, 256, 4, 4, 256, 3, 3, padH: 1, padW: 1);
        var c32 = new Conv2dShape(256, 32, 8, 8, 32, 3, 3, padH: 1, padW: 1);
        var oneChunk32 = new Conv2dShape(64, 32, 8, 8, 32, 3, 3, padH: 1, padW: 1);
        var oneChunk128 = new Conv2dShape(16, 128, 7, 7, 128, 3, 3, padH: 1, padW: 1);
        bool gathers = System.Runtime.Intrinsics.X86.Avx2.IsSupported && Simd.Level >= SimdLevel.Vector256;
        Assert.Equal(gathers, ConvWinograd.Applies(c128));
        Assert.True(ConvWinograd.Applies(c256));
        Assert.Equal(gathers, ConvWinograd.Applies(c32));
        Assert.False(ConvWinograd.Applies(oneChunk32));
        Assert.False(ConvWinograd.Applies(oneChunk128));
        using (Simd.Force(SimdLevel.Scalar))
        {
            Assert.False(ConvWinograd.Applies(c128));
            Assert.True(ConvWinograd.Applies(c256));
        }
    }

    [Fact]
    public void Conv2d_ColumnBlocks_MatchNaive()
    {
        // A tiny L2 budget makes every per-image im2col run in blocks of 64 output pixels (several per image).
        int before = ConvKernels.ColumnBlockBytes;
        ConvKernels.ColumnBlockBytes = 2048;
        try
        {
            foreach (var name in new[] { "per_image_16x15_p1_batch3", "3x3_p3", "3x3_s1_p1", "block_cols_d2_p2_batch1", "7x7_s2_p3_batch1" })
                CheckConvCase(name);
        }
        finally
        {
            ConvKernels.ColumnBlockBytes = before;
        }
    }

    [Theory]
    [InlineData("s2_7x7_p3_wide37_batch2")]
    [InlineData("s2_3x3_p1_wide34_batch2")]
    [InlineData("s2_3x3_p1_wide32_nobias")]
    [InlineData("s2_1x1_wide40_batch2")]
    [InlineData("s2_1x1_p1_wide19")]
    [InlineData("7x7_s2_p3_batch3")]
    [InlineData("s2_3x3_p1_16x16_batch2")]
    [InlineData("s2_3x3_p1_8x8_batch3")]
    [InlineData("s2_3x3_p1_4x4_batch4_nobias")]
    [InlineData("s2_3x3_p1_13x13_batch2")]
    [InlineData("s2_3x3_p1_24x23")]
    public void Conv2d_Stride2VectorGathers_BitwiseSameAsScalar(string name) =>
        CheckSwitchKeepsBits(name, () => ConvKernels.NoStride2Vector, v => ConvKernels.NoStride2Vector = v);

    /// <summary>
    /// The forward, input gradient and weight gradient of a case with a kernel switch off, then on: bitwise the same
    /// (the switch picks another route to the same arithmetic).
    /// </summary>
    private static void CheckSwitchKeepsBits(string name, Func<bool> get, Action<bool> set)
    {
        var cc = ConvCases[name];
        var s = cc.Shape;
        var rng = new Random(StableSeed(name));
        var x = RandomArray(rng, s.InputLength);
        var w = RandomArray(rng, s.WeightLength);
        var bias = cc.Bias ? RandomArray(rng, s.BiasLength) : null;
        var gy = RandomArray(rng, s.OutputLength);
        float[][] Run(bool on)
        {
            bool before = get();
            set(on);
            try
            {
                var y = new float[s.OutputLength];
                var gx = new float[s.InputLength];
                var gw = new float[s.WeightLength];
                ConvKernels.Conv2dForward(s, x, w, bias, y);
                ConvKernels.Conv2dBackwardInput(s, gy, w, gx);
                ConvKernels.Conv2dBackwardWeight(s, gy, x, gw, false);
                return [y, gx, gw];
            }
            finally
            {
                set(before);
            }
        }
        var off = Run(false);
        var on = Run(true);
        for (int i = 0; i < off.Length; i++)
            AssertBitwiseEqual(on[i], off[i], $"{name} output {i} (0 forward, 1 input grad, 2 weight grad)");
    }

    [Theory]
    [InlineData("s2_3x3_p1_16x16_batch2")]
    [InlineData("s2_3x3_p1_8x8_batch3")]
    [InlineData("s2_3x3_p1_4x4_batch4_nobias")]
    [InlineData("s2_3x3_p1_13x13_batch2")]
    [InlineData("s2_3x3_p1_24x23")]
    [InlineData("3x3_s2_p1_batch3")]
    [InlineData("s2_7x7_p3_wide37_batch2")]
    public void Conv2d_PaddedPlanes_BitwiseSameAsRowClamped(string name)
    {
        // The padded-plane im2col / col2im and the row-clamped ones build the same columns and sum each input
        // gradient's taps in the same order.
        var s = ConvCases[name].Shape;
        Assert.True(ConvKernels.UsePaddedPlanes(s), $"{name} should take the padded-plane path");
        bool before = ConvKernels.NoPaddedPlanes;
        ConvKernels.NoPaddedPlanes = true;
        try { Assert.False(ConvKernels.UsePaddedPlanes(s), "NoPaddedPlanes turns the path off"); }
        finally { ConvKernels.NoPaddedPlanes = before; }
        CheckSwitchKeepsBits(name, () => ConvKernels.NoPaddedPlanes, v => ConvKernels.NoPaddedPlanes = v);
    }

    private void CheckConvCase(string name)
    {
        var cc = ConvCases[name];
        var s = cc.Shape;
        Assert.Equal(s.IsDepthwise, name.StartsWith("dw_", StringComparison.Ordinal));
        var rng = new Random(StableSeed(name));
        var x = RandomArray(rng, s.InputLength);
        var w = RandomArray(rng, s.WeightLength);
        var bias = cc.Bias ? RandomArray(rng, s.BiasLength) : null;
        var gy = RandomArray(rng, s.OutputLength);
        var gw0 = RandomArray(rng, s.WeightLength);
        var gb0 = RandomArray(rng, s.BiasLength);

        var (yRef, yAbs) = NaiveConvForward(s, x, w, bias);
        var (gxRef, gxAbs, gwRef, gwAbs, gbRef, gbAbs) = NaiveConvBackward(s, x, w, gy);
        var gwAccRef = new double[gwRef.Length];
        var gwAccAbs = new double[gwRef.Length];
        for (int i = 0; i < gwRef.Length; i++)
        {
            gwAccRef[i] = gw0[i] + gwRef[i];
            gwAccAbs[i] = Math.Abs(gw0[i]) + gwAbs[i];
        }
        var gbAccRef = new double[gbRef.Length];
        var gbAccAbs = new double[gbRef.Length];
        for (int i = 0; i < gbRef.Length; i++)
        {
            gbAccRef[i] = gb0[i] + gbRef[i];
            gbAccAbs[i] = Math.Abs(gb0[i]) + gbAbs[i];
        }

        UnderEachSetting((level, emulated, label) =>
        {
            float[][] Run()
            {
                var y = Filled(s.OutputLength, float.NaN);  // must be overwritten
                var gx = Filled(s.InputLength, float.NaN); // must be overwritten
                var gw = Filled(s.WeightLength, float.NaN);
                var gwAcc = (float[])gw0.Clone();
                var gb = Filled(s.BiasLength, float.NaN);
                var gbAcc = (float[])gb0.Clone();
                if (emulated)
                {
                    ConvKernels.Conv2dForward(s, x, w, bias, y, level);
                    ConvKernels.Conv2dBackwardInput(s, gy, w, gx, level);
                    ConvKernels.Conv2dBackwardWeight(s, gy, x, gw, false, level);
                    ConvKernels.Conv2dBackwardWeight(s, gy, x, gwAcc, true, level);
                    ConvKernels.Conv2dBackwardBias(s, gy, gb, false, level);
                    ConvKernels.Conv2dBackwardBias(s, gy, gbAcc, true, level);
                }
                else
                {
                    ConvKernels.Conv2dForward(s, x, w, bias, y);
                    ConvKernels.Conv2dBackwardInput(s, gy, w, gx);
                    ConvKernels.Conv2dBackwardWeight(s, gy, x, gw, false);
                    ConvKernels.Conv2dBackwardWeight(s, gy, x, gwAcc, true);
                    ConvKernels.Conv2dBackwardBias(s, gy, gb, false);
                    ConvKernels.Conv2dBackwardBias(s, gy, gbAcc, true);
                }
                return [y, gx, gw, gwAcc, gb, gbAcc];
            }

            var first = Run();
            AssertClose(yRef, yAbs, first[0], $"{name} forward {label}");
            AssertClose(gxRef, gxAbs, first[1], $"{name} backward-input {label}");
            AssertClose(gwRef, gwAbs, first[2], $"{name} backward-weight {label}");
            AssertClose(gwAccRef, gwAccAbs, first[3], $"{name} backward-weight accumulate {label}");
            AssertClose(gbRef, gbAbs, first[4], $"{name} backward-bias {label}");
            AssertClose(gbAccRef, gbAccAbs, first[5], $"{name} backward-bias accumulate {label}");
            var second = Run();
            for (int i = 0; i < first.Length; i++)
                AssertBitwiseEqual(first[i], second[i], $"{name} output {i} repeat {label}");
        });
    }

    [Fact]
    public void Conv2d_ZeroBatch_DoesNothingButClearsNonAccumulatedGradients()
    {
        var s = new Conv2dShape(0, 2, 5, 5, 3, 3, 3, padH: 1, padW: 1);
        Assert.Equal(0, s.InputLength);
        ConvKernels.Conv2dForward(s, [], new float[s.WeightLength], new float[3], []);
        var gw = Filled(s.WeightLength, 1f);
        ConvKernels.Conv2dBackwardWeight(s, [], [], gw, accumulate: true);
        Assert.All(gw, v => Assert.Equal(1f, v));
        ConvKernels.Conv2dBackwardWeight(s, [], [], gw, accumulate: false);
        Assert.All(gw, v => Assert.Equal(0f, v));
        var gb = Filled(3, 1f);
        ConvKernels.Conv2dBackwardBias(s, [], gb, accumulate: false);
        Assert.All(gb, v => Assert.Equal(0f, v));
    }

    [Fact]
    public void VectorHelpers_MatchScalar_ForAllLengthsAndLevels()
    {
        var rng = new Random(7);
        foreach (var level in new[] { SimdLevel.Scalar, SimdLevel.Vector256, SimdLevel.Vector512 })
        {
            for (int n = 0; n <= 70; n++)
            {
                var a = RandomArray(rng, n + 3);
                var b = RandomArray(rng, n + 3);
                double dot = 0, sum = 0, absDot = 0, absSum = 0;
                for (int i = 0; i < n; i++)
                {
                    dot += (double)a[i] * b[i];
                    absDot += Math.Abs((double)a[i] * b[i]);
                    sum += a[i];
                    absSum += Math.Abs(a[i]);
                }
                Assert.True(Math.Abs(ConvKernels.Dot(a.AsSpan(0, n), b, level) - dot) <= RelTol * absDot + 1e-30,
                    $"Dot n={n} {level}");
                Assert.True(Math.Abs(ConvKernels.Sum(a.AsSpan(0, n), level) - sum) <= RelTol * absSum + 1e-30,
                    $"Sum n={n} {level}");
                var y = (float[])b.Clone();
                ConvKernels.Axpy(0.75f, a, y.AsSpan(1, n), level);
                Assert.Equal(b[0], y[0]);
                for (int i = 0; i < n; i++)
                {
                    double expect = b[i + 1] + 0.75 * a[i];
                    Assert.True(Math.Abs(y[i + 1] - expect) <= 1e-6 * (Math.Abs(b[i + 1]) + Math.Abs(a[i])),
                        $"Axpy n={n} i={i} {level}");
                }
                for (int i = n + 1; i < y.Length; i++) Assert.Equal(b[i], y[i]);
            }
        }
    }

    // --------------------------------------------------------------------------------------------
    // Pooling
    // --------------------------------------------------------------------------------------------

    private sealed record PoolCase(int N, int C, int H, int W, int KH, int KW, int SH, int SW, int PH, int PW);

    private static readonly Dictionary<string, PoolCase> PoolCases = new()
    {
        ["2x2_s2_p0"] = new(2, 3, 8, 8, 2, 2, 2, 2, 0, 0),
        ["2x2_s2_p0_odd"] = new(1, 2, 7, 9, 2, 2, 2, 2, 0, 0),
        ["3x3_s2_p1_odd_batch3"] = new(3, 2, 9, 11, 3, 3, 2, 2, 1, 1),
        ["3x3_s1_p1_overlap"] = new(2, 2, 6, 7, 3, 3, 1, 1, 1, 1),
        ["2x3_s1x2_p1x1"] = new(1, 3, 5, 8, 2, 3, 1, 2, 1, 1),
        ["3x3_s3_p0_leftover"] = new(2, 1, 10, 11, 3, 3, 3, 3, 0, 0),
        ["1x1_s2"] = new(1, 2, 5, 5, 1, 1, 2, 2, 0, 0),
        ["5x5_s2_p2"] = new(2, 2, 9, 9, 5, 5, 2, 2, 2, 2),
        ["whole_plane"] = new(3, 2, 4, 5, 4, 5, 1, 1, 0, 0),
        // Rows of 8 or more outputs take the vector path (eight outputs at once), with scalar tails.
        ["3x3_s2_p1_wide"] = new(2, 2, 9, 37, 3, 3, 2, 2, 1, 1),
        ["2x2_s2_wide"] = new(1, 2, 4, 34, 2, 2, 2, 2, 0, 0),
        ["3x3_s1_p1_wide"] = new(1, 2, 5, 21, 3, 3, 1, 1, 1, 1),
        ["3x3_s3_wide_leftover"] = new(1, 1, 6, 50, 3, 3, 3, 3, 0, 0),
        ["2x3_s1x2_p1x1_wide"] = new(2, 1, 5, 40, 2, 3, 1, 2, 1, 1),
    };

    public static TheoryData<string> PoolCaseNames()
    {
        var data = new TheoryData<string>();
        foreach (var name in PoolCases.Keys) data.Add(name);
        return data;
    }

    [Theory]
    [MemberData(nameof(PoolCaseNames))]
    public void MaxPool2d_MatchesNaive(string name)
    {
        var p = PoolCases[name];
        var (oh, ow) = PoolKernels.Pool2dOutputSize(p.H, p.W, p.KH, p.KW, p.SH, p.SW, p.PH, p.PW);
        Assert.Equal((p.H + 2 * p.PH - p.KH) / p.SH + 1, oh);
        Assert.Equal((p.W + 2 * p.PW - p.KW) / p.SW + 1, ow);
        var rng = new Random(StableSeed(name));
        var x = RandomArray(rng, p.N * p.C * p.H * p.W);
        var gy = RandomArray(rng, p.N * p.C * oh * ow);
        var (yRef, argRef) = NaiveMaxPool(p, x, oh, ow);
        var gxRef = new double[x.Length];
        var gxAbs = new double[x.Length];
        for (int plane = 0; plane < p.N * p.C; plane++)
        for (int i = 0; i < oh * ow; i++)
        {
            // d y_i / d x_j = 1 exactly for the selected element j of window i.
            gxRef[plane * p.H * p.W + argRef[plane * oh * ow + i]] += gy[plane * oh * ow + i];
            gxAbs[plane * p.H * p.W + argRef[plane * oh * ow + i]] += Math.Abs(gy[plane * oh * ow + i]);
        }

        UnderEachSetting((_, emulated, label) =>
        {
            if (emulated) return;
            float[] Run(out int[] arg, out float[] gx)
            {
                var y = new float[yRef.Length];
                arg = new int[yRef.Length];
                gx = Filled(x.Length, float.NaN);
                PoolKernels.MaxPool2dForward(p.N, p.C, p.H, p.W, p.KH, p.KW, p.SH, p.SW, p.PH, p.PW, x, y, arg);
                PoolKernels.MaxPool2dBackward(p.N, p.C, p.H, p.W, p.KH, p.KW, p.SH, p.SW, p.PH, p.PW, gy, arg, gx);
                return y;
            }
            var y1 = Run(out var arg1, out var gx1);
            for (int i = 0; i < yRef.Length; i++) Assert.Equal((float)yRef[i], y1[i]);
            Assert.Equal(argRef, arg1);
            AssertClose(gxRef, gxAbs, gx1, $"{name} maxpool backward {label}");
            var y2 = Run(out var arg2, out var gx2);
            AssertBitwiseEqual(y1, y2, $"{name} maxpool repeat {label}");
            Assert.Equal(arg1, arg2);
            AssertBitwiseEqual(gx1, gx2, $"{name} maxpool backward repeat {label}");
        });
    }

    [Theory]
    [InlineData("3x3_s2_p1_wide")]
    [InlineData("3x3_s1_p1_wide")]
    [InlineData("2x3_s1x2_p1x1_wide")]
    [InlineData("3x3_s2_p1_odd_batch3")]
    public void MaxPool2d_TiesNaNAndMinusInfinity_MatchNaive_OnEveryPath(string name)
    {
        // Values from {-inf, -1, 0, 1, NaN}: most windows hold ties, some NaNs and some only -inf, so the first-wins,
        // last-NaN-wins and all -inf rules are checked in the vector lanes as well as the scalar tails.
        var p = PoolCases[name];
        var (oh, ow) = PoolKernels.Pool2dOutputSize(p.H, p.W, p.KH, p.KW, p.SH, p.SW, p.PH, p.PW);
        var rng = new Random(StableSeed(name + "ties"));
        float[] choices = [float.NegativeInfinity, -1f, 0f, 1f, float.NaN];
        var x = new float[p.N * p.C * p.H * p.W];
        for (int i = 0; i < x.Length; i++) x[i] = choices[rng.Next(100) switch { < 30 => 0, < 50 => 1, < 75 => 2, < 95 => 3, _ => 4 }];
        var (yRef, argRef) = NaiveMaxPool(p, x, oh, ow);
        UnderEachSetting((_, emulated, label) =>
        {
            if (emulated) return;
            var y = new float[yRef.Length];
            var arg = new int[yRef.Length];
            PoolKernels.MaxPool2dForward(p.N, p.C, p.H, p.W, p.KH, p.KW, p.SH, p.SW, p.PH, p.PW, x, y, arg);
            for (int i = 0; i < y.Length; i++)
            {
                Assert.True(argRef[i] == arg[i], $"{name} {label}: argmax[{i}] = {arg[i]}, expected {argRef[i]}");
                Assert.Equal((float)yRef[i], y[i]);
            }
        });
    }

    [Fact]
    public void MaxPool2d_PaddingIsMinusInfinity_TiesTakeFirst_NaNPropagates()
    {
        // All -5 with padding 1: padding must not win (it is -inf, not 0); ties pick the first in-bounds index.
        var x = Filled(1 * 1 * 4 * 4, -5f);
        var (oh, ow) = PoolKernels.Pool2dOutputSize(4, 4, 3, 3, 2, 2, 1, 1);
        var y = new float[oh * ow];
        var arg = new int[oh * ow];
        PoolKernels.MaxPool2dForward(1, 1, 4, 4, 3, 3, 2, 2, 1, 1, x, y, arg);
        Assert.All(y, v => Assert.Equal(-5f, v));
        Assert.Equal([0, 1, 4, 5], arg); // windows start at (-1,-1), (-1,1), (1,-1), (1,1)

        x[5] = float.NaN; // row 1, col 1: inside all four windows
        PoolKernels.MaxPool2dForward(1, 1, 4, 4, 3, 3, 2, 2, 1, 1, x, y, arg);
        Assert.All(y, v => Assert.True(float.IsNaN(v)));
        Assert.All(arg, v => Assert.Equal(5, v));

        // Overlapping windows that select the same element sum their gradients.
        var gx = new float[16];
        PoolKernels.MaxPool2dBackward(1, 1, 4, 4, 3, 3, 2, 2, 1, 1, [1f, 2f, 3f, 4f], arg, gx);
        Assert.Equal(10f, gx[5]);
        Assert.Equal(10f, gx.Sum());
    }

    [Theory]
    [MemberData(nameof(PoolCaseNames))]
    public void AvgPool2d_MatchesNaive_WithAndWithoutCountIncludePad(string name)
    {
        var p = PoolCases[name];
        var (oh, ow) = PoolKernels.Pool2dOutputSize(p.H, p.W, p.KH, p.KW, p.SH, p.SW, p.PH, p.PW);
        var rng = new Random(StableSeed(name) + 1);
        var x = RandomArray(rng, p.N * p.C * p.H * p.W);
        var gy = RandomArray(rng, p.N * p.C * oh * ow);
        foreach (bool include in new[] { true, false })
        {
            var (yRef, yAbs, gxRef, gxAbs) = NaiveAvgPool(p, include, x, gy, oh, ow);
            UnderEachSetting((_, emulated, label) =>
            {
                if (emulated) return;
                float[] Run(out float[] gx)
                {
                    var y = new float[yRef.Length];
                    gx = Filled(x.Length, float.NaN);
                    PoolKernels.AvgPool2dForward(p.N, p.C, p.H, p.W, p.KH, p.KW, p.SH, p.SW, p.PH, p.PW, include, x, y);
                    PoolKernels.AvgPool2dBackward(p.N, p.C, p.H, p.W, p.KH, p.KW, p.SH, p.SW, p.PH, p.PW, include, gy, gx);
                    return y;
                }
                var y1 = Run(out var gx1);
                AssertClose(yRef, yAbs, y1, $"{name} avgpool include={include} {label}");
                AssertClose(gxRef, gxAbs, gx1, $"{name} avgpool backward include={include} {label}");
                var y2 = Run(out var gx2);
                AssertBitwiseEqual(y1, y2, $"{name} avgpool repeat {label}");
                AssertBitwiseEqual(gx1, gx2, $"{name} avgpool backward repeat {label}");
            });
        }
    }

    [Theory]
    [InlineData(1, 3, 7, 7)]
    [InlineData(3, 5, 1, 1)]
    [InlineData(2, 4, 9, 13)]
    [InlineData(2, 3, 6, 7)]
    public void GlobalAvgPool_MatchesNaive(int n, int c, int h, int w)
    {
        var rng = new Random(n * 1000 + c * 100 + h * 10 + w);
        var x = RandomArray(rng, n * c * h * w);
        var gy = RandomArray(rng, n * c);
        var yRef = new double[n * c];
        var yAbs = new double[n * c];
        var gxRef = new double[x.Length];
        var gxAbs = new double[x.Length];
        for (int p = 0; p < n * c; p++)
        {
            for (int i = 0; i < h * w; i++)
            {
                yRef[p] += x[p * h * w + i] / (double)(h * w);
                yAbs[p] += Math.Abs(x[p * h * w + i]) / (h * w);
                gxRef[p * h * w + i] = gy[p] / (double)(h * w); // d y_p / d x_i = 1 / (H*W)
                gxAbs[p * h * w + i] = Math.Abs(gxRef[p * h * w + i]);
            }
        }
        UnderEachSetting((_, emulated, label) =>
        {
            if (emulated) return;
            var y = new float[n * c];
            var gx = Filled(x.Length, float.NaN);
            PoolKernels.GlobalAvgPoolForward(n, c, h, w, x, y);
            PoolKernels.GlobalAvgPoolBackward(n, c, h, w, gy, gx);
            AssertClose(yRef, yAbs, y, $"global avg {label}");
            AssertClose(gxRef, gxAbs, gx, $"global avg backward {label}");
            var y2 = new float[n * c];
            PoolKernels.GlobalAvgPoolForward(n, c, h, w, x, y2);
            AssertBitwiseEqual(y, y2, $"global avg repeat {label}");
        });
    }

    [Theory]
    [InlineData(2, 3, 5, 7, 1, 1, 1, 1)]
    [InlineData(1, 2, 4, 6, 0, 3, 2, 0)]
    [InlineData(3, 1, 5, 5, 2, 0, 0, 1)]
    [InlineData(1, 2, 6, 7, -1, 2, 1, -2)] // negative pads crop
    [InlineData(2, 2, 5, 9, -3, -2, -1, -1)]
    [InlineData(1, 1, 3, 3, -3, 4, 0, 0)] // everything cropped horizontally, then padded
    public void ZeroPad2d_MatchesNaive(int n, int c, int h, int w, int left, int right, int top, int bottom)
    {
        var (oh, ow) = PoolKernels.ZeroPad2dOutputSize(h, w, left, right, top, bottom);
        Assert.Equal((h + top + bottom, w + left + right), (oh, ow));
        var rng = new Random(h * 31 + w * 7 + left);
        var x = RandomArray(rng, n * c * h * w);
        var gy = RandomArray(rng, n * c * oh * ow);
        var yRef = new float[n * c * oh * ow];
        var gxRef = new float[x.Length];
        for (int p = 0; p < n * c; p++)
        for (int yo = 0; yo < oh; yo++)
        for (int xo = 0; xo < ow; xo++)
        {
            int ih = yo - top, iw = xo - left;
            if (ih < 0 || ih >= h || iw < 0 || iw >= w) continue;
            yRef[(p * oh + yo) * ow + xo] = x[(p * h + ih) * w + iw];
            gxRef[(p * h + ih) * w + iw] = gy[(p * oh + yo) * ow + xo];
        }
        UnderEachSetting((_, emulated, label) =>
        {
            if (emulated) return;
            var y = Filled(yRef.Length, float.NaN);
            var gx = Filled(x.Length, float.NaN);
            PoolKernels.ZeroPad2dForward(n, c, h, w, left, right, top, bottom, x, y);
            PoolKernels.ZeroPad2dBackward(n, c, h, w, left, right, top, bottom, gy, gx);
            AssertBitwiseEqual(yRef, y, $"zeropad {label}");
            AssertBitwiseEqual(gxRef, gx, $"zeropad backward {label}");
        });
    }

    // --------------------------------------------------------------------------------------------
    // Naive references (double precision, straight from the definitions)
    // --------------------------------------------------------------------------------------------

    /// <summary>y[n,oc,oh,ow] = b[oc] + sum_{ci,kh,kw} x[n, g*Cg+ci, oh*sH-pH+kh*dH, ow*sW-pW+kw*dW] * w[oc,ci,kh,kw].</summary>
    private static (double[] Y, double[] Abs) NaiveConvForward(Conv2dShape s, float[] x, float[] w, float[]? b)
    {
        var y = new double[s.OutputLength];
        var abs = new double[s.OutputLength];
        int cg = s.C / s.Groups, ocg = s.OutC / s.Groups;
        for (int n = 0; n < s.N; n++)
        for (int oc = 0; oc < s.OutC; oc++)
        for (int oh = 0; oh < s.OH; oh++)
        for (int ow = 0; ow < s.OW; ow++)
        {
            int g = oc / ocg;
            double acc = b?[oc] ?? 0, accAbs = Math.Abs(b?[oc] ?? 0);
            for (int ci = 0; ci < cg; ci++)
            for (int kh = 0; kh < s.KH; kh++)
            for (int kw = 0; kw < s.KW; kw++)
            {
                int ih = oh * s.StrideH - s.PadH + kh * s.DilationH;
                int iw = ow * s.StrideW - s.PadW + kw * s.DilationW;
                if (ih < 0 || ih >= s.H || iw < 0 || iw >= s.W) continue;
                double t = (double)x[((n * s.C + g * cg + ci) * s.H + ih) * s.W + iw] *
                           w[((oc * cg + ci) * s.KH + kh) * s.KW + kw];
                acc += t;
                accAbs += Math.Abs(t);
            }
            int yi = ((n * s.OutC + oc) * s.OH + oh) * s.OW + ow;
            y[yi] = acc;
            abs[yi] = accAbs;
        }
        return (y, abs);
    }

    /// <summary>
    /// Gradients of L = sum gy * y: every term x*w of every y contributes gy*w to dL/dx and gy*x to dL/dw;
    /// dL/db[oc] = sum gy[:, oc].
    /// </summary>
    private static (double[] Gx, double[] GxAbs, double[] Gw, double[] GwAbs, double[] Gb, double[] GbAbs)
        NaiveConvBackward(Conv2dShape s, float[] x, float[] w, float[] gy)
    {
        var gx = new double[s.InputLength];
        var gxAbs = new double[s.InputLength];
        var gw = new double[s.WeightLength];
        var gwAbs = new double[s.WeightLength];
        var gb = new double[s.OutC];
        var gbAbs = new double[s.OutC];
        int cg = s.C / s.Groups, ocg = s.OutC / s.Groups;
        for (int n = 0; n < s.N; n++)
        for (int oc = 0; oc < s.OutC; oc++)
        for (int oh = 0; oh < s.OH; oh++)
        for (int ow = 0; ow < s.OW; ow++)
        {
            int g = oc / ocg;
            double gyv = gy[((n * s.OutC + oc) * s.OH + oh) * s.OW + ow];
            gb[oc] += gyv;
            gbAbs[oc] += Math.Abs(gyv);
            for (int ci = 0; ci < cg; ci++)
            for (int kh = 0; kh < s.KH; kh++)
            for (int kw = 0; kw < s.KW; kw++)
            {
                int ih = oh * s.StrideH - s.PadH + kh * s.DilationH;
                int iw = ow * s.StrideW - s.PadW + kw * s.DilationW;
                if (ih < 0 || ih >= s.H || iw < 0 || iw >= s.W) continue;
                int xi = ((n * s.C + g * cg + ci) * s.H + ih) * s.W + iw;
                int wi = ((oc * cg + ci) * s.KH + kh) * s.KW + kw;
                gx[xi] += gyv * w[wi];
                gxAbs[xi] += Math.Abs(gyv * w[wi]);
                gw[wi] += gyv * x[xi];
                gwAbs[wi] += Math.Abs(gyv * x[xi]);
            }
        }
        return (gx, gxAbs, gw, gwAbs, gb, gbAbs);
    }

    private static (double[] Y, int[] Arg) NaiveMaxPool(PoolCase p, float[] x, int oh, int ow)
    {
        var y = new double[p.N * p.C * oh * ow];
        var arg = new int[y.Length];
        for (int plane = 0; plane < p.N * p.C; plane++)
        for (int yo = 0; yo < oh; yo++)
        for (int xo = 0; xo < ow; xo++)
        {
            double best = double.NegativeInfinity;
            int bestIdx = -1;
            for (int kh = 0; kh < p.KH; kh++)
            for (int kw = 0; kw < p.KW; kw++)
            {
                int ih = yo * p.SH - p.PH + kh, iw = xo * p.SW - p.PW + kw;
                if (ih < 0 || ih >= p.H || iw < 0 || iw >= p.W) continue; // padding is -inf: never selected
                double v = x[plane * p.H * p.W + ih * p.W + iw];
                if (bestIdx < 0 || v > best || double.IsNaN(v)) // NaN wins: the last NaN in row-major order
                {
                    best = v;
                    bestIdx = ih * p.W + iw;
                }
            }
            y[plane * oh * ow + yo * ow + xo] = best;
            arg[plane * oh * ow + yo * ow + xo] = bestIdx;
        }
        return (y, arg);
    }

    private static (double[] Y, double[] YAbs, double[] Gx, double[] GxAbs) NaiveAvgPool(
        PoolCase p, bool countIncludePad, float[] x, float[] gy, int oh, int ow)
    {
        var y = new double[p.N * p.C * oh * ow];
        var yAbs = new double[y.Length];
        var gx = new double[x.Length];
        var gxAbs = new double[x.Length];
        for (int plane = 0; plane < p.N * p.C; plane++)
        for (int yo = 0; yo < oh; yo++)
        for (int xo = 0; xo < ow; xo++)
        {
            // Divisor: the full window (count_include_pad; with ceil_mode off it never leaves the padded input),
            // or the number of in-bounds elements.
            int count = 0;
            for (int kh = 0; kh < p.KH; kh++)
            for (int kw = 0; kw < p.KW; kw++)
            {
                int ih = yo * p.SH - p.PH + kh, iw = xo * p.SW - p.PW + kw;
                if (ih >= 0 && ih < p.H && iw >= 0 && iw < p.W) count++;
            }
            double div = countIncludePad ? p.KH * p.KW : count;
            int yi = plane * oh * ow + yo * ow + xo;
            for (int kh = 0; kh < p.KH; kh++)
            for (int kw = 0; kw < p.KW; kw++)
            {
                int ih = yo * p.SH - p.PH + kh, iw = xo * p.SW - p.PW + kw;
                if (ih < 0 || ih >= p.H || iw < 0 || iw >= p.W) continue;
                int xi = plane * p.H * p.W + ih * p.W + iw;
                y[yi] += x[xi] / div;
                yAbs[yi] += Math.Abs(x[xi]) / div;
                gx[xi] += gy[yi] / div; // d y / d x = 1 / div
                gxAbs[xi] += Math.Abs(gy[yi]) / div;
            }
        }
        return (y, yAbs, gx, gxAbs);
    }

    // --------------------------------------------------------------------------------------------
    // Harness
    // --------------------------------------------------------------------------------------------

    /// <summary>
    /// Runs <paramref name="body"/>(level, emulated, label) under each SIMD level the hardware supports (via
    /// <see cref="Simd.Force"/>) at 1 and 2 threads, then once more per unsupported level with
    /// emulated = true (the test then calls the explicit-level internal entry points). With 2 threads the
    /// parallel grain is lowered to 1 so that even these small problems are split. Restores everything.
    /// </summary>
    private static void UnderEachSetting(Action<SimdLevel, bool, string> body)
    {
        int savedThreads = WorkerPool.Threads;
        int savedGrain = ConvKernels.MinParallelWork;
        try
        {
            foreach (var level in new[] { SimdLevel.Scalar, SimdLevel.Vector256, SimdLevel.Vector512 })
            {
                bool emulated = (int)level > (int)Simd.Hardware;
                foreach (int threads in new[] { 1, 2 })
                {
                    if (emulated && threads == 2) continue;
                    WorkerPool.SetThreads(threads);
                    ConvKernels.MinParallelWork = threads == 1 ? savedGrain : 1;
                    using (Simd.Force(level))
                        body(level, emulated, $"[{level}{(emulated ? " emulated" : "")}, threads={threads}]");
                }
            }
        }
        finally
        {
            WorkerPool.SetThreads(savedThreads);
            ConvKernels.MinParallelWork = savedGrain;
        }
    }

    private static void AssertClose(double[] expected, double[] absScale, float[] actual, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
        {
            double err = Math.Abs(actual[i] - expected[i]);
            double tol = RelTol * absScale[i] + 1e-30;
            if (!(err <= tol))
                Assert.Fail($"{what}: element {i}: got {actual[i]:R}, expected {expected[i]:R} " +
                            $"(|err| {err:E3} > tol {tol:E3})");
        }
    }

    private static void AssertBitwiseEqual(float[] a, float[] b, string what)
    {
        Assert.Equal(a.Length, b.Length);
        for (int i = 0; i < a.Length; i++)
            if (BitConverter.SingleToInt32Bits(a[i]) != BitConverter.SingleToInt32Bits(b[i]))
                Assert.Fail($"{what}: element {i} differs bitwise: {a[i]:R} vs {b[i]:R}");
    }

    private static float[] RandomArray(Random rng, int n)
    {
        var a = new float[n];
        for (int i = 0; i < n; i++) a[i] = (float)(rng.NextDouble() * 2 - 1);
        return a;
    }

    private static float[] Filled(int n, float v)
    {
        var a = new float[n];
        Array.Fill(a, v);
        return a;
    }

    private static int StableSeed(string s)
    {
        int h = 17;
        foreach (char ch in s) h = unchecked(h * 31 + ch);
        return h & 0x7fffffff;
    }
}

/// <summary>Shape validation: bad shapes throw <see cref="ArgumentException"/> naming the values.</summary>
public sealed class ConvKernelValidationTests
{
    [Fact]
    public void Conv2dShape_ComputesOutputSize()
    {
        var s = new Conv2dShape(2, 4, 7, 10, 6, 3, 5, strideH: 2, strideW: 3, padH: 1, padW: 2,
            dilationH: 2, dilationW: 1, groups: 2);
        Assert.Equal((7 + 2 - 2 * 2 - 1) / 2 + 1, s.OH);
        Assert.Equal((10 + 4 - 4 - 1) / 3 + 1, s.OW);
        Assert.Equal(2, s.CPerGroup);
        Assert.Equal(3, s.OutCPerGroup);
        Assert.Equal(2 * 4 * 7 * 10, s.InputLength);
        Assert.Equal(6 * 2 * 3 * 5, s.WeightLength);
        Assert.Equal(2 * 6 * s.OH * s.OW, s.OutputLength);
        Assert.False(s.IsDepthwise);
        Assert.True(new Conv2dShape(1, 3, 5, 5, 6, 3, 3, groups: 3).IsDepthwise);
        Assert.True(new Conv2dShape(1, 3, 5, 5, 6, 1, 1).IsPointwise);
        Assert.Equal(112, Conv2dShape.OutputSize(224, 7, 2, 3));
        Assert.Equal(new Conv2dShape(1, 3, 5, 5, 6, 3, 3), new Conv2dShape(1, 3, 5, 5, 6, 3, 3));
    }

    [Theory]
    [InlineData(1, 3, 5, 5, 4, 3, 3, 1, 1, 0, 0, 1, 1, 2, "C=3", "groups=2")]
    [InlineData(1, 4, 5, 5, 3, 3, 3, 1, 1, 0, 0, 1, 1, 2, "OutC=3", "groups=2")]
    [InlineData(1, 3, 2, 5, 4, 5, 3, 1, 1, 0, 0, 1, 1, 1, "H=2", "KH=5")]
    [InlineData(1, 3, 5, 4, 4, 3, 3, 1, 1, 0, 0, 1, 2, 1, "W=4", "dilationW=2")]
    [InlineData(1, 3, 5, 5, 4, 3, 3, 0, 1, 0, 0, 1, 1, 1, "stride (0, 1)", "")]
    [InlineData(1, 3, 5, 5, 4, 3, 3, 1, 1, -1, 0, 1, 1, 1, "padding (-1, 0)", "")]
    [InlineData(1, 3, 5, 5, 4, 3, 3, 1, 1, 0, 0, 0, 1, 1, "dilation (0, 1)", "")]
    [InlineData(1, 3, 5, 5, 4, 0, 3, 1, 1, 0, 0, 1, 1, 1, "KH=0", "")]
    [InlineData(1, 0, 5, 5, 4, 3, 3, 1, 1, 0, 0, 1, 1, 1, "C=0", "")]
    [InlineData(-1, 3, 5, 5, 4, 3, 3, 1, 1, 0, 0, 1, 1, 1, "N=-1", "")]
    [InlineData(1, 3, 5, 5, 4, 3, 3, 1, 1, 0, 0, 1, 1, 0, "groups=0", "")]
    public void Conv2dShape_BadValues_Throw(int n, int c, int h, int w, int outC, int kh, int kw, int sh, int sw,
        int ph, int pw, int dh, int dw, int groups, string mention1, string mention2)
    {
        var e = Assert.Throws<ArgumentException>(() => new Conv2dShape(n, c, h, w, outC, kh, kw, sh, sw, ph, pw, dh, dw, groups));
        Assert.Contains(mention1, e.Message);
        Assert.Contains(mention2, e.Message);
    }

    [Fact]
    public void Conv2d_WrongArrayLengthsOrDefaultShape_Throw()
    {
        var s = new Conv2dShape(2, 3, 5, 5, 4, 3, 3, padH: 1, padW: 1);
        var x = new float[s.InputLength];
        var w = new float[s.WeightLength];
        var y = new float[s.OutputLength];
        var e = Assert.Throws<ArgumentException>(() => ConvKernels.Conv2dForward(s, new float[10], w, null, y));
        Assert.Contains("10", e.Message);
        Assert.Contains(s.InputLength.ToString(System.Globalization.CultureInfo.InvariantCulture), e.Message);
        Assert.Throws<ArgumentException>(() => ConvKernels.Conv2dForward(s, x, new float[5], null, y));
        Assert.Throws<ArgumentException>(() => ConvKernels.Conv2dForward(s, x, w, new float[3], y));
        Assert.Throws<ArgumentException>(() => ConvKernels.Conv2dForward(s, x, w, null, new float[1]));
        Assert.Throws<ArgumentException>(() => ConvKernels.Conv2dBackwardInput(s, y, w, new float[1]));
        Assert.Throws<ArgumentException>(() => ConvKernels.Conv2dBackwardWeight(s, y, x, new float[1], false));
        Assert.Throws<ArgumentException>(() => ConvKernels.Conv2dBackwardBias(s, y, new float[3], false));
        var d = Assert.Throws<ArgumentException>(() => ConvKernels.Conv2dForward(default, x, w, null, y));
        Assert.Contains("default", d.Message);
    }

    [Fact]
    public void Pool_BadValues_Throw()
    {
        var e = Assert.Throws<ArgumentException>(() => PoolKernels.Pool2dOutputSize(5, 5, 3, 3, 1, 1, 2, 0));
        Assert.Contains("padding 2", e.Message);
        e = Assert.Throws<ArgumentException>(() => PoolKernels.Pool2dOutputSize(2, 5, 5, 3, 1, 1, 1, 0));
        Assert.Contains("input 2", e.Message);
        Assert.Contains("kernel 5", e.Message);
        e = Assert.Throws<ArgumentException>(() => PoolKernels.PoolOutputSize(5, 2, 0, 0));
        Assert.Contains("stride 0", e.Message);
        e = Assert.Throws<ArgumentException>(() =>
            PoolKernels.MaxPool2dForward(1, 1, 4, 4, 2, 2, 2, 2, 0, 0, new float[15], new float[4], new int[4]));
        Assert.Contains("15", e.Message);
        e = Assert.Throws<ArgumentException>(() =>
            PoolKernels.AvgPool2dForward(1, 1, 4, 4, 2, 2, 2, 2, 3, 0, true, new float[16], new float[4]));
        Assert.Contains("AvgPool2d", e.Message);
        e = Assert.Throws<ArgumentException>(() =>
            PoolKernels.MaxPool2dBackward(1, 1, 4, 4, 2, 2, 2, 2, 0, 0, new float[4], [0, 1, 16, 2], new float[16]));
        Assert.Contains("16", e.Message);
        e = Assert.Throws<ArgumentException>(() => PoolKernels.ZeroPad2dOutputSize(3, 3, -2, -1, 0, 0));
        Assert.Contains("left=-2", e.Message);
        Assert.Throws<ArgumentException>(() => PoolKernels.GlobalAvgPoolForward(2, 3, 4, 4, new float[96], new float[5]));
    }
}

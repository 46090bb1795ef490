using System.Buffers.Binary;
using System.Diagnostics;
using System.Text;
using MlNetFineTune.Tensors.IO;
using Xunit;
using Xunit.Abstractions;

namespace MlNetFineTune.Tensors.Tests;

public sealed class SafeTensorsTests : IDisposable
{
    private const string Source = "case.safetensors";

    private readonly string _dir;
    private readonly ITestOutputHelper _output;

    public SafeTensorsTests(ITestOutputHelper output)
    {
        _output = output;
        _dir = Path.Combine(Path.GetTempPath(), "safetensors-tests-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(_dir);
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(_dir, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    // ------------------------------------------------------------------ helpers

    /// <summary>Builds a file from a header text and data bytes; the length prefix is the header's byte length unless given.</summary>
    private static byte[] Build(string header, byte[]? data = null, ulong? declaredLength = null)
    {
        byte[] json = Encoding.UTF8.GetBytes(header);
        return Build(json, data, declaredLength);
    }

    private static byte[] Build(byte[] json, byte[]? data = null, ulong? declaredLength = null)
    {
        data ??= [];
        var result = new byte[8 + json.Length + data.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(result, declaredLength ?? (ulong)json.Length);
        json.CopyTo(result, 8);
        data.CopyTo(result, 8 + json.Length);
        return result;
    }

    private static string Entry(string name, string dtype, string shape, long begin, long end) =>
        $"\"{name}\":{{\"dtype\":\"{dtype}\",\"shape\":[{shape}],\"data_offsets\":[{begin},{end}]}}";

    private static byte[] U16Bytes(params ushort[] values)
    {
        var bytes = new byte[values.Length * 2];
        for (int i = 0; i < values.Length; i++)
        {
            BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(i * 2), values[i]);
        }
        return bytes;
    }

    private static SafeTensorsFormatException AssertRejected(byte[] bytes, string? tensor, string? field = null)
    {
        var ex = Assert.Throws<SafeTensorsFormatException>(() =>
        {
            using SafeTensorsFile file = SafeTensorsFile.FromBytes(bytes, Source);
            foreach (SafeTensorInfo info in file.Tensors)
            {
                file.ReadRaw(info.Name);
            }
        });
        Assert.Contains(Source, ex.Message);
        Assert.Equal(Source, ex.SourceName);
        Assert.Equal(tensor, ex.TensorName);
        if (tensor is not null)
        {
            Assert.Contains($"'{tensor}'", ex.Message);
        }
        if (field is not null)
        {
            Assert.Equal(field, ex.Field);
            Assert.Contains(field, ex.Message);
        }
        return ex;
    }

    private static void AssertSameFloat(float expected, float actual)
    {
        if (float.IsNaN(expected))
        {
            Assert.True(float.IsNaN(actual), $"expected NaN, got {actual}");
        }
        else
        {
            Assert.Equal(BitConverter.SingleToUInt32Bits(expected), BitConverter.SingleToUInt32Bits(actual));
        }
    }

    private static SafeTensorWriteEntry F(string name, SafeTensorDType dtype, long[] shape, float[] data) => new(name, dtype, shape, data);

    // ------------------------------------------------------------------ round trips

    private static readonly float[] F32Data = [0f, -1.5f, 3.25f, float.MaxValue, float.Epsilon, -0f];
    private static readonly float[] F16Data = [1f, -2f, 0.5f, 65504f];
    private static readonly float[] BF16Data = [1f, -3f, 0.15625f];
    private static readonly long[] I64Data = [long.MinValue, -1, 0, 1L << 40, long.MaxValue];
    private static readonly int[] I32Data = [int.MinValue, -7, 0, int.MaxValue];

    private static List<SafeTensorWriteEntry> RoundTripEntries() =>
    [
        F("model.weight", SafeTensorDType.F32, [2, 3], F32Data),
        F("model.half", SafeTensorDType.F16, [2, 2], F16Data),
        F("model.bf", SafeTensorDType.BF16, [3], BF16Data),
        new("ids.long", SafeTensorDType.I64, [5], I64Data),
        new("ids.int", SafeTensorDType.I32, [2, 2], I32Data),
        new("ids.int_from_long", SafeTensorDType.I32, [3], new long[] { -5, 0, int.MaxValue }),
        new("ids.long_from_int", SafeTensorDType.I64, [2], new int[] { -9, 12 }),
        F("scalar", SafeTensorDType.F32, [], [42f]),
        F("empty", SafeTensorDType.F32, [0, 3], []),
        SafeTensorWriteEntry.FromRaw("mask", SafeTensorDType.BOOL, [3], new byte[] { 1, 0, 1 }),
    ];

    private static readonly Dictionary<string, string> RoundTripMetadata = new()
    {
        ["format"] = "pt",
        ["note"] = "ünïcode \"quoted\" \\ back\nslash\t\u0001",
    };

    private static void AssertRoundTrip(SafeTensorsFile file)
    {
        Assert.Equal(10, file.Tensors.Count);
        Assert.Equal(RoundTripMetadata.OrderBy(p => p.Key), file.Metadata.OrderBy(p => p.Key));

        Assert.Equal(SafeTensorDType.F32, file["model.weight"].DType);
        Assert.Equal(new long[] { 2, 3 }, file["model.weight"].Shape);
        Assert.Equal(6, file["model.weight"].ElementCount);
        float[] f32 = file.ReadFloat32("model.weight");
        for (int i = 0; i < F32Data.Length; i++)
        {
            AssertSameFloat(F32Data[i], f32[i]);
        }
        Assert.Equal(F16Data, file.ReadFloat32("model.half"));
        Assert.Equal(BF16Data, file.ReadFloat32("model.bf"));
        Assert.Equal(I64Data, file.ReadInt64("ids.long"));
        Assert.Equal(I32Data, file.ReadInt32("ids.int"));
        Assert.Equal(I32Data.Select(v => (long)v), file.ReadInt64("ids.int"));
        Assert.Equal(new[] { -5, 0, int.MaxValue }, file.ReadInt32("ids.int_from_long"));
        Assert.Equal(new long[] { -9, 12 }, file.ReadInt64("ids.long_from_int"));
        Assert.Equal(new[] { -9, 12 }, file.ReadInt32("ids.long_from_int"));
        Assert.Equal(SafeTensorDType.I32, file["ids.int_from_long"].DType);
        Assert.Equal(SafeTensorDType.I64, file["ids.long_from_int"].DType);

        SafeTensorInfo scalar = file["scalar"];
        Assert.Equal(0, scalar.Rank);
        Assert.Empty(scalar.Shape);
        Assert.Equal(1, scalar.ElementCount);
        Assert.Equal(new[] { 42f }, file.ReadFloat32("scalar"));

        Assert.Equal(0, file["empty"].ElementCount);
        Assert.Equal(0, file["empty"].ByteLength);
        Assert.Empty(file.ReadFloat32("empty"));

        Assert.Equal(new byte[] { 1, 0, 1 }, file.ReadRaw("mask"));
        Assert.Equal(file.DataLength, file.Tensors.Sum(t => t.ByteLength));

        // Span overloads.
        var destination = new float[4];
        file.ReadFloat32("model.half", destination);
        Assert.Equal(F16Data, destination);
        Assert.Throws<ArgumentException>(() => file.ReadFloat32("model.half", new float[3]));
    }

    [Fact]
    public void RoundTrip_AllSupportedDTypes_WithMetadata_InMemoryFileAndStreams()
    {
        byte[] bytes = SafeTensorsWriter.WriteToBytes(RoundTripEntries(), RoundTripMetadata);
        using (SafeTensorsFile file = SafeTensorsFile.FromBytes(bytes))
        {
            Assert.Equal("<memory>", file.SourceName);
            Assert.Equal(0, file.HeaderLength % 8);
            Assert.Equal(8 + file.HeaderLength, file.DataStart);
            Assert.Equal(bytes.Length, file.DataStart + file.DataLength);
            AssertRoundTrip(file);
        }

        string path = Path.Combine(_dir, "roundtrip.safetensors");
        SafeTensorsWriter.Write(path, RoundTripEntries(), RoundTripMetadata);
        Assert.Equal(bytes, File.ReadAllBytes(path));
        using (SafeTensorsFile file = SafeTensorsFile.Open(path))
        {
            Assert.Equal(path, file.SourceName);
            AssertRoundTrip(file);
        }

        using (SafeTensorsFile file = SafeTensorsFile.FromStream(new MemoryStream(bytes)))
        {
            AssertRoundTrip(file);
        }
        using (SafeTensorsFile file = SafeTensorsFile.FromStream(new ForwardOnlyStream(bytes), "pipe"))
        {
            Assert.Equal("pipe", file.SourceName);
            AssertRoundTrip(file);
        }

        var stream = new MemoryStream();
        SafeTensorsWriter.Write(stream, RoundTripEntries(), RoundTripMetadata);
        Assert.Equal(bytes, stream.ToArray());
    }

    [Fact]
    public void LargeTensors_AreReadInChunksFromFiles()
    {
        const int Count = 100_003; // > 64 KiB of source bytes for every dtype, not a multiple of the chunk
        var floats = new float[Count];
        var longs = new long[Count];
        for (int i = 0; i < Count; i++)
        {
            floats[i] = (i % 256) - 128; // exact in F16 and BF16
            longs[i] = i * 3L - 7;
        }
        string path = Path.Combine(_dir, "large.safetensors");
        SafeTensorsWriter.Write(path,
        [
            F("h", SafeTensorDType.F16, [Count], floats),
            F("b", SafeTensorDType.BF16, [Count], floats),
            new SafeTensorWriteEntry("i", SafeTensorDType.I32, [Count], longs),
        ]);
        using SafeTensorsFile file = SafeTensorsFile.Open(path);
        Assert.Equal(floats, file.ReadFloat32("h"));
        Assert.Equal(floats, file.ReadFloat32("b"));
        Assert.Equal(longs, file.ReadInt64("i"));
        using SafeTensorsFile stream = SafeTensorsFile.FromStream(File.OpenRead(path));
        Assert.Equal(floats, stream.ReadFloat32("h"));
    }

    // ------------------------------------------------------------------ known bit patterns

    [Fact]
    public void F16_KnownBitPatterns_DecodeExactly()
    {
        (ushort Bits, float Value)[] cases =
        [
            (0x0000, 0f),
            (0x8000, -0f),
            (0x3C00, 1f),
            (0xC000, -2f),
            (0x3555, 0.333251953125f),
            (0x7BFF, 65504f),
            (0x0400, MathF.ScaleB(1f, -14)),          // smallest normal
            (0x0001, MathF.ScaleB(1f, -24)),          // smallest subnormal
            (0x03FF, MathF.ScaleB(1023f, -24)),       // largest subnormal
            (0x8001, -MathF.ScaleB(1f, -24)),
            (0x7C00, float.PositiveInfinity),
            (0xFC00, float.NegativeInfinity),
            (0x7E00, float.NaN),
            (0xFE01, float.NaN),
        ];
        byte[] bytes = Build("{" + Entry("h", "F16", cases.Length.ToString(), 0, cases.Length * 2) + "}",
            U16Bytes(cases.Select(c => c.Bits).ToArray()));
        using SafeTensorsFile file = SafeTensorsFile.FromBytes(bytes);
        float[] values = file.ReadFloat32("h");
        for (int i = 0; i < cases.Length; i++)
        {
            AssertSameFloat(cases[i].Value, values[i]);
        }
    }

    [Fact]
    public void F16_AllBitPatterns_MatchReferenceDecoding()
    {
        var bits = new ushort[65536];
        for (int i = 0; i < bits.Length; i++)
        {
            bits[i] = (ushort)i;
        }
        byte[] bytes = Build("{" + Entry("all", "F16", "256,256", 0, 131072) + "}", U16Bytes(bits));
        using SafeTensorsFile file = SafeTensorsFile.FromBytes(bytes);
        float[] values = file.ReadFloat32("all");
        for (int i = 0; i < bits.Length; i++)
        {
            int sign = i >> 15, exponent = (i >> 10) & 0x1F, mantissa = i & 0x3FF;
            double magnitude = exponent switch
            {
                0 => Math.ScaleB(mantissa, -24),
                31 => mantissa == 0 ? double.PositiveInfinity : double.NaN,
                _ => Math.ScaleB(1024 + mantissa, exponent - 25),
            };
            float expected = (float)(sign == 1 ? -magnitude : magnitude);
            if (!(float.IsNaN(expected) ? float.IsNaN(values[i]) : BitConverter.SingleToUInt32Bits(expected) == BitConverter.SingleToUInt32Bits(values[i])))
            {
                Assert.Fail($"F16 0x{i:x4}: expected {expected}, got {values[i]}");
            }
        }
    }

    [Fact]
    public void BF16_KnownBitPatterns_DecodeExactly()
    {
        (ushort Bits, float Value)[] cases =
        [
            (0x0000, 0f),
            (0x8000, -0f),
            (0x3F80, 1f),
            (0xC040, -3f),
            (0x4049, 3.140625f),
            (0x7F7F, BitConverter.UInt32BitsToSingle(0x7F7F0000)), // largest finite
            (0x0001, MathF.ScaleB(1f, -133)),                       // smallest subnormal
            (0x0080, MathF.ScaleB(1f, -126)),                       // smallest normal
            (0x7F80, float.PositiveInfinity),
            (0xFF80, float.NegativeInfinity),
            (0x7FC0, float.NaN),
        ];
        byte[] bytes = Build("{" + Entry("b", "BF16", cases.Length.ToString(), 0, cases.Length * 2) + "}",
            U16Bytes(cases.Select(c => c.Bits).ToArray()));
        using SafeTensorsFile file = SafeTensorsFile.FromBytes(bytes);
        float[] values = file.ReadFloat32("b");
        for (int i = 0; i < cases.Length; i++)
        {
            AssertSameFloat(cases[i].Value, values[i]);
        }
    }

    [Fact]
    public void Writer_F16AndBF16_RoundToNearestEven()
    {
        float[] input =
        [
            1f + MathF.ScaleB(1f, -11),      // F16 tie -> even (1.0)
            1f + 3 * MathF.ScaleB(1f, -11),  // F16 tie -> even (1 + 2^-9)
            65520f,                          // F16 overflow -> +inf
            MathF.ScaleB(1f, -25),           // F16 tie between 0 and the smallest subnormal -> 0
            MathF.ScaleB(3f, -25),           // F16 tie -> even subnormal 2 * 2^-24
            float.NaN,
        ];
        byte[] bytes = SafeTensorsWriter.WriteToBytes([F("h", SafeTensorDType.F16, [6], input)]);
        using (SafeTensorsFile file = SafeTensorsFile.FromBytes(bytes))
        {
            byte[] raw = file.ReadRaw("h");
            ushort[] bits = Enumerable.Range(0, 6).Select(i => BinaryPrimitives.ReadUInt16LittleEndian(raw.AsSpan(i * 2))).ToArray();
            Assert.Equal(new ushort[] { 0x3C00, 0x3C02, 0x7C00, 0x0000, 0x0002 }, bits[..5]);
            Assert.True((bits[5] & 0x7C00) == 0x7C00 && (bits[5] & 0x03FF) != 0, "NaN stays NaN");
        }

        float[] bfInput =
        [
            1f + MathF.ScaleB(1f, -8),      // tie -> even (1.0)
            1f + 3 * MathF.ScaleB(1f, -8),  // tie -> even (1 + 2^-6)
            1f + MathF.ScaleB(1f, -8) + MathF.ScaleB(1f, -20), // above the tie -> up
            float.MaxValue,                 // rounds up to +inf
            float.NaN,
        ];
        bytes = SafeTensorsWriter.WriteToBytes([F("b", SafeTensorDType.BF16, [5], bfInput)]);
        using (SafeTensorsFile file = SafeTensorsFile.FromBytes(bytes))
        {
            byte[] raw = file.ReadRaw("b");
            ushort[] bits = Enumerable.Range(0, 5).Select(i => BinaryPrimitives.ReadUInt16LittleEndian(raw.AsSpan(i * 2))).ToArray();
            Assert.Equal(new ushort[] { 0x3F80, 0x3F82, 0x3F81, 0x7F80 }, bits[..4]);
            Assert.True(float.IsNaN(file.ReadFloat32("b")[4]));
        }
    }

    // ------------------------------------------------------------------ exact layout (interop with Python safetensors)

    [Fact]
    public void Writer_ProducesExactReferenceLayout()
    {
        byte[] bytes = SafeTensorsWriter.WriteToBytes(
            [F("b", SafeTensorDType.F32, [2], [1f, 2f]), F("a", SafeTensorDType.F32, [1], [3f])],
            new Dictionary<string, string> { ["format"] = "pt" });

        const string Json = "{\"__metadata__\":{\"format\":\"pt\"}," +
            "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}," +
            "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}";
        Assert.Equal(139, Json.Length);
        Assert.Equal(144UL, BinaryPrimitives.ReadUInt64LittleEndian(bytes)); // padded to a multiple of 8
        Assert.Equal(Json + "     ", Encoding.UTF8.GetString(bytes, 8, 144));
        Assert.Equal(8 + 144 + 12, bytes.Length);
        Assert.Equal(new byte[] { 0, 0, 0x40, 0x40, 0, 0, 0x80, 0x3F, 0, 0, 0, 0x40 }, bytes[152..]); // a=3, b=1,2
    }

    [Fact]
    public void Writer_MatchesReferenceTestVectors()
    {
        // safetensors/src/tensor.rs test_serialization: {"attn.0": F32 [1,2,3] = 0..5}, no padding needed.
        byte[] expected =
        [
            64, 0, 0, 0, 0, 0, 0, 0, 123, 34, 97, 116, 116, 110, 46, 48, 34, 58, 123, 34, 100,
            116, 121, 112, 101, 34, 58, 34, 70, 51, 50, 34, 44, 34, 115, 104, 97, 112, 101, 34,
            58, 91, 49, 44, 50, 44, 51, 93, 44, 34, 100, 97, 116, 97, 95, 111, 102, 102, 115,
            101, 116, 115, 34, 58, 91, 48, 44, 50, 52, 93, 125, 125, 0, 0, 0, 0, 0, 0, 128, 63,
            0, 0, 0, 64, 0, 0, 64, 64, 0, 0, 128, 64, 0, 0, 160, 64,
        ];
        Assert.Equal(expected, SafeTensorsWriter.WriteToBytes([F("attn.0", SafeTensorDType.F32, [1, 2, 3], [0f, 1f, 2f, 3f, 4f, 5f])]));

        // test_serialization_forced_alignement: name "attn0", shape [1,1,2,3] -> 7 spaces of padding.
        expected =
        [
            72, 0, 0, 0, 0, 0, 0, 0, 123, 34, 97, 116, 116, 110, 48, 34, 58, 123, 34, 100, 116,
            121, 112, 101, 34, 58, 34, 70, 51, 50, 34, 44, 34, 115, 104, 97, 112, 101, 34, 58,
            91, 49, 44, 49, 44, 50, 44, 51, 93, 44, 34, 100, 97, 116, 97, 95, 111, 102, 102,
            115, 101, 116, 115, 34, 58, 91, 48, 44, 50, 52, 93, 125, 125, 32, 32, 32, 32, 32,
            32, 32, 0, 0, 0, 0, 0, 0, 128, 63, 0, 0, 0, 64, 0, 0, 64, 64, 0, 0, 128, 64, 0, 0,
            160, 64,
        ];
        Assert.Equal(expected, SafeTensorsWriter.WriteToBytes([F("attn0", SafeTensorDType.F32, [1, 1, 2, 3], [0f, 1f, 2f, 3f, 4f, 5f])]));

        // test_empty, without and with metadata.
        Assert.Equal(new byte[] { 8, 0, 0, 0, 0, 0, 0, 0, 123, 125, 32, 32, 32, 32, 32, 32 }, SafeTensorsWriter.WriteToBytes([]));
        expected =
        [
            40, 0, 0, 0, 0, 0, 0, 0, 123, 34, 95, 95, 109, 101, 116, 97, 100, 97, 116, 97, 95,
            95, 34, 58, 123, 34, 102, 114, 97, 109, 101, 119, 111, 114, 107, 34, 58, 34, 112,
            116, 34, 125, 125, 32, 32, 32, 32, 32,
        ];
        Assert.Equal(expected, SafeTensorsWriter.WriteToBytes([], new Dictionary<string, string> { ["framework"] = "pt" }));
    }

    [Fact]
    public void Writer_OrdersByDescendingDTypeThenName_AndEscapesLikeSerdeJson()
    {
        byte[] header = SafeTensorsWriter.BuildHeader(
        [
            F("a", SafeTensorDType.F16, [1], [1f]),
            F("c", SafeTensorDType.F32, [1], [1f]),
            new SafeTensorWriteEntry("z", SafeTensorDType.I64, [1], new long[] { 1 }),
            F("b", SafeTensorDType.F32, [1], [1f]),
            F("q\"\\\n\u0001é", SafeTensorDType.BF16, [1], [1f]),
        ]);
        string text = Encoding.UTF8.GetString(header).TrimEnd(' ');
        Assert.Equal(
            "{" + Entry("z", "I64", "1", 0, 8) + "," + Entry("b", "F32", "1", 8, 12) + "," + Entry("c", "F32", "1", 12, 16) + "," +
            Entry("q\\\"\\\\\\n\\u0001é", "BF16", "1", 16, 18) + "," + Entry("a", "F16", "1", 18, 20) + "}",
            text);
        Assert.Equal(0, header.Length % 8);
    }

    [Fact]
    public void Reader_AcceptsReferenceEncodedFiles()
    {
        // Unpadded header (60 bytes), as in the reference test_deserialization.
        byte[] bytes = Build("{\"test\":{\"dtype\":\"I32\",\"shape\":[2,2],\"data_offsets\":[0,16]}}", new byte[16]);
        Assert.Equal(60, BinaryPrimitives.ReadInt64LittleEndian(bytes));
        using (SafeTensorsFile file = SafeTensorsFile.FromBytes(bytes))
        {
            Assert.Equal(new[] { 0, 0, 0, 0 }, file.ReadInt32("test"));
            Assert.Empty(file.Metadata);
        }

        // Leading and trailing JSON whitespace, null metadata, pretty-printed JSON, unknown fields ignored.
        bytes = Build("\t\n{ \"__metadata__\" : null,\n  \"s\" : { \"shape\": [], \"dtype\": \"I32\", \"data_offsets\": [ 0 , 4 ], \"extra\": {\"x\": [1]} } }\r\n  ",
            [7, 0, 0, 0]);
        using (SafeTensorsFile file = SafeTensorsFile.FromBytes(bytes))
        {
            Assert.Equal(new[] { 7 }, file.ReadInt32("s"));
            Assert.Empty(file.Metadata);
        }

        // Zero-sized tensors share an offset; sub-byte F4 with an even count is accepted (raw only).
        bytes = Build("{" + Entry("z1", "I32", "2,0", 0, 0) + "," + Entry("f4", "F4", "1,2", 0, 1) + "," + Entry("z2", "F16", "0", 1, 1) + "}", [0x21]);
        using (SafeTensorsFile file = SafeTensorsFile.FromBytes(bytes))
        {
            Assert.Equal(3, file.Tensors.Count);
            Assert.Empty(file.ReadInt32("z1"));
            Assert.Equal(new byte[] { 0x21 }, file.ReadRaw("f4"));
            var ex = Assert.Throws<NotSupportedException>(() => file.ReadFloat32("f4"));
            Assert.Contains("'f4'", ex.Message);
            Assert.Contains("F4", ex.Message);
        }
    }

    // ------------------------------------------------------------------ lookup and conversion errors

    [Fact]
    public void Lookup_AndConversionErrors()
    {
        byte[] bytes = Build("{" + Entry("u", "U8", "2", 0, 2) + "," + Entry("big", "I64", "2", 2, 18) + "," + Entry("d", "F64", "1", 18, 26) + "}",
            [5, 250, .. BitConverter.GetBytes(1L), .. BitConverter.GetBytes(1L << 33), .. BitConverter.GetBytes(2.5)]);
        using SafeTensorsFile file = SafeTensorsFile.FromBytes(bytes, Source);

        Assert.True(file.Contains("u"));
        Assert.False(file.Contains("nope"));
        Assert.True(file.TryGet("big", out SafeTensorInfo? info));
        Assert.Equal(SafeTensorDType.I64, info.DType);
        Assert.Equal(2, info.DataBegin);
        Assert.Equal(18, info.DataEnd);
        Assert.False(file.TryGet("nope", out _));
        Assert.Equal(new[] { "u", "big", "d" }, file.Tensors.Select(t => t.Name));

        var missing = Assert.Throws<KeyNotFoundException>(() => file["nope"]);
        Assert.Contains("'nope'", missing.Message);
        Assert.Throws<KeyNotFoundException>(() => file.ReadFloat32("nope"));

        var unsupported = Assert.Throws<NotSupportedException>(() => file.ReadFloat32("d"));
        Assert.Contains("'d'", unsupported.Message);
        Assert.Contains("F64", unsupported.Message);
        Assert.Throws<NotSupportedException>(() => file.ReadInt64("d"));
        Assert.Equal(new byte[] { 0, 0, 0, 0, 0, 0, 4, 64 }, file.ReadRaw("d"));

        Assert.Equal(new long[] { 5, 250 }, file.ReadInt64("u"));
        Assert.Equal(new[] { 5, 250 }, file.ReadInt32("u"));
        Assert.Equal(new[] { 1L, 1L << 33 }, file.ReadInt64("big"));
        var range = Assert.Throws<SafeTensorsFormatException>(() => file.ReadInt32("big"));
        Assert.Contains("'big'", range.Message);
        Assert.Contains(Source, range.Message);
        Assert.Contains("element 1", range.Message);

        file.Dispose();
        Assert.Throws<ObjectDisposedException>(() => file.ReadRaw("u"));
        Assert.Throws<FileNotFoundException>(() => SafeTensorsFile.Open(Path.Combine(_dir, "missing.safetensors")));
    }

    [Fact]
    public void Writer_RejectsInvalidEntries()
    {
        Assert.Throws<ArgumentException>(() => F("x", SafeTensorDType.F32, [2, 2], [1f, 2f, 3f]));
        Assert.Throws<ArgumentException>(() => F("x", SafeTensorDType.F32, [-1], []));
        Assert.Throws<ArgumentException>(() => F("x", SafeTensorDType.I64, [1], [1f]));
        Assert.Throws<ArgumentException>(() => F("__metadata__", SafeTensorDType.F32, [1], [1f]));
        Assert.Throws<ArgumentException>(() => SafeTensorWriteEntry.FromRaw("x", SafeTensorDType.F16, [3], new byte[5]));
        Assert.Throws<ArgumentException>(() => SafeTensorsWriter.WriteToBytes([F("x", SafeTensorDType.F32, [1], [1f]), F("x", SafeTensorDType.F16, [1], [1f])]));
        Assert.Throws<ArgumentException>(() => SafeTensorsWriter.WriteToBytes([F("bad\ud800", SafeTensorDType.F32, [1], [1f])]));
        Assert.Throws<ArgumentException>(() => SafeTensorsWriter.WriteToBytes([new SafeTensorWriteEntry("x", SafeTensorDType.I32, [1], new long[] { 1L << 31 })]));
    }

    // ------------------------------------------------------------------ malformed headers

    public static IEnumerable<object?[]> MalformedCases()
    {
        string ok = Entry("w", "F32", "2", 0, 8);
        byte[] eight = new byte[8];

        // File-level problems: (case, bytes, tensor, field)
        yield return ["empty file", Array.Empty<byte>(), null, null];
        yield return ["7 bytes", new byte[7], null, null];
        yield return ["length > 100MB", Build("{" + ok + "}", eight, 100_000_001), null, null];
        yield return ["length = 2^64-1", Build("{" + ok + "}", eight, ulong.MaxValue), null, null];
        yield return ["length negative as signed", Build("{" + ok + "}", eight, 0x8000_0000_0000_0000), null, null];
        yield return ["length > file", Build("{" + ok + "}", eight, 60), null, null];
        yield return ["length 0", Build("", null, 0), null, null];
        yield return ["not an object", Build("[]"), null, null];
        yield return ["invalid utf8", Build([(byte)'{', (byte)'"', 0xFF, (byte)'"', (byte)':', (byte)'1', (byte)'}']), null, null];
        yield return ["truncated json", Build("{\"w\":{\"dtype\":\"F32\""), null, null];
        yield return ["trailing garbage", Build("{" + ok + "}x", eight), null, null];
        yield return ["nul padding", Build("{" + ok + "}\0\0", eight), null, null];
        yield return ["too deep", Build("{\"w\":" + new string('[', 100) + new string(']', 100) + "}"), null, null];
        yield return ["trailing data", Build("{" + ok + "}", new byte[12]), null, null];
        yield return ["metadata not object", Build("{\"__metadata__\":[1]," + ok + "}", eight), null, "__metadata__"];
        yield return ["metadata value not string", Build("{\"__metadata__\":{\"k\":1}," + ok + "}", eight), null, "__metadata__"];
        yield return ["metadata duplicate key", Build("{\"__metadata__\":{\"k\":\"a\",\"k\":\"b\"}," + ok + "}", eight), null, "__metadata__"];
        yield return ["metadata twice", Build("{\"__metadata__\":{},\"__metadata__\":{}," + ok + "}", eight), null, "__metadata__"];

        // Tensor-level problems.
        yield return ["entry not object", Build("{\"w\":5}"), "w", null];
        yield return ["duplicate name", Build("{" + ok + "," + ok + "}", eight), "w", null];
        yield return ["missing dtype", Build("{\"w\":{\"shape\":[2],\"data_offsets\":[0,8]}}", eight), "w", "dtype"];
        yield return ["missing shape", Build("{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}}", eight), "w", "shape"];
        yield return ["missing offsets", Build("{\"w\":{\"dtype\":\"F32\",\"shape\":[2]}}", eight), "w", "data_offsets"];
        yield return ["unknown dtype", Build("{" + Entry("w", "F33", "2", 0, 8) + "}", eight), "w", "dtype"];
        yield return ["lowercase dtype", Build("{" + Entry("w", "f32", "2", 0, 8) + "}", eight), "w", "dtype"];
        yield return ["dtype not string", Build("{\"w\":{\"dtype\":32,\"shape\":[2],\"data_offsets\":[0,8]}}", eight), "w", "dtype"];
        yield return ["duplicate field", Build("{\"w\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", eight), "w", "dtype"];
        yield return ["shape not array", Build("{\"w\":{\"dtype\":\"F32\",\"shape\":2,\"data_offsets\":[0,8]}}", eight), "w", "shape"];
        yield return ["shape negative", Build("{" + Entry("w", "F32", "-2", 0, 8) + "}", eight), "w", "shape"];
        yield return ["shape fraction", Build("{" + Entry("w", "F32", "2.0", 0, 8) + "}", eight), "w", "shape"];
        yield return ["shape string", Build("{" + Entry("w", "F32", "\"2\"", 0, 8) + "}", eight), "w", "shape"];
        yield return ["shape huge number", Build("{" + Entry("w", "F32", "99999999999999999999", 0, 8) + "}", eight), "w", "shape"];
        yield return ["element count overflow", Build("{" + Entry("w", "F32", "4294967296,4294967296", 0, 8) + "}", eight), "w", "shape"];
        yield return ["byte size overflow", Build("{" + Entry("w", "F32", "4611686018427387904", 0, 8) + "}", eight), "w", "shape"];
        yield return ["sub-byte misaligned", Build("{" + Entry("w", "F4", "3", 0, 2) + "}", [0, 0]), "w", "shape"];
        yield return ["offsets one number", Build("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8]}}", eight), "w", "data_offsets"];
        yield return ["offsets three numbers", Build("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8,8]}}", eight), "w", "data_offsets"];
        yield return ["offset negative", Build("{" + Entry("w", "F32", "2", -8, 0) + "}", eight), "w", "data_offsets"];
        yield return ["begin > end", Build("{" + Entry("w", "F32", "0", 8, 0) + "}", eight), "w", "data_offsets"];
        yield return ["end past buffer", Build("{" + Entry("w", "F32", "4", 0, 16) + "}", eight), "w", "data_offsets"];
        yield return ["huge end past buffer", Build("{" + Entry("w", "F32", "1000000000000", 0, 4000000000000) + "}", eight), "w", "data_offsets"];
        yield return ["size mismatch", Build("{" + Entry("w", "F32", "2", 0, 4) + "}", [0, 0, 0, 0]), "w", "data_offsets"];
        yield return ["overlap", Build("{" + Entry("a", "F32", "2", 0, 8) + "," + Entry("b", "F32", "2", 4, 12) + "}", new byte[12]), "b", "data_offsets"];
        yield return ["hole", Build("{" + Entry("a", "F32", "1", 0, 4) + "," + Entry("b", "F32", "1", 8, 12) + "}", new byte[12]), "b", "data_offsets"];
        yield return ["not starting at 0", Build("{" + Entry("a", "F32", "1", 4, 8) + "}", eight), "a", "data_offsets"];
        yield return ["lone surrogate name", Build("{" + Entry("\\ud800", "F32", "2", 0, 8) + "}", eight), null, null];
    }

    [Theory]
    [MemberData(nameof(MalformedCases))]
    public void MalformedInput_IsRejectedWithFileAndTensorInMessage(string description, byte[] bytes, string? tensor, string? field)
    {
        _ = description;
        AssertRejected(bytes, tensor, field);
    }

    [Fact]
    public void MalformedFiles_OnDiskAndInStreams_AreRejectedTheSameWay()
    {
        byte[] bytes = Build("{" + Entry("a", "F32", "1", 0, 4) + "," + Entry("b", "F32", "1", 8, 12) + "}", new byte[12]);
        string path = Path.Combine(_dir, "hole.safetensors");
        File.WriteAllBytes(path, bytes);
        var ex = Assert.Throws<SafeTensorsFormatException>(() => SafeTensorsFile.Open(path));
        Assert.Contains(path, ex.Message);
        Assert.Contains("'b'", ex.Message);

        ex = Assert.Throws<SafeTensorsFormatException>(() => SafeTensorsFile.FromStream(new ForwardOnlyStream(bytes), "pipe"));
        Assert.Contains("pipe", ex.Message);
        Assert.Contains("'b'", ex.Message);

        // A non-seekable stream that ends early or runs on is rejected without buffering what the header claims.
        byte[] good = SafeTensorsWriter.WriteToBytes([F("w", SafeTensorDType.F32, [2], [1f, 2f])]);
        Assert.Throws<SafeTensorsFormatException>(() => SafeTensorsFile.FromStream(new ForwardOnlyStream(good[..^1])));
        Assert.Throws<SafeTensorsFormatException>(() => SafeTensorsFile.FromStream(new ForwardOnlyStream([.. good, 0])));
        Assert.Throws<SafeTensorsFormatException>(() => SafeTensorsFile.FromStream(new ForwardOnlyStream(Build("{}", null, 99_999_999))));
    }

    // ------------------------------------------------------------------ fuzzing

    private static List<byte[]> FuzzSeeds() =>
    [
        SafeTensorsWriter.WriteToBytes(RoundTripEntries(), RoundTripMetadata),
        SafeTensorsWriter.WriteToBytes(
        [
            F("a", SafeTensorDType.F16, [3], [1f, 2f, 3f]),
            F("b", SafeTensorDType.BF16, [2, 1], [1f, 2f]),
            new SafeTensorWriteEntry("c", SafeTensorDType.I32, [2], new int[] { 1, -1 }),
            SafeTensorWriteEntry.FromRaw("d", SafeTensorDType.U8, [4], new byte[] { 1, 2, 3, 4 }),
            SafeTensorWriteEntry.FromRaw("e", SafeTensorDType.I16, [1], new byte[] { 1, 0x80 }),
            SafeTensorWriteEntry.FromRaw("f", SafeTensorDType.U64, [1], new byte[] { 0, 0, 0, 0, 0, 0, 0, 0x90 }),
            SafeTensorWriteEntry.FromRaw("g", SafeTensorDType.F64, [1], new byte[8]),
        ]),
        Build("{\"test\":{\"dtype\":\"I32\",\"shape\":[2,2],\"data_offsets\":[0,16]}}", new byte[16]),
        Build("{" + Entry("x", "I64", "1", 0, 8) + "," + Entry("y", "F4", "2", 8, 9) + "," + Entry("z", "F32", "0,5", 9, 9) + "}", new byte[9]),
    ];

    /// <summary>Opens and reads every tensor with every applicable reader; throws whatever the reader throws.</summary>
    private static void OpenAndReadAll(Func<SafeTensorsFile> open)
    {
        using SafeTensorsFile file = open();
        long covered = 0;
        foreach (SafeTensorInfo info in file.Tensors)
        {
            Assert.Equal(covered, info.DataBegin);
            covered = info.DataEnd;
            Assert.Equal(info.ByteLength, file.ReadRaw(info.Name).Length);
            switch (info.DType)
            {
                case SafeTensorDType.F32 or SafeTensorDType.F16 or SafeTensorDType.BF16:
                    Assert.Equal(info.ElementCount, file.ReadFloat32(info.Name).Length);
                    break;
                case SafeTensorDType.I64 or SafeTensorDType.I32 or SafeTensorDType.I16 or SafeTensorDType.I8
                    or SafeTensorDType.U8 or SafeTensorDType.U16 or SafeTensorDType.U32 or SafeTensorDType.U64:
                    try
                    {
                        Assert.Equal(info.ElementCount, file.ReadInt64(info.Name).Length);
                    }
                    catch (SafeTensorsFormatException) when (info.DType is SafeTensorDType.U64)
                    {
                        // A value above long.MaxValue is a legitimate outcome for U64.
                    }
                    try
                    {
                        Assert.Equal(info.ElementCount, file.ReadInt32(info.Name).Length);
                    }
                    catch (SafeTensorsFormatException) when (info.DType is SafeTensorDType.I64 or SafeTensorDType.U32 or SafeTensorDType.U64)
                    {
                        // A value that does not fit in an int is a legitimate outcome for wide integers.
                    }
                    break;
            }
        }
        Assert.Equal(file.DataLength, covered);
    }

    private const string JsonChars = "{}[]\",:-0123456789e. \\";

    private static byte[] Mutate(byte[] seed, Random random)
    {
        ulong headerLength = BinaryPrimitives.ReadUInt64LittleEndian(seed);
        var header = new List<byte>(seed[8..(8 + (int)headerLength)]);
        var data = new List<byte>(seed[(8 + (int)headerLength)..]);
        bool fixLength = random.Next(4) != 0;
        ulong? lengthOverride = null;
        byte[]? whole = null;

        int mutations = 1 + random.Next(3);
        for (int m = 0; m < mutations; m++)
        {
            switch (random.Next(12))
            {
                case 0: // flip a bit anywhere in the header
                    if (header.Count > 0)
                    {
                        int at = random.Next(header.Count);
                        header[at] ^= (byte)(1 << random.Next(8));
                    }
                    break;
                case 1: // flip a bit in the data
                    if (data.Count > 0)
                    {
                        int at = random.Next(data.Count);
                        data[at] ^= (byte)(1 << random.Next(8));
                    }
                    break;
                case 2: // overwrite a few header bytes with random or JSON-significant bytes
                    for (int k = random.Next(1, 4); k > 0 && header.Count > 0; k--)
                    {
                        header[random.Next(header.Count)] = random.Next(2) == 0 ? (byte)random.Next(256) : (byte)JsonChars[random.Next(JsonChars.Length)];
                    }
                    break;
                case 3: // change a number in the header
                    {
                        int[] digits = Enumerable.Range(0, header.Count).Where(i => header[i] is >= (byte)'0' and <= (byte)'9').ToArray();
                        if (digits.Length > 0)
                        {
                            int at = digits[random.Next(digits.Length)];
                            string replacement = random.Next(6) switch
                            {
                                0 => random.Next(10).ToString(),
                                1 => "-1",
                                2 => "18446744073709551615",
                                3 => "9223372036854775807",
                                4 => random.NextInt64().ToString(),
                                _ => "1.5",
                            };
                            header.RemoveAt(at);
                            header.InsertRange(at, Encoding.ASCII.GetBytes(replacement));
                        }
                    }
                    break;
                case 4: // delete a run of header characters
                    if (header.Count > 0)
                    {
                        int at = random.Next(header.Count);
                        header.RemoveRange(at, Math.Min(header.Count - at, 1 + random.Next(4)));
                    }
                    break;
                case 5: // insert a JSON-significant character
                    header.Insert(random.Next(header.Count + 1), (byte)JsonChars[random.Next(JsonChars.Length)]);
                    break;
                case 6: // swap a dtype name
                    {
                        string text = Encoding.UTF8.GetString(header.ToArray());
                        string[] dtypes = ["F32", "F16", "BF16", "I64", "I32", "U8", "BOOL", "F4", "F64", "U64", "I8", "C64", "F6_E2M3"];
                        string from = dtypes[random.Next(dtypes.Length)];
                        int at = text.IndexOf("\"" + from + "\"", StringComparison.Ordinal);
                        if (at >= 0)
                        {
                            text = text[..(at + 1)] + dtypes[random.Next(dtypes.Length)] + text[(at + 1 + from.Length)..];
                            header = new List<byte>(Encoding.UTF8.GetBytes(text));
                        }
                    }
                    break;
                case 7: // duplicate a slice of the header (duplicate keys, nested garbage)
                    if (header.Count > 2)
                    {
                        int start = random.Next(header.Count);
                        int length = Math.Min(header.Count - start, 1 + random.Next(40));
                        header.InsertRange(random.Next(header.Count), header.GetRange(start, length));
                    }
                    break;
                case 8: // truncate or extend the data
                    if (random.Next(2) == 0 && data.Count > 0)
                    {
                        int at = random.Next(data.Count);
                        data.RemoveRange(at, data.Count - at);
                    }
                    else
                    {
                        data.AddRange(new byte[1 + random.Next(9)]);
                    }
                    break;
                case 9: // bogus header length
                    lengthOverride = random.Next(7) switch
                    {
                        0 => ulong.MaxValue,
                        1 => 0x8000_0000_0000_0000UL,
                        2 => 100_000_001UL,
                        3 => (ulong)random.NextInt64(),
                        4 => 0,
                        5 => (ulong)Math.Max(0, header.Count + random.Next(-9, 10)),
                        _ => 99_999_999UL,
                    };
                    break;
                case 10: // truncate the whole file at a random point
                    whole = [];
                    break;
                default: // random byte overwrite anywhere (header or body)
                    whole = null;
                    if (data.Count > 0 && random.Next(2) == 0)
                    {
                        data[random.Next(data.Count)] = (byte)random.Next(256);
                    }
                    else if (header.Count > 0)
                    {
                        header[random.Next(header.Count)] = (byte)random.Next(256);
                    }
                    break;
            }
        }

        ulong declared = lengthOverride ?? (fixLength ? (ulong)header.Count : headerLength);
        var result = new byte[8 + header.Count + data.Count];
        BinaryPrimitives.WriteUInt64LittleEndian(result, declared);
        header.CopyTo(result, 8);
        data.CopyTo(result, 8 + header.Count);
        if (whole is not null)
        {
            result = result[..random.Next(result.Length + 1)];
        }
        return result;
    }

    [Fact]
    public void Fuzz_MutatedFiles_EitherReadOrThrowFormatException()
    {
        var random = new Random(20240607);
        List<byte[]> seeds = FuzzSeeds();
        foreach (byte[] seed in seeds)
        {
            OpenAndReadAll(() => SafeTensorsFile.FromBytes(seed, "seed")); // seeds are valid
        }

        var stopwatch = Stopwatch.StartNew();
        const int Cases = 3000;
        int accepted = 0, rejected = 0;
        var failures = new List<string>();
        var reasons = new Dictionary<string, int>();
        for (int i = 0; i < Cases; i++)
        {
            byte[] mutated = Mutate(seeds[random.Next(seeds.Count)], random);
            string name = $"fuzz#{i}";
            Func<SafeTensorsFile> open = (i % 100) switch
            {
                0 => () => SafeTensorsFile.FromStream(new ForwardOnlyStream(mutated), name),
                1 => () => SafeTensorsFile.FromStream(new MemoryStream(mutated), name),
                _ => () => SafeTensorsFile.FromBytes(mutated, name),
            };
            try
            {
                OpenAndReadAll(open);
                accepted++;
            }
            catch (SafeTensorsFormatException ex)
            {
                rejected++;
                string reason = (ex.Field ?? "-") + ": " + string.Concat(ex.Message.Split(": ", 2)[^1].TakeWhile(c => !char.IsDigit(c) && c != '\'' && c != '(')).Trim();
                reasons[reason] = reasons.GetValueOrDefault(reason) + 1;
                if (!ex.Message.Contains(name, StringComparison.Ordinal))
                {
                    failures.Add($"{name}: message does not name the source: {ex.Message}");
                }
            }
            catch (Exception ex)
            {
                failures.Add($"{name}: {ex.GetType().Name}: {ex.Message} [{Convert.ToBase64String(mutated)}]");
            }
        }
        stopwatch.Stop();
        _output.WriteLine($"{Cases} mutated files: {accepted} read fine, {rejected} rejected, {stopwatch.ElapsedMilliseconds} ms");
        foreach (KeyValuePair<string, int> reason in reasons.OrderByDescending(r => r.Value))
        {
            _output.WriteLine($"  {reason.Value,5} x {reason.Key}");
        }

        Assert.True(failures.Count == 0, string.Join("\n", failures.Take(10)));
        Assert.Equal(Cases, accepted + rejected);
        Assert.True(rejected > Cases / 2, $"only {rejected} rejected");
        Assert.True(accepted > 0, "no mutation survived; the fuzzer is too blunt");
        Assert.True(stopwatch.Elapsed < TimeSpan.FromSeconds(10), $"fuzzing took {stopwatch.Elapsed}");
    }

    [Fact]
    public void Fuzz_MutatedFilesOnDisk_EitherReadOrThrowFormatException()
    {
        var random = new Random(77);
        List<byte[]> seeds = FuzzSeeds();
        for (int i = 0; i < 25; i++)
        {
            byte[] mutated = Mutate(seeds[random.Next(seeds.Count)], random);
            string path = Path.Combine(_dir, $"fuzz{i}.safetensors");
            File.WriteAllBytes(path, mutated);
            try
            {
                OpenAndReadAll(() => SafeTensorsFile.Open(path));
            }
            catch (SafeTensorsFormatException ex)
            {
                Assert.Contains(path, ex.Message);
            }
        }
    }

    // ------------------------------------------------------------------ atomic writes

    private string[] OtherFilesIn(string keep) =>
        Directory.GetFiles(_dir).Where(f => Path.GetFileName(f) != Path.GetFileName(keep)).ToArray();

    [Fact]
    public void AtomicWrite_EnumerationThrowingMidway_LeavesOldFileAndNoTemp()
    {
        string path = Path.Combine(_dir, "model.safetensors");
        SafeTensorsWriter.Write(path, [F("old", SafeTensorDType.F32, [1], [1f])]);
        byte[] before = File.ReadAllBytes(path);

        static IEnumerable<SafeTensorWriteEntry> Failing()
        {
            yield return new SafeTensorWriteEntry("a", SafeTensorDType.F32, [2], new[] { 1f, 2f });
            yield return new SafeTensorWriteEntry("b", SafeTensorDType.F16, [1], new[] { 3f });
            throw new InvalidOperationException("producer failed");
        }

        var ex = Assert.Throws<InvalidOperationException>(() => SafeTensorsWriter.Write(path, Failing()));
        Assert.Equal("producer failed", ex.Message);
        Assert.Equal(before, File.ReadAllBytes(path));
        Assert.Empty(OtherFilesIn(path));
    }

    [Fact]
    public void AtomicWrite_FailureWhileWritingData_LeavesOldFileAndNoTemp()
    {
        string path = Path.Combine(_dir, "model.safetensors");
        SafeTensorsWriter.Write(path, [F("old", SafeTensorDType.F32, [1], [1f])]);
        byte[] before = File.ReadAllBytes(path);

        // The out-of-range value is only found while the data is being converted, after the temp file exists.
        var big = new long[40_000];
        big[^1] = 1L << 40;
        Assert.Throws<ArgumentException>(() => SafeTensorsWriter.Write(path,
        [
            F("first", SafeTensorDType.F32, [3], [1f, 2f, 3f]),
            new SafeTensorWriteEntry("ids", SafeTensorDType.I32, [big.Length], big),
        ]));
        Assert.Equal(before, File.ReadAllBytes(path));
        Assert.Empty(OtherFilesIn(path));

        // A successful write replaces the file and leaves nothing else behind.
        SafeTensorsWriter.Write(path, [F("new", SafeTensorDType.F16, [2], [5f, 6f])]);
        using (SafeTensorsFile file = SafeTensorsFile.Open(path))
        {
            Assert.Equal(new[] { 5f, 6f }, file.ReadFloat32("new"));
            Assert.False(file.Contains("old"));
        }
        Assert.Empty(OtherFilesIn(path));
    }

    /// <summary>A read-only stream that cannot seek (like a pipe or network stream), returning short reads.</summary>
    private sealed class ForwardOnlyStream(byte[] data) : Stream
    {
        private int _position;

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => throw new NotSupportedException();

        public override long Position
        {
            get => throw new NotSupportedException();
            set => throw new NotSupportedException();
        }

        public override int Read(byte[] buffer, int offset, int count)
        {
            int n = Math.Min(Math.Min(count, 1000), data.Length - _position);
            Array.Copy(data, _position, buffer, offset, n);
            _position += n;
            return n;
        }

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}

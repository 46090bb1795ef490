using System.Buffers.Binary;
using System.Diagnostics;
using System.IO.Compression;
using System.Numerics;
using System.Text;
using System.Text.Json;
using MlNetFineTune.Models.Formats;
using MlNetFineTune.Tensors;
using MlNetFineTune.Tensors.IO;
using Xunit;
using Xunit.Abstractions;

namespace MlNetFineTune.Models.Tests;

/// <summary>
/// TorchCheckpoint against fixtures written by tests/golden/generate_torch_checkpoints.py (torch 1.13): each valid
/// checkpoint has a <c>.expected.safetensors</c> sidecar with every tensor under its flattened name, so names,
/// order, shapes, dtypes and every value are compared exactly.
/// </summary>
public sealed class TorchCheckpointTests(ITestOutputHelper output)
{
    private const string Marker = "/tmp/mlnetfinetune_torch_pwned";

    private static string Fixture(string name) => Path.Combine(AppContext.BaseDirectory, "fixtures", "torch", name);

    // ------------------------------------------------------------------ expected values

    private sealed record Expected(Dictionary<string, Tensor> Tensors, List<string> Order, Dictionary<string, string> TorchDTypes);

    private static Expected LoadExpected(string name)
    {
        var tensors = SafeTensors.Load(Fixture(name + ".expected.safetensors"), out var meta);
        var order = JsonSerializer.Deserialize<List<string>>(meta["order"])!;
        var dtypes = JsonSerializer.Deserialize<Dictionary<string, string>>(meta["torch_dtypes"])!;
        return new Expected(tensors, order, dtypes);
    }

    private static readonly Dictionary<string, TorchDType> TorchDTypeNames = new()
    {
        ["float32"] = TorchDType.Float32, ["float64"] = TorchDType.Float64, ["float16"] = TorchDType.Float16,
        ["bfloat16"] = TorchDType.BFloat16, ["int64"] = TorchDType.Int64, ["int32"] = TorchDType.Int32,
        ["int16"] = TorchDType.Int16, ["int8"] = TorchDType.Int8, ["uint8"] = TorchDType.UInt8, ["bool"] = TorchDType.Bool,
    };

    private static void AssertSameTensor(Tensor expected, Tensor actual, string name)
    {
        Assert.True(expected.Shape.SequenceEqual(actual.Shape),
            $"{name}: shape [{string.Join(",", actual.Shape)}], expected [{string.Join(",", expected.Shape)}]");
        Assert.True(expected.DType == actual.DType, $"{name}: dtype {actual.DType}, expected {expected.DType}");
        if (expected.DType == DType.Float32)
        {
            var e = expected.ToArray();
            var a = actual.ToArray();
            for (int i = 0; i < e.Length; i++)
            {
                bool same = float.IsNaN(e[i]) ? float.IsNaN(a[i]) : BitConverter.SingleToInt32Bits(e[i]) == BitConverter.SingleToInt32Bits(a[i]);
                Assert.True(same, $"{name}[{i}] = {a[i]:R}, expected {e[i]:R}");
            }
        }
        else
        {
            Assert.Equal(expected.ToInt64Array(), actual.ToInt64Array());
        }
    }

    private static void AssertMatchesExpected(IReadOnlyList<TorchTensorEntry> entries, Expected expected)
    {
        Assert.Equal(expected.Order, entries.Select(e => e.Name).ToList());
        foreach (var e in entries)
        {
            Assert.Equal(e.Name, e.Tensor.Name);
            Assert.Equal(TorchDTypeNames[expected.TorchDTypes[e.Name]], e.Value.SourceDType);
            Assert.Equal(e.Value.Size.Select(s => (int)s), e.Tensor.Shape);
            AssertSameTensor(expected.Tensors[e.Name], e.Tensor, e.Name);
        }
    }

    public static TheoryData<string, string> ValidFixtures => new()
    {
        { "tiny_state_dict.pt", "tiny_state_dict" },
        { "tiny_state_dict_proto4.pt", "tiny_state_dict" },
        { "tiny_deflated.pt", "tiny_state_dict" },
        { "tiny_big_endian.pt", "tiny_state_dict" },
        { "dtypes.pt", "dtypes" },
        { "views.pt", "views" },
        { "wrapped.pt", "wrapped" },
        { "misc.pt", "misc" },
        { "resnet_tiny.pth", "resnet_tiny" },
        { "legacy_format.pt", "legacy_format" },
    };

    [Theory]
    [MemberData(nameof(ValidFixtures))]
    public void Fixture_ReproducesNamesShapesDTypesAndValues(string file, string expectedName)
    {
        var expected = LoadExpected(expectedName);
        AssertMatchesExpected(TorchCheckpoint.LoadEntries(Fixture(file)), expected);

        var dict = TorchCheckpoint.Load(Fixture(file));
        Assert.Equal(expected.Order, dict.Keys.ToList());
        foreach (var name in expected.Order) AssertSameTensor(expected.Tensors[name], dict[name], name);
    }

    [Fact]
    public void Load_FromStream_MatchesFile()
    {
        var expected = LoadExpected("tiny_state_dict");
        using var ms = new MemoryStream(File.ReadAllBytes(Fixture("tiny_state_dict.pt")));
        AssertMatchesExpected(TorchCheckpoint.LoadEntries(ms, "tiny_state_dict.pt"), expected);
    }

    [Fact]
    public void TinyStateDict_HasSequentialNamesAndMetadata()
    {
        var sd = TorchCheckpoint.Load(Fixture("tiny_state_dict.pt"));
        Assert.Equal(new[] { "0.weight", "1.weight", "1.bias", "2.weight", "2.bias", "3.weight", "3.bias" }, sd.Keys);
        Assert.Equal(new[] { 10, 4 }, sd["0.weight"].Shape);
        Assert.Equal(new[] { 6, 4 }, sd["1.weight"].Shape);

        var root = Assert.IsType<PickleDict>(TorchCheckpoint.LoadObject(Fixture("tiny_state_dict.pt")));
        Assert.True(root.IsOrderedDict);
        var metadata = Assert.IsType<PickleDict>(root.Attributes["_metadata"]);
        Assert.Equal(1L, Assert.IsType<PickleDict>(metadata["0"])["version"]);
    }

    [Fact]
    public void Dtypes_AreConvertedAsDocumented()
    {
        var entries = TorchCheckpoint.LoadEntries(Fixture("dtypes.pt")).ToDictionary(e => e.Name);
        Assert.Equal(DType.Float32, entries["f16"].Tensor.DType);
        Assert.Equal(DType.Float32, entries["bf16"].Tensor.DType);
        Assert.Equal(DType.Float32, entries["f64"].Tensor.DType);
        Assert.Equal(DType.Int64, entries["position_ids"].Tensor.DType);
        Assert.Equal(DType.Int32, entries["mask"].Tensor.DType);
        Assert.Equal(DType.Int32, entries["u8"].Tensor.DType);
        Assert.Equal(new long[] { 0, 255, 128, 7 }, entries["u8"].Tensor.ToInt64Array());
        Assert.Equal(new long[] { 1, 0, 1, 0, 0, 1 }, entries["mask"].Tensor.ToInt64Array());
        Assert.Equal(new long[] { long.MinValue, long.MaxValue, -1, 0 }, entries["i64_extremes"].Tensor.ToInt64Array());
        Assert.Equal(float.PositiveInfinity, entries["f16"].Tensor.ToArray()[0]);
        Assert.Equal(0.1f, entries["f64"].Tensor.ToArray()[0]);

        var nbt = entries["num_batches_tracked"].Tensor;
        Assert.Equal(0, nbt.Rank);
        Assert.Equal(DType.Int64, nbt.DType);
        Assert.Equal(42L, nbt.ToInt64Array().Single());
        Assert.Equal(0, entries["scalar_f32"].Tensor.Rank);
        Assert.Equal(2.5f, entries["scalar_f32"].Tensor.Item());
        Assert.Equal(new[] { 0, 3 }, entries["empty"].Tensor.Shape);
    }

    [Fact]
    public void Views_KeepSavedGeometryAndGiveIndependentDenseTensors()
    {
        var e = TorchCheckpoint.LoadEntries(Fixture("views.pt")).ToDictionary(x => x.Name);
        Assert.Equal(new long[] { 1, 5 }, e["transposed"].Value.Stride);
        Assert.Equal(new long[] { 0, 1 }, e["expanded"].Value.Stride);
        Assert.Equal(new long[] { 3 }, e["every_third"].Value.Stride);
        Assert.Equal(2, e["shared_a"].Value.StorageOffset);
        Assert.Equal(10, e["shared_b"].Value.StorageOffset);
        Assert.Equal(e["shared_a"].Value.Storage.Key, e["shared_b"].Value.Storage.Key);
        Assert.Equal(e["shared_a"].Value.Storage.Key, e["full_base"].Value.Storage.Key);
        foreach (var x in e.Values) Assert.True(x.Tensor.IsContiguous, x.Name);

        // base = arange(20) * 0.5 - 3; shared_a = base[2:8]
        Assert.Equal(new[] { -2f, -1.5f, -1f, -0.5f, 0f, 0.5f }, e["shared_a"].Tensor.ToArray());
        e["shared_a"].Tensor.AsSpan()[0] = 123f; // tensors sharing a saved storage do not alias after loading
        Assert.Equal(-2f, e["full_base"].Tensor.ToArray()[2]);
    }

    [Fact]
    public void Wrapped_FlattensWithPrefixes_OrPicksTheInnerDict()
    {
        var all = TorchCheckpoint.Load(Fixture("wrapped.pt"));
        Assert.Contains("state_dict.0.weight", all.Keys);
        Assert.Contains("optimizer.state.0.momentum_buffer", all.Keys);
        Assert.DoesNotContain(all.Keys, k => k.StartsWith("epoch", StringComparison.Ordinal));

        var inner = TorchCheckpoint.Load(Fixture("wrapped.pt"), new TorchLoadOptions { StateDictKey = "state_dict" });
        var expected = LoadExpected("wrapped");
        var names = expected.Order.Where(n => n.StartsWith("state_dict.", StringComparison.Ordinal)).ToList();
        Assert.Equal(names.Select(n => n["state_dict.".Length..]), inner.Keys);
        foreach (var n in names) AssertSameTensor(expected.Tensors[n], inner[n["state_dict.".Length..]], n);

        var ex = Assert.Throws<TorchCheckpointFormatException>(() =>
            TorchCheckpoint.Load(Fixture("wrapped.pt"), new TorchLoadOptions { StateDictKey = "model" }));
        AssertMessage(ex, "state_dict");
        AssertMessage(ex, "wrapped.pt");
    }

    [Fact]
    public void ResnetLike_HasTorchvisionNames()
    {
        var sd = TorchCheckpoint.Load(Fixture("resnet_tiny.pth"));
        foreach (var name in new[] { "conv1.weight", "bn1.running_mean", "bn1.running_var", "layer1.0.conv1.weight",
                     "layer1.0.bn2.bias", "layer2.0.downsample.0.weight", "layer2.0.downsample.1.running_var", "fc.weight", "fc.bias" })
            Assert.Contains(name, sd.Keys);
        Assert.Equal(new[] { 10, 8 }, sd["fc.weight"].Shape);
        Assert.Equal(new[] { 4, 3, 7, 7 }, sd["conv1.weight"].Shape);
        var nbt = sd["bn1.num_batches_tracked"];
        Assert.Equal(DType.Int64, nbt.DType);
        Assert.Equal(0, nbt.Rank);
        Assert.Equal(1L, nbt.ToInt64Array().Single());
    }

    [Fact]
    public void LoadObject_ExposesPlainValues()
    {
        var root = Assert.IsType<PickleDict>(TorchCheckpoint.LoadObject(Fixture("misc.pt")));
        var param = Assert.IsType<TorchTensorValue>(root["param"]);
        Assert.True(param.IsParameter);
        Assert.True(param.RequiresGrad);
        Assert.NotNull(param.Tensor);
        Assert.Equal(new[] { 2, 2 }, param.Tensor!.Shape);
        Assert.Equal(new object?[] { 2L, 3L }, Assert.IsType<PickleTuple>(root["size"]).ToArray());
        Assert.Equal(new byte[] { 0, 1, (byte)'a', (byte)'b', (byte)'c', 0xFF }, Assert.IsType<byte[]>(root["blob"]));
        Assert.Equal(new object?[] { 1L, 2L, 3L }, Assert.IsType<PickleSet>(root["tags"]).OrderBy(x => (long)x!).ToArray());
        Assert.True(Assert.IsType<PickleSet>(root["frozen"]).IsFrozen);
        Assert.Equal(BigInteger.Pow(2, 70), root["big"]);
        Assert.Equal(-123456789012L, root["neg"]);
        Assert.Equal(0.25, root["ratio"]);
        Assert.Null(root["nothing"]);
        Assert.Equal(true, root["flag"]);
        Assert.Equal("h\u00e9llo \u2603", root["text"]);
        var intKeys = Assert.IsType<PickleDict>(root["int_keys"]);
        Assert.True(intKeys.ContainsKey(0L));
        Assert.IsType<TorchTensorValue>(intKeys[1L]);
    }

    [Fact]
    public void BareTensor_IsNamedEmptyString()
    {
        var sd = TorchCheckpoint.Load(Fixture("bare_tensor.pt"));
        var t = Assert.Single(sd);
        Assert.Equal("", t.Key);
        Assert.Equal(new[] { 2, 3 }, t.Value.Shape);
        Assert.Equal(new[] { 0f, 1.5f, 3f, 4.5f, 6f, 7.5f }, t.Value.ToArray());
    }

    // ------------------------------------------------------------------ security

    [Theory]
    [InlineData("malicious_os_system.pt", "os.system")]
    [InlineData("malicious_posix_system.pt", "posix.system")]
    [InlineData("malicious_eval.pt", "builtins.eval")]
    public void MaliciousPickle_IsRefusedAtTheGlobal_AndNothingRuns(string file, string global)
    {
        if (File.Exists(Marker)) File.Delete(Marker);
        foreach (Func<object?> load in new Func<object?>[]
                 {
                     () => TorchCheckpoint.Load(Fixture(file)),
                     () => TorchCheckpoint.LoadEntries(Fixture(file)),
                     () => TorchCheckpoint.LoadObject(Fixture(file)),
                 })
        {
            var ex = Assert.Throws<UnsafePickleException>(load);
            Assert.Equal(global, ex.GlobalName);
            AssertMessage(ex, $"'{global}'");
            Assert.Contains(file, ex.Message);
            Assert.EndsWith("/data.pkl", ex.Entry);
            Assert.NotNull(ex.Offset);
        }
        Assert.False(File.Exists(Marker));
    }

    [Fact]
    public void MaliciousPickle_OffsetPointsAtTheGlobalOpcode()
    {
        byte[] pkl = ReadZipEntry(File.ReadAllBytes(Fixture("malicious_os_system.pt")), "malicious_os_system/data.pkl");
        int at = pkl.AsSpan().IndexOf("cos\nsystem\n"u8);
        Assert.True(at > 0);
        var ex = Assert.Throws<UnsafePickleException>(() => TorchCheckpoint.Load(Fixture("malicious_os_system.pt")));
        Assert.Equal(at, ex.Offset);
        AssertMessage(ex, $"offset {at} (opcode GLOBAL)");
    }

    [Theory]
    [InlineData("subprocess", "Popen")]
    [InlineData("__builtin__", "exec")]
    [InlineData("builtins", "getattr")]
    [InlineData("nt", "system")]
    [InlineData("torch", "load")]
    [InlineData("torch._utils", "_rebuild_device_tensor_from_numpy")]
    [InlineData("numpy.core.multiarray", "_reconstruct")]
    [InlineData("collections", "OrderedDictX")]
    public void AnyOtherGlobal_IsRefused(string module, string name)
    {
        var global = new PickleWriter().Proto(2).Global(module, name).Str("x").Tuple1().Reduce().Stop().ToArray();
        var ex = Assert.Throws<UnsafePickleException>(() => LoadZip(MakeZip("archive", global)));
        Assert.Equal($"{module}.{name}", ex.GlobalName);
        Assert.Equal(2, ex.Offset);

        var stackGlobal = new PickleWriter().Proto(4).Str(module).Str(name).Op(0x93).Str("x").Tuple1().Reduce().Stop().ToArray();
        ex = Assert.Throws<UnsafePickleException>(() => LoadZip(MakeZip("archive", stackGlobal)));
        Assert.Equal($"{module}.{name}", ex.GlobalName);
    }

    [Fact]
    public void InstAndExtensionOpcodes_AreRefused()
    {
        var inst = new PickleWriter().Proto(2).Mark().Str("touch x").Raw("ios\nsystem\n"u8).Stop().ToArray();
        Assert.Equal("os.system", Assert.Throws<UnsafePickleException>(() => LoadZip(MakeZip("a", inst))).GlobalName);
        var ext = new PickleWriter().Proto(2).Op(0x82).Raw([7]).Stop().ToArray();
        Assert.Contains("extension code 7", Assert.Throws<UnsafePickleException>(() => LoadZip(MakeZip("a", ext))).GlobalName);
    }

    [Theory]
    [InlineData("torch.nn.parameter", "Parameter", true)]
    [InlineData("torch._tensor", "Tensor", false)]
    public void RebuildFromTypeV2_IsInterpreted(string typeModule, string typeName, bool isParameter)
    {
        var w = new PickleWriter().Proto(2).Op('}').Str("w").Global("torch._tensor", "_rebuild_from_type_v2")
            .Mark().Global("torch._utils", "_rebuild_tensor_v2").Global(typeModule, typeName);
        RebuildArgs(w, "HalfStorage", "0", 2, 0, [2], [1]).Op('}').Op('t').Reduce().Op('s').Stop();
        var zip = MakeZip("a", w.ToArray(), ("0", [0x00, 0x3C, 0x00, 0xC0])); // float16 1.0, -2.0
        var entry = Assert.Single(TorchCheckpoint.LoadEntries(new MemoryStream(zip), "typed.pt"));
        Assert.Equal(isParameter, entry.Value.IsParameter);
        Assert.Equal(TorchDType.Float16, entry.Value.SourceDType);
        Assert.Equal(new[] { 1f, -2f }, entry.Tensor.ToArray());

        // the type must be a tensor type; the function a tensor rebuild function
        w = new PickleWriter().Proto(2).Op('}').Str("w").Global("torch._tensor", "_rebuild_from_type_v2")
            .Mark().Global("torch._utils", "_rebuild_tensor_v2").Global("collections", "OrderedDict");
        RebuildArgs(w, "HalfStorage", "0", 2, 0, [2], [1]).Op('}').Op('t').Reduce().Op('s').Stop();
        AssertMessage(Assert.Throws<TorchCheckpointFormatException>(() => LoadZip(MakeZip("a", w.ToArray(), ("0", new byte[4])))), "torch.Tensor or torch.nn.Parameter");
    }

    [Fact]
    public void ZipSlipFixture_IsRefused_AndNothingIsWritten()
    {
        string evil = Path.GetFullPath(Path.Combine(Path.GetDirectoryName(Fixture("zip_slip.pt"))!, "..", "evil"));
        var ex = Assert.Throws<UnsafeCheckpointException>(() => TorchCheckpoint.Load(Fixture("zip_slip.pt")));
        AssertMessage(ex, "'../evil'");
        AssertMessage(ex, "zip_slip.pt");
        Assert.Equal("../evil", ex.Entry);
        Assert.False(File.Exists(evil));
        Assert.False(File.Exists(Path.GetFullPath(Path.Combine(Directory.GetCurrentDirectory(), "..", "evil"))));
    }

    [Theory]
    [InlineData("archive/../../etc/passwd")]
    [InlineData("/abs/data.pkl")]
    [InlineData("C:/windows/x")]
    [InlineData("archive\\data\\0")]
    [InlineData("..")]
    public void UnsafeEntryNames_AreRefused(string name)
    {
        var tiny = File.ReadAllBytes(Fixture("tiny_state_dict.pt"));
        var records = ReadZip(tiny);
        records.Add((name, [1, 2, 3]));
        var ex = Assert.Throws<UnsafeCheckpointException>(() => LoadZip(WriteZip(records)));
        Assert.Equal(name, ex.Entry);
    }

    // ------------------------------------------------------------------ format errors

    [Fact]
    public void TruncatedFile_IsAFormatError()
    {
        var ex = Assert.Throws<TorchCheckpointFormatException>(() => TorchCheckpoint.Load(Fixture("truncated.pt")));
        AssertMessage(ex, "truncated.pt");
        Assert.IsType<FormatException>(ex, exactMatch: false);
    }

    [Fact]
    public void TruncatedLegacyFile_IsAFormatError()
    {
        var bytes = File.ReadAllBytes(Fixture("legacy_format.pt"));
        foreach (int cut in new[] { 1, 10, 40, bytes.Length / 2, bytes.Length - 1 })
        {
            var ex = Assert.Throws<TorchCheckpointFormatException>(() => TorchCheckpoint.Load(new MemoryStream(bytes[..cut]), "legacy.pt"));
            AssertMessage(ex, "legacy.pt");
        }
    }

    [Fact]
    public void CorruptStorage_FailsCrc_UnlessDisabled()
    {
        var records = ReadZip(File.ReadAllBytes(Fixture("tiny_state_dict.pt")));
        var zip = File.ReadAllBytes(Fixture("tiny_state_dict.pt"));
        // flip a byte inside the stored data of tiny_state_dict/data/0 (records are STORED)
        byte[] data0 = records.Single(r => r.Name == "tiny_state_dict/data/0").Data;
        int at = zip.AsSpan().IndexOf(data0.AsSpan(0, 16));
        zip[at + 3] ^= 0x40;
        var ex = Assert.Throws<TorchCheckpointFormatException>(() => TorchCheckpoint.Load(new MemoryStream(zip), "corrupt.pt"));
        AssertMessage(ex, "CRC-32");
        Assert.Equal("tiny_state_dict/data/0", ex.Entry);
        var loaded = TorchCheckpoint.Load(new MemoryStream(zip), "corrupt.pt", new TorchLoadOptions { VerifyCrc32 = false });
        Assert.Equal(7, loaded.Count);
    }

    [Fact]
    public void InvalidOpcode_ReportsEntryAndOffset()
    {
        var pkl = new PickleWriter().Proto(2).Op('}').Raw([0xFF]).Stop().ToArray();
        var ex = Assert.Throws<TorchCheckpointFormatException>(() => LoadZip(MakeZip("ckpt", pkl), "bad.pt"));
        Assert.Equal("ckpt/data.pkl", ex.Entry);
        Assert.Equal(3, ex.Offset);
        AssertMessage(ex, "bad.pt");
        AssertMessage(ex, "invalid opcode 0xff");
    }

    [Fact]
    public void StorageNumel_IsCheckedAgainstTheRecordBeforeAllocating()
    {
        var pkl = TensorPickle("FloatStorage", "0", numel: 1L << 40, offset: 0, size: [1L << 20, 1L << 20], stride: [1L << 20, 1]);
        var ex = Assert.Throws<TorchCheckpointFormatException>(() => LoadZip(MakeZip("a", pkl, ("0", new byte[16]))));
        AssertMessage(ex, "larger than");

        pkl = TensorPickle("FloatStorage", "0", numel: 1000, offset: 0, size: [10], stride: [1]);
        ex = Assert.Throws<TorchCheckpointFormatException>(() => LoadZip(MakeZip("a", pkl, ("0", new byte[16]))));
        AssertMessage(ex, "holds 16 bytes");

        pkl = TensorPickle("FloatStorage", "missing", numel: 4, offset: 0, size: [4], stride: [1]);
        ex = Assert.Throws<TorchCheckpointFormatException>(() => LoadZip(MakeZip("a", pkl, ("0", new byte[16]))));
        AssertMessage(ex, "missing");
    }

    [Theory]
    [InlineData(new long[] { 5 }, new long[] { 1 }, 0L)]          // past the end
    [InlineData(new long[] { 2, 2 }, new long[] { 3, 1 }, 0L)]    // strided past the end
    [InlineData(new long[] { 4 }, new long[] { 1 }, 1L)]          // offset past the end
    [InlineData(new long[] { 4 }, new long[] { -1 }, 3L)]         // negative stride
    [InlineData(new long[] { -1 }, new long[] { 1 }, 0L)]         // negative size
    [InlineData(new long[] { 4 }, new long[] { 1, 1 }, 0L)]       // rank mismatch
    public void TensorGeometry_OutsideItsStorage_IsRejected(long[] size, long[] stride, long offset)
    {
        var pkl = TensorPickle("FloatStorage", "0", numel: 4, offset: offset, size: size, stride: stride);
        Assert.Throws<TorchCheckpointFormatException>(() => LoadZip(MakeZip("a", pkl, ("0", new byte[16]))));
    }

    [Fact]
    public void HugeStrideZeroExpansion_IsRefusedWithoutAllocating()
    {
        var pkl = TensorPickle("FloatStorage", "0", numel: 1, offset: 0, size: [int.MaxValue / 2], stride: [0]);
        long before = GC.GetAllocatedBytesForCurrentThread();
        var ex = Assert.Throws<TorchCheckpointFormatException>(() => LoadZip(MakeZip("a", pkl, ("0", new byte[4]))));
        AssertMessage(ex, "MaxTotalTensorBytes");
        Assert.True(GC.GetAllocatedBytesForCurrentThread() - before < 16 << 20);

        // within the budget a stride-0 view is simply gathered
        pkl = TensorPickle("FloatStorage", "0", numel: 1, offset: 0, size: [3, 2], stride: [0, 0]);
        var t = LoadZip(MakeZip("a", pkl, ("0", BitConverter.GetBytes(2.5f))))["w"];
        Assert.Equal(new[] { 2.5f, 2.5f, 2.5f, 2.5f, 2.5f, 2.5f }, t.ToArray());
    }

    [Fact]
    public void OneTensorUnderManyNames_IsRefusedByTheBudget()
    {
        // [t, t, t, ...]: 10,000 references (2 bytes of pickle each) to one stride-0 tensor of 4096 elements
        // (16 KiB dense) over a 4-byte storage: 160 MiB of dense copies, over the default 64 MiB + 4 x storage budget
        byte[] zip = RepeatedTensorZip(10_000);
        long before = GC.GetAllocatedBytesForCurrentThread();
        var ex = Assert.Throws<TorchCheckpointFormatException>(() => LoadZip(zip));
        AssertMessage(ex, "MaxTotalTensorBytes");
        Assert.True(GC.GetAllocatedBytesForCurrentThread() - before < 16L << 20);

        // 100 references (1.6 MiB) fit the default budget, but not a 1 MiB one
        zip = RepeatedTensorZip(100);
        var sd = LoadZip(zip);
        Assert.Equal(100, sd.Count);
        Assert.NotSame(sd["0"], sd["1"]);
        AssertMessage(Assert.Throws<TorchCheckpointFormatException>(() => LoadZip(zip, options: new TorchLoadOptions { MaxTotalTensorBytes = 1 << 20 })),
            "MaxTotalTensorBytes");
    }

    private static byte[] RepeatedTensorZip(int references)
    {
        var w = new PickleWriter().Proto(2).Op(']').Global("torch._utils", "_rebuild_tensor_v2");
        RebuildArgs(w, "FloatStorage", "0", 1, 0, [4096], [0]).Reduce().Op('q').Raw([1]).Op('0');
        for (int done = 0; done < references; done += 100)
        {
            w.Mark();
            for (int i = 0; i < 100; i++) w.Op('h').Raw([1]);
            w.Op('e');
        }
        return MakeZip("a", w.Stop().ToArray(), ("0", new byte[4]));
    }

    [Fact]
    public void HostileLengthsAndNesting_AreBounded()
    {
        // BINUNICODE claiming 4 GB
        var pkl = new PickleWriter().Proto(2).Op('X').Raw([0xF0, 0xFF, 0xFF, 0xFF]).Stop().ToArray();
        AssertMessage(Assert.Throws<TorchCheckpointFormatException>(() => LoadZip(MakeZip("a", pkl))), "exceeds");
        // 100,000 nested MARKs
        var w = new PickleWriter().Proto(2);
        for (int i = 0; i < 100_000; i++) w.Mark();
        AssertMessage(Assert.Throws<TorchCheckpointFormatException>(() => LoadZip(MakeZip("a", w.Stop().ToArray()))), "MaxMarkDepth");
        // 10,000 nested tuples (no MARKs): flattening is depth-limited, never recursive without bound
        var deep = new PickleWriter().Proto(2).Op(']');
        for (int i = 0; i < 10_000; i++) deep.Op(0x85); // ((((...),),),)
        AssertMessage(Assert.Throws<TorchCheckpointFormatException>(() => LoadZip(MakeZip("a", deep.Stop().ToArray()))), "MaxNestingDepth");
        // memo flood
        var memo = new PickleWriter().Proto(4).Op('N');
        for (int i = 0; i < 1000; i++) memo.Op(0x94);
        var opts = new TorchLoadOptions { MaxMemoEntries = 100 };
        AssertMessage(Assert.Throws<TorchCheckpointFormatException>(() => LoadZip(MakeZip("a", memo.Stop().ToArray()), options: opts)), "MaxMemoEntries");
        // memo reference to a never-stored index, and LONG_BINPUT with a huge index (no allocation)
        var get = new PickleWriter().Proto(2).Op('N').Op('r').Raw([0xFF, 0xFF, 0xFF, 0xFF]).Op('j').Raw([1, 0, 0, 0]).Stop().ToArray();
        AssertMessage(Assert.Throws<TorchCheckpointFormatException>(() => LoadZip(MakeZip("a", get))), "never stored");
        // a list that contains itself is walked once
        var cyc = new PickleWriter().Proto(2).Op(']').Op('q').Raw([0]).Op('h').Raw([0]).Op('a').Stop().ToArray();
        Assert.Empty(LoadZip(MakeZip("a", cyc)));
    }

    [Fact]
    public void NonCheckpoints_AreFormatErrors()
    {
        Assert.Throws<TorchCheckpointFormatException>(() => TorchCheckpoint.Load(new MemoryStream([]), "empty"));
        Assert.Throws<TorchCheckpointFormatException>(() => TorchCheckpoint.Load(new MemoryStream("hello world"u8.ToArray()), "text"));
        var script = WriteZip([("m/data.pkl", new PickleWriter().Proto(2).Global("__torch__", "Model").Stop().ToArray()),
            ("m/constants.pkl", [0x80, 2, (byte)'N', (byte)'.']), ("m/code/__torch__.py", [])]);
        AssertMessage(Assert.Throws<TorchCheckpointFormatException>(() => LoadZip(script)), "TorchScript");
        var noPickle = WriteZip([("m/version", "3\n"u8.ToArray())]);
        AssertMessage(Assert.Throws<TorchCheckpointFormatException>(() => LoadZip(noPickle)), "data.pkl");
        var none = new PickleWriter().Proto(2).Op('N').Stop().ToArray();
        Assert.Empty(LoadZip(MakeZip("m", none)));
        var notSeekable = new NonSeekableStream(File.ReadAllBytes(Fixture("tiny_state_dict.pt")));
        Assert.Throws<ArgumentException>(() => TorchCheckpoint.Load(notSeekable));
    }

    // ------------------------------------------------------------------ fuzzing

    [Fact]
    public async Task Fuzz_MutatedCheckpoints_OnlyEverRaiseFormatExceptions()
    {
        var tiny = File.ReadAllBytes(Fixture("tiny_state_dict.pt"));
        var legacy = File.ReadAllBytes(Fixture("legacy_format.pt"));
        var views = File.ReadAllBytes(Fixture("views.pt"));
        var records = ReadZip(tiny);
        int pklIndex = records.FindIndex(r => r.Name.EndsWith("/data.pkl", StringComparison.Ordinal));
        byte[] pkl = records[pklIndex].Data;
        var noCrc = new TorchLoadOptions { VerifyCrc32 = false };

        var outcomes = new Dictionary<string, int>();
        var work = Task.Run(() =>
        {
            var rng = new Random(20240611);
            for (int i = 0; i < 1000; i++)
            {
                byte[] input;
                TorchLoadOptions? options = null;
                string kind;
                switch (i % 5)
                {
                    case 0: kind = "zip"; input = Mutate(tiny, rng); break;
                    case 1: kind = "zip-nocrc"; input = Mutate(i % 2 == 0 ? tiny : views, rng); options = noCrc; break;
                    case 2: kind = "legacy"; input = Mutate(legacy, rng); break;
                    default:
                        kind = "data.pkl";
                        var copy = new List<(string Name, byte[] Data)>(records);
                        copy[pklIndex] = (copy[pklIndex].Name, Mutate(pkl, rng));
                        input = WriteZip(copy);
                        break;
                }
                long allocated = GC.GetAllocatedBytesForCurrentThread();
                var sw = Stopwatch.StartNew();
                string outcome;
                try
                {
                    TorchCheckpoint.Load(new MemoryStream(input), $"fuzz{i}.pt", options);
                    outcome = "loaded";
                }
                catch (TorchCheckpointFormatException ex)
                {
                    AssertMessage(ex, $"fuzz{i}.pt");
                    outcome = ex.GetType().Name;
                }
                catch (Exception ex)
                {
                    throw new Xunit.Sdk.XunitException($"mutation {i} ({kind}) raised {ex.GetType()}: {ex}");
                }
                Assert.True(sw.ElapsedMilliseconds < 2000, $"mutation {i} ({kind}) took {sw.ElapsedMilliseconds} ms");
                long used = GC.GetAllocatedBytesForCurrentThread() - allocated;
                Assert.True(used < 64L << 20, $"mutation {i} ({kind}) allocated {used} bytes");
                lock (outcomes) outcomes[$"{kind}:{outcome}"] = outcomes.GetValueOrDefault($"{kind}:{outcome}") + 1;
            }
        });
        await work.WaitAsync(TimeSpan.FromSeconds(60)); // TimeoutException if a mutation hangs
        foreach (var kv in outcomes.OrderBy(kv => kv.Key, StringComparer.Ordinal)) output.WriteLine($"{kv.Key}: {kv.Value}");
        // the data.pkl mutations must actually reach the unpickler's error paths
        Assert.True(outcomes.GetValueOrDefault("data.pkl:TorchCheckpointFormatException") > 100, string.Join(", ", outcomes));
    }

    private static byte[] Mutate(byte[] src, Random rng)
    {
        var b = (byte[])src.Clone();
        switch (rng.Next(6))
        {
            case 0: // bit flips
                for (int k = rng.Next(1, 5); k > 0; k--) b[rng.Next(b.Length)] ^= (byte)(1 << rng.Next(8));
                return b;
            case 1: // random byte overwrites
                for (int k = rng.Next(1, 5); k > 0; k--) b[rng.Next(b.Length)] = (byte)rng.Next(256);
                return b;
            case 2: // interesting values (lengths, opcodes)
            {
                byte[] interesting = [0x00, 0xFF, 0x7F, 0x80, (byte)'(', (byte)'.', (byte)'R', (byte)'c', (byte)'Q', (byte)'X', (byte)'t', 0x93, 0x95];
                for (int k = rng.Next(1, 4); k > 0; k--) b[rng.Next(b.Length)] = interesting[rng.Next(interesting.Length)];
                return b;
            }
            case 3: // truncation
                return b[..rng.Next(b.Length)];
            case 4: // 32-bit overwrite (sizes, offsets)
            {
                int at = rng.Next(Math.Max(1, b.Length - 4));
                uint v = rng.Next(3) switch { 0 => 0xFFFFFFFFu, 1 => (uint)rng.Next(), _ => 0x7FFFFFFFu };
                for (int k = 0; k < 4 && at + k < b.Length; k++) b[at + k] = (byte)(v >> (8 * k));
                return b;
            }
            default: // delete or duplicate a slice
            {
                int at = rng.Next(b.Length);
                int len = rng.Next(1, 9);
                var list = b.ToList();
                if (rng.Next(2) == 0) list.RemoveRange(at, Math.Min(len, list.Count - at));
                else list.InsertRange(at, b.Skip(at).Take(len));
                return list.ToArray();
            }
        }
    }

    // ------------------------------------------------------------------ helpers

    private static void AssertMessage(Exception ex, string expected) =>
        Assert.True(ex.Message.Contains(expected, StringComparison.Ordinal), $"'{expected}' not in: {ex.Message}");

    private static IReadOnlyDictionary<string, Tensor> LoadZip(byte[] zip, string name = "crafted.pt", TorchLoadOptions? options = null) =>
        TorchCheckpoint.Load(new MemoryStream(zip), name, options);

    private static byte[] MakeZip(string top, byte[] pickle, params (string Key, byte[] Data)[] storages)
    {
        var records = new List<(string, byte[])> { ($"{top}/data.pkl", pickle) };
        foreach (var (key, data) in storages) records.Add(($"{top}/data/{key}", data));
        records.Add(($"{top}/version", "3\n"u8.ToArray()));
        return WriteZip(records);
    }

    private static byte[] WriteZip(IEnumerable<(string Name, byte[] Data)> records)
    {
        var ms = new MemoryStream();
        using (var zip = new ZipArchive(ms, ZipArchiveMode.Create, leaveOpen: true))
        {
            foreach (var (name, data) in records)
            {
                var e = zip.CreateEntry(name, CompressionLevel.NoCompression);
                using var s = e.Open();
                s.Write(data);
            }
        }
        return ms.ToArray();
    }

    private static List<(string Name, byte[] Data)> ReadZip(byte[] zip)
    {
        using var archive = new ZipArchive(new MemoryStream(zip), ZipArchiveMode.Read);
        var result = new List<(string, byte[])>();
        foreach (var e in archive.Entries)
        {
            using var s = e.Open();
            var ms = new MemoryStream();
            s.CopyTo(ms);
            result.Add((e.FullName, ms.ToArray()));
        }
        return result;
    }

    private static byte[] ReadZipEntry(byte[] zip, string name) => ReadZip(zip).Single(r => r.Name == name).Data;

    /// <summary>{'w': _rebuild_tensor_v2(('storage', torch.&lt;type&gt;, key, 'cpu', numel), offset, size, stride, False, OrderedDict())}.</summary>
    private static byte[] TensorPickle(string storageType, string key, long numel, long offset, long[] size, long[] stride)
    {
        var w = new PickleWriter().Proto(2).Op('}').Str("w").Global("torch._utils", "_rebuild_tensor_v2");
        RebuildArgs(w, storageType, key, numel, offset, size, stride);
        return w.Reduce().Op('s').Stop().ToArray();
    }

    /// <summary>Writes the argument tuple of _rebuild_tensor_v2.</summary>
    private static PickleWriter RebuildArgs(PickleWriter w, string storageType, string key, long numel, long offset, long[] size, long[] stride)
    {
        w.Mark();
        w.Mark().Str("storage").Global("torch", storageType).Str(key).Str("cpu").Int(numel).Op('t').Op('Q');
        w.Int(offset).Mark();
        foreach (var s in size) w.Int(s);
        w.Op('t').Mark();
        foreach (var s in stride) w.Int(s);
        return w.Op('t').Op(0x89).Global("collections", "OrderedDict").Op(')').Reduce().Op('t');
    }

    /// <summary>Writes raw pickle opcodes.</summary>
    private sealed class PickleWriter
    {
        private readonly MemoryStream _ms = new();

        public PickleWriter Op(int op)
        {
            _ms.WriteByte((byte)op);
            return this;
        }

        public PickleWriter Raw(ReadOnlySpan<byte> bytes)
        {
            _ms.Write(bytes);
            return this;
        }

        public PickleWriter Proto(int v) => Op(0x80).Op(v);
        public PickleWriter Mark() => Op('(');
        public PickleWriter Stop() => Op('.');
        public PickleWriter Reduce() => Op('R');
        public PickleWriter Tuple1() => Op(0x85);
        public PickleWriter Global(string module, string name) => Op('c').Raw(Encoding.UTF8.GetBytes($"{module}\n{name}\n"));

        public PickleWriter Str(string s)
        {
            var b = Encoding.UTF8.GetBytes(s);
            Span<byte> len = stackalloc byte[4];
            BinaryPrimitives.WriteInt32LittleEndian(len, b.Length);
            return Op('X').Raw(len).Raw(b);
        }

        public PickleWriter Int(long v)
        {
            var bytes = new BigInteger(v).ToByteArray(); // little-endian two's complement
            return Op(0x8a).Op(bytes.Length).Raw(bytes);
        }

        public byte[] ToArray() => _ms.ToArray();
    }

    private sealed class NonSeekableStream(byte[] data) : MemoryStream(data)
    {
        public override bool CanSeek => false;
    }
}

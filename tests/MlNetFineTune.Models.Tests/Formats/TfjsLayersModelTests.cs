using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using MlNetFineTune.Models.Formats;
using Xunit;

namespace MlNetFineTune.Models.Tests;

/// <summary>The TF.js layers-model reader: topology, manifest, shard concatenation, dequantization and errors.</summary>
public sealed class TfjsLayersModelTests : IDisposable
{
    private readonly string _tmp = Path.Combine(Path.GetTempPath(), "tfjs-tests-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_tmp)) Directory.Delete(_tmp, recursive: true);
    }

    /// <summary>A copy of the tiny fixture model that a test may break.</summary>
    private string TinyCopy()
    {
        Directory.CreateDirectory(_tmp);
        foreach (var f in Directory.GetFiles(KerasTestData.TinyDir)) File.Copy(f, Path.Combine(_tmp, Path.GetFileName(f)));
        return _tmp;
    }

    private static void EditModelJson(string dir, Action<JsonObject> edit)
    {
        var path = Path.Combine(dir, "model.json");
        var root = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        edit(root);
        File.WriteAllText(path, root.ToJsonString());
    }

    [Fact]
    public void Tiny_ReadsTopologyAndManifest()
    {
        var m = TfjsLayersModel.Load(KerasTestData.TinyDir);
        Assert.Equal("layers-model", m.Format);
        Assert.Equal("Model", m.ModelClassName);
        Assert.Equal(["group1-shard1of2", "group1-shard2of2"], m.ShardFiles);
        Assert.Equal("img", Assert.Single(m.Inputs).Layer);
        Assert.Equal("probs", Assert.Single(m.Outputs).Layer);
        Assert.Equal(42, m.Layers.Count);
        var concat = m.GetLayer("concat");
        Assert.Equal("Concatenate", concat.ClassName);
        Assert.Equal(["maxpool_same_s2", "avgpool_same_s1", "maxpool_valid", "dw_same_s2"], concat.Inputs.Select(i => i.Layer));
        Assert.Equal((3, 3), m.GetLayer("conv_same_s2").GetPair("kernel_size", (0, 0)));
        Assert.Equal("same", m.GetLayer("conv_same_s2").GetString("padding"));

        // Offsets are contiguous over the concatenated shards, and the shards are split mid-weight.
        long at = 0;
        foreach (var w in m.WeightSpecs)
        {
            Assert.Equal(at, w.Offset);
            at += w.ByteLength;
        }
        long first = new FileInfo(Path.Combine(KerasTestData.TinyDir, "group1-shard1of2")).Length;
        Assert.Equal(first + new FileInfo(Path.Combine(KerasTestData.TinyDir, "group1-shard2of2")).Length, at);
        Assert.Contains(m.WeightSpecs, w => w.Offset < first && w.Offset + w.ByteLength > first);
    }

    [Fact]
    public void Tiny_DequantizesBitForBitLikeTfjs()
    {
        var m = TfjsLayersModel.Load(KerasTestData.TinyDir);
        var reference = KerasTestData.Json(Path.Combine(KerasTestData.TinyDir, "reference.json"));
        var schemes = new HashSet<string>();
        foreach (var w in reference.GetProperty("weights").EnumerateArray())
        {
            string name = w.GetProperty("name").GetString()!;
            schemes.Add(w.GetProperty("scheme").GetString()!);
            var expected = KerasTestData.B64(w.GetProperty("values"));
            var ours = m.ReadWeight(name);
            Assert.Equal(expected.Length, ours.Length);
            for (int i = 0; i < ours.Length; i++)
                Assert.True(BitConverter.SingleToInt32Bits(expected[i]) == BitConverter.SingleToInt32Bits(ours[i]),
                    $"{name}[{i}]: ours {ours[i]:R}, TF.js {expected[i]:R}");
        }
        Assert.Equal(["float16", "float32", "uint16", "uint8"], schemes.Order());
    }

    [Fact]
    public void Dequantizer_FollowsTheFormulas()
    {
        var u8 = new TfjsWeightSpec("l/w", [3], "float32", new TfjsQuantization("uint8", -1.5, 0.25, null), 0, 3);
        Assert.Equal([-1.5f, -1.25f, (float)(255 * 0.25 - 1.5)], TfjsDequantizer.Decode([0, 1, 255], u8));

        var u16 = new TfjsWeightSpec("l/w", [2], "float32", new TfjsQuantization("uint16", 0.5, 1e-3, "float32"), 0, 4);
        var b16 = new byte[4];
        BinaryPrimitives.WriteUInt16LittleEndian(b16, 1000);
        BinaryPrimitives.WriteUInt16LittleEndian(b16.AsSpan(2), 65535);
        Assert.Equal([(float)(1000 * 1e-3 + 0.5), (float)(65535 * 1e-3 + 0.5)], TfjsDequantizer.Decode(b16, u16));

        var f16 = new TfjsWeightSpec("l/w", [3], "float32", new TfjsQuantization("float16", null, null, null), 0, 6);
        var bh = new byte[6];
        BinaryPrimitives.WriteHalfLittleEndian(bh, (Half)1.5f);
        BinaryPrimitives.WriteHalfLittleEndian(bh.AsSpan(2), (Half)(-0.0001f));
        BinaryPrimitives.WriteHalfLittleEndian(bh.AsSpan(4), Half.MaxValue);
        Assert.Equal([1.5f, (float)(Half)(-0.0001f), 65504f], TfjsDequantizer.Decode(bh, f16));

        var i32 = new TfjsWeightSpec("l/w", [1], "int32", null, 0, 4);
        Assert.Equal([-7f], TfjsDequantizer.Decode(BitConverter.GetBytes(-7), i32));

        var ex = Assert.Throws<InvalidDataException>(() => TfjsDequantizer.Decode([1, 2], u8));
        Assert.Contains("'l/w'", ex.Message);
    }

    [Fact]
    public void ShippedModels_HaveNoContentClassHead()
    {
        foreach (var (name, output, count) in new[] { ("mobilenet_v2", "out_relu", 155), ("inception_v3", "mixed10", 311) })
        {
            var m = TfjsLayersModel.Load(KerasTestData.ShippedModel(name));
            Assert.Equal(output, Assert.Single(m.Outputs).Layer);
            Assert.Equal(count, m.Layers.Count);
            Assert.DoesNotContain(m.Layers, l => l.ClassName is "Dense" or "Flatten" or "Dropout");
            Assert.DoesNotContain(m.WeightSpecs, w => w.Name.StartsWith("dense", StringComparison.Ordinal));
            Assert.All(m.WeightSpecs, w => Assert.Equal("uint8", w.Quantization?.DType));
            // Every weight belongs to a layer of the shipped graph.
            Assert.All(m.WeightSpecs, w => Assert.True(m.HasLayer(w.LayerName), w.Name));
        }
    }

    [Fact]
    public void TruncatedShard_NamesTheFileAndTheWeight()
    {
        var intact = TfjsLayersModel.Load(KerasTestData.TinyDir);
        long total = intact.WeightSpecs[^1].Offset + intact.WeightSpecs[^1].ByteLength;
        var firstCut = intact.WeightSpecs.First(w => w.Offset + w.ByteLength > total - 100);
        var dir = TinyCopy();
        var shard = Path.Combine(dir, "group1-shard2of2");
        var bytes = File.ReadAllBytes(shard);
        File.WriteAllBytes(shard, bytes[..(bytes.Length - 100)]);
        var ex = Assert.Throws<InvalidDataException>(() => TfjsLayersModel.Load(dir));
        Assert.Contains("truncated", ex.Message);
        Assert.Contains("group1-shard2of2", ex.Message);
        Assert.Contains($"weight '{firstCut.Name}'", ex.Message);
    }

    [Fact]
    public void ExtraShardBytes_AreRejected()
    {
        var dir = TinyCopy();
        using (var f = File.Open(Path.Combine(dir, "group1-shard2of2"), FileMode.Append)) f.Write(new byte[8]);
        var ex = Assert.Throws<InvalidDataException>(() => TfjsLayersModel.Load(dir));
        Assert.Contains("do not match model.json", ex.Message);
    }

    [Fact]
    public void MissingShard_IsFileNotFoundNamingIt()
    {
        var dir = TinyCopy();
        File.Delete(Path.Combine(dir, "group1-shard2of2"));
        var ex = Assert.Throws<FileNotFoundException>(() => TfjsLayersModel.Load(dir));
        Assert.Contains("group1-shard2of2", ex.Message);
        Assert.Contains("model.json", ex.Message);
    }

    [Fact]
    public void MissingModelJson_IsFileNotFound()
    {
        Directory.CreateDirectory(_tmp);
        Assert.Throws<FileNotFoundException>(() => TfjsLayersModel.Load(_tmp));
    }

    [Theory]
    [InlineData("../group1-shard1of2")]
    [InlineData("sub/../../x")]
    [InlineData("/etc/passwd")]
    [InlineData("C:\\weights.bin")]
    [InlineData("https://example.com/shard")]
    [InlineData("")]
    public void ShardPathsOutsideTheFolder_AreRejected(string path)
    {
        var dir = TinyCopy();
        EditModelJson(dir, root => root["weightsManifest"]![0]!["paths"]![0] = path);
        var ex = Assert.Throws<InvalidDataException>(() => TfjsLayersModel.Load(dir));
        Assert.Contains("shard path", ex.Message);
    }

    [Fact]
    public void QuantizationWithoutScale_IsRejected()
    {
        var dir = TinyCopy();
        EditModelJson(dir, root =>
        {
            var w = root["weightsManifest"]![0]!["weights"]!.AsArray().First(x => x!["quantization"]?["dtype"]?.GetValue<string>() == "uint8")!;
            w["quantization"]!.AsObject().Remove("scale");
        });
        var ex = Assert.Throws<InvalidDataException>(() => TfjsLayersModel.Load(dir));
        Assert.Contains("lacks 'min' or 'scale'", ex.Message);
    }

    [Fact]
    public void UnsupportedDtype_IsRejected()
    {
        var dir = TinyCopy();
        EditModelJson(dir, root => root["weightsManifest"]![0]!["weights"]![0]!.AsObject()["quantization"] = new JsonObject { ["dtype"] = "int4" });
        var ex = Assert.Throws<InvalidDataException>(() => TfjsLayersModel.Load(dir));
        Assert.Contains("int4", ex.Message);
    }

    [Fact]
    public void GraphModelsAndBadJson_AreRejectedClearly()
    {
        Assert.Throws<NotSupportedException>(() =>
            TfjsLayersModel.Parse("{\"format\":\"graph-model\",\"modelTopology\":{\"node\":[]}}"u8, "g", _ => []));
        var ex = Assert.Throws<InvalidDataException>(() => TfjsLayersModel.Parse("{\"modelTopology\": "u8, "broken.json", _ => []));
        Assert.Contains("broken.json", ex.Message);
        Assert.Throws<InvalidDataException>(() => TfjsLayersModel.Parse("{\"weightsManifest\":[]}"u8, "nomodel", _ => []));
    }

    [Fact]
    public void Sequential_GetsAnInputLayerAndAChain()
    {
        const string json = """
        {"modelTopology":{"class_name":"Sequential","config":{"name":"seq","layers":[
          {"class_name":"Conv2D","config":{"name":"c","filters":2,"kernel_size":[1,1],"batch_input_shape":[null,4,4,3],"use_bias":false}},
          {"class_name":"ReLU","config":{"name":"r"}}]}},
         "weightsManifest":[{"paths":["w.bin"],"weights":[{"name":"c/kernel","shape":[1,1,3,2],"dtype":"float32"}]}]}
        """;
        var m = TfjsLayersModel.Parse(Encoding.UTF8.GetBytes(json), "seq", p => p == "w.bin" ? new byte[24] : throw new FileNotFoundException(p));
        Assert.Equal(["c_input", "c", "r"], m.Layers.Select(l => l.Name));
        Assert.Equal("c", m.GetLayer("r").Inputs[0].Layer);
        Assert.Equal("r", m.Outputs[0].Layer);
        Assert.Equal([1, 1, 3, 2], m.ReadTensor("c/kernel").Shape.ToArray());
    }

    [Fact]
    public void Keras3InboundNodes_AreRead()
    {
        const string json = """
        {"modelTopology":{"class_name":"Functional","config":{"name":"k3","layers":[
          {"name":"in","class_name":"InputLayer","config":{"batch_shape":[null,4,4,3],"name":"in"},"inbound_nodes":[]},
          {"name":"r","class_name":"ReLU","config":{"name":"r"},"inbound_nodes":[{"args":[{"class_name":"__keras_tensor__","config":{"shape":[null,4,4,3],"keras_history":["in",0,0]}}],"kwargs":{}}]}],
          "input_layers":["in",0,0],"output_layers":["r",0,0]}}}
        """;
        var m = TfjsLayersModel.Parse(Encoding.UTF8.GetBytes(json), "k3", _ => []);
        Assert.Equal("in", m.GetLayer("r").Inputs.Single().Layer);
        Assert.Equal("r", m.Outputs.Single().Layer);
        Assert.Empty(m.WeightSpecs);
    }

    [Fact]
    public void JsonAccessors_ReportBadValuesWithTheLayer()
    {
        using var doc = JsonDocument.Parse("{\"strides\": \"two\"}");
        var spec = new KerasLayerSpec("conv9", "Conv2D", doc.RootElement, []);
        var ex = Assert.Throws<InvalidDataException>(() => spec.GetPair("strides", (1, 1)));
        Assert.Contains("conv9", ex.Message);
    }
}

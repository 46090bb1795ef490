using System.Text;
using System.Text.Json.Nodes;
using MlNetFineTune.Models.Formats;
using MlNetFineTune.Models.Vision;
using MlNetFineTune.Tensors;
using Xunit;
using Xunit.Abstractions;

namespace MlNetFineTune.Models.Tests;

/// <summary>KerasModel: graph cutting, parameter names, freezing, training mode, feature quality and errors.</summary>
public sealed class KerasModelTests(ITestOutputHelper output) : IDisposable
{
    private readonly string _tmp = Path.Combine(Path.GetTempPath(), "keras-tests-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_tmp)) Directory.Delete(_tmp, recursive: true);
    }

    private string TinyCopy(Action<JsonObject>? edit = null)
    {
        Directory.CreateDirectory(_tmp);
        foreach (var f in Directory.GetFiles(KerasTestData.TinyDir)) File.Copy(f, Path.Combine(_tmp, Path.GetFileName(f)), overwrite: true);
        if (edit is not null)
        {
            var path = Path.Combine(_tmp, "model.json");
            var root = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
            edit(root);
            File.WriteAllText(path, root.ToJsonString());
        }
        return _tmp;
    }

    private static JsonObject LayerNode(JsonObject root, string name) =>
        root["modelTopology"]!["config"]!["layers"]!.AsArray().Select(l => l!.AsObject()).Single(l => l["name"]!.GetValue<string>() == name);

    [Fact]
    public void MobileNetV2_InferenceRecyclingBuffersMatchesTheGraphForwardAndRepeatsExactly()
    {
        // Residual blocks keep a value alive across layers (block_N_add): recycling must wait for its last use.
        var model = KerasModel.Load(KerasTestData.ShippedModel("mobilenet_v2"), outputLayer: "block_6_project_BN");
        model.Eval();
        var rng = new Rng(6);
        var images = Tensor.RandUniform(rng, 0f, 1f, 2, 3, 96, 96);
        var withGraph = model.ForwardLayers(images, "block_2_add", "block_6_project_BN");   // parameters require grad
        Assert.True(withGraph["block_6_project_BN"].RequiresGrad);
        var want = withGraph["block_6_project_BN"].Detach().ToArray();
        var wantAdd = withGraph["block_2_add"].Detach().ToArray();
        float[]? first = null;
        for (int pass = 0; pass < 3; pass++)
        {
            using var _ = Tensor.NoGrad();
            model.Forward(Tensor.RandUniform(rng, 0f, 1f, 2, 3, 96, 96));            // scribbles over recycled buffers
            var got = model.ForwardLayers(images, "block_2_add", "block_6_project_BN");
            var y = got["block_6_project_BN"].ToArray();
            Assert.Equal(wantAdd, got["block_2_add"].ToArray());
            Assert.Equal(want, y);
            if (first is null) first = y;
            else Assert.Equal(first, y);
        }
    }

    [Fact]
    public void MobileNetV2_ParameterNamesShapesAndDefaults()
    {
        var model = KerasModel.Load(KerasTestData.ShippedModel("mobilenet_v2"));
        Assert.Equal(3, model.InputChannels);
        Assert.Null(model.InputSize);
        Assert.Equal("input_1", model.Layers[0].LayerName);
        Assert.False(model.Training);
        var state = model.StateDict();
        Assert.Equal([32, 3, 3, 3], state["Conv1.weight"].Shape.ToArray());
        Assert.False(state.ContainsKey("Conv1.bias"));
        Assert.Equal([32], state["bn_Conv1.weight"].Shape.ToArray());
        Assert.Equal([32], state["bn_Conv1.running_var"].Shape.ToArray());
        Assert.Equal([96, 1, 3, 3], state["block_1_depthwise.weight"].Shape.ToArray());
        Assert.Equal([1280, 320, 1, 1], state["Conv_1.weight"].Shape.ToArray());
        Assert.DoesNotContain(state.Keys, k => k.StartsWith("dense", StringComparison.Ordinal));
        Assert.DoesNotContain(model.Layers, l => l.ClassName is "Dense" or "Flatten" or "Dropout");
        // Keras MobileNetV2 has 2,257,984 parameters below the top (incl. BN moving statistics).
        Assert.Equal(2_257_984L, model.ParameterCount() + model.NamedBuffers().Sum(b => (long)b.Buffer.Numel));
        var bn = model.GetLayer("bn_Conv1");
        Assert.Equal("BatchNormalization", bn.ClassName);
    }

    [Fact]
    public void DefaultOutput_CutsAClassificationHead()
    {
        // The nsfwjs layout: backbone -> AveragePooling2D -> Flatten -> Dense/Dropout... -> Dense(softmax).
        const string json = """
        {"modelTopology":{"keras_version":"2.2.4","model_config":{"class_name":"Model","config":{"name":"m","layers":[
          {"name":"input_1","class_name":"InputLayer","config":{"batch_input_shape":[null,8,8,3]},"inbound_nodes":[]},
          {"name":"conv","class_name":"Conv2D","config":{"filters":4,"kernel_size":[3,3],"padding":"same","use_bias":false},"inbound_nodes":[[["input_1",0,0,{}]]]},
          {"name":"out_relu","class_name":"ReLU","config":{"max_value":6},"inbound_nodes":[[["conv",0,0,{}]]]},
          {"name":"pool","class_name":"AveragePooling2D","config":{"pool_size":[8,8],"strides":[8,8],"padding":"valid"},"inbound_nodes":[[["out_relu",0,0,{}]]]},
          {"name":"flatten","class_name":"Flatten","config":{},"inbound_nodes":[[["pool",0,0,{}]]]},
          {"name":"dense_1","class_name":"Dense","config":{"units":5,"activation":"relu"},"inbound_nodes":[[["flatten",0,0,{}]]]},
          {"name":"dropout","class_name":"Dropout","config":{"rate":0.5},"inbound_nodes":[[["dense_1",0,0,{}]]]},
          {"name":"dense_2","class_name":"Dense","config":{"units":2,"activation":"softmax"},"inbound_nodes":[[["dropout",0,0,{}]]]}],
          "input_layers":[["input_1",0,0]],"output_layers":[["dense_2",0,0]]}}},
         "weightsManifest":[{"paths":["w"],"weights":[
          {"name":"conv/kernel","shape":[3,3,3,4],"dtype":"float32"},
          {"name":"dense_1/kernel","shape":[4,5],"dtype":"float32"},{"name":"dense_1/bias","shape":[5],"dtype":"float32"},
          {"name":"dense_2/kernel","shape":[5,2],"dtype":"float32"},{"name":"dense_2/bias","shape":[2],"dtype":"float32"}]}]}
        """;
        var src = TfjsLayersModel.Parse(Encoding.UTF8.GetBytes(json), "head", _ => new byte[4 * (108 + 20 + 5 + 10 + 2)]);
        Assert.Equal("out_relu", KerasModel.DefaultOutputLayer(src));
        var model = KerasModel.FromTfjs(src);
        Assert.Equal("out_relu", model.OutputLayer);
        Assert.Equal(4, model.FeatureSize);
        Assert.DoesNotContain(model.NamedParameters(), p => p.Name.StartsWith("dense", StringComparison.Ordinal));
        Assert.Equal((8, 8), model.InputSize);
        // The head can still be built on request.
        var full = KerasModel.FromTfjs(src, "dense_2");
        Assert.Equal(2, full.FeatureSize);
        Assert.Equal([1, 2], full.Features(Tensor.Zeros(1, 3, 8, 8)).Shape.ToArray());
    }

    [Fact]
    public void Freezing_ByLayerName_Prefix_UpTo_AndAsInSource()
    {
        var model = KerasModel.Load(KerasTestData.ShippedModel("mobilenet_v2"));
        Assert.Equal(1, model.Freeze("block_1_expand"));
        Assert.False(model.StateDict()["block_1_expand.weight"].RequiresGrad);
        Assert.True(model.StateDict()["block_1_expand_BN.weight"].RequiresGrad);

        model.Unfreeze();
        // block_1_: expand, expand_BN (2), depthwise, depthwise_BN (2), project, project_BN (2) = 9 tensors.
        Assert.Equal(9, model.FreezeLayersWithPrefix("block_1_"));
        Assert.True(model.StateDict()["block_10_expand.weight"].RequiresGrad);

        model.Unfreeze();
        int upTo = model.FreezeUpTo("bn_Conv1");
        Assert.Equal(3, upTo); // Conv1.weight, bn_Conv1.weight, bn_Conv1.bias

        model.Unfreeze();
        int asSource = model.FreezeAsInSource();
        Assert.True(model.StateDict()["block_10_project_BN.bias"].RequiresGrad == false);
        Assert.True(model.StateDict()["block_11_expand.weight"].RequiresGrad);
        Assert.True(model.StateDict()["Conv_1.weight"].RequiresGrad);
        Assert.Equal(asSource, model.NamedParameters().Count(p => !p.Parameter.RequiresGrad));
        Assert.Equal(0, KerasModel.Load(KerasTestData.TinyDir, "img").FreezeUpTo("img"));
    }

    [Fact]
    public void TrainingMode_UsesBatchStatistics_UpdatesMovingStats_AndBackpropagates()
    {
        var model = KerasModel.Load(KerasTestData.ShippedModel("mobilenet_v2"), outputLayer: "block_2_add");
        model.FreezeUpTo("expanded_conv_project_BN");
        var (images, _) = KerasTestData.Images(2, 48, 48);
        Tensor evalOut;
        using (Tensor.NoGrad()) evalOut = model.Features(images);

        var mean = model.StateDict()["block_2_expand_BN.running_mean"];
        var before = mean.ToArray();
        model.Train();
        Assert.True(model.GetLayer("block_2_expand_BN").Training);
        var trainOut = model.Features(images);
        var after = mean.ToArray();
        Assert.NotEqual(before, after);
        // PyTorch momentum = 1 - Keras 0.999: running stats move by 0.1% of the way to the batch statistics.
        double moved = before.Zip(after, (a, b) => Math.Abs(a - b)).Max();
        Assert.InRange(moved, 1e-7, 0.05);
        Assert.True(trainOut.ToArray().Zip(evalOut.ToArray(), (a, b) => Math.Abs(a - b)).Max() > 1e-3);

        Ops.Sum(Ops.Mul(trainOut, trainOut)).Backward();
        Assert.NotNull(model.StateDict()["block_2_project.weight"].Grad);
        Assert.NotNull(model.StateDict()["block_1_depthwise_BN.bias"].Grad);
        Assert.Null(model.StateDict()["Conv1.weight"].Grad);

        model.Eval();
        using (Tensor.NoGrad())
        {
            var a = model.Features(images).ToArray();
            var b = model.Features(images).ToArray();
            Assert.Equal(a, b);
        }
    }

    [Fact]
    public void PreprocessAndRgbBytes_Agree()
    {
        var (h, w) = (5, 7);
        var rgb = new byte[2 * h * w * 3];
        for (int i = 0; i < rgb.Length; i++) rgb[i] = (byte)(i * 37 % 256);
        var fromBytes = KerasModel.FromRgbBytes(rgb, 2, h, w);
        var nchw = new float[rgb.Length];
        for (int n = 0; n < 2; n++)
            for (int p = 0; p < h * w; p++)
                for (int c = 0; c < 3; c++)
                    nchw[(n * 3 + c) * h * w + p] = rgb[(n * h * w + p) * 3 + c];
        Assert.Equal(KerasModel.Preprocess(Tensor.FromArray(nchw, 2, 3, h, w)).ToArray(), fromBytes.ToArray());
        Assert.Equal(1f, KerasModel.Preprocess(Tensor.Full(255f, 1)).Item());
        Assert.Throws<ArgumentException>(() => KerasModel.FromRgbBytes(rgb.AsSpan(1), 2, h, w));
    }

    /// <summary>Four kinds of synthetic image, a few noisy samples each.</summary>
    private static (Tensor Images, int[] Labels) SyntheticClasses(int perClass, int size, ulong seed)
    {
        var rng = new Rng(seed);
        int n = 4 * perClass, hw = size * size;
        var d = new float[n * 3 * hw];
        var labels = new int[n];
        for (int i = 0; i < n; i++)
        {
            int cls = i % 4;
            labels[i] = cls;
            int period = 6 + (int)(rng.NextFloat() * 6);
            int phase = (int)(rng.NextFloat() * period);
            var col = new[] { 0.3f + 0.7f * rng.NextFloat(), 0.3f + 0.7f * rng.NextFloat(), 0.3f + 0.7f * rng.NextFloat() };
            float cx = size * (0.3f + 0.4f * rng.NextFloat()), cy = size * (0.3f + 0.4f * rng.NextFloat()), r = size * (0.15f + 0.15f * rng.NextFloat());
            for (int y = 0; y < size; y++)
                for (int x = 0; x < size; x++)
                {
                    float v = cls switch
                    {
                        0 => ((y + phase) / (period / 2)) % 2,                       // horizontal stripes
                        1 => ((x + phase) / (period / 2)) % 2,                       // vertical stripes
                        2 => (((x + phase) / (period / 2)) + ((y + phase) / (period / 2))) % 2, // checkerboard
                        _ => (x - cx) * (x - cx) + (y - cy) * (y - cy) < r * r ? 1f : 0f,     // solid blob
                    };
                    for (int c = 0; c < 3; c++)
                    {
                        float px = v * col[c] + 0.1f * (rng.NextFloat() - 0.5f);
                        d[(i * 3 + c) * hw + y * size + x] = Math.Clamp(px, 0f, 1f);
                    }
                }
        }
        return (Tensor.FromArray(d, n, 3, size, size), labels);
    }

    /// <summary>Leave-one-out nearest-centroid accuracy on L2-normalised rows of <paramref name="f"/> [n, dim].</summary>
    private static double NearestCentroidAccuracy(float[] f, int[] labels, int classes)
    {
        int n = labels.Length, dim = f.Length / n;
        var feats = Enumerable.Range(0, n).Select(i =>
        {
            var v = f.AsSpan(i * dim, dim).ToArray();
            double norm = Math.Sqrt(v.Sum(x => (double)x * x)) + 1e-12;
            return v.Select(x => x / norm).ToArray();
        }).ToArray();
        int correct = 0;
        for (int i = 0; i < n; i++)
        {
            int best = -1;
            double bestDist = double.MaxValue;
            for (int c = 0; c < classes; c++)
            {
                var members = Enumerable.Range(0, n).Where(j => j != i && labels[j] == c).ToList();
                double dist = 0;
                for (int k = 0; k < dim; k++)
                {
                    double centroid = members.Average(j => feats[j][k]);
                    dist += (feats[i][k] - centroid) * (feats[i][k] - centroid);
                }
                if (dist < bestDist) { bestDist = dist; best = c; }
            }
            if (best == labels[i]) correct++;
        }
        return (double)correct / n;
    }

    [Fact]
    public void MobileNetV2_PooledFeatures_SeparateSyntheticImageKinds()
    {
        // Horizontal stripes, vertical stripes, checkerboards and solid blobs (random period, phase, colour,
        // position and pixel noise), 5 of each at 64x64; chance is 25%.
        var model = KerasModel.Load(KerasTestData.ShippedModel("mobilenet_v2"));
        var (images, labels) = SyntheticClasses(perClass: 5, size: 64, seed: 7);
        IReadOnlyDictionary<string, Tensor> outs;
        using (Tensor.NoGrad()) outs = model.ForwardLayers(images, "block_13_expand_relu", "out_relu");
        double top = NearestCentroidAccuracy(Ops.GlobalAvgPool2d(outs["out_relu"]).ToArray(), labels, 4);
        double mid = NearestCentroidAccuracy(Ops.GlobalAvgPool2d(outs["block_13_expand_relu"]).ToArray(), labels, 4);
        output.WriteLine($"leave-one-out nearest-centroid accuracy: out_relu (default features, 1280-d) {top:P0}, block_13_expand_relu (576-d) {mid:P0}; chance 25%");
        // Measured 80% and 95%: the top blocks were retrained on nsfwjs's content classes, the mid-level
        // features are ImageNet's (as on Fashion-MNIST in DATA.md).
        Assert.True(top >= 0.7, $"out_relu accuracy {top:P0}");
        Assert.True(mid >= 0.9, $"block_13_expand_relu accuracy {mid:P0}");
    }

    [Fact]
    public void UnknownLayerClass_IsNotSupportedNamingTheLayer()
    {
        var dir = TinyCopy(root => LayerNode(root, "channel_softmax")["class_name"] = "FancySoftmax");
        var ex = Assert.Throws<NotSupportedException>(() => KerasModel.Load(dir, "probs"));
        Assert.Contains("'channel_softmax'", ex.Message);
        Assert.Contains("FancySoftmax", ex.Message);
        // A cut below the unknown layer does not need it.
        Assert.Equal("add", KerasModel.Load(dir, "add").OutputLayer);
    }

    [Fact]
    public void UnknownActivation_IsNotSupportedNamingTheLayer()
    {
        var dir = TinyCopy(root => LayerNode(root, "act_relu")["config"]!["activation"] = "mish");
        var ex = Assert.Throws<NotSupportedException>(() => KerasModel.Load(dir, "probs"));
        Assert.Contains("'act_relu'", ex.Message);
        Assert.Contains("mish", ex.Message);
    }

    [Fact]
    public void WeightShapeMismatch_NamesLayerWeightAndShapes()
    {
        // Same element count (so the shards still fit), wrong layout.
        var dir = TinyCopy(root =>
        {
            var w = root["weightsManifest"]![0]!["weights"]!.AsArray().Single(x => x!["name"]!.GetValue<string>() == "conv_same_s2/kernel")!;
            w["shape"] = new JsonArray(3, 3, 6, 3);
        });
        var ex = Assert.Throws<InvalidDataException>(() => KerasModel.Load(dir, "probs"));
        Assert.Contains("'conv_same_s2'", ex.Message);
        Assert.Contains("[3, 3, 6, 3]", ex.Message);
        Assert.Contains("[3, 3, 3, 6]", ex.Message);
    }

    [Fact]
    public void ConfigWeightDisagreement_IsReported()
    {
        var noBias = TinyCopy(root => LayerNode(root, "conv_same_s2")["config"]!["use_bias"] = false);
        var ex = Assert.Throws<InvalidDataException>(() => KerasModel.Load(noBias, "probs"));
        Assert.Contains("conv_same_s2/bias", ex.Message);

        var missing = TinyCopy(root => LayerNode(root, "bn_noscale")["config"]!["scale"] = true);
        ex = Assert.Throws<InvalidDataException>(() => KerasModel.Load(missing, "probs"));
        Assert.Contains("bn_noscale/gamma", ex.Message);
    }

    [Fact]
    public void TruncatedAndMissingShards_FailAtLoad()
    {
        var dir = TinyCopy();
        File.WriteAllBytes(Path.Combine(dir, "group1-shard1of2"), File.ReadAllBytes(Path.Combine(dir, "group1-shard1of2"))[..100]);
        var ex = Assert.Throws<InvalidDataException>(() => KerasModel.Load(dir));
        Assert.Contains("group1-shard1of2", ex.Message);
        File.Delete(Path.Combine(dir, "group1-shard2of2"));
        Assert.Throws<FileNotFoundException>(() => KerasModel.Load(dir));
    }

    [Fact]
    public void BadArguments_AreReported()
    {
        var model = KerasModel.Load(KerasTestData.TinyDir, "add");
        Assert.Throws<ArgumentException>(() => KerasModel.Load(KerasTestData.TinyDir, "no_such_layer"));
        var ex = Assert.Throws<ArgumentException>(() => model.Features(Tensor.Zeros(1, 1, 12, 14)));
        Assert.Contains("[N, 3, H, W]", ex.Message);
        Assert.Throws<KeyNotFoundException>(() => model.ForwardLayers(Tensor.Zeros(1, 3, 12, 14), "probs"));
        Assert.Equal(12, model.FeatureSize);
        Assert.Equal([1, 12], model.Features(Tensor.Zeros(1, 3, 12, 14)).Shape.ToArray());
    }

    [Theory]
    [InlineData(7, 3, 2, 1, 1, 1)]   // out 4: total 2, symmetric
    [InlineData(6, 3, 2, 1, 0, 1)]   // out 3: total 1, TF puts the odd pad after
    [InlineData(5, 1, 1, 1, 0, 0)]
    [InlineData(9, 3, 1, 2, 2, 2)]   // dilated: effective kernel 5
    [InlineData(224, 3, 2, 1, 0, 1)]
    [InlineData(7, 2, 2, 1, 0, 1)]
    public void SamePadding_MatchesTf(int size, int kernel, int stride, int dilation, int before, int after) =>
        Assert.Equal((before, after), KerasLayer.SamePadding(size, kernel, stride, dilation));
}

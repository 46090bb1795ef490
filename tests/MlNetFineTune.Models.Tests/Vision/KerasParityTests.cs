using System.Runtime.CompilerServices;
using System.Text.Json;
using MlNetFineTune.Models.Vision;
using MlNetFineTune.Tensors;
using Xunit;
using Xunit.Abstractions;

namespace MlNetFineTune.Models.Tests;

/// <summary>
/// Shared inputs for the Keras/TF.js tests: the fixtures written by tests/golden/tfjs_reference.mjs and the
/// shipped models in data/models/.
/// </summary>
internal static class KerasTestData
{
    /// <summary>fixtures/tfjs beside the test assembly.</summary>
    public static string FixtureDir => Path.Combine(AppContext.BaseDirectory, "fixtures", "tfjs");

    /// <summary>The tiny generated model (model.json + 2 shards + reference.json).</summary>
    public static string TinyDir => Path.Combine(FixtureDir, "tiny");

    private static string ThisSourceFile([CallerFilePath] string path = "") => path;

    /// <summary>data/models/&lt;name&gt; of this repository (found above the test binaries or above this source file).</summary>
    public static string ShippedModel(string name)
    {
        string callerFile = ThisSourceFile();
        foreach (var start in new[] { AppContext.BaseDirectory, Path.GetDirectoryName(callerFile) ?? "" })
        {
            for (var dir = start.Length > 0 ? new DirectoryInfo(start) : null; dir is not null; dir = dir.Parent)
            {
                var candidate = Path.Combine(dir.FullName, "data", "models", name);
                if (File.Exists(Path.Combine(candidate, "model.json"))) return candidate;
            }
        }
        throw new DirectoryNotFoundException($"data/models/{name}/model.json not found above {AppContext.BaseDirectory} or {callerFile}.");
    }

    /// <summary>Pixel value 0..255, the same integer formula as pixel() in tfjs_reference.mjs.</summary>
    public static int Pixel(int n, int y, int x, int c) =>
        ((x * x * (n + 1)) / 7 + y * (5 + 3 * c) + ((x ^ y) & 15) * 4 + 60 * c + 90 * n) % 256;

    /// <summary>The reference images [N, 3, H, W], scaled x / 255 like the reference; also their pixel sum.</summary>
    public static (Tensor Images, long Sum) Images(int n, int h, int w)
    {
        var d = new float[n * 3 * h * w];
        long sum = 0;
        for (int b = 0; b < n; b++)
            for (int c = 0; c < 3; c++)
                for (int y = 0; y < h; y++)
                    for (int x = 0; x < w; x++)
                    {
                        int v = Pixel(b, y, x, c);
                        sum += v;
                        d[((b * 3 + c) * h + y) * w + x] = v;
                    }
        return (KerasModel.Preprocess(Tensor.FromArray(d, n, 3, h, w)), sum);
    }

    public static float[] B64(JsonElement e) => B64(e.GetString()!);

    public static float[] B64(string s)
    {
        var bytes = Convert.FromBase64String(s);
        var f = new float[bytes.Length / 4];
        Buffer.BlockCopy(bytes, 0, f, 0, bytes.Length);
        return f;
    }

    public static JsonElement Json(string path) => JsonDocument.Parse(File.ReadAllBytes(path)).RootElement;
}

/// <summary>A layer's output from TF.js, read from a reference fixture.</summary>
internal sealed record TfjsReferenceLayer(string Name, int[] Shape, float[]? Mean, int[] SampleIndex, float[] SampleValues, float[]? Full)
{
    public static IReadOnlyList<TfjsReferenceLayer> ReadAll(JsonElement root) => root.GetProperty("layers").EnumerateArray().Select(l => new TfjsReferenceLayer(
        l.GetProperty("name").GetString()!,
        l.GetProperty("shape").EnumerateArray().Select(e => e.GetInt32()).ToArray(),
        l.TryGetProperty("mean", out var m) ? KerasTestData.B64(m) : null,
        l.GetProperty("samples").GetProperty("index").EnumerateArray().Select(e => e.GetInt32()).ToArray(),
        KerasTestData.B64(l.GetProperty("samples").GetProperty("values")),
        l.TryGetProperty("full", out var f) ? KerasTestData.B64(f) : null)).ToList();

    /// <summary>Keras-layout (NHWC) flat index -> our layout (NCHW for rank 4).</summary>
    public int OurIndex(int nhwc)
    {
        if (Shape.Length != 4) return nhwc;
        int c = Shape[3], w = Shape[2], h = Shape[1];
        int ch = nhwc % c, rest = nhwc / c, x = rest % w, y = rest / w % h, n = rest / w / h;
        return ((n * c + ch) * h + y) * w + x;
    }
}

/// <summary>Error statistics of one comparison.</summary>
internal sealed class TfjsErrorStats
{
    public double MaxAbs, MaxScaled, MaxRel, RefMax;
    public int Count, Failures;
    public string? FirstFailure;

    /// <summary>
    /// Adds a value pair. Tolerance: |ours - ref| &lt;= rtol * |ref| + atol * max|ref of the layer|, i.e. 1e-4
    /// relative plus an absolute floor scaled to the layer's magnitude (values near zero after cancellation).
    /// </summary>
    public void Add(double ours, double reference, double layerMax, double rtol, double atol, string where)
    {
        double err = Math.Abs(ours - reference);
        Count++;
        MaxAbs = Math.Max(MaxAbs, err);
        RefMax = Math.Max(RefMax, layerMax);
        double scaled = err / Math.Max(layerMax, 1e-12);
        MaxScaled = Math.Max(MaxScaled, scaled);
        if (Math.Abs(reference) > 1e-2 * layerMax) MaxRel = Math.Max(MaxRel, err / Math.Abs(reference));
        if (!(err <= rtol * Math.Abs(reference) + atol * layerMax))
        {
            Failures++;
            FirstFailure ??= $"{where}: ours {ours:R}, TF.js {reference:R}, |diff| {err:E3}";
        }
    }

    public override string ToString() =>
        $"n={Count} max|diff|={MaxAbs:E2} max|diff|/max|ref|={MaxScaled:E2} max rel (|ref|>1% of max)={MaxRel:E2} max|ref|={RefMax:G4}";
}

/// <summary>
/// KerasModel against TensorFlow.js 4.22 (CPU backend) on the shipped nsfwjs MobileNetV2 / InceptionV3 and on a
/// tiny generated model that exercises every supported layer kind and weight encoding. Both sides decode the
/// uint8 weights identically (bit for bit, see TfjsLayersModelTests), so the differences are float rounding:
/// TF.js's CPU kernels accumulate in double precision, this engine in float32 (blocked GEMM, different summation
/// order), which leaves about 1e-6 relative per layer and grows to a few 1e-5 through 150 layers.
/// </summary>
public sealed class KerasParityTests(ITestOutputHelper output)
{
    private const double RTol = 1e-4, ATol = 1e-4;

    private IReadOnlyDictionary<string, TfjsErrorStats> Compare(KerasModel model, JsonElement reference, bool requireAllFull = false)
    {
        var img = reference.GetProperty("images");
        var (images, sum) = KerasTestData.Images(img.GetProperty("n").GetInt32(), img.GetProperty("height").GetInt32(), img.GetProperty("width").GetInt32());
        Assert.Equal(img.GetProperty("input_sum").GetInt64(), sum);
        var layers = TfjsReferenceLayer.ReadAll(reference);
        IReadOnlyDictionary<string, Tensor> outs;
        using (Tensor.NoGrad()) outs = model.ForwardLayers(images, layers.Select(l => l.Name).ToArray());
        var result = new Dictionary<string, TfjsErrorStats>();
        foreach (var l in layers)
        {
            var y = outs[l.Name];
            int[] expectShape = l.Shape.Length == 4 ? [l.Shape[0], l.Shape[3], l.Shape[1], l.Shape[2]] : l.Shape;
            Assert.Equal(expectShape, y.Shape.ToArray());
            var ours = y.ToArray();
            double layerMax = l.SampleValues.Concat(l.Full ?? []).Concat(l.Mean ?? []).Max(v => Math.Abs((double)v));
            var stats = new TfjsErrorStats();
            if (l.Full is { } full)
                for (int i = 0; i < full.Length; i++) stats.Add(ours[l.OurIndex(i)], full[i], layerMax, RTol, ATol, $"{l.Name} full[{i}]");
            else Assert.False(requireAllFull, $"{l.Name} has no full values");
            for (int i = 0; i < l.SampleIndex.Length; i++)
                stats.Add(ours[l.OurIndex(l.SampleIndex[i])], l.SampleValues[i], layerMax, RTol, ATol, $"{l.Name} sample {l.SampleIndex[i]}");
            if (l.Mean is { } mean)
            {
                int n = l.Shape[0], c = l.Shape[3], hw = l.Shape[1] * l.Shape[2];
                for (int b = 0; b < n; b++)
                    for (int ch = 0; ch < c; ch++)
                    {
                        double s = 0;
                        for (int p = 0; p < hw; p++) s += ours[(b * c + ch) * hw + p];
                        stats.Add(s / hw, mean[b * c + ch], layerMax, RTol, ATol, $"{l.Name} mean[{b},{ch}]");
                    }
            }
            output.WriteLine($"{l.Name,-24} {stats}");
            result[l.Name] = stats;
        }
        foreach (var (name, s) in result) Assert.True(s.Failures == 0, $"{name}: {s.Failures} of {s.Count} values outside tolerance; first: {s.FirstFailure}; {s}");
        return result;
    }

    [Fact]
    public void TinyModel_EveryLayerMatchesTfjs()
    {
        var model = KerasModel.Load(KerasTestData.TinyDir, outputLayer: "probs");
        Compare(model, KerasTestData.Json(Path.Combine(KerasTestData.TinyDir, "reference.json")), requireAllFull: true);
    }

    [Fact]
    public void MobileNetV2_MatchesTfjs_96x96()
    {
        var model = KerasModel.Load(KerasTestData.ShippedModel("mobilenet_v2"));
        Assert.Equal("out_relu", model.OutputLayer);
        Assert.Equal(1280, model.FeatureSize);
        var stats = Compare(model, KerasTestData.Json(Path.Combine(KerasTestData.FixtureDir, "reference_mobilenet_v2.json")));
        Assert.Contains("out_relu", stats.Keys);
        Assert.Contains("block_1_depthwise_relu", stats.Keys);
    }

    [Fact]
    public void InceptionV3_MatchesTfjs_139x139()
    {
        var model = KerasModel.Load(KerasTestData.ShippedModel("inception_v3"));
        Assert.Equal("mixed10", model.OutputLayer);
        Assert.Equal(2048, model.FeatureSize);
        var stats = Compare(model, KerasTestData.Json(Path.Combine(KerasTestData.FixtureDir, "reference_inception_v3.json")));
        Assert.Contains("mixed5", stats.Keys);
    }

    [Fact]
    public void MobileNetV2_CutAtBlock13_BuildsOnlyThatGraph_AndPoolsItsOutput()
    {
        var dir = KerasTestData.ShippedModel("mobilenet_v2");
        var model = KerasModel.Load(dir, outputLayer: "block_13_expand_relu");
        Assert.Equal(576, model.FeatureSize);
        Assert.Equal("block_13_expand_relu", model.Layers[^1].LayerName);
        Assert.DoesNotContain(model.Layers, l => l.LayerName.StartsWith("block_14", StringComparison.Ordinal) || l.LayerName.StartsWith("Conv_1", StringComparison.Ordinal));
        Assert.DoesNotContain(model.NamedParameters(), p => p.Name.StartsWith("block_13_depthwise", StringComparison.Ordinal));

        var reference = KerasTestData.Json(Path.Combine(KerasTestData.FixtureDir, "reference_mobilenet_v2.json"));
        var layer = TfjsReferenceLayer.ReadAll(reference).Single(l => l.Name == "block_13_expand_relu");
        var (images, _) = KerasTestData.Images(2, 96, 96);
        Tensor f;
        using (Tensor.NoGrad()) f = model.Features(images);
        Assert.Equal([2, 576], f.Shape.ToArray());
        var stats = new TfjsErrorStats();
        var v = f.ToArray();
        double max = layer.Mean!.Max(x => Math.Abs((double)x));
        for (int i = 0; i < v.Length; i++) stats.Add(v[i], layer.Mean![i], max, RTol, ATol, $"feature {i}");
        output.WriteLine($"block_13_expand_relu pooled features: {stats}");
        Assert.Equal(0, stats.Failures);
    }
}

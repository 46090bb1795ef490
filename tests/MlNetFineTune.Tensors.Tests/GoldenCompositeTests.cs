using MlNetFineTune.Tensors.Cpu;
using Xunit;

namespace MlNetFineTune.Tensors.Tests;

/// <summary>
/// Three small architectures built from our ops, compared with PyTorch activations and every gradient:
/// a BERT encoder layer, a ResNet basic block (batch norm in training mode) and a MobileNetV2
/// inverted-residual block (depthwise conv, ReLU6).
/// </summary>
[Collection("GlobalKernelState")]
public class GoldenCompositeTests
{
    // Composites chain 10-20 ops; errors compound a little beyond the single-op bound.
    private const float Rtol = 1e-4f;
    private const float Atol = 1e-4f;

    private sealed class Params(GoldenCase c)
    {
        public readonly Dictionary<string, Tensor> Leaves = new();

        public Tensor this[string name]
        {
            get
            {
                if (Leaves.TryGetValue(name, out var t)) return t;
                var stored = c["in." + name];
                t = Tensor.FromArray(stored.ToArray()).Reshape([.. stored.Shape]).Contiguous();
                if (c.Differentiable.Contains(name)) t.RequiresGrad = true;
                return Leaves[name] = t;
            }
        }
    }

    private static void CheckGradients(GoldenCase c, Params p, string caseName)
    {
        foreach (var name in c.Differentiable)
        {
            var grad = p[name].Grad;
            Assert.True(grad is not null, $"{caseName}: no gradient for {name}");
            Close.Assert(grad!, c["grad." + name], Rtol, Atol, $"{caseName} grad.{name}");
        }
    }

    public static IEnumerable<object[]> Levels() =>
        new[] { SimdLevel.Scalar, SimdLevel.Vector256, SimdLevel.Vector512 }
            .Select(l => new object[] { l });

    [Theory]
    [MemberData(nameof(Levels))]
    public void BertLayer(SimdLevel level)
    {
        using var _ = Simd.Force(level);
        var c = new GoldenCase("bert_layer");
        var p = new Params(c);
        var x = p["x"];
        var mask = p["mask"];
        int b = x.Shape[0], s = x.Shape[1], h = x.Shape[2];
        int heads = c.Int("num_attention_heads"), dh = h / heads;
        float eps = c.Float("layer_norm_eps");

        Tensor Heads(Tensor t) => t.Reshape(b, s, heads, dh).Permute(0, 2, 1, 3);
        var ext = Ops.MulScalar(Ops.AddScalar(Ops.Neg(mask), 1f), c.Float("mask_value")).Reshape(b, 1, 1, s);
        var q = Heads(Ops.Linear(x, p["attention.self.query.weight"], p["attention.self.query.bias"]));
        var k = Heads(Ops.Linear(x, p["attention.self.key.weight"], p["attention.self.key.bias"]));
        var v = Heads(Ops.Linear(x, p["attention.self.value.weight"], p["attention.self.value.bias"]));
        var scores = Ops.Add(Ops.MulScalar(Ops.MatMul(q, k.Transpose(-1, -2)), 1f / MathF.Sqrt(dh)), ext);
        var probs = Ops.Softmax(scores, -1);
        var ctx = Ops.MatMul(probs, v).Permute(0, 2, 1, 3).Reshape(b, s, h);
        var attnOut = Ops.Linear(ctx, p["attention.output.dense.weight"], p["attention.output.dense.bias"]);
        var a = Ops.LayerNorm(Ops.Add(attnOut, x), [h], p["attention.output.LayerNorm.weight"], p["attention.output.LayerNorm.bias"], eps);
        var inter = Ops.Gelu(Ops.Linear(a, p["intermediate.dense.weight"], p["intermediate.dense.bias"]));
        var o = Ops.Linear(inter, p["output.dense.weight"], p["output.dense.bias"]);
        var output = Ops.LayerNorm(Ops.Add(o, a), [h], p["output.LayerNorm.weight"], p["output.LayerNorm.bias"], eps);

        Close.Assert(output, c["out"], Rtol, Atol, "bert_layer out");
        output.Backward(c["gout"]);
        CheckGradients(c, p, $"bert_layer[{level}]");
    }

    [Theory]
    [MemberData(nameof(Levels))]
    public void ResNetBasicBlock(SimdLevel level)
    {
        using var _ = Simd.Force(level);
        var c = new GoldenCase("resnet_basic_block");
        var p = new Params(c);
        int stride = c.Int("stride");
        float momentum = c.Float("bn_momentum"), eps = c.Float("bn_eps");
        bool training = c.Bool("bn_training");
        Tensor Bn(Tensor t, string n) => Ops.BatchNorm2d(t, p[n + ".weight"], p[n + ".bias"], p[n + ".running_mean"], p[n + ".running_var"], training, momentum, eps);

        var x = p["x"];
        var h = Ops.Relu(Bn(Ops.Conv2d(x, p["conv1.weight"], null, (stride, stride), (1, 1)), "bn1"));
        h = Bn(Ops.Conv2d(h, p["conv2.weight"], null, (1, 1), (1, 1)), "bn2");
        var identity = Bn(Ops.Conv2d(x, p["downsample.0.weight"], null, (stride, stride)), "downsample.1");
        var output = Ops.Relu(Ops.Add(h, identity));

        Close.Assert(output, c["out"], Rtol, Atol, "resnet out");
        foreach (var bn in new[] { "bn1", "bn2", "downsample.1" })
            foreach (var stat in new[] { "running_mean", "running_var" })
                Close.Assert(p[$"{bn}.{stat}"], c[$"out.{bn}.{stat}"], Rtol, 1e-6f, $"resnet {bn}.{stat}");
        output.Backward(c["gout"]);
        CheckGradients(c, p, $"resnet_basic_block[{level}]");
    }

    [Theory]
    [MemberData(nameof(Levels))]
    public void MobileNetV2InvertedResidual(SimdLevel level)
    {
        using var _ = Simd.Force(level);
        var c = new GoldenCase("mobilenetv2_inverted_residual");
        var p = new Params(c);
        float eps = c.Float("bn_eps");
        bool training = c.Bool("bn_training");
        Tensor Bn(Tensor t, string n) => Ops.BatchNorm2d(t, p[n + ".weight"], p[n + ".bias"], p[n + ".running_mean"], p[n + ".running_var"], training, 0.1f, eps);

        var x = p["x"];
        int hidden = p["expand.weight"].Shape[0];
        var h = Ops.Relu6(Bn(Ops.Conv2d(x, p["expand.weight"]), "expand_bn"));
        h = Ops.Relu6(Bn(Ops.Conv2d(h, p["depthwise.weight"], null, (1, 1), (1, 1), groups: hidden), "depthwise_bn"));
        var output = Ops.Add(x, Bn(Ops.Conv2d(h, p["project.weight"]), "project_bn"));

        Close.Assert(output, c["out"], Rtol, Atol, "mobilenetv2 out");
        output.Backward(c["gout"]);
        CheckGradients(c, p, $"mobilenetv2_inverted_residual[{level}]");
    }
}

using Xunit;

namespace MlNetFineTune.Tensors.Tests;

/// <summary>
/// Every op against PyTorch 1.13.1: forward outputs and the gradients of sum(out * gout) for every
/// differentiable input, from the fixtures written by tests/golden/generate_golden.py.
/// </summary>
[Collection("GlobalKernelState")]
public class GoldenOpTests
{
    // fp32 tolerances: |ours - torch| <= atol + rtol * |torch|.
    public const float Rtol = 1e-4f;
    public const float Atol = 1e-5f;

    private static readonly HashSet<string> Composite = ["bert_layer", "resnet_basic_block", "mobilenetv2_inverted_residual", "optim"];

    public static IEnumerable<object[]> OpCases() =>
        GoldenCase.AllNames().Where(n => !Composite.Contains(new GoldenCase(n).Op)).Select(n => new object[] { n });

    private static readonly HashSet<string> KernelOps = ["matmul", "linear", "conv2d", "softmax", "attention_softmax", "log_softmax", "layer_norm", "gelu", "sum", "mean", "batch_norm2d", "max_pool2d", "avg_pool2d"];

    /// <summary>The SIMD-dispatched kernels (GEMM, conv, row kernels) on every path; above the hardware's level the runtime emulates the vectors.</summary>
    public static IEnumerable<object[]> KernelCases() =>
        from n in GoldenCase.AllNames()
        where KernelOps.Contains(new GoldenCase(n).Op)
        from level in new[] { Cpu.SimdLevel.Scalar, Cpu.SimdLevel.Vector256, Cpu.SimdLevel.Vector512 }
        select new object[] { n, level };

    [Fact]
    public void FixturesArePresent()
    {
        var names = GoldenCase.AllNames().ToList();
        Assert.True(names.Count >= 200, $"expected the committed golden fixtures, found {names.Count} in {GoldenCase.Directory}");
    }

    [Theory]
    [MemberData(nameof(KernelCases))]
    public void MatchesPyTorchOnEverySimdPath(string name, Cpu.SimdLevel level)
    {
        using var _ = Cpu.Simd.Force(level);
        MatchesPyTorch(name);
    }

    [Theory]
    [MemberData(nameof(OpCases))]
    public void MatchesPyTorch(string name)
    {
        var c = new GoldenCase(name);
        var leaves = new Dictionary<string, Tensor>();
        var args = new Dictionary<string, Tensor>();
        var noncontig = c.NoncontiguousInputs;
        foreach (var input in c.Inputs)
        {
            var stored = c["in." + input];
            var leaf = stored.DType == DType.Float32 ? Tensor.FromArray(stored.ToArray()).Reshape([.. stored.Shape]).Contiguous() : stored;
            if (c.Differentiable.Contains(input)) leaf.RequiresGrad = true;
            leaves[input] = leaf;
            var view = leaf;
            if (noncontig.Contains(input)) view = leaf.Transpose(0, 1);
            if (c.Op == "matmul" && ((input == "a" && c.Bool("transpose_a")) || (input == "b" && c.Bool("transpose_b"))))
                view = leaf.Transpose(-1, -2);
            if (view != leaf) Assert.False(view.IsContiguous && view.Rank > 1 && view.Shape[0] > 1 && view.Shape[1] > 1, "the view should be strided");
            args[input] = view;
        }

        var outputs = Run(c, args);

        foreach (var (key, actual) in outputs)
        {
            Assert.True(c.Has(key), $"{name}: op produced '{key}' which the fixture lacks");
            Close.Assert(actual, c[key], Rtol, Atol, $"{name} {key}");
        }
        foreach (var key in c.Names.Where(k => k == "out" || k.StartsWith("out.")))
            Assert.True(outputs.ContainsKey(key), $"{name}: fixture has '{key}' but the op did not produce it");

        if (c.Differentiable.Length == 0) return;
        var gouts = outputs.Keys.Where(k => c.Has("g" + k)).ToList();
        Assert.NotEmpty(gouts);
        if (gouts.Count == 1) outputs[gouts[0]].Backward(c["g" + gouts[0]]);
        else
        {
            Tensor? total = null;
            foreach (var k in gouts)
            {
                var term = Ops.Sum(Ops.Mul(outputs[k], c["g" + k]));
                total = total is null ? term : Ops.Add(total, term);
            }
            total!.Backward();
        }
        foreach (var input in c.Differentiable)
        {
            var grad = leaves[input].Grad;
            Assert.True(grad is not null, $"{name}: no gradient reached '{input}'");
            float atol = outputs.Values.Any(o => o.Rank == 0) ? 1e-4f : Atol;
            Close.Assert(grad!, c["grad." + input], Rtol, atol, $"{name} grad.{input}");
        }
    }

    private static Dictionary<string, Tensor> Run(GoldenCase c, Dictionary<string, Tensor> a)
    {
        Tensor x() => a["x"];
        var r = new Dictionary<string, Tensor>();
        switch (c.Op)
        {
            case "add": r["out"] = a["a"] + a["b"]; break;
            case "sub": r["out"] = a["a"] - a["b"]; break;
            case "mul": r["out"] = a["a"] * a["b"]; break;
            case "div": r["out"] = a["a"] / a["b"]; break;
            case "pow_tensor": r["out"] = Ops.Pow(a["a"], a["b"]); break;
            case "pow": r["out"] = Ops.Pow(x(), c.Float("exponent")); break;
            case "neg": r["out"] = Ops.Neg(x()); break;
            case "sqrt": r["out"] = Ops.Sqrt(x()); break;
            case "rsqrt": r["out"] = Ops.Rsqrt(x()); break;
            case "exp": r["out"] = Ops.Exp(x()); break;
            case "log": r["out"] = Ops.Log(x()); break;
            case "abs": r["out"] = Ops.Abs(x()); break;
            case "tanh": r["out"] = Ops.Tanh(x()); break;
            case "sigmoid": r["out"] = Ops.Sigmoid(x()); break;
            case "relu": r["out"] = Ops.Relu(x()); break;
            case "relu6": r["out"] = Ops.Relu6(x()); break;
            case "gelu": r["out"] = Ops.Gelu(x(), c.Str("approximate") == "tanh" ? GeluApproximation.Tanh : GeluApproximation.None); break;
            case "clamp": r["out"] = Ops.Clamp(x(), c.NullableFloat("min"), c.NullableFloat("max")); break;
            case "add_scalar": r["out"] = Ops.AddScalar(x(), c.Float("scalar")); break;
            case "mul_scalar": r["out"] = Ops.MulScalar(x(), c.Float("scalar")); break;
            case "sum": r["out"] = Ops.Sum(x(), c.Ints("dims"), c.Bool("keepdim")); break;
            case "mean": r["out"] = Ops.Mean(x(), c.Ints("dims"), c.Bool("keepdim")); break;
            case "var": r["out"] = Ops.Var(x(), c.Ints("dims"), c.Bool("unbiased", true), c.Bool("keepdim")); break;
            case "max":
                {
                    var dims = c.Ints("dims");
                    if (dims is { Length: 1 })
                    {
                        var (v, i) = Ops.Max(x(), dims[0], c.Bool("keepdim"));
                        r["out"] = v;
                        r["out.indices"] = i;
                    }
                    else r["out"] = Ops.Amax(x(), dims, c.Bool("keepdim"));
                    break;
                }
            case "matmul": r["out"] = Ops.MatMul(a["a"], a["b"]); break;
            case "linear": r["out"] = Ops.Linear(x(), a["weight"], a.GetValueOrDefault("bias")); break;
            case "embedding":
                {
                    int? pad = c.Params.TryGetProperty("padding_idx", out var p) && p.ValueKind == System.Text.Json.JsonValueKind.Number ? p.GetInt32() : null;
                    r["out"] = Ops.Embedding(a["ids"], a["weight"], pad);
                    break;
                }
            case "layer_norm": r["out"] = Ops.LayerNorm(x(), c.Ints("normalized_shape")!, a.GetValueOrDefault("weight"), a.GetValueOrDefault("bias"), c.Float("eps")); break;
            case "batch_norm2d":
                {
                    var rm = a["running_mean"];
                    var rv = a["running_var"];
                    r["out"] = Ops.BatchNorm2d(x(), a["weight"], a["bias"], rm, rv, c.Bool("training"), c.Float("momentum"), c.Float("eps"));
                    r["out.running_mean"] = rm;
                    r["out.running_var"] = rv;
                    break;
                }
            case "softmax": r["out"] = Ops.Softmax(x(), c.Int("dim")); break;
            case "attention_softmax": r["out"] = Ops.AttentionSoftmax(x(), c.Float("scale"), a.GetValueOrDefault("mask")); break;
            case "log_softmax": r["out"] = Ops.LogSoftmax(x(), c.Int("dim")); break;
            case "conv2d":
                r["out"] = Ops.Conv2d(x(), a["weight"], a.GetValueOrDefault("bias"), c.Pair("stride"), c.Pair("padding"), c.Pair("dilation"), c.Int("groups"));
                break;
            case "max_pool2d": r["out"] = Ops.MaxPool2d(x(), c.Pair("kernel_size"), c.Pair("stride"), c.Pair("padding")); break;
            case "avg_pool2d": r["out"] = Ops.AvgPool2d(x(), c.Pair("kernel_size"), c.Pair("stride"), c.Pair("padding"), c.Bool("count_include_pad", true)); break;
            case "global_avg_pool2d": r["out"] = Ops.GlobalAvgPool2d(x(), keepDim: true); break;
            case "zero_pad2d":
                {
                    var p = c.Ints("padding")!;
                    r["out"] = Ops.ZeroPad2d(x(), p[0], p[1], p[2], p[3]);
                    break;
                }
            case "cross_entropy":
                r["out"] = Ops.CrossEntropy(a["logits"], a["target"], a.GetValueOrDefault("weight"), c.Float("label_smoothing"),
                    c.Int("ignore_index"), c.Str("reduction") == "sum" ? Reduction.Sum : Reduction.Mean);
                break;
            case "binary_cross_entropy_with_logits":
                r["out"] = Ops.BinaryCrossEntropyWithLogits(a["logits"], a["targets"], a.GetValueOrDefault("pos_weight"));
                break;
            case "masked_fill": r["out"] = Ops.MaskedFill(x(), a["mask"], c.Float("value")); break;
            case "where": r["out"] = Ops.Where(a["cond"], a["a"], a["b"]); break;
            case "concat": r["out"] = Ops.Concat(c.Inputs.Select(n => a[n]).ToArray(), c.Int("dim")); break;
            case "stack": r["out"] = Ops.Stack(c.Inputs.Select(n => a[n]).ToArray(), c.Int("dim")); break;
            case "split":
                {
                    var sections = c.Ints("sections");
                    var parts = sections is not null ? Ops.Split(x(), sections, c.Int("dim")) : Ops.Split(x(), c.Int("split_size"), c.Int("dim"));
                    for (int i = 0; i < parts.Length; i++) r["out." + i] = parts[i];
                    break;
                }
            case "gather": r["out"] = Ops.Gather(x(), c.Int("dim"), a["index"]); break;
            case "index_select": r["out"] = Ops.IndexSelect(x(), c.Int("dim"), a["index"]); break;
            default: throw new NotSupportedException($"No dispatch for golden op '{c.Op}' (case {c.Name}).");
        }
        return r;
    }
}

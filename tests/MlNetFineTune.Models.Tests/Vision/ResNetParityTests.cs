using MlNetFineTune.Models.Vision;
using MlNetFineTune.Tensors;
using MlNetFineTune.Tensors.Cpu;
using MlNetFineTune.Tensors.IO;
using Xunit;

namespace MlNetFineTune.Models.Tests;

/// <summary>
/// torchvision ResNets (basic and bottleneck blocks) saved with torch.save: logits, pooled features and every
/// parameter gradient equal PyTorch's, in eval mode and in train mode (batch statistics, running-stat updates).
/// </summary>
[Collection("ConvPathKnobs")]
public class ResNetParityTests
{
    private static void AssertClose(Tensor actual, Tensor expected, string what, float rtol, float atol)
    {
        Assert.True(actual.Shape.SequenceEqual(expected.Shape), $"{what}: shape [{string.Join(", ", actual.Shape)}] vs [{string.Join(", ", expected.Shape)}]");
        var a = actual.ToArray();
        var e = expected.ToArray();
        // Per-tensor bound (as the fixture README suggests): max |a - e| <= rtol * max |e| + atol.
        float scale = e.Length == 0 ? 0 : e.Max(Math.Abs);
        for (int i = 0; i < a.Length; i++)
            Assert.True(Math.Abs(a[i] - e[i]) <= rtol * scale + atol, $"{what}[{i}]: {a[i]:R} vs torch {e[i]:R} (scale {scale})");
    }

    [Theory]
    [InlineData("resnet-tiny", ResNetBlock.Basic)]
    [InlineData("resnet-bottleneck-tiny", ResNetBlock.Bottleneck)]
    public void MatchesTorchvision(string name, ResNetBlock block) => CheckAgainstTorchvision(name, block);

    [Theory]
    [InlineData("resnet-tiny", ResNetBlock.Basic)]
    [InlineData("resnet-bottleneck-tiny", ResNetBlock.Bottleneck)]
    public void MatchesTorchvision_WithWinogradOnEvery3x3Convolution(string name, ResNetBlock block)
    {
        // The fixtures' 8-64 channels and 2x2-16x16 maps sit below the Winograd thresholds, so lower them: every
        // 3x3 stride-1 convolution (forward, input and weight gradients) then runs F(2x2, 3x3).
        int minChannels = ConvWinograd.MinChannels, scalarNarrow = ConvWinograd.ScalarNarrowMinChannels, narrowChunks = ConvWinograd.NarrowMinChunks;
        ConvWinograd.MinChannels = 1;
        ConvWinograd.ScalarNarrowMinChannels = 1;
        ConvWinograd.NarrowMinChunks = 1;
        try
        {
            Assert.True(ConvWinograd.Applies(new Conv2dShape(2, 8, 16, 16, 8, 3, 3, 1, 1, 1, 1, 1, 1, 1)));
            CheckAgainstTorchvision(name, block);
        }
        finally
        {
            ConvWinograd.MinChannels = minChannels;
            ConvWinograd.ScalarNarrowMinChannels = scalarNarrow;
            ConvWinograd.NarrowMinChunks = narrowChunks;
        }
    }

    private static void CheckAgainstTorchvision(string name, ResNetBlock block)
    {
        var dir = TestPaths.Fixture("models", name);
        var reference = SafeTensors.Load(Path.Combine(dir, "reference.safetensors"));
        var state = Checkpoints.Load(Path.Combine(dir, "resnet.pth"));
        var model = ResNet.FromStateDict(state, new Rng(0), name);
        Assert.Equal(block, model.Config.Block);

        model.Eval();
        var x = reference["pixels"];
        var features = model.Features(x);
        AssertClose(features, reference["features"], $"{name} features", 1e-4f, 1e-6f);
        var logits = model.Fc!.Forward(features);
        AssertClose(logits, reference["logits"], $"{name} logits", 1e-4f, 1e-6f);
        logits.Backward(reference["g_logits"]);
        foreach (var (pname, p) in model.NamedParameters())
            AssertClose(p.Grad!, reference["grad." + pname], $"{name} grad.{pname}", 1e-4f, 1e-5f);

        // Train mode from the same initial state: batch statistics, running-stat updates, gradients.
        var fresh = ResNet.FromStateDict(state, new Rng(0), name);
        fresh.Train();
        var trainLogits = fresh.Forward(x);
        AssertClose(trainLogits, reference["train.logits"], $"{name} train.logits", 1e-4f, 1e-5f);
        trainLogits.Backward(reference["g_logits"]);
        foreach (var (pname, p) in fresh.NamedParameters())
            AssertClose(p.Grad!, reference["train.grad." + pname], $"{name} train.grad.{pname}", 2e-4f, 1e-5f);
        foreach (var (bname, b) in fresh.NamedBuffers())
            if (reference.TryGetValue("train." + bname, out var expected) && b.DType == DType.Float32)
                AssertClose(b, expected, $"{name} train.{bname}", 1e-4f, 1e-6f);
    }

    [Fact]
    public void WrongShapeNamesTheParameter()
    {
        var dir = TestPaths.Fixture("models", "resnet-tiny");
        var state = new Dictionary<string, Tensor>(Checkpoints.Load(Path.Combine(dir, "resnet.pth")));
        state["layer2.0.conv2.weight"] = Tensor.Zeros(16, 16, 5, 5);
        var ex = Assert.Throws<InvalidDataException>(() => ResNet.FromStateDict(state, new Rng(0), "resnet.pth"));
        Assert.Contains("layer2.0.conv2.weight", ex.Message);
        Assert.Contains("[16, 16, 5, 5]", ex.Message);
        Assert.Contains("[16, 16, 3, 3]", ex.Message);
    }
}

/// <summary>Tests that lower the convolution path thresholds (process-wide) run alone.</summary>
[CollectionDefinition("ConvPathKnobs", DisableParallelization = true)]
public sealed class ConvPathKnobsCollection
{
}

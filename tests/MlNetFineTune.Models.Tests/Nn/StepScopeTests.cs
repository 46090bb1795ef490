using MlNetFineTune.Models.Nn;
using MlNetFineTune.Models.Text;
using MlNetFineTune.Models.Vision;
using MlNetFineTune.Tensors;
using MlNetFineTune.Tensors.Cpu;
using MlNetFineTune.Tensors.Optim;
using Xunit;

namespace MlNetFineTune.Models.Tests.Nn;

/// <summary>
/// Training steps inside <see cref="BufferPool.StepScope"/> (every buffer of a step handed back to the pool at its end,
/// gradients zeroed in place) must train exactly as steps without it, and stop allocating activations afresh.
/// </summary>
// Alone: the buffer pool is process-wide, and a test running beside these could take the buffers a scoped step
// handed back (the allocation comparison would then see fresh buffers).
[Collection("BufferPoolAlone")]
public sealed class StepScopeTests
{
    private const int Steps = 4;

    private sealed record Run(Dictionary<string, float[]> State, long LastStepBytes);

    private static Run Train(Module model, Optimizer optimizer, Func<Tensor> loss, bool scoped)
    {
        model.Train();
        long lastStep = 0;
        for (int s = 0; s < Steps; s++)
        {
            long before = GC.GetAllocatedBytesForCurrentThread();
            var scope = scoped ? BufferPool.StepScope() : null;
            try
            {
                var l = loss();
                Assert.True(float.IsFinite(l.Item()));
                l.Backward();
                optimizer.Step();
                optimizer.ZeroGrad(setToNone: !scoped);
            }
            finally { scope?.Dispose(); }
            lastStep = GC.GetAllocatedBytesForCurrentThread() - before;
        }
        return new Run(model.StateDict().ToDictionary(kv => kv.Key, kv => kv.Value.ToArray()), lastStep);
    }

    private static void AssertSameTraining(Run reference, Run scoped)
    {
        Assert.Equal(reference.State.Keys.Order(), scoped.State.Keys.Order());
        foreach (var (name, values) in reference.State)
            Assert.True(values.AsSpan().SequenceEqual(scoped.State[name]), $"{name} differs after {Steps} scoped steps");
        // Activations, saved values and gradients all come back from the pool: what a scoped step still allocates is
        // bookkeeping (tensor objects, shapes, closures), far below an unscoped step's fresh buffers.
        Assert.True(scoped.LastStepBytes * 4 < reference.LastStepBytes,
            $"a scoped step allocated {scoped.LastStepBytes:N0} bytes, an unscoped one {reference.LastStepBytes:N0}");
    }

    [Fact]
    public void BertSequenceClassifier_TrainsBitwiseTheSame_AndStopsAllocatingActivations()
    {
        var cfg = new TransformerConfig
        {
            VocabSize = 500, HiddenSize = 64, NumLayers = 2, NumHeads = 4, IntermediateSize = 128, MaxPositions = 64,
            HiddenDropout = 0.1f, AttentionDropout = 0.1f, HiddenAct = "gelu", TypeVocabSize = 2, LayerNormEps = 1e-12f,
        };
        var rng = new Rng(11);
        int batch = 4, seq = 32;   // activations 4 x 32 x 64 = 8,192 floats and up: all pooled
        var ids = new long[batch * seq];
        for (int i = 0; i < ids.Length; i++) ids[i] = 1 + rng.NextInt(cfg.VocabSize - 1);
        var mask = Enumerable.Repeat(1L, batch * seq).ToArray();
        for (int i = 0; i < 5; i++) mask[seq - 1 - i] = 0;   // padding in the first sentence
        var labels = new long[] { 0, 1, 1, 0 };

        Run Once(bool scoped)
        {
            var model = new TransformerClassifier(cfg, TransformerHead.SequenceClassification, 2, new Rng(5));
            var opt = new AdamW(model.Parameters(), learningRate: 1e-3);
            return Train(model, opt, () => Ops.CrossEntropy(
                model.Forward(Tensor.FromArray(ids, batch, seq), Tensor.FromArray(mask, batch, seq)), Tensor.FromArray(labels)), scoped);
        }

        var reference = Once(scoped: false);
        AssertSameTraining(reference, Once(scoped: true));
    }

    [Fact]
    public void ResNetWithBatchNorm_TrainsBitwiseTheSame_AndStopsAllocatingActivations()
    {
        var cfg = new ResNetConfig(ResNetBlock.Basic, [1, 1], [16, 32], NumClasses: 3);
        var images = Tensor.RandN(new Rng(3), 4, 3, 64, 64);   // stage outputs 16 x 16 x 16 and 32 x 8 x 8 per image: pooled
        var labels = Tensor.FromArray(new long[] { 0, 2, 1, 2 });

        Run Once(bool scoped)
        {
            var model = new ResNet(cfg, new Rng(9));
            var opt = new Sgd(model.Parameters(), learningRate: 0.05, momentum: 0.9, weightDecay: 1e-4);
            return Train(model, opt, () => Ops.CrossEntropy(model.Forward(images), labels), scoped);
        }

        var reference = Once(scoped: false);
        // Batch norm's running statistics are part of the state compared.
        Assert.Contains(reference.State.Keys, k => k.EndsWith("running_mean", StringComparison.Ordinal));
        AssertSameTraining(reference, Once(scoped: true));
    }
}

[CollectionDefinition("BufferPoolAlone", DisableParallelization = true)]
public sealed class BufferPoolAloneCollection;

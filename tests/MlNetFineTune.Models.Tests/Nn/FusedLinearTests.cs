using MlNetFineTune.Models.Nn;
using MlNetFineTune.Models.Text;
using MlNetFineTune.Tensors;
using Xunit;

namespace MlNetFineTune.Models.Tests;

public class FusedLinearTests
{
    private static TransformerClassifier Model(TransformerFamily family) => new(new TransformerConfig
    {
        Family = family,
        VocabSize = 300, HiddenSize = 256, NumLayers = 2, NumHeads = 4, IntermediateSize = 512, MaxPositions = 64,
        HiddenDropout = 0.1f, AttentionDropout = 0.1f, HiddenAct = "gelu", TypeVocabSize = family == TransformerFamily.Bert ? 2 : 0,
        LayerNormEps = 1e-12f, PadTokenId = 1,
    }, TransformerHead.SequenceClassification, 3, new Rng(11));

    private static float[] Logits(TransformerClassifier model, Tensor ids, Tensor mask, bool fused)
    {
        bool before = FusedLinear.Disabled;
        FusedLinear.Disabled = !fused;
        try { using (Tensor.NoGrad()) return model.Forward(ids, mask).ToArray(); }
        finally { FusedLinear.Disabled = before; }
    }

    [Theory]
    [InlineData(TransformerFamily.Bert)]
    [InlineData(TransformerFamily.DistilBert)]
    public void FusedProjections_GiveTheSeparateLayersBits_AndFollowWeightWrites(TransformerFamily family)
    {
        // Inference runs the query, key and value projections of a layer as one product (the last layer of a sequence
        // classifier: keys and values): the logits must be bitwise those of the separate products, at one sentence and at
        // a padded batch, and a weight written after a forward (Tensor.AsSpan, as optimizers and loading write) must be
        // seen by the next forward.
        var model = Model(family);
        model.Eval();
        var rng = new Rng(12);
        foreach (var (b, s) in new[] { (1, 32), (2, 20) })
        {
            var ids = Tensor.FromArray(Enumerable.Range(0, b * s).Select(_ => (long)(2 + rng.NextInt(297))).ToArray(), b, s);
            var mask = Tensor.FromArray(Enumerable.Range(0, b * s).Select(i => i % s < s - 5 * (i / s) ? 1L : 0L).ToArray(), b, s);
            int builds = FusedLinear.Builds;
            var fused = Logits(model, ids, mask, fused: true);
            Assert.True(FusedLinear.Builds > builds || b > 1, "the fused projections did not run");
            Assert.Equal(Logits(model, ids, mask, fused: false), fused);

            // A key weight of the first layer changes: the fused weight must be rebuilt.
            var key = model.NamedParameters().First(p => p.Name.Contains(".0.") && (p.Name.Contains("key.weight") || p.Name.Contains("k_lin.weight"))).Parameter;
            key.AsSpan()[5] += 0.25f;
            builds = FusedLinear.Builds;
            var after = Logits(model, ids, mask, fused: true);
            Assert.True(FusedLinear.Builds > builds, "a written weight did not rebuild the fused projections");
            Assert.NotEqual(fused, after);
            Assert.Equal(Logits(model, ids, mask, fused: false), after);
        }
    }

    [Fact]
    public void FusedProjections_StayOutOfTraining()
    {
        // With gradients the layers run one by one (each weight gets its own gradient); nothing is built.
        var model = Model(TransformerFamily.Bert);
        model.Train();
        var ids = Tensor.FromArray(Enumerable.Range(0, 32).Select(i => (long)(2 + i)).ToArray(), 1, 32);
        int builds = FusedLinear.Builds;
        var logits = model.Forward(ids);
        Ops.Sum(logits).Backward();
        Assert.Equal(builds, FusedLinear.Builds);
        Assert.All(model.NamedParameters().Where(p => p.Name.Contains("query.weight")), p => Assert.NotNull(p.Parameter.Grad));
    }
}

using MlNetFineTune.Models.Text;
using MlNetFineTune.Tensors;
using MlNetFineTune.Tensors.IO;
using Xunit;

namespace MlNetFineTune.Models.Tests;

/// <summary>
/// Tiny BERT, RoBERTa and DistilBERT checkpoints in Hugging Face's exact on-disk format (written by
/// tests/golden/generate_model_fixtures.py with PyTorch 1.13.1): our activations, logits and every
/// parameter gradient must equal PyTorch's.
/// </summary>
public class TransformerParityTests
{
    private const float Rtol = 1e-4f;
    private const float Atol = 1e-5f;

    private static void AssertClose(Tensor actual, Tensor expected, string what, float atol = Atol)
    {
        Assert.True(actual.Shape.SequenceEqual(expected.Shape), $"{what}: shape [{string.Join(", ", actual.Shape)}] vs [{string.Join(", ", expected.Shape)}]");
        var a = actual.ToArray();
        var e = expected.ToArray();
        for (int i = 0; i < a.Length; i++)
            Assert.True(Math.Abs(a[i] - e[i]) <= atol + Rtol * Math.Abs(e[i]), $"{what}[{i}]: {a[i]:R} vs torch {e[i]:R}");
    }

    [Theory]
    [InlineData("bert-tiny", TransformerHead.SequenceClassification)]
    [InlineData("roberta-tiny", TransformerHead.SequenceClassification)]
    [InlineData("distilbert-tiny", TransformerHead.SequenceClassification)]
    [InlineData("bert-tiny-token", TransformerHead.TokenClassification)]
    public void MatchesPyTorch(string name, TransformerHead head)
    {
        var dir = TestPaths.Fixture("models", name);
        var reference = SafeTensors.Load(Path.Combine(dir, "reference.safetensors"));
        var config = TransformerConfig.Load(Path.Combine(dir, "config.json"));
        int labels = config.Labels?.Count ?? 2;
        var (model, report) = PretrainedTransformer.LoadClassifier(dir, head, labels, new Rng(0));
        Assert.Empty(report.NewlyInitialized);
        model.Eval();

        var ids = reference["input_ids"];
        var mask = reference["attention_mask"];
        reference.TryGetValue("token_type_ids", out var types);
        var hidden = model.Encoder.Forward(ids, mask, types);
        AssertClose(hidden, reference["last_hidden_state"], $"{name} last_hidden_state");
        if (reference.TryGetValue("pooler_output", out var pooled))
            AssertClose(model.Encoder.Pool(hidden), pooled, $"{name} pooler_output");

        if (head == TransformerHead.SequenceClassification)
        {
            // The measurement switch that runs the full last layer gives the same logits (it only costs more).
            TransformerClassifier.FullLastLayer = true;
            try { using (Tensor.NoGrad()) AssertClose(model.Forward(ids, mask, types), reference["logits"], $"{name} logits, full last layer"); }
            finally { TransformerClassifier.FullLastLayer = false; }
        }
        var logits = model.Forward(ids, mask, types);
        AssertClose(logits, reference["logits"], $"{name} logits");
        logits.Backward(reference["g_logits"]);
        int checkedGrads = 0;
        foreach (var (pname, p) in model.NamedParameters())
        {
            if (!reference.TryGetValue("grad." + pname, out var g)) continue;
            Assert.True(p.Grad is not null, $"{name}: no gradient for {pname}");
            AssertClose(p.Grad!, g, $"{name} grad.{pname}", atol: 1e-5f);
            checkedGrads++;
        }
        Assert.True(checkedGrads >= model.NamedParameters().Count() - 2, $"{name}: only {checkedGrads} gradients compared");
    }

    [Fact]
    public void LegacyGammaBetaNamesAndPretrainingHeadsLoad()
    {
        var dir = TestPaths.Fixture("models", "bert-legacy-names");
        var (model, report) = PretrainedTransformer.LoadClassifier(dir, TransformerHead.SequenceClassification, 2, new Rng(0));
        Assert.Contains("bert.embeddings.LayerNorm.weight", report.Loaded);
        Assert.Contains("classifier.weight", report.NewlyInitialized);
        Assert.Contains(report.Ignored, k => k.StartsWith("cls.", StringComparison.Ordinal));
        var reference = SafeTensors.Load(Path.Combine(dir, "reference.safetensors"));
        model.Eval();
        var hidden = model.Encoder.Forward(reference["input_ids"], reference["attention_mask"], reference.GetValueOrDefault("token_type_ids"));
        AssertClose(hidden, reference["last_hidden_state"], "legacy last_hidden_state");
    }

    [Fact]
    public void ShapeDisagreeingWithConfigNamesTheParameter()
    {
        var dir = TestPaths.Fixture("models", "bert-tiny");
        var config = TransformerConfig.Load(Path.Combine(dir, "config.json"));
        var model = new TransformerClassifier(config with { IntermediateSize = config.IntermediateSize + 1 }, TransformerHead.SequenceClassification, 3, new Rng(0));
        var ex = Assert.Throws<InvalidDataException>(() => PretrainedTransformer.LoadInto(model, Checkpoints.Load(dir), dir));
        Assert.Contains("intermediate.dense.weight", ex.Message);
        Assert.Contains($"[{config.IntermediateSize}, {config.HiddenSize}]", ex.Message);
        Assert.Contains($"[{config.IntermediateSize + 1}, {config.HiddenSize}]", ex.Message);
    }

    [Fact]
    public void UnknownModelTypeAndMissingFilesAreClear()
    {
        var tmp = Directory.CreateTempSubdirectory("mlft-cfg-");
        try
        {
            File.WriteAllText(Path.Combine(tmp.FullName, "config.json"), "{\"model_type\": \"gpt2\", \"n_embd\": 8}");
            var ex = Assert.Throws<NotSupportedException>(() => TransformerConfig.Load(Path.Combine(tmp.FullName, "config.json")));
            Assert.Contains("gpt2", ex.Message);
            File.WriteAllText(Path.Combine(tmp.FullName, "config.json"), "{\"model_type\": \"bert\", \"hidden_size\": \"big\"}");
            var ex2 = Assert.Throws<InvalidDataException>(() => TransformerConfig.Load(Path.Combine(tmp.FullName, "config.json")));
            Assert.Contains("hidden_size", ex2.Message);
            File.WriteAllText(Path.Combine(tmp.FullName, "config.json"), "{\"model_type\": \"bert\", \"hidden_size\": 8, \"num_attention_heads\": 2, \"intermediate_size\": 8, \"num_hidden_layers\": 1, \"vocab_size\": 10}");
            var ex3 = Assert.Throws<FileNotFoundException>(() => PretrainedTransformer.LoadClassifier(tmp.FullName, TransformerHead.SequenceClassification, 2, new Rng(0)));
            Assert.Contains("model.safetensors", ex3.Message);
        }
        finally
        {
            tmp.Delete(true);
        }
    }
    [Fact]
    public void InferenceForwardRecyclingBuffersMatchesTheGradForwardAndRepeatsExactly()
    {
        // Large enough (4 x 64 tokens, hidden 256) that every intermediate is recycled between layers.
        var cfg = new TransformerConfig
        {
            VocabSize = 500, HiddenSize = 256, NumLayers = 3, NumHeads = 4, IntermediateSize = 512, MaxPositions = 128,
            HiddenDropout = 0.1f, AttentionDropout = 0.1f, HiddenAct = "gelu", TypeVocabSize = 2, LayerNormEps = 1e-12f,
        };
        var encoder = new TransformerClassifier(cfg, TransformerHead.SequenceClassification, 2, new Rng(3)).Encoder;
        encoder.Eval();
        var rng = new Rng(4);
        Tensor Ids() => Tensor.FromArray(Enumerable.Range(0, 256).Select(_ => (long)(1 + rng.NextInt(499))).ToArray(), 4, 64);
        var ids = Ids();
        var mask = Tensor.FromArray(Enumerable.Range(0, 256).Select(i => i % 64 < 50 + i / 64 * 4 ? 1L : 0L).ToArray(), 4, 64);
        var withGraph = encoder.Forward(ids, mask);               // parameters require grad: a graph, nothing recycled
        Assert.True(withGraph.RequiresGrad);
        var want = withGraph.Detach().ToArray();
        float[]? first = null;
        for (int pass = 0; pass < 3; pass++)
        {
            float[] got;
            using (Tensor.NoGrad())
            {
                _ = encoder.Forward(Ids(), mask);                    // scribbles over recycled buffers in between
                got = encoder.Forward(ids, mask).ToArray();
            }
            for (int i = 0; i < want.Length; i++)
                Assert.True(Math.Abs(got[i] - want[i]) <= 1e-5f + 1e-5f * Math.Abs(want[i]), $"pass {pass} [{i}]: {got[i]} vs {want[i]}");
            if (first is null) first = got;
            else Assert.Equal(first, got);
        }
    }

    [Theory]
    [InlineData(TransformerFamily.Bert)]
    [InlineData(TransformerFamily.Roberta)]
    [InlineData(TransformerFamily.DistilBert)]
    public void FirstTokenForwardEqualsTheFullForwardsFirstRowWithGradients(TransformerFamily family)
    {
        // Hidden 256 and 3 x 40 tokens so the layer GEMMs take the packed path; padding in two rows; no dropout so the
        // training-mode gradients are deterministic. The trimmed last layer must give the same first-token state and
        // the same gradient for every parameter (keys and values of the last layer still see every token).
        var cfg = new TransformerConfig
        {
            Family = family,
            VocabSize = 300, HiddenSize = 256, NumLayers = 2, NumHeads = 4, IntermediateSize = 512, MaxPositions = 64,
            HiddenDropout = 0f, AttentionDropout = 0f, HiddenAct = "gelu", TypeVocabSize = family == TransformerFamily.Bert ? 2 : 0,
            LayerNormEps = 1e-12f, PadTokenId = 1,
        };
        var encoder = new TransformerClassifier(cfg, TransformerHead.SequenceClassification, 2, new Rng(5)).Encoder;
        encoder.Train();
        var rng = new Rng(6);
        const int b = 3, s = 40;
        var ids = Tensor.FromArray(Enumerable.Range(0, b * s).Select(_ => (long)(2 + rng.NextInt(297))).ToArray(), b, s);
        var mask = Tensor.FromArray(Enumerable.Range(0, b * s).Select(i => i % s < s - 7 * (i / s) ? 1L : 0L).ToArray(), b, s);
        var probe = Tensor.FromArray(Enumerable.Range(0, b * 256).Select(_ => rng.NextFloat() - 0.5f).ToArray(), b, 256);

        Dictionary<string, float[]> Grads(Tensor first)
        {
            encoder.ZeroGrad();
            Ops.Sum(Ops.Mul(first, probe)).Backward();
            return encoder.NamedParameters().Where(p => p.Parameter.Grad is not null).ToDictionary(p => p.Name, p => p.Parameter.Grad!.ToArray());
        }

        var full = TransformerEncoder.FirstToken(encoder.Forward(ids, mask)).Contiguous();
        var fullGrads = Grads(full);
        var trimmed = encoder.ForwardFirstToken(ids, mask);
        Assert.Equal([b, 256], trimmed.Shape);
        AssertClose(trimmed, full.Detach(), "first-token state", atol: 1e-5f);
        var trimmedGrads = Grads(trimmed);
        Assert.Equal(fullGrads.Keys.Order(), trimmedGrads.Keys.Order());
        Assert.True(fullGrads.Count >= encoder.Parameters().Count() - 4, $"only {fullGrads.Count} parameters have gradients");
        // Relative to the largest gradient anywhere: the key biases' gradients are zero up to rounding (softmax ignores
        // a shift along a row).
        float scale = fullGrads.Values.Max(g => g.Max(MathF.Abs));
        foreach (var (name, want) in fullGrads)
        {
            var got = trimmedGrads[name];
            for (int i = 0; i < want.Length; i++)
                Assert.True(Math.Abs(got[i] - want[i]) <= 1e-5f * scale + 1e-4f * Math.Abs(want[i]), $"{family} grad {name}[{i}]: {got[i]} vs {want[i]}");
        }
    }
}

using MlNetFineTune.Models.Nn;
using MlNetFineTune.Models.Text;
using MlNetFineTune.Models.Vision;
using MlNetFineTune.Tensors;
using Xunit;

namespace MlNetFineTune.Models.Tests;

public class ModuleTests
{
    private sealed class Tiny : Module
    {
        public Linear A { get; }
        public Sequential Body { get; }
        public BatchNorm2d Bn { get; }

        public Tiny(Rng rng)
        {
            A = RegisterModule("a", new Linear(3, 4, rng));
            Body = RegisterModule("body", new Sequential(new Linear(4, 4, rng), new Activation("relu"), new Linear(4, 2, rng, bias: false)));
            Bn = RegisterModule("bn", new BatchNorm2d(2));
        }
    }

    [Fact]
    public void StateDictUsesPyTorchNames()
    {
        var m = new Tiny(new Rng(1));
        var names = m.StateDict().Keys.ToArray();
        Assert.Equal(new[] { "a.weight", "a.bias", "body.0.weight", "body.0.bias", "body.2.weight", "bn.weight", "bn.bias",
            "bn.running_mean", "bn.running_var", "bn.num_batches_tracked" }, names);
        Assert.Equal(3 * 4 + 4 + 16 + 4 + 8 + 2 + 2, m.ParameterCount());
        Assert.All(m.Parameters(), p => Assert.True(p.RequiresGrad));
        Assert.All(m.NamedBuffers(), b => Assert.False(b.Buffer.RequiresGrad));
    }

    [Fact]
    public void LoadStateDictCopiesInPlaceAndNamesShapeMismatches()
    {
        var a = new Tiny(new Rng(1));
        var b = new Tiny(new Rng(2));
        var weightRef = b.A.Weight;
        b.LoadStateDict(a.StateDict());
        Assert.Same(weightRef, b.A.Weight);                    // optimizers keep valid references
        Assert.Equal(a.A.Weight.ToArray(), b.A.Weight.ToArray());
        Assert.Equal(a.Body.Layers[2].StateDict()["weight"].ToArray(), b.Body.Layers[2].StateDict()["weight"].ToArray());

        var bad = a.StateDict();
        bad["a.weight"] = Tensor.Zeros(5, 3);
        var ex = Assert.Throws<InvalidDataException>(() => b.LoadStateDict(bad));
        Assert.Contains("a.weight", ex.Message);
        Assert.Contains("[5, 3]", ex.Message);
        Assert.Contains("[4, 3]", ex.Message);

        var partial = a.StateDict();
        partial.Remove("bn.running_var");
        partial["extra.weight"] = Tensor.Zeros(1);
        var strictEx = Assert.Throws<InvalidDataException>(() => b.LoadStateDict(partial));
        Assert.Contains("bn.running_var", strictEx.Message);
        Assert.Contains("extra.weight", strictEx.Message);
        var result = b.LoadStateDict(partial, strict: false);
        Assert.Equal(new[] { "bn.running_var" }, result.MissingKeys);
        Assert.Equal(new[] { "extra.weight" }, result.UnexpectedKeys);
    }

    [Fact]
    public void FreezeByPrefixAndTrainEvalPropagate()
    {
        var m = new Tiny(new Rng(1));
        Assert.Equal(3, m.Freeze("body"));
        Assert.False(m.Body.Layers[0].StateDict()["weight"].RequiresGrad);
        Assert.True(m.A.Weight.RequiresGrad);
        Assert.Equal(0, m.Freeze("bod"));  // prefixes match whole name segments
        Assert.Equal(4, m.TrainableParameters().Count());
        Assert.Equal(2, m.Unfreeze("body.0"));
        Assert.Equal(6, m.TrainableParameters().Count());
        m.Eval();
        Assert.All(m.NamedModules(), x => Assert.False(x.Module.Training));
        m.Train();
        Assert.All(m.NamedModules(), x => Assert.True(x.Module.Training));
    }

    [Fact]
    public void DropoutOnlyInTraining()
    {
        var d = new Dropout(0.5f, new Rng(3));
        var x = Tensor.Ones(1000);
        var y = d.Forward(x).ToArray();
        Assert.Contains(0f, y);
        Assert.Contains(2f, y);
        d.Eval();
        Assert.Equal(x.ToArray(), d.Forward(x).ToArray());
    }

    [Fact]
    public void BatchNormCountsBatchesAndUsesRunningStatsInEval()
    {
        var bn = new BatchNorm2d(2);
        var x = Tensor.RandN(new Rng(5), 4, 2, 3, 3);
        bn.Forward(x);
        Assert.Equal(1, bn.NumBatchesTracked.Item());
        Assert.NotEqual(0f, bn.RunningMean.ToArray()[0]);
        bn.Eval();
        var before = bn.RunningMean.ToArray();
        bn.Forward(x);
        Assert.Equal(before, bn.RunningMean.ToArray());
        Assert.Equal(1, bn.NumBatchesTracked.Item());
    }

    [Fact]
    public void BertStateDictNamesMatchHuggingFace()
    {
        var cfg = new TransformerConfig { VocabSize = 50, HiddenSize = 16, NumLayers = 1, NumHeads = 2, IntermediateSize = 20, MaxPositions = 32 };
        var names = new TransformerClassifier(cfg, TransformerHead.SequenceClassification, 3, new Rng(0)).StateDict().Keys.ToHashSet();
        foreach (var n in new[] { "bert.embeddings.word_embeddings.weight", "bert.embeddings.position_embeddings.weight",
                     "bert.embeddings.token_type_embeddings.weight", "bert.embeddings.LayerNorm.weight",
                     "bert.encoder.layer.0.attention.self.query.weight", "bert.encoder.layer.0.attention.self.key.bias",
                     "bert.encoder.layer.0.attention.output.dense.weight", "bert.encoder.layer.0.attention.output.LayerNorm.bias",
                     "bert.encoder.layer.0.intermediate.dense.weight", "bert.encoder.layer.0.output.dense.bias",
                     "bert.encoder.layer.0.output.LayerNorm.weight", "bert.pooler.dense.weight", "classifier.weight", "classifier.bias" })
            Assert.Contains(n, names);
        var distil = new TransformerClassifier(cfg with { Family = TransformerFamily.DistilBert, ModelType = "distilbert", TypeVocabSize = 0 },
            TransformerHead.SequenceClassification, 3, new Rng(0)).StateDict().Keys.ToHashSet();
        foreach (var n in new[] { "distilbert.embeddings.word_embeddings.weight", "distilbert.transformer.layer.0.attention.q_lin.weight",
                     "distilbert.transformer.layer.0.sa_layer_norm.weight", "distilbert.transformer.layer.0.ffn.lin1.weight",
                     "distilbert.transformer.layer.0.output_layer_norm.bias", "pre_classifier.weight", "classifier.weight" })
            Assert.Contains(n, distil);
        var roberta = new TransformerClassifier(cfg with { Family = TransformerFamily.Roberta, ModelType = "roberta", PadTokenId = 1, TypeVocabSize = 1 },
            TransformerHead.SequenceClassification, 3, new Rng(0)).StateDict().Keys.ToHashSet();
        Assert.Contains("classifier.dense.weight", roberta);
        Assert.Contains("classifier.out_proj.weight", roberta);
        Assert.DoesNotContain("roberta.pooler.dense.weight", roberta);
    }

    [Fact]
    public void ResNetNamesMatchTorchvision()
    {
        var names = new ResNet(ResNetConfig.FromName("resnet18", 10), new Rng(0)).StateDict();
        Assert.Equal(11_181_642, names.Where(kv => kv.Value.DType == DType.Float32 && !kv.Key.Contains("running")).Sum(kv => (long)kv.Value.Numel));
        foreach (var n in new[] { "conv1.weight", "bn1.running_mean", "layer1.0.conv1.weight", "layer1.1.bn2.num_batches_tracked",
                     "layer2.0.downsample.0.weight", "layer2.0.downsample.1.running_var", "layer4.1.conv2.weight", "fc.weight", "fc.bias" })
            Assert.Contains(n, names.Keys);
        Assert.DoesNotContain("layer1.0.downsample.0.weight", names.Keys);
        var r50 = new ResNet(ResNetConfig.FromName("resnet50"), new Rng(0), includeClassifier: false);
        Assert.Equal(2048, r50.FeatureSize);
        Assert.Contains("layer1.0.conv3.weight", r50.StateDict().Keys);
        Assert.Contains("layer1.0.downsample.0.weight", r50.StateDict().Keys);
    }
}

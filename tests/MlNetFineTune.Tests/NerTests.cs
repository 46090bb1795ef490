using MlNetFineTune.Data;
using MlNetFineTune.Text;
using Xunit;

namespace MlNetFineTune.Tests;

public class NerTests
{
    [Fact]
    public void TrainsOnShippedConllAndPredictsSpans()
    {
        var ctx = new FineTuneContext(seed: 2);
        var all = ctx.Data.LoadConll(TestData.Data("ner", "train.conll"));
        var train = new NerDataset(all.Sentences.Take(600), TagScheme.Bio, "train.conll", all.Tags);
        var valid = new NerDataset(ctx.Data.LoadConll(TestData.Data("ner", "validation.conll")).Sentences.Take(150), TagScheme.Bio, "validation.conll", all.Tags);
        var model = ctx.NamedEntityRecognition.Trainers.FineTune(new NerOptions { Epochs = 4, BatchSize = 16 }).Fit(train, valid);
        var eval = model.Evaluate(valid);
        Assert.True(eval.Metrics.EntityF1 > 0.6, $"entity F1 {eval.Metrics.EntityF1}");

        var text = "Yesterday Maria Lopez flew from Madrid to Berlin.";
        var p = model.Predict(text);
        Assert.Equal(8, p.Words.Count(w => char.IsLetter(w.Text[0])));
        foreach (var e in p.Entities) Assert.Equal(e.Text, text[e.Start..e.End]);

        var path = Path.Combine(Path.GetTempPath(), $"mlft-ner-{Guid.NewGuid():N}.zip");
        try
        {
            model.Save(path);
            var loaded = ctx.Model.LoadNer(path);
            Assert.Equal(p.Words.Select(w => w.Tag), loaded.Predict(text).Words.Select(w => w.Tag));
            Assert.Throws<InvalidDataException>(() => ctx.Model.LoadTextClassification(path));
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void LabelsGoOnTheFirstTokenOfEachWordOnly()
    {
        var tags = new LabelVocabulary(["O", "B-PER", "I-PER"]);
        var e = new EncodedText([101, 7, 8, 9, 102], [0, 0, 0, 0, 0], [-1, 0, 0, 1, -1], false);
        var t = NerTask.Targets(e, ["B-PER", "I-PER"], tags);
        Assert.Equal(new long[] { -100, 1, -100, 2, -100 }, t);
    }
}

using MlNetFineTune.Data;
using MlNetFineTune.Text;
using MlNetFineTune.Training;
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

    [Fact]
    public void TokenReplacementSwapsWordsOnlyForWordsWithTheSameTagAndRepeatsPerEpochStream()
    {
        var all = NerDataset.LoadConll(TestData.Data("ner", "train.conll"));
        var train = new NerDataset(all.Sentences.Take(200), TagScheme.Bio, "train.conll", all.Tags);
        var rng = new MlNetFineTune.Tensors.Rng(3);
        var backbone = TextBackbones.Create("default", TextHeadKind.Token, all.Tags.Count, null, false, rng);
        var pools = train.Sentences.SelectMany(s => s.Tokens.Zip(s.Tags)).GroupBy(p => p.Second).ToDictionary(g => g.Key, g => g.Select(p => p.First).ToHashSet());

        var off = new NerTask(backbone, train, train, all.Tags, replacement: 0);
        off.BeginEpoch(1, new MlNetFineTune.Tensors.Rng(9));
        for (int i = 0; i < train.Count; i++) Assert.Equal(train[i].Tokens, off.TrainingWords(i));

        var task = new NerTask(backbone, train, train, all.Tags, replacement: 0.3);
        task.BeginEpoch(1, new MlNetFineTune.Tensors.Rng(9));
        int words = 0, changed = 0;
        var first = new List<string[]>();
        for (int i = 0; i < train.Count; i++)
        {
            var w = task.TrainingWords(i);
            Assert.Equal(train[i].Tokens.Count, w.Count);
            for (int k = 0; k < w.Count; k++)
            {
                words++;
                if (w[k] != train[i].Tokens[k]) changed++;
                Assert.Contains(w[k], pools[train[i].Tags[k]]);
            }
            first.Add(w.ToArray());
        }
        // About 30% of the words are drawn again; some draws give the same word back (".", "the").
        Assert.InRange((double)changed / words, 0.15, 0.32);

        // The same (seed, epoch) stream gives the same words, another stream different ones.
        task.BeginEpoch(1, new MlNetFineTune.Tensors.Rng(9));
        for (int i = 0; i < train.Count; i++) Assert.Equal(first[i], task.TrainingWords(i));
        task.BeginEpoch(2, new MlNetFineTune.Tensors.Rng(10));
        Assert.Contains(Enumerable.Range(0, train.Count), i => !first[i].SequenceEqual(task.TrainingWords(i)));
    }

    [Fact]
    public void TokenReplacementOutsideZeroToOneIsRefused()
    {
        var ctx = new FineTuneContext(seed: 1);
        var all = ctx.Data.LoadConll(TestData.Data("ner", "validation.conll"));
        var ex = Assert.Throws<ArgumentException>(() => ctx.NamedEntityRecognition.Trainers.FineTune(new NerOptions { TokenReplacement = 1.5, Epochs = 1 }).Fit(all, all));
        Assert.Contains("TokenReplacement", ex.Message);
    }

    [Fact]
    public void NerResumeAfterCancellationRepeatsTokenReplacementAndReachesTheSameResult()
    {
        var dir = Directory.CreateTempSubdirectory("mlft-ner-resume-");
        try
        {
            var all = NerDataset.LoadConll(TestData.Data("ner", "train.conll"));
            var train = new NerDataset(all.Sentences.Take(150), TagScheme.Bio, "train.conll", all.Tags);
            var valid = new NerDataset(NerDataset.LoadConll(TestData.Data("ner", "validation.conll")).Sentences.Take(60), TagScheme.Bio, "validation.conll", all.Tags);
            NerOptions Options(bool resume, string? ckpt) => new()
            {
                Epochs = 3, BatchSize = 16, TokenReplacement = 0.2,
                Training = new TrainingOptions { CheckpointDirectory = ckpt, Resume = resume, EarlyStoppingPatience = null },
            };
            var straight = new FineTuneContext(seed: 5).NamedEntityRecognition.Trainers.FineTune(Options(false, null)).Fit(train, valid);

            using var cts = new CancellationTokenSource();
            var progress = new TextClassificationTests.InlineProgress(p => { if (p.Phase == "validate" && p.Epoch == 1) cts.Cancel(); });
            var interrupted = new FineTuneContext(seed: 5).NamedEntityRecognition.Trainers.FineTune(Options(false, dir.FullName)).Fit(train, valid, progress, cts.Token);
            Assert.True(interrupted.Outcome!.Cancelled);

            var resumed = new FineTuneContext(seed: 5).NamedEntityRecognition.Trainers.FineTune(Options(true, dir.FullName)).Fit(train, valid);
            Assert.Equal(1, resumed.Outcome!.ResumedFromEpoch);
            Assert.Equal(straight.Outcome!.History.Select(h => h.TrainLoss), resumed.Outcome.History.Select(h => h.TrainLoss));
            Assert.Equal(straight.Evaluate(valid).Metrics.EntityF1, resumed.Evaluate(valid).Metrics.EntityF1);

            // Another replacement rate gives other training losses: the augmentation is really applied.
            var other = new FineTuneContext(seed: 5).NamedEntityRecognition.Trainers.FineTune(Options(false, null) with { TokenReplacement = 0 }).Fit(train, valid);
            Assert.NotEqual(straight.Outcome.History[0].TrainLoss, other.Outcome!.History[0].TrainLoss);
        }
        finally
        {
            dir.Delete(true);
        }
    }
}

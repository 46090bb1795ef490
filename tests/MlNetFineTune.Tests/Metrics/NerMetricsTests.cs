using System.Text.Json;
using MlNetFineTune.Metrics;
using Xunit;

namespace MlNetFineTune.Tests;

// Expected entities and scores from seqeval (default mode: get_entities, precision/recall/f1_score,
// accuracy_score, classification_report(output_dict=True)).
public class NerMetricsTests
{
    private const double Tol = 1e-12;

    public static TheoryData<string[], string> EntityCases => new()
    {
        // I- starts an entity after O and after another type; B-/E-/S- mixed (BIOES); entity at the end.
        { ["I-PER", "I-PER", "I-LOC", "O", "I-ORG", "B-ORG", "E-ORG", "S-PER", "E-LOC"], "PER 0 1|LOC 2 2|ORG 4 4|ORG 5 6|PER 7 7|LOC 8 8" },
        { ["B-PER", "I-PER"], "PER 0 1" },
        { ["B-PER", "B-PER"], "PER 0 0|PER 1 1" },
        { ["E-PER", "E-PER"], "PER 0 0|PER 1 1" },
        { ["B-PER", "E-PER", "I-PER"], "PER 0 1|PER 2 2" },
        { ["B", "I", "O"], "_ 0 1" },
        { ["B-PER", "I-PER", "S-PER", "I-PER"], "PER 0 1|PER 2 2|PER 3 3" },
        { ["O", "E-LOC"], "LOC 1 1" },
        { ["B-PER", "I-LOC", "I-LOC", "O"], "PER 0 0|LOC 1 2" },
        { ["O", "O"], "" },
        { [], "" },
        { ["B-PER", "I-PER", "E-PER", "E-PER"], "PER 0 2|PER 3 3" },
        { ["S-LOC", "E-LOC"], "LOC 0 0|LOC 1 1" },
        { ["I-MISC-X", "I-MISC-X"], "MISC-X 0 1" },
    };

    [Theory]
    [MemberData(nameof(EntityCases))]
    public void GetEntities_matches_seqeval(string[] tags, string expected)
    {
        var actual = string.Join("|", NerMetrics.GetEntities(tags).Select(e => $"{e.Type} {e.Start} {e.End}"));
        Assert.Equal(expected, actual);
    }

    private static readonly string[][] TrueTags =
    [
        ["B-PER", "I-PER", "O", "B-LOC", "I-LOC", "O"],
        ["O", "B-ORG", "I-ORG", "I-ORG"],
        ["S-PER", "O", "B-LOC", "E-LOC", "B-MISC", "I-MISC", "E-MISC"],
        ["O", "O", "O"],
    ];

    private static readonly string[][] PredictedTags =
    [
        ["I-PER", "I-PER", "O", "B-LOC", "I-ORG", "O"],    // lenient I- start is correct; type switch splits LOC/ORG
        ["O", "B-ORG", "I-ORG", "I-ORG"],                  // entity running to the sentence end
        ["S-PER", "O", "B-LOC", "I-LOC", "E-MISC", "S-MISC", "O"],
        ["B-DATE", "O", "I-PER"],                          // DATE occurs only in the predictions
    ];

    [Fact]
    public void Corpus_scores_match_seqeval()
    {
        var m = NerMetrics.Compute(TrueTags, PredictedTags);

        Assert.Equal(6, m.TrueEntityCount);
        Assert.Equal(10, m.PredictedEntityCount);
        Assert.Equal(4, m.CorrectEntityCount);
        Assert.Equal(0.4, m.EntityPrecision, Tol);
        Assert.Equal(0.6666666666666666, m.EntityRecall, Tol);
        Assert.Equal(0.5, m.EntityF1, Tol);
        Assert.Equal(0.6, m.TokenAccuracy, Tol);
        Assert.Equal(20, m.TokenCount);
        Assert.Equal(4, m.SentenceCount);

        Assert.Equal(new[] { "DATE", "LOC", "MISC", "ORG", "PER" }, m.PerType.Keys);
        Expect(m.PerType["DATE"], 0.0, 0.0, 0.0, 0);
        Expect(m.PerType["LOC"], 0.5, 0.5, 0.5, 2);
        Expect(m.PerType["MISC"], 0.0, 0.0, 0.0, 1);
        Expect(m.PerType["ORG"], 0.5, 1.0, 0.6666666666666666, 1);
        Expect(m.PerType["PER"], 0.6666666666666666, 1.0, 0.8, 2);
    }

    [Fact]
    public void Perfect_and_empty_predictions()
    {
        var perfect = NerMetrics.Compute(TrueTags, TrueTags);
        Assert.Equal(1.0, perfect.EntityF1);
        Assert.Equal(1.0, perfect.EntityPrecision);
        Assert.Equal(1.0, perfect.EntityRecall);
        Assert.Equal(1.0, perfect.TokenAccuracy);

        var allO = TrueTags.Select(s => s.Select(_ => "O").ToArray()).ToArray();
        var none = NerMetrics.Compute(TrueTags, allO);
        Assert.Equal(0.0, none.EntityF1);
        Assert.Equal(0.0, none.EntityPrecision); // zero_division=0
        Assert.Equal(0.0, none.EntityRecall);
        Assert.Equal(7.0 / 20, none.TokenAccuracy, Tol); // only the seven O tokens
        Assert.All(none.PerType.Values, t => Assert.Equal(0, t.Predicted));

        var empty = NerMetrics.Compute(Array.Empty<string[]>(), Array.Empty<string[]>());
        Assert.Equal(0.0, empty.EntityF1);
        Assert.Equal(0.0, empty.TokenAccuracy);
        Assert.Empty(empty.PerType);
    }

    [Fact]
    public void Entities_never_span_sentences()
    {
        // "I-PER" ending one sentence and "I-PER" opening the next are two entities.
        string[][] truth = [["O", "B-PER"], ["I-PER", "O"]];
        string[][] pred = [["O", "B-PER"], ["B-PER", "O"]];
        var m = NerMetrics.Compute(truth, pred);
        Assert.Equal(2, m.TrueEntityCount);
        Assert.Equal(1.0, m.EntityF1);
    }

    [Fact]
    public void ToDictionary_has_the_documented_keys_and_serialises()
    {
        var d = NerMetrics.Compute(TrueTags, PredictedTags).ToDictionary();
        foreach (var key in new[] { "entityF1", "entityPrecision", "entityRecall", "perType", "tokenAccuracy" })
            Assert.True(d.ContainsKey(key), key);
        var perType = (Dictionary<string, object>)d["perType"];
        var per = (Dictionary<string, object>)perType["PER"];
        Assert.Equal(0.8, (double)per["f1"], Tol);
        Assert.Equal(2, per["support"]);

        string json = JsonSerializer.Serialize(d);
        Assert.Contains("\"entityF1\":0.5", json);
        Assert.Contains("\"LOC\":{\"precision\":0.5,\"recall\":0.5,\"f1\":0.5,\"support\":2}", json);
    }

    [Fact]
    public void Mismatched_or_bad_input_throws()
    {
        Assert.Throws<ArgumentException>(() => NerMetrics.Compute([["O"]], [["O"], ["O"]]));
        Assert.Throws<ArgumentException>(() => NerMetrics.Compute([["O", "O"]], [["O"]]));
        Assert.Throws<ArgumentException>(() => NerMetrics.Compute([["O", ""]], [["O", "O"]]));
    }

    private static void Expect(NerTypeMetrics m, double precision, double recall, double f1, int support)
    {
        Assert.Equal(precision, m.Precision, Tol);
        Assert.Equal(recall, m.Recall, Tol);
        Assert.Equal(f1, m.F1, Tol);
        Assert.Equal(support, m.Support);
    }
}

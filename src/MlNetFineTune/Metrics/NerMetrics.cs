namespace MlNetFineTune.Metrics;

/// <summary>An entity span within one sentence: token indices <c>Start..End</c>, both inclusive (as seqeval).</summary>
/// <param name="Type">Entity type, the tag after its prefix (<c>PER</c> in <c>B-PER</c>); <c>_</c> for a bare <c>B</c>/<c>I</c>/...</param>
/// <param name="Start">Index of the first token.</param>
/// <param name="End">Index of the last token, inclusive.</param>
public readonly record struct NerEntity(string Type, int Start, int End);

/// <summary>Entity-level precision, recall and F1 of one entity type.</summary>
/// <param name="Precision"><c>Correct / Predicted</c>, 0 when nothing of the type is predicted.</param>
/// <param name="Recall"><c>Correct / Support</c>, 0 when the type never occurs in the truth.</param>
/// <param name="F1">Harmonic mean of precision and recall, 0 when both are 0.</param>
/// <param name="Support">Number of true entities of the type.</param>
/// <param name="Predicted">Number of predicted entities of the type.</param>
/// <param name="Correct">Number of predicted entities whose span and type match a true one exactly.</param>
public readonly record struct NerTypeMetrics(double Precision, double Recall, double F1, int Support, int Predicted, int Correct);

/// <summary>
/// Named-entity metrics with the semantics of seqeval's default (lenient, conlleval-like) mode, the one used
/// when <c>mode</c> is not <c>"strict"</c>: entities are read from IOB1/IOB2/BIOES tag sequences by
/// <see cref="GetEntities"/>, and an entity counts as correct only when its type and its exact span match a
/// true one. Overall precision, recall and F1 are micro averages over entities; <see cref="PerType"/> lists
/// every type found in the truth or the predictions (seqeval's <c>classification_report</c>), with
/// <c>zero_division=0</c>. <see cref="TokenAccuracy"/> is seqeval's <c>accuracy_score</c>: the fraction of
/// tokens, <c>O</c> included, whose predicted tag equals the true tag.
/// </summary>
public sealed class NerMetrics
{
    private NerMetrics(IReadOnlyDictionary<string, NerTypeMetrics> perType, int trueCount, int predictedCount,
        int correctCount, int tokenCount, int correctTokens, int sentenceCount)
    {
        PerType = perType;
        TrueEntityCount = trueCount;
        PredictedEntityCount = predictedCount;
        CorrectEntityCount = correctCount;
        TokenCount = tokenCount;
        SentenceCount = sentenceCount;
        EntityPrecision = predictedCount == 0 ? 0 : (double)correctCount / predictedCount;
        EntityRecall = trueCount == 0 ? 0 : (double)correctCount / trueCount;
        EntityF1 = F1(correctCount, trueCount, predictedCount);
        TokenAccuracy = tokenCount == 0 ? 0 : (double)correctTokens / tokenCount;
    }

    /// <summary>Micro precision over entities: correct / predicted entities (0 when none predicted).</summary>
    public double EntityPrecision { get; }

    /// <summary>Micro recall over entities: correct / true entities (0 when there are none).</summary>
    public double EntityRecall { get; }

    /// <summary>Micro F1 over entities.</summary>
    public double EntityF1 { get; }

    /// <summary>Fraction of tokens whose predicted tag equals the true tag (0 when there are no tokens).</summary>
    public double TokenAccuracy { get; }

    /// <summary>Metrics per entity type, in ordinal order of the type names.</summary>
    public IReadOnlyDictionary<string, NerTypeMetrics> PerType { get; }

    /// <summary>Number of entities in the truth.</summary>
    public int TrueEntityCount { get; }

    /// <summary>Number of entities in the predictions.</summary>
    public int PredictedEntityCount { get; }

    /// <summary>Number of predicted entities matching a true one in type and span.</summary>
    public int CorrectEntityCount { get; }

    /// <summary>Number of tokens compared.</summary>
    public int TokenCount { get; }

    /// <summary>Number of sentences compared.</summary>
    public int SentenceCount { get; }

    /// <summary>
    /// Computes the metrics over sentences of tags. Sentence <c>i</c> of the predictions must have as many
    /// tags as sentence <c>i</c> of the truth.
    /// </summary>
    /// <param name="trueTags">True tags, one list per sentence.</param>
    /// <param name="predictedTags">Predicted tags, one list per sentence.</param>
    public static NerMetrics Compute(IReadOnlyList<IReadOnlyList<string>> trueTags,
        IReadOnlyList<IReadOnlyList<string>> predictedTags)
    {
        ArgumentNullException.ThrowIfNull(trueTags);
        ArgumentNullException.ThrowIfNull(predictedTags);
        if (trueTags.Count != predictedTags.Count)
            throw new ArgumentException($"{trueTags.Count} true sentences but {predictedTags.Count} predicted ones.", nameof(predictedTags));

        var trueSet = new HashSet<(int Sentence, NerEntity Entity)>();
        var predictedSet = new HashSet<(int Sentence, NerEntity Entity)>();
        int tokens = 0, correctTokens = 0;
        for (int s = 0; s < trueTags.Count; s++)
        {
            var t = trueTags[s] ?? throw new ArgumentException($"True sentence {s} is null.", nameof(trueTags));
            var p = predictedTags[s] ?? throw new ArgumentException($"Predicted sentence {s} is null.", nameof(predictedTags));
            if (t.Count != p.Count)
                throw new ArgumentException($"Sentence {s} has {t.Count} true tags but {p.Count} predicted ones.", nameof(predictedTags));
            foreach (var e in ReadEntities(t, nameof(trueTags), s)) trueSet.Add((s, e));
            foreach (var e in ReadEntities(p, nameof(predictedTags), s)) predictedSet.Add((s, e));
            for (int i = 0; i < t.Count; i++)
                if (string.Equals(t[i], p[i], StringComparison.Ordinal)) correctTokens++;
            tokens += t.Count;
        }

        var support = new Dictionary<string, int>(StringComparer.Ordinal);
        var predicted = new Dictionary<string, int>(StringComparer.Ordinal);
        var correct = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var (_, e) in trueSet) Increment(support, e.Type);
        int correctCount = 0;
        foreach (var item in predictedSet)
        {
            Increment(predicted, item.Entity.Type);
            if (trueSet.Contains(item)) { Increment(correct, item.Entity.Type); correctCount++; }
        }

        var perType = new SortedDictionary<string, NerTypeMetrics>(StringComparer.Ordinal);
        foreach (var type in support.Keys.Union(predicted.Keys))
        {
            int sup = support.GetValueOrDefault(type), pred = predicted.GetValueOrDefault(type), ok = correct.GetValueOrDefault(type);
            perType[type] = new NerTypeMetrics(
                pred == 0 ? 0 : (double)ok / pred,
                sup == 0 ? 0 : (double)ok / sup,
                F1(ok, sup, pred), sup, pred, ok);
        }
        return new NerMetrics(perType, trueSet.Count, predictedSet.Count, correctCount, tokens, correctTokens, trueTags.Count);
    }

    /// <summary>
    /// Reads the entities of one sentence the way seqeval's <c>get_entities</c> does (prefix tags, default mode).
    /// A tag's first character is its prefix and the text after the first <c>-</c> that follows it is its type
    /// (<c>_</c> when empty). An entity ends before a token when the previous prefix is <c>E</c> or <c>S</c>;
    /// when <c>B</c> or <c>I</c> is followed by <c>B</c>, <c>S</c> or <c>O</c>; or when the type changes after
    /// anything but <c>O</c>. An entity starts at <c>B</c> or <c>S</c>; at <c>I</c> or <c>E</c> after <c>O</c>,
    /// <c>E</c> or <c>S</c>; and at any non-<c>O</c> tag whose type differs from the previous one. So an
    /// <c>I-X</c> after <c>O</c> or after another type opens an entity, <c>B-PER I-LOC</c> is two entities,
    /// and an entity still open at the end of the sentence ends there.
    /// </summary>
    /// <param name="tags">Tags of one sentence, such as <c>B-PER</c>, <c>I-PER</c>, <c>E-LOC</c>, <c>S-ORG</c>, <c>O</c>.</param>
    public static IReadOnlyList<NerEntity> GetEntities(IReadOnlyList<string> tags) => ReadEntities(tags, nameof(tags), null);

    private static List<NerEntity> ReadEntities(IReadOnlyList<string> tags, string parameter, int? sentence)
    {
        ArgumentNullException.ThrowIfNull(tags, parameter);
        var chunks = new List<NerEntity>();
        char prevTag = 'O';
        string prevType = "";
        int begin = 0;
        for (int i = 0; i <= tags.Count; i++)
        {
            char tag;
            string type;
            if (i == tags.Count)
            {
                // seqeval appends an 'O' so that an entity open at the end of the sentence is closed.
                tag = 'O';
                type = "_";
            }
            else
            {
                string chunk = tags[i];
                if (string.IsNullOrEmpty(chunk))
                    throw new ArgumentException(
                        $"{(sentence is { } s ? $"Sentence {s}, token" : "Token")} {i} has an empty tag.", parameter);
                tag = chunk[0];
                // Python: chunk[1:].split('-', maxsplit=1)[-1] or '_'
                string rest = chunk.Substring(1);
                int dash = rest.IndexOf('-');
                type = dash >= 0 ? rest.Substring(dash + 1) : rest;
                if (type.Length == 0) type = "_";
            }

            if (EndOfChunk(prevTag, tag, prevType, type)) chunks.Add(new NerEntity(prevType, begin, i - 1));
            if (StartOfChunk(prevTag, tag, prevType, type)) begin = i;
            prevTag = tag;
            prevType = type;
        }
        return chunks;
    }

    private static bool EndOfChunk(char prevTag, char tag, string prevType, string type) =>
        prevTag == 'E' || prevTag == 'S'
        || (prevTag == 'B' && (tag == 'B' || tag == 'S' || tag == 'O'))
        || (prevTag == 'I' && (tag == 'B' || tag == 'S' || tag == 'O'))
        || (prevTag != 'O' && prevTag != '.' && !string.Equals(prevType, type, StringComparison.Ordinal));

    private static bool StartOfChunk(char prevTag, char tag, string prevType, string type) =>
        tag == 'B' || tag == 'S'
        || ((prevTag == 'E' || prevTag == 'S' || prevTag == 'O') && (tag == 'E' || tag == 'I'))
        || (tag != 'O' && tag != '.' && !string.Equals(prevType, type, StringComparison.Ordinal));

    /// <summary>
    /// A JSON-friendly view: <c>entityF1</c>, <c>entityPrecision</c>, <c>entityRecall</c>, <c>tokenAccuracy</c>,
    /// <c>perType</c> (type to <c>precision</c>, <c>recall</c>, <c>f1</c>, <c>support</c>), plus
    /// <c>trueEntities</c>, <c>predictedEntities</c>, <c>correctEntities</c>.
    /// </summary>
    public Dictionary<string, object> ToDictionary()
    {
        var perType = new Dictionary<string, object>(StringComparer.Ordinal);
        foreach (var (type, m) in PerType)
        {
            perType[type] = new Dictionary<string, object>
            {
                ["precision"] = m.Precision,
                ["recall"] = m.Recall,
                ["f1"] = m.F1,
                ["support"] = m.Support,
            };
        }
        return new Dictionary<string, object>
        {
            ["entityF1"] = EntityF1,
            ["entityPrecision"] = EntityPrecision,
            ["entityRecall"] = EntityRecall,
            ["tokenAccuracy"] = TokenAccuracy,
            ["perType"] = perType,
            ["trueEntities"] = TrueEntityCount,
            ["predictedEntities"] = PredictedEntityCount,
            ["correctEntities"] = CorrectEntityCount,
        };
    }

    // 2PR/(P+R) written as 2tp/(true+pred): the same number, 0 when tp is 0.
    private static double F1(int correct, int trueCount, int predictedCount) =>
        correct == 0 ? 0 : 2.0 * correct / (trueCount + predictedCount);

    private static void Increment(Dictionary<string, int> counts, string key) =>
        counts[key] = counts.GetValueOrDefault(key) + 1;
}

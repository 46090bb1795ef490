using System.Globalization;
using System.Text;

namespace MlNetFineTune.Baselines;

/// <summary>
/// Options of <see cref="TfidfVectorizer"/>. The defaults are those of the project's classical baseline:
/// scikit-learn's <c>TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2, max_features=200000)</c>
/// (lower-cased, token pattern <c>(?u)\b\w\w+\b</c>, smoothed idf, l2-normalised rows).
/// </summary>
public sealed record TfidfOptions
{
    /// <summary>Smallest n-gram length, 1 or 2 (default 1).</summary>
    public int MinNgram { get; init; } = 1;

    /// <summary>Largest n-gram length, 1 or 2 (default 2: words and word pairs).</summary>
    public int MaxNgram { get; init; } = 2;

    /// <summary>Lower-case the text before tokenising (default true).</summary>
    public bool Lowercase { get; init; } = true;

    /// <summary>A term is kept only if at least this many training documents contain it (default 2).</summary>
    public int MinDocumentFrequency { get; init; } = 2;

    /// <summary>
    /// Keep at most this many terms, the most frequent over the training corpus (total counts; ties go to the
    /// alphabetically first term, as scikit-learn's stable sort does); null keeps every term (default 200,000).
    /// </summary>
    public int? MaxFeatures { get; init; } = 200_000;

    /// <summary>Replace a term count <c>tf</c> by <c>1 + ln(tf)</c> (default true).</summary>
    public bool SublinearTf { get; init; } = true;

    /// <summary>
    /// Smoothed idf, <c>ln((1 + n) / (1 + df)) + 1</c> (default true, scikit-learn's <c>smooth_idf</c>);
    /// false uses <c>ln(n / df) + 1</c>.
    /// </summary>
    public bool SmoothIdf { get; init; } = true;

    /// <summary>Scale every row to unit Euclidean length (default true).</summary>
    public bool L2Normalize { get; init; } = true;

    /// <summary>Checks the values, naming the first bad one.</summary>
    public void Validate()
    {
        if (MinNgram < 1 || MaxNgram > 2 || MinNgram > MaxNgram)
            throw new ArgumentOutOfRangeException(nameof(MinNgram), $"The n-gram range must satisfy 1 <= MinNgram <= MaxNgram <= 2 (got {MinNgram}..{MaxNgram}).");
        if (MinDocumentFrequency < 1)
            throw new ArgumentOutOfRangeException(nameof(MinDocumentFrequency), MinDocumentFrequency, "MinDocumentFrequency must be at least 1.");
        if (MaxFeatures is < 1)
            throw new ArgumentOutOfRangeException(nameof(MaxFeatures), MaxFeatures, "MaxFeatures must be at least 1 (or null for no cap).");
    }
}

/// <summary>
/// Word n-gram TF-IDF features, a re-implementation of scikit-learn's <c>TfidfVectorizer</c> for the options in
/// <see cref="TfidfOptions"/>. Tokens are scikit-learn's default <c>(?u)\b\w\w+\b</c>: maximal runs of two or
/// more word characters (Unicode letters and numbers, categories L* and N*, and <c>_</c>, as Python's
/// <c>\w</c>), after lower-casing; bigrams join two consecutive tokens with one space. Feature indices follow
/// the alphabetical (code-point) order of the terms, as scikit-learn's <c>vocabulary_</c> does.
/// Deterministic; single-threaded.
/// </summary>
public sealed class TfidfVectorizer
{
    private readonly TfidfOptions _options;
    private Dictionary<string, int>? _words;           // token -> word id (only words some feature uses)
    private int[] _unigramFeature = [];                 // word id -> feature, -1 when none
    private Dictionary<long, int> _bigramFeature = new(KeyComparer.Instance);   // (word id, word id) -> feature
    private string[] _featureNames = [];
    private double[] _idf = [];

    /// <summary>A vectorizer with <paramref name="options"/> (null: the defaults).</summary>
    public TfidfVectorizer(TfidfOptions? options = null)
    {
        _options = options ?? new TfidfOptions();
        _options.Validate();
    }

    /// <summary>The options.</summary>
    public TfidfOptions Options => _options;

    /// <summary>Whether <see cref="Fit"/> has run.</summary>
    public bool IsFitted => _words is not null;

    /// <summary>The terms, index = feature (column) id, in alphabetical (code-point) order.</summary>
    public IReadOnlyList<string> FeatureNames => _featureNames;

    /// <summary>The idf weight of every feature.</summary>
    public IReadOnlyList<double> Idf => _idf;

    /// <summary>Number of training documents <see cref="Fit"/> saw.</summary>
    public int DocumentCount { get; private set; }

    /// <summary>Number of distinct terms in the training documents before <see cref="TfidfOptions.MinDocumentFrequency"/> and <see cref="TfidfOptions.MaxFeatures"/>.</summary>
    public int CandidateTermCount { get; private set; }

    /// <summary>
    /// The tokens of <paramref name="text"/>: maximal runs of at least two word characters (scikit-learn's
    /// default <c>(?u)\b\w\w+\b</c>), lower-cased first when <paramref name="lowercase"/> is set.
    /// </summary>
    public static IReadOnlyList<string> Tokenize(string text, bool lowercase = true)
    {
        ArgumentNullException.ThrowIfNull(text);
        var source = lowercase ? text.ToLowerInvariant() : text;
        var result = new List<string>();
        var spans = new List<(int Start, int Length)>();
        TokenSpans(source, spans);
        foreach (var (start, length) in spans) result.Add(source.Substring(start, length));
        return result;
    }

    /// <summary>Learns the vocabulary and idf weights from <paramref name="documents"/>; returns this vectorizer.</summary>
    /// <exception cref="ArgumentException">No document, or no term survives the document-frequency and feature limits.</exception>
    public TfidfVectorizer Fit(IReadOnlyList<string> documents)
    {
        FitCore(documents);
        return this;
    }

    /// <summary><see cref="Fit"/> then <see cref="Transform"/> on the same documents (tokenising them once).</summary>
    public SparseMatrix FitTransform(IReadOnlyList<string> documents)
    {
        var tokens = FitCore(documents);
        var rows = new (int[], double[])[documents.Count];
        var buffer = new List<int>();
        for (int i = 0; i < rows.Length; i++) rows[i] = Row(tokens[i], buffer);
        return SparseMatrix.FromRows(_featureNames.Length, rows);
    }

    /// <summary>The TF-IDF rows of <paramref name="documents"/>; terms outside the vocabulary are ignored.</summary>
    /// <exception cref="InvalidOperationException">The vectorizer has not been fitted.</exception>
    public SparseMatrix Transform(IReadOnlyList<string> documents)
    {
        ArgumentNullException.ThrowIfNull(documents);
        var words = _words ?? throw new InvalidOperationException("Fit the vectorizer before transforming.");
        var lookup = words.GetAlternateLookup<ReadOnlySpan<char>>();
        var rows = new (int[], double[])[documents.Count];
        var spans = new List<(int, int)>();
        var ids = new List<int>();
        var buffer = new List<int>();
        for (int i = 0; i < rows.Length; i++)
        {
            var text = Prepare(documents[i], i);
            TokenSpans(text, spans);
            ids.Clear();
            foreach (var (start, length) in spans)
                ids.Add(lookup.TryGetValue(text.AsSpan(start, length), out int id) ? id : -1);
            rows[i] = Row(ids, buffer);
        }
        return SparseMatrix.FromRows(_featureNames.Length, rows);
    }

    private string Prepare(string? document, int index)
    {
        if (document is null) throw new ArgumentException($"Document {index} is null.", "documents");
        return _options.Lowercase ? document.ToLowerInvariant() : document;
    }

    private List<int>[] FitCore(IReadOnlyList<string> documents)
    {
        ArgumentNullException.ThrowIfNull(documents);
        if (documents.Count == 0) throw new ArgumentException("Fitting TF-IDF needs at least one document.", nameof(documents));
        bool unigrams = _options.MinNgram <= 1, bigrams = _options.MaxNgram >= 2;

        // Pass 1: word ids, term counts (total and per document).
        var words = new Dictionary<string, int>(StringComparer.Ordinal);
        var lookup = words.GetAlternateLookup<ReadOnlySpan<char>>();
        var wordNames = new List<string>();
        var wordTf = new List<long>();
        var wordDf = new List<int>();
        var wordLastDoc = new List<int>();
        var bigramIndex = new Dictionary<long, int>(KeyComparer.Instance);
        var bigramKeys = new List<long>();
        var bigramTf = new List<long>();
        var bigramDf = new List<int>();
        var bigramLastDoc = new List<int>();
        var tokens = new List<int>[documents.Count];
        var spans = new List<(int, int)>();
        for (int d = 0; d < documents.Count; d++)
        {
            var text = Prepare(documents[d], d);
            TokenSpans(text, spans);
            var ids = new List<int>(spans.Count);
            foreach (var (start, length) in spans)
            {
                var span = text.AsSpan(start, length);
                if (!lookup.TryGetValue(span, out int id))
                {
                    id = wordNames.Count;
                    var name = span.ToString();
                    words.Add(name, id);
                    wordNames.Add(name);
                    wordTf.Add(0);
                    wordDf.Add(0);
                    wordLastDoc.Add(-1);
                }
                ids.Add(id);
                if (unigrams)
                {
                    wordTf[id]++;
                    if (wordLastDoc[id] != d) { wordLastDoc[id] = d; wordDf[id]++; }
                }
            }
            if (bigrams)
            {
                for (int k = 0; k + 1 < ids.Count; k++)
                {
                    long key = BigramKey(ids[k], ids[k + 1]);
                    if (!bigramIndex.TryGetValue(key, out int b))
                    {
                        b = bigramKeys.Count;
                        bigramIndex.Add(key, b);
                        bigramKeys.Add(key);
                        bigramTf.Add(0);
                        bigramDf.Add(0);
                        bigramLastDoc.Add(-1);
                    }
                    bigramTf[b]++;
                    if (bigramLastDoc[b] != d) { bigramLastDoc[b] = d; bigramDf[b]++; }
                }
            }
            tokens[d] = ids;
        }
        bigramIndex = null!; // free before building the vocabulary

        // Candidates: document frequency at least MinDocumentFrequency.
        var candidates = new List<Candidate>();
        int minDf = _options.MinDocumentFrequency;
        if (unigrams)
            for (int w = 0; w < wordNames.Count; w++)
                if (wordDf[w] >= minDf) candidates.Add(new Candidate(wordNames[w], wordTf[w], wordDf[w], w, -1));
        if (bigrams)
            for (int b = 0; b < bigramKeys.Count; b++)
                if (bigramDf[b] >= minDf)
                {
                    var (w1, w2) = SplitKey(bigramKeys[b]);
                    candidates.Add(new Candidate(wordNames[w1] + " " + wordNames[w2], bigramTf[b], bigramDf[b], w1, w2));
                }
        CandidateTermCount = (unigrams ? wordNames.Count : 0) + (bigrams ? bigramKeys.Count : 0);
        if (candidates.Count == 0)
            throw new ArgumentException(
                $"No term occurs in at least {minDf} of the {documents.Count} documents; lower MinDocumentFrequency or give more text.", nameof(documents));

        // Alphabetical order first (scikit-learn sorts the vocabulary before limiting it), then the most
        // frequent MaxFeatures by a stable sort, then alphabetical again for the feature ids.
        candidates.Sort((a, b) => CompareCodePoints(a.Term, b.Term));
        if (_options.MaxFeatures is int max && candidates.Count > max)
        {
            var order = Enumerable.Range(0, candidates.Count).ToArray();
            var byFrequency = order.OrderByDescending(i => candidates[i].Tf).ThenBy(i => i).Take(max).Order().ToArray();
            candidates = byFrequency.Select(i => candidates[i]).ToList();
        }

        int n = documents.Count;
        _featureNames = new string[candidates.Count];
        _idf = new double[candidates.Count];
        _unigramFeature = new int[wordNames.Count];
        Array.Fill(_unigramFeature, -1);
        _bigramFeature = new Dictionary<long, int>(KeyComparer.Instance);
        var used = new bool[wordNames.Count];
        for (int f = 0; f < candidates.Count; f++)
        {
            var c = candidates[f];
            _featureNames[f] = c.Term;
            _idf[f] = _options.SmoothIdf ? Math.Log((1.0 + n) / (1.0 + c.Df)) + 1 : Math.Log((double)n / c.Df) + 1;
            if (c.Second < 0) _unigramFeature[c.First] = f;
            else _bigramFeature.Add(BigramKey(c.First, c.Second), f);
            used[c.First] = true;
            if (c.Second >= 0) used[c.Second] = true;
        }
        // Keep only the words some feature needs (ids unchanged).
        _words = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int w = 0; w < wordNames.Count; w++)
            if (used[w]) _words.Add(wordNames[w], w);
        DocumentCount = n;
        return tokens;
    }

    private readonly record struct Candidate(string Term, long Tf, int Df, int First, int Second);

    private (int[], double[]) Row(List<int> ids, List<int> features)
    {
        features.Clear();
        if (_options.MinNgram <= 1)
            foreach (int id in ids)
                if (id >= 0 && id < _unigramFeature.Length && _unigramFeature[id] >= 0) features.Add(_unigramFeature[id]);
        if (_options.MaxNgram >= 2)
            for (int k = 0; k + 1 < ids.Count; k++)
                if (ids[k] >= 0 && ids[k + 1] >= 0 && _bigramFeature.TryGetValue(BigramKey(ids[k], ids[k + 1]), out int f)) features.Add(f);
        features.Sort();
        int distinct = 0;
        for (int k = 0; k < features.Count; k++) if (k == 0 || features[k] != features[k - 1]) distinct++;
        var columns = new int[distinct];
        var values = new double[distinct];
        int j = -1;
        for (int k = 0; k < features.Count; k++)
        {
            if (k == 0 || features[k] != features[k - 1]) { j++; columns[j] = features[k]; values[j] = 0; }
            values[j]++;
        }
        double squares = 0;
        for (int k = 0; k < distinct; k++)
        {
            double tf = _options.SublinearTf ? 1 + Math.Log(values[k]) : values[k];
            values[k] = tf * _idf[columns[k]];
            squares += values[k] * values[k];
        }
        if (_options.L2Normalize && squares > 0)
        {
            double inv = 1 / Math.Sqrt(squares);
            for (int k = 0; k < distinct; k++) values[k] *= inv;
        }
        return (columns, values);
    }

    /// <summary>
    /// Hashes a bigram key well: <c>long.GetHashCode</c> XORs the two word ids, so (a, b) and (b, a) collide and
    /// all keys of small ids crowd into a few buckets (measured: 6x slower fitting on 25,000 reviews).
    /// </summary>
    private sealed class KeyComparer : IEqualityComparer<long>
    {
        public static readonly KeyComparer Instance = new();
        public bool Equals(long x, long y) => x == y;
        public int GetHashCode(long key)
        {
            ulong h = (ulong)key * 0x9E3779B97F4A7C15UL;
            return (int)(h >> 32) ^ (int)h;
        }
    }

    private static long BigramKey(int first, int second) => ((long)first << 32) | (uint)second;

    private static (int, int) SplitKey(long key) => ((int)(key >> 32), (int)(uint)key);

    /// <summary>Start and length (in chars) of every token of an already lower-cased text.</summary>
    internal static void TokenSpans(string text, List<(int Start, int Length)> spans)
    {
        spans.Clear();
        int i = 0, runStart = -1, runCodePoints = 0;
        while (i < text.Length)
        {
            int width;
            bool word;
            char c = text[i];
            if (c < 0x80)
            {
                width = 1;
                word = char.IsAsciiLetterOrDigit(c) || c == '_';
            }
            else
            {
                if (Rune.DecodeFromUtf16(text.AsSpan(i), out var rune, out width) != System.Buffers.OperationStatus.Done)
                {
                    width = 1;
                    word = false; // a lone surrogate is no word character
                }
                else word = IsWordRune(rune);
            }
            if (word)
            {
                if (runStart < 0) { runStart = i; runCodePoints = 0; }
                runCodePoints++;
            }
            else if (runStart >= 0)
            {
                if (runCodePoints >= 2) spans.Add((runStart, i - runStart));
                runStart = -1;
            }
            i += width;
        }
        if (runStart >= 0 && runCodePoints >= 2) spans.Add((runStart, text.Length - runStart));
    }

    /// <summary>Python's <c>\w</c> in a Unicode pattern: letters (L*), numbers (N*) and the underscore.</summary>
    internal static bool IsWordRune(Rune rune)
    {
        if (rune.Value == '_') return true;
        return Rune.GetUnicodeCategory(rune) switch
        {
            UnicodeCategory.UppercaseLetter or UnicodeCategory.LowercaseLetter or UnicodeCategory.TitlecaseLetter
                or UnicodeCategory.ModifierLetter or UnicodeCategory.OtherLetter
                or UnicodeCategory.DecimalDigitNumber or UnicodeCategory.LetterNumber or UnicodeCategory.OtherNumber => true,
            _ => false,
        };
    }

    /// <summary>Compares strings by Unicode code points (Python's string order), not UTF-16 code units.</summary>
    internal static int CompareCodePoints(string a, string b)
    {
        int n = Math.Min(a.Length, b.Length);
        for (int i = 0; i < n; i++)
        {
            char x = a[i], y = b[i];
            if (x == y) continue;
            // Surrogates (supplementary code points) sort after every BMP character.
            return Fix(x).CompareTo(Fix(y));
        }
        return a.Length.CompareTo(b.Length);

        static int Fix(char c) => c >= 0xD800 ? (c <= 0xDFFF ? c + 0x2000 : c - 0x800) : c;
    }
}

using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using MlNetFineTune.Models.Nn;
using MlNetFineTune.Tensors;
using MlNetFineTune.Tensors.IO;

namespace MlNetFineTune.Models.Text;

/// <summary>A word, its row in a <see cref="WordVectors"/> table and its cosine similarity to a query.</summary>
public readonly record struct WordSimilarity(string Word, int Id, float Similarity);

/// <summary>
/// A table of pretrained word vectors (GloVe and kin): a vocabulary with a padding and an unknown-word row,
/// and a float32 matrix [Count, Dimension] whose row <c>i</c> is the vector of <c>Words[i]</c>.
/// </summary>
/// <remarks>
/// The on-disk format (what <see cref="Load"/> reads and <see cref="Save"/> writes) is a folder with
/// <c>vectors.safetensors</c> (tensor <c>weight</c> [V, D], F16 or F32), <c>vocab.txt</c> (one word per line,
/// line n naming row n - 1) and an optional <c>config.json</c> (<c>dim</c>, <c>pad</c>, <c>unk</c>,
/// <c>lowercase</c>, <c>source</c>). The repository ships GloVe 6B 100-d trimmed to the 50,000 most frequent
/// words in that format under <c>data/models/glove-6b-100d-50k</c> (row 0 <c>&lt;pad&gt;</c> = zeros,
/// row 1 <c>&lt;unk&gt;</c> = the mean vector).
/// </remarks>
public sealed class WordVectors
{
    /// <summary>The padding token's default spelling.</summary>
    public const string DefaultPadToken = "<pad>";
    /// <summary>The unknown-word token's default spelling.</summary>
    public const string DefaultUnkToken = "<unk>";
    /// <summary>File name of the vectors inside a word-vector folder.</summary>
    public const string VectorsFileName = "vectors.safetensors";
    /// <summary>File name of the vocabulary inside a word-vector folder.</summary>
    public const string VocabFileName = "vocab.txt";
    /// <summary>File name of the optional configuration inside a word-vector folder.</summary>
    public const string ConfigFileName = "config.json";
    /// <summary>Name of the tensor holding the vectors.</summary>
    public const string TensorName = "weight";
    /// <summary>Folder name of the shipped GloVe subset (under <c>data/models/</c> in the repository).</summary>
    public const string ShippedGloveName = "glove-6b-100d-50k";

    private readonly string[] _words;
    private readonly Dictionary<string, int> _ids;
    private float[]? _inverseNorms;

    /// <summary>The words by row (including the padding and unknown tokens).</summary>
    public IReadOnlyList<string> Words => _words;

    /// <summary>Number of rows (vocabulary size including special tokens).</summary>
    public int Count => _words.Length;

    /// <summary>Vector size.</summary>
    public int Dimension { get; }

    /// <summary>The vectors, float32 [Count, Dimension]. Shared, not a copy: do not modify it.</summary>
    public Tensor Weights { get; }

    /// <summary>Row of the padding token (its vector is normally zeros).</summary>
    public int PadId { get; }

    /// <summary>Row that words missing from the vocabulary map to.</summary>
    public int UnkId { get; }

    /// <summary>The padding token.</summary>
    public string PadToken => _words[PadId];

    /// <summary>The unknown-word token.</summary>
    public string UnkToken => _words[UnkId];

    /// <summary>True when lookups lower-case words first (GloVe 6B's vocabulary is all lower case).</summary>
    public bool Lowercase { get; }

    /// <summary>Where the vectors came from (free text), when known.</summary>
    public string? Source { get; }

    /// <summary>
    /// Builds a table from words and a [words.Count, D] float tensor (copied). Words must be distinct and
    /// <paramref name="padId"/> and <paramref name="unkId"/> distinct rows.
    /// </summary>
    public WordVectors(IReadOnlyList<string> words, Tensor weights, int padId = 0, int unkId = 1, bool lowercase = true, string? source = null)
        : this(CheckedWords(words), CopyWeights(weights, words.Count), padId, unkId, lowercase, source, "words")
    {
    }

    private WordVectors(string[] words, Tensor weights, int padId, int unkId, bool lowercase, string? source, string origin)
    {
        if (weights.Rank != 2 || weights.Shape[0] != words.Length)
            throw new ArgumentException($"{origin}: {words.Length} words need a [{words.Length}, D] weight, got [{string.Join(", ", weights.Shape)}].");
        if (padId < 0 || padId >= words.Length || unkId < 0 || unkId >= words.Length || padId == unkId)
            throw new ArgumentException($"{origin}: pad id {padId} and unk id {unkId} must be distinct rows below {words.Length}.");
        _words = words;
        _ids = new Dictionary<string, int>(words.Length, StringComparer.Ordinal);
        for (int i = 0; i < words.Length; i++)
        {
            if (!_ids.TryAdd(words[i], i))
                throw new ArgumentException($"{origin}: word '{words[i]}' at row {i} duplicates row {_ids[words[i]]}.");
        }
        Weights = weights;
        Dimension = weights.Shape[1];
        PadId = padId;
        UnkId = unkId;
        Lowercase = lowercase;
        Source = source;
    }

    private static string[] CheckedWords(IReadOnlyList<string> words)
    {
        ArgumentNullException.ThrowIfNull(words);
        var a = words.ToArray();
        for (int i = 0; i < a.Length; i++)
            if (string.IsNullOrEmpty(a[i])) throw new ArgumentException($"words: word {i} is null or empty.");
        return a;
    }

    private static Tensor CopyWeights(Tensor weights, int rows)
    {
        ArgumentNullException.ThrowIfNull(weights);
        if (weights.DType != DType.Float32 || weights.Rank != 2 || weights.Shape[0] != rows)
            throw new ArgumentException($"weights: expected a Float32 [{rows}, D] tensor, got {weights.DType} [{string.Join(", ", weights.Shape)}].");
        return Tensor.Wrap(weights.ToArray(), rows, weights.Shape[1]);
    }

    // ------------------------------------------------------------------ loading and saving

    /// <summary>
    /// Reads a word-vector folder (<c>vectors.safetensors</c>, <c>vocab.txt</c>, optional <c>config.json</c>).
    /// Errors name the file (and the line for vocabulary problems: empty, duplicate or not lower-case words,
    /// or a row count that differs from the tensor's).
    /// </summary>
    public static WordVectors Load(string directory)
    {
        ArgumentNullException.ThrowIfNull(directory);
        if (!Directory.Exists(directory))
            throw new DirectoryNotFoundException($"Word-vector folder '{directory}' does not exist.");
        string vectorsPath = Path.Combine(directory, VectorsFileName);
        string vocabPath = Path.Combine(directory, VocabFileName);
        string configPath = Path.Combine(directory, ConfigFileName);
        if (!File.Exists(vocabPath)) throw new FileNotFoundException($"{vocabPath}: vocabulary file is missing.", vocabPath);
        if (!File.Exists(vectorsPath)) throw new FileNotFoundException($"{vectorsPath}: vectors file is missing.", vectorsPath);

        var config = File.Exists(configPath) ? ReadConfig(configPath) : new FolderConfig(null, DefaultPadToken, DefaultUnkToken, true, null, null, null);

        var lines = File.ReadAllLines(vocabPath, Encoding.UTF8);
        var firstLine = new Dictionary<string, int>(lines.Length, StringComparer.Ordinal);
        for (int i = 0; i < lines.Length; i++)
        {
            string w = lines[i];
            if (w.Length == 0)
                throw new InvalidDataException($"{vocabPath} line {i + 1}: empty word.");
            if (w.Any(char.IsWhiteSpace))
                throw new InvalidDataException($"{vocabPath} line {i + 1}: '{w}' contains whitespace (one word per line expected).");
            if (!firstLine.TryAdd(w, i + 1))
                throw new InvalidDataException($"{vocabPath} line {i + 1}: duplicate word '{w}' (first on line {firstLine[w]}).");
        }

        int padId = LineOf(config.Pad, "pad", config.PadId) - 1;
        int unkId = LineOf(config.Unk, "unk", config.UnkId) - 1;
        if (padId == unkId)
            throw new InvalidDataException($"{configPath}: pad and unk tokens name the same vocabulary line {padId + 1}.");
        if (config.Lowercase)
        {
            for (int i = 0; i < lines.Length; i++)
                if (i != padId && i != unkId && !string.Equals(lines[i], lines[i].ToLowerInvariant(), StringComparison.Ordinal))
                    throw new InvalidDataException($"{vocabPath} line {i + 1}: '{lines[i]}' is not lower case, but lookups lower-case words (\"lowercase\": true); set \"lowercase\": false in {ConfigFileName} for a cased vocabulary.");
        }

        Dictionary<string, Tensor> tensors;
        try
        {
            tensors = SafeTensors.Load(vectorsPath);
        }
        catch (Exception ex) when (ex is not InvalidDataException and not IOException and not SafeTensorsFormatException)
        {
            throw new InvalidDataException($"{vectorsPath}: cannot read the vectors: {ex.Message}", ex);
        }
        if (!tensors.TryGetValue(TensorName, out var weight))
        {
            if (tensors.Count != 1)
                throw new InvalidDataException($"{vectorsPath}: no tensor named '{TensorName}' (found {(tensors.Count == 0 ? "none" : string.Join(", ", tensors.Keys.Order(StringComparer.Ordinal)))}).");
            weight = tensors.Values.First();
        }
        if (weight.DType != DType.Float32 || weight.Rank != 2)
            throw new InvalidDataException($"{vectorsPath}: tensor '{weight.Name}' must be a 2-D float tensor [rows, dim], found {weight.DType} [{string.Join(", ", weight.Shape)}].");
        if (weight.Shape[0] != lines.Length)
            throw new InvalidDataException($"{vectorsPath}: tensor '{weight.Name}' has {weight.Shape[0]} rows but {vocabPath} has {lines.Length} lines; they must match one to one.");
        if (config.Dim is int dim && dim != weight.Shape[1])
            throw new InvalidDataException($"{configPath}: \"dim\" is {dim} but tensor '{weight.Name}' in {vectorsPath} has {weight.Shape[1]} columns.");
        if (config.VocabSize is int vs && vs != lines.Length)
            throw new InvalidDataException($"{configPath}: \"vocab_size\" is {vs} but {vocabPath} has {lines.Length} lines.");
        weight.Name = null;
        return new WordVectors(lines, weight, padId, unkId, config.Lowercase, config.Source, directory);

        int LineOf(string token, string role, int? expectedId)
        {
            if (!firstLine.TryGetValue(token, out var line))
                throw new InvalidDataException($"{vocabPath}: the {role} token '{token}' is not on any line.");
            if (expectedId is int id && id != line - 1)
                throw new InvalidDataException($"{configPath}: \"{role}_id\" is {id} but '{token}' is on line {line} of {vocabPath} (row {line - 1}).");
            return line;
        }
    }

    private sealed record FolderConfig(int? Dim, string Pad, string Unk, bool Lowercase, string? Source, int? PadId, int? UnkId)
    {
        public int? VocabSize { get; init; }
    }

    private static FolderConfig ReadConfig(string path)
    {
        JsonObject root;
        try
        {
            root = JsonNode.Parse(File.ReadAllText(path)) as JsonObject
                ?? throw new InvalidDataException($"{path}: the configuration is not a JSON object.");
        }
        catch (JsonException ex)
        {
            throw new InvalidDataException($"{path}: invalid JSON at line {ex.LineNumber + 1}, position {ex.BytePositionInLine + 1}: {ex.Message}", ex);
        }
        return new FolderConfig(
            Int("dim"),
            Str("pad") ?? DefaultPadToken,
            Str("unk") ?? DefaultUnkToken,
            Bool("lowercase") ?? true,
            Str("source"),
            Int("pad_id"),
            Int("unk_id"))
        { VocabSize = Int("vocab_size") };

        bool? Bool(string key)
        {
            if (root[key] is not JsonNode n) return null;
            if (n is JsonValue v && v.TryGetValue<bool>(out var b)) return b;
            throw new InvalidDataException($"{path}: \"{key}\" must be true or false, found {n.ToJsonString()}.");
        }

        int? Int(string key)
        {
            if (root[key] is not JsonNode n) return null;
            if (n is JsonValue v && v.TryGetValue<int>(out var i) && i >= 0) return i;
            throw new InvalidDataException($"{path}: \"{key}\" must be a non-negative integer, found {n.ToJsonString()}.");
        }

        string? Str(string key)
        {
            if (root[key] is not JsonNode n) return null;
            if (n is JsonValue v && v.TryGetValue<string>(out var s) && s.Length > 0) return s;
            throw new InvalidDataException($"{path}: \"{key}\" must be a non-empty string, found {n.ToJsonString()}.");
        }
    }

    /// <summary>
    /// Reads vectors in the GloVe / word2vec text format (<c>word v1 v2 ... vD</c> per line; a fastText
    /// <c>count dim</c> header line is skipped), keeping the first <paramref name="maxWords"/> words, and
    /// prepends <c>&lt;pad&gt;</c> (zeros, row 0) and <c>&lt;unk&gt;</c> (the mean of the kept vectors, row 1).
    /// Errors name the file and line.
    /// </summary>
    public static WordVectors LoadText(string path, int? maxWords = null, bool lowercase = true)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (maxWords is < 1) throw new ArgumentOutOfRangeException(nameof(maxWords), $"maxWords {maxWords} must be positive.");
        var words = new List<string> { DefaultPadToken, DefaultUnkToken };
        var seen = new Dictionary<string, int>(StringComparer.Ordinal) { [DefaultPadToken] = 0, [DefaultUnkToken] = 0 };
        var values = new List<float>();
        int dim = -1, lineNo = 0;
        double[]? sum = null;
        foreach (var raw in File.ReadLines(path, Encoding.UTF8))
        {
            lineNo++;
            if (maxWords is int m && words.Count - 2 >= m) break;
            var line = raw.TrimEnd('\r', ' ');
            if (line.Length == 0) continue;
            var parts = line.Split(' ');
            if (lineNo == 1 && parts.Length == 2 && int.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out _)
                && int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out _))
                continue; // word2vec / fastText header "count dim"
            if (parts.Length < 2)
                throw new InvalidDataException($"{path} line {lineNo}: expected a word followed by its vector.");
            if (dim < 0)
            {
                dim = parts.Length - 1;
                values.AddRange(new float[2 * dim]);
                sum = new double[dim];
            }
            else if (parts.Length - 1 != dim)
                throw new InvalidDataException($"{path} line {lineNo}: '{parts[0]}' has {parts.Length - 1} values, expected {dim} (as on the first line).");
            string w = parts[0];
            if (lowercase && !string.Equals(w, w.ToLowerInvariant(), StringComparison.Ordinal))
                throw new InvalidDataException($"{path} line {lineNo}: '{w}' is not lower case; pass lowercase: false for a cased vocabulary.");
            if (!seen.TryAdd(w, lineNo))
                throw new InvalidDataException(seen[w] == 0
                    ? $"{path} line {lineNo}: '{w}' collides with a reserved token."
                    : $"{path} line {lineNo}: duplicate word '{w}' (first on line {seen[w]}).");
            for (int j = 1; j <= dim; j++)
            {
                if (!float.TryParse(parts[j], NumberStyles.Float, CultureInfo.InvariantCulture, out var v) || !float.IsFinite(v))
                    throw new InvalidDataException($"{path} line {lineNo}: value {j} of '{w}' ('{parts[j]}') is not a finite number.");
                values.Add(v);
                sum![j - 1] += v;
            }
            words.Add(w);
        }
        if (dim < 0) throw new InvalidDataException($"{path}: no vectors found.");
        int n = words.Count - 2;
        for (int j = 0; j < dim; j++) values[dim + j] = (float)(sum![j] / n);
        return new WordVectors([.. words], Tensor.Wrap([.. values], words.Count, dim), 0, 1, lowercase, path, path);
    }

    /// <summary>
    /// Writes the table as a word-vector folder that <see cref="Load"/> reads: F16 (default) or F32
    /// <c>vectors.safetensors</c>, <c>vocab.txt</c> and <c>config.json</c>.
    /// </summary>
    public void Save(string directory, bool halfPrecision = true)
    {
        ArgumentNullException.ThrowIfNull(directory);
        foreach (var w in _words)
            if (w.Any(char.IsWhiteSpace))
                throw new InvalidOperationException($"Word '{w}' contains whitespace and cannot be written one per line to {VocabFileName}.");
        Directory.CreateDirectory(directory);
        SafeTensors.Save(Path.Combine(directory, VectorsFileName), [new KeyValuePair<string, Tensor>(TensorName, Weights)], halfPrecision: halfPrecision);
        File.WriteAllText(Path.Combine(directory, VocabFileName), string.Concat(_words.Select(w => w + "\n")), new UTF8Encoding(false));
        var config = new JsonObject
        {
            ["type"] = "glove",
            ["dim"] = Dimension,
            ["vocab_size"] = Count,
            ["pad"] = PadToken,
            ["unk"] = UnkToken,
            ["pad_id"] = PadId,
            ["unk_id"] = UnkId,
            ["lowercase"] = Lowercase,
            ["dtype"] = halfPrecision ? "float16" : "float32",
        };
        if (Source is not null) config["source"] = Source;
        File.WriteAllText(Path.Combine(directory, ConfigFileName),
            config.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n", new UTF8Encoding(false));
    }

    // ------------------------------------------------------------------ lookup

    /// <summary>The form a word is looked up in (lower-cased when <see cref="Lowercase"/>).</summary>
    public string Normalize(string word)
    {
        ArgumentNullException.ThrowIfNull(word);
        return Lowercase ? word.ToLowerInvariant() : word;
    }

    /// <summary>The row of <paramref name="word"/>, if the vocabulary has it (special tokens included).</summary>
    public bool TryGetId(string word, out int id) => _ids.TryGetValue(Normalize(word), out id);

    /// <summary>True when the vocabulary has <paramref name="word"/>.</summary>
    public bool Contains(string word) => _ids.ContainsKey(Normalize(word));

    /// <summary>The row of <paramref name="word"/>, or <see cref="UnkId"/> when it is unknown.</summary>
    public int GetId(string word) => _ids.TryGetValue(Normalize(word), out var id) ? id : UnkId;

    /// <summary>Rows of <paramref name="tokens"/> (unknown words map to <see cref="UnkId"/>).</summary>
    public int[] GetIds(IEnumerable<string> tokens)
    {
        ArgumentNullException.ThrowIfNull(tokens);
        return tokens.Select(GetId).ToArray();
    }

    /// <summary>A copy of the vector of <paramref name="word"/> (the unknown-word vector when it is unknown).</summary>
    public float[] GetVector(string word) => Weights.AsSpan().Slice(GetId(word) * Dimension, Dimension).ToArray();

    /// <summary>
    /// Splits text into the tokens GloVe 6B was trained on, roughly as the Stanford tokenizer does: lower-cased
    /// (when <see cref="Lowercase"/>), runs of letters and digits (with inner hyphens, apostrophes and periods
    /// kept when the vocabulary has the whole form, else split: "well-qwzx" gives "well", "-", "qwzx" and
    /// "it's" gives "it", "'s"), every other non-space character on its own, and "n't" as "not" ("don't"
    /// gives "do", "not"; the shipped vocabulary has "not" but no "n't").
    /// </summary>
    public IReadOnlyList<string> Tokenize(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var tokens = new List<string>();
        if (Lowercase) text = text.ToLowerInvariant();
        int i = 0;
        while (i < text.Length)
        {
            char c = text[i];
            if (char.IsWhiteSpace(c)) { i++; continue; }
            if (!IsWordChar(c))
            {
                int len = char.IsSurrogatePair(text, i) ? 2 : 1;
                tokens.Add(text.Substring(i, len));
                i += len;
                continue;
            }
            int start = i;
            while (i < text.Length && (IsWordChar(text[i]) || (IsJoiner(text[i]) && i + 1 < text.Length && IsWordChar(text[i + 1]) && i > start)))
                i++;
            AddWord(text.Substring(start, i - start), tokens);
        }
        return tokens;
    }

    private static bool IsWordChar(char c) => char.IsLetterOrDigit(c) || char.GetUnicodeCategory(c) is UnicodeCategory.NonSpacingMark or UnicodeCategory.SpacingCombiningMark;

    private static bool IsJoiner(char c) => c is '-' or '\'' or '’' or '.';

    private void AddWord(string word, List<string> tokens)
    {
        if (_ids.ContainsKey(word) || word.IndexOfAny(['-', '\'', '’', '.']) < 0)
        {
            tokens.Add(word);
            return;
        }
        // "n't" -> "not" (GloVe has "not" but not "n't").
        foreach (var apostrophe in new[] { "n't", "n’t" })
        {
            if (word.EndsWith(apostrophe, StringComparison.Ordinal) && word.Length > 3)
            {
                AddWord(word[..^3], tokens);
                tokens.Add("not");
                return;
            }
        }
        // Split at the joiners: hyphens and periods become tokens of their own, an apostrophe starts the next
        // piece ("it's" gives "it", "'s", as the Stanford tokenizer writes clitics).
        int start = 0;
        for (int i = 0; i < word.Length; i++)
        {
            char c = word[i];
            if (c is not ('-' or '\'' or '’' or '.')) continue;
            if (i > start) tokens.Add(word[start..i]);
            if (c is '-' or '.')
            {
                tokens.Add(c.ToString());
                start = i + 1;
            }
            else start = i;
        }
        if (start < word.Length) tokens.Add(word[start..]);
    }

    /// <summary>
    /// Pads (with <see cref="PadId"/>) or truncates token lists into ids Int64 [B, S] and a mask Int64 [B, S]
    /// (1 = word, 0 = padding), S being the longest list capped at <paramref name="maxLength"/> (at least 1).
    /// </summary>
    public (Tensor Ids, Tensor Mask) EncodeBatch(IReadOnlyList<IReadOnlyList<string>> sentences, int? maxLength = null)
    {
        ArgumentNullException.ThrowIfNull(sentences);
        if (maxLength is < 1) throw new ArgumentOutOfRangeException(nameof(maxLength), $"maxLength {maxLength} must be positive.");
        int s = 1;
        foreach (var t in sentences) s = Math.Max(s, t.Count);
        if (maxLength is int cap) s = Math.Min(s, cap);
        int b = sentences.Count;
        var ids = new long[b * s];
        var mask = new long[b * s];
        Array.Fill(ids, PadId);
        for (int i = 0; i < b; i++)
        {
            var t = sentences[i];
            int n = Math.Min(t.Count, s);
            for (int j = 0; j < n; j++)
            {
                ids[i * s + j] = GetId(t[j]);
                mask[i * s + j] = 1;
            }
        }
        return (Tensor.FromArray(ids, b, s), Tensor.FromArray(mask, b, s));
    }

    /// <summary><see cref="Tokenize"/> each text, then <see cref="EncodeBatch"/>.</summary>
    public (Tensor Ids, Tensor Mask) EncodeTexts(IReadOnlyList<string> texts, int? maxLength = null)
    {
        ArgumentNullException.ThrowIfNull(texts);
        return EncodeBatch(texts.Select(Tokenize).ToArray(), maxLength);
    }

    // ------------------------------------------------------------------ similarity

    private float[] InverseNorms()
    {
        var cached = _inverseNorms;
        if (cached is not null) return cached;
        var w = Weights.AsSpan();
        var inv = new float[Count];
        for (int r = 0; r < Count; r++)
        {
            float n = System.Numerics.Tensors.TensorPrimitives.Norm(w.Slice(r * Dimension, Dimension));
            inv[r] = n > 0 ? 1f / n : 0f;
        }
        _inverseNorms = inv;
        return inv;
    }

    /// <summary>Cosine similarity of two words' vectors (unknown words use the unknown-word vector).</summary>
    public float Cosine(string a, string b)
    {
        var inv = InverseNorms();
        int ia = GetId(a), ib = GetId(b);
        var w = Weights.AsSpan();
        return System.Numerics.Tensors.TensorPrimitives.Dot(w.Slice(ia * Dimension, Dimension), w.Slice(ib * Dimension, Dimension)) * inv[ia] * inv[ib];
    }

    /// <summary>
    /// The <paramref name="k"/> words most similar (by cosine) to <paramref name="word"/>, best first, leaving
    /// out the word itself and the padding and unknown tokens. Throws when the word is not in the vocabulary.
    /// </summary>
    public IReadOnlyList<WordSimilarity> Nearest(string word, int k = 10)
    {
        if (!TryGetId(word, out var id) || id == PadId || id == UnkId)
            throw new KeyNotFoundException($"'{word}' is not in the vocabulary of {Count} words.");
        return Nearest(Weights.AsSpan().Slice(id * Dimension, Dimension).ToArray(), k, [id]);
    }

    /// <summary>
    /// The <paramref name="k"/> rows most similar (by cosine) to <paramref name="vector"/>, best first (ties by
    /// row), leaving out the padding and unknown tokens and the rows in <paramref name="excludeIds"/>.
    /// </summary>
    public IReadOnlyList<WordSimilarity> Nearest(float[] vector, int k = 10, IEnumerable<int>? excludeIds = null)
    {
        ArgumentNullException.ThrowIfNull(vector);
        if (vector.Length != Dimension) throw new ArgumentException($"Query vector has {vector.Length} values, expected {Dimension}.");
        if (k < 1) throw new ArgumentOutOfRangeException(nameof(k), $"k {k} must be positive.");
        var exclude = new HashSet<int>(excludeIds ?? []) { PadId, UnkId };
        float qn = System.Numerics.Tensors.TensorPrimitives.Norm(vector);
        float qInv = qn > 0 ? 1f / qn : 0f;
        var inv = InverseNorms();
        var w = Weights.AsSpan();
        // Min-heap of the best k so far; priority (similarity, -row) so the worst (lowest, then latest row) is on top.
        var heap = new PriorityQueue<int, (float Sim, int NegRow)>();
        for (int r = 0; r < Count; r++)
        {
            if (exclude.Contains(r)) continue;
            float sim = System.Numerics.Tensors.TensorPrimitives.Dot(w.Slice(r * Dimension, Dimension), vector) * inv[r] * qInv;
            var key = (sim, -r);
            if (heap.Count < k) heap.Enqueue(r, key);
            else if (heap.TryPeek(out _, out var worst) && key.CompareTo(worst) > 0) heap.EnqueueDequeue(r, key);
        }
        var result = new List<WordSimilarity>(heap.Count);
        while (heap.TryDequeue(out var r, out var p)) result.Add(new WordSimilarity(_words[r], r, p.Sim));
        result.Reverse();
        return result;
    }

    // ------------------------------------------------------------------ modules

    /// <summary>
    /// A new embedding module [Count, Dimension] initialised with a copy of the vectors (parameter
    /// <c>weight</c>), whose padding row gets no gradient; frozen (no gradient at all) unless <paramref name="trainable"/>.
    /// </summary>
    public PretrainedEmbedding CreateEmbedding(bool trainable = false) => new(Weights, PadId, trainable);
}

/// <summary>
/// A lookup table initialised from given vectors, like <c>torch.nn.Embedding.from_pretrained</c>: one
/// parameter <c>weight</c> [V, D] (a copy), frozen unless trainable; the padding row gets no gradient.
/// Same computation and state-dict layout as <see cref="Embedding"/>, without drawing a random table first.
/// </summary>
public sealed class PretrainedEmbedding : UnaryModule
{
    /// <summary>Weight [NumEmbeddings, EmbeddingDim].</summary>
    public Tensor Weight { get; }

    /// <summary>Row that receives no gradient, if any.</summary>
    public int? PaddingIdx { get; }

    /// <summary>Number of rows.</summary>
    public int NumEmbeddings => Weight.Shape[0];

    /// <summary>Vector size.</summary>
    public int EmbeddingDim => Weight.Shape[1];

    /// <summary>Creates the table from a copy of <paramref name="weights"/> (Float32 [V, D]).</summary>
    public PretrainedEmbedding(Tensor weights, int? paddingIdx = null, bool trainable = false)
    {
        ArgumentNullException.ThrowIfNull(weights);
        if (weights.DType != DType.Float32 || weights.Rank != 2)
            throw new ArgumentException($"PretrainedEmbedding: weights must be a Float32 [V, D] tensor, got {weights.DType} [{string.Join(", ", weights.Shape)}].");
        int v = weights.Shape[0], d = weights.Shape[1];
        if (paddingIdx is int p && (p < 0 || p >= v))
            throw new ArgumentOutOfRangeException(nameof(paddingIdx), $"PretrainedEmbedding: padding row {p} is outside the {v} rows.");
        Weight = RegisterParameter("weight", Tensor.Wrap(weights.ToArray(), v, d));
        Weight.RequiresGrad = trainable;
        PaddingIdx = paddingIdx;
    }

    /// <inheritdoc />
    public override Tensor Forward(Tensor ids) => Ops.Embedding(ids, Weight, PaddingIdx);
}

namespace MlNetFineTune.Models.Tokenizers;

/// <summary>Settings of a <see cref="WordTokenizer"/>.</summary>
public sealed record WordTokenizerOptions
{
    /// <summary>Lower-case the input (GloVe 6B's vocabulary is lower-case). Accents are kept.</summary>
    public bool Lowercase { get; init; } = true;

    /// <summary>Token for words not in the list; appended after the words when the list lacks it.</summary>
    public string UnkToken { get; init; } = "<unk>";

    /// <summary>Padding token, appended after the words when the list lacks it; null for none.</summary>
    public string? PadToken { get; init; } = "<pad>";
}

/// <summary>
/// A whole-word tokenizer for word-vector models (GloVe, word2vec): optional lower-casing, a split on
/// whitespace and punctuation (each punctuation character is a token of its own, as in BERT), and one
/// id per word from a word list, the unknown token for the rest. Ids are the word list's line numbers,
/// so they index the rows of the matching vector file. In Hugging Face terms it is a WordLevel model
/// behind a Lowercase normalizer and the BertPreTokenizer, and it saves as such a tokenizer.json.
/// </summary>
public sealed class WordTokenizer : Tokenizer
{
    private readonly Dictionary<string, int> _vocab;
    private readonly Dictionary<int, string> _vocabR = [];
    private readonly string _unkToken;
    private readonly bool _lowercase;
    private TokenDecoder _decoder = JoinWithSpaces.Instance;

    /// <summary>Builds the tokenizer from words in id order; a repeated word keeps its first id.</summary>
    public WordTokenizer(IEnumerable<string> words, WordTokenizerOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(words);
        var o = options ?? new WordTokenizerOptions();
        _vocab = new Dictionary<string, int>(StringComparer.Ordinal);
        int id = 0;
        foreach (string word in words)
        {
            ArgumentNullException.ThrowIfNull(word, nameof(words));
            _vocab.TryAdd(word, id);
            _vocabR[id++] = word;
        }
        _lowercase = o.Lowercase;
        _unkToken = o.UnkToken;
        foreach (string? special in new[] { o.UnkToken, o.PadToken })
        {
            if (special is not null && _vocab.TryAdd(special, id))
            {
                _vocabR[id++] = special;
            }
        }
        Unk = AddSpecialToken(o.UnkToken);
        Pad = o.PadToken is null ? null : AddSpecialToken(o.PadToken);
    }

    private WordTokenizer(Dictionary<string, int> vocab, string unkToken, bool lowercase)
    {
        _vocab = vocab;
        foreach (var (word, id) in vocab)
        {
            _vocabR[id] = word;
        }
        _unkToken = unkToken;
        _lowercase = lowercase;
    }

    /// <summary>Whether input is lower-cased.</summary>
    public bool Lowercase => _lowercase;

    private protected override int ModelVocabSize => _vocabR.Count == 0 ? 0 : _vocabR.Keys.Max() + 1;

    private protected override Func<NormalizedText, NormalizedText>? Normalizer => _lowercase ? LowercaseText : null;

    /// <summary>
    /// Reads a word list: one word per line, id = line number from 0. A line holding more than a word
    /// (a GloVe or word2vec text vector file) contributes the text before its first space.
    /// </summary>
    public static WordTokenizer FromWordListFile(string path, WordTokenizerOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"Word list file not found: {path}", path);
        }
        var words = new List<string>();
        int lineNumber = 0;
        foreach (string line in File.ReadLines(path))
        {
            lineNumber++;
            int space = line.IndexOf(' ', StringComparison.Ordinal);
            string word = space < 0 ? line : line[..space];
            if (word.Length == 0)
            {
                throw new TokenizerFormatException(path, "expected a word at the start of the line, found none", lineNumber);
            }
            words.Add(word);
        }
        return new WordTokenizer(words, options);
    }

    /// <summary>Loads a Hugging Face tokenizer.json whose model is WordLevel.</summary>
    public static new WordTokenizer FromTokenizerJson(string path)
    {
        using var json = TokenizerJson.Open(path);
        return FromJson(json);
    }

    internal static WordTokenizer FromJson(TokenizerJson json)
    {
        var model = json.RequiredObject(json.Root, "model", "model");
        string type = json.RequiredString(model, "type", "model.type");
        if (type != "WordLevel")
        {
            throw json.Error("model.type", $"expected model type WordLevel for a word tokenizer, found '{type}'");
        }
        bool lowercase = false;
        if (json.OptionalObject(json.Root, "normalizer", "normalizer") is { } n)
        {
            string normalizerType = json.RequiredString(n, "type", "normalizer.type");
            lowercase = normalizerType == "Lowercase"
                ? true
                : throw json.Error("normalizer.type", $"unsupported normalizer type '{normalizerType}' (supported: Lowercase, null)");
        }
        var pre = json.RequiredObject(json.Root, "pre_tokenizer", "pre_tokenizer");
        string preType = json.RequiredString(pre, "type", "pre_tokenizer.type");
        if (preType != "BertPreTokenizer")
        {
            throw json.Error("pre_tokenizer.type", $"unsupported pre-tokenizer type '{preType}' (supported: BertPreTokenizer)");
        }
        if (json.OptionalObject(json.Root, "post_processor", "post_processor") is not null)
        {
            throw json.Error("post_processor", "a word tokenizer adds no special tokens; expected null");
        }
        string unk = json.OptionalString(model, "unk_token", "model.unk_token") ?? "<unk>";
        var tokenizer = new WordTokenizer(json.Vocabulary(json.RequiredObject(model, "vocab", "model.vocab"), "model.vocab"), unk, lowercase)
        {
            _decoder = TokenDecoder.FromJson(json),
        };
        foreach (var token in json.AddedTokens())
        {
            tokenizer.AddToken(token);
        }
        var (options, pad) = json.DefaultOptions();
        tokenizer.DefaultEncodeOptions = options;
        tokenizer.Unk = tokenizer.Known(unk);
        tokenizer.Pad = pad ?? tokenizer.KnownSpecial("<pad>");
        return tokenizer;
    }

    /// <inheritdoc />
    public override void SaveTokenizerJson(string path) => TokenizerJson.Write(path, this,
        writer =>
        {
            if (_lowercase)
            {
                writer.WriteStartObject();
                writer.WriteString("type", "Lowercase");
                writer.WriteEndObject();
            }
            else
            {
                writer.WriteNullValue();
            }
        },
        writer =>
        {
            writer.WriteStartObject();
            writer.WriteString("type", "BertPreTokenizer");
            writer.WriteEndObject();
        },
        _decoder.WriteJson,
        writer =>
        {
            writer.WriteStartObject();
            writer.WriteString("type", "WordLevel");
            TokenizerJson.WriteVocabulary(writer, _vocab);
            writer.WriteString("unk_token", _unkToken);
            writer.WriteEndObject();
        });

    /// <summary>Writes the vocabulary as a word list, one word per line in id order.</summary>
    public void SaveWordListFile(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        File.WriteAllLines(path, _vocabR.OrderBy(e => e.Key).Select(e => e.Value));
    }

    private static NormalizedText LowercaseText(NormalizedText text) => text.Transform(UnicodeNormalization.ToLower);

    private protected override int? ModelTokenToId(string token) => _vocab.TryGetValue(token, out int id) ? id : null;

    private protected override string? ModelIdToToken(int id) => _vocabR.GetValueOrDefault(id);

    private protected override void PreTokenize(NormalizedText text, List<NormalizedText> words) => BertNormalizer.PreTokenize(text, words);

    private protected override void TokenizeWord(NormalizedText word, List<ModelToken> output)
    {
        if (_vocab.TryGetValue(word.Text, out int id))
        {
            output.Add(new ModelToken(id, word.Text, 0, word.Length));
        }
        else if (_vocab.TryGetValue(_unkToken, out int unk))
        {
            output.Add(new ModelToken(unk, _unkToken, 0, word.Length));
        }
        else
        {
            throw new InvalidOperationException($"WordLevel error: the unknown token '{_unkToken}' is not in the vocabulary.");
        }
    }

    private protected override string DecodeTokens(List<string> tokens) => _decoder.Decode(tokens);
}

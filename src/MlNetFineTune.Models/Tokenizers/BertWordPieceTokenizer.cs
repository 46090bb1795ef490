using System.Text.Json;

namespace MlNetFineTune.Models.Tokenizers;

/// <summary>Settings of a <see cref="BertWordPieceTokenizer"/> built from a vocab.txt; the defaults are BERT's.</summary>
public sealed record BertTokenizerOptions
{
    /// <summary>Strip accents (NFD, then drop combining marks); null means "when lower-casing", as in HF.</summary>
    public bool? StripAccents { get; init; }

    /// <summary>Drop control characters and turn all whitespace into spaces.</summary>
    public bool CleanText { get; init; } = true;

    /// <summary>Make every CJK ideograph a word of its own.</summary>
    public bool HandleChineseChars { get; init; } = true;

    /// <summary>Token for words WordPiece cannot spell.</summary>
    public string UnkToken { get; init; } = "[UNK]";

    /// <summary>Token put before the first sequence.</summary>
    public string ClsToken { get; init; } = "[CLS]";

    /// <summary>Token put after each sequence.</summary>
    public string SepToken { get; init; } = "[SEP]";

    /// <summary>Padding token.</summary>
    public string PadToken { get; init; } = "[PAD]";

    /// <summary>Masked-language-model token.</summary>
    public string MaskToken { get; init; } = "[MASK]";

    /// <summary>Prefix of word pieces that continue a word.</summary>
    public string ContinuingSubwordPrefix { get; init; } = "##";

    /// <summary>Words longer than this many characters (code points) become the unknown token.</summary>
    public int MaxInputCharsPerWord { get; init; } = 100;
}

/// <summary>
/// BERT's tokenizer as Hugging Face's fast BertTokenizer runs it: BertNormalizer (clean text, CJK
/// splitting, accent stripping, lower-casing), BertPreTokenizer (whitespace and punctuation), WordPiece,
/// then [CLS] A [SEP] (B [SEP]) with token type ids 0 (A) and 1 (B).
/// </summary>
public sealed class BertWordPieceTokenizer : Tokenizer
{
    private readonly WordPieceModel _model;
    private readonly BertNormalizer? _normalizer;
    private readonly bool _bertPreTokenizer;
    private readonly TokenDecoder _decoder;

    private BertWordPieceTokenizer(WordPieceModel model, BertNormalizer? normalizer, bool bertPreTokenizer, TokenDecoder decoder)
    {
        _model = model;
        _normalizer = normalizer;
        _bertPreTokenizer = bertPreTokenizer;
        _decoder = decoder;
    }

    /// <summary>Whether input is lower-cased.</summary>
    public bool Lowercase => _normalizer?.Lowercase ?? false;

    /// <summary>Whether accents are stripped (the effective setting: StripAccents, else Lowercase).</summary>
    public bool StripAccents => _normalizer is { } n && (n.StripAccents ?? n.Lowercase);

    /// <summary>Prefix of continuation pieces ("##").</summary>
    public string ContinuingSubwordPrefix => _model.ContinuingSubwordPrefix;

    /// <summary>Longest word, in code points, WordPiece splits; longer ones become [UNK].</summary>
    public int MaxInputCharsPerWord => _model.MaxInputCharsPerWord;

    private protected override int ModelVocabSize => _model.Vocab.Count;

    private protected override Func<NormalizedText, NormalizedText>? Normalizer => _normalizer is null ? null : _normalizer.Normalize;

    /// <summary>
    /// Loads a BERT vocab.txt (one token per line, id = line number from 0) the way HF's
    /// BertTokenizerFast does: the special tokens become added tokens matched in raw text.
    /// </summary>
    public static BertWordPieceTokenizer FromVocabFile(string vocabPath, bool lowercase = true, BertTokenizerOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(vocabPath);
        if (!File.Exists(vocabPath))
        {
            throw new FileNotFoundException($"WordPiece vocabulary file not found: {vocabPath}", vocabPath);
        }
        return FromVocabulary(File.ReadLines(vocabPath), lowercase, options);
    }

    /// <summary>Builds the tokenizer from vocabulary tokens in id order (the lines of a vocab.txt).</summary>
    public static BertWordPieceTokenizer FromVocabulary(IEnumerable<string> tokens, bool lowercase = true, BertTokenizerOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(tokens);
        var o = options ?? new BertTokenizerOptions();
        var vocab = new Dictionary<string, int>(StringComparer.Ordinal);
        int index = 0;
        foreach (string line in tokens)
        {
            // As HF's WordPiece::read_file: trailing whitespace trimmed, a repeated token keeps its last line.
            vocab[line.TrimEnd()] = index++;
        }
        var model = new WordPieceModel(vocab, o.UnkToken, o.ContinuingSubwordPrefix, o.MaxInputCharsPerWord);
        var tokenizer = new BertWordPieceTokenizer(model, new BertNormalizer(o.CleanText, o.HandleChineseChars, o.StripAccents, lowercase),
            bertPreTokenizer: true, new WordPieceDecoder(o.ContinuingSubwordPrefix, cleanup: true));
        tokenizer.Pad = tokenizer.AddSpecialToken(o.PadToken);
        tokenizer.Unk = tokenizer.AddSpecialToken(o.UnkToken);
        tokenizer.Cls = tokenizer.AddSpecialToken(o.ClsToken);
        tokenizer.Sep = tokenizer.AddSpecialToken(o.SepToken);
        tokenizer.Mask = tokenizer.AddSpecialToken(o.MaskToken);
        tokenizer.PostProcessor = TemplatePostProcessor.Bert(tokenizer.Cls.Content, tokenizer.Cls.Id, tokenizer.Sep.Content, tokenizer.Sep.Id);
        return tokenizer;
    }

    /// <summary>Loads a Hugging Face tokenizer.json whose model is WordPiece.</summary>
    public static new BertWordPieceTokenizer FromTokenizerJson(string path)
    {
        using var json = TokenizerJson.Open(path);
        return FromJson(json);
    }

    internal static BertWordPieceTokenizer FromJson(TokenizerJson json)
    {
        var model = json.RequiredObject(json.Root, "model", "model");
        string type = json.RequiredString(model, "type", "model.type");
        if (type != "WordPiece")
        {
            throw json.Error("model.type", $"expected model type WordPiece for a BERT tokenizer, found '{type}'");
        }
        var wordPiece = new WordPieceModel(
            json.Vocabulary(json.RequiredObject(model, "vocab", "model.vocab"), "model.vocab"),
            json.OptionalString(model, "unk_token", "model.unk_token") ?? "[UNK]",
            json.OptionalString(model, "continuing_subword_prefix", "model.continuing_subword_prefix") ?? "##",
            json.OptionalInt(model, "max_input_chars_per_word", "model.max_input_chars_per_word") ?? 100);

        BertNormalizer? normalizer = null;
        if (json.OptionalObject(json.Root, "normalizer", "normalizer") is { } n)
        {
            string normalizerType = json.RequiredString(n, "type", "normalizer.type");
            if (normalizerType != "BertNormalizer")
            {
                throw json.Error("normalizer.type", $"unsupported normalizer type '{normalizerType}' (supported: BertNormalizer, null)");
            }
            normalizer = new BertNormalizer(
                json.OptionalBool(n, "clean_text", "normalizer.clean_text") ?? true,
                json.OptionalBool(n, "handle_chinese_chars", "normalizer.handle_chinese_chars") ?? true,
                json.OptionalBool(n, "strip_accents", "normalizer.strip_accents"),
                json.OptionalBool(n, "lowercase", "normalizer.lowercase") ?? true);
        }
        bool bertPreTokenizer = false;
        if (json.OptionalObject(json.Root, "pre_tokenizer", "pre_tokenizer") is { } p)
        {
            string preType = json.RequiredString(p, "type", "pre_tokenizer.type");
            bertPreTokenizer = preType == "BertPreTokenizer"
                ? true
                : throw json.Error("pre_tokenizer.type", $"unsupported pre-tokenizer type '{preType}' (supported: BertPreTokenizer, null)");
        }
        var tokenizer = new BertWordPieceTokenizer(wordPiece, normalizer, bertPreTokenizer, TokenDecoder.FromJson(json))
        {
            PostProcessor = PostProcessorJson.Read(json),
        };
        foreach (var token in json.AddedTokens())
        {
            tokenizer.AddToken(token);
        }
        var (options, pad) = json.DefaultOptions();
        tokenizer.DefaultEncodeOptions = options;
        tokenizer.Unk = tokenizer.Known(wordPiece.UnkToken);
        tokenizer.Pad = pad ?? tokenizer.KnownSpecial("[PAD]");
        tokenizer.Mask = tokenizer.KnownSpecial("[MASK]");
        if (tokenizer.PostProcessor is TemplatePostProcessor template)
        {
            var (first, last) = template.OuterSpecialTokens();
            tokenizer.Cls = first is { Ids.Length: 1 } ? new SpecialToken(first.Tokens[0], first.Ids[0]) : null;
            tokenizer.Sep = last is { Ids.Length: 1 } ? new SpecialToken(last.Tokens[0], last.Ids[0]) : null;
        }
        return tokenizer;
    }

    /// <inheritdoc />
    public override void SaveTokenizerJson(string path) => TokenizerJson.Write(path, this,
        writer => WriteOrNull(writer, _normalizer is null ? null : _normalizer.WriteJson),
        writer => WriteOrNull(writer, !_bertPreTokenizer ? null : w =>
        {
            w.WriteStartObject();
            w.WriteString("type", "BertPreTokenizer");
            w.WriteEndObject();
        }),
        _decoder.WriteJson,
        writer =>
        {
            writer.WriteStartObject();
            writer.WriteString("type", "WordPiece");
            writer.WriteString("unk_token", _model.UnkToken);
            writer.WriteString("continuing_subword_prefix", _model.ContinuingSubwordPrefix);
            writer.WriteNumber("max_input_chars_per_word", _model.MaxInputCharsPerWord);
            TokenizerJson.WriteVocabulary(writer, _model.Vocab);
            writer.WriteEndObject();
        });

    /// <summary>Writes the vocabulary as a vocab.txt: tokens in id order, one per line.</summary>
    public void SaveVocabFile(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        File.WriteAllLines(path, _model.Vocab.OrderBy(e => e.Value).Select(e => e.Key));
    }

    private static void WriteOrNull(Utf8JsonWriter writer, Action<Utf8JsonWriter>? write)
    {
        if (write is null)
        {
            writer.WriteNullValue();
        }
        else
        {
            write(writer);
        }
    }

    private protected override int? ModelTokenToId(string token) => _model.TokenToId(token);

    private protected override string? ModelIdToToken(int id) => _model.IdToToken(id);

    private protected override void PreTokenize(NormalizedText text, List<NormalizedText> words)
    {
        if (_bertPreTokenizer)
        {
            BertNormalizer.PreTokenize(text, words);
        }
        else
        {
            words.Add(text);
        }
    }

    private protected override void TokenizeWord(NormalizedText word, List<ModelToken> output) => _model.Tokenize(word.Text, output);

    private protected override string DecodeTokens(List<string> tokens) => _decoder.Decode(tokens);
}

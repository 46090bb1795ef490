using System.Text.Json;

namespace MlNetFineTune.Models.Tokenizers;

/// <summary>What a <see cref="ByteLevelBpeTokenizer"/> built from vocab.json + merges.txt adds around sequences.</summary>
public enum ByteLevelPostProcessing
{
    /// <summary>RoBERTa: &lt;s&gt; A &lt;/s&gt; and &lt;s&gt; A &lt;/s&gt;&lt;/s&gt; B &lt;/s&gt;, all type ids 0.</summary>
    Roberta,

    /// <summary>GPT-2: nothing added; the pair's type ids are 1.</summary>
    None,
}

/// <summary>Settings of a <see cref="ByteLevelBpeTokenizer"/> built from vocab.json + merges.txt; the defaults are RoBERTa's.</summary>
public sealed record ByteLevelBpeOptions
{
    /// <summary>GPT-2's settings: no special tokens around sequences, &lt;|endoftext|&gt; as BOS, EOS and UNK.</summary>
    public static ByteLevelBpeOptions Gpt2 { get; } = new()
    {
        PostProcessing = ByteLevelPostProcessing.None,
        TrimOffsets = false,
        BosToken = "<|endoftext|>",
        EosToken = "<|endoftext|>",
        UnkToken = "<|endoftext|>",
        PadToken = null,
        MaskToken = null,
    };

    /// <summary>
    /// Put a space before the text (and before each piece between added tokens) so the first word is
    /// spelled like the others ("Ġhello"). False by default, as in roberta-base's and gpt2's tokenizer.json.
    /// </summary>
    public bool AddPrefixSpace { get; init; }

    /// <summary>Keep leading and trailing spaces (Ġ) out of token offsets.</summary>
    public bool TrimOffsets { get; init; } = true;

    /// <summary>Special tokens added around sequences.</summary>
    public ByteLevelPostProcessing PostProcessing { get; init; } = ByteLevelPostProcessing.Roberta;

    /// <summary>Beginning-of-sequence (and classification) token.</summary>
    public string? BosToken { get; init; } = "<s>";

    /// <summary>End-of-sequence (and separator) token.</summary>
    public string? EosToken { get; init; } = "</s>";

    /// <summary>Unknown token (a special added token; byte-level BPE itself never needs one).</summary>
    public string? UnkToken { get; init; } = "<unk>";

    /// <summary>Padding token.</summary>
    public string? PadToken { get; init; } = "<pad>";

    /// <summary>Mask token; it swallows the whitespace on its left, as RoBERTa's does.</summary>
    public string? MaskToken { get; init; } = "<mask>";
}

/// <summary>
/// GPT-2 / RoBERTa byte-level BPE as Hugging Face runs it: the text is split with GPT-2's pattern, each
/// piece's UTF-8 bytes are spelled with bytes_to_unicode characters (a space is "Ġ"), BPE merges them,
/// and offsets map back to the original UTF-16 characters (a token holding part of a character's bytes
/// gets the whole character).
/// </summary>
public sealed class ByteLevelBpeTokenizer : Tokenizer
{
    private readonly BpeModel _model;
    private readonly bool _addPrefixSpace;
    private readonly bool _useRegex;
    private readonly TokenDecoder _decoder;

    private ByteLevelBpeTokenizer(BpeModel model, bool addPrefixSpace, bool useRegex, TokenDecoder decoder)
    {
        _model = model;
        _addPrefixSpace = addPrefixSpace;
        _useRegex = useRegex;
        _decoder = decoder;
    }

    /// <summary>Whether a space is put before the text so the first word reads like the others.</summary>
    public bool AddPrefixSpace => _addPrefixSpace;

    /// <summary>Number of merge rules.</summary>
    public int MergeCount => _model.Merges.Count;

    private protected override int ModelVocabSize => _model.Vocab.Count;

    private protected override Func<NormalizedText, NormalizedText>? Normalizer => null;

    /// <summary>Loads GPT-2/RoBERTa vocab.json (token to id) and merges.txt ("a b" per line, best first; a first "#version" line is skipped).</summary>
    public static ByteLevelBpeTokenizer FromVocabAndMerges(string vocabJsonPath, string mergesPath, ByteLevelBpeOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(vocabJsonPath);
        ArgumentNullException.ThrowIfNull(mergesPath);
        var o = options ?? new ByteLevelBpeOptions();
        Dictionary<string, int> vocab;
        using (var json = TokenizerJson.Open(vocabJsonPath, " mapping each token to its id"))
        {
            vocab = json.Vocabulary(json.Root, "$");
        }
        if (!File.Exists(mergesPath))
        {
            throw new FileNotFoundException($"BPE merges file not found: {mergesPath}", mergesPath);
        }
        var merges = new List<(string, string)>();
        var lineNumbers = new List<int>();
        int lineNumber = 0;
        foreach (string line in File.ReadLines(mergesPath))
        {
            lineNumber++;
            if (line.StartsWith("#version", StringComparison.Ordinal))
            {
                continue;
            }
            string[] parts = line.Split(' ');
            if (parts.Length != 2)
            {
                throw new TokenizerFormatException(mergesPath,
                    $"expected two tokens separated by one space, found {parts.Length} part(s): \"{line}\"", lineNumber);
            }
            merges.Add((parts[0], parts[1]));
            lineNumbers.Add(lineNumber);
        }
        var model = new BpeModel(vocab, merges,
            (rank, message) => new TokenizerFormatException(mergesPath, message + $" ({vocabJsonPath})", lineNumbers[rank]));
        var tokenizer = new ByteLevelBpeTokenizer(model, o.AddPrefixSpace, useRegex: true, ByteLevelDecoder.Instance);
        tokenizer.Bos = o.BosToken is null ? null : tokenizer.AddSpecialToken(o.BosToken);
        tokenizer.Pad = o.PadToken is null ? null : tokenizer.AddSpecialToken(o.PadToken);
        tokenizer.Eos = o.EosToken is null ? null : tokenizer.AddSpecialToken(o.EosToken);
        tokenizer.Unk = o.UnkToken is null ? null : tokenizer.AddSpecialToken(o.UnkToken);
        tokenizer.Mask = o.MaskToken is null ? null : tokenizer.AddSpecialToken(o.MaskToken, lstrip: true);
        if (o.PostProcessing == ByteLevelPostProcessing.Roberta)
        {
            var bos = tokenizer.Bos ?? throw new ArgumentException("RoBERTa post-processing needs a BosToken.", nameof(options));
            var eos = tokenizer.Eos ?? throw new ArgumentException("RoBERTa post-processing needs an EosToken.", nameof(options));
            tokenizer.PostProcessor = new RobertaPostProcessor(eos.Content, eos.Id, bos.Content, bos.Id, o.TrimOffsets, o.AddPrefixSpace);
            tokenizer.Cls = bos;
            tokenizer.Sep = eos;
        }
        else
        {
            tokenizer.PostProcessor = new ByteLevelPostProcessor(o.TrimOffsets, o.AddPrefixSpace);
        }
        return tokenizer;
    }

    /// <summary>Loads a Hugging Face tokenizer.json whose model is BPE and whose pre-tokenizer is ByteLevel.</summary>
    public static new ByteLevelBpeTokenizer FromTokenizerJson(string path)
    {
        using var json = TokenizerJson.Open(path);
        return FromJson(json);
    }

    internal static ByteLevelBpeTokenizer FromJson(TokenizerJson json)
    {
        var model = json.RequiredObject(json.Root, "model", "model");
        string type = json.RequiredString(model, "type", "model.type");
        if (type != "BPE")
        {
            throw json.Error("model.type", $"expected model type BPE for a byte-level BPE tokenizer, found '{type}'");
        }
        if (json.Optional(model, "dropout") is { } dropout && !(dropout.ValueKind == JsonValueKind.Number && dropout.GetDouble() == 0))
        {
            throw json.Error("model.dropout", "BPE dropout is not supported (it makes encoding random); expected null");
        }
        if (json.OptionalObject(json.Root, "normalizer", "normalizer") is not null)
        {
            throw json.Error("normalizer", "normalizers are not supported for byte-level BPE; expected null");
        }
        var pre = json.RequiredObject(json.Root, "pre_tokenizer", "pre_tokenizer");
        string preType = json.RequiredString(pre, "type", "pre_tokenizer.type");
        if (preType != "ByteLevel")
        {
            throw json.Error("pre_tokenizer.type", $"unsupported pre-tokenizer type '{preType}' (supported: ByteLevel)");
        }
        var merges = ReadMerges(json, json.RequiredArray(model, "merges", "model.merges"));
        var bpe = new BpeModel(json.Vocabulary(json.RequiredObject(model, "vocab", "model.vocab"), "model.vocab"), merges,
            (rank, message) => json.Error($"model.merges[{rank}]", message),
            json.OptionalString(model, "unk_token", "model.unk_token"),
            NullIfEmpty(json.OptionalString(model, "continuing_subword_prefix", "model.continuing_subword_prefix")),
            NullIfEmpty(json.OptionalString(model, "end_of_word_suffix", "model.end_of_word_suffix")),
            json.OptionalBool(model, "fuse_unk", "model.fuse_unk") ?? false,
            json.OptionalBool(model, "byte_fallback", "model.byte_fallback") ?? false,
            json.OptionalBool(model, "ignore_merges", "model.ignore_merges") ?? false);
        var tokenizer = new ByteLevelBpeTokenizer(bpe,
            json.OptionalBool(pre, "add_prefix_space", "pre_tokenizer.add_prefix_space") ?? true,
            json.OptionalBool(pre, "use_regex", "pre_tokenizer.use_regex") ?? true,
            TokenDecoder.FromJson(json))
        {
            PostProcessor = PostProcessorJson.Read(json),
        };
        foreach (var token in json.AddedTokens())
        {
            tokenizer.AddToken(token);
        }
        var (options, pad) = json.DefaultOptions();
        tokenizer.DefaultEncodeOptions = options;
        switch (tokenizer.PostProcessor)
        {
            case RobertaPostProcessor roberta:
                tokenizer.Cls = tokenizer.Bos = new SpecialToken(roberta.Cls, roberta.ClsId);
                tokenizer.Sep = tokenizer.Eos = new SpecialToken(roberta.Sep, roberta.SepId);
                break;
            case TemplatePostProcessor template:
                var (first, last) = template.OuterSpecialTokens();
                tokenizer.Cls = tokenizer.Bos = first is { Ids.Length: 1 } ? new SpecialToken(first.Tokens[0], first.Ids[0]) : null;
                tokenizer.Sep = tokenizer.Eos = last is { Ids.Length: 1 } ? new SpecialToken(last.Tokens[0], last.Ids[0]) : null;
                break;
            default:
                tokenizer.Bos = tokenizer.Eos = tokenizer.KnownSpecial("<|endoftext|>");
                break;
        }
        // GPT-2 calls <|endoftext|> its unknown token too; RoBERTa has <unk>.
        tokenizer.Unk = tokenizer.Known(bpe.UnkToken)
            ?? (tokenizer.PostProcessor is RobertaPostProcessor ? null : tokenizer.KnownSpecial("<|endoftext|>"))
            ?? tokenizer.KnownSpecial("<unk>");
        tokenizer.Pad = pad ?? tokenizer.KnownSpecial("<pad>");
        tokenizer.Mask = tokenizer.KnownSpecial("<mask>");
        return tokenizer;
    }

    private static string? NullIfEmpty(string? s) => string.IsNullOrEmpty(s) ? null : s;

    // HF writes merges as "a b" strings (older files) or as ["a", "b"] pairs (newer ones).
    private static List<(string, string)> ReadMerges(TokenizerJson json, JsonElement array)
    {
        var merges = new List<(string, string)>();
        int i = 0;
        foreach (var item in array.EnumerateArray())
        {
            string field = $"model.merges[{i++}]";
            if (item.ValueKind == JsonValueKind.String)
            {
                string[] parts = item.GetString()!.Split(' ');
                merges.Add(parts.Length == 2 ? (parts[0], parts[1])
                    : throw json.Error(field, $"expected two tokens separated by one space, found {parts.Length} part(s)"));
            }
            else if (item.ValueKind == JsonValueKind.Array && item.GetArrayLength() == 2
                && item[0].ValueKind == JsonValueKind.String && item[1].ValueKind == JsonValueKind.String)
            {
                merges.Add((item[0].GetString()!, item[1].GetString()!));
            }
            else
            {
                throw json.Error(field, "expected \"a b\" or [\"a\", \"b\"]");
            }
        }
        return merges;
    }

    /// <inheritdoc />
    public override void SaveTokenizerJson(string path) => TokenizerJson.Write(path, this,
        writer => writer.WriteNullValue(),
        writer =>
        {
            writer.WriteStartObject();
            writer.WriteString("type", "ByteLevel");
            writer.WriteBoolean("add_prefix_space", _addPrefixSpace);
            writer.WriteBoolean("trim_offsets", PostProcessor is RobertaPostProcessor { TrimOffsets: true } or ByteLevelPostProcessor { TrimOffsets: true });
            writer.WriteBoolean("use_regex", _useRegex);
            writer.WriteEndObject();
        },
        _decoder.WriteJson,
        writer =>
        {
            writer.WriteStartObject();
            writer.WriteString("type", "BPE");
            writer.WriteNull("dropout");
            WriteStringOrNull(writer, "unk_token", _model.UnkToken);
            WriteStringOrNull(writer, "continuing_subword_prefix", _model.ContinuingSubwordPrefix);
            WriteStringOrNull(writer, "end_of_word_suffix", _model.EndOfWordSuffix);
            writer.WriteBoolean("fuse_unk", _model.FuseUnk);
            writer.WriteBoolean("byte_fallback", _model.ByteFallback);
            writer.WriteBoolean("ignore_merges", _model.IgnoreMerges);
            TokenizerJson.WriteVocabulary(writer, _model.Vocab);
            writer.WriteStartArray("merges");
            foreach (var (left, right) in _model.Merges)
            {
                if (left.Contains(' ', StringComparison.Ordinal) || right.Contains(' ', StringComparison.Ordinal))
                {
                    writer.WriteStartArray();
                    writer.WriteStringValue(left);
                    writer.WriteStringValue(right);
                    writer.WriteEndArray();
                }
                else
                {
                    writer.WriteStringValue($"{left} {right}");
                }
            }
            writer.WriteEndArray();
            writer.WriteEndObject();
        });

    private static void WriteStringOrNull(Utf8JsonWriter writer, string name, string? value)
    {
        if (value is null)
        {
            writer.WriteNull(name);
        }
        else
        {
            writer.WriteString(name, value);
        }
    }

    private protected override int? ModelTokenToId(string token) => _model.TokenToId(token);

    private protected override string? ModelIdToToken(int id) => _model.IdToToken(id);

    private protected override void PreTokenize(NormalizedText text, List<NormalizedText> words)
    {
        if (_addPrefixSpace && text.Text[0] != ' ')
        {
            text = text.PrependSpace();
        }
        if (!_useRegex)
        {
            words.Add(ByteLevel.ToByteChars(text));
            return;
        }
        var pieces = new List<(int Start, int Length)>();
        ByteLevel.Split(text.Text, pieces);
        foreach (var (start, length) in pieces)
        {
            words.Add(ByteLevel.ToByteChars(text.Slice(start, start + length)));
        }
    }

    private protected override void TokenizeWord(NormalizedText word, List<ModelToken> output) => _model.Tokenize(word.Text, output);

    private protected override string DecodeTokens(List<string> tokens) => _decoder.Decode(tokens);
}

namespace MlNetFineTune.Models.Tokenizers;

/// <summary>
/// The encoding pipeline shared by all tokenizers, in Hugging Face's order: added tokens are cut out
/// of the raw text, the rest is normalized and pre-tokenized into words, the model splits words into
/// tokens, the sequences are truncated, the post-processor adds special tokens, and padding comes last.
/// </summary>
public abstract class Tokenizer : ITokenizer
{
    private protected Tokenizer()
    {
    }

    internal AddedVocabulary Added { get; } = new();

    internal PostProcessor PostProcessor { get; private protected set; } = DefaultPostProcessor.Instance;

    /// <inheritdoc />
    public EncodeOptions DefaultEncodeOptions { get; set; } = EncodeOptions.Default;

    /// <inheritdoc />
    public SpecialToken? Pad { get; private protected set; }

    /// <inheritdoc />
    public SpecialToken? Unk { get; private protected set; }

    /// <inheritdoc />
    public SpecialToken? Cls { get; private protected set; }

    /// <inheritdoc />
    public SpecialToken? Sep { get; private protected set; }

    /// <inheritdoc />
    public SpecialToken? Mask { get; private protected set; }

    /// <inheritdoc />
    public SpecialToken? Bos { get; private protected set; }

    /// <inheritdoc />
    public SpecialToken? Eos { get; private protected set; }

    /// <inheritdoc />
    public IReadOnlyList<AddedToken> AddedTokens => Added.Tokens;

    /// <inheritdoc />
    public int VocabSize => ModelVocabSize + Added.Tokens.Count(t => ModelTokenToId(t.Content) is null);

    private protected abstract int ModelVocabSize { get; }

    private protected abstract int? ModelTokenToId(string token);

    private protected abstract string? ModelIdToToken(int id);

    /// <summary>The normalizer, or null for none.</summary>
    private protected abstract Func<NormalizedText, NormalizedText>? Normalizer { get; }

    /// <summary>Splits a normalized piece of text into the words the model tokenizes.</summary>
    private protected abstract void PreTokenize(NormalizedText text, List<NormalizedText> words);

    private protected abstract void TokenizeWord(NormalizedText word, List<ModelToken> output);

    private protected abstract string DecodeTokens(List<string> tokens);

    /// <summary>Writes a Hugging Face tokenizer.json that <see cref="FromTokenizerJson"/> (and HF) can load.</summary>
    public abstract void SaveTokenizerJson(string path);

    /// <summary>
    /// Loads a Hugging Face tokenizer.json, choosing the tokenizer from "model.type": WordPiece gives a
    /// <see cref="BertWordPieceTokenizer"/>, BPE a <see cref="ByteLevelBpeTokenizer"/>, WordLevel a <see cref="WordTokenizer"/>.
    /// </summary>
    public static Tokenizer FromTokenizerJson(string path)
    {
        using var json = TokenizerJson.Open(path);
        var model = json.RequiredObject(json.Root, "model", "model");
        string type = json.RequiredString(model, "type", "model.type");
        return type switch
        {
            "WordPiece" => BertWordPieceTokenizer.FromJson(json),
            "BPE" => ByteLevelBpeTokenizer.FromJson(json),
            "WordLevel" => WordTokenizer.FromJson(json),
            _ => throw json.Error("model.type", $"unsupported model type '{type}' (supported: WordPiece, BPE, WordLevel)"),
        };
    }

    /// <inheritdoc />
    public int? TokenToId(string token)
    {
        ArgumentNullException.ThrowIfNull(token);
        return Added.TokenToId(token) ?? ModelTokenToId(token);
    }

    /// <inheritdoc />
    public string? IdToToken(int id) => Added.IdToToken(id)?.Content ?? ModelIdToToken(id);

    /// <inheritdoc />
    public Encoding Encode(string text, string? pair = null, EncodeOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(text);
        var o = options ?? DefaultEncodeOptions;
        o.Validate();
        var encoding = EncodeUnpadded(text, pair, o);
        return o.Padding == PaddingStrategy.None ? encoding : PadTo(encoding, PaddedLength(o, encoding.Length), o);
    }

    /// <inheritdoc />
    public IReadOnlyList<Encoding> EncodeBatch(IReadOnlyList<string> texts, EncodeOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(texts);
        return EncodeBatch([.. texts.Select(t => (t, (string?)null))], options);
    }

    /// <inheritdoc />
    public IReadOnlyList<Encoding> EncodeBatch(IReadOnlyList<(string Text, string? Pair)> inputs, EncodeOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        var o = options ?? DefaultEncodeOptions;
        o.Validate();
        var encodings = new Encoding[inputs.Count];
        for (int i = 0; i < encodings.Length; i++)
        {
            ArgumentNullException.ThrowIfNull(inputs[i].Text, $"{nameof(inputs)}[{i}].Text");
            encodings[i] = EncodeUnpadded(inputs[i].Text, inputs[i].Pair, o);
        }
        if (o.Padding != PaddingStrategy.None && encodings.Length > 0)
        {
            int longest = encodings.Max(e => e.Length);
            for (int i = 0; i < encodings.Length; i++)
            {
                encodings[i] = PadTo(encodings[i], PaddedLength(o, longest), o);
            }
        }
        return encodings;
    }

    /// <inheritdoc />
    public string Decode(IEnumerable<int> ids, bool skipSpecialTokens = true)
    {
        ArgumentNullException.ThrowIfNull(ids);
        var tokens = new List<string>();
        foreach (int id in ids)
        {
            string? token = IdToToken(id);
            if (token is not null && !(skipSpecialTokens && Added.IsSpecial(token)))
            {
                tokens.Add(token);
            }
        }
        return DecodeTokens(tokens);
    }

    /// <summary>Registers an added token (ignored when one with the same content exists).</summary>
    private protected void AddToken(AddedToken token) => Added.Add(token);

    /// <summary>Registers <paramref name="content"/> as a special added token: its vocabulary id, or a new one after all others.</summary>
    private protected SpecialToken AddSpecialToken(string content, bool lstrip = false)
    {
        int id = TokenToId(content) ?? Math.Max(ModelVocabSize, Added.Tokens.Select(t => t.Id + 1).DefaultIfEmpty(0).Max());
        AddToken(new AddedToken(id, content, Special: true) { LStrip = lstrip });
        return new SpecialToken(content, id);
    }

    /// <summary>The token <paramref name="content"/>, when the tokenizer knows it.</summary>
    private protected SpecialToken? Known(string? content) =>
        content is not null && TokenToId(content) is int id ? new SpecialToken(content, id) : null;

    /// <summary>
    /// The token <paramref name="content"/> when it is a special added token: how a tokenizer.json,
    /// which records no roles, is read for [PAD], &lt;mask&gt; and the like.
    /// </summary>
    private protected SpecialToken? KnownSpecial(string content) =>
        Added.TokenToId(content) is int id && Added.IsSpecial(content) ? new SpecialToken(content, id) : null;

    private Encoding EncodeUnpadded(string text, string? pair, EncodeOptions o)
    {
        var first = EncodeSequence(text, 0);
        var second = pair is null ? null : EncodeSequence(pair, 1);
        if (o.MaxLength is int maxLength && o.Truncation != TruncationStrategy.None)
        {
            int added = o.AddSpecialTokens ? PostProcessor.AddedTokenCount(second is not null) : 0;
            if (maxLength < added)
            {
                throw new ArgumentException(
                    $"MaxLength {maxLength} leaves no room for the {added} special tokens this tokenizer adds.", "options");
            }
            (first, second) = Truncate(first, second, maxLength - added, o.Truncation);
        }
        return PostProcessor.Process(first, second, o.AddSpecialTokens);
    }

    private Encoding EncodeSequence(string text, int sequenceId)
    {
        var words = new List<TextSplit>();
        var pieces = new List<NormalizedText>();
        foreach (var split in Added.ExtractAndNormalize(text, Normalizer))
        {
            if (split.Tokens is not null)
            {
                words.Add(split);
                continue;
            }
            pieces.Clear();
            PreTokenize(split.Text, pieces);
            foreach (var piece in pieces)
            {
                if (piece.Length > 0)
                {
                    words.Add(new TextSplit(piece));
                }
            }
        }
        var ids = new List<int>();
        var tokens = new List<string>();
        var offsets = new List<(int, int)>();
        var wordIds = new List<int?>();
        var modelTokens = new List<ModelToken>();
        for (int w = 0; w < words.Count; w++)
        {
            var word = words[w];
            var wordTokens = word.Tokens;
            if (wordTokens is null)
            {
                modelTokens.Clear();
                TokenizeWord(word.Text, modelTokens);
                wordTokens = modelTokens;
            }
            foreach (var token in wordTokens)
            {
                ids.Add(token.Id);
                tokens.Add(token.Value);
                offsets.Add(word.Text.ToOriginal(token.Start, token.End));
                wordIds.Add(w);
            }
        }
        int n = ids.Count;
        var typeIds = new int[n];
        Array.Fill(typeIds, sequenceId);
        var attention = new int[n];
        Array.Fill(attention, 1);
        var sequenceIds = new int?[n];
        Array.Fill(sequenceIds, sequenceId);
        return new Encoding([.. ids], [.. tokens], typeIds, attention, new int[n], [.. offsets], [.. wordIds], sequenceIds)
        {
            Source = text,
        };
    }

    // HF's truncate_encodings (right side, no stride).
    private static (Encoding First, Encoding? Second) Truncate(Encoding first, Encoding? second, int maxLength,
        TruncationStrategy strategy)
    {
        if (maxLength == 0)
        {
            return (first.Truncate(0), second?.Truncate(0));
        }
        int total = first.Length + (second?.Length ?? 0);
        if (total <= maxLength)
        {
            return (first, second);
        }
        int toRemove = total - maxLength;
        switch (strategy)
        {
            case TruncationStrategy.LongestFirst when second is null:
                return (first.Truncate(maxLength), null);
            case TruncationStrategy.LongestFirst:
            {
                int n1 = first.Length, n2 = second.Length;
                bool swap = n1 > n2;
                if (swap)
                {
                    (n1, n2) = (n2, n1);
                }
                n2 = n1 > maxLength ? n1 : Math.Max(n1, maxLength - n1);
                if (n1 + n2 > maxLength)
                {
                    n1 = maxLength / 2;
                    n2 = n1 + maxLength % 2;
                }
                if (swap)
                {
                    (n1, n2) = (n2, n1);
                }
                return (first.Truncate(n1), second.Truncate(n2));
            }
            case TruncationStrategy.OnlyFirst:
                return first.Length > toRemove
                    ? (first.Truncate(first.Length - toRemove), second)
                    : throw SequenceTooShort("first");
            default:
                if (second is null)
                {
                    throw new ArgumentException("Truncation strategy OnlySecond needs a second sequence.");
                }
                return second.Length > toRemove
                    ? (first, second.Truncate(second.Length - toRemove))
                    : throw SequenceTooShort("second");
        }

        ArgumentException SequenceTooShort(string which) => new(
            $"The {which} sequence is too short to truncate to MaxLength {maxLength} (special tokens excluded); " +
            "use TruncationStrategy.LongestFirst or a larger MaxLength.");
    }

    private static int PaddedLength(EncodeOptions o, int length)
    {
        int target = o.Padding == PaddingStrategy.MaxLength ? o.MaxLength!.Value : length;
        if (o.PadToMultipleOf is int multiple && target % multiple != 0)
        {
            target += multiple - target % multiple;
        }
        return target;
    }

    private Encoding PadTo(Encoding encoding, int length, EncodeOptions o)
    {
        if (encoding.Length >= length)
        {
            return encoding;
        }
        var pad = Pad ?? throw new InvalidOperationException(
            $"Cannot pad with {o.Padding}: this tokenizer has no padding token.");
        return encoding.Pad(length, pad.Id, pad.Content);
    }
}

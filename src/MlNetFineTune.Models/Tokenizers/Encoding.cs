namespace MlNetFineTune.Models.Tokenizers;

/// <summary>
/// The result of encoding a text or a text pair: one entry per token in every list. Offsets are
/// UTF-16 (start, end) indices into the original string the token came from (the first text, or
/// the pair text where <see cref="SequenceIds"/> is 1); special and padding tokens have (0, 0).
/// </summary>
public sealed class Encoding
{
    private readonly int[] _ids;
    private readonly string[] _tokens;
    private readonly int[] _typeIds;
    private readonly int[] _attentionMask;
    private readonly int[] _specialTokensMask;
    private readonly (int Start, int End)[] _offsets;
    private readonly int?[] _wordIds;
    private readonly int?[] _sequenceIds;

    internal Encoding(int[] ids, string[] tokens, int[] typeIds, int[] attentionMask, int[] specialTokensMask,
        (int Start, int End)[] offsets, int?[] wordIds, int?[] sequenceIds)
    {
        _ids = ids;
        _tokens = tokens;
        _typeIds = typeIds;
        _attentionMask = attentionMask;
        _specialTokensMask = specialTokensMask;
        _offsets = offsets;
        _wordIds = wordIds;
        _sequenceIds = sequenceIds;
    }

    internal static Encoding Empty { get; } = new([], [], [], [], [], [], [], []);

    /// <summary>
    /// A single sequence that no post-processor tagged with its sequence range (a tokenizer without
    /// post-processor, HF's default_process): HF then reports every position, padding included, as sequence 0.
    /// </summary>
    internal bool UntaggedSingleSequence { get; init; }

    /// <summary>The text the tokens' offsets point into (null once sequences are concatenated).</summary>
    internal string? Source { get; init; }

    /// <summary>Number of tokens.</summary>
    public int Length => _ids.Length;

    /// <summary>Token ids.</summary>
    public IReadOnlyList<int> Ids => _ids;

    /// <summary>Token strings as the vocabulary spells them ("##ing", "Ġworld").</summary>
    public IReadOnlyList<string> Tokens => _tokens;

    /// <summary>Segment (token type) ids: 0 for the first text, 1 for the pair where the model distinguishes them.</summary>
    public IReadOnlyList<int> TypeIds => _typeIds;

    /// <summary>1 for real tokens, 0 for padding.</summary>
    public IReadOnlyList<int> AttentionMask => _attentionMask;

    /// <summary>1 for tokens added by post-processing or padding ([CLS], [SEP], [PAD]), 0 for tokens of the text.</summary>
    public IReadOnlyList<int> SpecialTokensMask => _specialTokensMask;

    /// <summary>(start, end) UTF-16 offsets into the original text of the token's sequence.</summary>
    public IReadOnlyList<(int Start, int End)> Offsets => _offsets;

    /// <summary>
    /// Index, within its sequence, of the pre-tokenized word each token came from; null for special
    /// and padding tokens. A word's first token is the one whose word id differs from the previous token's.
    /// </summary>
    public IReadOnlyList<int?> WordIds => _wordIds;

    /// <summary>0 for tokens of the first text, 1 for tokens of the pair, null for special and padding tokens.</summary>
    public IReadOnlyList<int?> SequenceIds => _sequenceIds;

    /// <summary>The index of the token covering character <paramref name="charIndex"/> of the given sequence, if any.</summary>
    public int? CharToToken(int charIndex, int sequenceId = 0)
    {
        for (int i = 0; i < _ids.Length; i++)
        {
            if (_sequenceIds[i] == sequenceId && _offsets[i].Start <= charIndex && charIndex < _offsets[i].End)
            {
                return i;
            }
        }
        return null;
    }

    /// <inheritdoc />
    public override string ToString() => $"Encoding({Length} tokens: {string.Join(' ', _tokens)})";

    /// <summary>The first <paramref name="length"/> tokens.</summary>
    internal Encoding Truncate(int length)
    {
        if (length >= Length)
        {
            return this;
        }
        return new Encoding(_ids[..length], _tokens[..length], _typeIds[..length], _attentionMask[..length],
            _specialTokensMask[..length], _offsets[..length], _wordIds[..length], _sequenceIds[..length]) { Source = Source };
    }

    internal Encoding WithTypeIds(int typeId)
    {
        var typeIds = new int[Length];
        Array.Fill(typeIds, typeId);
        return new Encoding(_ids, _tokens, typeIds, _attentionMask, _specialTokensMask, _offsets, _wordIds, _sequenceIds) { Source = Source };
    }

    internal Encoding WithOffsets((int Start, int End)[] offsets) =>
        new(_ids, _tokens, _typeIds, _attentionMask, _specialTokensMask, offsets, _wordIds, _sequenceIds) { Source = Source };

    internal Encoding AsUntaggedSingleSequence() =>
        new(_ids, _tokens, _typeIds, _attentionMask, _specialTokensMask, _offsets, _wordIds, _sequenceIds)
        {
            UntaggedSingleSequence = true,
            Source = Source,
        };

    internal (int Start, int End)[] OffsetsArray => _offsets;

    internal string[] TokensArray => _tokens;

    /// <summary>Special tokens with (0, 0) offsets and no word or sequence.</summary>
    internal static Encoding Special(IReadOnlyList<int> ids, IReadOnlyList<string> tokens, int typeId)
    {
        int n = ids.Count;
        var typeIds = new int[n];
        Array.Fill(typeIds, typeId);
        var ones = new int[n];
        Array.Fill(ones, 1);
        return new Encoding([.. ids], [.. tokens], typeIds, ones, [.. ones], new (int, int)[n], new int?[n], new int?[n]);
    }

    internal static Encoding Concat(IReadOnlyList<Encoding> parts)
    {
        if (parts.Count == 1)
        {
            return parts[0];
        }
        int n = parts.Sum(p => p.Length);
        var ids = new int[n];
        var tokens = new string[n];
        var typeIds = new int[n];
        var attention = new int[n];
        var special = new int[n];
        var offsets = new (int, int)[n];
        var words = new int?[n];
        var sequences = new int?[n];
        int at = 0;
        foreach (var p in parts)
        {
            p._ids.CopyTo(ids, at);
            p._tokens.CopyTo(tokens, at);
            p._typeIds.CopyTo(typeIds, at);
            p._attentionMask.CopyTo(attention, at);
            p._specialTokensMask.CopyTo(special, at);
            p._offsets.CopyTo(offsets, at);
            p._wordIds.CopyTo(words, at);
            p._sequenceIds.CopyTo(sequences, at);
            at += p.Length;
        }
        return new Encoding(ids, tokens, typeIds, attention, special, offsets, words, sequences);
    }

    /// <summary>Pads on the right to <paramref name="length"/> with the given pad token (HF's Encoding::pad).</summary>
    internal Encoding Pad(int length, int padId, string padToken)
    {
        if (Length >= length)
        {
            return this;
        }
        int n = length - Length;
        var ids = new int[n];
        Array.Fill(ids, padId);
        var tokens = new string[n];
        Array.Fill(tokens, padToken);
        var ones = new int[n];
        Array.Fill(ones, 1);
        var sequenceIds = new int?[n];
        if (UntaggedSingleSequence)
        {
            Array.Fill(sequenceIds, 0);
        }
        var padding = new Encoding(ids, tokens, new int[n], new int[n], ones, new (int, int)[n], new int?[n], sequenceIds);
        return Concat([this, padding]);
    }
}

namespace MlNetFineTune.Models.Tokenizers;

/// <summary>
/// A token matched as a whole in the input text before any other processing (Hugging Face's
/// "added_tokens": [CLS], &lt;mask&gt;, user-added words). Special tokens are skipped by
/// <see cref="ITokenizer.Decode"/> with <c>skipSpecialTokens</c>.
/// </summary>
/// <param name="Id">The id the token encodes to.</param>
/// <param name="Content">The exact text the token matches.</param>
/// <param name="Special">Whether the token is special (skipped when decoding).</param>
public sealed record AddedToken(int Id, string Content, bool Special)
{
    /// <summary>Match only when not surrounded by word characters.</summary>
    public bool SingleWord { get; init; }

    /// <summary>Swallow the whitespace on the token's left into the token.</summary>
    public bool LStrip { get; init; }

    /// <summary>Swallow the whitespace on the token's right into the token.</summary>
    public bool RStrip { get; init; }

    /// <summary>Match against the normalized text (true) or the raw input (false). HF's default is <c>!Special</c>.</summary>
    public bool Normalized { get; init; } = !Special;
}

/// <summary>One piece of the input during encoding: its normalized text and, once known, its tokens.</summary>
internal sealed class TextSplit(NormalizedText text, List<ModelToken>? tokens = null)
{
    public NormalizedText Text { get; } = text;

    public List<ModelToken>? Tokens { get; set; } = tokens;
}

/// <summary>A token produced by a model, with its range in the normalized units of its split.</summary>
internal readonly record struct ModelToken(int Id, string Value, int Start, int End);

/// <summary>
/// The added tokens of a tokenizer and the search for them (HF's AddedVocabulary): leftmost-longest,
/// non-overlapping matches, first of the non-normalized tokens on the raw text, then of the
/// normalized tokens on each remaining piece once normalized.
/// </summary>
internal sealed class AddedVocabulary
{
    private readonly List<AddedToken> _tokens = [];
    private readonly Dictionary<string, int> _contentToId = new(StringComparer.Ordinal);
    private readonly Dictionary<int, AddedToken> _idToToken = [];
    private readonly HashSet<string> _special = new(StringComparer.Ordinal);
    private (string Pattern, AddedToken Token)[] _raw = [];
    private (string Pattern, AddedToken Token)[]? _normalized;

    public IReadOnlyList<AddedToken> Tokens => _tokens;

    public void Add(AddedToken token)
    {
        if (token.Content.Length == 0 || _contentToId.ContainsKey(token.Content))
        {
            return;
        }
        _tokens.Add(token);
        _contentToId[token.Content] = token.Id;
        _idToToken[token.Id] = token;
        if (token.Special)
        {
            _special.Add(token.Content);
        }
        _raw = [.. _tokens.Where(t => !t.Normalized).Select(t => (t.Content, t))];
        _normalized = null;
    }

    public int? TokenToId(string content) => _contentToId.TryGetValue(content, out int id) ? id : null;

    public AddedToken? IdToToken(int id) => _idToToken.GetValueOrDefault(id);

    public bool IsSpecial(string content) => _special.Contains(content);

    /// <summary>Splits <paramref name="text"/> on added tokens and normalizes the rest (HF's extract_and_normalize).</summary>
    public List<TextSplit> ExtractAndNormalize(string text, Func<NormalizedText, NormalizedText>? normalize)
    {
        var result = new List<TextSplit>();
        if (text.Length == 0)
        {
            return result;
        }
        var first = new List<TextSplit>();
        Split(NormalizedText.FromOriginal(text, 0, text.Length), _raw, first);
        var normalizedPatterns = _normalized ??= [.. _tokens.Where(t => t.Normalized)
            .Select(t => (normalize is null ? t.Content : normalize(NormalizedText.FromOriginal(t.Content, 0, t.Content.Length)).Text, t))
            .Where(p => p.Item1.Length > 0)];
        foreach (var split in first)
        {
            if (split.Tokens is not null)
            {
                result.Add(split);
                continue;
            }
            var normalized = normalize is null ? split.Text : normalize(split.Text);
            Split(normalized, normalizedPatterns, result);
        }
        return result;
    }

    private static void Split(NormalizedText text, (string Pattern, AddedToken Token)[] patterns, List<TextSplit> output)
    {
        string s = text.Text;
        int startOffset = 0;
        if (patterns.Length > 0)
        {
            int pos = 0;
            while (pos < s.Length)
            {
                var (length, token) = LongestMatchAt(s, pos, patterns);
                if (token is null)
                {
                    pos++;
                    continue;
                }
                int start = pos, stop = pos + length;
                pos = stop;
                if (token.SingleWord)
                {
                    bool startSpace = start == 0 || !EndsWithWordChar(s, start);
                    bool stopSpace = stop == s.Length || !StartsWithWordChar(s, stop);
                    if (!startSpace || !stopSpace)
                    {
                        continue;
                    }
                }
                if (token.LStrip)
                {
                    int newStart = start;
                    while (newStart > 0 && char.IsWhiteSpace(s[newStart - 1]))
                    {
                        newStart--;
                    }
                    start = Math.Max(newStart, startOffset);
                }
                if (token.RStrip)
                {
                    // HF's match iterator goes on from the end of the match itself, not of the stripped spaces.
                    while (stop < s.Length && char.IsWhiteSpace(s[stop]))
                    {
                        stop++;
                    }
                }
                if (stop <= startOffset)
                {
                    continue;
                }
                start = Math.Max(start, startOffset);
                if (startOffset < start)
                {
                    output.Add(new TextSplit(text.Slice(startOffset, start)));
                }
                var slice = text.Slice(start, stop);
                output.Add(new TextSplit(slice, [new ModelToken(token.Id, slice.Text, 0, slice.Length)]));
                startOffset = stop;
            }
        }
        if (startOffset < s.Length)
        {
            output.Add(new TextSplit(startOffset == 0 ? text : text.Slice(startOffset, s.Length)));
        }
    }

    private static (int Length, AddedToken? Token) LongestMatchAt(string s, int pos, (string Pattern, AddedToken Token)[] patterns)
    {
        int bestLength = 0;
        AddedToken? best = null;
        foreach (var (pattern, token) in patterns)
        {
            if (pattern.Length > bestLength && s.AsSpan(pos).StartsWith(pattern, StringComparison.Ordinal))
            {
                bestLength = pattern.Length;
                best = token;
            }
        }
        return (bestLength, best);
    }

    private static bool EndsWithWordChar(string s, int end)
    {
        int i = end - 1;
        if (char.IsLowSurrogate(s[i]) && i > 0 && char.IsHighSurrogate(s[i - 1]))
        {
            i--;
        }
        return UnicodeNormalization.IsWordCharacter(NormalizedText.CodePointAt(s, i, out _));
    }

    private static bool StartsWithWordChar(string s, int start) =>
        UnicodeNormalization.IsWordCharacter(NormalizedText.CodePointAt(s, start, out _));
}

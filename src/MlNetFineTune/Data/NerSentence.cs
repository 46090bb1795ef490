namespace MlNetFineTune.Data;

/// <summary>One sentence of a named-entity data set: tokens and one tag per token. Two sentences are equal when
/// their tokens and tags are.</summary>
/// <param name="Tokens">The tokens (words), none empty or holding whitespace.</param>
/// <param name="Tags">One entity tag per token (<c>O</c>, <c>B-PER</c>, ...).</param>
public sealed record NerSentence(IReadOnlyList<string> Tokens, IReadOnlyList<string> Tags)
{
    /// <summary>The tokens.</summary>
    public IReadOnlyList<string> Tokens { get; } = Tokens ?? throw new ArgumentNullException(nameof(Tokens));

    /// <summary>The tags, as many as tokens.</summary>
    public IReadOnlyList<string> Tags { get; } = CheckTags(Tokens, Tags);

    /// <summary>Number of tokens.</summary>
    public int Count => Tokens.Count;

    private static IReadOnlyList<string> CheckTags(IReadOnlyList<string>? tokens, IReadOnlyList<string> tags)
    {
        ArgumentNullException.ThrowIfNull(tags, nameof(Tags));
        if (tokens is not null && tokens.Count != tags.Count)
        {
            throw new ArgumentException($"A sentence has {tokens.Count} tokens but {tags.Count} tags.", nameof(Tags));
        }
        return tags;
    }

    /// <inheritdoc/>
    public bool Equals(NerSentence? other)
        => other is not null && Tokens.SequenceEqual(other.Tokens, StringComparer.Ordinal)
            && Tags.SequenceEqual(other.Tags, StringComparer.Ordinal);

    /// <inheritdoc/>
    public override int GetHashCode()
    {
        var hash = new HashCode();
        for (int i = 0; i < Tokens.Count; i++)
        {
            hash.Add(Tokens[i], StringComparer.Ordinal);
            hash.Add(Tags[i], StringComparer.Ordinal);
        }
        return hash.ToHashCode();
    }

    /// <summary><c>EU/B-ORG rejects/O German/B-MISC</c>.</summary>
    public override string ToString() => string.Join(' ', Tokens.Select((t, i) => $"{t}/{Tags[i]}"));
}

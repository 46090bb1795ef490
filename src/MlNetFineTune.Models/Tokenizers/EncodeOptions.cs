namespace MlNetFineTune.Models.Tokenizers;

/// <summary>How an input pair is cut down to <see cref="EncodeOptions.MaxLength"/> (Hugging Face's strategies).</summary>
public enum TruncationStrategy
{
    /// <summary>Never truncate, even when <see cref="EncodeOptions.MaxLength"/> is set (it then only serves padding).</summary>
    None,

    /// <summary>Take tokens from the longer sequence until both fit (HF <c>longest_first</c>).</summary>
    LongestFirst,

    /// <summary>Truncate only the first sequence; an error if that is not enough (HF <c>only_first</c>).</summary>
    OnlyFirst,

    /// <summary>Truncate only the second sequence; an error if that is not enough or there is none (HF <c>only_second</c>).</summary>
    OnlySecond,
}

/// <summary>How encodings are padded (always on the right).</summary>
public enum PaddingStrategy
{
    /// <summary>No padding.</summary>
    None,

    /// <summary>Pad every encoding to <see cref="EncodeOptions.MaxLength"/> (HF <c>Fixed</c>).</summary>
    MaxLength,

    /// <summary>Pad every encoding of a batch to the longest one in it (HF <c>BatchLongest</c>).</summary>
    Longest,
}

/// <summary>Options of <see cref="ITokenizer.Encode"/> and <see cref="ITokenizer.EncodeBatch(IReadOnlyList{string}, EncodeOptions?)"/>.</summary>
public sealed record EncodeOptions
{
    /// <summary>Special tokens on, no truncation, no padding.</summary>
    public static EncodeOptions Default { get; } = new();

    /// <summary>Add the model's special tokens ([CLS] A [SEP] B [SEP], &lt;s&gt; A &lt;/s&gt;&lt;/s&gt; B &lt;/s&gt;, ...).</summary>
    public bool AddSpecialTokens { get; init; } = true;

    /// <summary>The most tokens an encoding may have, special tokens included; null for no limit.</summary>
    public int? MaxLength { get; init; }

    /// <summary>How to truncate when <see cref="MaxLength"/> is set.</summary>
    public TruncationStrategy Truncation { get; init; } = TruncationStrategy.LongestFirst;

    /// <summary>How to pad.</summary>
    public PaddingStrategy Padding { get; init; } = PaddingStrategy.None;

    /// <summary>When padding, round the padded length up to a multiple of this; null for none.</summary>
    public int? PadToMultipleOf { get; init; }

    internal void Validate()
    {
        if (MaxLength is < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxLength), MaxLength, "MaxLength must not be negative.");
        }
        if (PadToMultipleOf is <= 0)
        {
            throw new ArgumentOutOfRangeException(nameof(PadToMultipleOf), PadToMultipleOf, "PadToMultipleOf must be positive.");
        }
        if (Padding == PaddingStrategy.MaxLength && MaxLength is null)
        {
            throw new ArgumentException("Padding to MaxLength needs MaxLength to be set.", nameof(Padding));
        }
    }
}

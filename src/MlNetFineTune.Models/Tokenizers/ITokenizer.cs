namespace MlNetFineTune.Models.Tokenizers;

/// <summary>A special token of a tokenizer and its id.</summary>
/// <param name="Content">The token's text, e.g. "[CLS]".</param>
/// <param name="Id">The token's id.</param>
public sealed record SpecialToken(string Content, int Id);

/// <summary>Turns text into model input ids and back, with the offsets and masks a model needs.</summary>
public interface ITokenizer
{
    /// <summary>Number of distinct tokens: the model's vocabulary plus added tokens not in it.</summary>
    int VocabSize { get; }

    /// <summary>Padding token, if the tokenizer has one.</summary>
    SpecialToken? Pad { get; }

    /// <summary>Unknown-word token, if the tokenizer has one.</summary>
    SpecialToken? Unk { get; }

    /// <summary>Classification token put first by post-processing ([CLS], &lt;s&gt;), if any.</summary>
    SpecialToken? Cls { get; }

    /// <summary>Separator token put after each sequence ([SEP], &lt;/s&gt;), if any.</summary>
    SpecialToken? Sep { get; }

    /// <summary>Mask token for masked-language modelling, if any.</summary>
    SpecialToken? Mask { get; }

    /// <summary>Beginning-of-sequence token, if any.</summary>
    SpecialToken? Bos { get; }

    /// <summary>End-of-sequence token, if any.</summary>
    SpecialToken? Eos { get; }

    /// <summary>Tokens matched whole in the input before normalization and splitting ([CLS], &lt;mask&gt;, ...).</summary>
    IReadOnlyList<AddedToken> AddedTokens { get; }

    /// <summary>Options used when <c>Encode</c> is given none (tokenizer.json's "truncation" and "padding").</summary>
    EncodeOptions DefaultEncodeOptions { get; }

    /// <summary>Encodes a text, or a text pair, with special tokens, truncation and padding as <paramref name="options"/> say.</summary>
    Encoding Encode(string text, string? pair = null, EncodeOptions? options = null);

    /// <summary>Encodes each text; with <see cref="PaddingStrategy.Longest"/> all are padded to the longest.</summary>
    IReadOnlyList<Encoding> EncodeBatch(IReadOnlyList<string> texts, EncodeOptions? options = null);

    /// <summary>Encodes each text pair (a null pair encodes the text alone).</summary>
    IReadOnlyList<Encoding> EncodeBatch(IReadOnlyList<(string Text, string? Pair)> inputs, EncodeOptions? options = null);

    /// <summary>Turns ids back into text; unknown ids are skipped, and special tokens too when <paramref name="skipSpecialTokens"/>.</summary>
    string Decode(IEnumerable<int> ids, bool skipSpecialTokens = true);

    /// <summary>The id of a token (added tokens first, then the model's vocabulary), or null.</summary>
    int? TokenToId(string token);

    /// <summary>The token of an id, or null.</summary>
    string? IdToToken(int id);
}

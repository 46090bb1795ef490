using System.Text.Json;

namespace MlNetFineTune.Models.Tokenizers;

/// <summary>Turns token strings back into text (HF's Decoder); without one, tokens are joined with spaces.</summary>
internal abstract class TokenDecoder
{
    public abstract string Decode(List<string> tokens);

    public abstract void WriteJson(Utf8JsonWriter writer);

    /// <summary>Reads "decoder": null, WordPiece or ByteLevel.</summary>
    public static TokenDecoder FromJson(TokenizerJson json)
    {
        if (json.OptionalObject(json.Root, "decoder", "decoder") is not { } decoder)
        {
            return JoinWithSpaces.Instance;
        }
        string type = json.RequiredString(decoder, "type", "decoder.type");
        return type switch
        {
            "WordPiece" => new WordPieceDecoder(
                json.OptionalString(decoder, "prefix", "decoder.prefix") ?? "##",
                json.OptionalBool(decoder, "cleanup", "decoder.cleanup") ?? true),
            "ByteLevel" => ByteLevelDecoder.Instance,
            _ => throw json.Error("decoder.type", $"unsupported decoder type '{type}' (supported: WordPiece, ByteLevel, null)"),
        };
    }
}

/// <summary>No decoder: tokens joined with single spaces.</summary>
internal sealed class JoinWithSpaces : TokenDecoder
{
    public static JoinWithSpaces Instance { get; } = new();

    public override string Decode(List<string> tokens) => string.Join(' ', tokens);

    public override void WriteJson(Utf8JsonWriter writer) => writer.WriteNullValue();
}

/// <summary>
/// HF's WordPiece decoder: every token but the first gets a leading space unless it starts with the
/// continuation prefix (which is removed); with cleanup, each token on its own then loses the space
/// before . ? ! , and a few English contractions (" n't", " 's", ...).
/// </summary>
internal sealed class WordPieceDecoder(string prefix, bool cleanup) : TokenDecoder
{
    public string Prefix { get; } = prefix;

    public bool Cleanup { get; } = cleanup;

    public override string Decode(List<string> tokens)
    {
        var text = new System.Text.StringBuilder();
        for (int i = 0; i < tokens.Count; i++)
        {
            string token = tokens[i];
            if (i != 0)
            {
                token = token.StartsWith(Prefix, StringComparison.Ordinal) ? token[Prefix.Length..] : " " + token;
            }
            text.Append(Cleanup ? CleanUp(token) : token);
        }
        return text.ToString();
    }

    private static string CleanUp(string token) => token
        .Replace(" .", ".", StringComparison.Ordinal)
        .Replace(" ?", "?", StringComparison.Ordinal)
        .Replace(" !", "!", StringComparison.Ordinal)
        .Replace(" ,", ",", StringComparison.Ordinal)
        .Replace(" ' ", "'", StringComparison.Ordinal)
        .Replace(" n't", "n't", StringComparison.Ordinal)
        .Replace(" 'm", "'m", StringComparison.Ordinal)
        .Replace(" do not", " don't", StringComparison.Ordinal)
        .Replace(" 's", "'s", StringComparison.Ordinal)
        .Replace(" 've", "'ve", StringComparison.Ordinal)
        .Replace(" 're", "'re", StringComparison.Ordinal);

    public override void WriteJson(Utf8JsonWriter writer)
    {
        writer.WriteStartObject();
        writer.WriteString("type", "WordPiece");
        writer.WriteString("prefix", Prefix);
        writer.WriteBoolean("cleanup", Cleanup);
        writer.WriteEndObject();
    }
}

/// <summary>HF's ByteLevel decoder.</summary>
internal sealed class ByteLevelDecoder : TokenDecoder
{
    public static ByteLevelDecoder Instance { get; } = new();

    public override string Decode(List<string> tokens) => ByteLevel.Decode(tokens);

    public override void WriteJson(Utf8JsonWriter writer)
    {
        writer.WriteStartObject();
        writer.WriteString("type", "ByteLevel");
        writer.WriteBoolean("add_prefix_space", true);
        writer.WriteBoolean("trim_offsets", true);
        writer.WriteBoolean("use_regex", true);
        writer.WriteEndObject();
    }
}

using System.Text.Encodings.Web;
using System.Text.Json;

namespace MlNetFineTune.Models.Tokenizers;

/// <summary>
/// Reading and writing Hugging Face tokenizer.json (and vocab.json) files, with errors that name
/// the file and the JSON field at fault.
/// </summary>
internal sealed class TokenizerJson : IDisposable
{
    private readonly JsonDocument _document;

    private TokenizerJson(string path, JsonDocument document)
    {
        Path = path;
        _document = document;
    }

    public string Path { get; }

    public JsonElement Root => _document.RootElement;

    /// <summary>Parses a JSON file whose root must be an object.</summary>
    public static TokenizerJson Open(string path, string? rootDescription = null)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"Tokenizer file not found: {path}", path);
        }
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(File.ReadAllBytes(path));
        }
        catch (JsonException e)
        {
            throw new TokenizerFormatException(path, $"not valid JSON ({e.Message})",
                e.LineNumber is long line ? (int)line + 1 : null, innerException: e);
        }
        if (document.RootElement.ValueKind != JsonValueKind.Object)
        {
            var kind = document.RootElement.ValueKind;
            document.Dispose();
            throw new TokenizerFormatException(path,
                $"the root must be a JSON object{rootDescription}, not {Describe(kind)}", field: "$");
        }
        return new TokenizerJson(path, document);
    }

    public void Dispose() => _document.Dispose();

    public TokenizerFormatException Error(string field, string message) => new(Path, message, field: field);

    /// <summary>The member, or null when it is missing or JSON null.</summary>
    public JsonElement? Optional(JsonElement parent, string name) =>
        parent.TryGetProperty(name, out var value) && value.ValueKind != JsonValueKind.Null ? value : null;

    public JsonElement? OptionalObject(JsonElement parent, string name, string field) => Optional(parent, name) switch
    {
        null => null,
        { ValueKind: JsonValueKind.Object } value => value,
        var value => throw Error(field, $"expected an object, found {Describe(value.Value.ValueKind)}"),
    };

    public JsonElement RequiredObject(JsonElement parent, string name, string field) =>
        OptionalObject(parent, name, field) ?? throw Error(field, "missing (expected an object)");

    public JsonElement RequiredArray(JsonElement parent, string name, string field) => Optional(parent, name) switch
    {
        { ValueKind: JsonValueKind.Array } value => value,
        null => throw Error(field, "missing (expected an array)"),
        var value => throw Error(field, $"expected an array, found {Describe(value.Value.ValueKind)}"),
    };

    public string? OptionalString(JsonElement parent, string name, string field) => Optional(parent, name) switch
    {
        null => null,
        { ValueKind: JsonValueKind.String } value => value.GetString()!,
        var value => throw Error(field, $"expected a string, found {Describe(value.Value.ValueKind)}"),
    };

    public string RequiredString(JsonElement parent, string name, string field) =>
        OptionalString(parent, name, field) ?? throw Error(field, "missing (expected a string)");

    public bool? OptionalBool(JsonElement parent, string name, string field) => Optional(parent, name) switch
    {
        null => null,
        { ValueKind: JsonValueKind.True } => true,
        { ValueKind: JsonValueKind.False } => false,
        var value => throw Error(field, $"expected true or false, found {Describe(value.Value.ValueKind)}"),
    };

    public int? OptionalInt(JsonElement parent, string name, string field) => Optional(parent, name) switch
    {
        null => null,
        var value => ToInt(value.Value, field),
    };

    public int RequiredInt(JsonElement parent, string name, string field) =>
        OptionalInt(parent, name, field) ?? throw Error(field, "missing (expected a non-negative integer)");

    public int ToInt(JsonElement value, string field) =>
        value.ValueKind == JsonValueKind.Number && value.TryGetInt32(out int n) && n >= 0
            ? n
            : throw Error(field, $"expected a non-negative integer, found {Describe(value)}");

    /// <summary>A {"token": id, ...} object.</summary>
    public Dictionary<string, int> Vocabulary(JsonElement vocab, string field)
    {
        var result = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var entry in vocab.EnumerateObject())
        {
            result[entry.Name] = ToInt(entry.Value, $"{field}[\"{entry.Name}\"]");
        }
        return result;
    }

    /// <summary>The "added_tokens" array.</summary>
    public List<AddedToken> AddedTokens()
    {
        var result = new List<AddedToken>();
        if (Optional(Root, "added_tokens") is not { } array)
        {
            return result;
        }
        if (array.ValueKind != JsonValueKind.Array)
        {
            throw Error("added_tokens", $"expected an array, found {Describe(array.ValueKind)}");
        }
        int i = 0;
        foreach (var item in array.EnumerateArray())
        {
            string field = $"added_tokens[{i++}]";
            if (item.ValueKind != JsonValueKind.Object)
            {
                throw Error(field, $"expected an object, found {Describe(item.ValueKind)}");
            }
            bool special = OptionalBool(item, "special", field + ".special") ?? false;
            result.Add(new AddedToken(RequiredInt(item, "id", field + ".id"), RequiredString(item, "content", field + ".content"), special)
            {
                SingleWord = OptionalBool(item, "single_word", field + ".single_word") ?? false,
                LStrip = OptionalBool(item, "lstrip", field + ".lstrip") ?? false,
                RStrip = OptionalBool(item, "rstrip", field + ".rstrip") ?? false,
                Normalized = OptionalBool(item, "normalized", field + ".normalized") ?? !special,
            });
        }
        return result;
    }

    /// <summary>
    /// Reads "truncation" and "padding" into encode options; returns the padding token they name, if any.
    /// </summary>
    public (EncodeOptions Options, SpecialToken? PadToken) DefaultOptions()
    {
        var options = EncodeOptions.Default;
        if (OptionalObject(Root, "truncation", "truncation") is { } truncation)
        {
            string direction = OptionalString(truncation, "direction", "truncation.direction") ?? "Right";
            if (direction != "Right")
            {
                throw Error("truncation.direction", $"unsupported truncation direction '{direction}' (only Right)");
            }
            string strategy = OptionalString(truncation, "strategy", "truncation.strategy") ?? "LongestFirst";
            options = options with
            {
                MaxLength = RequiredInt(truncation, "max_length", "truncation.max_length"),
                Truncation = strategy switch
                {
                    "LongestFirst" => TruncationStrategy.LongestFirst,
                    "OnlyFirst" => TruncationStrategy.OnlyFirst,
                    "OnlySecond" => TruncationStrategy.OnlySecond,
                    _ => throw Error("truncation.strategy", $"unknown truncation strategy '{strategy}'"),
                },
            };
        }
        bool truncates = options.MaxLength is not null;
        SpecialToken? pad = null;
        if (OptionalObject(Root, "padding", "padding") is { } padding)
        {
            string direction = OptionalString(padding, "direction", "padding.direction") ?? "Right";
            if (direction != "Right")
            {
                throw Error("padding.direction", $"unsupported padding direction '{direction}' (only Right)");
            }
            var strategy = Optional(padding, "strategy");
            if (strategy is { ValueKind: JsonValueKind.String } s && s.GetString() == "BatchLongest")
            {
                options = options with { Padding = PaddingStrategy.Longest };
            }
            else if (strategy is { ValueKind: JsonValueKind.Object } fixedStrategy && fixedStrategy.TryGetProperty("Fixed", out var size))
            {
                int length = ToInt(size, "padding.strategy.Fixed");
                if (options.MaxLength is int max && max != length)
                {
                    throw Error("padding.strategy.Fixed",
                        $"a fixed padding length ({length}) other than truncation.max_length ({max}) is not supported");
                }
                options = options with { Padding = PaddingStrategy.MaxLength, MaxLength = length };
            }
            else
            {
                throw Error("padding.strategy", "expected \"BatchLongest\" or {\"Fixed\": length}");
            }
            options = options with { PadToMultipleOf = OptionalInt(padding, "pad_to_multiple_of", "padding.pad_to_multiple_of") };
            if (OptionalString(padding, "pad_token", "padding.pad_token") is { } token)
            {
                pad = new SpecialToken(token, OptionalInt(padding, "pad_id", "padding.pad_id") ?? 0);
            }
        }
        if (!truncates && options.MaxLength is not null)
        {
            options = options with { Truncation = TruncationStrategy.None }; // fixed padding without truncation
        }
        return (options, pad);
    }

    private static string Describe(JsonValueKind kind) => kind switch
    {
        JsonValueKind.Object => "an object",
        JsonValueKind.Array => "an array",
        JsonValueKind.String => "a string",
        JsonValueKind.Number => "a number",
        JsonValueKind.True or JsonValueKind.False => "a boolean",
        JsonValueKind.Null => "null",
        _ => kind.ToString(),
    };

    private static string Describe(JsonElement value) =>
        value.ValueKind == JsonValueKind.Number ? $"the number {value.GetRawText()}" : Describe(value.ValueKind);

    /// <summary>Writes a tokenizer.json: HF's member order, two-space indentation, readable Unicode.</summary>
    public static void Write(string path, Tokenizer tokenizer, Action<Utf8JsonWriter> normalizer,
        Action<Utf8JsonWriter> preTokenizer, Action<Utf8JsonWriter> decoder, Action<Utf8JsonWriter> model)
    {
        ArgumentNullException.ThrowIfNull(path);
        using var stream = File.Create(path);
        using var writer = new Utf8JsonWriter(stream, new JsonWriterOptions
        {
            Indented = true,
            Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
        });
        writer.WriteStartObject();
        writer.WriteString("version", "1.0");
        WriteTruncation(writer, tokenizer.DefaultEncodeOptions);
        WritePadding(writer, tokenizer.DefaultEncodeOptions, tokenizer.Pad);
        writer.WriteStartArray("added_tokens");
        foreach (var token in tokenizer.AddedTokens.OrderBy(t => t.Id))
        {
            writer.WriteStartObject();
            writer.WriteNumber("id", token.Id);
            writer.WriteString("content", token.Content);
            writer.WriteBoolean("single_word", token.SingleWord);
            writer.WriteBoolean("lstrip", token.LStrip);
            writer.WriteBoolean("rstrip", token.RStrip);
            writer.WriteBoolean("normalized", token.Normalized);
            writer.WriteBoolean("special", token.Special);
            writer.WriteEndObject();
        }
        writer.WriteEndArray();
        writer.WritePropertyName("normalizer");
        normalizer(writer);
        writer.WritePropertyName("pre_tokenizer");
        preTokenizer(writer);
        writer.WritePropertyName("post_processor");
        tokenizer.PostProcessor.WriteJson(writer);
        writer.WritePropertyName("decoder");
        decoder(writer);
        writer.WritePropertyName("model");
        model(writer);
        writer.WriteEndObject();
    }

    /// <summary>Writes "vocab": {token: id} in id order, as HF does.</summary>
    public static void WriteVocabulary(Utf8JsonWriter writer, IReadOnlyDictionary<string, int> vocab)
    {
        writer.WriteStartObject("vocab");
        foreach (var (token, id) in vocab.OrderBy(e => e.Value).ThenBy(e => e.Key, StringComparer.Ordinal))
        {
            writer.WriteNumber(token, id);
        }
        writer.WriteEndObject();
    }

    private static void WriteTruncation(Utf8JsonWriter writer, EncodeOptions options)
    {
        if (options.MaxLength is not int max || options.Truncation == TruncationStrategy.None)
        {
            writer.WriteNull("truncation");
            return;
        }
        writer.WriteStartObject("truncation");
        writer.WriteString("direction", "Right");
        writer.WriteNumber("max_length", max);
        writer.WriteString("strategy", options.Truncation.ToString());
        writer.WriteNumber("stride", 0);
        writer.WriteEndObject();
    }

    private static void WritePadding(Utf8JsonWriter writer, EncodeOptions options, SpecialToken? pad)
    {
        if (options.Padding == PaddingStrategy.None)
        {
            writer.WriteNull("padding");
            return;
        }
        writer.WriteStartObject("padding");
        if (options.Padding == PaddingStrategy.Longest)
        {
            writer.WriteString("strategy", "BatchLongest");
        }
        else
        {
            writer.WriteStartObject("strategy");
            writer.WriteNumber("Fixed", options.MaxLength ?? 0);
            writer.WriteEndObject();
        }
        writer.WriteString("direction", "Right");
        if (options.PadToMultipleOf is int multiple)
        {
            writer.WriteNumber("pad_to_multiple_of", multiple);
        }
        else
        {
            writer.WriteNull("pad_to_multiple_of");
        }
        writer.WriteNumber("pad_id", pad?.Id ?? 0);
        writer.WriteNumber("pad_type_id", 0);
        writer.WriteString("pad_token", pad?.Content ?? "[PAD]");
        writer.WriteEndObject();
    }
}

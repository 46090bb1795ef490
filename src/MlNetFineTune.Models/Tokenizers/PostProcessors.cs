using System.Text.Json;

namespace MlNetFineTune.Models.Tokenizers;

/// <summary>Adds special tokens and sets type ids once the sequences are tokenized and truncated (HF's PostProcessor).</summary>
internal abstract class PostProcessor
{
    /// <summary>How many tokens <see cref="Process"/> adds, so truncation can leave room for them.</summary>
    public abstract int AddedTokenCount(bool isPair);

    public abstract Encoding Process(Encoding first, Encoding? pair, bool addSpecialTokens);

    /// <summary>Writes the "post_processor" value of tokenizer.json.</summary>
    public abstract void WriteJson(Utf8JsonWriter writer);
}

/// <summary>No post-processor: the sequences are concatenated as they are (HF's default_process).</summary>
internal sealed class DefaultPostProcessor : PostProcessor
{
    public static DefaultPostProcessor Instance { get; } = new();

    public override int AddedTokenCount(bool isPair) => 0;

    public override Encoding Process(Encoding first, Encoding? pair, bool addSpecialTokens) =>
        pair is null ? first.AsUntaggedSingleSequence() : Encoding.Concat([first, pair]);

    public override void WriteJson(Utf8JsonWriter writer) => writer.WriteNullValue();
}

/// <summary>
/// HF's TemplateProcessing ("[CLS]:0 $A:0 [SEP]:0" / "$B:1 [SEP]:1"). BertProcessing is the same
/// template (and gives the same encodings with and without special tokens), kept apart only to be
/// written back under its own name.
/// </summary>
internal sealed class TemplatePostProcessor : PostProcessor
{
    internal readonly record struct Piece(bool IsSequence, string Id, int TypeId);

    internal sealed record SpecialTokenIds(string Id, int[] Ids, string[] Tokens);

    public TemplatePostProcessor(Piece[] single, Piece[] pair, IReadOnlyDictionary<string, SpecialTokenIds> specialTokens,
        bool isBertProcessing = false)
    {
        Single = single;
        Pair = pair;
        SpecialTokens = specialTokens;
        IsBertProcessing = isBertProcessing;
    }

    public Piece[] Single { get; }

    public Piece[] Pair { get; }

    public IReadOnlyDictionary<string, SpecialTokenIds> SpecialTokens { get; }

    public bool IsBertProcessing { get; }

    public static TemplatePostProcessor Bert(string cls, int clsId, string sep, int sepId) => new(
        [new(false, cls, 0), new(true, "A", 0), new(false, sep, 0)],
        [new(false, cls, 0), new(true, "A", 0), new(false, sep, 0), new(true, "B", 1), new(false, sep, 1)],
        new Dictionary<string, SpecialTokenIds>
        {
            [cls] = new(cls, [clsId], [cls]),
            [sep] = new(sep, [sepId], [sep]),
        },
        isBertProcessing: true);

    /// <summary>The (content, id) of the first and last special tokens of the single template: BERT's [CLS] and [SEP].</summary>
    public (SpecialTokenIds? First, SpecialTokenIds? Last) OuterSpecialTokens()
    {
        SpecialTokenIds? Lookup(Piece p) => p.IsSequence ? null : SpecialTokens.GetValueOrDefault(p.Id);
        return Single.Length == 0 ? (null, null) : (Lookup(Single[0]), Lookup(Single[^1]));
    }

    public override int AddedTokenCount(bool isPair) =>
        (isPair ? Pair : Single).Where(p => !p.IsSequence).Sum(p => SpecialTokens[p.Id].Ids.Length);

    public override Encoding Process(Encoding first, Encoding? pair, bool addSpecialTokens)
    {
        var parts = new List<Encoding>();
        foreach (var piece in pair is null ? Single : Pair)
        {
            if (piece.IsSequence)
            {
                var sequence = piece.Id == "A" ? first : pair ?? throw new InvalidOperationException(
                    "The post-processor's single template refers to the second sequence $B.");
                parts.Add(sequence.WithTypeIds(piece.TypeId));
            }
            else if (addSpecialTokens)
            {
                var special = SpecialTokens[piece.Id];
                parts.Add(Encoding.Special(special.Ids, special.Tokens, piece.TypeId));
            }
        }
        return parts.Count == 0 ? Encoding.Empty : Encoding.Concat(parts);
    }

    public override void WriteJson(Utf8JsonWriter writer)
    {
        writer.WriteStartObject();
        if (IsBertProcessing)
        {
            var (cls, sep) = OuterSpecialTokens();
            writer.WriteString("type", "BertProcessing");
            WriteTokenIdPair(writer, "sep", sep!.Id, sep.Ids[0]);
            WriteTokenIdPair(writer, "cls", cls!.Id, cls.Ids[0]);
            writer.WriteEndObject();
            return;
        }
        writer.WriteString("type", "TemplateProcessing");
        WritePieces(writer, "single", Single);
        WritePieces(writer, "pair", Pair);
        writer.WriteStartObject("special_tokens");
        foreach (var special in SpecialTokens.Values)
        {
            writer.WriteStartObject(special.Id);
            writer.WriteString("id", special.Id);
            writer.WriteStartArray("ids");
            foreach (int id in special.Ids)
            {
                writer.WriteNumberValue(id);
            }
            writer.WriteEndArray();
            writer.WriteStartArray("tokens");
            foreach (string token in special.Tokens)
            {
                writer.WriteStringValue(token);
            }
            writer.WriteEndArray();
            writer.WriteEndObject();
        }
        writer.WriteEndObject();
        writer.WriteEndObject();
    }

    internal static void WriteTokenIdPair(Utf8JsonWriter writer, string name, string token, int id)
    {
        writer.WriteStartArray(name);
        writer.WriteStringValue(token);
        writer.WriteNumberValue(id);
        writer.WriteEndArray();
    }

    private static void WritePieces(Utf8JsonWriter writer, string name, Piece[] pieces)
    {
        writer.WriteStartArray(name);
        foreach (var piece in pieces)
        {
            writer.WriteStartObject();
            writer.WriteStartObject(piece.IsSequence ? "Sequence" : "SpecialToken");
            writer.WriteString("id", piece.Id);
            writer.WriteNumber("type_id", piece.TypeId);
            writer.WriteEndObject();
            writer.WriteEndObject();
        }
        writer.WriteEndArray();
    }
}

/// <summary>
/// HF's RobertaProcessing: &lt;s&gt; A &lt;/s&gt; and &lt;s&gt; A &lt;/s&gt;&lt;/s&gt; B &lt;/s&gt;,
/// every type id 0, and (optionally) byte-level offset trimming of each sequence first.
/// </summary>
internal sealed class RobertaPostProcessor(string sep, int sepId, string cls, int clsId, bool trimOffsets, bool addPrefixSpace)
    : PostProcessor
{
    public string Sep { get; } = sep;

    public int SepId { get; } = sepId;

    public string Cls { get; } = cls;

    public int ClsId { get; } = clsId;

    public bool TrimOffsets { get; } = trimOffsets;

    public bool AddPrefixSpace { get; } = addPrefixSpace;

    public override int AddedTokenCount(bool isPair) => isPair ? 4 : 2;

    public override Encoding Process(Encoding first, Encoding? pair, bool addSpecialTokens)
    {
        if (TrimOffsets)
        {
            first = ByteLevel.TrimOffsets(first, AddPrefixSpace);
            pair = pair is null ? null : ByteLevel.TrimOffsets(pair, AddPrefixSpace);
        }
        first = first.WithTypeIds(0);
        pair = pair?.WithTypeIds(0);
        if (!addSpecialTokens)
        {
            return pair is null ? first : Encoding.Concat([first, pair]);
        }
        var cls = Encoding.Special([ClsId], [Cls], 0);
        var sep = Encoding.Special([SepId], [Sep], 0);
        return pair is null
            ? Encoding.Concat([cls, first, sep])
            : Encoding.Concat([cls, first, sep, sep, pair, sep]);
    }

    public override void WriteJson(Utf8JsonWriter writer)
    {
        writer.WriteStartObject();
        writer.WriteString("type", "RobertaProcessing");
        TemplatePostProcessor.WriteTokenIdPair(writer, "sep", Sep, SepId);
        TemplatePostProcessor.WriteTokenIdPair(writer, "cls", Cls, ClsId);
        writer.WriteBoolean("trim_offsets", TrimOffsets);
        writer.WriteBoolean("add_prefix_space", AddPrefixSpace);
        writer.WriteEndObject();
    }
}

/// <summary>HF's ByteLevel post-processor (GPT-2): only trims offsets, adds nothing.</summary>
internal sealed class ByteLevelPostProcessor(bool trimOffsets, bool addPrefixSpace) : PostProcessor
{
    public bool TrimOffsets { get; } = trimOffsets;

    public bool AddPrefixSpace { get; } = addPrefixSpace;

    public override int AddedTokenCount(bool isPair) => 0;

    public override Encoding Process(Encoding first, Encoding? pair, bool addSpecialTokens)
    {
        if (TrimOffsets)
        {
            first = ByteLevel.TrimOffsets(first, AddPrefixSpace);
            pair = pair is null ? null : ByteLevel.TrimOffsets(pair, AddPrefixSpace);
        }
        return pair is null ? first : Encoding.Concat([first, pair]);
    }

    public override void WriteJson(Utf8JsonWriter writer)
    {
        writer.WriteStartObject();
        writer.WriteString("type", "ByteLevel");
        writer.WriteBoolean("add_prefix_space", AddPrefixSpace);
        writer.WriteBoolean("trim_offsets", TrimOffsets);
        writer.WriteBoolean("use_regex", true);
        writer.WriteEndObject();
    }
}

/// <summary>Reads tokenizer.json's "post_processor".</summary>
internal static class PostProcessorJson
{
    public static PostProcessor Read(TokenizerJson json)
    {
        if (json.OptionalObject(json.Root, "post_processor", "post_processor") is not { } p)
        {
            return DefaultPostProcessor.Instance;
        }
        string type = json.RequiredString(p, "type", "post_processor.type");
        switch (type)
        {
            case "BertProcessing":
            {
                var (sep, sepId) = TokenIdPair(json, p, "sep");
                var (cls, clsId) = TokenIdPair(json, p, "cls");
                return TemplatePostProcessor.Bert(cls, clsId, sep, sepId);
            }
            case "RobertaProcessing":
            {
                var (sep, sepId) = TokenIdPair(json, p, "sep");
                var (cls, clsId) = TokenIdPair(json, p, "cls");
                return new RobertaPostProcessor(sep, sepId, cls, clsId,
                    json.OptionalBool(p, "trim_offsets", "post_processor.trim_offsets") ?? true,
                    json.OptionalBool(p, "add_prefix_space", "post_processor.add_prefix_space") ?? true);
            }
            case "ByteLevel":
                return new ByteLevelPostProcessor(
                    json.OptionalBool(p, "trim_offsets", "post_processor.trim_offsets") ?? true,
                    json.OptionalBool(p, "add_prefix_space", "post_processor.add_prefix_space") ?? true);
            case "TemplateProcessing":
                return Template(json, p);
            default:
                throw json.Error("post_processor.type",
                    $"unsupported post-processor type '{type}' (supported: TemplateProcessing, BertProcessing, RobertaProcessing, ByteLevel, null)");
        }
    }

    private static (string Token, int Id) TokenIdPair(TokenizerJson json, JsonElement p, string name)
    {
        string field = "post_processor." + name;
        var value = json.Optional(p, name);
        if (value is not { ValueKind: JsonValueKind.Array } array || array.GetArrayLength() != 2
            || array[0].ValueKind != JsonValueKind.String)
        {
            throw json.Error(field, "expected [token, id]");
        }
        return (array[0].GetString()!, json.ToInt(array[1], field + "[1]"));
    }

    private static TemplatePostProcessor Template(TokenizerJson json, JsonElement p)
    {
        var specials = new Dictionary<string, TemplatePostProcessor.SpecialTokenIds>(StringComparer.Ordinal);
        if (json.OptionalObject(p, "special_tokens", "post_processor.special_tokens") is { } map)
        {
            foreach (var entry in map.EnumerateObject())
            {
                string field = $"post_processor.special_tokens[\"{entry.Name}\"]";
                if (entry.Value.ValueKind != JsonValueKind.Object)
                {
                    throw json.Error(field, "expected an object with id, ids and tokens");
                }
                var ids = json.RequiredArray(entry.Value, "ids", field + ".ids").EnumerateArray()
                    .Select((v, i) => json.ToInt(v, $"{field}.ids[{i}]")).ToArray();
                var tokens = json.RequiredArray(entry.Value, "tokens", field + ".tokens").EnumerateArray()
                    .Select((v, i) => v.ValueKind == JsonValueKind.String ? v.GetString()! : throw json.Error($"{field}.tokens[{i}]", "expected a string"))
                    .ToArray();
                if (ids.Length != tokens.Length)
                {
                    throw json.Error(field, "ids and tokens differ in length");
                }
                string id = json.OptionalString(entry.Value, "id", field + ".id") ?? entry.Name;
                specials[id] = new TemplatePostProcessor.SpecialTokenIds(id, ids, tokens);
            }
        }
        return new TemplatePostProcessor(Pieces(json, p, "single", specials), Pieces(json, p, "pair", specials), specials);
    }

    private static TemplatePostProcessor.Piece[] Pieces(TokenizerJson json, JsonElement p, string name,
        Dictionary<string, TemplatePostProcessor.SpecialTokenIds> specials)
    {
        var pieces = new List<TemplatePostProcessor.Piece>();
        int i = 0;
        foreach (var item in json.RequiredArray(p, name, "post_processor." + name).EnumerateArray())
        {
            string field = $"post_processor.{name}[{i++}]";
            JsonElement body = default;
            string? kind = null;
            if (item.ValueKind == JsonValueKind.Object)
            {
                kind = item.TryGetProperty("Sequence", out body) ? "Sequence"
                    : item.TryGetProperty("SpecialToken", out body) ? "SpecialToken"
                    : null;
            }
            if (kind is null)
            {
                throw json.Error(field, "expected {\"Sequence\": ...} or {\"SpecialToken\": ...}");
            }
            bool isSequence = kind == "Sequence";
            if (body.ValueKind != JsonValueKind.Object)
            {
                throw json.Error($"{field}.{kind}", "expected an object with id and type_id");
            }
            string id = json.RequiredString(body, "id", $"{field}.{kind}.id");
            int typeId = json.OptionalInt(body, "type_id", $"{field}.{kind}.type_id") ?? 0;
            if (isSequence ? id is not ("A" or "B") : !specials.ContainsKey(id))
            {
                throw json.Error($"{field}.{kind}.id", isSequence
                    ? $"sequence id must be A or B, not '{id}'"
                    : $"special token '{id}' is not in post_processor.special_tokens");
            }
            pieces.Add(new TemplatePostProcessor.Piece(isSequence, id, typeId));
        }
        return [.. pieces];
    }
}

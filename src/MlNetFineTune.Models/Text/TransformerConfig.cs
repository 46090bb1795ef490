using System.Text.Json;
using System.Text.Json.Nodes;

namespace MlNetFineTune.Models.Text;

/// <summary>The BERT-family layouts this toolkit reads.</summary>
public enum TransformerFamily
{
    /// <summary>BERT and BERT-shaped checkpoints (MiniLM, many sentence encoders).</summary>
    Bert,
    /// <summary>RoBERTa / XLM-RoBERTa / CamemBERT: BERT with offset positions and its own classification head.</summary>
    Roberta,
    /// <summary>DistilBERT: six-layer distilled BERT with its own parameter names.</summary>
    DistilBert,
}

/// <summary>
/// Hyper-parameters of a BERT-family encoder, read from a Hugging Face <c>config.json</c> (BERT, RoBERTa,
/// DistilBERT and MiniLM spellings) and written back in the same spelling.
/// </summary>
public sealed record TransformerConfig
{
    /// <summary>Which parameter layout and embedding rules apply.</summary>
    public TransformerFamily Family { get; init; } = TransformerFamily.Bert;
    /// <summary>The <c>model_type</c> as written in config.json.</summary>
    public string ModelType { get; init; } = "bert";
    /// <summary>Vocabulary size.</summary>
    public int VocabSize { get; init; } = 30522;
    /// <summary>Hidden size (DistilBERT: dim).</summary>
    public int HiddenSize { get; init; } = 768;
    /// <summary>Number of encoder layers.</summary>
    public int NumLayers { get; init; } = 12;
    /// <summary>Attention heads per layer.</summary>
    public int NumHeads { get; init; } = 12;
    /// <summary>Feed-forward size (DistilBERT: hidden_dim).</summary>
    public int IntermediateSize { get; init; } = 3072;
    /// <summary>Feed-forward activation (gelu, gelu_new, relu, ...).</summary>
    public string HiddenAct { get; init; } = "gelu";
    /// <summary>Dropout on hidden states.</summary>
    public float HiddenDropout { get; init; } = 0.1f;
    /// <summary>Dropout on attention probabilities.</summary>
    public float AttentionDropout { get; init; } = 0.1f;
    /// <summary>Maximum positions.</summary>
    public int MaxPositions { get; init; } = 512;
    /// <summary>Token type (segment) vocabulary; 0 when the family has none (DistilBERT).</summary>
    public int TypeVocabSize { get; init; } = 2;
    /// <summary>Layer-norm epsilon.</summary>
    public float LayerNormEps { get; init; } = 1e-12f;
    /// <summary>Padding token id.</summary>
    public int PadTokenId { get; init; }
    /// <summary>Std of the normal initialisation of fresh weights.</summary>
    public float InitializerRange { get; init; } = 0.02f;
    /// <summary>Dropout before the classifier (null: the hidden dropout; DistilBERT: seq_classif_dropout).</summary>
    public float? ClassifierDropout { get; init; }
    /// <summary>Class names by id, when the checkpoint has a trained head.</summary>
    public IReadOnlyList<string>? Labels { get; init; }

    /// <summary>Head size.</summary>
    public int HeadDim => HiddenSize / NumHeads;

    /// <summary>First position id: RoBERTa counts positions from pad_token_id + 1.</summary>
    public int PositionOffset => Family == TransformerFamily.Roberta ? PadTokenId + 1 : 0;

    /// <summary>Checks the numbers make an encoder.</summary>
    public void Validate()
    {
        if (VocabSize < 1 || HiddenSize < 1 || NumLayers < 0 || NumHeads < 1 || IntermediateSize < 1 || MaxPositions < 1)
            throw new InvalidDataException($"Transformer config has a non-positive size: {this}.");
        if (HiddenSize % NumHeads != 0)
            throw new InvalidDataException($"hidden size {HiddenSize} is not divisible by {NumHeads} attention heads.");
        if (PadTokenId < 0 || PadTokenId >= VocabSize)
            throw new InvalidDataException($"pad_token_id {PadTokenId} is outside the vocabulary of {VocabSize}.");
        _ = Nn.Activation.Apply(HiddenAct, MlNetFineTune.Tensors.Tensor.Zeros(1));
    }

    /// <summary>Reads a Hugging Face config.json; errors name the file and the field.</summary>
    public static TransformerConfig Load(string path)
    {
        JsonObject root;
        try
        {
            root = JsonNode.Parse(File.ReadAllText(path)) as JsonObject
                ?? throw new InvalidDataException($"{path}: config is not a JSON object.");
        }
        catch (JsonException ex)
        {
            throw new InvalidDataException($"{path}: invalid JSON at line {ex.LineNumber + 1}, position {ex.BytePositionInLine + 1}: {ex.Message}", ex);
        }
        return FromJson(root, path);
    }

    /// <summary>Reads the fields of a parsed config.json.</summary>
    public static TransformerConfig FromJson(JsonObject root, string source = "config.json")
    {
        string modelType = Str(root, "model_type", source) ?? throw new InvalidDataException($"{source}: 'model_type' is missing.");
        TransformerFamily family = modelType switch
        {
            "bert" or "minilm" => TransformerFamily.Bert,
            "roberta" or "xlm-roberta" or "camembert" => TransformerFamily.Roberta,
            "distilbert" => TransformerFamily.DistilBert,
            _ => throw new NotSupportedException($"{source}: model_type '{modelType}' is not supported (bert, roberta, xlm-roberta, camembert, distilbert)."),
        };
        IReadOnlyList<string>? labels = null;
        if (root["id2label"] is JsonObject id2label && id2label.Count > 0)
        {
            var arr = new string[id2label.Count];
            foreach (var (k, v) in id2label)
            {
                if (!int.TryParse(k, out var i) || i < 0 || i >= arr.Length)
                    throw new InvalidDataException($"{source}: id2label key '{k}' is not an index below {arr.Length}.");
                arr[i] = v?.GetValue<string>() ?? $"LABEL_{i}";
            }
            labels = arr;
        }
        var cfg = family == TransformerFamily.DistilBert
            ? new TransformerConfig
            {
                Family = family,
                ModelType = modelType,
                VocabSize = Int(root, "vocab_size", source) ?? 30522,
                HiddenSize = Int(root, "dim", source) ?? 768,
                NumLayers = Int(root, "n_layers", source) ?? 6,
                NumHeads = Int(root, "n_heads", source) ?? 12,
                IntermediateSize = Int(root, "hidden_dim", source) ?? 3072,
                HiddenAct = Str(root, "activation", source) ?? "gelu",
                HiddenDropout = Float(root, "dropout", source) ?? 0.1f,
                AttentionDropout = Float(root, "attention_dropout", source) ?? 0.1f,
                MaxPositions = Int(root, "max_position_embeddings", source) ?? 512,
                TypeVocabSize = 0,
                LayerNormEps = 1e-12f,
                PadTokenId = Int(root, "pad_token_id", source) ?? 0,
                InitializerRange = Float(root, "initializer_range", source) ?? 0.02f,
                ClassifierDropout = Float(root, "seq_classif_dropout", source) ?? 0.2f,
                Labels = labels,
            }
            : new TransformerConfig
            {
                Family = family,
                ModelType = modelType,
                VocabSize = Int(root, "vocab_size", source) ?? 30522,
                HiddenSize = Int(root, "hidden_size", source) ?? 768,
                NumLayers = Int(root, "num_hidden_layers", source) ?? 12,
                NumHeads = Int(root, "num_attention_heads", source) ?? 12,
                IntermediateSize = Int(root, "intermediate_size", source) ?? 3072,
                HiddenAct = Str(root, "hidden_act", source) ?? "gelu",
                HiddenDropout = Float(root, "hidden_dropout_prob", source) ?? 0.1f,
                AttentionDropout = Float(root, "attention_probs_dropout_prob", source) ?? 0.1f,
                MaxPositions = Int(root, "max_position_embeddings", source) ?? 512,
                TypeVocabSize = Int(root, "type_vocab_size", source) ?? 2,
                LayerNormEps = Float(root, "layer_norm_eps", source) ?? 1e-12f,
                PadTokenId = Int(root, "pad_token_id", source) ?? (family == TransformerFamily.Roberta ? 1 : 0),
                InitializerRange = Float(root, "initializer_range", source) ?? 0.02f,
                ClassifierDropout = Float(root, "classifier_dropout", source),
                Labels = labels,
            };
        var posType = Str(root, "position_embedding_type", source);
        if (posType is not null && posType != "absolute")
            throw new NotSupportedException($"{source}: position_embedding_type '{posType}' is not supported (only 'absolute').");
        cfg.Validate();
        return cfg;
    }

    /// <summary>The config in Hugging Face's spelling for this family.</summary>
    public JsonObject ToJson()
    {
        var o = new JsonObject { ["model_type"] = ModelType };
        if (Family == TransformerFamily.DistilBert)
        {
            o["vocab_size"] = VocabSize; o["dim"] = HiddenSize; o["n_layers"] = NumLayers; o["n_heads"] = NumHeads;
            o["hidden_dim"] = IntermediateSize; o["activation"] = HiddenAct; o["dropout"] = HiddenDropout;
            o["attention_dropout"] = AttentionDropout; o["max_position_embeddings"] = MaxPositions;
            o["pad_token_id"] = PadTokenId; o["initializer_range"] = InitializerRange;
            o["seq_classif_dropout"] = ClassifierDropout ?? 0.2f;
        }
        else
        {
            o["vocab_size"] = VocabSize; o["hidden_size"] = HiddenSize; o["num_hidden_layers"] = NumLayers;
            o["num_attention_heads"] = NumHeads; o["intermediate_size"] = IntermediateSize; o["hidden_act"] = HiddenAct;
            o["hidden_dropout_prob"] = HiddenDropout; o["attention_probs_dropout_prob"] = AttentionDropout;
            o["max_position_embeddings"] = MaxPositions; o["type_vocab_size"] = TypeVocabSize;
            o["layer_norm_eps"] = LayerNormEps; o["pad_token_id"] = PadTokenId; o["initializer_range"] = InitializerRange;
            if (ClassifierDropout is float cd) o["classifier_dropout"] = cd;
        }
        if (Labels is not null)
        {
            var id2label = new JsonObject();
            var label2id = new JsonObject();
            for (int i = 0; i < Labels.Count; i++) { id2label[i.ToString(System.Globalization.CultureInfo.InvariantCulture)] = Labels[i]; label2id[Labels[i]] = i; }
            o["id2label"] = id2label;
            o["label2id"] = label2id;
        }
        return o;
    }

    private static JsonNode? Field(JsonObject o, string name) => o.TryGetPropertyValue(name, out var v) ? v : null;

    private static int? Int(JsonObject o, string name, string source)
    {
        var v = Field(o, name);
        if (v is null) return null;
        try { return v.GetValue<int>(); }
        catch (Exception ex) when (ex is FormatException or InvalidOperationException)
        { throw new InvalidDataException($"{source}: '{name}' must be an integer, got {v.ToJsonString()}.", ex); }
    }

    private static float? Float(JsonObject o, string name, string source)
    {
        var v = Field(o, name);
        if (v is null) return null;
        try { return (float)v.GetValue<double>(); }
        catch (Exception ex) when (ex is FormatException or InvalidOperationException)
        { throw new InvalidDataException($"{source}: '{name}' must be a number, got {v.ToJsonString()}.", ex); }
    }

    private static string? Str(JsonObject o, string name, string source)
    {
        var v = Field(o, name);
        if (v is null) return null;
        try { return v.GetValue<string>(); }
        catch (Exception ex) when (ex is FormatException or InvalidOperationException)
        { throw new InvalidDataException($"{source}: '{name}' must be a string, got {v.ToJsonString()}.", ex); }
    }
}

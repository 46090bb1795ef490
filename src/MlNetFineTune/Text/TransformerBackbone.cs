using System.Text.Json;
using System.Text.Json.Nodes;
using MlNetFineTune.Models.Nn;
using MlNetFineTune.Models.Text;
using MlNetFineTune.Models.Tokenizers;
using MlNetFineTune.Tensors;

namespace MlNetFineTune.Text;

/// <summary>A Hugging Face BERT-family checkpoint with its own tokenizer and a classification head.</summary>
internal sealed class TransformerBackbone : TextBackbone
{
    private readonly Tokenizer _tokenizer;
    private readonly TransformerClassifier _model;
    private readonly int _maxLength;

    private TransformerBackbone(Tokenizer tokenizer, TransformerClassifier model, int maxLength)
    {
        _tokenizer = tokenizer;
        _model = model;
        int positions = model.Encoder.Config.MaxPositions - model.Encoder.Config.PositionOffset;
        _maxLength = Math.Min(maxLength, positions);
    }

    public static TransformerBackbone Create(string dir, TextHeadKind head, int numLabels, int maxLength, Rng rng)
    {
        if (!Directory.Exists(dir)) throw new DirectoryNotFoundException($"Model directory '{dir}' does not exist.");
        var tokenizer = LoadTokenizer(dir);
        var (model, _) = PretrainedTransformer.LoadClassifier(dir, ToHead(head), numLabels, rng);
        return new TransformerBackbone(tokenizer, model, maxLength);
    }

    private static TransformerHead ToHead(TextHeadKind head) =>
        head == TextHeadKind.Token ? TransformerHead.TokenClassification : TransformerHead.SequenceClassification;

    /// <summary>tokenizer.json if present, else vocab.txt (WordPiece) or vocab.json + merges.txt (byte-level BPE).</summary>
    public static Tokenizer LoadTokenizer(string dir)
    {
        var json = Path.Combine(dir, "tokenizer.json");
        if (File.Exists(json)) return Tokenizer.FromTokenizerJson(json);
        var vocab = Path.Combine(dir, "vocab.txt");
        if (File.Exists(vocab))
        {
            bool lower = true;
            var cfg = Path.Combine(dir, "tokenizer_config.json");
            if (File.Exists(cfg))
            {
                using var doc = JsonDocument.Parse(File.ReadAllText(cfg));
                if (doc.RootElement.TryGetProperty("do_lower_case", out var v) && v.ValueKind is JsonValueKind.True or JsonValueKind.False) lower = v.GetBoolean();
            }
            return BertWordPieceTokenizer.FromVocabFile(vocab, lower);
        }
        var vocabJson = Path.Combine(dir, "vocab.json");
        var merges = Path.Combine(dir, "merges.txt");
        if (File.Exists(vocabJson) && File.Exists(merges)) return ByteLevelBpeTokenizer.FromVocabAndMerges(vocabJson, merges);
        throw new FileNotFoundException($"'{dir}' has no tokenizer: expected tokenizer.json, vocab.txt, or vocab.json + merges.txt.");
    }

    public override string Kind => "transformer";
    public override Module Model => _model;
    public override IReadOnlySet<string> FixedParameters { get; } = new HashSet<string>();
    public override int MaxLength => _maxLength;

    public override IReadOnlyList<string> LayerGroups
    {
        get
        {
            var p = _model.EncoderPrefix;
            var c = _model.Encoder.Config;
            string layer = c.Family == TransformerFamily.DistilBert ? $"{p}.transformer.layer" : $"{p}.encoder.layer";
            var groups = new List<string> { $"{p}.embeddings" };
            for (int i = 0; i < c.NumLayers; i++) groups.Add($"{layer}.{i}");
            if (_model.Encoder.HasPooler) groups.Add($"{p}.pooler");
            return groups;
        }
    }

    public override EncodedText Encode(string text, string? pair)
    {
        var full = _tokenizer.Encode(text, pair);
        bool truncated = full.Length > _maxLength;
        var e = truncated ? _tokenizer.Encode(text, pair, new EncodeOptions { MaxLength = _maxLength }) : full;
        return new EncodedText([.. e.Ids], [.. e.TypeIds], e.WordIds.Select(w => w ?? -1).ToArray(), truncated);
    }

    public override EncodedText EncodeWords(IReadOnlyList<string> words)
    {
        // Join the words with spaces and map each token back to the word holding its first character.
        var starts = new int[words.Count];
        var sb = new System.Text.StringBuilder();
        for (int i = 0; i < words.Count; i++)
        {
            if (i > 0) sb.Append(' ');
            starts[i] = sb.Length;
            sb.Append(words[i]);
        }
        var text = sb.ToString();
        var full = _tokenizer.Encode(text);
        bool truncated = full.Length > _maxLength;
        var e = truncated ? _tokenizer.Encode(text, null, new EncodeOptions { MaxLength = _maxLength }) : full;
        var wordIds = new int[e.Length];
        for (int t = 0; t < e.Length; t++)
        {
            if (e.SpecialTokensMask[t] == 1 || e.Offsets[t].End <= e.Offsets[t].Start) { wordIds[t] = -1; continue; }
            int pos = Array.BinarySearch(starts, e.Offsets[t].Start);
            wordIds[t] = pos >= 0 ? pos : ~pos - 1;
        }
        return new EncodedText([.. e.Ids], [.. e.TypeIds], wordIds, truncated);
    }

    public override Tensor Logits(IReadOnlyList<EncodedText> batch)
    {
        var (ids, mask, types) = Pad(batch, _model.Encoder.Config.PadTokenId);
        return _model.Forward(ids, mask, _model.Encoder.Config.TypeVocabSize > 0 ? types : null);
    }

    public override void Describe(JsonObject manifest, Dictionary<string, byte[]> files)
    {
        manifest["backbone"] = new JsonObject
        {
            ["kind"] = Kind,
            ["config"] = _model.Encoder.Config.ToJson(),
            ["maxLength"] = _maxLength,
        };
        var tmp = Path.Combine(Path.GetTempPath(), $"mlft-tok-{Guid.NewGuid():N}.json");
        try
        {
            _tokenizer.SaveTokenizerJson(tmp);
            files["tokenizer.json"] = File.ReadAllBytes(tmp);
        }
        finally
        {
            File.Delete(tmp);
        }
    }

    public static TransformerBackbone FromPackage(ModelPackage package, TextHeadKind head, int numLabels, string path)
    {
        var b = package.Manifest["backbone"]!.AsObject();
        var config = TransformerConfig.FromJson(b["config"]!.AsObject(), path + "!manifest.json");
        var model = new TransformerClassifier(config, ToHead(head), numLabels, new Rng(0));
        model.LoadStateDict(package.Weights.ToDictionary(kv => kv.Key, kv => kv.Value), strict: false);
        if (!package.Files.TryGetValue("tokenizer.json", out var tok))
            throw new InvalidDataException($"{path}: tokenizer.json is missing.");
        var tmp = Path.Combine(Path.GetTempPath(), $"mlft-tok-{Guid.NewGuid():N}.json");
        try
        {
            File.WriteAllBytes(tmp, tok);
            return new TransformerBackbone(Tokenizer.FromTokenizerJson(tmp), model, b["maxLength"]!.GetValue<int>());
        }
        finally
        {
            File.Delete(tmp);
        }
    }
}

using System.Text;
using System.Text.Json.Nodes;
using MlNetFineTune.Models.Nn;
using MlNetFineTune.Models.Text;
using MlNetFineTune.Tensors;

namespace MlNetFineTune.Text;

/// <summary>GloVe vectors + the CNN encoder + a linear head, with GloVe's word tokenizer.</summary>
internal sealed class GloveTextModel : Module
{
    public GloveEncoder Encoder { get; }
    public Dropout Dropout { get; }
    public Linear Head { get; }
    public TextHeadKind HeadKind { get; }

    public GloveTextModel(GloveEncoder encoder, TextHeadKind head, int numLabels, Rng rng)
    {
        Encoder = RegisterModule("backbone", encoder);
        Dropout = RegisterModule("dropout", new Dropout(encoder.Options.Dropout, rng.Fork()));
        HeadKind = head;
        Head = RegisterModule("head", new Linear(head == TextHeadKind.Sequence ? encoder.PooledSize : encoder.HiddenSize, numLabels, rng));
    }

    public Tensor Forward(Tensor ids, Tensor mask, Tensor shapes)
    {
        var output = Encoder.Forward(ids, mask, Encoder.Options.WordShapeSize > 0 ? shapes : null);
        return Head.Forward(Dropout.Forward(HeadKind == TextHeadKind.Sequence ? output.Pooled : output.TokenFeatures));
    }
}

/// <summary>The shipped offline default (pretrained GloVe) or the same architecture from scratch.</summary>
internal sealed class GloveBackbone : TextBackbone
{
    private readonly WordVectors _vectors;
    private readonly GloveTextModel _model;
    private readonly bool _scratch;

    private GloveBackbone(WordVectors vectors, GloveTextModel model, bool scratch)
    {
        _vectors = vectors;
        _model = model;
        _scratch = scratch;
        FixedParameters = model.Encoder.Options.FreezeEmbeddings && !scratch
            ? new HashSet<string> { "backbone.embeddings.weight" }
            : new HashSet<string>();
    }

    /// <summary>The folder of the shipped GloVe vectors, found next to the application or above it in the repository.</summary>
    public static string ShippedVectorsDirectory()
    {
        var env = Environment.GetEnvironmentVariable("MLFT_GLOVE_DIR");
        if (!string.IsNullOrEmpty(env)) return env;
        var name = WordVectors.ShippedGloveName;
        foreach (var start in new[] { AppContext.BaseDirectory, Directory.GetCurrentDirectory() })
            for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
            {
                var candidate = Path.Combine(dir.FullName, "data", "models", name);
                if (File.Exists(Path.Combine(candidate, WordVectors.VocabFileName))) return candidate;
            }
        throw new DirectoryNotFoundException($"The shipped word vectors data/models/{name} were not found above {AppContext.BaseDirectory}; set MLFT_GLOVE_DIR.");
    }

    public static GloveBackbone Create(bool scratch, TextHeadKind head, int numLabels, GloveEncoderOptions options, Rng rng)
    {
        var vectors = WordVectors.Load(ShippedVectorsDirectory());
        GloveEncoder encoder;
        if (scratch)
        {
            // Same architecture and vocabulary, random trainable vectors with GloVe's overall scale.
            var w = vectors.Weights.ToArray();
            double ss = 0;
            foreach (var v in w) ss += v * v;
            float std = (float)Math.Sqrt(ss / w.Length);
            encoder = new GloveEncoder(vectors.Count, vectors.Dimension, vectors.PadId, rng, options with { FreezeEmbeddings = false });
            var init = Tensor.RandN(rng, 0f, std, vectors.Count, vectors.Dimension).ToArray();
            init.AsSpan(vectors.PadId * vectors.Dimension, vectors.Dimension).Clear();
            init.CopyTo(encoder.Embeddings.Weight.AsSpan());
        }
        else encoder = new GloveEncoder(vectors, rng, options);
        return new GloveBackbone(vectors, new GloveTextModel(encoder, head, numLabels, rng), scratch);
    }

    public override string Kind => _scratch ? "scratch" : "glove";
    public override Module Model => _model;
    public override IReadOnlySet<string> FixedParameters { get; }
    public override int MaxLength => _model.Encoder.Options.MaxLength;

    public override IReadOnlyList<string> LayerGroups =>
        ["backbone.embeddings", .. Enumerable.Range(0, _model.Encoder.Options.Layers).Select(i => $"backbone.encoder.{i}")];

    public override ISet<string> HalfPrecisionWeights =>
        FixedParameters.Count > 0 ? new HashSet<string> { "backbone.embeddings.weight" } : new HashSet<string>();

    public override EncodedText Encode(string text, string? pair)
    {
        var words = _vectors.Tokenize(text).ToList();
        if (pair is not null) words.AddRange(_vectors.Tokenize(pair));
        return EncodeWordList(words);
    }

    public override EncodedText EncodeWords(IReadOnlyList<string> words) => EncodeWordList(words);

    private EncodedText EncodeWordList(IReadOnlyList<string> words)
    {
        // TypeIds carry the word-shape classes (capitalisation etc.) for the encoder's shape embedding.
        int n = Math.Min(words.Count, MaxLength);
        var ids = new int[n];
        var shapes = new int[n];
        var wordIds = new int[n];
        for (int i = 0; i < n; i++)
        {
            ids[i] = _vectors.GetId(words[i]);
            shapes[i] = GloveEncoder.WordShape(words[i]) + (i == 0 ? 8 : 0);
            wordIds[i] = i;
        }
        return new EncodedText(ids, shapes, wordIds, words.Count > MaxLength);
    }

    public override Tensor Logits(IReadOnlyList<EncodedText> batch)
    {
        var (ids, mask, shapes) = Pad(batch, _vectors.PadId);
        return _model.Forward(ids, mask, shapes);
    }

    public override void Describe(JsonObject manifest, Dictionary<string, byte[]> files)
    {
        var o = _model.Encoder.Options;
        manifest["backbone"] = new JsonObject
        {
            ["kind"] = Kind,
            ["vocabSize"] = _vectors.Count,
            ["dimension"] = _vectors.Dimension,
            ["padId"] = _vectors.PadId,
            ["unkId"] = _vectors.UnkId,
            ["lowercase"] = _vectors.Lowercase,
            ["hiddenSize"] = o.HiddenSize,
            ["kernelSizes"] = new JsonArray(o.KernelSizes.Select(k => (JsonNode)k).ToArray()),
            ["layers"] = o.Layers,
            ["dropout"] = o.Dropout,
            ["freezeEmbeddings"] = FixedParameters.Count > 0,
            ["maxLength"] = o.MaxLength,
            ["pooling"] = o.Pooling.ToString(),
            ["wordShapeSize"] = o.WordShapeSize,
            ["source"] = _scratch ? "random initialisation" : $"data/models/{WordVectors.ShippedGloveName}",
        };
        files["vocab.txt"] = Encoding.UTF8.GetBytes(string.Join('\n', _vectors.Words) + "\n");
    }

    public static GloveBackbone FromPackage(ModelPackage package, TextHeadKind head, int numLabels)
    {
        var b = package.Manifest["backbone"]!.AsObject();
        if (!package.Files.TryGetValue("vocab.txt", out var vocabBytes))
            throw new InvalidDataException("model.zip: vocab.txt is missing for the word-vector backbone.");
        var words = Encoding.UTF8.GetString(vocabBytes).Split('\n');
        if (words.Length > 0 && words[^1].Length == 0) words = words[..^1];
        int vocab = b["vocabSize"]!.GetValue<int>(), dim = b["dimension"]!.GetValue<int>();
        if (words.Length != vocab) throw new InvalidDataException($"model.zip: vocab.txt has {words.Length} words but the manifest says {vocab}.");
        var options = new GloveEncoderOptions
        {
            HiddenSize = b["hiddenSize"]!.GetValue<int>(),
            KernelSizes = b["kernelSizes"]!.AsArray().Select(k => k!.GetValue<int>()).ToArray(),
            Layers = b["layers"]!.GetValue<int>(),
            Dropout = b["dropout"]!.GetValue<float>(),
            FreezeEmbeddings = b["freezeEmbeddings"]!.GetValue<bool>(),
            MaxLength = b["maxLength"]!.GetValue<int>(),
            Pooling = Enum.Parse<GlovePooling>(b["pooling"]!.GetValue<string>()),
            WordShapeSize = b["wordShapeSize"]?.GetValue<int>() ?? 0,
        };
        var weights = package.Weights.TryGetValue("backbone.embeddings.weight", out var w) ? w
            : throw new InvalidDataException("model.zip: backbone.embeddings.weight is missing.");
        var vectors = new WordVectors(words, weights, b["padId"]!.GetValue<int>(), b["unkId"]!.GetValue<int>(), b["lowercase"]!.GetValue<bool>(), "model.zip");
        var rng = new Rng(0);
        var encoder = new GloveEncoder(vocab, dim, vectors.PadId, rng, options);
        var model = new GloveTextModel(encoder, head, numLabels, rng);
        model.LoadStateDict(package.Weights.ToDictionary(kv => kv.Key, kv => kv.Value));
        return new GloveBackbone(vectors, model, b["kind"]!.GetValue<string>() == "scratch");
    }
}

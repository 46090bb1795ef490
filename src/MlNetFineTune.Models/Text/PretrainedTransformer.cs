using MlNetFineTune.Tensors;

namespace MlNetFineTune.Models.Text;

/// <summary>What happened to each tensor when a checkpoint was loaded into a model.</summary>
public sealed record PretrainedLoadReport(
    IReadOnlyList<string> Loaded,
    IReadOnlyList<string> NewlyInitialized,
    IReadOnlyList<string> Ignored);

/// <summary>Loads Hugging Face BERT-family checkpoints (config.json + weights) into our modules.</summary>
public static class PretrainedTransformer
{
    /// <summary>
    /// Builds a <see cref="TransformerClassifier"/> from a Hugging Face model directory. The encoder must be
    /// complete in the checkpoint (a missing or mis-shaped encoder tensor is an error naming it); the head is
    /// loaded when the checkpoint has one of the right shape and freshly initialised otherwise (reported).
    /// Pretraining heads (cls.*, lm_head.*, vocab_*) are ignored.
    /// </summary>
    public static (TransformerClassifier Model, PretrainedLoadReport Report) LoadClassifier(string modelDir, TransformerHead head, int numLabels, Rng rng)
    {
        var configPath = Path.Combine(modelDir, "config.json");
        if (!File.Exists(configPath)) throw new FileNotFoundException($"'{modelDir}' has no config.json.", configPath);
        var config = TransformerConfig.Load(configPath);
        var model = new TransformerClassifier(config, head, numLabels, rng);
        var report = LoadInto(model, Checkpoints.Load(modelDir), modelDir);
        return (model, report);
    }

    /// <summary>Builds a bare encoder from a Hugging Face model directory.</summary>
    public static TransformerEncoder LoadEncoder(string modelDir, Rng rng)
    {
        var config = TransformerConfig.Load(Path.Combine(modelDir, "config.json"));
        var encoder = new TransformerEncoder(config, rng, addPooler: config.Family == TransformerFamily.Bert);
        var state = Normalize(Checkpoints.Load(modelDir), TransformerClassifier.PrefixOf(config.Family), taskModel: false);
        var own = encoder.StateDict();
        var filtered = state.Where(kv => own.ContainsKey(kv.Key)).ToDictionary(kv => kv.Key, kv => kv.Value);
        if (!filtered.Keys.Any(k => k.StartsWith("pooler.", StringComparison.Ordinal)))
            foreach (var k in own.Keys.Where(k => k.StartsWith("pooler.", StringComparison.Ordinal))) filtered[k] = own[k];
        CheckComplete(own.Keys.Where(k => !IsBuffer(k)), filtered, modelDir);
        encoder.LoadStateDict(filtered, strict: false);
        return encoder;
    }

    /// <summary>Copies a checkpoint's tensors into <paramref name="model"/> and reports what was used.</summary>
    public static PretrainedLoadReport LoadInto(TransformerClassifier model, IReadOnlyDictionary<string, Tensor> checkpoint, string source)
    {
        var state = Normalize(checkpoint, model.EncoderPrefix, taskModel: true);
        var own = model.StateDict();
        string encoderPrefix = model.EncoderPrefix + ".";
        var encoderKeys = own.Keys.Where(k => k.StartsWith(encoderPrefix, StringComparison.Ordinal) && !IsBuffer(k)).ToList();
        var toLoad = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        var fresh = new List<string>();
        foreach (var (name, target) in own)
        {
            if (state.TryGetValue(name, out var t))
            {
                if (!t.Shape.SequenceEqual(target.Shape))
                {
                    if (name.StartsWith(encoderPrefix, StringComparison.Ordinal))
                        throw new InvalidDataException($"{source}: parameter '{name}' has shape [{string.Join(", ", t.Shape)}] in the checkpoint but the config implies [{string.Join(", ", target.Shape)}].");
                    fresh.Add(name); // e.g. a head trained for another number of labels
                    continue;
                }
                toLoad[name] = t;
            }
            else if (name.StartsWith(encoderPrefix + "pooler.", StringComparison.Ordinal) || !name.StartsWith(encoderPrefix, StringComparison.Ordinal))
                fresh.Add(name);
        }
        CheckComplete(encoderKeys.Where(k => !k.StartsWith(encoderPrefix + "pooler.", StringComparison.Ordinal)), toLoad, source);
        model.LoadStateDict(toLoad, strict: false);
        var ignored = state.Keys.Where(k => !own.ContainsKey(k)).ToList();
        return new PretrainedLoadReport([.. toLoad.Keys], fresh, ignored);
    }

    private static bool IsBuffer(string name) => name.EndsWith("position_ids", StringComparison.Ordinal) || name.EndsWith("token_type_ids", StringComparison.Ordinal);

    private static void CheckComplete(IEnumerable<string> required, IReadOnlyDictionary<string, Tensor> have, string source)
    {
        var missing = required.Where(k => !have.ContainsKey(k)).ToList();
        if (missing.Count > 0)
            throw new InvalidDataException($"{source}: the checkpoint lacks {missing.Count} encoder tensor(s), e.g. {string.Join(", ", missing.Take(5))}. Is config.json the right one for these weights?");
    }

    /// <summary>
    /// Maps checkpoint names onto ours: TF-era LayerNorm gamma/beta become weight/bias, and the encoder
    /// prefix is added (for bare-model checkpoints in a task model) or removed (for task checkpoints in a
    /// bare encoder).
    /// </summary>
    internal static Dictionary<string, Tensor> Normalize(IReadOnlyDictionary<string, Tensor> checkpoint, string prefix, bool taskModel)
    {
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        bool hasPrefix = checkpoint.Keys.Any(k => k.StartsWith(prefix + ".", StringComparison.Ordinal));
        foreach (var (raw, t) in checkpoint)
        {
            var name = raw;
            if (name.EndsWith(".gamma", StringComparison.Ordinal)) name = name[..^6] + ".weight";
            else if (name.EndsWith(".beta", StringComparison.Ordinal)) name = name[..^5] + ".bias";
            if (taskModel && !hasPrefix && IsEncoderName(name)) name = prefix + "." + name;
            if (!taskModel && hasPrefix && name.StartsWith(prefix + ".", StringComparison.Ordinal)) name = name[(prefix.Length + 1)..];
            result[name] = t;
        }
        return result;
    }

    private static bool IsEncoderName(string name) =>
        name.StartsWith("embeddings.", StringComparison.Ordinal) || name.StartsWith("encoder.", StringComparison.Ordinal) ||
        name.StartsWith("pooler.", StringComparison.Ordinal) || name.StartsWith("transformer.", StringComparison.Ordinal);
}

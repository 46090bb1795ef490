using System.Text.Json.Nodes;
using MlNetFineTune.Models.Nn;
using MlNetFineTune.Tensors;

namespace MlNetFineTune.Text;

/// <summary>What a text task predicts per example.</summary>
internal enum TextHeadKind
{
    Sequence,
    Token,
}

/// <summary>A tokenized example: model ids plus, for tagging, the word each token came from (-1 for none).</summary>
internal sealed record EncodedText(int[] Ids, int[] TypeIds, int[] WordIds, bool Truncated)
{
    public int Length => Ids.Length;
}

/// <summary>
/// A pretrained (or scratch) text model with its tokenizer and a task head: it encodes raw text, runs
/// batches to logits, names its layer groups for the training loop, and describes itself for model.zip.
/// </summary>
internal abstract class TextBackbone
{
    /// <summary>"glove", "scratch" or "transformer".</summary>
    public abstract string Kind { get; }

    /// <summary>The whole trainable model (backbone + head).</summary>
    public abstract Module Model { get; }

    /// <summary>Backbone layer groups, bottom to top (for layer-wise LR decay and gradual unfreezing).</summary>
    public abstract IReadOnlyList<string> LayerGroups { get; }

    /// <summary>Parameters never trained (frozen word vectors).</summary>
    public abstract IReadOnlySet<string> FixedParameters { get; }

    /// <summary>Tokens per example the model accepts.</summary>
    public abstract int MaxLength { get; }

    /// <summary>Encodes a text (and optional second text) for sequence tasks.</summary>
    public abstract EncodedText Encode(string text, string? pair);

    /// <summary>Encodes pre-split words for token tasks, remembering each token's word.</summary>
    public abstract EncodedText EncodeWords(IReadOnlyList<string> words);

    /// <summary>Logits for a batch: [B, labels] for sequences, [B, S, labels] for tokens (S = longest in batch).</summary>
    public abstract Tensor Logits(IReadOnlyList<EncodedText> batch);

    /// <summary>Writes the architecture and tokenizer into a manifest and package files.</summary>
    public abstract void Describe(JsonObject manifest, Dictionary<string, byte[]> files);

    /// <summary>Weight tensors to store in half precision (lossless for vectors that came as fp16 and stayed frozen).</summary>
    public virtual ISet<string> HalfPrecisionWeights => new HashSet<string>();

    protected static (Tensor Ids, Tensor Mask, Tensor Types) Pad(IReadOnlyList<EncodedText> batch, int padId)
    {
        int b = batch.Count, s = Math.Max(1, batch.Max(e => e.Length));
        var ids = new long[b * s];
        var mask = new long[b * s];
        var types = new long[b * s];
        for (int i = 0; i < b; i++)
        {
            var e = batch[i];
            for (int j = 0; j < s; j++)
            {
                bool real = j < e.Length;
                ids[i * s + j] = real ? e.Ids[j] : padId;
                mask[i * s + j] = real ? 1 : 0;
                types[i * s + j] = real ? e.TypeIds[j] : 0;
            }
        }
        return (Tensor.FromArray(ids, b, s), Tensor.FromArray(mask, b, s), Tensor.FromArray(types, b, s));
    }
}

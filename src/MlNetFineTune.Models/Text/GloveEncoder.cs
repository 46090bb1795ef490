using System.Globalization;
using MlNetFineTune.Models.Nn;
using MlNetFineTune.Tensors;

namespace MlNetFineTune.Models.Text;

/// <summary>How <see cref="GloveEncoder"/> turns per-token features into one vector per text.</summary>
public enum GlovePooling
{
    /// <summary>Masked max and masked mean, concatenated (2 x HiddenSize).</summary>
    MaxMean,
    /// <summary>Masked max over the words (HiddenSize).</summary>
    Max,
    /// <summary>Masked mean over the words (HiddenSize).</summary>
    Mean,
}

/// <summary>Hyper-parameters of <see cref="GloveEncoder"/>; the defaults train in seconds on two CPU cores.</summary>
public sealed record GloveEncoderOptions
{
    /// <summary>Per-token feature size, split evenly among the kernel widths (default 256: 128 per width).</summary>
    public int HiddenSize { get; init; } = 256;

    /// <summary>Convolution widths in words, odd so the length is kept (default 3 and 5).</summary>
    public IReadOnlyList<int> KernelSizes { get; init; } = [3, 5];

    /// <summary>Stacked convolution blocks (default 1); blocks after the first add their input back (residual).</summary>
    public int Layers { get; init; } = 1;

    /// <summary>Dropout on the word vectors and between blocks, in training mode (default 0.1).</summary>
    public float Dropout { get; init; } = 0.1f;

    /// <summary>Keep the GloVe vectors fixed (default true); false fine-tunes them (slower: the whole table gets a gradient).</summary>
    public bool FreezeEmbeddings { get; init; } = true;

    /// <summary>Words kept per text by the text helpers (<see cref="GloveEncoder.EncodeTexts"/>); default 256.</summary>
    public int MaxLength { get; init; } = 256;

    /// <summary>Pooling for the text vector (default max and mean concatenated).</summary>
    public GlovePooling Pooling { get; init; } = GlovePooling.MaxMean;

    /// <summary>
    /// Size of a learned word-shape embedding (lower, Capitalised, ALL CAPS, digits, punctuation...) added to
    /// each word vector; 0 (default) turns it off. GloVe 6B is lower-case only, so taggers need it to see
    /// capitalisation, the strongest clue for names they have never seen.
    /// </summary>
    public int WordShapeSize { get; init; }

    /// <summary>Checks the numbers make an encoder.</summary>
    public void Validate()
    {
        if (KernelSizes is null || KernelSizes.Count == 0)
            throw new ArgumentException("GloveEncoderOptions: KernelSizes must name at least one width.");
        foreach (var k in KernelSizes)
            if (k < 1 || k % 2 == 0)
                throw new ArgumentException($"GloveEncoderOptions: kernel width {k} must be odd and positive (so the sequence length is kept).");
        if (KernelSizes.Distinct().Count() != KernelSizes.Count)
            throw new ArgumentException($"GloveEncoderOptions: kernel widths [{string.Join(", ", KernelSizes)}] must be distinct.");
        if (HiddenSize < 1 || HiddenSize % KernelSizes.Count != 0)
            throw new ArgumentException($"GloveEncoderOptions: HiddenSize {HiddenSize} must be a positive multiple of the {KernelSizes.Count} kernel widths.");
        if (Layers < 1) throw new ArgumentException($"GloveEncoderOptions: Layers {Layers} must be at least 1.");
        if (Dropout < 0 || Dropout >= 1) throw new ArgumentException($"GloveEncoderOptions: Dropout {Dropout} must be in [0, 1).");
        if (MaxLength < 1) throw new ArgumentException($"GloveEncoderOptions: MaxLength {MaxLength} must be positive.");
        if (WordShapeSize < 0) throw new ArgumentException($"GloveEncoderOptions: WordShapeSize {WordShapeSize} must be >= 0.");
    }
}

/// <summary>What <see cref="GloveEncoder.Forward(Tensor, Tensor?)"/> returns.</summary>
/// <param name="TokenFeatures">Per-word features [B, S, HiddenSize] (zeros at padding), e.g. for tagging.</param>
/// <param name="Pooled">One vector per text [B, PooledSize], e.g. for classification.</param>
public sealed record GloveEncoderOutput(Tensor TokenFeatures, Tensor Pooled);

/// <summary>
/// The offline default text backbone: GloVe word vectors (frozen by default) followed by a compact 1-D CNN.
/// Word ids [B, S] and a mask [B, S] give per-word features [B, S, F] and pooled text features.
/// </summary>
/// <remarks>
/// <para>Architecture: embedding (D = 100 for the shipped GloVe) → × mask → dropout → <see cref="GloveEncoderOptions.Layers"/>
/// blocks, each running parallel convolutions along the sequence (one per kernel width, HiddenSize / widths
/// channels each, zero padding that keeps the length; computed as one Conv2d over [1, C, B, S]) whose outputs are
/// concatenated, passed through ReLU, multiplied by the mask and, after the first block, added to the block's
/// input; then masked max and/or mean pooling over the words.</para>
/// <para>Why a CNN rather than small transformer layers: with frozen vectors and a few hundred to a few thousand
/// examples, windows of 3 and 5 words are the inductive bias that works (n-gram detectors for sentiment,
/// local context for entity tags), need no position embeddings and cost about a quarter of the FLOPs of a
/// projection to 128 plus two transformer layers.</para>
/// <para>Padding never reaches real words: padded positions are zeroed before each convolution, which is
/// exactly what the convolution's own zero padding feeds it, so adding padding leaves every real word's
/// features, and the pooled vector, unchanged. Features are non-negative (ReLU, residual sums of ReLU), so a
/// max over the zeroed sequence equals the max over the words, and an empty text pools to zeros.</para>
/// <para>Parameter names: <c>embeddings.weight</c>, <c>encoder.{layer}.conv_k{width}.weight|bias</c>, so
/// <c>Freeze("embeddings")</c> and <c>Freeze("encoder")</c> work by prefix.</para>
/// </remarks>
public sealed class GloveEncoder : Module
{
    private readonly PretrainedEmbedding _embeddings;
    private readonly ModuleList<ConvBlock> _blocks;
    private readonly Dropout _dropout;
    private readonly Embedding? _shapes;

    /// <summary>
    /// Number of word-shape classes: <see cref="WordShape"/> returns 0..7 (0 is padding); callers may add 8 to
    /// mark the first word of a sentence, whose capital letter says little.
    /// </summary>
    public const int WordShapeCount = 16;

    /// <summary>
    /// The shape class of a word: 1 lower-case, 2 Capitalised, 3 ALL CAPS, 4 MiXed, 5 contains a digit,
    /// 6 punctuation only, 7 anything else (0 is reserved for padding).
    /// </summary>
    public static int WordShape(string word)
    {
        if (string.IsNullOrEmpty(word)) return 7;
        bool anyLetter = false, anyDigit = false, anyUpper = false, anyLower = false, allPunct = true;
        foreach (var ch in word)
        {
            if (char.IsLetter(ch)) { anyLetter = true; if (char.IsUpper(ch)) anyUpper = true; else anyLower = true; }
            if (char.IsDigit(ch)) anyDigit = true;
            if (!char.IsPunctuation(ch) && !char.IsSymbol(ch)) allPunct = false;
        }
        if (anyDigit) return 5;
        if (allPunct) return 6;
        if (!anyLetter) return 7;
        if (!anyUpper) return 1;
        if (!anyLower) return word.Length == 1 ? 2 : 3;
        return char.IsUpper(word[0]) && word.Skip(1).All(c => !char.IsLetter(c) || char.IsLower(c)) ? 2 : 4;
    }

    /// <summary>The options it was built with.</summary>
    public GloveEncoderOptions Options { get; }

    /// <summary>The word vectors it was built from (null when built from sizes alone).</summary>
    public WordVectors? Vocabulary { get; }

    /// <summary>The word embedding table (parameter <c>embeddings.weight</c>).</summary>
    public PretrainedEmbedding Embeddings => _embeddings;

    /// <summary>Row used for padding.</summary>
    public int PadId { get; }

    /// <summary>Word-vector size D.</summary>
    public int EmbeddingDim { get; }

    /// <summary>Size of each word's features (the F of <see cref="GloveEncoderOutput.TokenFeatures"/>).</summary>
    public int HiddenSize => Options.HiddenSize;

    /// <summary>Size of the pooled text vector (2 × HiddenSize for max+mean pooling).</summary>
    public int PooledSize => Options.Pooling == GlovePooling.MaxMean ? 2 * Options.HiddenSize : Options.HiddenSize;

    /// <summary>Builds the encoder over <paramref name="vectors"/>; the convolutions draw their initial weights from <paramref name="rng"/>.</summary>
    public GloveEncoder(WordVectors vectors, Rng rng, GloveEncoderOptions? options = null)
        : this(CheckVectors(vectors).CreateEmbedding(trainable: true), vectors.PadId, rng, options)
    {
        Vocabulary = vectors;
    }

    /// <summary>
    /// Builds the encoder with a zero embedding table of <paramref name="vocabSize"/> × <paramref name="embeddingDim"/>,
    /// to be filled by <see cref="Module.LoadStateDict"/> from a checkpoint.
    /// </summary>
    public GloveEncoder(int vocabSize, int embeddingDim, int padId, Rng rng, GloveEncoderOptions? options = null)
        : this(NewZeroEmbedding(vocabSize, embeddingDim, padId), padId, rng, options)
    {
    }

    private GloveEncoder(PretrainedEmbedding embedding, int padId, Rng rng, GloveEncoderOptions? options)
    {
        ArgumentNullException.ThrowIfNull(rng);
        Options = options ?? new GloveEncoderOptions();
        Options.Validate();
        PadId = padId;
        EmbeddingDim = embedding.Weight.Shape[1];
        _embeddings = RegisterModule("embeddings", embedding);
        if (Options.WordShapeSize > 0)
            _shapes = RegisterModule("shape_embeddings", new Embedding(WordShapeCount, Options.WordShapeSize, rng, paddingIdx: 0, std: 0.1f));
        _blocks = RegisterModule("encoder", new ModuleList<ConvBlock>());
        int inChannels = EmbeddingDim + Options.WordShapeSize;
        for (int l = 0; l < Options.Layers; l++)
        {
            _blocks.Add(new ConvBlock(inChannels, Options.HiddenSize, Options.KernelSizes, rng));
            inChannels = Options.HiddenSize;
        }
        // A registered module, so training loops can reseed its stream (exact resume) and Train/Eval reach it.
        _dropout = RegisterModule("dropout", new Dropout(Options.Dropout, rng.Fork()));
        if (Options.FreezeEmbeddings) Freeze("embeddings");
    }

    private static WordVectors CheckVectors(WordVectors vectors)
    {
        ArgumentNullException.ThrowIfNull(vectors);
        return vectors;
    }

    private static PretrainedEmbedding NewZeroEmbedding(int vocabSize, int embeddingDim, int padId)
    {
        if (vocabSize < 1 || embeddingDim < 1) throw new ArgumentException($"GloveEncoder: vocabulary {vocabSize} and dimension {embeddingDim} must be positive.");
        if (padId < 0 || padId >= vocabSize) throw new ArgumentException($"GloveEncoder: pad id {padId} is outside the vocabulary of {vocabSize}.");
        return new PretrainedEmbedding(Tensor.Zeros(vocabSize, embeddingDim), padId, trainable: true);
    }

    /// <summary>
    /// Features for word ids [B, S] (Int64 or Int32) and a mask [B, S] (any dtype; non-zero = word, zero =
    /// padding; when null, every id other than <see cref="PadId"/> counts as a word).
    /// </summary>
    public GloveEncoderOutput Forward(Tensor ids, Tensor? mask = null) => Forward(ids, mask, null);

    /// <summary>
    /// As <see cref="Forward(Tensor, Tensor?)"/>, with word-shape ids [B, S] from <see cref="WordShape"/>
    /// (required when <see cref="GloveEncoderOptions.WordShapeSize"/> &gt; 0).
    /// </summary>
    public GloveEncoderOutput Forward(Tensor ids, Tensor? mask, Tensor? wordShapes)
    {
        ArgumentNullException.ThrowIfNull(ids);
        if (ids.Rank != 2 || ids.DType == DType.Float32)
            throw new ArgumentException($"GloveEncoder: ids must be an integer tensor [batch, seq], got {ids.DType} [{string.Join(", ", ids.Shape)}].");
        int b = ids.Shape[0], s = ids.Shape[1];
        if (mask is not null && !mask.Shape.SequenceEqual(ids.Shape))
            throw new ArgumentException($"GloveEncoder: mask [{string.Join(", ", mask.Shape)}] must match ids [{b}, {s}].");

        // Host-side 0/1 mask and word counts (constants for autograd).
        var m = new float[b * s];
        if (mask is null)
        {
            var idData = ids.ToInt64Array();
            for (int i = 0; i < m.Length; i++) m[i] = idData[i] != PadId ? 1f : 0f;
        }
        else
        {
            var md = mask.ToArray();
            for (int i = 0; i < m.Length; i++) m[i] = md[i] != 0 ? 1f : 0f;
        }
        var counts = new float[b];
        for (int i = 0; i < b; i++)
        {
            float c = 0;
            for (int j = 0; j < s; j++) c += m[i * s + j];
            counts[i] = Math.Max(c, 1f);
        }
        var mask3 = Tensor.FromArray(m, b, s, 1);

        var emb = _embeddings.Forward(ids);
        if (_shapes is not null)
        {
            if (wordShapes is null || !wordShapes.Shape.SequenceEqual(ids.Shape))
                throw new ArgumentException($"GloveEncoder: word shapes [{string.Join(", ", wordShapes?.Shape ?? [])}] must match ids [{b}, {s}] when WordShapeSize > 0.");
            emb = Ops.Concat([emb, _shapes.Forward(wordShapes)], 2);
        }
        var x = Ops.Mul(emb, mask3);
        x = _dropout.Forward(x);
        for (int l = 0; l < _blocks.Count; l++)
        {
            var h = Ops.Mul(_blocks[l].Forward(x), mask3);
            x = l == 0 ? h : Ops.Add(h, x);
            if (l + 1 < _blocks.Count) x = _dropout.Forward(x);
        }

        // x: [B, S, F], zero at padding and non-negative elsewhere.
        Tensor pooled;
        var mean = Ops.Div(Ops.Sum(x, [1]), Tensor.FromArray(counts, b, 1));
        if (Options.Pooling == GlovePooling.Mean) pooled = mean;
        else
        {
            var max = Ops.Amax(x, [1]);
            pooled = Options.Pooling == GlovePooling.Max ? max : Ops.Concat([max, mean], 1);
        }
        return new GloveEncoderOutput(x, pooled);
    }

    /// <summary>Tokenizes and encodes texts with <see cref="Vocabulary"/>, keeping at most <see cref="GloveEncoderOptions.MaxLength"/> words each.</summary>
    public (Tensor Ids, Tensor Mask) EncodeTexts(IReadOnlyList<string> texts)
    {
        var vocabulary = Vocabulary ?? throw new InvalidOperationException("This GloveEncoder was built without WordVectors; encode texts with the WordVectors it was trained with.");
        return vocabulary.EncodeTexts(texts, Options.MaxLength);
    }

    /// <summary>One block: parallel same-length convolutions over the sequence, concatenated, then ReLU.</summary>
    internal sealed class ConvBlock : Module
    {
        private readonly List<Conv2d> _convs = [];

        public ConvBlock(int inChannels, int hiddenSize, IReadOnlyList<int> kernelSizes, Rng rng)
        {
            int perKernel = hiddenSize / kernelSizes.Count;
            foreach (var k in kernelSizes)
                _convs.Add(RegisterModule("conv_k" + k.ToString(CultureInfo.InvariantCulture),
                    new Conv2d(inChannels, perKernel, (1, k), rng, padding: (0, k / 2))));
        }

        /// <summary>[B, S, C] -> [B, S, hidden].</summary>
        /// <remarks>
        /// The batch is laid out as the rows of one image [1, C, B, S]: a (1, k) kernel with (0, k/2) padding
        /// never mixes rows and pads each text at both ends, and the whole batch becomes a single im2col + GEMM
        /// (per-text [B, C, 1, S] images would make B small GEMMs, several times slower for short texts).
        /// </remarks>
        public Tensor Forward(Tensor x)
        {
            int b = x.Shape[0], s = x.Shape[1], c = x.Shape[2];
            var rows = x.Permute(2, 0, 1).Reshape(1, c, b, s);
            var outs = new Tensor[_convs.Count];
            for (int i = 0; i < outs.Length; i++) outs[i] = _convs[i].Forward(rows);
            var y = Ops.Relu(outs.Length == 1 ? outs[0] : Ops.Concat(outs, 1));
            int f = y.Shape[1];
            return y.Reshape(f, b, s).Permute(1, 2, 0);
        }
    }
}

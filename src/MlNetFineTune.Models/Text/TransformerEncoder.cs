using MlNetFineTune.Tensors.Cpu;
using MlNetFineTune.Models.Nn;
using MlNetFineTune.Tensors;

namespace MlNetFineTune.Models.Text;

/// <summary>
/// A BERT-family encoder (BERT, RoBERTa, DistilBERT, MiniLM) whose parameters carry the Hugging Face
/// names of the bare model (<c>embeddings.word_embeddings.weight</c>, <c>encoder.layer.0...</c> or
/// DistilBERT's <c>transformer.layer.0...</c>).
/// </summary>
public sealed class TransformerEncoder : Module
{
    /// <summary>The configuration it was built from.</summary>
    public TransformerConfig Config { get; }

    private readonly Embeddings _embeddings;
    private readonly ModuleList<EncoderLayer> _layers;
    private readonly Linear? _pooler;

    /// <summary>Builds a randomly initialised encoder (normal(0, initializer_range) as Hugging Face does).</summary>
    public TransformerEncoder(TransformerConfig config, Rng rng, bool addPooler = true)
    {
        config.Validate();
        Config = config;
        _embeddings = RegisterModule("embeddings", new Embeddings(config, rng));
        _layers = new ModuleList<EncoderLayer>();
        for (int i = 0; i < config.NumLayers; i++) _layers.Add(new EncoderLayer(config, rng));
        if (config.Family == TransformerFamily.DistilBert)
        {
            var transformer = RegisterModule("transformer", new Container());
            transformer.Add("layer", _layers);
        }
        else
        {
            var encoder = RegisterModule("encoder", new Container());
            encoder.Add("layer", _layers);
            if (addPooler)
            {
                var pooler = RegisterModule("pooler", new Container());
                _pooler = pooler.Add("dense", NewLinear(config, rng, config.HiddenSize, config.HiddenSize));
            }
        }
    }

    /// <summary>True when the model has BERT's pooler (dense + tanh over the first token).</summary>
    public bool HasPooler => _pooler is not null;

    internal static Linear NewLinear(TransformerConfig c, Rng rng, int inF, int outF)
    {
        var l = new Linear(inF, outF, rng);
        Init.Normal(rng, c.InitializerRange, outF, inF).AsSpan().CopyTo(l.Weight.AsSpan());
        l.Bias!.AsSpan().Clear();
        return l;
    }

    /// <summary>
    /// Hidden states [batch, seq, hidden] for token ids [batch, seq] and an attention mask [batch, seq]
    /// (1 = token, 0 = padding); token types default to zeros.
    /// </summary>
    public Tensor Forward(Tensor inputIds, Tensor? attentionMask = null, Tensor? tokenTypeIds = null) =>
        Run(inputIds, attentionMask, tokenTypeIds, firstTokenOnly: false);

    /// <summary>
    /// The first token's final hidden state, [batch, hidden]: equal to <c>Forward(...)[:, 0]</c>, but the last layer
    /// computes its query, attention output and feed-forward for that position only (its keys and values still
    /// cover every token). That is all a sequence-classification head reads, and it skips most of a layer's work.
    /// </summary>
    public Tensor ForwardFirstToken(Tensor inputIds, Tensor? attentionMask = null, Tensor? tokenTypeIds = null) =>
        FirstToken(Run(inputIds, attentionMask, tokenTypeIds, firstTokenOnly: true));

    private Tensor Run(Tensor inputIds, Tensor? attentionMask, Tensor? tokenTypeIds, bool firstTokenOnly)
    {
        if (inputIds.Rank != 2) throw new ArgumentException($"input ids {Fmt(inputIds.Shape)} must be [batch, seq].");
        int b = inputIds.Shape[0], s = inputIds.Shape[1];
        if (s + Config.PositionOffset > Config.MaxPositions)
            throw new ArgumentException($"Sequence length {s} exceeds the model's {Config.MaxPositions - Config.PositionOffset} positions.");
        if (attentionMask is not null && !attentionMask.Shape.SequenceEqual(inputIds.Shape))
            throw new ArgumentException($"attention mask {Fmt(attentionMask.Shape)} must match input ids {Fmt(inputIds.Shape)}.");
        // Without a graph (inference) the embedding sums are recycled at once, and each layer's input (the
        // embeddings', then the previous layer's output, all made here) once the layer has read it.
        var h = TensorBuffers.RecycleIntermediates(() => _embeddings.Forward(inputIds, tokenTypeIds));
        Tensor? ext = null;
        if (attentionMask is not null)
        {
            // (1 - mask) * most-negative, broadcast over heads and query positions (as Hugging Face).
            var m = attentionMask.DType == DType.Float32 ? attentionMask.Detach() : Ops.ToFloat(attentionMask);
            ext = Ops.MulScalar(Ops.AddScalar(Ops.Neg(m), 1f), float.MinValue).Reshape(b, 1, 1, s);
        }
        var layers = _layers.Items;
        for (int i = 0; i < layers.Count; i++)
        {
            var (layer, input) = (layers[i], h);
            bool firstOnly = firstTokenOnly && i == layers.Count - 1;
            // Without a graph (inference) a layer's intermediates are dead when it returns: their buffers are recycled
            // for the next layer. (Only the layer's output leaves EncoderLayer.Forward.)
            h = TensorBuffers.RecycleIntermediates(() => layer.Forward(input, ext, firstOnly), consumedInput: input);
        }
        return h;
    }

    /// <summary>BERT's pooled output: tanh(dense(hidden[:, 0])).</summary>
    public Tensor Pool(Tensor hidden) => PoolFirstToken(FirstToken(hidden));

    /// <summary>BERT's pooled output from the first token's hidden state [batch, hidden]: tanh(dense(first)).</summary>
    public Tensor PoolFirstToken(Tensor first)
    {
        if (_pooler is null) throw new InvalidOperationException("This encoder has no pooler.");
        return Ops.Tanh(_pooler.Forward(first));
    }

    internal static Tensor FirstToken(Tensor hidden) => hidden.Narrow(1, 0, 1).Squeeze(1);

    private static string Fmt(IReadOnlyList<int> s) => "[" + string.Join(", ", s) + "]";

    /// <summary>A plain named container (for "encoder", "pooler", "transformer", ...).</summary>
    internal sealed class Container : Module
    {
        public T Add<T>(string name, T m) where T : Module => RegisterModule(name, m);
    }

    private sealed class Embeddings : Module
    {
        private readonly TransformerConfig _c;
        private readonly Embedding _word, _position;
        private readonly Embedding? _tokenType;
        private readonly LayerNorm _norm;
        private readonly Dropout _dropout;

        public Embeddings(TransformerConfig c, Rng rng)
        {
            _c = c;
            _word = RegisterModule("word_embeddings", new Embedding(c.VocabSize, c.HiddenSize, rng, c.PadTokenId, c.InitializerRange));
            _position = RegisterModule("position_embeddings", new Embedding(c.MaxPositions, c.HiddenSize, rng,
                c.Family == TransformerFamily.Roberta ? c.PadTokenId : null, c.InitializerRange));
            if (c.TypeVocabSize > 0)
                _tokenType = RegisterModule("token_type_embeddings", new Embedding(c.TypeVocabSize, c.HiddenSize, rng, null, c.InitializerRange));
            _norm = RegisterModule("LayerNorm", new LayerNorm(c.HiddenSize, c.LayerNormEps));
            _dropout = RegisterModule("dropout", new Dropout(c.HiddenDropout, rng.Fork()));
        }

        public Tensor Forward(Tensor ids, Tensor? types)
        {
            int b = ids.Shape[0], s = ids.Shape[1];
            var idData = ids.ToInt64Array();
            var pos = new long[b * s];
            if (_c.Family == TransformerFamily.Roberta)
            {
                // Positions count real tokens from pad+1; padding keeps the padding position.
                for (int i = 0; i < b; i++)
                {
                    long run = 0;
                    for (int j = 0; j < s; j++)
                    {
                        bool real = idData[i * s + j] != _c.PadTokenId;
                        if (real) run++;
                        pos[i * s + j] = real ? run + _c.PadTokenId : _c.PadTokenId;
                    }
                }
            }
            else
            {
                for (int i = 0; i < b; i++) for (int j = 0; j < s; j++) pos[i * s + j] = j;
            }
            var h = Ops.Add(_word.Forward(ids), _position.Forward(Tensor.FromArray(pos, b, s)));
            if (_tokenType is not null)
                h = Ops.Add(h, _tokenType.Forward(types ?? Tensor.FromArray(new long[b * s], b, s)));
            else if (types is not null)
                throw new ArgumentException($"{_c.ModelType} has no token type embeddings; pass no token type ids.");
            return _dropout.Forward(_norm.Forward(h));
        }
    }

    internal sealed class EncoderLayer : Module
    {
        private readonly TransformerConfig _c;
        private readonly Linear _q, _k, _v, _attnOut, _ffnIn, _ffnOut;
        private readonly LayerNorm _attnNorm, _outNorm;
        private readonly Dropout _attnDropout, _hiddenDropout;

        public EncoderLayer(TransformerConfig c, Rng rng)
        {
            _c = c;
            int h = c.HiddenSize;
            if (c.Family == TransformerFamily.DistilBert)
            {
                var attention = RegisterModule("attention", new Container());
                _q = attention.Add("q_lin", NewLinear(c, rng, h, h));
                _k = attention.Add("k_lin", NewLinear(c, rng, h, h));
                _v = attention.Add("v_lin", NewLinear(c, rng, h, h));
                _attnOut = attention.Add("out_lin", NewLinear(c, rng, h, h));
                _attnNorm = RegisterModule("sa_layer_norm", new LayerNorm(h, c.LayerNormEps));
                var ffn = RegisterModule("ffn", new Container());
                _ffnIn = ffn.Add("lin1", NewLinear(c, rng, h, c.IntermediateSize));
                _ffnOut = ffn.Add("lin2", NewLinear(c, rng, c.IntermediateSize, h));
                _outNorm = RegisterModule("output_layer_norm", new LayerNorm(h, c.LayerNormEps));
            }
            else
            {
                var attention = RegisterModule("attention", new Container());
                var self = attention.Add("self", new Container());
                _q = self.Add("query", NewLinear(c, rng, h, h));
                _k = self.Add("key", NewLinear(c, rng, h, h));
                _v = self.Add("value", NewLinear(c, rng, h, h));
                var attnOutput = attention.Add("output", new Container());
                _attnOut = attnOutput.Add("dense", NewLinear(c, rng, h, h));
                _attnNorm = attnOutput.Add("LayerNorm", new LayerNorm(h, c.LayerNormEps));
                var intermediate = RegisterModule("intermediate", new Container());
                _ffnIn = intermediate.Add("dense", NewLinear(c, rng, h, c.IntermediateSize));
                var output = RegisterModule("output", new Container());
                _ffnOut = output.Add("dense", NewLinear(c, rng, c.IntermediateSize, h));
                _outNorm = output.Add("LayerNorm", new LayerNorm(h, c.LayerNormEps));
            }
            _attnDropout = RegisterModule("attention_dropout", new Dropout(c.AttentionDropout, rng.Fork()));
            _hiddenDropout = RegisterModule("dropout", new Dropout(c.HiddenDropout, rng.Fork()));
            _qkv = new FusedLinear(_q, _k, _v);
            _kv = new FusedLinear(_k, _v);
        }

        // Without gradients the projections that read the same rows run as one product (bitwise the same outputs).
        private readonly FusedLinear _qkv, _kv;

        /// <summary>
        /// The layer's output [batch, seq, hidden]; with <paramref name="firstOnly"/>, [batch, 1, hidden] for the first
        /// position only (queries, attention output and feed-forward of that row; keys and values of all rows).
        /// </summary>
        public Tensor Forward(Tensor x, Tensor? extMask, bool firstOnly = false)
        {
            int b = x.Shape[0], s = x.Shape[1], nh = _c.NumHeads, dh = _c.HeadDim;
            // The rows whose outputs are wanted: all of them, or the first token's (copied out of the strided view).
            var xq = firstOnly ? x.Narrow(1, 0, 1).Contiguous() : x;
            int sq = xq.Shape[1];
            Tensor Heads(Tensor t, int rows) => t.Reshape(b, rows, nh, dh).Permute(0, 2, 1, 3);
            int h = _c.HiddenSize;
            Tensor q, k, v;
            if (!firstOnly && _qkv.Forward(x) is { } qkv)
            {
                (q, k, v) = (Heads(qkv.Narrow(2, 0, h), s), Heads(qkv.Narrow(2, h, h), s), Heads(qkv.Narrow(2, 2 * h, h), s));
            }
            else
            {
                q = Heads(_q.Forward(xq), sq);
                var kv = _kv.Forward(x);
                k = Heads(kv is null ? _k.Forward(x) : kv.Narrow(2, 0, h), s);
                v = Heads(kv is null ? _v.Forward(x) : kv.Narrow(2, h, h), s);
            }
            // softmax(q k^T / sqrt(dh) + mask), scale and mask fused into the softmax pass.
            var probs = _attnDropout.Forward(Ops.AttentionSoftmax(Ops.MatMul(q, k.Transpose(-1, -2)), 1f / MathF.Sqrt(dh), extMask));
            var ctx = Ops.MatMul(probs, v).Permute(0, 2, 1, 3).Reshape(b, sq, h);
            // Dropout, then the residual, in one pass (the same mask and values as the two ops).
            var attn = _attnNorm.Forward(DropoutThenAdd(_attnOut.Forward(ctx), xq));
            // GELU (the usual activation) fuses with the FFN-in GEMM when no gradient is needed.
            var inter = _c.HiddenAct switch
            {
                "gelu" => Ops.LinearGelu(attn, _ffnIn.Weight, _ffnIn.Bias),
                "gelu_new" or "gelu_pytorch_tanh" or "gelu_fast" => Ops.LinearGelu(attn, _ffnIn.Weight, _ffnIn.Bias, GeluApproximation.Tanh),
                _ => Activation.Apply(_c.HiddenAct, _ffnIn.Forward(attn)),
            };
            return _outNorm.Forward(DropoutThenAdd(_ffnOut.Forward(inter), attn));
        }

        private Tensor DropoutThenAdd(Tensor h, Tensor residual) =>
            Ops.DropoutAdd(h, residual, _hiddenDropout.P, _hiddenDropout.Rng, _hiddenDropout.Training);
    }
}

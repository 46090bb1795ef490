using MlNetFineTune.Models.Nn;
using MlNetFineTune.Tensors;

namespace MlNetFineTune.Models.Text;

/// <summary>What a transformer head predicts.</summary>
public enum TransformerHead
{
    /// <summary>One label per sequence (XxxForSequenceClassification).</summary>
    SequenceClassification,
    /// <summary>One label per token (XxxForTokenClassification).</summary>
    TokenClassification,
}

/// <summary>
/// An encoder plus a classification head with Hugging Face's task-model names: the encoder sits under
/// <c>bert.</c>, <c>roberta.</c> or <c>distilbert.</c>, the head is <c>classifier</c> (BERT, token
/// classification), <c>classifier.dense</c>/<c>classifier.out_proj</c> (RoBERTa) or
/// <c>pre_classifier</c>/<c>classifier</c> (DistilBERT).
/// </summary>
public sealed class TransformerClassifier : Module
{
    private readonly Linear? _preClassifier;
    private readonly Linear _classifier;
    private readonly Dropout _dropout;

    /// <summary>The encoder.</summary>
    public TransformerEncoder Encoder { get; }

    /// <summary>Which head.</summary>
    public TransformerHead Head { get; }

    /// <summary>Number of output labels.</summary>
    public int NumLabels { get; }

    /// <summary>The state-dict prefix of the encoder ("bert", "roberta" or "distilbert").</summary>
    public string EncoderPrefix { get; }

    /// <summary>Builds a randomly initialised model.</summary>
    public TransformerClassifier(TransformerConfig config, TransformerHead head, int numLabels, Rng rng)
    {
        if (numLabels < 1) throw new ArgumentOutOfRangeException(nameof(numLabels), "A classifier needs at least one label.");
        Head = head;
        NumLabels = numLabels;
        EncoderPrefix = PrefixOf(config.Family);
        bool pooler = config.Family == TransformerFamily.Bert && head == TransformerHead.SequenceClassification;
        Encoder = RegisterModule(EncoderPrefix, new TransformerEncoder(config, rng, addPooler: pooler));
        int h = config.HiddenSize;
        // DistilBERT: seq_classif_dropout for sequences, dropout for tokens; others: classifier_dropout or hidden.
        float p = config.Family == TransformerFamily.DistilBert
            ? (head == TransformerHead.SequenceClassification ? config.ClassifierDropout ?? 0.2f : config.HiddenDropout)
            : config.ClassifierDropout ?? config.HiddenDropout;
        _dropout = RegisterModule("dropout", new Dropout(p, rng.Fork()));
        if (head == TransformerHead.SequenceClassification && config.Family == TransformerFamily.Roberta)
        {
            var c = RegisterModule("classifier", new TransformerEncoder.Container());
            _preClassifier = c.Add("dense", TransformerEncoder.NewLinear(config, rng, h, h));
            _classifier = c.Add("out_proj", TransformerEncoder.NewLinear(config, rng, h, numLabels));
        }
        else if (head == TransformerHead.SequenceClassification && config.Family == TransformerFamily.DistilBert)
        {
            _preClassifier = RegisterModule("pre_classifier", TransformerEncoder.NewLinear(config, rng, h, h));
            _classifier = RegisterModule("classifier", TransformerEncoder.NewLinear(config, rng, h, numLabels));
        }
        else
        {
            _classifier = RegisterModule("classifier", TransformerEncoder.NewLinear(config, rng, h, numLabels));
        }
    }

    /// <summary>The state-dict prefix Hugging Face task models use for a family's encoder.</summary>
    public static string PrefixOf(TransformerFamily family) => family switch
    {
        TransformerFamily.Roberta => "roberta",
        TransformerFamily.DistilBert => "distilbert",
        _ => "bert",
    };

    /// <summary>The classifier's linear layers (for separate learning rates).</summary>
    public IEnumerable<string> HeadParameterPrefixes =>
        NamedParameters().Select(p => p.Name).Where(n => !n.StartsWith(EncoderPrefix + ".", StringComparison.Ordinal))
            .Select(n => n[..n.LastIndexOf('.')]).Distinct();

    /// <summary>
    /// Measurement switch: sequence heads run the full last layer and take its first row (the same logits; what
    /// the work skipped by <see cref="TransformerEncoder.ForwardFirstToken"/> costs). A field without an initialiser.
    /// </summary>
    internal static bool FullLastLayer;

    /// <summary>Logits: [batch, labels] for sequences, [batch, seq, labels] for tokens.</summary>
    public Tensor Forward(Tensor inputIds, Tensor? attentionMask = null, Tensor? tokenTypeIds = null)
    {
        if (Head == TransformerHead.TokenClassification)
            return _classifier.Forward(_dropout.Forward(Encoder.Forward(inputIds, attentionMask, tokenTypeIds)));
        // Every sequence head reads the first token only, so the last layer computes that row alone.
        var first = FullLastLayer
            ? TransformerEncoder.FirstToken(Encoder.Forward(inputIds, attentionMask, tokenTypeIds))
            : Encoder.ForwardFirstToken(inputIds, attentionMask, tokenTypeIds);
        switch (Encoder.Config.Family)
        {
            case TransformerFamily.Roberta:
                {
                    var x = _dropout.Forward(first);
                    x = _dropout.Forward(Ops.Tanh(_preClassifier!.Forward(x)));
                    return _classifier.Forward(x);
                }
            case TransformerFamily.DistilBert:
                {
                    var x = Ops.Relu(_preClassifier!.Forward(first));
                    return _classifier.Forward(_dropout.Forward(x));
                }
            default:
                return _classifier.Forward(_dropout.Forward(Encoder.PoolFirstToken(first)));
        }
    }
}

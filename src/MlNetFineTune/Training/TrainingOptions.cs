namespace MlNetFineTune.Training;

/// <summary>How the backbone's weights take part in training.</summary>
public enum FreezeStrategy
{
    /// <summary>Everything trains from the first step.</summary>
    None,
    /// <summary>The backbone stays frozen; only the task head trains (a linear probe on fine features).</summary>
    Backbone,
    /// <summary>
    /// Starts with only the head trainable and unfreezes one backbone layer group per epoch from the top
    /// down (ULMFiT's gradual unfreezing), which protects pretrained features early on.
    /// </summary>
    Gradual,
}

/// <summary>How examples of rare classes are weighted in the loss.</summary>
public enum ClassWeighting
{
    /// <summary>All classes weigh the same.</summary>
    None,
    /// <summary>Inverse class frequency in the training set, normalised to mean 1.</summary>
    Auto,
}

/// <summary>Learning-rate schedule over the whole run.</summary>
public enum LearningRateSchedule
{
    /// <summary>Linear warmup, then linear decay to zero (Hugging Face's default).</summary>
    LinearWarmupDecay,
    /// <summary>Linear warmup, then half a cosine to zero.</summary>
    Cosine,
    /// <summary>Constant after warmup.</summary>
    Constant,
}

/// <summary>
/// Options of the shared training loop. Defaults are those of a careful fine-tuning run: AdamW without
/// weight decay on biases and norms, 10% warmup then linear decay, gradient clipping at 1, early stopping on
/// a full validation pass every epoch.
/// </summary>
public sealed record TrainingOptions
{
    /// <summary>Maximum passes over the training set.</summary>
    public int Epochs { get; init; } = 3;
    /// <summary>Examples per optimizer step (before accumulation).</summary>
    public int BatchSize { get; init; } = 32;
    /// <summary>Peak learning rate of the head and the top of the backbone.</summary>
    public double LearningRate { get; init; } = 2e-5;
    /// <summary>Multiplier on the learning rate of the backbone (1 = same as the head).</summary>
    public double BackboneLearningRateScale { get; init; } = 1.0;
    /// <summary>Decoupled weight decay (not applied to biases and normalisation weights).</summary>
    public double WeightDecay { get; init; } = 0.01;
    /// <summary>Fraction of the steps spent warming up.</summary>
    public double WarmupRatio { get; init; } = 0.1;
    /// <summary>Learning-rate schedule.</summary>
    public LearningRateSchedule Schedule { get; init; } = LearningRateSchedule.LinearWarmupDecay;
    /// <summary>Clip gradients to this global L2 norm (null: no clipping).</summary>
    public float? MaxGradNorm { get; init; } = 1f;
    /// <summary>Batches whose gradients are summed before one optimizer step.</summary>
    public int GradientAccumulationSteps { get; init; } = 1;
    /// <summary>Class weighting in the loss.</summary>
    public ClassWeighting ClassWeights { get; init; } = ClassWeighting.None;
    /// <summary>Explicit per-class weights (overrides <see cref="ClassWeights"/>).</summary>
    public IReadOnlyList<float>? ExplicitClassWeights { get; init; }
    /// <summary>Label smoothing of the cross-entropy target.</summary>
    public float LabelSmoothing { get; init; }
    /// <summary>Layer-wise learning-rate decay: each layer group down from the top gets this factor more (null: off).</summary>
    public double? LayerwiseLearningRateDecay { get; init; }
    /// <summary>Frozen backbone, gradual unfreezing, or none.</summary>
    public FreezeStrategy Freeze { get; init; } = FreezeStrategy.None;
    /// <summary>L2-SP strength: pulls backbone weights toward their pretrained values (0: off).</summary>
    public float L2SP { get; init; }
    /// <summary>Stop after this many epochs without improvement (null: never stop early).</summary>
    public int? EarlyStoppingPatience { get; init; } = DefaultPatience;

    private const int DefaultPatience = 2;

    /// <summary>True when the patience was left at its default, so a trainer may pick one for its schedule.</summary>
    internal bool PatienceIsDefault => EarlyStoppingPatience == DefaultPatience;
    /// <summary>An improvement must beat the best by more than this.</summary>
    public double EarlyStoppingMinDelta { get; init; }
    /// <summary>Folder for per-epoch checkpoints (null: none).</summary>
    public string? CheckpointDirectory { get; init; }
    /// <summary>Continue from the checkpoint in <see cref="CheckpointDirectory"/> when there is one.</summary>
    public bool Resume { get; init; }
    /// <summary>Seed of shuffling, dropout and initialisation.</summary>
    public int Seed { get; init; } = 1;

    /// <summary>Checks the values, naming the first bad one.</summary>
    public void Validate()
    {
        static void Check(bool ok, string message)
        {
            if (!ok) throw new ArgumentOutOfRangeException(message);
        }
        Check(Epochs >= 1, $"Epochs must be at least 1 (got {Epochs}).");
        Check(BatchSize >= 1, $"BatchSize must be at least 1 (got {BatchSize}).");
        Check(LearningRate > 0 && double.IsFinite(LearningRate), $"LearningRate must be positive (got {LearningRate}).");
        Check(BackboneLearningRateScale >= 0, $"BackboneLearningRateScale must be >= 0 (got {BackboneLearningRateScale}).");
        Check(WeightDecay >= 0, $"WeightDecay must be >= 0 (got {WeightDecay}).");
        Check(WarmupRatio is >= 0 and < 1, $"WarmupRatio must be in [0, 1) (got {WarmupRatio}).");
        Check(MaxGradNorm is null or > 0, $"MaxGradNorm must be positive (got {MaxGradNorm}).");
        Check(GradientAccumulationSteps >= 1, $"GradientAccumulationSteps must be at least 1 (got {GradientAccumulationSteps}).");
        Check(LabelSmoothing is >= 0 and < 1, $"LabelSmoothing must be in [0, 1) (got {LabelSmoothing}).");
        Check(LayerwiseLearningRateDecay is null or (> 0 and <= 1), $"LayerwiseLearningRateDecay must be in (0, 1] (got {LayerwiseLearningRateDecay}).");
        Check(L2SP >= 0, $"L2SP must be >= 0 (got {L2SP}).");
        Check(EarlyStoppingPatience is null or >= 1, $"EarlyStoppingPatience must be at least 1 (got {EarlyStoppingPatience}).");
        Check(!Resume || CheckpointDirectory is not null, "Resume needs a CheckpointDirectory.");
    }
}

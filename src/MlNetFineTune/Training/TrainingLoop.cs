using System.Diagnostics;
using MlNetFineTune.Models.Nn;
using MlNetFineTune.Tensors;
using MlNetFineTune.Tensors.Cpu;
using MlNetFineTune.Tensors.IO;
using MlNetFineTune.Tensors.Optim;

namespace MlNetFineTune.Training;

/// <summary>The result of a full validation pass.</summary>
/// <param name="Score">The monitored value; higher is better.</param>
/// <param name="Metrics">Every metric by its JSON key.</param>
/// <param name="Loss">Validation loss, which breaks ties between equal scores (lower is better).</param>
public sealed record Evaluation(double Score, IReadOnlyDictionary<string, double> Metrics, double Loss = double.NaN);

/// <summary>
/// What a task gives the shared loop: the model, which parameters form the backbone's layer groups, a loss
/// for a batch of training examples, and a full validation pass. Images and text plug in the same way.
/// </summary>
public interface ITrainingTask
{
    /// <summary>The module being trained.</summary>
    Module Model { get; }

    /// <summary>Parameter-name prefixes of the backbone's layer groups, bottom (embeddings) to top. Parameters under none of them belong to the head.</summary>
    IReadOnlyList<string> BackboneLayerGroups { get; }

    /// <summary>Parameters the loop must never train (e.g. frozen word vectors), whatever the freeze strategy.</summary>
    IReadOnlySet<string> FixedParameters { get; }

    /// <summary>Number of training examples.</summary>
    int TrainingExampleCount { get; }

    /// <summary>A length per example used to batch similar lengths together (null: no bucketing).</summary>
    int? LengthOf(int example);

    /// <summary>Mean loss of a batch of training examples, in training mode, with the graph recorded.</summary>
    Tensor Loss(IReadOnlyList<int> examples);

    /// <summary>A full pass over the validation set in evaluation mode.</summary>
    Evaluation Validate(CancellationToken cancellationToken);

    /// <summary>
    /// Called before each epoch's first batch with a stream fixed by (seed, epoch), e.g. to draw that epoch's
    /// data augmentation; a resumed run gets the same stream for the same epoch. Does nothing by default.
    /// </summary>
    void BeginEpoch(int epoch, Rng rng) { }
}

/// <summary>A progress report of the training loop.</summary>
public sealed record TrainingProgress(
    string Phase, int Epoch, int Epochs, int Step, int StepsPerEpoch, double Loss, double LearningRate,
    IReadOnlyDictionary<string, double>? ValidationMetrics, TimeSpan Elapsed, TimeSpan? Remaining);

/// <summary>One epoch's record.</summary>
public sealed record EpochRecord(int Epoch, double TrainLoss, double Score, IReadOnlyDictionary<string, double> Metrics, double Seconds);

/// <summary>What a training run produced.</summary>
public sealed record TrainingOutcome(int BestEpoch, double BestScore, IReadOnlyList<EpochRecord> History, bool StoppedEarly, bool Cancelled, double TrainSeconds, int ResumedFromEpoch);

/// <summary>
/// The one training loop every task uses: AdamW (no decay on biases and norms), warmup + decay, clipping,
/// accumulation, layer-wise learning-rate decay, frozen/gradual unfreezing, L2-SP, a full validation pass per
/// epoch, early stopping that restores the best epoch, per-epoch checkpoints with exact resume, cancellation
/// that returns the best model so far.
/// </summary>
public static class TrainingLoop
{
    private const string CheckpointFile = "checkpoint.safetensors";

    /// <summary>Trains <paramref name="task"/>'s model in place and leaves it holding the best epoch's weights.</summary>
    public static TrainingOutcome Run(ITrainingTask task, TrainingOptions options, IProgress<TrainingProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(task);
        options.Validate();
        var model = task.Model;
        int n = task.TrainingExampleCount;
        if (n == 0) throw new ArgumentException("The training set is empty.");
        int batchesPerEpoch = (n + options.BatchSize - 1) / options.BatchSize;
        int stepsPerEpoch = (batchesPerEpoch + options.GradientAccumulationSteps - 1) / options.GradientAccumulationSteps;
        int totalSteps = stepsPerEpoch * options.Epochs;
        int warmup = (int)Math.Round(options.WarmupRatio * totalSteps);

        var groups = task.BackboneLayerGroups;
        var named = model.NamedParameters().ToList();
        int GroupOf(string name)
        {
            for (int g = groups.Count - 1; g >= 0; g--)
                if (name == groups[g] || name.StartsWith(groups[g].EndsWith('.') ? groups[g] : groups[g] + ".", StringComparison.Ordinal)) return g;
            return -1; // head
        }

        // Parameter groups: (layer group, decay?) -> learning-rate scale.
        var paramGroups = new List<ParamGroup>();
        foreach (var bucket in named.GroupBy(p => (Layer: GroupOf(p.Name), Decay: p.Parameter.Rank > 1)).OrderBy(b => b.Key.Layer).ThenBy(b => b.Key.Decay))
        {
            double scale = 1.0;
            if (bucket.Key.Layer >= 0)
            {
                scale = options.BackboneLearningRateScale;
                if (options.LayerwiseLearningRateDecay is double d) scale *= Math.Pow(d, groups.Count - bucket.Key.Layer);
            }
            paramGroups.Add(new ParamGroup(bucket.Select(p => p.Parameter), options.LearningRate * scale, bucket.Key.Decay ? options.WeightDecay : 0.0)
            {
                Name = $"{(bucket.Key.Layer < 0 ? "head" : groups[bucket.Key.Layer])}{(bucket.Key.Decay ? "" : " (no decay)")}",
            });
        }
        var optimizer = new AdamW(paramGroups, new AdamWOptions { LearningRate = options.LearningRate, WeightDecay = options.WeightDecay });
        LrSchedule schedule = options.Schedule switch
        {
            LearningRateSchedule.Cosine => LrSchedule.Cosine(warmup, totalSteps),
            LearningRateSchedule.Constant => LrSchedule.Lambda(s => warmup > 0 && s < warmup ? (double)s / warmup : 1.0),
            _ => LrSchedule.LinearWarmupDecay(warmup, totalSteps),
        };
        var scheduler = new LrScheduler(optimizer, schedule);

        // L2-SP anchors: the backbone's starting (pretrained) values.
        Dictionary<Tensor, float[]>? anchors = null;
        if (options.L2SP > 0)
        {
            anchors = new Dictionary<Tensor, float[]>(ReferenceEqualityComparer.Instance);
            foreach (var (name, p) in named)
                if (GroupOf(name) >= 0 && !task.FixedParameters.Contains(name)) anchors[p] = p.ToArray();
        }

        var history = new List<EpochRecord>();
        double bestScore = double.NegativeInfinity, bestLoss = double.PositiveInfinity;
        int bestEpoch = 0, sinceBest = 0, startEpoch = 1, resumedFrom = 0;
        Dictionary<string, float[]>? bestState = null;
        var clock = Stopwatch.StartNew();
        double priorSeconds = 0;

        string? ckptPath = options.CheckpointDirectory is null ? null : Path.Combine(options.CheckpointDirectory, CheckpointFile);
        if (options.Resume && ckptPath is not null && File.Exists(ckptPath))
        {
            var resumed = LoadCheckpoint(ckptPath, model, optimizer, scheduler, anchors, out bestState);
            (startEpoch, bestScore, bestLoss, bestEpoch, sinceBest, priorSeconds) = (resumed.NextEpoch, resumed.BestScore, resumed.BestLoss, resumed.BestEpoch, resumed.SinceBest, resumed.Seconds);
            history.AddRange(resumed.History);
            resumedFrom = resumed.NextEpoch - 1;
        }

        bool cancelled = false, stoppedEarly = false;
        for (int epoch = startEpoch; epoch <= options.Epochs && !cancelled && !stoppedEarly; epoch++)
        {
            var epochClock = Stopwatch.StartNew();
            ApplyFreezing(model, groups, options.Freeze, epoch, GroupOf, task.FixedParameters);
            model.Train();
            // Dropout and shuffling draw from streams fixed by (seed, epoch), so a resumed run repeats exactly.
            int di = 0;
            foreach (var (_, m) in model.NamedModules())
                if (m is Dropout dropout) dropout.Rng = new Rng(Mix(options.Seed, epoch, ++di));
            task.BeginEpoch(epoch, new Rng(Mix(options.Seed, epoch, -1)));
            var batches = MakeBatches(task, n, options.BatchSize, new Rng(Mix(options.Seed, epoch, 0)));

            double lossSum = 0;
            int lossCount = 0, step = (epoch - 1) * stepsPerEpoch;
            for (int b = 0; b < batches.Count; b++)
            {
                if (cancellationToken.IsCancellationRequested) { cancelled = true; break; }
                bool stepNow = (b + 1) % options.GradientAccumulationSteps == 0 || b == batches.Count - 1;
                // One scope per batch: its activations and gradients go back to the buffer pool at the end (nothing
                // from inside is used after it), and the gradients are zeroed in place, so a steady-state step
                // allocates almost nothing.
                using (BufferPool.StepScope())
                {
                    var loss = task.Loss(batches[b]);
                    float lv = loss.Item();
                    if (!float.IsFinite(lv)) throw new InvalidOperationException($"The training loss became {lv} at epoch {epoch}, batch {b + 1}; lower the learning rate.");
                    lossSum += lv;
                    lossCount++;
                    (options.GradientAccumulationSteps > 1 ? Ops.MulScalar(loss, 1f / options.GradientAccumulationSteps) : loss).Backward();
                    if (stepNow)
                    {
                        if (anchors is not null) AddL2SPGradient(anchors, options.L2SP);
                        if (options.MaxGradNorm is float max) GradClip.ClipGradNorm(model.Parameters().Where(p => p.Grad is not null), max);
                        optimizer.Step();
                        scheduler.Step();
                        optimizer.ZeroGrad(setToNone: false);
                    }
                }
                if (!stepNow) continue;
                step++;
                if (progress is not null)
                {
                    double done = (double)step / totalSteps;
                    var elapsed = clock.Elapsed;
                    progress.Report(new TrainingProgress("train", epoch, options.Epochs, step - (epoch - 1) * stepsPerEpoch, stepsPerEpoch,
                        lossSum / lossCount, optimizer.Groups[^1].LearningRate, null, elapsed,
                        done > 0 ? TimeSpan.FromSeconds(elapsed.TotalSeconds * (1 - done) / done) : null));
                }
            }
            optimizer.ZeroGrad();
            if (cancelled && lossCount == 0) break;

            var eval = task.Validate(cancellationToken);
            var record = new EpochRecord(epoch, lossCount > 0 ? lossSum / lossCount : double.NaN, eval.Score, eval.Metrics, epochClock.Elapsed.TotalSeconds);
            history.Add(record);
            progress?.Report(new TrainingProgress("validate", epoch, options.Epochs, stepsPerEpoch, stepsPerEpoch, record.TrainLoss,
                optimizer.Groups[^1].LearningRate, eval.Metrics, clock.Elapsed, null));
            // Better score wins; an equal score with a lower loss also counts (a classifier stuck on one class
            // keeps the same F1 while it learns).
            bool improved = eval.Score > bestScore + options.EarlyStoppingMinDelta
                || (eval.Score >= bestScore && eval.Loss < bestLoss - options.EarlyStoppingMinDelta);
            if (improved || bestState is null)
            {
                bestScore = eval.Score;
                bestLoss = double.IsNaN(eval.Loss) ? double.PositiveInfinity : eval.Loss;
                bestEpoch = epoch;
                sinceBest = 0;
                bestState = Snapshot(model);
            }
            else if (++sinceBest >= (options.EarlyStoppingPatience ?? int.MaxValue))
            {
                stoppedEarly = true;
            }
            if (ckptPath is not null && !cancelled)
                SaveCheckpoint(ckptPath, model, optimizer, scheduler, anchors, bestState!, new ResumeState(epoch + 1, bestScore, bestLoss, bestEpoch, sinceBest, priorSeconds + clock.Elapsed.TotalSeconds, history));
        }

        if (bestState is not null) Restore(model, bestState);
        model.Eval();
        return new TrainingOutcome(bestEpoch, bestScore, history, stoppedEarly, cancelled, priorSeconds + clock.Elapsed.TotalSeconds, resumedFrom);
    }

    private static ulong Mix(int seed, int epoch, int stream) =>
        (ulong)(uint)seed * 0x9E3779B97F4A7C15UL ^ (ulong)(uint)epoch * 0xBF58476D1CE4E5B9UL ^ (ulong)(uint)stream * 0x94D049BB133111EBUL;

    private static List<IReadOnlyList<int>> MakeBatches(ITrainingTask task, int n, int batchSize, Rng rng)
    {
        var order = Enumerable.Range(0, n).ToArray();
        rng.Shuffle(order);
        if (task.LengthOf(0) is not null)
        {
            // Sort within windows of 50 batches by length (less padding), then shuffle the batches.
            int window = batchSize * 50;
            for (int s = 0; s < n; s += window)
            {
                int len = Math.Min(window, n - s);
                var seg = order.AsSpan(s, len).ToArray().OrderBy(i => task.LengthOf(i) ?? 0).ToArray();
                seg.CopyTo(order, s);
            }
        }
        var batches = new List<IReadOnlyList<int>>();
        for (int s = 0; s < n; s += batchSize) batches.Add(order[s..Math.Min(n, s + batchSize)]);
        var arr = batches.ToArray();
        rng.Shuffle(arr);
        return [.. arr];
    }

    private static void ApplyFreezing(Module model, IReadOnlyList<string> groups, FreezeStrategy freeze, int epoch, Func<string, int> groupOf, IReadOnlySet<string> fixedParameters)
    {
        foreach (var (name, p) in model.NamedParameters())
        {
            int g = groupOf(name);
            bool trainable = !fixedParameters.Contains(name) && (g < 0 || freeze switch
            {
                FreezeStrategy.Backbone => false,
                // Epoch 1: head only; each further epoch opens one more group from the top.
                FreezeStrategy.Gradual => g >= groups.Count - (epoch - 1),
                _ => true,
            });
            if (p.RequiresGrad != trainable)
            {
                p.RequiresGrad = trainable;
                if (!trainable) p.Grad = null;
            }
        }
    }

    private static void AddL2SPGradient(Dictionary<Tensor, float[]> anchors, float alpha)
    {
        foreach (var (p, w0) in anchors)
        {
            if (p.Grad is null) continue;
            var g = p.Grad.AsSpan();
            var w = p.AsSpan();
            for (int i = 0; i < g.Length; i++) g[i] += alpha * (w[i] - w0[i]);
        }
    }

    private static Dictionary<string, float[]> Snapshot(Module model) =>
        model.StateDict().Where(kv => kv.Value.DType == DType.Float32).ToDictionary(kv => kv.Key, kv => kv.Value.ToArray());

    private static void Restore(Module model, Dictionary<string, float[]> state)
    {
        foreach (var (name, t) in model.StateDict())
            if (state.TryGetValue(name, out var values)) values.AsSpan().CopyTo(t.AsSpan());
    }

    // Best loss is +infinity for tasks whose validation has no loss (NER) and metrics may be NaN: keep them as
    // named literals rather than failing to write the checkpoint.
    private static readonly System.Text.Json.JsonSerializerOptions StateJson = new()
    {
        NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    private sealed record ResumeState(int NextEpoch, double BestScore, double BestLoss, int BestEpoch, int SinceBest, double Seconds, IReadOnlyList<EpochRecord> History);

    private static void SaveCheckpoint(string path, Module model, Optimizer optimizer, LrScheduler scheduler,
        Dictionary<Tensor, float[]>? anchors, Dictionary<string, float[]> best, ResumeState state)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        var tensors = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var (name, t) in model.StateDict()) tensors["model." + name] = t.DType == DType.Float32 ? t : Ops.ToFloat(t);
        foreach (var (name, values) in best) tensors["best." + name] = Tensor.FromArray(values);
        foreach (var (key, values) in optimizer.StateDict()) tensors["optim." + key] = Tensor.FromArray(values);
        if (anchors is not null)
        {
            int i = 0;
            foreach (var (_, w0) in anchors) tensors[$"anchor.{i++}"] = Tensor.FromArray(w0);
        }
        var meta = new Dictionary<string, string>
        {
            ["format"] = "mlnetfinetune-checkpoint/1",
            ["state"] = System.Text.Json.JsonSerializer.Serialize(state, StateJson),
            ["scheduler_step"] = scheduler.StepCount.ToString(System.Globalization.CultureInfo.InvariantCulture),
        };
        SafeTensors.Save(path, tensors, meta);
    }

    private static ResumeState LoadCheckpoint(string path, Module model, Optimizer optimizer, LrScheduler scheduler,
        Dictionary<Tensor, float[]>? anchors, out Dictionary<string, float[]> best)
    {
        var tensors = SafeTensors.Load(path, out var meta);
        if (!meta.TryGetValue("format", out var format) || format != "mlnetfinetune-checkpoint/1")
            throw new InvalidDataException($"{path}: not a MlNetFineTune training checkpoint (format '{format}').");
        var own = model.StateDict();
        foreach (var (name, t) in own)
        {
            if (!tensors.TryGetValue("model." + name, out var saved))
                throw new InvalidDataException($"{path}: checkpoint lacks '{name}'; it was written for a different model.");
            if (!saved.Shape.SequenceEqual(t.Shape))
                throw new InvalidDataException($"{path}: '{name}' is [{string.Join(", ", saved.Shape)}] in the checkpoint but [{string.Join(", ", t.Shape)}] in the model.");
            Module.CopyValues(saved, t, name);
        }
        best = tensors.Where(kv => kv.Key.StartsWith("best.", StringComparison.Ordinal)).ToDictionary(kv => kv.Key[5..], kv => kv.Value.ToArray());
        optimizer.LoadStateDict(tensors.Where(kv => kv.Key.StartsWith("optim.", StringComparison.Ordinal)).ToDictionary(kv => kv.Key[6..], kv => kv.Value.ToArray()));
        scheduler.LoadState(int.Parse(meta["scheduler_step"], System.Globalization.CultureInfo.InvariantCulture));
        if (anchors is not null)
        {
            int i = 0;
            foreach (var key in anchors.Keys.ToList())
                if (tensors.TryGetValue($"anchor.{i++}", out var w0)) anchors[key] = w0.ToArray();
        }
        return System.Text.Json.JsonSerializer.Deserialize<ResumeState>(meta["state"], StateJson)
            ?? throw new InvalidDataException($"{path}: unreadable resume state.");
    }
}

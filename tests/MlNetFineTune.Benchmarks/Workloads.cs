using System.Diagnostics;
using MlNetFineTune.Models.Text;
using MlNetFineTune.Models.Vision;
using MlNetFineTune.Tensors;
using MlNetFineTune.Tensors.Cpu;
using MlNetFineTune.Tensors.Optim;

namespace MlNetFineTune.Benchmarks;

/// <summary>What a workload measured in our engine.</summary>
/// <param name="Ms">Median milliseconds per call (or, for memory workloads, peak MiB).</param>
/// <param name="Runs">Every timed run (ms per call), sorted.</param>
/// <param name="Reps">Calls per timed run.</param>
/// <param name="Phases">Mean ms per call of each phase (train steps: forward, backward, optimizer), or null.</param>
/// <param name="Note">Anything the reader should know (runs reduced, extra figures).</param>
internal sealed record Measurement(double Ms, double[] Runs, int Reps, IReadOnlyDictionary<string, double>? Phases = null, string? Note = null);

/// <summary>One side-by-side workload: its name (shared with torch_peer.py), our implementation, its target.</summary>
internal sealed class Workload
{
    public required string Name { get; init; }
    public required string Description { get; init; }
    /// <summary>The target as the issue words it (for the table).</summary>
    public required string Target { get; init; }
    /// <summary>Speedup the target asks for (torch/ours), null when no target.</summary>
    public double? MinSpeedup { get; init; }
    /// <summary>GFLOP/s the target asks for (GEMM), null when none.</summary>
    public double? MinGflops { get; init; }
    /// <summary>Floating-point operations per call (GEMM), for GFLOP/s.</summary>
    public double Flops { get; init; }
    /// <summary>"ms" for timings, "MiB" for the peak-memory workload (lower is better either way).</summary>
    public string Unit { get; init; } = "ms";
    /// <summary>A call takes a millisecond or less (GEMMs, one sentence): alternated with torch --short-rounds times.</summary>
    public bool Short { get; init; }
    public required Func<WorkloadOptions, Measurement> RunOurs { get; init; }
}

internal sealed record WorkloadOptions(int Threads, int Runs, int Warmup, double MinRunMs, string RepoRoot);

/// <summary>The workloads of issue 3, in our engine. Names and shapes match tests/MlNetFineTune.Benchmarks/torch_peer.py.</summary>
internal static class Workloads
{
    public const string MemoryWorkload = "bert-mini-train20-peak-rss";

    public static IReadOnlyList<Workload> All()
    {
        var list = new List<Workload>();
        // GEMM: m x n x k with op(A) op(B) (N = as stored, T = transposed), as the gemm suite labels them.
        foreach (int s in new[] { 128, 256, 512, 1024, 2048 })
            list.Add(Gemm($"gemm-{s}", s, s, s, false, false, $"[{s}x{s}]@[{s}x{s}]"));
        list.Add(Gemm("gemm-4096x1024x256-NN", 4096, 1024, 256, false, false, "[4096x256]@[256x1024] (FFN-in forward shape)"));
        list.Add(Gemm("gemm-4096x256x1024-NT", 4096, 256, 1024, false, true, "dX = dY[4096x1024] @ W[256x1024]^T"));
        list.Add(Gemm("gemm-256x1024x4096-TN", 256, 1024, 4096, true, false, "dW = X[4096x256]^T @ dY[4096x1024]"));
        list.Add(Gemm("gemm-4096x256x1024-NN", 4096, 256, 1024, false, false, "[4096x1024]@[1024x256] (FFN-out forward shape)"));
        list.Add(Gemm("gemm-4096x1024x256-NT", 4096, 1024, 256, false, true, "dX = dY[4096x256] @ W[1024x256]^T"));
        list.Add(Gemm("gemm-1024x256x4096-TN", 1024, 256, 4096, true, false, "dW = X[4096x1024]^T @ dY[4096x256]"));

        list.Add(new Workload
        {
            Name = "bert-mini-train-32x128",
            Description = "BERT-mini seq-cls train step, batch 32 x 128 tokens: forward, cross-entropy, backward, AdamW step",
            Target = "speedup >= 1.3", MinSpeedup = 1.3,
            RunOurs = o => BertTrain(o, 32, 128),
        });
        list.Add(new Workload
        {
            Name = "bert-mini-fwd-32x128",
            Description = "BERT-mini seq-cls forward, eval, no grad, batch 32 x 128 tokens",
            Target = "speedup >= 1.5", MinSpeedup = 1.5,
            RunOurs = o => BertForward(o, 32, 128),
        });
        list.Add(new Workload
        {
            Name = "bert-mini-latency-1x32",
            Description = "BERT-mini seq-cls forward, eval, no grad, one sentence of 32 tokens",
            Target = "speedup >= 3", MinSpeedup = 3, Short = true,
            RunOurs = o => BertForward(o, 1, 32),
        });
        list.Add(new Workload
        {
            Name = "resnet18-train-16x224",
            Description = "ResNet-18 train step (BN train mode, CE over 1000 classes, SGD momentum 0.9), batch 16 x 3x224x224",
            Target = "speedup >= 1.0", MinSpeedup = 1.0,
            RunOurs = o => ResNetTrain(o, 16, 224),
        });
        list.Add(new Workload
        {
            Name = "resnet18-train-64x64",
            Description = "ResNet-18 train step (BN train mode, CE over 1000 classes, SGD momentum 0.9), batch 64 x 3x64x64",
            Target = "speedup >= 1.0", MinSpeedup = 1.0,
            RunOurs = o => ResNetTrain(o, 64, 64),
        });
        list.Add(new Workload
        {
            Name = "mobilenetv2-fwd-32x224",
            Description = "MobileNetV2 features (to out_relu, global-average-pooled), eval, no grad, batch 32 x 3x224x224",
            Target = "speedup >= 1.0", MinSpeedup = 1.0,
            RunOurs = MobileNetForward,
        });
        list.Add(new Workload
        {
            Name = MemoryWorkload,
            Description = "peak resident memory (VmHWM / ru_maxrss) of a fresh process running 20 BERT-mini train steps at 32 x 128",
            Target = "ours <= torch", MinSpeedup = 1.0, Unit = "MiB",
            RunOurs = MemoryInChild,
        });
        return list;
    }

    // ---------------------------------------------------------------- timing

    /// <summary>
    /// Warm-up (at least <c>warmup</c> calls and 300 ms, but one call suffices when a call takes over a second),
    /// then <c>runs</c> timed runs of <c>reps</c> calls each (reps chosen so a run lasts at least MinRunMs),
    /// with a full GC before every run; returns the median ms per call. torch_peer.py does the same.
    /// </summary>
    public static Measurement Time(WorkloadOptions o, Action call, Func<IReadOnlyDictionary<string, double>>? phases = null,
        Action? resetPhases = null)
    {
        var sw = Stopwatch.StartNew();
        int warm = 0;
        while (true)
        {
            call();
            warm++;
            // No shortcut for slow calls: tiered JIT compilation runs a method's first calls unoptimised and
            // replaces it in the background, so a one-call warm-up would time half-compiled code (also in torch_peer.py).
            if (warm >= o.Warmup && sw.Elapsed.TotalMilliseconds >= 300) break;
        }
        double perCall = sw.Elapsed.TotalMilliseconds / warm;
        int reps = Math.Max(1, (int)Math.Ceiling(o.MinRunMs / perCall));
        var times = new double[o.Runs];
        resetPhases?.Invoke();
        for (int r = 0; r < o.Runs; r++)
        {
            FullGc();
            sw.Restart();
            for (int i = 0; i < reps; i++) call();
            times[r] = sw.Elapsed.TotalMilliseconds / reps;
        }
        Array.Sort(times);
        IReadOnlyDictionary<string, double>? ph = null;
        if (phases is not null)
        {
            var raw = phases();
            ph = raw.ToDictionary(kv => kv.Key, kv => kv.Value / (o.Runs * reps));
        }
        return new Measurement(Median(times), times, reps, ph, $"{warm} warm-up calls");
    }

    public static double Median(double[] sorted) =>
        sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : 0.5 * (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]);

    public static void FullGc()
    {
        GC.Collect(GC.MaxGeneration, GCCollectionMode.Forced, blocking: true, compacting: true);
        GC.WaitForPendingFinalizers();
        GC.Collect(GC.MaxGeneration, GCCollectionMode.Forced, blocking: true, compacting: true);
    }

    /// <summary>Accumulates wall time per phase of a step.</summary>
    private sealed class PhaseClock
    {
        private readonly Dictionary<string, double> _ms = new(StringComparer.Ordinal);
        private readonly Stopwatch _sw = new();
        private string? _current;

        public void Start(string phase)
        {
            Stop();
            _current = phase;
            _sw.Restart();
        }

        public void Stop()
        {
            if (_current is null) return;
            _ms[_current] = _ms.GetValueOrDefault(_current) + _sw.Elapsed.TotalMilliseconds;
            _current = null;
        }

        public IReadOnlyDictionary<string, double> Snapshot() => new Dictionary<string, double>(_ms);
        public void Reset() => _ms.Clear();
    }

    // ---------------------------------------------------------------- GEMM

    private static Workload Gemm(string name, int m, int n, int k, bool ta, bool tb, string note) => new()
    {
        Name = name,
        Description = $"fp32 GEMM m x n x k = {m} x {n} x {k}, op(A)op(B) = {(ta ? 'T' : 'N')}{(tb ? 'T' : 'N')}: {note}",
        Target = m >= 256 && n >= 256 && k >= 256 ? ">= 190 GFLOP/s and speedup >= 1.0" : "-",
        MinSpeedup = m >= 256 && n >= 256 && k >= 256 ? 1.0 : null,
        MinGflops = m >= 256 && n >= 256 && k >= 256 ? 190 : null,
        Flops = 2.0 * m * n * k,
        Short = true,
        RunOurs = o =>
        {
            var rng = new Random(42);
            var a = Fill(new float[(long)m * k], rng);
            var b = Fill(new float[(long)k * n], rng);
            var c = new float[(long)m * n];
            int lda = ta ? m : k, ldb = tb ? k : n;
            return Time(o, () => Tensors.Cpu.Gemm.Sgemm(ta, tb, m, n, k, a, 0, lda, b, 0, ldb, c, 0, n, false));
        },
    };

    private static float[] Fill(float[] x, Random rng)
    {
        for (int i = 0; i < x.Length; i++) x[i] = (float)(rng.NextDouble() * 2 - 1);
        return x;
    }

    // ---------------------------------------------------------------- BERT-mini

    /// <summary>BERT-mini: 4 layers, hidden 256, 4 heads, FFN 1024, vocab 30522, 512 positions, dropout 0.1.</summary>
    public static TransformerConfig BertMini() => new()
    {
        VocabSize = 30522, HiddenSize = 256, NumLayers = 4, NumHeads = 4, IntermediateSize = 1024,
        MaxPositions = 512, HiddenDropout = 0.1f, AttentionDropout = 0.1f, HiddenAct = "gelu", TypeVocabSize = 2,
        LayerNormEps = 1e-12f,
    };

    private static (Tensor Ids, Tensor Mask, Tensor Types, Tensor Labels) BertBatch(int batch, int seq, int vocab, Rng rng)
    {
        var ids = new long[batch * seq];
        for (int i = 0; i < ids.Length; i++) ids[i] = 1 + rng.NextInt(vocab - 1);
        var mask = new long[batch * seq];
        Array.Fill(mask, 1L);
        var labels = new long[batch];
        for (int i = 0; i < batch; i++) labels[i] = rng.NextInt(2);
        return (Tensor.FromArray(ids, batch, seq), Tensor.FromArray(mask, batch, seq), Tensor.FromArray(new long[batch * seq], batch, seq),
            Tensor.FromArray(labels, batch));
    }

    private static Measurement BertTrain(WorkloadOptions o, int batch, int seq)
    {
        var rng = new Rng(42);
        var cfg = BertMini();
        var model = new TransformerClassifier(cfg, TransformerHead.SequenceClassification, 2, rng);
        model.Train();
        var opt = new AdamW(model.Parameters(), learningRate: 1e-4);
        var (ids, mask, types, labels) = BertBatch(batch, seq, cfg.VocabSize, rng);
        var clock = new PhaseClock();
        void Step()
        {
            // As the library's training loop runs a step: its buffers back to the pool at the end, gradients zeroed
            // in place (the peer keeps zero_grad(set_to_none=True), PyTorch's faster option).
            using var scope = BufferPool.StepScope();
            clock.Start("forward");
            var logits = model.Forward(ids, mask, types);
            var loss = Ops.CrossEntropy(logits, labels);
            clock.Start("backward");
            loss.Backward();
            clock.Start("optimizer");
            opt.Step();
            opt.ZeroGrad(setToNone: false);
            clock.Stop();
        }
        return Time(o, Step, clock.Snapshot, clock.Reset);
    }

    /// <summary>20 train steps (the memory workload, also run in the child process).</summary>
    public static void BertTrainLoop(int steps, int batch, int seq, bool gcEachStep = false)
    {
        var rng = new Rng(42);
        var cfg = BertMini();
        var model = new TransformerClassifier(cfg, TransformerHead.SequenceClassification, 2, rng);
        model.Train();
        var opt = new AdamW(model.Parameters(), learningRate: 1e-4);
        var (ids, mask, types, labels) = BertBatch(batch, seq, cfg.VocabSize, rng);
        for (int s = 0; s < steps; s++)
        {
            using (BufferPool.StepScope())
            {
                var loss = Ops.CrossEntropy(model.Forward(ids, mask, types), labels);
                loss.Backward();
                opt.Step();
                opt.ZeroGrad(setToNone: false);
            }
            if (gcEachStep) FullGc();
        }
    }

    private static Measurement BertForward(WorkloadOptions o, int batch, int seq)
    {
        var rng = new Rng(42);
        var cfg = BertMini();
        var model = new TransformerClassifier(cfg, TransformerHead.SequenceClassification, 2, rng);
        model.Eval();
        var (ids, mask, types, _) = BertBatch(batch, seq, cfg.VocabSize, rng);
        return Time(o, () =>
        {
            using (Tensor.NoGrad()) _ = model.Forward(ids, mask, types);
        });
    }

    // ---------------------------------------------------------------- vision

    private static Measurement ResNetTrain(WorkloadOptions o, int batch, int size)
    {
        var rng = new Rng(42);
        var model = new ResNet(ResNetConfig.FromName("resnet18", 1000), rng);
        model.Train();
        var opt = new Sgd(model.Parameters(), 0.01, momentum: 0.9);
        var images = Tensor.RandN(rng, batch, 3, size, size);
        var y = new long[batch];
        for (int i = 0; i < batch; i++) y[i] = rng.NextInt(1000);
        var labels = Tensor.FromArray(y, batch);
        var clock = new PhaseClock();
        void Step()
        {
            using var scope = BufferPool.StepScope();
            clock.Start("forward");
            var loss = Ops.CrossEntropy(model.Forward(images), labels);
            clock.Start("backward");
            loss.Backward();
            clock.Start("optimizer");
            opt.Step();
            opt.ZeroGrad(setToNone: false);
            clock.Stop();
        }
        return Time(o, Step, clock.Snapshot, clock.Reset);
    }

    private static Measurement MobileNetForward(WorkloadOptions o)
    {
        string dir = Path.Combine(o.RepoRoot, "data", "models", "mobilenet_v2");
        if (!File.Exists(Path.Combine(dir, "model.json")))
            throw new SkipException($"{dir}/model.json not found (run from the repository)");
        var model = KerasModel.Load(dir);
        model.Eval();
        var images = Tensor.RandUniform(new Rng(42), 0f, 1f, 32, 3, 224, 224);
        return Time(o, () =>
        {
            using (Tensor.NoGrad()) _ = model.Features(images);
        });
    }

    // ---------------------------------------------------------------- peak memory

    /// <summary>Runs the 20-step loop in a fresh copy of this program and reads its VmHWM.</summary>
    private static Measurement MemoryInChild(WorkloadOptions o)
    {
        var psi = SelfStartInfo(["side-by-side", "--memory-child", "--threads", o.Threads.ToString()]);
        psi.RedirectStandardOutput = true;
        psi.RedirectStandardError = true;
        using var p = Process.Start(psi) ?? throw new InvalidOperationException("could not start the memory child");
        var stderr = p.StandardError.ReadToEndAsync();
        string stdout = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0) throw new InvalidOperationException($"memory child exited {p.ExitCode}: {stderr.Result.Trim()}");
        var kv = stdout.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries)
            .Select(t => t.Split('=', 2)).Where(t => t.Length == 2).ToDictionary(t => t[0], t => t[1]);
        double peak = double.Parse(kv["peak_rss_kb"]) / 1024.0;
        double baseline = double.Parse(kv["base_rss_kb"]) / 1024.0;
        double loop = double.Parse(kv["loop_ms"], System.Globalization.CultureInfo.InvariantCulture);
        return new Measurement(peak, [peak], 1, null,
            $"one fresh process; VmHWM; RSS before building the model {baseline:F0} MiB; 20 steps took {loop / 1000:F1} s; " +
            $"managed allocation {kv["alloc_mb_per_step"]} MiB per step, {kv["gc0"]} GCs ({kv["gc2"]} gen2) in 20 steps");
    }

    /// <summary>
    /// Entry of the child: <c>side-by-side --memory-child [--threads N] [--gc-each-step]</c>. --gc-each-step (a
    /// diagnostic, not used by the suite) forces a full GC after every step, which separates what the step keeps
    /// alive from garbage the GC has not yet collected.
    /// </summary>
    public static int MemoryChild(int threads, bool gcEachStep = false)
    {
        WorkerPool.SetThreads(threads);
        long baseKb = StatusKb("VmRSS");
        long alloc0 = GC.GetTotalAllocatedBytes(precise: true);
        int gen0 = GC.CollectionCount(0), gen2 = GC.CollectionCount(2);
        var sw = Stopwatch.StartNew();
        BertTrainLoop(20, 32, 128, gcEachStep);
        double loopMs = sw.Elapsed.TotalMilliseconds;
        long peakKb = StatusKb("VmHWM");
        if (peakKb <= 0) peakKb = Process.GetCurrentProcess().PeakWorkingSet64 / 1024;
        double allocMbPerStep = (GC.GetTotalAllocatedBytes(precise: true) - alloc0) / 20.0 / (1 << 20);
        Console.WriteLine(FormattableString.Invariant(
            $"peak_rss_kb={peakKb} base_rss_kb={baseKb} loop_ms={loopMs:F1} alloc_mb_per_step={allocMbPerStep:F0} gc0={GC.CollectionCount(0) - gen0} gc2={GC.CollectionCount(2) - gen2}"));
        return 0;
    }

    private static long StatusKb(string field)
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/self/status"))
                if (line.StartsWith(field + ":", StringComparison.Ordinal))
                    return long.Parse(line[(field.Length + 1)..].Trim().Split(' ')[0]);
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        return -1;
    }

    /// <summary>A ProcessStartInfo that runs this program again (apphost, or dotnet + dll).</summary>
    private static ProcessStartInfo SelfStartInfo(string[] args)
    {
        string exe = Environment.ProcessPath ?? "dotnet";
        var psi = new ProcessStartInfo(exe) { UseShellExecute = false };
        if (Path.GetFileNameWithoutExtension(exe).Equals("dotnet", StringComparison.OrdinalIgnoreCase))
            psi.ArgumentList.Add(typeof(Workloads).Assembly.Location);
        foreach (var a in args) psi.ArgumentList.Add(a);
        return psi;
    }
}

/// <summary>A workload that cannot run here (missing data); the reason is printed.</summary>
internal sealed class SkipException(string message) : Exception(message);

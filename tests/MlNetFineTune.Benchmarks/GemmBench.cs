using System.Diagnostics;
using MlNetFineTune.Tensors.Cpu;

namespace MlNetFineTune.Benchmarks;

/// <summary>
/// GEMM throughput. Options: --threads N (default 2), --simd scalar|256|512|all (default: the hardware's
/// best), --runs N (timed runs per shape, default 7; the median is reported), --filter TEXT (only shapes
/// whose label contains TEXT). Shapes are printed as m x n x k with op(A) op(B) (N = as stored, T = transposed).
/// </summary>
internal static class GemmBench
{
    private sealed record Shape(int M, int N, int K, bool TransA, bool TransB, string Note)
    {
        public string Label => $"{M}x{N}x{K} {(TransA ? 'T' : 'N')}{(TransB ? 'T' : 'N')}";
    }

    public static int Run(string[] args)
    {
        int threads = 2, runs = 7;
        string simd = "best";
        string? filter = null;
        for (int i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--threads": threads = int.Parse(args[++i]); break;
                case "--simd": simd = args[++i].ToLowerInvariant(); break;
                case "--runs": runs = Math.Max(1, int.Parse(args[++i])); break;
                case "--filter": filter = args[++i]; break;
                default:
                    Console.Error.WriteLine($"gemm: unknown option '{args[i]}' (--threads N, --simd scalar|256|512|all, --runs N, --filter TEXT)");
                    return 2;
            }
        }

        var levels = simd switch
        {
            "best" => new[] { Simd.Hardware },
            "all" => new[] { SimdLevel.Vector512, SimdLevel.Vector256, SimdLevel.Scalar }.Where(l => l <= Simd.Hardware).ToArray(),
            "scalar" or "0" => [SimdLevel.Scalar],
            "256" or "vector256" => [SimdLevel.Vector256],
            "512" or "vector512" => [SimdLevel.Vector512],
            _ => throw new ArgumentException($"--simd {simd}?"),
        };

        var shapes = new List<Shape>();
        foreach (int s in new[] { 128, 256, 512, 1024, 2048 }) shapes.Add(new(s, s, s, false, false, "square"));
        // BERT-base style linear layers, tokens = 4096: Y = X W and the two backward products.
        shapes.Add(new(4096, 1024, 256, false, false, "[4096x256]@[256x1024] fwd"));
        shapes.Add(new(4096, 256, 1024, false, true, "dX = dY[4096x1024] @ W[256x1024]^T"));
        shapes.Add(new(256, 1024, 4096, true, false, "dW = X[4096x256]^T @ dY[4096x1024]"));
        shapes.Add(new(4096, 256, 1024, false, false, "[4096x1024]@[1024x256] fwd"));
        shapes.Add(new(4096, 1024, 256, false, true, "dX = dY[4096x256] @ W[1024x256]^T"));
        shapes.Add(new(1024, 256, 4096, true, false, "dW = X[4096x1024]^T @ dY[4096x256]"));

        WorkerPool.SetThreads(threads);
        Console.WriteLine($"gemm suite: threads={WorkerPool.Threads} hardware={Simd.Hardware} cores={Environment.ProcessorCount} loadavg={LoadAvg()}");
        foreach (var level in levels)
        {
            using var scope = Simd.Force(level);
            Console.WriteLine($"# simd={Simd.Level} (shapes are m x n x k, op(A)op(B))");
            foreach (var shape in shapes)
            {
                if (filter != null && !shape.Label.Contains(filter, StringComparison.OrdinalIgnoreCase)) continue;
                Measure(shape, runs);
            }
        }
        Console.WriteLine($"loadavg at end: {LoadAvg()}");
        return 0;
    }

    private static void Measure(Shape s, int runs)
    {
        var rng = new Random(42);
        var a = Fill(new float[(long)s.M * s.K], rng);
        var b = Fill(new float[(long)s.K * s.N], rng);
        var c = new float[(long)s.M * s.N];
        int lda = s.TransA ? s.M : s.K, ldb = s.TransB ? s.K : s.N;
        void Op() => Gemm.Sgemm(s.TransA, s.TransB, s.M, s.N, s.K, a, 0, lda, b, 0, ldb, c, 0, s.N, false);

        // Warm-up (JIT tiers, pack buffers, worker threads), and pick a repeat count so a run is >= ~30 ms.
        var sw = Stopwatch.StartNew();
        int warm = 0;
        while (warm < 3 || sw.Elapsed.TotalMilliseconds < 300) { Op(); warm++; }
        double perOp = sw.Elapsed.TotalMilliseconds / warm;
        int reps = Math.Max(1, (int)Math.Ceiling(30 / perOp));

        var times = new double[runs];
        for (int r = 0; r < runs; r++)
        {
            sw.Restart();
            for (int i = 0; i < reps; i++) Op();
            times[r] = sw.Elapsed.TotalMilliseconds / reps;
        }
        Array.Sort(times);
        double ms = times[runs / 2];
        double gflops = 2.0 * s.M * s.N * s.K / (ms * 1e6);
        Console.WriteLine($"gemm {s.Label,-18} ms={ms,9:F3} gflops={gflops,7:F1}  min_ms={times[0]:F3} max_ms={times[^1]:F3}  ({s.Note})");
    }

    private static float[] Fill(float[] x, Random rng)
    {
        for (int i = 0; i < x.Length; i++) x[i] = (float)(rng.NextDouble() * 2 - 1);
        return x;
    }

    private static string LoadAvg()
    {
        try { return string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3)); }
        catch (IOException) { return "?"; }
        catch (UnauthorizedAccessException) { return "?"; }
    }
}

using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using MlNetFineTune.Tensors.Cpu;

namespace MlNetFineTune.Benchmarks;

/// <summary>
/// Issue 3's side-by-side harness: each workload in our engine and, when Debian's <c>/usr/bin/python3</c> has
/// torch with OpenBLAS or MKL, the same workload in <c>torch_peer.py</c> (a subprocess per workload, so ours and
/// torch run close together in time), one line per workload:
/// <c>bench NAME ours_ms=X torch_ms=Y speedup=Y/X</c> (speedup &gt; 1: we are faster).
/// </summary>
/// <remarks>
/// Options: --threads N (default 2), --json FILE, --only NAME[,NAME...] (exact names, or prefixes ending at a '-': gemm, bert-mini, resnet18),
/// --runs N (timed runs, default 5, the median is reported), --rounds N (default 1: alternate ours and torch N times per
/// workload and report the medians over all rounds' runs, so a slow spell on a shared machine hits both sides), --short-rounds N
/// (older name --gemm-rounds; default: --rounds; the short workloads, a millisecond or less per call (the GEMMs and the
/// one-sentence latency), alternate at least N times: on a shared VM a slow spell of a second or two can take a whole
/// round of one side), --warmup N (warm-up calls before timing, default 3), --min-run-ms X (calls per
/// timed run are repeated until a run lasts this long, default 30), --python PATH (default /usr/bin/python3),
/// --torch-env KEY=VALUE (extra environment for the torch peer, repeatable; e.g. OMP_WAIT_POLICY=PASSIVE, which
/// keeps OpenMP from spin-waiting and is what torch needs on a machine shared with other work), --torch-alt-env
/// KEY=VALUE (repeatable: also run the peer a second time per workload with this extra environment, printed as
/// torch_alt_ms / speedup_alt / met_alt after the main fields), --no-torch, --list.
/// </remarks>
public static class SideBySideSuite
{
    private const string DefaultPython = "/usr/bin/python3";

    public static int Run(string[] args)
    {
        int threads = 2, runs = 5, warmup = 3, rounds = 1, shortRounds = 0;
        double minRunMs = 30;
        string? jsonPath = null, python = DefaultPython, peer = null;
        string[]? only = null;
        bool noTorch = false, list = false, memoryChild = false, gcEachStep = false;
        var torchEnv = new Dictionary<string, string>(StringComparer.Ordinal);
        var torchAltEnv = new Dictionary<string, string>(StringComparer.Ordinal);
        for (int i = 0; i < args.Length; i++)
        {
            string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"side-by-side: {args[i]} needs a value");
            switch (args[i])
            {
                case "--threads": threads = int.Parse(Next(), CultureInfo.InvariantCulture); break;
                case "--json": jsonPath = Next(); break;
                case "--only": only = Next().Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries); break;
                case "--runs": runs = int.Parse(Next(), CultureInfo.InvariantCulture); break;
                case "--rounds": rounds = Math.Max(1, int.Parse(Next(), CultureInfo.InvariantCulture)); break;
                case "--short-rounds" or "--gemm-rounds": shortRounds = Math.Max(1, int.Parse(Next(), CultureInfo.InvariantCulture)); break;
                case "--warmup": warmup = Math.Max(1, int.Parse(Next(), CultureInfo.InvariantCulture)); break;
                case "--min-run-ms": minRunMs = double.Parse(Next(), CultureInfo.InvariantCulture); break;
                case "--python": python = Next(); break;
                case "--peer": peer = Next(); break;
                case "--no-torch": noTorch = true; break;
                case "--torch-env":
                case "--torch-alt-env":
                    {
                        string opt = args[i];
                        var kv = Next().Split('=', 2);
                        if (kv.Length != 2 || kv[0].Length == 0) throw new ArgumentException($"side-by-side: {opt} needs KEY=VALUE");
                        (opt == "--torch-env" ? torchEnv : torchAltEnv)[kv[0]] = kv[1];
                        break;
                    }
                case "--list": list = true; break;
                case "--memory-child": memoryChild = true; break;
                case "--gc-each-step": gcEachStep = true; break;
                default:
                    Console.Error.WriteLine($"side-by-side: unknown option '{args[i]}' (--threads N, --json FILE, --only NAME,..., --runs N, --rounds N, --short-rounds N, --warmup N, --min-run-ms X, --python PATH, --peer FILE, --torch-env KEY=VALUE, --torch-alt-env KEY=VALUE, --no-torch, --list)");
                    return 2;
            }
        }
        if (memoryChild) return Workloads.MemoryChild(threads, gcEachStep);
        if (runs < 5) Console.WriteLine($"# note: --runs {runs} is below the issue's minimum of 5 timed runs");
        runs = Math.Max(1, runs);

        var all = Workloads.All();
        if (list)
        {
            foreach (var w in all) Console.WriteLine($"{w.Name,-28} {w.Description}");
            return 0;
        }
        var selected = all.Where(w => only is null || only.Any(o =>
            w.Name.Equals(o, StringComparison.OrdinalIgnoreCase) || w.Name.StartsWith(o.TrimEnd('-') + "-", StringComparison.OrdinalIgnoreCase))).ToList();
        if (selected.Count == 0)
        {
            Console.Error.WriteLine($"side-by-side: --only matched no workload; names: {string.Join(", ", all.Select(w => w.Name))}");
            return 2;
        }

        string repoRoot = FindRepoRoot() ?? Directory.GetCurrentDirectory();
        peer ??= Path.Combine(repoRoot, "tests", "MlNetFineTune.Benchmarks", "torch_peer.py");
        WorkerPool.SetThreads(threads);
        var options = new WorkloadOptions(threads, runs, warmup, minRunMs, repoRoot);
        TorchPeer.ExtraEnvironment = torchEnv;
        TorchPeer.AltEnvironment = torchAltEnv.Count == 0 ? null : torchAltEnv;

        string cpu = CpuModel();
        string loadStart = LoadAvg();
        Console.WriteLine($"# side-by-side: threads={threads} runs={runs} (median) rounds={rounds} short_rounds={Math.Max(rounds, shortRounds)} warmup>={warmup} min_run_ms={minRunMs} simd={Simd.Hardware}");
        Console.WriteLine($"# machine: {cpu}, {Environment.ProcessorCount} logical CPUs; loadavg at start {loadStart}; .NET {Environment.Version}, {(System.Runtime.GCSettings.IsServerGC ? "server" : "workstation")} GC");

        // The cores' fp32 FMA peak here and now (see MachineProbe): GEMM lines report their share of it.
        var probe = MachineProbe.Measure(threads, 1.0);
        if (probe is { } pk)
            Console.WriteLine($"# fma peak ({(MachineProbe.Wide ? "Vector512" : "Vector256")}), {threads} threads: register-only best {pk.Registers.Best:F0} median {pk.Registers.Median:F0} GFLOP/s; " +
                $"with L1 loads best {pk.L1Loads.Best:F0} median {pk.L1Loads.Median:F0} GFLOP/s (the ceiling of any GEMM here)");
        else
            Console.WriteLine("# fma peak: not measured (no AVX + FMA)");
        PeakGflops = probe?.Registers.Best;

        var torch = noTorch ? new PeerInfo(false, "--no-torch given", null, null) : TorchPeer.Check(python!, peer, threads);
        if (torch.Available)
            Console.WriteLine($"# torch: {torch.Version}; BLAS: {torch.Blas}; peer {Path.GetRelativePath(repoRoot, peer)} via {python}" +
                (torchEnv.Count == 0 ? "" : $"; extra env {string.Join(' ', torchEnv.Select(kv => $"{kv.Key}={kv.Value}"))}") +
                (torchAltEnv.Count == 0 ? "" : $"; alt run (torch_alt) with {string.Join(' ', torchAltEnv.Select(kv => $"{kv.Key}={kv.Value}"))}"));
        else
            Console.WriteLine($"# torch: not compared ({torch.Reason}); printing ours only");

        var results = new JsonArray();
        foreach (var w in selected)
        {
            var row = RunOne(w, options, torch, python!, peer, w.Short ? Math.Max(rounds, shortRounds) : rounds);
            results.Add(row);
        }
        string loadEnd = LoadAvg();
        Console.WriteLine($"# loadavg at end {loadEnd}");

        if (jsonPath is not null)
        {
            var doc = new JsonObject
            {
                ["suite"] = "side-by-side",
                ["threads"] = threads,
                ["runs"] = runs,
                ["rounds"] = rounds,
                ["short_rounds"] = Math.Max(rounds, shortRounds),
                ["warmup"] = warmup,
                ["min_run_ms"] = minRunMs,
                ["machine"] = new JsonObject
                {
                    ["cpu"] = cpu,
                    ["logical_cpus"] = Environment.ProcessorCount,
                    ["simd"] = Simd.Hardware.ToString(),
                    ["loadavg_start"] = loadStart,
                    ["loadavg_end"] = loadEnd,
                    ["dotnet"] = Environment.Version.ToString(),
                    ["fma_peak_gflops"] = probe is { } p1 ? new JsonObject
                    {
                        ["vector"] = MachineProbe.Wide ? "Vector512" : "Vector256",
                        ["register_only_best"] = Num(p1.Registers.Best),
                        ["register_only_median"] = Num(p1.Registers.Median),
                        ["l1_loads_best"] = Num(p1.L1Loads.Best),
                        ["l1_loads_median"] = Num(p1.L1Loads.Median),
                    } : null,
                },
                ["torch"] = new JsonObject
                {
                    ["available"] = torch.Available,
                    ["reason"] = torch.Reason,
                    ["version"] = torch.Version,
                    ["blas"] = torch.Blas,
                    ["extra_env"] = new JsonObject(torchEnv.Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)JsonValue.Create(kv.Value)))),
                    ["alt_env"] = new JsonObject(torchAltEnv.Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)JsonValue.Create(kv.Value)))),
                },
                ["results"] = results,
            };
            File.WriteAllText(jsonPath, doc.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
            Console.WriteLine($"# wrote {jsonPath}");
        }
        return 0;
    }

    private static JsonObject RunOne(Workload w, WorkloadOptions o, PeerInfo torch, string python, string peer, int rounds)
    {
        var row = new JsonObject { ["name"] = w.Name, ["description"] = w.Description, ["unit"] = w.Unit, ["target"] = w.Target };
        bool mem = w.Unit != "ms";
        string u = mem ? "mb" : "ms";
        Measurement? ours = null;
        try
        {
            ours = w.RunOurs(o);
        }
        catch (SkipException e)
        {
            Console.WriteLine($"bench {w.Name} ours_{u}=n/a torch_{u}=n/a (skipped: {e.Message})");
            row["skipped"] = e.Message;
            return row;
        }
        finally
        {
            Workloads.FullGc();
        }

        PeerResult? theirs = null;
        string? torchWhy = torch.Available ? null : torch.Reason;
        if (torch.Available)
        {
            try { theirs = TorchPeer.Run(python, peer, w.Name, o, TorchPeer.ExtraEnvironment); }
            catch (Exception e) when (e is InvalidOperationException or JsonException or IOException)
            {
                torchWhy = "peer failed: " + e.Message;
            }
        }
        // Further rounds (timings only): ours again, then torch again; the medians are taken over every round's runs.
        string? firstNote = ours.Note;
        for (int round = 1; round < rounds && !mem; round++)
        {
            var again = w.RunOurs(o);
            Workloads.FullGc();
            var all = ours.Runs.Concat(again.Runs).Order().ToArray();
            ours = ours with { Ms = Workloads.Median(all), Runs = all, Note = $"{firstNote}; {round + 1} rounds" };
            if (theirs is null) continue;
            try
            {
                var more = TorchPeer.Run(python, peer, w.Name, o, TorchPeer.ExtraEnvironment);
                var tAll = theirs.Runs.Concat(more.Runs).Order().ToArray();
                theirs = theirs with { Value = Workloads.Median(tAll), Runs = tAll };
            }
            catch (Exception e) when (e is InvalidOperationException or JsonException or IOException)
            {
                torchWhy = "peer failed: " + e.Message;
                theirs = null;
            }
        }
        PeerResult? alt = null;
        string? altWhy = null;
        if (torch.Available && TorchPeer.AltEnvironment is { } altEnv)
        {
            // The alternative environment is the extra one with the --torch-alt-env keys added or replaced.
            var env = new Dictionary<string, string>(TorchPeer.ExtraEnvironment);
            foreach (var kv in altEnv) env[kv.Key] = kv.Value;
            try { alt = TorchPeer.Run(python, peer, w.Name, o, env); }
            catch (Exception e) when (e is InvalidOperationException or JsonException or IOException)
            {
                altWhy = "peer failed: " + e.Message;
            }
        }

        string F(double v) => v.ToString(mem ? "F1" : v < 10 ? "F3" : "F1", CultureInfo.InvariantCulture);
        var line = new System.Text.StringBuilder($"bench {w.Name} ours_{u}={F(ours.Ms)}");
        row["ours"] = Num(ours.Ms);
        row["ours_runs"] = new JsonArray(ours.Runs.Select(r => (JsonNode)Num(r)!).ToArray());
        row["ours_reps_per_run"] = ours.Reps;
        double? speedup = null;
        if (theirs is not null)
        {
            speedup = theirs.Value / ours.Ms;
            line.Append($" torch_{u}={F(theirs.Value)} {(mem ? "ratio" : "speedup")}={speedup.Value.ToString("F2", CultureInfo.InvariantCulture)}");
            row["torch"] = Num(theirs.Value);
            row["torch_runs"] = new JsonArray(theirs.Runs.Select(r => (JsonNode)Num(r)!).ToArray());
            row["speedup"] = Num(speedup.Value);
        }
        else
        {
            line.Append($" torch_{u}=n/a ({torchWhy})");
        }
        double? gflops = null, torchGflops = null;
        if (w.Flops > 0)
        {
            gflops = w.Flops / (ours.Ms * 1e6);
            line.Append($" ours_gflops={gflops.Value.ToString("F1", CultureInfo.InvariantCulture)}");
            row["ours_gflops"] = Num(gflops.Value);
            if (PeakGflops is { } peak)
            {
                line.Append($" ours_pct_of_fma_peak={(100 * gflops.Value / peak).ToString("F0", CultureInfo.InvariantCulture)}");
                row["ours_pct_of_fma_peak"] = Num(100 * gflops.Value / peak);
            }
            if (theirs is not null)
            {
                torchGflops = w.Flops / (theirs.Value * 1e6);
                line.Append($" torch_gflops={torchGflops.Value.ToString("F1", CultureInfo.InvariantCulture)}");
                row["torch_gflops"] = Num(torchGflops.Value);
            }
        }
        bool? met = null;
        if (w.MinSpeedup is not null || w.MinGflops is not null)
        {
            bool gOk = w.MinGflops is null || gflops >= w.MinGflops;
            met = speedup is null ? (gOk ? null : false) : gOk && speedup >= w.MinSpeedup;
            line.Append($" target=\"{w.Target}\" met={(met is null ? "unknown" : met.Value ? "yes" : "no")}");
        }
        row["met"] = met is null ? null : JsonValue.Create(met.Value);
        if (TorchPeer.AltEnvironment is not null && torch.Available)
        {
            if (alt is null) line.Append($" torch_alt_{u}=n/a ({altWhy})");
            else
            {
                double sp = alt.Value / ours.Ms;
                line.Append($" torch_alt_{u}={F(alt.Value)} {(mem ? "ratio" : "speedup")}_alt={sp.ToString("F2", CultureInfo.InvariantCulture)}");
                row["torch_alt"] = Num(alt.Value);
                row["torch_alt_runs"] = new JsonArray(alt.Runs.Select(r => (JsonNode)Num(r)!).ToArray());
                row["speedup_alt"] = Num(sp);
                if (w.Flops > 0)
                {
                    double g = w.Flops / (alt.Value * 1e6);
                    line.Append($" torch_alt_gflops={g.ToString("F1", CultureInfo.InvariantCulture)}");
                    row["torch_alt_gflops"] = Num(g);
                }
                if (w.MinSpeedup is not null || w.MinGflops is not null)
                {
                    bool metAlt = (w.MinGflops is null || gflops >= w.MinGflops) && sp >= w.MinSpeedup;
                    line.Append($" met_alt={(metAlt ? "yes" : "no")}");
                    row["met_alt"] = metAlt;
                }
            }
        }
        Console.WriteLine(line.ToString());

        if (ours.Phases is not null)
        {
            Console.WriteLine($"#   ours  per step: {Phases(ours.Phases)}");
            row["ours_phases_ms"] = PhasesJson(ours.Phases);
        }
        if (theirs?.Phases is not null)
        {
            Console.WriteLine($"#   torch per step: {Phases(theirs.Phases)}");
            row["torch_phases_ms"] = PhasesJson(theirs.Phases);
        }
        if (alt?.Phases is not null)
        {
            Console.WriteLine($"#   torch_alt per step: {Phases(alt.Phases)}");
            row["torch_alt_phases_ms"] = PhasesJson(alt.Phases);
        }
        var notes = new List<string>();
        if (ours.Note is not null) notes.Add("ours: " + ours.Note);
        if (theirs?.Note is not null) notes.Add("torch: " + theirs.Note);
        if (alt?.Note is not null && alt.Note != theirs?.Note) notes.Add("torch_alt: " + alt.Note);
        if (!mem) notes.Add($"runs x calls: ours {ours.Runs.Length} x {ours.Reps}" + (theirs is null ? "" : $", torch {theirs.Runs.Length} x {theirs.Reps}"));
        foreach (var n in notes) Console.WriteLine($"#   {n}");
        row["notes"] = new JsonArray(notes.Select(n => (JsonNode)JsonValue.Create(n)!).ToArray());
        return row;
    }

    /// <summary>The register-only FMA peak measured at the start (best chunk, all threads), or null when not measured.</summary>
    private static double? PeakGflops;

    private static JsonValue? Num(double v) => double.IsFinite(v) ? JsonValue.Create(Math.Round(v, 4)) : null;

    private static string Phases(IReadOnlyDictionary<string, double> p) =>
        string.Join(" ", p.Select(kv => $"{kv.Key}={kv.Value.ToString("F1", CultureInfo.InvariantCulture)}ms"));

    private static JsonObject PhasesJson(IReadOnlyDictionary<string, double> p)
    {
        var o = new JsonObject();
        foreach (var kv in p) o[kv.Key] = Num(kv.Value);
        return o;
    }

    private static string? FindRepoRoot()
    {
        foreach (var start in new[] { Directory.GetCurrentDirectory(), AppContext.BaseDirectory })
        {
            for (var d = new DirectoryInfo(start); d is not null; d = d.Parent)
                if (File.Exists(Path.Combine(d.FullName, "MlNetFineTune.sln"))) return d.FullName;
        }
        return null;
    }

    internal static string LoadAvg()
    {
        try { return string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3)); }
        catch (IOException) { return "?"; }
        catch (UnauthorizedAccessException) { return "?"; }
    }

    private static string CpuModel()
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/cpuinfo"))
                if (line.StartsWith("model name", StringComparison.Ordinal)) return line[(line.IndexOf(':') + 1)..].Trim();
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        return System.Runtime.InteropServices.RuntimeInformation.ProcessArchitecture.ToString();
    }
}

internal sealed record PeerInfo(bool Available, string? Reason, string? Version, string? Blas);

internal sealed record PeerResult(double Value, double[] Runs, int Reps, IReadOnlyDictionary<string, double>? Phases, string? Note);

/// <summary>Runs torch_peer.py: <c>--check</c> once, then one subprocess per workload.</summary>
internal static class TorchPeer
{
    /// <summary>Extra environment for the peer (--torch-env).</summary>
    public static IReadOnlyDictionary<string, string> ExtraEnvironment { get; set; } = new Dictionary<string, string>();

    /// <summary>Environment of the second (alt) peer run per workload (--torch-alt-env), null for none.</summary>
    public static IReadOnlyDictionary<string, string>? AltEnvironment { get; set; }

    public static PeerInfo Check(string python, string peer, int threads)
    {
        if (!File.Exists(python)) return new PeerInfo(false, $"{python} not found", null, null);
        if (!File.Exists(peer)) return new PeerInfo(false, $"{peer} not found", null, null);
        JsonObject doc;
        try { doc = Invoke(python, peer, threads, ExtraEnvironment, ["--check"], TimeSpan.FromMinutes(2)); }
        catch (Exception e) when (e is InvalidOperationException or JsonException or IOException or System.ComponentModel.Win32Exception)
        {
            return new PeerInfo(false, e.Message, null, null);
        }
        bool ok = doc["ok"]?.GetValue<bool>() ?? false;
        return new PeerInfo(ok, doc["reason"]?.GetValue<string>(), doc["torch"]?.GetValue<string>(), doc["blas"]?.GetValue<string>());
    }

    public static PeerResult Run(string python, string peer, string workload, WorkloadOptions o, IReadOnlyDictionary<string, string> env)
    {
        var doc = Invoke(python, peer, o.Threads, env, [
            "--only", workload, "--runs", o.Runs.ToString(CultureInfo.InvariantCulture),
            "--warmup", o.Warmup.ToString(CultureInfo.InvariantCulture),
            "--min-run-ms", o.MinRunMs.ToString(CultureInfo.InvariantCulture)], TimeSpan.FromMinutes(15));
        if (!(doc["ok"]?.GetValue<bool>() ?? false))
            throw new InvalidOperationException(doc["reason"]?.GetValue<string>() ?? "peer reported failure");
        var r = doc["results"]?[workload] as JsonObject ?? throw new InvalidOperationException($"peer returned no result for {workload}");
        if (r["error"] is JsonNode err) throw new InvalidOperationException(err.GetValue<string>());
        double value = r["ms"]?.GetValue<double>() ?? r["peak_rss_mb"]?.GetValue<double>()
            ?? throw new InvalidOperationException($"peer result for {workload} has neither ms nor peak_rss_mb");
        var runs = (r["runs"] as JsonArray)?.Select(x => x!.GetValue<double>()).ToArray() ?? [value];
        int reps = r["reps"]?.GetValue<int>() ?? 1;
        Dictionary<string, double>? phases = null;
        if (r["phases"] is JsonObject ph) phases = ph.ToDictionary(kv => kv.Key, kv => kv.Value!.GetValue<double>());
        return new PeerResult(value, runs, reps, phases, r["note"]?.GetValue<string>());
    }

    private static JsonObject Invoke(string python, string peer, int threads, IReadOnlyDictionary<string, string> env, string[] args, TimeSpan timeout)
    {
        var psi = new ProcessStartInfo(python)
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        psi.ArgumentList.Add(peer);
        psi.ArgumentList.Add("--threads");
        psi.ArgumentList.Add(threads.ToString(CultureInfo.InvariantCulture));
        foreach (var a in args) psi.ArgumentList.Add(a);
        // Same thread count everywhere torch or its BLAS might look (OpenBLAS-openmp reads OMP_NUM_THREADS at load).
        string t = threads.ToString(CultureInfo.InvariantCulture);
        psi.Environment["OMP_NUM_THREADS"] = t;
        psi.Environment["OPENBLAS_NUM_THREADS"] = t;
        psi.Environment["MKL_NUM_THREADS"] = t;
        psi.Environment.Remove("PYTHONPATH");
        psi.Environment.Remove("PYTHONHOME");
        foreach (var kv in env) psi.Environment[kv.Key] = kv.Value;
        using var p = Process.Start(psi) ?? throw new InvalidOperationException($"could not start {python}");
        var stderr = p.StandardError.ReadToEndAsync();
        var stdout = p.StandardOutput.ReadToEndAsync();
        if (!p.WaitForExit(timeout))
        {
            p.Kill(entireProcessTree: true);
            throw new InvalidOperationException($"torch_peer.py timed out after {timeout.TotalMinutes:F0} min");
        }
        p.WaitForExit();
        string output = stdout.Result;
        // The peer prints exactly one JSON object as its last stdout line.
        var last = output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).LastOrDefault(l => l.StartsWith('{'));
        if (last is null)
        {
            string err = stderr.Result.Trim();
            if (err.Length > 600) err = "..." + err[^600..];
            throw new InvalidOperationException($"torch_peer.py exited {p.ExitCode} without a result: {err}");
        }
        return JsonNode.Parse(last) as JsonObject ?? throw new InvalidOperationException("torch_peer.py printed a non-object");
    }
}

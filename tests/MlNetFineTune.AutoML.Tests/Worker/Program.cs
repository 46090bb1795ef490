using System.Globalization;
using MlNetFineTune.AutoML;

// usage: worker STORAGE STUDY MAX_TRIALS SEED TUNER PRUNER EPOCHS MS_PER_EPOCH EVENT_LOG [STALE_S] [HEARTBEAT_S]
if (args.Length < 9)
{
    Console.Error.WriteLine("usage: worker STORAGE STUDY MAX_TRIALS SEED TUNER PRUNER EPOCHS MS_PER_EPOCH EVENT_LOG [STALE_S] [HEARTBEAT_S]");
    return 2;
}
var ci = CultureInfo.InvariantCulture;
var storage = StudyStorage.Open(args[0]);
int seed = int.Parse(args[3], ci);
ITuner tuner = args[4] switch { "grid" => new GridTuner(), "random" => new RandomTuner(seed), _ => new TpeTuner(seed) };
IPruner pruner = args[5] switch { "asha" => new AshaPruner(), "median" => new MedianPruner(), _ => new NoPruner() };
var options = new SweepOptions
{
    MaxTrials = int.Parse(args[2], ci),
    StaleAfter = TimeSpan.FromSeconds(args.Length > 9 ? double.Parse(args[9], ci) : 3),
    HeartbeatInterval = TimeSpan.FromSeconds(args.Length > 10 ? double.Parse(args[10], ci) : 0.3),
    PollInterval = TimeSpan.FromMilliseconds(200),
};
var objective = new SyntheticObjective(int.Parse(args[6], ci), int.Parse(args[7], ci), args[8]);
var sweep = new Sweep(storage, args[1], SyntheticObjective.Space, tuner, pruner, options);
var result = sweep.Run(objective);
Console.WriteLine($"done ran={result.TrialsRunHere} best={result.Best?.Value?.ToString("R", ci)}");
return 0;

/// <summary>A cheap objective with a known optimum (x = 0.3, lr = 10^-2.5, k = "b") that sleeps per epoch and logs its starts and ends.</summary>
public sealed class SyntheticObjective(int epochs, int msPerEpoch, string? log) : IObjective
{
    public static readonly SearchSpace Space = new([
        new FloatParam("x", -1, 1), new FloatParam("lr", 1e-4, 1e-1, Log: true), new ChoiceParam("k", ["a", "b", "c"])]);

    public static double Quality(IReadOnlyDictionary<string, double> p) =>
        1 - Math.Pow(p["x"] - 0.3, 2) - Math.Pow(Math.Log10(p["lr"]) + 2.5, 2) / 4 - (p["k"] == 1 ? 0 : 0.1);

    public TrialOutcome Run(TrialContext c)
    {
        Append($"start {c.Trial.Logical} {c.Trial.Number} {Environment.ProcessId}");
        double q = Quality(c.Trial.Params), best = double.NegativeInfinity;
        int e = 0;
        for (e = 1; e <= epochs; e++)
        {
            if (msPerEpoch > 0 && c.Token.WaitHandle.WaitOne(msPerEpoch)) break;
            if (c.Token.IsCancellationRequested) break;
            double v = q * (1 - Math.Pow(0.5, e));
            best = Math.Max(best, v);
            if (c.Report(e, v, last: e == epochs)) { e++; break; }
        }
        if (double.IsNegativeInfinity(best)) throw new OperationCanceledException();
        Append($"end {c.Trial.Logical} {c.Trial.Number} {Environment.ProcessId}");
        return new TrialOutcome(best, (e - 1) * 100.0);
    }

    private void Append(string line)
    {
        if (log is null) return;
        // Several worker processes share this file. .NET's FileMode.Append seeks to the end once, at open, and does
        // not use O_APPEND, so two writers could overwrite each other's line: take the file exclusively (an
        // advisory lock on Unix), retrying while another process holds it, and append at the end we then see.
        var bytes = System.Text.Encoding.UTF8.GetBytes(line + "\n");
        for (int attempt = 0; ; attempt++)
        {
            try
            {
                using var f = new FileStream(log, FileMode.OpenOrCreate, FileAccess.Write, FileShare.None);
                f.Seek(0, SeekOrigin.End);
                f.Write(bytes);
                return;
            }
            catch (IOException) when (attempt < 2000)
            {
                Thread.Sleep(2);
            }
        }
    }
}

using System.Diagnostics;
using MlNetFineTune.AutoML;
using Xunit;
using Xunit.Abstractions;

namespace MlNetFineTune.AutoML.Tests;

/// <summary>
/// Crash safety and distribution with real processes: the synthetic worker (Worker/Program.cs) sleeps per epoch,
/// logs "start LOGICAL NUMBER PID" and "end ..." lines, and is SIGKILLed mid-trial or run several at once.
/// </summary>
[Collection("processes")]
public class ProcessTests(ITestOutputHelper output)
{
    private static string SqliteSpec() => "sqlite:" + Path.Combine(TestEnv.TempDir(), "study.db");

    [Fact] public void KilledSweepResumesWithoutLosingOrRepeatingTrialsSqlite() => KilledSweepResumes(SqliteSpec());
    [PostgresFact] public void KilledSweepResumesWithoutLosingOrRepeatingTrialsPostgres() => KilledSweepResumes(TestEnv.Postgres!);

    private void KilledSweepResumes(string spec)
    {
        const int max = 8;
        var study = TestEnv.UniqueStudy("crash");
        var log = Path.Combine(TestEnv.TempDir(), "events.log");
        var first = TestEnv.StartWorker(spec, study, max, epochs: 4, msPerEpoch: 150, log, pruner: "none");
        var storage = StudyStorage.Open(spec);
        // Wait until at least two trials are finished in storage and another one is mid-trial.
        var clock = Stopwatch.StartNew();
        IReadOnlyList<TrialRecord> before;
        while (true)
        {
            Assert.False(first.HasExited, $"the worker ended before it could be killed: {TestEnv.Errors.GetValueOrDefault(first.Id)}");
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(90), "the worker made no progress in 90 s");
            Thread.Sleep(50);
            before = SafeTrials(storage, study);
            if (before.Count(t => t.IsFinished) >= 2 && before.Any(t => t.State == TrialState.Running && t.Intermediate.Count >= 1)) break;
        }
        first.Kill(); // SIGKILL on Linux: no cleanup runs
        first.WaitForExit();
        before = storage.Trials(study);
        var finishedBefore = before.Where(t => t.IsFinished).ToList();
        var killed = before.Single(t => t.State == TrialState.Running);
        int eventsBefore = TestEnv.Events(log).Length;
        output.WriteLine($"killed with {finishedBefore.Count} finished, trial {killed.Number} running at epoch {killed.Intermediate.Count}");

        var second = TestEnv.StartWorker(spec, study, max, epochs: 4, msPerEpoch: 150, log, pruner: "none");
        TestEnv.WaitOk(second);
        var after = storage.Trials(study);
        // Every logical trial finished exactly once.
        var finished = after.Where(t => t.IsFinished).ToList();
        Assert.Equal(Enumerable.Range(0, max), finished.Select(t => t.Logical).OrderBy(x => x));
        // Nothing finished before the kill was lost or changed.
        foreach (var t in finishedBefore)
        {
            var now = after.Single(x => x.Number == t.Number);
            Assert.Equal(t.State, now.State);
            Assert.Equal(t.Value, now.Value);
        }
        // The killed trial was failed by the restarted worker and its copy ran.
        var dead = after.Single(t => t.Number == killed.Number);
        Assert.Equal(TrialState.Failed, dead.State);
        Assert.Contains("stopped beating", dead.Message);
        Assert.Contains(after, t => t.Logical == killed.Logical && t.Number != killed.Number && t.IsFinished);
        // The restarted process started no trial that was already finished.
        var restartedStarts = TestEnv.Events(log).Skip(eventsBefore).Where(l => l.StartsWith("start ")).Select(l => int.Parse(l.Split(' ')[1])).ToList();
        Assert.Empty(restartedStarts.Intersect(finishedBefore.Select(t => t.Logical)));
        Assert.Equal(restartedStarts.Count, restartedStarts.Distinct().Count());
    }

    private static IReadOnlyList<TrialRecord> SafeTrials(StudyStorage s, string study)
    {
        try { return s.Trials(study); }
        catch (Exception) { return []; } // the study may not exist yet
    }

    [Fact] public void TwoProcessesOnOneSqliteFileRunEveryTrialOnce() => Distributed(SqliteSpec(), workers: 2, max: 12);
    [PostgresFact] public void ThreeProcessesOnOnePostgresStudyRunEveryTrialOnce() => Distributed(TestEnv.Postgres!, workers: 3, max: 15);

    private void Distributed(string spec, int workers, int max)
    {
        var study = TestEnv.UniqueStudy("dist");
        var log = Path.Combine(TestEnv.TempDir(), "events.log");
        var procs = Enumerable.Range(0, workers).Select(_ => TestEnv.StartWorker(spec, study, max, epochs: 3, msPerEpoch: 60, log)).ToList();
        foreach (var p in procs) TestEnv.WaitOk(p);
        var trials = StudyStorage.Open(spec).Trials(study);
        Assert.Equal(max, trials.Count);
        Assert.All(trials, t => Assert.True(t.IsFinished, $"trial {t.Number} is {t.State}: {t.Message}"));
        Assert.Equal(Enumerable.Range(0, max), trials.Select(t => t.Logical).OrderBy(x => x));
        var starts = TestEnv.Events(log).Where(l => l.StartsWith("start ")).Select(l => l.Split(' ')).ToList();
        Assert.Equal(Enumerable.Range(0, max), starts.Select(s => int.Parse(s[1])).OrderBy(x => x)); // each started exactly once
        output.WriteLine($"trials per process: {string.Join(", ", starts.GroupBy(s => s[3]).Select(g => g.Count()))}");
    }
}

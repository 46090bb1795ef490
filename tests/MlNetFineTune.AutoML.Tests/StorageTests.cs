using System.Diagnostics;
using MlNetFineTune.AutoML;
using Xunit;

namespace MlNetFineTune.AutoML.Tests;

/// <summary>Storage semantics, the same checks on SQLite and (when MLFT_TEST_POSTGRES is set) PostgreSQL.</summary>
public class StorageTests
{
    private static readonly SearchSpace Space = new([new FloatParam("x", 0, 1), new ChoiceParam("k", ["a", "b"])]);

    private static string SqliteSpec() => "sqlite:" + Path.Combine(TestEnv.TempDir(), "study.db");

    private static Claim ClaimOne(StudyStorage s, string study, string worker, int max = 100, double stale = 60, ITuner? tuner = null) =>
        s.Claim(study, worker, max, stale, maxRetries: 2, (i, h) => (tuner ?? new RandomTuner(1)).Suggest(Space, i, h, true));

    [Fact] public void ConcurrentClaimsNeverShareATrialSqlite() => ConcurrentClaimsNeverShareATrial(SqliteSpec());
    [PostgresFact] public void ConcurrentClaimsNeverShareATrialPostgres() => ConcurrentClaimsNeverShareATrial(TestEnv.Postgres!);

    private static void ConcurrentClaimsNeverShareATrial(string spec)
    {
        var storage = StudyStorage.Open(spec);
        var study = TestEnv.UniqueStudy("claims");
        storage.EnsureStudy(study, true, Space);
        var claimed = new System.Collections.Concurrent.ConcurrentBag<(int Number, string Worker)>();
        Parallel.For(0, 6, new ParallelOptions { MaxDegreeOfParallelism = 6 }, w =>
        {
            var other = StudyStorage.Open(spec);
            while (true)
            {
                var c = ClaimOne(other, study, "w" + w, max: 24);
                if (c.Kind != ClaimKind.Trial) break;
                claimed.Add((c.Trial!.Number, "w" + w));
                Assert.True(other.Finish(study, c.Trial.Number, "w" + w, TrialState.Complete, c.Trial.Params["x"], 1, null));
            }
        });
        Assert.Equal(24, claimed.Count);
        Assert.Equal(Enumerable.Range(0, 24), claimed.Select(c => c.Number).OrderBy(n => n));
        var trials = storage.Trials(study);
        Assert.Equal(24, trials.Count);
        Assert.All(trials, t => Assert.Equal(TrialState.Complete, t.State));
        Assert.Equal(ClaimKind.Done, ClaimOne(storage, study, "late", max: 24).Kind);
    }

    [Fact] public void StaleTrialIsFailedAndRequeuedSqlite() => StaleTrialIsFailedAndRequeued(SqliteSpec());
    [PostgresFact] public void StaleTrialIsFailedAndRequeuedPostgres() => StaleTrialIsFailedAndRequeued(TestEnv.Postgres!);

    private static void StaleTrialIsFailedAndRequeued(string spec)
    {
        var storage = StudyStorage.Open(spec);
        var study = TestEnv.UniqueStudy("stale");
        storage.EnsureStudy(study, true, Space);
        var a = ClaimOne(storage, study, "dead", max: 1).Trial!;
        Assert.True(storage.Heartbeat(study, a.Number, "dead"));
        storage.Report(study, a.Number, 1, 0.5);
        Assert.Equal(ClaimKind.Wait, ClaimOne(storage, study, "alive", max: 1, stale: 60).Kind); // fresh: left alone
        Thread.Sleep(1200);
        var b = ClaimOne(storage, study, "alive", max: 1, stale: 0.5);
        Assert.Equal(ClaimKind.Trial, b.Kind);
        Assert.Equal(a.Logical, b.Trial!.Logical);
        Assert.NotEqual(a.Number, b.Trial.Number);
        Assert.Equal(a.Params, b.Trial.Params);
        Assert.Empty(b.Trial.Intermediate);
        var failed = storage.Trials(study).Single(t => t.Number == a.Number);
        Assert.Equal(TrialState.Failed, failed.State);
        Assert.Contains("stopped beating", failed.Message);
        // The dead worker comes back: it may neither beat nor finish the trial it lost.
        Assert.False(storage.Heartbeat(study, a.Number, "dead"));
        Assert.False(storage.Finish(study, a.Number, "dead", TrialState.Complete, 0.9, 1, null));
        Assert.True(storage.Finish(study, b.Trial.Number, "alive", TrialState.Complete, 0.7, 1, null));
        Assert.Equal(ClaimKind.Done, ClaimOne(storage, study, "alive", max: 1).Kind);
        var finished = storage.Trials(study).Where(t => t.IsFinished).ToList();
        Assert.Single(finished);
        Assert.Equal(0.7, finished[0].Value);
    }

    [Fact] public void RestartNeverRerunsAFinishedTrialSqlite() => RestartNeverRerunsAFinishedTrial(SqliteSpec());
    [PostgresFact] public void RestartNeverRerunsAFinishedTrialPostgres() => RestartNeverRerunsAFinishedTrial(TestEnv.Postgres!);

    private static void RestartNeverRerunsAFinishedTrial(string spec)
    {
        var study = TestEnv.UniqueStudy("restart");
        var first = StudyStorage.Open(spec);
        first.EnsureStudy(study, true, Space);
        for (int i = 0; i < 3; i++)
        {
            var t = ClaimOne(first, study, "w1", max: 5).Trial!;
            first.Finish(study, t.Number, "w1", i == 1 ? TrialState.Pruned : TrialState.Complete, i, 1, null);
        }
        var running = ClaimOne(first, study, "w1", max: 5).Trial!;
        Assert.True(first.Release(study, running.Number, "w1")); // cancelled mid-trial: back in the queue
        var again = StudyStorage.Open(spec); // a new process
        again.EnsureStudy(study, true, Space);
        var resumed = ClaimOne(again, study, "w2", max: 5).Trial!;
        Assert.Equal(running.Number, resumed.Number);
        again.Finish(study, resumed.Number, "w2", TrialState.Complete, 9, 1, null);
        var last = ClaimOne(again, study, "w2", max: 5).Trial!;
        Assert.Equal(4, last.Logical);
        again.Finish(study, last.Number, "w2", TrialState.Complete, 1, 1, null);
        Assert.Equal(ClaimKind.Done, ClaimOne(again, study, "w2", max: 5).Kind);
        Assert.Equal(5, again.Trials(study).Count);
    }

    [Fact] public void AnotherSpaceUnderTheSameStudyIsRefusedSqlite() => AnotherSpaceUnderTheSameStudyIsRefused(SqliteSpec());
    [PostgresFact] public void AnotherSpaceUnderTheSameStudyIsRefusedPostgres() => AnotherSpaceUnderTheSameStudyIsRefused(TestEnv.Postgres!);

    private static void AnotherSpaceUnderTheSameStudyIsRefused(string spec)
    {
        var storage = StudyStorage.Open(spec);
        var study = TestEnv.UniqueStudy("space");
        storage.EnsureStudy(study, true, Space);
        var ex = Assert.Throws<StorageException>(() => storage.EnsureStudy(study, true, new SearchSpace([new FloatParam("x", 0, 2)])));
        Assert.Contains(study, ex.Message);
        Assert.Contains("another search space", ex.Message);
    }

    [Fact]
    public void NewerSchemaVersionIsRefused()
    {
        var spec = SqliteSpec();
        var storage = StudyStorage.Open(spec);
        storage.SetSchemaVersionForTests(StudyStorage.SchemaVersion + 1);
        var ex = Assert.Throws<StorageException>(() => StudyStorage.Open(spec));
        Assert.Contains("newer mlft", ex.Message);
        Assert.Contains(spec, ex.Message);
    }

    [Fact]
    public void AFileThatIsNotADatabaseIsRefused()
    {
        var path = Path.Combine(TestEnv.TempDir(), "notes.db");
        File.WriteAllText(path, "these are my notes, not a database; " + new string('x', 4096));
        var ex = Assert.Throws<StorageException>(() => StudyStorage.Open("sqlite:" + path));
        Assert.Contains("not an SQLite database", ex.Message);
        Assert.Contains(path, ex.Message);
    }

    [Fact]
    public void UnreachablePostgresFailsClearlyWithinTheTimeout()
    {
        // Port 1 on the loopback refuses at once; 10.255.255.1 is unroutable and would wait for the 2 s connect timeout.
        foreach (var url in new[] { "postgres://mlft:secret@127.0.0.1:1/mlft?timeout=2", "postgres://mlft:secret@10.255.255.1:5432/mlft?timeout=2" })
        {
            var clock = Stopwatch.StartNew();
            var task = Task.Run(() => StudyStorage.Open(url));
            Assert.True(((IAsyncResult)task).AsyncWaitHandle.WaitOne(TimeSpan.FromSeconds(60)), $"{url}: still connecting after 60 s");
            var ex = Assert.IsType<StorageException>(task.Exception?.InnerException);
            Assert.Contains("cannot connect", ex.Message);
            Assert.DoesNotContain("secret", ex.Message);
        }
    }
}

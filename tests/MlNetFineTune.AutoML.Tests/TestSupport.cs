using System.Diagnostics;
using Xunit;

namespace MlNetFineTune.AutoML.Tests;

/// <summary>Runs only when MLFT_TEST_POSTGRES holds a connection (postgres://user:pass@host:port/db); otherwise reported as skipped, with the reason.</summary>
public sealed class PostgresFactAttribute : FactAttribute
{
    public PostgresFactAttribute()
    {
        if (string.IsNullOrWhiteSpace(TestEnv.Postgres))
            Skip = "PostgreSQL tests skipped: MLFT_TEST_POSTGRES is not set (e.g. postgres://mlft:mlft@127.0.0.1:5432/mlft_test; .ci/run installs a server and sets it).";
    }
}

/// <summary>Runs only when a chromium (or chromium-browser / google-chrome) executable is on PATH.</summary>
public sealed class ChromiumFactAttribute : FactAttribute
{
    public ChromiumFactAttribute()
    {
        if (TestEnv.Chromium is null) Skip = "report rendering test skipped: no chromium on PATH (Debian: apt-get install chromium; .ci/run installs it).";
    }
}

internal static class TestEnv
{
    public static string? Postgres => Environment.GetEnvironmentVariable("MLFT_TEST_POSTGRES");

    public static readonly string? Chromium = new[] { "chromium", "chromium-browser", "google-chrome" }
        .SelectMany(n => (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':').Select(d => Path.Combine(d, n)))
        .FirstOrDefault(File.Exists);

    public static readonly string Root = FindRoot();

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "MlNetFineTune.sln"))) return dir.FullName;
        throw new DirectoryNotFoundException("MlNetFineTune.sln not found.");
    }

    public static string TempDir()
    {
        var d = Path.Combine(Path.GetTempPath(), "mlft-automl-tests", Guid.NewGuid().ToString("N")[..10]);
        Directory.CreateDirectory(d);
        return d;
    }

    public static string UniqueStudy(string prefix) => prefix + "-" + Guid.NewGuid().ToString("N")[..8];

    /// <summary>Starts the synthetic sweep worker (tests/.../Worker) as a child process.</summary>
    public static Process StartWorker(string storage, string study, int maxTrials, int epochs, int msPerEpoch, string log, string tuner = "tpe", string pruner = "asha", double staleSeconds = 2, double heartbeatSeconds = 0.25)
    {
        var dll = Path.Combine(AppContext.BaseDirectory, "MlNetFineTune.AutoML.Worker.dll");
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { "exec", dll, storage, study, maxTrials.ToString(), "1", tuner, pruner, epochs.ToString(), msPerEpoch.ToString(), log,
            staleSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture), heartbeatSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture) })
            psi.ArgumentList.Add(a);
        var p = Process.Start(psi)!;
        p.OutputDataReceived += (_, _) => { };
        p.BeginOutputReadLine();
        var err = new System.Text.StringBuilder();
        p.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (err) err.AppendLine(e.Data); };
        p.BeginErrorReadLine();
        Errors[p.Id] = err;
        return p;
    }

    public static readonly System.Collections.Concurrent.ConcurrentDictionary<int, System.Text.StringBuilder> Errors = new();

    public static void WaitOk(Process p, int seconds = 120)
    {
        if (!p.WaitForExit(seconds * 1000)) { p.Kill(); throw new TimeoutException($"worker {p.Id} did not finish in {seconds} s"); }
        p.WaitForExit();
        Assert.True(p.ExitCode == 0, $"worker {p.Id} exit {p.ExitCode}: {Errors.GetValueOrDefault(p.Id)}");
    }

    public static string[] Events(string log) => File.Exists(log)
        ? File.ReadAllLines(log).Where(l => l.Length > 0).ToArray()
        : [];
}

using System.Diagnostics;
using MlNetFineTune.AutoML;
using Xunit;
using Xunit.Abstractions;

namespace MlNetFineTune.AutoML.Tests;

public class ReportTests(ITestOutputHelper output)
{
    /// <summary>A finished synthetic study (in process, SQLite) with complete and pruned trials.</summary>
    private static (SearchSpace Space, IReadOnlyList<TrialRecord> Trials, SweepResult Result) Study()
    {
        var storage = StudyStorage.Open("sqlite:" + Path.Combine(TestEnv.TempDir(), "r.db"));
        var sweep = new Sweep(storage, "report", SyntheticObjective.Space, new TpeTuner(1), new AshaPruner(), new SweepOptions { MaxTrials = 12, HeartbeatInterval = TimeSpan.FromMilliseconds(200) });
        var result = sweep.Run(new SyntheticObjective(4, 0, null));
        return (SyntheticObjective.Space, result.Trials, result);
    }

    [Fact]
    public void SweepInProcessPrunesAndFindsTheBest()
    {
        var (_, trials, result) = Study();
        Assert.Equal(12, trials.Count);
        Assert.Contains(trials, t => t.State == TrialState.Pruned);
        Assert.Contains(trials, t => t.State == TrialState.Complete);
        Assert.Equal(trials.Where(t => t.State == TrialState.Complete).Max(t => t.Value), result.Best!.Value);
        Assert.True(trials.Where(t => t.State == TrialState.Pruned).All(t => t.Intermediate.Count < 4));
        Assert.True(result.TotalCost < 12 * 4 * 100, "pruning saved no compute");
    }

    [Fact]
    public void CsvHasOneRowPerTrialAndEveryParameter()
    {
        var (space, trials, _) = Study();
        var lines = StudyReport.Csv(space, trials).TrimEnd().Split('\n');
        Assert.Equal(trials.Count + 1, lines.Length);
        Assert.StartsWith("number,logical,state,value,epochs,cost,seconds,worker,x,lr,k,message", lines[0]);
        Assert.Contains(lines, l => l.Contains(",pruned,"));
    }

    [Fact]
    public void HtmlIsSelfContainedWithEveryChart()
    {
        var (space, trials, _) = Study();
        var html = StudyReport.Html("study", space, trials, true, "accuracy", null);
        foreach (var id in new[] { "chart-time", "chart-param-x", "chart-param-lr", "chart-param-k", "chart-curves", "id=\"best\"", "id=\"trials\"" })
            Assert.Contains(id, html);
        Assert.DoesNotContain("http://", html.Replace("http://www.w3.org/2000/svg", ""));
        Assert.DoesNotContain("https://", html);
        Assert.DoesNotContain("src=", html);
        Assert.True(html.Split("<circle").Length - 1 >= 2 * trials.Count, "the scatter plots lack points");
        Assert.True(html.Split("<polyline").Length - 1 >= trials.Count, "the learning curves lack lines");
    }

    /// <summary>Runs headless Chromium on a page: the dumped DOM, console messages on stderr, and a screenshot.</summary>
    private static (string Dom, string Log, string Png) Render(string html)
    {
        var dir = TestEnv.TempDir();
        var page = Path.Combine(dir, "report.html");
        File.WriteAllText(page, html);
        string Run(params string[] extra)
        {
            var psi = new ProcessStartInfo(TestEnv.Chromium!) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            foreach (var a in new[] { "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run", "--user-data-dir=" + Path.Combine(dir, "profile" + extra.Length),
                "--enable-logging=stderr", "--v=0", "--window-size=1280,2400" }.Concat(extra).Append("file://" + page))
                psi.ArgumentList.Add(a);
            using var p = Process.Start(psi)!;
            var stdout = p.StandardOutput.ReadToEndAsync();
            var stderr = p.StandardError.ReadToEndAsync();
            if (!p.WaitForExit(90_000)) { p.Kill(true); throw new TimeoutException("chromium did not finish in 90 s"); }
            return stdout.Result + "\n--stderr--\n" + stderr.Result;
        }
        var png = Path.Combine(dir, "shot.png");
        var dom = Run("--dump-dom");
        var log = Run("--screenshot=" + png);
        return (dom, dom + log, png);
    }

    private static string[] ConsoleErrors(string log) => log.Split('\n')
        .Where(l => l.Contains("CONSOLE") && (l.Contains("Uncaught") || l.Contains("Error") || l.Contains(":ERROR:"))).ToArray();

    [ChromiumFact]
    public void ReportOpensInHeadlessChromiumWithoutConsoleErrors()
    {
        var (space, trials, _) = Study();
        var (dom, log, png) = Render(StudyReport.Html("mlft automl test", space, trials, true, "accuracy", null));
        Assert.Empty(ConsoleErrors(log));
        // The inline script ran and counted the charts: time, 3 parameters, learning curves.
        Assert.Contains("data-charts=\"5\"", dom);
        Assert.True(File.Exists(png), "no screenshot: " + log[^Math.Min(2000, log.Length)..]);
        var bytes = File.ReadAllBytes(png);
        Assert.True(bytes.Length > 20_000, $"the screenshot is {bytes.Length} bytes: nearly blank");
        output.WriteLine($"screenshot {png} ({bytes.Length} bytes)");
    }

    [ChromiumFact]
    public void TheConsoleCheckCatchesAPageWithAnError()
    {
        var (_, log, _) = Render("<!DOCTYPE html><html><body><script>undefinedFunction();</script></body></html>");
        Assert.NotEmpty(ConsoleErrors(log));
    }
}

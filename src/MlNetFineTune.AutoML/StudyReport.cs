using System.Globalization;
using System.Net;
using System.Text;

namespace MlNetFineTune.AutoML;

/// <summary>trials.csv, the leaderboard and report.html of a study.</summary>
public static class StudyReport
{
    private static readonly CultureInfo Ci = CultureInfo.InvariantCulture;

    /// <summary>Writes <paramref name="path"/> through a temporary file and a rename.</summary>
    public static void WriteAtomically(string path, string text)
    {
        var tmp = path + $".{Guid.NewGuid():N}.tmp";
        File.WriteAllText(tmp, text, new UTF8Encoding(false));
        File.Move(tmp, path, overwrite: true);
    }

    /// <summary>One row per trial: number, logical trial, state, value, epochs, cost, seconds, worker, parameters, message.</summary>
    public static string Csv(SearchSpace space, IReadOnlyList<TrialRecord> trials)
    {
        var sb = new StringBuilder();
        var names = space.Parameters.Select(p => p.Name).ToArray();
        sb.AppendLine(string.Join(",", new[] { "number", "logical", "state", "value", "epochs", "cost", "seconds", "worker" }.Concat(names).Append("message")));
        foreach (var t in trials)
        {
            var cells = new List<string>
            {
                t.Number.ToString(Ci), t.Logical.ToString(Ci), StudyStorage.StateName(t.State),
                t.Value?.ToString("R", Ci) ?? "", t.Intermediate.Count.ToString(Ci), t.Cost.ToString("R", Ci),
                t.Started is double s && t.Finished is double f ? (f - s).ToString("0.00", Ci) : "", Quote(t.Worker ?? ""),
            };
            foreach (var p in space.Parameters) cells.Add(t.Params.TryGetValue(p.Name, out var v) ? Quote(p.Display(v)) : "");
            cells.Add(Quote(t.Message ?? ""));
            sb.AppendLine(string.Join(",", cells));
        }
        return sb.ToString();
    }

    private static string Quote(string s) => s.IndexOfAny([',', '"', '\n', '\r']) >= 0 ? "\"" + s.Replace("\"", "\"\"") + "\"" : s;

    /// <summary>A leaderboard line for a finished trial.</summary>
    public static string Line(SearchSpace space, TrialRecord t, TrialRecord? best, string metric)
    {
        var ps = string.Join(" ", space.Parameters.Where(p => t.Params.ContainsKey(p.Name)).Select(p => $"{p.Name}={p.Display(t.Params[p.Name])}"));
        var v = t.Value is double d ? d.ToString("0.0000", Ci) : "-";
        var b = best?.Value is double bv ? $" best={bv.ToString("0.0000", Ci)} (trial {best.Number})" : "";
        return $"trial {t.Number} {StudyStorage.StateName(t.State)} {metric}={v} epochs={t.Intermediate.Count} {ps}{b}";
    }

    /// <summary>The top trials as aligned lines.</summary>
    public static IEnumerable<string> Leaderboard(SearchSpace space, IReadOnlyList<TrialRecord> trials, bool maximize, string metric, int top = 10)
    {
        var ranked = trials.Where(t => t.IsFinished && t.Value is not null)
            .OrderByDescending(t => t.State == TrialState.Complete).ThenByDescending(t => maximize ? t.Value : -t.Value).Take(top).ToList();
        int rank = 0;
        foreach (var t in ranked)
            yield return $"{++rank,3}. " + Line(space, t, null, metric);
    }

    /// <summary>
    /// A self-contained page (inline SVG, no scripts from elsewhere): the metric of every trial over time with the best so
    /// far, each parameter against the metric, every trial's learning curve, the best configuration and the table of trials.
    /// </summary>
    public static string Html(string title, SearchSpace space, IReadOnlyList<TrialRecord> trials, bool maximize, string metric, double? studyStart)
    {
        var best = Sweep.BestOf(trials, maximize);
        var done = trials.Where(t => t.Value is not null && t.Finished is not null).OrderBy(t => t.Finished).ToList();
        double t0 = studyStart ?? (done.Count > 0 ? done.Min(t => t.Started ?? t.Finished!.Value) : 0);
        var sb = new StringBuilder();
        sb.Append("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>").Append(E(title)).Append("</title><style>")
          .Append("body{font-family:system-ui,sans-serif;margin:24px;color:#222}h1{font-size:22px}h2{font-size:17px;margin-top:28px}")
          .Append("table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f3f3f3}")
          .Append(".grid{display:flex;flex-wrap:wrap;gap:16px}svg{background:#fff;border:1px solid #ddd}.pruned{color:#999}.failed{color:#c33}")
          .Append("</style></head><body>");
        sb.Append("<h1>").Append(E(title)).Append("</h1>");
        int complete = trials.Count(t => t.State == TrialState.Complete), pruned = trials.Count(t => t.State == TrialState.Pruned), failed = trials.Count(t => t.State == TrialState.Failed);
        sb.Append("<p>").Append(trials.Count).Append(" trials: ").Append(complete).Append(" complete, ").Append(pruned).Append(" pruned, ").Append(failed)
          .Append(" failed. Metric: validation ").Append(E(metric)).Append(maximize ? " (higher is better)" : " (lower is better)")
          .Append(". Compute: ").Append(trials.Sum(t => t.Cost).ToString("N0", Ci)).Append(" example-epochs.</p>");

        sb.Append("<h2>Best configuration</h2>");
        if (best is null) sb.Append("<p>No trial has finished yet.</p>");
        else
        {
            sb.Append("<table id=\"best\"><tr><th>trial</th><td>").Append(best.Number).Append("</td></tr><tr><th>").Append(E(metric)).Append("</th><td>")
              .Append(best.Value!.Value.ToString("0.0000", Ci)).Append("</td></tr>");
            foreach (var p in space.Parameters)
                if (best.Params.TryGetValue(p.Name, out var v)) sb.Append("<tr><th>").Append(E(p.Name)).Append("</th><td>").Append(E(p.Display(v))).Append("</td></tr>");
            sb.Append("</table>");
        }

        sb.Append("<h2>Metric per trial over time</h2>");
        var pts = done.Select(t => (X: t.Finished!.Value - t0, Y: t.Value!.Value, T: t)).ToList();
        var bestLine = new List<(double, double)>();
        double? running = null;
        foreach (var p in pts.Where(p => p.T.State == TrialState.Complete))
        {
            running = running is null ? p.Y : maximize ? Math.Max(running.Value, p.Y) : Math.Min(running.Value, p.Y);
            bestLine.Add((p.X, running.Value));
        }
        sb.Append(Chart("chart-time", 640, 300, "seconds since the study began", metric,
            pts.Select(p => (p.X, p.Y, Color(p.T), $"trial {p.T.Number} ({StudyStorage.StateName(p.T.State)}): {p.Y:0.0000}")).ToList(),
            bestLine.Count > 1 ? [("#2a7", bestLine)] : [], logX: false));

        sb.Append("<h2>Each parameter against the metric</h2><div class=\"grid\">");
        foreach (var p in space.Parameters)
        {
            var data = done.Where(t => t.Params.ContainsKey(p.Name)).Select(t => (t.Params[p.Name], t.Value!.Value, Color(t), $"trial {t.Number}: {p.Display(t.Params[p.Name])}")).ToList();
            bool log = p is FloatParam { Log: true } || p is IntParam { Log: true };
            string xLabel = p is ChoiceParam c ? p.Name + " (" + string.Join(", ", c.Choices.Select((x, i) => $"{i}={x}")) + ")" : p.Name + (log ? " (log)" : "");
            sb.Append(Chart("chart-param-" + p.Name, 320, 240, xLabel, metric, data, [], logX: log));
        }
        sb.Append("</div>");

        sb.Append("<h2>Learning curves</h2>");
        var curves = trials.Where(t => t.Intermediate.Count > 0)
            .Select(t => (best is not null && t.Number == best.Number ? "#d62" : t.State == TrialState.Pruned ? "#bbb" : "#48c",
                t.Intermediate.OrderBy(kv => kv.Key).Select(kv => ((double)kv.Key, kv.Value)).ToList())).ToList();
        sb.Append(Chart("chart-curves", 640, 300, "epoch", "validation " + metric, [], curves, logX: false));
        sb.Append("<p>Orange: best trial; grey: pruned; blue: others. Points: green complete, grey pruned.</p>");

        sb.Append("<h2>Trials</h2><table id=\"trials\"><tr><th>trial</th><th>state</th><th>").Append(E(metric)).Append("</th><th>epochs</th>");
        foreach (var p in space.Parameters) sb.Append("<th>").Append(E(p.Name)).Append("</th>");
        sb.Append("<th>worker</th><th>note</th></tr>");
        foreach (var t in trials)
        {
            sb.Append("<tr class=\"").Append(StudyStorage.StateName(t.State)).Append("\"><td>").Append(t.Number).Append("</td><td>").Append(StudyStorage.StateName(t.State))
              .Append("</td><td>").Append(t.Value?.ToString("0.0000", Ci) ?? "").Append("</td><td>").Append(t.Intermediate.Count).Append("</td>");
            foreach (var p in space.Parameters) sb.Append("<td>").Append(t.Params.TryGetValue(p.Name, out var v) ? E(p.Display(v)) : "").Append("</td>");
            sb.Append("<td>").Append(E(t.Worker ?? "")).Append("</td><td>").Append(E(t.Message ?? "")).Append("</td></tr>");
        }
        sb.Append("</table>");
        // A tiny inline script: marks the page ready (checked by the headless-browser test); no network, no libraries.
        sb.Append("<script>document.body.setAttribute('data-charts', String(document.querySelectorAll('svg').length));</script>");
        sb.Append("</body></html>");
        return sb.ToString();
    }

    private static string Color(TrialRecord t) => t.State switch { TrialState.Complete => "#2a7", TrialState.Pruned => "#aaa", _ => "#c33" };

    private static string E(string s) => WebUtility.HtmlEncode(s);

    private static string Chart(string id, int w, int h, string xLabel, string yLabel,
        List<(double X, double Y, string Color, string Tip)> points, List<(string Color, List<(double X, double Y)> Pts)> lines, bool logX)
    {
        const int left = 56, right = 12, top = 12, bottom = 40;
        var xs = points.Select(p => p.X).Concat(lines.SelectMany(l => l.Pts.Select(p => p.X))).Select(x => logX ? Math.Log10(Math.Max(x, 1e-300)) : x).ToList();
        var ys = points.Select(p => p.Y).Concat(lines.SelectMany(l => l.Pts.Select(p => p.Y))).ToList();
        var sb = new StringBuilder();
        sb.Append($"<svg id=\"{E(id)}\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" role=\"img\">");
        sb.Append($"<line x1=\"{left}\" y1=\"{h - bottom}\" x2=\"{w - right}\" y2=\"{h - bottom}\" stroke=\"#333\"/><line x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" y2=\"{h - bottom}\" stroke=\"#333\"/>");
        sb.Append($"<text x=\"{(left + w - right) / 2}\" y=\"{h - 6}\" font-size=\"12\" text-anchor=\"middle\">{E(xLabel)}</text>");
        sb.Append($"<text x=\"14\" y=\"{(top + h - bottom) / 2}\" font-size=\"12\" text-anchor=\"middle\" transform=\"rotate(-90 14 {(top + h - bottom) / 2})\">{E(yLabel)}</text>");
        if (xs.Count == 0) { sb.Append($"<text x=\"{w / 2}\" y=\"{h / 2}\" text-anchor=\"middle\" font-size=\"12\">no data yet</text></svg>"); return sb.ToString(); }
        double x0 = xs.Min(), x1 = xs.Max(), y0 = ys.Min(), y1 = ys.Max();
        if (x1 - x0 < 1e-12) { x0 -= 0.5; x1 += 0.5; }
        if (y1 - y0 < 1e-12) { y0 -= 0.01; y1 += 0.01; }
        double padY = 0.05 * (y1 - y0); y0 -= padY; y1 += padY;
        double padX = 0.03 * (x1 - x0); x0 -= padX; x1 += padX;
        string X(double x) => (left + ((logX ? Math.Log10(Math.Max(x, 1e-300)) : x) - x0) / (x1 - x0) * (w - left - right)).ToString("0.#", Ci);
        string Y(double y) => (h - bottom - (y - y0) / (y1 - y0) * (h - top - bottom)).ToString("0.#", Ci);
        for (int i = 0; i <= 4; i++)
        {
            double yv = y0 + i * (y1 - y0) / 4, xv = x0 + i * (x1 - x0) / 4;
            sb.Append($"<text x=\"{left - 4}\" y=\"{Y(yv)}\" font-size=\"10\" text-anchor=\"end\">{yv.ToString("0.###", Ci)}</text>");
            double xShown = logX ? Math.Pow(10, xv) : xv;
            sb.Append($"<text x=\"{(left + (xv - x0) / (x1 - x0) * (w - left - right)).ToString("0.#", Ci)}\" y=\"{h - bottom + 14}\" font-size=\"10\" text-anchor=\"middle\">{xShown.ToString("G3", Ci)}</text>");
        }
        foreach (var (color, pts) in lines)
            sb.Append($"<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"1.5\" points=\"{string.Join(" ", pts.Select(p => X(p.X) + "," + Y(p.Y)))}\"/>");
        foreach (var p in points)
            sb.Append($"<circle cx=\"{X(p.X)}\" cy=\"{Y(p.Y)}\" r=\"4\" fill=\"{p.Color}\"><title>{E(p.Tip)}</title></circle>");
        sb.Append("</svg>");
        return sb.ToString();
    }
}

using System.Text.Json;
using System.Text.Json.Nodes;

namespace MlNetFineTune.Experiments;

/// <summary>What every experiment records about its run: the machine's load and the JSON report (written atomically).</summary>
internal static class ExperimentIo
{
    /// <summary>The 1, 5 and 15 minute load averages (timings taken under load are not comparable).</summary>
    public static string LoadAverage()
    {
        try { return File.Exists("/proc/loadavg") ? string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3)) : "n/a"; }
        catch (IOException) { return "n/a"; }
    }

    /// <summary>Writes the report to a temporary file and renames it over <paramref name="path"/>.</summary>
    public static void WriteJson(string path, JsonObject report)
    {
        var dir = Path.GetDirectoryName(Path.GetFullPath(path));
        if (!string.IsNullOrEmpty(dir)) Directory.CreateDirectory(dir);
        var tmp = path + ".tmp";
        File.WriteAllText(tmp, report.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
        File.Move(tmp, path, overwrite: true);
    }
}

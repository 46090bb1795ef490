namespace MlNetFineTune.Models.Tests;

/// <summary>Locates committed fixtures and shipped data from the test's output folder.</summary>
public static class TestPaths
{
    /// <summary>The repository root (the folder holding MlNetFineTune.sln).</summary>
    public static string RepoRoot { get; } = FindRoot();

    private static string FindRoot()
    {
        var env = Environment.GetEnvironmentVariable("MLFT_REPO_ROOT");
        if (!string.IsNullOrEmpty(env)) return env;
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "MlNetFineTune.sln"))) return dir.FullName;
        throw new DirectoryNotFoundException($"No MlNetFineTune.sln above {AppContext.BaseDirectory}.");
    }

    /// <summary>A path under tests/MlNetFineTune.Models.Tests/fixtures.</summary>
    public static string Fixture(params string[] parts) =>
        Path.Combine([RepoRoot, "tests", "MlNetFineTune.Models.Tests", "fixtures", .. parts]);

    /// <summary>A path under data/.</summary>
    public static string Data(params string[] parts) => Path.Combine([RepoRoot, "data", .. parts]);
}

namespace MlNetFineTune.Models.Hub;

/// <summary>How a file in <c>snapshots/&lt;commit&gt;/</c> refers to its blob in <c>blobs/</c>.</summary>
public enum SnapshotLinkMode
{
    /// <summary>A hard link to the blob (no extra disk space); falls back to a copy where links are not possible.</summary>
    HardLink,

    /// <summary>A relative symbolic link <c>../../blobs/&lt;etag&gt;</c> as huggingface_hub makes; falls back to a copy.</summary>
    Symlink,

    /// <summary>An independent copy of the blob.</summary>
    Copy,
}

/// <summary>
/// Settings of <see cref="HubClient"/> and <see cref="ModelResolver"/>. A new instance is filled from the
/// environment (see <see cref="FromEnvironment"/>); every property may then be overridden.
/// </summary>
public sealed class HubOptions
{
    /// <summary>The public Hugging Face hub.</summary>
    public const string DefaultEndpoint = "https://huggingface.co";

    /// <summary>Options filled from the process environment.</summary>
    public HubOptions()
        : this(Environment.GetEnvironmentVariable, OperatingSystem.IsWindows())
    {
    }

    private HubOptions(Func<string, string?> getEnv, bool windows)
    {
        Endpoint = FirstNonEmpty(getEnv, "MLFT_HF_ENDPOINT", "HF_ENDPOINT") ?? DefaultEndpoint;
        CacheDirectory = DefaultCacheDirectory(getEnv, windows);
        Offline = IsTrue(getEnv("MLFT_OFFLINE")) || IsTrue(getEnv("HF_HUB_OFFLINE"));
        Token = FirstNonEmpty(getEnv, "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN");
    }

    /// <summary>
    /// Hub base URL; <c>{Endpoint}/{owner}/{name}/resolve/{revision}/{file}</c> is requested.
    /// Default <c>https://huggingface.co</c>, or env <c>MLFT_HF_ENDPOINT</c>, else <c>HF_ENDPOINT</c>.
    /// </summary>
    public string Endpoint { get; set; }

    /// <summary>
    /// Root of the huggingface_hub-style cache (<c>models--owner--name/{blobs,snapshots,refs}</c>).
    /// Default: env <c>MLFT_CACHE</c>; else <c>HF_HUB_CACHE</c>; else <c>$HF_HOME/hub</c>; else
    /// <c>%LOCALAPPDATA%\MlNetFineTune\hub</c> on Windows and <c>$XDG_CACHE_HOME/mlnetfinetune/hub</c>
    /// (or <c>~/.cache/mlnetfinetune/hub</c>) elsewhere.
    /// </summary>
    public string CacheDirectory { get; set; }

    /// <summary>
    /// Never touch the network; resolve only from the cache. Default: env <c>MLFT_OFFLINE</c> or
    /// <c>HF_HUB_OFFLINE</c> set to 1/true/yes/on.
    /// </summary>
    public bool Offline { get; set; }

    /// <summary>Access token sent as <c>Authorization: Bearer</c> to the endpoint only (never to a redirect target on another host). Default: env <c>HF_TOKEN</c>.</summary>
    public string? Token { get; set; }

    /// <summary>
    /// HTTP client to use; not disposed by the hub client. Best created over a handler with
    /// <c>AllowAutoRedirect = false</c> (the client follows redirects itself, reading the hub's metadata from
    /// the redirect response the way huggingface_hub does). Null: a private client is created.
    /// </summary>
    public HttpClient? HttpClient { get; set; }

    /// <summary>Time allowed for a request to receive its response headers. Default 10 s.</summary>
    public TimeSpan RequestTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Longest a download may go without receiving a byte before it is retried (resumed). Default 30 s.</summary>
    public TimeSpan ReadTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Retries after a transient failure (connection error, timeout, 408/429/5xx, dropped download) with no progress in between. Default 5.</summary>
    public int MaxRetries { get; set; } = 5;

    /// <summary>First back-off delay; doubled on each further retry up to <see cref="MaxRetryDelay"/>. Default 1 s.</summary>
    public TimeSpan RetryDelay { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>Upper bound of a back-off delay, including one asked for by <c>Retry-After</c>. Default 8 s.</summary>
    public TimeSpan MaxRetryDelay { get; set; } = TimeSpan.FromSeconds(8);

    /// <summary>
    /// When online and the file is already cached for a branch or tag, ask the hub (HEAD) whether the revision
    /// moved before using the cached copy, as huggingface_hub does. False: use the cached file without any
    /// request. Files of a pinned 40-hex commit are never revalidated. Default true.
    /// </summary>
    public bool RevalidateCachedFiles { get; set; } = true;

    /// <summary>How snapshot entries refer to blobs. Default <see cref="SnapshotLinkMode.HardLink"/>.</summary>
    public SnapshotLinkMode LinkMode { get; set; } = SnapshotLinkMode.HardLink;

    /// <summary>Longest wait for another process's download lock on the same blob. Default 10 minutes.</summary>
    public TimeSpan LockTimeout { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>User-Agent header value.</summary>
    public string UserAgent { get; set; } = "MlNetFineTune-Hub/1.0";

    /// <summary>
    /// Options read from the given environment (for tests and hosts that keep their own settings);
    /// <paramref name="isWindows"/> picks the platform's default cache folder (default: the current OS).
    /// </summary>
    public static HubOptions FromEnvironment(Func<string, string?> getEnvironmentVariable, bool? isWindows = null)
    {
        ArgumentNullException.ThrowIfNull(getEnvironmentVariable);
        return new HubOptions(getEnvironmentVariable, isWindows ?? OperatingSystem.IsWindows());
    }

    /// <summary>A copy of these options.</summary>
    public HubOptions Clone() => (HubOptions)MemberwiseClone();

    internal static bool IsTrue(string? value) =>
        value is not null && value.Trim().ToUpperInvariant() is "1" or "TRUE" or "YES" or "ON";

    private static string? FirstNonEmpty(Func<string, string?> getEnv, params string[] names)
    {
        foreach (var name in names)
        {
            var value = getEnv(name);
            if (!string.IsNullOrWhiteSpace(value))
            {
                return value.Trim();
            }
        }

        return null;
    }

    private static string DefaultCacheDirectory(Func<string, string?> getEnv, bool windows)
    {
        var explicitDir = FirstNonEmpty(getEnv, "MLFT_CACHE", "HF_HUB_CACHE");
        if (explicitDir is not null)
        {
            return explicitDir;
        }

        var hfHome = FirstNonEmpty(getEnv, "HF_HOME");
        if (hfHome is not null)
        {
            return Path.Combine(hfHome, "hub");
        }

        if (windows)
        {
            var localAppData = FirstNonEmpty(getEnv, "LOCALAPPDATA")
                               ?? Environment.GetFolderPath(Environment.SpecialFolder.LocalApplicationData);
            return Path.Combine(localAppData, "MlNetFineTune", "hub");
        }

        var xdg = FirstNonEmpty(getEnv, "XDG_CACHE_HOME");
        if (xdg is not null)
        {
            return Path.Combine(xdg, "mlnetfinetune", "hub");
        }

        var home = FirstNonEmpty(getEnv, "HOME")
                   ?? Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
        return Path.Combine(home, ".cache", "mlnetfinetune", "hub");
    }
}

namespace MlNetFineTune.Models.Hub;

/// <summary>
/// Turns a <see cref="ModelSource"/> into local files: a local directory is checked in place; a hub repository is
/// resolved through a <see cref="HubClient"/> and its cache.
/// </summary>
public sealed class ModelResolver : IDisposable
{
    private readonly bool _ownsHub;

    /// <summary>A resolver with its own <see cref="HubClient"/> (options default to the environment).</summary>
    public ModelResolver(HubOptions? options = null)
        : this(new HubClient(options), ownsHub: true)
    {
    }

    /// <summary>A resolver over an existing hub client (not disposed by the resolver).</summary>
    public ModelResolver(HubClient hub)
        : this(hub, ownsHub: false)
    {
    }

    private ModelResolver(HubClient hub, bool ownsHub)
    {
        ArgumentNullException.ThrowIfNull(hub);
        Hub = hub;
        _ownsHub = ownsHub;
    }

    /// <summary>The hub client used for <c>hf://</c> sources.</summary>
    public HubClient Hub { get; }

    /// <summary>
    /// The local path of <paramref name="fileName"/> ('/'-separated, relative to the model root): for a local
    /// directory the file inside it (which must exist); for a hub source the cached snapshot file, downloaded when needed.
    /// </summary>
    /// <exception cref="FileNotFoundException">A local file is missing; for hub sources see <see cref="HubClient.ResolveFileAsync"/>.</exception>
    public async Task<string> ResolveFileAsync(ModelSource source, string fileName, IProgress<DownloadProgress>? progress = null, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(source);
        if (source.IsHub)
        {
            return await Hub.ResolveFileAsync(source, fileName, progress, ct).ConfigureAwait(false);
        }

        ct.ThrowIfCancellationRequested();
        var path = LocalFile(source, fileName);
        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"Model directory '{source.LocalPath}' has no file '{fileName}' (looked for '{path}').", path);
        }

        return path;
    }

    /// <summary>
    /// A directory holding all <paramref name="wantedFiles"/> and those of <paramref name="optionalFiles"/> that exist.
    /// For a local directory, the directory itself once every wanted file is found in it. For a hub source, the
    /// cache's <c>snapshots/&lt;commit&gt;</c> folder: the revision is pinned to the commit of the first file, so all
    /// files come from one commit; optional files the repository lacks are skipped.
    /// </summary>
    /// <exception cref="DirectoryNotFoundException">A local directory does not exist.</exception>
    /// <exception cref="FileNotFoundException">A wanted file is missing (its name is in the message and <see cref="FileNotFoundException.FileName"/>).</exception>
    public async Task<string> ResolveDirectoryAsync(
        ModelSource source,
        IEnumerable<string> wantedFiles,
        IEnumerable<string>? optionalFiles = null,
        IProgress<DownloadProgress>? progress = null,
        CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(wantedFiles);
        var wanted = wantedFiles.Distinct(StringComparer.Ordinal).ToList();
        var optional = (optionalFiles ?? []).Distinct(StringComparer.Ordinal).Where(f => !wanted.Contains(f)).ToList();
        foreach (var name in wanted.Concat(optional))
        {
            HubCache.ValidateFileName(name);
        }

        if (!source.IsHub)
        {
            return ResolveLocalDirectory(source, wanted);
        }

        if (wanted.Count == 0)
        {
            throw new ArgumentException("At least one wanted file is needed to pin a hub revision to a commit.", nameof(wantedFiles));
        }

        var pinned = source;
        string? commit = null;
        foreach (var name in wanted)
        {
            var (_, fileCommit) = await Hub.ResolveFileCoreAsync(pinned, name, progress, ct).ConfigureAwait(false);
            if (commit is null)
            {
                commit = fileCommit;
                pinned = source.WithRevision(fileCommit);
            }
        }

        foreach (var name in optional)
        {
            try
            {
                await Hub.ResolveFileCoreAsync(pinned, name, progress, ct).ConfigureAwait(false);
            }
            catch (HubEntryNotFoundException)
            {
                // The repository has no such file: fine for an optional one.
            }
            catch (HubOfflineFileNotFoundException)
            {
                // Offline and never downloaded: treated as absent.
            }
        }

        return Hub.Cache.GetSnapshotDirectory(source, commit!);
    }

    /// <summary>Disposes the hub client when this resolver created it.</summary>
    public void Dispose()
    {
        if (_ownsHub)
        {
            Hub.Dispose();
        }
    }

    private static string ResolveLocalDirectory(ModelSource source, List<string> wanted)
    {
        var root = source.LocalPath!;
        if (!Directory.Exists(root))
        {
            throw new DirectoryNotFoundException($"Model directory '{root}' does not exist.");
        }

        var missing = wanted.Where(f => !File.Exists(LocalFile(source, f))).ToList();
        if (missing.Count > 0)
        {
            var others = missing.Count > 1 ? $" (also missing: {string.Join(", ", missing.Skip(1).Select(m => $"'{m}'"))})" : string.Empty;
            throw new FileNotFoundException(
                $"Model directory '{root}' is missing required file '{missing[0]}'{others}.",
                LocalFile(source, missing[0]));
        }

        return root;
    }

    private static string LocalFile(ModelSource source, string fileName) =>
        Path.Combine(source.LocalPath!, HubCache.ToNativePath(HubCache.ValidateFileName(fileName)));
}

using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.CodeAnalysis;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;

namespace MlNetFineTune.Models.Hub;

/// <summary>
/// The on-disk cache, laid out like huggingface_hub's so that either can read the other's files:
/// <code>
/// {root}/models--{owner}--{name}/
///     blobs/{etag}                 file contents, named by ETag (sha256 for LFS files, git blob id otherwise)
///     blobs/{etag}.incomplete      a download in progress (kept for resuming)
///     refs/{revision}              the commit a branch or tag pointed to when last resolved
///     snapshots/{commit}/{file}    the file as of that commit (hard link, symlink or copy of its blob)
/// {root}/.locks/models--{owner}--{name}/{etag}.lock
/// </code>
/// </summary>
public sealed partial class HubCache
{
    private static readonly ConcurrentDictionary<string, SemaphoreSlim> Gates = new(StringComparer.Ordinal);

    /// <summary>A cache rooted at <paramref name="rootDirectory"/> (created on first write).</summary>
    public HubCache(string rootDirectory)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(rootDirectory);
        RootDirectory = Path.GetFullPath(rootDirectory);
    }

    /// <summary>Full path of the cache root.</summary>
    public string RootDirectory { get; }

    /// <summary>huggingface_hub's folder name for a model repository: <c>models--owner--name</c>.</summary>
    public static string RepoFolderName(ModelSource source) =>
        $"models--{RequireHub(source).Owner}--{source.Name}";

    /// <summary><c>{root}/models--owner--name</c>.</summary>
    public string GetRepoDirectory(ModelSource source) => Path.Combine(RootDirectory, RepoFolderName(source));

    /// <summary><c>{repo}/blobs/{etag}</c>.</summary>
    public string GetBlobPath(ModelSource source, string etag) =>
        Path.Combine(GetRepoDirectory(source), "blobs", BlobName(etag));

    /// <summary><c>{repo}/snapshots/{commit}</c>.</summary>
    public string GetSnapshotDirectory(ModelSource source, string commit)
    {
        RequireSafeName(commit, "commit");
        return Path.Combine(GetRepoDirectory(source), "snapshots", commit);
    }

    /// <summary><c>{repo}/snapshots/{commit}/{file}</c>.</summary>
    public string GetSnapshotFilePath(ModelSource source, string commit, string fileName) =>
        Path.Combine(GetSnapshotDirectory(source, commit), ToNativePath(ValidateFileName(fileName)));

    /// <summary><c>{repo}/refs/{revision}</c> (a revision such as <c>refs/pr/1</c> nests folders, as in huggingface_hub).</summary>
    public string GetRefPath(ModelSource source, string revision) =>
        Path.Combine(GetRepoDirectory(source), "refs", ToNativePath(revision));

    /// <summary>
    /// The commit the source's revision stands for in the cache: the revision itself when it is a 40-hex commit,
    /// else the content of <c>refs/{revision}</c>; null when unknown.
    /// </summary>
    public string? TryResolveCommit(ModelSource source)
    {
        RequireHub(source);
        if (ModelSource.IsCommitHash(source.Revision))
        {
            return source.Revision;
        }

        var refPath = GetRefPath(source, source.Revision!);
        try
        {
            if (!File.Exists(refPath))
            {
                return null;
            }

            var commit = File.ReadAllText(refPath).Trim();
            return IsSafeName(commit) ? commit : null;
        }
        catch (IOException)
        {
            return null;
        }
        catch (UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>Looks a file up in the cache without any network access.</summary>
    public bool TryGetCachedFile(ModelSource source, string fileName, [NotNullWhen(true)] out string? path) =>
        TryGetCachedFile(source, fileName, out path, out _);

    /// <summary>Looks a file up in the cache without any network access, also giving the commit it was found under.</summary>
    public bool TryGetCachedFile(ModelSource source, string fileName, [NotNullWhen(true)] out string? path, [NotNullWhen(true)] out string? commit)
    {
        path = null;
        commit = TryResolveCommit(source);
        if (commit is null)
        {
            return false;
        }

        var candidate = GetSnapshotFilePath(source, commit, fileName);
        if (File.Exists(candidate))
        {
            path = candidate;
            return true;
        }

        commit = null;
        return false;
    }

    /// <summary>Records that <c>refs/{revision}</c> points at <paramref name="commit"/> (atomic replace; no-op for commit revisions).</summary>
    public void WriteRef(ModelSource source, string commit)
    {
        RequireHub(source);
        RequireSafeName(commit, "commit");
        if (string.Equals(source.Revision, commit, StringComparison.Ordinal))
        {
            return;
        }

        var refPath = GetRefPath(source, source.Revision!);
        try
        {
            if (File.Exists(refPath) && File.ReadAllText(refPath).Trim() == commit)
            {
                return;
            }
        }
        catch (IOException)
        {
            // Unreadable ref: rewrite it below.
        }

        Directory.CreateDirectory(Path.GetDirectoryName(refPath)!);
        var tmp = $"{refPath}.tmp-{Guid.NewGuid():N}";
        try
        {
            File.WriteAllText(tmp, commit);
            File.Move(tmp, refPath, overwrite: true);
        }
        finally
        {
            File.Delete(tmp);
        }
    }

    /// <summary>
    /// Checks a file path inside a repository: relative, '/'-separated, no empty, '.' or '..' segments,
    /// no backslashes, colons or control characters. Returns it unchanged.
    /// </summary>
    /// <exception cref="ArgumentException">The name is unsafe.</exception>
    public static string ValidateFileName(string fileName)
    {
        ArgumentNullException.ThrowIfNull(fileName);
        string? problem = null;
        if (fileName.Length == 0)
        {
            problem = "it is empty";
        }
        else if (fileName.Contains('\\'))
        {
            problem = "use '/' to separate folders, not '\\'";
        }
        else if (fileName.Contains(':') || fileName.Any(char.IsControl))
        {
            problem = "it contains ':' or a control character";
        }
        else if (fileName[0] == '/')
        {
            problem = "it must be relative to the repository root";
        }
        else if (fileName.Split('/').Any(s => s.Length == 0 || s == "." || s == ".."))
        {
            problem = "it has an empty, '.' or '..' segment";
        }

        if (problem is not null)
        {
            throw new ArgumentException($"Invalid repository file name '{fileName}': {problem}.", nameof(fileName));
        }

        return fileName;
    }

    internal static string ToNativePath(string repoPath) => repoPath.Replace('/', Path.DirectorySeparatorChar);

    /// <summary>A file name for the blob of an ETag: the ETag itself when it is a plain token, else a hash of it.</summary>
    internal static string BlobName(string etag)
    {
        ArgumentException.ThrowIfNullOrEmpty(etag);
        return IsSafeName(etag) && etag.Length <= 128
            ? etag
            : "etag-" + Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(etag)));
    }

    internal string GetLockPath(ModelSource source, string etag) =>
        Path.Combine(RootDirectory, ".locks", RepoFolderName(source), BlobName(etag) + ".lock");

    internal static bool IsSafeName(string? value) =>
        !string.IsNullOrEmpty(value) && value != "." && value != ".." && SafeNameRegex().IsMatch(value);

    /// <summary>
    /// Takes the download lock of a blob: an in-process gate, then an exclusive lock file so that other
    /// processes sharing the cache wait too.
    /// </summary>
    internal static async Task<IDisposable> AcquireLockAsync(string lockPath, TimeSpan timeout, CancellationToken ct)
    {
        var gate = Gates.GetOrAdd(lockPath, _ => new SemaphoreSlim(1, 1));
        if (!await gate.WaitAsync(timeout, ct).ConfigureAwait(false))
        {
            throw new TimeoutException($"Timed out after {timeout} waiting for the download lock '{lockPath}'.");
        }

        try
        {
            Directory.CreateDirectory(Path.GetDirectoryName(lockPath)!);
            var watch = Stopwatch.StartNew();
            while (true)
            {
                try
                {
                    var stream = new FileStream(lockPath, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
                    return new LockHandle(gate, stream);
                }
                catch (IOException) when (watch.Elapsed < timeout)
                {
                    // Another process holds it.
                    await Task.Delay(50, ct).ConfigureAwait(false);
                }
                catch (IOException e)
                {
                    throw new TimeoutException($"Timed out after {timeout} waiting for the download lock '{lockPath}', held by another process.", e);
                }
            }
        }
        catch
        {
            gate.Release();
            throw;
        }
    }

    /// <summary>
    /// Makes <paramref name="snapshotPath"/> refer to <paramref name="blobPath"/> without ever exposing a partial
    /// file: the entry is built under a temporary name and then moved into place.
    /// </summary>
    internal static void CreateSnapshotEntry(string blobPath, string snapshotPath, SnapshotLinkMode mode)
    {
        if (File.Exists(snapshotPath))
        {
            return;
        }

        var info = new FileInfo(snapshotPath);
        if (info.LinkTarget is not null)
        {
            info.Delete(); // a dangling symlink (its blob was removed)
        }

        var directory = Path.GetDirectoryName(snapshotPath)!;
        Directory.CreateDirectory(directory);
        var tmp = Path.Combine(directory, $".{Path.GetFileName(snapshotPath)}.tmp-{Guid.NewGuid():N}");
        try
        {
            var linked = mode switch
            {
                SnapshotLinkMode.HardLink => TryCreateHardLink(blobPath, tmp),
                SnapshotLinkMode.Symlink => TryCreateSymlink(blobPath, tmp),
                _ => false,
            };
            if (!linked)
            {
                File.Copy(blobPath, tmp, overwrite: true);
            }

            try
            {
                File.Move(tmp, snapshotPath, overwrite: false);
            }
            catch (IOException) when (File.Exists(snapshotPath))
            {
                // Another writer placed the same content first.
            }
        }
        finally
        {
            File.Delete(tmp);
        }
    }

    private static bool TryCreateSymlink(string blobPath, string linkPath)
    {
        try
        {
            var relative = Path.GetRelativePath(Path.GetDirectoryName(linkPath)!, blobPath);
            File.CreateSymbolicLink(linkPath, relative);
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or PlatformNotSupportedException)
        {
            return false;
        }
    }

    private static bool TryCreateHardLink(string existingPath, string newPath)
    {
        try
        {
            return OperatingSystem.IsWindows()
                ? NativeMethods.CreateHardLinkW(newPath, existingPath, IntPtr.Zero)
                : LinkUnix(existingPath, newPath);
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException or MarshalDirectiveException)
        {
            return false;
        }
    }

    private static bool LinkUnix(string existingPath, string newPath)
    {
        try
        {
            return NativeMethods.Link(existingPath, newPath) == 0;
        }
        catch (DllNotFoundException) when (OperatingSystem.IsLinux())
        {
            // glibc without the development symlink 'libc.so'.
            return NativeMethods.LinkGlibc(existingPath, newPath) == 0;
        }
    }

    private static ModelSource RequireHub(ModelSource source)
    {
        ArgumentNullException.ThrowIfNull(source);
        if (!source.IsHub)
        {
            throw new ArgumentException($"'{source}' is a local directory, not a hub repository.", nameof(source));
        }

        return source;
    }

    private static void RequireSafeName(string value, string what)
    {
        if (!IsSafeName(value))
        {
            throw new ArgumentException($"Invalid {what} '{value}'.", what);
        }
    }

    [GeneratedRegex("^[A-Za-z0-9._-]+$")]
    private static partial Regex SafeNameRegex();

    private sealed class LockHandle(SemaphoreSlim gate, FileStream stream) : IDisposable
    {
        private int _disposed;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) == 0)
            {
                stream.Dispose();
                gate.Release();
            }
        }
    }

    private static partial class NativeMethods
    {
        [LibraryImport("libc", EntryPoint = "link", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
        internal static partial int Link(string existingPath, string newPath);

        [LibraryImport("libc.so.6", EntryPoint = "link", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
        internal static partial int LinkGlibc(string existingPath, string newPath);

        [LibraryImport("kernel32.dll", EntryPoint = "CreateHardLinkW", StringMarshalling = StringMarshalling.Utf16, SetLastError = true)]
        [return: MarshalAs(UnmanagedType.Bool)]
        internal static partial bool CreateHardLinkW(string newPath, string existingPath, IntPtr securityAttributes);
    }
}

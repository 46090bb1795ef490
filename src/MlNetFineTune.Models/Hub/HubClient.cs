using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;

namespace MlNetFineTune.Models.Hub;

/// <summary>What the hub says about one file at one revision (from a HEAD on its <c>resolve</c> URL).</summary>
/// <param name="Commit">Commit the revision resolved to (<c>X-Repo-Commit</c>).</param>
/// <param name="ETag">Normalised ETag (<c>X-Linked-Etag</c>, else <c>ETag</c>; no quotes, no <c>W/</c>): the sha256 of LFS files, the git blob id otherwise.</param>
/// <param name="Size">Size in bytes (<c>X-Linked-Size</c>, else <c>Content-Length</c>), when given.</param>
/// <param name="DownloadUri">Where the content is fetched from (the redirect target for LFS files).</param>
public sealed record HubFileMetadata(string Commit, string ETag, long? Size, Uri DownloadUri)
{
    /// <summary>True when <see cref="ETag"/> is a 64-hex sha256 the content can be checked against.</summary>
    public bool IsSha256 => ETag.Length == 64 && ETag.All(char.IsAsciiHexDigit);
}

/// <summary>
/// Downloads files of hub repositories (<c>hf://owner/name[@revision]</c>) into a huggingface_hub-style cache
/// (<see cref="HubCache"/>), with resumable, verified downloads, retries and an offline mode.
/// </summary>
public sealed class HubClient : IDisposable
{
    private const int MaxRedirects = 10;
    private const int BufferSize = 81920;

    private readonly HubOptions _options;
    private readonly HttpClient _http;
    private readonly bool _ownsHttp;
    private readonly Uri _endpoint;

    /// <summary>A client with the given options (default: <c>new HubOptions()</c>, i.e. from the environment).</summary>
    public HubClient(HubOptions? options = null)
    {
        _options = (options ?? new HubOptions()).Clone();
        if (!Uri.TryCreate(_options.Endpoint.TrimEnd('/'), UriKind.Absolute, out var endpoint)
            || (endpoint.Scheme != Uri.UriSchemeHttp && endpoint.Scheme != Uri.UriSchemeHttps))
        {
            throw new ArgumentException($"Hub endpoint '{_options.Endpoint}' is not an absolute http(s) URL.", nameof(options));
        }

        if (_options.MaxRetries < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(options), "MaxRetries must not be negative.");
        }

        _endpoint = endpoint;
        Cache = new HubCache(_options.CacheDirectory);
        if (_options.HttpClient is { } injected)
        {
            _http = injected;
        }
        else
        {
            _http = new HttpClient(new SocketsHttpHandler
            {
                AllowAutoRedirect = false,
                AutomaticDecompression = DecompressionMethods.None,
                PooledConnectionLifetime = TimeSpan.FromMinutes(5),
                ConnectTimeout = _options.RequestTimeout,
            })
            {
                Timeout = Timeout.InfiniteTimeSpan,
            };
            _ownsHttp = true;
        }
    }

    /// <summary>The cache this client reads and fills.</summary>
    public HubCache Cache { get; }

    /// <summary>The endpoint requests go to.</summary>
    public Uri Endpoint => _endpoint;

    /// <summary>True when the client never touches the network.</summary>
    public bool IsOffline => _options.Offline;

    /// <summary><c>{endpoint}/{owner}/{name}/resolve/{revision}/{file}</c>, revision and file percent-encoded as huggingface_hub does.</summary>
    public Uri GetFileUrl(ModelSource source, string fileName)
    {
        RequireHub(source);
        HubCache.ValidateFileName(fileName);
        var file = string.Join('/', fileName.Split('/').Select(Uri.EscapeDataString));
        return new Uri($"{_endpoint.AbsoluteUri.TrimEnd('/')}/{source.Owner}/{source.Name}/resolve/{Uri.EscapeDataString(source.Revision!)}/{file}");
    }

    /// <summary>
    /// Returns the local path of <paramref name="fileName"/> from a hub source, downloading it into the cache when
    /// needed. Online, the hub is asked (HEAD) which commit and blob the revision's file is at, so a moved branch is
    /// noticed; when it cannot be reached, keeps failing or refuses (401/403), a cached copy is used instead, as
    /// huggingface_hub does. Offline, only the cache is used and nothing is sent.
    /// </summary>
    /// <exception cref="HubOfflineFileNotFoundException">Offline and not cached.</exception>
    /// <exception cref="HubEntryNotFoundException">The repository has no such file.</exception>
    /// <exception cref="HubRepositoryNotFoundException">No such repository, or it is private and no valid token was sent.</exception>
    /// <exception cref="HubAccessDeniedException">Gated or forbidden.</exception>
    /// <exception cref="HubDownloadException">The content did not match the hub's size or sha256.</exception>
    /// <exception cref="HubUnavailableException">The hub could not be reached and the file is not cached.</exception>
    public async Task<string> ResolveFileAsync(ModelSource source, string fileName, IProgress<DownloadProgress>? progress = null, CancellationToken ct = default) =>
        (await ResolveFileCoreAsync(source, fileName, progress, ct).ConfigureAwait(false)).Path;

    /// <summary>Asks the hub for a file's metadata (HEAD on its resolve URL, following same-host redirects only).</summary>
    public async Task<HubFileMetadata> GetFileMetadataAsync(ModelSource source, string fileName, CancellationToken ct = default)
    {
        RequireHub(source);
        if (_options.Offline)
        {
            throw new InvalidOperationException("The hub client is offline; it makes no requests.");
        }

        var url = GetFileUrl(source, fileName);
        for (var attempt = 0; ; attempt++)
        {
            Exception failure;
            HttpStatusCode? failedStatus = null;
            TimeSpan? retryAfter = null;
            try
            {
                using var response = await SendAsync(HttpMethod.Head, url, rangeFrom: 0, followCrossOrigin: false, ct).ConfigureAwait(false);
                var status = (int)response.StatusCode;
                if (status is >= 200 and < 400)
                {
                    return ReadMetadata(response, source, fileName);
                }

                if (!IsTransientStatus(response.StatusCode))
                {
                    throw MapHttpError(response, source, fileName);
                }

                failedStatus = response.StatusCode;
                retryAfter = RetryAfter(response);
                failure = new HubHttpException($"The hub answered {status} {response.ReasonPhrase} for {url}.", response.StatusCode, ErrorCode(response), source.RepoId, source.Revision, fileName);
            }
            catch (Exception e) when (IsTransient(e, ct))
            {
                failure = e;
            }

            if (attempt >= _options.MaxRetries)
            {
                throw new HubUnavailableException(
                    $"Could not get '{fileName}' of {source} from {_endpoint}: {Describe(failure)} (gave up after {attempt + 1} attempt(s)).",
                    source.RepoId, source.Revision, fileName, failedStatus, failure);
            }

            await Task.Delay(Backoff(attempt + 1, retryAfter), ct).ConfigureAwait(false);
        }
    }

    /// <summary>Releases the HTTP client if this instance created it.</summary>
    public void Dispose()
    {
        if (_ownsHttp)
        {
            _http.Dispose();
        }
    }

    internal async Task<(string Path, string Commit)> ResolveFileCoreAsync(ModelSource source, string fileName, IProgress<DownloadProgress>? progress, CancellationToken ct)
    {
        RequireHub(source);
        HubCache.ValidateFileName(fileName);
        ct.ThrowIfCancellationRequested();

        if (_options.Offline)
        {
            if (Cache.TryGetCachedFile(source, fileName, out var cached, out var cachedCommit))
            {
                return (cached, cachedCommit);
            }

            throw OfflineMiss(source, fileName, reason: "offline mode is enabled (MLFT_OFFLINE / HF_HUB_OFFLINE or HubOptions.Offline), so the hub was not contacted", inner: null);
        }

        // A commit never changes: a cached file of a pinned commit needs no request. Without revalidation,
        // neither does a cached file of a branch or tag.
        if ((source.IsPinnedCommit || !_options.RevalidateCachedFiles)
            && Cache.TryGetCachedFile(source, fileName, out var hit, out var hitCommit))
        {
            return (hit, hitCommit);
        }

        HubFileMetadata meta;
        try
        {
            meta = await GetFileMetadataAsync(source, fileName, ct).ConfigureAwait(false);
        }
        catch (HubException e) when (e is not HubRevisionNotFoundException)
        {
            // As huggingface_hub does: when the hub cannot be reached, keeps failing, refuses the request
            // (private or gated without a valid token) or does not answer like a hub, a cached copy is good
            // enough. A missing file or revision is reported as such.
            if (Cache.TryGetCachedFile(source, fileName, out var fallback, out var fallbackCommit))
            {
                return (fallback, fallbackCommit);
            }

            if (e is not HubUnavailableException unavailable)
            {
                throw;
            }

            throw new HubUnavailableException(
                e.Message + $" The file is not in the cache at '{Cache.RootDirectory}' either. Check the network and the endpoint " +
                "(MLFT_HF_ENDPOINT / HF_ENDPOINT), or fill the cache where the hub is reachable and set MLFT_OFFLINE=1.",
                source.RepoId, source.Revision, fileName, unavailable.LastStatusCode, unavailable.InnerException);
        }

        var snapshotPath = Cache.GetSnapshotFilePath(source, meta.Commit, fileName);
        if (!File.Exists(snapshotPath))
        {
            var blobPath = Cache.GetBlobPath(source, meta.ETag);
            if (!File.Exists(blobPath))
            {
                using (await HubCache.AcquireLockAsync(Cache.GetLockPath(source, meta.ETag), _options.LockTimeout, ct).ConfigureAwait(false))
                {
                    if (!File.Exists(blobPath))
                    {
                        await DownloadBlobAsync(source, fileName, meta, blobPath, progress, ct).ConfigureAwait(false);
                    }
                }
            }

            HubCache.CreateSnapshotEntry(blobPath, snapshotPath, _options.LinkMode);
        }

        Cache.WriteRef(source, meta.Commit);
        return (snapshotPath, meta.Commit);
    }

    internal HubOfflineFileNotFoundException OfflineMiss(ModelSource source, string fileName, string reason, Exception? inner)
    {
        var commit = Cache.TryResolveCommit(source);
        var where = commit is null
            ? $"the cache has no record of revision '{source.Revision}' for {source.RepoId}"
            : $"the cached snapshot {commit} of {source.RepoId} has no '{fileName}'";
        return new HubOfflineFileNotFoundException(
            $"Cannot resolve '{fileName}' from {source.RepoId} at revision '{source.Revision}': {reason}, and {where} " +
            $"(cache: '{Cache.RootDirectory}'). Download it once while online, or unset MLFT_OFFLINE / HF_HUB_OFFLINE.",
            source.RepoId!, source.Revision!, fileName, Cache.RootDirectory, inner);
    }

    private async Task DownloadBlobAsync(ModelSource source, string fileName, HubFileMetadata meta, string blobPath, IProgress<DownloadProgress>? progress, CancellationToken ct)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(blobPath)!);
        var incomplete = blobPath + ".incomplete";
        var have = File.Exists(incomplete) ? new FileInfo(incomplete).Length : 0L;
        if (meta.Size is long expectedSize && have > expectedSize)
        {
            have = 0; // longer than the file can be: not a prefix of it
        }

        var failures = 0;
        while (meta.Size is not long size || have < size)
        {
            var before = have;
            Exception failure;
            HttpStatusCode? failedStatus = null;
            TimeSpan? retryAfter = null;
            try
            {
                var completed = await DownloadAttemptAsync(source, fileName, meta, incomplete, have, progress, ct).ConfigureAwait(false);
                have = completed.Have;
                if (completed.Done)
                {
                    break;
                }

                failedStatus = completed.Status;
                retryAfter = completed.RetryAfter;
                failure = completed.Failure!;
            }
            catch (Exception e) when (IsTransient(e, ct))
            {
                failure = e;
                have = File.Exists(incomplete) ? new FileInfo(incomplete).Length : 0;
            }

            failures = have > before ? 0 : failures + 1;
            if (failures > _options.MaxRetries)
            {
                throw new HubUnavailableException(
                    $"Downloading '{fileName}' of {source} from {meta.DownloadUri} failed: {Describe(failure)} " +
                    $"({have} of {meta.Size?.ToString() ?? "?"} bytes kept in '{incomplete}' for a later resume).",
                    source.RepoId, source.Revision, fileName, failedStatus, failure);
            }

            if (failures > 0)
            {
                await Task.Delay(Backoff(failures, retryAfter), ct).ConfigureAwait(false);
            }
        }

        await VerifyAsync(source, fileName, meta, incomplete, ct).ConfigureAwait(false);
        File.Move(incomplete, blobPath, overwrite: true);
        progress?.Report(new DownloadProgress(fileName, have, meta.Size ?? have));
    }

    private readonly record struct AttemptResult(bool Done, long Have, Exception? Failure, HttpStatusCode? Status, TimeSpan? RetryAfter);

    private async Task<AttemptResult> DownloadAttemptAsync(ModelSource source, string fileName, HubFileMetadata meta, string incomplete, long have, IProgress<DownloadProgress>? progress, CancellationToken ct)
    {
        using var response = await SendAsync(HttpMethod.Get, meta.DownloadUri, have, followCrossOrigin: true, ct).ConfigureAwait(false);
        var status = response.StatusCode;
        if (status == HttpStatusCode.RequestedRangeNotSatisfiable && have > 0)
        {
            // Nothing left to send from that offset: complete when the size agrees, otherwise start over.
            if (meta.Size is null || meta.Size == have)
            {
                return new AttemptResult(true, have, null, null, null);
            }

            TruncateTo(incomplete, 0);
            return new AttemptResult(false, 0, new IOException($"The server refused the range from byte {have}."), status, null);
        }

        if (IsTransientStatus(status))
        {
            return new AttemptResult(false, have,
                new HubHttpException($"The server answered {(int)status} {response.ReasonPhrase} for {meta.DownloadUri}.", status, ErrorCode(response), source.RepoId, source.Revision, fileName),
                status, RetryAfter(response));
        }

        if (!response.IsSuccessStatusCode)
        {
            throw MapHttpError(response, source, fileName);
        }

        var offset = 0L;
        if (status == HttpStatusCode.PartialContent)
        {
            offset = response.Content.Headers.ContentRange?.From ?? -1;
            if (offset != have)
            {
                TruncateTo(incomplete, 0);
                return new AttemptResult(false, 0, new IOException($"The server sent a range starting at {offset}, not at the requested byte {have}."), status, null);
            }
        }

        // 200 (also when a range was asked for): the whole file follows, so start over.
        have = offset;
        progress?.Report(new DownloadProgress(fileName, have, meta.Size));

        await using var file = new FileStream(incomplete, FileMode.OpenOrCreate, FileAccess.Write, FileShare.Read, BufferSize, FileOptions.Asynchronous);
        file.SetLength(have);
        file.Position = have;

        await using var body = await response.Content.ReadAsStreamAsync(ct).ConfigureAwait(false);
        using var readCts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var buffer = new byte[BufferSize];
        try
        {
            while (true)
            {
                readCts.CancelAfter(_options.ReadTimeout);
                int read;
                try
                {
                    read = await body.ReadAsync(buffer, readCts.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException e) when (!ct.IsCancellationRequested)
                {
                    throw new TimeoutException($"No data received for {_options.ReadTimeout} while downloading '{fileName}'.", e);
                }

                if (read == 0)
                {
                    break;
                }

                await file.WriteAsync(buffer.AsMemory(0, read), ct).ConfigureAwait(false);
                have += read;
                progress?.Report(new DownloadProgress(fileName, have, meta.Size));
                if (meta.Size is long limit && have > limit)
                {
                    break; // more than announced: verification rejects it
                }
            }
        }
        finally
        {
            await file.FlushAsync(CancellationToken.None).ConfigureAwait(false);
        }

        if (meta.Size is long size && have < size)
        {
            throw new IOException($"The connection closed after {have} of {size} bytes of '{fileName}'.");
        }

        return new AttemptResult(true, have, null, null, null);
    }

    private static async Task VerifyAsync(ModelSource source, string fileName, HubFileMetadata meta, string incomplete, CancellationToken ct)
    {
        var actualSize = new FileInfo(incomplete).Length;
        if (meta.Size is long size && actualSize != size)
        {
            File.Delete(incomplete);
            throw new HubDownloadException(
                $"Download of '{fileName}' from {source} is {actualSize} bytes, but the hub announced {size} bytes; the partial file was deleted.",
                source.RepoId, source.Revision, fileName, $"{size} bytes", $"{actualSize} bytes");
        }

        if (!meta.IsSha256)
        {
            return;
        }

        string actual;
        await using (var stream = new FileStream(incomplete, FileMode.Open, FileAccess.Read, FileShare.Read, BufferSize, FileOptions.Asynchronous | FileOptions.SequentialScan))
        {
            actual = Convert.ToHexStringLower(await SHA256.HashDataAsync(stream, ct).ConfigureAwait(false));
        }

        var expected = meta.ETag.ToLowerInvariant();
        if (actual != expected)
        {
            File.Delete(incomplete);
            throw new HubDownloadException(
                $"sha256 mismatch for '{fileName}' from {source}: expected {expected}, got {actual}; the download was discarded.",
                source.RepoId, source.Revision, fileName, expected, actual);
        }
    }

    private static void TruncateTo(string path, long length)
    {
        if (File.Exists(path))
        {
            using var stream = new FileStream(path, FileMode.Open, FileAccess.Write, FileShare.Read);
            stream.SetLength(length);
        }
    }

    private HubFileMetadata ReadMetadata(HttpResponseMessage response, ModelSource source, string fileName)
    {
        var commit = Header(response, "X-Repo-Commit");
        if (commit is null && source.IsPinnedCommit)
        {
            commit = source.Revision;
        }

        var requestUri = response.RequestMessage?.RequestUri ?? GetFileUrl(source, fileName);
        if (commit is null || !HubCache.IsSafeName(commit))
        {
            var redirected = requestUri.AbsoluteUri != GetFileUrl(source, fileName).AbsoluteUri
                ? $" The answer came from {requestUri.GetLeftPart(UriPartial.Path)} after a redirect: an injected HttpClient must be created with AllowAutoRedirect = false."
                : string.Empty;
            throw new HubException(
                $"The server at {_endpoint} sent no valid X-Repo-Commit header for '{fileName}' of {source}; it does not look like a " +
                $"Hugging Face hub. Check MLFT_HF_ENDPOINT / HF_ENDPOINT (or a proxy rewriting the answers).{redirected}",
                source.RepoId, source.Revision, fileName);
        }

        var etag = NormalizeETag(Header(response, "X-Linked-Etag") ?? Header(response, "ETag"));
        if (etag is null)
        {
            throw new HubException(
                $"The server at {_endpoint} sent no ETag for '{fileName}' of {source}, so the download cannot be cached or verified.",
                source.RepoId, source.Revision, fileName);
        }

        long? size = null;
        if (long.TryParse(Header(response, "X-Linked-Size"), out var linked) && linked >= 0)
        {
            size = linked;
        }
        else if (response.IsSuccessStatusCode && response.Content.Headers.ContentLength is long length && length >= 0)
        {
            size = length;
        }

        var downloadUri = requestUri;
        if ((int)response.StatusCode is >= 300 and < 400 && response.Headers.Location is { } location)
        {
            downloadUri = location.IsAbsoluteUri ? location : new Uri(requestUri, location);
        }

        return new HubFileMetadata(commit, etag, size, downloadUri);
    }

    /// <summary>
    /// Sends a request, following redirects itself (up to 10): same-origin redirects always, cross-origin ones only
    /// when <paramref name="followCrossOrigin"/> (a HEAD stops there, as huggingface_hub does, to read the hub's
    /// headers on the redirect). The token goes to the endpoint's origin only.
    /// </summary>
    private async Task<HttpResponseMessage> SendAsync(HttpMethod method, Uri uri, long rangeFrom, bool followCrossOrigin, CancellationToken ct)
    {
        for (var hop = 0; ; hop++)
        {
            using var request = new HttpRequestMessage(method, uri);
            request.Headers.UserAgent.ParseAdd(_options.UserAgent);
            request.Headers.AcceptEncoding.Add(new StringWithQualityHeaderValue("identity"));
            if (!string.IsNullOrEmpty(_options.Token) && SameOrigin(uri, _endpoint))
            {
                request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", _options.Token);
            }

            if (rangeFrom > 0)
            {
                request.Headers.Range = new RangeHeaderValue(rangeFrom, null);
            }

            HttpResponseMessage response;
            using (var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct))
            {
                timeout.CancelAfter(_options.RequestTimeout);
                try
                {
                    response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, timeout.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException e) when (!ct.IsCancellationRequested)
                {
                    throw new TimeoutException($"No response from {uri.GetLeftPart(UriPartial.Authority)} within {_options.RequestTimeout}.", e);
                }
            }

            var status = (int)response.StatusCode;
            if (status is not (301 or 302 or 303 or 307 or 308) || response.Headers.Location is not { } location)
            {
                return response;
            }

            var target = location.IsAbsoluteUri ? location : new Uri(uri, location);
            if (!followCrossOrigin && !SameOrigin(target, uri))
            {
                return response;
            }

            response.Dispose();
            if (hop >= MaxRedirects)
            {
                throw new HttpRequestException($"More than {MaxRedirects} redirects starting from {uri}.");
            }

            if (target.Scheme != Uri.UriSchemeHttp && target.Scheme != Uri.UriSchemeHttps)
            {
                throw new HttpRequestException($"Refusing a redirect to non-HTTP location {target}.");
            }

            uri = target;
        }
    }

    private Exception MapHttpError(HttpResponseMessage response, ModelSource source, string fileName)
    {
        var status = response.StatusCode;
        var code = ErrorCode(response);
        var hubMessage = Header(response, "X-Error-Message");
        var detail = hubMessage is null ? string.Empty : $" The hub said: {hubMessage}";
        var repo = source.RepoId!;
        var revision = source.Revision!;
        var tokenNote = string.IsNullOrEmpty(_options.Token)
            ? "No token was sent: set HF_TOKEN (or HubOptions.Token) to a token with access."
            : "A token was sent; check that it is valid and has access to this repository.";

        if (code == "EntryNotFound" || (status == HttpStatusCode.NotFound && code is null))
        {
            var suffix = code is null ? " (or the repository itself does not exist)" : string.Empty;
            return new HubEntryNotFoundException(
                $"File '{fileName}' was not found in {repo} at revision '{revision}'{suffix} (HTTP {(int)status}).{detail}",
                repo, revision, fileName, status);
        }

        if (code == "RevisionNotFound")
        {
            return new HubRevisionNotFoundException(
                $"Revision '{revision}' does not exist in {repo} (HTTP {(int)status}); check the branch, tag or commit.{detail}",
                status, code, repo, revision, fileName);
        }

        if (code == "GatedRepo")
        {
            return new HubAccessDeniedException(
                $"{repo} is a gated repository: access to '{fileName}' requires accepting its conditions on the model page " +
                $"and authenticating (HTTP {(int)status}). {tokenNote}{detail}",
                status, code, repo, revision, fileName, isGated: true);
        }

        if (code == "RepoNotFound" || status == HttpStatusCode.NotFound
            || (status == HttpStatusCode.Unauthorized && string.IsNullOrEmpty(_options.Token)))
        {
            return new HubRepositoryNotFoundException(
                $"Repository {repo} was not found (HTTP {(int)status}): it does not exist, or it is private or gated and " +
                $"the request was not authorised. {tokenNote}{detail}",
                status, code, repo, revision, fileName);
        }

        if (status is HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden)
        {
            return new HubAccessDeniedException(
                $"Access to '{fileName}' of {repo} was denied (HTTP {(int)status}): the repository is private or gated. {tokenNote}{detail}",
                status, code, repo, revision, fileName, isGated: false);
        }

        return new HubHttpException(
            $"The hub answered {(int)status} {response.ReasonPhrase} for '{fileName}' of {repo}@{revision}.{detail}",
            status, code, repo, revision, fileName);
    }

    private TimeSpan Backoff(int failures, TimeSpan? retryAfter)
    {
        var max = _options.MaxRetryDelay;
        if (retryAfter is { } asked && asked > TimeSpan.Zero)
        {
            return asked < max ? asked : max;
        }

        var delay = _options.RetryDelay * Math.Pow(2, Math.Min(failures - 1, 16));
        return delay < max ? delay : max;
    }

    private static TimeSpan? RetryAfter(HttpResponseMessage response)
    {
        var header = response.Headers.RetryAfter;
        if (header?.Delta is { } delta)
        {
            return delta;
        }

        return header?.Date is { } date ? date - DateTimeOffset.UtcNow : null;
    }

    private static bool IsTransientStatus(HttpStatusCode status) =>
        status is HttpStatusCode.RequestTimeout or HttpStatusCode.TooManyRequests || (int)status >= 500;

    private static bool IsTransient(Exception e, CancellationToken ct) => e switch
    {
        OperationCanceledException => !ct.IsCancellationRequested,
        HttpRequestException or TimeoutException => true,
        FileNotFoundException or DirectoryNotFoundException => false,
        IOException => true,
        _ => false,
    };

    private static string Describe(Exception e) => e switch
    {
        HubHttpException h => h.Message,
        HttpRequestException { InnerException: { } inner } h => $"{h.Message} ({inner.Message})",
        _ => e.Message,
    };

    private static string? ErrorCode(HttpResponseMessage response) => Header(response, "X-Error-Code");

    private static string? Header(HttpResponseMessage response, string name)
    {
        if (response.Headers.TryGetValues(name, out var values) || response.Content.Headers.TryGetValues(name, out values))
        {
            var value = values.FirstOrDefault()?.Trim();
            return string.IsNullOrEmpty(value) ? null : value;
        }

        return null;
    }

    internal static string? NormalizeETag(string? etag)
    {
        if (etag is null)
        {
            return null;
        }

        etag = etag.Trim();
        if (etag.StartsWith("W/", StringComparison.Ordinal))
        {
            etag = etag[2..];
        }

        etag = etag.Trim('"');
        return etag.Length == 0 ? null : etag;
    }

    private static bool SameOrigin(Uri a, Uri b) =>
        string.Equals(a.Scheme, b.Scheme, StringComparison.OrdinalIgnoreCase)
        && string.Equals(a.IdnHost, b.IdnHost, StringComparison.OrdinalIgnoreCase)
        && a.Port == b.Port;

    private static void RequireHub(ModelSource source)
    {
        ArgumentNullException.ThrowIfNull(source);
        if (!source.IsHub)
        {
            throw new ArgumentException($"'{source}' is a local directory; HubClient only resolves hf:// sources (use ModelResolver for both).", nameof(source));
        }
    }
}

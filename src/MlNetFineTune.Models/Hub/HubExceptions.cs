using System.Net;

namespace MlNetFineTune.Models.Hub;

/// <summary>Base of the errors raised while resolving a file from a hub.</summary>
public class HubException : Exception
{
    /// <summary>Creates the error.</summary>
    public HubException(string message, string? repoId = null, string? revision = null, string? fileName = null, Exception? innerException = null)
        : base(message, innerException)
    {
        RepoId = repoId;
        Revision = revision;
        FileName = fileName;
    }

    /// <summary><c>owner/name</c>, when known.</summary>
    public string? RepoId { get; }

    /// <summary>Requested revision, when known.</summary>
    public string? Revision { get; }

    /// <summary>Requested file (path inside the repository), when known.</summary>
    public string? FileName { get; }
}

/// <summary>The hub answered with an HTTP error status.</summary>
public class HubHttpException : HubException
{
    /// <summary>Creates the error.</summary>
    public HubHttpException(string message, HttpStatusCode statusCode, string? errorCode, string? repoId, string? revision, string? fileName, Exception? innerException = null)
        : base(message, repoId, revision, fileName, innerException)
    {
        StatusCode = statusCode;
        ErrorCode = errorCode;
    }

    /// <summary>HTTP status of the answer.</summary>
    public HttpStatusCode StatusCode { get; }

    /// <summary>The hub's <c>X-Error-Code</c> header (e.g. <c>RepoNotFound</c>, <c>GatedRepo</c>), if any.</summary>
    public string? ErrorCode { get; }
}

/// <summary>The repository does not exist, or is private or gated and the request was not authorised to see it (404 / 401).</summary>
public sealed class HubRepositoryNotFoundException : HubHttpException
{
    /// <summary>Creates the error.</summary>
    public HubRepositoryNotFoundException(string message, HttpStatusCode statusCode, string? errorCode, string? repoId, string? revision, string? fileName)
        : base(message, statusCode, errorCode, repoId, revision, fileName)
    {
    }
}

/// <summary>The repository exists but access is restricted: gated (conditions must be accepted) or forbidden to this token (401 / 403).</summary>
public sealed class HubAccessDeniedException : HubHttpException
{
    /// <summary>Creates the error.</summary>
    public HubAccessDeniedException(string message, HttpStatusCode statusCode, string? errorCode, string? repoId, string? revision, string? fileName, bool isGated)
        : base(message, statusCode, errorCode, repoId, revision, fileName)
    {
        IsGated = isGated;
    }

    /// <summary>True when the hub said the repository is gated.</summary>
    public bool IsGated { get; }
}

/// <summary>The revision (branch, tag or commit) does not exist in the repository.</summary>
public sealed class HubRevisionNotFoundException : HubHttpException
{
    /// <summary>Creates the error.</summary>
    public HubRevisionNotFoundException(string message, HttpStatusCode statusCode, string? errorCode, string? repoId, string? revision, string? fileName)
        : base(message, statusCode, errorCode, repoId, revision, fileName)
    {
    }
}

/// <summary>
/// The hub could not be reached, or kept failing (connection errors, timeouts, 408/429/5xx) after the configured
/// retries, and no cached copy could stand in.
/// </summary>
public sealed class HubUnavailableException : HubException
{
    /// <summary>Creates the error.</summary>
    public HubUnavailableException(string message, string? repoId, string? revision, string? fileName, HttpStatusCode? lastStatusCode, Exception? innerException)
        : base(message, repoId, revision, fileName, innerException)
    {
        LastStatusCode = lastStatusCode;
    }

    /// <summary>Status of the last failed answer, when the failure was an HTTP status rather than a connection error.</summary>
    public HttpStatusCode? LastStatusCode { get; }
}

/// <summary>The repository exists but has no such file at that revision (404).</summary>
public sealed class HubEntryNotFoundException : FileNotFoundException
{
    /// <summary>Creates the error.</summary>
    public HubEntryNotFoundException(string message, string repoId, string revision, string fileName, HttpStatusCode statusCode)
        : base(message, fileName)
    {
        RepoId = repoId;
        Revision = revision;
        StatusCode = statusCode;
    }

    /// <summary><c>owner/name</c>.</summary>
    public string RepoId { get; }

    /// <summary>Requested revision.</summary>
    public string Revision { get; }

    /// <summary>HTTP status of the answer.</summary>
    public HttpStatusCode StatusCode { get; }
}

/// <summary>Offline mode is on (or the hub could not be reached) and the file is not in the local cache.</summary>
public sealed class HubOfflineFileNotFoundException : FileNotFoundException
{
    /// <summary>Creates the error.</summary>
    public HubOfflineFileNotFoundException(string message, string repoId, string revision, string fileName, string cacheDirectory, Exception? innerException = null)
        : base(message, fileName, innerException)
    {
        RepoId = repoId;
        Revision = revision;
        CacheDirectory = cacheDirectory;
    }

    /// <summary><c>owner/name</c>.</summary>
    public string RepoId { get; }

    /// <summary>Requested revision.</summary>
    public string Revision { get; }

    /// <summary>The cache root that was searched.</summary>
    public string CacheDirectory { get; }
}

/// <summary>A download completed but its content does not match the hub's size or sha256; nothing was cached.</summary>
public sealed class HubDownloadException : HubException
{
    /// <summary>Creates the error.</summary>
    public HubDownloadException(string message, string? repoId, string? revision, string fileName, string expected, string actual, Exception? innerException = null)
        : base(message, repoId, revision, fileName, innerException)
    {
        Expected = expected;
        Actual = actual;
    }

    /// <summary>Expected sha256 (hex) or size.</summary>
    public string Expected { get; }

    /// <summary>What was received.</summary>
    public string Actual { get; }
}

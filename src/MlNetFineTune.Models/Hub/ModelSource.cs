using System.Diagnostics.CodeAnalysis;
using System.Text.RegularExpressions;

namespace MlNetFineTune.Models.Hub;

/// <summary>Where a model comes from.</summary>
public enum ModelSourceKind
{
    /// <summary>A directory on the local file system.</summary>
    LocalDirectory,

    /// <summary>A model repository on a Hugging Face compatible hub (<c>hf://owner/name[@revision]</c>).</summary>
    Hub,
}

/// <summary>
/// A reference to a pretrained model: either a local directory or a hub repository written
/// <c>hf://owner/name[@revision]</c> (the revision is a branch, tag or commit and defaults to <c>main</c>).
/// </summary>
public sealed partial record ModelSource
{
    /// <summary>URI scheme prefix of hub references.</summary>
    public const string HubScheme = "hf://";

    /// <summary>Revision used when an <c>hf://</c> reference names none.</summary>
    public const string DefaultRevision = "main";

    private const int MaxRepoPartLength = 96;
    private const int MaxRevisionLength = 256;

    private ModelSource(ModelSourceKind kind, string? localPath, string? owner, string? name, string? revision)
    {
        Kind = kind;
        LocalPath = localPath;
        Owner = owner;
        Name = name;
        Revision = revision;
    }

    /// <summary>Whether this is a local directory or a hub repository.</summary>
    public ModelSourceKind Kind { get; }

    /// <summary>Full path of the directory for <see cref="ModelSourceKind.LocalDirectory"/>; otherwise null.</summary>
    public string? LocalPath { get; }

    /// <summary>Repository owner (user or organisation) for hub sources; otherwise null.</summary>
    public string? Owner { get; }

    /// <summary>Repository name for hub sources; otherwise null.</summary>
    public string? Name { get; }

    /// <summary>Branch, tag or commit for hub sources; otherwise null.</summary>
    public string? Revision { get; }

    /// <summary>True for hub sources.</summary>
    [MemberNotNullWhen(true, nameof(Owner), nameof(Name), nameof(Revision), nameof(RepoId))]
    [MemberNotNullWhen(false, nameof(LocalPath))]
    public bool IsHub => Kind == ModelSourceKind.Hub;

    /// <summary><c>owner/name</c> for hub sources; otherwise null.</summary>
    public string? RepoId => IsHub ? Owner + "/" + Name : null;

    /// <summary>True when <see cref="Revision"/> is a full 40-hex commit id (immutable, so cached files need no revalidation).</summary>
    public bool IsPinnedCommit => IsHub && IsCommitHash(Revision);

    /// <summary>
    /// Parses a model reference: an existing local directory, or <c>hf://owner/name[@revision]</c>.
    /// </summary>
    /// <exception cref="FormatException">The text is neither; the message says why.</exception>
    public static ModelSource Parse(string value)
    {
        if (TryParse(value, out var source, out var error))
        {
            return source;
        }

        throw new FormatException(error);
    }

    /// <summary>Non-throwing variant of <see cref="Parse"/>; <paramref name="error"/> explains a failure.</summary>
    public static bool TryParse(
        [NotNullWhen(true)] string? value,
        [NotNullWhen(true)] out ModelSource? source,
        [NotNullWhen(false)] out string? error)
    {
        source = null;
        if (string.IsNullOrWhiteSpace(value))
        {
            error = "A model source must be a local directory or 'hf://owner/name[@revision]'; got an empty string.";
            return false;
        }

        var text = value.Trim();
        if (text.StartsWith(HubScheme, StringComparison.OrdinalIgnoreCase))
        {
            return TryParseHub(value, text[HubScheme.Length..], out source, out error);
        }

        var schemeMatch = SchemeRegex().Match(text);
        if (schemeMatch.Success)
        {
            var scheme = schemeMatch.Groups[1].Value;
            if (scheme.Equals("file", StringComparison.OrdinalIgnoreCase)
                && Uri.TryCreate(text, UriKind.Absolute, out var fileUri) && fileUri.IsFile)
            {
                return TryLocal(value, fileUri.LocalPath, out source, out error);
            }

            error = $"Unsupported model source '{value}': scheme '{scheme}://' is not supported. " +
                    "Use a local directory or 'hf://owner/name[@revision]' (for example 'hf://bert-base/uncased@main').";
            return false;
        }

        return TryLocal(value, text, out source, out error);
    }

    /// <summary>A hub source for <c>owner/name</c> at <paramref name="revision"/>.</summary>
    /// <exception cref="ArgumentException">An invalid owner, name or revision.</exception>
    public static ModelSource FromHub(string owner, string name, string revision = DefaultRevision)
    {
        if (!TryValidateRepoPart(owner, "owner", out var error)
            || !TryValidateRepoPart(name, "name", out error)
            || !TryValidateRevision(revision, out error))
        {
            throw new ArgumentException(error);
        }

        return new ModelSource(ModelSourceKind.Hub, null, owner, name, revision);
    }

    /// <summary>A local directory source (existence is checked when files are resolved).</summary>
    public static ModelSource FromDirectory(string path)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        return new ModelSource(ModelSourceKind.LocalDirectory, Path.GetFullPath(path), null, null, null);
    }

    /// <summary>The same hub repository at another revision (typically a resolved commit).</summary>
    public ModelSource WithRevision(string revision)
    {
        if (!IsHub)
        {
            throw new InvalidOperationException("Only hub sources have revisions.");
        }

        return FromHub(Owner, Name, revision);
    }

    /// <summary><c>hf://owner/name@revision</c>, or the local directory path.</summary>
    public override string ToString() => IsHub ? $"{HubScheme}{Owner}/{Name}@{Revision}" : LocalPath;

    internal static bool IsCommitHash([NotNullWhen(true)] string? value) =>
        value is { Length: 40 } && value.All(char.IsAsciiHexDigitLower);

    private static bool TryLocal(string original, string path, out ModelSource? source, out string? error)
    {
        source = null;
        string full;
        try
        {
            full = Path.GetFullPath(path);
        }
        catch (Exception e) when (e is ArgumentException or NotSupportedException or PathTooLongException)
        {
            error = $"Invalid model source '{original}': not a valid path ({e.Message}).";
            return false;
        }

        if (Directory.Exists(full))
        {
            source = new ModelSource(ModelSourceKind.LocalDirectory, full, null, null, null);
            error = null;
            return true;
        }

        if (File.Exists(full))
        {
            error = $"Invalid model source '{original}': '{full}' is a file; a model source must be a directory " +
                    "or 'hf://owner/name[@revision]'.";
            return false;
        }

        var hint = RepoLikeRegex().IsMatch(path) ? $" Did you mean '{HubScheme}{path}'?" : string.Empty;
        error = $"Invalid model source '{original}': the directory '{full}' does not exist, and it is not an " +
                $"'hf://owner/name[@revision]' reference.{hint}";
        return false;
    }

    private static bool TryParseHub(string original, string body, out ModelSource? source, out string? error)
    {
        source = null;
        string repoPart = body;
        string revision = DefaultRevision;
        var at = body.IndexOf('@');
        if (at >= 0)
        {
            repoPart = body[..at];
            revision = body[(at + 1)..];
            if (revision.Length == 0)
            {
                error = $"Invalid hub reference '{original}': empty revision after '@' (omit '@' to use '{DefaultRevision}').";
                return false;
            }

            if (revision.Contains('@'))
            {
                error = $"Invalid hub reference '{original}': more than one '@'.";
                return false;
            }
        }

        var parts = repoPart.Split('/');
        if (parts.Length != 2)
        {
            error = $"Invalid hub reference '{original}': expected 'hf://owner/name[@revision]' " +
                    $"(exactly one '/' between owner and name), got '{repoPart}'.";
            return false;
        }

        if (!TryValidateRepoPart(parts[0], "owner", out error)
            || !TryValidateRepoPart(parts[1], "name", out error)
            || !TryValidateRevision(revision, out error))
        {
            error = $"Invalid hub reference '{original}': {error}";
            return false;
        }

        source = new ModelSource(ModelSourceKind.Hub, null, parts[0], parts[1], revision);
        return true;
    }

    private static bool TryValidateRepoPart(string? part, string what, [NotNullWhen(false)] out string? error)
    {
        if (string.IsNullOrEmpty(part))
        {
            error = $"the repository {what} is empty.";
            return false;
        }

        if (part.Length > MaxRepoPartLength)
        {
            error = $"the repository {what} is longer than {MaxRepoPartLength} characters.";
            return false;
        }

        if (part.Contains("..", StringComparison.Ordinal) || part.Contains("--", StringComparison.Ordinal))
        {
            error = $"the repository {what} '{part}' must not contain '..' or '--'.";
            return false;
        }

        if (!RepoPartRegex().IsMatch(part))
        {
            error = $"the repository {what} '{part}' may only contain ASCII letters, digits, '-', '_' and '.', " +
                    "and must start and end with a letter, digit or '_'.";
            return false;
        }

        error = null;
        return true;
    }

    private static bool TryValidateRevision(string? revision, [NotNullWhen(false)] out string? error)
    {
        if (string.IsNullOrEmpty(revision))
        {
            error = "the revision is empty.";
            return false;
        }

        if (revision.Length > MaxRevisionLength)
        {
            error = $"the revision is longer than {MaxRevisionLength} characters.";
            return false;
        }

        if (!RevisionRegex().IsMatch(revision))
        {
            error = $"the revision '{revision}' may only contain ASCII letters, digits and '-', '_', '.', '+', '/'.";
            return false;
        }

        foreach (var segment in revision.Split('/'))
        {
            if (segment.Length == 0 || segment[0] == '.' || segment.Contains("..", StringComparison.Ordinal))
            {
                error = $"the revision '{revision}' is not a valid ref name (empty segment, a segment starting " +
                        "with '.', or '..').";
                return false;
            }
        }

        error = null;
        return true;
    }

    [GeneratedRegex(@"^([A-Za-z][A-Za-z0-9+.\-]*)://")]
    private static partial Regex SchemeRegex();

    [GeneratedRegex(@"^[A-Za-z0-9_](?:[A-Za-z0-9_.\-]*[A-Za-z0-9_])?$")]
    private static partial Regex RepoPartRegex();

    [GeneratedRegex(@"^[A-Za-z0-9_.+/\-]+$")]
    private static partial Regex RevisionRegex();

    [GeneratedRegex(@"^[A-Za-z0-9_][A-Za-z0-9_.\-]*/[A-Za-z0-9_][A-Za-z0-9_.\-]*(@\S+)?$")]
    private static partial Regex RepoLikeRegex();
}

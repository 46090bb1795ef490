namespace MlNetFineTune.Data;

/// <summary>Entity tagging schemes.</summary>
public enum TagScheme
{
    /// <summary>IOB2: <c>B-TYPE</c> begins an entity, <c>I-TYPE</c> continues it, <c>O</c> is outside.</summary>
    Bio,

    /// <summary>BIO plus <c>E-TYPE</c> (ends an entity of two or more tokens) and <c>S-TYPE</c> (a one-token entity).</summary>
    Bioes,
}

/// <summary>Parsing, checking and converting entity tags (<c>O</c>, <c>B-PER</c>, <c>I-LOC</c>, <c>E-ORG</c>, <c>S-MISC</c>).</summary>
public static class NerTags
{
    /// <summary>The outside tag.</summary>
    public const string Outside = "O";

    /// <summary>
    /// Splits a tag into its prefix (<c>'B'</c>, <c>'I'</c>, <c>'E'</c>, <c>'S'</c>; <c>'O'</c> for <c>O</c>) and entity
    /// type; false, with a reason, for a tag the scheme does not allow (<c>X-PER</c>, <c>B-</c>, <c>E-PER</c> in BIO).
    /// </summary>
    public static bool TryParse(string tag, TagScheme scheme, out char prefix, out string entityType, out string? error)
    {
        ArgumentNullException.ThrowIfNull(tag);
        prefix = '\0';
        entityType = "";
        if (tag == Outside)
        {
            prefix = 'O';
            error = null;
            return true;
        }
        string allowed = scheme == TagScheme.Bio ? "O, B-TYPE or I-TYPE" : "O, B-TYPE, I-TYPE, E-TYPE or S-TYPE";
        if (tag.Length < 2 || tag[1] != '-' || !IsPrefix(tag[0], scheme))
        {
            error = tag.Length >= 2 && tag[1] == '-' && tag[0] is 'E' or 'S' && scheme == TagScheme.Bio
                ? $"invalid tag '{tag}' for the BIO scheme (expected {allowed}); for BIOES data choose TagScheme.Bioes"
                : $"invalid tag '{tag}': expected {allowed}";
            return false;
        }
        if (tag.Length == 2)
        {
            error = $"invalid tag '{tag}': the entity type after '{tag}' is empty";
            return false;
        }
        prefix = tag[0];
        entityType = tag[2..];
        error = null;
        return true;
    }

    /// <summary>Whether <paramref name="tag"/> is valid in <paramref name="scheme"/>.</summary>
    public static bool IsValid(string tag, TagScheme scheme) => TryParse(tag, scheme, out _, out _, out _);

    private static bool IsPrefix(char c, TagScheme scheme) => c is 'B' or 'I' || (scheme == TagScheme.Bioes && c is 'E' or 'S');

    /// <summary>The entity type of a valid tag (<c>PER</c> for <c>B-PER</c>), or null for <c>O</c>.</summary>
    public static string? EntityType(string tag) => tag == Outside || tag.Length < 3 ? null : tag[2..];

    /// <summary>
    /// Counts the tags that break the scheme's transition rules but are read leniently, as seqeval's default mode
    /// does: in BIO an <c>I-X</c> not after <c>B-X</c>/<c>I-X</c> (after <c>O</c>, at the start, or after another
    /// type), which starts a new entity; in BIOES also an entity opened by <c>B-X</c>/<c>I-X</c> and not continued
    /// by <c>I-X</c>/<c>E-X</c>.
    /// </summary>
    /// <exception cref="ArgumentException">A tag is invalid in the scheme.</exception>
    public static int CountIllFormed(IReadOnlyList<string> tags, TagScheme scheme)
    {
        ArgumentNullException.ThrowIfNull(tags);
        int count = 0;
        char prevPrefix = 'O';
        string prevType = "";
        for (int i = 0; i <= tags.Count; i++)
        {
            char prefix = 'O';
            string type = "";
            if (i < tags.Count)
            {
                Parse(tags[i], scheme, out prefix, out type);
            }
            bool continues = prefix is 'I' or 'E';
            bool open = prevPrefix is 'B' or 'I';
            bool joined = open && continues && prevType == type;
            if (scheme == TagScheme.Bio)
            {
                if (prefix == 'I' && !joined)
                {
                    count++;
                }
            }
            else if ((continues || open) && !joined)
            {
                count++;
            }
            prevPrefix = prefix;
            prevType = type;
        }
        return count;
    }

    /// <summary>
    /// BIO to BIOES: a one-token entity becomes <c>S-X</c> and the last token of a longer one <c>E-X</c>. An
    /// <c>I-X</c> that does not continue an <c>X</c> entity starts one, as in seqeval's lenient reading.
    /// </summary>
    /// <exception cref="ArgumentException">A tag is not valid BIO.</exception>
    public static string[] BioToBioes(IReadOnlyList<string> tags)
    {
        ArgumentNullException.ThrowIfNull(tags);
        int n = tags.Count;
        var prefixes = new char[n];
        var types = new string[n];
        for (int i = 0; i < n; i++)
        {
            Parse(tags[i], TagScheme.Bio, out prefixes[i], out types[i]);
        }
        var result = new string[n];
        for (int i = 0; i < n; i++)
        {
            if (prefixes[i] == 'O')
            {
                result[i] = Outside;
                continue;
            }
            bool begins = prefixes[i] == 'B' || i == 0 || prefixes[i - 1] == 'O' || types[i - 1] != types[i];
            bool continued = i + 1 < n && prefixes[i + 1] == 'I' && types[i + 1] == types[i];
            char p = begins ? (continued ? 'B' : 'S') : (continued ? 'I' : 'E');
            result[i] = $"{p}-{types[i]}";
        }
        return result;
    }

    /// <summary>BIOES to BIO: <c>S-X</c> becomes <c>B-X</c>, <c>E-X</c> becomes <c>I-X</c>.</summary>
    /// <exception cref="ArgumentException">A tag is not valid BIOES.</exception>
    public static string[] BioesToBio(IReadOnlyList<string> tags)
    {
        ArgumentNullException.ThrowIfNull(tags);
        var result = new string[tags.Count];
        for (int i = 0; i < result.Length; i++)
        {
            Parse(tags[i], TagScheme.Bioes, out char prefix, out string type);
            result[i] = prefix switch
            {
                'O' => Outside,
                'B' or 'S' => "B-" + type,
                _ => "I-" + type,
            };
        }
        return result;
    }

    /// <summary>Converts <paramref name="tags"/> from one scheme to another (a copy when they are the same).</summary>
    public static string[] Convert(IReadOnlyList<string> tags, TagScheme from, TagScheme to)
    {
        ArgumentNullException.ThrowIfNull(tags);
        if (from == to)
        {
            foreach (var tag in tags)
            {
                Parse(tag, from, out _, out _);
            }
            return [.. tags];
        }
        return to == TagScheme.Bioes ? BioToBioes(tags) : BioesToBio(tags);
    }

    /// <summary>The prefixes a scheme uses, in the order <see cref="NerDataset"/> lists them.</summary>
    internal static string Prefixes(TagScheme scheme) => scheme == TagScheme.Bio ? "BI" : "BIES";

    private static void Parse(string tag, TagScheme scheme, out char prefix, out string type)
    {
        if (tag is null)
        {
            throw new ArgumentException("A tag is null.", nameof(tag));
        }
        if (!TryParse(tag, scheme, out prefix, out type, out string? error))
        {
            throw new ArgumentException(error + ".", nameof(tag));
        }
    }
}

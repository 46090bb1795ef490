using System.Buffers;

namespace MlNetFineTune.Data;

/// <summary>
/// Writes TSV or CSV that <see cref="TabularReader"/> (and Python's <c>csv</c>, pandas, Excel) read back: a field
/// holding the delimiter, a quote, CR or LF is enclosed in quotes with inner quotes doubled. UTF-8 without BOM,
/// LF line ends.
/// </summary>
public static class TabularWriter
{
    /// <summary>Writes a header and rows to <paramref name="path"/> (gzip when it ends in <c>.gz</c>); the format
    /// comes from the extension unless given.</summary>
    public static void Write(string path, IReadOnlyList<string> header, IEnumerable<IReadOnlyList<string>> rows,
        TabularFormat? format = null)
    {
        ArgumentNullException.ThrowIfNull(header);
        ArgumentNullException.ThrowIfNull(rows);
        var f = format ?? TabularReader.FormatFromPath(path)
            ?? throw new ArgumentException($"Cannot tell the format of '{path}' from its extension; name it .tsv or .csv.", nameof(path));
        char delimiter = f == TabularFormat.Tsv ? '\t' : ',';
        using var writer = DataFiles.CreateText(path);
        WriteRow(writer, header, delimiter);
        foreach (var row in rows)
        {
            if (row.Count != header.Count)
            {
                throw new ArgumentException($"A row has {row.Count} fields for {header.Count} columns.", nameof(rows));
            }
            WriteRow(writer, row, delimiter);
        }
    }

    /// <summary>Writes one row and a line break.</summary>
    public static void WriteRow(TextWriter writer, IReadOnlyList<string> fields, char delimiter)
    {
        ArgumentNullException.ThrowIfNull(writer);
        ArgumentNullException.ThrowIfNull(fields);
        for (int i = 0; i < fields.Count; i++)
        {
            if (i > 0)
            {
                writer.Write(delimiter);
            }
            writer.Write(Quote(fields[i] ?? "", delimiter));
        }
        writer.Write('\n');
    }

    private static readonly SearchValues<char> s_special = SearchValues.Create("\"\r\n");

    /// <summary><paramref name="value"/> as one field: quoted when it holds the delimiter, a quote, CR or LF.</summary>
    public static string Quote(string value, char delimiter)
    {
        ArgumentNullException.ThrowIfNull(value);
        if (value.AsSpan().IndexOfAny(s_special) < 0 && !value.Contains(delimiter))
        {
            return value;
        }
        return "\"" + value.Replace("\"", "\"\"") + "\"";
    }
}

using System.Buffers;
using System.Text;

namespace MlNetFineTune.Data;

/// <summary>Delimited text flavours.</summary>
public enum TabularFormat
{
    /// <summary>Tab-separated. A field that starts with a quote is read as RFC 4180 quoted; a quote anywhere else
    /// is plain text, and so is a field like <c>"Great" movie</c> whose quotes do not enclose it.</summary>
    Tsv,

    /// <summary>Comma-separated, RFC 4180: fields with a delimiter, quote or line break are enclosed in quotes and
    /// inner quotes are doubled; a quote inside an unquoted field is an error unless
    /// <see cref="TabularReaderOptions.AllowBareQuotes"/>.</summary>
    Csv,
}

/// <summary>Options for <see cref="TabularReader"/>.</summary>
public sealed class TabularReaderOptions
{
    /// <summary>The flavour; null picks it from the extension (<c>.tsv</c>, <c>.tab</c>, <c>.csv</c>, each
    /// optionally <c>.gz</c>).</summary>
    public TabularFormat? Format { get; init; }

    /// <summary>A delimiter other than the format's (tab for TSV, comma for CSV), e.g. <c>';'</c>.</summary>
    public char? Delimiter { get; init; }

    /// <summary>Accept a quote inside an unquoted CSV field as text (TSV always does). Default false: RFC 4180.</summary>
    public bool AllowBareQuotes { get; init; }
}

/// <summary>
/// Streams records out of a TSV or CSV file with a header row, selecting columns by name. Reads RFC 4180
/// (quoted fields, doubled quotes, delimiters and line breaks inside quotes, CRLF or LF, an optional BOM, a last
/// line with or without a line break), decompresses <c>.gz</c>, and decodes UTF-8 strictly. Blank lines are
/// skipped. Every malformation is a <see cref="DataFormatException"/> naming file, line and column: a row with a
/// different number of fields than the header, an unbalanced quote (where it opened), a missing column (listing
/// the header), an empty file, invalid UTF-8 (with its byte offset).
/// </summary>
/// <example>
/// <code>
/// using var reader = TabularReader.Open("reviews.tsv");
/// foreach (var row in reader.ReadRecords(["text", "label"]))
///     Console.WriteLine($"{row.Line}: {row[1]}");
/// </code>
/// </example>
public sealed class TabularReader : IDisposable
{
    private readonly Utf8TextSource _source;
    private readonly char _delimiter;
    private readonly bool _lenientQuotes;
    private readonly SearchValues<char> _unquotedStops;
    private readonly SearchValues<char> _quotedStops;
    private readonly StringBuilder _field = new();
    private readonly List<string?> _values = [];
    private readonly List<int> _fieldLines = [];
    private readonly List<int> _fieldColumns = [];
    private readonly string[] _header;
    private int[] _fieldColumnsOfHeader = [];
    private int _recordLine, _endLine, _endColumn;
    private int _recordCount;
    private bool _reading;

    private TabularReader(Utf8TextSource source, TabularFormat format, TabularReaderOptions options)
    {
        _source = source;
        Format = format;
        _delimiter = options.Delimiter ?? (format == TabularFormat.Tsv ? '\t' : ',');
        if (_delimiter is '"' or '\r' or '\n')
        {
            throw new ArgumentException($"'{_delimiter}' cannot be a delimiter.", nameof(options));
        }
        _lenientQuotes = format == TabularFormat.Tsv || options.AllowBareQuotes;
        _unquotedStops = SearchValues.Create(_lenientQuotes ? $"{_delimiter}\r\n" : $"{_delimiter}\r\n\"");
        _quotedStops = SearchValues.Create($"\"{_delimiter}\r\n");
        try
        {
            if (!ParseRecord(null))
            {
                throw new DataFormatException(source.FilePath, 1, 1,
                    "empty file: expected a header row naming the columns" + (format == TabularFormat.Tsv ? " (tab-separated)" : " (comma-separated)"));
            }
            HeaderLine = _recordLine;
            _header = _values.Select(v => v!).ToArray();
        }
        catch
        {
            source.Dispose();
            throw;
        }
    }

    /// <summary>Opens <paramref name="path"/> and reads its header row.</summary>
    /// <exception cref="DataFormatException">The file is empty or its header is malformed.</exception>
    public static TabularReader Open(string path, TabularReaderOptions? options = null)
    {
        options ??= new TabularReaderOptions();
        var format = options.Format ?? FormatFromPath(path)
            ?? throw new ArgumentException(
                $"Cannot tell the format of '{path}' from its extension; name it .tsv or .csv (optionally .gz) or set TabularReaderOptions.Format.",
                nameof(path));
        return new TabularReader(Utf8TextSource.Open(path), format, options);
    }

    /// <summary>Reads from <paramref name="stream"/> (UTF-8, not compressed); <paramref name="sourceName"/> names
    /// it in errors.</summary>
    public static TabularReader Open(Stream stream, string sourceName, TabularFormat format,
        TabularReaderOptions? options = null, bool leaveOpen = false)
    {
        ArgumentNullException.ThrowIfNull(stream);
        return new TabularReader(new Utf8TextSource(stream, sourceName, compressed: false, leaveOpen), format,
            options ?? new TabularReaderOptions());
    }

    /// <summary>The format for a path by extension (<c>.tsv</c>, <c>.tab</c>, <c>.csv</c>, optionally <c>.gz</c>), or null.</summary>
    public static TabularFormat? FormatFromPath(string path) => DataFiles.GetKind(path) switch
    {
        DataFileKind.Tsv => TabularFormat.Tsv,
        DataFileKind.Csv => TabularFormat.Csv,
        _ => null,
    };

    /// <summary>The file being read.</summary>
    public string FilePath => _source.FilePath;

    /// <summary>The flavour being read.</summary>
    public TabularFormat Format { get; }

    /// <summary>The field delimiter.</summary>
    public char Delimiter => _delimiter;

    /// <summary>The column names of the header row, as written.</summary>
    public IReadOnlyList<string> Header => _header;

    /// <summary>1-based line of the header row.</summary>
    public int HeaderLine { get; }

    /// <summary>
    /// The 0-based position of column <paramref name="name"/> in the header: an exact match, else the only
    /// match ignoring case and surrounding spaces.
    /// </summary>
    /// <exception cref="DataFormatException">No column has that name (the message lists those there are), or
    /// two do.</exception>
    public int GetColumnIndex(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        int found = FindUnique(name, (a, b) => string.Equals(a, b, StringComparison.Ordinal));
        if (found == -1)
        {
            found = FindUnique(name.Trim(), (a, b) => string.Equals(a.Trim(), b, StringComparison.OrdinalIgnoreCase));
        }
        if (found == -1)
        {
            throw new DataFormatException(FilePath, HeaderLine, 1,
                $"missing column '{name}': the header has {DescribeColumns()}");
        }
        return found;
    }

    private int FindUnique(string name, Func<string, string, bool> equal)
    {
        int found = -1;
        for (int i = 0; i < _header.Length; i++)
        {
            if (!equal(_header[i], name))
            {
                continue;
            }
            if (found >= 0)
            {
                throw new DataFormatException(FilePath, HeaderLine, _fieldColumnsOfHeader[i],
                    $"ambiguous column '{name}': columns {found + 1} and {i + 1} of the header both have that name");
            }
            found = i;
        }
        return found;
    }

    private string DescribeColumns()
        => _header.Length == 0 ? "no columns" : string.Join(", ", _header.Select(h => $"'{h}'"))
            + (Format == TabularFormat.Csv && _header.Length == 1 && _header[0].Contains('\t')
                ? " (the file looks tab-separated: name it .tsv)"
                : Format == TabularFormat.Tsv && _header.Length == 1 && _header[0].Contains(',')
                    ? " (the file looks comma-separated: name it .csv)" : "");

    /// <summary>
    /// Streams the data records with the columns named in <paramref name="columns"/> (all columns when null), in
    /// that order. The file is read as the sequence is enumerated, once; records are not buffered.
    /// </summary>
    /// <exception cref="DataFormatException">A column is missing, or (during enumeration) a row is malformed.</exception>
    public IEnumerable<DataRecord> ReadRecords(IReadOnlyList<string>? columns = null, CancellationToken cancellationToken = default)
    {
        if (_reading)
        {
            throw new InvalidOperationException("A TabularReader reads its records once.");
        }
        _reading = true;
        columns ??= _header;
        var selected = new int[columns.Count];
        var keep = new bool[_header.Length];
        for (int i = 0; i < selected.Length; i++)
        {
            selected[i] = GetColumnIndex(columns[i]);
            keep[selected[i]] = true;
        }
        var names = columns.ToArray();
        return Iterate(selected, keep, names, cancellationToken);
    }

    private IEnumerable<DataRecord> Iterate(int[] selected, bool[] keep, string[] names, CancellationToken cancellationToken)
    {
        while (ParseRecord(keep))
        {
            if ((_recordCount & 1023) == 0)
            {
                cancellationToken.ThrowIfCancellationRequested();
            }
            _recordCount++;
            CheckFieldCount();
            var values = new string?[selected.Length];
            var lines = new int[selected.Length];
            var cols = new int[selected.Length];
            for (int i = 0; i < selected.Length; i++)
            {
                int c = selected[i];
                values[i] = _values[c];
                lines[i] = _fieldLines[c];
                cols[i] = _fieldColumns[c];
            }
            yield return new DataRecord(FilePath, _recordLine, _recordCount, names, values, lines, cols);
        }
    }

    /// <summary>Opens <paramref name="path"/> and streams its records (see <see cref="ReadRecords"/>); the file
    /// is opened when enumeration starts and closed when it ends.</summary>
    public static IEnumerable<DataRecord> Read(string path, IReadOnlyList<string>? columns = null,
        TabularReaderOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        return ReadIterator(path, columns, options, cancellationToken);
    }

    private static IEnumerable<DataRecord> ReadIterator(string path, IReadOnlyList<string>? columns,
        TabularReaderOptions? options, CancellationToken cancellationToken)
    {
        using var reader = Open(path, options);
        foreach (var record in reader.ReadRecords(columns, cancellationToken))
        {
            yield return record;
        }
    }

    /// <summary>Reads every record of <paramref name="path"/> into a list (convenient for small files).</summary>
    public static List<DataRecord> Load(string path, IReadOnlyList<string>? columns = null,
        TabularReaderOptions? options = null, CancellationToken cancellationToken = default)
        => [.. Read(path, columns, options, cancellationToken)];

    private void CheckFieldCount()
    {
        int got = _values.Count, expected = _header.Length;
        if (got == expected)
        {
            return;
        }
        string hint = got > expected
            ? Format == TabularFormat.Tsv && _delimiter == '\t'
                ? " (does a value contain a tab? enclose it in quotes)"
                : $" (does an unquoted value contain '{_delimiter}'? enclose it in quotes)"
            : "";
        string message = $"expected {expected} column{(expected == 1 ? "" : "s")} as in the header (line {HeaderLine}), got {got}{hint}";
        throw got > expected
            ? _source.Error(_fieldLines[expected], _fieldColumns[expected], message)
            : _source.Error(_endLine, _endColumn, message);
    }

    /// <summary>Parses one record into _values (null for fields not kept); false at the end of the data.</summary>
    private bool ParseRecord(bool[]? keep)
    {
        _values.Clear();
        _fieldLines.Clear();
        _fieldColumns.Clear();
        while (true)
        {
            int c = _source.Peek();
            if (c < 0)
            {
                _source.ThrowIfInvalid();
                return false;
            }
            if (c is not ('\r' or '\n'))
            {
                break;
            }
            _source.Read();
        }
        _recordLine = _source.Line;
        while (true)
        {
            int index = _values.Count;
            bool kept = keep is null || (index < keep.Length && keep[index]);
            _fieldLines.Add(_source.Line);
            _fieldColumns.Add(_source.Column);
            _field.Clear();
            var sink = kept ? _field : null;
            int terminator = _source.Peek() == '"' ? ReadQuoted(sink) : ReadUnquoted(sink);
            _values.Add(kept ? _field.ToString() : null);
            if (terminator < 0)
            {
                break;
            }
        }
        if (keep is null)
        {
            _fieldColumnsOfHeader = [.. _fieldColumns];
        }
        return true;
    }

    /// <summary>Reads the rest of an unquoted field; returns the delimiter, or -1 at the end of the record.</summary>
    private int ReadUnquoted(StringBuilder? sink)
    {
        int c = _source.ReadUntil(_unquotedStops, sink);
        if (c < 0)
        {
            _source.ThrowIfInvalid();
            MarkEnd();
            return -1;
        }
        if (c == _delimiter)
        {
            _source.Read();
            return c;
        }
        if (c == '"')
        {
            throw _source.Error(
                "quote inside an unquoted field: RFC 4180 CSV encloses such a field in quotes and doubles the quotes inside (\"a \"\"b\"\" c\"), or set AllowBareQuotes");
        }
        MarkEnd();
        _source.Read();
        return -1;
    }

    /// <summary>Reads a field that starts with a quote; returns the delimiter, or -1 at the end of the record.</summary>
    private int ReadQuoted(StringBuilder? sink)
    {
        int openLine = _source.Line, openColumn = _source.Column;
        _source.Read();
        bool spansSeparators = false;
        while (true)
        {
            int c = _source.ReadUntil(_quotedStops, sink);
            if (c < 0)
            {
                _source.ThrowIfInvalid();
                throw _source.Error(openLine, openColumn,
                    "unbalanced quote: the quoted field that opens here is never closed (a quote inside a quoted field must be doubled)");
            }
            _source.Read();
            if (c != '"')
            {
                sink?.Append((char)c);
                spansSeparators = true;
                continue;
            }
            int next = _source.Peek();
            if (next == '"')
            {
                _source.Read();
                sink?.Append('"');
                continue;
            }
            if (next == _delimiter)
            {
                _source.Read();
                return next;
            }
            if (next < 0)
            {
                _source.ThrowIfInvalid();
                MarkEnd();
                return -1;
            }
            if (next is '\r' or '\n')
            {
                MarkEnd();
                _source.Read();
                return -1;
            }
            if (_lenientQuotes && !spansSeparators)
            {
                // The quotes did not enclose the field ("Great" movie): it is plain text, quotes and all.
                if (sink is not null)
                {
                    string inner = sink.ToString();
                    sink.Clear().Append('"').Append(inner.Replace("\"", "\"\"")).Append('"');
                }
                return ReadUnquoted(sink);
            }
            throw _source.Error(
                $"unexpected {Describe(next)} after the closing quote of the field opened at {openLine}:{openColumn}; a quote inside a quoted field must be doubled (\"\")");
        }
    }

    private static string Describe(int c) => c < 0x20 || c == 0x7F ? $"character U+{c:X4}" : $"character '{(char)c}'";

    private void MarkEnd()
    {
        _endLine = _source.Line;
        _endColumn = _source.Column;
    }

    /// <inheritdoc/>
    public void Dispose() => _source.Dispose();
}

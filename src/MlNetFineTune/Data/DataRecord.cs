namespace MlNetFineTune.Data;

/// <summary>
/// One row of a TSV/CSV file or one object of a JSONL file: the fields the caller selected, by name, each with
/// the line and column it came from, so later checks can point at the exact value at fault.
/// </summary>
public sealed class DataRecord
{
    private readonly string?[] _values;
    private readonly int[] _lines;
    private readonly int[] _columns;

    internal DataRecord(string source, int line, int number, IReadOnlyList<string> names, string?[] values,
        int[] lines, int[] columns)
    {
        Source = source;
        Line = line;
        Number = number;
        Names = names;
        _values = values;
        _lines = lines;
        _columns = columns;
    }

    /// <summary>The file the record came from.</summary>
    public string Source { get; }

    /// <summary>1-based line where the record starts (a quoted CSV field can carry it over several lines).</summary>
    public int Line { get; }

    /// <summary>1-based number of the record among the data records (the header does not count).</summary>
    public int Number { get; }

    /// <summary>The selected field names, in the order the caller asked for them.</summary>
    public IReadOnlyList<string> Names { get; }

    /// <summary>Number of selected fields.</summary>
    public int Count => _values.Length;

    /// <summary>
    /// The value of selected field <paramref name="index"/>. Never null from TSV/CSV (an empty field is "");
    /// null from JSONL for a JSON <c>null</c>.
    /// </summary>
    public string? this[int index] => _values[index];

    /// <summary>The value of the selected field named <paramref name="name"/>.</summary>
    public string? this[string name] => _values[IndexOf(name)];

    /// <summary>1-based line of selected field <paramref name="index"/>.</summary>
    public int GetLine(int index) => _lines[index];

    /// <summary>1-based column (code points) where selected field <paramref name="index"/> starts.</summary>
    public int GetColumn(int index) => _columns[index];

    /// <summary>An exception pointing at selected field <paramref name="index"/>.</summary>
    public DataFormatException Error(int index, string reason) => new(Source, _lines[index], _columns[index], reason);

    /// <summary>An exception pointing at the start of the record.</summary>
    public DataFormatException Error(string reason) => new(Source, Line, 1, reason);

    private int IndexOf(string name)
    {
        for (int i = 0; i < Names.Count; i++)
        {
            if (string.Equals(Names[i], name, StringComparison.Ordinal))
            {
                return i;
            }
        }
        throw new KeyNotFoundException($"'{name}' is not one of the selected fields ({string.Join(", ", Names)}).");
    }

    /// <inheritdoc/>
    public override string ToString()
        => $"{Source}:{Line}: " + string.Join(", ", Names.Select((n, i) => $"{n}={_values[i] ?? "null"}"));
}

using System.Buffers;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace MlNetFineTune.Data;

/// <summary>
/// JSON Lines: one JSON object per line (blank lines skipped), fields selected by name. A selected field may hold
/// a string, a number (its text as written: <c>1</c>, <c>0.5</c>), <c>true</c>/<c>false</c>, or <c>null</c>
/// (read as null); an array or object is an error. Every selected field must be present in every object.
/// Streams, decodes UTF-8 strictly and decompresses <c>.gz</c> like <see cref="TabularReader"/>; errors are
/// <see cref="DataFormatException"/>s with line and column.
/// </summary>
public static class JsonlReader
{
    /// <summary>Streams the objects of <paramref name="path"/> as records holding <paramref name="fields"/>;
    /// the file is opened when enumeration starts and closed when it ends.</summary>
    /// <exception cref="DataFormatException">(During enumeration) a line is not a JSON object, lacks a field, or
    /// holds an array or object in one.</exception>
    public static IEnumerable<DataRecord> Read(string path, IReadOnlyList<string> fields,
        CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(fields);
        return ReadFile(path, fields.ToArray(), cancellationToken);
    }

    /// <summary>Streams records out of <paramref name="stream"/> (UTF-8, not compressed);
    /// <paramref name="sourceName"/> names it in errors.</summary>
    public static IEnumerable<DataRecord> Read(Stream stream, string sourceName, IReadOnlyList<string> fields,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentNullException.ThrowIfNull(fields);
        return ReadStream(new Utf8TextSource(stream, sourceName, compressed: false, leaveOpen: true), fields.ToArray(),
            cancellationToken);
    }

    /// <summary>Reads every object of <paramref name="path"/> into a list.</summary>
    public static List<DataRecord> Load(string path, IReadOnlyList<string> fields, CancellationToken cancellationToken = default)
        => [.. Read(path, fields, cancellationToken)];

    private static IEnumerable<DataRecord> ReadFile(string path, string[] fields, CancellationToken cancellationToken)
    {
        using var source = Utf8TextSource.Open(path);
        foreach (var record in ReadStream(source, fields, cancellationToken))
        {
            yield return record;
        }
    }

    private static IEnumerable<DataRecord> ReadStream(Utf8TextSource source, string[] fields, CancellationToken cancellationToken)
    {
        using (source)
        {
            var line = new StringBuilder();
            byte[] buffer = ArrayPool<byte>.Shared.Rent(4096);
            try
            {
                int number = 0;
                while (true)
                {
                    int lineNumber = source.Line;
                    if (!source.ReadLine(line))
                    {
                        yield break;
                    }
                    if (IsBlank(line))
                    {
                        continue;
                    }
                    if ((number & 1023) == 0)
                    {
                        cancellationToken.ThrowIfCancellationRequested();
                    }
                    string text = line.ToString();
                    int byteCount = Encoding.UTF8.GetByteCount(text);
                    if (byteCount > buffer.Length)
                    {
                        ArrayPool<byte>.Shared.Return(buffer);
                        buffer = ArrayPool<byte>.Shared.Rent(byteCount);
                    }
                    Encoding.UTF8.GetBytes(text, buffer);
                    number++;
                    yield return ParseLine(buffer.AsSpan(0, byteCount), source.FilePath, lineNumber, number, fields);
                }
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }
        }
    }

    private static bool IsBlank(StringBuilder line)
    {
        foreach (var chunk in line.GetChunks())
        {
            if (!chunk.Span.Trim(" \t\uFEFF").IsEmpty)
            {
                return false;
            }
        }
        return true;
    }

    private static DataRecord ParseLine(ReadOnlySpan<byte> bytes, string path, int line, int number, string[] fields)
    {
        var values = new string?[fields.Length];
        var found = new bool[fields.Length];
        var columns = new int[fields.Length];
        var reader = new Utf8JsonReader(bytes, new JsonReaderOptions { CommentHandling = JsonCommentHandling.Disallow });
        int objectColumn = 1;
        List<string> present = [];
        try
        {
            reader.Read();
            objectColumn = ColumnOf(bytes, reader.TokenStartIndex);
            if (reader.TokenType != JsonTokenType.StartObject)
            {
                throw new DataFormatException(path, line, objectColumn,
                    $"expected a JSON object ({{...}}) on each line, found {Describe(reader.TokenType)}");
            }
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                string name = reader.GetString()!;
                present.Add(name);
                reader.Read();
                bool wanted = false;
                for (int i = 0; i < fields.Length; i++)
                {
                    if (!string.Equals(fields[i], name, StringComparison.Ordinal))
                    {
                        continue;
                    }
                    wanted = true;
                    int column = ColumnOf(bytes, reader.TokenStartIndex);
                    values[i] = reader.TokenType switch
                    {
                        JsonTokenType.String => reader.GetString(),
                        JsonTokenType.Number => Encoding.UTF8.GetString(reader.ValueSpan),
                        JsonTokenType.True => "true",
                        JsonTokenType.False => "false",
                        JsonTokenType.Null => null,
                        _ => throw new DataFormatException(path, line, column,
                            $"field '{name}' must be a string or a number, found {Describe(reader.TokenType)}"),
                    };
                    found[i] = true;
                    columns[i] = column;
                }
                if (!wanted)
                {
                    reader.Skip();
                }
            }
            // Anything after the object (a second object, stray text) makes this Read throw.
            reader.Read();
        }
        catch (JsonException ex)
        {
            int column = ColumnOf(bytes, ex.BytePositionInLine ?? 0);
            throw new DataFormatException(path, line, column, "invalid JSON: " + StripPosition(ex.Message), innerException: ex);
        }
        for (int i = 0; i < fields.Length; i++)
        {
            if (!found[i])
            {
                string has = present.Count == 0 ? "it has no fields" : "it has " + string.Join(", ", present.Select(p => $"'{p}'"));
                throw new DataFormatException(path, line, objectColumn, $"missing field '{fields[i]}': {has}");
            }
        }
        var lines = new int[fields.Length];
        Array.Fill(lines, line);
        return new DataRecord(path, line, number, fields, values, lines, columns);
    }

    private static string Describe(JsonTokenType type) => type switch
    {
        JsonTokenType.StartArray => "an array",
        JsonTokenType.StartObject => "an object",
        JsonTokenType.String => "a string",
        JsonTokenType.Number => "a number",
        JsonTokenType.True or JsonTokenType.False => "a boolean",
        JsonTokenType.Null => "null",
        _ => type.ToString(),
    };

    /// <summary>1-based code-point column of byte <paramref name="byteIndex"/> of a UTF-8 line.</summary>
    private static int ColumnOf(ReadOnlySpan<byte> bytes, long byteIndex)
    {
        int column = 1;
        int end = (int)Math.Min(byteIndex, bytes.Length);
        for (int i = 0; i < end; i++)
        {
            if ((bytes[i] & 0xC0) != 0x80)
            {
                column++;
            }
        }
        return column;
    }

    private static string StripPosition(string message)
    {
        int at = message.IndexOf(" LineNumber:", StringComparison.Ordinal);
        return at >= 0 ? message[..at] : message;
    }
}

/// <summary>Writes JSON Lines: one object of string fields per line, UTF-8, non-ASCII kept readable.</summary>
public static class JsonlWriter
{
    private static readonly JsonWriterOptions s_options = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>Writes <paramref name="rows"/> to <paramref name="path"/> (gzip when it ends in <c>.gz</c>); each
    /// row holds one value per name in <paramref name="names"/>, null values are written as JSON null.</summary>
    public static void Write(string path, IReadOnlyList<string> names, IEnumerable<IReadOnlyList<string?>> rows)
    {
        ArgumentNullException.ThrowIfNull(names);
        ArgumentNullException.ThrowIfNull(rows);
        using var stream = DataFiles.OpenWrite(path);
        Write(stream, names, rows);
    }

    /// <summary>Writes <paramref name="rows"/> to <paramref name="stream"/>, as the path overload does.</summary>
    public static void Write(Stream stream, IReadOnlyList<string> names, IEnumerable<IReadOnlyList<string?>> rows)
    {
        ArgumentNullException.ThrowIfNull(stream);
        using var writer = new Utf8JsonWriter(stream, s_options);
        foreach (var row in rows)
        {
            if (row.Count != names.Count)
            {
                throw new ArgumentException($"A row has {row.Count} values for {names.Count} names.", nameof(rows));
            }
            writer.WriteStartObject();
            for (int i = 0; i < names.Count; i++)
            {
                if (row[i] is string value)
                {
                    writer.WriteString(names[i], value);
                }
                else
                {
                    writer.WriteNull(names[i]);
                }
            }
            writer.WriteEndObject();
            writer.Flush();
            writer.Reset();
            stream.WriteByte((byte)'\n');
        }
    }
}

namespace MlNetFineTune.Data;

/// <summary>
/// A data file (TSV, CSV, JSONL, CoNLL) is malformed. The message names the place at fault the way compilers
/// do, <c>reviews.tsv:17:5: unbalanced quote ...</c>, so an editor can jump to it; the properties carry the
/// same facts for code (the <c>mlft</c> tool maps this exception to exit code 2).
/// </summary>
public sealed class DataFormatException : FormatException
{
    /// <summary>Creates the exception; <see cref="Exception.Message"/> becomes <c>file:line:column: reason</c>.</summary>
    /// <param name="filePath">The file at fault, as the user named it (or a source name such as <c>&lt;memory&gt;</c>).</param>
    /// <param name="line">1-based line at fault (for in-memory data: the 1-based item number).</param>
    /// <param name="column">1-based column in characters (Unicode code points), where known.</param>
    /// <param name="reason">What is wrong and, where it helps, how to fix it.</param>
    /// <param name="byteOffset">0-based byte offset of an invalid byte, for encoding errors.</param>
    /// <param name="innerException">The exception that revealed the fault, if any.</param>
    public DataFormatException(string filePath, int line, int? column, string reason, long? byteOffset = null,
        Exception? innerException = null)
        : base(Describe(filePath, line, column, reason), innerException)
    {
        FilePath = filePath;
        Line = line;
        Column = column;
        Reason = reason;
        ByteOffset = byteOffset;
    }

    /// <summary>The file at fault, as the user named it.</summary>
    public string FilePath { get; }

    /// <summary>1-based line at fault. For a record spanning lines, the line of the part at fault.</summary>
    public int Line { get; }

    /// <summary>
    /// 1-based column in characters (Unicode code points; a tab counts as one), where known. Every error read
    /// from a file has one; data given in memory has none.
    /// </summary>
    public int? Column { get; }

    /// <summary>
    /// 0-based offset of the offending byte from the start of the file, for invalid UTF-8; for a <c>.gz</c> file
    /// the offset is in the decompressed data.
    /// </summary>
    public long? ByteOffset { get; }

    /// <summary>The message without the <c>file:line:column:</c> prefix.</summary>
    public string Reason { get; }

    private static string Describe(string filePath, int line, int? column, string reason)
        => column is int c ? $"{filePath}:{line}:{c}: {reason}" : $"{filePath}:{line}: {reason}";
}

/// <summary>
/// A data set is well formed but cannot serve its purpose, for example a training set whose examples all carry
/// the same label. The message names the file.
/// </summary>
public sealed class DataValidationException : InvalidOperationException
{
    /// <summary>Creates the exception; the message becomes <c>file: reason</c>.</summary>
    /// <param name="filePath">The file (or source name) the data set came from.</param>
    /// <param name="reason">What is wrong and how to fix it.</param>
    public DataValidationException(string filePath, string reason)
        : base($"{filePath}: {reason}")
    {
        FilePath = filePath;
        Reason = reason;
    }

    /// <summary>The file (or source name) the data set came from.</summary>
    public string FilePath { get; }

    /// <summary>The message without the file prefix.</summary>
    public string Reason { get; }
}

namespace MlNetFineTune.Models.Tokenizers;

/// <summary>A tokenizer file (vocab.txt, vocab.json, merges.txt, tokenizer.json, word list) is malformed.</summary>
public sealed class TokenizerFormatException : FormatException
{
    /// <summary>Creates the exception; the message names the file, then the line or the JSON field.</summary>
    public TokenizerFormatException(string filePath, string message, int? lineNumber = null, string? field = null,
        Exception? innerException = null)
        : base(Describe(filePath, message, lineNumber, field), innerException)
    {
        FilePath = filePath;
        LineNumber = lineNumber;
        Field = field;
    }

    /// <summary>The file at fault.</summary>
    public string FilePath { get; }

    /// <summary>1-based line at fault, where known.</summary>
    public int? LineNumber { get; }

    /// <summary>JSON path of the field at fault ("model.type", "added_tokens[3].id"), where known.</summary>
    public string? Field { get; }

    private static string Describe(string filePath, string message, int? lineNumber, string? field)
    {
        string where = filePath;
        if (lineNumber is int line)
        {
            where += $", line {line}";
        }
        if (field is not null)
        {
            where += $", field '{field}'";
        }
        return $"{where}: {message}";
    }
}

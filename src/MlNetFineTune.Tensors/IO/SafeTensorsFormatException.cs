namespace MlNetFineTune.Tensors.IO;

/// <summary>
/// Thrown when safetensors content is malformed: a bad header length, a header that is not valid UTF-8
/// JSON, a tensor entry with a missing or invalid field, offsets that overlap, leave holes or run past the
/// end of the data, a truncated file, or tensor data that cannot be converted to the requested element type.
/// The message always names the source (file path or the name given to
/// <see cref="SafeTensorsFile.FromBytes(byte[], string)"/>) and, where one is at fault, the tensor and field.
/// </summary>
public sealed class SafeTensorsFormatException : FormatException
{
    /// <summary>Creates an exception with a plain message.</summary>
    public SafeTensorsFormatException(string message)
        : base(message)
    {
    }

    /// <summary>Creates an exception with a plain message and the underlying cause.</summary>
    public SafeTensorsFormatException(string message, Exception? innerException)
        : base(message, innerException)
    {
    }

    /// <summary>Creates an exception whose message is built from the source, tensor and field at fault.</summary>
    /// <param name="sourceName">File path or caller-supplied name of the data.</param>
    /// <param name="tensorName">Tensor at fault, or <see langword="null"/> for file-level problems.</param>
    /// <param name="field">Header field at fault (<c>dtype</c>, <c>shape</c>, <c>data_offsets</c>, ...), or <see langword="null"/>.</param>
    /// <param name="problem">What is wrong.</param>
    /// <param name="innerException">The underlying cause, if any.</param>
    public SafeTensorsFormatException(string sourceName, string? tensorName, string? field, string problem, Exception? innerException = null)
        : base(BuildMessage(sourceName, tensorName, field, problem), innerException)
    {
        SourceName = sourceName;
        TensorName = tensorName;
        Field = field;
    }

    /// <summary>File path or caller-supplied name of the malformed data, when known.</summary>
    public string? SourceName { get; }

    /// <summary>Name of the tensor at fault, or <see langword="null"/> for file-level problems.</summary>
    public string? TensorName { get; }

    /// <summary>Header field at fault (for example <c>data_offsets</c>), or <see langword="null"/>.</summary>
    public string? Field { get; }

    private static string BuildMessage(string sourceName, string? tensorName, string? field, string problem)
    {
        var text = new System.Text.StringBuilder();
        text.Append("Invalid safetensors data in '").Append(Shorten(sourceName)).Append('\'');
        if (tensorName is not null)
        {
            text.Append(", tensor '").Append(Shorten(tensorName)).Append('\'');
        }
        if (field is not null)
        {
            text.Append(", field '").Append(field).Append('\'');
        }
        text.Append(": ").Append(problem);
        return text.ToString();
    }

    /// <summary>Keeps messages readable when a corrupt header holds a huge or binary name.</summary>
    internal static string Shorten(string text)
    {
        const int MaxLength = 200;
        bool needsWork = text.Length > MaxLength;
        foreach (char c in text)
        {
            if (char.IsControl(c))
            {
                needsWork = true;
                break;
            }
        }
        if (!needsWork)
        {
            return text;
        }
        var builder = new System.Text.StringBuilder(Math.Min(text.Length, MaxLength) + 16);
        for (int i = 0; i < text.Length && i < MaxLength; i++)
        {
            char c = text[i];
            if (char.IsControl(c))
            {
                builder.Append("\\u").Append(((int)c).ToString("x4", System.Globalization.CultureInfo.InvariantCulture));
            }
            else
            {
                builder.Append(c);
            }
        }
        if (text.Length > MaxLength)
        {
            builder.Append("...");
        }
        return builder.ToString();
    }
}

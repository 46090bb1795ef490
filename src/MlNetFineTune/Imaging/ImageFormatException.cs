using System.Globalization;

namespace MlNetFineTune.Imaging;

/// <summary>
/// Malformed, truncated, unsupported or over-limit image data. The message is prefixed with
/// <c>"source: "</c> and suffixed with <c>" (at byte N)"</c> when those are known.
/// </summary>
public sealed class ImageFormatException : FormatException
{
    /// <summary>What was being decoded (usually a file path), or null. Hides <see cref="Exception.Source"/>,
    /// which names the throwing assembly.</summary>
    public new string? Source { get; }

    /// <summary>Byte offset in the input where the problem was found (for PNG: the start of the offending chunk), or null.</summary>
    public long? Offset { get; }

    public ImageFormatException(string message, string? source = null, long? offset = null, Exception? inner = null)
        : base(Compose(message, source, offset), inner)
    {
        Source = source;
        Offset = offset;
    }

    private static string Compose(string message, string? source, long? offset)
    {
        string text = string.IsNullOrEmpty(source) ? message : source + ": " + message;
        return offset is long o ? text + " (at byte " + o.ToString(CultureInfo.InvariantCulture) + ")" : text;
    }
}

namespace MlNetFineTune.Models.Hub;

/// <summary>Progress of one file download.</summary>
/// <param name="FileName">Path of the file inside its repository.</param>
/// <param name="BytesDownloaded">Bytes held so far (including bytes kept from an earlier, resumed attempt).</param>
/// <param name="TotalBytes">Expected size, when the hub announced it.</param>
public readonly record struct DownloadProgress(string FileName, long BytesDownloaded, long? TotalBytes)
{
    /// <summary>Fraction done in [0, 1], when the size is known.</summary>
    public double? Fraction => TotalBytes is > 0 ? Math.Min(1.0, (double)BytesDownloaded / TotalBytes.Value) : null;
}

using System.IO.Compression;
using System.Text;

namespace MlNetFineTune.Data;

/// <summary>The kinds of data file the loaders tell apart by extension.</summary>
internal enum DataFileKind
{
    Unknown,
    Tsv,
    Csv,
    Jsonl,
    Conll,
}

/// <summary>Opening data files: gzip by extension or magic number, UTF-8 without BOM when writing.</summary>
internal static class DataFiles
{
    internal static readonly UTF8Encoding Utf8NoBom = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>Opens <paramref name="path"/> for reading, decompressing gzip (a <c>.gz</c> name or the 1F 8B magic).</summary>
    internal static Stream OpenRead(string path, out bool compressed)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.SequentialScan);
        try
        {
            compressed = IsGzipName(path);
            if (!compressed && file.CanSeek && file.Length >= 2)
            {
                Span<byte> magic = stackalloc byte[2];
                file.ReadExactly(magic);
                file.Position = 0;
                compressed = magic[0] == 0x1F && magic[1] == 0x8B;
            }
            return compressed ? new GZipStream(file, CompressionMode.Decompress) : file;
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    /// <summary>Creates <paramref name="path"/> for writing, gzip-compressed when its name ends in <c>.gz</c>.</summary>
    internal static Stream OpenWrite(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var file = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 16);
        return IsGzipName(path) ? new GZipStream(file, CompressionLevel.Optimal) : file;
    }

    /// <summary>A UTF-8 (no BOM), LF-terminated writer on <see cref="OpenWrite"/>.</summary>
    internal static StreamWriter CreateText(string path)
        => new(OpenWrite(path), Utf8NoBom, 1 << 16) { NewLine = "\n" };

    internal static bool IsGzipName(string path) => path.EndsWith(".gz", StringComparison.OrdinalIgnoreCase);

    /// <summary>The kind of file by extension, looking through a trailing <c>.gz</c>.</summary>
    internal static DataFileKind GetKind(string path)
    {
        string name = IsGzipName(path) ? path[..^3] : path;
        return Path.GetExtension(name).ToLowerInvariant() switch
        {
            ".tsv" or ".tab" => DataFileKind.Tsv,
            ".csv" => DataFileKind.Csv,
            ".jsonl" or ".ndjson" => DataFileKind.Jsonl,
            ".conll" or ".conll03" or ".conllu" or ".bio" or ".bioes" or ".iob" or ".iob2" => DataFileKind.Conll,
            _ => DataFileKind.Unknown,
        };
    }
}

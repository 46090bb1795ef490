using System.IO.Compression;
using System.Text;

namespace MlNetFineTune.Tests;

/// <summary>A private temporary folder for one test class's data files, deleted on dispose.</summary>
internal sealed class DataTestFiles : IDisposable
{
    private static readonly UTF8Encoding Utf8 = new(encoderShouldEmitUTF8Identifier: false);

    public DataTestFiles()
    {
        Directory = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "mlft-data-tests-" + Guid.NewGuid().ToString("N"));
        System.IO.Directory.CreateDirectory(Directory);
    }

    public string Directory { get; }

    public string Path(string name) => System.IO.Path.Combine(Directory, name);

    /// <summary>Writes <paramref name="content"/> as UTF-8 without BOM, byte for byte (no newline translation).</summary>
    public string Write(string name, string content) => WriteBytes(name, Utf8.GetBytes(content));

    public string WriteBytes(string name, byte[] bytes)
    {
        string path = Path(name);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    /// <summary>Writes gzip-compressed bytes.</summary>
    public string WriteGzip(string name, byte[] bytes)
    {
        string path = Path(name);
        using var file = File.Create(path);
        using var gz = new GZipStream(file, CompressionLevel.Fastest);
        gz.Write(bytes);
        return path;
    }

    public string WriteGzip(string name, string content) => WriteGzip(name, Utf8.GetBytes(content));

    public static byte[] Bytes(string content) => Utf8.GetBytes(content);

    public void Dispose()
    {
        try
        {
            System.IO.Directory.Delete(Directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}

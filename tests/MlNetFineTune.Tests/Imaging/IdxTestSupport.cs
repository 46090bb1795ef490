using System.Buffers.Binary;
using System.IO.Compression;

namespace MlNetFineTune.Tests;

/// <summary>Locates the shipped Fashion-MNIST subset (data/fashion-mnist) and builds IDX files for the reader tests.</summary>
public static class IdxTestFiles
{
    private static readonly Lazy<string> Root = new(FindRoot);

    // Lazy, so that the synthetic-file tests do not need the repository.
    public static string RepoRoot => Root.Value;

    public static string FashionDir => Path.Combine(RepoRoot, "data", "fashion-mnist");

    public static string Fashion(string name) => Path.Combine(FashionDir, name);

    // $MLFT_REPO_ROOT, else the first folder above the test binaries that holds MlNetFineTune.sln.
    private static string FindRoot()
    {
        if (Environment.GetEnvironmentVariable("MLFT_REPO_ROOT") is { Length: > 0 } env)
        {
            if (Directory.Exists(Path.Combine(env, "data", "fashion-mnist"))) return env;
            throw new DirectoryNotFoundException($"MLFT_REPO_ROOT={env} has no data/fashion-mnist folder.");
        }
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "MlNetFineTune.sln"))) return dir.FullName;
        throw new DirectoryNotFoundException($"MlNetFineTune.sln not found above {AppContext.BaseDirectory} (set MLFT_REPO_ROOT).");
    }

    /// <summary>An IDX file: magic 00 00 <paramref name="type"/> dims.Length, big-endian dims, then <paramref name="data"/> as is.</summary>
    public static byte[] Build(byte type, uint[] dims, ReadOnlySpan<byte> data)
    {
        var bytes = new byte[4 + 4 * dims.Length + data.Length];
        bytes[2] = type;
        bytes[3] = (byte)dims.Length;
        for (int i = 0; i < dims.Length; i++) BinaryPrimitives.WriteUInt32BigEndian(bytes.AsSpan(4 + 4 * i), dims[i]);
        data.CopyTo(bytes.AsSpan(4 + 4 * dims.Length));
        return bytes;
    }

    public static byte[] Images(int count, int rows, int cols, Func<int, byte>? pixel = null)
    {
        var data = new byte[count * rows * cols];
        for (int i = 0; i < data.Length; i++) data[i] = pixel?.Invoke(i) ?? (byte)(i * 7 + 3);
        return Build(0x08, [(uint)count, (uint)rows, (uint)cols], data);
    }

    public static byte[] Labels(params byte[] labels) => Build(0x08, [(uint)labels.Length], labels);

    public static byte[] Gzip(byte[] data)
    {
        using var ms = new MemoryStream();
        using (var gz = new GZipStream(ms, CompressionLevel.Optimal, leaveOpen: true)) gz.Write(data);
        return ms.ToArray();
    }
}

/// <summary>A temporary folder, deleted on dispose, for IDX files written by a test.</summary>
public sealed class IdxTempDir : IDisposable
{
    public string Path { get; } = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "mlft-idx-" + Guid.NewGuid().ToString("N"));

    public IdxTempDir() => Directory.CreateDirectory(Path);

    public string Write(string name, byte[] bytes)
    {
        string path = System.IO.Path.Combine(Path, name);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    public void Dispose()
    {
        try { Directory.Delete(Path, recursive: true); }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }
}

/// <summary>A read-only, non-seekable view of a byte array that returns at most <c>chunk</c> bytes per read.</summary>
public sealed class IdxTrickleStream(byte[] data, int chunk = 3) : Stream
{
    private int _pos;

    public bool Closed { get; private set; }
    public override bool CanRead => !Closed;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override int Read(Span<byte> buffer)
    {
        int n = Math.Min(Math.Min(chunk, buffer.Length), data.Length - _pos);
        data.AsSpan(_pos, n).CopyTo(buffer);
        _pos += n;
        return n;
    }

    public override void Flush() { }
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        Closed = true;
        base.Dispose(disposing);
    }
}

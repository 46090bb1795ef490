using System.Buffers.Binary;
using System.IO.Compression;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;

namespace MlNetFineTune.Tests;

/// <summary>One image of fixtures/png/expected.json (written by tests/golden/generate_png_fixtures.py).</summary>
public sealed record PngFixture(
    string File, int Width, int Height, int Channels, int ColorType, int BitDepth, bool Interlaced, bool Trns,
    string Note, byte[] Pixels)
{
    public override string ToString() => File;
}

/// <summary>Locates and loads the committed PNG fixtures.</summary>
public static class PngFixtures
{
    private const string RelativeDir = "tests/MlNetFineTune.Tests/Imaging/fixtures/png";

    public static string Dir { get; } = FindDir();

    private static string ThisSourceFile([CallerFilePath] string path = "") => path;

    // Beside this source file (the test project does not copy the fixtures to its output), else above the test
    // binaries or under $MLFT_REPO_ROOT.
    private static string FindDir()
    {
        var candidates = new List<string>();
        string src = ThisSourceFile();
        if (Path.GetDirectoryName(src) is { Length: > 0 } srcDir) candidates.Add(Path.Combine(srcDir, "fixtures", "png"));
        candidates.Add(Path.Combine(AppContext.BaseDirectory, "Imaging", "fixtures", "png"));
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            candidates.Add(Path.Combine(dir.FullName, RelativeDir));
        if (Environment.GetEnvironmentVariable("MLFT_REPO_ROOT") is { Length: > 0 } root) candidates.Add(Path.Combine(root, RelativeDir));
        foreach (var c in candidates)
            if (File.Exists(Path.Combine(c, "expected.json"))) return c;
        throw new DirectoryNotFoundException($"PNG fixtures ({RelativeDir}/expected.json) not found; looked in: {string.Join(", ", candidates)}");
    }

    private static readonly Lazy<IReadOnlyDictionary<string, PngFixture>> All = new(Load);

    public static IReadOnlyCollection<PngFixture> Images => All.Value.Values.ToList();

    public static PngFixture Get(string file) => All.Value[file];

    public static byte[] Bytes(string file) => File.ReadAllBytes(Path.Combine(Dir, file));

    private static IReadOnlyDictionary<string, PngFixture> Load()
    {
        using var doc = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(Dir, "expected.json")));
        var result = new SortedDictionary<string, PngFixture>(StringComparer.Ordinal);
        foreach (var e in doc.RootElement.GetProperty("images").EnumerateArray())
        {
            var f = new PngFixture(
                e.GetProperty("file").GetString()!, e.GetProperty("width").GetInt32(), e.GetProperty("height").GetInt32(),
                e.GetProperty("channels").GetInt32(), e.GetProperty("color_type").GetInt32(), e.GetProperty("bit_depth").GetInt32(),
                e.GetProperty("interlaced").GetBoolean(), e.GetProperty("trns").GetBoolean(), e.GetProperty("note").GetString()!,
                Convert.FromBase64String(e.GetProperty("pixels").GetString()!));
            result.Add(f.File, f);
        }
        return result;
    }
}

/// <summary>Builds PNG files and pieces of them for the tests (own CRC and chunk code, independent of the decoder).</summary>
public static class PngBuild
{
    public static readonly byte[] Signature = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A];

    private static readonly uint[] CrcTable = Enumerable.Range(0, 256).Select(n =>
    {
        uint c = (uint)n;
        for (int k = 0; k < 8; k++) c = (c & 1) != 0 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        return c;
    }).ToArray();

    public static uint Crc(ReadOnlySpan<byte> data)
    {
        uint c = 0xFFFFFFFFu;
        foreach (byte b in data) c = CrcTable[(c ^ b) & 0xFF] ^ (c >> 8);
        return c ^ 0xFFFFFFFFu;
    }

    /// <summary>length + type + data + CRC.</summary>
    public static byte[] Chunk(string type, ReadOnlySpan<byte> data)
    {
        var c = new byte[12 + data.Length];
        BinaryPrimitives.WriteUInt32BigEndian(c, (uint)data.Length);
        Encoding.ASCII.GetBytes(type, c.AsSpan(4, 4));
        data.CopyTo(c.AsSpan(8));
        BinaryPrimitives.WriteUInt32BigEndian(c.AsSpan(8 + data.Length), Crc(c.AsSpan(4, 4 + data.Length)));
        return c;
    }

    public static byte[] Ihdr(uint width, uint height, int bitDepth, int colorType, int interlace = 0, int compression = 0, int filter = 0)
    {
        var d = new byte[13];
        BinaryPrimitives.WriteUInt32BigEndian(d, width);
        BinaryPrimitives.WriteUInt32BigEndian(d.AsSpan(4), height);
        d[8] = (byte)bitDepth; d[9] = (byte)colorType; d[10] = (byte)compression; d[11] = (byte)filter; d[12] = (byte)interlace;
        return Chunk("IHDR", d);
    }

    public static byte[] Zlib(ReadOnlySpan<byte> raw, CompressionLevel level = CompressionLevel.Optimal)
    {
        using var ms = new MemoryStream();
        using (var z = new ZLibStream(ms, level, leaveOpen: true)) z.Write(raw);
        return ms.ToArray();
    }

    public static byte[] Idat(ReadOnlySpan<byte> raw) => Chunk("IDAT", Zlib(raw));

    public static byte[] Iend() => Chunk("IEND", []);

    public static byte[] Png(params byte[][] chunks) => [.. Signature, .. chunks.SelectMany(c => c)];

    /// <summary>A w x h 8-bit gray image (filter 0 rows) with pixel value f(x, y): IHDR, IDAT, IEND.</summary>
    public static byte[] Gray8(int w, int h, Func<int, int, byte> f, params byte[][] beforeIdat)
    {
        var raw = new byte[h * (w + 1)];
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) raw[y * (w + 1) + 1 + x] = f(x, y);
        return Png([Ihdr((uint)w, (uint)h, 8, 0), .. beforeIdat, Idat(raw), Iend()]);
    }

    /// <summary>The chunks of a well-formed file: start offset, type, data length.</summary>
    public static List<(int Offset, string Type, int Length)> Chunks(byte[] png)
    {
        var list = new List<(int, string, int)>();
        for (int pos = 8; pos + 8 <= png.Length;)
        {
            int len = (int)BinaryPrimitives.ReadUInt32BigEndian(png.AsSpan(pos));
            list.Add((pos, Encoding.ASCII.GetString(png, pos + 4, 4), len));
            pos += 12 + len;
        }
        return list;
    }

    public static (int Offset, string Type, int Length) First(byte[] png, string type) => Chunks(png).First(c => c.Type == type);

    /// <summary>Recomputes the CRC of the chunk starting at <paramref name="offset"/> (after editing its data).</summary>
    public static void FixCrc(byte[] png, int offset)
    {
        int len = (int)BinaryPrimitives.ReadUInt32BigEndian(png.AsSpan(offset));
        BinaryPrimitives.WriteUInt32BigEndian(png.AsSpan(offset + 8 + len), Crc(png.AsSpan(offset + 4, 4 + len)));
    }

    /// <summary>Concatenated IDAT data, inflated.</summary>
    public static byte[] InflateIdat(byte[] png)
    {
        var z = Chunks(png).Where(c => c.Type == "IDAT").SelectMany(c => png.AsSpan(c.Offset + 8, c.Length).ToArray()).ToArray();
        using var ms = new MemoryStream();
        using (var inflate = new ZLibStream(new MemoryStream(z), CompressionMode.Decompress)) inflate.CopyTo(ms);
        return ms.ToArray();
    }

    /// <summary>The file with all IDAT chunks replaced by one holding <paramref name="zlibData"/>.</summary>
    public static byte[] ReplaceIdat(byte[] png, byte[] zlibData)
    {
        var output = new List<byte>(Signature);
        bool written = false;
        foreach (var (offset, type, length) in Chunks(png))
        {
            if (type == "IDAT")
            {
                if (!written) output.AddRange(Chunk("IDAT", zlibData));
                written = true;
            }
            else
            {
                output.AddRange(png.AsSpan(offset, 12 + length).ToArray());
            }
        }
        return [.. output];
    }
}

/// <summary>A non-seekable stream that hands out at most a few bytes per Read and counts what it gave.</summary>
public sealed class PngTrickleStream(byte[] data, int seed) : Stream
{
    private readonly Random _rng = new(seed);
    private int _pos;

    public int BytesRead => _pos;

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override int Read(Span<byte> buffer)
    {
        int n = Math.Min(Math.Min(buffer.Length, data.Length - _pos), _rng.Next(1, 8));
        data.AsSpan(_pos, n).CopyTo(buffer);
        _pos += n;
        return n;
    }

    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
    public override void Flush() { }
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
}

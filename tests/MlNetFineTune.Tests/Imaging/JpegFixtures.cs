using System.Text;
using System.Text.Json;
using MlNetFineTune.Imaging;

namespace MlNetFineTune.Tests;

/// <summary>The committed JPEG fixtures (tests/MlNetFineTune.Tests/Imaging/fixtures/jpeg) and their manifest.</summary>
internal static class JpegFixtures
{
    public static string Directory { get; } = Find();

    private static string Find()
    {
        const string rel = "tests/MlNetFineTune.Tests/Imaging/fixtures/jpeg";
        var env = Environment.GetEnvironmentVariable("MLFT_REPO_ROOT");
        if (!string.IsNullOrEmpty(env) && System.IO.Directory.Exists(Path.Combine(env, rel))) return Path.Combine(env, rel);
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            string candidate = Path.Combine(dir.FullName, rel);
            if (System.IO.Directory.Exists(candidate)) return candidate;
        }
        throw new DirectoryNotFoundException($"{rel} not found above {AppContext.BaseDirectory} (set MLFT_REPO_ROOT).");
    }

    public static string PathOf(string name) => Path.Combine(Directory, name);

    public static byte[] Bytes(string name) => File.ReadAllBytes(PathOf(name));

    public sealed record Case(string Name, string Jpeg, string Expected, string Reference, string Upsampling,
        bool ApplyExifOrientation, int Tolerance, string Note);

    public sealed record Failure(string Jpeg, string Exception, string Note);

    private static readonly Lazy<(List<Case> Cases, List<Failure> Failures)> Manifest = new(() =>
    {
        using var doc = JsonDocument.Parse(File.ReadAllBytes(PathOf("manifest.json")));
        var cases = doc.RootElement.GetProperty("cases").EnumerateArray().Select(e => new Case(
            e.GetProperty("name").GetString()!, e.GetProperty("jpeg").GetString()!, e.GetProperty("expected").GetString()!,
            e.GetProperty("reference").GetString()!, e.GetProperty("upsampling").GetString()!,
            e.GetProperty("applyExifOrientation").GetBoolean(), e.GetProperty("tolerance").GetInt32(),
            e.GetProperty("note").GetString()!)).ToList();
        var failures = doc.RootElement.GetProperty("failures").EnumerateArray().Select(e => new Failure(
            e.GetProperty("jpeg").GetString()!, e.GetProperty("exception").GetString()!, e.GetProperty("note").GetString()!)).ToList();
        return (cases, failures);
    });

    public static IReadOnlyList<Case> Cases => Manifest.Value.Cases;

    public static IReadOnlyList<Failure> Failures => Manifest.Value.Failures;

    /// <summary>The distinct JPEG files of the manifest (successful decodes only).</summary>
    public static IReadOnlyList<string> GoodJpegs => Cases.Select(c => c.Jpeg).Distinct().ToList();

    /// <summary>Reads a binary PNM (P5 gray or P6 RGB, maxval 255) as <see cref="ImageData"/>.</summary>
    public static ImageData ReadPnm(string name)
    {
        var data = Bytes(name);
        int pos = 0;
        string magic = Token(data, ref pos);
        int channels = magic switch { "P5" => 1, "P6" => 3, _ => throw new InvalidDataException($"{name}: unsupported PNM type {magic}") };
        int w = int.Parse(Token(data, ref pos), System.Globalization.CultureInfo.InvariantCulture);
        int h = int.Parse(Token(data, ref pos), System.Globalization.CultureInfo.InvariantCulture);
        int max = int.Parse(Token(data, ref pos), System.Globalization.CultureInfo.InvariantCulture);
        if (max != 255) throw new InvalidDataException($"{name}: maxval {max}");
        pos++; // the single whitespace after maxval
        return new ImageData(w, h, channels, data.AsSpan(pos, w * h * channels).ToArray());
    }

    private static string Token(byte[] data, ref int pos)
    {
        while (true)
        {
            while (pos < data.Length && char.IsWhiteSpace((char)data[pos])) pos++;
            if (pos < data.Length && data[pos] == (byte)'#')
            {
                while (pos < data.Length && data[pos] != (byte)'\n') pos++;
                continue;
            }
            break;
        }
        var sb = new StringBuilder();
        while (pos < data.Length && !char.IsWhiteSpace((char)data[pos])) sb.Append((char)data[pos++]);
        return sb.ToString();
    }

    /// <summary>Max and mean absolute difference over all samples of two same-shaped images.</summary>
    public static (int Max, double Mean) Difference(ImageData actual, ImageData expected)
    {
        if (actual.Width != expected.Width || actual.Height != expected.Height || actual.Channels != expected.Channels)
            throw new Xunit.Sdk.XunitException(
                $"shape {actual.Width}x{actual.Height}x{actual.Channels}, expected {expected.Width}x{expected.Height}x{expected.Channels}");
        int max = 0;
        long sum = 0;
        for (int i = 0; i < actual.Pixels.Length; i++)
        {
            int d = Math.Abs(actual.Pixels[i] - expected.Pixels[i]);
            sum += d;
            if (d > max) max = d;
        }
        return (max, (double)sum / actual.Pixels.Length);
    }
}

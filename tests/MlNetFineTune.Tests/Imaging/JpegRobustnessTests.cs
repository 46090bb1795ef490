using System.Diagnostics;
using MlNetFineTune.Imaging;
using Xunit;
using Xunit.Abstractions;

namespace MlNetFineTune.Tests;

/// <summary>Corrupt, truncated and unsupported inputs: only <see cref="ImageFormatException"/> or
/// <see cref="NotSupportedException"/>, naming the source and the byte offset, never another exception or a hang.</summary>
public sealed class JpegRobustnessTests(ITestOutputHelper output)
{
    private const string Src = "bad.jpg";

    private static byte[] Fixture(string name) => JpegFixtures.Bytes(name);

    /// <summary>Offset of the first marker <paramref name="code"/> among the header segments (before the first scan's data).</summary>
    private static int FindSegment(byte[] jpeg, int code)
    {
        int p = 2;
        while (p + 4 <= jpeg.Length)
        {
            Assert.Equal(0xFF, jpeg[p]);
            int m = jpeg[p + 1];
            if (m == code) return p;
            if (m == 0xDA) break;
            p += 2 + ((jpeg[p + 2] << 8) | jpeg[p + 3]);
        }
        throw new InvalidOperationException($"marker {code:X2} not found");
    }

    private static ImageFormatException Bad(byte[] data, string? contains = null)
    {
        var ex = Assert.Throws<ImageFormatException>(() => JpegDecoder.Decode(data, Src));
        Assert.Equal(Src, ex.Source);
        Assert.NotNull(ex.Offset);
        Assert.StartsWith(Src + ": ", ex.Message);
        Assert.EndsWith($"(at byte {ex.Offset})", ex.Message);
        if (contains is not null) Assert.Contains(contains, ex.Message);
        return ex;
    }

    private static NotSupportedException Unsupported(byte[] data, string contains)
    {
        var ex = Assert.Throws<NotSupportedException>(() => JpegDecoder.Decode(data, Src));
        Assert.StartsWith(Src + ": ", ex.Message);
        Assert.Contains("(at byte ", ex.Message);
        Assert.Contains(contains, ex.Message);
        return ex;
    }

    private static byte[] Patch(byte[] data, int at, params byte[] bytes)
    {
        var copy = (byte[])data.Clone();
        bytes.CopyTo(copy, at);
        return copy;
    }

    [Fact]
    public void Not_a_jpeg()
    {
        Assert.Equal(0, Bad([], "SOI").Offset);
        Assert.Equal(0, Bad([0xFF], "SOI").Offset);
        Bad([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A], "SOI");
        Bad([0xFF, 0xD8], "missing SOF");
        Bad([0xFF, 0xD8, 0xFF, 0xD9], "missing SOF");
    }

    [Fact]
    public void Truncation_anywhere_throws_ImageFormatException()
    {
        foreach (var name in new[] { "baseline_q75.jpg", "progressive_420.jpg", "restart_1row.jpg", "gray_q75.jpg" })
        {
            var data = Fixture(name);
            int sos = FindSegment(data, 0xDA);
            for (int cut = 0; cut < data.Length - 2; cut += cut < sos ? 7 : 3)
            {
                var ex = Record.Exception(() => JpegDecoder.Decode(data[..cut], Src));
                // Progressive files cut exactly between two scans are complete-but-coarse images (libjpeg shows them too).
                if (ex is null && name.StartsWith("progressive", StringComparison.Ordinal)) continue;
                Assert.True(ex is ImageFormatException, $"{name} cut at {cut}: {ex?.GetType().Name ?? "decoded"}: {ex?.Message}");
            }
        }
        Bad(Fixture("baseline_q75.jpg")[..^40], "truncated");
    }

    [Fact]
    public void Missing_SOF_or_SOS()
    {
        var data = Fixture("baseline_q75.jpg");
        int sof = FindSegment(data, 0xC0);
        int len = 2 + ((data[sof + 2] << 8) | data[sof + 3]);
        var noSof = data[..sof].Concat(data[(sof + len)..]).ToArray();
        Bad(noSof, "SOS before SOF");

        int sos = FindSegment(data, 0xDA);
        Bad(data[..sos].Concat(new byte[] { 0xFF, 0xD9 }).ToArray(), "missing SOS");
        Bad(data[..sos], "missing SOS");
    }

    [Fact]
    public void Bad_frame_headers()
    {
        var data = Fixture("baseline_q75.jpg");
        int sof = FindSegment(data, 0xC0);
        Bad(Patch(data, sof + 5, 0, 0), "height is 0");
        Bad(Patch(data, sof + 7, 0, 0), "width is 0");
        Bad(Patch(data, sof + 5, 0xFF, 0xFF, 0xFF, 0xFF), "pixel budget");
        Bad(Patch(data, sof + 4, 9), "precision");
        Unsupported(Patch(data, sof + 4, 12), "12-bit");
        Unsupported(Patch(data, sof + 1, 0xC3), "lossless");
        Unsupported(Patch(data, sof + 1, 0xC9), "arithmetic");
        Unsupported(Patch(data, sof + 1, 0xCA), "arithmetic");
        Bad(Patch(data, sof + 11, 0x50), "sampling factors");  // component 1: 5x0
        Bad(Patch(data, sof + 12, 7), "quantization table index 7");
        Bad(Patch(data, sof + 13, 1), "duplicate component id");
        Bad(Patch(data, sof + 9, 4), "does not match");         // component count vs length
        Bad(Patch(data, sof + 2, 0xFF), "past the end");
        Bad(Patch(data, sof + 1, 0x02), "unknown marker");
        Bad(Patch(data, sof, 0x12), "expected a marker");
        Unsupported(Patch(Patch(data, sof + 11, 0x31), sof + 14, 0x21), "fractional sampling"); // Y 3x1, Cb 2x1
    }

    [Fact]
    public void Huge_dimensions_within_the_budget_fail_fast_without_huge_allocations()
    {
        var data = Fixture("baseline_q75.jpg");
        int sof = FindSegment(data, 0xC0);
        var big = Patch(data, sof + 5, 0x27, 0x10, 0x27, 0x10); // 10000 x 10000 = 100 MP, exactly the default budget
        long before = GC.GetAllocatedBytesForCurrentThread();
        var sw = Stopwatch.StartNew();
        Bad(big, "remain");
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        output.WriteLine($"10000x10000 header on a {data.Length}-byte file: rejected in {sw.ElapsedMilliseconds} ms, {allocated} bytes allocated");
        Assert.True(allocated < 16 << 20, $"allocated {allocated} bytes");
    }

    [Fact]
    public void Bad_tables()
    {
        var data = Fixture("baseline_q75.jpg");
        int dqt = FindSegment(data, 0xDB);
        Bad(Patch(data, dqt + 4, 0x04), "DQT: table index 4");
        Bad(Patch(data, dqt + 4, 0x20), "DQT: invalid precision");
        Bad(Patch(data, dqt + 4, 0x10), "DQT segment too short");
        int dht = FindSegment(data, 0xC4);
        Bad(Patch(data, dht + 4, 0x05), "DHT: table index 5");
        Bad(Patch(data, dht + 4, 0x20), "DHT: table class 2");
        Bad(Patch(data, dht + 5, 3, 0, 2), "overflow");         // three 1-bit codes
        Bad(Patch(data, dht + 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 255), "DHT");
        int dri = FindSegment(Fixture("restart_1row.jpg"), 0xDD);
        Bad(Patch(Fixture("restart_1row.jpg"), dri + 3, 5), "DRI");
    }

    [Fact]
    public void Bad_scan_headers()
    {
        var data = Fixture("baseline_q75.jpg");
        int sos = FindSegment(data, 0xDA);
        Bad(Patch(data, sos + 5, 9), "component id 9");
        Bad(Patch(data, sos + 6, 0x44), "Huffman table index");
        Bad(Patch(data, sos + 6, 0x22), "undefined DC Huffman table 2");
        Bad(Patch(data, sos + 4, 5), "SOS");
        Bad(Patch(data, sos + 7, 1), "listed twice");
        var prog = Fixture("progressive_420.jpg");
        int psos = FindSegment(prog, 0xDA);
        int ns = prog[psos + 4];
        Bad(Patch(prog, psos + 5 + 2 * ns, 0, 5), "progressive parameters");      // DC scan with Se=5
        Bad(Patch(prog, psos + 5 + 2 * ns + 2, 0x35), "progressive parameters");  // Ah=3, Al=5
        Bad(Patch(prog, psos + 5 + 2 * ns, 1, 63), "progressive parameters");     // AC scan with 3 components
        var noQuant = Patch(data, FindSegment(data, 0xC0) + 12, 3);                 // Y uses DQT 3, never defined
        Bad(noQuant, "undefined quantization table 3");
    }

    [Fact]
    public void Corrupt_entropy_data()
    {
        var data = Fixture("baseline_q75.jpg");
        int sos = FindSegment(data, 0xDA);
        int start = sos + 2 + ((data[sos + 2] << 8) | data[sos + 3]);
        // All-ones bits are never a valid code (libjpeg tables exclude the all-ones code).
        var ones = (byte[])data.Clone();
        for (int i = start; i < data.Length - 2; i += 2) { ones[i] = 0xFF; ones[i + 1] = 0x00; }
        Bad(ones, "Huffman");

        // A marker in the middle of the scan ends it early.
        Bad(Patch(data, start + 40, 0xFF, 0xD9), "truncated");

        // Wrong restart marker number.
        var rst = Fixture("restart_1row.jpg");
        int at = -1;
        for (int i = FindSegment(rst, 0xDA) + 2; i < rst.Length - 1; i++)
            if (rst[i] == 0xFF && rst[i + 1] == 0xD0) { at = i; break; }
        Assert.True(at > 0);
        Bad(Patch(rst, at + 1, 0xD5), "expected restart marker RST0");
    }

    [Fact]
    public void Endless_scans_are_cut_off()
    {
        // Repeat the first scan (DC first: its bit consumption does not depend on earlier scans) of a progressive
        // file: a few repeats still decode, 150 exceed the work budget of 100 block visits per block.
        var data = Fixture("gray_progressive.jpg");
        int sos = FindSegment(data, 0xDA);
        int end = sos + 2 + ((data[sos + 2] << 8) | data[sos + 3]);
        while (!(data[end] == 0xFF && data[end + 1] != 0 && data[end + 1] is < 0xD0 or > 0xD7)) end++;
        var scan = data[sos..end];
        byte[] Repeat(int n) => data[..end].Concat(Enumerable.Repeat(scan, n).SelectMany(x => x)).Concat(data[end..]).ToArray();
        var img = JpegDecoder.Decode(Repeat(3), Src);
        Assert.Equal((48, 40), (img.Width, img.Height));
        Bad(Repeat(150), "too many scans");
    }

    [Fact]
    public void Exceptions_without_a_source_have_no_prefix()
    {
        var ex = Assert.Throws<ImageFormatException>(() => JpegDecoder.Decode(new byte[] { 1, 2, 3 }));
        Assert.Null(ex.Source);
        Assert.Equal(0, ex.Offset);
        Assert.StartsWith("not a JPEG", ex.Message);
    }

    /// <summary>500 seeded mutations of the fixtures: each decode returns an image or throws one of the two exception types.</summary>
    [Fact]
    public void Fuzz_500_seeded_mutations()
    {
        var seeds = JpegFixtures.GoodJpegs
            .Where(n => n.StartsWith("progressive_420", StringComparison.Ordinal) || n.StartsWith("baseline_q75", StringComparison.Ordinal) ||
                        n.StartsWith("restart_1row", StringComparison.Ordinal) || n.StartsWith("odd_17x13", StringComparison.Ordinal) ||
                        n.StartsWith("progressive_sa", StringComparison.Ordinal) || n.StartsWith("gray_progressive", StringComparison.Ordinal) ||
                        n.StartsWith("sample_mixed", StringComparison.Ordinal) || n.StartsWith("cmyk", StringComparison.Ordinal) ||
                        n.StartsWith("ycck", StringComparison.Ordinal) || n.StartsWith("exif_ii_o6", StringComparison.Ordinal) ||
                        n.StartsWith("progressive_restart", StringComparison.Ordinal) || n.StartsWith("sample_411", StringComparison.Ordinal))
            .Select(n => (Name: n, Data: Fixture(n)))
            .ToArray();
        Assert.True(seeds.Length >= 10);
        int decoded = 0, formatErrors = 0, unsupported = 0;
        var sw = Stopwatch.StartNew();
        long worstMs = 0;
        for (int iter = 0; iter < 500; iter++)
        {
            var rng = new Random(1000 + iter);
            var (name, original) = seeds[iter % seeds.Length];
            var (mutated, what) = Mutate(original, rng);
            var t0 = sw.ElapsedMilliseconds;
            try
            {
                var img = JpegDecoder.Decode(mutated, name);
                Assert.Equal(img.Width * img.Height * img.Channels, img.Pixels.Length);
                decoded++;
            }
            catch (ImageFormatException ex)
            {
                Assert.NotNull(ex.Offset);
                Assert.InRange(ex.Offset!.Value, 0, mutated.Length);
                formatErrors++;
            }
            catch (NotSupportedException)
            {
                unsupported++;
            }
            catch (Exception ex)
            {
                Assert.Fail($"iteration {iter} ({name}, {what}): {ex.GetType().Name}: {ex.Message}\n{ex.StackTrace}");
            }
            worstMs = Math.Max(worstMs, sw.ElapsedMilliseconds - t0);
        }
        output.WriteLine($"500 mutations in {sw.ElapsedMilliseconds} ms (slowest {worstMs} ms): {decoded} decoded, " +
                         $"{formatErrors} ImageFormatException, {unsupported} NotSupportedException");
        Assert.True(formatErrors > 100 && decoded > 20, "the mutations should exercise both outcomes");
    }

    private static (byte[] Data, string What) Mutate(byte[] original, Random rng)
    {
        var d = (byte[])original.Clone();
        int kind = rng.Next(8);
        switch (kind)
        {
            case 0: // flip a few bits anywhere
            {
                int n = 1 + rng.Next(4);
                for (int i = 0; i < n; i++) d[rng.Next(d.Length)] ^= (byte)(1 << rng.Next(8));
                return (d, $"flip {n} bits");
            }
            case 1: // random bytes in the headers (first 700 bytes hold the tables)
            {
                int n = 1 + rng.Next(3);
                for (int i = 0; i < n; i++) d[rng.Next(Math.Min(d.Length, 700))] = (byte)rng.Next(256);
                return (d, $"set {n} header bytes");
            }
            case 2: // truncate
            {
                int len = rng.Next(d.Length);
                return (d[..len], $"truncate to {len}");
            }
            case 3: // insert a random marker
            {
                int at = 2 + rng.Next(d.Length - 2);
                var marker = new byte[] { 0xFF, (byte)rng.Next(256) };
                return (d[..at].Concat(marker).Concat(d[at..]).ToArray(), $"insert FF {marker[1]:X2} at {at}");
            }
            case 4: // delete a chunk
            {
                int at = rng.Next(d.Length);
                int n = 1 + rng.Next(Math.Min(64, d.Length - at));
                return (d[..at].Concat(d[(at + n)..]).ToArray(), $"delete {n} at {at}");
            }
            case 5: // overwrite SOF dimensions / sampling
            {
                int sof = FindSof(d);
                if (sof < 0) goto case 0;
                int field = sof + 5 + rng.Next(8);
                d[field] = (byte)rng.Next(256);
                return (d, $"SOF byte {field - sof} = {d[field]}");
            }
            case 6: // duplicate a chunk of scan data
            {
                int at = d.Length / 2 + rng.Next(d.Length / 2);
                int n = 1 + rng.Next(Math.Min(32, d.Length - at));
                return (d[..(at + n)].Concat(d[at..]).ToArray(), $"duplicate {n} at {at}");
            }
            default: // random bytes anywhere
            {
                int n = 1 + rng.Next(8);
                for (int i = 0; i < n; i++) d[2 + rng.Next(d.Length - 2)] = (byte)rng.Next(256);
                return (d, $"set {n} bytes");
            }
        }
    }

    private static int FindSof(byte[] d)
    {
        for (int i = 2; i < d.Length - 10; i++)
            if (d[i] == 0xFF && d[i + 1] is 0xC0 or 0xC1 or 0xC2) return i;
        return -1;
    }
}

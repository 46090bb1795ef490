using System.Buffers.Binary;
using System.Diagnostics;
using MlNetFineTune.Imaging;
using Xunit;

namespace MlNetFineTune.Tests;

/// <summary>
/// Seeded mutations of valid fixtures: decoding must only ever return an <see cref="ImageData"/> or throw an
/// <see cref="ImageFormatException"/> (never IndexOutOfRange, OutOfMemory, InvalidData, a hang, ...), quickly.
/// </summary>
public sealed class PngFuzzTests
{
    private static readonly string[] Seeds =
    [
        "ct0_bd1_adam7.png", "ct0_bd2_plain.png", "ct0_bd16_trns.png", "ct2_bd8_trns_adam7.png", "ct2_bd16_plain.png",
        "ct3_bd1_plain.png", "ct3_bd4_trns_adam7.png", "ct3_bd8_adam7.png", "ct4_bd16_adam7.png", "ct6_bd8_adam7.png",
        "ct6_bd16_plain.png", "idat_split_ct2_bd8.png", "ancillary_ct3_bd8_trns.png", "size3x3_ct6_bd8_adam7.png",
        "size1x1_ct0_bd1.png", "pil_p-trns.png", "filter4_ct0_bd1.png",
    ];

    private const int Mutations = 500;

    [Fact]
    public void Seeded_mutations_only_yield_ImageData_or_ImageFormatException()
    {
        var originals = Seeds.Select(PngFixtures.Bytes).ToArray();
        var rng = new Random(0x5EED);
        int decoded = 0, rejected = 0;
        var sw = Stopwatch.StartNew();
        for (int i = 0; i < Mutations; i++)
        {
            int which = rng.Next(Seeds.Length);
            int kind = rng.Next(7);
            byte[] data = Mutate(originals[which], kind, rng);
            string source = $"fuzz#{i}";
            try
            {
                var img = PngDecoder.Decode(data, source);
                Assert.Equal((long)img.Width * img.Height * img.Channels, img.Pixels.Length);
                Assert.InRange(img.Channels, 1, 4);
                decoded++;
            }
            catch (ImageFormatException ex)
            {
                Assert.Equal(source, ex.Source);
                Assert.NotNull(ex.Offset);
                Assert.InRange(ex.Offset!.Value, 0, data.Length);
                rejected++;
            }
            catch (Exception ex)
            {
                Assert.Fail($"mutation {i} (kind {kind} of {Seeds[which]}) threw {ex.GetType().FullName}: {ex.Message}\n{ex.StackTrace}");
            }
        }
        sw.Stop();
        // Both outcomes must be reached, or the mutations test nothing.
        Assert.True(decoded >= 25, $"only {decoded} of {Mutations} mutants decoded");
        Assert.True(rejected >= 250, $"only {rejected} of {Mutations} mutants rejected");
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(3), $"{Mutations} mutants took {sw.ElapsedMilliseconds} ms");
    }

    private static byte[] Mutate(byte[] original, int kind, Random rng)
    {
        var d = (byte[])original.Clone();
        var chunks = PngBuild.Chunks(d);
        switch (kind)
        {
            case 0: // flip a few bits anywhere (CRC mostly catches these)
                for (int n = rng.Next(1, 5); n > 0; n--) d[rng.Next(d.Length)] ^= (byte)(1 << rng.Next(8));
                return d;

            case 1: // damage a chunk's data and repair its CRC, so the content itself is tested
            {
                var (offset, _, length) = chunks[rng.Next(chunks.Count)];
                if (length == 0) return d;
                for (int n = rng.Next(1, 4); n > 0; n--) d[offset + 8 + rng.Next(length)] = (byte)rng.Next(256);
                PngBuild.FixCrc(d, offset);
                return d;
            }

            case 2: // truncate
                return d.AsSpan(0, rng.Next(d.Length)).ToArray();

            case 3: // insert or delete a run of bytes
            {
                int at = rng.Next(d.Length), run = rng.Next(1, 17);
                if (rng.Next(2) == 0)
                {
                    var junk = new byte[run];
                    rng.NextBytes(junk);
                    return [.. d.AsSpan(0, at), .. junk, .. d.AsSpan(at)];
                }
                return [.. d.AsSpan(0, at), .. d.AsSpan(Math.Min(d.Length, at + run))];
            }

            case 4: // edit the decompressed scanlines (filter bytes, palette indices, length) and recompress
            {
                var raw = PngBuild.InflateIdat(d).ToList();
                switch (rng.Next(4))
                {
                    case 0: raw[rng.Next(raw.Count)] = (byte)rng.Next(256); break;
                    case 1: raw[0] = (byte)rng.Next(3, 8); break; // filter type of the first row, often invalid
                    case 2: raw.RemoveRange(raw.Count - rng.Next(1, Math.Min(raw.Count, 9)), 1); break;
                    default: raw.AddRange(new byte[rng.Next(1, 9)]); break;
                }
                return PngBuild.ReplaceIdat(d, PngBuild.Zlib(raw.ToArray()));
            }

            case 5: // rewrite one IHDR field to an interesting value (CRC repaired)
            {
                int[] dims = [0, 1, 2, 7, 8, 9, 31, 33, 1000, 32768, 32769, 65535, int.MaxValue];
                switch (rng.Next(5))
                {
                    case 0: BinaryPrimitives.WriteInt32BigEndian(d.AsSpan(16), dims[rng.Next(dims.Length)]); break;
                    case 1: BinaryPrimitives.WriteInt32BigEndian(d.AsSpan(20), dims[rng.Next(dims.Length)]); break;
                    case 2: d[24] = (byte)new[] { 0, 1, 2, 3, 4, 5, 8, 16, 32, 255 }[rng.Next(10)]; break;
                    case 3: d[25] = (byte)rng.Next(8); break;
                    default: d[28] = (byte)rng.Next(3); break;
                }
                PngBuild.FixCrc(d, 8);
                return d;
            }

            default: // chunk order: drop, duplicate or swap chunks
            {
                var pieces = chunks.Select(c => d.AsSpan(c.Offset, 12 + c.Length).ToArray()).ToList();
                int i = rng.Next(pieces.Count);
                switch (rng.Next(3))
                {
                    case 0: pieces.RemoveAt(i); break;
                    case 1: pieces.Insert(i, pieces[rng.Next(pieces.Count)]); break;
                    default:
                        int j = rng.Next(pieces.Count);
                        (pieces[i], pieces[j]) = (pieces[j], pieces[i]);
                        break;
                }
                return PngBuild.Png([.. pieces]);
            }
        }
    }
}

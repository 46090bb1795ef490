namespace MlNetFineTune.Imaging;

/// <summary>
/// Managed PNG decoder (ISO/IEC 15948, W3C PNG 2nd edition) with no native dependency.
/// </summary>
/// <remarks>
/// <para>Supports every colour type (0 gray, 2 RGB, 3 palette, 4 gray+alpha, 6 RGBA) at every legal bit depth,
/// all five scanline filters and Adam7 interlacing. Output (<see cref="ImageData"/>) is always 8 bits per channel:</para>
/// <list type="bullet">
/// <item>gray -&gt; 1 channel, or 2 (gray+alpha) when a tRNS chunk names a transparent gray level;</item>
/// <item>RGB -&gt; 3 channels, or 4 (RGBA) when tRNS names a transparent colour;</item>
/// <item>palette -&gt; 3 channels (RGB), or 4 (RGBA) when tRNS gives palette alpha (entries past the tRNS data are opaque);</item>
/// <item>gray+alpha -&gt; 2 channels, RGBA -&gt; 4 channels.</item>
/// </list>
/// <para>16-bit samples are reduced to 8 bits by keeping the high byte (v &gt;&gt; 8, the same as libpng's
/// png_set_strip_16 and Pillow); tRNS matching uses the full 16-bit value first. Gray samples of 1, 2 and 4 bits are
/// scaled to 0..255 as the spec says (v * 255 / (2^depth - 1), i.e. x255, x85, x17); palette indices are unpacked.
/// Transparent tRNS pixels get alpha 0, all others 255; the colour values are kept.</para>
/// <para>Ancillary chunks other than tRNS (gAMA, cHRM, sRGB, iCCP, sBIT, bKGD, pHYs, text, time, APNG chunks, ...)
/// are CRC-checked and ignored: no gamma or colour-space conversion is applied, and only the default image is
/// returned. A PLTE in an RGB/RGBA file (a suggested palette) is ignored. Unknown critical chunks are errors.</para>
/// <para>Strictness: every chunk's CRC-32 is verified; IHDR is validated (sizes 1..<see cref="MaxDimension"/>,
/// at most <see cref="MaxPixelCount"/> pixels, legal colour type / bit depth, methods 0); PLTE/tRNS must precede
/// IDAT, have legal lengths and appear once (a PLTE longer than the bit depth can index is accepted); IDAT chunks
/// must be consecutive; palette indices must have a PLTE entry; the decompressed data must be exactly the expected
/// size (more is rejected after one extra byte, which stops decompression bombs; less is "truncated"), and the zlib
/// stream must be complete, Adler-32 checksum included. Compressed bytes after the end of the zlib stream inside
/// the IDAT run are ignored.</para>
/// <para>A missing IEND is accepted when the input ends cleanly at a chunk boundary after the complete image data
/// (all IDAT chunks with their CRCs, the whole zlib stream); input ending inside any chunk (including a partial
/// IEND) is an error. Nothing after IEND is read, so several PNGs can be decoded one after another from one stream.</para>
/// <para>Every error is an <see cref="ImageFormatException"/> carrying the source name and a byte offset: the
/// start of the offending chunk. For problems in the compressed image data it is the IDAT chunk being read when
/// the problem was found (zlib reads ahead, so possibly a chunk after the bad byte); if that chunk's CRC is wrong,
/// the CRC mismatch is reported instead of the garbage it decompressed to. Offsets count from the stream position
/// at the call. I/O errors of the stream itself propagate unchanged.</para>
/// </remarks>
public static class PngDecoder
{
    /// <summary>Largest accepted width or height.</summary>
    public const int MaxDimension = 32768;

    /// <summary>Largest accepted width * height (2^28; at most a 1 GiB RGBA result).</summary>
    public const long MaxPixelCount = 1L << 28;

    /// <summary>The 8-byte PNG signature: 89 50 4E 47 0D 0A 1A 0A.</summary>
    public static ReadOnlySpan<byte> Signature => [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A];

    /// <summary>True when <paramref name="header"/> (the first bytes of a file; at least 8 are needed) starts with the PNG signature.</summary>
    public static bool IsPng(ReadOnlySpan<byte> header) => header.Length >= 8 && header[..8].SequenceEqual(Signature);

    /// <summary>Decodes a PNG held in memory.</summary>
    /// <param name="data">The whole file.</param>
    /// <param name="source">Name for error messages (e.g. the file path), or null.</param>
    /// <exception cref="ImageFormatException">Not a PNG, corrupt, truncated, unsupported or over the size limits.</exception>
    public static ImageData Decode(byte[] data, string? source = null)
    {
        ArgumentNullException.ThrowIfNull(data);
        using var ms = new MemoryStream(data, writable: false);
        return Decode(ms, source);
    }

    /// <summary>Decodes a PNG held in memory (read in place, not copied).</summary>
    /// <inheritdoc cref="Decode(byte[], string?)"/>
    public static unsafe ImageData Decode(ReadOnlySpan<byte> data, string? source = null)
    {
        if (data.IsEmpty) return Decode(Array.Empty<byte>(), source);
        fixed (byte* p = data)
        {
            using var s = new UnmanagedMemoryStream(p, data.Length);
            return Decode(s, source);
        }
    }

    /// <summary>
    /// Decodes a PNG from the current position of <paramref name="stream"/>, reading sequentially (no seeking)
    /// up to and including IEND. The stream is not disposed.
    /// </summary>
    /// <param name="stream">Readable stream positioned at the PNG signature.</param>
    /// <param name="source">Name for error messages (e.g. the file path), or null.</param>
    /// <exception cref="ImageFormatException">Not a PNG, corrupt, truncated, unsupported or over the size limits.</exception>
    public static ImageData Decode(Stream stream, string? source = null)
    {
        ArgumentNullException.ThrowIfNull(stream);
        var reader = new PngChunkReader(stream, source);
        ReadSignature(reader);

        PngHeader? header = null;
        byte[]? palette = null; // colour type 3 only
        bool seenPlte = false;
        byte[]? trns = null;
        ImageData? image = null;
        PngChunk? pending = null;

        while (true)
        {
            PngChunk chunk;
            if (pending is PngChunk p)
            {
                chunk = p;
                pending = null;
            }
            else if (!reader.TryReadChunkHeader(out chunk))
            {
                if (image is not null) return image; // IEND missing, but all image data was present
                throw reader.Error(header is null ? "file ends before the IHDR chunk" : "file ends before any image data (no IDAT chunk)", reader.Position);
            }

            if (header is null)
            {
                if (chunk.Type == PngChunkType.CgBI)
                    throw reader.Error("Apple CgBI PNG (an iOS-optimised variant with raw deflate and BGRA pixels), not standard PNG", chunk.Offset);
                if (chunk.Type != PngChunkType.IHDR) throw reader.Error($"first chunk is '{chunk.Name}', expected IHDR", chunk.Offset);
                if (chunk.Length != 13) throw reader.Error($"IHDR has length {chunk.Length}, expected 13", chunk.Offset);
                header = PngHeader.Parse(reader.ReadData(chunk), reader, chunk.Offset);
                continue;
            }

            switch (chunk.Type)
            {
                case PngChunkType.IHDR:
                    throw reader.Error("duplicate IHDR chunk", chunk.Offset);

                case PngChunkType.PLTE:
                {
                    if (image is not null) throw reader.Error("PLTE chunk after the image data (it must precede IDAT)", chunk.Offset);
                    if (seenPlte) throw reader.Error("duplicate PLTE chunk", chunk.Offset);
                    if (header.ColorType is 0 or 4) throw reader.Error($"PLTE chunk in a grayscale image (colour type {header.ColorType})", chunk.Offset);
                    if (trns is not null) throw reader.Error("PLTE chunk after tRNS (it must precede it)", chunk.Offset);
                    int entries = chunk.Length / 3;
                    if (chunk.Length == 0 || chunk.Length % 3 != 0 || entries > 256)
                        throw reader.Error($"PLTE has length {chunk.Length}; expected 3 to 768 and a multiple of 3", chunk.Offset);
                    var data = reader.ReadData(chunk);
                    seenPlte = true;
                    // More entries than the bit depth can index are allowed (libpng too): they are unreachable. For RGB/RGBA
                    // the PLTE is only a suggested palette for quantising displays: ignored.
                    if (header.ColorType == 3) palette = data;
                    break;
                }

                case PngChunkType.tRNS:
                {
                    if (image is not null) throw reader.Error("tRNS chunk after the image data (it must precede IDAT)", chunk.Offset);
                    if (trns is not null) throw reader.Error("duplicate tRNS chunk", chunk.Offset);
                    switch (header.ColorType)
                    {
                        case 0 when chunk.Length != 2:
                            throw reader.Error($"tRNS has length {chunk.Length}; a grayscale image needs 2", chunk.Offset);
                        case 2 when chunk.Length != 6:
                            throw reader.Error($"tRNS has length {chunk.Length}; an RGB image needs 6", chunk.Offset);
                        case 3 when palette is null:
                            throw reader.Error("tRNS chunk before PLTE in a palette image", chunk.Offset);
                        case 3 when chunk.Length > palette.Length / 3:
                            throw reader.Error($"tRNS has {chunk.Length} entries but PLTE only {palette.Length / 3}", chunk.Offset);
                        case 4 or 6:
                            throw reader.Error($"tRNS chunk in an image that already has an alpha channel (colour type {header.ColorType})", chunk.Offset);
                    }
                    trns = reader.ReadData(chunk);
                    break;
                }

                case PngChunkType.IDAT:
                {
                    if (image is not null) throw reader.Error("IDAT chunks are not consecutive", chunk.Offset);
                    if (header.ColorType == 3 && palette is null) throw reader.Error("palette image (colour type 3) has no PLTE chunk before IDAT", chunk.Offset);
                    var idat = new PngIdatStream(reader, chunk);
                    image = PngScanlines.Decode(header, idat, palette, trns, reader);
                    idat.Drain();
                    pending = idat.Pending;
                    break;
                }

                case PngChunkType.IEND:
                    if (image is null) throw reader.Error("IEND before any image data (no IDAT chunk)", chunk.Offset);
                    if (chunk.Length != 0) throw reader.Error($"IEND has length {chunk.Length}, expected 0", chunk.Offset);
                    reader.VerifyCrc(chunk, PngChunkReader.StartCrc(chunk));
                    return image;

                default:
                    if (PngChunkType.IsCritical(chunk.Type))
                        throw reader.Error($"unknown critical chunk '{chunk.Name}' (this decoder cannot safely ignore it)", chunk.Offset);
                    reader.Skip(chunk);
                    break;
            }
        }
    }

    private static void ReadSignature(PngChunkReader reader)
    {
        Span<byte> sig = stackalloc byte[8];
        int n = reader.ReadFull(sig);
        if (n == 8 && sig.SequenceEqual(Signature)) return;
        string what =
            n == 0 ? "input is empty" :
            n >= 3 && sig[0] == 0xFF && sig[1] == 0xD8 && sig[2] == 0xFF ? "this is a JPEG file, not PNG" :
            n >= 4 && sig[1] == 'P' && sig[2] == 'N' && sig[3] == 'G' ? "damaged PNG signature (e.g. by a text-mode line-ending conversion or truncation)" :
            "not a PNG file (bad signature)";
        throw reader.Error(what, 0);
    }
}

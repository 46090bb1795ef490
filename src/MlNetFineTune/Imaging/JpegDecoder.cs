namespace MlNetFineTune.Imaging;

/// <summary>
/// A managed JPEG decoder with no native dependency.
/// </summary>
/// <remarks>
/// <para>Supported: baseline and extended sequential Huffman (SOF0, SOF1, 8-bit), progressive Huffman (SOF2: spectral
/// selection and successive approximation, DC/AC first and refinement scans), any integral sampling factors (4:4:4,
/// 4:2:2, 4:2:0, 4:4:0, 4:1:1, ...), 1, 3 or 4 components, restart intervals (DRI/RSTn), up to 4 quantisation and
/// 4+4 Huffman tables (redefinable between scans), Adobe APP14 colour transforms and EXIF orientation.</para>
/// <para>Output: 1 channel for grayscale, otherwise 3 channels RGB. YCbCr is converted with libjpeg's JFIF integer
/// tables; RGB (Adobe transform 0 or component ids 'R','G','B') is passed through; CMYK and YCCK are decoded as libjpeg
/// does (YCCK to CMYK first), treated as Adobe-inverted when an Adobe marker is present, and converted to RGB as Pillow
/// does: <c>R = (255 - K) - (C * (255 - K)) / 255</c> on ink values.</para>
/// <para>Matching libjpeg: the IDCT is a port of libjpeg's accurate integer IDCT (<c>djpeg -dct int</c>, the default),
/// and <see cref="JpegUpsampling.Fancy"/> reproduces libjpeg's default "fancy" triangle-filter upsampling for 2:1
/// ratios (h2v1, h1v2, h2v2) with box replication for other ratios, so the output equals djpeg's default output;
/// <see cref="JpegUpsampling.Replicate"/> equals <c>djpeg -nosmooth</c>.</para>
/// <para>Not supported (throws <see cref="NotSupportedException"/>): arithmetic coding (SOF9..SOF15), lossless and
/// hierarchical processes (SOF3, SOF5..SOF7), 12/16-bit precision, 2-component images, fractional sampling ratios
/// and heights defined by a DNL marker.</para>
/// <para>Errors: malformed, truncated or over-budget data throws <see cref="ImageFormatException"/> with the source
/// name and byte offset. The decoder never reads outside the input, stops after a bounded amount of work, and
/// allocates memory proportional to the input size (each scan must carry at least one bit per 8x8 block) and to
/// <see cref="JpegDecoderOptions.MaxPixels"/>.</para>
/// </remarks>
public static class JpegDecoder
{
    /// <summary>True when <paramref name="header"/> starts with the JPEG SOI marker followed by another marker (FF D8 FF).</summary>
    public static bool IsJpeg(ReadOnlySpan<byte> header) =>
        header.Length >= 3 && header[0] == 0xFF && header[1] == 0xD8 && header[2] == 0xFF;

    /// <summary>Decodes a JPEG to 1-channel gray or 3-channel RGB pixels.</summary>
    /// <param name="data">The whole file.</param>
    /// <param name="source">A name for error messages (a file path), or null.</param>
    /// <param name="applyExifOrientation">Rotate/flip the pixels as the EXIF orientation tag says (the default).</param>
    /// <exception cref="ImageFormatException">Malformed, truncated or over-budget data.</exception>
    /// <exception cref="NotSupportedException">A valid JPEG using a feature this decoder does not support.</exception>
    public static ImageData Decode(byte[] data, string? source = null, bool applyExifOrientation = true) =>
        Decode(data, source, applyExifOrientation ? JpegDecoderOptions.Default : JpegDecoderOptions.NoOrientation, out _);

    /// <summary>Reads <paramref name="stream"/> to its end and decodes it; see <see cref="Decode(byte[], string?, bool)"/>.</summary>
    public static ImageData Decode(Stream stream, string? source = null, bool applyExifOrientation = true) =>
        Decode(ReadAll(stream, source), source, applyExifOrientation);

    /// <summary>Decodes with explicit <paramref name="options"/> and returns the header information too.</summary>
    public static ImageData Decode(byte[] data, string? source, JpegDecoderOptions options, out JpegInfo info)
    {
        ArgumentNullException.ThrowIfNull(data);
        ArgumentNullException.ThrowIfNull(options);
        if (options.MaxPixels <= 0) throw new ArgumentOutOfRangeException(nameof(options), "MaxPixels must be positive.");
        var core = new JpegDecoderCore(data, source, options);
        var image = core.Decode(headersOnly: false);
        info = core.Info;
        return options.ApplyExifOrientation ? JpegExif.ApplyOrientation(image!, info.Orientation) : image!;
    }

    /// <summary>Reads <paramref name="stream"/> to its end and decodes it with explicit <paramref name="options"/>.</summary>
    public static ImageData Decode(Stream stream, string? source, JpegDecoderOptions options, out JpegInfo info) =>
        Decode(ReadAll(stream, source), source, options, out info);

    /// <summary>Reads a file and decodes it; the path is the error-message source.</summary>
    public static ImageData DecodeFile(string path, bool applyExifOrientation = true) =>
        Decode(File.ReadAllBytes(path), path, applyExifOrientation);

    /// <summary>
    /// Parses the markers up to the first scan header (SOS) without decoding pixels: dimensions, components,
    /// process, colour space and EXIF orientation. Throws like <see cref="Decode(byte[], string?, bool)"/> for malformed headers.
    /// </summary>
    public static JpegInfo ReadInfo(byte[] data, string? source = null)
    {
        ArgumentNullException.ThrowIfNull(data);
        var core = new JpegDecoderCore(data, source, JpegDecoderOptions.Default);
        core.Decode(headersOnly: true);
        return core.Info;
    }

    /// <summary>Reads <paramref name="stream"/> to its end and parses its headers; see <see cref="ReadInfo(byte[], string?)"/>.</summary>
    public static JpegInfo ReadInfo(Stream stream, string? source = null) => ReadInfo(ReadAll(stream, source), source);

    private static byte[] ReadAll(Stream stream, string? source)
    {
        ArgumentNullException.ThrowIfNull(stream);
        if (stream.CanSeek)
        {
            long remaining = stream.Length - stream.Position;
            if (remaining > Array.MaxLength) throw new ImageFormatException($"input of {remaining} bytes is too large", source);
            var buffer = new byte[Math.Max(0, remaining)];
            stream.ReadExactly(buffer);
            return buffer;
        }
        using var copy = new MemoryStream();
        stream.CopyTo(copy);
        return copy.ToArray();
    }
}

/// <summary>How chroma (or any smaller) components are enlarged to the full image size.</summary>
public enum JpegUpsampling
{
    /// <summary>libjpeg's default: a triangle filter for 2:1 ratios (h2v1, h1v2, h2v2; h2 only when the component is
    /// wider than 2 samples), box replication otherwise. Matches djpeg's default output.</summary>
    Fancy,

    /// <summary>Box replication for every ratio. Matches <c>djpeg -nosmooth</c>.</summary>
    Replicate,
}

/// <summary>Options for <see cref="JpegDecoder"/>.</summary>
public sealed class JpegDecoderOptions
{
    /// <summary>The default pixel budget: 100 megapixels.</summary>
    public const long DefaultMaxPixels = 100_000_000;

    /// <summary>Default options: EXIF orientation applied, fancy upsampling, 100 megapixel budget.</summary>
    public static JpegDecoderOptions Default { get; } = new();

    internal static JpegDecoderOptions NoOrientation { get; } = new() { ApplyExifOrientation = false };

    /// <summary>Rotate/flip the decoded pixels as the EXIF orientation tag says. Default true.</summary>
    public bool ApplyExifOrientation { get; init; } = true;

    /// <summary>Upsampling method for subsampled components. Default <see cref="JpegUpsampling.Fancy"/>.</summary>
    public JpegUpsampling Upsampling { get; init; } = JpegUpsampling.Fancy;

    /// <summary>Images with more pixels (width * height) than this are rejected with <see cref="ImageFormatException"/>
    /// before any pixel memory is allocated. Must be positive.</summary>
    public long MaxPixels { get; init; } = DefaultMaxPixels;
}

/// <summary>The colour space of the coded components.</summary>
public enum JpegColorSpace
{
    /// <summary>One component.</summary>
    Gray,
    /// <summary>Three components, JFIF YCbCr.</summary>
    YCbCr,
    /// <summary>Three components stored as RGB (Adobe transform 0, or component ids 'R','G','B').</summary>
    Rgb,
    /// <summary>Four components, CMYK (Adobe transform 0 or no Adobe marker).</summary>
    Cmyk,
    /// <summary>Four components, YCCK (Adobe transform 2).</summary>
    Ycck,
}

/// <summary>The coding process named by the SOF marker.</summary>
public enum JpegProcess
{
    /// <summary>SOF0.</summary>
    Baseline,
    /// <summary>SOF1: extended sequential Huffman, 8-bit.</summary>
    ExtendedSequential,
    /// <summary>SOF2: progressive Huffman.</summary>
    Progressive,
}

/// <summary>One component of the frame header.</summary>
/// <param name="Id">Component identifier.</param>
/// <param name="HorizontalSampling">H factor 1..4.</param>
/// <param name="VerticalSampling">V factor 1..4.</param>
/// <param name="QuantizationTable">Quantisation table index 0..3.</param>
public readonly record struct JpegComponentInfo(int Id, int HorizontalSampling, int VerticalSampling, int QuantizationTable);

/// <summary>Header information of a JPEG.</summary>
public sealed class JpegInfo
{
    internal JpegInfo(int width, int height, JpegProcess process, JpegColorSpace colorSpace,
        IReadOnlyList<JpegComponentInfo> components, int orientation, bool hasJfif, int adobeTransform, int restartInterval)
    {
        Width = width;
        Height = height;
        Process = process;
        ColorSpace = colorSpace;
        Components = components;
        Orientation = orientation;
        HasJfif = hasJfif;
        AdobeTransform = adobeTransform;
        RestartInterval = restartInterval;
    }

    /// <summary>Coded width (before EXIF orientation).</summary>
    public int Width { get; }

    /// <summary>Coded height (before EXIF orientation).</summary>
    public int Height { get; }

    /// <summary>The SOF process.</summary>
    public JpegProcess Process { get; }

    /// <summary>The colour space of the coded components (libjpeg's rules: JFIF, then Adobe transform, then ids).</summary>
    public JpegColorSpace ColorSpace { get; }

    /// <summary>The frame's components in SOF order.</summary>
    public IReadOnlyList<JpegComponentInfo> Components { get; }

    /// <summary>EXIF orientation 1..8 (1 when there is no valid tag).</summary>
    public int Orientation { get; }

    /// <summary>Whether an APP0 JFIF marker was seen.</summary>
    public bool HasJfif { get; }

    /// <summary>The Adobe APP14 transform flag (0, 1 or 2), or -1 without an Adobe marker.</summary>
    public int AdobeTransform { get; }

    /// <summary>The restart interval in MCUs in force at the first scan (0 = none).</summary>
    public int RestartInterval { get; }

    /// <summary>Output channels: 1 for grayscale, 3 otherwise.</summary>
    public int Channels => ColorSpace == JpegColorSpace.Gray ? 1 : 3;

    /// <summary>Width after applying <see cref="Orientation"/>.</summary>
    public int OrientedWidth => Orientation >= 5 ? Height : Width;

    /// <summary>Height after applying <see cref="Orientation"/>.</summary>
    public int OrientedHeight => Orientation >= 5 ? Width : Height;
}

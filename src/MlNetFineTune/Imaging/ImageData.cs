namespace MlNetFineTune.Imaging;

/// <summary>Decoded pixels, 8 bits per channel, row-major, interleaved.</summary>
/// <remarks>
/// Pixel (x, y) channel c is at <c>Pixels[(y * Width + x) * Channels + c]</c>. Channels: 1 gray, 2 gray+alpha,
/// 3 RGB, 4 RGBA. Alpha is straight (not premultiplied).
/// </remarks>
public sealed class ImageData
{
    /// <summary>Width in pixels (&gt; 0).</summary>
    public int Width { get; }

    /// <summary>Height in pixels (&gt; 0).</summary>
    public int Height { get; }

    /// <summary>1 gray, 2 gray+alpha, 3 RGB, 4 RGBA.</summary>
    public int Channels { get; }

    /// <summary>Width * Height * Channels bytes, row-major, channels interleaved.</summary>
    public byte[] Pixels { get; }

    /// <summary>Wraps <paramref name="pixels"/> (not copied).</summary>
    /// <exception cref="ArgumentException">A non-positive size, channels outside 1..4, or a pixel array whose
    /// length is not width * height * channels.</exception>
    public ImageData(int width, int height, int channels, byte[] pixels)
    {
        ArgumentNullException.ThrowIfNull(pixels);
        if (width <= 0) throw new ArgumentException($"Width must be positive, got {width}.", nameof(width));
        if (height <= 0) throw new ArgumentException($"Height must be positive, got {height}.", nameof(height));
        if (channels is < 1 or > 4)
            throw new ArgumentException($"Channels must be 1 (gray), 2 (gray+alpha), 3 (RGB) or 4 (RGBA), got {channels}.", nameof(channels));
        long expected = (long)width * height * channels;
        if (pixels.Length != expected)
            throw new ArgumentException($"Expected {expected} pixel bytes ({width} x {height} x {channels}), got {pixels.Length}.", nameof(pixels));
        Width = width;
        Height = height;
        Channels = channels;
        Pixels = pixels;
    }

    /// <summary>
    /// The image as 3-channel RGB: alpha is dropped (not composited), gray is copied to R, G and B.
    /// Returns this instance (no copy) when it already has 3 channels.
    /// </summary>
    public ImageData ToRgb()
    {
        if (Channels == 3) return this;
        int n = Width * Height;
        var rgb = new byte[n * 3];
        var src = Pixels;
        switch (Channels)
        {
            case 1:
                for (int i = 0, o = 0; i < n; i++, o += 3)
                {
                    byte g = src[i];
                    rgb[o] = g; rgb[o + 1] = g; rgb[o + 2] = g;
                }
                break;
            case 2:
                for (int i = 0, o = 0; i < n; i++, o += 3)
                {
                    byte g = src[2 * i];
                    rgb[o] = g; rgb[o + 1] = g; rgb[o + 2] = g;
                }
                break;
            default: // 4
                for (int i = 0, o = 0; i < n; i++, o += 3)
                {
                    int s = 4 * i;
                    rgb[o] = src[s]; rgb[o + 1] = src[s + 1]; rgb[o + 2] = src[s + 2];
                }
                break;
        }
        return new ImageData(Width, Height, 3, rgb);
    }
}

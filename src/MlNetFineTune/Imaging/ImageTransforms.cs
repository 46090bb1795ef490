using MlNetFineTune.Tensors;

namespace MlNetFineTune.Imaging;

/// <summary>
/// A float image, channels first ([C, H, W] row-major), values in whatever scale the last step produced.
/// </summary>
public sealed class FloatImage
{
    /// <summary>Channels.</summary>
    public int Channels { get; }
    /// <summary>Height.</summary>
    public int Height { get; }
    /// <summary>Width.</summary>
    public int Width { get; }
    /// <summary>Values, [C, H, W].</summary>
    public float[] Data { get; }

    /// <summary>Wraps data of length C*H*W.</summary>
    public FloatImage(int channels, int height, int width, float[] data)
    {
        if (channels < 1 || height < 1 || width < 1 || data.Length != channels * height * width)
            throw new ArgumentException($"FloatImage: {data.Length} values do not make [{channels}, {height}, {width}].");
        Channels = channels; Height = height; Width = width; Data = data;
    }

    /// <summary>Interleaved 8-bit pixels [H, W, C] to [C, H, W] floats in 0..255.</summary>
    public static FloatImage FromBytes(int width, int height, int channels, ReadOnlySpan<byte> pixels)
    {
        if (pixels.Length != width * height * channels)
            throw new ArgumentException($"FloatImage: {pixels.Length} bytes do not make {width}x{height}x{channels}.");
        var d = new float[channels * height * width];
        int plane = height * width;
        for (int i = 0; i < plane; i++)
            for (int c = 0; c < channels; c++) d[c * plane + i] = pixels[i * channels + c];
        return new FloatImage(channels, height, width, d);
    }
}

/// <summary>
/// Image preprocessing on channels-first floats: resizing (bilinear, antialiased when shrinking, like PIL and
/// torchvision's antialias=True), crops, flips, colour jitter, gray to RGB, and normalisation.
/// </summary>
public static class ImageTransforms
{
    /// <summary>Repeats a single channel three times (gray to RGB); other images pass through.</summary>
    public static FloatImage GrayToRgb(FloatImage img)
    {
        if (img.Channels == 3) return img;
        if (img.Channels != 1) throw new ArgumentException($"GrayToRgb: expected 1 or 3 channels, got {img.Channels}.");
        int plane = img.Height * img.Width;
        var d = new float[3 * plane];
        for (int c = 0; c < 3; c++) Array.Copy(img.Data, 0, d, c * plane, plane);
        return new FloatImage(3, img.Height, img.Width, d);
    }

    /// <summary>
    /// Resizes with a triangle (bilinear) filter whose support widens by the scale factor when shrinking,
    /// so downscaling averages every source pixel instead of skipping rows (PIL's and torchvision's antialias).
    /// </summary>
    public static FloatImage Resize(FloatImage img, int height, int width)
    {
        if (height < 1 || width < 1) throw new ArgumentOutOfRangeException(nameof(height), $"Resize: target {height}x{width} must be positive.");
        if (height == img.Height && width == img.Width) return img;
        var (wIdx, wVal, wCount) = Weights(img.Width, width);
        var (hIdx, hVal, hCount) = Weights(img.Height, height);
        var tmp = new float[img.Channels * img.Height * width];
        for (int c = 0; c < img.Channels; c++)
            for (int y = 0; y < img.Height; y++)
            {
                int src = (c * img.Height + y) * img.Width, dst = (c * img.Height + y) * width;
                for (int x = 0; x < width; x++)
                {
                    float s = 0;
                    for (int k = 0; k < wCount; k++) s += img.Data[src + wIdx[x * wCount + k]] * wVal[x * wCount + k];
                    tmp[dst + x] = s;
                }
            }
        var result = new float[img.Channels * height * width];
        for (int c = 0; c < img.Channels; c++)
            for (int y = 0; y < height; y++)
            {
                int dst = (c * height + y) * width;
                for (int k = 0; k < hCount; k++)
                {
                    float wv = hVal[y * hCount + k];
                    if (wv == 0) continue;
                    int src = (c * img.Height + hIdx[y * hCount + k]) * width;
                    for (int x = 0; x < width; x++) result[dst + x] += tmp[src + x] * wv;
                }
            }
        return new FloatImage(img.Channels, height, width, result);
    }

    // Per output index: source indices and normalised triangle-filter weights (PIL's precompute_coeffs).
    private static (int[] Idx, float[] Val, int Count) Weights(int inSize, int outSize)
    {
        double scale = (double)inSize / outSize;
        double support = scale > 1 ? scale : 1.0;
        int count = (int)Math.Ceiling(support) * 2 + 1;
        var idx = new int[outSize * count];
        var val = new float[outSize * count];
        for (int o = 0; o < outSize; o++)
        {
            double center = (o + 0.5) * scale;
            int lo = Math.Max(0, (int)Math.Floor(center - support + 0.5));
            int hi = Math.Min(inSize, (int)Math.Floor(center + support + 0.5));
            double total = 0;
            var w = new double[count];
            for (int i = lo, k = 0; i < hi && k < count; i++, k++)
            {
                double t = Math.Abs((i - center + 0.5) / support);
                w[k] = t < 1 ? 1 - t : 0;
                total += w[k];
            }
            for (int i = lo, k = 0; i < hi && k < count; i++, k++)
            {
                idx[o * count + k] = i;
                val[o * count + k] = total > 0 ? (float)(w[k] / total) : 0;
            }
        }
        return (idx, val, count);
    }

    /// <summary>The central <paramref name="height"/> x <paramref name="width"/> region.</summary>
    public static FloatImage CenterCrop(FloatImage img, int height, int width) =>
        Crop(img, Math.Max(0, (img.Height - height) / 2), Math.Max(0, (img.Width - width) / 2), Math.Min(height, img.Height), Math.Min(width, img.Width));

    /// <summary>A rectangular region.</summary>
    public static FloatImage Crop(FloatImage img, int top, int left, int height, int width)
    {
        if (top < 0 || left < 0 || height < 1 || width < 1 || top + height > img.Height || left + width > img.Width)
            throw new ArgumentOutOfRangeException(nameof(top), $"Crop: region ({top}, {left}, {height}x{width}) is outside the {img.Height}x{img.Width} image.");
        var d = new float[img.Channels * height * width];
        for (int c = 0; c < img.Channels; c++)
            for (int y = 0; y < height; y++)
                Array.Copy(img.Data, (c * img.Height + top + y) * img.Width + left, d, (c * height + y) * width, width);
        return new FloatImage(img.Channels, height, width, d);
    }

    /// <summary>
    /// torchvision's RandomResizedCrop: a random area fraction in <paramref name="scale"/> and aspect ratio in
    /// <paramref name="ratio"/> (log-uniform), resized to the target; falls back to a center crop after 10 tries.
    /// </summary>
    public static FloatImage RandomResizedCrop(FloatImage img, int size, Rng rng, (double Min, double Max)? scale = null, (double Min, double Max)? ratio = null)
    {
        var (smin, smax) = scale ?? (0.08, 1.0);
        var (rmin, rmax) = ratio ?? (3.0 / 4, 4.0 / 3);
        double area = img.Height * img.Width;
        for (int attempt = 0; attempt < 10; attempt++)
        {
            double target = area * (smin + (smax - smin) * rng.NextDouble());
            double logR = Math.Log(rmin) + (Math.Log(rmax) - Math.Log(rmin)) * rng.NextDouble();
            double r = Math.Exp(logR);
            int w = (int)Math.Round(Math.Sqrt(target * r)), h = (int)Math.Round(Math.Sqrt(target / r));
            if (w >= 1 && h >= 1 && w <= img.Width && h <= img.Height)
            {
                int top = rng.NextInt(img.Height - h + 1), left = rng.NextInt(img.Width - w + 1);
                return Resize(Crop(img, top, left, h, w), size, size);
            }
        }
        int side = Math.Min(img.Height, img.Width);
        return Resize(CenterCrop(img, side, side), size, size);
    }

    /// <summary>Mirror left-right.</summary>
    public static FloatImage HorizontalFlip(FloatImage img)
    {
        var d = new float[img.Data.Length];
        for (int c = 0; c < img.Channels; c++)
            for (int y = 0; y < img.Height; y++)
            {
                int row = (c * img.Height + y) * img.Width;
                for (int x = 0; x < img.Width; x++) d[row + x] = img.Data[row + img.Width - 1 - x];
            }
        return new FloatImage(img.Channels, img.Height, img.Width, d);
    }

    /// <summary>
    /// Random brightness, contrast and saturation factors in [1-s, 1+s] (values in 0..255, clamped), as
    /// torchvision's ColorJitter without hue.
    /// </summary>
    public static FloatImage ColorJitter(FloatImage img, Rng rng, float brightness = 0.2f, float contrast = 0.2f, float saturation = 0.2f)
    {
        var d = (float[])img.Data.Clone();
        int plane = img.Height * img.Width;
        float Factor(float s) => 1f + s * (2f * rng.NextFloat() - 1f);
        float b = Factor(brightness), c = Factor(contrast), sat = Factor(saturation);
        for (int i = 0; i < d.Length; i++) d[i] *= b;
        double mean = 0;
        var gray = new float[plane];
        for (int i = 0; i < plane; i++)
        {
            gray[i] = img.Channels == 3 ? 0.299f * d[i] + 0.587f * d[plane + i] + 0.114f * d[2 * plane + i] : d[i];
            mean += gray[i];
        }
        float m = (float)(mean / plane);
        for (int ch = 0; ch < img.Channels; ch++)
            for (int i = 0; i < plane; i++)
            {
                float v = d[ch * plane + i];
                if (img.Channels == 3) v = gray[i] + sat * (v - gray[i]);
                v = m + c * (v - m);
                d[ch * plane + i] = Math.Clamp(v, 0f, 255f);
            }
        return new FloatImage(img.Channels, img.Height, img.Width, d);
    }

    /// <summary>(x / divisor - mean[c]) / std[c] per channel.</summary>
    public static FloatImage Normalize(FloatImage img, float divisor, IReadOnlyList<float> mean, IReadOnlyList<float> std)
    {
        if (mean.Count != img.Channels || std.Count != img.Channels)
            throw new ArgumentException($"Normalize: {mean.Count} means and {std.Count} stds for {img.Channels} channels.");
        var d = new float[img.Data.Length];
        int plane = img.Height * img.Width;
        for (int c = 0; c < img.Channels; c++)
        {
            float inv = 1f / std[c];
            for (int i = 0; i < plane; i++) d[c * plane + i] = (img.Data[c * plane + i] / divisor - mean[c]) * inv;
        }
        return new FloatImage(img.Channels, img.Height, img.Width, d);
    }

    /// <summary>Mixup: a convex combination of two images with weight lambda.</summary>
    public static FloatImage Mix(FloatImage a, FloatImage b, float lambda)
    {
        if (a.Data.Length != b.Data.Length) throw new ArgumentException("Mix: images differ in size.");
        var d = new float[a.Data.Length];
        for (int i = 0; i < d.Length; i++) d[i] = lambda * a.Data[i] + (1 - lambda) * b.Data[i];
        return new FloatImage(a.Channels, a.Height, a.Width, d);
    }

    /// <summary>Stacks images of equal size into a tensor [N, C, H, W].</summary>
    public static Tensor Stack(IReadOnlyList<FloatImage> images)
    {
        if (images.Count == 0) throw new ArgumentException("Stack: no images.");
        var f = images[0];
        var d = new float[images.Count * f.Data.Length];
        for (int i = 0; i < images.Count; i++)
        {
            if (images[i].Data.Length != f.Data.Length) throw new ArgumentException($"Stack: image {i} is {images[i].Height}x{images[i].Width}, image 0 is {f.Height}x{f.Width}.");
            Array.Copy(images[i].Data, 0, d, i * f.Data.Length, f.Data.Length);
        }
        return Tensor.Wrap(d, images.Count, f.Channels, f.Height, f.Width);
    }
}

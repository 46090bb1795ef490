namespace MlNetFineTune.Imaging;

/// <summary>
/// A labelled image set read from an IDX images file and an IDX labels file of the same length (the MNIST /
/// Fashion-MNIST layout): <see cref="Count"/> grayscale images of <see cref="Rows"/> x <see cref="Cols"/> bytes,
/// stored one after another row by row in <see cref="Pixels"/>, and one label byte per image.
/// </summary>
public sealed class IdxDataset
{
    public IdxDataset(int count, int rows, int cols, byte[] pixels, byte[] labels, string? imagesSource = null, string? labelsSource = null)
    {
        ArgumentNullException.ThrowIfNull(pixels);
        ArgumentNullException.ThrowIfNull(labels);
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(rows);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(cols);
        if ((long)count * rows * cols != pixels.LongLength)
            throw new ArgumentException($"pixels has {pixels.LongLength} bytes, {count} x {rows} x {cols} images need {(long)count * rows * cols}", nameof(pixels));
        if (labels.Length != count)
            throw new ArgumentException($"labels has {labels.Length} entries for {count} images", nameof(labels));
        Count = count;
        Rows = rows;
        Cols = cols;
        Pixels = pixels;
        Labels = labels;
        ImagesSource = imagesSource;
        LabelsSource = labelsSource;
    }

    /// <summary>Number of images (and labels).</summary>
    public int Count { get; }

    /// <summary>Image height in pixels.</summary>
    public int Rows { get; }

    /// <summary>Image width in pixels.</summary>
    public int Cols { get; }

    /// <summary>Bytes per image: <see cref="Rows"/> x <see cref="Cols"/>.</summary>
    public int PixelsPerImage => Rows * Cols;

    /// <summary>All images, image after image, each row-major; 0 = background (white for Fashion-MNIST's
    /// inverted scans), 255 = full ink.</summary>
    public byte[] Pixels { get; }

    /// <summary>Class id of each image.</summary>
    public byte[] Labels { get; }

    /// <summary>The images file's path (or the source name given for a stream), if known.</summary>
    public string? ImagesSource { get; }

    /// <summary>The labels file's path (or the source name given for a stream), if known.</summary>
    public string? LabelsSource { get; }

    /// <summary>The pixels of image <paramref name="index"/>, row-major.</summary>
    public ReadOnlySpan<byte> GetImage(int index)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(index);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(index, Count);
        return Pixels.AsSpan(index * PixelsPerImage, PixelsPerImage);
    }

    /// <summary>How many images carry each label, indexed by label (length: the largest label + 1, at least
    /// <paramref name="minClasses"/>).</summary>
    public int[] CountPerClass(int minClasses = 0)
    {
        int max = minClasses - 1;
        foreach (byte l in Labels) if (l > max) max = l;
        var counts = new int[Math.Max(max + 1, 0)];
        foreach (byte l in Labels) counts[l]++;
        return counts;
    }
}

using MlNetFineTune.Data;

namespace MlNetFineTune.Imaging;

/// <summary>Reads PNG and JPEG files by their signature (not their extension).</summary>
public static class ImageDecoder
{
    /// <summary>Extensions the folder loader picks up.</summary>
    public static readonly string[] Extensions = [".png", ".jpg", ".jpeg"];

    /// <summary>Decodes a PNG or JPEG file; other content raises <see cref="ImageFormatException"/> naming the file.</summary>
    public static ImageData Decode(string path) => Decode(path, ImageLoadOptions.DefaultMaxPixels);

    /// <summary>Decodes a PNG or JPEG file, refusing (before allocating) an image whose header claims more than <paramref name="maxPixels"/> pixels.</summary>
    public static ImageData Decode(string path, long maxPixels)
    {
        var bytes = File.ReadAllBytes(path);
        if (bytes.Length == 0) throw new ImageFormatException("empty file (0 bytes), not an image", path, 0);
        if (PngDecoder.IsPng(bytes))
        {
            // IHDR is the first chunk: length, "IHDR", width, height (big-endian). The decoder checks it in full;
            // this applies the caller's (smaller) budget before anything is allocated.
            if (bytes.Length >= 24 && bytes.AsSpan(12, 4).SequenceEqual("IHDR"u8))
            {
                long w = System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(bytes.AsSpan(16));
                long h = System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(bytes.AsSpan(20));
                if (w * h > maxPixels)
                    throw new ImageFormatException($"image header claims {w} x {h} pixels, above the limit of {maxPixels} pixels", path, 16);
            }
            return PngDecoder.Decode(bytes, path);
        }
        if (JpegDecoder.IsJpeg(bytes)) return JpegDecoder.Decode(bytes, path, new JpegDecoderOptions { MaxPixels = maxPixels }, out _);
        throw new ImageFormatException("not a PNG or JPEG file (unknown signature)", path, 0);
    }

    /// <summary>Pixels 0..255 as a float image [C, H, W], alpha dropped, gray kept single-channel.</summary>
    public static FloatImage ToFloat(ImageData image)
    {
        var img = image.Channels is 2 or 4 ? image.ToRgb() : image;
        return FloatImage.FromBytes(img.Width, img.Height, img.Channels, img.Pixels);
    }
}

/// <summary>How image files are read.</summary>
public sealed record ImageLoadOptions
{
    /// <summary>The largest image accepted, in pixels (width x height), checked from the header before decoding: 100 million.</summary>
    public const long DefaultMaxPixels = 100_000_000;

    /// <summary>Leave out files that do not decode (listed in <see cref="ImageDataset.Skipped"/>) instead of failing (default false).</summary>
    public bool SkipBadImages { get; init; }

    /// <summary>Header size limit in pixels (default <see cref="DefaultMaxPixels"/>).</summary>
    public long MaxPixels { get; init; } = DefaultMaxPixels;
}

/// <summary>A file left out by <see cref="ImageLoadOptions.SkipBadImages"/>, and why.</summary>
public sealed record SkippedImage(string Path, string Reason);

/// <summary>Image datasets from IDX files (MNIST / Fashion-MNIST layout) and class folders.</summary>
public static class ImageDatasets
{
    /// <summary>
    /// Images and labels from IDX files (gzip or not). Label names come from <paramref name="labelNames"/> (one per
    /// line, by id) when given, else a <c>labels.txt</c> beside the images, else the numeric ids.
    /// </summary>
    public static ImageDataset LoadIdx(string imagesPath, string labelsPath, string? labelNames = null)
    {
        var data = IdxReader.ReadDataset(imagesPath, labelsPath);
        labelNames ??= Path.Combine(Path.GetDirectoryName(Path.GetFullPath(imagesPath))!, "labels.txt");
        var names = File.Exists(labelNames) ? File.ReadAllLines(labelNames).Where(l => l.Length > 0).ToArray() : null;
        int classes = data.Labels.Length == 0 ? 0 : data.Labels.Max() + 1;
        if (names is not null && names.Length < classes)
            throw new DataFormatException(labelNames, names.Length + 1, 1, $"has {names.Length} label names but {labelsPath} uses {classes} classes");
        var vocabulary = new LabelVocabulary(names ?? Enumerable.Range(0, classes).Select(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        var examples = new List<ImageExample>(data.Count);
        for (int i = 0; i < data.Count; i++)
            examples.Add(new ImageExample(FloatImage.FromBytes(data.Cols, data.Rows, 1, data.GetImage(i)), vocabulary[data.Labels[i]]));
        return new ImageDataset(examples, vocabulary, imagesPath);
    }

    /// <summary>
    /// The image-folder layout <c>root/&lt;class&gt;/&lt;file&gt;</c>; labels are the folder names (sorted).
    /// When <paramref name="root"/> holds <c>train/</c> (and optionally <c>validation/</c>, <c>test/</c>), use
    /// <see cref="LoadFolderSplits"/> instead. A file that does not decode raises <see cref="ImageFormatException"/>
    /// naming it, unless <see cref="ImageLoadOptions.SkipBadImages"/> is set: then it is left out and listed in
    /// <see cref="ImageDataset.Skipped"/>. Images keep their own sizes (the trainer resizes them).
    /// </summary>
    public static ImageDataset LoadFolder(string root, LabelVocabulary? labels = null, ImageLoadOptions? options = null)
    {
        options ??= new ImageLoadOptions();
        if (!Directory.Exists(root)) throw new DirectoryNotFoundException($"Image folder '{root}' does not exist.");
        var classes = Directory.GetDirectories(root).Select(Path.GetFileName).OfType<string>().Order(StringComparer.Ordinal).ToArray();
        if (classes.Length == 0) throw new DataValidationException(root, "has no class sub-folders (expected root/<class>/<image>)");
        if (labels is not null)
            foreach (var c in classes)
                if (!labels.TryGetId(c, out _))
                    throw new DataValidationException(Path.Combine(root, c), $"is a class the training images do not have (training classes: {string.Join(", ", labels.Labels)})");
        labels ??= new LabelVocabulary(classes);
        var examples = new List<ImageExample>();
        var skipped = new List<SkippedImage>();
        foreach (var c in classes)
        {
            var folder = Path.Combine(root, c);
            var files = Directory.GetFiles(folder).Where(f => ImageDecoder.Extensions.Contains(Path.GetExtension(f).ToLowerInvariant())).Order(StringComparer.Ordinal).ToArray();
            int before = examples.Count;
            foreach (var file in files)
            {
                ImageData image;
                try { image = ImageDecoder.Decode(file, options.MaxPixels); }
                catch (ImageFormatException e) when (options.SkipBadImages)
                {
                    skipped.Add(new SkippedImage(file, e.Message));
                    continue;
                }
                examples.Add(new ImageExample(ImageDecoder.ToFloat(image), c));
            }
            if (examples.Count == before)
                throw new DataValidationException(folder, files.Length == 0
                    ? "class folder has no .png or .jpg images (remove the folder or add images)"
                    : $"class folder has no readable images (all {files.Length} were skipped as bad)");
        }
        return new ImageDataset(examples, labels, root) { Skipped = skipped };
    }

    /// <summary>root/train, root/validation and root/test (the last two optional), sharing the training labels.</summary>
    public static (ImageDataset Train, ImageDataset? Validation, ImageDataset? Test) LoadFolderSplits(string root, ImageLoadOptions? options = null)
    {
        var train = LoadFolder(Path.Combine(root, "train"), null, options);
        ImageDataset? Optional(string name) => Directory.Exists(Path.Combine(root, name)) ? LoadFolder(Path.Combine(root, name), train.Labels, options) : null;
        return (train, Optional("validation"), Optional("test"));
    }

    /// <summary>A folder (with or without train/ validation/ test/), or an IDX images file with its labels file.</summary>
    public static ImageDataset Load(string path, string? labelsPath = null, ImageLoadOptions? options = null, LabelVocabulary? labels = null)
    {
        if (Directory.Exists(path))
            return Directory.Exists(Path.Combine(path, "train")) ? LoadFolderSplits(path, options).Train : LoadFolder(path, labels, options);
        if (!File.Exists(path)) throw new FileNotFoundException($"'{path}' is neither an image folder nor an IDX file.", path);
        labelsPath ??= GuessIdxLabels(path);
        return LoadIdx(path, labelsPath);
    }

    private static string GuessIdxLabels(string imagesPath)
    {
        var name = Path.GetFileName(imagesPath);
        var guess = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(imagesPath))!, name.Replace("images-idx3", "labels-idx1", StringComparison.Ordinal));
        if (guess != imagesPath && File.Exists(guess)) return guess;
        throw new FileNotFoundException($"No labels file given for '{imagesPath}' and '{Path.GetFileName(guess)}' does not exist; pass --labels.");
    }
}

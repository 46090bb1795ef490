using MlNetFineTune.Data;

namespace MlNetFineTune.Imaging;

/// <summary>Reads PNG and JPEG files by their signature (not their extension).</summary>
public static class ImageDecoder
{
    /// <summary>Extensions the folder loader picks up.</summary>
    public static readonly string[] Extensions = [".png", ".jpg", ".jpeg"];

    /// <summary>Decodes a PNG or JPEG file; other content raises <see cref="ImageFormatException"/> naming the file.</summary>
    public static ImageData Decode(string path)
    {
        var bytes = File.ReadAllBytes(path);
        if (PngDecoder.IsPng(bytes)) return PngDecoder.Decode(bytes, path);
        if (JpegDecoder.IsJpeg(bytes)) return JpegDecoder.Decode(bytes, path);
        throw new ImageFormatException("not a PNG or JPEG file", path, 0);
    }

    /// <summary>Pixels 0..255 as a float image [C, H, W], alpha dropped, gray kept single-channel.</summary>
    public static FloatImage ToFloat(ImageData image)
    {
        var img = image.Channels is 2 or 4 ? image.ToRgb() : image;
        return FloatImage.FromBytes(img.Width, img.Height, img.Channels, img.Pixels);
    }
}

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
    /// <see cref="LoadFolderSplits"/> instead.
    /// </summary>
    public static ImageDataset LoadFolder(string root, LabelVocabulary? labels = null)
    {
        if (!Directory.Exists(root)) throw new DirectoryNotFoundException($"Image folder '{root}' does not exist.");
        var classes = Directory.GetDirectories(root).Select(Path.GetFileName).OfType<string>().Order(StringComparer.Ordinal).ToArray();
        if (classes.Length == 0) throw new DataValidationException(root, "has no class sub-folders (expected root/<class>/<image>)");
        labels ??= new LabelVocabulary(classes);
        var examples = new List<ImageExample>();
        foreach (var c in classes)
            foreach (var file in Directory.GetFiles(Path.Combine(root, c)).Where(f => ImageDecoder.Extensions.Contains(Path.GetExtension(f).ToLowerInvariant())).Order(StringComparer.Ordinal))
                examples.Add(new ImageExample(ImageDecoder.ToFloat(ImageDecoder.Decode(file)), c));
        if (examples.Count == 0) throw new DataValidationException(root, "has no .png or .jpg images");
        return new ImageDataset(examples, labels, root);
    }

    /// <summary>root/train, root/validation and root/test (the last two optional), sharing the training labels.</summary>
    public static (ImageDataset Train, ImageDataset? Validation, ImageDataset? Test) LoadFolderSplits(string root)
    {
        var train = LoadFolder(Path.Combine(root, "train"));
        ImageDataset? Optional(string name) => Directory.Exists(Path.Combine(root, name)) ? LoadFolder(Path.Combine(root, name), train.Labels) : null;
        return (train, Optional("validation"), Optional("test"));
    }

    /// <summary>A folder (with or without train/ validation/ test/), or an IDX images file with its labels file.</summary>
    public static ImageDataset Load(string path, string? labelsPath = null)
    {
        if (Directory.Exists(path))
            return Directory.Exists(Path.Combine(path, "train")) ? LoadFolderSplits(path).Train : LoadFolder(path);
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

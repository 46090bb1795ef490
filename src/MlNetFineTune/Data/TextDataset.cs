using System.Collections;
using System.Globalization;
using MlNetFineTune.Tensors;

namespace MlNetFineTune.Data;

/// <summary>
/// The examples of a text classification task and their label vocabulary. Load one with
/// <see cref="LoadTextClassification"/> (TSV, CSV or JSONL, optionally gzip-compressed) or
/// <see cref="LoadFromEnumerable"/> (objects in memory).
/// </summary>
public sealed class TextDataset : IReadOnlyList<TextExample>
{
    /// <summary>The source name of data sets built from objects in memory.</summary>
    public const string MemorySource = "<memory>";

    private readonly TextExample[] _examples;

    /// <summary>A data set of <paramref name="examples"/>.</summary>
    /// <param name="examples">The examples.</param>
    /// <param name="labels">The label vocabulary; null builds one from the examples' labels, sorted
    /// (<see cref="LabelOrder.Sorted"/>).</param>
    /// <param name="source">Where the examples came from (named in errors); null for <see cref="MemorySource"/>.</param>
    public TextDataset(IEnumerable<TextExample> examples, LabelVocabulary? labels = null, string? source = null)
    {
        ArgumentNullException.ThrowIfNull(examples);
        _examples = examples.ToArray();
        for (int i = 0; i < _examples.Length; i++)
        {
            if (_examples[i] is null)
            {
                throw new ArgumentException($"Example {i} is null.", nameof(examples));
            }
        }
        Labels = labels ?? LabelVocabulary.Build(_examples.Select(e => e.Label));
        Source = source ?? MemorySource;
    }

    /// <summary>The file the examples came from, or <see cref="MemorySource"/>.</summary>
    public string Source { get; }

    /// <summary>The examples, in file order.</summary>
    public IReadOnlyList<TextExample> Examples => _examples;

    /// <summary>The label vocabulary: label string to contiguous id.</summary>
    public LabelVocabulary Labels { get; }

    /// <summary>Number of examples.</summary>
    public int Count => _examples.Length;

    /// <summary>Example <paramref name="index"/>.</summary>
    public TextExample this[int index] => _examples[index];

    /// <summary>Whether any example has a second text (a pair task).</summary>
    public bool HasTextPair => _examples.Any(e => e.TextPair is not null);

    /// <summary>Whether every example has a label (and there is at least one example).</summary>
    public bool IsLabeled => _examples.Length > 0 && _examples.All(e => e.Label is not null);

    /// <summary>
    /// Loads a text classification file, choosing the reader by extension: <c>.tsv</c> (or <c>.tab</c>),
    /// <c>.csv</c>, <c>.jsonl</c> (or <c>.ndjson</c>), each optionally followed by <c>.gz</c>. Labels are trimmed
    /// of surrounding spaces; an empty label is an error (unless <see cref="TextColumns.Label"/> is null, which
    /// loads unlabeled text). The label vocabulary is built in <paramref name="labelOrder"/>.
    /// </summary>
    /// <param name="path">The file.</param>
    /// <param name="columns">The label, text and text-pair column names; null for <see cref="TextColumns.Default"/>.</param>
    /// <param name="labelOrder">How label ids are assigned; sorted by default, for reproducibility.</param>
    /// <param name="cancellationToken">Stops a long load.</param>
    /// <exception cref="DataFormatException">The file is malformed, lacks a column, holds an empty label, or has no
    /// examples; the message names file, line and column.</exception>
    /// <exception cref="ArgumentException">The extension names no supported format.</exception>
    public static TextDataset LoadTextClassification(string path, TextColumns? columns = null,
        LabelOrder labelOrder = LabelOrder.Sorted, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        columns ??= TextColumns.Default;
        ArgumentException.ThrowIfNullOrEmpty(columns.Text, nameof(columns));
        var kind = DataFiles.GetKind(path);
        var names = new List<string> { columns.Text };
        int pairIndex = -1, labelIndex = -1;
        if (columns.TextPair is not null)
        {
            pairIndex = names.Count;
            names.Add(columns.TextPair);
        }
        if (columns.Label is not null)
        {
            labelIndex = names.Count;
            names.Add(columns.Label);
        }
        IEnumerable<DataRecord> records = kind switch
        {
            DataFileKind.Tsv => TabularReader.Read(path, names, new TabularReaderOptions { Format = TabularFormat.Tsv }, cancellationToken),
            DataFileKind.Csv => TabularReader.Read(path, names, new TabularReaderOptions { Format = TabularFormat.Csv }, cancellationToken),
            DataFileKind.Jsonl => JsonlReader.Read(path, names, cancellationToken),
            _ => throw new ArgumentException(
                $"Cannot tell the format of '{path}' from its extension; use .tsv, .csv or .jsonl (each optionally .gz).", nameof(path)),
        };

        var examples = new List<TextExample>();
        int lastLine = 0;
        foreach (var record in records)
        {
            lastLine = record.Line;
            string text = record[0] ?? throw record.Error(0, $"the text field '{columns.Text}' is null");
            string? pair = pairIndex >= 0 ? record[pairIndex] : null;
            string? label = null;
            if (labelIndex >= 0)
            {
                label = record[labelIndex]?.Trim();
                if (string.IsNullOrEmpty(label))
                {
                    throw record.Error(labelIndex, $"empty label value in column '{columns.Label}'");
                }
            }
            examples.Add(new TextExample(text, pair, label));
        }
        if (examples.Count == 0)
        {
            throw kind == DataFileKind.Jsonl
                ? new DataFormatException(path, 1, 1, "empty file: expected one JSON object per line")
                : new DataFormatException(path, lastLine + 2, 1, "no examples: the file has a header row but no data rows");
        }
        return new TextDataset(examples, LabelVocabulary.Build(examples.Select(e => e.Label), labelOrder), path);
    }

    /// <summary>
    /// A data set from objects in memory, as ML.NET's <c>LoadFromEnumerable</c>: selectors pick the text, the
    /// label (any value; written with the invariant culture, so <c>1</c> becomes <c>"1"</c>) and the optional
    /// second text. A null text or an empty label is a <see cref="DataFormatException"/> whose line is the 1-based
    /// item number.
    /// </summary>
    /// <typeparam name="T">The user's row type.</typeparam>
    /// <param name="items">The objects.</param>
    /// <param name="text">Selects the text.</param>
    /// <param name="label">Selects the label; null for unlabeled data.</param>
    /// <param name="textPair">Selects the second text of a pair task, or null.</param>
    /// <param name="labelOrder">How label ids are assigned.</param>
    /// <param name="sourceName">Names the data in errors.</param>
    public static TextDataset LoadFromEnumerable<T>(IEnumerable<T> items, Func<T, string?> text,
        Func<T, object?>? label = null, Func<T, string?>? textPair = null, LabelOrder labelOrder = LabelOrder.Sorted,
        string sourceName = MemorySource)
    {
        ArgumentNullException.ThrowIfNull(items);
        ArgumentNullException.ThrowIfNull(text);
        var examples = new List<TextExample>();
        int number = 0;
        foreach (var item in items)
        {
            number++;
            string t = text(item) ?? throw new DataFormatException(sourceName, number, null, $"item {number}: the text is null");
            string? l = null;
            if (label is not null)
            {
                l = Convert.ToString(label(item), CultureInfo.InvariantCulture)?.Trim();
                if (string.IsNullOrEmpty(l))
                {
                    throw new DataFormatException(sourceName, number, null, $"item {number}: empty label value");
                }
            }
            examples.Add(new TextExample(t, textPair?.Invoke(item), l));
        }
        return new TextDataset(examples, LabelVocabulary.Build(examples.Select(e => e.Label), labelOrder), sourceName);
    }

    /// <summary>
    /// Checks that the data set can train a classifier: it has examples, every one labeled, and at least two
    /// distinct labels. Returns this data set.
    /// </summary>
    /// <exception cref="DataValidationException">It cannot; the message names the file (and the one label).</exception>
    public TextDataset EnsureTrainable()
    {
        if (_examples.Length == 0)
        {
            throw new DataValidationException(Source, "the training set has no examples");
        }
        int unlabeled = _examples.Count(e => e.Label is null);
        if (unlabeled > 0)
        {
            throw new DataValidationException(Source,
                $"{unlabeled} of {_examples.Length} training examples have no label; training needs a label column");
        }
        var distinct = _examples.Select(e => e.Label!).Distinct(StringComparer.Ordinal).Take(2).ToArray();
        if (distinct.Length < 2)
        {
            throw new DataValidationException(Source,
                $"every one of the {_examples.Length} training examples has the label '{distinct[0]}'; a classifier needs at least two classes (check the label column and the file)");
        }
        return this;
    }

    /// <summary>The label id of every example.</summary>
    /// <exception cref="InvalidOperationException">An example is unlabeled or its label is not in <see cref="Labels"/>
    /// (use <see cref="MapLabels"/> for evaluation data).</exception>
    public int[] GetLabelIds()
    {
        var ids = new int[_examples.Length];
        for (int i = 0; i < ids.Length; i++)
        {
            string? label = _examples[i].Label;
            if (label is null || !Labels.TryGetId(label, out ids[i]))
            {
                throw new InvalidOperationException(label is null
                    ? $"{Source}: example {i + 1} has no label."
                    : $"{Source}: example {i + 1} has the label '{label}', which the label vocabulary lacks.");
            }
        }
        return ids;
    }

    /// <summary>Maps the labels with <paramref name="vocabulary"/> (e.g. the training set's), counting labels it
    /// lacks instead of throwing.</summary>
    public LabelMapping MapLabels(LabelVocabulary vocabulary)
    {
        ArgumentNullException.ThrowIfNull(vocabulary);
        return vocabulary.Map(_examples.Select(e => e.Label));
    }

    /// <summary>The same examples with another label vocabulary (e.g. evaluation data with the training set's).</summary>
    public TextDataset WithLabels(LabelVocabulary vocabulary)
    {
        ArgumentNullException.ThrowIfNull(vocabulary);
        return new TextDataset(_examples, vocabulary, Source);
    }

    /// <summary>Number of examples per label, in vocabulary order (labels outside the vocabulary follow).</summary>
    public IReadOnlyDictionary<string, int> CountByLabel()
    {
        var counts = new OrderedDictionary<string, int>(StringComparer.Ordinal);
        foreach (var label in Labels)
        {
            counts[label] = 0;
        }
        foreach (var e in _examples)
        {
            if (e.Label is not null)
            {
                counts[e.Label] = counts.GetValueOrDefault(e.Label) + 1;
            }
        }
        return counts;
    }

    /// <summary>A stratified split (<see cref="DataSplit.StratifiedSplit{T}(IEnumerable{T}, Func{T, string}, double, Rng)"/>);
    /// both parts share this data set's label vocabulary and source.</summary>
    public TrainValidationSplit<TextDataset> Split(double validationFraction, Rng rng)
    {
        var split = DataSplit.StratifiedSplit(_examples, e => e.Label, validationFraction, rng);
        return new TrainValidationSplit<TextDataset>(
            new TextDataset(split.Train, Labels, Source), new TextDataset(split.Validation, Labels, Source));
    }

    /// <summary><see cref="Split(double, Rng)"/> with <c>new Rng(seed)</c>.</summary>
    public TrainValidationSplit<TextDataset> Split(double validationFraction, int seed)
        => Split(validationFraction, new Rng(unchecked((ulong)seed)));

    /// <summary>
    /// Writes the examples to <paramref name="path"/> in the format its extension names (as
    /// <see cref="LoadTextClassification"/> reads them), with the columns in <paramref name="columns"/>: label,
    /// text, then the pair column (<c>text_pair</c> when unnamed) if any example has a second text. The label
    /// column is left out when no example has a label.
    /// </summary>
    public void Save(string path, TextColumns? columns = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        columns ??= TextColumns.Default;
        bool labeled = columns.Label is not null && _examples.Any(e => e.Label is not null);
        bool paired = HasTextPair;
        var names = new List<string>();
        if (labeled)
        {
            names.Add(columns.Label!);
        }
        names.Add(columns.Text);
        if (paired)
        {
            names.Add(columns.TextPair ?? "text_pair");
        }
        IEnumerable<string?[]> Rows() => _examples.Select(e =>
        {
            var row = new List<string?>(3);
            if (labeled)
            {
                row.Add(e.Label);
            }
            row.Add(e.Text);
            if (paired)
            {
                row.Add(e.TextPair);
            }
            return row.ToArray();
        });
        switch (DataFiles.GetKind(path))
        {
            case DataFileKind.Tsv:
            case DataFileKind.Csv:
                TabularWriter.Write(path, names, Rows().Select(r => (IReadOnlyList<string>)r.Select(v => v ?? "").ToArray()));
                break;
            case DataFileKind.Jsonl:
                JsonlWriter.Write(path, names, Rows());
                break;
            default:
                throw new ArgumentException($"Cannot tell the format of '{path}' from its extension; use .tsv, .csv or .jsonl (each optionally .gz).", nameof(path));
        }
    }

    /// <inheritdoc/>
    public IEnumerator<TextExample> GetEnumerator() => ((IEnumerable<TextExample>)_examples).GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

    /// <inheritdoc/>
    public override string ToString() => $"TextDataset({Source}: {Count} examples, {Labels.Count} labels)";
}

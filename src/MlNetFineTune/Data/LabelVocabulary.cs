using System.Collections;
using System.Globalization;

namespace MlNetFineTune.Data;

/// <summary>How <see cref="LabelVocabulary.Build"/> numbers the labels it finds.</summary>
public enum LabelOrder
{
    /// <summary>
    /// Sorted, so the ids do not depend on the order of the rows: numerically when every label is a number
    /// (<c>"2"</c> before <c>"10"</c>, <c>"-1"</c> before <c>"0"</c>), otherwise by ordinal string comparison.
    /// The default, for reproducibility.
    /// </summary>
    Sorted,

    /// <summary>In the order the labels first occur.</summary>
    FirstSeen,
}

/// <summary>
/// Maps label strings to contiguous ids <c>0..Count-1</c> and back. Labels are compared ordinally (case and
/// spaces matter). Mapping evaluation data that holds labels the training data never had is not an error:
/// <see cref="Map"/> returns -1 for them and counts them.
/// </summary>
public sealed class LabelVocabulary : IReadOnlyList<string>
{
    /// <summary>The id <see cref="Map"/> gives a label that is not in the vocabulary.</summary>
    public const int UnknownId = -1;

    private readonly string[] _labels;
    private readonly Dictionary<string, int> _ids;

    /// <summary>A vocabulary whose ids are the positions in <paramref name="labelsInIdOrder"/> (e.g. as saved
    /// with a model).</summary>
    /// <exception cref="ArgumentException">A label is null or appears twice.</exception>
    public LabelVocabulary(IEnumerable<string> labelsInIdOrder)
    {
        ArgumentNullException.ThrowIfNull(labelsInIdOrder);
        _labels = labelsInIdOrder.ToArray();
        _ids = new Dictionary<string, int>(_labels.Length, StringComparer.Ordinal);
        for (int i = 0; i < _labels.Length; i++)
        {
            if (_labels[i] is null)
            {
                throw new ArgumentException($"Label {i} is null.", nameof(labelsInIdOrder));
            }
            if (!_ids.TryAdd(_labels[i], i))
            {
                throw new ArgumentException($"Label '{_labels[i]}' appears twice.", nameof(labelsInIdOrder));
            }
        }
    }

    /// <summary>The distinct labels of <paramref name="labels"/> (nulls skipped), numbered in
    /// <paramref name="order"/>.</summary>
    public static LabelVocabulary Build(IEnumerable<string?> labels, LabelOrder order = LabelOrder.Sorted)
    {
        ArgumentNullException.ThrowIfNull(labels);
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var distinct = new List<string>();
        foreach (var label in labels)
        {
            if (label is not null && seen.Add(label))
            {
                distinct.Add(label);
            }
        }
        if (order == LabelOrder.Sorted)
        {
            Sort(distinct);
        }
        return new LabelVocabulary(distinct);
    }

    /// <summary>Sorts labels as <see cref="LabelOrder.Sorted"/> does.</summary>
    public static void Sort(List<string> labels)
    {
        ArgumentNullException.ThrowIfNull(labels);
        var numbers = new decimal[labels.Count];
        bool numeric = labels.Count > 0;
        for (int i = 0; i < labels.Count && numeric; i++)
        {
            numeric = TryParseNumber(labels[i], out numbers[i]);
        }
        if (numeric)
        {
            var keyed = labels.Select((l, i) => (Label: l, Number: numbers[i])).ToList();
            keyed.Sort((a, b) =>
            {
                int c = a.Number.CompareTo(b.Number);
                return c != 0 ? c : string.CompareOrdinal(a.Label, b.Label);
            });
            for (int i = 0; i < labels.Count; i++)
            {
                labels[i] = keyed[i].Label;
            }
        }
        else
        {
            labels.Sort(StringComparer.Ordinal);
        }
    }

    private static bool TryParseNumber(string s, out decimal value)
        => decimal.TryParse(s, NumberStyles.AllowLeadingSign | NumberStyles.AllowDecimalPoint | NumberStyles.AllowExponent,
            CultureInfo.InvariantCulture, out value);

    /// <summary>Number of labels.</summary>
    public int Count => _labels.Length;

    /// <summary>The label with id <paramref name="id"/>.</summary>
    public string this[int id] => _labels[id];

    /// <summary>The labels in id order.</summary>
    public IReadOnlyList<string> Labels => _labels;

    /// <summary>The id of <paramref name="label"/>.</summary>
    /// <exception cref="KeyNotFoundException">The label is not in the vocabulary (the message lists those that are).</exception>
    public int GetId(string label)
    {
        ArgumentNullException.ThrowIfNull(label);
        return _ids.TryGetValue(label, out int id)
            ? id
            : throw new KeyNotFoundException($"Unknown label '{label}'; the labels are {Describe()}.");
    }

    /// <summary>The id of <paramref name="label"/>, if it is in the vocabulary.</summary>
    public bool TryGetId(string label, out int id)
    {
        ArgumentNullException.ThrowIfNull(label);
        return _ids.TryGetValue(label, out id);
    }

    /// <summary>Whether <paramref name="label"/> is in the vocabulary.</summary>
    public bool Contains(string label) => label is not null && _ids.ContainsKey(label);

    /// <summary>The label with id <paramref name="id"/>.</summary>
    public string GetLabel(int id)
        => (uint)id < (uint)_labels.Length
            ? _labels[id]
            : throw new ArgumentOutOfRangeException(nameof(id), id, $"Label ids run from 0 to {_labels.Length - 1}.");

    /// <summary>
    /// Maps labels to ids for evaluation: a label the vocabulary lacks (one the training data never had) maps to
    /// <see cref="UnknownId"/> and is counted, and so is a missing (null) label; nothing throws.
    /// </summary>
    public LabelMapping Map(IEnumerable<string?> labels)
    {
        ArgumentNullException.ThrowIfNull(labels);
        var ids = new List<int>();
        var unknown = new OrderedDictionary<string, int>(StringComparer.Ordinal);
        int missing = 0;
        foreach (var label in labels)
        {
            if (label is null)
            {
                missing++;
                ids.Add(UnknownId);
            }
            else if (_ids.TryGetValue(label, out int id))
            {
                ids.Add(id);
            }
            else
            {
                unknown[label] = unknown.GetValueOrDefault(label) + 1;
                ids.Add(UnknownId);
            }
        }
        return new LabelMapping([.. ids], unknown, missing);
    }

    private string Describe()
        => _labels.Length <= 20
            ? string.Join(", ", _labels.Select(l => $"'{l}'"))
            : string.Join(", ", _labels.Take(20).Select(l => $"'{l}'")) + $" and {_labels.Length - 20} more";

    /// <inheritdoc/>
    public IEnumerator<string> GetEnumerator() => ((IEnumerable<string>)_labels).GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

    /// <inheritdoc/>
    public override string ToString() => $"LabelVocabulary({Describe()})";
}

/// <summary>The result of <see cref="LabelVocabulary.Map"/>.</summary>
public sealed class LabelMapping
{
    internal LabelMapping(int[] ids, OrderedDictionary<string, int> unknownLabels, int missingCount)
    {
        Ids = ids;
        UnknownLabels = unknownLabels;
        UnknownCount = unknownLabels.Values.Sum();
        MissingCount = missingCount;
    }

    /// <summary>One id per input label; <see cref="LabelVocabulary.UnknownId"/> for unknown and missing ones.</summary>
    public int[] Ids { get; }

    /// <summary>Number of labels the vocabulary lacks (not counting missing ones).</summary>
    public int UnknownCount { get; }

    /// <summary>Number of null (missing) labels.</summary>
    public int MissingCount { get; }

    /// <summary>Number of labels that mapped to an id.</summary>
    public int KnownCount => Ids.Length - UnknownCount - MissingCount;

    /// <summary>Each unknown label with its number of occurrences, in first-seen order.</summary>
    public IReadOnlyDictionary<string, int> UnknownLabels { get; }
}

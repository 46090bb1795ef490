using System.Text;

namespace MlNetFineTune.Models.Tokenizers;

/// <summary>
/// A piece of text after normalization, with, for every UTF-16 unit, the range of the original
/// string it came from. Each character a transformation produces inherits the original range of the
/// character it was produced from (an accent removed by NFD takes nothing with it; both halves of "İ"
/// lower-cased to "i̇" point at "İ"), which is how Hugging Face's NormalizedString aligns.
/// </summary>
internal sealed class NormalizedText
{
    private readonly int[] _start;
    private readonly int[] _end;

    private NormalizedText(string text, int[] start, int[] end)
    {
        Text = text;
        _start = start;
        _end = end;
    }

    public string Text { get; }

    public int Length => Text.Length;

    /// <summary>The text <c>original[start..end]</c>, aligned to itself.</summary>
    public static NormalizedText FromOriginal(string original, int start, int end)
    {
        int n = end - start;
        var s = new int[n];
        var e = new int[n];
        for (int i = start; i < end; i++)
        {
            bool pair = char.IsHighSurrogate(original[i]) && i + 1 < end && char.IsLowSurrogate(original[i + 1]);
            int width = pair ? 2 : 1;
            for (int k = 0; k < width; k++)
            {
                s[i - start + k] = i;
                e[i - start + k] = i + width;
            }
            i += width - 1;
        }
        return new NormalizedText(original[start..end], s, e);
    }

    /// <summary>
    /// A space before the text, aligned like HF's NormalizedString::prepend: to the original range of
    /// the first character.
    /// </summary>
    public NormalizedText PrependSpace() =>
        new(" " + Text, [_start[0], .. _start], [_end[0], .. _end]);

    public NormalizedText Slice(int start, int end) =>
        new(Text[start..end], _start[start..end], _end[start..end]);

    /// <summary>Original range covered by normalized units [start, end); (first unit's start, last unit's end).</summary>
    public (int Start, int End) ToOriginal(int start, int end)
    {
        if (end <= start)
        {
            int at = start < _start.Length ? _start[start] : _end.Length > 0 ? _end[^1] : 0;
            return (at, at);
        }
        return (_start[start], _end[end - 1]);
    }

    /// <summary>Reads the code point at <paramref name="index"/>; an unpaired surrogate reads as U+FFFD.</summary>
    public static int CodePointAt(string text, int index, out int width)
    {
        Rune.DecodeFromUtf16(text.AsSpan(index), out Rune rune, out width);
        return rune.Value;
    }

    /// <summary>Replaces every code point by the zero or more code points <paramref name="map"/> appends.</summary>
    public NormalizedText Transform(Action<int, List<int>> map)
    {
        var builder = new Builder(Text.Length);
        var buffer = new List<int>(4);
        for (int i = 0; i < Text.Length;)
        {
            int cp = CodePointAt(Text, i, out int width);
            buffer.Clear();
            map(cp, buffer);
            foreach (int c in buffer)
            {
                builder.Append(c, _start[i], _end[i + width - 1]);
            }
            i += width;
        }
        return builder.Build();
    }

    /// <summary>Canonical decomposition (NFD, with canonical reordering), then removal of accent marks (HF's Mn).</summary>
    public NormalizedText StripAccents()
    {
        var cps = new List<int>(Text.Length);
        var starts = new List<int>(Text.Length);
        var ends = new List<int>(Text.Length);
        var parts = new List<int>(4);
        for (int i = 0; i < Text.Length;)
        {
            int cp = CodePointAt(Text, i, out int width);
            parts.Clear();
            UnicodeNormalization.Decompose(cp, parts);
            foreach (int p in parts)
            {
                cps.Add(p);
                starts.Add(_start[i]);
                ends.Add(_end[i + width - 1]);
            }
            i += width;
        }
        CanonicalOrder(cps, starts, ends);
        var builder = new Builder(cps.Count);
        for (int i = 0; i < cps.Count; i++)
        {
            if (!UnicodeNormalization.IsAccentMark(cps[i]))
            {
                builder.Append(cps[i], starts[i], ends[i]);
            }
        }
        return builder.Build();
    }

    // Stable sort of every run of non-starters by combining class (the Canonical Ordering Algorithm).
    private static void CanonicalOrder(List<int> cps, List<int> starts, List<int> ends)
    {
        for (int i = 1; i < cps.Count; i++)
        {
            int cls = UnicodeNormalization.CombiningClass(cps[i]);
            if (cls == 0)
            {
                continue;
            }
            int j = i;
            while (j > 0 && UnicodeNormalization.CombiningClass(cps[j - 1]) > cls)
            {
                (cps[j - 1], cps[j]) = (cps[j], cps[j - 1]);
                (starts[j - 1], starts[j]) = (starts[j], starts[j - 1]);
                (ends[j - 1], ends[j]) = (ends[j], ends[j - 1]);
                j--;
            }
        }
    }

    /// <summary>Accumulates code points with their original ranges.</summary>
    internal sealed class Builder(int capacity)
    {
        private readonly StringBuilder _text = new(capacity);
        private readonly List<int> _start = new(capacity);
        private readonly List<int> _end = new(capacity);

        public void Append(int codePoint, int originalStart, int originalEnd)
        {
            if (codePoint > 0xFFFF)
            {
                _text.Append(char.ConvertFromUtf32(codePoint));
                _start.Add(originalStart);
                _end.Add(originalEnd);
            }
            else
            {
                _text.Append((char)codePoint);
            }
            _start.Add(originalStart);
            _end.Add(originalEnd);
        }

        public NormalizedText Build() => new(_text.ToString(), [.. _start], [.. _end]);
    }
}

using System.Globalization;
using System.Text;

namespace MlNetFineTune.Models.Tokenizers;

/// <summary>
/// Character classes and canonical decomposition (NFD) at code-point level, as Hugging Face's Rust
/// tokenizers see them. Every test works on whole code points (a surrogate pair is one character),
/// because HF's CJK ranges, punctuation and letters all reach beyond the BMP. The BERT classes come
/// from tables recorded from HF itself (see UnicodeNormalizationData.cs); letters, numbers and
/// whitespace, where .NET and HF agree on every code point, from .NET.
/// </summary>
internal static partial class UnicodeNormalization
{
    private const int HangulSBase = 0xAC00, HangulLBase = 0x1100, HangulVBase = 0x1161, HangulTBase = 0x11A7;
    private const int HangulVCount = 21, HangulTCount = 28, HangulNCount = HangulVCount * HangulTCount;
    private const int HangulSCount = 19 * HangulNCount;

    private static readonly Lazy<RangeTable> CleanTextRemoved = new(() => RangeTable.Parse(CleanTextRemovedData));
    private static readonly Lazy<RangeTable> AccentMarks = new(() => RangeTable.Parse(AccentMarksData));
    private static readonly Lazy<RangeTable> Punctuation = new(() => RangeTable.Parse(PunctuationData));
    private static readonly Lazy<RangeTable> CombiningClasses = new(() => RangeTable.Parse(CombiningClassData));
    private static readonly Lazy<Dictionary<int, int[]>> Decompositions = new(() => ParseMap(DecompositionData));
    private static readonly Lazy<Dictionary<int, int[]>> LowercaseOverrides = new(() => ParseMap(LowercaseOverridesData));

    /// <summary>Appends the full canonical decomposition of <paramref name="codePoint"/>.</summary>
    public static void Decompose(int codePoint, List<int> output)
    {
        if (codePoint < 0xC0)
        {
            output.Add(codePoint); // nothing below À decomposes
            return;
        }
        int s = codePoint - HangulSBase;
        if (s >= 0 && s < HangulSCount)
        {
            output.Add(HangulLBase + s / HangulNCount);
            output.Add(HangulVBase + s % HangulNCount / HangulTCount);
            int t = s % HangulTCount;
            if (t != 0)
            {
                output.Add(HangulTBase + t);
            }
            return;
        }
        if (Decompositions.Value.TryGetValue(codePoint, out int[]? parts))
        {
            output.AddRange(parts);
        }
        else
        {
            output.Add(codePoint);
        }
    }

    /// <summary>The canonical combining class (0 for starters).</summary>
    public static int CombiningClass(int codePoint) => codePoint < 0x300 ? 0 : CombiningClasses.Value.Find(codePoint);

    public static UnicodeCategory Category(int codePoint) => CharUnicodeInfo.GetUnicodeCategory(codePoint);

    /// <summary>Rust's <c>char::is_whitespace</c>: the Unicode White_Space property.</summary>
    public static bool IsWhiteSpace(int codePoint) => Rune.IsWhiteSpace(new Rune(codePoint));

    public static bool IsLetter(int codePoint) => Category(codePoint) is UnicodeCategory.UppercaseLetter
        or UnicodeCategory.LowercaseLetter or UnicodeCategory.TitlecaseLetter or UnicodeCategory.ModifierLetter
        or UnicodeCategory.OtherLetter;

    public static bool IsNumber(int codePoint) => Category(codePoint) is UnicodeCategory.DecimalDigitNumber
        or UnicodeCategory.LetterNumber or UnicodeCategory.OtherNumber;

    /// <summary>
    /// What BertNormalizer's clean_text drops: NUL, U+FFFD and HF's "control" characters (Cc, Cf, Co as
    /// HF's tables have them; unassigned code points stay), but not tab, newline and carriage return.
    /// Unpaired surrogates (impossible in a Rust string) reach here as U+FFFD and are dropped too.
    /// </summary>
    public static bool IsRemovedByCleanText(int codePoint) =>
        codePoint < 0x80 ? codePoint < 0x20 && codePoint is not ('\t' or '\n' or '\r') || codePoint == 0x7F
        : CleanTextRemoved.Value.Find(codePoint) != 0;

    /// <summary>What strip_accents drops after NFD: HF's "non-spacing marks" (HF's tables, not .NET's Mn).</summary>
    public static bool IsAccentMark(int codePoint) => codePoint >= 0x300 && AccentMarks.Value.Find(codePoint) != 0;

    /// <summary>BERT's punctuation: the ASCII punctuation ranges (which include $, +, ^, ` ...) or HF's P* classes.</summary>
    public static bool IsBertPunctuation(int codePoint) => codePoint < 0x80
        ? codePoint is >= 33 and <= 47 or >= 58 and <= 64 or >= 91 and <= 96 or >= 123 and <= 126
        : Punctuation.Value.Find(codePoint) != 0;

    /// <summary>
    /// The "Chinese character" ranges of HF's Rust BertNormalizer (CJK ideographs only). Note that
    /// HF's Rust code starts the fifth range at U+2B920 where Google's BERT and the Python
    /// BasicTokenizer start it at U+2B820; we follow the Rust code, as tokenizer.json users get it.
    /// </summary>
    public static bool IsCjkIdeograph(int codePoint) => codePoint is >= 0x4E00 and <= 0x9FFF
        or >= 0x3400 and <= 0x4DBF or >= 0x20000 and <= 0x2A6DF or >= 0x2A700 and <= 0x2B73F
        or >= 0x2B740 and <= 0x2B81F or >= 0x2B920 and <= 0x2CEAF or >= 0xF900 and <= 0xFAFF
        or >= 0x2F800 and <= 0x2FA1F;

    /// <summary>Regex <c>\w</c> as Rust's regex crate defines it (alphabetic, marks, digits, connectors, joiners).</summary>
    public static bool IsWordCharacter(int codePoint) => codePoint is 0x200C or 0x200D || Category(codePoint) switch
    {
        UnicodeCategory.UppercaseLetter or UnicodeCategory.LowercaseLetter or UnicodeCategory.TitlecaseLetter
            or UnicodeCategory.ModifierLetter or UnicodeCategory.OtherLetter or UnicodeCategory.LetterNumber
            or UnicodeCategory.NonSpacingMark or UnicodeCategory.SpacingCombiningMark
            or UnicodeCategory.EnclosingMark or UnicodeCategory.DecimalDigitNumber
            or UnicodeCategory.ConnectorPunctuation => true,
        _ => false,
    };

    /// <summary>
    /// Rust's <c>char::to_lowercase</c>: .NET's invariant simple mapping, except where HF differs (U+0130
    /// becomes "i" + U+0307 by SpecialCasing.txt, and a few letters newer than .NET's tables).
    /// </summary>
    public static void ToLower(int codePoint, List<int> output)
    {
        if (codePoint < 0x80)
        {
            output.Add(codePoint is >= 'A' and <= 'Z' ? codePoint + 32 : codePoint);
            return;
        }
        if (LowercaseOverrides.Value.TryGetValue(codePoint, out int[]? lower))
        {
            output.AddRange(lower);
            return;
        }
        output.Add(Rune.ToLowerInvariant(new Rune(codePoint)).Value);
    }

    private static Dictionary<int, int[]> ParseMap(string data)
    {
        var map = new Dictionary<int, int[]>();
        foreach (string entry in data.Split(';', StringSplitOptions.RemoveEmptyEntries))
        {
            int arrow = entry.IndexOf('>');
            map[Hex(entry[..arrow])] = Array.ConvertAll(entry[(arrow + 1)..].Split(' '), Hex);
        }
        return map;
    }

    private static int Hex(string s) => int.Parse(s, NumberStyles.HexNumber, CultureInfo.InvariantCulture);

    /// <summary>Sorted disjoint code point ranges, each with a value (1 when the data gives none).</summary>
    private sealed class RangeTable(int[] first, int[] last, int[] value)
    {
        public static RangeTable Parse(string data)
        {
            string[] entries = data.Split(';', StringSplitOptions.RemoveEmptyEntries);
            var first = new int[entries.Length];
            var last = new int[entries.Length];
            var value = new int[entries.Length];
            for (int i = 0; i < entries.Length; i++)
            {
                string entry = entries[i];
                int arrow = entry.IndexOf('>');
                string range = arrow < 0 ? entry : entry[..arrow];
                int dash = range.IndexOf('-');
                first[i] = Hex(dash < 0 ? range : range[..dash]);
                last[i] = dash < 0 ? first[i] : Hex(range[(dash + 1)..]);
                value[i] = arrow < 0 ? 1 : int.Parse(entry.AsSpan(arrow + 1), NumberStyles.Integer, CultureInfo.InvariantCulture);
            }
            return new RangeTable(first, last, value);
        }

        /// <summary>The value of the range holding <paramref name="codePoint"/>, or 0.</summary>
        public int Find(int codePoint)
        {
            int lo = 0, hi = first.Length - 1;
            while (lo <= hi)
            {
                int mid = (lo + hi) >>> 1;
                if (codePoint < first[mid])
                {
                    hi = mid - 1;
                }
                else if (codePoint > last[mid])
                {
                    lo = mid + 1;
                }
                else
                {
                    return value[mid];
                }
            }
            return 0;
        }
    }
}

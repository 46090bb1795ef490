using System.Text;

namespace MlNetFineTune.Models.Tokenizers;

/// <summary>
/// GPT-2's byte-level machinery: the reversible byte-to-character table, the pre-tokenization
/// pattern, offset trimming and decoding.
/// </summary>
internal static class ByteLevel
{
    /// <summary>GPT-2's pre-tokenization regex, as HF writes it; <see cref="Split"/> implements it.</summary>
    public const string Gpt2Pattern = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

    private static readonly char[] ByteToChar = BuildByteToChar();
    private static readonly Dictionary<char, byte> CharToByte = BuildCharToByte();

    /// <summary>The character standing for byte <paramref name="b"/> (bytes_to_unicode).</summary>
    public static char ByteChar(byte b) => ByteToChar[b];

    /// <summary>
    /// GPT-2's bytes_to_unicode: printable Latin-1 bytes (! to ~, ¡ to ¬, ® to ÿ) stand for
    /// themselves; the other 68 bytes, in increasing order, take U+0100, U+0101, ... so a space is Ġ.
    /// </summary>
    private static char[] BuildByteToChar()
    {
        var table = new char[256];
        int next = 256;
        for (int b = 0; b < 256; b++)
        {
            bool printable = b is >= '!' and <= '~' or >= 0xA1 and <= 0xAC or >= 0xAE and <= 0xFF;
            table[b] = printable ? (char)b : (char)next++;
        }
        return table;
    }

    private static Dictionary<char, byte> BuildCharToByte()
    {
        var map = new Dictionary<char, byte>(256);
        for (int b = 0; b < 256; b++)
        {
            map[ByteToChar[b]] = (byte)b;
        }
        return map;
    }

    /// <summary>
    /// Splits <paramref name="text"/> into (start, length) pieces exactly as the GPT-2 regex would
    /// under Oniguruma, i.e. on whole code points. .NET's Regex sees UTF-16 units, so \p{L} would not
    /// match a letter outside the BMP (𝐀, 𠀀); this scanner evaluates the alternatives in order instead.
    /// </summary>
    public static void Split(string text, List<(int Start, int Length)> output)
    {
        int i = 0;
        while (i < text.Length)
        {
            int start = i;
            int cp = NormalizedText.CodePointAt(text, i, out int width);
            int contraction = ContractionLength(text, i);
            if (contraction > 0)
            {
                i += contraction;
            }
            else
            {
                int j = i;
                int kind = cp == ' ' && i + 1 < text.Length ? Kind(NormalizedText.CodePointAt(text, i + 1, out _)) : Kind(cp);
                if (cp == ' ' && kind != WhiteSpace)
                {
                    j++; // the optional leading space of " ?\p{L}+", " ?\p{N}+" and " ?[^\s\p{L}\p{N}]+"
                }
                if (kind != WhiteSpace)
                {
                    while (j < text.Length)
                    {
                        int c = NormalizedText.CodePointAt(text, j, out int w);
                        if (Kind(c) != kind)
                        {
                            break;
                        }
                        j += w;
                    }
                    i = j;
                }
                else
                {
                    // \s+(?!\S) takes the whole run at the end of the text, else the run less its last
                    // character (which then leads the next word); a single space before a word falls to \s+.
                    int end = j;
                    int last = j;
                    while (end < text.Length)
                    {
                        int c = NormalizedText.CodePointAt(text, end, out int w);
                        if (!UnicodeNormalization.IsWhiteSpace(c))
                        {
                            break;
                        }
                        last = end;
                        end += w;
                    }
                    i = end == text.Length || last == j ? end : last;
                }
            }
            output.Add((start, i - start));
        }
    }

    private const int WhiteSpace = 0, Letter = 1, Number = 2, Other = 3;

    private static int Kind(int cp) =>
        UnicodeNormalization.IsWhiteSpace(cp) ? WhiteSpace
        : UnicodeNormalization.IsLetter(cp) ? Letter
        : UnicodeNormalization.IsNumber(cp) ? Number
        : Other;

    private static int ContractionLength(string text, int i)
    {
        if (text[i] != '\'' || i + 1 >= text.Length)
        {
            return 0;
        }
        char a = text[i + 1];
        if (a is 's' or 't' or 'm' or 'd')
        {
            return 2;
        }
        if (i + 2 < text.Length)
        {
            char b = text[i + 2];
            if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l'))
            {
                return 3;
            }
        }
        return 0;
    }

    /// <summary>
    /// Maps every code point of <paramref name="word"/> to the characters of its UTF-8 bytes; all of
    /// them keep the original range of the code point (so a token holding part of an emoji's bytes
    /// points at the whole emoji).
    /// </summary>
    public static NormalizedText ToByteChars(NormalizedText word)
    {
        var utf8 = new byte[4];
        return word.Transform((cp, output) =>
        {
            int n = new Rune(cp).EncodeToUtf8(utf8);
            for (int k = 0; k < n; k++)
            {
                output.Add(ByteToChar[utf8[k]]);
            }
        });
    }

    /// <summary>
    /// HF's process_offsets: moves each token's start past its leading spaces (Ġ or whitespace) and its
    /// end before its trailing ones, except the one space add_prefix_space put before the first word.
    /// HF counts in characters (code points), which matters where the prefix space stands for an emoji.
    /// </summary>
    public static Encoding TrimOffsets(Encoding encoding, bool addPrefixSpace)
    {
        string source = encoding.Source ?? throw new InvalidOperationException("Offsets can only be trimmed on a single sequence.");
        var offsets = ((int Start, int End)[])encoding.OffsetsArray.Clone();
        string[] tokens = encoding.TokensArray;
        for (int i = 0; i < offsets.Length; i++)
        {
            string token = tokens[i];
            int leading = 0;
            while (leading < token.Length && IsTrimmable(token[leading]))
            {
                leading++;
            }
            int trailing = 0;
            while (trailing < token.Length && IsTrimmable(token[token.Length - 1 - trailing]))
            {
                trailing++;
            }
            var (start, end) = offsets[i];
            if (leading > 0)
            {
                bool isFirst = i == 0 || start == 0;
                if (isFirst && addPrefixSpace && leading == 1)
                {
                    leading = 0;
                }
                start = Math.Min(Advance(source, start, leading), end);
            }
            if (trailing > 0 && CodePointsBefore(source, end, trailing))
            {
                end = Math.Max(Retreat(source, end, trailing), start);
            }
            offsets[i] = (start, end);
        }
        return encoding.WithOffsets(offsets);
    }

    private static int Advance(string s, int index, int codePoints)
    {
        for (int k = 0; k < codePoints && index < s.Length; k++)
        {
            index += char.IsHighSurrogate(s[index]) && index + 1 < s.Length && char.IsLowSurrogate(s[index + 1]) ? 2 : 1;
        }
        return index;
    }

    private static int Retreat(string s, int index, int codePoints)
    {
        for (int k = 0; k < codePoints && index > 0; k++)
        {
            index -= char.IsLowSurrogate(s[index - 1]) && index >= 2 && char.IsHighSurrogate(s[index - 2]) ? 2 : 1;
        }
        return index;
    }

    // HF's "offsets.1 >= trailing_spaces", with the end counted in code points.
    private static bool CodePointsBefore(string s, int index, int count)
    {
        for (int k = 0; k < count; k++)
        {
            if (index <= 0)
            {
                return false;
            }
            index -= char.IsLowSurrogate(s[index - 1]) && index >= 2 && char.IsHighSurrogate(s[index - 2]) ? 2 : 1;
        }
        return true;
    }

    private static bool IsTrimmable(char c) => c == 'Ġ' || char.IsWhiteSpace(c);

    /// <summary>
    /// HF's ByteLevel decoder: tokens whose every character is a byte character become those bytes,
    /// others their own UTF-8; the bytes are read as UTF-8 with U+FFFD for invalid sequences.
    /// </summary>
    public static string Decode(IEnumerable<string> tokens)
    {
        var bytes = new List<byte>();
        foreach (string token in tokens)
        {
            bool allBytes = true;
            foreach (char c in token)
            {
                if (!CharToByte.ContainsKey(c))
                {
                    allBytes = false;
                    break;
                }
            }
            if (allBytes)
            {
                foreach (char c in token)
                {
                    bytes.Add(CharToByte[c]);
                }
            }
            else
            {
                bytes.AddRange(System.Text.Encoding.UTF8.GetBytes(token));
            }
        }
        return System.Text.Encoding.UTF8.GetString([.. bytes]);
    }
}

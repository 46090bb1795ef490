using System.Text.Json;

namespace MlNetFineTune.Models.Tokenizers;

/// <summary>
/// HF's BertNormalizer (BERT's BasicTokenizer cleaning): drop control characters, NUL and U+FFFD and
/// turn whitespace into spaces; put spaces around CJK ideographs; strip accents (NFD, then drop Mn);
/// lower-case. Accents are stripped when <see cref="StripAccents"/> is true, or when it is null and
/// <see cref="Lowercase"/> is true.
/// </summary>
internal sealed record BertNormalizer(bool CleanText, bool HandleChineseChars, bool? StripAccents, bool Lowercase)
{
    public NormalizedText Normalize(NormalizedText text)
    {
        if (CleanText)
        {
            text = text.Transform(static (cp, output) =>
            {
                if (UnicodeNormalization.IsRemovedByCleanText(cp))
                {
                    return;
                }
                output.Add(UnicodeNormalization.IsWhiteSpace(cp) ? ' ' : cp);
            });
        }
        if (HandleChineseChars)
        {
            text = text.Transform(static (cp, output) =>
            {
                if (UnicodeNormalization.IsCjkIdeograph(cp))
                {
                    output.Add(' ');
                    output.Add(cp);
                    output.Add(' ');
                }
                else
                {
                    output.Add(cp);
                }
            });
        }
        if (StripAccents ?? Lowercase)
        {
            text = text.StripAccents();
        }
        if (Lowercase)
        {
            text = text.Transform(UnicodeNormalization.ToLower);
        }
        return text;
    }

    public void WriteJson(Utf8JsonWriter writer)
    {
        writer.WriteStartObject();
        writer.WriteString("type", "BertNormalizer");
        writer.WriteBoolean("clean_text", CleanText);
        writer.WriteBoolean("handle_chinese_chars", HandleChineseChars);
        if (StripAccents is bool strip)
        {
            writer.WriteBoolean("strip_accents", strip);
        }
        else
        {
            writer.WriteNull("strip_accents");
        }
        writer.WriteBoolean("lowercase", Lowercase);
        writer.WriteEndObject();
    }

    /// <summary>
    /// HF's BertPreTokenizer: split on whitespace (dropped), then make every punctuation character
    /// (ASCII punctuation or Unicode P*) a word of its own.
    /// </summary>
    public static void PreTokenize(NormalizedText text, List<NormalizedText> words)
    {
        string s = text.Text;
        int wordStart = -1;
        for (int i = 0; i < s.Length;)
        {
            int cp = NormalizedText.CodePointAt(s, i, out int width);
            if (UnicodeNormalization.IsWhiteSpace(cp))
            {
                Flush(i);
            }
            else if (UnicodeNormalization.IsBertPunctuation(cp))
            {
                Flush(i);
                words.Add(text.Slice(i, i + width));
            }
            else if (wordStart < 0)
            {
                wordStart = i;
            }
            i += width;
        }
        Flush(s.Length);

        void Flush(int end)
        {
            if (wordStart >= 0)
            {
                words.Add(text.Slice(wordStart, end));
                wordStart = -1;
            }
        }
    }
}

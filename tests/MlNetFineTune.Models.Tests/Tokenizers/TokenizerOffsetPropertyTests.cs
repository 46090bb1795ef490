using MlNetFineTune.Models.Tokenizers;
using Xunit;
using static MlNetFineTune.Models.Tests.TokenizerFixtures;

namespace MlNetFineTune.Models.Tests;

/// <summary>
/// Properties over many random texts from a seeded generator: every token's offsets slice the
/// original text to the token's own surface form (once "##", Ġ, case and accents are accounted for),
/// never split a surrogate pair, and word ids and offsets only move forward.
/// </summary>
public class TokenizerOffsetPropertyTests
{
    private const int Samples = 400;

    private static readonly string[] Pool =
    [
        "a", "b", "e", "h", "l", "n", "o", "s", "t", "x", "A", "H", "Z", "0", "2", "4", "7",
        " ", " ", " ", "  ", "\t", "\r\n", "\n", "\u00A0", "\u200B", "\u200D",
        "!", ".", ",", "'", "?", "-", "(", ")", "[", "¿", "«", "…",
        "é", "è", "ï", "Ñ", "ú", "Ç", "ü", "İ", "ß",
        "我", "爱", "北", "😀", "👍", "🤗", "👨\u200D👩\u200D👧", "❤\uFE0F", "\U0001D400",
        "hello", "world", "Hello", "cafe", "Café", "naïve", "don't", "'s", "2024", "unaffable", "playing",
        "[MASK]", "<mask>", " <mask>",
    ];

    // How uncased BERT spells each character of the pool: accents stripped, lower-cased, format
    // characters (ZWSP, ZWJ) and the emoji variation selector (a mark) dropped.
    private static readonly Dictionary<char, string> UncasedFold = new()
    {
        ['é'] = "e", ['è'] = "e", ['ï'] = "i", ['Ñ'] = "n", ['ú'] = "u", ['Ç'] = "c", ['ü'] = "u", ['İ'] = "i",
        ['\u200B'] = "", ['\u200D'] = "", ['\uFE0F'] = "",
    };

    private static readonly Dictionary<char, string> CasedFold = new() { ['\u200B'] = "", ['\u200D'] = "" };

    private static IEnumerable<string> RandomTexts(int seed, bool withSpecialTokens = true)
    {
        var rng = new Random(seed);
        for (int i = 0; i < Samples; i++)
        {
            int n = rng.Next(0, 24);
            var parts = new string[n];
            for (int k = 0; k < n; k++)
            {
                string part;
                do
                {
                    part = Pool[rng.Next(Pool.Length)];
                }
                while (!withSpecialTokens && part.Contains('<') | part.Contains('['));
                parts[k] = part;
            }
            yield return string.Concat(parts);
        }
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Bert_offsets_slice_to_the_token(bool lowercase)
    {
        var tokenizer = lowercase ? Bert : BertCased;
        var fold = lowercase ? UncasedFold : CasedFold;
        foreach (string text in RandomTexts(seed: lowercase ? 1 : 2))
        {
            var e = tokenizer.Encode(text);
            AssertWellFormed(text, e);
            int previousEnd = 0;
            for (int i = 0; i < e.Length; i++)
            {
                if (e.SpecialTokensMask[i] == 1)
                {
                    continue;
                }
                var (start, end) = e.Offsets[i];
                Assert.True(start >= previousEnd, $"overlapping offsets in {Show(text)}");
                Assert.True(start < end, $"empty token {e.Tokens[i]} in {Show(text)}");
                previousEnd = end;
                string slice = text[start..end];
                string token = e.Tokens[i];
                if (token == "[UNK]")
                {
                    Assert.DoesNotContain(slice, char.IsWhiteSpace);
                    continue;
                }
                if (tokenizer.AddedTokens.Any(t => t.Content == token))
                {
                    Assert.Equal(token, slice); // matched in the raw text, not normalized
                    continue;
                }
                string surface = string.Concat(slice.Select(c => fold.TryGetValue(c, out string? f) ? f : lowercase ? char.ToLowerInvariant(c).ToString() : c.ToString()));
                string expected = token.StartsWith("##", StringComparison.Ordinal) ? token[2..] : token;
                Assert.True(expected == surface, $"token '{token}' has offsets {start}..{end} = '{slice}' in {Show(text)}");
            }
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Byte_level_offsets_slice_to_the_token_bytes(bool addPrefixSpace)
    {
        var tokenizer = addPrefixSpace ? RobertaPrefixSpace : Roberta;
        // With add_prefix_space, HF also trims the space it puts after an added token, which takes the
        // next word's first character out of its offsets (see ByteLevelBpeTokenizerTests), so that
        // case leaves <mask> out of the texts.
        foreach (string text in RandomTexts(seed: addPrefixSpace ? 3 : 4, withSpecialTokens: !addPrefixSpace))
        {
            var e = tokenizer.Encode(text);
            AssertWellFormed(text, e);
            for (int i = 0; i < e.Length; i++)
            {
                if (e.SpecialTokensMask[i] == 1)
                {
                    continue;
                }
                var (start, end) = e.Offsets[i];
                byte[] slice = System.Text.Encoding.UTF8.GetBytes(text[start..end]);
                // Offsets are trimmed past leading and trailing spaces (Ġ or whitespace in the token),
                // except one leading Ġ at the very start with add_prefix_space: HF cannot tell the space
                // it added (which points at the first character) from a space that was in the text.
                string trimmed = e.Tokens[i].Trim().Trim('Ġ').Trim();
                string message = $"token '{e.Tokens[i]}' has offsets {start}..{end} = '{text[start..end]}' in {Show(text)}";
                bool matches = SlicesTo(slice, trimmed);
                if (!matches && addPrefixSpace && start == 0 && e.Tokens[i].StartsWith('Ġ'))
                {
                    matches = SlicesTo(slice, " " + e.Tokens[i][1..].TrimEnd().TrimEnd('Ġ').TrimEnd());
                }
                Assert.True(matches, message);
            }
        }
    }

    // A token spelling whole characters slices exactly to them; one holding part of a character's
    // bytes slices to the whole character, so its bytes lie within the slice.
    private static bool SlicesTo(byte[] slice, string token)
    {
        byte[] bytes = TokenBytes(token);
        return IsCompleteUtf8(bytes) ? bytes.AsSpan().SequenceEqual(slice) : slice.AsSpan().IndexOf(bytes) >= 0;
    }

    [Fact]
    public void Byte_level_decoding_gives_back_the_text()
    {
        foreach (string text in RandomTexts(seed: 5, withSpecialTokens: false))
        {
            Assert.Equal(text, Roberta.Decode(Roberta.Encode(text).Ids));
        }
    }

    [Fact]
    public void Word_tokenizer_offsets_slice_to_the_word()
    {
        foreach (string text in RandomTexts(seed: 6))
        {
            var e = Glove.Encode(text);
            AssertWellFormed(text, e);
            for (int i = 0; i < e.Length; i++)
            {
                var (start, end) = e.Offsets[i];
                string slice = text[start..end];
                Assert.DoesNotContain(slice, char.IsWhiteSpace);
                if (e.Tokens[i] != "<unk>")
                {
                    Assert.Equal(e.Tokens[i], slice.Replace("İ", "i\u0307", StringComparison.Ordinal).ToLowerInvariant());
                }
            }
        }
    }

    [Fact]
    public void Truncated_encodings_are_prefixes_of_the_full_ones()
    {
        var rng = new Random(7);
        foreach (string text in RandomTexts(seed: 8))
        {
            var full = Bert.Encode(text, options: new EncodeOptions { AddSpecialTokens = false });
            int max = rng.Next(0, 12);
            var cut = Bert.Encode(text, options: new EncodeOptions { AddSpecialTokens = false, MaxLength = max, Padding = PaddingStrategy.MaxLength });
            Assert.Equal(Math.Max(max, Math.Min(max, full.Length)), cut.Length);
            int kept = Math.Min(max, full.Length);
            Assert.Equal(full.Ids.Take(kept), cut.Ids.Take(kept));
            Assert.Equal(full.Offsets.Take(kept), cut.Offsets.Take(kept));
            Assert.Equal(full.WordIds.Take(kept), cut.WordIds.Take(kept));
            Assert.All(cut.AttentionMask.Skip(kept), m => Assert.Equal(0, m));
        }
    }

    private static void AssertWellFormed(string text, Encoding e)
    {
        int n = e.Length;
        Assert.True(e.Tokens.Count == n && e.TypeIds.Count == n && e.AttentionMask.Count == n && e.SpecialTokensMask.Count == n
            && e.Offsets.Count == n && e.WordIds.Count == n && e.SequenceIds.Count == n);
        int? lastWord = null;
        for (int i = 0; i < n; i++)
        {
            var (start, end) = e.Offsets[i];
            Assert.InRange(start, 0, text.Length);
            Assert.InRange(end, start, text.Length);
            Assert.False(start < text.Length && start > 0 && char.IsLowSurrogate(text[start]) && char.IsHighSurrogate(text[start - 1]),
                $"offset {start} splits a surrogate pair in {Show(text)}");
            Assert.False(end < text.Length && end > 0 && char.IsLowSurrogate(text[end]) && char.IsHighSurrogate(text[end - 1]),
                $"offset {end} splits a surrogate pair in {Show(text)}");
            if (e.SpecialTokensMask[i] == 1)
            {
                Assert.Null(e.WordIds[i]);
                continue;
            }
            Assert.NotNull(e.WordIds[i]);
            Assert.True(lastWord is null || e.WordIds[i] >= lastWord, $"word ids go back in {Show(text)}");
            lastWord = e.WordIds[i];
        }
    }

    // The bytes a byte-level token stands for (characters outside the byte alphabet, as in added
    // tokens, stand for their own UTF-8), with GPT-2's bytes_to_unicode written out independently.
    private static byte[] TokenBytes(string token)
    {
        var bytes = new List<byte>();
        foreach (char c in token)
        {
            if (ByteOf.TryGetValue(c, out byte b))
            {
                bytes.Add(b);
            }
            else
            {
                bytes.AddRange(System.Text.Encoding.UTF8.GetBytes(c.ToString()));
            }
        }
        return [.. bytes];
    }

    private static readonly Dictionary<char, byte> ByteOf = BuildByteOf();

    private static Dictionary<char, byte> BuildByteOf()
    {
        var map = new Dictionary<char, byte>();
        int extra = 0;
        for (int b = 0; b < 256; b++)
        {
            bool kept = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
            map[kept ? (char)b : (char)(0x100 + extra++)] = (byte)b;
        }
        return map;
    }

    private static bool IsCompleteUtf8(byte[] bytes)
    {
        try
        {
            new System.Text.UTF8Encoding(false, throwOnInvalidBytes: true).GetString(bytes);
            return true;
        }
        catch (System.Text.DecoderFallbackException)
        {
            return false;
        }
    }

    private static string Show(string text) =>
        "\"" + string.Concat(text.Select(c => c < 0x20 || c > 0x7E ? $"\\u{(int)c:X4}" : c.ToString())) + "\"";
}

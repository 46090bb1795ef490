using MlNetFineTune.Models.Tokenizers;
using Xunit;
using static MlNetFineTune.Models.Tests.TokenizerFixtures;

namespace MlNetFineTune.Models.Tests;

/// <summary>
/// Truncation (HF's longest_first / only_first / only_second, counted without the special tokens the
/// post-processor adds) and right padding. A = "hello world the cafe" (4 tokens: 110 111 109 112),
/// B = "don't play" (4 tokens: don ' t play = 116 11 66 120); BERT adds 3 tokens to a pair, 2 to one text.
/// </summary>
public class TruncationPaddingTests
{
    private const string A = "hello world the cafe";
    private const string B = "don't play";

    private static EncodeOptions Truncate(int maxLength, TruncationStrategy strategy) =>
        new() { MaxLength = maxLength, Truncation = strategy };

    [Fact]
    public void Longest_first_with_equal_lengths_cuts_both_to_half()
    {
        // Room for 7 - 3 = 4: both have 4, so n1 = 4 / 2 = 2 and n2 = 2 + 4 % 2 = 2.
        var e = Bert.Encode(A, B, Truncate(7, TruncationStrategy.LongestFirst));
        Assert.Equal([2, 110, 111, 3, 116, 11, 3], e.Ids);
        Assert.Equal([0, 0, 0, 0, 1, 1, 1], e.TypeIds);
        Assert.Equal([(0, 0), (0, 5), (6, 11), (0, 0), (0, 3), (3, 4), (0, 0)], e.Offsets);
        Assert.Equal([null, 0, 1, null, 0, 1, null], e.WordIds);
    }

    [Fact]
    public void Longest_first_takes_from_the_longer_sequence()
    {
        // "hello world the cafe naive" has 5 tokens, "play" 1; room for 6 - 3 = 3: the shorter keeps
        // its 1, the longer gets max(1, 3 - 1) = 2.
        var e = Bert.Encode(A + " naive", "play", Truncate(6, TruncationStrategy.LongestFirst));
        Assert.Equal([2, 110, 111, 3, 120, 3], e.Ids);
        // When both must be cut, each gets half the room and the odd token goes to the longer one:
        // 5 and 4 into 5 → 3 and 2.
        var odd = Bert.Encode(A + " naive", B, Truncate(8, TruncationStrategy.LongestFirst));
        Assert.Equal([2, 110, 111, 109, 3, 116, 11, 3], odd.Ids);
    }

    [Fact]
    public void Only_first_and_only_second()
    {
        // Room for 8 - 3 = 5, 3 too many: only_first leaves A 1 token, only_second leaves B 1 token.
        Assert.Equal([2, 110, 3, 116, 11, 66, 120, 3], Bert.Encode(A, B, Truncate(8, TruncationStrategy.OnlyFirst)).Ids);
        Assert.Equal([2, 110, 111, 109, 112, 3, 116, 3], Bert.Encode(A, B, Truncate(8, TruncationStrategy.OnlySecond)).Ids);
        // Room for 3, 5 too many: A (4 tokens) cannot give 5.
        var tooShort = Assert.Throws<ArgumentException>(() => Bert.Encode(A, B, Truncate(6, TruncationStrategy.OnlyFirst)));
        Assert.Contains("first sequence is too short", tooShort.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => Bert.Encode(A, options: Truncate(4, TruncationStrategy.OnlySecond)));
        // Nothing to remove: no error even without a pair.
        Assert.Equal(6, Bert.Encode(A, options: Truncate(6, TruncationStrategy.OnlySecond)).Length);
    }

    [Fact]
    public void Single_sequence_and_edge_lengths()
    {
        Assert.Equal([2, 110, 111, 3], Bert.Encode(A, options: Truncate(4, TruncationStrategy.LongestFirst)).Ids);
        // No room at all for text: both sequences become empty (HF's max_length 0 case).
        Assert.Equal([2, 3, 3], Bert.Encode(A, B, Truncate(3, TruncationStrategy.LongestFirst)).Ids);
        Assert.Throws<ArgumentException>(() => Bert.Encode(A, B, Truncate(2, TruncationStrategy.LongestFirst)));
        // Without special tokens all the room is for text.
        var raw = Bert.Encode(A, B, new EncodeOptions { AddSpecialTokens = false, MaxLength = 3 });
        Assert.Equal([110, 116, 11], raw.Ids);
        // TruncationStrategy.None ignores MaxLength for truncation.
        Assert.Equal(6, Bert.Encode(A, options: Truncate(3, TruncationStrategy.None)).Length);
    }

    [Fact]
    public void Truncation_keeps_offsets_of_the_kept_tokens()
    {
        const string text = "Café naïve Ñandú 😀 don't";
        var full = Bert.Encode(text);
        var cut = Bert.Encode(text, options: Truncate(6, TruncationStrategy.LongestFirst));
        Assert.Equal(full.Offsets.Take(5), cut.Offsets.Take(5));
        Assert.Equal(full.WordIds.Take(5), cut.WordIds.Take(5));
        Assert.Equal((0, 0), cut.Offsets[5]);
        // Byte-level: offsets are trimmed after truncation, on the kept tokens.
        var roberta = Roberta.Encode("Hello world don't", options: Truncate(4, TruncationStrategy.LongestFirst));
        Assert.Equal(["<s>", "Hello", "Ġworld", "</s>"], roberta.Tokens);
        Assert.Equal([(0, 0), (0, 5), (6, 11), (0, 0)], roberta.Offsets);
    }

    [Fact]
    public void Padding_to_max_length()
    {
        var e = Bert.Encode("hello", options: new EncodeOptions { MaxLength = 6, Padding = PaddingStrategy.MaxLength });
        Assert.Equal([2, 110, 3, 0, 0, 0], e.Ids);
        Assert.Equal(["[CLS]", "hello", "[SEP]", "[PAD]", "[PAD]", "[PAD]"], e.Tokens);
        Assert.Equal([1, 1, 1, 0, 0, 0], e.AttentionMask);
        Assert.Equal([1, 0, 1, 1, 1, 1], e.SpecialTokensMask);
        Assert.Equal([0, 0, 0, 0, 0, 0], e.TypeIds);
        Assert.Equal([null, 0, null, null, null, null], e.WordIds);
        Assert.Equal([null, 0, null, null, null, null], e.SequenceIds);
        Assert.All(e.Offsets.Skip(3), o => Assert.Equal((0, 0), o));
        // A pair padded: pads have type id 0 after B's type id 1.
        var pair = Bert.Encode("hello", "world", new EncodeOptions { MaxLength = 7, Padding = PaddingStrategy.MaxLength });
        Assert.Equal([0, 0, 0, 1, 1, 0, 0], pair.TypeIds);
        // RoBERTa pads with <pad> = 1.
        Assert.Equal([0, 266, 2, 1], Roberta.Encode("Hello", options: new EncodeOptions { MaxLength = 4, Padding = PaddingStrategy.MaxLength }).Ids);
    }

    [Fact]
    public void Padding_a_batch_to_its_longest_and_to_a_multiple()
    {
        var batch = Bert.EncodeBatch(["hello", "hello world the"], new EncodeOptions { Padding = PaddingStrategy.Longest });
        Assert.Equal([2, 110, 3, 0, 0], batch[0].Ids);
        Assert.Equal([2, 110, 111, 109, 3], batch[1].Ids);
        var multiple = Bert.EncodeBatch(["hello", "hello world the"],
            new EncodeOptions { Padding = PaddingStrategy.Longest, PadToMultipleOf = 4 });
        Assert.All(multiple, e => Assert.Equal(8, e.Length));
        var pairs = Bert.EncodeBatch([("hello", "world"), ("hello world", null)], new EncodeOptions { Padding = PaddingStrategy.Longest });
        Assert.Equal([2, 110, 3, 111, 3], pairs[0].Ids);
        Assert.Equal([2, 110, 111, 3, 0], pairs[1].Ids);
        Assert.Empty(Bert.EncodeBatch(Array.Empty<string>()));
    }

    [Fact]
    public void Longer_than_max_length_is_not_padded_and_bad_options_are_rejected()
    {
        var e = Bert.Encode(A, options: new EncodeOptions { MaxLength = 3, Truncation = TruncationStrategy.None, Padding = PaddingStrategy.MaxLength });
        Assert.Equal(6, e.Length);
        Assert.Throws<ArgumentException>(() => Bert.Encode(A, options: new EncodeOptions { Padding = PaddingStrategy.MaxLength }));
        Assert.Throws<ArgumentOutOfRangeException>(() => Bert.Encode(A, options: new EncodeOptions { MaxLength = -1 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => Bert.Encode(A, options: new EncodeOptions { PadToMultipleOf = 0 }));
    }

    [Fact]
    public void Default_options_apply_when_none_are_given()
    {
        var tokenizer = BertWordPieceTokenizer.FromVocabFile(BertVocab);
        tokenizer.DefaultEncodeOptions = new EncodeOptions { MaxLength = 4, Padding = PaddingStrategy.MaxLength };
        Assert.Equal([2, 110, 111, 3], tokenizer.Encode(A).Ids);
        Assert.Equal([2, 110, 3, 0], tokenizer.Encode("hello").Ids);
        Assert.Equal(6, tokenizer.Encode(A, options: EncodeOptions.Default).Length);
    }
}

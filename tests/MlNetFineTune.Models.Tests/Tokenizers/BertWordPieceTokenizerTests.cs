using MlNetFineTune.Models.Tokenizers;
using Xunit;
using static MlNetFineTune.Models.Tests.TokenizerFixtures;

namespace MlNetFineTune.Models.Tests;

/// <summary>
/// Golden cases for BERT (uncased unless said otherwise), each worked out by hand from the algorithm:
/// BertNormalizer (clean text, spaces around CJK, NFD + drop marks, lower-case), BertPreTokenizer
/// (split on whitespace, each punctuation character alone), WordPiece (longest vocabulary prefix,
/// then "##" pieces; any failure makes the whole word [UNK]), then [CLS] A [SEP]. Ids: see TokenizerFixtures.
/// </summary>
public class BertWordPieceTokenizerTests
{
    [Fact]
    public void Accents_are_stripped_and_offsets_still_slice_the_original()
    {
        // NFD splits é, ï, Ñ, ú into base letter + combining mark, the marks are dropped, then
        // lower-case: "cafe naive nandu". cafe (112) and naive (113) are whole words; "nandu" is not,
        // its longest prefix in the vocabulary is "nan" (114), the rest "##du" (115). Every kept
        // letter keeps the range of the character it came from, so "##du" covers "dú" (14..16).
        const string text = "Café naïve Ñandú";
        var e = Bert.Encode(text);
        AssertTokens(e,
            [2, 112, 113, 114, 115, 3],
            ["[CLS]", "cafe", "naive", "nan", "##du", "[SEP]"],
            [(0, 0), (0, 4), (5, 10), (11, 14), (14, 16), (0, 0)],
            [null, 0, 1, 2, 2, null]);
        Assert.Equal("Ñan", text[11..14]);
        Assert.Equal([0, 0, 0, 0, 0, 0], e.TypeIds);
        Assert.Equal([1, 0, 0, 0, 0, 1], e.SpecialTokensMask);
        Assert.Equal([null, 0, 0, 0, 0, null], e.SequenceIds);
    }

    [Fact]
    public void Cjk_ideographs_become_single_words_next_to_latin()
    {
        // Each ideograph gets spaces around it, so 我爱北京天安门 is seven words (ids 122..128).
        // "in" is not in the vocabulary: "i" (55) + "##n" (86). "beijing": b (48), then the longest
        // "##" pieces: ##e (77), ##i (81), ##j (82), ##ing (121).
        var e = Bert.Encode("我爱北京天安门 in Beijing");
        AssertTokens(e,
            [2, 122, 123, 124, 125, 126, 127, 128, 55, 86, 48, 77, 81, 82, 121, 3],
            ["[CLS]", "我", "爱", "北", "京", "天", "安", "门", "i", "##n", "b", "##e", "##i", "##j", "##ing", "[SEP]"],
            [(0, 0), (0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (5, 6), (6, 7), (8, 9), (9, 10), (11, 12), (12, 13),
                (13, 14), (14, 15), (15, 18), (0, 0)],
            [null, 0, 1, 2, 3, 4, 5, 6, 7, 7, 8, 8, 8, 8, 8, null]);
    }

    [Fact]
    public void Cjk_ranges_are_hugging_faces_rust_ranges()
    {
        // U+20000 (CJK extension B, a surrogate pair) is in the ranges: it splits from its neighbours
        // and, not being in the vocabulary, is [UNK] alone. U+2B820 is outside HF's Rust ranges (they
        // start that block at U+2B920), so "a\U0002B820b" stays one word: one [UNK] for all three.
        var e = Bert.Encode("a\U00020000b a\U0002B820b");
        AssertTokens(e,
            [2, 47, 1, 48, 1, 3],
            ["[CLS]", "a", "[UNK]", "b", "[UNK]", "[SEP]"],
            [(0, 0), (0, 1), (1, 3), (3, 4), (5, 9), (0, 0)],
            [null, 0, 1, 2, 3, null]);
    }

    [Fact]
    public void Emoji_are_words_and_zero_width_joiners_are_removed()
    {
        // 😀 is a symbol, not punctuation: it stays one word, in the vocabulary (132), and its
        // offsets span both UTF-16 units (6..8). "smile" is not a word: s ##m ##i ##l ##e.
        var e = Bert.Encode("smile 😀!");
        AssertTokens(e,
            [2, 65, 85, 81, 84, 77, 132, 5, 3],
            ["[CLS]", "s", "##m", "##i", "##l", "##e", "😀", "!", "[SEP]"],
            [(0, 0), (0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (6, 8), (8, 9), (0, 0)],
            [null, 0, 0, 0, 0, 0, 1, 2, null]);

        // The ZWJs (U+200D, format characters) are dropped by clean_text, leaving 👨👩👧 as one word
        // that WordPiece cannot spell: one [UNK] whose offsets still span the whole sequence (0..8).
        var family = Bert.Encode("👨\u200D👩\u200D👧 ok");
        AssertTokens(family,
            [2, 1, 61, 83, 3],
            ["[CLS]", "[UNK]", "o", "##k", "[SEP]"],
            [(0, 0), (0, 8), (9, 10), (10, 11), (0, 0)],
            [null, 0, 1, 1, null]);
    }

    [Fact]
    public void Punctuation_runs_split_into_single_characters()
    {
        // Every punctuation character is a word of its own: ! = 5, . = 18, ? = 25.
        var e = Bert.Encode("Hello!!!...??");
        AssertTokens(e,
            [2, 110, 5, 5, 5, 18, 18, 18, 25, 25, 3],
            ["[CLS]", "hello", "!", "!", "!", ".", ".", ".", "?", "?", "[SEP]"],
            [(0, 0), (0, 5), (5, 6), (6, 7), (7, 8), (8, 9), (9, 10), (10, 11), (11, 12), (12, 13), (0, 0)],
            [null, 0, 1, 2, 3, 4, 5, 6, 7, 8, null]);
    }

    [Fact]
    public void Words_longer_than_100_characters_become_unk()
    {
        // 100 a's are spelled a + 99 × ##a; at 101 characters WordPiece gives up: one [UNK] for all.
        var hundred = Bert.Encode(new string('a', 100));
        Assert.Equal(102, hundred.Length);
        Assert.Equal([2, 47, .. Enumerable.Repeat(73, 99), 3], hundred.Ids);
        Assert.Equal((99, 100), hundred.Offsets[100]);

        var longer = Bert.Encode("x " + new string('a', 101));
        AssertTokens(longer, [2, 70, 1, 3], ["[CLS]", "x", "[UNK]", "[SEP]"], [(0, 0), (0, 1), (2, 103), (0, 0)], [null, 0, 1, null]);
    }

    [Fact]
    public void The_word_length_limit_counts_code_points_not_utf16_units()
    {
        // 100 emoji are 200 UTF-16 units but 100 characters: still spelled (😀 + 99 × ##😀); 101 are [UNK].
        var tokenizer = BertWordPieceTokenizer.FromVocabulary(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "😀", "##😀"]);
        var hundred = tokenizer.Encode(string.Concat(Enumerable.Repeat("😀", 100)));
        Assert.Equal([2, 5, .. Enumerable.Repeat(6, 99), 3], hundred.Ids);
        Assert.Equal((198, 200), hundred.Offsets[100]);
        var longer = tokenizer.Encode(string.Concat(Enumerable.Repeat("😀", 101)));
        Assert.Equal([2, 1, 3], longer.Ids);
        Assert.Equal((0, 202), longer.Offsets[1]);
    }

    [Fact]
    public void Whitespace_variants_split_and_zero_width_space_joins()
    {
        // Tab, CR, LF and NBSP are whitespace (they split); the zero-width space U+200B is a format
        // character that clean_text removes, so "d\u200Be" is the word "de": d (50) + ##e (77), the
        // ##e pointing at the e after the removed character (9..10).
        const string text = "a\tb\r\nc\u00A0d\u200Be  f";
        var e = Bert.Encode(text);
        AssertTokens(e,
            [2, 47, 48, 49, 50, 77, 52, 3],
            ["[CLS]", "a", "b", "c", "d", "##e", "f", "[SEP]"],
            [(0, 0), (0, 1), (2, 3), (5, 6), (7, 8), (9, 10), (12, 13), (0, 0)],
            [null, 0, 1, 2, 3, 3, 4, null]);
    }

    [Fact]
    public void Apostrophes_and_numbers()
    {
        // The apostrophe is punctuation: don (116) ' (11) t (66). "2024" = "20" (130) + "##24" (131);
        // "12345" = 1 (38) ##2 ##3 ##4 ##5 (99 + d).
        var e = Bert.Encode("don't 2024 12345");
        AssertTokens(e,
            [2, 116, 11, 66, 130, 131, 38, 101, 102, 103, 104, 3],
            ["[CLS]", "don", "'", "t", "20", "##24", "1", "##2", "##3", "##4", "##5", "[SEP]"],
            [(0, 0), (0, 3), (3, 4), (4, 5), (6, 8), (8, 10), (11, 12), (12, 13), (13, 14), (14, 15), (15, 16), (0, 0)],
            [null, 0, 1, 2, 3, 3, 4, 4, 4, 4, 4, null]);
    }

    [Theory]
    [InlineData("")]
    [InlineData("   ")]
    [InlineData("\t\r\n\u00A0\u200B")]
    public void Empty_or_blank_text_is_just_cls_sep(string text)
    {
        var e = Bert.Encode(text);
        AssertTokens(e, [2, 3], ["[CLS]", "[SEP]"], [(0, 0), (0, 0)], [null, null]);
        Assert.Equal([1, 1], e.SpecialTokensMask);
    }

    [Fact]
    public void Special_tokens_in_the_text_are_matched_before_normalization()
    {
        // [MASK] is an added token matched in the raw text: it is not lower-cased or split at "[".
        var e = Bert.Encode("Hello [MASK] world");
        AssertTokens(e,
            [2, 110, 4, 111, 3],
            ["[CLS]", "hello", "[MASK]", "world", "[SEP]"],
            [(0, 0), (0, 5), (6, 12), (13, 18), (0, 0)],
            [null, 0, 1, 2, null]);
        Assert.Equal([1, 0, 0, 0, 1], e.SpecialTokensMask);
        // "[mask]" is not the token: it is punctuation and letters.
        Assert.Equal([2, 27, 59, 73, 91, 83, 29, 3], Bert.Encode("[mask]").Ids);
    }

    [Fact]
    public void Cased_tokenizer_keeps_case_and_accents()
    {
        // lowercase: false also means strip_accents: false (HF's default follows lowercase):
        // "Café" = Caf (134) + ##é (135); "Hello" (133) is a word; "Ñ" is not in the vocabulary.
        var e = BertCased.Encode("Café Hello Ñ");
        AssertTokens(e,
            [2, 134, 135, 133, 1, 3],
            ["[CLS]", "Caf", "##é", "Hello", "[UNK]", "[SEP]"],
            [(0, 0), (0, 3), (3, 4), (5, 10), (11, 12), (0, 0)],
            [null, 0, 0, 1, 2, null]);
        Assert.False(BertCased.Lowercase);
        Assert.False(BertCased.StripAccents);
        Assert.True(Bert.StripAccents);
    }

    [Fact]
    public void Dotted_capital_i_lowercases_like_rust()
    {
        // Lower-casing alone turns İ into "i" + U+0307 (both pointing at İ); with accents stripped
        // (the uncased default) NFD has already removed the dot, leaving "i".
        var noStrip = BertWordPieceTokenizer.FromVocabulary(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "i\u0307", "i"],
            options: new BertTokenizerOptions { StripAccents = false });
        Assert.Equal(["[CLS]", "i\u0307", "[SEP]"], noStrip.Encode("İ").Tokens);
        Assert.Equal((0, 1), noStrip.Encode("İ").Offsets[1]);
        Assert.Equal(["[CLS]", "i", "[SEP]"], Bert.Encode("İ").Tokens);
    }

    [Fact]
    public void Sentence_pair_gets_type_ids_and_sequence_ids()
    {
        // [CLS] A [SEP] B [SEP]: type ids 0 for [CLS] A [SEP], 1 for B [SEP]; the pair's offsets
        // index the pair string; word ids restart at 0 in the pair.
        var e = Bert.Encode("hello world", "don't");
        AssertTokens(e,
            [2, 110, 111, 3, 116, 11, 66, 3],
            ["[CLS]", "hello", "world", "[SEP]", "don", "'", "t", "[SEP]"],
            [(0, 0), (0, 5), (6, 11), (0, 0), (0, 3), (3, 4), (4, 5), (0, 0)],
            [null, 0, 1, null, 0, 1, 2, null]);
        Assert.Equal([0, 0, 0, 0, 1, 1, 1, 1], e.TypeIds);
        Assert.Equal([null, 0, 0, null, 1, 1, 1, null], e.SequenceIds);
        Assert.Equal(4, e.CharToToken(1, sequenceId: 1));
        Assert.Equal(5, e.CharToToken(3, sequenceId: 1));
        Assert.Equal(2, e.CharToToken(7));
        Assert.Null(e.CharToToken(5));
    }

    [Fact]
    public void Without_special_tokens_the_pair_keeps_type_id_1()
    {
        var e = Bert.Encode("hello", "world", new EncodeOptions { AddSpecialTokens = false });
        Assert.Equal([110, 111], e.Ids);
        Assert.Equal([0, 1], e.TypeIds);
        Assert.Equal([0, 1], e.SequenceIds.Select(s => s!.Value));
        Assert.Equal([0, 0], e.SpecialTokensMask);
    }

    [Fact]
    public void Decode_joins_pieces_and_cleans_up_punctuation()
    {
        // WordPiece decoder: "##" pieces glue to the previous token, others get a space; cleanup
        // then removes the space before . ? ! , of each token. [CLS]/[SEP]/[MASK] are special.
        Assert.Equal("hello, world. unaffable!", Bert.Decode([2, 110, 16, 111, 18, 117, 118, 119, 5, 3]));
        Assert.Equal("[CLS] hello [MASK] world [SEP]", Bert.Decode([2, 110, 4, 111, 3], skipSpecialTokens: false));
        Assert.Equal("hello world", Bert.Decode([110, 4, 111, 99999]));
    }

    [Fact]
    public void Vocabulary_lookups_and_special_tokens()
    {
        Assert.Equal(136, Bert.VocabSize);
        Assert.Equal(110, Bert.TokenToId("hello"));
        Assert.Null(Bert.TokenToId("goodbye"));
        Assert.Equal("##ing", Bert.IdToToken(121));
        Assert.Null(Bert.IdToToken(136));
        Assert.Equal(new SpecialToken("[PAD]", 0), Bert.Pad);
        Assert.Equal(new SpecialToken("[UNK]", 1), Bert.Unk);
        Assert.Equal(new SpecialToken("[CLS]", 2), Bert.Cls);
        Assert.Equal(new SpecialToken("[SEP]", 3), Bert.Sep);
        Assert.Equal(new SpecialToken("[MASK]", 4), Bert.Mask);
        Assert.Null(Bert.Bos);
        Assert.Null(Bert.Eos);
        Assert.Equal(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"], Bert.AddedTokens.Select(t => t.Content));
        Assert.All(Bert.AddedTokens, t => Assert.True(t.Special && !t.Normalized));
    }

    [Fact]
    public void Special_tokens_missing_from_the_vocabulary_get_ids_after_it()
    {
        var tokenizer = BertWordPieceTokenizer.FromVocabulary(["[UNK]", "a", "##b"]);
        Assert.Equal(new SpecialToken("[PAD]", 3), tokenizer.Pad);
        Assert.Equal(new SpecialToken("[UNK]", 0), tokenizer.Unk);
        Assert.Equal(new SpecialToken("[CLS]", 4), tokenizer.Cls);
        Assert.Equal(7, tokenizer.VocabSize);
        Assert.Equal([4, 1, 2, 5], tokenizer.Encode("ab").Ids);
    }
}

using MlNetFineTune.Models.Tokenizers;
using Xunit;
using static MlNetFineTune.Models.Tests.TokenizerFixtures;

namespace MlNetFineTune.Models.Tests;

/// <summary>
/// Golden cases for byte-level BPE with RoBERTa post-processing, worked out by hand: the GPT-2
/// pattern splits the text, each piece's UTF-8 bytes become bytes_to_unicode characters (space = Ġ,
/// 0x0A = Ċ, 0x80 = Ģ, 0x91 = ĳ, 0x9F = Ł, 0xA0 = ł ...), then the adjacent pair with the lowest merge
/// rank (leftmost on ties) is merged until none applies. Single-byte symbols have id 4 + byte, the
/// token of merge rank r has id 260 + r (merges.txt: r0 "Ġ t", r3 "l l", r4 "H e", r5 "He ll",
/// r6 "Hell o", r7 "Ġ w", r8 "o r", r9 "Ġw or", r10 "l d", r11 "Ġwor ld", r12 "' t", r13 "d o",
/// r14 "do n", r15 "Ã ©", r16 "Ã ¯", r17 "C a", r18 "Ca f", r19 "Caf Ã©", r20 "Ġ n", r21 "Ġn a",
/// r22 "Ġna Ã¯", r23 "v e", r24 "ĠnaÃ¯ ve", r25 "ð Ł", r26 "ðŁ ĺ", r27 "ðŁĺ Ģ", r28 "Ġ Ġ",
/// r29 "! !", r30 ". .", r31 "? ?", r32 "2 0", r33 "2 4", r34 "20 24", r35 "Ġ 1", r36 "a n",
/// r37 "ðŁ ĳ", r38 "Ċ Ċ"). Offsets of tokens starting or ending with Ġ are trimmed past it.
/// </summary>
public class ByteLevelBpeTokenizerTests
{
    [Fact]
    public void Hello_world()
    {
        // "Hello": H e l l o → (l,l) r3 → (H,e) r4 → (He,ll) r5 → (Hell,o) r6 = Hello (266).
        // " world": Ġ w o r l d → (Ġ,w) r7 → (o,r) r8 → (Ġw,or) r9 → (l,d) r10 → r11 = Ġworld (271),
        // offsets 5..11 trimmed past the Ġ to 6..11.
        var e = Roberta.Encode("Hello world");
        AssertTokens(e,
            [0, 266, 271, 2],
            ["<s>", "Hello", "Ġworld", "</s>"],
            [(0, 0), (0, 5), (6, 11), (0, 0)],
            [null, 0, 1, null]);
        Assert.Equal([0, 0, 0, 0], e.TypeIds);
        Assert.Equal([1, 0, 0, 1], e.SpecialTokensMask);
    }

    [Fact]
    public void Accented_letters_are_two_bytes_and_split_tokens_share_the_character()
    {
        // "Café" = C a f Ã © (é = C3 A9): (Ã,©) r15, (C,a) r17, (Ca,f) r18, (Caf,Ã©) r19 → CafÃ© (279).
        // " naïve" = Ġ n a Ã ¯ v e: r16 Ã¯, r20 Ġn, r21 Ġna, r22 ĠnaÃ¯, r23 ve, r24 → ĠnaÃ¯ve (284).
        // " Ñandú" = Ġ Ã ĳ a n d Ã º (Ñ = C3 91, ú = C3 BA): only (a,n) r36 applies, so Ñ and ú are
        // two byte tokens each (Ã = 4 + 0xC3 = 199, ĳ = 4 + 0x91 = 149, º = 4 + 0xBA = 190), both
        // halves pointing at the whole character. The lone Ġ is trimmed to an empty range (11..11).
        const string text = "Café naïve Ñandú";
        var e = Roberta.Encode(text);
        AssertTokens(e,
            [0, 279, 284, 36, 199, 149, 296, 104, 199, 190, 2],
            ["<s>", "CafÃ©", "ĠnaÃ¯ve", "Ġ", "Ã", "ĳ", "an", "d", "Ã", "º", "</s>"],
            [(0, 0), (0, 4), (5, 10), (11, 11), (11, 12), (11, 12), (12, 14), (14, 15), (15, 16), (15, 16), (0, 0)],
            [null, 0, 1, 2, 2, 2, 2, 2, 2, 2, null]);
        Assert.Equal("Ñ", text[11..12]);
    }

    [Fact]
    public void Emoji_bytes_merge_and_offsets_cover_the_surrogate_pair()
    {
        // 😀 = F0 9F 98 80 = ð Ł ĺ Ģ and 👍 = F0 9F 91 8D = ð Ł ĳ į: one piece ([^\s\p{L}\p{N}]+).
        // (ð,Ł) r25 at both places, then (ðŁ,ĺ) r26, (ðŁĺ,Ģ) r27 → ðŁĺĢ (287); (ðŁ,ĳ) r37 → ðŁĳ (297);
        // į (4 + 0x8D = 145) stays alone. Both 👍 tokens point at its two UTF-16 units (2..4).
        var e = Roberta.Encode("😀👍 ok");
        AssertTokens(e,
            [0, 287, 297, 145, 36, 115, 111, 2],
            ["<s>", "ðŁĺĢ", "ðŁĳ", "į", "Ġ", "o", "k", "</s>"],
            [(0, 0), (0, 2), (2, 4), (2, 4), (5, 5), (5, 6), (6, 7), (0, 0)],
            [null, 0, 0, 0, 1, 1, 1, null]);
    }

    [Fact]
    public void Zero_width_joiner_sequences_keep_their_joiners()
    {
        // 👨‍👩‍👧 = 👨 ZWJ 👩 ZWJ 👧, one piece of 18 bytes; each emoji is F0 9F 91 xx → ðŁĳ (297) + the
        // last byte (¨ = 4 + 0xA8, © = 4 + 0xA9, § = 4 + 0xA7); each ZWJ is E2 80 8D = â Ģ į, no merges.
        var e = Roberta.Encode("👨\u200D👩\u200D👧", options: new EncodeOptions { AddSpecialTokens = false });
        AssertTokens(e,
            [297, 172, 230, 132, 145, 297, 173, 230, 132, 145, 297, 171],
            ["ðŁĳ", "¨", "â", "Ģ", "į", "ðŁĳ", "©", "â", "Ģ", "į", "ðŁĳ", "§"],
            [(0, 2), (0, 2), (2, 3), (2, 3), (2, 3), (3, 5), (3, 5), (5, 6), (5, 6), (5, 6), (6, 8), (6, 8)],
            [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    }

    [Fact]
    public void Punctuation_run_merges_lowest_rank_leftmost_first()
    {
        // "!!!...??" is one piece. (!,!) r29 merges at position 0 first, which leaves the third ! alone;
        // (.,.) r30 likewise; (?,?) r31. ! = 4 + 0x21 = 37, . = 4 + 0x2E = 50.
        var e = Roberta.Encode("Hello!!!...??");
        AssertTokens(e,
            [0, 266, 289, 37, 290, 50, 291, 2],
            ["<s>", "Hello", "!!", "!", "..", ".", "??", "</s>"],
            [(0, 0), (0, 5), (5, 7), (7, 8), (8, 10), (10, 11), (11, 13), (0, 0)],
            [null, 0, 1, 1, 1, 1, 1, null]);
    }

    [Fact]
    public void Contractions_and_numbers()
    {
        // "don't" → "don" + "'t" (the 't alternative); (d,o) r13, (do,n) r14 = don (274); (',t) r12 = 't (272).
        // "2024": (2,0) r32, (2,4) r33, (20,24) r34 = 2024 (294). " 12345": (Ġ,1) r35 = Ġ1 (295), then
        // the digits alone (4 + '2' = 54 ...); Ġ1 is trimmed to the digit (6..7).
        var e = Roberta.Encode("don't 2024 12345");
        AssertTokens(e,
            [0, 274, 272, 36, 294, 295, 54, 55, 56, 57, 2],
            ["<s>", "don", "'t", "Ġ", "2024", "Ġ1", "2", "3", "4", "5", "</s>"],
            [(0, 0), (0, 3), (3, 5), (6, 6), (6, 10), (11, 12), (12, 13), (13, 14), (14, 15), (15, 16), (0, 0)],
            [null, 0, 1, 2, 2, 3, 3, 3, 3, 3, null]);
    }

    [Fact]
    public void Whitespace_runs_follow_the_gpt2_pattern()
    {
        // Pieces: "a" "\t" "b" " " " c" "\r\n" "\n" "d" NBSP "e" ZWSP "f" "   ". A run of spaces before a
        // word gives all but its last character to \s+(?!\S) (" " at 3), the last one leads " c"; a
        // single tab or NBSP before a letter is \s+ alone; the final run is kept whole and merges
        // (Ġ,Ġ) r28 → ĠĠ Ġ. NBSP = C2 A0 = Â ł; ZWSP = E2 80 8B = â Ģ ĭ (not whitespace: a format char).
        // Tokens of spaces only are trimmed to empty ranges at their end.
        const string text = "a\tb  c\r\n\nd\u00A0e\u200Bf   ";
        var e = Roberta.Encode(text);
        AssertTokens(e,
            [0, 101, 13, 102, 36, 36, 103, 17, 14, 14, 104, 198, 164, 105, 230, 132, 143, 106, 288, 36, 2],
            ["<s>", "a", "ĉ", "b", "Ġ", "Ġ", "c", "č", "Ċ", "Ċ", "d", "Â", "ł", "e", "â", "Ģ", "ĭ", "f", "ĠĠ", "Ġ", "</s>"],
            [(0, 0), (0, 1), (1, 2), (2, 3), (4, 4), (5, 5), (5, 6), (6, 7), (7, 8), (8, 9), (9, 10), (10, 11), (10, 11),
                (11, 12), (12, 13), (12, 13), (12, 13), (13, 14), (16, 16), (17, 17), (0, 0)],
            [null, 0, 1, 2, 3, 4, 4, 5, 5, 6, 7, 8, 8, 9, 10, 10, 10, 11, 12, 12, null]);
    }

    [Fact]
    public void Letters_outside_the_bmp_are_letters()
    {
        // 𝐀 (U+1D400) is \p{L}: "a𝐀b" is one piece, as with HF's Oniguruma pattern (a .NET Regex
        // over UTF-16 would cut it in three). The 4 bytes F0 9D 90 80 have no merges.
        var e = Roberta.Encode("a\U0001D400b", options: new EncodeOptions { AddSpecialTokens = false });
        Assert.Equal(["a", "ð", "Ŀ", "Ĳ", "Ģ", "b"], e.Tokens);
        Assert.Equal([0, 0, 0, 0, 0, 0], e.WordIds);
        Assert.Equal([(0, 1), (1, 3), (1, 3), (1, 3), (1, 3), (3, 4)], e.Offsets);
    }

    [Theory]
    [InlineData("")]
    [InlineData("   ")]
    public void Empty_and_blank_text(string text)
    {
        // "   " is one piece ĠĠĠ → (Ġ,Ġ) r28 → ĠĠ (0..2) + Ġ (2..3), trimmed to (2,2) and (3,3).
        var e = Roberta.Encode(text);
        if (text.Length == 0)
        {
            AssertTokens(e, [0, 2], ["<s>", "</s>"], [(0, 0), (0, 0)], [null, null]);
        }
        else
        {
            AssertTokens(e, [0, 288, 36, 2], ["<s>", "ĠĠ", "Ġ", "</s>"], [(0, 0), (2, 2), (3, 3), (0, 0)], [null, 0, 0, null]);
        }
    }

    [Fact]
    public void Mask_token_swallows_the_space_on_its_left()
    {
        // <mask> (299) is an added token with lstrip: it takes the space before it, so its token text is
        // " <mask>" over 5..12, which RoBERTa's offset trimming moves to 6..12.
        var e = Roberta.Encode("Hello <mask>!");
        AssertTokens(e,
            [0, 266, 299, 37, 2],
            ["<s>", "Hello", " <mask>", "!", "</s>"],
            [(0, 0), (0, 5), (6, 12), (12, 13), (0, 0)],
            [null, 0, 1, 2, null]);
        Assert.Equal([1, 0, 0, 0, 1], e.SpecialTokensMask);
    }

    [Fact]
    public void Add_prefix_space_spells_the_first_word_like_the_others()
    {
        // " Hello" → Ġ + Hello (no merge joins Ġ and H); the added space points at "H" and, being the
        // one add_prefix_space made, is not trimmed away but shrinks to (0,0). " world" as before.
        var e = RobertaPrefixSpace.Encode("Hello world");
        AssertTokens(e,
            [0, 36, 266, 271, 2],
            ["<s>", "Ġ", "Hello", "Ġworld", "</s>"],
            [(0, 0), (0, 0), (0, 5), (6, 11), (0, 0)],
            [null, 0, 0, 1, null]);
        Assert.True(RobertaPrefixSpace.AddPrefixSpace);
        Assert.False(Roberta.AddPrefixSpace);
    }

    [Fact]
    public void Add_prefix_space_after_an_added_token_is_trimmed_like_any_space()
    {
        // HF puts the prefix space before every piece of text between added tokens. After <mask> the
        // space (aligned to "w") is not the first token's, so trimming moves the start past one
        // character: HF reports 7..11 ("orld") for Ġworld here, and so do we.
        var e = RobertaPrefixSpace.Encode("<mask>world");
        AssertTokens(e, [0, 299, 271, 2], ["<s>", "<mask>", "Ġworld", "</s>"], [(0, 0), (0, 6), (7, 11), (0, 0)], [null, 0, 1, null]);
    }

    [Fact]
    public void Sentence_pair_is_s_a_ss_b_s_with_type_ids_0()
    {
        var e = Roberta.Encode("Hello world", "don't");
        AssertTokens(e,
            [0, 266, 271, 2, 2, 274, 272, 2],
            ["<s>", "Hello", "Ġworld", "</s>", "</s>", "don", "'t", "</s>"],
            [(0, 0), (0, 5), (6, 11), (0, 0), (0, 0), (0, 3), (3, 5), (0, 0)],
            [null, 0, 1, null, null, 0, 1, null]);
        Assert.Equal(new int[8], e.TypeIds);
        Assert.Equal([null, 0, 0, null, null, 1, 1, null], e.SequenceIds);
    }

    [Fact]
    public void Gpt2_options_add_nothing_and_give_the_pair_type_id_1()
    {
        var gpt2 = ByteLevelBpeTokenizer.FromVocabAndMerges(RobertaVocab, RobertaMerges, ByteLevelBpeOptions.Gpt2);
        var e = gpt2.Encode("Hello world", "don't");
        Assert.Equal([266, 271, 274, 272], e.Ids);
        Assert.Equal([0, 0, 1, 1], e.TypeIds);
        // Without offset trimming Ġworld keeps its space.
        Assert.Equal((5, 11), e.Offsets[1]);
        Assert.Null(gpt2.Pad);
        Assert.Equal(new SpecialToken("<|endoftext|>", 300), gpt2.Eos);
        Assert.Equal(301, gpt2.VocabSize);
    }

    [Fact]
    public void Decode_restores_the_bytes()
    {
        Assert.Equal("Hello world", Roberta.Decode([0, 266, 271, 2]));
        Assert.Equal("<s>Hello<mask>!</s>", Roberta.Decode([0, 266, 299, 37, 2], skipSpecialTokens: false));
        // Half an emoji (ðŁ) is not valid UTF-8: one replacement character, as Rust's from_utf8_lossy.
        Assert.Equal("\uFFFD ok", Roberta.Decode([285, 36, 115, 111]));
        var text = "Café 😀👍 naïve\t👨\u200D👩\u200D👧 Ñandú!!";
        Assert.Equal(text, Roberta.Decode(Roberta.Encode(text).Ids));
    }

    [Fact]
    public void Vocabulary_and_special_tokens()
    {
        Assert.Equal(300, Roberta.VocabSize);
        Assert.Equal(39, Roberta.MergeCount);
        Assert.Equal(271, Roberta.TokenToId("Ġworld"));
        Assert.Equal("Ġ", Roberta.IdToToken(36));
        Assert.Equal(new SpecialToken("<s>", 0), Roberta.Bos);
        Assert.Equal(new SpecialToken("<s>", 0), Roberta.Cls);
        Assert.Equal(new SpecialToken("</s>", 2), Roberta.Eos);
        Assert.Equal(new SpecialToken("</s>", 2), Roberta.Sep);
        Assert.Equal(new SpecialToken("<pad>", 1), Roberta.Pad);
        Assert.Equal(new SpecialToken("<unk>", 3), Roberta.Unk);
        Assert.Equal(new SpecialToken("<mask>", 299), Roberta.Mask);
        Assert.True(Roberta.AddedTokens.Single(t => t.Content == "<mask>").LStrip);
    }

    [Fact]
    public void Repeated_words_come_from_the_cache_unchanged()
    {
        var first = Roberta.Encode("Hello Hello Hello world world");
        var second = Roberta.Encode("Hello Hello Hello world world");
        AssertSameEncoding(first, second);
        Assert.Equal([0, 266, 36, 266, 36, 266, 271, 271, 2], first.Ids);
    }
}

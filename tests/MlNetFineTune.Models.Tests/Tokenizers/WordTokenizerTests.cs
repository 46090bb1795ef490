using MlNetFineTune.Models.Tokenizers;
using Xunit;
using static MlNetFineTune.Models.Tests.TokenizerFixtures;

namespace MlNetFineTune.Models.Tests;

/// <summary>
/// The GloVe-style word tokenizer: lower-case, split on whitespace and punctuation (each punctuation
/// character a token), one id per word of glove/words.txt (id = line index), &lt;unk&gt; (16) otherwise.
/// </summary>
public class WordTokenizerTests
{
    [Fact]
    public void Words_punctuation_and_unknown_words()
    {
        // hello 3 , 1 world 4 ! 5 don 6 ' 7 t 8 panic → <unk> 16, . 2, café 9 (accents kept), 我 11.
        const string text = "Hello, World! Don't panic. Café 我";
        var e = Glove.Encode(text);
        AssertTokens(e,
            [3, 1, 4, 5, 6, 7, 8, 16, 2, 9, 11],
            ["hello", ",", "world", "!", "don", "'", "t", "<unk>", ".", "café", "我"],
            [(0, 5), (5, 6), (7, 12), (12, 13), (14, 17), (17, 18), (18, 19), (20, 25), (25, 26), (27, 31), (32, 33)],
            [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
        Assert.Equal("panic", text[20..25]);
        Assert.All(e.SpecialTokensMask, m => Assert.Equal(0, m));
    }

    [Fact]
    public void Max_length_truncates_and_pads_with_the_pad_id()
    {
        var options = new EncodeOptions { MaxLength = 4, Padding = PaddingStrategy.MaxLength };
        Assert.Equal([3, 4, 5, 13], Glove.Encode("hello world! a test", options: options).Ids);
        var padded = Glove.Encode("hello", options: options);
        Assert.Equal([3, 15, 15, 15], padded.Ids);
        Assert.Equal([1, 0, 0, 0], padded.AttentionMask);
        Assert.Equal([0, 1, 1, 1], padded.SpecialTokensMask);
        Assert.Equal([0, null, null, null], padded.WordIds);
        Assert.Equal(["hello", "<pad>", "<pad>", "<pad>"], padded.Tokens);
    }

    [Fact]
    public void Missing_unk_and_pad_are_appended_after_the_words()
    {
        var tokenizer = new WordTokenizer(["the", "cat"]);
        Assert.Equal(new SpecialToken("<unk>", 2), tokenizer.Unk);
        Assert.Equal(new SpecialToken("<pad>", 3), tokenizer.Pad);
        Assert.Equal(4, tokenizer.VocabSize);
        Assert.Equal([0, 1, 2], tokenizer.Encode("The CAT sat").Ids);
        Assert.Equal("the cat", tokenizer.Decode([0, 1, 3, 2]));
    }

    [Fact]
    public void Case_sensitive_word_list()
    {
        var tokenizer = new WordTokenizer(["The", "the"], new WordTokenizerOptions { Lowercase = false, PadToken = null });
        Assert.Equal([0, 1, 2], tokenizer.Encode("The the THE").Ids);
        Assert.Null(tokenizer.Pad);
        Assert.Throws<InvalidOperationException>(() =>
            tokenizer.Encode("The", options: new EncodeOptions { MaxLength = 3, Padding = PaddingStrategy.MaxLength }));
    }

    [Fact]
    public void Vector_file_lines_contribute_their_first_field()
    {
        using var dir = NewTempDirectory();
        string path = dir.File("vectors.txt", "the 0.1 0.2\nhello -0.3 0.4\n");
        var tokenizer = WordTokenizer.FromWordListFile(path);
        Assert.Equal([0, 1, 2], tokenizer.Encode("the hello you").Ids);
    }

    [Fact]
    public void Pair_gets_type_ids_0_and_1_and_no_special_tokens()
    {
        var e = Glove.Encode("hello world", "a test");
        Assert.Equal([3, 4, 13, 14], e.Ids);
        Assert.Equal([0, 0, 1, 1], e.TypeIds);
        Assert.Equal([0, 0, 1, 1], e.SequenceIds.Select(s => s!.Value));
        Assert.Equal([(0, 5), (6, 11), (0, 1), (2, 6)], e.Offsets);
    }

    [Fact]
    public void Save_and_reload_word_list()
    {
        using var dir = NewTempDirectory();
        string path = dir.File("words.txt");
        Glove.SaveWordListFile(path);
        var reloaded = WordTokenizer.FromWordListFile(path);
        Assert.Equal(Glove.VocabSize, reloaded.VocabSize);
        AssertSameEncoding(Glove.Encode("Hello, world! Café"), reloaded.Encode("Hello, world! Café"));
    }
}

using MlNetFineTune.Models.Tokenizers;
using Xunit;
using static MlNetFineTune.Models.Tests.TokenizerFixtures;

namespace MlNetFineTune.Models.Tests;

/// <summary>Broken tokenizer files give exceptions that name the file and the line or JSON field at fault.</summary>
public class TokenizerMalformedInputTests
{
    private static TokenizerFormatException AssertFormatError(string path, Action load)
    {
        var e = Assert.Throws<TokenizerFormatException>(load);
        Assert.Equal(path, e.FilePath);
        Assert.StartsWith(path, e.Message, StringComparison.Ordinal);
        return e;
    }

    [Fact]
    public void Missing_files_name_the_path()
    {
        using var dir = NewTempDirectory();
        string missing = dir.File("missing.txt");
        foreach (Action load in new Action[]
        {
            () => BertWordPieceTokenizer.FromVocabFile(missing),
            () => ByteLevelBpeTokenizer.FromVocabAndMerges(missing, RobertaMerges),
            () => ByteLevelBpeTokenizer.FromVocabAndMerges(RobertaVocab, missing),
            () => Tokenizer.FromTokenizerJson(missing),
            () => WordTokenizer.FromWordListFile(missing),
        })
        {
            var e = Assert.Throws<FileNotFoundException>(load);
            Assert.Equal(missing, e.FileName);
            Assert.Contains(missing, e.Message, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void Vocab_json_that_is_not_an_object()
    {
        using var dir = NewTempDirectory();
        string path = dir.File("vocab.json", "[\"a\", \"b\"]");
        var e = AssertFormatError(path, () => ByteLevelBpeTokenizer.FromVocabAndMerges(path, RobertaMerges));
        Assert.Equal("$", e.Field);
        Assert.Contains("JSON object", e.Message, StringComparison.Ordinal);
        Assert.Contains("an array", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Vocab_json_with_a_bad_id_or_bad_syntax()
    {
        using var dir = NewTempDirectory();
        string badId = dir.File("vocab.json", "{\"a\": 0, \"b\": \"one\"}");
        var e = AssertFormatError(badId, () => ByteLevelBpeTokenizer.FromVocabAndMerges(badId, RobertaMerges));
        Assert.Equal("$[\"b\"]", e.Field);
        Assert.Contains("non-negative integer", e.Message, StringComparison.Ordinal);

        string syntax = dir.File("broken.json", "{\n  \"a\": 0,\n  \"b\": \n");
        var s = AssertFormatError(syntax, () => ByteLevelBpeTokenizer.FromVocabAndMerges(syntax, RobertaMerges));
        Assert.NotNull(s.LineNumber);
        Assert.Contains("not valid JSON", s.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Merges_line_with_one_token()
    {
        using var dir = NewTempDirectory();
        string merges = dir.File("merges.txt", "#version: 0.2\nĠ t\nhe\n");
        var e = AssertFormatError(merges, () => ByteLevelBpeTokenizer.FromVocabAndMerges(RobertaVocab, merges));
        Assert.Equal(3, e.LineNumber);
        Assert.Contains(", line 3:", e.Message, StringComparison.Ordinal);
        Assert.Contains("found 1 part(s): \"he\"", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Merges_line_with_a_token_missing_from_the_vocabulary()
    {
        using var dir = NewTempDirectory();
        string merges = dir.File("merges.txt", "#version: 0.2\nĠ t\nq zz\n");
        var e = AssertFormatError(merges, () => ByteLevelBpeTokenizer.FromVocabAndMerges(RobertaVocab, merges));
        Assert.Equal(3, e.LineNumber);
        Assert.Contains("'zz'", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Tokenizer_json_with_an_unknown_model_type()
    {
        using var dir = NewTempDirectory();
        string path = dir.File("tokenizer.json", "{\"model\": {\"type\": \"Unigram\", \"vocab\": []}}");
        var e = AssertFormatError(path, () => Tokenizer.FromTokenizerJson(path));
        Assert.Equal("model.type", e.Field);
        Assert.Contains("'Unigram'", e.Message, StringComparison.Ordinal);
        Assert.Contains("field 'model.type'", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("{}", "model")]
    [InlineData("{\"model\": {\"type\": 3}}", "model.type")]
    [InlineData("{\"added_tokens\": [{\"id\": -1, \"content\": \"x\"}], \"model\": {\"type\": \"WordPiece\", \"vocab\": {}}}", "added_tokens[0].id")]
    [InlineData("{\"normalizer\": {\"type\": \"NFC\"}, \"model\": {\"type\": \"WordPiece\", \"vocab\": {}}}", "normalizer.type")]
    [InlineData("{\"model\": {\"type\": \"WordPiece\", \"vocab\": {\"a\": 1.5}}}", "model.vocab[\"a\"]")]
    [InlineData("{\"post_processor\": {\"type\": \"TemplateProcessing\", \"single\": [{\"SpecialToken\": {\"id\": \"[CLS]\"}}], \"pair\": [], \"special_tokens\": {}}, \"model\": {\"type\": \"WordPiece\", \"vocab\": {}}}",
        "post_processor.single[0].SpecialToken.id")]
    [InlineData("{\"pre_tokenizer\": {\"type\": \"ByteLevel\"}, \"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [\"a\"]}}", "model.merges[0]")]
    [InlineData("{\"pre_tokenizer\": {\"type\": \"ByteLevel\"}, \"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [\"a b\"]}}", "model.merges[0]")]
    [InlineData("{\"pre_tokenizer\": {\"type\": \"Metaspace\"}, \"model\": {\"type\": \"BPE\", \"vocab\": {}, \"merges\": []}}", "pre_tokenizer.type")]
    [InlineData("{\"decoder\": {\"type\": \"Metaspace\"}, \"model\": {\"type\": \"WordPiece\", \"vocab\": {}}}", "decoder.type")]
    public void Tokenizer_json_errors_name_the_field(string content, string field)
    {
        using var dir = NewTempDirectory();
        string path = dir.File("tokenizer.json", content);
        var e = AssertFormatError(path, () => Tokenizer.FromTokenizerJson(path));
        Assert.Equal(field, e.Field);
    }

    [Fact]
    public void Loading_a_bpe_file_as_bert_names_the_model_type()
    {
        var e = AssertFormatError(RobertaJson, () => BertWordPieceTokenizer.FromTokenizerJson(RobertaJson));
        Assert.Equal("model.type", e.Field);
        Assert.Contains("WordPiece", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Word_list_with_an_empty_line()
    {
        using var dir = NewTempDirectory();
        string path = dir.File("words.txt", "the\n\nhello\n");
        var e = AssertFormatError(path, () => WordTokenizer.FromWordListFile(path));
        Assert.Equal(2, e.LineNumber);
    }

    [Fact]
    public void Wordpiece_without_its_unknown_token_says_so_when_it_needs_it()
    {
        var tokenizer = BertWordPieceTokenizer.FromVocabulary(["[PAD]", "[CLS]", "[SEP]", "a"], options: new BertTokenizerOptions { UnkToken = "[UNK]" });
        Assert.Equal([1, 3, 2], tokenizer.Encode("a").Ids);
        // [UNK] was added as a special token after the vocabulary, but WordPiece itself lacks it.
        var e = Assert.Throws<InvalidOperationException>(() => tokenizer.Encode("b"));
        Assert.Contains("[UNK]", e.Message, StringComparison.Ordinal);
    }
}

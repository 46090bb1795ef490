using System.Text.Json;
using MlNetFineTune.Models.Tokenizers;
using Xunit;
using static MlNetFineTune.Models.Tests.TokenizerFixtures;

namespace MlNetFineTune.Models.Tests;

/// <summary>
/// Loading from vocabulary files and from tokenizer.json (the fixtures' tokenizer.json files were
/// written by Hugging Face tokenizers itself), saving tokenizer.json, and round trips.
/// </summary>
public class TokenizerSerializationTests
{
    private static readonly string[] Texts =
    [
        "", "Hello, World!", "Café naïve Ñandú", "我爱北京天安门 in Beijing", "smile 😀!👨\u200D👩\u200D👧",
        "don't 2024 12345", "a\tb\r\nc\u00A0d\u200Be  f", "Hello <mask> [MASK] world", "   ", "unaffable playing",
    ];

    private static void AssertEncodeAlike(ITokenizer expected, ITokenizer actual)
    {
        Assert.Equal(expected.VocabSize, actual.VocabSize);
        Assert.Equal(expected.Pad, actual.Pad);
        Assert.Equal(expected.Unk, actual.Unk);
        Assert.Equal(expected.Cls, actual.Cls);
        Assert.Equal(expected.Sep, actual.Sep);
        Assert.Equal(expected.Mask, actual.Mask);
        Assert.Equal(expected.Bos, actual.Bos);
        Assert.Equal(expected.Eos, actual.Eos);
        Assert.Equal(expected.AddedTokens.OrderBy(t => t.Id), actual.AddedTokens.OrderBy(t => t.Id));
        foreach (string text in Texts)
        {
            AssertSameEncoding(expected.Encode(text), actual.Encode(text));
            AssertSameEncoding(expected.Encode(text, "don't stop"), actual.Encode(text, "don't stop"));
            var ids = expected.Encode(text).Ids;
            Assert.Equal(expected.Decode(ids), actual.Decode(ids));
            Assert.Equal(expected.Decode(ids, skipSpecialTokens: false), actual.Decode(ids, skipSpecialTokens: false));
        }
    }

    [Fact]
    public void Bert_from_vocab_txt_matches_hugging_faces_tokenizer_json()
    {
        var fromJson = BertWordPieceTokenizer.FromTokenizerJson(BertJson);
        AssertEncodeAlike(Bert, fromJson);
        Assert.True(fromJson.Lowercase);
        Assert.IsType<BertWordPieceTokenizer>(Tokenizer.FromTokenizerJson(BertJson));
    }

    [Fact]
    public void Roberta_from_vocab_and_merges_matches_hugging_faces_tokenizer_json()
    {
        var fromJson = ByteLevelBpeTokenizer.FromTokenizerJson(RobertaJson);
        AssertEncodeAlike(Roberta, fromJson);
        Assert.Equal(39, fromJson.MergeCount);
        Assert.IsType<ByteLevelBpeTokenizer>(Tokenizer.FromTokenizerJson(RobertaJson));
    }

    [Fact]
    public void Bert_round_trip_through_tokenizer_json()
    {
        using var dir = NewTempDirectory();
        var original = BertWordPieceTokenizer.FromVocabFile(BertVocab, lowercase: false,
            new BertTokenizerOptions { StripAccents = true, MaxInputCharsPerWord = 12 });
        original.DefaultEncodeOptions = new EncodeOptions { MaxLength = 9, Padding = PaddingStrategy.MaxLength };
        string path = dir.File("tokenizer.json");
        original.SaveTokenizerJson(path);
        var reloaded = BertWordPieceTokenizer.FromTokenizerJson(path);
        AssertEncodeAlike(original, reloaded);
        Assert.Equal(original.DefaultEncodeOptions, reloaded.DefaultEncodeOptions);
        Assert.Equal(12, reloaded.MaxInputCharsPerWord);
        Assert.True(reloaded.StripAccents);
        Assert.False(reloaded.Lowercase);

        string again = dir.File("again.json");
        reloaded.SaveTokenizerJson(again);
        Assert.Equal(File.ReadAllText(path), File.ReadAllText(again));

        using var json = JsonDocument.Parse(File.ReadAllText(path));
        var root = json.RootElement;
        Assert.Equal("WordPiece", root.GetProperty("model").GetProperty("type").GetString());
        Assert.Equal(110, root.GetProperty("model").GetProperty("vocab").GetProperty("hello").GetInt32());
        Assert.Equal("BertNormalizer", root.GetProperty("normalizer").GetProperty("type").GetString());
        Assert.Equal("BertPreTokenizer", root.GetProperty("pre_tokenizer").GetProperty("type").GetString());
        Assert.Equal("BertProcessing", root.GetProperty("post_processor").GetProperty("type").GetString());
        Assert.Equal("[PAD]", root.GetProperty("added_tokens")[0].GetProperty("content").GetString());
        Assert.Equal(9, root.GetProperty("truncation").GetProperty("max_length").GetInt32());
        Assert.Equal(9, root.GetProperty("padding").GetProperty("strategy").GetProperty("Fixed").GetInt32());
    }

    [Fact]
    public void Roberta_round_trip_through_tokenizer_json()
    {
        using var dir = NewTempDirectory();
        foreach (var options in new[] { new ByteLevelBpeOptions(), new ByteLevelBpeOptions { AddPrefixSpace = true }, ByteLevelBpeOptions.Gpt2 })
        {
            var original = ByteLevelBpeTokenizer.FromVocabAndMerges(RobertaVocab, RobertaMerges, options);
            string path = dir.File("tokenizer.json");
            original.SaveTokenizerJson(path);
            var reloaded = Tokenizer.FromTokenizerJson(path);
            Assert.IsType<ByteLevelBpeTokenizer>(reloaded);
            AssertEncodeAlike(original, reloaded);
        }
    }

    [Fact]
    public void Word_tokenizer_round_trip_through_tokenizer_json()
    {
        using var dir = NewTempDirectory();
        string path = dir.File("tokenizer.json");
        Glove.SaveTokenizerJson(path);
        var reloaded = Tokenizer.FromTokenizerJson(path);
        Assert.IsType<WordTokenizer>(reloaded);
        AssertEncodeAlike(Glove, reloaded);
    }

    [Fact]
    public void Merges_written_as_strings_load_too()
    {
        // HF 0.23 (the fixture) writes merges as ["a", "b"] pairs; older versions wrote "a b" strings.
        using var dir = NewTempDirectory();
        var json = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(RobertaJson))!;
        var strings = new System.Text.Json.Nodes.JsonArray();
        foreach (var merge in json["model"]!["merges"]!.AsArray())
        {
            strings.Add($"{merge![0]!.GetValue<string>()} {merge[1]!.GetValue<string>()}");
        }
        json["model"]!["merges"] = strings;
        string path = dir.File("tokenizer.json", json.ToJsonString());
        AssertEncodeAlike(Roberta, ByteLevelBpeTokenizer.FromTokenizerJson(path));
    }

    [Fact]
    public void Vocab_txt_round_trip()
    {
        using var dir = NewTempDirectory();
        string path = dir.File("vocab.txt");
        Bert.SaveVocabFile(path);
        Assert.Equal(File.ReadAllLines(BertVocab), File.ReadAllLines(path));
    }
}

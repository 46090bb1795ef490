using MlNetFineTune.Models.Tokenizers;
using Xunit;

namespace MlNetFineTune.Models.Tests;

/// <summary>
/// The hand-made vocabularies in fixtures/tokenizers (see generate-fixtures.js there) and helpers.
/// bert-uncased/vocab.txt ids: 0 [PAD], 1 [UNK], 2 [CLS], 3 [SEP], 4 [MASK]; 5..36 the ASCII
/// punctuation in code order (! = 5, ' = 11, , = 16, . = 18, ? = 25); digit d = 37 + d; letter
/// x = 47 + (x - 'a'); "##x" = 73 + (x - 'a'); "##d" = 99 + d; then 109 the, 110 hello, 111 world,
/// 112 cafe, 113 naive, 114 nan, 115 ##du, 116 don, 117 un, 118 ##aff, 119 ##able, 120 play,
/// 121 ##ing, 122..128 我 爱 北 京 天 安 门, 129 ¿, 130 20, 131 ##24, 132 😀, 133 Hello, 134 Caf, 135 ##é.
/// roberta/vocab.json ids: 0 &lt;s&gt;, 1 &lt;pad&gt;, 2 &lt;/s&gt;, 3 &lt;unk&gt;; the symbol of byte b is
/// 4 + b; the token made by merge rank r (line r + 2 of merges.txt) is 260 + r; 299 &lt;mask&gt;.
/// glove/words.txt: id = line index (the 0, hello 3, world 4, ... &lt;pad&gt; 15, &lt;unk&gt; 16).
/// </summary>
internal static class TokenizerFixtures
{
    public static string Dir { get; } = Path.Combine(AppContext.BaseDirectory, "fixtures", "tokenizers");

    public static string BertVocab { get; } = Path.Combine(Dir, "bert-uncased", "vocab.txt");

    public static string BertJson { get; } = Path.Combine(Dir, "bert-uncased", "tokenizer.json");

    public static string RobertaVocab { get; } = Path.Combine(Dir, "roberta", "vocab.json");

    public static string RobertaMerges { get; } = Path.Combine(Dir, "roberta", "merges.txt");

    public static string RobertaJson { get; } = Path.Combine(Dir, "roberta", "tokenizer.json");

    public static string GloveWords { get; } = Path.Combine(Dir, "glove", "words.txt");

    private static readonly Lazy<BertWordPieceTokenizer> LazyBert = new(() => BertWordPieceTokenizer.FromVocabFile(BertVocab));
    private static readonly Lazy<BertWordPieceTokenizer> LazyBertCased = new(() => BertWordPieceTokenizer.FromVocabFile(BertVocab, lowercase: false));
    private static readonly Lazy<ByteLevelBpeTokenizer> LazyRoberta = new(() => ByteLevelBpeTokenizer.FromVocabAndMerges(RobertaVocab, RobertaMerges));
    private static readonly Lazy<ByteLevelBpeTokenizer> LazyRobertaPrefix = new(() =>
        ByteLevelBpeTokenizer.FromVocabAndMerges(RobertaVocab, RobertaMerges, new ByteLevelBpeOptions { AddPrefixSpace = true }));
    private static readonly Lazy<WordTokenizer> LazyGlove = new(() => WordTokenizer.FromWordListFile(GloveWords));

    public static BertWordPieceTokenizer Bert => LazyBert.Value;

    public static BertWordPieceTokenizer BertCased => LazyBertCased.Value;

    public static ByteLevelBpeTokenizer Roberta => LazyRoberta.Value;

    public static ByteLevelBpeTokenizer RobertaPrefixSpace => LazyRobertaPrefix.Value;

    public static WordTokenizer Glove => LazyGlove.Value;

    /// <summary>A fresh directory under the temp folder, removed by the caller's <c>using</c>.</summary>
    public static TempDirectory NewTempDirectory() => new();

    public static void AssertTokens(Encoding e, int[] ids, string[] tokens, (int, int)[] offsets, int?[] wordIds)
    {
        Assert.Equal(tokens, e.Tokens);
        Assert.Equal(ids, e.Ids);
        Assert.Equal(offsets, e.Offsets.Select(o => (o.Start, o.End)));
        Assert.Equal(wordIds, e.WordIds);
        Assert.Equal(e.Length, e.TypeIds.Count);
        Assert.Equal(e.Length, e.AttentionMask.Count);
        Assert.Equal(e.Length, e.SpecialTokensMask.Count);
        Assert.Equal(e.Length, e.SequenceIds.Count);
    }

    /// <summary>Every list of two encodings, element by element.</summary>
    public static void AssertSameEncoding(Encoding expected, Encoding actual)
    {
        Assert.Equal(expected.Ids, actual.Ids);
        Assert.Equal(expected.Tokens, actual.Tokens);
        Assert.Equal(expected.TypeIds, actual.TypeIds);
        Assert.Equal(expected.AttentionMask, actual.AttentionMask);
        Assert.Equal(expected.SpecialTokensMask, actual.SpecialTokensMask);
        Assert.Equal(expected.Offsets, actual.Offsets);
        Assert.Equal(expected.WordIds, actual.WordIds);
        Assert.Equal(expected.SequenceIds, actual.SequenceIds);
    }

    internal sealed class TempDirectory : IDisposable
    {
        public TempDirectory()
        {
            Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "mlft-tokenizers-" + Guid.NewGuid().ToString("N"));
            Directory.CreateDirectory(Path);
        }

        public string Path { get; }

        public string File(string name, string? content = null)
        {
            string path = System.IO.Path.Combine(Path, name);
            if (content is not null)
            {
                System.IO.File.WriteAllText(path, content);
            }
            return path;
        }

        public void Dispose()
        {
            try
            {
                Directory.Delete(Path, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }
}

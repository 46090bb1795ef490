using MlNetFineTune.Baselines;
using Xunit;

namespace MlNetFineTune.Tests.Baselines;

// Reference values from scikit-learn 1.2.1 (Debian's python3-sklearn):
// TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=...) on the documents below.
public class TfidfVectorizerTests
{
    private static readonly string[] Docs =
    [
        "The movie was great, GREAT fun.", "the movie was bad", "Great acting; bad plot!", "the plot was great", "a b c_d 42 x",
    ];

    [Fact]
    public void Tokenize_follows_scikit_learns_default_token_pattern()
    {
        // (?u)\b\w\w+\b after lower-casing: runs of 2+ letters, digits or underscores; single characters are dropped.
        Assert.Equal(["hello", "world", "b_c", "12", "x1", "don", "well", "made"],
            TfidfVectorizer.Tokenize("Hello, World! a b_c 12 x1 don't well-made"));
        Assert.Equal(["über", "naïve", "café", "日本語"], TfidfVectorizer.Tokenize("ÜBER naïve Café ü 日本語"));
        Assert.Equal(["Mixed", "Case"], TfidfVectorizer.Tokenize("Mixed Case", lowercase: false));
        // Numbers of any kind are word characters (Python's \w), punctuation and C1 controls are not.
        Assert.Equal(["x²", "ab", "cd"], TfidfVectorizer.Tokenize("x² ab\u0096cd\u0097e"));
        Assert.Empty(TfidfVectorizer.Tokenize("a b c . , ! <i> 7"));
    }

    [Fact]
    public void Tokenize_counts_code_points_not_utf16_units()
    {
        // Mathematical bold capitals (U+1D400, U+1D401) are letters outside the BMP: two code points, one token;
        // a single one is a one-character token and is dropped. A lone surrogate breaks a run.
        Assert.Equal(["𝐀𝐁"], TfidfVectorizer.Tokenize("𝐀𝐁 𝐀", lowercase: false));
        Assert.Equal(["ab", "cd"], TfidfVectorizer.Tokenize("ab\uD800cd"));
    }

    [Fact]
    public void Vocabulary_idf_and_rows_match_scikit_learn()
    {
        var v = new TfidfVectorizer(new TfidfOptions { MinDocumentFrequency = 1, MaxFeatures = null });
        var x = v.FitTransform(Docs);
        Assert.Equal(
            ["42", "acting", "acting bad", "bad", "bad plot", "c_d", "c_d 42", "fun", "great", "great acting", "great fun", "great great",
             "movie", "movie was", "plot", "plot was", "the", "the movie", "the plot", "was", "was bad", "was great"],
            v.FeatureNames);
        double rare = 2.09861228866811, two = 1.6931471805599454, three = 1.4054651081081644;
        double[] idf = [rare, rare, rare, two, rare, rare, rare, rare, three, rare, rare, rare, two, two, two, rare, three, two, rare, three, rare, two];
        for (int f = 0; f < idf.Length; f++) Assert.Equal(idf[f], v.Idf[f], 1e-12);

        Assert.Equal(5, x.RowCount);
        Assert.Equal(22, x.ColumnCount);
        Assert.Equal([7, 8, 10, 11, 12, 13, 16, 17, 19, 21], x.RowColumns(0).ToArray());
        var expected = new Dictionary<int, double>
        {
            [10] = 0.3583684521713409, [11] = 0.3583684521713409, [21] = 0.28912941074057374, [13] = 0.28912941074057374,
            [17] = 0.28912941074057374, [7] = 0.3583684521713409, [8] = 0.4063612985237503, [19] = 0.24000352904309327,
            [12] = 0.28912941074057374, [16] = 0.24000352904309327,
        };
        foreach (var (column, value) in expected) Assert.Equal(value, x[0, column], 1e-12);
        // "great" twice: sublinear tf 1 + ln 2.
        Assert.Equal(0.4063612985237503 / 0.28912941074057374, (1 + Math.Log(2)) * three / two, 1e-12);
    }

    [Fact]
    public void Min_document_frequency_and_transform_match_scikit_learn()
    {
        var v = new TfidfVectorizer(new TfidfOptions { MinDocumentFrequency = 2, MaxFeatures = null }).Fit(Docs);
        Assert.Equal(["bad", "great", "movie", "movie was", "plot", "the", "the movie", "was", "was great"], v.FeatureNames);
        var x = v.Transform(Docs);
        double[][] expected =
        [
            [0.0, 0.518292620325801, 0.3687694680826707, 0.3687694680826707, 0.0, 0.3061119708177969, 0.3687694680826707, 0.3061119708177969, 0.3687694680826707],
            [0.43120676578019174, 0.0, 0.43120676578019174, 0.43120676578019174, 0.0, 0.3579405680986351, 0.43120676578019174, 0.3579405680986351, 0.0],
            [0.6098184563533858, 0.5062044059286201, 0.0, 0.0, 0.6098184563533858, 0.0, 0.0, 0.0, 0.0],
            [0.0, 0.41160464552194015, 0.0, 0.0, 0.4958552446804783, 0.41160464552194015, 0.0, 0.41160464552194015, 0.4958552446804783],
            [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        ];
        for (int i = 0; i < expected.Length; i++)
            for (int j = 0; j < expected[i].Length; j++) Assert.Equal(expected[i][j], x[i, j], 1e-12);
        // A document with no known term is an empty row, not an error.
        Assert.Equal(0, x.RowColumns(4).Length);
        var unseen = v.Transform(["completely unseen words", "GREAT movie"]);
        Assert.Equal(0, unseen.RowColumns(0).Length);
        Assert.Equal(2, unseen.RowColumns(1).Length);
    }

    [Fact]
    public void Max_features_keeps_the_most_frequent_and_breaks_ties_alphabetically()
    {
        var unigrams = new TfidfOptions { MinNgram = 1, MaxNgram = 1, MinDocumentFrequency = 1, MaxFeatures = 2 };
        Assert.Equal(["aa", "bb"], new TfidfVectorizer(unigrams).Fit(["zz aa", "yy bb"]).FeatureNames);
        var bigrams = new TfidfOptions { MinDocumentFrequency = 1, MaxFeatures = 3 };
        Assert.Equal(["aa", "bb", "bb aa"], new TfidfVectorizer(bigrams).Fit(["bb aa bb aa cc", "cc dd"]).FeatureNames);
        // The most frequent term wins over alphabetically earlier ones.
        Assert.Equal(["zz"], new TfidfVectorizer(unigrams with { MaxFeatures = 1 }).Fit(["aa zz", "zz"]).FeatureNames);
    }

    [Fact]
    public void Bad_input_is_reported()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new TfidfVectorizer(new TfidfOptions { MaxNgram = 3 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => new TfidfVectorizer(new TfidfOptions { MinDocumentFrequency = 0 }));
        Assert.Throws<InvalidOperationException>(() => new TfidfVectorizer().Transform(["x"]));
        Assert.Throws<ArgumentException>(() => new TfidfVectorizer().Fit([]));
        var e = Assert.Throws<ArgumentException>(() => new TfidfVectorizer().Fit(["only once", "other words"]));
        Assert.Contains("at least 2", e.Message);
    }

    [Fact]
    public void Sparse_matrix_checks_its_arrays()
    {
        Assert.Throws<ArgumentException>(() => new SparseMatrix(1, 3, [0, 2], [2, 1], [1.0, 1.0]));
        Assert.Throws<ArgumentException>(() => new SparseMatrix(1, 3, [0, 1], [3], [1.0]));
        Assert.Throws<ArgumentException>(() => new SparseMatrix(1, 3, [0, 1], [0], [double.NaN]));
        Assert.Throws<ArgumentException>(() => new SparseMatrix(2, 3, [0, 1], [0], [1.0]));
        var m = new SparseMatrix(2, 3, [0, 1, 3], [2, 0, 1], [5.0, 6.0, 7.0]);
        Assert.Equal(5.0, m[0, 2]);
        Assert.Equal(0.0, m[0, 0]);
        Assert.Equal(7.0, m[1, 1]);
        Assert.Equal(3, m.NonZeroCount);
    }
}

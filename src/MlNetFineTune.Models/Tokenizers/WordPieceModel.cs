namespace MlNetFineTune.Models.Tokenizers;

/// <summary>
/// WordPiece: greedy longest-match-first over the word's code points, continuation pieces spelled
/// with a prefix ("##"); a word with any unmatched remainder, or longer than
/// <see cref="MaxInputCharsPerWord"/> code points, becomes the single unknown token.
/// </summary>
internal sealed class WordPieceModel
{
    private readonly Dictionary<string, int> _vocab;
    private readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> _lookup;
    private readonly Dictionary<int, string> _vocabR;

    public WordPieceModel(Dictionary<string, int> vocab, string unkToken = "[UNK]", string continuingSubwordPrefix = "##",
        int maxInputCharsPerWord = 100)
    {
        _vocab = vocab;
        _lookup = vocab.GetAlternateLookup<ReadOnlySpan<char>>();
        _vocabR = new Dictionary<int, string>(vocab.Count);
        foreach (var (token, id) in vocab)
        {
            _vocabR[id] = token;
        }
        UnkToken = unkToken;
        ContinuingSubwordPrefix = continuingSubwordPrefix;
        MaxInputCharsPerWord = maxInputCharsPerWord;
    }

    public IReadOnlyDictionary<string, int> Vocab => _vocab;

    public string UnkToken { get; }

    public string ContinuingSubwordPrefix { get; }

    public int MaxInputCharsPerWord { get; }

    public int? TokenToId(string token) => _vocab.TryGetValue(token, out int id) ? id : null;

    public string? IdToToken(int id) => _vocabR.GetValueOrDefault(id);

    public void Tokenize(string word, List<ModelToken> output)
    {
        int codePoints = 0;
        for (int i = 0; i < word.Length; i++)
        {
            if (!(char.IsLowSurrogate(word[i]) && i > 0 && char.IsHighSurrogate(word[i - 1])))
            {
                codePoints++;
            }
        }
        if (codePoints > MaxInputCharsPerWord)
        {
            output.Add(Unknown(word));
            return;
        }
        var pieces = new List<ModelToken>();
        var buffer = new char[ContinuingSubwordPrefix.Length + word.Length];
        ContinuingSubwordPrefix.CopyTo(buffer);
        int start = 0;
        while (start < word.Length)
        {
            int end = word.Length;
            bool found = false;
            while (start < end)
            {
                ReadOnlySpan<char> candidate;
                if (start > 0)
                {
                    word.AsSpan(start, end - start).CopyTo(buffer.AsSpan(ContinuingSubwordPrefix.Length));
                    candidate = buffer.AsSpan(0, ContinuingSubwordPrefix.Length + end - start);
                }
                else
                {
                    candidate = word.AsSpan(0, end);
                }
                if (_lookup.TryGetValue(candidate, out int id))
                {
                    pieces.Add(new ModelToken(id, candidate.ToString(), start, end));
                    found = true;
                    break;
                }
                end -= char.IsLowSurrogate(word[end - 1]) && end - 2 >= start && char.IsHighSurrogate(word[end - 2]) ? 2 : 1;
            }
            if (!found)
            {
                output.Add(Unknown(word));
                return;
            }
            start = end;
        }
        output.AddRange(pieces);
    }

    private ModelToken Unknown(string word) => _vocab.TryGetValue(UnkToken, out int unk)
        ? new ModelToken(unk, UnkToken, 0, word.Length)
        : throw new InvalidOperationException($"WordPiece error: the unknown token '{UnkToken}' is not in the vocabulary.");
}

using System.Collections.Concurrent;
using System.Globalization;

namespace MlNetFineTune.Models.Tokenizers;

/// <summary>
/// Byte-pair encoding (HF's BPE model): a word starts as one symbol per character and the
/// adjacent pair with the lowest merge rank (leftmost on ties) is merged until no pair has a merge.
/// </summary>
internal sealed class BpeModel
{
    private const int CacheCapacity = 10_000;

    private readonly Dictionary<string, int> _vocab;
    private readonly Dictionary<int, string> _vocabR;
    private readonly Dictionary<(int Left, int Right), (int Rank, int NewId)> _merges;
    private readonly ConcurrentDictionary<string, ModelToken[]> _cache = new(StringComparer.Ordinal);

    /// <param name="vocab">Token to id.</param>
    /// <param name="merges">Merge rules, best (rank 0) first.</param>
    /// <param name="mergeError">Makes the exception for merge rule <c>rank</c> naming a token missing from the vocabulary.</param>
    /// <param name="unkToken">Token for characters missing from the vocabulary; null drops them, as HF does.</param>
    /// <param name="continuingSubwordPrefix">Prefix of non-initial symbols, if the vocabulary uses one.</param>
    /// <param name="endOfWordSuffix">Suffix of the final symbol, if the vocabulary uses one.</param>
    /// <param name="fuseUnk">Fuse consecutive unknown characters into one unknown token.</param>
    /// <param name="byteFallback">Spell unknown characters as &lt;0xNN&gt; byte tokens when the vocabulary has them.</param>
    /// <param name="ignoreMerges">Take a word found whole in the vocabulary as it is.</param>
    public BpeModel(Dictionary<string, int> vocab, IReadOnlyList<(string Left, string Right)> merges,
        Func<int, string, Exception> mergeError, string? unkToken = null, string? continuingSubwordPrefix = null,
        string? endOfWordSuffix = null, bool fuseUnk = false, bool byteFallback = false, bool ignoreMerges = false)
    {
        _vocab = vocab;
        _vocabR = new Dictionary<int, string>(vocab.Count);
        foreach (var (token, id) in vocab)
        {
            _vocabR[id] = token;
        }
        Merges = merges;
        UnkToken = unkToken;
        ContinuingSubwordPrefix = continuingSubwordPrefix;
        EndOfWordSuffix = endOfWordSuffix;
        FuseUnk = fuseUnk;
        ByteFallback = byteFallback;
        IgnoreMerges = ignoreMerges;
        int prefixLength = continuingSubwordPrefix?.Length ?? 0;
        _merges = new Dictionary<(int, int), (int, int)>(merges.Count);
        for (int rank = 0; rank < merges.Count; rank++)
        {
            var (left, right) = merges[rank];
            int leftId = Lookup(left, rank);
            int rightId = Lookup(right, rank);
            int newId = Lookup(left + right[Math.Min(prefixLength, right.Length)..], rank);
            _merges[(leftId, rightId)] = (rank, newId);
        }

        int Lookup(string token, int rank) => vocab.TryGetValue(token, out int id)
            ? id
            : throw mergeError(rank, $"merge '{merges[rank].Left} {merges[rank].Right}' uses '{token}', which is not in the vocabulary");
    }

    public IReadOnlyDictionary<string, int> Vocab => _vocab;

    public IReadOnlyList<(string Left, string Right)> Merges { get; }

    public string? UnkToken { get; }

    public string? ContinuingSubwordPrefix { get; }

    public string? EndOfWordSuffix { get; }

    public bool FuseUnk { get; }

    public bool ByteFallback { get; }

    public bool IgnoreMerges { get; }

    public int? TokenToId(string token) => _vocab.TryGetValue(token, out int id) ? id : null;

    public string? IdToToken(int id) => _vocabR.GetValueOrDefault(id);

    public void Tokenize(string word, List<ModelToken> output)
    {
        if (word.Length == 0)
        {
            return;
        }
        if (IgnoreMerges && _vocab.TryGetValue(word, out int whole))
        {
            output.Add(new ModelToken(whole, word, 0, word.Length));
            return;
        }
        if (!_cache.TryGetValue(word, out ModelToken[]? tokens))
        {
            tokens = MergeWord(word);
            if (_cache.Count < CacheCapacity)
            {
                _cache.TryAdd(word, tokens);
            }
        }
        output.AddRange(tokens);
    }

    private ModelToken[] MergeWord(string word)
    {
        var ids = new List<int>(word.Length);
        var starts = new List<int>(word.Length);
        var ends = new List<int>(word.Length);
        (int Id, int Start, int End)? unknown = null;
        for (int i = 0; i < word.Length;)
        {
            NormalizedText.CodePointAt(word, i, out int width);
            string symbol = word.Substring(i, width);
            if (i > 0 && ContinuingSubwordPrefix is not null)
            {
                symbol = ContinuingSubwordPrefix + symbol;
            }
            if (i + width == word.Length && EndOfWordSuffix is not null)
            {
                symbol += EndOfWordSuffix;
            }
            if (_vocab.TryGetValue(symbol, out int id))
            {
                FlushUnknown();
                Add(id, i, i + width);
            }
            else if (ByteFallback && ByteTokens(symbol) is { } byteIds)
            {
                FlushUnknown();
                foreach (int b in byteIds)
                {
                    Add(b, i, i + width);
                }
            }
            else if (UnkToken is not null)
            {
                int unk = _vocab.TryGetValue(UnkToken, out int u) ? u : throw new InvalidOperationException(
                    $"BPE error: the unknown token '{UnkToken}' is not in the vocabulary.");
                if (unknown is { } pending && FuseUnk)
                {
                    unknown = (pending.Id, pending.Start, i + width);
                }
                else
                {
                    FlushUnknown();
                    unknown = (unk, i, i + width);
                }
            }
            i += width;
        }
        FlushUnknown();
        MergeAll(ids, starts, ends, out var alive);
        var tokens = new List<ModelToken>(ids.Count);
        for (int i = 0; i < ids.Count; i++)
        {
            if (alive[i])
            {
                tokens.Add(new ModelToken(ids[i], _vocabR[ids[i]], starts[i], ends[i]));
            }
        }
        return [.. tokens];

        void Add(int id, int start, int end)
        {
            ids.Add(id);
            starts.Add(start);
            ends.Add(end);
        }

        void FlushUnknown()
        {
            if (unknown is { } u)
            {
                Add(u.Id, u.Start, u.End);
                unknown = null;
            }
        }
    }

    private int[]? ByteTokens(string symbol)
    {
        byte[] bytes = System.Text.Encoding.UTF8.GetBytes(symbol);
        var result = new int[bytes.Length];
        for (int k = 0; k < bytes.Length; k++)
        {
            if (!_vocab.TryGetValue(string.Create(CultureInfo.InvariantCulture, $"<0x{bytes[k]:X2}>"), out result[k]))
            {
                return null;
            }
        }
        return result;
    }

    // HF's Word::merge_all: a min-queue of (rank, position) over adjacent pairs; an entry is stale when
    // its left symbol was merged away or the pair at its position no longer makes the same token.
    private void MergeAll(List<int> ids, List<int> starts, List<int> ends, out bool[] alive)
    {
        int n = ids.Count;
        alive = new bool[n];
        Array.Fill(alive, true);
        var prev = new int[n];
        var next = new int[n];
        for (int i = 0; i < n; i++)
        {
            prev[i] = i - 1;
            next[i] = i + 1 < n ? i + 1 : -1;
        }
        var queue = new PriorityQueue<(int Pos, int NewId), long>();
        for (int i = 0; i + 1 < n; i++)
        {
            Enqueue(i, i + 1);
        }
        while (queue.TryDequeue(out var top, out _))
        {
            int pos = top.Pos;
            if (!alive[pos] || next[pos] == -1)
            {
                continue;
            }
            int right = next[pos];
            if (!_merges.TryGetValue((ids[pos], ids[right]), out var merge) || merge.NewId != top.NewId)
            {
                continue;
            }
            ids[pos] = merge.NewId;
            ends[pos] = ends[right];
            alive[right] = false;
            next[pos] = next[right];
            if (next[right] != -1)
            {
                prev[next[right]] = pos;
            }
            if (prev[pos] != -1)
            {
                Enqueue(prev[pos], pos);
            }
            if (next[pos] != -1)
            {
                Enqueue(pos, next[pos]);
            }
        }

        void Enqueue(int left, int right)
        {
            if (_merges.TryGetValue((ids[left], ids[right]), out var m))
            {
                queue.Enqueue((left, m.NewId), ((long)m.Rank << 32) | (uint)left);
            }
        }
    }
}

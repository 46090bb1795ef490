using System.Collections;
using MlNetFineTune.Tensors;

namespace MlNetFineTune.Data;

/// <summary>
/// The sentences of a named-entity task with their tag scheme and tag vocabulary. Load one with
/// <see cref="LoadConll"/> or <see cref="LoadFromEnumerable"/>.
/// </summary>
public sealed class NerDataset : IReadOnlyList<NerSentence>
{
    private readonly NerSentence[] _sentences;

    /// <summary>A data set of <paramref name="sentences"/>, whose tags must be valid in <paramref name="scheme"/>.</summary>
    /// <param name="sentences">The sentences.</param>
    /// <param name="scheme">Their tag scheme.</param>
    /// <param name="source">Where they came from (named in errors); null for <c>&lt;memory&gt;</c>.</param>
    /// <param name="tags">The tag vocabulary (e.g. the training set's); null builds it from the sentences.</param>
    /// <exception cref="ArgumentException">A tag is invalid in the scheme.</exception>
    public NerDataset(IEnumerable<NerSentence> sentences, TagScheme scheme = TagScheme.Bio, string? source = null,
        LabelVocabulary? tags = null)
    {
        ArgumentNullException.ThrowIfNull(sentences);
        _sentences = sentences.ToArray();
        Scheme = scheme;
        Source = source ?? TextDataset.MemorySource;
        var types = new SortedSet<string>(StringComparer.Ordinal);
        int illFormed = 0, tokens = 0;
        for (int s = 0; s < _sentences.Length; s++)
        {
            var sentence = _sentences[s] ?? throw new ArgumentException($"Sentence {s} is null.", nameof(sentences));
            foreach (var tag in sentence.Tags)
            {
                if (!NerTags.TryParse(tag, scheme, out _, out string type, out string? error))
                {
                    throw new ArgumentException($"Sentence {s + 1}: {error}.", nameof(sentences));
                }
                if (type.Length > 0)
                {
                    types.Add(type);
                }
            }
            illFormed += NerTags.CountIllFormed(sentence.Tags, scheme);
            tokens += sentence.Count;
        }
        EntityTypes = [.. types];
        IllFormedTagCount = illFormed;
        TokenCount = tokens;
        if (tags is not null)
        {
            Tags = tags;
            return;
        }
        var tagList = new List<string>();
        foreach (var type in types)
        {
            foreach (char prefix in NerTags.Prefixes(scheme))
            {
                tagList.Add($"{prefix}-{type}");
            }
        }
        tagList.Sort(StringComparer.Ordinal);
        tagList.Insert(0, NerTags.Outside);
        Tags = new LabelVocabulary(tagList);
    }

    /// <summary>The file the sentences came from, or <c>&lt;memory&gt;</c>.</summary>
    public string Source { get; }

    /// <summary>The tag scheme.</summary>
    public TagScheme Scheme { get; }

    /// <summary>The sentences, in file order.</summary>
    public IReadOnlyList<NerSentence> Sentences => _sentences;

    /// <summary>
    /// The tag vocabulary: <c>O</c> (id 0), then every tag of the scheme for every entity type found (seen or
    /// not: <c>B-PER</c>, <c>I-PER</c>, ...), sorted ordinally.
    /// </summary>
    public LabelVocabulary Tags { get; }

    /// <summary>The entity types found, sorted ordinally.</summary>
    public IReadOnlyList<string> EntityTypes { get; }

    /// <summary>Number of tags that break the scheme's transitions but were accepted leniently
    /// (<see cref="NerTags.CountIllFormed"/>), e.g. an <c>I-PER</c> after <c>O</c>.</summary>
    public int IllFormedTagCount { get; }

    /// <summary>Number of tokens over all sentences.</summary>
    public int TokenCount { get; }

    /// <summary>Number of sentences.</summary>
    public int Count => _sentences.Length;

    /// <summary>Sentence <paramref name="index"/>.</summary>
    public NerSentence this[int index] => _sentences[index];

    /// <summary>True when <paramref name="path"/> names a CoNLL file (.conll, .conll03, .conllu, .bio, .bioes, .iob, .iob2, optionally .gz).</summary>
    public static bool IsConllPath(string path) => DataFiles.GetKind(path) == DataFileKind.Conll;

    /// <summary>Loads a CoNLL file (see <see cref="ConllReader"/>).</summary>
    /// <exception cref="DataFormatException">The file is malformed, holds an invalid tag, or has no sentences.</exception>
    public static NerDataset LoadConll(string path, TagScheme scheme = TagScheme.Bio, CancellationToken cancellationToken = default)
    {
        var sentences = ConllReader.Read(path, scheme, cancellationToken).ToList();
        if (sentences.Count == 0)
        {
            throw new DataFormatException(path, 1, 1, "empty file: expected CoNLL lines 'token tag' with a blank line between sentences");
        }
        return new NerDataset(sentences, scheme, path);
    }

    /// <summary>A data set from objects in memory: selectors pick each object's tokens and tags.</summary>
    /// <typeparam name="T">The user's row type.</typeparam>
    /// <param name="items">The objects.</param>
    /// <param name="tokens">Selects the tokens.</param>
    /// <param name="tags">Selects the tags, one per token.</param>
    /// <param name="scheme">The tag scheme.</param>
    /// <param name="sourceName">Names the data in errors.</param>
    /// <exception cref="DataFormatException">An object has a different number of tokens and tags, or an invalid
    /// tag; the line is the 1-based item number.</exception>
    public static NerDataset LoadFromEnumerable<T>(IEnumerable<T> items, Func<T, IReadOnlyList<string>> tokens,
        Func<T, IReadOnlyList<string>> tags, TagScheme scheme = TagScheme.Bio, string sourceName = TextDataset.MemorySource)
    {
        ArgumentNullException.ThrowIfNull(items);
        ArgumentNullException.ThrowIfNull(tokens);
        ArgumentNullException.ThrowIfNull(tags);
        var sentences = new List<NerSentence>();
        int number = 0;
        foreach (var item in items)
        {
            number++;
            var tok = tokens(item);
            var tg = tags(item);
            if (tok is null || tg is null || tok.Count != tg.Count)
            {
                throw new DataFormatException(sourceName, number, null,
                    $"item {number}: {tok?.Count.ToString() ?? "null"} tokens but {tg?.Count.ToString() ?? "null"} tags");
            }
            foreach (var tag in tg)
            {
                if (!NerTags.TryParse(tag ?? "", scheme, out _, out _, out string? error))
                {
                    throw new DataFormatException(sourceName, number, null, $"item {number}: {error}");
                }
            }
            sentences.Add(new NerSentence([.. tok], [.. tg]));
        }
        return new NerDataset(sentences, scheme, sourceName);
    }

    /// <summary>Writes the sentences as CoNLL (<c>token tag</c> lines; see <see cref="ConllWriter"/>).</summary>
    public void SaveConll(string path) => ConllWriter.Write(path, _sentences);

    /// <summary>The same sentences with their tags converted to <paramref name="scheme"/>.</summary>
    public NerDataset ConvertTo(TagScheme scheme)
        => scheme == Scheme
            ? this
            : new NerDataset(_sentences.Select(s => new NerSentence(s.Tokens, NerTags.Convert(s.Tags, Scheme, scheme))), scheme, Source);

    /// <summary>
    /// Checks that the data set can train a tagger: it has sentences and at least one entity. Returns this data set.
    /// </summary>
    /// <exception cref="DataValidationException">It cannot; the message names the file.</exception>
    public NerDataset EnsureTrainable()
    {
        if (_sentences.Length == 0)
        {
            throw new DataValidationException(Source, "the training set has no sentences");
        }
        if (EntityTypes.Count == 0)
        {
            throw new DataValidationException(Source,
                $"every one of the {TokenCount} tokens is tagged O; a tagger needs at least one entity (is the tag the last column?)");
        }
        return this;
    }

    /// <summary>A seeded random split by sentence (<see cref="DataSplit.RandomSplit{T}(IEnumerable{T}, double, Rng)"/>);
    /// both parts share this data set's tag vocabulary.</summary>
    public TrainValidationSplit<NerDataset> Split(double validationFraction, Rng rng)
    {
        var split = DataSplit.RandomSplit(_sentences, validationFraction, rng);
        return new TrainValidationSplit<NerDataset>(
            new NerDataset(split.Train, Scheme, Source, Tags), new NerDataset(split.Validation, Scheme, Source, Tags));
    }

    /// <summary><see cref="Split(double, Rng)"/> with <c>new Rng(seed)</c>.</summary>
    public TrainValidationSplit<NerDataset> Split(double validationFraction, int seed)
        => Split(validationFraction, new Rng(unchecked((ulong)seed)));

    /// <inheritdoc/>
    public IEnumerator<NerSentence> GetEnumerator() => ((IEnumerable<NerSentence>)_sentences).GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

    /// <inheritdoc/>
    public override string ToString()
        => $"NerDataset({Source}: {Count} sentences, {TokenCount} tokens, types {string.Join(", ", EntityTypes)})";
}

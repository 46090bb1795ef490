using System.Text;

namespace MlNetFineTune.Data;

/// <summary>
/// Reads the CoNLL format of named-entity data: one token per line with its columns separated by spaces or
/// tabs, the token in the FIRST column and the tag in the LAST (so CoNLL-2003's <c>EU NNP B-NP B-ORG</c> and a
/// plain <c>EU B-ORG</c> both read); a blank line ends a sentence; <c>-DOCSTART-</c> lines are skipped and empty
/// sentences (several blank lines in a row) dropped. Tags are checked against the scheme: an invalid one
/// (<c>X-PER</c>, <c>B-</c>, <c>E-PER</c> in BIO) is a <see cref="DataFormatException"/> pointing at it. Ill-formed
/// transitions such as an <c>I-</c> after <c>O</c> are accepted, as seqeval's lenient mode does, and counted by
/// <see cref="NerDataset.IllFormedTagCount"/>. Streams, decodes UTF-8 strictly, decompresses <c>.gz</c>.
/// </summary>
public static class ConllReader
{
    /// <summary>Streams the sentences of <paramref name="path"/>; the file is opened when enumeration starts.</summary>
    public static IEnumerable<NerSentence> Read(string path, TagScheme scheme = TagScheme.Bio,
        CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        return ReadFile(path, scheme, cancellationToken);
    }

    /// <summary>Streams the sentences of <paramref name="stream"/> (UTF-8, not compressed);
    /// <paramref name="sourceName"/> names it in errors.</summary>
    public static IEnumerable<NerSentence> Read(Stream stream, string sourceName, TagScheme scheme = TagScheme.Bio,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(stream);
        return ReadSource(new Utf8TextSource(stream, sourceName, compressed: false, leaveOpen: true), scheme, cancellationToken);
    }

    private static IEnumerable<NerSentence> ReadFile(string path, TagScheme scheme, CancellationToken cancellationToken)
    {
        foreach (var sentence in ReadSource(Utf8TextSource.Open(path), scheme, cancellationToken))
        {
            yield return sentence;
        }
    }

    private static IEnumerable<NerSentence> ReadSource(Utf8TextSource source, TagScheme scheme, CancellationToken cancellationToken)
    {
        using (source)
        {
            var line = new StringBuilder();
            var tokens = new List<string>();
            var tags = new List<string>();
            int sentences = 0;
            while (true)
            {
                int lineNumber = source.Line;
                bool more = source.ReadLine(line);
                string text = more ? line.ToString() : "";
                bool boundary = !more || IsBlank(text) || text.StartsWith("-DOCSTART-", StringComparison.Ordinal);
                if (boundary)
                {
                    if (tokens.Count > 0)
                    {
                        if ((++sentences & 1023) == 0)
                        {
                            cancellationToken.ThrowIfCancellationRequested();
                        }
                        yield return new NerSentence(tokens.ToArray(), tags.ToArray());
                        tokens.Clear();
                        tags.Clear();
                    }
                    if (!more)
                    {
                        yield break;
                    }
                    continue;
                }
                ParseLine(text, source.FilePath, lineNumber, scheme, out string token, out string tag);
                tokens.Add(token);
                tags.Add(tag);
            }
        }
    }

    private static bool IsBlank(string text) => text.AsSpan().Trim(" \t").IsEmpty;

    private static void ParseLine(string text, string path, int line, TagScheme scheme, out string token, out string tag)
    {
        int firstStart = Skip(text, 0, whitespace: true);
        int firstEnd = Skip(text, firstStart, whitespace: false);
        int lastEnd = text.Length;
        while (lastEnd > 0 && text[lastEnd - 1] is ' ' or '\t')
        {
            lastEnd--;
        }
        int lastStart = lastEnd;
        while (lastStart > 0 && text[lastStart - 1] is not (' ' or '\t'))
        {
            lastStart--;
        }
        if (lastStart == firstStart)
        {
            throw new DataFormatException(path, line, Column(text, firstEnd),
                $"expected a token and its tag separated by whitespace, found only '{text[firstStart..firstEnd]}'");
        }
        token = text[firstStart..firstEnd];
        tag = text[lastStart..lastEnd];
        if (!NerTags.TryParse(tag, scheme, out _, out _, out string? error))
        {
            throw new DataFormatException(path, line, Column(text, lastStart), error!);
        }
    }

    private static int Skip(string text, int i, bool whitespace)
    {
        while (i < text.Length && (text[i] is ' ' or '\t') == whitespace)
        {
            i++;
        }
        return i;
    }

    /// <summary>1-based code-point column of UTF-16 index <paramref name="index"/>.</summary>
    private static int Column(string text, int index)
    {
        int column = 1;
        for (int i = 0; i < index; i++)
        {
            if (!char.IsLowSurrogate(text[i]))
            {
                column++;
            }
        }
        return column;
    }
}

/// <summary>Writes the CoNLL format <see cref="ConllReader"/> reads: <c>token tag</c> per line, a blank line after
/// each sentence, UTF-8 without BOM, LF line ends.</summary>
public static class ConllWriter
{
    /// <summary>Writes <paramref name="sentences"/> to <paramref name="path"/> (gzip when it ends in <c>.gz</c>).</summary>
    public static void Write(string path, IEnumerable<NerSentence> sentences, char separator = ' ')
    {
        ArgumentNullException.ThrowIfNull(sentences);
        using var writer = DataFiles.CreateText(path);
        Write(writer, sentences, separator);
    }

    /// <summary>Writes <paramref name="sentences"/> to <paramref name="writer"/>; empty sentences are skipped.</summary>
    /// <exception cref="ArgumentException">A token or tag is empty or holds whitespace (it could not be read back).</exception>
    public static void Write(TextWriter writer, IEnumerable<NerSentence> sentences, char separator = ' ')
    {
        ArgumentNullException.ThrowIfNull(writer);
        ArgumentNullException.ThrowIfNull(sentences);
        if (separator is not (' ' or '\t'))
        {
            throw new ArgumentException("The separator must be a space or a tab.", nameof(separator));
        }
        int index = 0;
        foreach (var sentence in sentences)
        {
            index++;
            if (sentence.Count == 0)
            {
                continue;
            }
            for (int i = 0; i < sentence.Count; i++)
            {
                string token = sentence.Tokens[i], tag = sentence.Tags[i];
                if (!IsWritable(token) || !IsWritable(tag))
                {
                    throw new ArgumentException(
                        $"Sentence {index}, token {i + 1}: '{token}' / '{tag}' is empty or holds whitespace, which CoNLL cannot represent.",
                        nameof(sentences));
                }
                if (i == 0 && token.StartsWith("-DOCSTART-", StringComparison.Ordinal))
                {
                    throw new ArgumentException($"Sentence {index} starts with '-DOCSTART-', which CoNLL readers skip.", nameof(sentences));
                }
                writer.Write(token);
                writer.Write(separator);
                writer.Write(tag);
                writer.Write('\n');
            }
            writer.Write('\n');
        }
    }

    private static bool IsWritable(string s)
        => !string.IsNullOrEmpty(s) && s.AsSpan().IndexOfAny(" \t\r\n") < 0;
}

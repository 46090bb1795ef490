namespace MlNetFineTune.Data;

/// <summary>One example of a text classification task.</summary>
/// <param name="Text">The text to classify (the first segment of a pair).</param>
/// <param name="TextPair">The second segment for pair tasks (entailment, paraphrase), else null.</param>
/// <param name="Label">The label as written in the data; null for unlabeled data (prediction).</param>
public sealed record TextExample(string Text, string? TextPair = null, string? Label = null);

/// <summary>
/// Which columns (TSV/CSV) or fields (JSONL) of a file hold the label, the text and, for pair tasks, the second
/// text. Defaults: <c>label</c> and <c>text</c>, no pair.
/// </summary>
/// <param name="Label">The label column; null to load unlabeled data.</param>
/// <param name="Text">The text column.</param>
/// <param name="TextPair">The second-text column for pair tasks, or null.</param>
public sealed record TextColumns(string? Label = "label", string Text = "text", string? TextPair = null)
{
    /// <summary><c>label</c> and <c>text</c>.</summary>
    public static TextColumns Default { get; } = new();
}

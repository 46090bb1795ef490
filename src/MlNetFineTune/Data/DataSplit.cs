using MlNetFineTune.Tensors;

namespace MlNetFineTune.Data;

/// <summary>A training part and a validation part of one data set.</summary>
/// <typeparam name="T">The type of each part.</typeparam>
/// <param name="Train">The examples to train on.</param>
/// <param name="Validation">The held-out examples.</param>
public sealed record TrainValidationSplit<T>(T Train, T Validation);

/// <summary>
/// Seeded splits into training and validation parts. Both parts keep the input's relative order; the same input,
/// fraction and seed give the same split on every machine.
/// </summary>
public static class DataSplit
{
    /// <summary>
    /// Splits so that each label keeps its share in both parts. The validation part holds
    /// <c>round(n * validationFraction)</c> examples (at least 1, at most n-1), shared among the labels in
    /// proportion to their counts (largest remainders), with two adjustments that may move the total by a few: every
    /// label with at least two examples gets at least one in validation and keeps at least one in training, and a
    /// label with a single example stays in training. A null label is a class of its own.
    /// </summary>
    /// <exception cref="ArgumentException">Fewer than two examples, or a fraction outside (0, 1).</exception>
    public static TrainValidationSplit<IReadOnlyList<T>> StratifiedSplit<T>(IEnumerable<T> examples,
        Func<T, string?> labelSelector, double validationFraction, Rng rng)
    {
        ArgumentNullException.ThrowIfNull(labelSelector);
        ArgumentNullException.ThrowIfNull(rng);
        var items = Materialize(examples, validationFraction);
        int n = items.Count;
        int target = TargetSize(n, validationFraction);

        var groups = new List<List<int>>();
        var groupOf = new Dictionary<string, int>(StringComparer.Ordinal);
        int nullGroup = -1;
        for (int i = 0; i < n; i++)
        {
            string? label = labelSelector(items[i]);
            int g;
            if (label is null)
            {
                if (nullGroup < 0)
                {
                    nullGroup = groups.Count;
                    groups.Add([]);
                }
                g = nullGroup;
            }
            else if (!groupOf.TryGetValue(label, out g))
            {
                g = groups.Count;
                groupOf.Add(label, g);
                groups.Add([]);
            }
            groups[g].Add(i);
        }

        int[] alloc = Allocate(groups.Select(g => g.Count).ToArray(), n, target);
        var inValidation = new bool[n];
        for (int g = 0; g < groups.Count; g++)
        {
            int[] members = [.. groups[g]];
            rng.Shuffle(members);
            for (int j = 0; j < alloc[g]; j++)
            {
                inValidation[members[j]] = true;
            }
        }
        return Partition(items, inValidation);
    }

    /// <summary><see cref="StratifiedSplit{T}(IEnumerable{T}, Func{T, string}, double, Rng)"/> with
    /// <c>new Rng(seed)</c>.</summary>
    public static TrainValidationSplit<IReadOnlyList<T>> StratifiedSplit<T>(IEnumerable<T> examples,
        Func<T, string?> labelSelector, double validationFraction, int seed)
        => StratifiedSplit(examples, labelSelector, validationFraction, new Rng(unchecked((ulong)seed)));

    /// <summary>
    /// A plain random split (e.g. NER sentences): <c>round(n * validationFraction)</c> examples, at least 1 and
    /// at most n-1, go to validation.
    /// </summary>
    /// <exception cref="ArgumentException">Fewer than two examples, or a fraction outside (0, 1).</exception>
    public static TrainValidationSplit<IReadOnlyList<T>> RandomSplit<T>(IEnumerable<T> examples, double validationFraction, Rng rng)
    {
        ArgumentNullException.ThrowIfNull(rng);
        var items = Materialize(examples, validationFraction);
        int n = items.Count;
        int target = TargetSize(n, validationFraction);
        int[] order = Enumerable.Range(0, n).ToArray();
        rng.Shuffle(order);
        var inValidation = new bool[n];
        for (int j = 0; j < target; j++)
        {
            inValidation[order[j]] = true;
        }
        return Partition(items, inValidation);
    }

    /// <summary><see cref="RandomSplit{T}(IEnumerable{T}, double, Rng)"/> with <c>new Rng(seed)</c>.</summary>
    public static TrainValidationSplit<IReadOnlyList<T>> RandomSplit<T>(IEnumerable<T> examples, double validationFraction, int seed)
        => RandomSplit(examples, validationFraction, new Rng(unchecked((ulong)seed)));

    private static IReadOnlyList<T> Materialize<T>(IEnumerable<T> examples, double validationFraction)
    {
        ArgumentNullException.ThrowIfNull(examples);
        if (!(validationFraction > 0 && validationFraction < 1))
        {
            throw new ArgumentOutOfRangeException(nameof(validationFraction), validationFraction,
                "The validation fraction must lie strictly between 0 and 1.");
        }
        var items = examples as IReadOnlyList<T> ?? examples.ToArray();
        if (items.Count < 2)
        {
            throw new ArgumentException($"Splitting needs at least two examples; there are {items.Count}.", nameof(examples));
        }
        return items;
    }

    private static int TargetSize(int n, double fraction)
        => Math.Clamp((int)Math.Round(n * fraction, MidpointRounding.AwayFromZero), 1, n - 1);

    /// <summary>Validation counts per group: largest remainders, then bounded to [1, size-1] (0 for singletons).</summary>
    internal static int[] Allocate(int[] sizes, int n, int target)
    {
        int k = sizes.Length;
        var exact = new double[k];
        var alloc = new int[k];
        for (int g = 0; g < k; g++)
        {
            exact[g] = (double)sizes[g] * target / n;
            alloc[g] = (int)Math.Floor(exact[g]);
        }
        int remaining = target - alloc.Sum();
        foreach (int g in Enumerable.Range(0, k).OrderByDescending(g => exact[g] - alloc[g]).ThenBy(g => g).Take(remaining))
        {
            alloc[g]++;
        }
        var low = new int[k];
        var high = new int[k];
        for (int g = 0; g < k; g++)
        {
            low[g] = sizes[g] >= 2 ? 1 : 0;
            high[g] = sizes[g] >= 2 ? sizes[g] - 1 : 0;
            alloc[g] = Math.Clamp(alloc[g], low[g], high[g]);
        }
        int total = alloc.Sum();
        while (total > target)
        {
            int best = -1;
            for (int g = 0; g < k; g++)
            {
                if (alloc[g] > low[g] && (best < 0 || alloc[g] - exact[g] > alloc[best] - exact[best]))
                {
                    best = g;
                }
            }
            if (best < 0)
            {
                break;
            }
            alloc[best]--;
            total--;
        }
        while (total < target)
        {
            int best = -1;
            for (int g = 0; g < k; g++)
            {
                if (alloc[g] < high[g] && (best < 0 || alloc[g] - exact[g] < alloc[best] - exact[best]))
                {
                    best = g;
                }
            }
            if (best < 0)
            {
                break;
            }
            alloc[best]++;
            total++;
        }
        return alloc;
    }

    private static TrainValidationSplit<IReadOnlyList<T>> Partition<T>(IReadOnlyList<T> items, bool[] inValidation)
    {
        var train = new List<T>();
        var validation = new List<T>();
        for (int i = 0; i < items.Count; i++)
        {
            (inValidation[i] ? validation : train).Add(items[i]);
        }
        return new TrainValidationSplit<IReadOnlyList<T>>(train, validation);
    }
}

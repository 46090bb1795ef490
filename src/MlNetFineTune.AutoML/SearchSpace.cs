using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace MlNetFineTune.AutoML;

/// <summary>A search space, a parameter or a space file that cannot be used; the message names the file and parameter.</summary>
public sealed class SearchSpaceException(string message) : ArgumentException(message);

/// <summary>
/// One hyperparameter's domain. Values travel as doubles: the number itself for floats and ints, the index of
/// the choice for choices (so storage, tuners and pruners deal in one type).
/// </summary>
public abstract record ParamDomain(string Name)
{
    /// <summary>Draws a value uniformly (log-uniformly for log domains).</summary>
    public abstract double Sample(SplitMix rng);

    /// <summary>The points a grid search visits.</summary>
    public abstract IReadOnlyList<double> GridPoints();

    /// <summary>The value a trainer receives: double, int, or the choice itself.</summary>
    public abstract object External(double value);

    /// <summary>A short human-readable value.</summary>
    public virtual string Display(double value) => Convert.ToString(External(value), CultureInfo.InvariantCulture) ?? "";

    /// <summary>Checks the domain, throwing with the parameter's name.</summary>
    public abstract void Validate(string where);

    /// <summary>Whether <paramref name="value"/> lies in the domain.</summary>
    public abstract bool Contains(double value);

    internal abstract JsonObject ToJson();
}

/// <summary>A real parameter in [Low, High], uniform or log-uniform; Grid lists the grid's points (default: 3 spread points).</summary>
public sealed record FloatParam(string Name, double Low, double High, bool Log = false, IReadOnlyList<double>? Grid = null) : ParamDomain(Name)
{
    /// <inheritdoc/>
    public override double Sample(SplitMix rng) => Log
        ? Math.Exp(Math.Log(Low) + rng.NextDouble() * (Math.Log(High) - Math.Log(Low)))
        : Low + rng.NextDouble() * (High - Low);

    /// <inheritdoc/>
    public override IReadOnlyList<double> GridPoints() => Grid ?? (Log
        ? [Low, Math.Exp(0.5 * (Math.Log(Low) + Math.Log(High))), High]
        : [Low, 0.5 * (Low + High), High]);

    /// <inheritdoc/>
    public override object External(double value) => value;

    /// <inheritdoc/>
    public override string Display(double value) => value.ToString("G4", CultureInfo.InvariantCulture);

    /// <inheritdoc/>
    public override bool Contains(double value) => value >= Low * (1 - 1e-12) - 1e-300 && value <= High * (1 + 1e-12) + 1e-300;

    /// <inheritdoc/>
    public override void Validate(string where)
    {
        if (!double.IsFinite(Low) || !double.IsFinite(High)) throw new SearchSpaceException($"{where}parameter '{Name}': low and high must be finite numbers.");
        if (!(Low < High)) throw new SearchSpaceException($"{where}parameter '{Name}': low ({Low}) must be below high ({High}).");
        if (Log && Low <= 0) throw new SearchSpaceException($"{where}parameter '{Name}': a log-uniform range needs low > 0 (got {Low}).");
        if (Grid is not null)
        {
            if (Grid.Count == 0) throw new SearchSpaceException($"{where}parameter '{Name}': the grid list is empty.");
            foreach (var g in Grid)
                if (!Contains(g)) throw new SearchSpaceException($"{where}parameter '{Name}': grid value {g} lies outside [{Low}, {High}].");
        }
    }

    internal override JsonObject ToJson()
    {
        var o = new JsonObject { ["type"] = Log ? "loguniform" : "uniform", ["low"] = Low, ["high"] = High };
        if (Grid is not null) o["grid"] = new JsonArray(Grid.Select(g => (JsonNode)g).ToArray());
        return o;
    }
}

/// <summary>An integer parameter in [Low, High] (both included), optionally log-uniform.</summary>
public sealed record IntParam(string Name, int Low, int High, bool Log = false, IReadOnlyList<int>? Grid = null) : ParamDomain(Name)
{
    /// <inheritdoc/>
    public override double Sample(SplitMix rng)
    {
        if (!Log) return Low + (int)Math.Min(High - Low, Math.Floor(rng.NextDouble() * (High - Low + 1)));
        double v = Math.Exp(Math.Log(Low - 0.5 <= 0 ? 0.5 : Low - 0.5) + rng.NextDouble() * (Math.Log(High + 0.5) - Math.Log(Low - 0.5 <= 0 ? 0.5 : Low - 0.5)));
        return Math.Clamp(Math.Round(v), Low, High);
    }

    /// <inheritdoc/>
    public override IReadOnlyList<double> GridPoints()
    {
        if (Grid is not null) return Grid.Select(g => (double)g).ToArray();
        if (High - Low <= 2) return Enumerable.Range(Low, High - Low + 1).Select(i => (double)i).ToArray();
        return new double[] { Low, Math.Round(0.5 * (Low + High), MidpointRounding.AwayFromZero), High }.Distinct().ToArray();
    }

    /// <inheritdoc/>
    public override object External(double value) => (int)Math.Round(value);

    /// <inheritdoc/>
    public override bool Contains(double value) => value >= Low && value <= High && Math.Abs(value - Math.Round(value)) < 1e-9;

    /// <inheritdoc/>
    public override void Validate(string where)
    {
        if (Low > High) throw new SearchSpaceException($"{where}parameter '{Name}': low ({Low}) is above high ({High}).");
        if (Log && Low <= 0) throw new SearchSpaceException($"{where}parameter '{Name}': a log-uniform range needs low > 0 (got {Low}).");
        if (Grid is not null)
        {
            if (Grid.Count == 0) throw new SearchSpaceException($"{where}parameter '{Name}': the grid list is empty.");
            foreach (var g in Grid)
                if (!Contains(g)) throw new SearchSpaceException($"{where}parameter '{Name}': grid value {g} lies outside [{Low}, {High}].");
        }
    }

    internal override JsonObject ToJson()
    {
        var o = new JsonObject { ["type"] = "int", ["low"] = Low, ["high"] = High };
        if (Log) o["log"] = true;
        if (Grid is not null) o["grid"] = new JsonArray(Grid.Select(g => (JsonNode)g).ToArray());
        return o;
    }
}

/// <summary>One of a list of values (numbers or strings).</summary>
public sealed record ChoiceParam(string Name, IReadOnlyList<object> Choices) : ParamDomain(Name)
{
    /// <inheritdoc/>
    public override double Sample(SplitMix rng) => Math.Min(Choices.Count - 1, (int)(rng.NextDouble() * Choices.Count));

    /// <inheritdoc/>
    public override IReadOnlyList<double> GridPoints() => Enumerable.Range(0, Choices.Count).Select(i => (double)i).ToArray();

    /// <inheritdoc/>
    public override object External(double value) => Choices[(int)Math.Round(value)];

    /// <inheritdoc/>
    public override bool Contains(double value) => value >= 0 && value < Choices.Count && Math.Abs(value - Math.Round(value)) < 1e-9;

    /// <inheritdoc/>
    public override void Validate(string where)
    {
        if (Choices.Count == 0) throw new SearchSpaceException($"{where}parameter '{Name}': the list of choices is empty.");
        var seen = new HashSet<string>();
        foreach (var c in Choices)
        {
            if (c is not (string or int or long or double)) throw new SearchSpaceException($"{where}parameter '{Name}': choice '{c}' is neither a number nor a string.");
            var key = Convert.ToString(c, CultureInfo.InvariantCulture)!;
            if (!seen.Add(key)) throw new SearchSpaceException($"{where}parameter '{Name}': choice '{key}' is listed twice.");
        }
    }

    internal override JsonObject ToJson() => new()
    {
        ["type"] = "choice",
        ["values"] = new JsonArray(Choices.Select(c => c switch
        {
            string s => (JsonNode)s,
            int i => i,
            long l => l,
            double d => d,
            _ => throw new InvalidOperationException(),
        }).ToArray()),
    };
}

/// <summary>An ordered set of parameter domains.</summary>
public sealed class SearchSpace
{
    private readonly ParamDomain[] _params;

    /// <summary>Creates and validates a space. <paramref name="known"/>, when given, lists the parameter names allowed.</summary>
    public SearchSpace(IEnumerable<ParamDomain> parameters, IReadOnlyCollection<string>? known = null, string? source = null)
    {
        _params = parameters.ToArray();
        string where = source is null ? "search space: " : $"{source}: ";
        if (_params.Length == 0) throw new SearchSpaceException($"{where}the search space is empty; give at least one parameter.");
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var p in _params)
        {
            if (string.IsNullOrWhiteSpace(p.Name)) throw new SearchSpaceException($"{where}a parameter has no name.");
            if (!names.Add(p.Name)) throw new SearchSpaceException($"{where}parameter '{p.Name}' is defined twice.");
            if (known is not null && !known.Contains(p.Name))
                throw new SearchSpaceException($"{where}unknown parameter '{p.Name}'; known parameters: {string.Join(", ", known)}.");
            p.Validate(where);
        }
    }

    /// <summary>The parameters in order.</summary>
    public IReadOnlyList<ParamDomain> Parameters => _params;

    /// <summary>The parameter called <paramref name="name"/>.</summary>
    public ParamDomain this[string name] => _params.FirstOrDefault(p => p.Name == name)
        ?? throw new KeyNotFoundException($"the search space has no parameter '{name}'.");

    /// <summary>Whether the space has <paramref name="name"/>.</summary>
    public bool Has(string name) => _params.Any(p => p.Name == name);

    /// <summary>The number of points a grid search visits.</summary>
    public long GridSize => _params.Aggregate(1L, (n, p) => n * p.GridPoints().Count);

    /// <summary>The space as JSON (the format <see cref="FromJson"/> reads).</summary>
    public string ToJson()
    {
        var o = new JsonObject();
        foreach (var p in _params) o[p.Name] = p.ToJson();
        return o.ToJsonString(new JsonSerializerOptions { WriteIndented = false });
    }

    /// <summary>Readable parameter values.</summary>
    public IReadOnlyDictionary<string, string> Display(IReadOnlyDictionary<string, double> values) =>
        _params.Where(p => values.ContainsKey(p.Name)).ToDictionary(p => p.Name, p => p.Display(values[p.Name]));

    /// <summary>Reads a space file (see docs/automl.md); errors name the file and the parameter.</summary>
    public static SearchSpace FromFile(string path, IReadOnlyCollection<string>? known = null)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: search space file not found.", path);
        return FromJson(File.ReadAllText(path), known, path);
    }

    /// <summary>
    /// Reads a space: <c>{"learningRate": {"type": "loguniform", "low": 1e-4, "high": 1e-2}, "epochs": {"type": "int", "low": 2,
    /// "high": 8}, "batchSize": {"type": "choice", "values": [16, 32, 64]}}</c>. Types: uniform, loguniform, int, choice.
    /// </summary>
    public static SearchSpace FromJson(string json, IReadOnlyCollection<string>? known = null, string source = "search space")
    {
        JsonNode? root;
        try { root = JsonNode.Parse(json); }
        catch (JsonException ex) { throw new SearchSpaceException($"{source}: not valid JSON ({ex.Message})."); }
        if (root is not JsonObject obj) throw new SearchSpaceException($"{source}: expected a JSON object of parameter name to domain.");
        var list = new List<ParamDomain>();
        foreach (var (name, node) in obj)
        {
            string where = $"{source}: parameter '{name}'";
            if (node is not JsonObject d) throw new SearchSpaceException($"{where}: expected an object with \"type\".");
            var type = Str(d, "type", where);
            foreach (var key in d.Select(kv => kv.Key))
                if (key is not ("type" or "low" or "high" or "values" or "log" or "grid"))
                    throw new SearchSpaceException($"{where}: unknown key '{key}' (allowed: type, low, high, values, log, grid).");
            switch (type)
            {
                case "uniform":
                case "loguniform":
                case "float":
                    list.Add(new FloatParam(name, Num(d, "low", where), Num(d, "high", where),
                        type == "loguniform" || (d["log"]?.GetValue<bool>() ?? false),
                        d["grid"] is JsonArray ga ? ga.Select(g => Number(g, where)).ToArray() : null));
                    break;
                case "int":
                    double lo = Num(d, "low", where), hi = Num(d, "high", where);
                    if (lo != Math.Round(lo) || hi != Math.Round(hi)) throw new SearchSpaceException($"{where}: an int range needs whole numbers (got {lo}..{hi}).");
                    list.Add(new IntParam(name, (int)lo, (int)hi, d["log"]?.GetValue<bool>() ?? false,
                        d["grid"] is JsonArray gi ? gi.Select(g => (int)Number(g, where)).ToArray() : null));
                    break;
                case "choice":
                case "categorical":
                    if (d["values"] is not JsonArray values) throw new SearchSpaceException($"{where}: a choice needs \"values\": [...].");
                    list.Add(new ChoiceParam(name, values.Select(v => v is JsonValue jv && jv.TryGetValue<string>(out var s) ? (object)s
                        : Number(v, where) is var x && x == Math.Round(x) && Math.Abs(x) < int.MaxValue ? (object)(int)x : (object)x).ToArray()));
                    break;
                default:
                    throw new SearchSpaceException($"{where}: unknown type '{type}' (allowed: uniform, loguniform, int, choice).");
            }
        }
        return new SearchSpace(list, known, source);
    }

    private static string Str(JsonObject d, string key, string where) =>
        d[key] is JsonValue v && v.TryGetValue<string>(out var s) ? s : throw new SearchSpaceException($"{where}: \"{key}\" must be a string.");

    private static double Num(JsonObject d, string key, string where) =>
        d[key] is null ? throw new SearchSpaceException($"{where}: \"{key}\" is missing.") : Number(d[key], where);

    private static double Number(JsonNode? n, string where) =>
        n is JsonValue v && v.TryGetValue<double>(out var x) ? x : throw new SearchSpaceException($"{where}: '{n?.ToJsonString()}' is not a number.");
}

/// <summary>SplitMix64: a small seeded generator whose stream never changes between .NET versions.</summary>
public sealed class SplitMix(ulong seed)
{
    private ulong _state = seed;

    /// <summary>A generator for (seed, stream): independent streams per trial make suggestions reproducible.</summary>
    public static SplitMix For(int seed, long stream) => new((ulong)(uint)seed * 0x9E3779B97F4A7C15UL ^ (ulong)stream * 0xD1B54A32D192ED03UL ^ 0x2545F4914F6CDD1DUL);

    /// <summary>The next 64 random bits.</summary>
    public ulong NextULong()
    {
        ulong z = _state += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    /// <summary>Uniform in [0, 1).</summary>
    public double NextDouble() => (NextULong() >> 11) * (1.0 / (1UL << 53));

    /// <summary>Standard normal (Box-Muller).</summary>
    public double NextGaussian()
    {
        double u1 = 1.0 - NextDouble(), u2 = NextDouble();
        return Math.Sqrt(-2.0 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2);
    }
}

using MlNetFineTune.Tensors;

namespace MlNetFineTune.Models.Nn;

/// <summary>
/// A building block with named parameters, buffers and child modules, addressed by PyTorch state-dict
/// names ("encoder.layer.0.attention.self.query.weight"), with train/eval mode and freezing by prefix.
/// </summary>
public abstract class Module
{
    private readonly List<(string Name, Tensor Tensor)> _parameters = [];
    private readonly List<(string Name, Tensor Tensor)> _buffers = [];
    private readonly List<(string Name, Module Module)> _children = [];

    /// <summary>True in training mode (dropout active, batch norm uses batch statistics).</summary>
    public bool Training { get; private set; } = true;

    /// <summary>Registers a trainable parameter (sets RequiresGrad) under <paramref name="name"/>.</summary>
    protected Tensor RegisterParameter(string name, Tensor value)
    {
        CheckName(name);
        value.RequiresGrad = true;
        _parameters.Add((name, value));
        return value;
    }

    /// <summary>Registers a non-trainable state tensor (e.g. running statistics).</summary>
    protected Tensor RegisterBuffer(string name, Tensor value)
    {
        CheckName(name);
        _buffers.Add((name, value));
        return value;
    }

    /// <summary>Registers a child module under <paramref name="name"/>.</summary>
    protected T RegisterModule<T>(string name, T module) where T : Module
    {
        CheckName(name);
        _children.Add((name, module));
        return module;
    }

    private void CheckName(string name)
    {
        if (string.IsNullOrEmpty(name) || name.Contains('.'))
            throw new ArgumentException($"Invalid member name '{name}' (must be non-empty, without '.').");
        if (_parameters.Any(p => p.Name == name) || _buffers.Any(b => b.Name == name) || _children.Any(c => c.Name == name))
            throw new ArgumentException($"'{name}' is already registered in {GetType().Name}.");
    }

    /// <summary>Direct children with their names.</summary>
    public IEnumerable<(string Name, Module Module)> NamedChildren() => _children;

    /// <summary>Every module below this one (depth first), with dotted names; this module has name "".</summary>
    public IEnumerable<(string Name, Module Module)> NamedModules(string prefix = "")
    {
        yield return (prefix, this);
        foreach (var (n, m) in _children)
            foreach (var x in m.NamedModules(Join(prefix, n))) yield return x;
    }

    /// <summary>All parameters with their state-dict names, in registration order.</summary>
    public IEnumerable<(string Name, Tensor Parameter)> NamedParameters(string prefix = "")
    {
        foreach (var (n, p) in _parameters) yield return (Join(prefix, n), p);
        foreach (var (n, m) in _children)
            foreach (var x in m.NamedParameters(Join(prefix, n))) yield return x;
    }

    /// <summary>All buffers with their state-dict names.</summary>
    public IEnumerable<(string Name, Tensor Buffer)> NamedBuffers(string prefix = "")
    {
        foreach (var (n, b) in _buffers) yield return (Join(prefix, n), b);
        foreach (var (n, m) in _children)
            foreach (var x in m.NamedBuffers(Join(prefix, n))) yield return x;
    }

    /// <summary>The parameters alone.</summary>
    public IEnumerable<Tensor> Parameters() => NamedParameters().Select(p => p.Parameter);

    /// <summary>The parameters that currently require gradients (not frozen).</summary>
    public IEnumerable<Tensor> TrainableParameters() => Parameters().Where(p => p.RequiresGrad);

    /// <summary>Total number of parameter elements.</summary>
    public long ParameterCount() => Parameters().Sum(p => (long)p.Numel);

    private static string Join(string prefix, string name) => prefix.Length == 0 ? name : prefix + "." + name;

    /// <summary>Parameters and buffers by state-dict name (the live tensors, not copies).</summary>
    public Dictionary<string, Tensor> StateDict()
    {
        var d = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var (n, p) in NamedParameters()) d[n] = p;
        foreach (var (n, b) in NamedBuffers()) d[n] = b;
        return d;
    }

    /// <summary>
    /// Copies values from <paramref name="state"/> into this module's tensors (in place, so optimizers keep
    /// their references). A shape mismatch names the parameter and both shapes. With <paramref name="strict"/>,
    /// missing or unexpected keys are errors; otherwise they are returned.
    /// </summary>
    public LoadStateResult LoadStateDict(IReadOnlyDictionary<string, Tensor> state, bool strict = true)
    {
        ArgumentNullException.ThrowIfNull(state);
        var own = StateDict();
        var missing = own.Keys.Where(k => !state.ContainsKey(k)).ToList();
        var unexpected = state.Keys.Where(k => !own.ContainsKey(k)).ToList();
        if (strict && (missing.Count > 0 || unexpected.Count > 0))
            throw new InvalidDataException(
                $"State dict does not match {GetType().Name}: " +
                (missing.Count > 0 ? $"missing {string.Join(", ", missing.Take(10))}{(missing.Count > 10 ? $" (+{missing.Count - 10} more)" : "")}. " : "") +
                (unexpected.Count > 0 ? $"unexpected {string.Join(", ", unexpected.Take(10))}{(unexpected.Count > 10 ? $" (+{unexpected.Count - 10} more)" : "")}." : ""));
        foreach (var (name, target) in own)
        {
            if (!state.TryGetValue(name, out var src)) continue;
            if (!src.Shape.SequenceEqual(target.Shape))
                throw new InvalidDataException($"Parameter '{name}' has shape {Fmt(src.Shape)} in the checkpoint but {Fmt(target.Shape)} in the model.");
            CopyValues(src, target, name);
        }
        return new LoadStateResult(missing, unexpected);
    }

    internal static void CopyValues(Tensor src, Tensor target, string name)
    {
        if (target.DType == DType.Float32)
        {
            var values = src.DType == DType.Float32 ? src.Dense<float>() : src.ToArray();
            values.AsSpan().CopyTo(target.AsSpan());
        }
        else if (target.DType == DType.Int64)
        {
            var values = src.ToInt64Array();
            values.AsSpan().CopyTo(((long[])target.Storage).AsSpan(target.Offset, target.Numel));
        }
        else throw new NotSupportedException($"Cannot load '{name}' into a {target.DType} tensor.");
    }

    private static string Fmt(IReadOnlyList<int> s) => "[" + string.Join(", ", s) + "]";

    /// <summary>Sets training mode here and in every child.</summary>
    public void Train(bool on = true)
    {
        foreach (var (_, m) in NamedModules()) m.Training = on;
    }

    /// <summary>Sets evaluation mode here and in every child.</summary>
    public void Eval() => Train(false);

    /// <summary>
    /// Stops gradients for every parameter whose name starts with one of <paramref name="prefixes"/> (all
    /// when none given). Returns how many tensors were frozen.
    /// </summary>
    public int Freeze(params string[] prefixes) => SetTrainable(false, prefixes);

    /// <summary>Re-enables gradients for parameters whose names start with one of the prefixes (all when none).</summary>
    public int Unfreeze(params string[] prefixes) => SetTrainable(true, prefixes);

    private int SetTrainable(bool on, string[] prefixes)
    {
        int n = 0;
        foreach (var (name, p) in NamedParameters())
        {
            if (prefixes.Length > 0 && !prefixes.Any(pre => name == pre || name.StartsWith(pre.EndsWith('.') ? pre : pre + ".", StringComparison.Ordinal)))
                continue;
            p.RequiresGrad = on;
            if (!on) p.Grad = null;
            n++;
        }
        return n;
    }

    /// <summary>Clears every parameter's gradient.</summary>
    public void ZeroGrad()
    {
        foreach (var p in Parameters()) p.Grad = null;
    }
}

/// <summary>A module mapping one tensor to one tensor.</summary>
public abstract class UnaryModule : Module
{
    /// <summary>Computes the output.</summary>
    public abstract Tensor Forward(Tensor input);
}

/// <summary>Keys that did not line up when loading a state dict non-strictly.</summary>
public sealed record LoadStateResult(IReadOnlyList<string> MissingKeys, IReadOnlyList<string> UnexpectedKeys);

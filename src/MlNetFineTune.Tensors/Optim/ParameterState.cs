using System.Diagnostics.CodeAnalysis;

namespace MlNetFineTune.Tensors.Optim;

/// <summary>
/// The optimizer state of one parameter: how many updates it has had and its named float buffers
/// (<c>momentum_buffer</c>, <c>exp_avg</c>, <c>exp_avg_sq</c>, ...), each with one value per parameter element.
/// Created lazily on the parameter's first update, like PyTorch's <c>optimizer.state[p]</c>.
/// </summary>
public sealed class ParameterState
{
    private readonly Dictionary<string, float[]> _buffers = new(StringComparer.Ordinal);

    internal ParameterState(int length) => Length = length;

    /// <summary>The number of elements of the parameter; every buffer has this length.</summary>
    public int Length { get; }

    /// <summary>Updates applied to this parameter so far (during an update: including the current one).</summary>
    public long Step { get; set; }

    /// <summary>The buffers by name. The arrays are live: writing them changes the optimizer state.</summary>
    public IReadOnlyDictionary<string, float[]> Buffers => _buffers;

    /// <summary>Looks up the buffer <paramref name="name"/>.</summary>
    public bool TryGetBuffer(string name, [NotNullWhen(true)] out float[]? buffer) => _buffers.TryGetValue(name, out buffer);

    /// <summary>The buffer <paramref name="name"/>, created filled with zeros when missing.</summary>
    public float[] GetOrCreateBuffer(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (!_buffers.TryGetValue(name, out var b))
        {
            b = new float[Length];
            _buffers[name] = b;
        }
        return b;
    }

    internal void SetBuffer(string name, float[] values)
    {
        if (values.Length != Length) throw new ArgumentException($"Buffer '{name}' has {values.Length} values; the parameter has {Length}.");
        _buffers[name] = values;
    }
}

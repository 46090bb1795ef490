using System.Text;

namespace MlNetFineTune.Models.Formats;

/// <summary>
/// Resolves torch.save persistent ids to <see cref="TorchStorage"/>s. Zip format ids are
/// <c>('storage', torch.XStorage, key, location, numel)</c>; legacy ids add a sixth item, <c>view_metadata</c>
/// (None or <c>(view_key, offset, view_numel)</c>). The same key always resolves to the same storage.
/// </summary>
internal sealed class TorchStorageResolver
{
    private readonly bool _legacy;
    private readonly Action<string, TorchDType, long>? _checkRoot;
    private readonly Dictionary<string, TorchStorage> _roots = new(StringComparer.Ordinal);
    private readonly Dictionary<string, TorchStorage> _views = new(StringComparer.Ordinal);

    /// <param name="legacy">Expect legacy 6-item ids.</param>
    /// <param name="checkRoot">Called once per new root storage (key, dtype, numel) before it is accepted; throws <see cref="TorchPickleError"/>.</param>
    public TorchStorageResolver(bool legacy, Action<string, TorchDType, long>? checkRoot)
    {
        _legacy = legacy;
        _checkRoot = checkRoot;
    }

    /// <summary>Root storages by key, in first-reference order.</summary>
    public IReadOnlyDictionary<string, TorchStorage> Roots => _roots;

    public TorchStorage Resolve(PickleTuple pid)
    {
        int expected = _legacy ? 6 : 5;
        if (pid.Count == 0 || AsText(pid[0]) != "storage")
            throw new TorchPickleError("persistent id is not a ('storage', ...) tuple.");
        if (pid.Count != expected)
            throw new TorchPickleError($"storage persistent id has {pid.Count} items, expected {expected}.");
        if (pid[1] is not PickleGlobal g || !TorchRestrictedUnpickler.IsStorageType(g, out var dtype))
            throw new TorchPickleError($"storage type must be a torch.*Storage class, found {TorchRestrictedUnpickler.Describe(pid[1])}.");
        string key = AsText(pid[2]) ?? throw new TorchPickleError("storage key must be a str.");
        string location = AsText(pid[3]) ?? throw new TorchPickleError("storage location must be a str.");
        if (pid[4] is not long numel || numel < 0) throw new TorchPickleError("storage numel must be a non-negative int.");
        int es = TorchTensorMaterializer.ElementSize(dtype);
        if ((Int128)numel * es > Array.MaxLength)
            throw new TorchPickleError($"storage '{key}' of {numel} {dtype} elements is larger than {Array.MaxLength} bytes, the largest supported.");

        if (_roots.TryGetValue(key, out var root))
        {
            if (root.DType != dtype || root.RootNumel != numel)
                throw new TorchPickleError($"storage '{key}' is referenced as {dtype}[{numel}] after {root.DType}[{root.RootNumel}].");
        }
        else
        {
            _checkRoot?.Invoke(key, dtype, numel);
            root = new TorchStorage(key, dtype, location, numel, numel, 0);
            _roots[key] = root;
        }
        if (!_legacy || pid[5] is null) return root;

        if (pid[5] is not PickleTuple view || view.Count != 3 || AsText(view[0]) is not string viewKey
            || view[1] is not long offset || view[2] is not long viewNumel)
            throw new TorchPickleError("legacy storage view metadata must be (view_key, offset, size).");
        if (offset < 0 || viewNumel < 0 || offset > numel || viewNumel > numel - offset)
            throw new TorchPickleError($"storage view '{viewKey}' [{offset}, {offset}+{viewNumel}) is outside its storage of {numel} elements.");
        if (_views.TryGetValue(viewKey, out var existing))
        {
            if (existing.Key != key || existing.ElementOffset != offset || existing.Numel != viewNumel)
                throw new TorchPickleError($"storage view '{viewKey}' is defined twice differently.");
            return existing;
        }
        var v = new TorchStorage(key, dtype, location, viewNumel, numel, offset);
        _views[viewKey] = v;
        return v;
    }

    private static string? AsText(object? o) => o switch
    {
        string s => s,
        byte[] b when b.All(x => x < 0x80) => Encoding.ASCII.GetString(b),
        _ => null,
    };
}

namespace MlNetFineTune.Tensors.IO;

/// <summary>Loads and saves named <see cref="Tensor"/>s in the safetensors format.</summary>
public static class SafeTensors
{
    /// <summary>
    /// Reads every tensor of a safetensors file: F32/F16/BF16 become Float32 tensors, I64/I32 become Int64
    /// and Int32 tensors. A corrupt file raises <see cref="SafeTensorsFormatException"/> naming file and tensor.
    /// </summary>
    public static Dictionary<string, Tensor> Load(string path) => Load(path, out _);

    /// <summary>Reads every tensor and the file's string metadata.</summary>
    public static Dictionary<string, Tensor> Load(string path, out IReadOnlyDictionary<string, string> metadata)
    {
        using var file = SafeTensorsFile.Open(path);
        metadata = file.Metadata;
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var info in file.Tensors) result[info.Name] = Read(file, info);
        return result;
    }

    /// <summary>Reads one tensor of an open file.</summary>
    public static Tensor Read(SafeTensorsFile file, SafeTensorInfo info)
    {
        ArgumentNullException.ThrowIfNull(file);
        var shape = new int[info.Rank];
        for (int i = 0; i < shape.Length; i++)
        {
            long d = info.GetDimension(i);
            if (d > int.MaxValue)
                throw new SafeTensorsFormatException($"{file.SourceName}: tensor '{info.Name}' dimension {i} ({d}) is too large.");
            shape[i] = (int)d;
        }
        Tensor t = info.DType switch
        {
            SafeTensorDType.F32 or SafeTensorDType.F16 or SafeTensorDType.BF16 => Tensor.Wrap(file.ReadFloat32(info.Name), shape),
            SafeTensorDType.I32 => new Tensor(file.ReadInt32(info.Name), DType.Int32, shape, Tensor.ContiguousStrides(shape), 0),
            SafeTensorDType.I64 => new Tensor(file.ReadInt64(info.Name), DType.Int64, shape, Tensor.ContiguousStrides(shape), 0),
            _ => throw new NotSupportedException($"{file.SourceName}: tensor '{info.Name}' has dtype {info.DType}, which MlNetFineTune does not load (F32, F16, BF16, I32, I64 are supported)."),
        };
        t.Name = info.Name;
        return t;
    }

    /// <summary>
    /// Writes tensors atomically (temp file, then rename): float tensors as F32, or F16 when
    /// <paramref name="halfPrecision"/> is set; integer tensors keep their type.
    /// </summary>
    public static void Save(string path, IEnumerable<KeyValuePair<string, Tensor>> tensors,
        IReadOnlyDictionary<string, string>? metadata = null, bool halfPrecision = false)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        var entries = new List<SafeTensorWriteEntry>();
        foreach (var (name, t) in tensors)
        {
            var shape = t.Shape.Select(d => (long)d).ToArray();
            entries.Add(t.DType switch
            {
                DType.Float32 => new SafeTensorWriteEntry(name, halfPrecision ? SafeTensorDType.F16 : SafeTensorDType.F32, shape, t.Dense<float>()),
                DType.Int64 => new SafeTensorWriteEntry(name, SafeTensorDType.I64, shape, t.Dense<long>()),
                _ => new SafeTensorWriteEntry(name, SafeTensorDType.I32, shape, t.Dense<int>()),
            });
        }
        SafeTensorsWriter.Write(path, entries, metadata);
    }
}

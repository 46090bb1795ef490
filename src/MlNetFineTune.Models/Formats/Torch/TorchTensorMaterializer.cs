using System.Buffers.Binary;
using System.Runtime.InteropServices;
using MlNetFineTune.Tensors;

namespace MlNetFineTune.Models.Formats;

/// <summary>Checks a saved tensor's geometry against its storage before anything is allocated.</summary>
internal static class TorchTensorGeometry
{
    /// <summary>Returns the element count; throws <see cref="TorchPickleError"/> when the view does not fit its storage.</summary>
    public static long Validate(long[] size, long[] stride, long offset, long storageNumel)
    {
        if (offset < 0) throw new TorchPickleError($"negative storage offset {offset}.");
        bool empty = false;
        for (int i = 0; i < size.Length; i++)
        {
            if (size[i] < 0) throw new TorchPickleError($"negative tensor size {size[i]} in dim {i}.");
            if (size[i] > int.MaxValue) throw new TorchPickleError($"tensor size {size[i]} in dim {i} exceeds {int.MaxValue}.");
            if (stride[i] < 0) throw new TorchPickleError($"negative tensor stride {stride[i]} in dim {i}.");
            if (size[i] == 0) empty = true;
        }
        if (empty)
        {
            if (offset > storageNumel) throw new TorchPickleError($"storage offset {offset} is past the storage's {storageNumel} elements.");
            return 0;
        }
        long numel = 1;
        foreach (long s in size)
        {
            if ((Int128)numel * s > Array.MaxLength)
                throw new TorchPickleError($"tensor of size [{string.Join(", ", size)}] has more than {Array.MaxLength} elements.");
            numel *= s;
        }
        Int128 last = offset;
        for (int i = 0; i < size.Length; i++) last += (Int128)(size[i] - 1) * stride[i];
        if (last >= storageNumel)
            throw new TorchPickleError($"tensor of size [{string.Join(", ", size)}], stride [{string.Join(", ", stride)}] and offset {offset} "
                + $"reaches element {last} but its storage has {storageNumel} elements.");
        return numel;
    }
}

/// <summary>Where the raw bytes of storages come from (a zip record or a legacy storage block).</summary>
internal interface ITorchStorageSource
{
    /// <summary>The raw bytes of <paramref name="storage"/>'s stored block: exactly RootNumel × element size bytes.</summary>
    byte[] ReadStorage(TorchStorage storage);

    /// <summary>True when the stored data is big-endian.</summary>
    bool BigEndian { get; }
}

/// <summary>
/// Bounds the bytes of the dense tensors a checkpoint may produce, so stride-0 / overlapping views or a tensor
/// referenced many times cannot turn a small file into a huge allocation. Every produced tensor is charged before
/// anything is allocated for it.
/// </summary>
internal sealed class TorchTensorBudget
{
    private const long PerTensorOverhead = 64;
    private readonly string _file;
    private long _used;

    public TorchTensorBudget(IEnumerable<TorchTensorValue> tensors, TorchLoadOptions options, string file)
    {
        _file = file;
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var t in tensors)
            if (seen.Add(t.Storage.Key)) StorageBytes += t.Storage.RootNumel * TorchTensorMaterializer.ElementSize(t.Storage.DType);
        Limit = options.MaxTotalTensorBytes ?? (4 * StorageBytes + (64L << 20));
    }

    public long StorageBytes { get; }

    public long Limit { get; }

    public void Charge(TorchTensorValue v)
    {
        long n = 1;
        foreach (long s in v.SizeArray) n *= s; // validated: fits in Array.MaxLength
        _used += n * (TorchTensorMaterializer.EngineDType(v.SourceDType) == DType.Int64 ? 8 : 4) + PerTensorOverhead;
        if (_used > Limit)
            throw new TorchCheckpointFormatException(
                $"{_file}: the tensors would need more than {Limit} bytes once made dense (stride-0 or overlapping views, or tensors "
                + $"referenced many times, over {StorageBytes} bytes of storage); raise TorchLoadOptions.MaxTotalTensorBytes if the file is trusted.",
                _file, null, null);
    }
}

/// <summary>Turns saved tensors into dense engine tensors (gathering strided views, converting dtypes).</summary>
internal static class TorchTensorMaterializer
{
    public static int ElementSize(TorchDType dtype) => dtype switch
    {
        TorchDType.Float32 or TorchDType.Int32 => 4,
        TorchDType.Float64 or TorchDType.Int64 or TorchDType.Complex64 => 8,
        TorchDType.Float16 or TorchDType.BFloat16 or TorchDType.Int16 => 2,
        TorchDType.Int8 or TorchDType.UInt8 or TorchDType.Bool => 1,
        TorchDType.Complex128 => 16,
        _ => throw new ArgumentOutOfRangeException(nameof(dtype)),
    };

    /// <summary>The engine dtype a saved dtype loads as.</summary>
    public static DType EngineDType(TorchDType dtype) => dtype switch
    {
        TorchDType.Float32 or TorchDType.Float64 or TorchDType.Float16 or TorchDType.BFloat16 => DType.Float32,
        TorchDType.Int64 => DType.Int64,
        TorchDType.Int32 or TorchDType.Int16 or TorchDType.Int8 or TorchDType.UInt8 or TorchDType.Bool => DType.Int32,
        _ => throw new NotSupportedException($"Tensors of dtype {dtype} are not supported."),
    };

    /// <summary>
    /// Materializes <paramref name="values"/> (one fresh tensor per item, in order, named by <paramref name="names"/>
    /// when given). Storages are read once each and released as soon as their last tensor is built. The caller has
    /// charged every item to a <see cref="TorchTensorBudget"/> first.
    /// </summary>
    public static Tensor[] Materialize(IReadOnlyList<TorchTensorValue> values, IReadOnlyList<string>? names, ITorchStorageSource source)
    {
        var groups = new Dictionary<string, List<int>>(StringComparer.Ordinal);
        var order = new List<string>();
        for (int i = 0; i < values.Count; i++)
        {
            string key = values[i].Storage.Key;
            if (!groups.TryGetValue(key, out var list))
            {
                groups[key] = list = new List<int>();
                order.Add(key);
            }
            list.Add(i);
        }

        var result = new Tensor[values.Count];
        foreach (var key in order)
        {
            var indices = groups[key];
            byte[] raw = source.ReadStorage(values[indices[0]].Storage);
            foreach (int i in indices)
            {
                var t = Convert(raw, values[i], source.BigEndian);
                if (names is not null) t.Name = names[i];
                result[i] = t;
            }
        }
        return result;
    }

    /// <summary>Gathers one tensor from its stored block into a dense row-major engine tensor.</summary>
    internal static Tensor Convert(byte[] raw, TorchTensorValue v, bool bigEndian)
    {
        var dtype = v.SourceDType;
        int es = ElementSize(dtype);
        var size = v.SizeArray;
        var stride = v.StrideArray;
        var shape = new int[size.Length];
        long numel = 1;
        for (int i = 0; i < size.Length; i++)
        {
            shape[i] = (int)size[i];
            numel *= size[i];
        }
        long baseIndex = v.Storage.ElementOffset + v.StorageOffset;
        if (raw.LongLength < (v.Storage.ElementOffset + v.Storage.Numel) * es)
            throw new InvalidOperationException($"Storage '{v.Storage.Key}' block is shorter than its validated size."); // unreachable

        switch (EngineDType(dtype))
        {
            case DType.Float32:
            {
                var data = new float[numel];
                Gather(raw, baseIndex, size, stride, data, dtype, bigEndian);
                return Tensor.Wrap(data, shape);
            }
            case DType.Int64:
            {
                var data = new long[numel];
                Gather(raw, baseIndex, size, stride, data, dtype, bigEndian);
                return shape.Length == 0 ? Tensor.FromArray(data, 1).Reshape() : Tensor.FromArray(data, shape);
            }
            default:
            {
                var data = new int[numel];
                Gather(raw, baseIndex, size, stride, data, dtype, bigEndian);
                return shape.Length == 0 ? Tensor.FromArray(data, 1).Reshape() : Tensor.FromArray(data, shape);
            }
        }
    }

    /// <summary>Row-major walk over the view; each innermost run is converted by <see cref="ConvertRun{T}"/>.</summary>
    private static void Gather<T>(byte[] raw, long baseIndex, long[] size, long[] stride, T[] dst, TorchDType dtype, bool bigEndian)
        where T : struct
    {
        if (dst.Length == 0) return;
        int rank = size.Length;
        if (rank == 0)
        {
            ConvertRun(raw, baseIndex, 1, 1, dst.AsSpan(), dtype, bigEndian);
            return;
        }
        // Contiguous fast path: one run over the whole tensor.
        bool contiguous = true;
        long expect = 1;
        for (int d = rank - 1; d >= 0; d--)
        {
            if (size[d] != 1 && stride[d] != expect) { contiguous = false; break; }
            expect *= size[d];
        }
        if (contiguous)
        {
            ConvertRun(raw, baseIndex, 1, dst.Length, dst.AsSpan(), dtype, bigEndian);
            return;
        }
        int inner = (int)size[rank - 1];
        long innerStride = stride[rank - 1];
        var idx = new long[rank];
        long src = baseIndex;
        int pos = 0;
        while (true)
        {
            ConvertRun(raw, src, innerStride, inner, dst.AsSpan(pos, inner), dtype, bigEndian);
            pos += inner;
            if (pos >= dst.Length) return;
            int dim = rank - 2;
            while (true)
            {
                idx[dim]++;
                src += stride[dim];
                if (idx[dim] < size[dim]) break;
                src -= stride[dim] * size[dim];
                idx[dim] = 0;
                dim--;
            }
        }
    }

    private static void ConvertRun<T>(byte[] raw, long start, long step, int count, Span<T> dst, TorchDType dtype, bool be)
        where T : struct
    {
        if (typeof(T) == typeof(float)) ConvertFloat(raw, start, step, count, MemoryMarshal.Cast<T, float>(dst), dtype, be);
        else if (typeof(T) == typeof(long)) ConvertInt64(raw, start, step, count, MemoryMarshal.Cast<T, long>(dst), be);
        else ConvertInt32(raw, start, step, count, MemoryMarshal.Cast<T, int>(dst), dtype, be);
    }

    private static void ConvertFloat(byte[] raw, long start, long step, int count, Span<float> dst, TorchDType dtype, bool be)
    {
        var r = raw.AsSpan();
        switch (dtype)
        {
            case TorchDType.Float32:
                if (step == 1 && !be && BitConverter.IsLittleEndian)
                {
                    MemoryMarshal.Cast<byte, float>(r.Slice(checked((int)(start * 4)), count * 4)).CopyTo(dst);
                    return;
                }
                for (int i = 0; i < count; i++)
                {
                    var s = r.Slice((int)((start + i * step) * 4), 4);
                    dst[i] = be ? BinaryPrimitives.ReadSingleBigEndian(s) : BinaryPrimitives.ReadSingleLittleEndian(s);
                }
                return;
            case TorchDType.Float64:
                for (int i = 0; i < count; i++)
                {
                    var s = r.Slice((int)((start + i * step) * 8), 8);
                    dst[i] = (float)(be ? BinaryPrimitives.ReadDoubleBigEndian(s) : BinaryPrimitives.ReadDoubleLittleEndian(s));
                }
                return;
            case TorchDType.Float16:
                for (int i = 0; i < count; i++)
                {
                    var s = r.Slice((int)((start + i * step) * 2), 2);
                    dst[i] = (float)(be ? BinaryPrimitives.ReadHalfBigEndian(s) : BinaryPrimitives.ReadHalfLittleEndian(s));
                }
                return;
            case TorchDType.BFloat16:
                for (int i = 0; i < count; i++)
                {
                    var s = r.Slice((int)((start + i * step) * 2), 2);
                    int bits = be ? BinaryPrimitives.ReadUInt16BigEndian(s) : BinaryPrimitives.ReadUInt16LittleEndian(s);
                    dst[i] = BitConverter.Int32BitsToSingle(bits << 16);
                }
                return;
            default:
                throw new NotSupportedException($"dtype {dtype} does not load as float32.");
        }
    }

    private static void ConvertInt64(byte[] raw, long start, long step, int count, Span<long> dst, bool be)
    {
        var r = raw.AsSpan();
        for (int i = 0; i < count; i++)
        {
            var s = r.Slice((int)((start + i * step) * 8), 8);
            dst[i] = be ? BinaryPrimitives.ReadInt64BigEndian(s) : BinaryPrimitives.ReadInt64LittleEndian(s);
        }
    }

    private static void ConvertInt32(byte[] raw, long start, long step, int count, Span<int> dst, TorchDType dtype, bool be)
    {
        var r = raw.AsSpan();
        for (int i = 0; i < count; i++)
        {
            long e = start + i * step;
            dst[i] = dtype switch
            {
                TorchDType.Int32 => be ? BinaryPrimitives.ReadInt32BigEndian(r.Slice((int)(e * 4), 4)) : BinaryPrimitives.ReadInt32LittleEndian(r.Slice((int)(e * 4), 4)),
                TorchDType.Int16 => be ? BinaryPrimitives.ReadInt16BigEndian(r.Slice((int)(e * 2), 2)) : BinaryPrimitives.ReadInt16LittleEndian(r.Slice((int)(e * 2), 2)),
                TorchDType.Int8 => (sbyte)r[(int)e],
                TorchDType.UInt8 => r[(int)e],
                TorchDType.Bool => r[(int)e] != 0 ? 1 : 0,
                _ => throw new NotSupportedException($"dtype {dtype} does not load as int32."),
            };
        }
    }
}

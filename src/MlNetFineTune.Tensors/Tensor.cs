using System.Globalization;
using System.Text;

namespace MlNetFineTune.Tensors;

/// <summary>Element type of a <see cref="Tensor"/>.</summary>
public enum DType
{
    /// <summary>32-bit float: activations, parameters, gradients.</summary>
    Float32,
    /// <summary>32-bit integer: ids and labels.</summary>
    Int32,
    /// <summary>64-bit integer: ids and labels (PyTorch's default index type).</summary>
    Int64,
}

/// <summary>
/// An n-dimensional array with shape, strides and an offset into shared storage, so reshape, transpose,
/// narrow, expand and friends are views that copy nothing. Float tensors take part in reverse-mode autograd.
/// </summary>
public sealed partial class Tensor
{
    internal readonly Array Storage;
    internal readonly int[] ShapeArr;
    internal readonly int[] StridesArr;
    internal readonly int Offset;

    /// <summary>This weight packed for the GEMM at inference (<see cref="Cpu.WeightPackCache"/>), if any.</summary>
    internal Cpu.WeightPackCache.Entry? PackCache;

    /// <summary>Element type.</summary>
    public DType DType { get; }

    /// <summary>Optional name used in error messages and checkpoints.</summary>
    public string? Name { get; set; }

    internal Tensor(Array storage, DType dtype, int[] shape, int[] strides, int offset)
    {
        Storage = storage;
        DType = dtype;
        ShapeArr = shape;
        StridesArr = strides;
        Offset = offset;
    }

    internal Tensor(float[] data, int[] shape) : this(data, DType.Float32, shape, ContiguousStrides(shape), 0) { }

    /// <summary>The sizes of each dimension.</summary>
    public IReadOnlyList<int> Shape => ShapeArr;

    /// <summary>Element step of each dimension in storage.</summary>
    public IReadOnlyList<int> Strides => StridesArr;

    /// <summary>Number of dimensions.</summary>
    public int Rank => ShapeArr.Length;

    /// <summary>Total number of elements.</summary>
    public int Numel => ShapeUtil.Numel(ShapeArr);

    /// <summary>Size of dimension <paramref name="dim"/> (negative counts from the end).</summary>
    public int Size(int dim) => ShapeArr[ShapeUtil.NormDim(dim, Rank, "size")];

    /// <summary>True when elements are laid out row-major without gaps (the offset may be non-zero).</summary>
    public bool IsContiguous => ShapeUtil.IsContiguous(ShapeArr, StridesArr);

    internal float[] F => Storage as float[] ?? throw new InvalidOperationException($"Tensor{Describe()} is {DType}, expected Float32.");

    internal string Describe() => Name is null ? $" {ShapeUtil.Format(ShapeArr)}" : $" '{Name}' {ShapeUtil.Format(ShapeArr)}";

    internal static int[] ContiguousStrides(int[] shape)
    {
        var s = new int[shape.Length];
        int acc = 1;
        for (int i = shape.Length - 1; i >= 0; i--)
        {
            s[i] = acc;
            acc = checked(acc * Math.Max(shape[i], 1));
        }
        return s;
    }

    // ---------------------------------------------------------------- creation

    /// <summary>A float tensor filled with zeros.</summary>
    public static Tensor Zeros(params int[] shape) => new(new float[ShapeUtil.CheckedNumel(shape)], (int[])shape.Clone());

    /// <summary>A float tensor filled with ones.</summary>
    public static Tensor Ones(params int[] shape) => Full(1f, shape);

    /// <summary>A float tensor filled with <paramref name="value"/>.</summary>
    public static Tensor Full(float value, params int[] shape)
    {
        var d = new float[ShapeUtil.CheckedNumel(shape)];
        Array.Fill(d, value);
        return new Tensor(d, (int[])shape.Clone());
    }

    /// <summary>A zero tensor shaped like <paramref name="like"/>.</summary>
    public static Tensor ZerosLike(Tensor like) => Zeros(like.ShapeArr);

    /// <summary>Values start, start+step, ... below end (float).</summary>
    public static Tensor Arange(float start, float end, float step = 1f)
    {
        if (step == 0 || float.IsNaN(step)) throw new ArgumentException("arange: step must be non-zero.");
        int n = (int)Math.Max(0, Math.Ceiling((end - start) / step));
        var d = new float[n];
        for (int i = 0; i < n; i++) d[i] = start + i * step;
        return new Tensor(d, [n]);
    }

    /// <summary>0, 1, ..., n-1 as Int64.</summary>
    public static Tensor ArangeInt64(int n)
    {
        var d = new long[n];
        for (int i = 0; i < n; i++) d[i] = i;
        return FromArray(d, n);
    }

    /// <summary>A float tensor over a copy of <paramref name="data"/> (shape defaults to 1-D).</summary>
    public static Tensor FromArray(float[] data, params int[] shape)
    {
        shape = shape.Length == 0 ? [data.Length] : (int[])shape.Clone();
        CheckLength(data.Length, shape);
        return new Tensor((float[])data.Clone(), shape);
    }

    /// <summary>An Int64 tensor over a copy of <paramref name="data"/>.</summary>
    public static Tensor FromArray(long[] data, params int[] shape)
    {
        shape = shape.Length == 0 ? [data.Length] : (int[])shape.Clone();
        CheckLength(data.Length, shape);
        return new Tensor((long[])data.Clone(), DType.Int64, shape, ContiguousStrides(shape), 0);
    }

    /// <summary>An Int32 tensor over a copy of <paramref name="data"/>.</summary>
    public static Tensor FromArray(int[] data, params int[] shape)
    {
        shape = shape.Length == 0 ? [data.Length] : (int[])shape.Clone();
        CheckLength(data.Length, shape);
        return new Tensor((int[])data.Clone(), DType.Int32, shape, ContiguousStrides(shape), 0);
    }

    /// <summary>A 0-d float tensor.</summary>
    public static Tensor Scalar(float value) => new([value], []);

    /// <summary>Wraps <paramref name="data"/> without copying (the tensor owns it from now on).</summary>
    public static Tensor Wrap(float[] data, params int[] shape)
    {
        CheckLength(data.Length, shape);
        return new Tensor(data, (int[])shape.Clone());
    }

    private static void CheckLength(int length, int[] shape)
    {
        long n = ShapeUtil.CheckedNumel(shape);
        if (n != length)
            throw new ArgumentException($"Data has {length} elements but shape {ShapeUtil.Format(shape)} needs {n}.");
    }

    /// <summary>Normal(mean, std) samples from the explicit generator <paramref name="rng"/>.</summary>
    public static Tensor RandN(Rng rng, params int[] shape) => RandN(rng, 0f, 1f, shape);

    /// <summary>Normal(mean, std) samples from the explicit generator <paramref name="rng"/>.</summary>
    public static Tensor RandN(Rng rng, float mean, float std, params int[] shape)
    {
        ArgumentNullException.ThrowIfNull(rng);
        var d = new float[ShapeUtil.CheckedNumel(shape)];
        for (int i = 0; i < d.Length; i++) d[i] = mean + std * rng.NextNormal();
        return new Tensor(d, (int[])shape.Clone());
    }

    /// <summary>Uniform [low, high) samples from the explicit generator <paramref name="rng"/>.</summary>
    public static Tensor RandUniform(Rng rng, float low, float high, params int[] shape)
    {
        ArgumentNullException.ThrowIfNull(rng);
        var d = new float[ShapeUtil.CheckedNumel(shape)];
        for (int i = 0; i < d.Length; i++) d[i] = low + (high - low) * rng.NextFloat();
        return new Tensor(d, (int[])shape.Clone());
    }

    // ---------------------------------------------------------------- reading

    /// <summary>Float elements in row-major order (a copy).</summary>
    public float[] ToArray()
    {
        if (DType == DType.Float32) return (float[])Dense<float>().Clone();
        if (DType == DType.Int64) return Array.ConvertAll(Dense<long>(), v => (float)v);
        return Array.ConvertAll(Dense<int>(), v => (float)v);
    }

    /// <summary>Integer elements in row-major order (a copy; float values are truncated).</summary>
    public long[] ToInt64Array()
    {
        if (DType == DType.Int64) return (long[])Dense<long>().Clone();
        if (DType == DType.Int32) return Array.ConvertAll(Dense<int>(), v => (long)v);
        return Array.ConvertAll(Dense<float>(), v => (long)v);
    }

    /// <summary>The single value of a one-element tensor.</summary>
    public float Item()
    {
        if (Numel != 1) throw new InvalidOperationException($"Item() needs exactly one element; tensor{Describe()} has {Numel}.");
        return DType switch
        {
            DType.Float32 => ((float[])Storage)[Offset],
            DType.Int64 => ((long[])Storage)[Offset],
            _ => ((int[])Storage)[Offset],
        };
    }

    /// <summary>
    /// The elements as a dense row-major array of exactly Numel items. Returns the storage itself when it
    /// already is exactly that (callers must not mutate it), else a compacted copy.
    /// </summary>
    internal T[] Dense<T>()
    {
        var src = (T[])Storage;
        int n = Numel;
        if (IsContiguous && Offset == 0 && src.Length == n) return src;
        var dst = GC.AllocateUninitializedArray<T>(n);   // every element is copied in
        StridedCopy.Copy(src, Offset, ShapeArr, StridesArr, dst);
        return dst;
    }

    /// <summary>
    /// Span over a contiguous tensor's elements (writes go to the storage). Each call drops what the engine derived
    /// from this storage (inference weight packs, <see cref="Cpu.WeightPackCache"/>): take a fresh span for each
    /// update rather than writing through one taken before the weight was used.
    /// </summary>
    public Span<float> AsSpan()
    {
        if (!IsContiguous) throw new InvalidOperationException($"AsSpan needs a contiguous tensor; tensor{Describe()} has strides {ShapeUtil.Format(StridesArr)}.");
        var data = F;
        Cpu.StorageVersions.Written(data);   // the caller may write: drop what was derived from the old values
        return data.AsSpan(Offset, Numel);
    }

    /// <summary>A readable rendering; small tensors show all values, large ones a summary.</summary>
    public override string ToString()
    {
        var sb = new StringBuilder("tensor(");
        int n = Numel;
        if (n <= 1000)
        {
            var values = ToArray();
            bool isInt = DType != DType.Float32;
            int pos = 0;
            Render(sb, values, 0, ref pos, isInt, indent: 7);
        }
        else
        {
            sb.Append("...");
        }
        sb.Append(", shape=").Append(ShapeUtil.Format(ShapeArr));
        if (DType != DType.Float32) sb.Append(", dtype=").Append(DType);
        if (RequiresGrad) sb.Append(GradFn is null ? ", requires_grad=True" : $", grad_fn={GradFn.Name}");
        sb.Append(')');
        return sb.ToString();
    }

    private void Render(StringBuilder sb, float[] values, int dim, ref int pos, bool isInt, int indent)
    {
        if (Rank == 0)
        {
            sb.Append(FormatValue(values[0], isInt));
            return;
        }
        sb.Append('[');
        int size = ShapeArr[dim];
        for (int i = 0; i < size; i++)
        {
            if (i > 0)
            {
                sb.Append(',');
                if (dim == Rank - 1) sb.Append(' ');
                else sb.Append('\n').Append(' ', indent + dim + 1);
            }
            if (dim == Rank - 1) sb.Append(FormatValue(values[pos++], isInt));
            else Render(sb, values, dim + 1, ref pos, isInt, indent);
        }
        sb.Append(']');
    }

    private static string FormatValue(float v, bool isInt) =>
        isInt ? ((long)v).ToString(CultureInfo.InvariantCulture) : v.ToString("0.0000", CultureInfo.InvariantCulture);
}

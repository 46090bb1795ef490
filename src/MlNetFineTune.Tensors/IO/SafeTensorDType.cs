namespace MlNetFineTune.Tensors.IO;

/// <summary>
/// Element types of the safetensors format. Member names are the exact strings used in the
/// <c>"dtype"</c> field of a safetensors header (case-sensitive).
/// </summary>
/// <remarks>
/// The members are declared in the same order as the reference implementation's <c>Dtype</c> enum
/// (increasing alignment); the writer lays tensors out in descending order of this ordering and then by
/// name, exactly like the reference <c>serialize</c>/<c>save_file</c>. Only <see cref="F32"/>,
/// <see cref="F16"/>, <see cref="BF16"/>, <see cref="I64"/> and <see cref="I32"/> (plus the narrower
/// integer types for the integer readers) can be converted by <see cref="SafeTensorsFile"/>; every dtype
/// can be read as raw bytes.
/// </remarks>
public enum SafeTensorDType
{
    /// <summary>Boolean, one byte per element.</summary>
    BOOL,
    /// <summary>4-bit MXFP4 float (two elements per byte).</summary>
    F4,
    /// <summary>6-bit MXFP6 float, E2M3 layout.</summary>
    F6_E2M3,
    /// <summary>6-bit MXFP6 float, E3M2 layout.</summary>
    F6_E3M2,
    /// <summary>Unsigned 8-bit integer.</summary>
    U8,
    /// <summary>Signed 8-bit integer.</summary>
    I8,
    /// <summary>8-bit float, E5M2 layout.</summary>
    F8_E5M2,
    /// <summary>8-bit float, E4M3 layout.</summary>
    F8_E4M3,
    /// <summary>8-bit exponent-only scale (MX formats).</summary>
    F8_E8M0,
    /// <summary>8-bit float, E4M3 FNUZ layout.</summary>
    F8_E4M3FNUZ,
    /// <summary>8-bit float, E5M2 FNUZ layout.</summary>
    F8_E5M2FNUZ,
    /// <summary>Signed 16-bit integer.</summary>
    I16,
    /// <summary>Unsigned 16-bit integer.</summary>
    U16,
    /// <summary>IEEE 754 half precision float.</summary>
    F16,
    /// <summary>bfloat16 (upper half of an IEEE single).</summary>
    BF16,
    /// <summary>Signed 32-bit integer.</summary>
    I32,
    /// <summary>Unsigned 32-bit integer.</summary>
    U32,
    /// <summary>IEEE 754 single precision float.</summary>
    F32,
    /// <summary>Complex number made of two <see cref="F32"/> parts.</summary>
    C64,
    /// <summary>IEEE 754 double precision float.</summary>
    F64,
    /// <summary>Signed 64-bit integer.</summary>
    I64,
    /// <summary>Unsigned 64-bit integer.</summary>
    U64,
}

/// <summary>Helpers for <see cref="SafeTensorDType"/>: sizes and header names.</summary>
public static class SafeTensorDTypeExtensions
{
    private static readonly Dictionary<string, SafeTensorDType> ByName = CreateNameTable();

    private static Dictionary<string, SafeTensorDType> CreateNameTable()
    {
        var table = new Dictionary<string, SafeTensorDType>(StringComparer.Ordinal);
        foreach (SafeTensorDType dtype in Enum.GetValues<SafeTensorDType>())
        {
            table.Add(dtype.ToString(), dtype);
        }
        return table;
    }

    /// <summary>Size of one element in bits (4 and 6 for the sub-byte float types, otherwise a multiple of 8).</summary>
    /// <exception cref="ArgumentOutOfRangeException">The value is not a defined member.</exception>
    public static int GetBitSize(this SafeTensorDType dtype) => dtype switch
    {
        SafeTensorDType.F4 => 4,
        SafeTensorDType.F6_E2M3 or SafeTensorDType.F6_E3M2 => 6,
        SafeTensorDType.BOOL or SafeTensorDType.U8 or SafeTensorDType.I8 or SafeTensorDType.F8_E5M2
            or SafeTensorDType.F8_E4M3 or SafeTensorDType.F8_E8M0 or SafeTensorDType.F8_E4M3FNUZ
            or SafeTensorDType.F8_E5M2FNUZ => 8,
        SafeTensorDType.I16 or SafeTensorDType.U16 or SafeTensorDType.F16 or SafeTensorDType.BF16 => 16,
        SafeTensorDType.I32 or SafeTensorDType.U32 or SafeTensorDType.F32 => 32,
        SafeTensorDType.C64 or SafeTensorDType.F64 or SafeTensorDType.I64 or SafeTensorDType.U64 => 64,
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "Unknown safetensors dtype."),
    };

    /// <summary>
    /// Size of one element in whole bytes, or 0 for the sub-byte types (<see cref="SafeTensorDType.F4"/>,
    /// <see cref="SafeTensorDType.F6_E2M3"/>, <see cref="SafeTensorDType.F6_E3M2"/>).
    /// </summary>
    public static int GetByteSize(this SafeTensorDType dtype)
    {
        int bits = dtype.GetBitSize();
        return bits % 8 == 0 ? bits / 8 : 0;
    }

    /// <summary>The exact string used for this dtype in a safetensors header (for example <c>"BF16"</c>).</summary>
    public static string ToHeaderName(this SafeTensorDType dtype)
    {
        _ = dtype.GetBitSize(); // validates that the value is a defined member
        return dtype.ToString();
    }

    /// <summary>Parses a header dtype string (case-sensitive, as the reference implementation does).</summary>
    /// <param name="name">The dtype string, for example <c>"F16"</c>.</param>
    /// <param name="dtype">The parsed dtype when the method returns <see langword="true"/>.</param>
    /// <returns><see langword="true"/> when <paramref name="name"/> is a known dtype.</returns>
    public static bool TryParseHeaderName(string? name, out SafeTensorDType dtype)
    {
        if (name is not null && ByName.TryGetValue(name, out dtype))
        {
            return true;
        }
        dtype = default;
        return false;
    }
}

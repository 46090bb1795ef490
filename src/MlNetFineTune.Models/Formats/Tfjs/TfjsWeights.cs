using System.Buffers.Binary;

namespace MlNetFineTune.Models.Formats;

/// <summary>
/// How a TF.js weight is stored: <c>uint8</c> / <c>uint16</c> affine quantization (value = q * scale + min) or
/// <c>float16</c>. Both manifest spellings are accepted: <c>{dtype, min, scale}</c> and the newer
/// <c>{dtype, min, scale, original_dtype}</c>.
/// </summary>
/// <param name="DType">Stored element type: uint8, uint16 or float16.</param>
/// <param name="Min">Offset added after scaling (uint8/uint16).</param>
/// <param name="Scale">Step between quantized levels (uint8/uint16).</param>
/// <param name="OriginalDType">The dtype before quantization, when the manifest gives it.</param>
public sealed record TfjsQuantization(string DType, double? Min, double? Scale, string? OriginalDType);

/// <summary>One entry of a TF.js <c>weightsManifest</c>, with its place in the concatenated shard data.</summary>
/// <param name="Name">Weight name, usually <c>layer/param</c> (e.g. <c>Conv1/kernel</c>).</param>
/// <param name="Shape">Shape in TF (channels-last) layout, e.g. a Conv2D kernel is [kh, kw, in, out].</param>
/// <param name="DType">Logical dtype (float32 or int32).</param>
/// <param name="Quantization">Storage quantization, or null for plain float32/int32.</param>
/// <param name="Offset">Byte offset in the concatenation of all shards, in manifest order.</param>
/// <param name="ByteLength">Stored size in bytes.</param>
public sealed record TfjsWeightSpec(string Name, int[] Shape, string DType, TfjsQuantization? Quantization, long Offset, long ByteLength)
{
    /// <summary>Number of elements.</summary>
    public long Numel => Shape.Aggregate(1L, (a, s) => a * s);

    /// <summary>The dtype the bytes are stored in (the quantization dtype when quantized).</summary>
    public string StoredDType => Quantization?.DType ?? DType;

    /// <summary>Layer part of <see cref="Name"/> (everything before the last '/'), "" when there is none.</summary>
    public string LayerName => Name.LastIndexOf('/') is var i and >= 0 ? Name[..i] : "";

    /// <summary>Parameter part of <see cref="Name"/> (after the last '/', without a ":0" suffix).</summary>
    public string ParamName
    {
        get
        {
            var p = Name.LastIndexOf('/') is var i and >= 0 ? Name[(i + 1)..] : Name;
            return p.EndsWith(":0", StringComparison.Ordinal) ? p[..^2] : p;
        }
    }

    /// <summary>Bytes per stored element for a TF.js dtype, or 0 when unsupported.</summary>
    public static int BytesPerElement(string storedDType) => storedDType switch
    {
        "uint8" or "bool" => 1,
        "uint16" or "float16" => 2,
        "float32" or "int32" => 4,
        _ => 0,
    };

    /// <summary>"'name' [shape] dtype" for error messages.</summary>
    public override string ToString() =>
        $"'{Name}' [{string.Join(", ", Shape)}] {DType}{(Quantization is null ? "" : $" stored as {Quantization.DType}")}";
}

/// <summary>Decoding of TF.js weight bytes into float32, exactly as TF.js does it.</summary>
public static class TfjsDequantizer
{
    /// <summary>
    /// Decodes one weight's bytes to float32. uint8/uint16: <c>(float)(q * scale + min)</c> computed in double
    /// precision, as TF.js computes it in JavaScript numbers before storing into a Float32Array, so the values
    /// are bit-identical to what TF.js loads; float16: exact widening; float32: copied; int32 and bool:
    /// converted.
    /// </summary>
    public static float[] Decode(ReadOnlySpan<byte> bytes, TfjsWeightSpec spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        long n = spec.Numel;
        int size = TfjsWeightSpec.BytesPerElement(spec.StoredDType);
        if (size == 0)
            throw new InvalidDataException($"TF.js weight {spec}: unsupported stored dtype '{spec.StoredDType}' (uint8, uint16, float16, float32, int32, bool).");
        if (n > Array.MaxLength) throw new InvalidDataException($"TF.js weight {spec} has too many elements ({n}).");
        if (bytes.Length != n * size)
            throw new InvalidDataException($"TF.js weight {spec}: {n} elements of {spec.StoredDType} need {n * size} bytes, got {bytes.Length}.");
        var v = new float[n];
        var q = spec.Quantization;
        switch (spec.StoredDType)
        {
            case "uint8" when q is not null:
            case "uint16" when q is not null:
                {
                    if (q.Scale is not double scale || q.Min is not double min || !double.IsFinite(scale) || !double.IsFinite(min))
                        throw new InvalidDataException($"TF.js weight {spec}: {q.DType} quantization needs finite 'min' and 'scale'.");
                    if (size == 1)
                        for (int i = 0; i < v.Length; i++) v[i] = (float)(bytes[i] * scale + min);
                    else
                        for (int i = 0; i < v.Length; i++) v[i] = (float)(BinaryPrimitives.ReadUInt16LittleEndian(bytes[(2 * i)..]) * scale + min);
                    break;
                }
            case "float16":
                for (int i = 0; i < v.Length; i++) v[i] = (float)BinaryPrimitives.ReadHalfLittleEndian(bytes[(2 * i)..]);
                break;
            case "float32":
                for (int i = 0; i < v.Length; i++) v[i] = BinaryPrimitives.ReadSingleLittleEndian(bytes[(4 * i)..]);
                break;
            case "int32":
                for (int i = 0; i < v.Length; i++) v[i] = BinaryPrimitives.ReadInt32LittleEndian(bytes[(4 * i)..]);
                break;
            case "uint8" or "bool":
                for (int i = 0; i < v.Length; i++) v[i] = bytes[i];
                break;
            case "uint16":
                for (int i = 0; i < v.Length; i++) v[i] = BinaryPrimitives.ReadUInt16LittleEndian(bytes[(2 * i)..]);
                break;
            default:
                throw new InvalidDataException($"TF.js weight {spec}: unsupported stored dtype '{spec.StoredDType}'.");
        }
        return v;
    }
}

using System.Buffers.Binary;
using System.Text.Json;
using System.Text.Unicode;

namespace MlNetFineTune.Tensors.IO;

/// <summary>
/// Parses and validates a safetensors header. Mirrors the checks of the reference implementation
/// (huggingface/safetensors <c>Metadata::validate</c>): known dtypes, integer shapes and offsets, byte
/// size consistent with shape and dtype (overflow-checked), and data offsets that cover the data buffer
/// contiguously, without holes or overlaps, up to its exact end.
/// </summary>
internal sealed class SafeTensorsHeader
{
    /// <summary>The largest header the reference implementation accepts (100 MB).</summary>
    public const long MaxHeaderLength = 100_000_000;

    /// <summary>Size of the little-endian header length prefix.</summary>
    public const int PrefixLength = 8;

    private const string MetadataKey = "__metadata__";

    private SafeTensorsHeader(SafeTensorInfo[] tensors, Dictionary<string, string> metadata, long dataLength)
    {
        Tensors = tensors;
        Metadata = metadata;
        DataLength = dataLength;
    }

    /// <summary>The tensors, sorted by data offset.</summary>
    public SafeTensorInfo[] Tensors { get; }

    /// <summary>The <c>__metadata__</c> map (empty when absent or null).</summary>
    public Dictionary<string, string> Metadata { get; }

    /// <summary>Number of data bytes the tensors cover (end of the last tensor).</summary>
    public long DataLength { get; }

    /// <summary>
    /// Decodes and checks the 8-byte header length prefix. <paramref name="totalLength"/> is the length of
    /// the whole file when known; it bounds the header length.
    /// </summary>
    public static long ReadHeaderLength(ReadOnlySpan<byte> prefix, long? totalLength, string source)
    {
        if (prefix.Length < PrefixLength)
        {
            throw new SafeTensorsFormatException(source, null, null,
                $"the data is {prefix.Length} bytes long, too short to hold the 8-byte header length prefix.");
        }

        ulong raw = BinaryPrimitives.ReadUInt64LittleEndian(prefix);
        if (raw > MaxHeaderLength)
        {
            throw new SafeTensorsFormatException(source, null, null,
                $"header length {raw} exceeds the maximum of {MaxHeaderLength} bytes.");
        }

        long length = (long)raw;
        if (totalLength is long total && length > total - PrefixLength)
        {
            throw new SafeTensorsFormatException(source, null, null,
                $"header length {length} exceeds the {total - PrefixLength} bytes that follow the length prefix.");
        }
        return length;
    }

    /// <summary>
    /// Parses the JSON header. When <paramref name="dataLength"/> is known (the number of bytes after the
    /// header) every tensor must lie inside it and together they must cover it exactly.
    /// </summary>
    public static SafeTensorsHeader Parse(ReadOnlyMemory<byte> header, long? dataLength, string source)
    {
        ReadOnlySpan<byte> span = header.Span;
        int first = 0;
        while (first < span.Length && IsJsonWhitespace(span[first]))
        {
            first++;
        }
        if (first == span.Length || span[first] != (byte)'{')
        {
            throw new SafeTensorsFormatException(source, null, null,
                "the header must be a JSON object starting with '{'.");
        }
        if (!Utf8.IsValid(span))
        {
            throw new SafeTensorsFormatException(source, null, null, "the header is not valid UTF-8.");
        }

        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(header, new JsonDocumentOptions
            {
                AllowTrailingCommas = false,
                CommentHandling = JsonCommentHandling.Disallow,
                MaxDepth = 64,
            });
        }
        catch (JsonException ex)
        {
            throw new SafeTensorsFormatException(source, null, null, $"the header is not valid JSON: {ex.Message}", ex);
        }

        using (document)
        {
            var parser = new Parser(source, dataLength);
            try
            {
                return parser.Run(document.RootElement);
            }
            catch (InvalidOperationException ex)
            {
                // JsonElement.GetString and friends throw this for strings that do not decode (for example an
                // escaped lone surrogate such as "\ud800").
                throw new SafeTensorsFormatException(source, parser.CurrentTensor, parser.CurrentField,
                    $"the header holds a value that cannot be decoded: {ex.Message}", ex);
            }
        }
    }

    private static bool IsJsonWhitespace(byte b) => b is (byte)' ' or (byte)'\t' or (byte)'\n' or (byte)'\r';

    private sealed class Parser(string source, long? dataLength)
    {
        public string? CurrentTensor { get; private set; }

        public string? CurrentField { get; private set; }

        private SafeTensorsFormatException Error(string problem) =>
            new(source, CurrentTensor, CurrentField, problem);

        public SafeTensorsHeader Run(JsonElement root)
        {
            if (root.ValueKind != JsonValueKind.Object)
            {
                throw Error($"the header must be a JSON object, found {root.ValueKind}.");
            }

            var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
            bool sawMetadata = false;
            var names = new HashSet<string>(StringComparer.Ordinal);
            var tensors = new List<SafeTensorInfo>();

            foreach (JsonProperty property in root.EnumerateObject())
            {
                CurrentTensor = null;
                CurrentField = null;
                string name = property.Name;
                if (name == MetadataKey)
                {
                    CurrentField = MetadataKey;
                    if (sawMetadata)
                    {
                        throw Error("the key appears more than once.");
                    }
                    sawMetadata = true;
                    ParseMetadata(property.Value, metadata);
                    continue;
                }

                CurrentTensor = name;
                if (!names.Add(name))
                {
                    throw Error("duplicate tensor name.");
                }
                tensors.Add(ParseTensor(name, property.Value));
            }

            CurrentTensor = null;
            CurrentField = null;
            SafeTensorInfo[] sorted = tensors
                .OrderBy(t => t.DataBegin)
                .ThenBy(t => t.DataEnd)
                .ThenBy(t => t.Name, StringComparer.Ordinal)
                .ToArray();

            long expected = 0;
            SafeTensorInfo? previous = null;
            foreach (SafeTensorInfo tensor in sorted)
            {
                CurrentTensor = tensor.Name;
                CurrentField = "data_offsets";
                if (tensor.DataBegin < expected)
                {
                    throw Error($"bytes [{tensor.DataBegin}, {tensor.DataEnd}) overlap tensor '{SafeTensorsFormatException.Shorten(previous!.Name)}' at [{previous.DataBegin}, {previous.DataEnd}).");
                }
                if (tensor.DataBegin > expected)
                {
                    string after = previous is null
                        ? "the start of the data buffer (offset 0)"
                        : $"the end of tensor '{SafeTensorsFormatException.Shorten(previous.Name)}' (offset {expected})";
                    throw Error($"data begins at offset {tensor.DataBegin}, leaving a hole after {after}; tensors must cover the data buffer contiguously.");
                }
                expected = tensor.DataEnd;
                previous = tensor;
            }

            CurrentTensor = null;
            CurrentField = null;
            if (dataLength is long length && expected != length)
            {
                throw Error($"the tensors cover {expected} bytes of data but {length} bytes follow the header; the data buffer must be covered exactly (no trailing bytes).");
            }

            return new SafeTensorsHeader(sorted, metadata, expected);
        }

        private void ParseMetadata(JsonElement value, Dictionary<string, string> metadata)
        {
            if (value.ValueKind == JsonValueKind.Null)
            {
                return;
            }
            if (value.ValueKind != JsonValueKind.Object)
            {
                throw Error($"must be an object mapping strings to strings, found {value.ValueKind}.");
            }
            foreach (JsonProperty entry in value.EnumerateObject())
            {
                string key = entry.Name;
                if (entry.Value.ValueKind != JsonValueKind.String)
                {
                    throw Error($"the value of key '{SafeTensorsFormatException.Shorten(key)}' must be a string, found {entry.Value.ValueKind}.");
                }
                if (!metadata.TryAdd(key, entry.Value.GetString()!))
                {
                    throw Error($"key '{SafeTensorsFormatException.Shorten(key)}' appears more than once.");
                }
            }
        }

        private SafeTensorInfo ParseTensor(string name, JsonElement value)
        {
            if (value.ValueKind != JsonValueKind.Object)
            {
                throw Error($"the entry must be a JSON object with dtype, shape and data_offsets, found {value.ValueKind}.");
            }

            SafeTensorDType? dtype = null;
            long[]? shape = null;
            long[]? offsets = null;
            foreach (JsonProperty field in value.EnumerateObject())
            {
                switch (field.Name)
                {
                    case "dtype":
                        CurrentField = "dtype";
                        if (dtype is not null)
                        {
                            throw Error("the field appears more than once.");
                        }
                        if (field.Value.ValueKind != JsonValueKind.String)
                        {
                            throw Error($"must be a string, found {field.Value.ValueKind}.");
                        }
                        string text = field.Value.GetString()!;
                        if (!SafeTensorDTypeExtensions.TryParseHeaderName(text, out SafeTensorDType parsed))
                        {
                            throw Error($"unknown dtype '{SafeTensorsFormatException.Shorten(text)}'.");
                        }
                        dtype = parsed;
                        break;
                    case "shape":
                        CurrentField = "shape";
                        if (shape is not null)
                        {
                            throw Error("the field appears more than once.");
                        }
                        shape = ParseIntegers(field.Value, "dimension");
                        break;
                    case "data_offsets":
                        CurrentField = "data_offsets";
                        if (offsets is not null)
                        {
                            throw Error("the field appears more than once.");
                        }
                        offsets = ParseIntegers(field.Value, "offset");
                        if (offsets.Length != 2)
                        {
                            throw Error($"must hold exactly two integers [begin, end], found {offsets.Length}.");
                        }
                        break;
                    default:
                        // The reference implementation ignores unknown fields; so do we.
                        break;
                }
            }

            CurrentField = dtype is null ? "dtype" : shape is null ? "shape" : offsets is null ? "data_offsets" : null;
            if (CurrentField is not null)
            {
                throw Error("the field is missing.");
            }

            SafeTensorDType type = dtype!.Value;
            long begin = offsets![0];
            long end = offsets[1];

            CurrentField = "shape";
            long count = 1;
            for (int i = 0; i < shape!.Length; i++)
            {
                // Left-to-right checked product, like the reference implementation.
                if (!TryMultiply(count, shape[i], out count))
                {
                    throw Error($"the element count of shape [{string.Join(", ", shape)}] overflows.");
                }
            }
            if (!TryMultiply(count, type.GetBitSize(), out long bits))
            {
                throw Error($"the byte size of {count} elements of {type} overflows.");
            }
            if (bits % 8 != 0)
            {
                throw Error($"{count} elements of {type} ({bits} bits) do not fill a whole number of bytes.");
            }
            long size = bits / 8;

            CurrentField = "data_offsets";
            if (begin > end)
            {
                throw Error($"begin {begin} is greater than end {end}.");
            }
            if (dataLength is long length && end > length)
            {
                throw Error($"end {end} lies past the end of the data buffer ({length} bytes; the file is truncated or the offsets are wrong).");
            }
            if (end - begin != size)
            {
                throw Error($"[{begin}, {end}) spans {end - begin} bytes but shape [{string.Join(", ", shape)}] of {type} needs {size} bytes.");
            }

            CurrentField = null;
            return new SafeTensorInfo(name, type, shape, begin, end, count);
        }

        private long[] ParseIntegers(JsonElement value, string what)
        {
            if (value.ValueKind != JsonValueKind.Array)
            {
                throw Error($"must be an array of non-negative integers, found {value.ValueKind}.");
            }
            var result = new long[value.GetArrayLength()];
            int i = 0;
            foreach (JsonElement item in value.EnumerateArray())
            {
                if (item.ValueKind != JsonValueKind.Number || !item.TryGetInt64(out long number) || number < 0)
                {
                    string raw = SafeTensorsFormatException.Shorten(item.GetRawText());
                    throw Error($"{what} {i} must be a non-negative integer, found {raw}.");
                }
                result[i++] = number;
            }
            return result;
        }

        private static bool TryMultiply(long a, long b, out long product)
        {
            // Both operands are non-negative.
            if (a != 0 && b > long.MaxValue / a)
            {
                product = 0;
                return false;
            }
            product = a * b;
            return true;
        }
    }
}

namespace MlNetFineTune.Imaging;

/// <summary>
/// A decoding table built from a DHT segment: a 9-bit direct lookup for short codes plus libjpeg-style
/// <c>maxcode</c>/<c>valoffset</c> arrays for codes of 10..16 bits.
/// </summary>
internal sealed class JpegHuffmanTable
{
    /// <summary>Codes up to this many bits are resolved by one table lookup.</summary>
    public const int LookupBits = 9;

    /// <summary>Indexed by the next <see cref="LookupBits"/> bits: <c>(length &lt;&lt; 8) | symbol</c>, 0 when the code is longer.</summary>
    public ushort[] Lookup { get; } = new ushort[1 << LookupBits];

    /// <summary><c>MaxCode[l]</c>: the largest code of length l (1..16), or -1 when there is none.</summary>
    public int[] MaxCode { get; } = new int[17];

    /// <summary><c>ValOffset[l]</c>: add to a code of length l to get its index in <see cref="Values"/>.</summary>
    public int[] ValOffset { get; } = new int[17];

    /// <summary>The symbols in code order.</summary>
    public byte[] Values { get; }

    private JpegHuffmanTable(byte[] values) => Values = values;

    /// <summary>
    /// Builds a table from the 16 code-length counts and the symbols. Returns null and an error when the counts
    /// describe more codes than fit (libjpeg's JERR_BAD_HUFF_TABLE, which also rejects the all-ones code).
    /// </summary>
    public static JpegHuffmanTable? Build(ReadOnlySpan<byte> counts, ReadOnlySpan<byte> values, out string? error)
    {
        error = null;
        var table = new JpegHuffmanTable(values.ToArray());
        int code = 0, k = 0;
        Span<int> codes = stackalloc int[256];
        Span<byte> lengths = stackalloc byte[256];
        for (int len = 1; len <= 16; len++)
        {
            int n = counts[len - 1];
            table.ValOffset[len] = k - code;
            for (int i = 0; i < n; i++)
            {
                codes[k] = code;
                lengths[k] = (byte)len;
                k++;
                code++;
            }
            if (code >= 1 << len)
            {
                error = $"Huffman table overflows: more codes of length {len} than fit in {len} bits";
                return null;
            }
            table.MaxCode[len] = n > 0 ? code - 1 : -1;
            code <<= 1;
        }

        for (int i = 0; i < k; i++)
        {
            int len = lengths[i];
            if (len > LookupBits) continue;
            int shift = LookupBits - len;
            int start = codes[i] << shift;
            ushort entry = (ushort)((len << 8) | table.Values[i]);
            for (int j = 0; j < 1 << shift; j++) table.Lookup[start + j] = entry;
        }
        return table;
    }
}

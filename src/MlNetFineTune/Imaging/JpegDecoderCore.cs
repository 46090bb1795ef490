using System.Globalization;
using System.Runtime.CompilerServices;

namespace MlNetFineTune.Imaging;

/// <summary>
/// One decode of one JPEG: marker parsing, entropy decoding into per-component coefficient buffers, then IDCT,
/// upsampling and colour conversion. Not reusable; see <see cref="JpegDecoder"/> for the public API.
/// </summary>
internal sealed class JpegDecoderCore
{
    /// <summary>More scans than this in one image is rejected (real progressive files have about 10).</summary>
    internal const int MaxScans = 1000;

    /// <summary>All scans together may visit at most this many times the frame's blocks (a progressive file visits
    /// each block once per scan of its component, about 10 times), bounding the work a small hostile file can cause.</summary>
    internal const int MaxBlockVisitsPerBlock = 100;

    /// <summary>Zigzag index to natural (row-major) index, padded with 16 extra 63s as libjpeg does so that a corrupt
    /// run length past the end of the block lands on the last coefficient instead of outside it.</summary>
    internal static readonly byte[] NaturalOrder =
    [
        0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5,
        12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14, 21, 28,
        35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51,
        58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
        63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63,
    ];

    private sealed class Component
    {
        public int Id, H, V, QuantIndex;
        public int Width, Height;                   // samples actually in the image (libjpeg's downsampled_width/height)
        public int BlocksPerLine, BlocksPerColumn;  // MCU-aligned coefficient buffer size
        public short[]? Coefs;
        public int[]? Quant;                        // latched at the component's first scan (natural order)
        public int DcPred;
        public bool HasData;
        public JpegHuffmanTable? DcTable, AcTable;
        public byte[]? Plane;                       // IDCT output
        public int Stride;
    }

    private enum ScanMode { Sequential, DcFirst, DcRefine, AcFirst, AcRefine }

    private readonly byte[] _data;
    private readonly int _end;
    private readonly string? _source;
    private readonly JpegDecoderOptions _options;

    private readonly int[]?[] _quant = new int[4][];
    private readonly JpegHuffmanTable?[] _dcTables = new JpegHuffmanTable[4];
    private readonly JpegHuffmanTable?[] _acTables = new JpegHuffmanTable[4];

    private Component[]? _components;
    private int _width, _height, _hMax, _vMax, _mcusX, _mcusY;
    private JpegProcess _process;
    private bool _progressive;
    private int _restartInterval;
    private bool _jfif, _exifSeen;
    private int _adobeTransform = -1;
    private int _orientation;
    private int _scanCount;
    private long _blockVisits;
    private JpegInfo? _info;

    // Entropy decoder state: a 64-bit MSB-first bit buffer. Past a marker or the end of the data the buffer is fed
    // zero bytes, counted in _fakeBits; consuming any of them means the scan data was truncated or corrupt.
    private ulong _bits;
    private int _nbits;
    private int _pos;
    private int _fakeBits;
    private bool _markerHit;
    private int _markerPos;
    private int _eobrun;

    public JpegDecoderCore(byte[] data, string? source, JpegDecoderOptions options)
    {
        _data = data;
        _end = data.Length;
        _source = source;
        _options = options;
    }

    /// <summary>Header information; valid after <see cref="Decode"/> returned.</summary>
    public JpegInfo Info => _info ?? throw new InvalidOperationException("Decode has not completed.");

    /// <summary>Parses (and unless <paramref name="headersOnly"/>, decodes) the whole input.</summary>
    /// <returns>The image before EXIF orientation, or null when <paramref name="headersOnly"/>.</returns>
    public ImageData? Decode(bool headersOnly)
    {
        if (_end < 2 || _data[0] != 0xFF || _data[1] != 0xD8)
            throw Error("not a JPEG file: it does not start with the SOI marker FF D8", 0);

        int pos = 2;
        bool afterScan = false;
        while (true)
        {
            int next = FindMarker(pos, afterScan, out int marker, out int markerStart);
            if (next < 0) break; // end of data without EOI: accepted when every component got its scans
            pos = next;
            if (marker == 0xD9) break; // EOI

            switch (marker)
            {
                case 0xD8:
                    throw Error("unexpected SOI marker inside the image", markerStart);
                case >= 0xD0 and <= 0xD7:
                case 0x01:
                    continue; // stray RSTn / TEM: no parameters, ignored as libjpeg does
                case < 0xC0:
                    throw Error($"unknown marker 0xFF{marker:X2}", markerStart); // reserved (RES) markers
            }

            ReadSegment(ref pos, markerStart, marker, out int s, out int e);
            switch (marker)
            {
                case 0xC0:
                case 0xC1:
                case 0xC2:
                    ReadFrame(marker, s, e, markerStart);
                    break;
                case 0xC3: case 0xC5: case 0xC6: case 0xC7:
                case 0xC9: case 0xCA: case 0xCB:
                case 0xCD: case 0xCE: case 0xCF:
                    throw Unsupported(SofName(marker), markerStart);
                case 0xC4:
                    ReadHuffmanTables(s, e, markerStart);
                    break;
                case 0xDB:
                    ReadQuantTables(s, e, markerStart);
                    break;
                case 0xDD:
                    if (e - s != 2) throw Error($"DRI segment has length {e - s + 2}, expected 4", markerStart);
                    _restartInterval = (_data[s] << 8) | _data[s + 1];
                    break;
                case 0xDA:
                    if (!ReadScan(s, e, markerStart, headersOnly)) return null;
                    pos = ScanEnd();
                    afterScan = true;
                    break;
                case >= 0xE0 and <= 0xEF:
                    ReadApp(marker, s, e);
                    break;
                case 0xCC: // DAC: arithmetic conditioning; only matters for SOF9+, which is rejected
                case 0xDC: // DNL
                case 0xDE: // DHP
                case 0xDF: // EXP
                case 0xFE: // COM
                default: // JPGn (F0..FD) and any other marker with a length: skipped
                    break;
            }
        }

        if (_components is null) throw Error("missing SOF frame header (no image dimensions)", pos);
        if (_scanCount == 0) throw Error("missing SOS: the image has no scan data", pos);
        if (headersOnly) return null;
        foreach (var c in _components)
            if (!c.HasData) throw Error($"component {c.Id} has no scan data (truncated file?)", pos);
        return BuildImage();
    }

    // ---------------------------------------------------------------- markers

    /// <summary>
    /// Finds the marker at <paramref name="pos"/> (skipping FF fill bytes). Before the first scan the marker must be
    /// right there; after a scan, stray bytes before the next marker are skipped as libjpeg does. Returns the position
    /// after the marker code, or -1 at the end of the data.
    /// </summary>
    private int FindMarker(int pos, bool lenient, out int marker, out int markerStart)
    {
        marker = 0;
        markerStart = pos;
        int p = pos;
        while (true)
        {
            if (p >= _end) return -1;
            if (_data[p] != 0xFF)
            {
                if (!lenient) throw Error($"expected a marker, found byte 0x{_data[p]:X2}", p);
                p++;
                continue;
            }
            int q = p + 1;
            while (q < _end && _data[q] == 0xFF) q++;
            if (q >= _end) return -1;
            if (_data[q] == 0)
            {
                if (!lenient) throw Error("expected a marker, found stuffed byte FF 00", p);
                p = q + 1;
                continue;
            }
            markerStart = p;
            marker = _data[q];
            return q + 1;
        }
    }

    private void ReadSegment(ref int pos, int markerStart, int marker, out int start, out int end)
    {
        if (pos + 2 > _end) throw Error($"marker 0xFF{marker:X2}: truncated segment length", markerStart);
        int length = (_data[pos] << 8) | _data[pos + 1];
        if (length < 2) throw Error($"marker 0xFF{marker:X2}: invalid segment length {length}", markerStart);
        if ((long)pos + length > _end)
            throw Error($"marker 0xFF{marker:X2}: segment of {length} bytes runs past the end of the data (truncated file)", markerStart);
        start = pos + 2;
        end = pos + length;
        pos = end;
    }

    private static string SofName(int marker) => marker switch
    {
        0xC3 => "lossless JPEG (SOF3) is not supported",
        0xC5 or 0xC6 or 0xC7 => $"hierarchical JPEG (SOF{marker - 0xC0}) is not supported",
        0xC9 or 0xCA or 0xCB => $"arithmetic-coded JPEG (SOF{marker - 0xC0}) is not supported",
        _ => $"hierarchical arithmetic-coded JPEG (SOF{marker - 0xC0}) is not supported",
    };

    private void ReadFrame(int marker, int s, int e, int markerStart)
    {
        if (_components is not null) throw Error("more than one SOF frame header", markerStart);
        if (e - s < 6) throw Error("SOF segment too short", markerStart);
        int precision = _data[s];
        int height = (_data[s + 1] << 8) | _data[s + 2];
        int width = (_data[s + 3] << 8) | _data[s + 4];
        int count = _data[s + 5];
        if (precision != 8)
        {
            if (precision is 12 or 16) throw Unsupported($"{precision}-bit sample precision is not supported (8-bit only)", markerStart);
            throw Error($"invalid sample precision {precision}", markerStart);
        }
        if (e - s != 6 + 3 * count)
            throw Error($"SOF segment length {e - s + 2} does not match its {count} components", markerStart);
        if (width == 0) throw Error("image width is 0", markerStart);
        if (height == 0) throw Error("image height is 0 (heights defined by a DNL marker are not supported)", markerStart);
        if (count == 0) throw Error("frame has no components", markerStart);
        if (count is not (1 or 3 or 4)) throw Unsupported($"{count}-component images are not supported (1, 3 or 4 only)", markerStart);
        if ((long)width * height > _options.MaxPixels)
            throw Error($"image of {width} x {height} pixels exceeds the pixel budget of {_options.MaxPixels.ToString(CultureInfo.InvariantCulture)}", markerStart);
        if ((long)width * height * 3 > Array.MaxLength)
            throw Error($"image of {width} x {height} pixels is too large", markerStart);

        var comps = new Component[count];
        for (int i = 0; i < count; i++)
        {
            int p = s + 6 + 3 * i;
            var c = new Component
            {
                Id = _data[p],
                H = _data[p + 1] >> 4,
                V = _data[p + 1] & 15,
                QuantIndex = _data[p + 2],
            };
            if (c.H is < 1 or > 4 || c.V is < 1 or > 4)
                throw Error($"component {c.Id}: invalid sampling factors {c.H}x{c.V}", markerStart);
            if (c.QuantIndex > 3)
                throw Error($"component {c.Id}: quantization table index {c.QuantIndex} out of range 0..3", markerStart);
            for (int j = 0; j < i; j++)
                if (comps[j].Id == c.Id) throw Error($"duplicate component id {c.Id}", markerStart);
            comps[i] = c;
        }

        _hMax = comps.Max(c => c.H);
        _vMax = comps.Max(c => c.V);
        foreach (var c in comps)
            if (_hMax % c.H != 0 || _vMax % c.V != 0)
                throw Unsupported($"fractional sampling ratio (component {c.Id}: {c.H}x{c.V}, maximum {_hMax}x{_vMax}) is not supported", markerStart);

        _width = width;
        _height = height;
        _mcusX = (width + 8 * _hMax - 1) / (8 * _hMax);
        _mcusY = (height + 8 * _vMax - 1) / (8 * _vMax);
        foreach (var c in comps)
        {
            c.Width = (int)(((long)width * c.H + _hMax - 1) / _hMax);
            c.Height = (int)(((long)height * c.V + _vMax - 1) / _vMax);
            c.BlocksPerLine = _mcusX * c.H;
            c.BlocksPerColumn = _mcusY * c.V;
            if ((long)c.BlocksPerLine * c.BlocksPerColumn * 64 > Array.MaxLength)
                throw Error($"image of {width} x {height} pixels is too large", markerStart);
        }
        _components = comps;
        _process = marker switch { 0xC0 => JpegProcess.Baseline, 0xC1 => JpegProcess.ExtendedSequential, _ => JpegProcess.Progressive };
        _progressive = marker == 0xC2;
    }

    private void ReadQuantTables(int s, int e, int markerStart)
    {
        int p = s;
        while (p < e)
        {
            int pq = _data[p] >> 4, tq = _data[p] & 15;
            p++;
            if (pq > 1) throw Error($"DQT: invalid precision {pq} (0 or 1 expected)", markerStart);
            if (tq > 3) throw Error($"DQT: table index {tq} out of range 0..3", markerStart);
            int n = 64 * (pq + 1);
            if (p + n > e) throw Error("DQT segment too short for its table", markerStart);
            var table = new int[64];
            for (int k = 0; k < 64; k++)
                table[NaturalOrder[k]] = pq == 0 ? _data[p + k] : (_data[p + 2 * k] << 8) | _data[p + 2 * k + 1];
            _quant[tq] = table;
            p += n;
        }
    }

    private void ReadHuffmanTables(int s, int e, int markerStart)
    {
        int p = s;
        while (p < e)
        {
            if (p + 17 > e) throw Error("DHT segment too short", markerStart);
            int tc = _data[p] >> 4, th = _data[p] & 15;
            if (tc > 1) throw Error($"DHT: table class {tc} out of range 0..1", markerStart);
            if (th > 3) throw Error($"DHT: table index {th} out of range 0..3", markerStart);
            var counts = _data.AsSpan(p + 1, 16);
            int total = 0;
            foreach (byte b in counts) total += b;
            if (total > 256) throw Error($"DHT: {total} symbols, at most 256 allowed", markerStart);
            if (p + 17 + total > e) throw Error("DHT segment too short for its symbols", markerStart);
            var table = JpegHuffmanTable.Build(counts, _data.AsSpan(p + 17, total), out string? error)
                ?? throw Error("DHT: " + error, markerStart);
            (tc == 0 ? _dcTables : _acTables)[th] = table;
            p += 17 + total;
        }
    }

    private void ReadApp(int marker, int s, int e)
    {
        var seg = _data.AsSpan(s, e - s);
        if (marker == 0xE0 && seg.Length >= 5 && seg[..5].SequenceEqual("JFIF\0"u8))
            _jfif = true;
        else if (marker == 0xE1 && !_exifSeen && seg.Length >= 6 && seg[..6].SequenceEqual("Exif\0\0"u8))
        {
            _exifSeen = true;
            _orientation = JpegExif.ReadOrientation(seg[6..]);
        }
        else if (marker == 0xEE && seg.Length >= 12 && seg[..5].SequenceEqual("Adobe"u8))
            _adobeTransform = seg[11];
    }

    private JpegColorSpace ColorSpace()
    {
        var comps = _components!;
        switch (comps.Length)
        {
            case 1:
                return JpegColorSpace.Gray;
            case 3:
                if (_jfif) return JpegColorSpace.YCbCr;
                if (_adobeTransform >= 0) return _adobeTransform == 0 ? JpegColorSpace.Rgb : JpegColorSpace.YCbCr;
                if (comps[0].Id == 'R' && comps[1].Id == 'G' && comps[2].Id == 'B') return JpegColorSpace.Rgb;
                return JpegColorSpace.YCbCr;
            default:
                if (_adobeTransform >= 0) return _adobeTransform == 0 ? JpegColorSpace.Cmyk : JpegColorSpace.Ycck;
                return JpegColorSpace.Cmyk;
        }
    }

    private void BuildInfo()
    {
        var comps = _components!.Select(c => new JpegComponentInfo(c.Id, c.H, c.V, c.QuantIndex)).ToArray();
        _info = new JpegInfo(_width, _height, _process, ColorSpace(), comps, _orientation == 0 ? 1 : _orientation,
            _jfif, _adobeTransform, _restartInterval);
    }

    // ---------------------------------------------------------------- scans

    /// <summary>Parses an SOS header and decodes its entropy-coded data. Returns false when only headers were wanted.</summary>
    private bool ReadScan(int s, int e, int markerStart, bool headersOnly)
    {
        var frame = _components ?? throw Error("SOS before SOF: missing frame header", markerStart);
        if (e - s < 1) throw Error("SOS segment too short", markerStart);
        int ns = _data[s];
        if (ns is < 1 or > 4 || e - s != 4 + 2 * ns)
            throw Error($"SOS: invalid component count {ns} or segment length {e - s + 2}", markerStart);
        var comps = new Component[ns];
        var dcIndex = new int[ns];
        var acIndex = new int[ns];
        for (int i = 0; i < ns; i++)
        {
            int id = _data[s + 1 + 2 * i];
            int tables = _data[s + 2 + 2 * i];
            var c = Array.Find(frame, x => x.Id == id)
                ?? throw Error($"SOS: component id {id} is not in the frame", markerStart);
            if (Array.IndexOf(comps, c, 0, i) >= 0) throw Error($"SOS: component id {id} listed twice", markerStart);
            comps[i] = c;
            dcIndex[i] = tables >> 4;
            acIndex[i] = tables & 15;
            if (dcIndex[i] > 3 || acIndex[i] > 3) throw Error($"SOS: Huffman table index out of range 0..3 for component {id}", markerStart);
        }
        int q0 = s + 1 + 2 * ns;
        int ss = _data[q0], se = _data[q0 + 1], ah = _data[q0 + 2] >> 4, al = _data[q0 + 2] & 15;

        ScanMode mode;
        if (_progressive)
        {
            bool dc = ss == 0;
            bool bad = dc ? se != 0 : se < ss || se > 63 || ns != 1;
            if (ah != 0 && al != ah - 1) bad = true;
            if (al > 13) bad = true;
            if (bad) throw Error($"SOS: invalid progressive parameters Ss={ss} Se={se} Ah={ah} Al={al} with {ns} components", markerStart);
            mode = dc ? (ah == 0 ? ScanMode.DcFirst : ScanMode.DcRefine) : (ah == 0 ? ScanMode.AcFirst : ScanMode.AcRefine);
        }
        else
        {
            mode = ScanMode.Sequential; // libjpeg only warns about Ss/Se/Ah/Al here; they are ignored
        }

        if (ns > 1)
        {
            int blocks = 0;
            foreach (var c in comps) blocks += c.H * c.V;
            if (blocks > 10) throw Error($"SOS: {blocks} blocks per MCU, at most 10 allowed", markerStart);
        }

        for (int i = 0; i < ns; i++)
        {
            var c = comps[i];
            bool needDc = mode is ScanMode.Sequential or ScanMode.DcFirst;
            bool needAc = mode is ScanMode.Sequential or ScanMode.AcFirst or ScanMode.AcRefine;
            c.DcTable = needDc ? _dcTables[dcIndex[i]] ?? throw Error($"SOS: component {c.Id} uses undefined DC Huffman table {dcIndex[i]}", markerStart) : null;
            c.AcTable = needAc ? _acTables[acIndex[i]] ?? throw Error($"SOS: component {c.Id} uses undefined AC Huffman table {acIndex[i]}", markerStart) : null;
            if (c.Quant is null)
            {
                var q = _quant[c.QuantIndex] ?? throw Error($"component {c.Id} uses undefined quantization table {c.QuantIndex}", markerStart);
                c.Quant = (int[])q.Clone();
            }
        }

        if (++_scanCount > MaxScans) throw Error($"more than {MaxScans} scans", markerStart);
        if (_info is null) BuildInfo();
        if (headersOnly) return false;

        long blocksInScan = ns == 1
            ? (long)((comps[0].Width + 7) >> 3) * ((comps[0].Height + 7) >> 3)
            : (long)_mcusX * _mcusY * comps.Sum(c => c.H * c.V);
        _blockVisits += blocksInScan;
        if (_blockVisits > MaxBlockVisitsPerBlock * frame.Sum(c => (long)c.BlocksPerLine * c.BlocksPerColumn))
            throw Error($"too many scans: the scans visit the image's blocks more than {MaxBlockVisitsPerBlock} times", markerStart);

        // Every block of a sequential or DC-first scan costs at least one bit, so a scan cannot cover more blocks than
        // the remaining data has bits: this keeps the coefficient memory proportional to the input size.
        if (comps.Any(c => c.Coefs is null))
        {
            long bits = (long)(_end - e) * 8;
            if (blocksInScan > bits)
                throw Error($"scan covers {blocksInScan} blocks but only {_end - e} bytes of data remain (truncated file or bogus dimensions)", e);
            foreach (var c in comps)
                c.Coefs ??= new short[c.BlocksPerLine * c.BlocksPerColumn * 64];
        }

        DecodeScan(comps, mode, ss, se, al, e);
        foreach (var c in comps) c.HasData = true;
        return true;
    }

    private void ResetBitReader(int pos)
    {
        _pos = pos;
        _bits = 0;
        _nbits = 0;
        _fakeBits = 0;
        _markerHit = false;
        _markerPos = 0;
    }

    private int ScanEnd() => _markerHit ? Math.Min(_markerPos, _end) : _pos;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void DecodeScan(Component[] comps, ScanMode mode, int ss, int se, int al, int dataStart)
    {
        ResetBitReader(dataStart);
        _eobrun = 0;
        foreach (var c in comps) c.DcPred = 0;
        int interval = _restartInterval;
        int restartsToGo = interval;
        int nextRst = 0;

        if (comps.Length == 1)
        {
            var c = comps[0];
            int bw = (c.Width + 7) >> 3, bh = (c.Height + 7) >> 3;
            for (int by = 0; by < bh; by++)
            {
                for (int bx = 0; bx < bw; bx++)
                {
                    if (interval > 0)
                    {
                        if (restartsToGo == 0)
                        {
                            ProcessRestart(ref nextRst, comps);
                            restartsToGo = interval;
                        }
                        restartsToGo--;
                    }
                    DecodeBlock(mode, c, (by * c.BlocksPerLine + bx) * 64, ss, se, al);
                    CheckOverrun();
                }
            }
            return;
        }

        for (int my = 0; my < _mcusY; my++)
        {
            for (int mx = 0; mx < _mcusX; mx++)
            {
                if (interval > 0)
                {
                    if (restartsToGo == 0)
                    {
                        ProcessRestart(ref nextRst, comps);
                        restartsToGo = interval;
                    }
                    restartsToGo--;
                }
                foreach (var c in comps)
                {
                    for (int v = 0; v < c.V; v++)
                    {
                        int row = (my * c.V + v) * c.BlocksPerLine + mx * c.H;
                        for (int h = 0; h < c.H; h++)
                            DecodeBlock(mode, c, (row + h) * 64, ss, se, al);
                    }
                }
                CheckOverrun();
            }
        }
    }

    private void ProcessRestart(ref int nextRst, Component[] comps)
    {
        int p = ScanEnd();
        int next = FindMarker(p, lenient: true, out int marker, out int markerStart);
        if (next < 0) throw Error($"scan data truncated: expected restart marker RST{nextRst}, found the end of the data", _end);
        if (marker != 0xD0 + nextRst)
            throw Error($"expected restart marker RST{nextRst}, found marker 0xFF{marker:X2}", markerStart);
        nextRst = (nextRst + 1) & 7;
        ResetBitReader(next);
        _eobrun = 0;
        foreach (var c in comps) c.DcPred = 0;
    }

    private void CheckOverrun()
    {
        if (_nbits < _fakeBits)
        {
            int at = ScanEnd();
            throw Error(at >= _end
                ? "scan data truncated: the data ends inside the entropy-coded segment"
                : $"scan data truncated or corrupt: the entropy-coded segment ends at marker 0xFF{MarkerAt(at):X2} before the scan is complete", at);
        }
    }

    private int MarkerAt(int p)
    {
        int q = p + 1;
        while (q < _end && _data[q] == 0xFF) q++;
        return q < _end ? _data[q] : 0;
    }

    private void Fill()
    {
        while (_nbits <= 56)
        {
            int b;
            if (_markerHit)
            {
                b = 0;
                _fakeBits += 8;
            }
            else if (_pos >= _end)
            {
                _markerHit = true;
                _markerPos = _end;
                b = 0;
                _fakeBits += 8;
            }
            else
            {
                b = _data[_pos];
                if (b == 0xFF)
                {
                    int q = _pos + 1;
                    while (q < _end && _data[q] == 0xFF) q++;
                    if (q < _end && _data[q] == 0)
                    {
                        _pos = q + 1; // stuffed FF 00 (FF fill bytes before it are dropped, as libjpeg does)
                    }
                    else
                    {
                        _markerHit = true;
                        _markerPos = _pos;
                        b = 0;
                        _fakeBits += 8;
                    }
                }
                else
                {
                    _pos++;
                }
            }
            _bits |= (ulong)(uint)b << (56 - _nbits);
            _nbits += 8;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private int GetBits(int n)
    {
        if (_nbits < n) Fill();
        int v = (int)(_bits >> (64 - n));
        _bits <<= n;
        _nbits -= n;
        return v;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private int GetBit()
    {
        if (_nbits < 1) Fill();
        int v = (int)(_bits >> 63);
        _bits <<= 1;
        _nbits--;
        return v;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int Extend(int v, int s) => v < 1 << (s - 1) ? v - (1 << s) + 1 : v;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private int DecodeHuffman(JpegHuffmanTable t)
    {
        if (_nbits < 16) Fill();
        int e = t.Lookup[(int)(_bits >> (64 - JpegHuffmanTable.LookupBits))];
        if (e != 0)
        {
            int len = e >> 8;
            _bits <<= len;
            _nbits -= len;
            return e & 0xFF;
        }
        int code16 = (int)(_bits >> 48);
        for (int l = JpegHuffmanTable.LookupBits + 1; l <= 16; l++)
        {
            int code = code16 >> (16 - l);
            if (code <= t.MaxCode[l])
            {
                _bits <<= l;
                _nbits -= l;
                return t.Values[code + t.ValOffset[l]];
            }
        }
        throw _nbits - _fakeBits < 16
            ? Error("scan data truncated or corrupt: invalid Huffman code at the end of the entropy-coded segment", ScanEnd())
            : Error("corrupt scan data: invalid Huffman code", _pos);
    }

    private int DecodeDcDiff(JpegHuffmanTable t)
    {
        int s = DecodeHuffman(t);
        if (s == 0) return 0;
        if (s > 15) throw Error($"corrupt scan data: DC difference category {s} > 15", _pos);
        return Extend(GetBits(s), s);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void DecodeBlock(ScanMode mode, Component c, int off, int ss, int se, int al)
    {
        var coefs = c.Coefs!;
        switch (mode)
        {
            case ScanMode.Sequential:
            {
                var block = coefs.AsSpan(off, 64);
                block.Clear();
                c.DcPred += DecodeDcDiff(c.DcTable!);
                block[0] = (short)c.DcPred;
                var ac = c.AcTable!;
                for (int k = 1; k < 64; k++)
                {
                    int rs = DecodeHuffman(ac);
                    int r = rs >> 4, s = rs & 15;
                    if (s != 0)
                    {
                        k += r;
                        block[NaturalOrder[k]] = (short)Extend(GetBits(s), s);
                    }
                    else
                    {
                        if (r != 15) break;
                        k += 15;
                    }
                }
                break;
            }
            case ScanMode.DcFirst:
                c.DcPred += DecodeDcDiff(c.DcTable!);
                coefs[off] = (short)(c.DcPred << al);
                break;
            case ScanMode.DcRefine:
                if (GetBit() != 0) coefs[off] |= (short)(1 << al);
                break;
            case ScanMode.AcFirst:
                DecodeAcFirst(c, coefs.AsSpan(off, 64), ss, se, al);
                break;
            default:
                DecodeAcRefine(c, coefs.AsSpan(off, 64), ss, se, al);
                break;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void DecodeAcFirst(Component c, Span<short> block, int ss, int se, int al)
    {
        if (_eobrun > 0)
        {
            _eobrun--;
            return;
        }
        var ac = c.AcTable!;
        for (int k = ss; k <= se; k++)
        {
            int rs = DecodeHuffman(ac);
            int r = rs >> 4, s = rs & 15;
            if (s != 0)
            {
                k += r;
                block[NaturalOrder[k]] = (short)(Extend(GetBits(s), s) << al);
            }
            else if (r < 15)
            {
                _eobrun = (1 << r) - 1;
                if (r > 0) _eobrun += GetBits(r);
                break;
            }
            else
            {
                k += 15;
            }
        }
    }

    /// <summary>Successive-approximation AC refinement, following libjpeg's decode_mcu_AC_refine.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void DecodeAcRefine(Component c, Span<short> block, int ss, int se, int al)
    {
        int p1 = 1 << al;
        int m1 = -1 << al;
        int k = ss;
        if (_eobrun == 0)
        {
            var ac = c.AcTable!;
            for (; k <= se; k++)
            {
                int rs = DecodeHuffman(ac);
                int r = rs >> 4, s = rs & 15;
                if (s != 0)
                {
                    // The size of a newly nonzero coefficient should be 1; libjpeg only warns otherwise.
                    s = GetBit() != 0 ? p1 : m1;
                }
                else if (r != 15)
                {
                    _eobrun = 1 << r;
                    if (r > 0) _eobrun += GetBits(r);
                    break;
                }
                do
                {
                    int z = NaturalOrder[k];
                    if (block[z] != 0)
                    {
                        if (GetBit() != 0 && (block[z] & p1) == 0)
                            block[z] = (short)(block[z] >= 0 ? block[z] + p1 : block[z] + m1);
                    }
                    else
                    {
                        if (--r < 0) break;
                    }
                    k++;
                } while (k <= se);
                if (s != 0) block[NaturalOrder[k]] = (short)s;
            }
        }
        if (_eobrun > 0)
        {
            for (; k <= se; k++)
            {
                int z = NaturalOrder[k];
                if (block[z] != 0 && GetBit() != 0 && (block[z] & p1) == 0)
                    block[z] = (short)(block[z] >= 0 ? block[z] + p1 : block[z] + m1);
            }
            _eobrun--;
        }
    }

    // ---------------------------------------------------------------- output

    private ImageData BuildImage()
    {
        var comps = _components!;
        foreach (var c in comps)
        {
            int bw = (c.Width + 7) >> 3, bh = (c.Height + 7) >> 3;
            c.Stride = bw * 8;
            var plane = new byte[c.Stride * bh * 8];
            var coefs = c.Coefs!;
            var quant = c.Quant!;
            for (int by = 0; by < bh; by++)
                for (int bx = 0; bx < bw; bx++)
                    JpegIdct.Transform(coefs, (by * c.BlocksPerLine + bx) * 64, quant, plane, by * 8 * c.Stride + bx * 8, c.Stride);
            c.Plane = plane;
            c.Coefs = null; // release before allocating the output
        }
        return JpegColor.Convert(this);
    }

    // Accessors used by JpegColor.
    internal int Width => _width;
    internal int Height => _height;
    internal int ComponentCount => _components!.Length;
    internal bool Fancy => _options.Upsampling == JpegUpsampling.Fancy;
    internal JpegColorSpace CodedColorSpace => ColorSpace();
    internal bool AdobeInverted => _adobeTransform >= 0;

    /// <summary>Length of the row buffers passed to <see cref="UpsampledRow"/>.</summary>
    internal int RowBufferLength => _width + 8 * _hMax;

    /// <summary>
    /// Returns row <paramref name="y"/> of component <paramref name="ci"/> upsampled to (at least) the image width,
    /// either straight from the IDCT plane or written into <paramref name="buffer"/> (<see cref="RowBufferLength"/> long).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal ReadOnlySpan<byte> UpsampledRow(int ci, int y, byte[] buffer)
    {
        var c = _components![ci];
        var p = c.Plane!;
        int stride = c.Stride, w = c.Width, h = c.Height;
        int hr = _hMax / c.H, vr = _vMax / c.V;
        if (hr == 1 && vr == 1) return p.AsSpan(y * stride, w);

        if (Fancy)
        {
            if (hr == 2 && vr == 1 && w > 2)
            {
                // libjpeg h2v1_fancy_upsample: 3/4 nearer + 1/4 further sample, edge samples replicated.
                var row = p.AsSpan(y * stride, w);
                var dst = buffer.AsSpan(0, 2 * w);
                int last = row[0], cur = row[0];
                for (int i = 0; i < w; i++)
                {
                    int next = i + 1 < w ? row[i + 1] : cur;
                    dst[2 * i] = (byte)((3 * cur + last + 1) >> 2);
                    dst[2 * i + 1] = (byte)((3 * cur + next + 2) >> 2);
                    last = cur;
                    cur = next;
                }
                return dst;
            }
            if (hr == 1 && vr == 2)
            {
                // libjpeg h1v2_fancy_upsample: the nearer row 3/4, the row above (even y) or below (odd y) 1/4.
                int sy = y >> 1;
                bool above = (y & 1) == 0;
                int other = above ? Math.Max(sy - 1, 0) : Math.Min(sy + 1, h - 1);
                int bias = above ? 1 : 2;
                var r0 = p.AsSpan(sy * stride, w);
                var r1 = p.AsSpan(other * stride, w);
                var dst = buffer.AsSpan(0, w);
                for (int x = 0; x < dst.Length; x++)
                    dst[x] = (byte)((3 * r0[x] + r1[x] + bias) >> 2);
                return dst;
            }
            if (hr == 2 && vr == 2 && w > 2)
            {
                // libjpeg h2v2_fancy_upsample: vertical 3:1 column sums, then horizontal 3:1 with biases 8 and 7.
                int sy = y >> 1;
                int other = (y & 1) == 0 ? Math.Max(sy - 1, 0) : Math.Min(sy + 1, h - 1);
                var r0 = p.AsSpan(sy * stride, w);
                var r1 = p.AsSpan(other * stride, w);
                var dst = buffer.AsSpan(0, 2 * w);
                int cur = 3 * r0[0] + r1[0], last = cur;
                for (int i = 0; i < w; i++)
                {
                    int next = i + 1 < w ? 3 * r0[i + 1] + r1[i + 1] : cur;
                    dst[2 * i] = (byte)((3 * cur + last + 8) >> 4);
                    dst[2 * i + 1] = (byte)((3 * cur + next + 7) >> 4);
                    last = cur;
                    cur = next;
                }
                return dst;
            }
        }

        // Box replication (libjpeg int_upsample / h2v1_upsample / h2v2_upsample / merged upsampling).
        var src = p.AsSpan((y / vr) * stride, w);
        if (hr == 1) return src;
        var output = buffer.AsSpan(0, w * hr);
        for (int i = 0, o = 0; i < src.Length; i++, o += hr)
            output.Slice(o, hr).Fill(src[i]);
        return output;
    }

    // ---------------------------------------------------------------- errors

    private ImageFormatException Error(string message, long offset) => new(message, _source, offset);

    private NotSupportedException Unsupported(string message, long offset)
    {
        string text = string.IsNullOrEmpty(_source) ? message : _source + ": " + message;
        return new NotSupportedException(text + " (at byte " + offset.ToString(CultureInfo.InvariantCulture) + ")");
    }
}

#!/usr/bin/env python3
"""Generate the PNG decoder fixtures (a PngSuite-like matrix) for MlNetFineTune.Imaging.PngDecoder.

Usage (from the repository root):

    /usr/bin/python3 tests/golden/generate_png_fixtures.py [--out DIR] [--check]

Writes into ``tests/MlNetFineTune.Tests/Imaging/fixtures/png`` (or ``--out``):

* ``<name>.png``: the test images. Most are written by the small PNG encoder below, which can do what common
  encoders cannot: every colour type x bit depth (gray 1/2/4/8/16, RGB 8/16, palette 1/2/4/8, gray+alpha 8/16,
  RGBA 8/16), Adam7 interlacing, a chosen filter type per row (all five), tRNS for gray / RGB / palette, IDAT split
  into many (also empty) chunks, stored (level 0) deflate, ancillary chunks everywhere, odd and tiny sizes.
  The ``pil_*`` images are written by Pillow's own encoder (adaptive filters), as an independent encoder.
* ``expected.json``: for each image its size, the channel count the C# decoder must return and the expected
  pixels (base64, 8 bits per channel, row-major, interleaved), plus a sha256 of those pixels.

Expected pixels use the decoder's documented output: gray -> 1 channel (2 with tRNS), RGB -> 3 (4 with tRNS),
palette -> 3 (4 with tRNS), gray+alpha -> 2, RGBA -> 4; 16-bit samples keep their high byte; 1/2/4-bit gray is
scaled by 255/(2^depth-1); tRNS matches are alpha 0 (compared at full 16-bit precision), others 255.

The expected pixels come from decoding each written file with Pillow (an independent decoder), converted to that
layout. The generator also computes them from the source samples it encoded and aborts unless both agree, so an
encoder bug and a Pillow quirk would have to coincide to produce a wrong fixture. Exceptions, where Pillow cannot
answer: the alpha of 16-bit RGB tRNS images (Pillow drops the low bytes before matching) comes from the source
samples only, after checking Pillow's colours and its parsed tRNS value.

``--check`` re-decodes the committed files with Pillow and compares them with ``expected.json`` without writing.

Determinism: each image seeds ``random.Random(zlib.crc32(name))``; output depends only on that and on zlib's
compressor (the pixels do not). Needs Pillow (Debian ``python3-pil``; made with 9.4.0) and nothing else.
"""

import argparse
import base64
import hashlib
import io
import json
import os
import random
import struct
import sys
import zlib

from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.join(HERE, "..", "MlNetFineTune.Tests", "Imaging", "fixtures", "png")

SAMPLES = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
LEGAL = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}
ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]


# ----------------------------------------------------------------------------------------------- encoder

def chunk(ctype, data):
    assert len(ctype) == 4
    return struct.pack(">I", len(data)) + ctype + data + struct.pack(">I", zlib.crc32(ctype + data) & 0xFFFFFFFF)


def pack_row(pixels, ct, bd):
    """pixels: list of sample tuples -> raw scanline bytes (no filter byte)."""
    out = bytearray()
    if bd < 8:
        acc, nbits = 0, 0
        for px in pixels:
            for s in px:
                acc = (acc << bd) | s
                nbits += bd
                if nbits == 8:
                    out.append(acc)
                    acc, nbits = 0, 0
        if nbits:
            out.append(acc << (8 - nbits))
    elif bd == 8:
        for px in pixels:
            out.extend(px)
    else:
        for px in pixels:
            for s in px:
                out.extend(struct.pack(">H", s))
    return bytes(out)


def paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def filter_row(ftype, raw, prior, bpp):
    out = bytearray([ftype])
    for i, x in enumerate(raw):
        a = raw[i - bpp] if i >= bpp else 0
        b = prior[i]
        c = prior[i - bpp] if i >= bpp else 0
        pred = (0, a, b, (a + b) >> 1, paeth(a, b, c))[ftype]
        out.append((x - pred) & 0xFF)
    return bytes(out)


def image_data(width, height, ct, bd, rows, interlace, filters, rng):
    """Raw (uncompressed) IDAT stream. filters: 0..4 (fixed), 'cycle' (row counter % 5) or 'random'."""
    bpp = max(1, SAMPLES[ct] * bd // 8)
    passes = ADAM7 if interlace else [(0, 0, 1, 1)]
    out = bytearray()
    counter = 0
    for x0, y0, dx, dy in passes:
        sub = [row[x0::dx] for row in rows[y0::dy]]
        if not sub or not sub[0]:
            continue  # empty pass: no bytes at all
        prior = bytes(len(pack_row(sub[0], ct, bd)))
        for prow in sub:
            raw = pack_row(prow, ct, bd)
            if filters == "cycle":
                f = counter % 5
            elif filters == "random":
                f = rng.randrange(5)
            else:
                f = filters
            counter += 1
            out += filter_row(f, raw, prior, bpp)
            prior = raw
    return bytes(out)


def encode(width, height, ct, bd, rows, *, interlace=False, filters="cycle", palette=None, trns=None, level=9,
           idat_split=None, empty_idats=False, before_plte=(), before_idat=(), after_idat=(), rng=None):
    raw = image_data(width, height, ct, bd, rows, interlace, filters, rng)
    z = zlib.compress(raw, level)
    out = bytearray(b"\x89PNG\r\n\x1a\n")
    out += chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, bd, ct, 0, 0, 1 if interlace else 0))
    for c in before_plte:
        out += chunk(*c)
    if palette is not None:
        out += chunk(b"PLTE", b"".join(bytes(p) for p in palette))
    if trns is not None:
        out += chunk(b"tRNS", trns)
    for c in before_idat:
        out += chunk(*c)
    parts = [z] if not idat_split else [z[i:i + idat_split] for i in range(0, len(z), idat_split)]
    for i, part in enumerate(parts):
        out += chunk(b"IDAT", part)
        if empty_idats and i % 3 == 1:
            out += chunk(b"IDAT", b"")
    for c in after_idat:
        out += chunk(*c)
    out += chunk(b"IEND", b"")
    return bytes(out)


# ----------------------------------------------------------------------------------------------- content

def make_rows(width, height, ct, bd, rng, palette_size=None):
    """Pseudo-random samples with gradients, so every filter has something to predict."""
    maxv = (1 << bd) - 1
    n = SAMPLES[ct]
    rows = []
    for y in range(height):
        row = []
        for x in range(width):
            if ct == 3:
                row.append((rng.randrange(palette_size),))
                continue
            px = []
            for c in range(n):
                grad = ((x * 37 + y * 23 + c * 71) * maxv) // max(1, (width * 37 + height * 23 + 3 * 71))
                v = grad if rng.random() < 0.4 else rng.randrange(maxv + 1)
                px.append(min(maxv, max(0, v)))
            row.append(tuple(px))
        rows.append(row)
    return rows


def expected_from_source(ct, bd, rows, palette=None, trns=None):
    """The decoder's documented output, from the samples we encoded."""
    out = bytearray()
    t = None
    if trns is not None and ct in (0, 2):
        t = struct.unpack(">%dH" % (len(trns) // 2), trns)
    for row in rows:
        for px in row:
            if ct == 3:
                r, g, b = palette[px[0]]
                out += bytes((r, g, b))
                if trns is not None:
                    out.append(trns[px[0]] if px[0] < len(trns) else 255)
                continue
            if bd < 8:
                vals = [s * (255 // ((1 << bd) - 1)) for s in px]
            elif bd == 8:
                vals = list(px)
            else:
                vals = [s >> 8 for s in px]
            out += bytes(vals)
            if t is not None:
                out.append(0 if tuple(px) == t else 255)
    return bytes(out)


def channels_of(ct, has_trns):
    return {0: 2 if has_trns else 1, 2: 4 if has_trns else 3, 3: 4 if has_trns else 3, 4: 2, 6: 4}[ct]


# ----------------------------------------------------------------------------------------------- Pillow side

def expected_from_pil(data, ct, bd, trns, source_expected):
    """Decode with Pillow and convert to the decoder's output layout."""
    im = Image.open(io.BytesIO(data))
    im.load()
    w, h = im.size
    out = bytearray()
    if ct == 0:
        t = struct.unpack(">H", trns)[0] if trns is not None else None
        if t is not None:
            assert im.info.get("transparency") == t, (im.info, t)
        scale = 255 // ((1 << bd) - 1) if bd < 8 else 1
        for v in im.getdata():
            if im.mode == "1":
                v = 255 if v else 0
            raw = v // scale if bd < 8 else v          # the sample as stored (Pillow scaled 1/2/4-bit gray)
            out.append(v >> 8 if bd == 16 else v)
            if t is not None:
                out.append(0 if raw == t else 255)
    elif ct == 2:
        rgb = im.convert("RGB")
        if trns is None:
            for px in rgb.getdata():
                out += bytes(px)
        elif bd == 8:
            t = struct.unpack(">3H", trns)
            assert im.info.get("transparency") == t, (im.info, t)
            for px in im.convert("RGBA").getdata():
                out += bytes(px)
        else:
            # Pillow matches 16-bit tRNS after dropping low bytes; take alpha from the source, colours from Pillow.
            t = struct.unpack(">3H", trns)
            assert im.info.get("transparency") == t, (im.info, t)
            for i, px in enumerate(rgb.getdata()):
                out += bytes(px) + bytes((source_expected[4 * i + 3],))
    elif ct == 3:
        assert im.mode == "P"
        conv = im.convert("RGBA" if trns is not None else "RGB")
        for px in conv.getdata():
            out += bytes(px)
    elif ct == 4:
        if bd == 8:
            assert im.mode == "LA"
            for px in im.getdata():
                out += bytes(px)
        else:
            assert im.mode == "RGBA"  # Pillow unpacks LA;16B into RGBA (L copied to R, G, B)
            for r, g, b, a in im.getdata():
                assert r == g == b
                out += bytes((r, a))
    else:
        assert im.mode == "RGBA"
        for px in im.getdata():
            out += bytes(px)
    return w, h, bytes(out)


# ----------------------------------------------------------------------------------------------- the matrix

def palette_for(rng, n):
    return [(rng.randrange(256), rng.randrange(256), rng.randrange(256)) for _ in range(n)]


def trns_for(ct, bd, rows, rng, palette_size=None):
    """A tRNS value that really occurs; for 16-bit also plant look-alikes differing only in the low byte."""
    if ct == 3:
        n = {1: 1, 2: 3, 4: 11, 8: 100}[bd]  # shorter than the palette: later entries stay opaque
        n = min(n, palette_size)
        alphas = [0] + [rng.randrange(256) for _ in range(n - 1)]
        return bytes(alphas)
    px = rows[len(rows) // 2][len(rows[0]) // 2]
    # make about a quarter of the pixels transparent
    for row in rows:
        for x in range(len(row)):
            if rng.random() < 0.25:
                row[x] = px
            elif bd == 16 and rng.random() < 0.1:
                row[x] = tuple((s & 0xFF00) | ((s + 1) & 0xFF) for s in px)  # same high bytes, not transparent
    return struct.pack(">%dH" % len(px), *px)


ANCILLARY_BEFORE_PLTE = [
    (b"gAMA", struct.pack(">I", 45455)),
    (b"cHRM", struct.pack(">8I", 31270, 32900, 64000, 33000, 30000, 60000, 15000, 6000)),
    (b"sBIT", bytes((5, 6, 5))),
    (b"tEXt", b"Comment\x00MlNetFineTune PNG fixture"),
    (b"prVt", b"private ancillary chunk, must be ignored"),
]
ANCILLARY_BEFORE_IDAT = [
    (b"bKGD", bytes((1,))),  # palette index (the only image using this list is colour type 3)
    (b"pHYs", struct.pack(">IIB", 2835, 2835, 1)),
    (b"zTXt", b"Title\x00\x00" + zlib.compress(b"compressed text, ignored")),
    (b"iTXt", b"Author\x00\x00\x00en\x00\x00nobody"),
]
ANCILLARY_AFTER_IDAT = [
    (b"tIME", struct.pack(">HBBBBB", 2024, 1, 2, 3, 4, 5)),
    (b"tEXt", b"Software\x00generate_png_fixtures.py"),
    (b"xyZw", bytes(range(40))),
]


def fixtures():
    """Yields (name, note, builder) ; builder(rng) -> (png bytes, ct, bd, trns bytes or None, source expected)."""

    def std(width, height, ct, bd, *, interlace=False, with_trns=False, filters="cycle", **kw):
        def build(rng):
            psize = None
            palette = None
            if ct == 3:
                psize = {1: 2, 2: 4, 4: 13, 8: 181}[bd]  # 4-bit and 8-bit palettes are shorter than the maximum
                palette = palette_for(rng, psize)
            rows = make_rows(width, height, ct, bd, rng, psize)
            trns = trns_for(ct, bd, rows, rng, psize) if with_trns else None
            png = encode(width, height, ct, bd, rows, interlace=interlace, filters=filters, palette=palette,
                         trns=trns, rng=rng, **kw)
            return png, ct, bd, trns, expected_from_source(ct, bd, rows, palette, trns)
        return build

    # every colour type x bit depth, interlaced and not, odd size (sub-byte rows end mid-byte), filters cycling 0..4
    for ct, depths in LEGAL.items():
        for bd in depths:
            for il in (False, True):
                yield (f"ct{ct}_bd{bd}_{'adam7' if il else 'plain'}", "matrix, filters cycle 0-4 by row",
                       std(19, 13, ct, bd, interlace=il))

    # tRNS variants: gray at every depth, RGB 8/16, palette at every depth
    for ct, depths in ((0, LEGAL[0]), (2, LEGAL[2]), (3, LEGAL[3])):
        for bd in depths:
            yield (f"ct{ct}_bd{bd}_trns", "tRNS", std(17, 11, ct, bd, with_trns=True))
    yield ("ct0_bd16_trns_adam7", "tRNS + interlace", std(17, 11, 0, 16, with_trns=True, interlace=True))
    yield ("ct2_bd8_trns_adam7", "tRNS + interlace", std(17, 11, 2, 8, with_trns=True, interlace=True))
    yield ("ct3_bd4_trns_adam7", "tRNS + interlace", std(17, 11, 3, 4, with_trns=True, interlace=True))

    # each filter type alone, for filter strides 1 (sub-byte and 8-bit gray), 2, 3, 6 and 8 bytes
    for f in range(5):
        for ct, bd in ((0, 1), (0, 8), (4, 8), (2, 8), (2, 16), (6, 16)):
            yield (f"filter{f}_ct{ct}_bd{bd}", f"filter type {f} on every row", std(23, 9, ct, bd, filters=f))
    yield ("filter_random_ct6_bd8_adam7", "random filter per row", std(31, 29, 6, 8, interlace=True, filters="random"))

    # tiny and odd sizes, interlaced (empty Adam7 passes) and not
    for w, h in ((1, 1), (2, 2), (3, 3), (4, 4), (5, 5), (7, 7), (8, 8), (9, 9), (1, 9), (9, 1), (2, 17), (17, 2),
                 (33, 1), (1, 33), (10, 3)):
        yield (f"size{w}x{h}_ct6_bd8_adam7", "small interlaced", std(w, h, 6, 8, interlace=True))
        yield (f"size{w}x{h}_ct0_bd1_adam7", "small interlaced, 1-bit", std(w, h, 0, 1, interlace=True))
    for ct, bd in ((0, 1), (0, 2), (0, 16), (2, 8), (3, 1), (3, 8), (4, 16), (6, 16)):
        yield (f"size1x1_ct{ct}_bd{bd}", "1x1", std(1, 1, ct, bd))
    yield ("size1x1_ct3_bd2_trns_adam7", "1x1 interlaced palette + tRNS", std(1, 1, 3, 2, interlace=True, with_trns=True))
    for w, h in ((1, 7), (7, 1), (63, 5), (5, 63)):
        yield (f"size{w}x{h}_ct2_bd16", "odd size", std(w, h, 2, 16))
        yield (f"size{w}x{h}_ct0_bd4", "odd size", std(w, h, 0, 4))

    # larger images (long rows: vectorised Up filter, several zlib blocks)
    yield ("large_ct2_bd8_adam7", "96x80 RGB interlaced", std(96, 80, 2, 8, interlace=True))
    yield ("large_ct6_bd8", "80x64 RGBA", std(80, 64, 6, 8, filters="random"))

    # stream structure
    yield ("idat_split_ct2_bd8", "IDAT split into 7-byte chunks with empty IDATs between",
           std(21, 15, 2, 8, idat_split=7, empty_idats=True))
    yield ("idat_one_byte_chunks_ct0_bd2_adam7", "IDAT split into 1-byte chunks",
           std(13, 9, 0, 2, interlace=True, idat_split=1))
    yield ("stored_deflate_ct6_bd16", "zlib level 0 (stored blocks)", std(15, 11, 6, 16, level=0))
    yield ("ancillary_ct3_bd8_trns", "ancillary chunks before PLTE, before IDAT and after IDAT (ignored)",
           std(15, 11, 3, 8, with_trns=True, before_plte=ANCILLARY_BEFORE_PLTE, before_idat=ANCILLARY_BEFORE_IDAT,
               after_idat=ANCILLARY_AFTER_IDAT))
    yield ("ancillary_ct2_bd8_suggested_plte", "RGB with a suggested PLTE (ignored) and ancillary chunks",
           suggested_plte(std(15, 11, 2, 8, before_plte=ANCILLARY_BEFORE_PLTE, after_idat=ANCILLARY_AFTER_IDAT)))

    # Pillow's encoder (independent of the one above; adaptive filters)
    for mode in ("1", "L", "LA", "RGB", "RGBA", "P", "P_trns", "I;16"):
        yield (f"pil_{mode.replace(';', '').replace('_', '-').lower()}", f"written by Pillow, mode {mode}", pil_built(mode))


def suggested_plte(build):
    def wrapped(rng):
        png, ct, bd, trns, exp = build(rng)
        # insert a PLTE right after IHDR (8 + 25 bytes)
        plte = chunk(b"PLTE", bytes(rng.randrange(256) for _ in range(3 * 16)))
        return png[:33] + plte + png[33:], ct, bd, trns, exp
    return wrapped


def pil_built(mode):
    def build(rng):
        w, h = 37, 23
        pil_mode = "P" if mode == "P_trns" else mode
        im = Image.new(pil_mode, (w, h))
        px = im.load()
        n = {"1": 1, "L": 1, "LA": 2, "RGB": 3, "RGBA": 4, "P": 1, "I;16": 1}[pil_mode]
        if pil_mode == "P":
            im.putpalette(bytes(rng.randrange(256) for _ in range(3 * 256)))
        for y in range(h):
            for x in range(w):
                if pil_mode == "1":
                    px[x, y] = 255 if (x * y + rng.randrange(3)) % 4 else 0
                elif pil_mode == "I;16":
                    px[x, y] = (x * 1700 + y * 900 + rng.randrange(512)) % 65536
                elif n == 1:
                    px[x, y] = (x * 7 + y * 5 + rng.randrange(16)) % 256
                else:
                    px[x, y] = tuple((x * (3 + c) + y * (5 - c) + rng.randrange(8) + 40 * c) % 256 for c in range(n))
        buf = io.BytesIO()
        kw = {"transparency": 3} if mode == "P_trns" else {}
        im.save(buf, format="PNG", optimize=False, **kw)
        data = buf.getvalue()
        # read back what Pillow wrote: colour type, depth, tRNS
        ct, bd = data[25], data[24]
        trns = read_chunk(data, b"tRNS")
        # source-side expectation straight from the in-memory image
        exp = bytearray()
        for y in range(h):
            for x in range(w):
                v = px[x, y]
                if pil_mode == "1":
                    exp.append(255 if v else 0)
                elif pil_mode == "I;16":
                    exp.append(v >> 8)
                elif pil_mode == "P":
                    pal = im.getpalette()
                    exp += bytes(pal[3 * v:3 * v + 3])
                    if trns is not None:
                        exp.append(trns[v] if v < len(trns) else 255)
                elif n == 1:
                    exp.append(v)
                else:
                    exp += bytes(v)
        return data, ct, bd, trns, bytes(exp)
    return build


def read_chunk(data, ctype):
    pos = 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        if data[pos + 4:pos + 8] == ctype:
            return data[pos + 8:pos + 8 + length]
        pos += 12 + length
    return None


# ----------------------------------------------------------------------------------------------- main

def build_all():
    entries, files = [], {}
    for name, note, build in fixtures():
        rng = random.Random(zlib.crc32(name.encode()))
        png, ct, bd, trns, src_exp = build(rng)
        w, h, pil_exp = expected_from_pil(png, ct, bd, trns, src_exp)
        if pil_exp != src_exp:
            diff = next(i for i in range(min(len(pil_exp), len(src_exp))) if pil_exp[i] != src_exp[i]) \
                if len(pil_exp) == len(src_exp) else "length"
            sys.exit(f"{name}: Pillow and the source samples disagree (first difference at byte {diff})")
        channels = channels_of(ct, trns is not None)
        assert len(pil_exp) == w * h * channels, name
        files[name + ".png"] = png
        entries.append({
            "file": name + ".png", "width": w, "height": h, "channels": channels,
            "color_type": ct, "bit_depth": bd, "interlaced": png[28] == 1, "trns": trns is not None,
            "note": note, "sha256": hashlib.sha256(pil_exp).hexdigest(),
            "pixels": base64.b64encode(pil_exp).decode("ascii"),
        })
    return entries, files


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=DEFAULT_OUT)
    ap.add_argument("--check", action="store_true", help="only verify the committed files with Pillow")
    args = ap.parse_args()
    out = os.path.normpath(args.out)

    if args.check:
        with open(os.path.join(out, "expected.json")) as f:
            entries = json.load(f)["images"]
        for e in entries:
            with open(os.path.join(out, e["file"]), "rb") as f:
                data = f.read()
            exp = base64.b64decode(e["pixels"])
            trns = read_chunk(data, b"tRNS")
            w, h, pil = expected_from_pil(data, e["color_type"], e["bit_depth"], trns, exp)
            if (w, h) != (e["width"], e["height"]) or pil != exp or hashlib.sha256(exp).hexdigest() != e["sha256"]:
                sys.exit(f"{e['file']}: does not match expected.json")
        print(f"{len(entries)} fixtures verified in {out}")
        return

    entries, files = build_all()
    os.makedirs(out, exist_ok=True)
    for old in os.listdir(out):
        if old.endswith(".png") and old not in files:
            os.remove(os.path.join(out, old))
    for name, data in files.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
    manifest = {
        "generator": "tests/golden/generate_png_fixtures.py",
        "layout": "8 bits per channel, row-major, interleaved; channels 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA",
        "images": entries,
    }
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")
    total = sum(len(d) for d in files.values()) + os.path.getsize(os.path.join(out, "expected.json"))
    print(f"wrote {len(files)} images + expected.json to {out} ({total} bytes)")


if __name__ == "__main__":
    main()

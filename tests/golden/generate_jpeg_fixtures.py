#!/usr/bin/python3
"""Generates the JPEG decoder fixtures in tests/MlNetFineTune.Tests/Imaging/fixtures/jpeg/.

Each fixture is a small JPEG encoded from a synthetic image by cjpeg (libjpeg-turbo), ImageMagick or Pillow, plus
the reference decoder's output stored next to it as raw binary PNM (P6 .ppm for colour, P5 .pgm for gray):

  * djpeg -pnm             (libjpeg defaults: accurate integer IDCT, fancy upsampling)   -> NAME.ppm / NAME.pgm
  * djpeg -nosmooth -pnm   (box-replication upsampling)                                  -> NAME.nosmooth.ppm
  * Pillow .convert("RGB") for CMYK/YCCK files (libjpeg decodes, Pillow inverts Adobe CMYK and converts)
  * Pillow ImageOps.exif_transpose for the EXIF orientation files

manifest.json lists every comparison: the JPEG, the expected PNM, the decoder options (upsampling, EXIF
orientation applied or not) and the tolerance (max absolute difference per channel) the C# test asserts.
Files that must fail (arithmetic coding) are listed with the exception they must raise.

Needs: Debian packages libjpeg-turbo-progs (cjpeg/djpeg), imagemagick, libimage-exiftool-perl, python3-pil.

  /usr/bin/python3 tests/golden/generate_jpeg_fixtures.py           # regenerate everything
  /usr/bin/python3 tests/golden/generate_jpeg_fixtures.py --out DIR

The output is deterministic for a given set of tool versions (recorded in manifest.json).
"""

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile

from PIL import Image, ImageOps
import PIL

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_OUT = os.path.join(ROOT, "tests", "MlNetFineTune.Tests", "Imaging", "fixtures", "jpeg")
CONVERT = "/usr/bin/convert"  # ImageMagick itself, not a stand-in earlier on PATH


def run(args, stdin=None):
    return subprocess.run(args, input=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=True).stdout


# ----------------------------------------------------------------------------------------------- synthetic images

def synth_rgb(w, h, seed):
    """Gradients, a saturated disc, dark stripes and seeded noise: smooth areas, sharp edges and clipping."""
    state = seed * 2654435761 % 2**32 or 1
    out = bytearray()
    for y in range(h):
        for x in range(w):
            r = (x * 255) // max(1, w - 1)
            g = (y * 255) // max(1, h - 1)
            b = ((x * 5 + y * 3) * 4) & 255
            cx, cy, rad = w * 0.6, h * 0.4, min(w, h) * 0.28
            if (x - cx) ** 2 + (y - cy) ** 2 < rad * rad:
                r, g, b = 250, 20, 60
            if (x // 3) % 5 == 0 and y > h // 2:
                r, g, b = 5, 5, 5
            if x < w // 6 and y < h // 4:
                r, g, b = 255, 255, 255
            vals = []
            for v in (r, g, b):
                state = (state * 1103515245 + 12345) % 2**31
                v += (state >> 16) % 13 - 6
                vals.append(min(255, max(0, v)))
            out += bytes(vals)
    return Image.frombytes("RGB", (w, h), bytes(out))


def pnm_bytes(img):
    buf = io.BytesIO()
    img.save(buf, format="PPM")
    return buf.getvalue()


# ----------------------------------------------------------------------------------------------- cases

QTABLES = """
# three quantisation tables, one per component (cjpeg -qtables/-qslots)
 16 11 10 16 24 40 51 61  12 12 14 19 26 58 60 55  14 13 16 24 40 57 69 56  14 17 22 29 51 87 80 62
 18 22 37 56 68 109 103 77  24 35 55 64 81 104 113 92  49 64 78 87 103 121 120 101  72 92 95 98 112 100 103 99
 17 18 24 47 99 99 99 99  18 21 26 66 99 99 99 99  24 26 56 99 99 99 99 99  47 66 99 99 99 99 99 99
 99 99 99 99 99 99 99 99  99 99 99 99 99 99 99 99  99 99 99 99 99 99 99 99  99 99 99 99 99 99 99 99
 8 8 8 8 8 8 8 8  8 8 8 8 8 8 8 8  8 8 8 8 8 8 8 8  8 8 8 8 8 8 8 8
 8 8 8 8 8 8 8 8  8 8 8 8 8 8 8 8  8 8 8 8 8 8 8 8  8 8 8 8 8 8 8 8
"""

# Successive approximation on DC and AC, several refinement levels, interleaved and non-interleaved DC scans.
SCANS_SA = """
0,1,2: 0-0, 0, 2;
0: 1-5, 0, 2;
2: 1-63, 0, 1;
1: 1-63, 0, 1;
0: 6-63, 0, 2;
0: 0-0, 2, 1;
1: 0-0, 2, 1;
2: 0-0, 2, 1;
0: 1-63, 2, 1;
0,1,2: 0-0, 1, 0;
2: 1-63, 1, 0;
1: 1-63, 1, 0;
0: 1-63, 1, 0;
"""

# Spectral selection only, every DC scan non-interleaved.
SCANS_SS = """
0: 0-0, 0, 0;
1: 0-0, 0, 0;
2: 0-0, 0, 0;
0: 1-2, 0, 0;
0: 3-20, 0, 0;
1: 1-63, 0, 0;
0: 21-63, 0, 0;
2: 1-63, 0, 0;
"""

# Sequential (baseline) but one non-interleaved scan per component.
SCANS_SEQ = """
0: 0-63, 0, 0;
1: 0-63, 0, 0;
2: 0-63, 0, 0;
"""

# name, (w, h), gray?, cjpeg arguments (files named @qtables/@sa/@ss/@seq are written to the temp dir), nosmooth ref?
CJPEG_CASES = [
    ("baseline_q10", (48, 40), False, ["-quality", "10", "-baseline"], False),  # -baseline: 8-bit tables, SOF0
    ("baseline_q50", (48, 40), False, ["-quality", "50"], False),
    ("baseline_q75", (48, 40), False, ["-quality", "75"], True),
    ("baseline_q90", (48, 40), False, ["-quality", "90"], False),
    ("baseline_q100", (48, 40), False, ["-quality", "100"], False),
    ("extended_q1_16bit_dqt", (48, 40), False, ["-quality", "1"], False),  # SOF1, 16-bit DQT values > 255
    ("sample_444", (48, 40), False, ["-sample", "1x1"], False),
    ("sample_422", (48, 40), False, ["-sample", "2x1"], True),
    ("sample_420", (48, 40), False, ["-sample", "2x2"], True),
    ("sample_440", (48, 40), False, ["-sample", "1x2"], True),
    ("sample_411", (48, 40), False, ["-sample", "4x1"], True),
    ("sample_410", (48, 40), False, ["-sample", "4x2"], True),
    ("sample_311", (48, 40), False, ["-sample", "3x1"], False),
    ("sample_mixed", (48, 40), False, ["-sample", "2x2,2x1,1x2"], True),
    ("sample_chroma_larger", (48, 40), False, ["-sample", "1x1,2x2,2x2"], True),
    ("gray_q75", (48, 40), True, ["-grayscale", "-quality", "75"], False),
    ("gray_progressive", (48, 40), True, ["-grayscale", "-progressive"], False),
    ("gray_restart", (48, 40), True, ["-grayscale", "-restart", "2B"], False),
    ("progressive_420", (48, 40), False, ["-progressive"], True),
    ("progressive_444", (48, 40), False, ["-progressive", "-sample", "1x1"], False),
    ("progressive_422_large", (100, 75), False, ["-progressive", "-sample", "2x1", "-quality", "85"], False),
    ("progressive_sa_scans", (48, 40), False, ["-scans", "@sa", "-quality", "92"], False),
    ("progressive_ss_scans", (48, 40), False, ["-scans", "@ss"], False),
    ("progressive_restart", (48, 40), False, ["-progressive", "-restart", "3B"], False),
    ("sequential_multiscan", (48, 40), False, ["-scans", "@seq"], False),
    ("restart_1row", (48, 40), False, ["-restart", "1"], False),
    ("restart_2mcu_422", (48, 40), False, ["-restart", "2B", "-sample", "2x1"], False),
    ("optimized_huffman", (100, 75), False, ["-optimize", "-quality", "80"], False),
    ("qtables_3_slots", (48, 40), False, ["-qtables", "@qtables", "-qslots", "0,1,2"], False),
    ("quality_split", (48, 40), False, ["-quality", "90,40"], False),
    ("rgb_adobe", (48, 40), False, ["-rgb", "-quality", "85"], False),
    # partial MCUs
    ("odd_1x1_420", (1, 1), False, [], True),
    ("odd_1x1_gray", (1, 1), True, ["-grayscale"], False),
    ("odd_1x1_progressive", (1, 1), False, ["-progressive"], False),
    ("odd_17x13_420", (17, 13), False, [], True),
    ("odd_17x13_422", (17, 13), False, ["-sample", "2x1"], False),
    ("odd_17x13_411", (17, 13), False, ["-sample", "4x1"], False),
    ("odd_17x13_gray", (17, 13), True, ["-grayscale"], False),
    ("odd_17x13_progressive", (17, 13), False, ["-progressive"], False),
    ("odd_33x7_420", (33, 7), False, [], True),
    ("odd_33x7_440", (33, 7), False, ["-sample", "1x2"], False),
    ("odd_33x7_progressive_restart", (33, 7), False, ["-progressive", "-restart", "1B"], False),
    ("odd_4x6_420_narrow_chroma", (4, 6), False, [], True),   # chroma 2 wide: libjpeg replicates even when fancy
    ("odd_5x3_422", (5, 3), False, ["-sample", "2x1"], True),  # chroma 3 wide: fancy
]

ARITHMETIC_CASE = ("arithmetic_sof9", (16, 16), False, ["-arithmetic"])

EXIF_BASE = ("exif", (24, 16))  # non-square and asymmetric so each orientation is distinct


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=DEFAULT_OUT)
    args = ap.parse_args()
    out = args.out
    if os.path.isdir(out):  # remove stale fixtures only: files this script writes
        for f in os.listdir(out):
            if f == "manifest.json" or os.path.splitext(f)[1] in (".jpg", ".ppm", ".pgm"):
                os.remove(os.path.join(out, f))
    os.makedirs(out, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="jpegfix-")
    files = {
        "@qtables": os.path.join(tmp, "qtables.txt"),
        "@sa": os.path.join(tmp, "sa.txt"),
        "@ss": os.path.join(tmp, "ss.txt"),
        "@seq": os.path.join(tmp, "seq.txt"),
    }
    for key, text in (("@qtables", QTABLES), ("@sa", SCANS_SA), ("@ss", SCANS_SS), ("@seq", SCANS_SEQ)):
        with open(files[key], "w") as f:
            f.write(text)

    entries = []

    def write(name, data):
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)

    def add(name, jpeg, expected, reference, upsampling="fancy", orientation=False, tolerance=0, note=""):
        entries.append({
            "name": name, "jpeg": jpeg, "expected": expected, "reference": reference,
            "upsampling": upsampling, "applyExifOrientation": orientation, "tolerance": tolerance, "note": note,
        })

    seed = 1
    for name, (w, h), gray, cargs, nosmooth in CJPEG_CASES:
        seed += 1
        img = synth_rgb(w, h, seed)
        src = pnm_bytes(img)
        cargs = [files.get(a, a) for a in cargs]
        jpeg = run(["cjpeg"] + cargs, src)
        write(name + ".jpg", jpeg)
        ext = ".pgm" if gray else ".ppm"
        write(name + ext, run(["djpeg", "-pnm"], jpeg))
        add(name, name + ".jpg", name + ext, "djpeg -pnm (islow, fancy)", note="cjpeg " + " ".join(a if not a.startswith("/") else os.path.basename(a) for a in cargs))
        if nosmooth:
            write(name + ".nosmooth" + ext, run(["djpeg", "-nosmooth", "-pnm"], jpeg))
            add(name + " (replicate)", name + ".jpg", name + ".nosmooth" + ext, "djpeg -nosmooth -pnm", upsampling="replicate")

    # CMYK (Pillow: Adobe transform 0, inverted) and YCCK (ImageMagick: Adobe transform 2); reference = Pillow RGB.
    img = synth_rgb(48, 40, 101)
    buf = io.BytesIO()
    img.convert("CMYK").save(buf, format="JPEG", quality=90)
    write("cmyk_adobe.jpg", buf.getvalue())
    write("cmyk_adobe.ppm", pnm_bytes(Image.open(io.BytesIO(buf.getvalue())).convert("RGB")))
    add("cmyk_adobe", "cmyk_adobe.jpg", "cmyk_adobe.ppm", "Pillow convert('RGB')", note="Pillow CMYK save")
    ycck = run([CONVERT, "ppm:-", "-colorspace", "CMYK", "-quality", "90", "jpg:-"], pnm_bytes(synth_rgb(48, 40, 102)))
    write("ycck_adobe.jpg", ycck)
    write("ycck_adobe.ppm", pnm_bytes(Image.open(io.BytesIO(ycck)).convert("RGB")))
    add("ycck_adobe", "ycck_adobe.jpg", "ycck_adobe.ppm", "Pillow convert('RGB')", note="ImageMagick -colorspace CMYK")

    # EXIF orientation: one JPEG body, orientation written by exiftool in both byte orders.
    base_name, (w, h) = EXIF_BASE
    base = run(["cjpeg", "-quality", "90"], pnm_bytes(synth_rgb(w, h, 200)))
    write(base_name + "_none.jpg", base)
    raw = run(["djpeg", "-pnm"], base)
    write(base_name + "_none.ppm", raw)
    add(base_name + "_none", base_name + "_none.jpg", base_name + "_none.ppm", "djpeg -pnm", orientation=True)
    for order in ("MM", "II"):
        for o in range(1, 9):
            if order == "II" and o not in (2, 5, 6, 8):
                continue
            name = f"{base_name}_{order.lower()}_o{o}"
            src = os.path.join(tmp, "base.jpg")
            dst = os.path.join(tmp, name + ".jpg")
            with open(src, "wb") as f:
                f.write(base)
            run(["exiftool", "-q", "-n", f"-ExifByteOrder={order}", f"-Orientation={o}", "-o", dst, src])
            with open(dst, "rb") as f:
                data = f.read()
            write(name + ".jpg", data)
            pil = Image.open(io.BytesIO(data))
            assert pil.getexif().get(0x0112) == o, (name, pil.getexif().get(0x0112))
            assert pnm_bytes(pil.convert("RGB")) == raw, "Pillow and djpeg disagree on " + name
            write(name + ".ppm", pnm_bytes(ImageOps.exif_transpose(pil).convert("RGB")))
            add(name, name + ".jpg", name + ".ppm", "Pillow ImageOps.exif_transpose", orientation=True)
            add(name + " (not applied)", name + ".jpg", base_name + "_none.ppm", "djpeg -pnm", orientation=False)

    name, (w, h), _, cargs = ARITHMETIC_CASE
    write(name + ".jpg", run(["cjpeg"] + cargs, pnm_bytes(synth_rgb(w, h, 300))))
    failures = [{"jpeg": name + ".jpg", "exception": "NotSupportedException", "note": "arithmetic coding (SOF9)"}]

    tools = {
        "djpeg": subprocess.run(["djpeg", "-version"], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT).stdout.decode().strip(),
        "pillow": PIL.__version__,
        "imagemagick": run([CONVERT, "-version"]).decode().splitlines()[0],
        "exiftool": run(["exiftool", "-ver"]).decode().strip(),
    }
    manifest = {"generator": "tests/golden/generate_jpeg_fixtures.py", "tools": tools, "cases": entries, "failures": failures}
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")
    shutil.rmtree(tmp)
    total = sum(os.path.getsize(os.path.join(out, f)) for f in os.listdir(out))
    print(f"{len(entries)} comparisons, {len(os.listdir(out))} files, {total} bytes in {out}")


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Re-derives data/fashion-mnist/ from the pinned Debian package dataset-fashion-mnist.

Source:
  * Debian `dataset-fashion-mnist` version 0.0~git20200523.55506a9-1 (`apt-get install -y dataset-fashion-mnist`),
    MIT (Expat), Copyright 2017 Zalando SE. It installs the four original Fashion-MNIST IDX files, gzip'd,
    under /usr/share/datasets/fashion-mnist/:
      train-images-idx3-ubyte.gz  60,000 x 28 x 28 uint8 (IDX magic 0x00000803)
      train-labels-idx1-ubyte.gz  60,000 uint8 labels 0..9 (IDX magic 0x00000801)
      t10k-images-idx3-ubyte.gz   10,000 x 28 x 28 uint8
      t10k-labels-idx1-ubyte.gz   10,000 uint8 labels 0..9
    and its licence as /usr/share/doc/dataset-fashion-mnist/copyright.

What it does:
  1. Checks the sha256 of each of the four .gz files, of its decompressed content and of the copyright file
     against the pinned values below, so any change in the package fails loudly.
  2. Parses each IDX file: big-endian magic (0x0803 images with 3 dims, 0x0801 labels with 1 dim), dims
     (60000/10000 x 28 x 28), exact data length, labels all in 0..9, image and label counts equal.
  3. Selects:
       train: class-balanced, the first 100 images of each class in file order, kept in file order
              (= every training index i whose label has occurred fewer than 100 times in indices < i;
              1,000 images, source indices 0..1109).
       test:  the first 2,000 test images (indices 0..1999), as they are (not balanced: the file's own
              class mix, 188..219 per class).
  4. Writes, into --out, IDX files in the original format (same magic, big-endian dims, N changed to the
     subset size, pixels and labels copied unchanged), each gzip'd by Python's gzip module at compression
     level 9 with mtime 0 and no file name in the header:
       train-images-idx3-ubyte.gz   1,000 x 28 x 28
       train-labels-idx1-ubyte.gz   1,000
       t10k-images-idx3-ubyte.gz    2,000 x 28 x 28
       t10k-labels-idx1-ubyte.gz    2,000
     and, uncompressed, UTF-8, "\\n" line ends:
       labels.txt                   the 10 class names, line n = class id n - 1
       train-source-indices.txt     for each shipped training image, in order, its index in the full
                                    60,000-image training file (one integer per line)
       LICENSE                      the package's copyright file, copied unchanged
     The decompressed content is deterministic whatever the zlib; the compressed bytes are the same for
     the same zlib (--check reports a zlib-only difference separately).

Usage (any Python 3.8+, standard library only):
  python3 data/scripts/derive_fashion_mnist.py [--src DIR] [--copyright FILE] [--out DIR] [--check]
    --src DIR         the package's data folder (default /usr/share/datasets/fashion-mnist)
    --copyright FILE  the package's licence (default /usr/share/doc/dataset-fashion-mnist/copyright)
    --out DIR         where to write (default: data/fashion-mnist next to this script's folder)
    --check           derive into a temporary folder and compare with --out byte for byte; exit 1 on a
                      difference or on a file in --out that the derivation does not produce
"""

import argparse
import collections
import gzip
import hashlib
import io
import os
import struct
import sys
import tempfile

PACKAGE = "dataset-fashion-mnist"
PACKAGE_VERSION = "0.0~git20200523.55506a9-1"
DEB_SHA256 = "39e172fe32dd318ebb3e512220c3beea2fa47d7e20bab348fb4e0922d6beefc0"  # for the record; not read

# name -> (sha256 of the .gz file, sha256 of its decompressed content, magic, dims)
SOURCES = {
    "train-images-idx3-ubyte.gz": ("b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
                                   "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
                                   0x00000803, (60000, 28, 28)),
    "train-labels-idx1-ubyte.gz": ("0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
                                   "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
                                   0x00000801, (60000,)),
    "t10k-images-idx3-ubyte.gz": ("cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
                                  "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
                                  0x00000803, (10000, 28, 28)),
    "t10k-labels-idx1-ubyte.gz": ("8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
                                  "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
                                  0x00000801, (10000,)),
}
COPYRIGHT_SHA256 = "193c9c47fa3dc7e614dcd5f4ea5315d69c0a542b698b64dc34ac5bc4b09d5c3a"

CLASS_NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
               "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
PER_CLASS_TRAIN = 100
N_TEST = 2000

DEFAULT_SRC = "/usr/share/datasets/fashion-mnist"
DEFAULT_COPYRIGHT = "/usr/share/doc/dataset-fashion-mnist/copyright"
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
DEFAULT_OUT = os.path.join(REPO, "data", "fashion-mnist")

OUTPUTS = ["LICENSE", "labels.txt", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz",
           "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "train-source-indices.txt"]


def sha256_bytes(data):
    return hashlib.sha256(data).hexdigest()


def fail(message):
    sys.exit("derive_fashion_mnist: " + message)


def read_source(src, name):
    path = os.path.join(src, name)
    if not os.path.exists(path):
        fail("%s not found: install the pinned package with `apt-get install -y %s=%s` or pass --src"
             % (path, PACKAGE, PACKAGE_VERSION))
    with open(path, "rb") as f:
        packed = f.read()
    gz_sha, raw_sha, magic, dims = SOURCES[name]
    if sha256_bytes(packed) != gz_sha:
        fail("%s: sha256 %s, expected %s" % (path, sha256_bytes(packed), gz_sha))
    raw = gzip.decompress(packed)
    if sha256_bytes(raw) != raw_sha:
        fail("%s: decompressed sha256 %s, expected %s" % (path, sha256_bytes(raw), raw_sha))
    got_magic, = struct.unpack(">I", raw[:4])
    if got_magic != magic:
        fail("%s: magic 0x%08x, expected 0x%08x" % (path, got_magic, magic))
    ndim = magic & 0xFF
    got_dims = struct.unpack(">%dI" % ndim, raw[4:4 + 4 * ndim])
    if tuple(got_dims) != dims:
        fail("%s: dims %r, expected %r" % (path, got_dims, dims))
    header = 4 + 4 * ndim
    size = 1
    for d in dims:
        size *= d
    if len(raw) != header + size:
        fail("%s: %d bytes after gunzip, expected %d" % (path, len(raw), header + size))
    return raw[header:]


def idx(magic, dims, data):
    return struct.pack(">I%dI" % len(dims), magic, *dims) + data


def gz(data):
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", compresslevel=9, fileobj=buf, mtime=0) as f:
        f.write(data)
    return buf.getvalue()


def derive(src, copyright_path, out, log):
    train_x = read_source(src, "train-images-idx3-ubyte.gz")
    train_y = read_source(src, "train-labels-idx1-ubyte.gz")
    test_x = read_source(src, "t10k-images-idx3-ubyte.gz")
    test_y = read_source(src, "t10k-labels-idx1-ubyte.gz")
    for name, labels in (("train", train_y), ("t10k", test_y)):
        bad = [i for i, v in enumerate(labels) if v > 9]
        if bad:
            fail("%s labels: value out of 0..9 at index %d" % (name, bad[0]))
    log("train: %d images, per class %s" % (len(train_y), sorted(collections.Counter(train_y).items())))
    log("t10k:  %d images, per class %s" % (len(test_y), sorted(collections.Counter(test_y).items())))

    with open(copyright_path, "rb") as f:
        license_text = f.read()
    if sha256_bytes(license_text) != COPYRIGHT_SHA256:
        fail("%s: sha256 %s, expected %s" % (copyright_path, sha256_bytes(license_text), COPYRIGHT_SHA256))

    px = 28 * 28
    seen = collections.Counter()
    selected = []
    for i, label in enumerate(train_y):
        if seen[label] < PER_CLASS_TRAIN:
            seen[label] += 1
            selected.append(i)
            if len(selected) == PER_CLASS_TRAIN * 10:
                break
    if len(selected) != PER_CLASS_TRAIN * 10:
        fail("could not find %d images of every class" % PER_CLASS_TRAIN)
    sub_train_x = b"".join(train_x[i * px:(i + 1) * px] for i in selected)
    sub_train_y = bytes(train_y[i] for i in selected)
    sub_test_x = test_x[:N_TEST * px]
    sub_test_y = test_y[:N_TEST]
    log("train subset: %d images, source indices %d..%d, per class %s"
        % (len(selected), selected[0], selected[-1], sorted(collections.Counter(sub_train_y).items())))
    log("t10k subset:  %d images, per class %s" % (N_TEST, sorted(collections.Counter(sub_test_y).items())))

    files = {
        "train-images-idx3-ubyte.gz": gz(idx(0x00000803, (len(selected), 28, 28), sub_train_x)),
        "train-labels-idx1-ubyte.gz": gz(idx(0x00000801, (len(selected),), sub_train_y)),
        "t10k-images-idx3-ubyte.gz": gz(idx(0x00000803, (N_TEST, 28, 28), sub_test_x)),
        "t10k-labels-idx1-ubyte.gz": gz(idx(0x00000801, (N_TEST,), sub_test_y)),
        "labels.txt": "".join(n + "\n" for n in CLASS_NAMES).encode("utf-8"),
        "train-source-indices.txt": "".join("%d\n" % i for i in selected).encode("ascii"),
        "LICENSE": license_text,
    }
    assert sorted(files) == OUTPUTS
    os.makedirs(out, exist_ok=True)
    for name, data in files.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)

    # Reference values that the C# tests assert (image i of a subset: pixels[i*784 + r*28 + c]).
    def stats(name, x, y, i):
        img = x[i * px:(i + 1) * px]
        nz = [k for k, v in enumerate(img) if v]
        log("%s[%d]: label %d (%s), pixel sum %d, nonzero %d, max %d, first nonzero at %d = %d, "
            "pixel(14,14) = %d, sha256 %s"
            % (name, i, y[i], CLASS_NAMES[y[i]], sum(img), len(nz), max(img), nz[0], img[nz[0]],
               img[14 * 28 + 14], sha256_bytes(img)[:16]))

    for i in (0, 1, 999):
        stats("train subset", sub_train_x, sub_train_y, i)
    for i in (0, 1, 1999):
        stats("t10k subset", sub_test_x, sub_test_y, i)
    log("train subset: total pixel sum %d, labels sha256 %s"
        % (sum(sub_train_x), sha256_bytes(sub_train_y)[:16]))
    log("t10k subset:  total pixel sum %d, labels sha256 %s"
        % (sum(sub_test_x), sha256_bytes(sub_test_y)[:16]))
    log("first 20 train subset labels: %s" % list(sub_train_y[:20]))
    log("first 20 t10k subset labels:  %s" % list(sub_test_y[:20]))
    total = 0
    for name in sorted(files):
        total += len(files[name])
        log("%s  %s  %d bytes" % (sha256_bytes(files[name]), name, len(files[name])))
    log("total %d bytes" % total)


def compare(expected_dir, actual_dir, names):
    ok = True
    for name in names:
        a, b = os.path.join(expected_dir, name), os.path.join(actual_dir, name)
        if not os.path.exists(a):
            print("missing: " + a)
            ok = False
            continue
        with open(a, "rb") as f:
            da = f.read()
        with open(b, "rb") as f:
            db = f.read()
        if da == db:
            print("same:    " + name)
        elif name.endswith(".gz") and gzip.decompress(da) == gzip.decompress(db):
            print("DIFFERS: %s (same content, different compressed bytes: another zlib version?)" % name)
            ok = False
        else:
            print("DIFFERS: " + name)
            ok = False
    if os.path.isdir(expected_dir):
        for extra in sorted(set(os.listdir(expected_dir)) - set(names)):
            print("extra:   %s (not produced by the derivation)" % os.path.join(expected_dir, extra))
            ok = False
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--src", default=DEFAULT_SRC)
    ap.add_argument("--copyright", default=DEFAULT_COPYRIGHT)
    ap.add_argument("--out", default=DEFAULT_OUT)
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args()
    if args.check:
        with tempfile.TemporaryDirectory() as tmp:
            target = os.path.join(tmp, "out")
            derive(args.src, args.copyright, target, print)
            sys.exit(0 if compare(args.out, target, OUTPUTS) else 1)
    derive(args.src, args.copyright, args.out, print)


if __name__ == "__main__":
    main()

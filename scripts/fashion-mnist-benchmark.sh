#!/usr/bin/env bash
# The one reproducible Fashion-MNIST benchmark (issue 7): 1,000 training images (the first 100 per class in file
# order) and the official 10,000 test images, side by side in one run: logistic regression on raw pixels, the
# shipped MobileNetV2 with its default strategy (a probe on the layer chosen on the validation set), and the same
# MobileNetV2 architecture trained from scratch. Results go to stdout and to a JSON file.
#
# Usage: scripts/fashion-mnist-benchmark.sh [--json FILE] [--configs 'pixels;default;scratch;finetune;partial'] [--seed N]
#   Data: Debian's dataset-fashion-mnist (0.0~git20200523.55506a9-1). Its files are read from
#   /usr/share/datasets/fashion-mnist when the package is installed, else the .deb is fetched with
#   `apt-get download` into $MLFT_FASHION_CACHE (default ~/.cache/mlnetfinetune/fashion-mnist) and unpacked there.
#   Every file's sha256 (compressed and decompressed) is checked by data/scripts/derive_fashion_mnist.py's own
#   read_source() (imported, not copied). MLFT_NUM_THREADS sets the engine's threads. About 15 minutes on 2 cores.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${MLFT_FASHION_CACHE:-$HOME/.cache/mlnetfinetune/fashion-mnist}"
PYTHON="${PYTHON:-/usr/bin/python3}"
VERSION="0.0~git20200523.55506a9-1"
SRC=/usr/share/datasets/fashion-mnist

args=("$@")
have_json=0
for a in "$@"; do [[ "$a" == --json* ]] && have_json=1; done
if [[ $have_json -eq 0 ]]; then args+=(--json "$CACHE/results.json"); fi
mkdir -p "$CACHE"

if [[ ! -f "$SRC/t10k-labels-idx1-ubyte.gz" ]]; then
  SRC="$CACHE/root/usr/share/datasets/fashion-mnist"
  if [[ ! -f "$SRC/t10k-labels-idx1-ubyte.gz" ]]; then
    echo "fetching dataset-fashion-mnist=$VERSION with apt-get download into $CACHE" >&2
    (cd "$CACHE" && apt-get download "dataset-fashion-mnist=$VERSION")
    dpkg-deb -x "$CACHE"/dataset-fashion-mnist_*.deb "$CACHE/root"
  fi
fi

"$PYTHON" - "$ROOT" "$SRC" <<'PY'
import os, sys
root, src = sys.argv[1:3]
sys.path.insert(0, os.path.join(root, "data", "scripts"))
import derive_fashion_mnist as d   # the shipped subset's deriver: same pinned hashes, same checks
for name in d.SOURCES:
    d.read_source(src, name)
print("%s: the four IDX files match the pinned sha256 values" % src, file=sys.stderr)
PY

dotnet build "$ROOT/tests/MlNetFineTune.Experiments" -c Release -nologo -v q >&2
exec dotnet "$ROOT/tests/MlNetFineTune.Experiments/bin/Release/net10.0/MlNetFineTune.Experiments.dll" fashion --dir "$SRC" "${args[@]}"

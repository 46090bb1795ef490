#!/usr/bin/env bash
# The AutoML efficiency figure (docs/automl.md): on an IMDB subset with the shipped default backbone, a 3x3x2 grid
# (learning rate x epochs x batch size) against TPE + ASHA on the same space. Prints both bests and their compute
# (sum over trials of epochs trained x training examples). Usage: tests/MlNetFineTune.AutoML.Tests/efficiency/automl-efficiency.sh [OUT_DIR] [TPE_TRIALS]
set -euo pipefail
cd "$(dirname "$0")/../../.."
out="${1:-/tmp/mlft-automl-efficiency}"
trials="${2:-20}"
mkdir -p "$out"
# 2,000 training reviews; the shipped test file's first 1,000 rows validate every trial, the other 1,000 test the winner.
set +o pipefail  # head closes the pipe early
zcat data/imdb/train.tsv.gz | head -n 2001 > "$out/train.tsv"
zcat data/imdb/test.tsv.gz | head -n 1001 > "$out/valid.tsv"
{ zcat data/imdb/test.tsv.gz | head -n 1; zcat data/imdb/test.tsv.gz | tail -n +1002; } > "$out/test.tsv"
set -o pipefail
dotnet build src/MlNetFineTune.Cli -c Release -v q -nologo > /dev/null
mlft() { dotnet src/MlNetFineTune.Cli/bin/Release/net10.0/mlft.dll "$@"; }
common=(--dataset "$out/train.tsv" --validation-dataset "$out/valid.tsv" --test-dataset "$out/test.tsv" --max-length 128
        --search-space tests/MlNetFineTune.AutoML.Tests/efficiency/grid-space.json --seed 1)
# Studies live in OUT/grid/study.db and OUT/tpe/study.db: running the script again resumes them (delete OUT for a fresh run).
mlft automl text-classification "${common[@]}" --tuner grid --pruner none --output "$out/grid" > "$out/grid.log"; tail -n 3 "$out/grid.log"
mlft automl text-classification "${common[@]}" --tuner tpe --pruner asha --max-trials "$trials" --output "$out/tpe" > "$out/tpe.log"; tail -n 3 "$out/tpe.log"
summary() {
  awk -F, -v name="$1" 'NR > 1 && ($3 == "complete" || $3 == "pruned") {
      cost += $6; if ($3 == "complete" && $4 > best) best = $4; n++ }
    END { printf "%s: %d trials, best validation accuracy %.4f, compute %d example-epochs\n", name, n, best, cost }' "$2"
}
summary grid "$out/grid/trials.csv"
summary tpe+asha "$out/tpe/trials.csv"

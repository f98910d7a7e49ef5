#!/usr/bin/env bash
# Score a model on the 45 held-out photos of benchmarks/heldout.sh (never trained or validated
# on) with the paper's protocol, at x2, x3 and x4, on the ten training configurations plus the
# unseen JPEG qualities, with per-source means.
# Usage: bash benchmarks/eval_heldout.sh [MODEL]   (default: the shipped lite weights)
# Writes experiments/results/eval-heldout45-<model>-x<s>.json (the six-photo set's reports are
# eval-<model>-x<s>.json) and prints the tables.
set -euo pipefail
cd "$(dirname "$0")/.."
model="${1:-lite}"
source benchmarks/heldout.sh
mkdir -p benchmarks/results
tag=$(basename "$model" .safetensors)
for scale in ${SCALES:-2 3 4}; do
  napari-cisr eval "${heldout[@]}" --scale "$scale" --model "$model" --unseen \
    --downscale "${DOWNSCALE:-3}" --json "experiments/results/eval-heldout45-$tag-x$scale.json"
  echo
done

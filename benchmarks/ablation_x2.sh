#!/usr/bin/env bash
# Paper Table 4 at x2, at CPU scale: the PSI model against series ARM→REM, trained the same way
# (same data, seed, schedule and number of steps, from scratch), scored on the held-out photos.
# Usage: STEPS=1500 bash benchmarks/ablation_x2.sh [ABLATION ...]  (default: series-arm-rem)
# Writes experiments/results/ablation-<name>-x2.json and prints the comparison.
set -euo pipefail
cd "$(dirname "$0")/.."
steps="${STEPS:-1500}"
names=(psi "${@:-series-arm-rem}")
source benchmarks/heldout.sh
mkdir -p benchmarks/results
for name in "${names[@]}"; do
  napari-cisr train --config "experiments/configs/ablations/$name-x2.json" --steps "$steps" --threads 2
  napari-cisr eval "${heldout[@]}" --scale 2 --model "runs/ablation-$name-x2/best.safetensors" \
    --json "experiments/results/ablation-$name-x2.json"
done
python benchmarks/ablation_table.py experiments/results/ablation-*-x2.json

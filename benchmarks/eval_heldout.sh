#!/usr/bin/env bash
# Score a model on the held-out photos (never used in training or validation) with the paper's
# protocol, at x2, x3 and x4, on the ten training configurations plus the unseen JPEG qualities.
# Usage: bash benchmarks/eval_heldout.sh [MODEL]   (default: the shipped lite weights)
# Writes benchmarks/results/eval-<model>-x<s>.json and prints the tables.
set -euo pipefail
cd "$(dirname "$0")/.."
model="${1:-lite}"
skimage_data=$(python -c "import os, skimage; print(os.path.join(os.path.dirname(skimage.__file__), 'data'))")
heldout=(
  /usr/share/backgrounds/mate/nature/Storm.jpg
  /usr/share/backgrounds/mate/nature/LadyBird.jpg
  /usr/share/backgrounds/mate/nature/YellowFlower.jpg
  "$skimage_data/astronaut.png"
  "$skimage_data/coffee.png"
  "$skimage_data/chelsea.png"
)
mkdir -p benchmarks/results
tag=$(basename "$model" .safetensors)
for scale in ${SCALES:-2 3 4}; do
  napari-cisr eval "${heldout[@]}" --scale "$scale" --model "$model" --unseen \
    --downscale "${DOWNSCALE:-3}" --json "benchmarks/results/eval-$tag-x$scale.json"
  echo
done

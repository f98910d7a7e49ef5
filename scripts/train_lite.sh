#!/usr/bin/env bash
# Train the shipped lite models (docs/models.md): x2, then x3 and x4, on this machine's CPU.
# Resumable: rerun the same command and each run continues from runs/lite-xN/last.pt.
set -euo pipefail
napari-cisr train --config experiments/configs/lite-x2/stage1.json --steps "${STEPS_X2:-2800}" --threads 2
napari-cisr train --config experiments/configs/lite-x3/stage1.json --steps "${STEPS_X3:-1400}" --threads 2
napari-cisr train --config experiments/configs/lite-x4/stage1.json --steps "${STEPS_X4:-1400}" --threads 2

#!/usr/bin/env bash
# One lease of a GPU machine, in one command: GPU throughput (alone on the machine), the CUDA
# tests, then training runs side by side (CONFIGS, default the lite GPU stages
# experiments/configs/lite-x{2,3,4}/stage{6,5,4}.json), each given as many steps as fit TRAIN_SECONDS.
# BENCH=0 / DISPATCH=0 / TESTS=0 skip the throughput benchmark / the training-step dispatch
# benchmark (benchmarks/step_dispatch.py) / the tests. WORKERS (default 6) = loader processes per
# run: patches cut from 192² compressed regions cost about 4.5x those from 64² ones
# (benchmarks/patch_loader.py), so two runs side by side take 12 of the machine's 16 cores.
#
#   OUT=gpu-out TRAIN_SECONDS=360 bash scripts/gpu_session.sh
#
# TRAIN_ARGS adds flags to every training command (a dry run on the CPU:
# TRAIN_ARGS="--device cpu --batch 2" DEVICE=cpu TRAIN_SECONDS=20 bash scripts/gpu_session.sh).
#
# Needs python3 with torch (CUDA), numpy, pillow, safetensors and scikit-image; the package is
# used from src/ (nothing installed). The mate-backgrounds photos come from .gpu/photos when the
# machine lacks /usr/share/backgrounds/mate/nature; the configs' data/ folders (scripts/fetch_photos.sh)
# must be carried along. Everything worth keeping ends up in $OUT.
set -u
OUT=${OUT:-gpu-out}
TRAIN_SECONDS=${TRAIN_SECONDS:-360}
# The whole script's wall-clock budget: training is shortened to end (with its final validation
# and the packing) inside it, whatever the earlier steps took.
BUDGET_SECONDS=${BUDGET_SECONDS:-570}
PY=${PYTHON:-python3}
DEVICE=${DEVICE:-cuda}
TRAIN_ARGS=${TRAIN_ARGS:-}
read -r -a CONFIGS <<<"${CONFIGS:-experiments/configs/lite-x2/stage6.json experiments/configs/lite-x3/stage5.json experiments/configs/lite-x4/stage4.json}"
mkdir -p "$OUT" runs
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
PHOTOS=/usr/share/backgrounds/mate/nature
if [ ! -d "$PHOTOS" ] && [ -d .gpu/photos ]; then mkdir -p "$PHOTOS" && cp .gpu/photos/* "$PHOTOS"/; fi

{
  date -u
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  $PY -c "import torch, numpy, PIL; print('torch', torch.__version__, 'cuda', torch.version.cuda,
'numpy', numpy.__version__, 'pillow', PIL.__version__)"
  nproc; df -h /dev/shm | tail -1
} 2>&1 | tee "$OUT/env.txt"

echo "== throughput (alone on the GPU)"
[ "${BENCH:-1}" = 1 ] && timeout 180 $PY benchmarks/throughput.py --device $DEVICE --scale 2 --size 1024 --conv-size 1024 \
  --overhead-size 2048 --tile 1024 --precisions float32 bfloat16 \
  --json "$OUT/throughput-lite-x2-h200.json" 2>&1 | grep -v USDT | tee "$OUT/bench.log"

echo "== training-step dispatch: streamed vs batched non-local, batch 64/128/256 (alone on the GPU)"
[ "${DISPATCH:-1}" = 1 ] && timeout 150 $PY benchmarks/step_dispatch.py --device $DEVICE --bf16 \
  --batch 64 128 256 --json "$OUT/step-dispatch-lite-x2-gpu.json" 2>&1 | grep -v USDT | tee "$OUT/dispatch.log"

echo "== CUDA tests"
[ "${TESTS:-1}" = 1 ] && timeout 150 $PY -m pytest -q -p no:cacheprovider tests/test_cuda.py tests/test_model.py \
  tests/test_weights.py 2>&1 | tail -25 | tee "$OUT/tests.log"

output_of() { $PY -c "import json; print(json.load(open('$1'))['output'])"; }

echo "== calibration: 50 steps of each run side by side"
calibrate() {  # $1 = loader workers
  for i in "${!CONFIGS[@]}"; do
    rm -rf "runs/cal-$i"
    timeout 120 $PY -m napari_cisr.cli train --config "${CONFIGS[$i]}" --steps 50 --workers "$1" \
      $TRAIN_ARGS --output "runs/cal-$i" >"runs/cal-$i.log" 2>&1 &
  done
  wait
}
steady_rate() {  # seconds per step between steps 25 and 50, from the progress lines
  grep -o 'step [0-9]*/50 .* \([0-9.]*\)s/step' "runs/cal-$1.log" | sed 's/.* \([0-9.]*\)s\/step/\1/' |
    awk 'NR==1{a=$1} NR==2{b=$1} END{if (NR>=2) printf "%.4f", (50*b-25*a)/25}'
}
WORKERS=${WORKERS:-6}
calibrate $WORKERS
if [ -z "$(steady_rate 0)" ]; then
  echo "calibration with loader workers failed; falling back to --workers 0"; tail -5 runs/cal-0.log
  WORKERS=0; calibrate 0
fi

LEFT=$((BUDGET_SECONDS - SECONDS - 75))
[ "$LEFT" -lt "$TRAIN_SECONDS" ] && TRAIN_SECONDS=$LEFT
echo "== training, $TRAIN_SECONDS s (script at ${SECONDS} s)"
OUTPUTS=()
for i in "${!CONFIGS[@]}"; do
  rate=$(steady_rate "$i"); rate=${rate:-1}
  steps=$($PY -c "print(max(250, int(0.85 * $TRAIN_SECONDS / $rate) // 250 * 250))")
  echo "${CONFIGS[$i]}: $rate s/step steady → $steps steps"
  out=$(output_of "${CONFIGS[$i]}"); OUTPUTS+=("$out")
  timeout $((TRAIN_SECONDS + 45)) $PY -m napari_cisr.cli train --config "${CONFIGS[$i]}" \
    --steps "$steps" --workers $WORKERS $TRAIN_ARGS >"$out.log" 2>&1 &
done
timeout $TRAIN_SECONDS bash -c 'while sleep 60; do nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader; done' &
wait
for out in "${OUTPUTS[@]}"; do
  echo "$out:"; tail -2 "$out.log"; tail -1 "$out/log.jsonl"; done
# What comes back from a lease is at most 8 files of 16 MiB each: the runs' logs, configs and
# best weights in one archive, each run's resumable checkpoint (last.pt, which holds Adam's
# moments: two runs' together passed 16 MiB at x2) in a file of its own.
tar czf "$OUT/gpu-runs.tar.gz" runs/cal-*.log $(for out in "${OUTPUTS[@]}"; do
  echo "$out.log" "$out/log.jsonl" "$out/train_config.json" "$out/best.safetensors"; done) 2>/dev/null
for out in "${OUTPUTS[@]}"; do
  [ -f "$out/last.pt" ] && cp "$out/last.pt" "$OUT/$(basename "$out")-last.pt"
done
ls -la "$OUT"

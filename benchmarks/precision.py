"""Quality cost of bfloat16 inference: Y-PSNR of float32 vs bfloat16 on the held-out photos.

Runs :func:`napari_cisr.train.evaluate.evaluate` twice per scale (``precision="float32"`` and
``"bfloat16"``) on the held-out photos of ``benchmarks/eval_heldout.sh`` and the ten training
configurations, and reports the per-configuration and mean Y-PSNR difference (bfloat16 minus
float32) and each run's wall time.

    python benchmarks/precision.py --scales 2 3 4 --json experiments/results/precision-lite.json
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import skimage

from napari_cisr.degrade import TRAIN_CONFIGS
from napari_cisr.train.evaluate import evaluate

_SKIMAGE = Path(os.path.dirname(skimage.__file__)) / "data"
HELDOUT = [
    "data/heldout/paper6/Storm.jpg",
    "data/heldout/paper6/LadyBird.jpg",
    "data/heldout/paper6/YellowFlower.jpg",
    _SKIMAGE / "astronaut.png",
    _SKIMAGE / "coffee.png",
    _SKIMAGE / "chelsea.png",
]


def heldout_parser(description: str) -> argparse.ArgumentParser:
    """--model, --scales and --json: the arguments of the scripts scoring the held-out photos."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--model", default="lite")
    parser.add_argument("--scales", type=int, nargs="+", default=[2, 3, 4])
    parser.add_argument("--json", type=Path)
    return parser


def main() -> None:
    args = heldout_parser(__doc__.splitlines()[0]).parse_args()
    results = {}
    for scale in args.scales:
        runs, seconds = {}, {}
        for precision in ("float32", "bfloat16"):
            start = time.perf_counter()
            runs[precision] = evaluate(
                HELDOUT, scale, args.model, TRAIN_CONFIGS, precision=precision
            )
            seconds[precision] = time.perf_counter() - start
        deltas = {
            label: runs["bfloat16"]["configs"][label]["psnr"] - row["psnr"]
            for label, row in runs["float32"]["configs"].items()
        }
        mean = sum(deltas.values()) / len(deltas)
        worst = min(deltas.values())
        results[f"x{scale}"] = {
            "psnr_float32": {k: v["psnr"] for k, v in runs["float32"]["configs"].items()},
            "delta_bfloat16_minus_float32": deltas,
            "mean_delta": mean,
            "worst_delta": worst,
            "seconds": seconds,
        }
        print(
            f"x{scale}: bfloat16 − float32 Y-PSNR: mean {mean:+.4f} dB, worst {worst:+.4f} dB "
            f"over {len(deltas)} configs × {len(HELDOUT)} photos; eval wall time float32 "
            f"{seconds['float32']:.0f} s, bfloat16 {seconds['bfloat16']:.0f} s",
            flush=True,
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

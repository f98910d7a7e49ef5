"""What the x8 self-ensemble buys: Y-PSNR gain over bicubic, plain vs
``super_resolve(..., self_ensemble=True)``, on the held-out photos, and what it costs.

For each held-out photo (``benchmarks/precision.py``'s list) and each of the ten training
configurations: z as in ``napari-cisr eval``; the plain output is ``super_resolve(z)``, the
ensembled one ``super_resolve(z, self_ensemble=True)`` (the mean over the eight
rotations/flips of z, inside the library: ``inference.unfold_outputs``). Prints the mean gains
and the time ratio.

    python benchmarks/self_ensemble.py --scales 2 \
        --json experiments/results/self-ensemble-lite-x2.json
"""

from __future__ import annotations

import json
import time

import numpy as np
from precision import HELDOUT, heldout_parser

from napari_cisr.degrade import TRAIN_CONFIGS, bicubic_upscale
from napari_cisr.inference import super_resolve
from napari_cisr.metrics import psnr_y
from napari_cisr.train.evaluate import evaluation_pairs


def score(scale: int, model: str) -> dict:
    """Mean gains (dB) over bicubic of the plain and the ensembled output, and their seconds."""
    gains: dict[str, list[float]] = {"plain": [], "ensemble": []}
    seconds = {"plain": 0.0, "ensemble": 0.0}
    for _path, _label, truth, z in evaluation_pairs(HELDOUT, scale, TRAIN_CONFIGS):
        baseline = psnr_y(bicubic_upscale(z, scale), truth, shave=scale)
        for kind in ("plain", "ensemble"):
            start = time.perf_counter()
            out = super_resolve(z, scale=scale, model=model, self_ensemble=kind == "ensemble")
            seconds[kind] += time.perf_counter() - start
            gains[kind].append(psnr_y(out, truth, shave=scale) - baseline)
    return {
        "gain_plain": float(np.mean(gains["plain"])),
        "gain_ensemble": float(np.mean(gains["ensemble"])),
        "seconds": seconds,
    }


def main() -> None:
    args = heldout_parser(__doc__.splitlines()[0]).parse_args()
    results = {}
    for scale in args.scales:
        results[f"x{scale}"] = row = score(scale, args.model)
        print(
            f"x{scale} {args.model}: plain {row['gain_plain']:+.3f} dB, "
            f"x8 ensemble {row['gain_ensemble']:+.3f} dB "
            f"({row['seconds']['ensemble'] / row['seconds']['plain']:.1f}x the time)"
        )
    if args.json:
        args.json.write_text(json.dumps({"model": args.model, "scales": results}, indent=2))


if __name__ == "__main__":
    main()

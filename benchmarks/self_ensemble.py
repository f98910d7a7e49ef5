"""Would a geometric self-ensemble pay? Y-PSNR gain over bicubic, plain vs averaged over the
eight rotations/flips of z (EDSR's "x8 self-ensemble"), on the held-out photos.

For each held-out photo (``benchmarks/precision.py``'s list) and each of the ten training
configurations: z as in ``napari-cisr eval``; the plain output is ``super_resolve(z)``; the
ensemble output is the mean of ``super_resolve`` on the eight dihedral transforms of z, each
transformed back (uint8 outputs averaged, then rounded). Prints the mean gains and the time.

    python benchmarks/self_ensemble.py --scales 4 \
        --json benchmarks/results/self-ensemble-lite-x4.json
"""

from __future__ import annotations

import json
import time

import numpy as np
from precision import HELDOUT, heldout_parser

from napari_cisr.degrade import TRAIN_CONFIGS, bicubic_downscale, compress
from napari_cisr.inference import super_resolve
from napari_cisr.metrics import psnr_y
from napari_cisr.train.data import load_clean_photo
from napari_cisr.train.evaluate import bicubic_upscale


def _transformed(image: np.ndarray, k: int, inverse: bool = False) -> np.ndarray:
    """The k-th of the eight rotations/flips (``inverse``: undo it)."""
    turns, flip = k % 4, k // 4
    if inverse:
        image = image[:, ::-1] if flip else image
        return np.rot90(image, -turns)
    image = np.rot90(image, turns)
    return np.ascontiguousarray(image[:, ::-1] if flip else image)


def score(scale: int, model: str) -> dict:
    """Mean gains (dB) over bicubic of the plain and the ensembled output, and their seconds."""
    plain, ensemble, seconds = [], [], {"plain": 0.0, "ensemble": 0.0}
    for path in HELDOUT:
        truth = load_clean_photo(path, 3)
        height, width = (truth.shape[0] // scale) * scale, (truth.shape[1] // scale) * scale
        truth = truth[:height, :width]
        lr = bicubic_downscale(truth, scale)
        for codec, quality in TRAIN_CONFIGS:
            z = compress(lr, codec, quality)
            baseline = psnr_y(bicubic_upscale(z, scale), truth, shave=scale)
            total = np.zeros(truth.shape, np.float64)
            for k in range(8):
                start = time.perf_counter()
                out = super_resolve(_transformed(z, k), scale=scale, model=model)
                seconds["ensemble"] += time.perf_counter() - start
                if k == 0:
                    seconds["plain"] += time.perf_counter() - start
                    plain.append(psnr_y(out, truth, shave=scale) - baseline)
                total += _transformed(out, k, inverse=True)
            averaged = np.clip(np.round(total / 8), 0, 255).astype(np.uint8)
            ensemble.append(psnr_y(averaged, truth, shave=scale) - baseline)
    return {
        "gain_plain": float(np.mean(plain)),
        "gain_ensemble": float(np.mean(ensemble)),
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

"""What each unfolding iteration buys: Y-PSNR gain over bicubic of every x̂_j, j = 1..N (N may
exceed the J = 3 the network was trained with), on the held-out photos, per configuration.

z as in ``napari-cisr eval`` (``evaluation_pairs``); one
``super_resolve_steps(z, iterations=N, intermediates=True)`` per photo and configuration gives
every x̂_j (uint8, as the evaluation scores them).

    cd benchmarks && python iterations.py --scales 2 --max-iterations 5 \
        --json results/iterations-lite-x2.json
"""

from __future__ import annotations

import json

import numpy as np
from precision import HELDOUT, heldout_parser

from napari_cisr.degrade import TRAIN_CONFIGS, bicubic_upscale
from napari_cisr.inference import run_to_completion, super_resolve_steps
from napari_cisr.metrics import psnr_y
from napari_cisr.train.evaluate import evaluation_pairs


def score(scale: int, model: str, iterations: int) -> dict[str, list[float]]:
    """Per configuration: the mean gain (dB) of x̂_1 … x̂_N over the held-out photos."""
    gains: dict[str, list[list[float]]] = {}
    for _path, label, truth, z in evaluation_pairs(HELDOUT, scale, TRAIN_CONFIGS):
        baseline = psnr_y(bicubic_upscale(z, scale), truth, shave=scale)
        result = run_to_completion(
            super_resolve_steps(
                z, scale=scale, model=model, iterations=iterations, intermediates=True
            )
        )
        gains.setdefault(label, []).append(
            [psnr_y(x_hat, truth, shave=scale) - baseline for x_hat in result.x_hats]
        )
    return {label: np.mean(rows, axis=0).tolist() for label, rows in gains.items()}


def main() -> None:
    parser = heldout_parser(__doc__.splitlines()[0])
    parser.add_argument("--max-iterations", type=int, default=5)
    args = parser.parse_args()
    results = {}
    for scale in args.scales:
        table = score(scale, args.model, args.max_iterations)
        table["mean"] = np.mean(list(table.values()), axis=0).tolist()
        results[f"x{scale}"] = table
        print(f"x{scale}, {args.model}: gain (dB) of x̂_1 … x̂_{args.max_iterations}")
        for label, row in table.items():
            print(f"  {label}: " + " ".join(f"{g:+.3f}" for g in row))
    if args.json:
        args.json.write_text(json.dumps({"model": args.model, "scales": results}, indent=2))


if __name__ == "__main__":
    main()

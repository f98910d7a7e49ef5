"""Time of tiled inference against the tile size, next to whole-image inference.

On a ``--size``² LR JPEG-q30 image cut from a real photo, x``--scale``, default precision:
whole-image time, then the tiled time for each ``--tiles`` core size (halo from the model).
Median of ``--repeat`` runs after one warm-up.

    python benchmarks/tile_speed.py --size 1536 --tiles 256 384 512 768 --repeat 1 \
        --json experiments/results/tile-speed-lite-x2.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import WHOLE, _test_image, _timed

from napari_cisr.inference import run_to_completion, super_resolve_steps
from napari_cisr.options import InferenceOptions
from napari_cisr.tiling import model_halo, plan_tiles, tiled_super_resolve_steps
from napari_cisr.weights import load_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default="lite")
    parser.add_argument("--scale", type=int, default=2)
    parser.add_argument("--size", type=int, default=1536)
    parser.add_argument("--tiles", type=int, nargs="+", default=[256, 384, 512, 768])
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    model = load_model(args.weights, scale=args.scale)
    image = _test_image(args.size, args.scale)
    halo = model_halo(model.config)

    def whole():
        return run_to_completion(super_resolve_steps(image, args.scale, model=model, tile=WHOLE))

    whole_s = _timed(whole, args.repeat)
    rows = [{"tile": None, "tiles": 1, "seconds": whole_s, "over_whole": 1.0}]
    print(f"{args.size}² LR, x{args.scale}, {torch.get_num_threads()} threads")
    print("| tile | tiles | time (s) | / whole |")
    print("| --- | --- | --- | --- |")
    print(f"| whole | 1 | {whole_s:.2f} | 1.00 |", flush=True)
    for tile in args.tiles:
        plan = plan_tiles(image.shape[:2], args.scale, tile, halo)

        def tiled(tile=tile):
            options = InferenceOptions(scale=args.scale, model=model, tile=tile)
            steps = tiled_super_resolve_steps(image, options)
            return run_to_completion(steps)

        seconds = _timed(tiled, args.repeat)
        rows.append(
            {
                "tile": plan.tile,
                "tiles": plan.n_tiles,
                "seconds": seconds,
                "over_whole": seconds / whole_s,
            }
        )
        print(
            f"| {plan.tile} | {plan.n_tiles} | {seconds:.2f} | {seconds / whole_s:.2f} |",
            flush=True,
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {"size": args.size, "scale": args.scale, "halo": halo, "rows": rows}, indent=2
            )
        )


if __name__ == "__main__":
    main()

"""Tiled vs whole-image inference on real compressed photos: the gap against the halo.

For each held-out photo: ground truth = photo downscaled 3× (clean), LR = bicubic ÷ s,
z = LR through a codec. The whole-image output and tiled outputs (for each halo) are compared
with each other and with the ground truth (PSNR on Y, ``scale`` pixels shaved, as in the
paper's protocol).

    python benchmarks/tiling_quality.py --weights lite --scale 2 --tile 128 \
        --halos 0 8 16 24 32 48 --json experiments/results/tiling_quality.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from napari_cisr.degrade import bicubic_downscale, compress, parse_config
from napari_cisr.inference import run_to_completion, super_resolve_steps
from napari_cisr.metrics import psnr_y
from napari_cisr.options import InferenceOptions
from napari_cisr.runtime import resolve_precision
from napari_cisr.tiling import model_halo, plan_tiles, receptive_field, tiled_super_resolve_steps
from napari_cisr.train.data import load_clean_photo
from napari_cisr.weights import load_model

HELD_OUT = [f"data/heldout/paper6/{name}.jpg" for name in ("Storm", "LadyBird", "YellowFlower")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default="lite", help="model name or weight file")
    parser.add_argument("--scale", type=int, default=2)
    parser.add_argument("--photos", nargs="+", default=HELD_OUT)
    parser.add_argument("--configs", nargs="+", default=["jpeg-q10", "jpeg-q30", "webp-q10"])
    parser.add_argument("--tile", type=int, nargs="+", default=[128])
    parser.add_argument("--halos", type=int, nargs="+", default=None, help="default: the model's")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--precision", default="auto", choices=("auto", "float32", "bfloat16"))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    model = load_model(args.weights, scale=args.scale)
    config = model.config
    halos = args.halos or [model_halo(config)]
    print(
        f"model {args.weights} x{args.scale}: receptive field {receptive_field(config)} LR px, "
        f"default halo {model_halo(config)}; torch threads {torch.get_num_threads()}; "
        f"precision {args.precision} → {resolve_precision(args.precision, torch.device('cpu'))}"
    )
    rows = []
    for photo in args.photos:
        truth = load_clean_photo(photo, 3)
        h, w = (
            (truth.shape[0] // args.scale) * args.scale,
            (truth.shape[1] // args.scale) * args.scale,
        )
        truth = truth[:h, :w]
        lr = bicubic_downscale(truth, args.scale)
        for label in args.configs:
            codec, quality = parse_config(label)
            z = compress(lr, codec, quality)
            start = time.perf_counter()
            # tile=0: the whole image in one pass (tile=None would let the automatic choice
            # tile images over 384 px on the CPU).
            whole = run_to_completion(
                super_resolve_steps(z, args.scale, model=model, tile=0, precision=args.precision)
            ).image
            whole_s = time.perf_counter() - start
            whole_psnr = psnr_y(whole, truth, shave=args.scale)
            for tile in args.tile:
                for halo in halos:
                    plan = plan_tiles(z.shape[:2], args.scale, tile, halo)
                    start = time.perf_counter()
                    tiled = run_to_completion(
                        tiled_super_resolve_steps(
                            z,
                            InferenceOptions(
                                scale=args.scale, model=model, tile=tile, precision=args.precision
                            ),
                            halo=halo,
                        )
                    ).image
                    tiled_s = time.perf_counter() - start
                    row = {
                        "photo": Path(photo).stem,
                        "config": label,
                        "lr_shape": list(z.shape[:2]),
                        "tile": plan.tile,
                        "tiles": plan.n_tiles,
                        "halo": halo,
                        "blend": plan.blend,
                        "psnr_tiled_vs_whole": psnr_y(tiled, whole, shave=args.scale),
                        "psnr_whole": whole_psnr,
                        "psnr_tiled": psnr_y(tiled, truth, shave=args.scale),
                        "max_abs_diff": int(np.abs(tiled.astype(int) - whole.astype(int)).max()),
                        "whole_s": whole_s,
                        "tiled_s": tiled_s,
                    }
                    row["delta_db"] = row["psnr_tiled"] - row["psnr_whole"]
                    rows.append(row)
                    print(
                        f"{row['photo']:>12} {label:>9} tile {plan.tile:4d} "
                        f"({plan.n_tiles:2d} tiles) "
                        f"halo {halo:3d}: tiled-vs-whole {row['psnr_tiled_vs_whole']:6.2f} dB, "
                        f"GT whole {whole_psnr:.3f} tiled {row['psnr_tiled']:.3f} "
                        f"(Δ {row['delta_db']:+.4f} dB), max |diff| {row['max_abs_diff']}",
                        flush=True,
                    )
    summary = {}
    for tile in sorted({r["tile"] for r in rows}):
        for halo in halos:
            sel = [r for r in rows if r["halo"] == halo and r["tile"] == tile]
            summary[f"tile{tile}-halo{halo}"] = {
                "min_psnr_tiled_vs_whole": min(r["psnr_tiled_vs_whole"] for r in sel),
                "mean_psnr_tiled_vs_whole": float(np.mean([r["psnr_tiled_vs_whole"] for r in sel])),
                "max_abs_delta_db": max(abs(r["delta_db"]) for r in sel),
                "mean_delta_db": float(np.mean([r["delta_db"] for r in sel])),
            }
    for key, value in summary.items():
        print(
            f"{key}: tiled-vs-whole min {value['min_psnr_tiled_vs_whole']:.2f} dB "
            f"(mean {value['mean_psnr_tiled_vs_whole']:.2f}), |Δ vs GT| max "
            f"{value['max_abs_delta_db']:.4f} dB (mean Δ {value['mean_delta_db']:+.4f})"
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {
                    "weights": args.weights,
                    "scale": args.scale,
                    "precision": str(resolve_precision(args.precision, torch.device("cpu"))),
                    "rows": rows,
                    "summary": summary,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()

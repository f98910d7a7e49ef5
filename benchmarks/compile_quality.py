"""Does ``torch.compile`` change what users get? Eager vs compiled inference of a shipped model
on held-out photos, scored on the paper's protocol, in the same run.

Each held-out photo (÷``--downscale`` as the clean image) whose LR input is at least the
standard compiled window in both sides (so that its tiles share one or two graphs, as a user's
photos would; smaller ones are listed as skipped) is degraded by each ``--configs`` entry
(``napari_cisr.train.evaluate.evaluation_pairs``: ÷scale, then the codec), super-resolved with
``--tile`` eagerly and compiled (``super_resolve(..., compile=True)``), and both outputs are
scored (Y-PSNR against the clean image). Reported: the mean difference (compiled − eager) per
configuration and over all, the largest per-image difference, and the graphs dynamo built.

    python benchmarks/compile_quality.py data/heldout/*/* --scale 2 --tile 256 --downscale 1 \\
        --configs jpeg-q10 jpeg-q30 webp-q20 --json experiments/results/compile-quality-lite-x2.json
"""

from __future__ import annotations

import argparse
import json
import logging
import math
from pathlib import Path

import numpy as np
import torch

from napari_cisr.degrade import TRAIN_CONFIGS, parse_configs
from napari_cisr.engine.plan import model_halo, plan_tiles
from napari_cisr.inference import super_resolve
from napari_cisr.metrics import psnr_y
from napari_cisr.train.data import list_photos
from napari_cisr.train.evaluate import evaluation_pairs
from napari_cisr.weights import load_model

log = logging.getLogger("compile_quality")


def _fits(shape: tuple[int, int], scale: int, tile: int, halo: int) -> bool:
    """Whether both sides of an LR plane are at least the standard compiled window."""
    return min(shape) >= plan_tiles(shape, scale, tile, halo).compiled_side


def measure(
    sources: list[str], scale: int, tile: int, configs: list[tuple[str, int]], downscale: int
) -> dict:
    network = load_model("lite", scale)
    halo = model_halo(network.config)
    rows: dict[str, list[float]] = {}
    skipped, used = [], set()
    for path, label, truth, z in evaluation_pairs(list_photos(sources), scale, configs, downscale):
        if not _fits(z.shape[:2], scale, tile, halo):
            if path.name not in skipped:
                skipped.append(path.name)
            continue
        used.add(path.name)
        eager = super_resolve(z, scale, model="lite", tile=tile, device="cpu")
        compiled = super_resolve(z, scale, model="lite", tile=tile, device="cpu", compile=True)
        difference = psnr_y(compiled, truth, shave=scale) - psnr_y(eager, truth, shave=scale)
        rows.setdefault(label, []).append(difference)
        log.info("%s %s: compiled − eager %+.4f dB", path.name, label, difference)
    everything = [d for values in rows.values() for d in values]
    counters = torch._dynamo.utils.counters  # graphs built in this process
    return {
        "scale": scale,
        "tile": tile,
        "downscale": downscale,
        "photos": sorted(used),
        "skipped_smaller_than_a_window": skipped,
        "configs": {label: round(float(np.mean(v)), 5) for label, v in rows.items()},
        "mean_difference_db": round(float(np.mean(everything)), 5) if everything else math.nan,
        "largest_difference_db": round(float(np.max(np.abs(everything))), 5)
        if everything
        else math.nan,
        "images": len(everything),
        "graphs_compiled": int(counters["stats"]["unique_graphs"]),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sources", nargs="+", help="held-out photos or folders")
    parser.add_argument("--scale", type=int, default=2)
    parser.add_argument("--tile", type=int, default=128, help="LR tile side of both runs")
    parser.add_argument("--configs", nargs="+", help="e.g. jpeg-q10 webp-q30 (default: the ten)")
    parser.add_argument(
        "--downscale",
        type=int,
        default=3,
        help="clean photo = photo ÷ this (3: the eval protocol; 1: photo-sized inputs, whose "
        "tiles are the size a user's photo has)",
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    configs = list(parse_configs(args.configs)) if args.configs else list(TRAIN_CONFIGS)
    report = measure(args.sources, args.scale, args.tile, configs, args.downscale)
    print(json.dumps({k: v for k, v in report.items() if k != "photos"}, indent=1))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()

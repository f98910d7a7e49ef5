"""Where routing by pixels sends an image: how often a blocking grid shows, per compression.

An image whose file says nothing about its compression (a PNG, a TIFF, a zarr store, an array)
is routed by its pixels (:mod:`napari_cisr.compression`): a JPEG blocking grid
(:func:`napari_cisr.engine.grid.estimate_grid`) sends it to the general weights, none to the
mild ones. This counts, per JPEG/WebP quality, the share of images that show a grid, on
*training* photos (never the held-out ones), degraded as ``napari-cisr eval`` degrades them
(÷3, bicubic ×1/2, then compressed), with the blocking score's quartiles beside it.

Usage::

    python benchmarks/routing_by_pixels.py --json experiments/results/routing-by-pixels.json
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import numpy as np

from napari_cisr.blocking import detect_blocking
from napari_cisr.degrade import bicubic_downscale, compress, parse_configs
from napari_cisr.engine.grid import estimate_grid
from napari_cisr.io import read_image

FOLDERS = ("data/train/opencv", "data/train/gcompris", "data/photos")
CONFIGS = "jpeg-q30 jpeg-q50 jpeg-q70 jpeg-q90 webp-q30 webp-q50 webp-q70 webp-q90".split()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=int, default=30, help="photos drawn (seed 0)")
    parser.add_argument("--scale", type=int, default=2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    files = sorted(p for folder in FOLDERS for p in Path(folder).iterdir() if p.is_file())
    files = random.Random(0).sample(files, args.photos)
    found: dict[str, list[tuple[bool, float]]] = {label: [] for label in CONFIGS}
    for path in files:
        hr = read_image(path)
        hr = np.repeat(hr[..., None], 3, axis=2) if hr.ndim == 2 else hr[..., :3]
        lr = bicubic_downscale(bicubic_downscale(hr, 3), args.scale)
        for label, (codec, quality) in zip(CONFIGS, parse_configs(CONFIGS), strict=True):
            z = compress(lr, codec, quality)
            found[label].append((estimate_grid(z) is not None, float(detect_blocking(z).score)))
    report = {}
    print(f"{len(files)} training photos, x{args.scale}")
    print("| config | grid shown (routed to the general weights) | blocking score, quartiles |")
    print("| --- | --- | --- |")
    for label, results in found.items():
        shown = sum(grid for grid, _ in results)
        scores = np.quantile([score for _, score in results], [0.25, 0.5, 0.75]).round(3)
        report[label] = {"grid": shown, "photos": len(results), "score_quartiles": scores.tolist()}
        quartiles = " / ".join(f"{q:.3f}" for q in scores)
        print(f"| {label} | {shown}/{len(results)} | {quartiles} |")
    if args.json:
        args.json.write_text(json.dumps({"photos": [p.name for p in files], **report}, indent=1))


if __name__ == "__main__":
    main()

"""Where routing by pixels sends an image: how often a blocking grid shows, which JPEG quality
its pixels show, and which weights run, per compression.

An image whose file says nothing about its compression (a PNG, a TIFF, a zarr store, an array)
is routed by its pixels (:mod:`napari_cisr.compression`): a JPEG blocking grid
(:func:`napari_cisr.engine.grid.estimate_grid`) whose quality the pixels show
(:func:`napari_cisr.quantisation.jpeg_quality_from_pixels`) by that quality, as a file's
(:data:`napari_cisr.compression.HEAVY_QUALITY`, ``MILD_QUALITY``), a grid whose quality they
do not show to the general weights (strong), no grid to the mild ones. This counts, per
JPEG/WebP quality, the images that show a grid, those whose JPEG quality was read within one
of the truth, and where each was routed, on *training* photos (never the held-out ones),
degraded as ``napari-cisr eval`` degrades them (÷3, bicubic ×1/2, then compressed), with the
blocking score's quartiles beside it.

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
from napari_cisr.compression import compression_from_grid
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
    found: dict[str, list[tuple[bool, float, int | None, str]]] = {label: [] for label in CONFIGS}
    for path in files:
        hr = read_image(path)
        hr = np.repeat(hr[..., None], 3, axis=2) if hr.ndim == 2 else hr[..., :3]
        lr = bicubic_downscale(bicubic_downscale(hr, 3), args.scale)
        for label, (codec, quality) in zip(CONFIGS, parse_configs(CONFIGS), strict=True):
            z = compress(lr, codec, quality)
            grid = estimate_grid(z)
            read = None if grid is None else grid.jpeg_quality
            score = float(detect_blocking(z).score)
            found[label].append((grid is not None, score, read, compression_from_grid(grid)))
    report = {}
    print(f"{len(files)} training photos, x{args.scale}")
    print(
        "| config | grid shown | JPEG quality read (within 1 of the truth) "
        "| routed heavy / strong / mild | blocking score, quartiles |"
    )
    print("| --- | --- | --- | --- | --- |")
    for label, (codec, quality) in zip(CONFIGS, parse_configs(CONFIGS), strict=True):
        results = found[label]
        shown = sum(grid for grid, *_ in results)
        read = [q for _, _, q, _ in results if q is not None]
        right = sum(abs(q - quality) <= 1 for q in read) if codec == "jpeg" else 0
        routed = {c: sum(r == c for *_, r in results) for c in ("heavy", "strong", "mild")}
        scores = np.quantile([s for _, s, _, _ in results], [0.25, 0.5, 0.75]).round(3)
        report[label] = {
            "grid": shown,
            "photos": len(results),
            "quality_read": len(read),
            "quality_within_1": right,
            "routed": routed,
            "score_quartiles": scores.tolist(),
        }
        quartiles = " / ".join(f"{q:.3f}" for q in scores)
        n = len(results)
        print(
            f"| {label} | {shown}/{n} | {len(read)}/{n} ({right}) "
            f"| {routed['heavy']} / {routed['strong']} / {routed['mild']} | {quartiles} |"
        )
    if args.json:
        args.json.write_text(json.dumps({"photos": [p.name for p in files], **report}, indent=1))


if __name__ == "__main__":
    main()

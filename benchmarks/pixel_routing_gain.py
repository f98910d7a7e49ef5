"""What reading the JPEG quality from the pixels changed for images routed by their pixels.

``napari-cisr eval --model lite --routing pixels`` scores ``lite`` as an array, a PNG or a zarr
store of each held-out input would run it: routed by its pixels alone
(:mod:`napari_cisr.compression`). Before the quality was read from the pixels
(:mod:`napari_cisr.quantisation`), every input that showed a blocking grid ran the general
weights; inputs without a grid ran the mild ones, as they still do. This rebuilds each pair's
input (:func:`napari_cisr.train.evaluate.evaluation_pairs`), finds which showed a grid, and
scores that earlier routing from the general weights' own evaluation of the same pairs, beside
the routing now and the routing by the file's quality (``--routing file``). Per configuration,
gain over bicubic (dB)::

    python benchmarks/pixel_routing_gain.py --scale 2 \\
        --pixels experiments/results/eval-lite-routed-pixels-x2-heldout45.json \\
        --general experiments/results/eval-lite-x2-stage39-heldout45.json \\
        --file experiments/results/eval-lite-x2-stage40-heldout45.json data/heldout/*/*
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from napari_cisr.degrade import parse_configs
from napari_cisr.engine.grid import estimate_grid
from napari_cisr.train.evaluate import evaluation_pairs


def _gains(report: dict, label: str) -> dict[str, float]:
    return {photo: rows[label]["gain"] for photo, rows in report["per_photo"].items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("photos", nargs="+", type=Path, help="the evaluation's photos")
    parser.add_argument("--scale", type=int, required=True)
    parser.add_argument("--pixels", type=Path, required=True, help="eval JSON, --routing pixels")
    parser.add_argument("--general", type=Path, required=True, help="the general weights' eval")
    parser.add_argument("--file", type=Path, help="eval JSON of lite routed by file quality")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    pixels = json.loads(args.pixels.read_text())
    general = json.loads(args.general.read_text())
    by_file = json.loads(args.file.read_text()) if args.file else None
    labels = list(pixels["configs"])
    configs = parse_configs(labels)
    downscale = pixels["downscale"]
    grids: dict[tuple[str, str], bool] = {}
    for path, label, _, z in evaluation_pairs(
        args.photos, args.scale, configs, downscale, pixels["degradation"]
    ):
        grids[(path.name, label)] = estimate_grid(z) is not None

    report: dict[str, dict] = {}
    print(f"x{args.scale}, {len(pixels['per_photo'])} photos, gain over bicubic (dB)")
    header = "| config | grid shown | before: grid → general | now: quality read | by file |"
    print(header + "\n| --- | --- | --- | --- | --- |")
    for label in labels:
        now, old = _gains(pixels, label), _gains(general, label)
        before = {
            photo: old[photo] if grids[(photo, label)] else gain for photo, gain in now.items()
        }
        row = {
            "grid": sum(grids[(photo, label)] for photo in now),
            "before": float(np.mean(list(before.values()))),
            "now": float(np.mean(list(now.values()))),
        }
        if by_file:
            row["file"] = float(np.mean(list(_gains(by_file, label).values())))
        report[label] = row
    for label, row in [*report.items(), ("mean", _mean(report))]:
        file_cell = f"{row['file']:+.3f}" if "file" in row else "—"
        grid = f"{row['grid']}/{len(pixels['per_photo'])}" if label != "mean" else ""
        print(f"| {label} | {grid} | {row['before']:+.3f} | {row['now']:+.3f} | {file_cell} |")
    if args.json:
        args.json.write_text(json.dumps({"scale": args.scale, "configs": report}, indent=1))


def _mean(report: dict[str, dict]) -> dict[str, float]:
    keys = [k for k in ("before", "now", "file") if all(k in row for row in report.values())]
    return {k: float(np.mean([row[k] for row in report.values()])) for k in keys}


if __name__ == "__main__":
    main()

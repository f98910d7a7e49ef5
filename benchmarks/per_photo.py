"""Each photo's mean gains in saved ``napari-cisr eval --json`` reports, side by side.

Per photo and report: the mean gain over the paper's ten configurations, over their five JPEG
and five WebP ones; then the means over groups of photos. With ``--photos`` (the same files the
reports scored), also each photo's ground-truth size at the reports' downscale.

Usage (from the repository root)::

    source benchmarks/heldout.sh
    python benchmarks/per_photo.py experiments/results/eval-lite-x2.json \
        experiments/results/eval-lite-x2-stage23-x2.json --photos "${heldout[@]}"
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from napari_cisr.degrade import TRAIN_CONFIGS, config_name
from napari_cisr.train.data import load_clean_photo

TEN = [config_name(codec, quality) for codec, quality in TRAIN_CONFIGS]
GROUPS = {
    "ten": TEN,
    "jpeg": [c for c in TEN if c.startswith("jpeg")],
    "webp": [c for c in TEN if c.startswith("webp")],
}


def photo_means(report: dict) -> dict[str, dict[str, float]]:
    """{photo: {group: mean gain (dB)}} of a report with ``per_photo``."""
    if "per_photo" not in report:
        raise SystemExit(f"report of {report['model']} has no per_photo scores (rescore it)")
    return {
        photo: {g: float(np.mean([rows[c]["gain"] for c in cs])) for g, cs in GROUPS.items()}
        for photo, rows in report["per_photo"].items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reports", type=Path, nargs="+")
    parser.add_argument("--photos", nargs="*", default=[], help="the scored photo files")
    args = parser.parse_args()
    reports = [json.loads(path.read_text()) for path in args.reports]
    means = [photo_means(report) for report in reports]
    photos = list(means[0])
    sizes = {}
    for path in args.photos:
        truth = load_clean_photo(path, reports[0]["downscale"])
        sizes[Path(path).name] = f"{truth.shape[1]}×{truth.shape[0]}"
    header = ["photo", *(["size"] if sizes else [])]
    for path in args.reports:
        header += [f"{path.stem}: {g}" for g in GROUPS]
    print("| " + " | ".join(header) + " |")
    print("|" + " --- |" * len(header))
    for photo in photos:
        cells = [photo, *([sizes.get(photo, "?")] if sizes else [])]
        for m in means:
            cells += [f"{m[photo][g]:+.3f}" for g in GROUPS]
        print("| " + " | ".join(cells) + " |")
    # Groups of photos: by file type (here the large JPEG sources vs scikit-image's PNGs).
    print()
    for suffix in sorted({Path(p).suffix for p in photos}):
        members = [p for p in photos if Path(p).suffix == suffix]
        cells = [f"mean of the {len(members)} {suffix} photos"]
        for m in means:
            cells += [f"{np.mean([m[p][g] for p in members]):+.3f}" for g in GROUPS]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()

"""How much must the source photos be downscaled to be clean ground truth?

The Debian mate-backgrounds photos are themselves JPEGs (quality ~75-100). For each photo and
downscale factor this prints the blocking detector's score (0 = no periodic 8×8 grid; the
detection threshold is ``SCORE_THRESHOLD``). Usage::

    python benchmarks/clean_ground_truth.py [FOLDER ...]
"""

from __future__ import annotations

import sys
from pathlib import Path

from napari_cisr.blocking import SCORE_THRESHOLD, detect_blocking
from napari_cisr.train.data import list_photos, load_clean_photo

FACTORS = (1, 2, 3)


def main(*folders: str) -> None:
    folders = folders or ("data/heldout/paper6", "data/photos-mate")
    print(f"blocking score per downscale factor (grid detected when > {SCORE_THRESHOLD})\n")
    print("| photo | " + " | ".join(f"÷{f}" for f in FACTORS) + " |")
    print("| --- |" + " --- |" * len(FACTORS))
    for path in list_photos([Path(folder) for folder in folders]):
        scores = [detect_blocking(load_clean_photo(path, f)).score for f in FACTORS]
        print(f"| {path.name} | " + " | ".join(f"{s:.3f}" for s in scores) + " |")


if __name__ == "__main__":
    main(*sys.argv[1:])

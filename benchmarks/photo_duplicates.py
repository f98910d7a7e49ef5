"""Near-duplicate photos across the splits of ``scripts/photos.tsv``, by perceptual hash.

Every fetched photo's 64-bit DCT hash (``imagehash.phash``); a pair whose hashes differ in at
most ``--distance`` bits (12 by default: the threshold ``scripts/photos.tsv`` was deduplicated
with) is listed. Held-out photos must have no near twin among the training or validation
photos; training photos are listed against each other too. Exits 1 when a held-out photo has a
twin. Usage (after ``bash scripts/fetch_photos.sh``)::

    python benchmarks/photo_duplicates.py [--data data] [--distance 12]

Viewpoint twins (the same scene from a step aside: OpenCV's leuvenA/B, graf1/3, aero1/3) can
hash farther apart than that; the manifest keeps them on one side by name (docs/models.md).
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from itertools import combinations
from pathlib import Path

import imagehash
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("fetch_photos", REPO / "scripts" / "fetch_photos.py")
fetch_photos = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fetch_photos)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=REPO / "data")
    parser.add_argument("--distance", type=int, default=12)
    args = parser.parse_args(argv)
    hashes = []
    for row in fetch_photos.read_manifest():
        path = args.data / row["folder"] / row["name"]
        with Image.open(path) as image:
            hashes.append((row["split"], f"{row['folder']}/{row['name']}", imagehash.phash(image)))
    twinned = set()  # held-out photos with a twin: one photo may have several
    for (split_a, name_a, hash_a), (split_b, name_b, hash_b) in combinations(hashes, 2):
        distance = hash_a - hash_b
        if distance > args.distance or (split_a == split_b and split_a != "train"):
            continue
        leak = "heldout" in (split_a, split_b) and split_a != split_b
        if leak:
            twinned.add(name_a if split_a == "heldout" else name_b)
        kind = "HELD-OUT TWIN" if leak else "training pair"
        print(f"{kind}: {name_a} ~ {name_b} ({distance} bits)")
    print(
        f"{len(hashes)} photos; {len(twinned)} held-out photos with a twin outside the held-out set"
    )
    return 1 if twinned else 0


if __name__ == "__main__":
    sys.exit(main())

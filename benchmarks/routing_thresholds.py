"""Which of the three weight sets is best at each JPEG/WebP quality: where routing's thresholds
belong, measured on training and validation photos only.

A file's JPEG/WebP quality routes ``lite`` to the weights for heavy compression, the general
weights or the weights for mild compression (:mod:`napari_cisr.compression`). This scores all
three, on the same inputs, at the qualities around the thresholds, with ``napari-cisr eval``'s
degradation (÷3, bicubic ×1/S, compressed) and gain over bicubic on Y. The photos are the
validation photos of a training config and photos drawn (seed 0) from its training folders:
never a held-out photo, so the thresholds chosen from this table are not tuned on the yardstick.
All three weight sets were trained on the drawn training photos, so the table ranks them; the
held-out eval measures what the chosen thresholds give.

Usage::

    python benchmarks/routing_thresholds.py --scale 2 \
        --json experiments/results/routing-thresholds-x2.json
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from napari_cisr.degrade import config_name, parse_configs
from napari_cisr.train.data import list_photos
from napari_cisr.train.evaluate import evaluate

CONFIG = Path("experiments/configs/lite-x2/stage41.json")
QUALITIES = (
    "jpeg-q30 jpeg-q40 jpeg-q45 jpeg-q50 jpeg-q55 jpeg-q60 jpeg-q70 jpeg-q80 "
    "webp-q20 webp-q25 webp-q30 webp-q35 webp-q40 webp-q45 webp-q50 webp-q60"
).split()
WEIGHTS = {"heavy": "heavy", "general": "strong", "mild": "mild"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=int, default=2)
    parser.add_argument("--photos", type=int, default=26, help="training photos drawn (seed 0)")
    parser.add_argument("--config", type=Path, default=CONFIG, help="its data and validation")
    parser.add_argument("--configs", nargs="+", default=QUALITIES)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    config = json.loads(args.config.read_text())
    validation = [Path(p) for p in config["validation"]]
    training = [
        p for p in list_photos(config["data"], config.get("exclude", ())) if p not in validation
    ]
    photos = validation + random.Random(0).sample(training, args.photos)
    configs = list(parse_configs(args.configs))
    labels = [config_name(*c) for c in configs]
    reports = {
        name: evaluate(photos, args.scale, f"lite.x{args.scale}.{tag}", configs)
        for name, tag in WEIGHTS.items()
    }
    gains = {
        name: {label: report["configs"][label]["gain"] for label in labels}
        for name, report in reports.items()
    }
    # evaluate() names the photos in the order given: the validation photos come first.
    validation_gains = {
        name: {
            label: sum(
                report["per_photo"][photo][label]["gain"]
                for photo in report["photos"][: len(validation)]
            )
            / len(validation)
            for label in labels
        }
        for name, report in reports.items()
    }
    print(
        f"x{args.scale}: {len(validation)} validation + {args.photos} training photos "
        "(gain over bicubic, dB; the validation photos alone in brackets)"
    )
    print("| config | " + " | ".join(WEIGHTS) + " | best |")
    print("| --- | " + " | ".join("---" for _ in WEIGHTS) + " | --- |")
    for label in labels:
        cells = [f"{gains[n][label]:+.3f} ({validation_gains[n][label]:+.3f})" for n in WEIGHTS]
        best = max(WEIGHTS, key=lambda n: gains[n][label])
        print(f"| {label} | " + " | ".join(cells) + f" | {best} |")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "scale": args.scale,
                    "photos": [str(p) for p in photos],
                    "validation": [str(p) for p in validation],
                    "gain": gains,
                    "validation_gain": validation_gains,
                    "per_photo": {n: r["per_photo"] for n, r in reports.items()},
                },
                indent=1,
            )
        )


if __name__ == "__main__":
    main()

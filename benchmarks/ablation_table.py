"""Side-by-side Y-PSNR gains over bicubic of several ``napari-cisr eval --json`` reports.

Usage: python benchmarks/ablation_table.py experiments/results/ablation-*-x2.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from napari_cisr.train.evaluate import summarise

reports = {}
for path in sys.argv[1:]:
    name = Path(path).stem.removeprefix("ablation-")
    with open(path) as handle:
        reports[name] = summarise(json.load(handle))
names = list(reports)
labels = list(next(iter(reports.values()))["configs"])
print("| config | " + " | ".join(f"{n} gain (dB)" for n in names) + " |")
print("| --- |" + " --- |" * len(names))
for label in labels:
    gains = [
        reports[n]["configs"][label]["psnr"] - reports[n]["configs"][label]["bicubic_psnr"]
        for n in names
    ]
    print(f"| {label} | " + " | ".join(f"{g:+.3f}" for g in gains) + " |")
means = []
for n in names:
    rows = reports[n]["configs"].values()
    means.append(sum(r["psnr"] - r["bicubic_psnr"] for r in rows) / len(rows))
print("| **mean** | " + " | ".join(f"**{m:+.3f}**" for m in means) + " |")

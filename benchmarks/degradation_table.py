"""Saved ``napari-cisr eval --json`` reports side by side: each report's mean gain per
configuration, per source and, for a degradation mixture (``--degradation realistic``), per
member of the mixture (``train.evaluate.degradation_means``; reports saved before it existed
get it from their per-photo scores). Usage::

    python benchmarks/degradation_table.py REPORT.json [REPORT.json ...]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from napari_cisr.train.evaluate import degradation_means


def main(paths: list[str]) -> None:
    reports = {Path(p).stem.removeprefix("eval-"): json.loads(Path(p).read_text()) for p in paths}
    names = list(reports)
    header = "| | " + " | ".join(names) + " |\n| --- |" + " --- |" * len(names)
    rows = {}
    for name, report in reports.items():
        rows.setdefault("degradation", {})[name] = report.get("degradation", "paper")
        for label, row in report["configs"].items():
            rows.setdefault(label, {})[name] = f"{row['gain']:+.3f}"
        # a report of the ten configurations has "mean"; one of other configurations (such as
        # --configs none) only "mean_unseen", the mean of what it was given
        label, mean = (
            ("**mean of the ten**", report["mean"])
            if "mean" in report
            else ("**mean**", report["mean_unseen"])
        )
        rows.setdefault(label, {})[name] = f"**{mean['gain']:+.3f}**"
        for source, row in report.get("sources", {}).items():
            rows.setdefault(f"source {source}", {})[name] = f"{row['gain']:+.3f}"
        below = sum(r["gain"] < 0 for p in report["per_photo"].values() for r in p.values())
        rows.setdefault("pairs below bicubic", {})[name] = str(below)
        for member, row in degradation_means(report).items():
            cell = f"{row['gain']:+.3f} ({row['pairs']}, {row['below_bicubic']} below)"
            rows.setdefault(f"member {member}", {})[name] = cell
    print(header)
    for label, cells in rows.items():
        print(f"| {label} | " + " | ".join(cells.get(n, "") for n in names) + " |")


if __name__ == "__main__":
    main(sys.argv[1:])

"""Print the summaries of saved ``benchmarks/tiling_quality.py --json`` results as Markdown.

Usage: python benchmarks/tiling_table.py experiments/results/tiling-quality-lite-x*.json
"""

from __future__ import annotations

import json
import sys

print("| scale | tile | halo | min PSNR tiled vs whole (dB) | mean (dB) | max abs Δ vs GT (dB) |")
print("| --- | --- | --- | --- | --- | --- |")
for path in sys.argv[1:]:
    with open(path) as handle:
        result = json.load(handle)
    for key, row in result["summary"].items():
        tile, halo = (
            int(part.removeprefix("tile").removeprefix("halo")) for part in key.split("-")
        )
        print(
            f"| x{result['scale']} | {tile} | {halo} | {row['min_psnr_tiled_vs_whole']:.1f} | "
            f"{row['mean_psnr_tiled_vs_whole']:.1f} | {row['max_abs_delta_db']:.4f} |"
        )

"""Print the Markdown tables of saved ``napari-cisr eval --json`` reports (re-summarised).

Usage: python benchmarks/eval_table.py experiments/results/eval-lite-x2.json [...]
"""

from __future__ import annotations

import json
import sys

from napari_cisr.train.evaluate import format_table, summarise

for path in sys.argv[1:]:
    with open(path) as handle:
        print(format_table(summarise(json.load(handle))), end="\n\n")

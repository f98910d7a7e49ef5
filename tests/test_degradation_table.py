"""benchmarks/degradation_table.py on saved eval reports (committed in experiments/results)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "experiments" / "results"


def _table(*names: str) -> str:
    paths = [str(RESULTS / f"{name}.json") for name in names]
    command = [sys.executable, str(ROOT / "benchmarks" / "degradation_table.py"), *paths]
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout


def test_a_report_of_other_configurations_than_the_ten_gets_its_own_mean():
    # --configs none reports have no mean of the ten: the table used to fail with a KeyError
    table = _table(
        "eval-ablation-x2-plain-sr-paper-heldout45-none",
        "eval-ablation-x2-plain-sr-paper-heldout45-none-realistic",
    )
    assert "| **mean** | **+2.101** | **+1.032** |" in table
    assert "| member bicubic-aliased |  | -3.406 (8, 8 below) |" in table


def test_a_report_of_the_ten_keeps_its_label():
    table = _table("eval-lite-x2-stage25-heldout45")
    assert "| **mean of the ten** | **+0.524** |" in table

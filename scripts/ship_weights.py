"""Compare a trained stage with the shipped one on the held-out set and, if it passes the
shipping rule, ship it: the weights into the package, their sha256 and stage into the registry,
the training log into experiments/results.

The shipping rule (docs/models.md): the new stage's mean over the three held-out evaluations
(the paper's protocol, ``--degradation realistic`` and the light configurations) is higher than
the shipped stage's, and none of the three drops by more than 0.05 dB. Both stages must have
been evaluated with the commands of docs/models.md, into
``experiments/results/eval-lite-x{scale}-stage{stage}-heldout45{,-realistic,-light}.json``.

    python scripts/ship_weights.py --scale 4 --stage 19 --shipped 18          # report only
    python scripts/ship_weights.py --scale 4 --stage 19 --shipped 18 --ship   # and ship
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "experiments" / "results"
REGISTRY = ROOT / "src" / "napari_cisr" / "registry.py"
WEIGHTS = ROOT / "src" / "napari_cisr" / "weights_data"
EVALUATIONS = {"paper": "", "realistic": "-realistic", "light": "-light"}
TOLERANCE_DB = 0.05


def load_evaluations(scale: int, stage: int) -> dict[str, dict]:
    """The three held-out evaluation JSONs of one stage, by evaluation name."""
    found = {}
    for name, suffix in EVALUATIONS.items():
        path = RESULTS / f"eval-lite-x{scale}-stage{stage}-heldout45{suffix}.json"
        if not path.is_file():
            raise SystemExit(f"{path}: missing; run the held-out evaluations of docs/models.md")
        found[name] = json.loads(path.read_text())
    return found


def mean_gain(evaluation: dict) -> float:
    return (evaluation.get("mean") or evaluation["mean_unseen"])["gain"]


def below_bicubic(evaluation: dict) -> tuple[int, int]:
    """(photos, photo-configuration pairs) whose gain over bicubic is negative."""
    pairs = [
        photo
        for photo, configs in evaluation["per_photo"].items()
        for result in configs.values()
        if result["gain"] < 0
    ]
    return len(set(pairs)), len(pairs)


def summary(evaluations: dict[str, dict]) -> dict:
    means = {name: mean_gain(e) for name, e in evaluations.items()}
    return {
        "means": means,
        "mean_of_three": sum(means.values()) / len(means),
        "configs": {k: v["gain"] for k, v in evaluations["paper"]["configs"].items()},
        "light_configs": {k: v["gain"] for k, v in evaluations["light"]["configs"].items()},
        "sources": {
            name: {k: v["gain"] for k, v in e["sources"].items()} for name, e in evaluations.items()
        },
        "below_bicubic": {name: below_bicubic(e) for name, e in evaluations.items()},
    }


def passes(new: dict, shipped: dict) -> bool:
    return new["mean_of_three"] > shipped["mean_of_three"] and all(
        new["means"][k] >= shipped["means"][k] - TOLERANCE_DB for k in new["means"]
    )


def ship(scale: int, stage: int) -> str:
    """Copy the stage's last weights into the package and point the registry at them."""
    run = ROOT / "runs" / f"lite-x{scale}-stage{stage}"
    target = WEIGHTS / f"lite-x{scale}.safetensors"
    shutil.copyfile(run / "last.safetensors", target)
    sha = hashlib.sha256(target.read_bytes()).hexdigest()
    text = REGISTRY.read_text()
    block = re.search(rf'"lite-x{scale}": WeightSpec\(.*?\n    \),', text, re.S)
    if block is None:
        raise SystemExit(f"{REGISTRY}: no WeightSpec for lite-x{scale}")
    updated = re.sub(r'sha256="[0-9a-f]{64}"', f'sha256="{sha}"', block.group(0))
    updated = re.sub(
        rf'"stage \d+ of experiments/configs/lite-x{scale}/;',
        f'"stage {stage} of experiments/configs/lite-x{scale}/;',
        updated,
    )
    REGISTRY.write_text(text.replace(block.group(0), updated))
    shutil.copyfile(run / "log.jsonl", RESULTS / f"train-lite-x{scale}-stage{stage}.jsonl")
    return sha


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=int, required=True, choices=(2, 3, 4))
    parser.add_argument("--stage", type=int, required=True, help="the trained stage")
    parser.add_argument("--shipped", type=int, required=True, help="the stage shipped now")
    parser.add_argument("--ship", action="store_true", help="ship it if it passes the rule")
    parser.add_argument("--json", type=Path, help="write both summaries here")
    args = parser.parse_args(argv)

    new = summary(load_evaluations(args.scale, args.stage))
    shipped = summary(load_evaluations(args.scale, args.shipped))
    for label, s in ((f"stage {args.stage}", new), (f"stage {args.shipped} (shipped)", shipped)):
        means = " / ".join(f"{k} {v:+.3f}" for k, v in s["means"].items())
        print(f"x{args.scale} {label}: {means}; mean of three {s['mean_of_three']:+.3f}")
        print(f"  below bicubic (photos, pairs): {s['below_bicubic']}")
    ok = passes(new, shipped)
    print(f"passes the shipping rule: {ok}")
    if args.json:
        args.json.write_text(json.dumps({"new": new, "shipped": shipped, "passes": ok}, indent=1))
    if not args.ship:
        return 0
    if not ok:
        print("not shipped", file=sys.stderr)
        return 1
    print(f"shipped lite-x{args.scale}: sha256 {ship(args.scale, args.stage)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

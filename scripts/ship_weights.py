"""Compare a trained stage with the shipped one on the held-out set and, if it passes the
shipping rule, ship it: the weights into the package, their sha256 and stage into the registry,
the training log into experiments/results.

The shipping rule (docs/models.md): weights are judged on the held-out evaluations of the
inputs routed to them (:mod:`napari_cisr.compression`). The new stage's mean over those is
higher than the shipped stage's, and none of them drops by more than 0.05 dB. Both stages must
have been evaluated with the commands of docs/models.md, into
``experiments/results/eval-lite-x{scale}-stage{stage}-heldout45{,-realistic,-light}.json``.

The general weights run where no heavy weights ship, and on every image routed by its pixels
that shows a blocking grid whose JPEG quality cannot be read: WebP's, which light-quality
WebP arrays often show (``benchmarks/routing_by_pixels.py``): so they are judged on the
paper's protocol, ``--degradation realistic`` and the light configurations.
The weights for heavy compression (``--heavy``: ``lite-x{scale}-heavy.safetensors``, stages of
``experiments/configs/lite-x{scale}/`` trained on heavy compression only) run only on files
whose quality says heavy (:data:`napari_cisr.compression.HEAVY_QUALITY`), so they are judged
on the configurations of the paper's protocol and the realistic variant that such files route
to them (:func:`napari_cisr.train.evaluate.file_info`), against the shipped heavy stage or, for
the first, the general weights' stage of that number:

    python scripts/ship_weights.py --heavy --scale 2 --stage 40 --shipped 39 --ship

    python scripts/ship_weights.py --scale 4 --stage 19 --shipped 18          # report only
    python scripts/ship_weights.py --scale 4 --stage 19 --shipped 18 --ship   # and ship

The weights for mild compression (``--mild``: ``lite-x{scale}-mild.safetensors``, stages of
``experiments/configs/lite-mild-x{scale}/``) run on the inputs routed to them (files of mild
compression, images without blocking: :mod:`napari_cisr.compression`), so they are judged on
the light configurations and uncompressed input
(``eval-lite-mild-x{scale}-stage{stage}-heldout45{-light,-none}.json``), against the shipped
mild stage or, with ``--general``, the general weights' stage of that number:

    python scripts/ship_weights.py --mild --scale 2 --stage 1 --shipped 39 --general --ship
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
MILD_EVALUATIONS = {"light": "-light", "none": "-none"}
#: the evaluations each set of weights is judged on: the inputs routed to it
JUDGED = {"general": ("paper", "realistic", "light"), "mild": ("light", "none")}
JUDGED_HEAVY = ("paper", "realistic")
TOLERANCE_DB = 0.05


def load_evaluations(scale: int, stage: int, mild: bool = False) -> dict[str, dict]:
    """The held-out evaluation JSONs of one stage, by evaluation name: the three of the
    general weights, or the two of the mild ones."""
    found = {}
    for name, suffix in (MILD_EVALUATIONS if mild else EVALUATIONS).items():
        path = RESULTS / f"eval-{lineage(scale, mild)}-stage{stage}-heldout45{suffix}.json"
        if not path.is_file():
            raise SystemExit(f"{path}: missing; run the held-out evaluations of docs/models.md")
        found[name] = json.loads(path.read_text())
    return found


def lineage(scale: int, mild: bool = False) -> str:
    """The name of a scale's stages: ``lite-x2``, or ``lite-mild-x2`` for the mild weights."""
    return f"lite-mild-x{scale}" if mild else f"lite-x{scale}"


def mean_gain(evaluation: dict, routed: str | None = None) -> float:
    """The evaluation's mean gain, or with ``routed`` the mean over the configurations whose
    files route to that compression."""
    if routed is None:
        return (evaluation.get("mean") or evaluation["mean_unseen"])["gain"]
    gains = [v["gain"] for label, v in evaluation["configs"].items() if _routes_to(label, routed)]
    return sum(gains) / len(gains)


def _routes_to(label: str, compression: str) -> bool:
    """Whether a file holding configuration ``label``'s input is routed to ``compression``."""
    from napari_cisr.compression import compression_from_info
    from napari_cisr.train.evaluate import file_info

    return compression_from_info(file_info(label)) == compression


def below_bicubic(evaluation: dict, routed: str | None = None) -> tuple[int, int]:
    """(photos, photo-configuration pairs) whose gain over bicubic is negative, with
    ``routed`` among the configurations routed to that compression."""
    pairs = [
        photo
        for photo, configs in evaluation["per_photo"].items()
        for label, result in configs.items()
        if result["gain"] < 0 and (routed is None or _routes_to(label, routed))
    ]
    return len(set(pairs)), len(pairs)


def summary(
    evaluations: dict[str, dict], judged: tuple[str, ...], routed: str | None = None
) -> dict:
    """Means, per-configuration and per-source gains and losses against bicubic; ``routed``
    restricts the means and the losses of ``judged`` to the configurations routed there."""
    means = {
        name: mean_gain(e, routed if name in judged else None) for name, e in evaluations.items()
    }
    first = evaluations.get("paper", evaluations["light"])
    return {
        "means": means,
        "judged": list(judged),
        "mean_judged": sum(means[name] for name in judged) / len(judged),
        "configs": {k: v["gain"] for k, v in first["configs"].items()},
        "light_configs": {k: v["gain"] for k, v in evaluations["light"]["configs"].items()},
        "sources": {
            name: {k: v["gain"] for k, v in e["sources"].items()} for name, e in evaluations.items()
        },
        "below_bicubic": {
            name: below_bicubic(e, routed if name in judged else None)
            for name, e in evaluations.items()
        },
    }


def passes(new: dict, shipped: dict) -> bool:
    return new["mean_judged"] > shipped["mean_judged"] and all(
        new["means"][k] >= shipped["means"][k] - TOLERANCE_DB for k in new["judged"]
    )


def ship(scale: int, stage: int, mild: bool = False, heavy: bool = False) -> str:
    """Copy the stage's last weights into the package and point the registry at them."""
    name = lineage(scale, mild)
    key = f"lite-x{scale}-mild" if mild else f"lite-x{scale}-heavy" if heavy else f"lite-x{scale}"
    run = ROOT / "runs" / f"{name}-stage{stage}"
    sha = hashlib.sha256((run / "last.safetensors").read_bytes()).hexdigest()
    text = REGISTRY.read_text()
    block = re.search(rf'"{key}": WeightSpec\(.*?\n    \),', text, re.S)
    if block is None:
        raise SystemExit(f"{REGISTRY}: no WeightSpec for {key}; add one to PRETRAINED first")
    updated, hashes = re.subn(r'sha256="[0-9a-f]{64}"', f'sha256="{sha}"', block.group(0))
    updated, stages = re.subn(
        rf'"stage \d+ of experiments/configs/{name}/;',
        f'"stage {stage} of experiments/configs/{name}/;',
        updated,
    )
    if (hashes, stages) != (1, 1):  # a new entry needs a 64-hex placeholder and its lineage
        raise SystemExit(f"{REGISTRY}: {key}'s sha256 or stage description is not in the form")
    shutil.copyfile(run / "last.safetensors", WEIGHTS / f"{key}.safetensors")  # checked first
    REGISTRY.write_text(text.replace(block.group(0), updated))
    shutil.copyfile(run / "log.jsonl", RESULTS / f"train-{name}-stage{stage}.jsonl")
    return sha


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=int, required=True, choices=(2, 3, 4))
    parser.add_argument("--stage", type=int, required=True, help="the trained stage")
    parser.add_argument("--shipped", type=int, required=True, help="the stage shipped now")
    parser.add_argument("--ship", action="store_true", help="ship it if it passes the rule")
    parser.add_argument("--json", type=Path, help="write both summaries here")
    parser.add_argument("--mild", action="store_true", help="a stage of the mild weights")
    parser.add_argument(
        "--general",
        action="store_true",
        help="with --mild: --shipped is a stage of the general weights (no mild ones shipped)",
    )
    parser.add_argument(
        "--heavy",
        action="store_true",
        help="a stage of the weights for heavy compression (its stages are the general ones')",
    )
    args = parser.parse_args(argv)

    judged = JUDGED["mild" if args.mild else "general"]
    routed = None
    if args.heavy:
        judged, routed = JUDGED_HEAVY, "heavy"
    new = summary(load_evaluations(args.scale, args.stage, args.mild), judged, routed)
    if args.mild and args.general:  # the general weights on the inputs the mild ones would get
        baseline = RESULTS / f"eval-lite-x{args.scale}-stage{args.shipped}-heldout45"
        shipped = summary(
            {
                n: json.loads(Path(f"{baseline}{x}.json").read_text())
                for n, x in MILD_EVALUATIONS.items()
            },
            judged,
        )
    else:
        shipped = summary(load_evaluations(args.scale, args.shipped, args.mild), judged, routed)
    scope = " (configurations routed to the heavy weights)" if routed else ""
    for label, s in ((f"stage {args.stage}", new), (f"stage {args.shipped} (shipped)", shipped)):
        means = " / ".join(f"{k} {v:+.3f}" for k, v in s["means"].items())
        print(
            f"x{args.scale} {label}{scope}: {means}; "
            f"mean of {'+'.join(judged)} {s['mean_judged']:+.3f}"
        )
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
    sha = ship(args.scale, args.stage, args.mild, args.heavy)
    print(f"shipped {lineage(args.scale, args.mild)} stage {args.stage}: sha256 {sha}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

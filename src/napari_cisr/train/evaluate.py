"""Evaluation with the paper's protocol (Section 4.2, Table 2, Fig. 9).

For every held-out photo: ground truth = the photo downscaled ``downscale``× (clean), LR =
antialiased bicubic ÷ s, z = LR through each compression configuration; the output is rounded
to uint8 and scored by PSNR/SSIM on Y (BT.601) with ``scale`` pixels shaved, next to plain
bicubic upscaling of z (Pillow, antialiased bicubic like MATLAB's ``imresize``). A named
``degradation`` replaces the LR and z steps with what phones and social-media sites do (other
kernels, 4:4:4 chroma, double compression: ``napari_cisr.degrade.DEGRADATIONS``).
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np

from napari_cisr.compression import ROUTINGS, input_compression, is_routed, route_model
from napari_cisr.degrade import (
    DEGRADATIONS,
    TRAIN_CONFIGS,
    Codec,
    Degradation,
    bicubic_upscale,
    config_name,
    mixture,
    parse_config,
)
from napari_cisr.inference import super_resolve
from napari_cisr.metrics import psnr_y, ssim_y
from napari_cisr.runtime import resolve_device, resolve_precision
from napari_cisr.train.data import list_photos, load_clean_photo

log = logging.getLogger(__name__)


def photo_source(photo: str | Path) -> str:
    """The source a held-out photo belongs to: the name of the folder it lies in
    (``data/heldout/<source>/<photo>``, as ``scripts/fetch_heldout.sh`` lays them out)."""
    return Path(photo).parent.name


def source_means(per_photo: dict[str, dict[str, dict[str, float]]], sources: dict[str, str]):
    """Per-source summary of per-photo gains: ``{source: {"photos", "gain", "least_gain"}}``.

    ``gain`` is the mean over the source's photos of each photo's mean gain over the
    configurations of the paper's ten present (all present ones if none of the ten is);
    ``least_gain`` is its least per-configuration mean gain.
    """
    trained = {config_name(c, q) for c, q in TRAIN_CONFIGS}
    grouped: dict[str, list[dict[str, float]]] = {}
    for photo, rows in per_photo.items():
        gains = {k: r["gain"] for k, r in rows.items() if k in trained} or {
            k: r["gain"] for k, r in rows.items()
        }
        grouped.setdefault(sources[photo], []).append(gains)
    summary = {}
    for source, photos in sorted(grouped.items()):
        labels = photos[0].keys()
        summary[source] = {
            "photos": len(photos),
            "gain": float(np.mean([np.mean(list(g.values())) for g in photos])),
            "least_gain": float(min(np.mean([g[lb] for g in photos]) for lb in labels)),
        }
    return summary


def evaluation_pairs(
    photos: Sequence[str | Path],
    scale: int,
    configs: Sequence[tuple[Codec, int]],
    downscale: int = 3,
    degradation: str = "paper",
) -> Iterator[tuple[Path, str, np.ndarray, np.ndarray]]:
    """The protocol's inputs: (photo, config label, truth, z) for every photo × configuration.

    truth = the photo downscaled ``downscale``× (uint8 H×W×3, cut to multiples of ``scale``);
    z = truth downscaled ÷``scale`` through the codec (uint8), as the named ``degradation``
    (:data:`~napari_cisr.degrade.DEGRADATIONS`; "paper": antialiased bicubic, 4:2:0) does it.
    Where the name holds several, each photo × configuration takes one, the same on every run
    (:func:`degradation_for`).
    """
    choices = mixture(degradation)
    for path in map(Path, photos):
        truth = load_clean_photo(path, downscale)
        height, width = (truth.shape[0] // scale) * scale, (truth.shape[1] // scale) * scale
        truth = truth[:height, :width]
        clean_lr = {}  # one downscale per kernel of the mixture
        for codec, quality in configs:
            label = config_name(codec, quality)
            chosen = degradation_for(choices, path.name, label)
            key = (chosen.kernel, chosen.antialias)
            if key not in clean_lr:
                clean_lr[key] = chosen.downscale(truth, scale)
            yield path, label, truth, chosen.compress(clean_lr[key], codec, quality)


def file_info(label: str) -> dict[str, object]:
    """What a file holding a configuration's z would tell :mod:`napari_cisr.compression`: a
    JPEG or WebP its quality (both estimated exactly from files Pillow writes:
    ``tests/test_io.py``); an uncompressed z, nothing (a PNG: its pixels decide)."""
    codec, quality = parse_config(label)
    if codec in ("jpeg", "webp"):
        return {"codec": codec, "quality": quality, "lossless": False}
    return {}


def model_for(
    model: str | Path, scale: int, label: str, z: np.ndarray, routing: str = "file"
) -> str | Path:
    """The model that runs on one pair's ``z``: a name routed as a user's file of that
    configuration would be (:func:`file_info`, then its pixels) or, with ``routing="pixels"``,
    as the same image in an array would be; anything else unchanged."""
    if not is_routed(model):
        return model
    info = file_info(label) if routing == "file" else None
    return route_model(model, scale, input_compression(z, info))


def degradation_means(report: dict) -> dict[str, dict[str, float]]:
    """Per member of a report's degradation mixture (``napari-cisr eval --degradation
    realistic``): how many photo × configuration pairs it made, their mean gain and how many of
    them are below bicubic. Empty for a single degradation. Works on saved reports too: the
    member of each pair is a function of the names (:func:`degradation_for`)."""
    choices = mixture(report.get("degradation", "paper"))
    if len(choices) < 2 or not report.get("per_photo"):
        return {}
    names = {members[0]: name for name, members in DEGRADATIONS.items() if len(members) == 1}
    gains: dict[str, list[float]] = {}
    for photo, rows in report["per_photo"].items():
        for label, row in rows.items():
            name = names[degradation_for(choices, Path(photo).name, label)]
            gains.setdefault(name, []).append(row["gain"])
    return {
        name: {
            "pairs": len(values),
            "gain": float(np.mean(values)),
            "below_bicubic": int(np.sum(np.array(values) < 0)),
        }
        for name, values in sorted(gains.items())
    }


def degradation_for(choices: Sequence[Degradation], photo: str, label: str) -> Degradation:
    """The member of a degradation mixture that ``photo`` under ``label`` gets: a hash of the
    two names (CRC-32), so every run and every method sees the same inputs."""
    return choices[zlib.crc32(f"{photo}/{label}".encode()) % len(choices)]


def evaluate(
    sources: Sequence[str | Path],
    scale: int,
    model: str | Path = "lite",
    configs: Sequence[tuple[Codec, int]] = (),
    downscale: int = 3,
    device: str = "auto",
    iterations: int | None = None,
    precision: str = "auto",
    self_ensemble: bool = False,
    degradation: str = "paper",
    routing: str = "file",
) -> dict:
    """Score ``model`` and bicubic on every photo × configuration.

    ``device``, ``iterations``, ``precision`` and ``self_ensemble`` are passed to
    :func:`napari_cisr.super_resolve`; ``degradation`` to :func:`evaluation_pairs`;
    ``routing`` (:data:`napari_cisr.compression.ROUTINGS`) to :func:`model_for`.

    Returns
    -------
    dict
        ``{"scale", "model", "photos": [...], "configs": {label: {"bicubic_psnr", "bicubic_ssim",
        "psnr", "ssim", "gain"}}, "mean": {...}, "sources": {source: {"photos", "gain",
        "least_gain"}}, "per_photo": {photo: {label: {...}}}}`` — per-config means over the
        photos, per-source means (:func:`photo_source`, :func:`source_means`), and each photo's
        own scores (the same keys, and ``model``, the weights that ran, for a routed name).
    """
    if routing not in ROUTINGS:
        raise ValueError(f"routing must be one of {', '.join(ROUTINGS)}, got {routing!r}")
    photos = list_photos(sources)
    if not photos:
        raise ValueError(f"no images found in {', '.join(map(str, sources))}")
    # Photos are named by file name, or by path where two share a name (two folders).
    names = [p.name for p in photos]
    unique = len(set(names)) == len(names)
    label_of = {p: (p.name if unique else str(p)) for p in photos}
    rows: dict[str, dict[str, list[float]]] = {}
    per_photo: dict[str, dict[str, dict[str, float]]] = {}
    last_label = config_name(*configs[-1]) if configs else None  # a photo is done after it
    pairs = evaluation_pairs(photos, scale, configs, downscale, degradation)
    models_run: dict[str, set[str]] = {}
    for path, label, truth, z in pairs:
        run = model_for(model, scale, label, z, routing)
        models_run.setdefault(label, set()).add(str(run))
        output = super_resolve(
            z,
            scale=scale,
            model=run,
            iterations=iterations,
            device=device,
            precision=precision,
            self_ensemble=self_ensemble,
        )
        baseline = bicubic_upscale(z, scale)
        scores = {
            "bicubic_psnr": psnr_y(baseline, truth, shave=scale),
            "bicubic_ssim": ssim_y(baseline, truth, shave=scale),
            "psnr": psnr_y(output, truth, shave=scale),
            "ssim": ssim_y(output, truth, shave=scale),
        }
        per_photo.setdefault(label_of[path], {})[label] = {
            **scores,
            "gain": scores["psnr"] - scores["bicubic_psnr"],
            **({"model": str(run)} if is_routed(model) else {}),
        }
        row = rows.setdefault(label, {k: [] for k in _KEYS})
        for key, value in scores.items():
            row[key].append(value)
        if label == last_label:
            log.info("evaluated %s", path.name)
    table = {
        label: {key: float(np.mean(values)) for key, values in row.items()}
        for label, row in rows.items()
    }
    report = {
        "scale": scale,
        "model": str(model),
        "photos": [label_of[p] for p in photos],
        "downscale": downscale,
        "degradation": degradation,
        # What "auto" resolved to on this machine: bfloat16 and float32 differ by ~0.003 dB.
        "precision": str(resolve_precision(precision, resolve_device(device))).split(".")[-1],
        "self_ensemble": self_ensemble,
        "configs": table,
    }
    if is_routed(model):  # which weights each configuration's inputs went to, and how
        report["routing"] = routing
        report["models_run"] = {label: ", ".join(sorted(m)) for label, m in models_run.items()}
    report = summarise(report)
    report["sources"] = source_means(per_photo, {label_of[p]: photo_source(p) for p in photos})
    if members := degradation_means({**report, "per_photo": per_photo}):
        report["degradations"] = members
    # After the means, so that a saved report reads summary first; summarise() leaves it alone.
    report["per_photo"] = per_photo
    return report


_KEYS = ("bicubic_psnr", "bicubic_ssim", "psnr", "ssim")


def summarise(report: dict) -> dict:
    """Add per-config gains, "mean" over the paper's ten training configurations present and
    "mean_unseen" over the others (e.g. Fig. 9's unseen JPEG qualities)."""
    trained = {config_name(c, q) for c, q in TRAIN_CONFIGS}
    for row in report["configs"].values():
        row["gain"] = row["psnr"] - row["bicubic_psnr"]
    groups = {"mean": [], "mean_unseen": []}
    for label, row in report["configs"].items():
        groups["mean" if label in trained else "mean_unseen"].append(row)
    for name, rows in groups.items():
        report.pop(name, None)
        if rows:
            report[name] = {key: float(np.mean([r[key] for r in rows])) for key in [*_KEYS, "gain"]}
    return report


def _markdown_table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> list[str]:
    """The lines of a Markdown table, after a blank line that separates it from what precedes."""
    lines = ["", "| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    return lines + ["| " + " | ".join(map(str, row)) + " |" for row in rows]


def format_table(report: dict) -> str:
    """The report as a Markdown table like the paper's Table 2, then each photo's mean and least
    gain (reports with ``per_photo``)."""
    title = (
        f"x{report['scale']}, model {report['model']}"
        + (", x8 self-ensemble" if report.get("self_ensemble") else "")
        + (
            f", {report['degradation']} degradation"
            if report.get("degradation", "paper") != "paper"
            else ""
        )
        + f", {len(report['photos'])} photos"
        + (", routed by the pixels alone" if report.get("routing") == "pixels" else "")
    )
    if routed := report.get("models_run"):  # which weights each configuration ran
        runs: dict[str, list[str]] = {}
        for label, models in routed.items():
            runs.setdefault(models, []).append(label)
        title += "; " + "; ".join(f"{m} on {', '.join(labels)}" for m, labels in runs.items())
    trained = {config_name(c, q) for c, q in TRAIN_CONFIGS}
    n_trained = sum(label in trained for label in report["configs"])
    n_other = len(report["configs"]) - n_trained
    ten = "mean of the ten" if n_trained == len(trained) else f"mean of {n_trained} of the ten"
    titles = (("mean", ten), ("mean_unseen", f"mean of {n_other} unseen"))
    summaries = [(f"**{title}**", report[key]) for key, title in titles if key in report]
    lines = [title]
    lines += _markdown_table(
        ("config", "bicubic PSNR / SSIM", "CISR PSNR / SSIM", "gain (dB)"),
        (
            (
                label,
                f"{row['bicubic_psnr']:.2f} / {row['bicubic_ssim']:.4f}",
                f"{row['psnr']:.2f} / {row['ssim']:.4f}",
                f"{row['gain']:+.2f}",
            )
            for label, row in [*report["configs"].items(), *summaries]
        ),
    )
    sources = report.get("sources")  # absent from reports saved before it existed
    if sources:
        lines += _markdown_table(
            ("source", "photos", "mean gain (dB)", "least config gain (dB)"),
            (
                (source, row["photos"], f"{row['gain']:+.2f}", f"{row['least_gain']:+.2f}")
                for source, row in sources.items()
            ),
        )
    members = report.get("degradations")
    if members:
        lines += _markdown_table(
            ("degradation", "pairs", "mean gain (dB)", "pairs below bicubic"),
            (
                (name, row["pairs"], f"{row['gain']:+.2f}", row["below_bicubic"])
                for name, row in members.items()
            ),
        )
    per_photo = report.get("per_photo")  # absent from reports saved before it existed
    if per_photo:
        lines += _markdown_table(
            ("photo", "mean gain (dB)", "least gain (dB)"),
            (_photo_row(photo, rows, trained) for photo, rows in per_photo.items()),
        )
    return "\n".join(lines)


def _photo_row(photo: str, rows: dict[str, dict], trained: set[str]) -> tuple[str, str, str]:
    """A photo's mean gain and its least gain (with the config), over the ten when they were
    scored (as the table's "mean"), else over every config."""
    gains = {k: r["gain"] for k, r in rows.items() if k in trained} or {
        k: r["gain"] for k, r in rows.items()
    }
    least = min(gains, key=gains.__getitem__)
    return photo, f"{np.mean(list(gains.values())):+.2f}", f"{gains[least]:+.2f} ({least})"

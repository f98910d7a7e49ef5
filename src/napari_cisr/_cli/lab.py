"""``napari-cisr train`` and ``napari-cisr eval``: the training command and the paper's evaluation
protocol (the team's tools; they need the ``train`` extra)."""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

from napari_cisr._cli.common import CLIError, check_options, common_model_args, log
from napari_cisr.options import SCALES
from napari_cisr.registry import MODEL_NAMES


def _cmd_train(args: argparse.Namespace) -> None:
    from dataclasses import fields, replace

    from napari_cisr.train.loop import TrainConfig, train

    cfg = TrainConfig.from_json(args.config) if args.config else TrainConfig()
    given = {f.name: getattr(args, f.name, None) for f in fields(TrainConfig)}
    # replace() checks the options given on the command line as the config file's were.
    cfg = replace(cfg, **{name: value for name, value in given.items() if value is not None})
    best = train(cfg)
    log.info("best weights: %s", best)


def add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a model (paper Algorithm 1, Eq. 8)")
    p.add_argument(
        "--config",
        type=Path,
        help="JSON file of TrainConfig fields (experiments/configs/<model>/stageN.json)",
    )
    p.add_argument("--variant", choices=MODEL_NAMES)
    p.add_argument("--scale", type=int, choices=SCALES)
    p.add_argument("--steps", type=int)
    p.add_argument("--batch", type=int)
    p.add_argument("--patch", type=int, help="LR patch side")
    p.add_argument(
        "--compress-size",
        type=int,
        help="LR side of the region compressed around each patch (default 192; 64: older runs)",
    )
    p.add_argument("--lr", type=float)
    p.add_argument(
        "--distance",
        choices=("l1", "l2", "psnr"),
        help="Eq. (8) distance: l1 (paper), l2 or psnr (per-patch log squared error; fine-tuning)",
    )
    p.add_argument(
        "--compressions",
        nargs="+",
        help="configurations patches are drawn from, e.g. jpeg-q10 webp-q80 none "
        "(none: uncompressed; default: the ten)",
    )
    p.add_argument("--data", nargs="+", help="folders (or files) of HR photos")
    p.add_argument("--validation", nargs="+", help="held-out photos for checkpoint selection")
    p.add_argument(
        "--extra-downscales",
        type=int,
        nargs="+",
        help="also train on the photos downscaled by these factors (e.g. 4 5)",
    )
    p.add_argument("--output", help="run folder (resumes from its last.pt)")
    p.add_argument("--threads", type=int, help="torch threads (0 = torch default)")
    p.add_argument("--device", help="cpu, cuda or auto")
    p.add_argument("--init", help="start from these weights")
    p.add_argument("--workers", type=int, help="processes drawing training patches (0: none)")
    p.add_argument(
        "--compile", action="store_true", default=None, help="train through torch.compile"
    )
    p.set_defaults(func=_cmd_train)


def _cmd_eval(args: argparse.Namespace) -> None:
    check_options(args)
    if importlib.util.find_spec("skimage") is None:
        raise CLIError("eval needs scikit-image for SSIM: pip install 'napari-cisr[train]'")
    from napari_cisr.degrade import TRAIN_CONFIGS, UNSEEN_JPEG_CONFIGS, parse_configs
    from napari_cisr.io import write_json
    from napari_cisr.train.evaluate import evaluate, format_table

    if args.configs:
        configs = list(parse_configs(args.configs))
    else:
        configs = list(TRAIN_CONFIGS) + (list(UNSEEN_JPEG_CONFIGS) if args.unseen else [])
    report = evaluate(
        args.sources,
        args.scale,
        args.model,
        configs,
        args.downscale,
        args.device,
        args.iterations,
        args.precision,
        args.self_ensemble,
        args.degradation,
        args.routing,
    )
    print(format_table(report))
    if args.json:
        write_json(args.json, report)


def add_eval(sub: argparse._SubParsersAction) -> None:
    from napari_cisr.compression import ROUTINGS
    from napari_cisr.degrade import DEGRADATIONS

    p = sub.add_parser("eval", help="PSNR/SSIM on Y against bicubic (the paper's protocol)")
    p.add_argument("sources", nargs="+", help="folders or files of clean HR photos")
    common_model_args(p)
    p.add_argument(
        "--configs",
        nargs="+",
        help="e.g. jpeg-q10 webp-q5 none (none: uncompressed; default: the ten)",
    )
    p.add_argument("--unseen", action="store_true", help="add JPEG q15/25/35/45/55 (Fig. 9)")
    p.add_argument("--downscale", type=int, default=3, help="ground truth = photo ÷ this")
    p.add_argument(
        "--degradation",
        default="paper",
        choices=DEGRADATIONS,
        help="how the LR input is made: the paper's (antialiased bicubic, 4:2:0 JPEG), another "
        "kernel, 4:4:4 chroma, double compression, or 'realistic' (a mixture of those)",
    )
    p.add_argument(
        "--routing",
        default="file",
        choices=ROUTINGS,
        help="how a model name without a compression tag (lite) is routed: as a file of each "
        "configuration's quality would be, or by the pixels alone, as an array or a PNG is",
    )
    p.add_argument("--json", help="also save the report as JSON")
    p.set_defaults(func=_cmd_eval)

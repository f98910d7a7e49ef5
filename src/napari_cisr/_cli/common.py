"""What every ``napari-cisr`` subcommand shares: the two one-line failures, the inference
arguments (parsed into one :class:`~napari_cisr.options.InferenceOptions`, validated before
torch is imported) and the checks of an output folder."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from napari_cisr.options import SCALES
from napari_cisr.registry import PRECISIONS

log = logging.getLogger("napari_cisr")


class CLIError(Exception):
    """A usage error: printed as one line, exit status 2."""


class WorkFailed(Exception):
    """Work that failed on its input: printed as one line, exit status 1."""


def check_options(args: argparse.Namespace) -> None:
    """Refuse bad inference arguments in one line, before torch is imported."""
    options = inference_options(args)
    try:
        options.validate()
    except ValueError as error:
        raise CLIError(str(error)) from None


def model_help() -> str:
    from napari_cisr.registry import shipped_variants

    names = ", ".join(shipped_variants())
    return (
        f"{names} (shipped weights: those trained for each input's compression, from its file "
        "or its blocking; add .mild or .strong to choose them) or a weight file"
    )


def common_model_args(
    p: argparse.ArgumentParser, device_default: str = "auto", device_help: str = "auto, cpu or cuda"
) -> None:
    """The model and inference flags every command that computes shares (one declaration)."""
    from napari_cisr.options import PRESET_HELP, PRESETS

    p.add_argument("--scale", type=int, choices=SCALES, default=2, help="upscaling factor (2)")
    p.add_argument("--model", default="lite", help=model_help())
    speed = p.add_mutually_exclusive_group()
    speed.add_argument(
        "--preset",
        choices=tuple(PRESETS),
        help="; ".join(f"{name}: {text}" for name, text in PRESET_HELP.items())
        + " (default: best; docs/models.md, Presets)",
    )
    speed.add_argument(
        "--iterations", type=int, help="unfolding iterations J (default: the model's)"
    )
    p.add_argument("--device", default=device_default, help=device_help)
    precision_arg(p)
    self_ensemble_arg(p)


def self_ensemble_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--self-ensemble",
        action="store_true",
        help="average over the 8 rotations/flips of the input: 8x the time, higher PSNR",
    )


def precision_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="auto",
        help="compute precision (auto: bfloat16 where the CPU/GPU has it natively)",
    )


def expected_errors() -> tuple[type[Exception], ...]:
    from napari_cisr.io import ImageReadError
    from napari_cisr.weights import WeightsError

    return (ImageReadError, WeightsError, FileExistsError, ValueError)


def inference_options(args: argparse.Namespace):
    from napari_cisr.options import InferenceOptions, preset_iterations

    iterations = getattr(args, "iterations", None)
    if getattr(args, "preset", None) is not None:
        iterations = preset_iterations(args.preset)
    return InferenceOptions.from_settings(args, model=str(args.model), iterations=iterations)


def check_output_dir(folder: Path) -> None:
    """Create ``folder`` if needed and make sure it takes new files, before any work."""
    from napari_cisr.io.atomic import unwritable_reason

    if folder.exists() and not folder.is_dir():
        raise CLIError(f"output folder '{folder}' is a file")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        reason = unwritable_reason(folder)
    except OSError as error:
        reason = (error.strerror or type(error).__name__).lower()
    if reason is not None:
        raise CLIError(f"cannot write into output folder '{folder}': {reason}")


def check_photo_args(args: argparse.Namespace) -> None:
    if args.quality is not None and not 1 <= args.quality <= 100:
        raise CLIError(f"--quality must be in 1..100, not {args.quality}")


def photo_writing(args: argparse.Namespace) -> dict[str, object]:
    """The flags every photo writer takes (``process_photo``, ``run_photos``, the batch's
    image jobs), as keyword arguments: one reading of them for ``run`` and ``batch``."""
    return {
        "overwrite": args.overwrite,
        "quality": args.quality,
        "apply_orientation": args.apply_orientation,
    }


def load_model_once(options) -> None:
    """Load the network before the first file: a bad weight file is a usage error, reported
    once, not as a failure of every input."""
    from napari_cisr.inference import cached_model
    from napari_cisr.runtime import resolve_device
    from napari_cisr.weights import WeightsError

    try:
        cached_model(options.model, options.scale, str(resolve_device(options.device)))
    except (WeightsError, ValueError) as error:
        raise CLIError(str(error)) from None


def photo_output_args(p: argparse.ArgumentParser) -> None:
    """Options of runs that write images into a folder (``run -o``, ``batch`` to a folder)."""
    from napari_cisr.io import OUTPUT_FORMATS

    p.add_argument(
        "--format",
        choices=tuple(OUTPUT_FORMATS),
        help="output format (default: lossless, png; tif for TIFF inputs)",
    )
    p.add_argument("--suffix", help="appended to each output's stem (default: _x<scale>)")
    p.add_argument("--quality", type=int, help="JPEG/WebP output quality 1..100 (95 / 90)")
    p.add_argument(
        "--apply-orientation",
        action="store_true",
        help="rotate outputs upright by their EXIF orientation (default: keep the tag)",
    )
    p.add_argument("--json", help="also write the summary (done, skipped, failed) as JSON")
    p.add_argument("-q", "--quiet", action="store_true", help="report failures only")


def finish_many(args: argparse.Namespace, folder: Path, summary) -> None:
    """The summary line, the failures (one line each), the ``--json`` report, the status."""
    if args.json:
        from napari_cisr.io import write_json

        write_json(args.json, summary.to_dict())
    for name, reason in summary.failed:
        log.error("failed: %s: %s", name, reason)
    if not summary.ok:
        raise WorkFailed(f"{folder}: {summary.line()}")
    log.info("%s: %s", folder, summary.line())


def photo_flags(args: argparse.Namespace) -> list[tuple[str, object]]:
    return [
        ("--format", args.format),
        ("--suffix", args.suffix),
        ("--quality", args.quality),
        ("--apply-orientation", args.apply_orientation),
        ("--json", args.json),
    ]

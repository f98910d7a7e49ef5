"""``napari-cisr`` command line: run, demo, train, eval, batch.

Library functions never receive an argparse Namespace: each subcommand unpacks its arguments.
Expected failures end with one line on stderr, never a traceback: exit status 2 for a usage
error (a bad argument or output path, refused before torch is imported and before any input is
read), 1 for work that failed (an unreadable input, a batch item that failed).
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

log = logging.getLogger("napari_cisr")


class CLIError(Exception):
    """A usage error: printed as one line, exit status 2."""


class WorkFailed(Exception):
    """Work that failed on its input: printed as one line, exit status 1."""


def _check_options(args: argparse.Namespace) -> None:
    """Refuse bad inference arguments in one line, before torch is imported."""
    options = _inference_options(args)
    try:
        options.validate()
    except ValueError as error:
        raise CLIError(str(error)) from None


def _model_help() -> str:
    from napari_cisr.registry import shipped_variants

    return f"{', '.join(shipped_variants())} (shipped weights) or a weight file"


def _cmd_train(args: argparse.Namespace) -> None:
    from dataclasses import fields, replace

    from napari_cisr.train.loop import TrainConfig, train

    cfg = TrainConfig.from_json(args.config) if args.config else TrainConfig()
    given = {f.name: getattr(args, f.name, None) for f in fields(TrainConfig)}
    # replace() checks the options given on the command line as the config file's were.
    cfg = replace(cfg, **{name: value for name, value in given.items() if value is not None})
    best = train(cfg)
    log.info("best weights: %s", best)


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a model (paper Algorithm 1, Eq. 8)")
    p.add_argument(
        "--config",
        type=Path,
        help="JSON file of TrainConfig fields (experiments/configs/<model>/stageN.json)",
    )
    p.add_argument("--variant", choices=("lite", "tiny", "full"))
    p.add_argument("--scale", type=int, choices=(2, 3, 4))
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
        help="configurations patches are drawn from, e.g. jpeg-q10 webp-q80 (default: the ten)",
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


def _common_model_args(p: argparse.ArgumentParser) -> None:
    from napari_cisr.options import PRESET_HELP, PRESETS

    p.add_argument("--scale", type=int, choices=(2, 3, 4), default=2, help="upscaling factor (2)")
    p.add_argument("--model", default="lite", help=_model_help())
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
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    _precision_arg(p)
    _self_ensemble_arg(p)


def _self_ensemble_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--self-ensemble",
        action="store_true",
        help="average over the 8 rotations/flips of the input: 8x the time, higher PSNR",
    )


def _precision_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--precision",
        choices=("auto", "float32", "bfloat16"),
        default="auto",
        help="compute precision (auto: bfloat16 where the CPU/GPU has it natively)",
    )


def _expected_errors() -> tuple[type[Exception], ...]:
    from napari_cisr.io import ImageReadError
    from napari_cisr.weights import WeightsError

    return (ImageReadError, WeightsError, FileExistsError, ValueError)


def _inference_options(args: argparse.Namespace):
    from napari_cisr.options import InferenceOptions, preset_iterations

    iterations = getattr(args, "iterations", None)
    if getattr(args, "preset", None) is not None:
        iterations = preset_iterations(args.preset)
    return InferenceOptions(
        scale=getattr(args, "scale", 2),
        model=str(args.model),
        iterations=iterations,
        tile=getattr(args, "tile", None),
        device=args.device,
        precision=args.precision,
        self_ensemble=args.self_ensemble,
    )


def _check_output_dir(folder: Path) -> None:
    """Create ``folder`` if needed and make sure it takes new files, before any work."""
    import tempfile

    if folder.exists() and not folder.is_dir():
        raise CLIError(f"output folder '{folder}' is a file")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle, probe = tempfile.mkstemp(prefix=".napari-cisr.", suffix=".probe", dir=folder)
    except OSError as error:
        reason = (error.strerror or type(error).__name__).lower()
        raise CLIError(f"cannot write into output folder '{folder}': {reason}") from None
    os.close(handle)
    os.unlink(probe)


def _check_photo_args(args: argparse.Namespace) -> None:
    if args.quality is not None and not 1 <= args.quality <= 100:
        raise CLIError(f"--quality must be in 1..100, not {args.quality}")


def _load_model_once(options) -> None:
    """Load the network before the first file: a bad weight file is a usage error, reported
    once, not as a failure of every input."""
    from napari_cisr.inference import cached_model
    from napari_cisr.weights import WeightsError, resolve_device

    try:
        cached_model(options.model, options.scale, str(resolve_device(options.device)))
    except (WeightsError, ValueError) as error:
        raise CLIError(str(error)) from None


def _cmd_run(args: argparse.Namespace) -> None:
    _check_options(args)  # before any pixel is computed: a refusal after an hour would lose it
    _check_photo_args(args)
    if args.output_dir is None:
        if len(args.inputs) != 2:
            raise CLIError(
                "give one input and one output file, or any number of inputs and "
                "-o/--output-dir FOLDER"
            )
        folder_only = ("--format", "--suffix", "--json")  # the output file names its format
        given = [flag for flag, value in _photo_flags(args) if value and flag in folder_only]
        if given:
            raise CLIError(f"{given[0]} applies to a run into a folder (-o/--output-dir)")
        _run_one(args, Path(args.inputs[0]), Path(args.inputs[1]))
        return
    _run_many(args)


def _run_one(args: argparse.Namespace, source: Path, output: Path) -> None:
    from napari_cisr.io import check_output_path
    from napari_cisr.photo_jobs import PhotoFailed, PhotoJob, process_photo

    check_output_path(output, overwrite=args.overwrite)
    options = _inference_options(args)
    _load_model_once(options)
    job = PhotoJob(source, output, source.name)
    try:
        width, height = process_photo(
            job,
            options,
            overwrite=args.overwrite,
            quality=args.quality,
            apply_orientation=args.apply_orientation,
        )
    except PhotoFailed as error:
        raise WorkFailed(error.sentence(str(source))) from None
    log.info("wrote %s (%d×%d)", output, width, height)


def _run_many(args: argparse.Namespace) -> None:
    from napari_cisr.photo_jobs import plan_jobs, run_photos
    from napari_cisr.progress import photo_progress

    folder = Path(args.output_dir)
    jobs, problems = plan_jobs(
        args.inputs, folder, args.scale, output_format=args.format, suffix=args.suffix
    )
    if not jobs:
        found = "; ".join(f"{name}: {reason}" for name, reason in problems)
        raise CLIError(found or f"no images in {', '.join(args.inputs)} (outside '{folder}')")
    _check_output_dir(folder)
    options = _inference_options(args)
    _load_model_once(options)
    progress = photo_progress(sys.stderr, len(jobs), quiet=args.quiet)
    try:
        summary = run_photos(
            jobs,
            options,
            overwrite=args.overwrite,
            quality=args.quality,
            apply_orientation=args.apply_orientation,
            progress=progress,
        )
    finally:
        progress.close()
    summary.failed[:0] = problems
    _finish_many(args, folder, summary)


def _finish_many(args: argparse.Namespace, folder: Path, summary) -> None:
    """The summary line, the failures (one line each), the ``--json`` report, the status."""
    if args.json:
        from napari_cisr.io import write_json

        write_json(args.json, summary.to_dict())
    for name, reason in summary.failed:
        log.error("failed: %s: %s", name, reason)
    if not summary.ok:
        raise WorkFailed(f"{folder}: {summary.line()}")
    log.info("%s: %s", folder, summary.line())


def _photo_output_args(p: argparse.ArgumentParser) -> None:
    """Options of runs that write images into a folder (``run -o``, ``batch`` to a folder)."""
    from napari_cisr.photo_jobs import OUTPUT_FORMATS

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


def _add_run(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run",
        help="super-resolve image files: INPUT OUTPUT, or INPUT... -o FOLDER",
        description=(
            "Super-resolve one file (napari-cisr run photo.jpg big.png) or many: files, "
            "folders (searched recursively, sub-folders mirrored) and globs into a folder "
            "(napari-cisr run photos/ -o big/), named <stem>_x<scale>.<ext>. Existing outputs "
            "are skipped, so a rerun resumes; a file that fails is reported in one line and "
            "the rest go on. Orientation, ICC profile and EXIF/XMP are carried to each output."
        ),
    )
    p.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help=f"{', '.join(sorted(_image_suffixes()))} files, folders or globs "
        "(without -o: one input, then the output file)",
    )
    p.add_argument("-o", "--output-dir", help="folder for the outputs (created if missing)")
    _common_model_args(p)
    p.add_argument(
        "--tile",
        type=int,
        help="tile side in LR pixels (default: automatic; 0: whole image in one pass)",
    )
    _photo_output_args(p)
    p.add_argument("--overwrite", action="store_true", help="replace outputs that exist")
    p.set_defaults(func=_cmd_run)


def _image_suffixes() -> tuple[str, ...]:
    from napari_cisr.io import IMAGE_SUFFIXES

    return tuple(IMAGE_SUFFIXES)


def _cmd_demo(args: argparse.Namespace) -> None:
    _check_options(args)
    from importlib import resources

    import numpy as np

    from napari_cisr.degrade import bicubic_upscale
    from napari_cisr.inference import run_to_completion, super_resolve_steps
    from napari_cisr.io import read_image, write_image
    from napari_cisr.metrics import psnr_y

    data = resources.files("napari_cisr") / "data"
    truth = read_image(str(data / "sample_hr.png"))
    compressed = read_image(str(data / "sample_x2_q15.jpg"))
    result = run_to_completion(
        super_resolve_steps(
            compressed,
            2,
            args.model,
            args.iterations,
            None,
            args.device,
            True,
            args.precision,
            args.self_ensemble,
        )
    )
    folder = Path(args.output)
    folder.mkdir(parents=True, exist_ok=True)
    bicubic = bicubic_upscale(compressed, 2)
    outputs = {"input_x2_q15.png": compressed, "bicubic.png": bicubic, "cisr.png": result.image}
    for j, (y_hat, x_hat) in enumerate(zip(result.y_hats, result.x_hats, strict=True), start=1):
        outputs[f"y_hat_{j}.png"] = y_hat
        outputs[f"x_hat_{j}.png"] = x_hat
    outputs["blocking_map.png"] = np.round(result.blocking * 255).astype(np.uint8)
    for name, image in outputs.items():
        write_image(folder / name, image, overwrite=True)
    bicubic_psnr = psnr_y(bicubic, truth, shave=2)
    cisr_psnr = psnr_y(result.image, truth, shave=2)
    print(
        f"napari-cisr demo (JPEG q15, x2, model {args.model}): wrote {len(outputs)} images to "
        f"{folder}/\n  Y-PSNR bicubic {bicubic_psnr:.2f} dB, CISR-PSI {cisr_psnr:.2f} dB "
        f"({cisr_psnr - bicubic_psnr:+.2f} dB)"
    )


def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="super-resolve the embedded JPEG q15 sample photo (x2)")
    p.add_argument("--output", default="cisr-demo", help="folder for the images")
    p.add_argument("--model", default="lite", help=_model_help())
    p.add_argument("--iterations", type=int, help="unfolding iterations J")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    _precision_arg(p)
    _self_ensemble_arg(p)
    p.set_defaults(func=_cmd_demo)


def _cmd_eval(args: argparse.Namespace) -> None:
    _check_options(args)
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
    )
    print(format_table(report))
    if args.json:
        write_json(args.json, report)


def _add_eval(sub: argparse._SubParsersAction) -> None:
    from napari_cisr.degrade import DEGRADATIONS

    p = sub.add_parser("eval", help="PSNR/SSIM on Y against bicubic (the paper's protocol)")
    p.add_argument("sources", nargs="+", help="folders or files of clean HR photos")
    _common_model_args(p)
    p.add_argument("--configs", nargs="+", help="e.g. jpeg-q10 webp-q5 (default: the ten)")
    p.add_argument("--unseen", action="store_true", help="add JPEG q15/25/35/45/55 (Fig. 9)")
    p.add_argument("--downscale", type=int, default=3, help="ground truth = photo ÷ this")
    p.add_argument(
        "--degradation",
        default="paper",
        choices=DEGRADATIONS,
        help="how the LR input is made: the paper's (antialiased bicubic, 4:2:0 JPEG), another "
        "kernel, 4:4:4 chroma, double compression, or 'realistic' (a mixture of those)",
    )
    p.add_argument("--json", help="also save the report as JSON")
    p.set_defaults(func=_cmd_eval)


def _cmd_batch(args: argparse.Namespace) -> None:
    _check_options(args)
    _check_photo_args(args)
    from napari_cisr.batch import writes_images

    if writes_images(args.output):
        _batch_to_images(args)
        return
    given = [flag for flag, value in _photo_flags(args) if value]
    if given:
        raise CLIError(f"{given[0]} applies to a folder of images, not to a zarr store")
    _batch_to_zarr(args)


def _photo_flags(args: argparse.Namespace) -> list[tuple[str, object]]:
    return [
        ("--format", args.format),
        ("--suffix", args.suffix),
        ("--quality", args.quality),
        ("--apply-orientation", args.apply_orientation),
        ("--json", args.json),
    ]


def _batch_to_images(args: argparse.Namespace) -> None:
    import distributed  # noqa: F401  (sets its loggers up on import; quieten them after)

    from napari_cisr.batch import BatchError, run_photo_batch
    from napari_cisr.photo_jobs import plan_jobs
    from napari_cisr.progress import LogLines

    source, folder = Path(args.input), Path(args.output)
    if not source.is_dir():
        raise CLIError(
            f"input '{source}' is not a folder of images; a zarr input needs a .zarr output"
        )
    _check_output_dir(folder)
    jobs, _ = plan_jobs([source], folder, args.scale, output_format=args.format, suffix=args.suffix)
    if not jobs:
        raise CLIError(f"no images in folder '{source}'")
    logging.getLogger("distributed").setLevel(logging.WARNING)  # the cluster's chatter
    try:
        summary = run_photo_batch(
            jobs,
            _inference_options(args),
            workers=args.workers,
            scheduler=args.scheduler,
            overwrite=args.overwrite,
            quality=args.quality,
            apply_orientation=args.apply_orientation,
            progress=LogLines(quiet=args.quiet),
        )
    except BatchError as error:
        raise CLIError(str(error)) from None
    _finish_many(args, folder, summary)


def _batch_to_zarr(args: argparse.Namespace) -> None:
    import distributed  # noqa: F401  (sets its loggers up on import; quieten them after)

    from napari_cisr.batch import BatchError, run_batch
    from napari_cisr.progress import BlockProgress

    logging.getLogger("distributed").setLevel(logging.WARNING)  # the cluster's chatter
    bar = None if args.quiet else BlockProgress(sys.stderr)
    options = _inference_options(args)  # the settings as every other command reads them
    try:
        report = run_batch(
            args.input,
            args.output,
            options.scale,
            options.model,
            options.tile,
            args.workers,
            args.scheduler,
            args.overwrite,
            options.device,
            on_progress=bar,
            precision=options.precision,
            self_ensemble=options.self_ensemble,
            iterations=options.iterations,
        )
    except BatchError as error:
        raise CLIError(str(error)) from None
    finally:
        if bar is not None:
            bar.close()
    log.info(
        "%s: %d item(s) done (%d blocks computed, %d found done)",
        report.output,
        len(report.completed),
        report.computed,
        report.skipped,
    )
    if report.failed:
        for name, reason in report.failed:
            log.error("failed: %s: %s", name, reason)
        raise WorkFailed(
            f"{len(report.failed)} item(s) failed: {', '.join(n for n, _ in report.failed)}"
        )


def _add_batch(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "batch",
        help="super-resolve a folder, zarr array or OME-Zarr into a zarr store or a folder (dask)",
        description=(
            "On a dask cluster: a folder of images, a zarr array or an OME-Zarr image into a "
            "zarr store (OUTPUT ending in .zarr), or a folder of images into a folder of images "
            "(any other OUTPUT; named and resumed as napari-cisr run -o). An interrupted run "
            "is resumed."
        ),
    )
    p.add_argument("input", help="folder of images, zarr array or OME-Zarr image (read only)")
    p.add_argument("output", help="zarr store (NAME.zarr) or folder of images to write")
    p.add_argument("--scale", type=int, choices=(2, 3, 4), default=2, help="upscaling factor (2)")
    p.add_argument("--model", default="lite", help=_model_help())
    p.add_argument("--tile", type=int, help="tile side in LR pixels (default: from memory)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, help="workers of the local dask cluster (1)")
    where.add_argument("--scheduler", help="address of a running dask scheduler")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto (on the workers)")
    _precision_arg(p)
    _self_ensemble_arg(p)
    _photo_output_args(p)
    p.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
    p.set_defaults(func=_cmd_batch)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="napari-cisr", description="Super-resolve compressed images with CISR-PSI."
    )
    from napari_cisr import __version__

    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in _SUBCOMMANDS:
        add(sub)
    for subparser in sub.choices.values():
        # -v after the subcommand too; SUPPRESS keeps a -v given before it
        subparser.add_argument(
            "-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="debug logging"
        )
    return parser


_SUBCOMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [
    _add_run,
    _add_demo,
    _add_eval,
    _add_train,
    _add_batch,
]


#: Positionals that take any number of paths, which may also come after options
#: (``run in.jpg --scale 4 out.png``): argparse alone stops such a list at the first option.
_PATH_LISTS = ("inputs", "sources")


def _parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    args, extras = parser.parse_known_args(argv)
    paths = next(
        (name for name in _PATH_LISTS if isinstance(getattr(args, name, None), list)), None
    )
    if extras and (paths is None or any(extra.startswith("-") for extra in extras)):
        parser.error(f"unrecognized arguments: {' '.join(extras)}")
    if extras:
        getattr(args, paths).extend(extras)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``napari-cisr`` script; returns the exit status."""
    parser = build_parser()
    args = _parse(parser, argv)
    quiet = getattr(args, "quiet", False)  # -q: failures only, so no info lines either
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING if quiet else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s" if args.verbose else "%(message)s",
    )
    try:
        args.func(args)
    except CLIError as error:
        print(f"napari-cisr: {error}", file=sys.stderr)
        return 2
    except WorkFailed as error:
        print(f"napari-cisr: {error}", file=sys.stderr)
        return 1
    except _expected_errors() as error:
        print(f"napari-cisr: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("napari-cisr: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())

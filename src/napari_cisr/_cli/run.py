"""``napari-cisr run`` (one file, or many into a folder) and ``napari-cisr demo``."""

from __future__ import annotations

import argparse
import sys
from contextlib import closing
from dataclasses import replace
from pathlib import Path

from napari_cisr._cli.common import (
    CLIError,
    WorkFailed,
    check_options,
    check_output_dir,
    check_photo_args,
    common_model_args,
    finish_many,
    inference_options,
    load_model_once,
    log,
    model_help,
    photo_flags,
    photo_output_args,
    photo_writing,
    precision_arg,
    self_ensemble_arg,
)


def _cmd_run(args: argparse.Namespace) -> None:
    check_options(args)  # before any pixel is computed: a refusal after an hour would lose it
    check_photo_args(args)
    if args.output_dir is None:
        if len(args.inputs) != 2:
            raise CLIError(
                "give one input and one output file, or any number of inputs and "
                "-o/--output-dir FOLDER"
            )
        folder_only = ("--format", "--suffix", "--json")  # the output file names its format
        given = [flag for flag, value in photo_flags(args) if value and flag in folder_only]
        if given:
            raise CLIError(f"{given[0]} applies to a run into a folder (-o/--output-dir)")
        _run_one(args, Path(args.inputs[0]), Path(args.inputs[1]))
        return
    _run_many(args)


def _run_one(args: argparse.Namespace, source: Path, output: Path) -> None:
    from napari_cisr.io import check_output_path
    from napari_cisr.photo_jobs import PhotoFailed, PhotoJob, process_photo

    check_output_path(output, overwrite=args.overwrite)
    options = inference_options(args)
    load_model_once(options)
    job = PhotoJob(source, output, source.name)
    try:
        width, height = process_photo(job, options, **photo_writing(args))
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
    check_output_dir(folder)
    options = inference_options(args)
    load_model_once(options)
    with closing(photo_progress(sys.stderr, len(jobs), quiet=args.quiet)) as progress:
        summary = run_photos(jobs, options, progress=progress, **photo_writing(args))
    summary.failed[:0] = problems
    finish_many(args, folder, summary)


#: ``napari-cisr run --help``
_DESCRIPTION = """\
Super-resolve one file (napari-cisr run photo.jpg big.png) or many: files, folders (searched
recursively, sub-folders mirrored) and globs into a folder (napari-cisr run photos/ -o big/),
named <stem>_x<scale>.<ext>. Existing outputs are skipped, so a rerun resumes; a file that fails
is reported in one line and the rest go on. Orientation, ICC profile and EXIF/XMP are carried to
each output.
"""


def add_run(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run",
        help="super-resolve image files: INPUT OUTPUT, or INPUT... -o FOLDER",
        description=_DESCRIPTION,
    )
    p.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help=f"{', '.join(sorted(_image_suffixes()))} files, folders or globs "
        "(without -o: one input, then the output file)",
    )
    p.add_argument("-o", "--output-dir", help="folder for the outputs (created if missing)")
    common_model_args(p)
    p.add_argument(
        "--tile",
        type=int,
        help="tile side in LR pixels (default: automatic; 0: whole image in one pass)",
    )
    p.add_argument(
        "--compile",
        action="store_true",
        help="run the network through torch.compile (experimental: on a 2-core CPU a 12-MP "
        "photo took 1.5x longer than without, even with the compiled graphs cached; "
        "docs/benchmarks.md)",
    )
    photo_output_args(p)
    p.add_argument("--overwrite", action="store_true", help="replace outputs that exist")
    p.set_defaults(func=_cmd_run)


def _image_suffixes() -> tuple[str, ...]:
    from napari_cisr.io import IMAGE_SUFFIXES

    return tuple(IMAGE_SUFFIXES)


def _cmd_demo(args: argparse.Namespace) -> None:
    check_options(args)
    from importlib import resources

    import numpy as np

    from napari_cisr.degrade import bicubic_upscale
    from napari_cisr.inference import run_to_completion, steps_for
    from napari_cisr.io import read_image, write_image
    from napari_cisr.metrics import psnr_y

    data = resources.files("napari_cisr") / "data"
    truth = read_image(str(data / "sample_hr.png"))
    compressed = read_image(str(data / "sample_x2_q15.jpg"))
    options = replace(inference_options(args), scale=2, tile=None, intermediates=True)
    result = run_to_completion(steps_for(compressed, options))
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


def add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="super-resolve the embedded JPEG q15 sample photo (x2)")
    p.add_argument("--output", default="cisr-demo", help="folder for the images")
    p.add_argument("--model", default="lite", help=model_help())
    p.add_argument("--iterations", type=int, help="unfolding iterations J")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    precision_arg(p)
    self_ensemble_arg(p)
    p.set_defaults(func=_cmd_demo)

"""``napari-cisr batch``: a folder, zarr array or OME-Zarr on a dask cluster, into a zarr store
or a folder of images."""

from __future__ import annotations

import argparse
import logging
import sys
from contextlib import closing, nullcontext
from pathlib import Path

from napari_cisr._cli import common
from napari_cisr._cli.common import CLIError, log


def _cmd_batch(args: argparse.Namespace) -> None:
    common.check_options(args)
    common.check_photo_args(args)
    from napari_cisr.batch import writes_images

    if writes_images(args.output):
        _batch_to_images(args)
        return
    given = [flag for flag, value in common.photo_flags(args) if value]
    if given:
        raise CLIError(f"{given[0]} applies to a folder of images, not to a zarr store")
    _batch_to_zarr(args)


def _batch_to_images(args: argparse.Namespace) -> None:
    import distributed  # noqa: F401  (sets its loggers up on import; quieten them after)

    from napari_cisr.batch import run_photo_batch
    from napari_cisr.photo_jobs import plan_jobs
    from napari_cisr.progress import photo_progress

    source, folder = Path(args.input), Path(args.output)
    if not source.is_dir():
        raise CLIError(
            f"input '{source}' is not a folder of images; a zarr input needs a .zarr output"
        )
    common.check_output_dir(folder)
    jobs, _ = plan_jobs([source], folder, args.scale, output_format=args.format, suffix=args.suffix)
    if not jobs:
        raise CLIError(f"no images in folder '{source}'")
    logging.getLogger("distributed").setLevel(logging.WARNING)  # the cluster's chatter
    # as napari-cisr run: bars for images and tiles on a terminal, a line per image elsewhere
    options = common.inference_options(args)
    with closing(photo_progress(sys.stderr, len(jobs), quiet=args.quiet)) as progress:
        summary = run_photo_batch(
            jobs,
            options,
            workers=args.workers,
            scheduler=args.scheduler,
            progress=progress,
            **common.photo_writing(args),
        )
    common.finish_many(args, folder, summary)


def _batch_to_zarr(args: argparse.Namespace) -> None:
    import distributed  # noqa: F401  (sets its loggers up on import; quieten them after)

    from napari_cisr.batch import run_batch
    from napari_cisr.progress import BlockProgress

    logging.getLogger("distributed").setLevel(logging.WARNING)  # the cluster's chatter
    options = common.inference_options(args)  # the settings as every other command reads them
    bar = None if args.quiet else BlockProgress(sys.stderr)
    with closing(bar) if bar is not None else nullcontext():
        report = run_batch(
            args.input,
            args.output,
            scale=options.scale,
            model=options.model,
            tile=options.tile,
            workers=args.workers,
            scheduler=args.scheduler,
            overwrite=args.overwrite,
            device=options.device,
            on_progress=bar,
            precision=options.precision,
            self_ensemble=options.self_ensemble,
            iterations=options.iterations,
        )
    retried = f"; retried: {', '.join(report.retried)}" if report.retried else ""
    log.info(
        "%s: %d item(s) done (%d blocks computed, %d found done%s)",
        report.output,
        len(report.completed),
        report.computed,
        report.skipped,
        retried,
    )
    if report.failed:
        for name, reason in report.failed:
            log.error("failed: %s: %s", name, reason)
        raise common.WorkFailed(
            f"{len(report.failed)} item(s) failed: {', '.join(n for n, _ in report.failed)}"
        )


#: ``napari-cisr batch --help``
_DESCRIPTION = """\
On a dask cluster: a folder of images, a zarr array or an OME-Zarr image into a zarr store
(OUTPUT ending in .zarr), or a folder of images into a folder of images (any other OUTPUT; named
and resumed as napari-cisr run -o). An interrupted run is resumed.
"""


def add_batch(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "batch",
        help="super-resolve a folder, zarr array or OME-Zarr into a zarr store or a folder (dask)",
        description=_DESCRIPTION,
    )
    p.add_argument("input", help="folder of images, zarr array or OME-Zarr image (read only)")
    p.add_argument("output", help="zarr store (NAME.zarr) or folder of images to write")
    # the workers' device: cpu unless asked, as a cluster's workers need not share a GPU
    common.common_model_args(
        p, device_default="cpu", device_help="cpu, cuda or auto (on the workers)"
    )
    p.add_argument("--tile", type=int, help="tile side in LR pixels (default: from memory)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, help="workers of the local dask cluster (1)")
    where.add_argument("--scheduler", help="address of a running dask scheduler")
    common.photo_output_args(p)
    p.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
    p.set_defaults(func=_cmd_batch)

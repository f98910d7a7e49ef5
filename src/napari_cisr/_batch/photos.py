"""A folder of images into a folder of images on a dask cluster (issue 23): one task per photo.

The plan and the rule for what is done are those of ``napari-cisr run -o``
(:mod:`napari_cisr.photo_jobs`); this module only spreads the photos over the cluster.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from napari_cisr._batch.cluster import Cluster
from napari_cisr._batch.store import is_zarr

__all__ = ["run_photo_batch", "writes_images"]


def writes_images(output: str | os.PathLike) -> bool:
    """True when OUTPUT is a folder of images rather than a zarr store: its name does not end
    in ``.zarr`` and it is not an existing zarr store."""
    path = Path(output)
    return path.suffix.lower() != ".zarr" and not is_zarr(path)


def _photo_task(
    job: Any, options: Any, overwrite: bool, quality: int | None, apply_orientation: bool
) -> tuple[str, str]:
    """One photo on a worker: (outcome, detail); failures are returned, not raised, so that
    nothing but two strings crosses back to the client."""
    from napari_cisr.photo_jobs import PhotoFailed, process_photo

    started = time.perf_counter()
    try:
        width, height = process_photo(
            job, options, overwrite=overwrite, quality=quality, apply_orientation=apply_orientation
        )
    except PhotoFailed as error:
        return "failed", f"cannot {error.verb}: {error}"
    except FileExistsError:
        return "skipped", "written meanwhile by another run"
    return "done", f"{width}×{height} in {time.perf_counter() - started:.1f} s"


def run_photo_batch(
    jobs: Iterable[Any],
    options: Any,
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    overwrite: bool = False,
    quality: int | None = None,
    apply_orientation: bool = False,
    threads: int | None = None,
    connect_timeout: float = 10.0,
    progress: Any = None,
) -> Any:
    """Process photos into a folder of images on a dask cluster, one task per photo.

    The plan and the rule for what is done are those of ``napari-cisr run -o``
    (:func:`napari_cisr.photo_jobs.plan_jobs`, an existing output is done): a rerun skips what
    exists and retries what failed. Each worker holds one photo at a time.

    Parameters
    ----------
    jobs : iterable of napari_cisr.photo_jobs.PhotoJob
        From :func:`~napari_cisr.photo_jobs.plan_jobs`; paths every worker can reach.
    options : napari_cisr.options.InferenceOptions
        How to super-resolve (``device`` applies on the workers).
    workers, scheduler, threads, connect_timeout
        As in :func:`run_batch`.
    overwrite, quality, apply_orientation
        As in :func:`napari_cisr.photo_jobs.process_photo`.
    progress : napari_cisr.photo_jobs.PhotoProgress, optional
        Told about each photo as it finishes.

    Returns
    -------
    napari_cisr.photo_jobs.RunSummary
    """
    from distributed import as_completed

    from napari_cisr.photo_jobs import RunSummary, split_done

    todo, done = split_done(jobs, overwrite)
    summary = RunSummary.with_skipped(done)
    if not todo:
        return summary
    for job in todo:  # folders first, in the client: workers on one file system share them
        job.output.parent.mkdir(parents=True, exist_ok=True)
    with Cluster(workers, scheduler, threads, connect_timeout) as cluster:
        futures = {
            cluster.client.submit(
                _photo_task, job, options, overwrite, quality, apply_orientation, pure=False
            ): job
            for job in todo
        }
        for index, future in enumerate(as_completed(futures), start=1):
            job = futures[future]
            outcome, detail = future.result()
            if outcome == "failed":
                summary.failed.append((job.name, detail))
            else:
                (summary.done if outcome == "done" else summary.skipped).append(job.name)
                summary.outputs[job.name] = os.fspath(job.output)
            if progress is not None:
                progress.start(job, index, len(todo))
                progress.finish(job, outcome, detail)
    return summary

"""A folder of images into a folder of images on a dask cluster (issue 23): one task per photo.

The plan and the rule for what is done are those of ``napari-cisr run -o``
(:mod:`napari_cisr.photo_jobs`); this module only spreads the photos over the cluster.
"""

from __future__ import annotations

import os
import queue
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from napari_cisr._batch.cluster import Cluster
from napari_cisr._batch.store import is_zarr, remove_stale_temporaries

__all__ = ["run_photo_batch", "writes_images"]


def writes_images(output: str | os.PathLike) -> bool:
    """True when OUTPUT is a folder of images rather than a zarr store: its name does not end
    in ``.zarr`` and it is not an existing zarr store."""
    path = Path(output)
    return path.suffix.lower() != ".zarr" and not is_zarr(path)


#: dask event topic on which photo tasks report their progress (work units done) to the client.
STEP_TOPIC = "napari-cisr-photo-steps"
#: Seconds between two progress reports of one photo task (and its last one): enough for a bar
#: that moves, few enough messages through the scheduler whatever the tile count.
STEP_INTERVAL = 0.25


def _step_reporter(name: str) -> Any:
    """``on_step`` of :func:`~napari_cisr.photo_jobs.process_photo` on a dask worker: sends
    (done, total) work units to the client as a worker event, at most every STEP_INTERVAL."""
    from distributed import get_worker

    worker = get_worker()
    last = -STEP_INTERVAL

    def on_step(done: int, total: int) -> None:
        nonlocal last
        now = time.monotonic()
        if done < total and now - last < STEP_INTERVAL:
            return
        last = now
        worker.log_event(STEP_TOPIC, {"name": name, "done": done, "total": total})

    return on_step


def _photo_task(
    job: Any,
    options: Any,
    overwrite: bool,
    quality: int | None,
    apply_orientation: bool,
    report_steps: bool = False,
) -> tuple[str, str]:
    """One photo on a worker: (outcome, detail); failures are returned, not raised, so that
    nothing but two strings crosses back to the client. ``report_steps`` sends the network's
    progress within the photo as worker events (:data:`STEP_TOPIC`)."""
    from napari_cisr.photo_jobs import PhotoFailed, process_photo

    started = time.perf_counter()
    on_step = _step_reporter(job.name) if report_steps else None
    try:
        width, height = process_photo(
            job, options, overwrite=overwrite, quality=quality,
            apply_orientation=apply_orientation, on_step=on_step,
        )  # fmt: skip
    except PhotoFailed as error:
        return "failed", f"cannot {error.verb}: {error}"
    except FileExistsError:
        return "skipped", "written meanwhile by another run"
    return "done", f"{width}×{height} in {time.perf_counter() - started:.1f} s"


class _Steps:
    """The work units of the photos in flight, summed for ``progress.step``: with several
    workers, several photos are computed at once and their reports interleave."""

    def __init__(self) -> None:
        self.in_flight: dict[str, tuple[int, int]] = {}
        self.finished: set[str] = set()

    def report(self, message: dict[str, Any]) -> tuple[int, int] | None:
        """(done, total) of the photos in flight after a worker's report, or None to ignore it
        (a report that arrived after its photo's result)."""
        name = message["name"]
        if name in self.finished:
            return None
        self.in_flight[name] = (int(message["done"]), int(message["total"]))
        done, total = (sum(v) for v in zip(*self.in_flight.values(), strict=True))
        return done, total

    def finish(self, name: str) -> None:
        self.finished.add(name)
        self.in_flight.pop(name, None)


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
        Told about each photo as it finishes, and (``step``) about the work units (tiles ×
        iterations) done of the photos being computed, summed over the workers, unless its
        ``wants_steps`` attribute is False (then the workers do not report them).

    Returns
    -------
    napari_cisr.photo_jobs.RunSummary
    """
    from napari_cisr.photo_jobs import RunSummary, split_done

    todo, done = split_done(jobs, overwrite)
    summary = RunSummary.with_skipped(done)
    if not todo:
        return summary
    for job in todo:  # folders first, in the client: workers on one file system share them
        job.output.parent.mkdir(parents=True, exist_ok=True)
    # Results and the workers' progress reports arrive on dask's threads; they are queued and
    # handled here, in one thread, so that the progress object is only ever called from it
    # (and dask's event loop never waits for it).
    arrived: queue.SimpleQueue = queue.SimpleQueue()
    report_steps = progress is not None and getattr(progress, "wants_steps", True)
    steps = _Steps()
    with Cluster(workers, scheduler, threads, connect_timeout) as cluster:
        client = cluster.client
        if report_steps:
            client.subscribe_topic(STEP_TOPIC, lambda event: arrived.put((None, event[1])))
        futures = {}
        for job in todo:
            future = client.submit(
                _photo_task, job, options, overwrite, quality, apply_orientation, report_steps,
                pure=False,
            )  # fmt: skip
            futures[future] = job
            future.add_done_callback(lambda f: arrived.put((f, None)))
        index = 0
        while index < len(futures):
            future, message = arrived.get()
            if future is None:
                units = steps.report(message)
                if units is not None and progress is not None:
                    progress.step(*units)
                continue
            index += 1
            job = futures[future]
            outcome, detail = future.result()
            steps.finish(job.name)
            if outcome == "failed":
                summary.failed.append((job.name, detail))
            else:
                (summary.done if outcome == "done" else summary.skipped).append(job.name)
                summary.outputs[job.name] = os.fspath(job.output)
            if progress is not None:
                progress.start(job, index, len(todo))
                progress.finish(job, outcome, detail)
        if report_steps:
            client.unsubscribe_topic(STEP_TOPIC)
    # A worker killed while writing left its temporary beside the output; every task has
    # finished by now, written or failed, so no temporary of these photos is still being written.
    for job in todo:
        remove_stale_temporaries(job.output)
    return summary

"""Batch super-resolution of image stores on dask.distributed: resumable, atomic, safe.

INPUT is a folder of images, a zarr array or an OME-Zarr image; OUTPUT is a zarr store, or
for a folder of images a folder of images (:func:`run_photo_batch`, one task per photo, the
plan of ``napari-cisr run -o``). Into a zarr store:

* folder → a zarr group with one array per image, named after the file (its stem; the full
  file name when two files share a stem);
* zarr array → a zarr array (same zarr format, axes and chunking scheme);
* OME-Zarr → OME-Zarr (same NGFF version), level 0 super-resolved, a pyramid of 2× mean
  downsamplings with as many levels as the input, pixel sizes divided by the scale (and
  translations moved so that pixel centres stay where they were).

Layouts follow the rest of the package: the last two axes are (y, x), or (y, x, c) when the
last axis has 3 or 4 entries (RGB/RGBA); every other axis is a stack, processed plane by plane.
OME-Zarr axes come from the metadata: a channel axis of 3 or 4 channels is taken as RGB(A),
any other channel count as independent grayscale channels.

How a batch stays safe and resumable:

1. OUTPUT is created complete-but-empty in a temporary folder beside it and renamed into
   place, with ``attrs["napari_cisr"] = {"complete": false, "job": {...}}``: it exists either
   fully laid out or not at all.
2. Each output block (a tile of the tiled network, s× larger) is written by one task, which
   then creates an empty marker file ``OUTPUT/.napari-cisr-batch/<array>/<block>``; zarr writes
   every chunk atomically and blocks never share a chunk, so a block is done exactly when its
   marker exists. A killed run leaves at most some unmarked blocks, recomputed on rerun, and
   the temporary files of the chunk writes it was killed in, removed on rerun.
3. A rerun whose job (input, scale, model, tile, device kind, precision, shapes) matches the
   stored one continues: marked blocks are skipped. Settings left free (the automatic tile,
   ``device="auto"``, ``precision="auto"``) are resolved once, recorded in the job and reused
   by every rerun, whatever its machine's memory, device or CPU. Computation is deterministic
   (threads pinned), so the final store is byte-identical to an uninterrupted run. Items that
   failed are retried by a rerun (and only they): a file that could not be read and has been
   repaired since is added to the store, one that has been removed is dropped from the job.
4. When every block of an array is written its ``complete`` flag becomes true; when all arrays
   are, the root's does and the markers are removed. Readers should trust only
   ``complete: true``.

INPUT is only ever opened read-only. OUTPUT is never replaced unless ``overwrite=True``, and
even then only when it is a zarr store (a non-zarr folder is never deleted).
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import logging
import math
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from napari_cisr._batch.cluster import Cluster, ClusterSettings
from napari_cisr._batch.job import (
    check_job_arguments,
    job_record,
    pin_settings,
    replace_or_resume,
    stored_job,
)
from napari_cisr._batch.photos import run_photo_batch, writes_images
from napari_cisr._batch.report import BatchError, BatchProgress, BatchReport
from napari_cisr._batch.schedule import array_blocks, downsample, planes, run_tasks
from napari_cisr._batch.sources import Item, folder_items, zarr_items
from napari_cisr._batch.store import (
    ATTR,
    MARKERS,
    add_items,
    array_complete,
    check_paths,
    create_store,
    is_zarr,
    level_chunks,
    marker_dir,
    ome_output,
    remove_stale_temporaries,
    set_complete,
    written,
)
from napari_cisr.options import InferenceOptions

log = logging.getLogger(__name__)

__all__ = [
    "ATTR",
    "MARKERS",
    "BatchError",
    "BatchProgress",
    "BatchReport",
    "ClusterSettings",
    "run_batch",
    "run_photo_batch",
    "writes_images",
]

#: Default memory budget of one tile's network activations, for the automatic tile size (on
#: the CPU the speed cap, 256-pixel tiles, is the smaller for lite). The process itself (~0.4 GB:
#: torch, dask, the model), tiles held for blending (at most ``ClusterSettings.held_bytes`` in
#: memory) and allocator slack come on top: a 1-worker batch peaks at 0.53 GiB for a 2048² image,
#: 0.66 GiB for 4096² and 0.83 GiB for 8192² (docs/benchmarks.md).
WORKER_BUDGET = 640 * 2**20


def run_batch(
    source: str | os.PathLike,
    output: str | os.PathLike,
    *,
    scale: int = 2,
    model: str | os.PathLike = "lite",
    tile: int | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    overwrite: bool = False,
    device: str = "cpu",
    threads: int | None = None,
    on_progress: Callable[[BatchProgress], None] | None = None,
    connect_timeout: float = 10.0,
    precision: str = "auto",
    self_ensemble: bool = False,
    iterations: int | None = None,
    cluster_settings: ClusterSettings | None = None,
) -> BatchReport:
    """Super-resolve a folder of images, a zarr array or an OME-Zarr image into a zarr store.

    Parameters
    ----------
    source : str or os.PathLike
        INPUT: a folder of images, a zarr array or an OME-Zarr image. Never modified.
    output : str or os.PathLike
        OUTPUT zarr store. An incomplete store left by the same job is resumed.
    scale : int
        2, 3 or 4.
    model : str or os.PathLike
        Model name (``lite``, ``lite.x2``) or weight file (a path every worker can read).
    tile : int, optional
        Core tile side in LR pixels; default from :data:`WORKER_BUDGET` on the workers' device,
        and for a resumed job the tile it started with (the job record pins it).
    workers : int, optional
        Workers of the local cluster (default 1); ignored with ``scheduler``.
    scheduler : str, optional
        Address of an existing dask scheduler, e.g. ``tcp://host:8786``.
    overwrite : bool
        Replace an existing OUTPUT (only if it is a zarr store).
    device : str
        "cpu", "cuda" or "auto", on the workers. The kind of device is part of the job (its
        kernels round differently); "auto" resumes a job on the kind it started on.
    precision : str
        "auto", "float32" or "bfloat16" (as :func:`napari_cisr.super_resolve`), on the workers;
        part of the job as resolved ("auto" is bfloat16 where the workers' device has it
        natively), so a resumed run computes its remaining blocks the same way on any machine.
    self_ensemble : bool
        Average each tile over the eight rotations/flips (8x the time; as
        :func:`napari_cisr.super_resolve`); part of the job, like ``precision``.
    iterations : int, optional
        Unfolding iterations J (default: the model's own); part of the job when given.
    threads : int, optional
        torch threads per local worker; default cores // workers, and for a resumed job the
        count it started with (oneDNN's sums depend on it: a resumed store stays byte-identical
        to an uninterrupted one whatever ``workers`` the rerun asks for). Workers of an
        existing ``scheduler`` keep their own.
    on_progress : callable, optional
        Called with a :class:`BatchProgress` after each block.
    connect_timeout : float
        Seconds to wait for ``scheduler``.
    cluster_settings : ClusterSettings, optional
        Memory and scheduling settings of the local workers (default: ``ClusterSettings()``,
        what docs/benchmarks.md measured; benchmarks pass others).

    Returns
    -------
    BatchReport
        ``report.ok`` is False when some items failed (listed in ``report.failed``).

    Raises
    ------
    BatchError
        Nothing could be done: bad INPUT or OUTPUT, OUTPUT exists, bad model, unreachable
        scheduler. The message is one line.
    """
    source, output = Path(source), Path(output)
    check_paths(source, output, overwrite)
    remove_stale_temporaries(output)
    config, model_ref = check_job_arguments(model, scale, precision)
    if source.is_dir() and not is_zarr(source):
        (items, failed), multiscales, fmt = folder_items(source), None, 3
    elif source.is_dir():
        (items, multiscales, fmt), failed = zarr_items(source), []
    else:
        raise BatchError(f"input '{source}' is not a folder of images or a zarr store")
    if not items:
        raise BatchError(
            f"no readable images in '{source}': "
            + "; ".join(f"{name}: {reason}" for name, reason in failed)
        )
    kind = "group" if multiscales is not None or not is_zarr(source) else "array"
    from napari_cisr.tiling import model_halo, plan_tiles

    halo = model_halo(config)
    stored = None if overwrite else stored_job(output)
    with contextlib.ExitStack() as stack:
        remote = None
        if scheduler is not None:  # connect first: the workers decide what "auto" means
            remote = stack.enter_context(
                Cluster(workers, scheduler, threads, connect_timeout, cluster_settings)
            )
        pinned = pin_settings(
            output, stored, config, tile, device, precision, remote, budget=WORKER_BUDGET
        )
        core = plan_tiles((10**6, 10**6), scale, pinned.tile, halo).tile  # the aligned side
        options = InferenceOptions(
            scale=scale, model=model_ref, iterations=iterations, tile=core,
            device=pinned.device, precision=pinned.precision, self_ensemble=bool(self_ensemble),
        )  # fmt: skip
        job = job_record(source, options, config, halo, items, failed, pinned.device_type)
        if stored is not None and "device" not in stored:
            del job["device"]  # a store from before the key: resumed as before
        if scheduler is None:
            job["torch_threads"] = threads or max(1, (os.cpu_count() or 1) // max(1, workers or 1))
        levels = [_levels(item, scale, core, multiscales) for item in items]

        plan = replace_or_resume(output, job, overwrite, threads, scheduler)
        if plan.replace is None:  # already complete
            return BatchReport(output, [it.name for it in items], failed)
        report = BatchReport(output, failed=list(failed))
        cluster = remote or stack.enter_context(
            Cluster(workers, None, plan.threads, connect_timeout, cluster_settings)
        )
        if plan.replace:
            shutil.rmtree(output)
        if not output.exists():
            ome = ome_output(multiscales, items[0], scale) if multiscales is not None else None
            omero = _omero(source) if multiscales is not None else None
            create_store(output, kind, items, levels, fmt, job, ome, omero)
        elif plan.record is not None:
            new = [k for k, item in enumerate(items) if item.name in plan.added]
            add_items(output, [items[k] for k in new], [levels[k] for k in new], plan.record)
        work = _Work(cluster, output, kind, options, halo)
        failures: dict[str, str] = {}
        run_tasks(cluster.client, *work.level0(items, levels), report, failures, on_progress,
                  "level 0")  # fmt: skip
        if multiscales is not None:
            work.pyramids(items, levels, report, failures, on_progress)
    _finish(output, items, levels, kind, report, failures)
    report.retried = [name for name in report.completed if name in plan.failed_before]
    return report


def _levels(
    item: Item, scale: int, core: int, multiscales: dict[str, Any] | None
) -> list[tuple[str, tuple[int, ...], tuple[int, ...]]]:
    """(path, shape, chunks) of an item's output arrays: level 0 and, for OME-Zarr, the pyramid."""
    shape = item.output_shape(scale)
    levels = [(item.path, shape, level_chunks(item, shape, core * scale))]
    for dataset in (multiscales or {}).get("datasets", [])[1:]:
        smaller = list(levels[-1][1])
        for axis in (item.y_axis, item.x_axis):
            smaller[axis] = max(1, smaller[axis] // 2)
        chunks = level_chunks(item, tuple(smaller), core * scale)
        levels.append((dataset["path"], tuple(smaller), chunks))
    return levels


def _omero(source: Path) -> dict[str, Any] | None:
    """The input's OMERO rendering metadata (NGFF 0.4 or 0.5), carried into the output."""
    from napari_cisr.io import zarr_attrs

    attrs = zarr_attrs(source)
    return attrs.get("omero") or attrs.get("ome", {}).get("omero") or None


class _Work:
    """The block streams of one batch on one cluster: level 0, then each pyramid level."""

    def __init__(
        self,
        cluster: Cluster,
        output: Path,
        kind: str,
        options: InferenceOptions,
        halo: int,
    ) -> None:
        self.cluster, self.output, self.kind, self.options = cluster, output, kind, options
        self.scale, self.core, self.halo = options.scale, options.tile, halo

    def level0(self, items: list[Item], levels: list) -> tuple[Iterator[Any], int, int]:
        """(blocks of every unfinished item's level 0, blocks to compute, blocks found done)."""
        from napari_cisr.tiling import plan_tiles

        streams: list[Iterator[Any]] = []
        total = skipped = 0
        for item, item_levels in zip(items, levels, strict=True):
            if array_complete(self.output, item, self.kind):
                continue
            n_planes = math.prod(item.source.shape[a] for a in item.plane_axes)
            lr_plane = (item.source.shape[item.y_axis], item.source.shape[item.x_axis])
            done = written(self.output, item_levels[0][0])
            total += n_planes * plan_tiles(lr_plane, self.scale, self.core, self.halo).n_tiles
            total -= done
            skipped += done
            streams.append(self._blocks(item, item_levels[0][0], self._network_planes(item)))
        return itertools.chain.from_iterable(streams), total, skipped

    def _network_planes(self, item: Item) -> Iterator[tuple[tuple[int, ...], Any, Any, int, dict]]:
        from napari_cisr.compression import (
            compression_from_grid,
            compression_from_info,
            is_routed,
            route_model,
        )
        from napari_cisr.tiling import build_tiled_dask, lazy_grid

        for lead, plane in planes(item, item.source):
            # Detect each plane's grid once and hold the result while its rows of blocks are
            # submitted one after the other.
            lazy = lazy_grid(plane)
            grid = self.cluster.client.compute(lazy, optimize_graph=False)
            options = self.options
            if is_routed(options.model):  # the file's quality, else the plane's grid, decides
                compression = compression_from_info(item.info)
                if compression is None:
                    compression = compression_from_grid(grid.result())
                routed = route_model(options.model, self.scale, compression)
                options = dataclasses.replace(options, model=routed)
            built = build_tiled_dask(plane, options, halo=self.halo, grid=lazy)
            yield lead, built.result.image, built.tiles, built.plan.reach, {lazy.key: grid}

    def _blocks(self, item: Item, path: str, lazy_planes: Iterator) -> Iterator[Any]:
        trim = self.cluster.settings.malloc_trim
        return array_blocks(item, path, lazy_planes, self.output, self.cluster.band, trim)

    def pyramids(
        self,
        items: list[Item],
        levels: list,
        report: BatchReport,
        failures: dict[str, str],
        on_progress: Callable[[BatchProgress], None] | None,
    ) -> None:
        """Each pyramid level from the level above it (as written, read back lazily)."""
        import dask.array as da

        for item, item_levels in zip(items, levels, strict=True):
            if item.name in failures or array_complete(self.output, item, self.kind):
                continue
            pairs = itertools.pairwise(item_levels)
            for level, ((above, _, _), (path, _, chunks)) in enumerate(pairs, start=1):
                upper = da.from_zarr(os.fspath(self.output), component=above)
                lower = downsample(upper, item).rechunk(chunks)
                lazy_planes = ((lead, plane, None, 0, {}) for lead, plane in planes(item, lower))
                done = written(self.output, path)
                total = math.prod(lower.numblocks) - done  # one block per (y, x) chunk
                blocks = self._blocks(item, path, lazy_planes)
                run_tasks(self.cluster.client, blocks, total, done, report, failures,
                          on_progress, f"pyramid level {level}")  # fmt: skip
                if item.name in failures:
                    break


def _finish(
    output: Path,
    items: list[Item],
    levels: list,
    kind: str,
    report: BatchReport,
    failures: dict[str, str],
) -> None:
    """Flag the finished arrays complete, the root when nothing failed; drop their markers."""
    for item, item_levels in zip(items, levels, strict=True):
        if item.name in failures:
            report.failed.append((item.name, failures[item.name]))
            continue
        if kind == "group":
            for path, _, _ in item_levels:
                set_complete(output, path, True)
                shutil.rmtree(marker_dir(output, path), ignore_errors=True)
        report.completed.append(item.name)
    # Only arrays still being written need markers; a store whose every array is complete
    # keeps none. The root is complete when nothing failed.
    if len(report.completed) == len(items):
        shutil.rmtree(output / MARKERS, ignore_errors=True)
    failed_names = sorted(name for name, _ in report.failed)
    if failed_names:
        set_complete(output, "", False, failed=failed_names)
    else:
        set_complete(output, "", True, failed=None)  # an earlier run's failures are retried

"""The task graphs of a batch, and their submission row by row to the cluster.

Each output plane is a lazy dask array (the tiled network); its graph is materialised once
(:class:`PlaneGraph`) and cut into rows of blocks (:func:`array_blocks`), which :func:`run_tasks`
submits one after the other, holding the network tiles a row shares with the next.

This module is the only importer of ``dask._task_spec`` (a private module of dask, through
the three names below; dask is pinned below its next year's release, and
``tests/test_batch.py`` fails loudly when one of them goes).
"""

from __future__ import annotations

import collections
import itertools
import logging
import os
import time
from collections.abc import Callable, Container, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from dask._task_spec import Task, TaskRef, convert_legacy_graph

from napari_cisr._batch.report import BatchProgress, BatchReport
from napari_cisr._batch.sources import Item
from napari_cisr._batch.store import marker_dir, write_block

log = logging.getLogger(__name__)

__all__ = ["PlaneGraph", "array_blocks", "downsample", "planes", "run_tasks"]


class PlaneGraph:
    """The task graph of one lazy output plane, materialised on first use and then culled per row.

    Submitting a collection makes dask.distributed materialise its whole graph, so submitting
    an image row by row from the plane's collection costs (rows × image area): at 8192² LR
    that was most of the batch's time. The plane's graph is materialised once instead, and
    each submission carries only the tasks its keys need (:meth:`cull`), stopping at keys the
    caller already holds as futures (the plane's detected grid, the tiles of earlier rows).
    """

    def __init__(self, graph: Any, held: dict | None = None) -> None:
        self._collection_graph = graph
        self._tasks: dict | None = None
        self.held = held or {}  # key → future: keys of the plane the caller holds

    @property
    def tasks(self) -> dict:
        if self._tasks is None:
            assert self._collection_graph is not None, "tasks used after release()"
            # As Task objects, whose references to other keys are explicit: in a legacy tuple,
            # a key is only recognised as one when it is in the same graph, and the culled
            # graphs leave out the keys already held.
            self._tasks = convert_legacy_graph(dict(self._collection_graph))
            # The collection's layers cache what they materialised (about 40 % of the tasks'
            # memory): drop the collection, the tasks are all that is needed from now on.
            self._collection_graph = None
        return self._tasks

    def cull(self, keys: list, held: Container) -> dict:
        """The tasks ``keys`` depend on (themselves included), not entering ``held`` keys."""
        tasks = self.tasks
        out: dict = {}
        work = [k for k in keys if k not in held]
        while work:
            key = work.pop()
            if key in out:
                continue
            out[key] = tasks[key]
            work += [d for d in tasks[key].dependencies if d not in out and d not in held]
        return out

    def release(self) -> None:
        """Drop the materialised tasks and held futures (the plane's rows are all submitted).

        The scheduler keeps a held result for as long as submitted tasks still need it.
        """
        self._tasks = None
        self.held = {}


@dataclass
class Block:
    """One output block: where it goes, and the tasks and held tiles its row needs."""

    item: Item
    array_path: str
    key: str  # the block's name among its array's markers
    graph: PlaneGraph | None  # None: already written (its marker exists)
    source: Any = None  # key of the output block in ``graph``
    write: tuple = ()  # the arguments of ``write_block`` after the block
    row: tuple = ()  # (array, plane, band, block row): blocks of a row are submitted together
    hold: list = field(default_factory=list)  # keys of the network tiles the row needs
    held_by_caller: frozenset = frozenset()  # keys of the plane the caller holds as futures

    def write_task(self) -> tuple[str, Any]:
        """(key, task) writing this block: ``write_block(<the block>, *self.write)``."""
        from dask.base import tokenize

        key = f"cisr-write-{tokenize(*self.write)}"
        return key, Task(key, write_block, TaskRef(self.source), *self.write)


def array_blocks(
    item: Item,
    array_path: str,
    lazy_planes: Iterator[tuple[tuple[int, ...], Any, Any, int, dict]],
    output: Path,
    band: int,
    trim: bool = True,
) -> Iterator[Block]:
    """Write tasks for every not-yet-marked block of the lazy output planes of one array.

    ``lazy_planes`` yields (lead index, lazy output plane, its network tiles or None, how many
    tiles on each side an output block blends (:attr:`~napari_cisr.engine.plan.TilePlan.reach`),
    the futures its graph depends on, by key: held until the plane's rows are all submitted).
    Keys are those of the unoptimised graphs, so that they stay the same across the
    row-by-row submissions. Blocks come in vertical bands
    of ``band`` block columns, row by row within a band: a row of blocks (what is submitted
    at once) and the tiles it needs stay the same size however wide the image. ``trim`` is
    :func:`~napari_cisr._batch.store.write_block`'s.
    """
    markers = marker_dir(output, array_path)
    markers.mkdir(parents=True, exist_ok=True)
    channel_first = item.rgb_axis is not None and item.rgb_axis < item.y_axis
    ndim = item.source.ndim
    for lead, plane, tiles, reach, futures in lazy_planes:
        row_edges = np.cumsum((0, *plane.chunks[0])).tolist()
        col_edges = np.cumsum((0, *plane.chunks[1])).tolist()
        n_rows, n_cols = len(row_edges) - 1, len(col_edges) - 1
        graph = PlaneGraph(plane.__dask_graph__(), futures)
        held = frozenset(futures)
        rest = (0,) * (plane.ndim - 2)
        for k0 in range(0, n_cols, band):
            k1 = min(k0 + band, n_cols)
            for i in range(n_rows):
                hold = []
                if tiles is not None:  # block (i, k) blends tiles (i ± reach, k ± reach)
                    columns = range(max(0, k0 - reach), min(n_cols, k1 + reach))
                    for r in range(max(0, i - reach), min(n_rows, i + reach + 1)):
                        hold += [(tiles.name, r, c, 0) for c in columns]
                row = (array_path, lead, k0, i)
                for k in range(k0, k1):
                    key = "_".join(map(str, (*lead, i, k)))
                    marker = markers / key
                    if marker.exists():
                        yield Block(
                            item, array_path, key, None, row=row, hold=hold, held_by_caller=held
                        )
                        continue
                    region: list[Any] = [slice(None)] * ndim
                    for axis, index in zip(item.plane_axes, lead, strict=True):
                        region[axis] = index
                    region[item.y_axis] = slice(row_edges[i], row_edges[i + 1])
                    region[item.x_axis] = slice(col_edges[k], col_edges[k + 1])
                    write = (
                        os.fspath(output),
                        array_path,
                        tuple(region),
                        channel_first,
                        os.fspath(marker),
                        trim,
                    )
                    source = (plane.name, i, k, *rest)
                    yield Block(item, array_path, key, graph, source, write, row, hold, held)


def planes(item: Item, array: Any) -> Iterator[tuple[tuple[int, ...], Any]]:
    """(lead index, H×W[×C] plane) of an array in the item's storage layout."""
    channel_first = item.rgb_axis is not None and item.rgb_axis < item.y_axis
    ranges = [range(array.shape[a]) for a in item.plane_axes]
    for lead in itertools.product(*ranges):
        index: list[Any] = [slice(None)] * array.ndim
        for axis, value in zip(item.plane_axes, lead, strict=True):
            index[axis] = value
        plane = array[tuple(index)]
        if channel_first:
            plane = plane.transpose(1, 2, 0)
        yield lead, _culled(plane)


def _culled(array: Any) -> Any:
    """``array`` with its graph culled to the tasks it needs.

    A plane sliced from a stack carries the tasks of every plane's chunks, and batch
    materialises each plane's graph: without this a stack of N planes costs N² tasks.
    """
    import dask.array as da
    from dask.core import flatten
    from dask.highlevelgraph import HighLevelGraph
    from dask.optimization import cull

    tasks, _ = cull(dict(array.__dask_graph__()), list(flatten(array.__dask_keys__())))
    graph = HighLevelGraph.from_collections(array.name, tasks, dependencies=())
    return da.Array(graph, array.name, array.chunks, meta=array._meta)


def downsample(array: Any, item: Item) -> Any:
    """2× mean downsampling of (y, x), in the array's dtype (rounded for integers)."""
    import dask.array as da

    dtype = array.dtype
    factors = {item.y_axis: 2, item.x_axis: 2}
    small = da.coarsen(np.mean, array.astype(np.float64), factors, trim_excess=True)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        small = da.clip(da.round(small), info.min, info.max)
    return small.astype(dtype)


#: Rows of output blocks in flight at once. Output row i blends the network tiles of rows
#: i − reach .. i + reach. Rows are submitted one after the other, and the tiles a submitted
#: row needs are held as futures until no row, in flight or to come, needs them: no tile is
#: computed twice (tile row i + 1, computed for row i, is kept for row i + 1; the tile columns
#: on either side of a band's edge, for the band beside it). The workers stay busy: while a
#: row's last blocks wait for the tiles below it, those tiles are what the workers compute.
#: Submitting everything at once lets the scheduler run ahead and hold the tiles of a whole
#: image.
ROWS_IN_FLIGHT = 1


def run_tasks(
    client: Any,
    blocks: Iterable[Block],
    total: int,
    skipped: int,
    report: BatchReport,
    failures: dict[str, str],
    on_progress: Callable[[BatchProgress], None] | None,
    stage: str,
) -> None:
    """Compute the write tasks row by row; record per-item failures; report progress.

    ``blocks`` is consumed lazily, one plane at a time (a plane's graph is built only when its
    first row is due); ``total`` of them are still to write, ``skipped`` were written before.
    """
    from distributed import as_completed

    report.skipped += skipped
    if not total:
        return
    start = time.monotonic()
    uses: collections.Counter = collections.Counter()  # tile key → rows still to need it

    def rows_to_do() -> Iterator[list[Block]]:
        for _, plane in itertools.groupby(blocks, key=lambda b: b.row[:2]):
            todo = [b for b in plane if b.graph is not None]
            rows = [list(group) for _, group in itertools.groupby(todo, key=lambda b: b.row)]
            uses.update(key for row in rows for key in row[0].hold)
            yield from rows

    rows = rows_to_do()
    owner: dict[str, tuple[Block, int]] = {}
    in_flight: dict[int, list] = {}  # submission index → [row, blocks left]
    held: dict[Any, Any] = {}  # tile key → future
    pending = as_completed()
    submitted = 0
    graph: PlaneGraph | None = None  # of the plane being submitted

    def submit() -> None:
        nonlocal submitted, graph
        row = next(rows, None)
        if row is None:
            return
        if row[0].graph is not graph:
            if graph is not None:
                graph.release()  # the previous plane's rows are all submitted
            graph = row[0].graph
        assert graph is not None  # rows hold only the blocks still to write
        outside = row[0].held_by_caller
        new_tiles = [key for key in row[0].hold if key not in held]
        if new_tiles:
            tasks = graph.cull(new_tiles, outside)
            held.update(zip(new_tiles, client.get(tasks, new_tiles, sync=False), strict=True))
        tasks = graph.cull([b.source for b in row], held.keys() | outside)
        keys = []
        for block in row:
            key, task = block.write_task()
            tasks[key] = task
            keys.append(key)
        for future, block in zip(client.get(tasks, keys, sync=False), row, strict=True):
            owner[future.key] = (block, submitted)
            pending.add(future)
        in_flight[submitted] = [row, len(row)]
        submitted += 1

    def release_tiles(row: list[Block]) -> None:
        for key in row[0].hold:
            uses[key] -= 1
            if not uses[key]:
                del uses[key]
                held.pop(key).release()

    for _ in range(ROWS_IN_FLIGHT):
        submit()
    done = 0
    if on_progress is not None:
        on_progress(BatchProgress(0, total, 0.0, skipped, stage))
    for future in pending:
        block, row_index = owner.pop(future.key)
        if future.status != "finished":
            error = future.exception() if future.status == "error" else future.status
            reason = " ".join(f"{type(error).__name__}: {error}".split())[:300]
            failures.setdefault(block.item.name, reason)
            log.debug("block %s of %s failed: %s", block.key, block.item.name, reason)
        else:
            report.computed += 1
        done += 1
        future.release()
        in_flight[row_index][1] -= 1
        if not in_flight[row_index][1]:
            submit()  # before releasing: it may share tiles with the finished row
            release_tiles(in_flight.pop(row_index)[0])
        if on_progress is not None:
            elapsed = time.monotonic() - start
            on_progress(BatchProgress(done, total, elapsed, skipped, stage))
    if graph is not None:
        graph.release()
    for future in held.values():
        future.release()

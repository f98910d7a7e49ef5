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
3. A rerun whose job (input, scale, model, tile, shapes) matches the stored one continues:
   marked blocks are skipped. Computation is deterministic (threads pinned), so the final store
   is byte-identical to an uninterrupted run.
4. When every block of an array is written its ``complete`` flag becomes true; when all arrays
   are, the root's does and the markers are removed. Readers should trust only
   ``complete: true``.

INPUT is only ever opened read-only. OUTPUT is never replaced unless ``overwrite=True``, and
even then only when it is a zarr store (a non-zarr folder is never deleted).
"""

from __future__ import annotations

import collections
import glob
import itertools
import logging
import math
import os
import shutil
import time
from collections.abc import Callable, Container, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from napari_cisr.values import MIN_SIDE

log = logging.getLogger(__name__)

__all__ = ["BatchError", "BatchProgress", "BatchReport", "run_batch", "run_photo_batch"]

#: Folder inside OUTPUT holding the per-block completion markers while a job runs.
MARKERS = ".napari-cisr-batch"
#: Attribute key of the job description and completion flag.
ATTR = "napari_cisr"
#: Default memory budget of one tile's network activations, for the automatic tile size (on
#: the CPU the speed cap, 256-pixel tiles, is the smaller for lite). The process itself (~0.4 GB:
#: torch, dask, the model), tiles held for blending (at most :data:`HELD_BYTES_PER_WORKER` in
#: memory) and allocator slack come on top: a 1-worker batch peaks at 0.53 GiB for a 2048² image,
#: 0.66 GiB for 4096² and 0.83 GiB for 8192² (docs/benchmarks.md).
_WORKER_BUDGET = 640 * 2**20


class BatchError(ValueError):
    """A batch that cannot start (bad INPUT/OUTPUT, unreachable scheduler); one-line message."""


@dataclass(frozen=True)
class BatchProgress:
    """Progress of a batch: output blocks done out of the blocks this run has to compute."""

    done: int
    total: int
    elapsed: float
    skipped: int = 0
    stage: str = "level 0"

    @property
    def eta(self) -> float | None:
        """Seconds left at the rate so far, or ``None`` before the first block."""
        if self.done == 0:
            return None
        return self.elapsed / self.done * (self.total - self.done)


@dataclass
class BatchReport:
    """What a batch did.

    Attributes
    ----------
    output : Path
        The store written.
    completed : list of str
        Items (images / arrays) fully written.
    failed : list of (str, str)
        Items that could not be processed, with a one-line reason.
    computed : int
        Blocks computed by this run.
    skipped : int
        Blocks found done by an earlier, interrupted run.
    """

    output: Path
    completed: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    computed: int = 0
    skipped: int = 0

    @property
    def ok(self) -> bool:
        """True when nothing failed."""
        return not self.failed


# --------------------------------------------------------------------------------------------
# items
# --------------------------------------------------------------------------------------------


@dataclass
class _Item:
    """One array to produce: its lazy input in storage axis order and where it goes."""

    name: str  # for messages
    path: str  # array path inside OUTPUT ("" when OUTPUT is the array itself)
    source: Any  # dask array
    y_axis: int
    x_axis: int
    rgb_axis: int | None

    @property
    def plane_axes(self) -> list[int]:
        skip = {self.y_axis, self.x_axis, self.rgb_axis}
        return [a for a in range(self.source.ndim) if a not in skip]

    def output_shape(self, scale: int) -> tuple[int, ...]:
        shape = list(self.source.shape)
        shape[self.y_axis] *= scale
        shape[self.x_axis] *= scale
        return tuple(shape)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "path": self.path,
            "shape": list(self.source.shape),
            "dtype": str(self.source.dtype),
        }


def _layout(shape: tuple[int, ...]) -> tuple[int, int, int | None]:
    """(y, x, rgb) axes of an array without axis metadata, the package's convention."""
    if len(shape) >= 3 and shape[-1] in (3, 4):
        return len(shape) - 3, len(shape) - 2, len(shape) - 1
    return len(shape) - 2, len(shape) - 1, None


def _check_item(name: str, shape: tuple[int, ...], dtype: np.dtype, y: int, x: int) -> None:
    """Raise BatchError (one line) for arrays the network cannot take."""
    if len(shape) < 2:
        raise BatchError(f"{name}: expected an image (..., H, W[, 3|4]), got shape {shape}")
    dtype = np.dtype(dtype)
    if dtype not in (np.uint8, np.uint16) and not np.issubdtype(dtype, np.floating):
        raise BatchError(f"{name}: unsupported dtype {dtype}; use uint8, uint16 or float")
    if min(shape[y], shape[x]) < MIN_SIDE:
        raise BatchError(
            f"{name}: planes of {shape[y]}×{shape[x]} pixels (shape {shape}) are too small; "
            f"expected (..., H, W) or (..., H, W, 3|4) with H, W >= {MIN_SIDE}"
        )


def _folder_items(folder: Path) -> tuple[list[_Item], list[tuple[str, str]]]:
    import dask
    import dask.array as da

    from napari_cisr.io import IMAGE_SUFFIXES, ImageReadError, read_image

    files = sorted(
        f for f in folder.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES
    )
    if not files:
        raise BatchError(
            f"no images in folder '{folder}' (looked for {', '.join(sorted(IMAGE_SUFFIXES))})"
        )
    stems = [f.stem for f in files]
    items, failed = [], []
    for f in files:
        try:
            pixels = read_image(f)  # full decode: a corrupt file fails here, in the client
            y, x, rgb = _layout(pixels.shape)
            _check_item(f.name, pixels.shape, pixels.dtype, y, x)
        except (ImageReadError, BatchError) as error:
            # the report pairs the name with the reason: do not repeat it in the reason
            failed.append((f.name, str(error).removeprefix(f"{f.name}: ")))
            continue
        path = f.stem if stems.count(f.stem) == 1 else f.name
        lazy = da.from_delayed(
            dask.delayed(read_image, pure=True)(str(f)), pixels.shape, pixels.dtype
        )
        items.append(_Item(f.name, path, lazy, y, x, rgb))
        del pixels
    return items, failed


def _zarr_items(path: Path) -> tuple[list[_Item], dict[str, Any] | None, int]:
    """Items of a zarr array or an OME-Zarr image; (items, multiscales or None, zarr format)."""
    import dask.array as da
    import zarr

    from napari_cisr.io import ome_multiscales

    try:
        node = zarr.open(store=os.fspath(path), mode="r")
    except Exception as error:  # zarr raises several types for non-stores
        raise BatchError(f"cannot open '{path}' as zarr: {error}") from None
    fmt = node.metadata.zarr_format
    if isinstance(node, zarr.Array):
        y, x, rgb = _layout(node.shape)
        _check_item(path.name, node.shape, node.dtype, y, x)
        return [_Item(path.name, "", da.from_zarr(node), y, x, rgb)], None, fmt
    multiscales = ome_multiscales(path)
    if multiscales is None:
        raise BatchError(
            f"'{path}' is a zarr group without OME-Zarr multiscales metadata; pass a zarr array "
            "or an OME-Zarr image"
        )
    level0 = multiscales["datasets"][0]["path"]
    try:
        array = node[level0]
    except KeyError:
        raise BatchError(f"'{path}': OME-Zarr level '{level0}' is missing") from None
    axes = multiscales.get("axes")
    if axes:
        names = [a["name"] if isinstance(a, dict) else a for a in axes]
        types = [a.get("type") if isinstance(a, dict) else None for a in axes]
        if len(names) != array.ndim or "y" not in names or "x" not in names:
            raise BatchError(f"'{path}': axes {names} do not match the array's shape {array.shape}")
        y, x = names.index("y"), names.index("x")
        channel = [
            i
            for i, (n, t) in enumerate(zip(names, types, strict=True))
            if t == "channel" or n == "c"
        ]
        rgb = channel[0] if channel and array.shape[channel[0]] in (3, 4) else None
    else:
        y, x, rgb = _layout(array.shape)
    _check_item(f"{path.name}/{level0}", array.shape, array.dtype, y, x)
    return [_Item(path.name, level0, da.from_zarr(array), y, x, rgb)], multiscales, fmt


# --------------------------------------------------------------------------------------------
# OME metadata
# --------------------------------------------------------------------------------------------


def _ome_output(multiscales: dict[str, Any], item: _Item, scale: int) -> dict[str, Any]:
    """The output multiscales entry: level 0 at 1/scale pixel size, then 2× per level."""
    ndim = item.source.ndim
    first = multiscales["datasets"][0].get("coordinateTransformations", [])
    pixel = [1.0] * ndim
    shift = [0.0] * ndim
    for transform in first:
        if transform.get("type") == "scale":
            pixel = [float(v) for v in transform["scale"]]
        elif transform.get("type") == "translation":
            shift = [float(v) for v in transform["translation"]]
    datasets = []
    for level, dataset in enumerate(multiscales["datasets"]):
        factor = 2**level
        level_pixel, level_shift = list(pixel), list(shift)
        for axis in (item.y_axis, item.x_axis):
            p0 = pixel[axis] / scale
            # Output pixel i of level 0 is centred at input pixel (i + 0.5)/s − 0.5; a level-k
            # pixel averages 2^k level-0 pixels.
            t0 = shift[axis] + pixel[axis] * (0.5 / scale - 0.5)
            level_pixel[axis] = p0 * factor
            level_shift[axis] = t0 + p0 * (factor - 1) / 2
        datasets.append(
            {
                "path": dataset["path"],
                "coordinateTransformations": [
                    {"type": "scale", "scale": level_pixel},
                    {"type": "translation", "translation": level_shift},
                ],
            }
        )
    out = {k: v for k, v in multiscales.items() if k not in ("datasets", "metadata", "type")}
    out["datasets"] = datasets
    out["name"] = multiscales.get("name", item.name)
    out["type"] = "mean"
    out["metadata"] = {"description": f"napari-cisr x{scale} super-resolution, 2x mean pyramid"}
    return out


# --------------------------------------------------------------------------------------------
# the output store
# --------------------------------------------------------------------------------------------


def _read_job(output: Path) -> dict[str, Any] | None:
    """The ``napari_cisr`` attribute of an existing store (array or group), or None."""
    from napari_cisr.io import zarr_attrs

    return zarr_attrs(output).get(ATTR)


def _is_zarr(path: Path) -> bool:
    return any((path / name).is_file() for name in ("zarr.json", ".zgroup", ".zarray"))


def _level_chunks(item: _Item, shape: tuple[int, ...], core: int) -> tuple[int, ...]:
    chunks = [1] * len(shape)
    for axis in (item.y_axis, item.x_axis):
        chunks[axis] = min(core, shape[axis])
    if item.rgb_axis is not None:
        chunks[item.rgb_axis] = shape[item.rgb_axis]
    return tuple(chunks)


def _create_store(
    output: Path,
    kind: str,
    items: list[_Item],
    levels: list[list[tuple[str, tuple[int, ...], tuple[int, ...]]]],
    fmt: int,
    job: dict[str, Any],
    ome: dict[str, Any] | None,
    extra_attrs: dict[str, Any],
) -> None:
    """Lay the whole store out in a temporary folder and rename it into place."""
    import zarr

    from napari_cisr.io import atomic_target

    with atomic_target(output, overwrite=False, is_dir=True) as tmp:
        state = {"complete": False, "job": job}
        if kind == "array":
            ((path, shape, chunks),) = levels[0]
            dtype = items[0].source.dtype
            array = zarr.create_array(
                store=os.fspath(tmp),
                shape=shape,
                chunks=chunks,
                dtype=dtype,
                fill_value=0,
                zarr_format=fmt,
                overwrite=True,
            )
            array.attrs.update({**extra_attrs, ATTR: state})
        else:
            root = zarr.open_group(os.fspath(tmp), mode="w", zarr_format=fmt)
            for item, item_levels in zip(items, levels, strict=True):
                for path, shape, chunks in item_levels:
                    array = root.create_array(
                        path, shape=shape, chunks=chunks, dtype=item.source.dtype, fill_value=0
                    )
                    array.attrs[ATTR] = {"complete": False, "source": item.name}
            attrs: dict[str, Any] = dict(extra_attrs)
            if ome is not None:
                if fmt == 3:
                    attrs["ome"] = {"version": "0.5", "multiscales": [ome]}
                else:
                    attrs["multiscales"] = [{"version": "0.4", **ome}]
            root.attrs.update({**attrs, ATTR: state})
        (tmp / MARKERS).mkdir()


def _set_complete(output: Path, path: str, complete: bool, **extra: Any) -> None:
    import zarr

    if path:
        node = zarr.open(store=os.fspath(output), path=path, mode="r+")
    else:
        node = zarr.open(store=os.fspath(output), mode="r+")
    state = dict(node.attrs.get(ATTR, {}))
    state.update(complete=complete, **extra)
    node.attrs[ATTR] = state


# --------------------------------------------------------------------------------------------
# block tasks
# --------------------------------------------------------------------------------------------


def _remove_partial_chunks(output: Path) -> None:
    """Delete the temporary files of chunk writes a killed run left in ``output``.

    zarr's LocalStore writes each chunk to ``<chunk>.<uuid4 hex>.partial`` and renames it into
    place; a process killed between the two leaves the temporary file behind. Nothing else in a
    store ends in ``.partial``, and only the job that owns the store writes into it.
    """
    for leftover in output.rglob("*.partial"):
        stem = leftover.name[: -len(".partial")]
        token = stem.rpartition(".")[2]
        if len(token) == 32 and all(c in "0123456789abcdef" for c in token):
            log.debug("removing the interrupted chunk write '%s'", leftover)
            leftover.unlink(missing_ok=True)


def _marker_dir(output: Path, array_path: str) -> Path:
    return output / MARKERS / (array_path.replace("/", "__") or "_")


def _write_block(
    block: np.ndarray,
    store: str,
    array_path: str,
    region: tuple,
    channel_first: bool,
    marker: str,
) -> int:
    """dask task: write one output block into its (whole) zarr chunks, then mark it done."""
    import zarr

    array = zarr.open_array(store=store, path=array_path or None, mode="r+")
    data = np.moveaxis(block, -1, 0) if channel_first else block
    array[region] = data
    Path(marker).touch()
    _return_free_memory()
    return int(block.size)


def _glibc_function(name: str) -> Any:
    """A function of glibc's malloc, or None off Linux/glibc."""
    import ctypes
    import ctypes.util
    import platform

    if platform.system() != "Linux":
        return None
    try:
        return getattr(ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6"), name)
    except (OSError, AttributeError):  # not glibc
        return None


_MALLOC_TRIM = _glibc_function("malloc_trim")


def _return_free_memory() -> None:
    """Give the C heap's free pages back to the system (glibc only; elsewhere a no-op).

    Each block frees the network's activations and the tile buffers it used; glibc keeps such
    memory cached in its arenas, in pieces that fragment as tiles of different shapes come and
    go, so without this the resident memory of a batch creeps up with the work it has done
    (docs/benchmarks.md).
    """
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


class _PlaneGraph:
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
            from dask._task_spec import convert_legacy_graph

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
class _Block:
    item: _Item
    array_path: str
    key: str  # the block's name among its array's markers
    graph: _PlaneGraph | None  # None: already written (its marker exists)
    source: Any = None  # key of the output block in ``graph``
    write: tuple = ()  # the arguments of ``_write_block`` after the block
    row: tuple = ()  # (array, plane, band, block row): blocks of a row are submitted together
    hold: list = field(default_factory=list)  # keys of the network tiles the row needs
    held_by_caller: frozenset = frozenset()  # keys of the plane the caller holds as futures

    def write_task(self) -> tuple[str, Any]:
        """(key, task) writing this block: ``_write_block(<the block>, *self.write)``."""
        from dask._task_spec import Task, TaskRef
        from dask.base import tokenize

        key = f"cisr-write-{tokenize(*self.write)}"
        return key, Task(key, _write_block, TaskRef(self.source), *self.write)


def _blocks(
    item: _Item,
    array_path: str,
    lazy_planes: Iterator[tuple[tuple[int, ...], Any, Any, int, dict]],
    output: Path,
    band: int,
) -> Iterator[_Block]:
    """Write tasks for every not-yet-marked block of the lazy output planes of one array.

    ``lazy_planes`` yields (lead index, lazy output plane, its network tiles or None, how many
    tiles on each side an output block blends (:attr:`~napari_cisr.engine.plan.TilePlan.reach`),
    the futures its graph depends on, by key: held until the plane's rows are all submitted).
    Keys are those of the unoptimised graphs, so that they stay the same across the
    row-by-row submissions. Blocks come in vertical bands
    of ``band`` block columns, row by row within a band: a row of blocks (what is submitted
    at once) and the tiles it needs stay the same size however wide the image.
    """
    markers = _marker_dir(output, array_path)
    markers.mkdir(parents=True, exist_ok=True)
    channel_first = item.rgb_axis is not None and item.rgb_axis < item.y_axis
    ndim = item.source.ndim
    for lead, plane, tiles, reach, futures in lazy_planes:
        row_edges = np.cumsum((0, *plane.chunks[0])).tolist()
        col_edges = np.cumsum((0, *plane.chunks[1])).tolist()
        n_rows, n_cols = len(row_edges) - 1, len(col_edges) - 1
        graph = _PlaneGraph(plane.__dask_graph__(), futures)
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
                        yield _Block(
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
                    )
                    source = (plane.name, i, k, *rest)
                    yield _Block(item, array_path, key, graph, source, write, row, hold, held)


def _planes(item: _Item, array: Any) -> Iterator[tuple[tuple[int, ...], Any]]:
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


def _downsample(array: Any, item: _Item) -> Any:
    """2× mean downsampling of (y, x), in the array's dtype (rounded for integers)."""
    import dask.array as da

    dtype = array.dtype
    factors = {item.y_axis: 2, item.x_axis: 2}
    small = da.coarsen(np.mean, array.astype(np.float64), factors, trim_excess=True)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        small = da.clip(da.round(small), info.min, info.max)
    return small.astype(dtype)


# --------------------------------------------------------------------------------------------
# scheduler
# --------------------------------------------------------------------------------------------


#: Bytes of computed tiles a local worker keeps in memory; beyond that dask.distributed spills
#: the least recently used ones to its scratch folder on disk. Batch holds three rows of a
#: band's tile predictions, and the two columns of tiles beside the band's edges for as long
#: as the image is tall (so that the next band need not compute them again): the cap keeps
#: the tiles held in memory from growing with the image (docs/benchmarks.md).
HELD_BYTES_PER_WORKER = 64 * 2**20


#: Whether local workers run dask.distributed's statistical profiler. It keeps a per-second
#: history of sampled stacks for 1000 s (``distributed.admin.low-level-log-length``): memory
#: that grows with the batch's duration, for a dashboard a local batch never shows.
_WORKER_PROFILER = False


class _Cluster:
    """A dask.distributed client: on a new in-process LocalCluster, or an existing scheduler.

    The local cluster runs its workers as threads of this process (so a killed batch leaves
    no orphan workers behind) with torch's threads pinned to cores // workers; the model
    cache is per process, so the network is loaded once. Each worker holds at most
    ``held_bytes`` (default :data:`HELD_BYTES_PER_WORKER`) of results in memory and spills
    the rest to disk. An existing scheduler's workers keep their own memory settings.
    """

    def __init__(
        self,
        workers: int | None,
        scheduler: str | None,
        threads: int | None,
        timeout: float,
        held_bytes: int | None = None,
    ) -> None:
        from distributed import Client, LocalCluster

        self.cluster = None
        self.saved_threads: int | None = None
        held_bytes = HELD_BYTES_PER_WORKER if held_bytes is None else held_bytes
        if scheduler is not None:
            try:
                self.client = Client(scheduler, timeout=timeout)
            except (OSError, TimeoutError) as error:
                reason = " ".join(str(error).split())[:160]
                raise BatchError(
                    f"cannot reach the dask scheduler at '{scheduler}': {reason}"
                ) from None
            self.workers = max(1, len(self.client.scheduler_info().get("workers", {})))
            self.threads = max(1, sum(self.client.nthreads().values()))
            return
        import dask
        import torch

        from napari_cisr.tiling import available_memory

        _limit_malloc_arenas()
        self.workers = max(1, workers or 1)
        self.threads = self.workers  # one thread per local worker
        cores = os.cpu_count() or 1
        self.saved_threads = torch.get_num_threads()
        torch.set_num_threads(threads or max(1, cores // self.workers))
        # The scheduler refuses a task whose inputs exceed a worker's memory limit, so the limit
        # stays the machine's share and the cap is set as the spilling "target" fraction of it.
        # Spill by the size of the held results alone: the worker threads share this process,
        # whose memory (model, torch, client) must not trigger spilling, pausing or killing.
        limit = max(available_memory(torch.device("cpu")) // self.workers, 2 * held_bytes)
        memory = {
            "distributed.worker.memory.target": held_bytes / limit,
            "distributed.worker.memory.spill": False,
            "distributed.worker.memory.pause": False,
            "distributed.worker.memory.terminate": False,
            "distributed.worker.profile.enabled": _WORKER_PROFILER,
        }
        with dask.config.set(memory):
            self.cluster = LocalCluster(
                n_workers=self.workers,
                threads_per_worker=1,
                processes=False,
                # None still serves HTTP on the default 8787 (a warning when it is taken): any
                # free port instead
                dashboard_address=":0",
                memory_limit=limit,
            )
        self.client = Client(self.cluster)

    def close(self) -> None:
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()
        if self.saved_threads is not None:
            import torch

            torch.set_num_threads(self.saved_threads)


#: Rows of output blocks in flight at once. Output row i blends the network tiles of rows
#: i − 1 .. i + 1. Rows are submitted one after the other, and the tiles a submitted row needs
#: are held as futures until no row, in flight or to come, needs them: no tile is computed
#: twice (tile row i + 1, computed for row i, is kept for row i + 1; the tile columns on either
#: side of a band's edge, for the band beside it). The workers stay busy: while a row's last
#: blocks wait for the tiles below it, those tiles are what the workers compute. Submitting
#: everything at once lets the scheduler run ahead and hold the tiles of a whole image.
_ROWS_IN_FLIGHT = 1

#: Fewest block columns in a band (see :func:`_blocks`); a band is also at least two blocks
#: per worker thread, so that a row keeps every thread of the cluster busy.
_MIN_BAND = 4


def _band_width(threads: int) -> int:
    """Block columns per band for a cluster of ``threads`` worker threads."""
    return max(_MIN_BAND, 2 * threads)


def _limit_malloc_arenas(arenas: int = 2) -> None:
    """Cap glibc's malloc arenas for the threads started from now on (Linux/glibc only).

    Every thread that allocates gets its own arena by default (up to 8 per core), and freed
    tile-sized buffers stay cached in each: the local cluster's worker threads then hold
    several tiles' worth of freed memory. Two arenas lower the batch's peak RSS (measured in
    docs/benchmarks.md). Same effect as ``MALLOC_ARENA_MAX=2``, which, when set, is left to
    decide; a no-op on other platforms.
    """
    mallopt = _glibc_function("mallopt")
    if mallopt is None or os.environ.get("MALLOC_ARENA_MAX"):
        return
    mallopt(-8, arenas)  # M_ARENA_MAX


def _run_tasks(
    client: Any,
    blocks: Iterable[_Block],
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

    def rows_to_do() -> Iterator[list[_Block]]:
        for _, plane in itertools.groupby(blocks, key=lambda b: b.row[:2]):
            todo = [b for b in plane if b.graph is not None]
            rows = [list(group) for _, group in itertools.groupby(todo, key=lambda b: b.row)]
            uses.update(key for row in rows for key in row[0].hold)
            yield from rows

    rows = rows_to_do()
    owner: dict[str, tuple[_Block, int]] = {}
    in_flight: dict[int, list] = {}  # submission index → [row, blocks left]
    held: dict[Any, Any] = {}  # tile key → future
    pending = as_completed()
    submitted = 0
    graph: _PlaneGraph | None = None  # of the plane being submitted

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

    def release_tiles(row: list[_Block]) -> None:
        for key in row[0].hold:
            uses[key] -= 1
            if not uses[key]:
                del uses[key]
                held.pop(key).release()

    for _ in range(_ROWS_IN_FLIGHT):
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


#: Job keys that do not decide what a store holds: which files failed to read is a report (a
#: rerun after the bad files were removed, or still with them, finishes the same store), and a
#: rerun adopts the torch thread count of the run that started the store.
_REPORT_KEYS = frozenset({"failed_on_read", "torch_threads"})


def _same_job(stored: dict[str, Any] | None, job: dict[str, Any]) -> bool:
    if stored is None:
        return False
    keys = (set(stored) | set(job)) - _REPORT_KEYS
    return all(stored.get(key) == job.get(key) for key in keys)


def _job_difference(state: dict[str, Any] | None, job: dict[str, Any]) -> str:
    """`` and holds another job (its tile differs)``, for the refusal message."""
    stored = (state or {}).get("job")
    if stored is None:
        return ""
    keys = sorted((set(stored) | set(job)) - _REPORT_KEYS)
    differing = [key for key in keys if stored.get(key) != job.get(key)]
    if not differing:
        return ""
    verb = "differs" if len(differing) == 1 else "differ"
    return f" and holds another job (its {', '.join(differing)} {verb})"


def _remove_stale_temporaries(output: Path) -> None:
    """Remove the temporary store a killed run was creating beside OUTPUT (``.NAME.XXXX.tmp``).

    An old store a killed ``--overwrite`` run had moved aside (``.NAME.old-PID``) is the
    user's data: it is left alone.
    """
    parent = output.parent if str(output.parent) else Path(".")
    for stale in parent.glob(f".{glob.escape(output.name)}.*.tmp"):
        log.info("removing '%s', left by an interrupted run", stale)
        if stale.is_dir() and not stale.is_symlink():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)


def _written(output: Path, array_path: str) -> int:
    """Blocks of an array a previous run of the job wrote (their markers exist)."""
    markers = _marker_dir(output, array_path)
    return sum(1 for _ in markers.iterdir()) if markers.is_dir() else 0


# --------------------------------------------------------------------------------------------
# entry point
# --------------------------------------------------------------------------------------------


def _check_paths(source: Path, output: Path, overwrite: bool) -> None:
    if not source.exists():
        raise BatchError(f"input '{source}' does not exist")
    src, out = source.resolve(), output.resolve()
    if src == out or src in out.parents or out in src.parents:
        raise BatchError(
            f"output '{output}' must be outside the input '{source}' and not contain it"
        )
    if not out.parent.is_dir():
        raise BatchError(f"output folder '{out.parent}' does not exist")
    if (output.exists() or output.is_symlink()) and overwrite and not _is_zarr(output):
        raise BatchError(f"refusing to overwrite '{output}': it is not a zarr store")


def run_batch(
    source: str | os.PathLike,
    output: str | os.PathLike,
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
        Model name or weight file (a path every worker can read).
    tile : int, optional
        Core tile side in LR pixels; default from a 1 GB budget per worker.
    workers : int, optional
        Workers of the local cluster (default 1); ignored with ``scheduler``.
    scheduler : str, optional
        Address of an existing dask scheduler, e.g. ``tcp://host:8786``.
    overwrite : bool
        Replace an existing OUTPUT (only if it is a zarr store).
    device : str
        "cpu", "cuda" or "auto", on the workers.
    precision : str
        "auto", "float32" or "bfloat16" (as :func:`napari_cisr.super_resolve`), on the workers;
        part of the job, so a resumed run computes its remaining blocks the same way.
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
    from napari_cisr import __version__
    from napari_cisr.tiling import (
        build_tiled_dask,
        choose_tile,
        lazy_grid,
        model_halo,
    )
    from napari_cisr.weights import MODEL_NAMES, PRECISIONS, WeightsError, load_model

    source, output = Path(source), Path(output)
    _check_paths(source, output, overwrite)
    _remove_stale_temporaries(output)
    if scale not in (2, 3, 4):
        raise BatchError(f"scale must be 2, 3 or 4, got {scale}")
    if precision not in PRECISIONS:
        raise BatchError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    try:
        network = load_model(model, scale=scale, device="cpu")
    except (WeightsError, ValueError) as error:
        raise BatchError(str(error)) from None
    config = network.config

    failed: list[tuple[str, str]] = []
    multiscales, fmt = None, 3
    if source.is_dir() and not _is_zarr(source):
        kind = "group"
        items, failed = _folder_items(source)
    elif source.is_dir():
        items, multiscales, fmt = _zarr_items(source)
        kind = "group" if multiscales is not None else "array"
    else:
        raise BatchError(f"input '{source}' is not a folder of images or a zarr store")

    if tile is None:
        tile = choose_tile(config, None, device, budget=_WORKER_BUDGET)
    halo = model_halo(config)
    from napari_cisr.tiling import plan_tiles

    core = plan_tiles((10**6, 10**6), scale, tile, halo).tile  # the aligned core side
    # Workers get the model by name, or by absolute path (loaded once per worker process).
    model_ref = os.fspath(model)
    if model_ref not in MODEL_NAMES:
        model_ref = os.fspath(Path(model_ref).resolve())
    job = {
        "input": os.fspath(source.resolve()),
        "scale": scale,
        "model": model_ref,
        "config": config.to_dict(),
        "tile": core,
        "halo": halo,
        "precision": precision,
        "self_ensemble": bool(self_ensemble),
        # Only a J other than the model's own: stores from before this key resume as before.
        **({"iterations": iterations} if iterations not in (None, config.iterations) else {}),
        "items": [it.describe() for it in items],
        "failed_on_read": [name for name, _ in failed],
        "napari_cisr": __version__,
    }
    if scheduler is None:
        job["torch_threads"] = threads or max(1, (os.cpu_count() or 1) // max(1, workers or 1))

    # The layout of every array: level 0 and, for OME-Zarr, the pyramid.
    levels: list[list[tuple[str, tuple[int, ...], tuple[int, ...]]]] = []
    for item in items:
        shape = item.output_shape(scale)
        item_levels = [(item.path, shape, _level_chunks(item, shape, core * scale))]
        if multiscales is not None:
            for dataset in multiscales["datasets"][1:]:
                shape = list(item_levels[-1][1])
                for axis in (item.y_axis, item.x_axis):
                    shape[axis] = max(1, shape[axis] // 2)
                chunks = _level_chunks(item, tuple(shape), core * scale)
                item_levels.append((dataset["path"], tuple(shape), chunks))
        levels.append(item_levels)

    if not items:
        raise BatchError(
            f"no readable images in '{source}': "
            + "; ".join(f"{name}: {reason}" for name, reason in failed)
        )
    replace = False
    if output.exists() or output.is_symlink():
        state = _read_job(output) if _is_zarr(output) else None
        if overwrite:
            replace = True
        elif state is not None and _same_job(state.get("job"), job):
            if state.get("complete"):
                log.info("'%s' is already complete", output)
                return BatchReport(output, [it.name for it in items], failed)
            log.info("resuming the incomplete batch in '%s'", output)
            _remove_partial_chunks(output)
            started_with = state["job"].get("torch_threads")
            if scheduler is None and threads is None and started_with:
                threads = started_with  # the same sums as the blocks already written
                log.info("%d torch thread(s) per worker, as the run that started it", threads)
        else:
            raise BatchError(
                f"output '{output}' already exists{_job_difference(state, job)} "
                "(pass --overwrite to replace it)"
            )

    report = BatchReport(output, failed=list(failed))
    failures: dict[str, str] = {}
    cluster = _Cluster(workers, scheduler, threads, connect_timeout)
    try:
        if replace:
            shutil.rmtree(output)
        if not output.exists():
            ome = _ome_output(multiscales, items[0], scale) if multiscales is not None else None
            extra: dict[str, Any] = {}
            if multiscales is not None:
                from napari_cisr.io import zarr_attrs

                attrs = zarr_attrs(source)
                omero = attrs.get("omero") or attrs.get("ome", {}).get("omero")
                if omero:
                    extra["omero"] = omero
            _create_store(output, kind, items, levels, fmt, job, ome, extra)
        band = _band_width(cluster.threads)
        streams: list[Iterator[_Block]] = []
        total = skipped = 0
        for item, item_levels in zip(items, levels, strict=True):
            if _array_complete(output, item, kind):
                continue
            n_planes = math.prod(item.source.shape[a] for a in item.plane_axes)
            lr_plane = (item.source.shape[item.y_axis], item.source.shape[item.x_axis])
            written = _written(output, item_levels[0][0])
            total += n_planes * plan_tiles(lr_plane, scale, core, halo).n_tiles - written
            skipped += written

            def lazy_planes(
                item: _Item = item,
            ) -> Iterator[tuple[tuple[int, ...], Any, Any, int, dict]]:
                for lead, plane in _planes(item, item.source):
                    # Detect each plane's grid once and hold the result while its rows of
                    # blocks are submitted one after the other.
                    lazy = lazy_grid(plane)
                    grid = cluster.client.compute(lazy, optimize_graph=False)
                    built = build_tiled_dask(
                        plane,
                        scale,
                        model_ref,
                        iterations,
                        core,
                        device,
                        halo=halo,
                        grid=lazy,
                        precision=precision,
                        self_ensemble=self_ensemble,
                    )
                    yield lead, built.result.image, built.tiles, built.plan.reach, {lazy.key: grid}

            streams.append(_blocks(item, item_levels[0][0], lazy_planes(), output, band))
        blocks = itertools.chain.from_iterable(streams)
        _run_tasks(cluster.client, blocks, total, skipped, report, failures, on_progress, "level 0")

        # Pyramid levels, each from the level above it (as written, read back lazily).
        if multiscales is not None:
            import dask.array as da

            for item, item_levels in zip(items, levels, strict=True):
                if item.name in failures or _array_complete(output, item, kind):
                    continue
                pairs = itertools.pairwise(item_levels)
                for level, ((above, _, _), (path, _, chunks)) in enumerate(pairs, start=1):
                    upper = da.from_zarr(os.fspath(output), component=above)
                    lower = _downsample(upper, item).rechunk(chunks)
                    planes = ((lead, plane, None, 0, {}) for lead, plane in _planes(item, lower))
                    written = _written(output, path)
                    total = math.prod(lower.numblocks) - written  # one block per (y, x) chunk
                    stage = f"pyramid level {level}"
                    _run_tasks(
                        cluster.client,
                        _blocks(item, path, planes, output, band),
                        total,
                        written,
                        report,
                        failures,
                        on_progress,
                        stage,
                    )
                    if item.name in failures:
                        break
    finally:
        cluster.close()

    for item, item_levels in zip(items, levels, strict=True):
        if item.name in failures:
            report.failed.append((item.name, failures[item.name]))
            continue
        if kind == "group":
            for path, _, _ in item_levels:
                _set_complete(output, path, True)
                shutil.rmtree(_marker_dir(output, path), ignore_errors=True)
        report.completed.append(item.name)
    # Only arrays still being written need markers; a store whose every array is complete
    # keeps none. The root is complete when nothing failed.
    if len(report.completed) == len(items):
        shutil.rmtree(output / MARKERS, ignore_errors=True)
    failed_names = sorted(name for name, _ in report.failed)
    if failed_names:
        _set_complete(output, "", False, failed=failed_names)
    else:
        _set_complete(output, "", True)
    return report


def _array_complete(output: Path, item: _Item, kind: str) -> bool:
    if kind != "group" or not item.path:
        return False
    import zarr

    try:
        node = zarr.open_array(store=os.fspath(output), path=item.path, mode="r")
    except Exception:  # a missing array is simply not complete
        return False
    return bool(node.attrs.get(ATTR, {}).get("complete"))


def _format_eta(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "--:--"
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def format_progress(progress: BatchProgress, width: int = 30) -> str:
    """One-line text progress bar: ``[#####.....] 12/40 blocks  ETA 01:23``."""
    fraction = progress.done / progress.total if progress.total else 1.0
    filled = round(fraction * width)
    bar = "#" * filled + "." * (width - filled)
    skipped = f" (+{progress.skipped} done before)" if progress.skipped else ""
    return (
        f"{progress.stage}: [{bar}] {progress.done}/{progress.total} blocks{skipped}  "
        f"ETA {_format_eta(progress.eta)}"
    )


class ProgressBar:
    """Render :class:`BatchProgress` on a text stream (the CLI's progress bar).

    On a terminal the line is redrawn in place; otherwise a line is written every 10 % (and at
    the end of each stage), so logs stay short.
    """

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self.last_decile = -1
        self.open_line = False

    def __call__(self, progress: BatchProgress) -> None:
        line = format_progress(progress)
        if self.tty:
            self.stream.write("\r" + line)
            self.open_line = True
            if progress.done == progress.total:
                self.stream.write("\n")
                self.open_line = False
        else:
            decile = int(10 * progress.done / max(progress.total, 1))
            if decile != self.last_decile or progress.done == progress.total:
                self.stream.write(line + "\n")
                self.last_decile = decile
        self.stream.flush()

    def close(self) -> None:
        """End an unfinished line."""
        if self.open_line:
            self.stream.write("\n")
            self.open_line = False


# --------------------------------------------------------------------------------------------
# a folder of images out (issue 23): one task per photo on the same cluster
# --------------------------------------------------------------------------------------------


def writes_images(output: str | os.PathLike) -> bool:
    """True when OUTPUT is a folder of images rather than a zarr store: its name does not end
    in ``.zarr`` and it is not an existing zarr store."""
    path = Path(output)
    return path.suffix.lower() != ".zarr" and not _is_zarr(path)


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
    cluster = _Cluster(workers, scheduler, threads, connect_timeout)
    try:
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
    finally:
        cluster.close()
    return summary

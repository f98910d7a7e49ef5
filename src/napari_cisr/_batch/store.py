"""OUTPUT: the zarr store a batch writes, its job record, completion markers and metadata.

How a store stays safe and resumable (the module docstring of :mod:`napari_cisr.batch` tells
the whole story): it is laid out complete-but-empty in a temporary folder and renamed into
place (:func:`create_store`); each block's task writes whole chunks, then touches its marker
(:func:`write_block`); a rerun of the same job (:mod:`napari_cisr._batch.job`) skips marked
blocks; flags say when an array, then the store, is complete (:func:`set_complete`).
"""

from __future__ import annotations

import glob
import logging
import os
import shutil
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from napari_cisr._batch.cluster import return_free_memory
from napari_cisr._batch.report import BatchError
from napari_cisr._batch.sources import Item
from napari_cisr.io.atomic import unwritable_reason

log = logging.getLogger(__name__)

#: Folder inside OUTPUT holding the per-block completion markers while a job runs.
MARKERS = ".napari-cisr-batch"
#: Attribute key of the job description and completion flag.
ATTR = "napari_cisr"
#: Test-only: the fault tests set this environment variable to a point name (see
#: :func:`kill_point`) to have a batch kill itself there with SIGKILL, as a power cut would.
KILL_AT = "NAPARI_CISR_TEST_KILL_AT"


def kill_point(point: str, done: Callable[[], int] | None = None) -> None:
    """SIGKILL this process when the ``NAPARI_CISR_TEST_KILL_AT`` environment variable names
    ``point`` (test-only; an environment lookup otherwise).

    Points: ``"store-layout"`` (the store is laid out in its temporary folder, not yet renamed
    into place) and ``"written:<array path>"`` (a block of that array is written and marked).
    ``"<point>@<n>"`` waits until ``done()`` (for a written block: how many blocks of its array
    are marked, by any worker) reaches n, so a test kills a run mid-way however fast it runs.
    """
    wanted = os.environ.get(KILL_AT)
    if not wanted:
        return
    name, _, at_least = wanted.partition("@")
    if name == point and (not at_least or (done is not None and done() >= int(at_least))):
        os.kill(os.getpid(), getattr(signal, "SIGKILL", signal.SIGTERM))


# OME metadata
# --------------------------------------------------------------------------------------------


def _scale_and_translation(transforms: list[dict[str, Any]], ndim: int) -> tuple[list, list]:
    """The (scale, translation) of an NGFF coordinateTransformations list (identity if absent)."""
    pixel, shift = [1.0] * ndim, [0.0] * ndim
    for transform in transforms:
        if transform.get("type") == "scale":
            pixel = [float(v) for v in transform["scale"]]
        elif transform.get("type") == "translation":
            shift = [float(v) for v in transform["translation"]]
    return pixel, shift


def ome_output(multiscales: dict[str, Any], item: Item, scale: int) -> dict[str, Any]:
    """The output multiscales entry: level 0 at 1/scale pixel size, then 2× per level.

    Returns the arguments of ome-zarr-py's ``write_multiscales_metadata`` (name, axes, datasets,
    metadata). A multiscale-level transform of the input is folded into each dataset's, since
    the writer takes dataset transforms only: world = s_m·(s_d·i + t_d) + t_m.
    """
    ndim = item.source.ndim
    first = multiscales["datasets"][0].get("coordinateTransformations", [])
    pixel, shift = _scale_and_translation(first, ndim)
    outer_pixel, outer_shift = _scale_and_translation(
        multiscales.get("coordinateTransformations", []), ndim
    )
    shift = [sm * t + tm for sm, t, tm in zip(outer_pixel, shift, outer_shift, strict=True)]
    pixel = [sm * s for sm, s in zip(outer_pixel, pixel, strict=True)]
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
    return {
        "name": multiscales.get("name", item.name),
        "axes": multiscales.get("axes"),
        "datasets": datasets,
        "metadata": {
            "description": f"napari-cisr x{scale} super-resolution, 2x mean pyramid",
            "method": "2x2 mean",
        },
    }


def write_ome_metadata(
    root: Any, ome: dict[str, Any], omero: dict[str, Any] | None, zarr_format: int
) -> None:
    """Write the NGFF metadata of ``root`` with ome-zarr-py's writer: 0.4 on zarr v2, 0.5
    (everything under ``ome``) on zarr v3; ``omero`` is the input's rendering metadata."""
    from ome_zarr.format import FormatV04, FormatV05
    from ome_zarr.writer import add_metadata, write_multiscales_metadata

    fmt = FormatV05() if zarr_format == 3 else FormatV04()
    write_multiscales_metadata(
        root, ome["datasets"], fmt=fmt, axes=ome["axes"], name=ome["name"],
        metadata={"metadata": ome["metadata"]},
    )  # fmt: skip
    if omero:
        add_metadata(root, {"omero": omero}, fmt=fmt)


# --------------------------------------------------------------------------------------------
# the output store
# --------------------------------------------------------------------------------------------


def read_job(output: Path) -> dict[str, Any] | None:
    """The ``napari_cisr`` attribute of an existing store (array or group), or None."""
    from napari_cisr.io import zarr_attrs

    return zarr_attrs(output).get(ATTR)


def is_zarr(path: Path) -> bool:
    """Whether ``path`` is a zarr store (array or group, format 2 or 3)."""
    return any((path / name).is_file() for name in ("zarr.json", ".zgroup", ".zarray"))


def level_chunks(item: Item, shape: tuple[int, ...], core: int) -> tuple[int, ...]:
    """Chunks of an output array: one ``core``-sided block per (y, x) chunk, whole colours."""
    chunks = [1] * len(shape)
    for axis in (item.y_axis, item.x_axis):
        chunks[axis] = min(core, shape[axis])
    if item.rgb_axis is not None:
        chunks[item.rgb_axis] = shape[item.rgb_axis]
    return tuple(chunks)


def create_store(
    output: Path,
    kind: str,
    items: list[Item],
    levels: list[list[tuple[str, tuple[int, ...], tuple[int, ...]]]],
    fmt: int,
    job: dict[str, Any],
    ome: dict[str, Any] | None,
    omero: dict[str, Any] | None,
) -> None:
    """Lay the whole store out in a temporary folder and rename it into place.

    ``ome`` (from :func:`ome_output`) makes a group an OME-Zarr image, with the input's OMERO
    rendering metadata ``omero`` carried over.
    """
    import zarr

    from napari_cisr.io import atomic_target

    with atomic_target(output, overwrite=False, is_dir=True) as tmp:
        state = {"complete": False, "job": job}
        if kind == "array":
            ((_, shape, chunks),) = levels[0]
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
            array.attrs[ATTR] = state
        else:
            root = zarr.open_group(os.fspath(tmp), mode="w", zarr_format=fmt)
            dimension_names = None
            if ome is not None and fmt == 3:
                # NGFF 0.5 arrays name their dimensions after the axes
                axes = ome.get("axes") or []
                dimension_names = [a["name"] if isinstance(a, dict) else a for a in axes] or None
            _create_arrays(root, items, levels, dimension_names=dimension_names)
            if ome is not None:
                write_ome_metadata(root, ome, omero, fmt)
            root.attrs[ATTR] = state
        kill_point("store-layout")
        (tmp / MARKERS).mkdir()


def _create_arrays(
    root: Any,
    items: list[Item],
    levels: list,
    overwrite: bool = False,
    dimension_names: list[str] | None = None,
) -> None:
    """The empty, incomplete arrays of ``items`` (each with its pyramid levels) in a group;
    ``dimension_names`` only for zarr v3."""
    for item, item_levels in zip(items, levels, strict=True):
        for path, shape, chunks in item_levels:
            array = root.create_array(
                path, shape=shape, chunks=chunks, dtype=item.source.dtype, fill_value=0,
                overwrite=overwrite, dimension_names=dimension_names,
            )  # fmt: skip
            array.attrs[ATTR] = {"complete": False, "source": item.name}


def add_items(output: Path, items: list[Item], levels: list, job: dict[str, Any]) -> None:
    """Lay out the arrays of items a group store's job could not read before, then record
    ``job`` (which lists them) as the store's job.

    The arrays are laid out before the job names their items: a run killed in between leaves
    arrays no job lists, which the next rerun lays out again.
    """
    import zarr

    root = zarr.open_group(os.fspath(output), mode="r+")
    _create_arrays(root, items, levels, overwrite=True)
    state = dict(root.attrs.get(ATTR, {}))
    state["job"] = job
    root.attrs[ATTR] = state


def set_complete(output: Path, path: str, complete: bool, **extra: Any) -> None:
    """Set the ``complete`` flag (and ``extra`` keys) of the array at ``path`` ("" = root).

    An ``extra`` key given as None is removed (e.g. the list of failed items, once none is).
    """
    import zarr

    if path:
        node = zarr.open(store=os.fspath(output), path=path, mode="r+")
    else:
        node = zarr.open(store=os.fspath(output), mode="r+")
    state = dict(node.attrs.get(ATTR, {}))
    state.update(complete=complete, **extra)
    for key, value in extra.items():
        if value is None:
            del state[key]
    node.attrs[ATTR] = state


# --------------------------------------------------------------------------------------------
# block tasks
# --------------------------------------------------------------------------------------------


def remove_partial_chunks(output: Path) -> None:
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


def marker_dir(output: Path, array_path: str) -> Path:
    """The folder of an array's block markers."""
    return output / MARKERS / (array_path.replace("/", "__") or "_")


def write_block(
    block: np.ndarray,
    store: str,
    array_path: str,
    region: tuple,
    channel_first: bool,
    marker: str,
    trim: bool = True,
) -> int:
    """dask task: write one output block into its (whole) zarr chunks, then mark it done.

    ``trim`` gives the C heap's free pages back afterwards (:func:`return_free_memory`).
    """
    import zarr

    array = zarr.open_array(store=store, path=array_path or None, mode="r+")
    data = np.moveaxis(block, -1, 0) if channel_first else block
    array[region] = data
    Path(marker).touch()
    kill_point(f"written:{array_path}", done=lambda: written(Path(store), array_path))
    if trim:
        return_free_memory()
    return int(block.size)


def remove_stale_temporaries(output: Path) -> None:
    """Remove the temporaries a killed run or worker was writing beside OUTPUT: a store
    (``.NAME.XXXX.tmp``) or a file (``.NAME.XXXX.tmp.png``; :mod:`napari_cisr.io.atomic`).

    An old store a killed ``--overwrite`` run had moved aside (``.NAME.old-PID``) is the
    user's data: it is left alone.
    """
    parent = output.parent if str(output.parent) else Path(".")
    for stale in parent.glob(f".{glob.escape(output.name)}.*.tmp*"):
        log.info("removing '%s', left by an interrupted run", stale)
        if stale.is_dir() and not stale.is_symlink():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)


def written(output: Path, array_path: str) -> int:
    """Blocks of an array a previous run of the job wrote (their markers exist)."""
    markers = marker_dir(output, array_path)
    return sum(1 for _ in markers.iterdir()) if markers.is_dir() else 0


def check_paths(source: Path, output: Path, overwrite: bool) -> None:
    """Raise BatchError unless INPUT exists and OUTPUT may be written where it is asked.

    OUTPUT's folder must exist and take new entries when OUTPUT is to be created or replaced
    (an existing store that is resumed is checked by :func:`check_writable` on its own).
    """
    if not source.exists():
        raise BatchError(f"input '{source}' does not exist")
    src, out = source.resolve(), output.resolve()
    if src == out or src in out.parents or out in src.parents:
        raise BatchError(
            f"output '{output}' must be outside the input '{source}' and not contain it"
        )
    if not out.parent.is_dir():
        raise BatchError(
            f"output folder '{out.parent}' does not exist; create it or choose another OUTPUT"
        )
    exists = output.exists() or output.is_symlink()
    if exists and overwrite and not is_zarr(output):
        raise BatchError(f"refusing to overwrite '{output}': it is not a zarr store")
    if not exists or overwrite:
        check_writable(out.parent, "output folder")


def check_writable(folder: Path, what: str) -> None:
    """Raise BatchError (one line) unless ``folder`` takes a new file.

    (:func:`napari_cisr.io.atomic.unwritable_reason`): a batch must not find out after laying
    out its store.
    """
    reason = unwritable_reason(folder)
    if reason is not None:
        raise BatchError(
            f"cannot write into {what} '{folder}': {reason}; choose a {what} you can write to"
        )


def array_complete(output: Path, item: Item, kind: str) -> bool:
    """Whether an array of a group store was finished by an earlier run of the job."""
    if kind != "group" or not item.path:
        return False
    import zarr

    try:
        node = zarr.open_array(store=os.fspath(output), path=item.path, mode="r")
    except Exception:  # a missing array is simply not complete
        return False
    return bool(node.attrs.get(ATTR, {}).get("complete"))

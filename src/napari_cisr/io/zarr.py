"""Zarr stores: open an array or a multiscale (OME-)Zarr group lazily, write one atomically."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from napari_cisr.io.atomic import atomic_target
from napari_cisr.io.formats import ImageReadError


def zarr_attrs(path: str | os.PathLike) -> dict[str, Any]:
    """The user attributes of a zarr v2 (``.zattrs``) or v3 (``zarr.json``) array or group, read
    straight from its metadata file; ``{}`` when it has none."""
    path = Path(path)
    for name in ("zarr.json", ".zattrs"):
        f = path / name
        if f.is_file():
            meta = json.loads(f.read_text())
            return meta.get("attributes", {}) if name == "zarr.json" else meta
    return {}


def is_zarr_array(path: Path) -> bool:
    """True when ``path`` is a zarr v2 or v3 array (not a group)."""
    if (path / ".zarray").is_file():
        return True
    f = path / "zarr.json"
    return f.is_file() and json.loads(f.read_text()).get("node_type") == "array"


def ome_multiscales(path: str | os.PathLike) -> dict[str, Any] | None:
    """Return the first OME-Zarr ``multiscales`` entry of a group, or None.

    Understands OME-NGFF 0.4 (``multiscales`` in the group attributes) and 0.5 (under ``ome``).

    Parameters
    ----------
    path : str or os.PathLike
        A zarr group folder.

    Returns
    -------
    dict or None
        The entry (with ``datasets``, and ``axes``/``coordinateTransformations`` when present).
    """
    attrs = zarr_attrs(Path(path))
    ms = attrs.get("multiscales") or attrs.get("ome", {}).get("multiscales")
    return ms[0] if ms else None


def open_zarr(path: str | os.PathLike) -> Any:
    """Open a zarr array, or a multiscale (OME-)Zarr group, lazily as dask.

    Parameters
    ----------
    path : str or os.PathLike
        A folder holding a zarr v2 or v3 array, or a group. A group with OME-Zarr
        ``multiscales`` metadata gives its datasets in the listed order; a group without it
        gives its arrays sorted from largest to smallest (a pyramid), or the single array it
        holds.

    Returns
    -------
    dask.array.Array or list of dask.array.Array
        One lazy array, or the levels of a multiscale image, highest resolution first.

    Raises
    ------
    ImageReadError
        Not a zarr store, or a group holding no arrays.
    """
    import dask.array as da

    p = Path(path)
    if not p.is_dir():
        raise ImageReadError(p, "no such zarr folder" if not p.exists() else "not a zarr folder")
    if is_zarr_array(p):
        return da.from_zarr(os.fspath(p))
    if not ((p / ".zgroup").is_file() or (p / "zarr.json").is_file()):
        raise ImageReadError(p, "not a zarr array or group (no .zarray, .zgroup or zarr.json)")
    ms = ome_multiscales(p)
    if ms is not None:
        levels = [da.from_zarr(os.fspath(p / d["path"])) for d in ms["datasets"]]
    else:
        levels = [
            da.from_zarr(os.fspath(child))
            for child in sorted(p.iterdir())
            if child.is_dir() and is_zarr_array(child)
        ]
        levels.sort(key=lambda a: -int(np.prod(a.shape)))
    if not levels:
        raise ImageReadError(p, "zarr group holds no arrays")
    if len(levels) == 1:
        return levels[0]
    return levels


def write_zarr(
    path: str | os.PathLike,
    array: Any,
    *,
    chunks: Any = None,
    overwrite: bool = False,
    attrs: dict[str, Any] | None = None,
) -> Path:
    """Write an array to a zarr store chunk by chunk, atomically.

    The data go through :func:`dask.array.to_zarr`, so a lazy (dask) array is computed one
    chunk at a time and never held in memory whole. They are written to a temporary folder
    beside ``path`` that is moved into place at the end (and removed on failure).

    Parameters
    ----------
    path : str or os.PathLike
        Target folder, conventionally ending in ``.zarr``.
    array : numpy.ndarray or dask.array.Array
        The data, any shape and dtype.
    chunks : tuple or str, optional
        Chunk shape to store. Default: the dask array's chunks (made regular if needed), or
        for numpy 512×512 spatial chunks with any trailing RGB(A) axis kept whole.
    overwrite : bool, optional
        Replace an existing store. Default False.
    attrs : dict, optional
        JSON attributes stored with the array.

    Returns
    -------
    pathlib.Path
        The store's folder.

    Raises
    ------
    FileExistsError
        Something exists at ``path`` and ``overwrite`` is False.
    """
    import dask.array as da

    p = Path(path)
    if isinstance(array, da.Array):
        arr = array
        if chunks is not None:
            arr = arr.rechunk(chunks)
        elif any(len(set(c[:-1])) > 1 or (len(c) > 1 and c[-1] > c[0]) for c in arr.chunks):
            arr = arr.rechunk(arr.chunksize)  # zarr needs regular chunks
    else:
        np_arr = np.asarray(array)
        if chunks is None:
            rgb = np_arr.ndim >= 3 and np_arr.shape[-1] in (3, 4)
            n_spatial = np_arr.ndim - int(rgb)
            chunks = [1] * max(n_spatial - 2, 0) + [512] * min(n_spatial, 2)
            chunks += list(np_arr.shape[n_spatial:])
        arr = da.from_array(np_arr, chunks=chunks)
    with atomic_target(p, overwrite, is_dir=True) as tmp:
        da.to_zarr(arr, os.fspath(tmp), compute=True)
        if attrs:
            import zarr

            zarr.open_array(os.fspath(tmp), mode="r+").attrs.update(attrs)
    return p

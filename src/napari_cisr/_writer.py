"""napari writer: one image layer to TIFF, PNG or zarr through :mod:`napari_cisr.io`.

One function, :func:`write_image_layer`, serves every extension listed under it in napari.yaml
(napari's builtins do the same); the suffix chooses the format. A name typed without an
extension gets ``.tif``, the first listed, which holds any dtype and dimensionality.

Every write is atomic (a temporary file or folder beside the target is moved into place, and
removed if anything fails). The writer *does* replace an existing file: napari's save dialog
has already asked the user about overwriting, and ``layer.save(path)`` in a script follows
napari's own writers, which overwrite too; never silently: a replacement raises a
``UserWarning`` (a notification in napari) naming the file. :func:`napari_cisr.io.write_image` and
:func:`napari_cisr.io.write_zarr` refuse to overwrite by default for every other caller.

A layer the format cannot hold (a float layer as PNG, a stack as PNG) is not written: napari
turns a writer's ``ValueError`` into "not a valid writer" and drops the reason, so the writer
gives the reason itself as a one-line ``UserWarning`` (a notification in napari, a warning
in a script) and returns no paths.

zarr is written chunk by chunk with dask, so a lazy (dask/zarr-backed) layer is never loaded
whole. zarr and TIFF both keep the layer's ``scale``, ``translate``, ``name`` and JSON-able
``metadata`` (a super-resolved layer's settings, under ``cisr``) under ``napari``: in the zarr
attributes, and in the TIFF's ImageDescription as tifffile's JSON (which tifffile writes
anyway, with the shape). The reader restores the geometry and the metadata. PNG keeps pixels
only. For a multiscale layer only the highest-resolution level is written. TIFF and PNG need
the pixels in memory.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from napari_cisr import io

__all__ = ["write_image_layer"]


def _warn_if_replacing(path: str) -> None:
    if os.path.lexists(path):
        warnings.warn(f"napari-cisr: replacing the existing '{path}'", UserWarning, stacklevel=3)


def _level0(data: Any) -> Any:
    if isinstance(data, list | tuple):  # a multiscale layer's data
        return data[0]
    if hasattr(data, "_data") and type(data).__name__ == "MultiScaleData":
        return data[0]
    return data


def _json_safe(value: Any) -> bool:
    """True if ``value`` survives JSON (layer metadata can hold anything)."""
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def _napari_attrs(meta: dict[str, Any]) -> dict[str, Any]:
    """The layer's name, geometry and JSON-able metadata, as zarr attributes and TIFF JSON."""
    attrs: dict[str, Any] = {
        key: [float(v) for v in meta[key]] for key in ("scale", "translate") if key in meta
    }
    attrs["name"] = str(meta.get("name", ""))
    metadata = meta.get("metadata") or {}
    # key by key, so that one array in the metadata does not lose the ``cisr`` settings
    kept = {k: v for k, v in metadata.items() if isinstance(k, str) and _json_safe(v)}
    if kept:
        attrs["metadata"] = kept
    return attrs


def write_image_layer(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """Write an image layer to ``.tif``/``.tiff``, ``.png`` or ``.zarr``, by suffix.

    Parameters
    ----------
    path : str
        Target file (or ``.zarr`` folder); replaced atomically if it exists, with a warning.
    data : array-like
        The layer data (numpy or dask; a multiscale layer's first level is written).
    meta : dict
        The layer's attributes as napari passes them (``scale``, ``translate``, ``name``,
        ``metadata``...).

    Returns
    -------
    list of str
        ``[path]``, or ``[]`` when the format cannot hold the layer (a warning says why).
    """
    suffix = Path(path).suffix.lower()
    data = _level0(data)
    problem = _unfit(suffix, data)
    if problem:
        name = meta.get("name") or "the layer"
        warnings.warn(f"napari-cisr: cannot save {name!r} as {path!r}: {problem}", UserWarning,
                      stacklevel=2)  # fmt: skip
        return []
    _warn_if_replacing(path)
    if suffix == ".zarr":
        io.write_zarr(path, data, overwrite=True, attrs={"napari": _napari_attrs(meta)})
    elif suffix in (".tif", ".tiff"):
        io.write_image(path, data, overwrite=True, attrs={"napari": _napari_attrs(meta)})
    else:
        io.write_image(path, data, overwrite=True)
    return [path]


def _unfit(suffix: str, data: Any) -> str:
    """Why ``suffix`` cannot hold ``data`` (one clause), or ''."""
    if suffix == ".png":
        dtype = np.dtype(data.dtype)
        if dtype not in (np.uint8, np.uint16):
            return f"PNG holds 8- or 16-bit unsigned integers, not {dtype}; save it as .tif"
        if not (data.ndim == 2 or (data.ndim == 3 and data.shape[2] in (3, 4))):
            return f"PNG holds one 2D plane, not an array of shape {data.shape}; save it as .tif"
    elif suffix not in (".tif", ".tiff", ".zarr"):
        return f"unsupported extension {suffix or '(none)'!r}; use .tif, .png or .zarr"
    return ""

"""napari writers: one image layer to zarr, TIFF or PNG through :mod:`napari_cisr.io`.

Every write is atomic (a temporary file or folder beside the target is moved into place, and
removed if anything fails). These writers *do* replace an existing file: napari's save dialog
has already asked the user about overwriting, and ``layer.save(path)`` in a script follows
napari's own writers, which overwrite too; never silently: a replacement raises a
``UserWarning`` (a notification in napari) naming the file. :func:`napari_cisr.io.write_image` and
:func:`napari_cisr.io.write_zarr` refuse to overwrite by default for every other caller.

zarr is written chunk by chunk with dask, so a lazy (dask/zarr-backed) layer is never loaded
whole; the layer's ``scale`` and ``translate`` are stored in the zarr attributes (under
``napari``) and restored by the reader. For a multiscale layer only the highest-resolution
level is written. TIFF and PNG need the pixels in memory.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

from napari_cisr import io


def _warn_if_replacing(path: str) -> None:
    if os.path.lexists(path):
        warnings.warn(f"napari-cisr: replacing the existing '{path}'", UserWarning, stacklevel=3)


def _level0(data: Any) -> Any:
    if isinstance(data, list | tuple):  # a multiscale layer's data
        return data[0]
    if hasattr(data, "_data") and type(data).__name__ == "MultiScaleData":
        return data[0]
    return data


def write_zarr(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """Write an image layer to a ``.zarr`` folder, chunk by chunk.

    Parameters
    ----------
    path : str
        Target folder ending in ``.zarr``; replaced atomically if it exists.
    data : array-like
        The layer data (numpy or dask; a multiscale layer's first level is written).
    meta : dict
        The layer's attributes as napari passes them (``scale``, ``translate``, ``name``...).

    Returns
    -------
    list of str
        ``[path]``.
    """
    attrs = {
        "napari": {
            key: [float(v) for v in meta[key]] for key in ("scale", "translate") if key in meta
        }
    }
    attrs["napari"]["name"] = str(meta.get("name", ""))
    _warn_if_replacing(path)
    io.write_zarr(path, _level0(data), overwrite=True, attrs=attrs)
    return [path]


def write_tiff(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """Write an image layer (any dimensionality) to a TIFF file.

    Parameters
    ----------
    path : str
        Target ``.tif``/``.tiff`` file; replaced atomically if it exists.
    data : array-like
        The layer data; dtype kept.
    meta : dict
        The layer's attributes (unused).

    Returns
    -------
    list of str
        ``[path]``.
    """
    _warn_if_replacing(path)
    io.write_image(path, _level0(data), overwrite=True)
    return [path]


def write_png(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """Write a 2D image layer (H×W, H×W×3 or H×W×4; uint8 or uint16) to a PNG file.

    Parameters
    ----------
    path : str
        Target ``.png`` file; replaced atomically if it exists.
    data : array-like
        The layer data.
    meta : dict
        The layer's attributes (unused).

    Returns
    -------
    list of str
        ``[path]``.

    Raises
    ------
    ValueError
        The layer is not 2D, or its dtype is neither uint8 nor uint16 (save as .tif instead).
    """
    _warn_if_replacing(path)
    io.write_image(path, _level0(data), overwrite=True)
    return [path]

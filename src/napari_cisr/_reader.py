"""napari reader: JPEG, WebP, PNG, TIFF and zarr through :mod:`napari_cisr.io`.

``napari_get_reader`` returns ``None`` for paths it does not handle, so napari can try other
readers. A supported file that turns out to be unreadable (empty, truncated, not an image) is
reported with a one-line ``show_error`` notification, and the reader returns napari's "null
layer" sentinel ``[(None,)]``: napari then adds nothing and raises nothing. (Returning ``None``
from the reader function or ``[]`` would make napari raise its own, less specific
"returned no data" error instead.) The notification leads with the reason and names the file
by its base name (``truncated JPEG data: cannot read photo.jpg``): a toast is narrow, and a
long folder in front would cut the reason off. The full path goes to the log.

A TIFF or zarr saved by napari-cisr's writer gets back the layer's scale, translate and
metadata (a result's ``cisr`` settings) it was saved with.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from napari_cisr import io

log = logging.getLogger(__name__)

_SUFFIXES = (*io.IMAGE_SUFFIXES, ".zarr")
#: Metadata keys that describe the file a layer was read from (``path`` and
#: :func:`napari_cisr.io.image_info`'s): restored metadata drops them, the file being read
#: now describes itself.
_FILE_KEYS = frozenset({
    "path", "codec", "shape", "mode", "dtype", "quality", "quality_exact", "subsampling",
    "progressive", "bit_depth", "lossless", "animated",
})  # fmt: skip
_NULL_LAYER: list[tuple[Any, ...]] = [(None,)]

LayerData = tuple[Any, dict[str, Any], str]


def napari_get_reader(path: str | Sequence[str]) -> Callable[..., list] | None:
    """Return a reader function for ``path``, or None when it is not ours to read.

    Parameters
    ----------
    path : str or list of str
        One path, or several (each is read into its own layer).

    Returns
    -------
    callable or None
        :func:`read_layers` if every path has a supported suffix, else None.
    """
    paths = [path] if isinstance(path, str | os.PathLike) else list(path)
    if not paths:
        return None
    for p in paths:
        suffix = Path(os.fspath(p).rstrip("/\\")).suffix.lower()
        if suffix not in _SUFFIXES:
            return None
    return read_layers


def read_layers(path: str | Sequence[str], stack: bool = False) -> list[tuple[Any, ...]]:
    """Read each path into napari layer data; unreadable files become a notification.

    Parameters
    ----------
    path : str or list of str
        Files or ``.zarr`` folders.
    stack : bool, optional
        Ignored: napari passes it; every path becomes its own layer.

    Returns
    -------
    list of tuple
        ``(data, kwargs, "image")`` per readable path, or ``[(None,)]`` when none was.
    """
    from napari.utils.notifications import show_error

    paths = [path] if isinstance(path, str | os.PathLike) else list(path)
    layers: list[tuple[Any, ...]] = []
    for p in paths:
        try:
            layers.append(layer_data(p))
        except io.ImageReadError as e:
            log.warning("%s", e)
            show_error(_toast(e.problem, p))
        except Exception as e:  # a reader must never raise into napari
            log.warning("cannot read %r", os.fspath(p), exc_info=True)
            show_error(_toast(f"{type(e).__name__}: {e}", p))
    return layers or _NULL_LAYER


def _toast(problem: str, path: str | os.PathLike) -> str:
    """One line, the reason first: ``truncated JPEG data: cannot read photo.jpg``."""
    name = Path(os.fspath(path).rstrip("/\\")).name
    return f"{problem}: cannot read {name}".splitlines()[0]


def layer_data(path: str | os.PathLike) -> LayerData:
    """Build the ``(data, kwargs, "image")`` tuple for one path.

    Parameters
    ----------
    path : str or os.PathLike
        An image file or a ``.zarr`` folder.

    Returns
    -------
    tuple
        Data (numpy, dask, or a list of dask levels for a multiscale group), layer kwargs
        (``name``, ``rgb``, ``metadata`` with the file's ``image_info`` -- codec and estimated
        JPEG or WebP quality --, for zarr ``multiscale``, and for a TIFF or zarr saved by
        napari-cisr the ``scale``/``translate`` and metadata it was saved with, the saved
        description of its source file excepted) and the layer type.

    Raises
    ------
    napari_cisr.io.ImageReadError
        The file cannot be read.
    """
    p = Path(os.fspath(path).rstrip("/\\"))
    name = p.stem
    if p.suffix.lower() == ".zarr":
        return _zarr_layer(p, name)
    data = io.read_image(p)
    info = io.image_info(p)
    stored = _stored(io.tiff_attrs(p)) if info["codec"] == "tiff" else {}
    meta = {**_restored_metadata(stored), "path": os.fspath(p), **info}
    kwargs: dict[str, Any] = {"name": name, "rgb": _is_rgb(data.shape), "metadata": meta}
    if data.dtype == np.uint8:
        kwargs["contrast_limits"] = (0, 255)
    _restore_geometry(kwargs, stored, data.ndim - int(kwargs["rgb"]))
    return data, kwargs, "image"


def _is_rgb(shape: tuple[int, ...]) -> bool:
    return len(shape) >= 3 and shape[-1] in (3, 4)


def _zarr_layer(p: Path, name: str) -> LayerData:
    data = io.open_zarr(p)
    levels = data if isinstance(data, list) else [data]
    first = levels[0]
    stored = _stored(io.zarr_attrs(p))
    kwargs: dict[str, Any] = {
        "name": name,
        "rgb": _is_rgb(first.shape),
        "metadata": {**_restored_metadata(stored), "path": os.fspath(p), "codec": "zarr"},
    }
    if isinstance(data, list):
        kwargs["multiscale"] = True
    if first.dtype == np.uint8:
        kwargs["contrast_limits"] = (0, 255)
    # geometry written by napari-cisr's zarr writer, else OME-Zarr level-0 scale
    ndim = first.ndim - int(kwargs["rgb"])
    _restore_geometry(kwargs, stored, ndim)
    if "scale" not in kwargs:
        ms = io.ome_multiscales(p)
        if ms is not None:
            for t in ms["datasets"][0].get("coordinateTransformations", []):
                if t.get("type") == "scale" and len(t.get("scale", ())) == ndim:
                    kwargs["scale"] = tuple(float(v) for v in t["scale"])
    return data, kwargs, "image"


def _stored(attrs: dict[str, Any]) -> dict[str, Any]:
    """What napari-cisr's writer stored under ``napari`` (zarr attributes, TIFF JSON)."""
    stored = attrs.get("napari")
    return stored if isinstance(stored, dict) else {}


def _restored_metadata(stored: dict[str, Any]) -> dict[str, Any]:
    metadata = stored.get("metadata")
    if not isinstance(metadata, dict):
        return {}
    return {k: v for k, v in metadata.items() if k not in _FILE_KEYS}


def _restore_geometry(kwargs: dict[str, Any], stored: dict[str, Any], ndim: int) -> None:
    """Set ``scale``/``translate`` from ``stored`` where they fit the layer's ``ndim``."""
    for key in ("scale", "translate"):
        value = stored.get(key)
        if isinstance(value, list | tuple) and len(value) == ndim:
            kwargs[key] = tuple(float(v) for v in value)

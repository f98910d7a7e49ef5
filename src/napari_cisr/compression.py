"""Which shipped weights suit an input: routing a model name by the input's compression.

A model name with a compression tag (``lite.x2.mild``) names its weights. A name without one
(``lite``, ``lite.x2``) is routed per input to the weights trained for its compression
(:data:`napari_cisr.registry.COMPRESSIONS`):

1. What the file says (:func:`compression_from_info`): a JPEG's quality, estimated from its
   quantisation table, or a WebP's, estimated from its frame header, below the codec's
   :data:`HEAVY_QUALITY` → ``heavy``, from its :data:`MILD_QUALITY` → ``mild``, between the two
   → ``strong`` (the general weights); a lossless WebP → ``mild``
   (:func:`napari_cisr.io.image_info` estimates the qualities).
2. Otherwise, what the pixels show (:func:`compression_from_pixels`), for PNG, TIFF, zarr
   stores and in-memory arrays: a JPEG blocking grid
   (:func:`napari_cisr.engine.grid.estimate_grid`) whose quantisation the pixels show
   (:func:`napari_cisr.quantisation.jpeg_quality_from_pixels`) is routed by that quality as a
   file's would be; a grid whose quality cannot be read (WebP's, a JPEG with few textured
   blocks) → ``strong`` (the general weights, trained for every compression: a grid shows at
   light qualities too; ``benchmarks/routing_by_pixels.py``); no grid → ``mild``.

Where the routed weights do not ship (a variant or scale without mild or heavy weights), the
general ones run.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from napari_cisr.registry import (
    DEFAULT_COMPRESSION,
    PRETRAINED,
    model_compression,
    parse_model_name,
    pretrained_key,
    with_compression,
)

__all__ = [
    "HEAVY_QUALITY",
    "MILD_QUALITY",
    "ROUTINGS",
    "compression_from_grid",
    "compression_from_info",
    "compression_from_pixels",
    "file_description",
    "input_compression",
    "is_routed",
    "route_model",
]

log = logging.getLogger(__name__)

#: Per codec, the (estimated IJG or libwebp) quality below which the weights for heavy
#: compression run, and the quality from which the weights for mild compression run; between
#: the two, the general weights. Chosen where each set of weights overtakes the next on training
#: and validation photos, never on held-out ones (``benchmarks/routing_thresholds.py``): the
#: heavy weights lead to JPEG q50 and WebP q20 at every scale, the general ones from JPEG q55
#: and WebP q25; the mild ones lead from JPEG q80 and WebP q45 at x2 and x3 (at x4 from q70
#: and q40, by at most 0.014 dB there).
HEAVY_QUALITY: dict[str, int] = {"jpeg": 55, "webp": 25}
MILD_QUALITY: dict[str, int] = {"jpeg": 75, "webp": 45}
#: How ``napari-cisr eval`` routes a name: as a file of each configuration would be (its
#: quality, then its pixels), or by the pixels alone, as an array, a PNG or a zarr store is.
ROUTINGS = ("file", "pixels")


def compression_from_info(info: Mapping[str, Any] | None) -> str | None:
    """The compression a file's description decides, or None where it does not.

    Parameters
    ----------
    info : mapping or None
        As :func:`napari_cisr.io.image_info` returns it (``codec``, ``quality`` for a JPEG or
        a lossy WebP, ``lossless`` for a WebP), or the ``source`` metadata the reader gives a
        layer.

    Returns
    -------
    str or None
        ``"heavy"``, ``"strong"``, ``"mild"``, or None (PNG, TIFF, a JPEG without a
        quantisation table, a WebP whose header was not read, nothing known): then the pixels
        decide.
    """
    if not info:
        return None
    codec, quality = info.get("codec"), info.get("quality")
    if codec == "webp" and info.get("lossless"):
        return "mild"
    if codec not in MILD_QUALITY or quality is None:
        return None
    return _by_quality(str(codec), int(quality))


def _by_quality(codec: str, quality: int) -> str:
    """``"heavy"`` below the codec's :data:`HEAVY_QUALITY`, ``"mild"`` from its
    :data:`MILD_QUALITY`, ``"strong"`` between."""
    if quality < HEAVY_QUALITY[codec]:
        return "heavy"
    return "mild" if quality >= MILD_QUALITY[codec] else "strong"


def file_description(path: str | os.PathLike) -> dict[str, Any] | None:
    """:func:`napari_cisr.io.image_info` of a file that has been read, None where its header
    cannot be described (an oddity the decoder tolerated): then the pixels route it."""
    from napari_cisr.io import ImageReadError, image_info

    try:
        return image_info(path)
    except ImageReadError:
        return None


def compression_from_pixels(image: Any) -> str:
    """The compression an image's pixels show (:func:`compression_from_grid` of its grid).

    Parameters
    ----------
    image : array
        H×W or H×W×C plane, numpy or dask (a dask plane is read crop by crop), as the
        engine takes it.

    Returns
    -------
    str
    """
    from napari_cisr.engine.grid import estimate_grid

    return compression_from_grid(estimate_grid(image))


def compression_from_grid(grid: Any) -> str:
    """The compression a plane's blocking grid shows.

    Parameters
    ----------
    grid : GridInfo or None
        What :func:`napari_cisr.engine.grid.estimate_grid` found on a plane; callers that
        hold it (the tiled drivers need it too) route without detecting it again.

    Returns
    -------
    str
        For a JPEG grid whose quality the pixels show, what a file of that quality gets;
        ``"strong"`` for a grid whose quality they do not, ``"mild"`` for no grid (None).
    """
    if grid is None:
        return "mild"
    if grid.jpeg_quality is not None:
        return _by_quality("jpeg", grid.jpeg_quality)
    return "strong"


def input_compression(image: Any = None, info: Mapping[str, Any] | None = None) -> str:
    """The compression of one input: what its file says, else what its pixels show.

    Parameters
    ----------
    image : array, optional
        The input plane (numpy or dask), for :func:`compression_from_pixels`.
    info : mapping, optional
        The input file's description, for :func:`compression_from_info`.

    Returns
    -------
    str
        Any of the three, from the file or from the pixels;
        :data:`napari_cisr.registry.DEFAULT_COMPRESSION` where neither is given.
    """
    compression = compression_from_info(info)
    if compression is not None:
        return compression
    return DEFAULT_COMPRESSION if image is None else compression_from_pixels(image)


def route_model(model: Any, scale: int, compression: str) -> Any:
    """The model to run on an input of ``compression``: ``model`` with that tag where it has
    none and the package ships weights for it.

    Parameters
    ----------
    model : str, Path or CISRPSI
        What the user chose. A weight file, a loaded network or a tagged name is returned as
        it is.
    scale : int
        The scale it runs at.
    compression : str
        The input's, as :func:`input_compression` finds it.

    Returns
    -------
    str, Path or CISRPSI
        For a name without a tag, the name with one (``"lite.mild"``); the general weights'
        tag where no weights for ``compression`` ship at this scale.
    """
    if not is_routed(model):
        return model
    named = parse_model_name(str(model), scale)
    if pretrained_key(*named, compression) not in PRETRAINED:
        compression = DEFAULT_COMPRESSION
    log.debug("%s at x%d: the weights for %s compression", model, scale, compression)
    return with_compression(str(model), compression)


def is_routed(model: Any) -> bool:
    """Whether ``model`` is a name without a compression tag, which each input routes."""
    return (
        isinstance(model, (str, Path))
        and model_compression(str(model)) is None
        and parse_model_name(str(model)) is not None
    )

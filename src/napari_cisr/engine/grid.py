"""The compression grid of a whole plane, detected once for all its tiles."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from napari_cisr.blocking import detect_blocking
from napari_cisr.quantisation import jpeg_quality_from_pixels

#: Whole-plane grid detection up to this many pixels; above it, crops are sampled (so the
#: detection's memory stays bounded: it holds a few float32 maps of what it analyses).
_GRID_WHOLE_PIXELS = 1024 * 1024
#: Side of the crops sampled for grid detection on larger planes.
_GRID_CROP = 1024


@dataclass(frozen=True)
class GridInfo:
    """Compression grid of a whole plane: ``period`` and ``offset`` as (rows, columns), and
    ``jpeg_quality``, the IJG quality its pixels show where the grid is JPEG's 8×8 one and
    its quantisation can be read (:func:`napari_cisr.quantisation.jpeg_quality_from_pixels`),
    else None."""

    period: tuple[int, int]
    offset: tuple[int, int]
    jpeg_quality: int | None = None


def _grid_crops(shape: tuple[int, int]) -> list[tuple[slice, slice]]:
    """The whole plane when small, else five crops (centre and the four quadrant centres)."""
    height, width = shape
    if height * width <= _GRID_WHOLE_PIXELS:
        return [(slice(0, height), slice(0, width))]
    ch, cw = min(_GRID_CROP, height), min(_GRID_CROP, width)
    crops = []
    for fy, fx in ((0.5, 0.5), (0.25, 0.25), (0.25, 0.75), (0.75, 0.25), (0.75, 0.75)):
        y0 = min(max(0, int(fy * height) - ch // 2), height - ch)
        x0 = min(max(0, int(fx * width) - cw // 2), width - cw)
        crops.append((slice(y0, y0 + ch), slice(x0, x0 + cw)))
    return crops


def _grid_from_crops(origins: list[tuple[int, int]], *crops: np.ndarray) -> GridInfo | None:
    """Best grid over the crops (highest score), offsets moved to plane coordinates, with the
    JPEG quality read on the crop that showed it best."""
    best = None
    for (y0, x0), crop in zip(origins, crops, strict=True):
        crop = np.asarray(crop)
        report = detect_blocking(crop)
        if report.grid is not None and (best is None or report.score > best[0]):
            best = (report.score, report, (y0, x0), crop)
    if best is None:
        return None
    _, report, (y0, x0), crop = best
    period = report.grid
    offset = ((report.offset[0] + y0) % period[0], (report.offset[1] + x0) % period[1])
    quality = jpeg_quality_from_pixels(crop, report.offset) if period == (8, 8) else None
    return GridInfo(period, offset, quality)


def lazy_grid(image: Any) -> Any:
    """:func:`estimate_grid` of a dask plane as a ``dask.delayed`` task (reads only the crops).

    The task is pure: the same plane gives the same key, so a scheduler computes it once.
    """
    import dask

    crops = _grid_crops(image.shape[:2])
    origins = [(ys.start, xs.start) for ys, xs in crops]
    return dask.delayed(_grid_from_crops, pure=True)(origins, *(image[ys, xs] for ys, xs in crops))


def estimate_grid(image: Any) -> GridInfo | None:
    """Detect the compression grid of a whole plane once, for all its tiles.

    Planes up to 1024×1024 pixels are analysed whole (the same detection the untiled network
    runs); larger ones through five 1024×1024 crops (the centre and the centres of the four
    quadrants), keeping the strongest detection.

    Parameters
    ----------
    image : array
        H×W or H×W×C plane (numpy; a dask array is computed crop by crop).

    Returns
    -------
    GridInfo or None
        ``None`` when no blocking is detected; for a JPEG grid, with the quality its pixels
        show where they show one.
    """
    crops = _grid_crops(image.shape[:2])
    origins = [(ys.start, xs.start) for ys, xs in crops]
    return _grid_from_crops(origins, *(np.asarray(image[ys, xs]) for ys, xs in crops))

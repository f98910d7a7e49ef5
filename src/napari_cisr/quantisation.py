"""The JPEG quality a decoded image was compressed at, read from its pixels.

A file says its JPEG quality in its quantisation table (:func:`napari_cisr.io.image_info`);
an array, a PNG or a zarr store made from a JPEG does not, but its pixels keep the trace.
JPEG divides the 8×8 DCT coefficients of each luminance block by the steps of its
quantisation table and rounds them, so the coefficients of the decoded blocks (on the block
grid, recomputed from the decoded RGB) lie close to whole multiples of their steps; only the
8-bit rounding of the decoded pixels and the chroma round trip blur them, by about a third of
a level. For every IJG quality (:data:`napari_cisr.io.info.IJG_LUMA_TABLES`) this measures how
well the coefficients of the ten lowest AC frequencies fit multiples of that quality's steps:
the mean of ``cos(2π·c/step)`` over the coefficients that were quantised to a non-zero level
(``|c| > step/2``; zeros fit any step). A table whose steps are larger than the true ones (a
lower quality) leaves many coefficients halfway between its multiples, one whose steps are
smaller fits only where they happen to divide the true ones, so the true quality fits best.
WebP's 4×4 transforms, quantised per segment and smoothed by its loop filter, leave no such
trace: its fit stays near 0, and so does an image resampled after compression.
"""

from __future__ import annotations

import logging

import numpy as np

from napari_cisr.io.info import IJG_LUMA_TABLES

__all__ = ["MIN_FIT", "jpeg_quality_from_pixels"]

log = logging.getLogger(__name__)

#: The fit (mean ``cos(2π·c/step)``, 1 for coefficients exactly on the steps' multiples, about
#: 0 for coefficients unrelated to them) a quality's table needs to be reported: halfway
#: between a JPEG's fit of its own table, near 1, and WebP's fit of any table, near 0
#: (``tests/test_quantisation.py``; ``benchmarks/routing_by_pixels.py`` reads no quality in
#: WebP and the right one, to within one, in most JPEGs that show a grid).
MIN_FIT = 0.5
#: The lowest AC frequencies (row, column), where most coefficients survive quantisation.
_FREQUENCIES = ((0, 1), (1, 0), (1, 1), (0, 2), (2, 0), (2, 1), (1, 2), (2, 2), (0, 3), (3, 0))
#: A frequency counts for a table only with at least this many coefficients above half its step.
_MIN_COEFFICIENTS = 20
#: Blocks analysed at most (evenly spaced), so the cost stays bounded on large planes.
_MAX_BLOCKS = 16384


def _dct_matrix() -> np.ndarray:
    """The orthonormal 8-point DCT-II matrix: JPEG's forward DCT is ``D @ block @ D.T``."""
    k, n = np.meshgrid(np.arange(8), np.arange(8), indexing="ij")
    matrix = np.sqrt(2 / 8) * np.cos(np.pi * (2 * n + 1) * k / 16)
    matrix[0] /= np.sqrt(2)
    return matrix


_DCT = _dct_matrix()


def _luma_0_255(image: np.ndarray) -> np.ndarray:
    """JPEG's luminance (BT.601, full range) in 0..255 levels, float64."""
    if image.dtype == np.uint8:
        plane = image.astype(np.float64)
    elif image.dtype == np.uint16:
        plane = image.astype(np.float64) / 257.0
    else:  # float in [0, 1], as the engine takes it
        plane = image.astype(np.float64) * 255.0
    if plane.ndim == 3:
        plane = plane[..., 0] if plane.shape[2] == 1 else plane[..., :3] @ [0.299, 0.587, 0.114]
    return plane


def _block_coefficients(luma: np.ndarray, offset: tuple[int, int]) -> np.ndarray:
    """The 8×8 DCT coefficients (N×8×8) of the whole blocks of ``luma`` on the grid."""
    plane = luma[offset[0] :, offset[1] :]
    rows, cols = plane.shape[0] // 8, plane.shape[1] // 8
    blocks = plane[: rows * 8, : cols * 8].reshape(rows, 8, cols, 8).transpose(0, 2, 1, 3)
    blocks = blocks.reshape(-1, 8, 8)
    if len(blocks) > _MAX_BLOCKS:
        blocks = blocks[np.linspace(0, len(blocks) - 1, _MAX_BLOCKS).astype(int)]
    return _DCT @ (blocks - 128.0) @ _DCT.T


def jpeg_quality_from_pixels(image: np.ndarray, offset: tuple[int, int] = (0, 0)) -> int | None:
    """Estimate the IJG quality a JPEG-decoded image was compressed at, from its pixels.

    Parameters
    ----------
    image : numpy.ndarray
        ``H×W``, ``H×W×1``, ``H×W×3`` (RGB) or ``H×W×4`` (alpha ignored); uint8, uint16 or
        float in ``[0, 1]``, as decoded (not resampled since).
    offset : tuple of int
        ``(row, col)`` where the 8×8 block grid starts, as
        :func:`napari_cisr.blocking.detect_blocking` reports it.

    Returns
    -------
    int or None
        The quality (1..100) whose libjpeg luminance table the coefficients fit best, or None
        where none fits by :data:`MIN_FIT` (WebP, resampled or uncompressed pixels, another
        encoder's tables) or the image has too few non-flat blocks to tell.
    """
    image = np.asarray(image)
    if image.dtype == np.bool_:
        return None
    if image.ndim == 3 and image.shape[2] == 4:
        image = image[..., :3]
    coefficients = _block_coefficients(_luma_0_255(image), (offset[0] % 8, offset[1] % 8))
    samples = [coefficients[:, row, col] for row, col in _FREQUENCIES]
    best_quality, best_fit = None, -np.inf
    for quality, table in enumerate(IJG_LUMA_TABLES.reshape(-1, 8, 8), start=1):
        fits = []
        for (row, col), values in zip(_FREQUENCIES, samples, strict=True):
            step = float(table[row, col])
            quantised = values[np.abs(values) > step / 2]
            if quantised.size >= _MIN_COEFFICIENTS:
                fits.append(np.cos(2 * np.pi * quantised / step).mean())
        if len(fits) >= 3 and np.mean(fits) > best_fit:
            best_quality, best_fit = quality, float(np.mean(fits))
    log.debug("JPEG quality from pixels: %s (fit %.3f)", best_quality, best_fit)
    return best_quality if best_fit >= MIN_FIT else None

"""Detect JPEG/WebP blocking artefacts and the grid they lie on.

Block-transform codecs quantise each block independently, so the decoded image shows small
discontinuities on the block boundaries.  Following Lesellier & Jung, "Arbitrary grid
detection" (ICIP 2002), the grid is found from the periodic peaks of boundary-gradient
profiles, separately for columns (vertical grid lines) and rows (horizontal grid lines):

1. *Step strength.*  On the luminance ``Y`` (BT.601) every column boundary ``c`` (between
   columns ``c - 1`` and ``c``) gets, per row, the part of the jump ``|Y[c] - Y[c-1]|`` that
   exceeds the larger of the two neighbouring jumps, divided by the jump itself
   (:func:`~napari_cisr.blocking_grid._boundary_step_strength`).  A blocking step in a flat or
   smooth region scores close to 1; a real edge or texture, whose gradients spread over the
   neighbouring columns too, scores lower; a flat region scores 0.  Being a ratio, it does not
   let textured images dominate.
2. *Profile.*  The step strength is averaged down each column over the *active* pixels only
   (those with any gradient nearby), so that large flat or saturated areas neither dilute nor
   fake the evidence (:func:`~napari_cisr.blocking_grid._column_profile`).
3. *Periodic peak.*  For every candidate period ``P`` in ``MIN_PERIOD..MAX_PERIOD`` the profile
   is split into its ``P`` phases (columns ``c ≡ j mod P``) and each phase is averaged.  The
   strength of period ``P`` is the gap between the strongest and the second strongest phase,
   minus twice the noise of a phase mean at that period, in units of the mean profile level
   (:func:`~napari_cisr.blocking_grid._periodic_peak`).  Comparing against the *second*
   strongest phase, not the average, is what picks the fundamental period: at a multiple of the
   true period (16 for an 8-grid) two phases are equally strong and the gap vanishes, and at a
   divisor (4 for an 8-grid) the peak phase is diluted by block interiors.  A period only counts
   when most of its grid lines (and at least four) stand out locally, so that two long real
   edges a multiple of ``P`` apart do not make a grid.
4. The axis scores are combined with ``min`` (real codec grids show on both axes), and the grid
   is reported when the combined score reaches :data:`SCORE_THRESHOLD`.

Conventions (what the detector reports for common codecs; see ``tests/test_blocking.py``):

* JPEG, 4:4:4 and 4:2:0 alike: ``(8, 8)``.  The 16×16 MCU of chroma-subsampled JPEG only
  shows in the chroma channels, the luminance carries the 8×8 DCT grid.
* WebP (VP8): 16×16 macroblocks with 4×4 transforms and an in-loop deblocking filter.  Each
  axis reports 16 (macroblock edges dominate), 4 (transform edges dominate) or sometimes 8,
  always with offsets ≡ 0 mod 4 for uncropped images.  The deblocking filter makes WebP
  blocking weak, so moderate-quality WebP images are often reported as unblocked.

Offsets: ``offset = (row, col)`` is the index of the first row/column where a block *starts*,
i.e. the grid lines are the boundaries between ``o - 1`` and ``o`` (mod the period).  A JPEG
cropped by 5 rows and 3 columns has ``offset == (-5 % 8, -3 % 8) == (3, 5)``.

The same torch core serves :func:`detect_blocking` (one numpy image, full report) and
:func:`blocking_map` (a batch inside the CISR-PSI network, where the map is ``d(z)``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch

from napari_cisr.blocking_grid import (
    MAX_PERIOD,
    MIN_PERIOD,
    SCORE_THRESHOLD,
    analyse,
    known_grid_map,
)

__all__ = [
    "MAX_PERIOD",
    "MIN_PERIOD",
    "SCORE_THRESHOLD",
    "BlockingReport",
    "blocking_map",
    "detect_blocking",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BlockingReport:
    """Result of :func:`detect_blocking`.

    Attributes
    ----------
    grid : tuple of int or None
        ``(period_y, period_x)`` in pixels, or ``None`` when the image shows no blocking
        (``score < SCORE_THRESHOLD``) or is too small to tell.
    offset : tuple of int
        ``(row, col)`` in ``[0, period)``: index of the first row/column where a block starts.
        ``(0, 0)`` when ``grid`` is None.
    score : float
        Strength of the periodic blocking, ``>= 0``: the gap between the strongest and the
        second strongest phase of the boundary-step profile (minus a noise allowance), in
        units of the mean profile level, taken as the minimum over the two axes.  About 0 for
        uncompressed images, 0.25-3.3 for JPEG at quality 50 (textured images lowest),
        1.8-5 at quality 10; see :data:`SCORE_THRESHOLD`.
    map : numpy.ndarray
        ``H×W`` float32 in ``[0, 1]``: strength of the blocking step on the two pixels
        flanking each detected grid line, 0 elsewhere; all zeros when ``grid`` is None.
    """

    grid: tuple[int, int] | None
    offset: tuple[int, int]
    score: float
    map: np.ndarray


def detect_blocking(image: np.ndarray) -> BlockingReport:
    """Detect the blocking grid of a JPEG/WebP-decoded image.

    Parameters
    ----------
    image : numpy.ndarray
        ``H×W`` (grey), ``H×W×1``, ``H×W×3`` (RGB) or ``H×W×4`` (RGBA, alpha ignored).
        dtype uint8 (0-255), uint16 (0-65535), bool, or float (assumed in ``[0, 1]``).
        Any size.  A grid needs at least four lines along an axis, so an axis is analysed
        only when it is at least ``4 * MIN_PERIOD + 3`` = 19 pixels long (and then for
        periods up to ``(length - 3) // 4``: 35 pixels for JPEG's 8-grid), and only when
        the image is at least 16 pixels across it.  Smaller images (1×1, 5×7, ...) give
        ``grid=None``.

    Returns
    -------
    BlockingReport
        Grid period and offset, score, and an ``H×W`` float32 map in ``[0, 1]``.  When only
        one axis can be analysed, or only one is long enough for the period found on the
        other, that axis decides alone: the grid is assumed square (its period on both
        axes), the other axis's offset is reported as 0, and the map marks only that axis's
        grid lines.

    Raises
    ------
    ValueError
        If ``image`` is not 2-D or 3-D with 1, 3 or 4 channels.
    TypeError
        If the dtype is not one of the supported ones.
    """
    image = np.asarray(image)
    if image.ndim == 3:
        if image.shape[2] not in (1, 3, 4):
            raise ValueError(
                f"expected an H×W×C image with C in (1, 3, 4), got shape {image.shape}"
            )
        image = image[..., :3] if image.shape[2] == 4 else image
    elif image.ndim != 2:
        raise ValueError(f"expected an H×W, H×W×3 or H×W×4 image, got shape {image.shape}")

    height, width = image.shape[:2]
    if height == 0 or width == 0:
        return BlockingReport(None, (0, 0), 0.0, np.zeros((height, width), np.float32))

    planes = image[..., None] if image.ndim == 2 else image  # H×W×C
    batch = torch.from_numpy(_as_unit_float32(planes)).permute(2, 0, 1).unsqueeze(0)
    with torch.no_grad():
        analysis = analyse(batch)

    score = float(analysis.score[0])
    blocking_map_ = analysis.map[0, 0].numpy()
    if not bool(analysis.detected[0]):
        logger.debug("no blocking grid: score %.3f < %.3f", score, SCORE_THRESHOLD)
        return BlockingReport(None, (0, 0), score, np.zeros((height, width), np.float32))

    period_y, period_x = (int(p) for p in analysis.period[0])
    phase_y, phase_x = (int(p) for p in analysis.phase[0])
    logger.debug(
        "blocking grid (%d, %d) offset (%d, %d), score %.3f",
        period_y,
        period_x,
        phase_y,
        phase_x,
        score,
    )
    return BlockingReport((period_y, period_x), (phase_y, phase_x), score, blocking_map_)


def blocking_map(
    z: torch.Tensor,
    grid: tuple[int, int] | None = None,
    offset: tuple[int, int] = (0, 0),
) -> torch.Tensor:
    """Map of pixels lying on blocking edges, ``d(z)`` of CISR-PSI.

    Every batch element gets its own grid estimate; elements without detectable blocking get
    an all-zero map.  Computed under ``torch.no_grad()`` with batched torch ops only.

    Parameters
    ----------
    z : torch.Tensor
        ``B×C×H×W`` float, values in ``[0, 1]``, ``C`` = 1 (grey) or 3 (RGB).
    grid : tuple of int, optional
        ``(period_y, period_x)`` of a grid already known (e.g. detected once on a whole image
        that is then processed in tiles): no detection runs, and the map marks that grid's
        lines on every batch element.  Default ``None``: detect per element.
    offset : tuple of int
        ``(row, col)`` of the known grid relative to ``z``'s first pixel, as in
        :class:`BlockingReport`; only used with ``grid``.

    Returns
    -------
    torch.Tensor
        ``B×1×H×W`` in ``[0, 1]``, same device and dtype as ``z``: 1 on the pixels flanking a
        grid line that shows a blocking step, 0 off the grid.  The network keeps non-local
        candidates with weight ``1 - map``.

    Raises
    ------
    ValueError
        If ``z`` is not 4-D with 1 or 3 channels.
    """
    if z.ndim != 4 or z.shape[1] not in (1, 3):
        raise ValueError(f"expected a B×C×H×W tensor with C in (1, 3), got shape {tuple(z.shape)}")
    with torch.no_grad():
        if grid is not None:
            return known_grid_map(z, grid, offset).to(z.dtype)
        return analyse(z).map.to(z.dtype)


def _as_unit_float32(image: np.ndarray) -> np.ndarray:
    """Scale an integer/bool/float image to float32 in [0, 1] (floats are taken as they are)."""
    if image.dtype == np.uint8:
        return image.astype(np.float32) / np.float32(255)
    if image.dtype == np.uint16:
        return image.astype(np.float32) / np.float32(65535)
    if image.dtype == np.bool_ or np.issubdtype(image.dtype, np.floating):
        return image.astype(np.float32)
    raise TypeError(f"unsupported dtype {image.dtype}: expected uint8, uint16, bool or float")

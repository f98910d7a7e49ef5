"""Detect JPEG/WebP blocking artefacts and the grid they lie on.

Block-transform codecs quantise each block independently, so the decoded image shows small
discontinuities on the block boundaries.  Following Lesellier & Jung, "Arbitrary grid
detection" (ICIP 2002), the grid is found from the periodic peaks of boundary-gradient
profiles, separately for columns (vertical grid lines) and rows (horizontal grid lines):

1. *Step strength.*  On the luminance ``Y`` (BT.601) every column boundary ``c`` (between
   columns ``c - 1`` and ``c``) gets, per row, the part of the jump ``|Y[c] - Y[c-1]|`` that
   exceeds the larger of the two neighbouring jumps, divided by the jump itself
   (:func:`_boundary_step_strength`).  A blocking step in a flat or smooth region scores close
   to 1; a real edge or texture, whose gradients spread over the neighbouring columns too,
   scores lower; a flat region scores 0.  Being a ratio, it does not let textured images
   dominate.
2. *Profile.*  The step strength is averaged down each column over the *active* pixels only
   (those with any gradient nearby), so that large flat or saturated areas neither dilute nor
   fake the evidence (:func:`_column_profile`).
3. *Periodic peak.*  For every candidate period ``P`` in ``MIN_PERIOD..MAX_PERIOD`` the profile
   is split into its ``P`` phases (columns ``c ≡ j mod P``) and each phase is averaged.  The
   strength of period ``P`` is the gap between the strongest and the second strongest phase,
   minus twice the noise of a phase mean at that period, in units of the mean profile level
   (:func:`_periodic_peak`).  Comparing against the *second* strongest phase, not the average,
   is what picks the fundamental period: at a multiple of the true period (16 for an 8-grid)
   two phases are equally strong and the gap vanishes, and at a divisor (4 for an 8-grid) the
   peak phase is diluted by block interiors.  A period only counts when most of its grid
   lines (and at least four) stand out locally, so that two long real edges a multiple of
   ``P`` apart do not make a grid.
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
from typing import NamedTuple

import numpy as np
import torch

__all__ = [
    "MAX_PERIOD",
    "MIN_PERIOD",
    "SCORE_THRESHOLD",
    "BlockingReport",
    "blocking_map",
    "detect_blocking",
]

logger = logging.getLogger(__name__)

#: Smallest and largest grid period searched (pixels), per axis.
MIN_PERIOD = 4
MAX_PERIOD = 32

#: Grid is reported when the blocking score reaches this value.  Calibrated on 15 of
#: scikit-image's images with Pillow round trips: uncompressed photos (originals and 2×/3×
#: bicubic downscales) score <= 0.08, most exactly 0; JPEG at quality <= 50 scores >= 0.25
#: (the textured ``grass``; 1.6-3.3 for smooth photos), 1.8-5 at quality 10; JPEG at
#: quality 90 scores 0-0.7 and 95 or more is mostly below the threshold; WebP at quality
#: 5-40 scores 0-0.6.  On 48×48 patches about 2 % of uncompressed patches pass it.
SCORE_THRESHOLD = 0.15

# BT.601 luma weights (the Y of JPEG's YCbCr).
_LUMA_WEIGHTS = (0.299, 0.587, 0.114)

# Softens the step-strength ratio for tiny jumps, in [0, 1] intensity units: a jump of one
# 8-bit grey level next to flat neighbours scores 0.5 instead of 1, so rounding noise does not
# look like a blocking step of full strength.
_STEP_SOFTNESS = 1.0 / 255.0

# A pixel is "active" when any of the three jumps around it exceeds half an 8-bit grey level.
_ACTIVITY_LEVEL = 0.5 / 255.0

# Columns with fewer active pixels than this carry no usable evidence and are left out.
_MIN_ACTIVE_PIXELS = 2

# A column profile averaged over fewer pixels than this (an image narrower than this across
# the analysed axis) is too noisy: random-noise strips 2-8 pixels wide fake grids otherwise.
_MIN_PROFILE_DEPTH = 16

# A period counts only when at least this many, and this fraction, of the grid lines of its
# strongest phase stand out of their local background by _SUPPORT_MARGIN × the phase gap.
_MIN_SUPPORTING_LINES = 4
_MIN_SUPPORTING_FRACTION = 0.5
_SUPPORT_MARGIN = 0.25

# The double period is preferred when it scores at least this fraction of the best period.
_MULTIPLE_PREFERENCE = 0.5

# How many noise standard deviations of a phase mean are subtracted from the peak gap.
_NOISE_PENALTY = 2.0

# Keeps the score finite on images whose profile level is ~0.
_LEVEL_FLOOR = 1e-3


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


class _Analysis(NamedTuple):
    """Per-image results of the torch core, batch dimension first."""

    map: torch.Tensor  # B×1×H×W, in [0, 1]
    score: torch.Tensor  # B, >= 0
    period: torch.Tensor  # B×2 (y, x), int64; 0 where neither axis could be analysed
    phase: torch.Tensor  # B×2 (y, x), int64
    detected: torch.Tensor  # B, bool: score >= SCORE_THRESHOLD


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
        analysis = _analyse(batch)

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
            return _known_grid_map(z, grid, offset).to(z.dtype)
        return _analyse(z).map.to(z.dtype)


def _known_grid_map(
    z: torch.Tensor, grid: tuple[int, int], offset: tuple[int, int]
) -> torch.Tensor:
    """``B×1×H×W`` map of a given grid: the map of :func:`_analyse` without the detection."""
    work_dtype = torch.float64 if z.dtype == torch.float64 else torch.float32
    luminance = _to_luminance(z.to(work_dtype))
    strength_x, _ = _boundary_step_strength(luminance)
    strength_y, _ = _boundary_step_strength(luminance.transpose(1, 2))
    batch, device = z.shape[0], z.device

    def per_image(value: int) -> torch.Tensor:
        return torch.full((batch,), int(value), dtype=torch.int64, device=device)

    enabled = torch.ones(batch, dtype=torch.bool, device=device)
    period_y, period_x = (max(1, int(p)) for p in grid)
    map_x = _grid_line_map(
        strength_x, per_image(period_x), per_image(offset[1] % period_x), enabled
    )
    map_y = _grid_line_map(
        strength_y, per_image(period_y), per_image(offset[0] % period_y), enabled
    )
    return torch.maximum(map_x, map_y.transpose(1, 2)).unsqueeze(1)


def _as_unit_float32(image: np.ndarray) -> np.ndarray:
    """Scale an integer/bool/float image to float32 in [0, 1] (floats are taken as they are)."""
    if image.dtype == np.uint8:
        return image.astype(np.float32) / np.float32(255)
    if image.dtype == np.uint16:
        return image.astype(np.float32) / np.float32(65535)
    if image.dtype == np.bool_ or np.issubdtype(image.dtype, np.floating):
        return image.astype(np.float32)
    raise TypeError(f"unsupported dtype {image.dtype}: expected uint8, uint16, bool or float")


def _analyse(z: torch.Tensor) -> _Analysis:
    """The shared torch core: grid estimate and blocking map for each image of a batch.

    Parameters
    ----------
    z : torch.Tensor
        ``B×C×H×W`` float in ``[0, 1]``, ``C`` = 1 or 3.
    """
    # float16/bfloat16 lack the precision for one-grey-level jumps; float64 input is kept.
    work_dtype = torch.float64 if z.dtype == torch.float64 else torch.float32
    luminance = _to_luminance(z.to(work_dtype))  # B×H×W

    # Columns (x) are analysed on the image, rows (y) on its transpose, with the same code.
    height, width = luminance.shape[-2:]
    strength_x, active_x = _boundary_step_strength(luminance)
    strength_y, active_y = _boundary_step_strength(luminance.transpose(1, 2))
    score_x, period_x, phase_x = _periodic_peak(_column_profile(strength_x, active_x))
    score_y, period_y, phase_y = _periodic_peak(_column_profile(strength_y, active_y))

    # An axis is analysable when it can hold a grid (period > 0) and its profile averages
    # enough pixels across; an analysable axis only has a say on the other axis's grid when
    # it is long enough to hold that grid's period (a 30-row strip cannot confirm or refute
    # an 8-grid found on its columns).
    analysable_x = (period_x > 0) & (height >= _MIN_PROFILE_DEPTH)
    analysable_y = (period_y > 0) & (width >= _MIN_PROFILE_DEPTH)
    usable_x = analysable_x & (~analysable_y | (_longest_period(width) >= period_y))
    usable_y = analysable_y & (~analysable_x | (_longest_period(height) >= period_x))
    # Real codec grids show on both axes, so the weaker axis decides.
    score = torch.where(
        usable_x & usable_y,
        torch.minimum(score_x, score_y),
        torch.where(usable_x, score_x, score_y),
    )
    score = torch.where(usable_x | usable_y, score, torch.zeros_like(score))
    detected = score >= SCORE_THRESHOLD

    map_x = _grid_line_map(strength_x, period_x, phase_x, detected & usable_x)
    map_y = _grid_line_map(strength_y, period_y, phase_y, detected & usable_y)
    line_map = torch.maximum(map_x, map_y.transpose(1, 2)).unsqueeze(1)

    # An axis without a say borrows the other axis's period (codec blocks are square), with
    # offset 0 since its grid lines could not be located.
    no_period = torch.zeros_like(period_x)
    period = torch.stack(
        [
            torch.where(usable_y, period_y, torch.where(usable_x, period_x, no_period)),
            torch.where(usable_x, period_x, torch.where(usable_y, period_y, no_period)),
        ],
        dim=1,
    )
    phase = torch.stack(
        [torch.where(usable_y, phase_y, no_period), torch.where(usable_x, phase_x, no_period)],
        dim=1,
    )
    return _Analysis(line_map, score, period, phase, detected)


def _to_luminance(z: torch.Tensor) -> torch.Tensor:
    """``B×C×H×W`` → ``B×H×W`` BT.601 luma (grey images pass through)."""
    if z.shape[1] == 1:
        return z[:, 0]
    red, green, blue = z[:, 0], z[:, 1], z[:, 2]
    return _LUMA_WEIGHTS[0] * red + _LUMA_WEIGHTS[1] * green + _LUMA_WEIGHTS[2] * blue


def _boundary_step_strength(luminance: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Blocking-step strength on every column boundary.

    Parameters
    ----------
    luminance : torch.Tensor
        ``B×H×W`` float.

    Returns
    -------
    strength : torch.Tensor
        ``B×H×W`` in ``[0, 1]``; entry ``[..., c]`` belongs to the boundary between columns
        ``c - 1`` and ``c`` (column 0 has no boundary and is 0).
    active : torch.Tensor
        ``B×H×W`` bool: the boundary or one of its two neighbours has a non-negligible jump.
    """
    batch, height, width = luminance.shape
    if width < 2:
        zeros = luminance.new_zeros(batch, height, width)
        return zeros, zeros.bool()
    jump = (luminance[..., 1:] - luminance[..., :-1]).abs()  # jump[..., c-1] is boundary c
    # Zero padding: at the image border the missing neighbour jump counts as flat.
    padded = torch.nn.functional.pad(jump, (1, 1))
    left, centre, right = padded[..., :-2], padded[..., 1:-1], padded[..., 2:]
    neighbours = torch.maximum(left, right)
    # The step is the part of the jump that stands out of its neighbours: a real edge or
    # texture also has large jumps on the adjacent columns, a block boundary in a smooth
    # region does not.
    strength = (centre - neighbours).clamp(min=0) / (centre + _STEP_SOFTNESS)
    active = torch.maximum(centre, neighbours) > _ACTIVITY_LEVEL
    column_zero = luminance.new_zeros(batch, height, 1)
    strength = torch.cat([column_zero, strength], dim=-1)
    active = torch.cat([column_zero.bool(), active], dim=-1)
    return strength, active


def _column_profile(strength: torch.Tensor, active: torch.Tensor) -> torch.Tensor:
    """Mean step strength per column boundary over its active pixels.

    Returns
    -------
    torch.Tensor
        ``B×W``; NaN where the column has too few active pixels, and on the boundaries
        ``c < 2`` and ``c > W - 2`` whose neighbour jumps are partly outside the image.
    """
    active_count = active.sum(dim=1, dtype=strength.dtype)  # B×W
    profile = (strength * active).sum(dim=1) / active_count.clamp(min=1)
    width = strength.shape[-1]
    column = torch.arange(width, device=strength.device)
    inside = (column >= 2) & (column <= width - 2)
    usable = inside & (active_count >= _MIN_ACTIVE_PIXELS)
    return torch.where(usable, profile, torch.full_like(profile, float("nan")))


def _longest_period(length: int) -> int:
    """Longest period searched along an axis of ``length`` pixels (< MIN_PERIOD: none).

    A period needs room for ``_MIN_SUPPORTING_LINES`` lines per phase among the boundaries
    ``2..length-2`` that have both neighbours inside the image.
    """
    return min(MAX_PERIOD, (length - 3) // _MIN_SUPPORTING_LINES)


def _periodic_peak(profile: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Best grid period and phase of a boundary profile, with its score.

    Parameters
    ----------
    profile : torch.Tensor
        ``B×W`` float, NaN for columns without evidence.

    Returns
    -------
    score : torch.Tensor
        ``B``, ``>= 0``.
    period : torch.Tensor
        ``B`` int64 in ``[MIN_PERIOD, MAX_PERIOD]``, or 0 where the axis is too short for any
        candidate period.
    phase : torch.Tensor
        ``B`` int64 in ``[0, period)``: the grid lines are the boundaries ``c ≡ phase``.
    """
    batch, width = profile.shape
    device, dtype = profile.device, profile.dtype
    longest = _longest_period(width)
    if longest < MIN_PERIOD:
        zeros = torch.zeros(batch, dtype=torch.int64, device=device)
        return profile.new_zeros(batch), zeros, zeros
    periods = torch.arange(MIN_PERIOD, longest + 1, device=device)  # N

    # Gather the profile into a periods × repeats × phases array: entry [n, k, j] is column
    # j + k * periods[n]; phases j >= period and columns past the end read a NaN slot.
    most_repeats = -(-width // MIN_PERIOD)
    repeat = torch.arange(most_repeats, device=device)
    phase = torch.arange(MAX_PERIOD, device=device)
    column = phase[None, None, :] + repeat[None, :, None] * periods[:, None, None]
    outside = (column >= width) | (phase[None, None, :] >= periods[:, None, None])
    column = torch.where(outside, torch.full_like(column, width), column)
    padded = torch.cat([profile, profile.new_full((batch, 1), float("nan"))], dim=1)
    lines = padded[:, column]  # B×N×repeats×MAX_PERIOD
    # A phase without any usable boundary (e.g. block interiors of a flat JPEG) cannot win.
    phase_mean = torch.nanmean(lines, dim=2)  # B×N×MAX_PERIOD
    phase_level = torch.nan_to_num(phase_mean, nan=float("-inf"))
    top_two = phase_level.topk(2, dim=2)
    strongest, runner_up = top_two.values[..., 0], top_two.values[..., 1]  # B×N
    gap = strongest - runner_up
    best_phase = top_two.indices[..., 0]

    # A grid must show on many lines, not on a couple of long real edges that happen to be a
    # multiple of the period apart.  A line supports the grid when it stands out of the other
    # boundaries of its own period (same repeat) by _SUPPORT_MARGIN × the phase gap; the
    # comparison is local because the step strength drifts with the image content.
    winner_index = best_phase[:, :, None, None].expand(-1, -1, most_repeats, 1)
    winner_lines = lines.gather(3, winner_index)[..., 0]  # B×N×repeats
    others = lines.scatter(3, winner_index, float("nan"))
    local_background = torch.nanmean(others, dim=3)  # B×N×repeats
    margin = _SUPPORT_MARGIN * gap[..., None]
    supporting = (winner_lines - local_background >= margin).sum(dim=2)
    usable_lines = (~torch.isnan(winner_lines)).sum(dim=2)
    supported = (supporting >= _MIN_SUPPORTING_LINES) & (
        supporting >= _MIN_SUPPORTING_FRACTION * usable_lines
    )

    # Noise of a phase mean: the pooled within-phase spread of the lines over the number of
    # lines per phase.  Within-phase, so that the grid peaks of the right period do not count
    # as noise while any structure a wrong period fails to explain does.
    residual = lines - phase_mean[:, :, None, :]
    residual_variance = torch.nanmean(residual.square().flatten(2), dim=2)  # B×N
    usable_count = (~torch.isnan(profile)).sum(dim=1).clamp(min=1).to(dtype)  # B
    lines_per_phase = usable_count[:, None] / periods.to(dtype)[None, :]
    noise = torch.sqrt(residual_variance / lines_per_phase)
    level = torch.nan_to_num(torch.nanmean(profile, dim=1), nan=0.0)  # B
    score = (gap - _NOISE_PENALTY * noise) / (level[:, None] + _LEVEL_FLOOR)
    # gap is inf or nan when fewer than two phases have usable lines: no evidence.
    score = torch.where(supported & torch.isfinite(score), score, torch.zeros_like(score))
    score = score.clamp(min=0)

    best_score, best_index = score.max(dim=1)
    # A divisor of the true period (4 for an 8-grid) sees every real line too, with half the
    # noise allowance and twice the lines, so on small images it can win by a hair.  Move to
    # the double period when its peak phase extends the chosen one and its score is
    # comparable: under a true period P the double period's two strongest phases tie (gap ~ 0),
    # so this only fires when every other line of the chosen grid really is weaker.  One step
    # only (4 → 8, 8 → 16), and the score stays that of the best period: the evidence for
    # blocking does not change, only the period it is attributed to.
    double_index = best_index + periods[best_index]  # periods[i] == MIN_PERIOD + i
    has_double = double_index < len(periods)
    double_index = double_index.clamp(max=len(periods) - 1)
    double_score = score.gather(1, double_index[:, None])[:, 0]
    double_phase = best_phase.gather(1, double_index[:, None])[:, 0]
    chosen_phase = best_phase.gather(1, best_index[:, None])[:, 0]
    upgrade = (
        has_double
        & (double_phase % periods[best_index] == chosen_phase)
        & (double_score >= _MULTIPLE_PREFERENCE * best_score)
        & (double_score > 0)
    )
    best_index = torch.where(upgrade, double_index, best_index)

    best_period = periods[best_index]
    chosen_phase = best_phase.gather(1, best_index[:, None])[:, 0]
    return best_score, best_period, chosen_phase


def _grid_line_map(
    strength: torch.Tensor, period: torch.Tensor, phase: torch.Tensor, enabled: torch.Tensor
) -> torch.Tensor:
    """Step strength on the two columns flanking each grid line, 0 elsewhere.

    Parameters
    ----------
    strength : torch.Tensor
        ``B×H×W`` boundary step strength from :func:`_boundary_step_strength`.
    period, phase : torch.Tensor
        ``B`` int64 grid of each image (period 0 = none).
    enabled : torch.Tensor
        ``B`` bool: images whose grid was detected on this axis.

    Returns
    -------
    torch.Tensor
        ``B×H×W`` in ``[0, 1]``.
    """
    width = strength.shape[-1]
    column = torch.arange(width, device=strength.device)
    safe_period = period.clamp(min=1)[:, None]
    on_line = (column[None, :] % safe_period == phase[:, None]) & (column[None, :] >= 1)
    on_line &= enabled[:, None]
    boundary = strength * on_line[:, None, :]
    # Boundary c lies between columns c - 1 and c: mark both.
    line_map = boundary.clone()
    line_map[..., :-1] = torch.maximum(line_map[..., :-1], boundary[..., 1:])
    return line_map

"""The blocking grid estimator behind :mod:`napari_cisr.blocking`: steps 1-3 of its method.

Step strength (:func:`_boundary_step_strength`), the column profile over active pixels
(:func:`_column_profile`), the periodic peak with its noise penalty and local support
(:func:`_periodic_peak`) and the map of the found grid's lines (:func:`_grid_line_map`), all
batched torch operations; :func:`analyse` runs them on both axes of a batch and
:func:`known_grid_map` draws a grid given from outside. The method, its conventions and its
calibration are described in :mod:`napari_cisr.blocking`.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

__all__ = ["MAX_PERIOD", "MIN_PERIOD", "SCORE_THRESHOLD", "Analysis", "analyse", "known_grid_map"]

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


class Analysis(NamedTuple):
    """Per-image results of the torch core, batch dimension first."""

    map: torch.Tensor  # B×1×H×W, in [0, 1]
    score: torch.Tensor  # B, >= 0
    period: torch.Tensor  # B×2 (y, x), int64; 0 where neither axis could be analysed
    phase: torch.Tensor  # B×2 (y, x), int64
    detected: torch.Tensor  # B, bool: score >= SCORE_THRESHOLD


def analyse(z: torch.Tensor) -> Analysis:
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
    return Analysis(line_map, score, period, phase, detected)


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


def known_grid_map(z: torch.Tensor, grid: tuple[int, int], offset: tuple[int, int]) -> torch.Tensor:
    """``B×1×H×W`` map of a given grid: the map of :func:`analyse` without the detection."""
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

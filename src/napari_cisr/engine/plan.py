"""Where the tiles go: pure geometry and arithmetic, no torch at import.

The receptive field and halo of a network (from its config), the memory one pass needs, the
automatic tile choice, the core tiles of a plane, each tile's window (moved onto the
compression grid) and extent, and the raised-cosine blend weights that make overlapping
predictions a partition of unity. A tile's prediction reaches :attr:`TilePlan.reach` tiles
beyond its own on each side (its blend margin), which is what a scheduler needs to know to
finish an output block.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from napari_cisr.runtime import available_memory, resolve_device

if TYPE_CHECKING:
    from napari_cisr.engine.grid import GridInfo
    from napari_cisr.model.config import CISRConfig

log = logging.getLogger(__name__)

#: Tile cores start at multiples of this many LR pixels (a multiple of JPEG's 8 and WebP's 16).
ALIGN = 16
#: Largest grid period whose phase a window is aligned to; longer periods are left unaligned.
_MAX_ALIGNED_PERIOD = 16
#: Fraction of the available memory the automatic tile size may use.
_MEMORY_FRACTION = 0.5
#: Tile cores the automatic choice never exceeds (larger ones buy no throughput).
_MAX_AUTO_TILE = 2048
#: On the CPU, the automatic tile core is at most this: smaller working sets stay in the caches,
#: which outweighs the halos (1536² LR at x2: 256-px tiles take 0.52x the whole-image time,
#: 512-px 0.61x, 768-px 0.84x; ``benchmarks/tile_speed.py``, docs/benchmarks.md).
CPU_SPEED_TILE = 256
#: ...and an image is processed whole only when both its sides are at most this.
_CPU_WHOLE_SIDE = 384


# --------------------------------------------------------------------------------------------
# halo and memory from the model configuration
# --------------------------------------------------------------------------------------------


def _module_radii(config: CISRConfig) -> tuple[float, float]:
    """Receptive-field radius (LR pixels) of one ARM and of one REM application."""
    nonlocal_radius = config.search_radius + config.nonlocal_patch // 2
    if not config.use_nonlocal:
        nonlocal_radius = 0
    # RCAN backbone: head conv, per group (2 convs per block + the group's conv), body conv.
    backbone = 1 + config.groups * (2 * config.blocks + 1) + 1
    arm = nonlocal_radius + backbone + 1  # + tail conv (LR)
    # REM: upsampler convs (the second x2 stage of x4 runs at 2× LR: half an LR pixel), tail conv
    # at HR (1/s of an LR pixel); the long skip is upsampled bicubically (support 2 LR pixels).
    upsampler = 1.5 if config.scale == 4 else 1.0
    rem = max(nonlocal_radius + backbone + upsampler + 1 / config.scale, nonlocal_radius + 2)
    return float(arm), float(rem)


def receptive_field(config: CISRConfig, iterations: int | None = None) -> int:
    """Radius, in LR pixels, of the local receptive field of x̂_J (global pooling ignored).

    Every 3×3 convolution adds one pixel (at the resolution it runs at); the non-local operator
    adds its search radius r plus half its patch (similarities compare ``patch``×``patch``
    patches of g around each candidate; the bandwidth conv and the kept-weight average reach
    no further); bicubic resizes add their 2-pixel support. One iteration is an ARM followed by
    a REM, and x̂_0 = bicubic(z):

        R = 2 + J · (ARM + REM),
        ARM = (r + p) + B + 1,    REM = (r + p) + B + U + 1/s,
        B = 1 + groups · (2 · blocks + 1) + 1   (convs of one RCAN backbone),

    with p = patch // 2 and U = 1 (1.5 at x4) for the upsampler. At x2 the 4-block lite model
    has R = 100 LR pixels, the shipped 12-block lite 196, tiny 615, full 820: far more than an
    affordable halo. Channel attention makes the true receptive field the whole image.

    Parameters
    ----------
    config : CISRConfig
        The network's architecture.
    iterations : int, optional
        J; defaults to ``config.iterations``.

    Returns
    -------
    int
        Radius in LR pixels, rounded up.
    """
    arm, rem = _module_radii(config)
    return math.ceil(2 + (iterations or config.iterations) * (arm + rem))


def model_halo(config: CISRConfig) -> int:
    """Halo of context, in LR pixels, that tiles get on every side with a neighbour.

    The local receptive field R (:func:`receptive_field`, 100 LR pixels for the 4-block lite)
    bounds the pixels that can influence an output pixel, but their influence decays fast: the
    effective receptive field of a deep stack of convolutions is close to a Gaussian whose width
    grows like the square root of the depth (Luo et al., "Understanding the effective receptive
    field", NeurIPS 2016), and every unfolding iteration re-injects the original z through the
    skips. What the halo cannot remove is the channel attention's global pooling: each tile
    gates its channels with its own statistics.

    Measured on the trained 4-block lite x2 model, on held-out JPEG/WebP photos cut into 64- and
    128-pixel tiles (``benchmarks/tiling_quality.py``, docs/benchmarks.md), the tiled result's
    PSNR against the whole-image result is ~51-55 dB without a halo and reaches a plateau of
    ~68 dB (the global-pooling floor) from a halo of 8 on; 16 adds margin. Hence
    ``halo = HALO_PER_SQRT_RF · sqrt(R)``, rounded up to a multiple of 8: 16 for the 4-block
    lite, 24 for the 8-block lite of x4 (R ≈ 148) and the 12-block lite of x2 and x3 (R ≈ 196);
    tiny (R ≈ 615) and full (R ≈ 820), which have no trained weights to measure yet, get 40
    and 48 by the same law.
    The halo costs time, about ``((T + 2h) / T)²`` for tiles of side T.

    Parameters
    ----------
    config : CISRConfig
        The network's architecture.

    Returns
    -------
    int
        Halo in LR pixels, a multiple of 8.
    """
    radius = receptive_field(config)
    return int(8 * math.ceil(HALO_PER_SQRT_RF * math.sqrt(radius) / 8))


#: Halo per square root of the receptive-field radius; calibrated in docs/benchmarks.md.
HALO_PER_SQRT_RF = 1.5


def estimate_memory(config: CISRConfig, pixels: int) -> int:
    """Upper bound (bytes) on the peak memory of one forward pass on ``pixels`` LR pixels.

    ``4 · (6·F + 1.5·F·s² + 18·K)`` bytes per LR pixel for F features, scale s and K = (2r+1)²
    non-local candidates, plus 64 MiB. It was fitted to the first non-local operator, which
    stored all K weights per pixel; the streamed operator does not, so for lite the estimate
    is now 1.4-5.2x the measured peak (``benchmarks/inference_memory.py``, docs/benchmarks.md):
    safe, at the price of smaller automatic tiles than memory allows.
    """
    features, s2 = config.features, config.scale**2
    candidates = (2 * config.search_radius + 1) ** 2 if config.use_nonlocal else 0
    dense = 4 * (6 * features + 1.5 * features * s2) * pixels
    nonlocal_part = 4 * 18 * candidates * min(pixels, 24_000_000 // max(3 * candidates, 1))
    return int(dense + nonlocal_part + 64 * 2**20)


def choose_tile(
    config: CISRConfig,
    shape: tuple[int, int] | None,
    device: Any = "cpu",
    budget: int | None = None,
    parallel: int = 1,
    cap: int | None = None,
) -> int | None:
    """Tile side for an image, or ``None`` to process it whole.

    The tile is the largest that fits the memory budget, at most ``cap``; on the CPU the
    default cap is :data:`CPU_SPEED_TILE`, because smaller tiles run faster there, and an image
    is processed whole only when it fits in memory and both its sides are at most 384.

    Parameters
    ----------
    config : CISRConfig
        The network.
    shape : tuple of int or None
        (H, W) of the LR plane; ``None`` (size unknown, e.g. a stream) always gives a tile.
    device : str or torch.device
        Where the network runs; its free memory is the budget.
    budget : int, optional
        Bytes the computation may use; default half the free memory of ``device``
        (:func:`napari_cisr.runtime.available_memory`). Pass it to make the choice independent
        of how busy the machine is (tests, benchmarks, batch workers).
    parallel : int
        Tiles processed at the same time (dask threads); the budget is shared.
    cap : int, optional
        Largest core tile (default: :data:`CPU_SPEED_TILE` on the CPU, 2048 elsewhere).

    Returns
    -------
    int or None
        Core tile side in LR pixels (a multiple of :data:`ALIGN`, at least 64, at most 2048),
        or ``None`` to process the image whole.
    """
    device = resolve_device(device)
    if budget is None:
        budget = int(_MEMORY_FRACTION * available_memory(device))
    budget = max(budget // max(parallel, 1), 1)
    on_cpu = device.type == "cpu"
    if cap is None:
        cap = CPU_SPEED_TILE if on_cpu else _MAX_AUTO_TILE
    cap = min(cap, _MAX_AUTO_TILE)
    if (
        shape is not None
        and estimate_memory(config, shape[0] * shape[1]) <= budget
        and (not on_cpu or max(shape) <= max(_CPU_WHOLE_SIDE, cap))
    ):
        return None
    halo = model_halo(config)

    def window(side: int) -> int:  # pixels the network sees for a core of this side
        return (side + 2 * halo + _MAX_ALIGNED_PERIOD - 1) ** 2

    side = 64
    while side < cap and estimate_memory(config, window(side + ALIGN)) <= budget:
        side += ALIGN
    log.debug("automatic tile %d (budget %.0f MB)", side, budget / 2**20)
    return side


# --------------------------------------------------------------------------------------------
# geometry
# --------------------------------------------------------------------------------------------


def _axis_bounds(length: int, tile: int, minimum: int) -> tuple[int, ...]:
    """Core boundaries 0 = b_0 < … < b_m = length, at multiples of ``tile``.

    A last core shorter than ``minimum`` is merged into the one before it.
    """
    bounds = [*range(0, length, tile), length]
    if len(bounds) > 2 and bounds[-1] - bounds[-2] < minimum:
        del bounds[-2]
    return tuple(bounds)


@dataclass(frozen=True)
class TilePlan:
    """Where the tiles of one plane are.

    Attributes
    ----------
    shape : tuple of int
        (H, W) of the LR plane.
    scale : int
        s.
    tile : int
        Core side T (a multiple of :data:`ALIGN`).
    halo : int
        Context on each side with a neighbour, LR pixels.
    blend : int
        Half width of the blend bands, LR pixels (``0`` = hard seams).
    rows, cols : tuple of int
        Core boundaries along each axis.
    """

    shape: tuple[int, int]
    scale: int
    tile: int
    halo: int
    blend: int
    rows: tuple[int, ...]
    cols: tuple[int, ...]

    @property
    def depth(self) -> int:
        """Input overlap needed: the halo plus room to move a window onto the grid."""
        return self.halo + _MAX_ALIGNED_PERIOD - 1

    @property
    def reach(self) -> int:
        """Tiles on each side whose predictions reach into a tile's core: its blend margin
        (at most the halo, and no core is narrower than two margins) ends inside the
        neighbour, so an output block needs the tiles next to it and no further."""
        return 1 if self.blend else 0

    @property
    def grid_shape(self) -> tuple[int, int]:
        """Number of tiles along (rows, columns)."""
        return len(self.rows) - 1, len(self.cols) - 1

    @property
    def n_tiles(self) -> int:
        """Total number of tiles."""
        return (len(self.rows) - 1) * (len(self.cols) - 1)

    @property
    def compiled_side(self) -> int:
        """The standard window side of :meth:`compiled_window`: a core plus two halos plus the
        grid alignment, rounded up to :data:`ALIGN`."""
        return ALIGN * math.ceil((self.tile + 2 * self.halo + _MAX_ALIGNED_PERIOD - 1) / ALIGN)

    def compiled_window(self, window: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
        """``window`` grown, inside the plane, to the standard window side, so that a compiled
        network (one graph per input shape) sees one shape for nearly every tile of every
        plane with the same tile setting instead of one per edge shape.

        The standard side is :attr:`compiled_side`; a wider window (a merged last core) grows
        to the next multiple of 2 × :data:`ALIGN` instead, one of two or three sizes. A window
        is grown toward the plane's inside (an edge tile gains context on its inner side),
        never padded past the plane's border, so the network still sees the border as it is:
        the prediction changes only by context beyond the halo. Along an axis shorter than the
        size it would grow to, the window is kept.
        """
        standard = self.compiled_side

        def grow(lo: int, hi: int, length: int) -> tuple[int, int]:
            size = hi - lo
            target = standard if size <= standard else 2 * ALIGN * math.ceil(size / (2 * ALIGN))
            if length < target:
                return lo, hi
            hi = min(length, lo + target)
            return hi - target, hi

        wy0, wy1, wx0, wx1 = window
        return (*grow(wy0, wy1, self.shape[0]), *grow(wx0, wx1, self.shape[1]))

    def core_chunks(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Core sizes along each axis (the dask chunks of the input)."""
        return tuple(np.diff(self.rows).tolist()), tuple(np.diff(self.cols).tolist())

    def extended_chunks(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """HR sizes of each tile's prediction: core plus blend margins, times s."""

        def ext(bounds: tuple[int, ...]) -> tuple[int, ...]:
            out = []
            for k in range(len(bounds) - 1):
                lo, hi = axis_extent(bounds, k, self.blend)
                out.append((hi - lo) * self.scale)
            return tuple(out)

        return ext(self.rows), ext(self.cols)


def plan_tiles(
    shape: tuple[int, int], scale: int, tile: int, halo: int, blend: int | None = None
) -> TilePlan:
    """Plan the tiles of an H×W plane.

    Parameters
    ----------
    shape : tuple of int
        (H, W) in LR pixels.
    scale : int
        s.
    tile : int
        Requested core side, rounded down to a multiple of :data:`ALIGN` and raised to what the
        halo needs (every core must be at least as large as the overlap it lends).
    halo : int
        Context per side, LR pixels (:func:`model_halo`).
    blend : int, optional
        Half width of the blend bands; default ``halo // 2``, at most ``halo``.

    Returns
    -------
    TilePlan
    """
    if tile < 1:
        raise ValueError(f"tile must be a positive number of pixels, got {tile}")
    if halo < 0:
        raise ValueError(f"halo must be >= 0, got {halo}")
    blend = halo // 2 if blend is None else blend
    if not 0 <= blend <= halo:
        raise ValueError(f"blend must be between 0 and the halo ({halo}), got {blend}")
    depth = halo + _MAX_ALIGNED_PERIOD - 1
    minimum = max(depth, 2 * blend, 1)
    core = max(ALIGN * (tile // ALIGN), ALIGN * math.ceil(minimum / ALIGN))
    rows = _axis_bounds(shape[0], core, minimum)
    cols = _axis_bounds(shape[1], core, minimum)
    return TilePlan((shape[0], shape[1]), scale, core, halo, blend, rows, cols)


def axis_extent(bounds: tuple[int, ...], k: int, blend: int) -> tuple[int, int]:
    """LR extent predicted by tile k: its core plus ``blend`` on each side with a neighbour."""
    lo = bounds[k] - (blend if k > 0 else 0)
    hi = bounds[k + 1] + (blend if k < len(bounds) - 2 else 0)
    return lo, hi


def axis_window(
    bounds: tuple[int, ...], k: int, halo: int, period: int, offset: int
) -> tuple[int, int]:
    """LR window [w0, w1) the network sees for tile k along one axis.

    w0 is the core start minus the halo, moved back (by less than one period, at most
    :data:`_MAX_ALIGNED_PERIOD` − 1 pixels) onto a grid line, ``w0 ≡ offset (mod period)``;
    it stops at the image edge.
    """
    length = bounds[-1]
    start = bounds[k] - halo
    if 0 < period <= _MAX_ALIGNED_PERIOD:
        start -= (start - offset) % period
    lo = max(0, start) if k > 0 else 0
    hi = min(length, bounds[k + 1] + halo) if k < len(bounds) - 2 else length
    return lo, hi


def _ramp(positions: np.ndarray) -> np.ndarray:
    """Raised cosine from 0 to 1 over [0, 1]; ``ramp(t) + ramp(1 − t) = 1``."""
    t = np.clip(positions, 0.0, 1.0)
    return (0.5 - 0.5 * np.cos(np.pi * t)).astype(np.float32)


def axis_weights(bounds: tuple[int, ...], k: int, blend: int, factor: int) -> np.ndarray:
    """Blend weights of tile k along one axis, over its extent at ``factor``× resolution."""
    lo, hi = axis_extent(bounds, k, blend)
    coords = np.arange(lo * factor, hi * factor, dtype=np.float64) + 0.5
    weights = np.ones(coords.shape, np.float32)
    if blend == 0:
        return weights
    width = 2 * blend * factor
    if k > 0:
        start = (bounds[k] - blend) * factor
        band = coords < start + width
        weights[band] = _ramp((coords[band] - start) / width)
    if k < len(bounds) - 2:
        start = (bounds[k + 1] - blend) * factor
        band = coords >= start
        weights[band] *= 1.0 - _ramp((coords[band] - start) / width)
    return weights


def tile_geometry(
    plan: TilePlan, ty: int, tx: int, grid: GridInfo | None
) -> tuple[tuple[int, int, int, int], tuple[int, int, int, int], np.ndarray]:
    """(window, extent, HR blend weights) of tile (ty, tx); boxes as (y0, y1, x0, x1)."""
    period = grid.period if grid is not None else (ALIGN, ALIGN)
    offset = grid.offset if grid is not None else (0, 0)
    wy = axis_window(plan.rows, ty, plan.halo, period[0], offset[0])
    wx = axis_window(plan.cols, tx, plan.halo, period[1], offset[1])
    ey = axis_extent(plan.rows, ty, plan.blend)
    ex = axis_extent(plan.cols, tx, plan.blend)
    weights = np.outer(
        axis_weights(plan.rows, ty, plan.blend, plan.scale),
        axis_weights(plan.cols, tx, plan.blend, plan.scale),
    )
    return (*wy, *wx), (*ey, *ex), weights

"""Tiled inference: halo from the model, tiles on the compression grid, blended overlaps.

One image plane (H×W, H×W×3 or H×W×4) is cut into *core* tiles whose union is the image.
Each core is grown by a *halo* of context (derived from the model, :func:`model_halo`) into
the *window* the network sees; the window's first row and column are moved back onto the
detected JPEG/WebP grid, so every tile sees the grid with phase 0, the phase of an uncropped
JPEG. Every tile predicts its core plus a *blend* margin of ``blend`` LR pixels on each side
that has a neighbour; in the resulting 2·``blend`` wide bands two (four at corners) tiles
overlap and their predictions are mixed with complementary raised-cosine weights, so the
weights form a partition of unity and no seam is left where tiles meet. The final x̂_J and,
on request, every ŷ_j, x̂_j and the blocking map d(z) are blended the same way.

Two drivers share the per-tile code and give bit-identical results:

* :func:`tiled_super_resolve_steps` — numpy in, numpy out, a generator yielding one
  :class:`~napari_cisr.inference.Progress` per tile × iteration; closing it cancels at the
  next iteration boundary. Memory: one tile plus one row of tiles of output accumulator.
* :func:`tiled_super_resolve_dask` — dask in, lazy dask out: ``overlap`` + one ``map_blocks``
  runs the network per tile, a second ``overlap`` + ``map_blocks`` adds the blend bands of the
  neighbours. Output chunks are the core tiles scaled by s. Nothing runs until computed, not
  even grid detection (a delayed task reading a few crops of the image).

The grid is detected once for the whole plane (:func:`estimate_grid`) and handed to every
tile (``blocking_map(z, grid=..., offset=...)``), so the tiles agree on d(z) with the
whole-image map except within a couple of pixels of a window edge, which lies in the halo.

Why tiled and whole-image results differ at all: RCAN's channel attention averages every
feature map over the whole input, so each tile gates its channels with its own statistics,
and the receptive field of the unfolded network (:func:`receptive_field`) is wider than any
affordable halo. Both effects are measured in ``docs/benchmarks.md``.
"""

from __future__ import annotations

import logging
import math
import os
import uuid
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from napari_cisr.blocking import detect_blocking
from napari_cisr.inference import (
    Progress,
    SuperResolveResult,
    _resolve_model,
    check_image,
    from_network,
    to_network,
    unfold_outputs,
)
from napari_cisr.model import CISRPSI, CISRConfig
from napari_cisr.model.resize import bicubic_upsample
from napari_cisr.weights import inference_context, resolve_device, resolve_precision

log = logging.getLogger(__name__)

__all__ = [
    "ALIGN",
    "GridInfo",
    "TilePlan",
    "TiledDask",
    "build_tiled_dask",
    "choose_tile",
    "estimate_grid",
    "estimate_memory",
    "lazy_grid",
    "model_halo",
    "plan_tiles",
    "receptive_field",
    "tiled_super_resolve_dask",
    "tiled_super_resolve_steps",
]

#: Tile cores start at multiples of this many LR pixels (a multiple of JPEG's 8 and WebP's 16).
ALIGN = 16
#: Largest grid period whose phase a window is aligned to; longer periods are left unaligned.
_MAX_ALIGNED_PERIOD = 16
#: Whole-plane grid detection up to this many pixels; above it, crops are sampled (so the
#: detection's memory stays bounded: it holds a few float32 maps of what it analyses).
_GRID_WHOLE_PIXELS = 1024 * 1024
#: Side of the crops sampled for grid detection on larger planes.
_GRID_CROP = 1024
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


def available_memory(device: torch.device) -> int:
    """Bytes of free memory on ``device`` (CUDA: free device memory; CPU: MemAvailable)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return 4 * 2**30


def choose_tile(
    config: CISRConfig,
    shape: tuple[int, int] | None,
    device: str | torch.device = "cpu",
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
        Bytes the computation may use; default half the available memory.
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
    device = torch.device(resolve_device(device))
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


@dataclass(frozen=True)
class GridInfo:
    """Compression grid of a whole plane: ``period`` and ``offset`` as (rows, columns)."""

    period: tuple[int, int]
    offset: tuple[int, int]


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
    def grid_shape(self) -> tuple[int, int]:
        """Number of tiles along (rows, columns)."""
        return len(self.rows) - 1, len(self.cols) - 1

    @property
    def n_tiles(self) -> int:
        """Total number of tiles."""
        return (len(self.rows) - 1) * (len(self.cols) - 1)

    def core_chunks(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Core sizes along each axis (the dask chunks of the input)."""
        return tuple(np.diff(self.rows).tolist()), tuple(np.diff(self.cols).tolist())

    def extended_chunks(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """HR sizes of each tile's prediction: core plus blend margins, times s."""

        def ext(bounds: tuple[int, ...]) -> tuple[int, ...]:
            out = []
            for k in range(len(bounds) - 1):
                lo, hi = _extent(bounds, k, self.blend)
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


def _extent(bounds: tuple[int, ...], k: int, blend: int) -> tuple[int, int]:
    """LR extent predicted by tile k: its core plus ``blend`` on each side with a neighbour."""
    lo = bounds[k] - (blend if k > 0 else 0)
    hi = bounds[k + 1] + (blend if k < len(bounds) - 2 else 0)
    return lo, hi


def _window(
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


def _axis_weights(bounds: tuple[int, ...], k: int, blend: int, factor: int) -> np.ndarray:
    """Blend weights of tile k along one axis, over its extent at ``factor``× resolution."""
    lo, hi = _extent(bounds, k, blend)
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


# --------------------------------------------------------------------------------------------
# grid detection for a whole plane
# --------------------------------------------------------------------------------------------


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
    """Best grid over the crops (highest score), offsets moved to plane coordinates."""
    best = None
    for (y0, x0), crop in zip(origins, crops, strict=True):
        report = detect_blocking(np.asarray(crop))
        if report.grid is not None and (best is None or report.score > best[0]):
            period = report.grid
            offset = ((report.offset[0] + y0) % period[0], (report.offset[1] + x0) % period[1])
            best = (report.score, GridInfo(period, offset))
    return None if best is None else best[1]


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
        ``None`` when no blocking is detected.
    """
    crops = _grid_crops(image.shape[:2])
    origins = [(ys.start, xs.start) for ys, xs in crops]
    return _grid_from_crops(origins, *(np.asarray(image[ys, xs]) for ys, xs in crops))


# --------------------------------------------------------------------------------------------
# one tile
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Layout:
    """Channels of the packed HR prediction of a tile.

    HR part: [alpha (if any)] [x̂_J (3)] [x̂_1..x̂_{J-1} (3 each) if intermediates] [LR pack];
    the LR pack holds ŷ_1..ŷ_J (3 each), d(z) and the LR alpha, zero-padded to a multiple of
    s² channels and pixel-shuffled into HR (s² LR values per HR pixel, no loss).
    ``self_ensemble`` says how each tile's prediction is made (:func:`unfold_outputs`).
    """

    scale: int
    iterations: int
    alpha: bool
    intermediates: bool
    self_ensemble: bool = False

    @property
    def lr_channels(self) -> int:
        if not self.intermediates:
            return 0
        return 3 * self.iterations + 1 + int(self.alpha)

    @property
    def lr_packed(self) -> int:
        s2 = self.scale**2
        return -(-self.lr_channels // s2)

    @property
    def hr_direct(self) -> int:
        return int(self.alpha) + 3 * (self.iterations if self.intermediates else 1)

    @property
    def channels(self) -> int:
        return self.hr_direct + self.lr_packed


def _crop(
    tensor: torch.Tensor,
    window: tuple[int, int, int, int],
    extent: tuple[int, int, int, int],
    f: int,
) -> torch.Tensor:
    """Crop B×C×h×w (window at ``f``× resolution) to the extent (both in LR coordinates)."""
    wy0, _, wx0, _ = window
    ey0, ey1, ex0, ex1 = extent
    return tensor[..., (ey0 - wy0) * f : (ey1 - wy0) * f, (ex0 - wx0) * f : (ex1 - wx0) * f]


def _predict_tile(
    network: CISRPSI,
    window_pixels: np.ndarray,
    window: tuple[int, int, int, int],
    extent: tuple[int, int, int, int],
    weights: np.ndarray,
    grid: GridInfo | None,
    layout: _Layout,
    device: torch.device,
    dtype: torch.dtype = torch.float32,
) -> Generator[int, None, np.ndarray]:
    """Run the network on one window; yield after each iteration; return the weighted pack.

    Returns
    -------
    ndarray
        float32 (h·s)×(w·s)×K over the tile's extent, already multiplied by its blend weights.
    """
    s = layout.scale
    rgb, alpha = to_network(window_pixels)
    rgb = rgb.to(device)
    with inference_context(device, dtype):
        if grid is None or not network.config.use_blocking_mask:
            blocking = rgb.new_zeros(1, 1, *rgb.shape[2:])
        else:
            from napari_cisr.blocking import blocking_map

            local = (grid.offset[0] - window[0], grid.offset[1] - window[2])
            blocking = blocking_map(rgb, grid=grid.period, offset=local)
        steps: Iterator[tuple[torch.Tensor, torch.Tensor]] = unfold_outputs(
            network, rgb, layout.iterations, blocking, layout.self_ensemble
        )
    hr_parts: list[torch.Tensor] = []
    lr_parts: list[torch.Tensor] = []
    x_hat = None
    for j in range(layout.iterations):
        with inference_context(device, dtype):
            y_hat, x_hat = next(steps)
            if layout.intermediates:
                lr_parts.append(_crop(y_hat, window, extent, 1).float())
                if j < layout.iterations - 1:
                    hr_parts.append(_crop(x_hat, window, extent, s).float())
        yield j + 1
    with inference_context(device, dtype):
        head = [_crop(x_hat, window, extent, s).float()]
        if alpha is not None:
            alpha = alpha.to(device)
            hr_alpha = bicubic_upsample(alpha, s).clamp(0, 1)
            head.insert(0, _crop(hr_alpha, window, extent, s))
        parts = head + hr_parts
        if layout.intermediates:
            lr_parts.append(_crop(blocking, window, extent, 1).float())
            if alpha is not None:
                lr_parts.append(_crop(alpha, window, extent, 1))
            lr = torch.cat(lr_parts, dim=1)
            pad = layout.lr_packed * s * s - lr.shape[1]
            if pad:
                lr = torch.cat([lr, lr.new_zeros(1, pad, *lr.shape[2:])], dim=1)
            parts.append(torch.nn.functional.pixel_shuffle(lr, s))
        packed = torch.cat(parts, dim=1)[0].permute(1, 2, 0).cpu().numpy()
    return packed * weights[..., None]


def _tile_geometry(
    plan: TilePlan, ty: int, tx: int, grid: GridInfo | None
) -> tuple[tuple[int, int, int, int], tuple[int, int, int, int], np.ndarray]:
    """(window, extent, HR blend weights) of tile (ty, tx); boxes as (y0, y1, x0, x1)."""
    period = grid.period if grid is not None else (ALIGN, ALIGN)
    offset = grid.offset if grid is not None else (0, 0)
    wy = _window(plan.rows, ty, plan.halo, period[0], offset[0])
    wx = _window(plan.cols, tx, plan.halo, period[1], offset[1])
    ey = _extent(plan.rows, ty, plan.blend)
    ex = _extent(plan.cols, tx, plan.blend)
    weights = np.outer(
        _axis_weights(plan.rows, ty, plan.blend, plan.scale),
        _axis_weights(plan.cols, tx, plan.blend, plan.scale),
    )
    return (*wy, *wx), (*ey, *ex), weights


# --------------------------------------------------------------------------------------------
# from the packed, blended HR array to the outputs
# --------------------------------------------------------------------------------------------


def _finish(packed: np.ndarray, layout: _Layout, like: np.ndarray) -> dict[str, Any]:
    """Convert a blended pack (h·s×w·s×K float32) to the outputs, in ``like``'s dtype/layout."""
    s = layout.scale
    tensor = torch.from_numpy(np.ascontiguousarray(packed)).permute(2, 0, 1)[None]
    a = int(layout.alpha)
    hr_alpha = tensor[:, :1] if layout.alpha else None
    out: dict[str, Any] = {"image": from_network(tensor[:, a : a + 3], hr_alpha, like)}
    if not layout.intermediates:
        return out
    x_hats = [tensor[:, a + 3 + 3 * j : a + 6 + 3 * j] for j in range(layout.iterations - 1)]
    x_hats.append(tensor[:, a : a + 3])
    out["x_hats"] = [from_network(x, hr_alpha, like) for x in x_hats]
    lr = torch.nn.functional.pixel_unshuffle(tensor[:, layout.hr_direct :], s)
    n = layout.iterations
    lr_alpha = lr[:, 3 * n + 1 : 3 * n + 2] if layout.alpha else None
    out["y_hats"] = [from_network(lr[:, 3 * j : 3 * j + 3], lr_alpha, like) for j in range(n)]
    out["blocking"] = lr[0, 3 * n].numpy().astype(np.float32)
    return out


def _network_for(
    model: str | Path | CISRPSI, scale: int, device: str, precision: str = "auto"
) -> tuple[CISRPSI, torch.device, torch.dtype]:
    target = resolve_device(device)
    return _resolve_model(model, scale, target), target, resolve_precision(precision, target)


# --------------------------------------------------------------------------------------------
# numpy driver
# --------------------------------------------------------------------------------------------


def tiled_super_resolve_steps(
    image: np.ndarray,
    scale: int = 2,
    model: str | Path | CISRPSI = "lite",
    iterations: int | None = None,
    tile: int = 512,
    device: str = "auto",
    intermediates: bool = False,
    *,
    halo: int | None = None,
    blend: int | None = None,
    grid: GridInfo | str | None = "auto",
    precision: str = "auto",
    self_ensemble: bool = False,
) -> Generator[Progress, None, SuperResolveResult]:
    """Super-resolve a numpy plane tile by tile; yields progress, returns the result.

    Tiles are processed in raster order; a :class:`~napari_cisr.inference.Progress` is yielded
    after every tile × iteration, and closing the generator stops at the next one. Memory: the
    output, one tile's network activations and a float32 accumulator one row of tiles high.

    Parameters
    ----------
    image : ndarray
        H×W, H×W×3 or H×W×4; uint8, uint16 or float in [0, 1].
    scale, model, iterations, device, intermediates
        As in :func:`napari_cisr.inference.super_resolve_steps`.
    tile : int
        Core tile side in LR pixels (rounded down to a multiple of 16; the network sees the
        core plus the halo on each side with a neighbour).
    halo : int, optional
        Context per side; default :func:`model_halo` of the network.
    blend : int, optional
        Half width of the blend bands; default half the halo.
    grid : GridInfo, None or "auto"
        The plane's compression grid; "auto" detects it (:func:`estimate_grid`), ``None`` means
        no blocking (d(z) = 0).
    precision, self_ensemble
        As in :func:`napari_cisr.inference.super_resolve_steps`.

    Returns
    -------
    SuperResolveResult
        As the untiled path.
    """
    check_image(image)
    network, target, dtype = _network_for(model, scale, device, precision)
    n_iter = iterations or network.config.iterations
    halo = model_halo(network.config) if halo is None else halo
    plan = plan_tiles(image.shape[:2], scale, tile, halo, blend)
    if isinstance(grid, str):
        grid = estimate_grid(image)
    alpha = image.ndim == 3 and image.shape[2] == 4
    layout = _Layout(scale, n_iter, alpha, intermediates, self_ensemble)
    log.debug("tiled inference: %s, grid %s", plan, grid)

    height, width = image.shape[:2]
    result = np.empty((height * scale, width * scale, *image.shape[2:]), image.dtype)
    y_hats = [np.empty_like(image) for _ in range(n_iter)] if intermediates else []
    x_hats = [np.empty_like(result) for _ in range(n_iter)] if intermediates else []
    blocking = np.zeros((height, width), np.float32) if intermediates else None

    def emit(packed: np.ndarray, y0: int, y1: int) -> None:
        out = _finish(packed, layout, image)
        result[y0 * scale : y1 * scale] = out["image"]
        if intermediates:
            for j in range(n_iter):
                y_hats[j][y0:y1] = out["y_hats"][j]
                x_hats[j][y0 * scale : y1 * scale] = out["x_hats"][j]
            blocking[y0:y1] = out["blocking"]

    n_rows, n_cols = plan.grid_shape
    total = plan.n_tiles * n_iter
    done = 0
    acc_start = 0  # LR row of the accumulator's first row
    carry: np.ndarray | None = None
    for ty in range(n_rows):
        _, ey1 = _extent(plan.rows, ty, plan.blend)
        acc = np.zeros(((ey1 - acc_start) * scale, width * scale, layout.channels), np.float32)
        if carry is not None:
            acc[: carry.shape[0]] = carry
        for tx in range(n_cols):
            window, extent, weights = _tile_geometry(plan, ty, tx, grid)
            wy0, wy1, wx0, wx1 = window
            steps = _predict_tile(
                network,
                image[wy0:wy1, wx0:wx1],
                window,
                extent,
                weights,
                grid,
                layout,
                target,
                dtype,
            )
            while True:
                try:
                    j = next(steps)
                except StopIteration as stop:
                    packed = stop.value
                    break
                done += 1
                stage = f"tile {ty * n_cols + tx + 1}/{plan.n_tiles}, iteration {j}/{n_iter}"
                yield Progress(done, total, stage)
            _, _, ex0, ex1 = extent
            rows = slice((extent[0] - acc_start) * scale, (extent[1] - acc_start) * scale)
            acc[rows, ex0 * scale : ex1 * scale] += packed
        # Rows above the next row's blend band are final.
        final_end = ey1 if ty == n_rows - 1 else plan.rows[ty + 1] - plan.blend
        cut = (final_end - acc_start) * scale
        emit(acc[:cut], acc_start, final_end)
        carry = acc[cut:].copy()
        acc_start = final_end
        del acc
    return SuperResolveResult(image=result, y_hats=y_hats, x_hats=x_hats, blocking=blocking)


# --------------------------------------------------------------------------------------------
# dask driver
# --------------------------------------------------------------------------------------------


class _ModelRef:
    """A network for dask tasks: an in-memory model, or (name, scale, device) loaded once per
    process through :func:`napari_cisr.inference.cached_model` (so a distributed worker loads
    it on its first tile and reuses it)."""

    def __init__(
        self, model: str | Path | CISRPSI, scale: int, device: str, precision: str = "auto"
    ) -> None:
        self.model = model if isinstance(model, CISRPSI) else str(model)
        self.scale = scale
        self.device = device
        self.precision = precision
        self.token = (
            f"{self.model}-x{scale}-{device}-{precision}"
            if isinstance(self.model, str)
            else f"inmemory-{uuid.uuid4().hex}"
        )

    def get(self) -> tuple[CISRPSI, torch.device, torch.dtype]:
        return _network_for(self.model, self.scale, self.device, self.precision)

    def __dask_tokenize__(self) -> str:
        return self.token


def _predict_block(
    block: np.ndarray,
    grid: GridInfo | None,
    ref: _ModelRef,
    plan: TilePlan,
    layout: _Layout,
    block_info: dict | None = None,
) -> np.ndarray:
    """dask task: one overlapped input block → the tile's weighted HR pack."""
    ty, tx = block_info[0]["chunk-location"][:2]
    network, target, dtype = ref.get()
    window, extent, weights = _tile_geometry(plan, ty, tx, grid)
    # The block starts at the core start minus the overlap depth (0 at the image edge).
    by0 = plan.rows[ty] - (plan.depth if ty > 0 else 0)
    bx0 = plan.cols[tx] - (plan.depth if tx > 0 else 0)
    pixels = block[window[0] - by0 : window[1] - by0, window[2] - bx0 : window[3] - bx0]
    steps = _predict_tile(network, pixels, window, extent, weights, grid, layout, target, dtype)
    while True:
        try:
            next(steps)
        except StopIteration as stop:
            return stop.value


def _blend_sources(n: int, k: int, core: int, blend: int, s: int) -> list[tuple[slice, slice]]:
    """Along one axis: (source slice in the overlapped pack, target slice in the core), for the
    previous tile, the tile itself and the next tile, in raster order."""
    band = blend * s
    before = 2 * band if k > 0 else 0
    own_margin = band if k > 0 else 0
    own_len = core * s + own_margin + (band if k < n - 1 else 0)
    pairs = []
    if k > 0 and band:
        pairs.append((slice(band, 2 * band), slice(0, band)))
    own_start = before + own_margin
    pairs.append((slice(own_start, own_start + core * s), slice(0, core * s)))
    if k < n - 1 and band:
        start = before + own_len
        pairs.append((slice(start, start + band), slice(core * s - band, core * s)))
    return pairs


def _blend_block(block: np.ndarray, plan: TilePlan, block_info: dict | None = None) -> np.ndarray:
    """dask task: a tile's pack with its neighbours' bands (overlapped) → its blended core."""
    ty, tx = block_info[0]["chunk-location"][:2]
    ny, nx = plan.grid_shape
    core_y = plan.rows[ty + 1] - plan.rows[ty]
    core_x = plan.cols[tx + 1] - plan.cols[tx]
    s = plan.scale
    out = np.zeros((core_y * s, core_x * s, block.shape[2]), np.float32)
    for src_y, dst_y in _blend_sources(ny, ty, core_y, plan.blend, s):
        for src_x, dst_x in _blend_sources(nx, tx, core_x, plan.blend, s):
            out[dst_y, dst_x] += block[src_y, src_x]
    return out


def _finish_block(packed: np.ndarray, layout: _Layout, like: np.ndarray, key: str, j: int):
    out = _finish(packed, layout, like)[key]
    return out[j] if isinstance(out, list) else out


def build_tiled_dask(
    image: Any,
    scale: int = 2,
    model: str | Path | CISRPSI = "lite",
    iterations: int | None = None,
    tile: int | None = None,
    device: str = "auto",
    intermediates: bool = False,
    *,
    halo: int | None = None,
    blend: int | None = None,
    grid: GridInfo | str | None = "auto",
    precision: str = "auto",
    self_ensemble: bool = False,
) -> TiledDask:
    """The graph of :func:`tiled_super_resolve_dask`, with its network tiles exposed.

    Parameters are those of :func:`tiled_super_resolve_dask`.
    """
    import dask
    import dask.array as da

    check_image(image)
    network, _, _ = _network_for(model, scale, device, precision)
    config = network.config
    n_iter = iterations or config.iterations
    halo = model_halo(config) if halo is None else halo
    if tile is None:
        tile = choose_tile(config, None, device, parallel=os.cpu_count() or 1)
    plan = plan_tiles(image.shape[:2], scale, tile, halo, blend)
    alpha = image.ndim == 3 and image.shape[2] == 4
    layout = _Layout(scale, n_iter, alpha, intermediates, self_ensemble)
    ref = _ModelRef(network if isinstance(model, CISRPSI) else model, scale, device, precision)
    like = np.zeros((1,) * image.ndim, image.dtype)

    if isinstance(grid, str):
        grid = lazy_grid(image)

    rows, cols = plan.core_chunks()
    rest = tuple((n,) for n in image.shape[2:])
    source = image.rechunk((rows, cols, *rest))
    ny, nx = plan.grid_shape
    depth = {0: plan.depth if ny > 1 else 0, 1: plan.depth if nx > 1 else 0}
    depth.update({axis: 0 for axis in range(2, image.ndim)})
    overlapped = da.overlap.overlap(source, depth=depth, boundary="none")

    ext_rows, ext_cols = plan.extended_chunks()
    token = dask.base.tokenize(image.name, ref, plan, layout, grid)
    packs = da.map_blocks(
        _predict_block,
        overlapped,
        grid,
        ref,
        plan,
        layout,
        chunks=(ext_rows, ext_cols, (layout.channels,)),
        dtype=np.float32,
        meta=np.empty((0, 0, 0), np.float32),
        new_axis=[2] if image.ndim == 2 else None,
        name=f"cisr-tiles-{token}",
    )
    tiles = packs
    band = plan.blend * scale
    if band:
        # A neighbour's prediction reaches 2·blend into this tile's extent.
        bdepth = {0: 2 * band if ny > 1 else 0, 1: 2 * band if nx > 1 else 0, 2: 0}
        packs = da.overlap.overlap(packs, depth=bdepth, boundary="none")
    hr_rows = tuple(r * scale for r in rows)
    hr_cols = tuple(c * scale for c in cols)
    blended = da.map_blocks(
        _blend_block,
        packs,
        plan,
        chunks=(hr_rows, hr_cols, (layout.channels,)),
        dtype=np.float32,
        meta=np.empty((0, 0, 0), np.float32),
        name=f"cisr-blend-{token}",
    )

    def output(key: str, j: int, lr: bool) -> Any:
        out_rows, out_cols = (rows, cols) if lr else (hr_rows, hr_cols)
        if key == "blocking":
            chunks, dtype, drop, sample = (out_rows, out_cols), np.float32, [2], np.float32
        else:
            chunks, dtype, sample = (out_rows, out_cols, *rest), image.dtype, image.dtype
            drop = [2] if image.ndim == 2 else None
        return da.map_blocks(
            _finish_block,
            blended,
            layout,
            like,
            key,
            j,
            chunks=chunks,
            dtype=dtype,
            drop_axis=drop,
            meta=np.empty((0,) * len(chunks), sample),
            name=f"cisr-{key}{j}-{token}",
        )

    result = output("image", 0, False)
    if not intermediates:
        return TiledDask(SuperResolveResult(image=result), tiles, plan)
    result = SuperResolveResult(
        image=result,
        y_hats=[output("y_hats", j, True) for j in range(n_iter)],
        x_hats=[output("x_hats", j, False) for j in range(n_iter)],
        blocking=output("blocking", 0, True),
    )
    return TiledDask(result, tiles, plan)


@dataclass(frozen=True)
class TiledDask:
    """The lazy result of :func:`build_tiled_dask` and the network tiles it is blended from.

    Attributes
    ----------
    result : SuperResolveResult
        Lazy outputs, as :func:`tiled_super_resolve_dask` returns them.
    tiles : dask.array.Array
        One block per tile: the network's weighted prediction over the tile's core and blend
        margins (HR, float32, packed channels). Output block (i, k) depends on tiles
        (i±1, k±1); a scheduler driving the computation row by row can hold these blocks
        (futures of ``tiles.to_delayed(optimize_graph=False)``) so none is computed twice.
    plan : TilePlan
        Where the tiles are.
    """

    result: SuperResolveResult
    tiles: Any
    plan: TilePlan


def tiled_super_resolve_dask(
    image: Any,
    scale: int = 2,
    model: str | Path | CISRPSI = "lite",
    iterations: int | None = None,
    tile: int | None = None,
    device: str = "auto",
    intermediates: bool = False,
    *,
    halo: int | None = None,
    blend: int | None = None,
    grid: GridInfo | str | None = "auto",
    precision: str = "auto",
    self_ensemble: bool = False,
) -> SuperResolveResult:
    """Super-resolve a dask plane lazily: returns dask arrays, computes nothing.

    Parameters
    ----------
    image : dask.array.Array
        H×W, H×W×3 or H×W×4; uint8, uint16 or float in [0, 1]; any chunking (it is rechunked
        to the tile grid).
    scale, model, iterations, device, intermediates
        As in :func:`napari_cisr.inference.super_resolve_steps`. ``model`` may be a loaded
        network (used in this process) or a name/path, loaded once per process or dask
        worker.
    tile : int, optional
        Core tile side; default from the available memory (:func:`choose_tile`).
    halo, blend, grid
        As in :func:`tiled_super_resolve_steps`; with "auto" the grid is detected by a delayed
        task (:func:`lazy_grid`) when the result is computed. A ``Delayed`` grid is used as
        given (a caller can then hold its result while computing the tiles in several goes).
    precision, self_ensemble
        As in :func:`napari_cisr.inference.super_resolve_steps`.

    Returns
    -------
    SuperResolveResult
        ``image`` (and ``y_hats``, ``x_hats``, ``blocking`` with ``intermediates``) as dask
        arrays whose chunks are the core tiles scaled by s. Each output chunk needs the network
        tiles around it (the blend bands), so compute outputs together, in one ``compute`` /
        ``dask.compute``, not chunk by chunk: then every tile runs once.
    """
    return build_tiled_dask(
        image,
        scale,
        model,
        iterations,
        tile,
        device,
        intermediates,
        halo=halo,
        blend=blend,
        grid=grid,
        precision=precision,
        self_ensemble=self_ensemble,
    ).result

"""The numpy driver: a plane in, tile by tile in raster order, progress after every tile ×
iteration, memory bounded by one row of tiles."""

from __future__ import annotations

import logging
from collections.abc import Generator

import numpy as np

from napari_cisr.engine.core import Progress, SuperResolveResult, check_image, network_for
from napari_cisr.engine.grid import GridInfo, estimate_grid
from napari_cisr.engine.plan import axis_extent, model_halo, plan_tiles, tile_geometry
from napari_cisr.engine.tile import Layout, finish, predict_tile
from napari_cisr.options import InferenceOptions

log = logging.getLogger(__name__)


def tiled_super_resolve_steps(
    image: np.ndarray,
    options: InferenceOptions,
    *,
    halo: int | None = None,
    blend: int | None = None,
    grid: GridInfo | str | None = "auto",
) -> Generator[Progress, None, SuperResolveResult]:
    """Super-resolve a numpy plane tile by tile; yields progress, returns the result.

    Tiles are processed in raster order; a :class:`~napari_cisr.inference.Progress` is yielded
    after every tile × iteration, and closing the generator stops at the next one. Memory: the
    output, one tile's network activations and a float32 accumulator one row of tiles high.

    Parameters
    ----------
    image : ndarray
        H×W, H×W×3 or H×W×4; uint8, uint16 or float in [0, 1].
    options : InferenceOptions
        How to super-resolve. ``options.tile`` is the core tile side in LR pixels (rounded
        down to a multiple of 16; the network sees the core plus the halo on each side with a
        neighbour); it must be positive here (the dispatch in :mod:`napari_cisr.inference`
        resolves ``None`` and ``0``).
    halo : int, optional
        Context per side; default :func:`model_halo` of the network.
    blend : int, optional
        Half width of the blend bands; default half the halo.
    grid : GridInfo, None or "auto"
        The plane's compression grid; "auto" detects it (:func:`estimate_grid`), ``None`` means
        no blocking (d(z) = 0).

    Returns
    -------
    SuperResolveResult
        As the untiled path.
    """
    if not options.tile:
        raise ValueError(f"the tiled driver needs a positive tile, not {options.tile}")
    check_image(image)
    scale, intermediates = options.scale, options.intermediates
    network, target, dtype = network_for(
        options.model, scale, options.device, options.precision, options.compile
    )
    n_iter = options.iterations or network.config.iterations
    halo = model_halo(network.config) if halo is None else halo
    plan = plan_tiles(image.shape[:2], scale, options.tile, halo, blend)
    if isinstance(grid, str):
        grid = estimate_grid(image)
    layout = Layout.of(options, n_iter, image)
    log.debug("tiled inference: %s, grid %s", plan, grid)

    height, width = image.shape[:2]
    result = np.empty((height * scale, width * scale, *image.shape[2:]), image.dtype)
    y_hats = [np.empty_like(image) for _ in range(n_iter)] if intermediates else []
    x_hats = [np.empty_like(result) for _ in range(n_iter)] if intermediates else []
    blocking = np.zeros((height, width), np.float32) if intermediates else None

    def emit(packed: np.ndarray, y0: int, y1: int) -> None:
        out = finish(packed, layout, image)
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
        _, ey1 = axis_extent(plan.rows, ty, plan.blend)
        acc = np.zeros(((ey1 - acc_start) * scale, width * scale, layout.channels), np.float32)
        if carry is not None:
            acc[: carry.shape[0]] = carry
        for tx in range(n_cols):
            window, extent, weights = tile_geometry(plan, ty, tx, grid)
            if options.compile:  # few input shapes: few compiled graphs
                window = plan.compiled_window(window)
            wy0, wy1, wx0, wx1 = window
            steps = predict_tile(
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

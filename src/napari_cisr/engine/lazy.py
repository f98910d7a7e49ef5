"""The dask driver: one ``overlap`` + ``map_blocks`` runs the network per tile, a second adds
the neighbours' blend bands; nothing runs until computed (dask-image's pattern: the kernel
knows nothing of the graph)."""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from napari_cisr.engine.core import SuperResolveResult, check_image, network_for
from napari_cisr.engine.grid import GridInfo, lazy_grid
from napari_cisr.engine.plan import TilePlan, choose_tile, model_halo, plan_tiles, tile_geometry
from napari_cisr.engine.tile import Layout, finish, predict_tile
from napari_cisr.model import CISRPSI
from napari_cisr.options import InferenceOptions


class _ModelRef:
    """A network for dask tasks: an in-memory model, or (name, scale, device) loaded once per
    process through :func:`napari_cisr.inference.cached_model` (so a distributed worker loads
    it on its first tile and reuses it)."""

    def __init__(
        self,
        model: str | Path | CISRPSI,
        scale: int,
        device: str,
        precision: str = "auto",
        compile_network: bool = False,
    ) -> None:
        self.model = model if isinstance(model, CISRPSI) else str(model)
        self.scale = scale
        self.device = device
        self.precision = precision
        self.compile = compile_network
        self.token = (
            f"{self.model}-x{scale}-{device}-{precision}{'-compiled' if compile_network else ''}"
            if isinstance(self.model, str)
            else f"inmemory-{uuid.uuid4().hex}"
        )

    def get(self) -> tuple[CISRPSI, torch.device, torch.dtype]:
        return network_for(self.model, self.scale, self.device, self.precision, self.compile)

    def __dask_tokenize__(self) -> str:
        return self.token


def _predict_block(
    block: np.ndarray,
    grid: GridInfo | None,
    ref: _ModelRef,
    plan: TilePlan,
    layout: Layout,
    block_info: dict | None = None,
) -> np.ndarray:
    """dask task: one overlapped input block → the tile's weighted HR pack."""
    ty, tx = block_info[0]["chunk-location"][:2]
    network, target, dtype = ref.get()
    window, extent, weights = tile_geometry(plan, ty, tx, grid)
    # The block starts at the core start minus the overlap depth (0 at the image edge).
    by0 = plan.rows[ty] - (plan.depth if ty > 0 else 0)
    bx0 = plan.cols[tx] - (plan.depth if tx > 0 else 0)
    pixels = block[window[0] - by0 : window[1] - by0, window[2] - bx0 : window[3] - bx0]
    steps = predict_tile(network, pixels, window, extent, weights, grid, layout, target, dtype)
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


def _map_packs(function: Any, *args: Any, **kwargs: Any) -> Any:
    """``da.map_blocks`` for a step whose blocks are float32 packs (H×W×channels): the network
    tiles, and their blend."""
    import dask.array as da

    return da.map_blocks(
        function, *args, dtype=np.float32, meta=np.empty((0, 0, 0), np.float32), **kwargs
    )


def _finish_block(packed: np.ndarray, layout: Layout, like: np.ndarray, key: str, j: int):
    out = finish(packed, layout, like)[key]
    return out[j] if isinstance(out, list) else out


def build_tiled_dask(
    image: Any,
    options: InferenceOptions,
    *,
    halo: int | None = None,
    blend: int | None = None,
    grid: GridInfo | str | None = "auto",
) -> TiledDask:
    """The lazy graph of a dask plane: the result of :func:`tiled_super_resolve_dask`, with
    the network tiles it is blended from exposed (for a scheduler such as batch's).

    Parameters
    ----------
    image : dask.array.Array
        H×W, H×W×3 or H×W×4; uint8, uint16 or float in [0, 1]; any chunking (it is rechunked
        to the tile grid).
    options : InferenceOptions
        How to super-resolve. ``options.model`` may be a loaded network (used in this process)
        or a name/path, loaded once per process or dask worker. ``options.tile`` is the core
        tile side; None chooses it from the available memory (:func:`choose_tile`); 0 (the
        whole image) is refused.
    halo, blend, grid
        As in :func:`napari_cisr.engine.local.tiled_super_resolve_steps`; with "auto" the grid
        is detected by a delayed task (:func:`lazy_grid`) when the result is computed. A
        ``Delayed`` grid is used as given (a caller can then hold its result while computing
        the tiles in several goes).

    Returns
    -------
    TiledDask
    """
    import dask
    import dask.array as da

    check_image(image)
    model, scale, device = options.model, options.scale, options.device
    if options.tile == 0:
        raise ValueError("a dask array is always processed in tiles; tile=0 needs numpy")
    network, _, _ = network_for(model, scale, device, options.precision)
    config = network.config
    n_iter = options.iterations or config.iterations
    halo = model_halo(config) if halo is None else halo
    tile = options.tile
    if tile is None:
        tile = choose_tile(config, None, device, parallel=os.cpu_count() or 1)
    plan = plan_tiles(image.shape[:2], scale, tile, halo, blend)
    intermediates = options.intermediates
    layout = Layout.of(options, n_iter, image)
    ref = _ModelRef(network if isinstance(model, CISRPSI) else model, scale, device,
                    options.precision, options.compile)  # fmt: skip
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
    packs = _map_packs(
        _predict_block,
        overlapped,
        grid,
        ref,
        plan,
        layout,
        chunks=(ext_rows, ext_cols, (layout.channels,)),
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
    blended = _map_packs(
        _blend_block,
        packs,
        plan,
        chunks=(hr_rows, hr_cols, (layout.channels,)),
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
    image: Any, options: InferenceOptions, **tiling: Any
) -> SuperResolveResult:
    """Super-resolve a dask plane lazily: returns dask arrays, computes nothing.

    Parameters
    ----------
    image, options
        As in :func:`build_tiled_dask`.
    **tiling
        ``halo``, ``blend`` and ``grid``, as in :func:`build_tiled_dask` (declared there once).

    Returns
    -------
    SuperResolveResult
        ``image`` (and ``y_hats``, ``x_hats``, ``blocking`` with ``options.intermediates``) as
        dask arrays whose chunks are the core tiles scaled by s. Each output chunk needs the
        network tiles around it (the blend bands), so compute outputs together, in one
        ``compute`` / ``dask.compute``, not chunk by chunk: then every tile runs once.
    """
    return build_tiled_dask(image, options, **tiling).result

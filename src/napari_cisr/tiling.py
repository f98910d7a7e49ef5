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

The code lives in :mod:`napari_cisr.engine` (``plan``: pure geometry; ``grid``; ``tile``: one
tile; ``local`` and ``lazy``: the two drivers); this module is its public face. Two drivers
share the per-tile code and give bit-identical results:

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

from napari_cisr.engine.grid import GridInfo, estimate_grid, lazy_grid
from napari_cisr.engine.lazy import TiledDask, build_tiled_dask, tiled_super_resolve_dask
from napari_cisr.engine.local import tiled_super_resolve_steps
from napari_cisr.engine.plan import (
    ALIGN,
    CPU_SPEED_TILE,
    HALO_PER_SQRT_RF,
    TilePlan,
    choose_tile,
    estimate_memory,
    model_halo,
    plan_tiles,
    receptive_field,
    tile_geometry,
)

__all__ = [
    "ALIGN",
    "CPU_SPEED_TILE",
    "HALO_PER_SQRT_RF",
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
    "tile_geometry",
    "tiled_super_resolve_dask",
    "tiled_super_resolve_steps",
]

"""``engine/grid.py``: the compression grid of a whole plane, detected once (from sampled crops
on a large plane) and handed to every tile, whose blocking map then agrees with the whole
image's."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine_helpers import jpeg_round_trip
from napari_cisr import tiling
from napari_cisr.blocking import blocking_map
from napari_cisr.engine.grid import _GRID_WHOLE_PIXELS

pytestmark = pytest.mark.usefixtures("one_thread")


def test_tile_blocking_map_agrees_with_whole_image(photo):
    z = torch.from_numpy(photo.astype(np.float32) / 255).permute(2, 0, 1)[None]
    whole = blocking_map(z)
    assert whole.sum() > 0
    grid = tiling.estimate_grid(photo)
    y0, x0 = 37, 61
    local = blocking_map(
        z[..., y0:, x0:], grid=grid.period, offset=(grid.offset[0] - y0, grid.offset[1] - x0)
    )
    torch.testing.assert_close(local[..., 2:-2, 2:-2], whole[..., y0 + 2 : -2, x0 + 2 : -2])


def test_large_plane_grid_from_sampled_crops():
    rng = np.random.default_rng(3)
    big = np.kron(rng.integers(40, 220, (72, 72, 1)), np.ones((16, 16, 3))).astype(np.uint8)
    big = jpeg_round_trip(np.clip(big + rng.normal(0, 4, big.shape), 0, 255).astype(np.uint8), 20)
    assert big.shape[0] * big.shape[1] > _GRID_WHOLE_PIXELS
    grid = tiling.estimate_grid(big[2:, 7:])
    assert grid is not None and grid.period == (8, 8) and grid.offset == (6, 1)

"""``engine/plan.py`` (through its public face, ``tiling``): receptive field and halo, the
tile plan, blend weights, windows on the compression grid, the automatic tile from memory.
Pure geometry; the free memory is injected (``free_memory`` in tests/conftest.py)."""

from __future__ import annotations

import numpy as np
import pytest

from engine_helpers import HALO
from napari_cisr import tiling
from napari_cisr.blocking import detect_blocking
from napari_cisr.model import variant_config

pytestmark = pytest.mark.usefixtures("one_thread", "free_memory")


# -------------------------------------------------------------------------------- halo and plan


def test_receptive_field_and_halo_from_config():
    lite = variant_config("lite", 2, blocks=4)
    # ARM = (3 + 1) + (1 + 1·9 + 1) + 1 = 16; REM = 4 + 11 + 1 + 1/2; R = 2 + 3·32.5.
    assert tiling.receptive_field(lite) == 100
    assert tiling.receptive_field(lite, iterations=1) == 35
    # The shipped x2 network, 12 RCABs: B = 1 + 25 + 1 = 27, ARM = 32, REM = 32.5, R = 2 + 3·64.5.
    assert tiling.receptive_field(variant_config("lite", 2)) == 196
    assert tiling.receptive_field(variant_config("full", 2)) == 820
    for name in ("lite", "tiny", "full"):
        for scale in (2, 3, 4):
            config = variant_config(name, scale)
            halo = tiling.model_halo(config)
            assert halo % 8 == 0 and 0 < halo < tiling.receptive_field(config)
    assert tiling.model_halo(variant_config("full", 2)) > tiling.model_halo(lite)


def test_plan_cores_aligned_and_large_enough():
    plan = tiling.plan_tiles((1000, 517), 2, tile=250, halo=32)
    assert plan.tile == 240
    assert all(b % tiling.ALIGN == 0 for b in plan.rows[:-1] + plan.cols[:-1])
    assert plan.rows[-1] == 1000 and plan.cols[-1] == 517
    # The 37-pixel remainder of the columns is smaller than the overlap and is merged.
    assert plan.cols == (0, 240, 517)
    assert min(np.diff(plan.rows)) >= plan.depth and min(np.diff(plan.cols)) >= plan.depth
    # A tile smaller than the halo needs is raised.
    assert tiling.plan_tiles((100, 100), 2, tile=5, halo=32).tile == 48
    with pytest.raises(ValueError, match="blend"):
        tiling.plan_tiles((100, 100), 2, tile=64, halo=8, blend=9)


@pytest.mark.parametrize("shape", [(155, 197), (64, 300), (301, 48)])
def test_blend_weights_are_a_partition_of_unity(shape):
    plan = tiling.plan_tiles(shape, 3, tile=40, halo=12, blend=6)
    total = np.zeros((shape[0] * 3, shape[1] * 3))
    for ty in range(plan.grid_shape[0]):
        for tx in range(plan.grid_shape[1]):
            _, (y0, y1, x0, x1), weights = tiling.tile_geometry(plan, ty, tx, None)
            total[y0 * 3 : y1 * 3, x0 * 3 : x1 * 3] += weights
    np.testing.assert_allclose(total, 1.0, atol=1e-6)


# -------------------------------------------------------------------------------------- windows


def test_windows_start_on_the_detected_grid(photo):
    grid = tiling.estimate_grid(photo)
    report = detect_blocking(photo)
    assert (grid.period, grid.offset) == (report.grid, report.offset) and grid.offset == (3, 5)
    plan = tiling.plan_tiles(photo.shape[:2], 2, tile=48, halo=HALO)
    for ty in range(plan.grid_shape[0]):
        for tx in range(plan.grid_shape[1]):
            (wy0, _, wx0, _), _, _ = tiling.tile_geometry(plan, ty, tx, grid)
            assert wy0 == 0 or wy0 % 8 == grid.offset[0]
            assert wx0 == 0 or wx0 % 8 == grid.offset[1]


# ------------------------------------------------------------------------------- automatic tile


def test_choose_tile_from_memory():
    config = variant_config("lite", 2)
    assert tiling.choose_tile(config, (64, 64), "cpu", budget=2**30) is None
    no_cap = {"cap": 2048}  # the memory rule alone
    small = tiling.choose_tile(config, (8000, 8000), "cpu", budget=2**30, **no_cap)
    large = tiling.choose_tile(config, (8000, 8000), "cpu", budget=8 * 2**30, **no_cap)
    assert small is not None and large is not None and 64 <= small < large <= 2048
    assert small % tiling.ALIGN == 0
    assert tiling.estimate_memory(config, (small + 2 * tiling.model_halo(config)) ** 2) <= 2**30
    assert tiling.choose_tile(config, None, "cpu", budget=2**30, **no_cap) == small


def test_cpu_tiles_are_capped_for_speed_but_small_images_stay_whole():
    config = variant_config("lite", 2)
    plenty = 8 * 2**30
    assert tiling.choose_tile(config, (8000, 8000), "cpu", budget=plenty) == tiling.CPU_SPEED_TILE
    assert tiling.choose_tile(config, None, "cpu", budget=plenty) == tiling.CPU_SPEED_TILE
    assert tiling.choose_tile(config, (384, 300), "cpu", budget=plenty) is None
    assert tiling.choose_tile(config, (385, 300), "cpu", budget=plenty) == tiling.CPU_SPEED_TILE
    # a tight budget still wins over the cap
    tight = tiling.choose_tile(config, (8000, 8000), "cpu", budget=2**28)
    assert tight is not None and tight < tiling.CPU_SPEED_TILE


def test_compiled_windows_hold_their_tile_in_few_shapes_inside_the_plane(photo):
    """A compiled network's windows: each holds its original window, stays inside the plane,
    and a photo's windows share one or two shapes, the inner one common to two photos of
    other sizes with the same tile setting (one graph for both)."""
    from napari_cisr.engine.grid import estimate_grid
    from napari_cisr.engine.plan import tile_geometry

    grid = estimate_grid(photo)
    shapes = []
    for size in ((1500, 2000), (1333, 1999)):
        plan = tiling.plan_tiles(size, 2, 256, HALO)
        seen = set()
        for ty in range(plan.grid_shape[0]):
            for tx in range(plan.grid_shape[1]):
                window, _, _ = tile_geometry(plan, ty, tx, grid)
                y0, y1, x0, x1 = plan.compiled_window(window)
                assert 0 <= y0 <= window[0] and window[1] <= y1 <= size[0]
                assert 0 <= x0 <= window[2] and window[3] <= x1 <= size[1]
                seen.add((y1 - y0, x1 - x0))
        assert len(seen) <= 2, seen
        shapes.append(seen)
    assert shapes[0] & shapes[1]
    # a plane smaller than one window is seen whole, as it is
    small = tiling.plan_tiles((155, 197), 2, 256, HALO)
    assert small.compiled_window((0, 155, 0, 197)) == (0, 155, 0, 197)

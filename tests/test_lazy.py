"""``engine/lazy.py``, the dask driver: equal to the numpy driver, gray and float, lazy (nothing
read or run until computed, output chunks the core tiles), and from the steps generator."""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np
import pytest

from engine_helpers import HALO, cpu_options, run_tiled
from napari_cisr import tiling
from napari_cisr.inference import run_to_completion, super_resolve, super_resolve_steps

pytestmark = pytest.mark.usefixtures("one_thread", "free_memory")


def test_tile_0_is_refused_for_dask_input(model, photo):
    with pytest.raises(ValueError, match="always processed in tiles"):
        super_resolve(da.from_array(photo), 2, model=model, tile=0, device="cpu")


@pytest.mark.parametrize(("chunks", "intermediates"), [((25, 37, 3), True), ((64, 200, 3), False)])
def test_dask_equals_numpy_tiled(model, photo, chunks, intermediates):
    expected = run_tiled(photo, model, tile=48, intermediates=intermediates)
    lazy = tiling.tiled_super_resolve_dask(
        da.from_array(photo, chunks=chunks),
        cpu_options(model, tile=48, intermediates=intermediates),
        halo=HALO,
    )
    arrays = [lazy.image, *lazy.y_hats, *lazy.x_hats]
    arrays += [lazy.blocking] if intermediates else []
    computed = dask.compute(*arrays, scheduler="sync")
    wanted = [expected.image, *expected.y_hats, *expected.x_hats]
    wanted += [expected.blocking] if intermediates else []
    for ours, theirs in zip(computed, wanted, strict=True):
        np.testing.assert_array_equal(ours, theirs)


def test_dask_gray_and_float(model, photo):
    gray = photo[..., 0].astype(np.float32) / 255
    expected = run_tiled(gray, model, tile=64)
    lazy = super_resolve(da.from_array(gray, chunks=50), 2, model=model, tile=64, device="cpu")
    assert lazy.dtype == np.float32 and lazy.shape == (310, 394)
    # super_resolve uses the model's own halo; compare with a matching numpy run.
    expected = run_tiled(gray, model, tile=64, halo=tiling.model_halo(model.config))
    np.testing.assert_array_equal(lazy.compute(scheduler="sync"), expected.image)


def test_dask_is_lazy_with_tile_chunks(model, photo):
    reads, passes = [], []

    def load(block):
        reads.append(1)
        return block

    source = da.from_array(photo, chunks=(40, 40, 3)).map_blocks(
        load, dtype=photo.dtype, meta=np.empty((0, 0, 0), photo.dtype)
    )
    handle = model.arm.register_forward_hook(lambda *args: passes.append(1))
    try:
        out = super_resolve(source, 2, model=model, tile=64, device="cpu")
        assert isinstance(out, da.Array)
        assert reads == [] and passes == []  # nothing read, grid not detected, no network
        plan = tiling.plan_tiles(photo.shape[:2], 2, 64, tiling.model_halo(model.config))
        rows, cols = plan.core_chunks()
        assert out.chunks == (tuple(2 * r for r in rows), tuple(2 * c for c in cols), (3,))
        corner = out[:10, :10].compute(scheduler="sync")
        assert corner.shape == (10, 10, 3)
        assert 0 < len(passes) < plan.n_tiles * 2  # only the tiles the corner needs
    finally:
        handle.remove()


def test_dask_result_from_steps_generator(model, photo):
    steps = super_resolve_steps(da.from_array(photo), 2, model=model, tile=64, device="cpu")
    result = run_to_completion(steps)
    assert isinstance(result.image, da.Array) and result.image.shape == (310, 394, 3)

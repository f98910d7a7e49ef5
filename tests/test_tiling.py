"""Tiled inference: geometry, blending, numpy vs dask, laziness, grid alignment, cancel.

A small randomly initialised network stands in for the trained one (quality is not measured
here; docs/benchmarks.md does that with trained weights). Its zero-initialised tails are
randomised so that the output is not just bicubic.
"""

from __future__ import annotations

import io

import dask
import dask.array as da
import numpy as np
import pytest
import torch
from PIL import Image

from napari_cisr import tiling
from napari_cisr.blocking import blocking_map, detect_blocking
from napari_cisr.engine import plan as engine_plan
from napari_cisr.engine.grid import _GRID_WHOLE_PIXELS
from napari_cisr.inference import run_to_completion, super_resolve, super_resolve_steps
from napari_cisr.model import build_model, variant_config
from napari_cisr.options import InferenceOptions

HALO = 16
#: The free memory every automatic tile choice here sees: injected, never read from the
#: machine, so that how busy the machine is cannot change the tiles a test gets.
FREE_MEMORY = 8 * 2**30


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread: these images are tiny, and the suite shares the machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def free_memory(monkeypatch):
    """Inject :data:`FREE_MEMORY` into the automatic tile choice; the devices it was asked for."""
    asked = []

    def available(device):
        asked.append(device)
        return FREE_MEMORY

    monkeypatch.setattr(engine_plan, "available_memory", available)
    return asked


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    config = variant_config("lite", 2, features=16, blocks=1, iterations=2, search_radius=2)
    network = build_model(config).eval()
    for tail in (network.arm.tail, network.rem.tail):
        torch.nn.init.normal_(tail.weight, std=0.05)
    return network


def _jpeg(image: np.ndarray, quality: int = 20) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
    buffer.seek(0)
    return np.asarray(Image.open(buffer).convert("RGB" if image.ndim == 3 else "L"))


@pytest.fixture(scope="module")
def photo():
    """A compressed photo-like RGB image cropped by (5, 3): grid offset (3, 5)."""
    rng = np.random.default_rng(1)
    y, x = np.mgrid[0:160, 0:200]
    base = 128 + 60 * np.sin(x / 9.0) * np.cos(y / 13.0) + 30 * np.sin((x + 2 * y) / 5.0)
    rgb = np.stack([base, base[::-1] * 0.8 + 20, 255 - base], axis=-1)
    rgb = np.clip(rgb + rng.normal(0, 6, rgb.shape), 0, 255).astype(np.uint8)
    return _jpeg(rgb, 15)[5:, 3:]  # 155×197, odd


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def _options(model, **settings) -> InferenceOptions:
    return InferenceOptions(scale=2, model=model, device="cpu", **settings)


def _tiled(image, model, halo=HALO, blend=None, grid="auto", **settings):
    return run_to_completion(
        tiling.tiled_super_resolve_steps(
            image, _options(model, **settings), halo=halo, blend=blend, grid=grid
        )
    )


# ------------------------------------------------------------------------------ halo and plan


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


# ------------------------------------------------------------------------------ numpy driver


def test_single_tile_is_bit_identical_to_whole_image(model, photo):
    whole = super_resolve(photo, 2, model=model, tile=0, device="cpu")
    single = _tiled(photo, model, tile=4096)
    np.testing.assert_array_equal(single.image, whole)
    # an image this small is processed whole by the automatic choice too
    np.testing.assert_array_equal(
        super_resolve(photo, 2, model=model, tile=None, device="cpu"), whole
    )


def test_automatic_choice_tiles_a_large_image_and_tile_0_does_not(model, photo, free_memory):
    large = np.tile(photo, (1, 2, 1))[:, :390]  # 155×390: over the CPU whole-image side
    # With memory to spare (a budget given, not measured): the CPU's speed tile.
    chosen = tiling.choose_tile(model.config, large.shape[:2], "cpu", budget=FREE_MEMORY // 2)
    assert chosen == tiling.CPU_SPEED_TILE
    auto = super_resolve(large, 2, model=model, tile=None, device="cpu")
    assert free_memory, "tile=None must size the tile from the injected free memory"
    whole = super_resolve(large, 2, model=model, tile=0, device="cpu")
    tiled = _tiled(large, model, tile=tiling.CPU_SPEED_TILE, halo=None).image
    np.testing.assert_array_equal(auto, tiled)
    assert _psnr(auto, whole) > 45


def test_tile_0_is_refused_for_dask_input(model, photo):
    with pytest.raises(ValueError, match="always processed in tiles"):
        super_resolve(da.from_array(photo), 2, model=model, tile=0, device="cpu")


@pytest.mark.parametrize(
    ("shape", "tile", "channels"),
    [((155, 197), 37, 3), ((97, 131), 50, None), ((80, 121), 33, 4)],
)
def test_tiled_close_to_whole_on_odd_shapes(model, photo, shape, tile, channels):
    image = photo[: shape[0], : shape[1]]
    if channels is None:
        image = image[..., 1].copy()
    elif channels == 4:
        alpha = np.linspace(0, 255, image.shape[1]).astype(np.uint8)
        image = np.dstack([image, np.broadcast_to(alpha, image.shape[:2])])
    whole = super_resolve(image, 2, model=model, tile=None, device="cpu")
    tiled = _tiled(image, model, tile=tile)
    assert tiled.image.shape == whole.shape and tiled.image.dtype == whole.dtype
    assert _psnr(tiled.image, whole) > 45
    if channels == 4:  # alpha is upscaled bicubically, a local operation: exact
        np.testing.assert_array_equal(tiled.image[..., 3], whole[..., 3])


def test_intermediates_are_blended_too(model, photo):
    steps = super_resolve_steps(photo, 2, model=model, tile=None, device="cpu", intermediates=True)
    whole = run_to_completion(steps)
    tiled = _tiled(photo, model, tile=48, intermediates=True)
    assert len(tiled.y_hats) == len(tiled.x_hats) == 2
    np.testing.assert_array_equal(tiled.x_hats[-1], tiled.image)
    for ours, theirs in zip(tiled.y_hats + tiled.x_hats, whole.y_hats + whole.x_hats, strict=True):
        assert ours.shape == theirs.shape and _psnr(ours, theirs) > 45
    # d(z) from the whole-plane grid matches the whole-image map up to rounding.
    np.testing.assert_allclose(tiled.blocking, whole.blocking, atol=1e-5)


def test_progress_per_tile_iteration_and_cancel(model, photo):
    calls = []
    handle = model.arm.register_forward_hook(lambda *args: calls.append(1))
    try:
        steps = tiling.tiled_super_resolve_steps(photo, _options(model, tile=48), halo=HALO)
        first = next(steps)
        plan = tiling.plan_tiles(photo.shape[:2], 2, 48, HALO)
        assert plan.n_tiles > 4
        assert (first.done, first.total) == (1, plan.n_tiles * 2)
        assert first.stage.startswith(f"tile 1/{plan.n_tiles}")
        steps.close()  # cancel
        assert len(calls) == 1  # one ARM pass of the first tile, nothing after
        with pytest.raises(StopIteration):
            next(steps)
    finally:
        handle.remove()


# ------------------------------------------------------------------------------ grid


def test_windows_start_on_the_detected_grid(photo):
    grid = tiling.estimate_grid(photo)
    report = detect_blocking(photo)
    assert grid == tiling.GridInfo(report.grid, report.offset) and grid.offset == (3, 5)
    plan = tiling.plan_tiles(photo.shape[:2], 2, tile=48, halo=HALO)
    for ty in range(plan.grid_shape[0]):
        for tx in range(plan.grid_shape[1]):
            (wy0, _, wx0, _), _, _ = tiling.tile_geometry(plan, ty, tx, grid)
            assert wy0 == 0 or wy0 % 8 == grid.offset[0]
            assert wx0 == 0 or wx0 % 8 == grid.offset[1]


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
    big = _jpeg(np.clip(big + rng.normal(0, 4, big.shape), 0, 255).astype(np.uint8), 20)
    assert big.shape[0] * big.shape[1] > _GRID_WHOLE_PIXELS
    grid = tiling.estimate_grid(big[2:, 7:])
    assert grid is not None and grid.period == (8, 8) and grid.offset == (6, 1)


# ------------------------------------------------------------------------------ dask driver


@pytest.mark.parametrize(("chunks", "intermediates"), [((25, 37, 3), True), ((64, 200, 3), False)])
def test_dask_equals_numpy_tiled(model, photo, chunks, intermediates):
    expected = _tiled(photo, model, tile=48, intermediates=intermediates)
    lazy = tiling.tiled_super_resolve_dask(
        da.from_array(photo, chunks=chunks),
        _options(model, tile=48, intermediates=intermediates),
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
    expected = _tiled(gray, model, tile=64)
    lazy = super_resolve(da.from_array(gray, chunks=50), 2, model=model, tile=64, device="cpu")
    assert lazy.dtype == np.float32 and lazy.shape == (310, 394)
    # super_resolve uses the model's own halo; compare with a matching numpy run.
    expected = _tiled(gray, model, tile=64, halo=tiling.model_halo(model.config))
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


# ------------------------------------------------------------------------------ automatic tile


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


# ------------------------------------------------------------------------------ self-ensemble


def test_self_ensemble_is_the_mean_of_the_eight_transformed_runs(model, photo):
    from napari_cisr.inference import DIHEDRAL, to_network, unfold_outputs

    z, _ = to_network(photo[:41, :53])  # not square: odd turns swap the sides
    blocking = model.blocking(z)
    with torch.no_grad():
        y_mean, x_mean = list(unfold_outputs(model, z, 2, blocking, self_ensemble=True))[-1]
        expected_y, expected_x = torch.zeros_like(y_mean), torch.zeros_like(x_mean)
        for turns, mirror in DIHEDRAL:
            zt = torch.rot90(z.flip(-1) if mirror else z, turns, dims=(-2, -1))
            dt = torch.rot90(blocking.flip(-1) if mirror else blocking, turns, dims=(-2, -1))
            run = model(zt, 2, dt)
            y_hat, x_hat = run.y_hat[-1], run.x_hat[-1]
            for out, total in ((y_hat, expected_y), (x_hat, expected_x)):
                back = torch.rot90(out, -turns, dims=(-2, -1))
                total += (back.flip(-1) if mirror else back) / 8
        plain = list(unfold_outputs(model, z, 2, blocking))[-1][1]
    torch.testing.assert_close(y_mean, expected_y, atol=1e-6, rtol=0)
    torch.testing.assert_close(x_mean, expected_x, atol=1e-6, rtol=0)
    assert (x_mean - plain).abs().max() > 1e-3  # the random network is far from equivariant


def test_self_ensemble_output_turns_with_its_input(model, photo):
    # Averaging over the whole dihedral group makes the result exactly equivariant, which a
    # single run of the network is not: turning the input (and its d(z)) turns the output.
    from napari_cisr.inference import to_network, unfold_outputs

    z, _ = to_network(photo[:40, :56])
    blocking = model.blocking(z)
    turned_z, turned_d = torch.rot90(z, 1, dims=(-2, -1)), torch.rot90(blocking, 1, dims=(-2, -1))
    with torch.no_grad():
        out = list(unfold_outputs(model, z, 2, blocking, self_ensemble=True))[-1][1]
        turned = list(unfold_outputs(model, turned_z, 2, turned_d, self_ensemble=True))[-1][1]
        plain = list(unfold_outputs(model, z, 2, blocking))[-1][1]
        plain_turned = list(unfold_outputs(model, turned_z, 2, turned_d))[-1][1]
    torch.testing.assert_close(turned, torch.rot90(out, 1, dims=(-2, -1)), atol=1e-5, rtol=0)
    assert (plain_turned - torch.rot90(plain, 1, dims=(-2, -1))).abs().max() > 1e-3


def test_self_ensemble_tiled_and_dask_agree_with_whole(model, photo):
    image = photo[:97, :131]
    whole = super_resolve(image, 2, model=model, tile=0, device="cpu", self_ensemble=True)
    plain = super_resolve(image, 2, model=model, tile=0, device="cpu")
    tiled = _tiled(image, model, tile=37, self_ensemble=True)
    lazy = tiling.tiled_super_resolve_dask(
        da.from_array(image, chunks=(31, 45, 3)),
        _options(model, tile=37, self_ensemble=True),
        halo=HALO,
    )
    assert _psnr(tiled.image, whole) > 45 and _psnr(plain, whole) < _psnr(tiled.image, whole)
    np.testing.assert_array_equal(lazy.image.compute(scheduler="sync"), tiled.image)

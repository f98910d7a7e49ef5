"""The engine's in-memory path (``engine/core.py``, ``tile.py``, ``local.py``, through
``super_resolve`` and ``tiling``): a single tile equals the whole image, the automatic tile,
tiled vs whole on odd shapes, intermediates, progress and cancel, the self-ensemble.

A small randomly initialised network (the ``model`` fixture, tests/conftest.py) stands in for
the trained one; quality is not measured here (docs/benchmarks.md does that).
"""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import torch

from engine_helpers import FREE_MEMORY, HALO, cpu_options, run_tiled
from napari_cisr import tiling
from napari_cisr.inference import run_to_completion, super_resolve, super_resolve_steps

pytestmark = pytest.mark.usefixtures("one_thread", "free_memory")


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


# --------------------------------------------------------------------------------- numpy driver


def test_single_tile_is_bit_identical_to_whole_image(model, photo):
    whole = super_resolve(photo, 2, model=model, tile=0, device="cpu")
    single = run_tiled(photo, model, tile=4096)
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
    tiled = run_tiled(large, model, tile=tiling.CPU_SPEED_TILE, halo=None).image
    np.testing.assert_array_equal(auto, tiled)
    assert _psnr(auto, whole) > 45


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
    tiled = run_tiled(image, model, tile=tile)
    assert tiled.image.shape == whole.shape and tiled.image.dtype == whole.dtype
    assert _psnr(tiled.image, whole) > 45
    if channels == 4:  # alpha is upscaled bicubically, a local operation: exact
        np.testing.assert_array_equal(tiled.image[..., 3], whole[..., 3])


def test_intermediates_are_blended_too(model, photo):
    steps = super_resolve_steps(photo, 2, model=model, tile=None, device="cpu", intermediates=True)
    whole = run_to_completion(steps)
    tiled = run_tiled(photo, model, tile=48, intermediates=True)
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
        steps = tiling.tiled_super_resolve_steps(photo, cpu_options(model, tile=48), halo=HALO)
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


# -------------------------------------------------------------------------------- self-ensemble


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
    tiled = run_tiled(image, model, tile=37, self_ensemble=True)
    lazy = tiling.tiled_super_resolve_dask(
        da.from_array(image, chunks=(31, 45, 3)),
        cpu_options(model, tile=37, self_ensemble=True),
        halo=HALO,
    )
    assert _psnr(tiled.image, whole) > 45 and _psnr(plain, whole) < _psnr(tiled.image, whole)
    np.testing.assert_array_equal(lazy.image.compute(scheduler="sync"), tiled.image)


# ------------------------------------------------------------------------------- torch.compile


def test_compiled_tiles_agree_with_eager_and_a_failed_compile_runs_eagerly(
    model, photo, monkeypatch, caplog
):
    """``compile=True``: the ARM and the REM through inductor, every tile grown to the standard
    window; the result agrees with eager inference (growing adds context beyond the halo
    only, as tiling does). Where compilation fails, a warning and the eager numbers."""
    eager = run_tiled(photo, model, tile=64)
    compiled = run_tiled(photo, model, tile=64, compile=True)
    assert compiled.image.shape == eager.image.shape
    assert _psnr(compiled.image, eager.image) > 45  # as tiled vs whole (above)

    import napari_cisr.engine.core as core

    def no_compiler(module, **kwargs):
        def fail(*args):
            raise RuntimeError("no C++ compiler found\nmore detail")

        return fail

    monkeypatch.setattr(core.torch, "compile", no_compiler)
    monkeypatch.setattr(core, "_COMPILED", core.weakref.WeakKeyDictionary())
    with caplog.at_level("WARNING", logger="napari_cisr.engine.core"):
        fallback = super_resolve(photo, 2, model=model, tile=0, device="cpu", compile=True)
    np.testing.assert_array_equal(
        fallback, super_resolve(photo, 2, model=model, tile=0, device="cpu")
    )
    assert "torch.compile failed, running eagerly: no C++ compiler found" in caplog.text

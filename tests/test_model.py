"""The network against the paper's equations (Section 3, Eq. 7-11)."""

from __future__ import annotations

import math

import pytest
import torch

from napari_cisr.model import build_model, variant_config
from napari_cisr.model.arm import registered_copy_index
from napari_cisr.model.combine import AdaptiveSkip
from napari_cisr.model.nonlocal_op import BlockingAwareNonLocal
from napari_cisr.model.resize import bicubic_upsample
from napari_cisr.train.loop import TrainConfig, psi_loss


def _params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(("variant", "paper_count"), [("tiny", 3.97e6), ("full", 9.56e6)])
def test_parameter_counts_match_the_paper_at_x2(variant, paper_count):
    count = _params(build_model(variant_config(variant, 2)))
    assert abs(count - paper_count) / paper_count < 0.05, count


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_lite_is_much_smaller_than_tiny(scale):
    # The shipped lite networks (12 RCABs per module) stay under a sixth of tiny.
    assert (
        _params(build_model(variant_config("lite", scale)))
        < _params(build_model(variant_config("tiny", scale))) / 6
    )


@pytest.mark.parametrize(("scale", "k"), [(2, 3), (3, 5), (4, 9)])
def test_registered_copy_index_is_round_half_up_of_s2_plus_1_over_2(scale, k):
    assert registered_copy_index(scale) == k - 1  # 0-based


def test_registered_copy_of_bicubic_x3_is_the_lr_image():
    # At x3 the centre copy samples HR pixels whose centres coincide with LR centres, where
    # bicubic interpolation is exact: the registered copy reproduces z.
    torch.manual_seed(0)
    model = build_model(variant_config("lite", 3))
    z = torch.rand(1, 3, 10, 12)
    registered, others = model.arm.split_copies(bicubic_upsample(z, 3))
    assert torch.allclose(registered, z, atol=1e-5)
    assert others.shape == (1, 3 * 8, 10, 12)


def test_adaptive_skip_weights_are_a_per_pixel_convex_combination():
    torch.manual_seed(0)
    skip = AdaptiveSkip(3)
    z, g, u = (torch.rand(2, 3, 7, 9) for _ in range(3))
    t = skip.weights(z, g, u)
    assert t.shape == (2, 3, 7, 9)
    assert torch.all(t >= 0)
    assert torch.allclose(t.sum(1), torch.ones(2, 7, 9), atol=1e-6)
    v = skip(z, g, u)
    expected = t[:, :1] * z + t[:, 1:2] * g + t[:, 2:] * u
    assert torch.allclose(v, expected, atol=1e-6)
    # A convex combination stays inside the pixel-wise range of its inputs.
    stack = torch.stack([z, g, u])
    assert torch.all(v <= stack.max(0).values + 1e-6)
    assert torch.all(v >= stack.min(0).values - 1e-6)


def test_nonlocal_weights_are_normalised_rows():
    torch.manual_seed(0)
    op = BlockingAwareNonLocal(3, search_radius=2)
    weights = op.similarity_weights(torch.rand(2, 3, 11, 13))
    assert weights.shape == (2, 25, 11, 13)
    assert torch.all(weights >= 0)
    assert torch.allclose(weights.sum(1), torch.ones(2, 11, 13), atol=1e-5)


def test_nonlocal_mask_removes_blocked_candidates():
    torch.manual_seed(0)
    radius = 2
    op = BlockingAwareNonLocal(3, search_radius=radius)
    g = 0.5 + 0.01 * torch.rand(1, 3, 16, 16)  # similar patches everywhere: no underflow
    keep = torch.ones(1, 1, 16, 16)
    keep[..., :, 8:11] = 0.0  # columns 8-10 lie on "blocking edges"
    weights = op.similarity_weights(g, keep)
    # Pixel (5, 7): the candidate at offset (0, +2) is column 9, whose whole 3×3 patch is
    # blocked; offset (0, -2) (column 5) is clean.
    window = 2 * radius + 1
    blocked = radius * window + (radius + 2)
    clean = radius * window + (radius - 2)
    assert weights[0, blocked, 5, 7] == 0.0
    assert weights[0, clean, 5, 7] > 0.0
    assert torch.allclose(weights.sum(1), torch.ones(1, 16, 16), atol=1e-5)


def test_nonlocal_never_takes_candidates_from_outside_the_image():
    op = BlockingAwareNonLocal(3, search_radius=2)
    weights = op.similarity_weights(torch.rand(1, 3, 6, 6))
    # From the top-left pixel, offsets with dy < 0 or dx < 0 point outside.
    offsets = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)]
    outside = [i for i, (dy, dx) in enumerate(offsets) if dy < 0 or dx < 0]
    assert torch.all(weights[0, outside, 0, 0] == 0)


def test_nonlocal_output_is_a_weighted_mean_of_z_candidates():
    torch.manual_seed(0)
    op = BlockingAwareNonLocal(3, search_radius=1)
    z = torch.rand(1, 3, 5, 6)
    g = torch.rand(1, 3, 5, 6)
    weights = op._run(z, g, None, want_weights=True)
    u = op(z, g)
    padded = torch.nn.functional.pad(z, [1, 1, 1, 1])
    y, x = 2, 3
    expected = sum(
        weights[0, (dy + 1) * 3 + (dx + 1), y, x] * padded[0, :, y + 1 + dy, x + 1 + dx]
        for dy in (-1, 0, 1)
        for dx in (-1, 0, 1)
    )
    assert torch.allclose(u[0, :, y, x], expected, atol=1e-5)


@pytest.mark.parametrize("radius", [1, 3])
def test_streamed_nonlocal_equals_the_explicit_weights_everywhere(radius):
    # forward() never materialises the (2r+1)² weights; it must still be exactly Σ_n w(m, n) z(n)
    # with the weights of Eq. 10, also where every candidate is masked (unmasked fallback).
    torch.manual_seed(0)
    op = BlockingAwareNonLocal(3, search_radius=radius).double()
    torch.nn.init.normal_(op.bandwidth[2].weight, std=0.1)
    z, g = torch.rand(2, 3, 19, 23).double(), torch.rand(2, 3, 19, 23).double()
    keep = (torch.rand(2, 1, 19, 23) > 0.3).double()
    keep[:, :, 4:14, 5:16] = 0  # wider than the window: these pixels keep no candidate
    weights = op.similarity_weights(g, keep)
    window = 2 * radius + 1
    padded = torch.nn.functional.pad(z, [radius] * 4)
    candidates = torch.stack(
        [padded[:, :, dy : dy + 19, dx : dx + 23] for dy in range(window) for dx in range(window)],
        dim=1,
    )  # B×K×C×H×W
    expected = (weights.unsqueeze(2) * candidates).sum(1)
    assert torch.allclose(op(z, g, keep), expected, atol=1e-12)


def test_nonlocal_bands_give_the_same_result_as_one_pass(monkeypatch):
    torch.manual_seed(0)
    op = BlockingAwareNonLocal(3, search_radius=2)
    z, g = torch.rand(1, 3, 23, 17), torch.rand(1, 3, 23, 17)
    whole = op(z, g)
    monkeypatch.setattr("napari_cisr.model.nonlocal_op._BAND_BUDGET", 1)  # one row per band
    assert torch.allclose(op(z, g), whole, atol=1e-6)


@pytest.mark.parametrize("budget", [None, 1])
def test_batched_nonlocal_equals_streamed_values_and_gradients(monkeypatch, budget):
    # The two strategies are two loop orders of the same sums: same u and same gradients for
    # z, g and the bandwidth network, including the all-masked fallback and several bands.
    if budget is not None:
        monkeypatch.setattr("napari_cisr.model.nonlocal_op._BAND_BUDGET", budget)
    torch.manual_seed(0)
    op = BlockingAwareNonLocal(3, search_radius=2).double()
    torch.nn.init.normal_(op.bandwidth[2].weight, std=0.1)
    z, g = torch.rand(2, 3, 17, 21).double(), torch.rand(2, 3, 17, 21).double()
    keep = (torch.rand(2, 1, 17, 21) > 0.3).double()
    keep[:, :, 3:11, 4:13] = 0  # wider than the window: these pixels keep no candidate
    results = {}
    for strategy in ("streamed", "batched"):
        op.strategy = strategy
        zs, gs = z.clone().requires_grad_(), g.clone().requires_grad_()
        u = op(zs, gs, keep)
        op.zero_grad()
        (u * torch.linspace(0, 1, u.numel(), dtype=u.dtype).view_as(u)).sum().backward()
        results[strategy] = (u, zs.grad, gs.grad, op.bandwidth[0].weight.grad.clone())
    for streamed, batched in zip(results["streamed"], results["batched"], strict=True):
        assert torch.allclose(streamed, batched, atol=1e-12)


def test_network_with_batched_nonlocal_traces_as_one_graph():
    # No host synchronisation anywhere in the forward (blocking detector included): what lets
    # torch.compile take the whole network as one graph (and a CUDA step keep queueing).
    model = build_model(variant_config("lite", 2, blocks=1))
    for module in model.modules():
        if isinstance(module, BlockingAwareNonLocal):
            module.strategy = "batched"
    torch._dynamo.reset()
    explanation = torch._dynamo.explain(model)(torch.rand(1, 3, 16, 16))
    assert explanation.graph_break_count == 0
    assert explanation.graph_count == 1


def test_nonlocal_strategy_auto_is_batched_only_on_cuda():
    op = BlockingAwareNonLocal(3, search_radius=1)
    assert not op._batched(torch.device("cpu"))
    assert op._batched(torch.device("cuda"))
    op.strategy = "batched"
    assert op._batched(torch.device("cpu"))
    op.strategy = "im2col"
    with pytest.raises(ValueError, match="unknown non-local strategy 'im2col'"):
        op(torch.rand(1, 3, 4, 4), torch.rand(1, 3, 4, 4))


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_unfolding_returns_every_estimate_at_the_right_size(scale):
    torch.manual_seed(0)
    model = build_model(variant_config("lite", scale)).eval()
    z = torch.rand(2, 3, 13, 10)
    with torch.no_grad():
        out = model(z)
    assert len(out.y_hat) == len(out.x_hat) == model.config.iterations
    assert all(y.shape == (2, 3, 13, 10) for y in out.y_hat)
    assert all(x.shape == (2, 3, 13 * scale, 10 * scale) for x in out.x_hat)
    assert out.blocking.shape == (2, 1, 13, 10)


def test_weights_are_shared_across_iterations():
    small = build_model(variant_config("lite", 2, iterations=1))
    large = build_model(variant_config("lite", 2, iterations=5))
    # J does not add parameters: the same ARM and REM run at every iteration.
    assert _params(small) == _params(large)
    assert small.state_dict().keys() == large.state_dict().keys()
    large.load_state_dict(small.state_dict())
    # Perturbing the (single) ARM changes every iteration's ŷ_j.
    torch.manual_seed(0)
    z = torch.rand(1, 3, 12, 12)
    with torch.no_grad():
        before = large(z)
        large.arm.tail.bias.add_(0.1)
        after = large(z)
    for y0, y1 in zip(before.y_hat, after.y_hat, strict=True):
        assert not torch.allclose(y0, y1)


def test_iteration_j_feeds_iteration_j_plus_1():
    torch.manual_seed(0)
    model = build_model(variant_config("lite", 2))
    z = torch.rand(1, 3, 12, 12)
    _, x1 = next(model.unfold(z, 1))
    expected_y2 = model.arm(x1, z, 1.0 - model.blocking(z))
    expected_x2 = model.rem(expected_y2, z, 1.0 - model.blocking(z))
    out = model(z, iterations=2)
    assert torch.allclose(out.y_hat[1], expected_y2, atol=1e-6)
    assert torch.allclose(out.x_hat[1], expected_x2, atol=1e-6)


def test_gradients_of_the_last_estimate_reach_the_first_iteration():
    torch.manual_seed(0)
    model = build_model(variant_config("lite", 2))
    # Non-zero tails, so that the backbones (not only the long skips) carry gradient.
    for module in (model.arm, model.rem):
        torch.nn.init.normal_(module.tail.weight, std=1e-2)
    z = torch.rand(2, 3, 12, 12)
    out = model(z)
    out.y_hat[0].retain_grad()
    out.x_hat[-1].mean().backward()
    assert out.y_hat[0].grad is not None
    assert out.y_hat[0].grad.abs().sum() > 0
    assert model.arm.backbone.head.weight.grad.abs().sum() > 0


def test_eq8_loss_weights_iterations_and_modules():
    y = torch.zeros(1, 3, 4, 4)
    x = torch.zeros(1, 3, 8, 8)
    y_hats = [torch.full_like(y, 1.0), torch.full_like(y, 2.0)]
    x_hats = [torch.full_like(x, 3.0), torch.full_like(x, 4.0)]
    loss = psi_loss(y_hats, x_hats, y, x, rho=(0.5, 1.0), gamma=2.0)
    expected = (0.5 * (1 + 2 * 3) + 1.0 * (2 + 2 * 4)) / 2
    assert loss.item() == pytest.approx(expected)


def test_eq8_l2_distance_is_the_mean_squared_error():
    y = torch.zeros(1, 3, 4, 4)
    x = torch.zeros(1, 3, 8, 8)
    y_hats = [torch.full_like(y, 1.0), torch.full_like(y, 2.0)]
    x_hats = [torch.full_like(x, 3.0), torch.full_like(x, 4.0)]
    loss = psi_loss(y_hats, x_hats, y, x, rho=(0.5, 1.0), gamma=2.0, distance="l2")
    expected = (0.5 * (1 + 2 * 9) + 1.0 * (4 + 2 * 16)) / 2
    assert loss.item() == pytest.approx(expected)
    with pytest.raises(ValueError, match="distance"):
        psi_loss(y_hats, x_hats, y, x, rho=(0.5, 1.0), gamma=2.0, distance="huber")
    with pytest.raises(ValueError, match="distance"):
        TrainConfig(distance="huber")  # refused before any photo is loaded


def test_eq8_psnr_distance_averages_each_samples_log_squared_error():
    y = torch.zeros(2, 3, 4, 4)
    x = torch.zeros(2, 3, 8, 8)
    # Sample 0 is off by 0.1 everywhere, sample 1 by 0.01: MSE 1e-2 and 1e-4.
    offsets = torch.tensor([0.1, 0.01]).view(2, 1, 1, 1)
    y_hats, x_hats = [y + offsets], [x + offsets]
    loss = psi_loss(y_hats, x_hats, y, x, rho=(1.0,), gamma=1.0, distance="psnr")
    per_module = 10 * (math.log10(1e-2 + 1e-5) + math.log10(1e-4 + 1e-5)) / 2
    assert loss.item() == pytest.approx(2 * per_module, rel=1e-5)
    # Relative to the squared error, the better-fitted sample weighs (1e-2 + f) / (1e-4 + f) ≈ 91x
    # more in the gradient.
    y_hat = (y + offsets).requires_grad_()
    psi_loss([y_hat], [x], y, x, rho=(1.0,), gamma=0.0, distance="psnr").backward()
    ratio = (y_hat.grad[1].abs().mean() / y_hat.grad[0].abs().mean()).item()
    assert ratio == pytest.approx(0.1 * (1e-2 + 1e-5) / (1e-4 + 1e-5), rel=1e-3)


def test_cpu_inference_is_deterministic():
    torch.manual_seed(0)
    z = torch.rand(1, 3, 20, 18)
    torch.manual_seed(1)
    a = build_model(variant_config("lite", 2)).eval()
    torch.manual_seed(1)
    b = build_model(variant_config("lite", 2)).eval()
    with torch.no_grad():
        first, second, other = a(z).result, a(z).result, b(z).result
    assert torch.equal(first, second)
    assert torch.equal(first, other)


def test_bfloat16_autocast_stays_close_to_float32():
    torch.manual_seed(0)
    network = build_model(variant_config("lite", 2)).eval()
    for module in network.modules():  # non-trivial tails, so the backbones matter
        if isinstance(module, torch.nn.Conv2d):
            torch.nn.init.normal_(module.weight, std=0.02)
    z = torch.rand(1, 3, 24, 20)
    with torch.inference_mode():
        exact = network(z).result
        with torch.autocast("cpu", dtype=torch.bfloat16):
            fast = network(z).result
    assert fast.dtype == torch.float32  # image-level sums stay in float32
    assert (fast - exact).abs().max() < 4 / 255


def test_the_model_package_imports_no_io_dask_napari_or_qt(modules_imported_by):
    banned = ("dask", "napari", "qtpy", "PyQt5", "PyQt6", "zarr", "PIL", "magicgui")
    assert modules_imported_by("napari_cisr.model", banned) == []


def test_importing_the_package_is_cheap(modules_imported_by):
    banned = ("torch", "napari", "qtpy", "PyQt5", "PyQt6", "dask")
    assert modules_imported_by("napari_cisr", banned) == []

"""The napari plugin end to end in a real viewer: widget, readers, writers, sample data.

Runs under Xvfb (pytest-xvfb). The widget tests run the real compute core
(``napari_cisr.inference``) on small images.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import dask.array as da
import numpy as np
import pytest

import napari_cisr
from napari_cisr import io
from napari_cisr._widget import SuperResolveWidget, output_geometry
from napari_cisr.compression import route_model

pytestmark = pytest.mark.napari

PLUGIN = "napari-cisr"
WIDGET = "Super-resolve compressed image"
DATA = Path(napari_cisr.__file__).parent / "data"
TIMEOUT_MS = 900_000  # only a hung worker should reach it, never a slow machine


@pytest.fixture
def notifications():
    """Collect napari notifications (show_error & co) emitted during a test."""
    from napari.utils.notifications import notification_manager

    seen = []
    notification_manager.notification_ready.connect(seen.append)
    yield seen
    notification_manager.notification_ready.disconnect(seen.append)


def _errors(notes) -> list[str]:
    from napari.utils.notifications import NotificationSeverity

    return [str(n.message) for n in notes if n.severity == NotificationSeverity.ERROR]


def _dock(viewer) -> SuperResolveWidget:
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, WIDGET)
    assert isinstance(widget, SuperResolveWidget)
    return widget


def _run_to_end(qtbot, widget: SuperResolveWidget) -> None:
    assert widget.run() is not None, widget.status.value
    # the widget clears its worker on `finished` (connected before the thread started, so
    # unlike a waitSignal set up here it cannot miss a worker that finishes very fast)
    qtbot.waitUntil(lambda: not widget.running, timeout=TIMEOUT_MS)


def _hr_centre_in_lr(i, s):
    """Where HR pixel i's centre lies in LR pixel coordinates."""
    return (np.asarray(i, float) + 0.5) / s - 0.5


# ------------------------------------------------------------------------------- widget


@pytest.fixture
def weights_file(fresh_weights) -> str:
    """A real (freshly initialised) lite ×2 weight file from conftest: the widget runs the real
    core with it. Untrained weights keep these tests independent of the shipped ones; what is
    tested here is the plumbing (progress, cancel, layers, geometry), not image quality."""
    return str(fresh_weights)


def _dock_with_weights(viewer, weights_file) -> SuperResolveWidget:
    widget = _dock(viewer)
    widget.params.weights = weights_file
    assert str(widget._fields["weights"].value) == weights_file
    return widget


def test_widget_super_resolves_sample_with_aligned_outputs(make_napari_viewer, qtbot, weights_file):
    viewer = make_napari_viewer()
    (src,) = viewer.open_sample(PLUGIN, "jpeg_q15")
    src.scale = (0.7, 1.3)  # the input has its own geometry: outputs must follow it
    src.translate = (5.0, -3.0)
    src.contrast_limits = (10, 240)
    widget = _dock_with_weights(viewer, weights_file)
    assert widget.image_layer.value is src
    assert widget._fields["whole_stack"].native.isHidden()  # a 2D layer has no stack choice
    widget.params.scale = 2
    widget.params.intermediates = True
    widget.params.blocking_map = True
    assert widget._fields["blocking_map"].value is True  # the evented params drive the GUI
    widget._fields["iterations"].value = 2  # and the GUI drives the params
    assert widget.params.iterations == 2

    _run_to_end(qtbot, widget)

    h, w, _ = src.data.shape
    out = viewer.layers[f"{src.name} ×2 (CISR)"]
    assert out.data.shape == (2 * h, 2 * w, 3) and out.data.dtype == np.uint8 and out.rgb
    assert widget.progress.value == 1000 and widget.status.value == "done"
    assert out.contrast_limits == [10, 240]
    # each iteration's estimates are separate hidden 2-D layers: the viewer gains no j slider
    assert viewer.dims.ndim == 2
    ys = [viewer.layers[f"{src.name} ARM {j}/2 (CISR)"] for j in (1, 2)]
    xs = [viewer.layers[f"{src.name} REM {j}/2 (CISR)"] for j in (1, 2)]
    assert all(y.data.shape == (h, w, 3) and not y.visible for y in ys)
    assert all(x.data.shape == (2 * h, 2 * w, 3) and not x.visible for x in xs)
    assert xs[0].metadata["estimate"] == "x̂_1" and ys[1].metadata["estimate"] == "ŷ_2"
    np.testing.assert_array_equal(xs[-1].data, out.data)  # x̂_J is the result
    blocking = viewer.layers[f"{src.name} blocking map (CISR)"]
    assert blocking.data.shape == (h, w) and blocking.data.dtype == np.float32
    assert 0 <= blocking.data.min() and blocking.data.max() <= 1
    assert not blocking.rgb

    # pixel centres coincide in world coordinates
    for i, j in [(0, 0), (1, 3), (2 * h - 1, 2 * w - 1), (17, 40)]:
        lr = _hr_centre_in_lr([i, j], 2)
        np.testing.assert_allclose(out.data_to_world([i, j]), src.data_to_world(lr), atol=1e-9)
        np.testing.assert_allclose(xs[-1].data_to_world([i, j]), src.data_to_world(lr), atol=1e-9)
    for i, j in [(0, 0), (h - 1, w - 1)]:
        np.testing.assert_allclose(blocking.data_to_world([i, j]), src.data_to_world([i, j]))
        np.testing.assert_allclose(ys[0].data_to_world([i, j]), src.data_to_world([i, j]))
    np.testing.assert_allclose(out.scale, (0.35, 0.65))


def test_widget_previews_the_visible_region_on_the_compression_grid(
    make_napari_viewer, qtbot, weights_file
):
    """Issue 22 §6: a region shown on the canvas runs first, placed where it lies in the image."""
    viewer = make_napari_viewer(show=True)  # corner_pixels follows a canvas that is drawn
    (src,) = viewer.open_sample(PLUGIN, "jpeg_q15")
    src.scale = (0.5, 2.0)
    h, w = src.data.shape[:2]
    viewer.scene.camera.center = (0.5 * (h / 2 + 5), 2.0 * (w / 2 - 7))
    viewer.scene.camera.zoom *= 4
    qtbot.waitUntil(lambda: np.ptp(src.corner_pixels[:, 0]) < h - 1, timeout=TIMEOUT_MS)
    widget = _dock_with_weights(viewer, weights_file)
    widget._fields["region"].value = "visible"
    assert widget.params.region == "visible"

    _run_to_end(qtbot, widget)

    out = viewer.layers[f"{src.name} ×2 preview (CISR)"]
    region = out.metadata["cisr"]["region"]
    (r0, r1), (c0, c1) = region["rows"], region["cols"]
    shown = src.corner_pixels
    # the region covers what is shown, grown to whole 16-pixel blocks, and is not the image
    assert r0 % 16 == 0 and c0 % 16 == 0 and (r1 - r0, c1 - c0) != (h, w)
    assert r0 <= shown[0, 0] and shown[1, 0] < r1 and c0 <= shown[0, 1] and shown[1, 1] < c1
    assert out.data.shape == (2 * (r1 - r0), 2 * (c1 - c0), 3)
    for i, j in [(0, 0), (5, 9), (2 * (r1 - r0) - 1, 2 * (c1 - c0) - 1)]:
        lr = np.add(_hr_centre_in_lr([i, j], 2), (r0, c0))
        np.testing.assert_allclose(out.data_to_world([i, j]), src.data_to_world(lr), atol=1e-9)
    assert widget.status.value.startswith("done")


def test_widget_previews_a_drawn_rectangle_on_the_compression_grid(
    make_napari_viewer, qtbot, weights_file
):
    """Issue 22 §6: the last rectangle drawn in a Shapes layer runs first, through world
    coordinates (the image has a physical scale, the Shapes layer none), grown to 16-px blocks."""
    from napari_cisr._layers import plan_job

    viewer = make_napari_viewer()
    (src,) = viewer.open_sample(PLUGIN, "jpeg_q15")
    src.scale = (0.5, 2.0)
    widget = _dock_with_weights(viewer, weights_file)
    widget._fields["region"].value = "rectangle"
    with pytest.raises(ValueError, match="Shapes layer"):
        plan_job(src, widget.params, viewer.dims.point)
    corners = np.array([[0.5 * 20, 2.0 * 30], [0.5 * 60, 2.0 * 90]])  # rows 20-60, cols 30-90
    shapes = viewer.add_shapes(
        [np.array([[0.5 * 5, 2.0 * 5], [0.5 * 9, 2.0 * 9]])], shape_type="ellipse"
    )
    with pytest.raises(ValueError, match="draw a rectangle"):
        plan_job(src, widget.params, viewer.dims.point, shapes)
    shapes.add_rectangles([corners])
    viewer.layers.selection.active = src

    _run_to_end(qtbot, widget)

    out = viewer.layers[f"{src.name} ×2 preview (CISR)"]
    region = out.metadata["cisr"]["region"]
    assert region == {"rows": [16, 64], "cols": [16, 96]}
    assert out.data.shape == (2 * 48, 2 * 80, 3)
    lr = np.add(_hr_centre_in_lr([0, 0], 2), (16, 16))
    np.testing.assert_allclose(out.data_to_world([0, 0]), src.data_to_world(lr), atol=1e-9)
    assert widget.status.value.startswith("done")


def test_widget_precision_and_self_ensemble_reach_the_core(
    make_napari_viewer, qtbot, perturbed_weights
):
    from napari_cisr import super_resolve

    # Fresh weights start as the identity (zero tails): perturbed ones let the network's
    # arithmetic, and hence its precision, show in the output.
    weights_file = perturbed_weights
    viewer = make_napari_viewer()
    rgb = np.random.default_rng(7).integers(0, 256, (24, 32, 3), dtype=np.uint8)
    viewer.add_image(rgb, name="small", rgb=True)
    widget = _dock_with_weights(viewer, weights_file)
    widget.params.iterations = 1
    widget._fields["precision"].value = "float32"  # the GUI drives the params
    widget._fields["self_ensemble"].value = True
    assert widget.params.precision == "float32" and widget.params.self_ensemble

    _run_to_end(qtbot, widget)

    def core(precision, self_ensemble):
        return super_resolve(
            rgb, 2, model=weights_file, iterations=1, device="cpu", precision=precision,
            self_ensemble=self_ensemble,
        )  # fmt: skip

    wanted = core("float32", True)
    for other in (core("bfloat16", True), core("float32", False)):
        assert not np.array_equal(wanted, other)  # so the comparison below tells them apart
    np.testing.assert_array_equal(viewer.layers["small ×2 (CISR)"].data, wanted)


def _smooth_pattern(h: int, w: int) -> np.ndarray:
    """A smooth float image in [0, 1]."""
    yy, xx = np.mgrid[0:h, 0:w]
    return (0.5 + 0.4 * np.sin(yy / 5.0) * np.cos(xx / 7.0)).astype(np.float32)


def test_widget_maps_any_value_range_and_back(make_napari_viewer, qtbot, perturbed_weights):
    """Floats and signed integers map by their contrast limits, 12-bit data by its bit depth,
    and the output keeps the input's dtype and range: the same pattern in [0, 1] and in
    [0, 1000] gives the same result, 1000 times larger."""
    from napari_cisr import super_resolve

    def core(unit):
        result = super_resolve(unit, 2, model=perturbed_weights, iterations=1, device="cpu")
        return result.clip(0, 1)

    unit = _smooth_pattern(24, 32)
    expected = core(unit)
    viewer = make_napari_viewer()
    widget = _dock_with_weights(viewer, perturbed_weights)
    widget.params.iterations = 1

    viewer.add_image(unit * 1000, name="float", contrast_limits=(0, 1000))
    _run_to_end(qtbot, widget)
    out = viewer.layers["float ×2 (CISR)"]
    assert out.data.dtype == np.float32 and 0 <= out.data.min() and out.data.max() <= 1000
    np.testing.assert_allclose(out.data, expected * 1000, atol=0.05)
    assert out.metadata["cisr"]["values"] == {
        "low": 0.0, "high": 1000.0, "source": "contrast limits"
    }  # fmt: skip

    signed = np.round(unit * 2000 - 1000).astype(np.int16)  # -1000..1000
    viewer.add_image(signed, name="signed", contrast_limits=(-1000, 1000))
    _run_to_end(qtbot, widget)
    out = viewer.layers["signed ×2 (CISR)"]
    assert out.data.dtype == np.int16 and out.data.min() < 0
    # (the network amplifies the rounding to int16, so compare on the very input it saw)
    np.testing.assert_allclose(
        out.data, core((signed.astype(np.float32) + 1000) / 2000) * 2000 - 1000, atol=0.51
    )

    twelve = np.round(unit * 4095).astype(np.uint16)
    viewer.add_image(twelve, name="twelve")
    widget.params.bit_depth = 12
    _run_to_end(qtbot, widget)
    out = viewer.layers["twelve ×2 (CISR)"]
    assert out.data.dtype == np.uint16 and out.data.max() <= 4095
    np.testing.assert_allclose(out.data, core(twelve.astype(np.float32) / 4095) * 4095, atol=0.51)
    assert out.metadata["cisr"]["values"]["source"] == "bit depth 12"


@pytest.fixture
def perturbed_weights(tmp_path) -> str:
    """Lite x2 weights perturbed away from the identity, so that the network's input range
    shows in its output."""
    import torch

    from napari_cisr.model import build_model, variant_config
    from napari_cisr.weights import save_weights

    torch.manual_seed(1)
    network = build_model(variant_config("lite", 2))
    with torch.no_grad():
        for parameter in network.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    path = str(tmp_path / "perturbed.safetensors")
    save_weights(network, path)
    return path


@pytest.mark.parametrize(
    ("data", "kwargs", "reason"),
    [
        (np.zeros((16, 16), bool), {}, "boolean image"),
        (np.zeros((1, 1), np.uint8), {}, "both sides must be at least 8"),
        (np.zeros((16, 16, 2), np.uint8), {}, "channel_axis"),
        (np.full((16, 16), 3.0, np.float32), {"value_range": "percentiles"}, "empty value"),
    ],
    ids=["bool", "1x1", "two-channel", "constant-float"],
)
def test_widget_refuses_images_it_cannot_map_with_a_reason(
    make_napari_viewer, notifications, weights_file, data, kwargs, reason
):
    viewer = make_napari_viewer()
    viewer.add_image(data, name="odd")
    widget = _dock_with_weights(viewer, weights_file)
    for name, value in kwargs.items():
        setattr(widget.params, name, value)
    assert widget.run() is None
    assert reason in _errors(notifications)[-1]
    assert [layer.name for layer in viewer.layers] == ["odd"]


def test_widget_shows_the_result_first_and_the_blocking_map_on_demand(
    make_napari_viewer, qtbot, weights_file
):
    viewer = make_napari_viewer()
    (src,) = viewer.open_sample(PLUGIN, "jpeg_q15")
    widget = _dock_with_weights(viewer, weights_file)
    widget.params.iterations = 1
    widget.params.blocking_map = True
    _run_to_end(qtbot, widget)
    out = viewer.layers[f"{src.name} ×2 (CISR)"]
    blocking = viewer.layers[f"{src.name} blocking map (CISR)"]
    assert viewer.layers[-1] is out and out.visible and viewer.layers.selection.active is out
    assert not blocking.visible
    assert blocking.colormap.map(np.array([0.0]))[0, 3] == 0  # transparent where no blocking
    assert blocking.colormap.map(np.array([1.0]))[0, 3] == 1
    assert blocking.metadata["grid"] == (8, 8) and "block edge" in blocking.metadata["meaning"]
    meta = out.metadata["cisr"]
    assert meta["source"]["codec"] == "jpeg" and meta["source"]["quality"] == 15
    assert {"tile", "precision", "device", "self_ensemble", "values"} <= set(meta)
    assert meta["model_run"] == str(weights_file)  # a weight file is never re-routed
    # the chooser does not follow the (selected) result, so a second Run uses the input again
    assert widget.image_layer.value is src


def test_widget_hints_that_a_clean_image_is_not_what_the_model_is_for(
    make_napari_viewer, qtbot, weights_file
):
    viewer = make_napari_viewer()
    viewer.add_image((_smooth_pattern(32, 32) * 255).astype(np.uint8), name="clean")
    widget = _dock_with_weights(viewer, weights_file)
    widget.params.iterations = 1
    _run_to_end(qtbot, widget)
    assert widget.status.tooltip.startswith("done — no JPEG blocking was found")
    assert "may smooth a clean one (the model lite.mild is not)" in widget.status.tooltip


def test_the_shipped_model_runs_the_weights_for_each_layer_s_compression(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    (webp,) = viewer.open_sample(PLUGIN, "webp_q10")  # the file's quality decides: heavy
    viewer.add_image((_smooth_pattern(48, 40) * 255).astype(np.uint8), name="clean")
    widget = _dock(viewer)
    widget.params.iterations = 1
    heavy = route_model("lite", 2, "heavy")  # lite.heavy where it ships at x2
    for layer, weights in ((webp, heavy), (viewer.layers["clean"], "lite.mild")):
        widget.image_layer.value = layer
        _run_to_end(qtbot, widget)
        assert viewer.layers[f"{layer.name} ×2 (CISR)"].metadata["cisr"]["model_run"] == weights
    # no file, no blocking in the pixels: the mild weights ran, and the status says so
    assert widget.status.tooltip.endswith("the weights for mild compression ran")


def test_widget_chooser_follows_the_selected_and_renamed_layers(make_napari_viewer, weights_file):
    viewer = make_napari_viewer()
    first = viewer.add_image(np.zeros((16, 16), np.uint8), name="first")
    widget = _dock_with_weights(viewer, weights_file)
    second = viewer.add_image(np.zeros((16, 16), np.uint8), name="second")
    assert widget.image_layer.value is second  # newly opened: it is the selected layer
    viewer.layers.selection.active = first
    assert widget.image_layer.value is first
    first.name = "renamed"
    combo = widget.image_layer.native
    assert sorted(combo.itemText(i) for i in range(combo.count())) == ["renamed", "second"]
    assert widget.image_layer.value is first


def test_a_long_message_does_not_resize_the_dock_or_the_canvas(
    make_napari_viewer, qtbot, notifications
):
    viewer = make_napari_viewer(show=True)
    widget = _dock(viewer)
    dock = widget.native.parent()
    while dock is not None and not dock.inherits("QDockWidget"):
        dock = dock.parent()
    canvas = viewer.window._qt_viewer.canvas.native
    qtbot.wait(50)
    before = (dock.width(), canvas.width(), canvas.height())
    message = "napari-cisr: " + "a/very/long/path/without/spaces/" * 16 + " " + "word " * 40
    widget._notify_error(message)
    qtbot.wait(50)
    after = (dock.width(), canvas.width(), canvas.height())
    # the breakage was hundreds of pixels (dock 342 -> 802, canvas 795 -> 335); Qt 6 may still
    # settle its layout by a pixel after the first draw
    assert np.abs(np.subtract(after, before)).max() <= 2, (before, after)
    assert widget.status.tooltip == message and len(widget.status.value) < len(message)


def test_widget_estimates_the_time_left(make_napari_viewer, weights_file):
    from napari_cisr._job import JobProgress
    from napari_cisr.inference import Progress

    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((16, 16), np.uint8), name="img")
    widget = _dock_with_weights(viewer, weights_file)
    widget._job = widget._prepare()
    widget._on_progress(JobProgress(0, 1, Progress(1, 4, "tile 1/4")))
    assert widget.status.value.startswith("tile 1/4 · about") and "left" in widget.status.value
    assert widget.progress.value == 250


def test_time_left_is_spelled_for_people():
    from napari_cisr._widget import _duration

    assert [_duration(s) for s in (0.2, 42, 89, 90, 1500, 5400, 9000)] == [
        "1 s", "42 s", "89 s", "2 min", "25 min", "1.5 h", "2.5 h"
    ]  # fmt: skip


def test_every_control_is_explained_and_resets(make_napari_viewer):
    viewer = make_napari_viewer()
    widget = _dock(viewer)
    for name, control in widget._fields.items():
        assert control.tooltip, name
    tile, iterations = widget._fields["tile"], widget._fields["iterations"]
    assert tile.native.lineEdit().text() == "automatic"
    assert iterations.native.lineEdit().text() == "model default"
    iterations.value = 3
    assert iterations.native.lineEdit().text() == "3" and widget.params.iterations == 3
    widget._fields["scale"].value = 4
    widget.params.tile = 256
    widget.reset_button.native.click()
    assert widget.params.scale == 2 and widget.params.tile is None
    assert tile.native.lineEdit().text() == "automatic"


def test_tile_means_what_it_means_everywhere(make_napari_viewer, qtbot):
    """None = automatic and 0 = the whole image in one pass, in the widget as in the library."""
    viewer = make_napari_viewer()
    widget = _dock(viewer)
    tile = widget._fields["tile"]
    assert widget.params.tile is None
    tile.native.stepBy(1)  # one step up from "automatic"
    assert widget.params.tile == 0 and tile.native.lineEdit().text() == "whole image"
    tile.native.stepBy(1)
    assert widget.params.tile == 16 and tile.native.lineEdit().text() == "16"
    from qtpy.QtCore import Qt

    tile.native.lineEdit().setText("automatic")  # typed, then Enter
    qtbot.keyPress(tile.native, Qt.Key.Key_Return)
    assert widget.params.tile is None
    widget.params.tile = 0
    assert tile.native.lineEdit().text() == "whole image"


def test_speed_choice_sets_the_iterations_and_follows_them(make_napari_viewer):
    viewer = make_napari_viewer()
    widget = _dock(viewer)
    assert widget.speed.tooltip and widget.speed.value == "best"
    widget.speed.value = "fast"
    assert widget.params.iterations == 1  # the job reads the iterations, nothing else
    assert widget._fields["iterations"].value == 1
    widget._fields["iterations"].value = 2
    assert widget.speed.value == "balanced"
    widget._fields["iterations"].value = 5
    assert widget.speed.value == "custom" and widget.params.iterations == 5
    widget._fields["iterations"].value = 0
    assert widget.speed.value == "best"
    widget.speed.value = "fast"
    widget.reset_button.native.click()
    assert widget.speed.value == "best" and widget.params.iterations == 0


def test_widget_offers_only_models_with_shipped_weights():
    from napari_cisr._widget import _model_names
    from napari_cisr.weights import load_model

    assert "lite" in _model_names()
    # each set of lite weights ships at x2, x3 and x4, so each is offered
    assert {"lite.mild", "lite.strong", "lite.heavy"} <= set(_model_names())
    for name in _model_names():
        for scale in (2, 3, 4):
            assert load_model(name, scale=scale).scale == scale


def test_widget_cancel_stops_before_the_last_iteration(
    make_napari_viewer, qtbot, weights_file, monkeypatch
):
    import threading

    import napari_cisr.inference

    viewer = make_napari_viewer()
    rng = np.random.default_rng(0)
    viewer.add_image(rng.integers(0, 256, (160, 160), dtype=np.uint8), name="big")
    widget = _dock_with_weights(viewer, weights_file)
    widget.params.iterations = 12  # the job checks for cancel between iterations
    # The worker waits after its first iteration until Cancel was pressed, so that the test
    # does not race it: on a busy machine it could otherwise finish before Cancel arrives.
    cancelled = threading.Event()
    steps_for = napari_cisr.inference.steps_for

    def held_after_the_first_iteration(image, options):
        steps = steps_for(image, options)
        yield next(steps)
        cancelled.wait(timeout=TIMEOUT_MS / 1000)
        return (yield from steps)

    monkeypatch.setattr(napari_cisr.inference, "steps_for", held_after_the_first_iteration)
    stages = []  # connected before the worker starts, so nothing is missed
    widget.progressed.connect(lambda update: stages.append(update.text))
    assert widget.run() is not None
    qtbot.waitUntil(lambda: any(s.startswith("iteration") for s in stages), timeout=TIMEOUT_MS)
    widget.cancel()
    cancelled.set()
    qtbot.waitUntil(lambda: not widget.running, timeout=TIMEOUT_MS)
    assert "iteration 12/12" not in stages, stages  # stopped before the last iteration
    assert [layer.name for layer in viewer.layers] == ["big"]
    assert widget.status.value == "cancelled" and widget.run_button.enabled


def test_widget_stack_current_plane_and_whole_stack(make_napari_viewer, qtbot, weights_file):
    viewer = make_napari_viewer()
    rng = np.random.default_rng(1)
    stack = rng.integers(0, 256, (3, 16, 20), dtype=np.uint8)
    src = viewer.add_image(stack, name="stack", scale=(4.0, 0.5, 0.5), translate=(10, 1, 2))
    viewer.dims.set_point(0, src.data_to_world([1, 0, 0])[0])  # plane 1
    widget = _dock_with_weights(viewer, weights_file)
    widget.params.iterations = 1
    assert not widget._fields["whole_stack"].native.isHidden()  # offered for a stack

    _run_to_end(qtbot, widget)
    plane = viewer.layers["stack ×2 (CISR)"]
    assert plane.data.shape == (1, 32, 40)
    np.testing.assert_allclose(
        plane.data_to_world([0, 5, 7]), src.data_to_world([1, *_hr_centre_in_lr([5, 7], 2)])
    )

    viewer.layers.remove(plane)
    widget.params.whole_stack = True
    _run_to_end(qtbot, widget)
    whole = viewer.layers["stack ×2 (CISR)"]
    assert whole.data.shape == (3, 32, 40)
    np.testing.assert_allclose(whole.scale, (4.0, 0.25, 0.25))
    np.testing.assert_allclose(
        whole.data_to_world([2, 0, 0]), src.data_to_world([2, *_hr_centre_in_lr([0, 0], 2)])
    )
    np.testing.assert_array_equal(whole.data[1], plane.data[0])  # same plane, same result


def test_widget_lazy_layer_is_computed_in_the_worker(make_napari_viewer, qtbot, weights_file):
    viewer = make_napari_viewer()
    rng = np.random.default_rng(5)
    rgb = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
    viewer.add_image(da.from_array(rgb, chunks=(16, 16, 3)), name="lazy", rgb=True)
    widget = _dock_with_weights(viewer, weights_file)
    widget.params.iterations = 1
    widget.params.tile = 16
    stages = []
    widget.progressed.connect(lambda update: stages.append(update.text))
    assert widget.run() is not None
    qtbot.waitUntil(lambda: not widget.running, timeout=TIMEOUT_MS)
    out = viewer.layers["lazy ×2 (CISR)"]
    # the network ran in the worker, chunk by chunk, not on the GUI thread at draw time
    assert isinstance(out.data, np.ndarray) and out.data.shape == (80, 96, 3)
    assert any(stage.startswith("computing chunk") for stage in stages), stages


def test_output_geometry_follows_rotation_and_affine(make_napari_viewer):
    viewer = make_napari_viewer()
    src = viewer.add_image(
        np.zeros((10, 12), np.uint8),
        scale=(2, 3),
        translate=(1, -4),
        rotate=30,
        affine=np.array([[1, 0.2, 5], [0, 1, 0], [0, 0, 1]]),
    )
    for s in (2, 3, 4):
        out = viewer.add_image(np.zeros((10 * s, 12 * s), np.uint8), **output_geometry(src, s))
        for idx in [(0, 0), (7, 3), (10 * s - 1, 12 * s - 1)]:
            np.testing.assert_allclose(
                out.data_to_world(idx), src.data_to_world(_hr_centre_in_lr(idx, s)), atol=1e-9
            )


def test_bad_parameter_and_core_error_become_notifications(
    make_napari_viewer, qtbot, notifications, weights_file
):
    viewer = make_napari_viewer()
    widget = _dock(viewer)
    assert widget.run() is None  # no image layer yet
    assert "select an image layer" in _errors(notifications)[-1]

    viewer.add_image(np.zeros((16, 16), np.uint8), name="img")
    widget.params.scale = 5  # not offered by the GUI, but settable on the params
    assert widget.run() is None
    assert "scale must be one of 2, 3, 4, not 5" in _errors(notifications)[-1]
    widget.params.scale = 2
    widget.params.model = "no-such-model"
    assert widget.run() is None
    assert "model 'no-such-model' does not exist" in _errors(notifications)[-1]

    widget.params.model = "lite"
    widget.params.weights = str(Path(weights_file).with_name("missing.safetensors"))
    assert widget.run() is None
    assert "missing.safetensors' does not exist" in _errors(notifications)[-1]

    # an error raised inside the core arrives as a notification, not an exception
    widget.params.weights = weights_file
    widget.params.scale = 3  # the weight file is for ×2: the core refuses it
    _run_to_end(qtbot, widget)
    assert "super-resolution failed" in _errors(notifications)[-1]
    assert "x2, not x3" in _errors(notifications)[-1]
    assert [layer.name for layer in viewer.layers] == ["img"]
    assert widget.progress.value == 0 and widget.run_button.enabled


# ------------------------------------------------------------------------------- readers


@pytest.fixture
def image_files(tmp_path):
    rng = np.random.default_rng(2)
    rgb = (np.cumsum(rng.random((40, 56, 3)), axis=1) / 56 * 255).astype(np.uint8)
    gray16 = rng.integers(0, 65536, (30, 20), dtype=np.uint16)
    files = {}
    for name, arr, kw in [
        ("a.jpg", rgb, {"quality": 33}),
        ("b.jpeg", rgb[..., 0], {"quality": 80}),
        ("c.webp", rgb, {"quality": 10}),
        ("d.png", rgb, {}),
        ("e.png", gray16, {}),
        ("f.tif", gray16, {}),
        ("g.tiff", rgb, {}),
    ]:
        io.write_image(tmp_path / name, arr, **kw)
        files[name] = io.read_image(tmp_path / name)
    return tmp_path, files


def test_readers_for_every_image_format(make_napari_viewer, image_files):
    folder, expected = image_files
    viewer = make_napari_viewer()
    for name, ref in expected.items():
        (layer,) = viewer.open(folder / name, plugin=PLUGIN)
        np.testing.assert_array_equal(np.asarray(layer.data), ref)
        assert layer.rgb == (ref.ndim == 3)
        assert layer.name == Path(name).stem
        assert layer.metadata["codec"] == io.image_info(folder / name)["codec"]
    assert viewer.layers["a"].metadata["quality"] == 33
    assert viewer.layers["b"].metadata["quality"] == 80
    assert viewer.layers["e"].data.dtype == np.uint16


def test_reader_zarr_is_lazy_and_multiscale(make_napari_viewer, tmp_path):
    from test_io import make_ome_zarr

    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, (64, 48, 3), dtype=np.uint8)
    io.write_zarr(tmp_path / "plain.zarr", rgb)
    pyramid = make_ome_zarr(tmp_path / "ome.zarr", rgb[..., 0], levels=3)
    viewer = make_napari_viewer()
    (plain,) = viewer.open(tmp_path / "plain.zarr", plugin=PLUGIN)
    assert isinstance(plain.data, da.Array) and plain.rgb
    np.testing.assert_array_equal(plain.data.compute(), rgb)
    (ome,) = viewer.open(tmp_path / "ome.zarr", plugin=PLUGIN)
    assert ome.multiscale and len(ome.data) == 3
    assert all(isinstance(level, da.Array) for level in ome.data)
    np.testing.assert_array_equal(np.asarray(ome.data[2]), pyramid[2])
    np.testing.assert_allclose(ome.scale, (0.5, 0.5))  # OME level-0 scale


def test_unreadable_file_gives_notification_not_exception(
    make_napari_viewer, tmp_path, notifications, caplog
):
    folder = tmp_path / "a folder with a long name, as photo libraries have" / "2024" / "holiday"
    folder.mkdir(parents=True)
    good = folder / "good.jpg"
    io.write_image(good, np.full((32, 32, 3), 100, np.uint8))
    bad = folder / "bad.jpg"
    bad.write_bytes(good.read_bytes()[:200])
    (folder / "empty.webp").write_bytes(b"")
    viewer = make_napari_viewer()
    with caplog.at_level("WARNING", logger="napari_cisr"):
        assert viewer.open(bad, plugin=PLUGIN) == []
    # the reason first, the file by its name: a narrow toast cuts off the end, not the reason
    assert _errors(notifications)[-1] == "truncated JPEG data: cannot read bad.jpg"
    assert f"cannot read '{bad}': truncated JPEG data" in caplog.text  # the full path: the log
    assert viewer.open(folder / "empty.webp", plugin=PLUGIN) == []
    assert _errors(notifications)[-1] == "file is empty: cannot read empty.webp"
    assert not any("long name" in message for message in _errors(notifications))
    assert len(viewer.layers) == 0
    from napari_cisr._reader import napari_get_reader

    assert napari_get_reader(str(tmp_path / "x.bmp")) is None


# ------------------------------------------------------------------------------- writers


#: A result layer's metadata as the widget records it (napari_cisr._layers.add_result_layers).
_RESULT_METADATA = {
    "source": "photo",
    "cisr": {
        "scale": 2, "model": "lite", "weights": None, "iterations": 4, "tile": 256,
        "device": "cpu", "precision": "float32", "self_ensemble": False,
        "values": {"mapping": "dtype", "low": 0.0, "high": 255.0},
        "source": {"path": "/photos/photo.jpg", "codec": "jpeg", "quality": 33},
    },
}  # fmt: skip


def test_writers_zarr_tiff_png_roundtrip(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    rng = np.random.default_rng(4)
    rgb = rng.integers(0, 256, (40, 30, 3), dtype=np.uint8)
    metadata = {
        **_RESULT_METADATA,
        "mask": np.zeros(3),  # not JSON: left out, without losing the rest
        "codec": "jpeg",  # describes the file the layer came from, not the one saved
    }
    layer = viewer.add_image(  # rgb=True: napari 0.9 would take 40×30×3 for a stack of 40
        rgb, name="rgb", rgb=True, scale=(2, 3), translate=(1, 1), metadata=metadata
    )
    for name in ("o.tif", "o.png"):
        assert layer.save(str(tmp_path / name), plugin=PLUGIN) == [str(tmp_path / name)]
        np.testing.assert_array_equal(io.read_image(tmp_path / name), rgb)
    # a TIFF keeps the run's settings and the geometry, as a zarr store does
    (tiff,) = viewer.open(tmp_path / "o.tif", plugin=PLUGIN)
    np.testing.assert_array_equal(tiff.data, rgb)
    assert tiff.metadata["cisr"] == _RESULT_METADATA["cisr"]
    assert tiff.metadata["source"] == "photo" and "mask" not in tiff.metadata
    assert tiff.metadata["codec"] == "tiff" and tiff.metadata["path"] == str(tmp_path / "o.tif")
    np.testing.assert_allclose(tiff.scale, (2, 3))
    np.testing.assert_allclose(tiff.translate, (1, 1))
    viewer.layers.remove(tiff)

    computed = []

    def spy(block):
        if block.size:
            computed.append(block.shape)
        return block

    lazy = da.from_array(rgb, chunks=(16, 16, 3)).map_blocks(spy, dtype=np.uint8)
    lazy_layer = viewer.add_image(
        lazy, name="lazy", rgb=True, scale=(2, 3), translate=(1, 1), metadata=_RESULT_METADATA
    )
    computed.clear()
    assert lazy_layer.save(str(tmp_path / "o.zarr"), plugin=PLUGIN) == [str(tmp_path / "o.zarr")]
    assert computed and max(shape[0] for shape in computed) <= 16  # chunk by chunk
    (back,) = viewer.open(tmp_path / "o.zarr", plugin=PLUGIN)
    np.testing.assert_array_equal(back.data.compute(), rgb)
    np.testing.assert_allclose(back.scale, (2, 3))
    np.testing.assert_allclose(back.translate, (1, 1))
    assert back.metadata["cisr"] == _RESULT_METADATA["cisr"]
    assert back.metadata["codec"] == "zarr"
    # napari's save dialog asks about overwriting, so the writers replace (atomically), but
    # never silently
    with pytest.warns(UserWarning, match="replacing the existing .*o.png"):
        layer.save(str(tmp_path / "o.png"), plugin=PLUGIN)
    with pytest.warns(UserWarning, match="replacing the existing .*o.zarr"):
        lazy_layer.save(str(tmp_path / "o.zarr"), plugin=PLUGIN)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.png", "o.tif", "o.zarr"]

    # one writer for every extension: a bare name gets .tif; a layer a format cannot hold is
    # refused with the writer's own reason, not napari's "not a valid writer"
    assert layer.save(str(tmp_path / "bare"), plugin=PLUGIN) == [str(tmp_path / "bare.tif")]
    floats = viewer.add_image(rgb[..., 0].astype(np.float32), name="floats")
    with pytest.warns(UserWarning, match="cannot save 'floats'.*not float32; save it as .tif"):
        assert floats.save(str(tmp_path / "f.png"), plugin=PLUGIN) == []
    assert not (tmp_path / "f.png").exists()


# ------------------------------------------------------------------------------- samples, manifest


def test_sample_data(make_napari_viewer):
    viewer = make_napari_viewer()
    (jpg,) = viewer.open_sample(PLUGIN, "jpeg_q15")
    (webp,) = viewer.open_sample(PLUGIN, "webp_q10")
    hr = io.read_image(DATA / "sample_hr.png")
    for layer in (jpg, webp):
        assert layer.rgb and layer.data.shape == (hr.shape[0] // 2, hr.shape[1] // 2, 3)
    assert jpg.metadata["quality"] == 15 and webp.metadata["codec"] == "webp"


def test_npe2_validate_manifest():
    result = subprocess.run(
        [str(Path(sys.executable).with_name("npe2")), "validate", PLUGIN, "--imports"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "valid" in result.stdout


def test_the_napari_extras_run_on_qt6():
    """Issue 22 §9: the `napari` and `testing` extras install PyQt6, on which napari 0.9
    neither deprecates its backend nor skips system theme detection."""
    import qtpy

    assert qtpy.QT6, f"running on {qtpy.API_NAME} {qtpy.QT_VERSION}"

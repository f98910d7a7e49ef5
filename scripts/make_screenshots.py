"""Regenerate the napari screenshots in ``docs/images/`` used by ``docs/napari.md``.

Opens a real napari viewer (on a virtual X display when ``$DISPLAY`` is unset, via
PyVirtualDisplay, which pytest-xvfb installs), loads the "Compressed photo (JPEG q15)" sample,
docks the "Super-resolve compressed image" widget, runs it with the intermediate estimates and
the blocking map, and saves:

* ``napari-widget.png``         the whole window: widget, layer list and the ×2 result;
* ``napari-compare.png``        canvas only, grid view: the JPEG input beside the result;
* ``napari-blocking.png``       canvas only: the input with its blocking map overlaid;
* ``napari-intermediates.png``  canvas only, grid view: x̂_1 … x̂_J;
* ``napari-float.png``          the whole window after a run on a float image in [0, 1000]
  (a JPEG-compressed scikit-image ``camera``, scaled), the value mapping in the status;
* ``napari-rectangle.png``      the whole window after a preview of a drawn rectangle: the
  ×2 preview lies on the input where the rectangle was drawn;
* ``napari-error.png``          the whole window after an error (a boolean layer): the
  message wraps inside the dock.

Run from the repository root (takes ~20 s on a laptop CPU)::

    python scripts/make_screenshots.py                  # the shipped "lite" weights
    python scripts/make_screenshots.py --weights runs/lite-x2/best.safetensors
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

WIDGET = "Super-resolve compressed image"
OUT = Path(__file__).resolve().parents[1] / "docs" / "images"


def _wait(app, predicate, timeout: float) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise TimeoutError("the widget did not finish in time")
        app.processEvents()
        time.sleep(0.02)


def main(argv: list[str] | None = None) -> None:
    """Make the screenshots."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default="", help="weight file (default: shipped 'lite')")
    parser.add_argument("--model", default="lite", help="shipped model name (default: lite)")
    parser.add_argument("--out", type=Path, default=OUT, help="output folder")
    parser.add_argument("--size", default="1280x760", help="window size WxH")
    args = parser.parse_args(argv)

    if not os.environ.get("DISPLAY") and os.name == "posix":
        # Run ourselves on a virtual X display; the child exits (and closes its X connection)
        # before the display is stopped.
        import subprocess
        import sys

        from pyvirtualdisplay import Display

        with Display(visible=False, size=(1600, 1000), color_depth=24):
            argv = sys.argv[1:] if argv is None else argv
            status = subprocess.call([sys.executable, __file__, *argv])
        raise SystemExit(status)
    with tempfile.TemporaryDirectory() as config:
        # a throw-away napari settings file: hide toasts without touching the user's settings
        os.environ["NAPARI_CONFIG"] = os.path.join(config, "settings.yaml")
        _shoot(args)


def _shoot(args: argparse.Namespace) -> None:
    import napari
    import napari._qt.qt_main_window as qt_main_window
    from napari.settings import get_settings
    from napari.utils.notifications import notification_manager
    from qtpy.QtWidgets import QApplication

    get_settings().application.gui_notification_level = "none"
    qt_main_window.SHOW_QT_WARNING = False  # napari 0.9 toasts a deprecated Qt 5 binding

    errors: list[str] = []
    notification_manager.notification_ready.connect(lambda n: errors.append(str(n.message)))

    width, height = (int(v) for v in args.size.split("x"))
    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(width, height)
    app = QApplication.instance()
    (src,) = viewer.open_sample("napari-cisr", "jpeg_q15")
    _, widget = viewer.window.add_plugin_dock_widget("napari-cisr", WIDGET)
    widget.params.model = args.model
    widget.params.weights = args.weights
    widget.params.intermediates = True
    widget.params.blocking_map = True
    if widget.run() is None:
        raise SystemExit(f"could not start: {errors[-1] if errors else widget.status.value}")
    _wait(app, lambda: not widget.running, timeout=600)
    if not widget.status.value.startswith("done"):
        raise SystemExit(f"the run failed: {errors[-1] if errors else widget.status.value}")

    name = src.name
    result = viewer.layers[f"{name} ×2 (CISR)"]
    blocking = viewer.layers[f"{name} blocking map (CISR)"]
    n_j = sum(layer.name.startswith(f"{name} REM ") for layer in viewer.layers)
    x_hats = [viewer.layers[f"{name} REM {j}/{n_j} (CISR)"] for j in range(1, n_j + 1)]
    args.out.mkdir(parents=True, exist_ok=True)

    def only(*layers):
        for layer in viewer.layers:
            layer.visible = layer in layers
        viewer.reset_view()
        app.processEvents()

    def settle() -> None:  # let wrapped labels and the layout catch up before a screenshot
        end = time.monotonic() + 0.3
        while time.monotonic() < end:
            app.processEvents()
            time.sleep(0.02)

    def save(name: str, image) -> None:
        from PIL import Image

        Image.fromarray(image).save(args.out / name, optimize=True)
        print(f"wrote {args.out / name}")

    viewer.layers.selection.active = result
    only(result)
    save("napari-widget.png", viewer.screenshot(canvas_only=False, flash=False))

    canvas = getattr(viewer, "canvas", None)
    grid = canvas.grid if canvas is not None and hasattr(canvas, "grid") else viewer.grid
    grid.enabled = True
    grid.stride = 1
    grid.shape = (1, 2)
    only(src, result)
    save("napari-compare.png", viewer.export_figure(scale_factor=2, flash=False))

    grid.enabled = False
    only(src, blocking)
    save("napari-blocking.png", viewer.export_figure(scale_factor=2, flash=False))

    # x̂_1..x̂_J side by side, in grid view
    grid.shape = (1, len(x_hats))
    grid.enabled = True
    only(*x_hats)
    save("napari-intermediates.png", viewer.export_figure(scale_factor=1, flash=False))
    grid.enabled = False

    # a preview of a drawn rectangle, on the sample
    import numpy as np

    for layer in list(viewer.layers):
        viewer.layers.remove(layer)
    (src,) = viewer.open_sample("napari-cisr", "jpeg_q15")
    h, w = src.data.shape[:2]
    rectangle = np.array([[0.3 * h, 0.35 * w], [0.7 * h, 0.75 * w]])
    shapes = viewer.add_shapes(
        [rectangle], shape_type="rectangle", edge_color="yellow", face_color="transparent",
        edge_width=1, name="region",
    )  # fmt: skip
    viewer.layers.selection.active = src
    widget.params.region = "rectangle"
    widget.run()
    _wait(app, lambda: not widget.running, timeout=600)
    if not widget.status.value.startswith("done"):
        raise SystemExit(f"the preview failed: {errors[-1] if errors else widget.status.value}")
    viewer.layers.move(viewer.layers.index(shapes), len(viewer.layers))  # outline on top
    viewer.reset_view()
    viewer.scene.camera.center = (0.5 * h, 0.55 * w)
    viewer.scene.camera.zoom *= 1.6
    settle()
    save("napari-rectangle.png", viewer.screenshot(canvas_only=False, flash=False))
    widget.params.region = "whole"

    # a float scientific-style image: values 0..1000, mapped by its contrast limits
    from skimage import data

    from napari_cisr.degrade import compress

    for layer in list(viewer.layers):
        viewer.layers.remove(layer)
    camera = data.camera()[::4, ::4]
    compressed = compress(camera, "jpeg", 30)
    viewer.add_image(compressed.astype(np.float32) / 255 * 1000, name="camera float 0-1000")
    widget.params.intermediates = False
    widget.params.blocking_map = False
    widget.run()
    _wait(app, lambda: not widget.running, timeout=600)
    for layer in viewer.layers:
        layer.visible = layer.name.endswith("(CISR)")
    viewer.reset_view()
    settle()
    save("napari-float.png", viewer.screenshot(canvas_only=False, flash=False))

    viewer.add_image(np.zeros((64, 64), bool), name="a mask")
    widget.run()  # refused: the one-line reason wraps in the dock
    settle()
    save("napari-error.png", viewer.screenshot(canvas_only=False, flash=False))

    viewer.close()


if __name__ == "__main__":
    main()

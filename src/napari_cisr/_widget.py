"""napari dock widget "Super-resolve compressed image".

The widget edits a :class:`~napari_cisr._job.SuperResolveParams` (a psygnal ``@evented``
dataclass); *Run* reads it, slices the chosen plane(s) out of the image layer and starts a
napari ``thread_worker`` around :func:`napari_cisr._job.run_job`, a generator that drives
:func:`napari_cisr.inference.super_resolve_steps` and yields
:class:`~napari_cisr._job.JobProgress` into the progress bar. *Cancel* calls ``worker.quit()``:
the worker stops at the next tile/iteration boundary and the core generator is closed.
Exceptions are caught inside the job and returned as :class:`~napari_cisr._job.JobFailed`, then
shown with ``show_error``: nothing raises inside Qt. No compute happens here, and the job
(``napari_cisr._job``) imports neither napari nor Qt; this module only adapts layers.

Where the outputs go and which layers are added is :mod:`napari_cisr._layers` (no Qt); the
display tweaks of the controls (words for special spin-box values, a wrapping status line) are
:mod:`napari_cisr._controls`.
"""

from __future__ import annotations

import time
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FileEdit,
    Label,
    ProgressBar,
    PushButton,
    SpinBox,
)
from psygnal import Signal

from napari_cisr._controls import special_values, wrap_and_elide
from napari_cisr._job import (
    SCALES,
    JobFailed,
    JobOutcome,
    JobProgress,
    SuperResolveParams,
    run_job,
)
from napari_cisr._layers import (
    OUTPUT_SUFFIX,
    PlaneJob,
    add_result_layers,
    no_blocking_hint,
    output_geometry,
    plan_job,
)
from napari_cisr.options import PRESET_HELP, PRESETS
from napari_cisr.registry import (
    COMPRESSIONS,
    PRECISIONS,
    PRETRAINED,
    pretrained_key,
    shipped_variants,
)
from napari_cisr.values import VALUE_RANGES

if TYPE_CHECKING:  # pragma: no cover
    import napari

__all__ = ["SuperResolveWidget", "output_geometry"]


# --------------------------------------------------------------------------------------------
# the widget
# --------------------------------------------------------------------------------------------


def _precisions() -> list[str]:
    return list(PRECISIONS)


def _model_names() -> tuple[str, ...]:
    """The variants with shipped weights, each then tagged with every compression it ships
    weights for at every scale, since the scale can change after the choice (others need a
    weight file: the *weights* field)."""
    names = []
    for variant in shipped_variants() or ("lite",):
        names.append(variant)
        for tag in COMPRESSIONS:
            if all(pretrained_key(variant, scale, tag) in PRETRAINED for scale in SCALES):
                names.append(f"{variant}.{tag}")
    return tuple(names)


def _devices() -> list[str]:
    devices = ["auto", "cpu"]
    try:
        import torch

        if torch.cuda.is_available():
            devices.append("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            devices.append("mps")
    except ImportError:
        pass
    return devices


#: The status line shows at most this many characters (about four wrapped lines of a dock);
#: the full text is its tooltip and, for errors, the notification.
_STATUS_CHARS = 160


#: The tile spin box's stand-in for ``tile=None`` (automatic): one step below 0 (whole image).
_AUTOMATIC_TILE = -16


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


#: The speed choice shown when the iterations match no preset.
CUSTOM_SPEED = "custom"


def _speed_choices() -> list[tuple[str, str]]:
    return [(name, name) for name in PRESETS] + [("custom iterations", CUSTOM_SPEED)]


def _speed_of(iterations: int) -> str:
    """The preset whose iterations these are (0 = the model's own), else ``custom``."""
    for name, preset in PRESETS.items():
        if (preset or 0) == iterations:
            return name
    return CUSTOM_SPEED


def _show_in(widget: Any, name: str) -> Any:
    """A callback showing parameter ``name``'s new value in ``widget`` (if it can show it).

    A value the widget cannot represent (e.g. ``scale=5`` set from code) stays in the
    parameters and is rejected with a notification when *Run* is pressed.
    """

    def show(value: Any) -> None:
        if isinstance(widget, FileEdit):
            value = value or None
        elif name == "tile" and value is None:
            value = _AUTOMATIC_TILE
        try:
            widget.value = value
        except (ValueError, TypeError):
            pass

    return show


class SuperResolveWidget(Container):
    """Dock widget: super-resolve the selected image layer with CISR-PSI.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
        The viewer whose image layers are offered and to which results are added.

    Attributes
    ----------
    progressed : psygnal.Signal
        Emitted on the GUI thread with each :class:`JobProgress` of the running job.
    """

    progressed = Signal(object)

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__(labels=True)
        self._viewer = viewer
        self.params = SuperResolveParams()
        self.worker: Any = None
        self._job: PlaneJob | None = None
        self._job_gen: Generator | None = None

        self.image_layer = ComboBox(label="image", choices=self._image_layers)
        models = _model_names()
        if self.params.model not in models:
            self.params.model = models[0]
        fields = {
            "scale": ComboBox(label="scale", choices=SCALES),
            "model": ComboBox(label="model", choices=models),
            "weights": FileEdit(
                label="weights file", mode="r", filter="*.safetensors *.pt *.pth", nullable=True
            ),
            "iterations": SpinBox(label="iterations J", min=0, max=16),
            "tile": SpinBox(label="tile size", min=_AUTOMATIC_TILE, max=8192, step=16),
            "device": ComboBox(label="device", choices=_devices()),
            "precision": ComboBox(label="precision", choices=_precisions()),
            "value_range": ComboBox(label="values", choices=VALUE_RANGES),
            "bit_depth": SpinBox(label="bit depth", min=0, max=16),
            "self_ensemble": CheckBox(text="self-ensemble (x8 time)"),
            "intermediates": CheckBox(text="add intermediate estimates"),
            "blocking_map": CheckBox(text="add blocking map (hidden)"),
            "whole_stack": ComboBox(
                label="process",
                choices=[("current plane", False), ("whole stack", True)],
            ),
            "region": ComboBox(
                label="area",
                choices=[
                    ("whole image", "whole"),
                    ("visible region (preview)", "visible"),
                    ("drawn rectangle (preview)", "rectangle"),
                ],
            ),
        }
        tooltips = {
            "scale": "how many times larger the result is on each side",
            "model": (
                "the shipped network for this scale (docs/models.md): lite runs the weights "
                "trained for the image's compression (from its file, else its blocking); "
                ".mild / .strong / .heavy choose them"
            ),
            "weights": "optional trained weight file; overrides the model choice",
            "iterations": "unfolding iterations J (ARM then REM, J times); "
            "'model default' uses the number it was trained with",
            "tile": "tile size in input pixels; 'automatic' picks one that fits the memory, "
            "'whole image' runs it in one pass",
            "device": "where the network runs; auto = a GPU when there is one",
            "precision": "auto = bfloat16 where the device runs it natively, else float32",
            "value_range": "how the layer's values map to the network's 0-1: auto = by the "
            "dtype for unsigned integers, by the contrast limits (what you see) for floats and "
            "signed integers; percentiles = 0.1-99.9 % of the data",
            "bit_depth": "significant bits of unsigned integer data, e.g. 12 for a 12-bit "
            "camera stored in 16 bits; 'from dtype' = all of them",
            "self_ensemble": "average over the 8 rotations/flips of the input: "
            "8x the time, a higher PSNR",
            "intermediates": "also add each iteration's ARM (artefact-removed, input size) and "
            "REM (super-resolved) estimates as hidden layers",
            "blocking_map": "also add, hidden, the detected JPEG blocking (1 = a block edge "
            "the network treats as an artefact, 0 = none)",
            "whole_stack": "for a T/Z stack: the plane on screen, or every plane",
            "region": "preview: only the part shown on the canvas (zoom in to choose it), or "
            "only the last rectangle drawn in the top Shapes layer, to judge the settings "
            "before the whole image",
        }
        for name, text in tooltips.items():
            fields[name].tooltip = text
        # "0" means something different in each of these: show it as words
        special_values(fields["iterations"], {0: "model default"})
        special_values(fields["tile"], {_AUTOMATIC_TILE: "automatic", 0: "whole image"})
        special_values(fields["bit_depth"], {0: "from dtype"})
        self.reset_button = PushButton(text="Reset to defaults")
        self.reset_button.tooltip = "set every control back to its default value"
        self._fields = fields
        for name, widget in fields.items():
            _show_in(widget, name)(getattr(self.params, name))
            widget.changed.connect(self._store_in(name))
            getattr(self.params.events, name).connect(_show_in(widget, name))

        # A shortcut, not a parameter: a preset sets the iterations (what the job uses).
        self.speed = ComboBox(label="speed", choices=_speed_choices())
        self.speed.tooltip = "; ".join(f"{name}: {text}" for name, text in PRESET_HELP.items())
        self.speed.value = _speed_of(self.params.iterations)
        self.speed.changed.connect(self._apply_speed)
        self.params.events.iterations.connect(
            lambda iterations: setattr(self.speed, "value", _speed_of(iterations))
        )

        self.run_button = PushButton(text="Run")
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.progress = ProgressBar(label="progress", min=0, max=1000, value=0)
        self.status = Label(label="", value="")
        wrap_and_elide(self.status)
        self.image_layer.tooltip = "the image layer to super-resolve; follows the selected layer"
        self.run_button.tooltip = "super-resolve the chosen image with these settings"
        self.cancel_button.tooltip = "stop at the next tile or iteration"
        controls = [self.image_layer, *fields.values(), self.reset_button]
        controls.insert(controls.index(fields["iterations"]), self.speed)
        self.extend([*controls, self.run_button, self.cancel_button, self.progress, self.status])

        self.run_button.changed.connect(self.run)
        self.cancel_button.changed.connect(self.cancel)
        self.reset_button.changed.connect(self.reset_params)
        self.image_layer.changed.connect(self._update_stack_choice)
        events = viewer.layers.events
        for event in (events.inserted, events.removed, events.reordered):
            event.connect(self.reset_choices)
        events.inserted.connect(self._watch_name)
        for layer in viewer.layers:
            layer.events.name.connect(self.reset_choices)
        viewer.layers.selection.events.active.connect(self._follow_active)
        self.reset_choices()
        self._update_stack_choice()

    # ---------------------------------------------------------------- helpers
    def _store_in(self, name: str) -> Any:
        """A callback storing a widget's new value in ``params.<name>``."""

        def store(value: Any) -> None:
            if name == "weights":
                value = "" if value is None or str(value) in ("", ".") else str(value)
            elif name == "tile" and value is not None and value < 0:
                value = None  # the spin box's "automatic"
            setattr(self.params, name, value)

        return store

    def _apply_speed(self, speed: str) -> None:
        if speed in PRESETS:
            self.params.iterations = PRESETS[speed] or 0  # the spin box's 0: the model's own

    def reset_params(self, *_: Any) -> None:
        """Set every parameter back to its default (the controls follow)."""
        defaults = SuperResolveParams()
        for name in defaults.__dataclass_fields__:
            setattr(self.params, name, getattr(defaults, name))

    def set_status(self, text: str) -> None:
        """Show ``text`` in the status line: wrapped, elided past a few lines, in full as a
        tooltip, so that no message can widen the dock."""
        self.status.tooltip = text
        self.status.value = text if len(text) <= _STATUS_CHARS else text[: _STATUS_CHARS - 1] + "…"

    def _watch_name(self, event: Any) -> None:
        event.value.events.name.connect(self.reset_choices)

    def _follow_active(self, event: Any) -> None:
        """Offer the layer the user selects, unless it is one of this plugin's outputs (the
        result is selected after a run: a second *Run* must not process it again)."""
        from napari.layers import Image

        layer = event.value
        ours = layer is not None and layer.name.endswith(OUTPUT_SUFFIX)
        if isinstance(layer, Image) and not ours and not self.running:
            self.reset_choices()
            self.image_layer.value = layer

    def _image_layers(self, *_: Any) -> list[Any]:
        from napari.layers import Image

        return [(lyr.name, lyr) for lyr in self._viewer.layers if isinstance(lyr, Image)]

    def _update_stack_choice(self, *_: Any) -> None:
        layer = self.image_layer.value
        self._fields["whole_stack"].visible = layer is not None and layer.ndim > 2

    @property
    def running(self) -> bool:
        """True while a job is in progress."""
        return self.worker is not None

    def _notify_error(self, message: str) -> None:
        from napari.utils.notifications import show_error

        self.set_status(message)
        show_error(message)

    # ---------------------------------------------------------------- run / cancel
    def run(self, *_: Any) -> Any:
        """Start super-resolving the selected layer with the current parameters.

        Returns
        -------
        napari.qt.threading.GeneratorWorker or None
            The started worker, or None when the parameters were rejected (a notification
            says why).
        """
        if self.running:
            return None
        try:
            job = self._prepare()
        except ValueError as e:
            self._notify_error(f"napari-cisr: {e}")
            return None
        except Exception as e:  # never raise inside Qt
            self._notify_error(f"napari-cisr: cannot start: {type(e).__name__}: {e}")
            return None
        from napari.qt.threading import create_worker

        self._job = job
        job_gen = self._job_gen = run_job(job.planes, job.options)

        def work() -> Generator[JobProgress, None, list[Any] | JobFailed]:
            return (yield from job_gen)

        self.worker = create_worker(
            work,
            _start_thread=False,
            _connect={"errored": self._on_errored},
        )
        self.worker.yielded.connect(self._on_progress)
        self.worker.returned.connect(self._on_returned)
        self.worker.aborted.connect(self._on_aborted)
        self.worker.finished.connect(self._on_finished)
        self.progress.value = 0
        self.set_status(f"starting… ({job.chosen_mapping.describe()})")
        self.run_button.enabled = False
        self.cancel_button.enabled = True
        self.worker.start()
        return self.worker

    def cancel(self, *_: Any) -> None:
        """Ask the running job to stop at its next tile/iteration boundary."""
        if self.worker is not None:
            self.set_status("cancelling…")
            self.cancel_button.enabled = False
            self.worker.quit()

    def _prepare(self) -> PlaneJob:
        from napari.layers import Shapes

        layers = reversed(self._viewer.layers)
        shapes = next((layer for layer in layers if isinstance(layer, Shapes)), None)
        return plan_job(self.image_layer.value, self.params, self._viewer.dims.point, shapes)

    # ---------------------------------------------------------------- worker callbacks
    def _on_progress(self, update: JobProgress) -> None:
        self.progress.value = round(update.fraction * 1000)
        text = update.text
        job = self._job
        if job is not None and update.progress.done >= 1 and 0 < update.fraction < 1:
            elapsed = time.monotonic() - job.started
            text += f" · about {_duration(elapsed * (1 - update.fraction) / update.fraction)} left"
        self.set_status(text)
        self.progressed.emit(update)

    def _on_errored(self, error: BaseException) -> None:
        self._notify_error(JobFailed(error).message)

    def _on_aborted(self) -> None:
        self.set_status("cancelled")
        self.progress.value = 0

    def _on_finished(self) -> None:
        if self._job_gen is not None:
            self._job_gen.close()  # closes the core generator too (cancel)
        self._job_gen = None
        self.worker = None
        self._job = None
        self.run_button.enabled = True
        self.cancel_button.enabled = False

    def _on_returned(self, outcome: JobOutcome | JobFailed) -> None:
        job = self._job
        if isinstance(outcome, JobFailed):
            self._notify_error(outcome.message)
            self.progress.value = 0
            return
        if job is None or outcome is None:  # aborted
            return
        try:
            add_result_layers(self._viewer, job, outcome.results, outcome.blocking, outcome.models)
        except Exception as e:  # never raise inside Qt
            self._notify_error(f"napari-cisr: could not add the result: {type(e).__name__}: {e}")
            return
        self.progress.value = 1000
        mapped = f" ({job.mapping.describe()})" if job.mapping is not None else ""
        self.set_status("done" + mapped + no_blocking_hint(outcome.blocking, outcome.models))

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

Geometry: a super-resolved pixel ``i`` has its centre at input pixel ``(i + 0.5)/s - 0.5``,
so an output ``s``× larger gets ``scale = scale_in / s`` and a translate chosen so that the
pixel centres coincide in world coordinates (:func:`output_geometry`), whatever the input's
scale, translate, rotate, shear and affine. Leading (T/Z) axes keep their scale and translate.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
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

from napari_cisr._job import (
    SCALES,
    JobFailed,
    JobOutcome,
    JobProgress,
    SuperResolveParams,
    is_dask_array,
    run_job,
)
from napari_cisr.options import PRESET_HELP, PRESETS, InferenceOptions
from napari_cisr.registry import PRECISIONS, shipped_variants
from napari_cisr.values import MIN_SIDE, VALUE_RANGES, ValueMapping, choose_mapping

if TYPE_CHECKING:  # pragma: no cover
    import napari
    from napari.layers import Image

__all__ = ["SuperResolveWidget", "output_geometry"]


# --------------------------------------------------------------------------------------------
# geometry
# --------------------------------------------------------------------------------------------


def output_geometry(layer: Image, factor: float, plane: Sequence[int] = ()) -> dict[str, Any]:
    """Layer kwargs placing an output ``factor``× larger than ``layer`` in the same world.

    Output pixel ``i`` (on each of the last two axes) has its centre at input pixel
    ``(i + 0.5)/factor - 0.5``; on a leading axis, output index 0 sits at input index
    ``plane[k]`` (0 when ``plane`` is empty, i.e. the whole stack was processed).

    Parameters
    ----------
    layer : napari.layers.Image
        The input layer.
    factor : float
        How much larger the output is on the last two axes (1 for LR-size outputs).
    plane : sequence of int, optional
        The leading-axis indices the output starts at.

    Returns
    -------
    dict
        ``scale``, ``translate``, ``rotate``, ``shear`` and ``affine`` for the output layer.
    """
    ndim = layer.ndim
    lead = ndim - 2
    u0 = np.zeros(ndim)
    u0[:lead] = list(plane) if len(plane) else 0
    u0[lead:] = 0.5 / factor - 0.5
    scale = np.asarray(layer.scale, dtype=float).copy()
    scale[lead:] /= factor
    # world(out 0) = affine(data2physical_in(u0)): undo the layer's extra affine to get translate
    translate = np.asarray(layer.affine.inverse(layer.data_to_world(u0)), dtype=float)
    return {
        "scale": tuple(scale),
        "translate": tuple(translate),
        "rotate": np.asarray(layer.rotate),
        "shear": np.asarray(layer.shear),
        "affine": np.asarray(layer.affine.affine_matrix),
    }


# --------------------------------------------------------------------------------------------
# the widget
# --------------------------------------------------------------------------------------------


def _precisions() -> list[str]:
    return list(PRECISIONS)


def _model_names() -> tuple[str, ...]:
    """The variants with shipped weights (others need a weight file: the *weights* field)."""
    return shipped_variants() or ("lite",)


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


def _special_values(spin: SpinBox, texts: dict[int, str]) -> None:
    """Show the values in ``texts`` (e.g. the minimum) as words instead of bare numbers.

    magicgui's spin box is superqt's ``QLargeIntSpinBox``, which has no special-value text
    (unlike ``QSpinBox``); its two display hooks are replaced on this instance. Where they are
    missing (another superqt), the tooltip alone explains the numbers.
    """
    native = spin.native
    if not (hasattr(native, "_updateEdit") and hasattr(native, "_interpret")):
        return
    values = {text: value for value, text in texts.items()}

    def update_edit() -> None:
        shown = texts.get(native.value(), str(native.value()))
        if native.lineEdit().text() != shown:
            native.lineEdit().setText(shown)

    def interpret(policy: Any) -> None:
        shown = native.lineEdit().displayText().strip()
        value = native.minimum() if shown == "" else values.get(shown)
        native._setValue(int(shown) if value is None else value, policy)

    native._updateEdit = update_edit
    native._interpret = interpret
    update_edit()


#: The tile spin box's stand-in for ``tile=None`` (automatic): one step below 0 (whole image).
_AUTOMATIC_TILE = -16


def _wrap_and_elide(label: Label) -> None:
    """Let ``label`` wrap inside the dock's width and never ask for more width."""
    from qtpy.QtWidgets import QSizePolicy

    label.native.setWordWrap(True)
    label.native.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)


def _check_plane_size(shape: Sequence[int], stacked: bool) -> None:
    """Refuse planes smaller than the core accepts, with what the user can do about it.

    ``stacked``: the plane was sliced from a layer with leading axes, where an H×W×C array
    with few channels ends up as H planes of W×C pixels.
    """
    h, w = shape[:2]
    if min(h, w) >= MIN_SIDE:
        return
    if stacked and w <= 4:
        raise ValueError(
            f"each plane is {h}×{w} pixels, below the {MIN_SIDE}-pixel minimum; if the last "
            "axis holds channels, open the image with them as separate layers (channel_axis)"
        )
    raise ValueError(f"the image is {h}×{w} pixels; both sides must be at least {MIN_SIDE}")


def _core_maps_it(mapping: ValueMapping, dtype: Any) -> bool:
    """True when the core's own mapping (by dtype; floats as [0, 1]) equals ``mapping``."""
    dtype = np.dtype(dtype)
    if np.issubdtype(dtype, np.unsignedinteger) and dtype.itemsize <= 2:
        return mapping.low == 0 and mapping.high == np.iinfo(dtype).max
    return np.issubdtype(dtype, np.floating) and (mapping.low, mapping.high) == (0.0, 1.0)


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


#: Every layer the widget adds ends its name with this.
OUTPUT_SUFFIX = " (CISR)"

#: The reader's description of the input file (io.image_info) carried into the metadata.
_SOURCE_KEYS = ("path", "codec", "quality", "lossless", "subsampling")

#: Blocking map colours: transparent where there is no blocking, yellow to red where there is.
_BLOCKING_COLORS = np.array(
    [[1.0, 1.0, 0.0, 0.0], [1.0, 0.85, 0.0, 0.8], [1.0, 0.1, 0.0, 1.0]], dtype=np.float32
)
_BLOCKING_MEANING = (
    "d(z), the blocking detector's map at the input's size: 1 where a JPEG block edge is "
    "detected (the non-local operator does not borrow from it), 0 where none is"
)


@dataclass
class _Job:
    layer: Any
    params: SuperResolveParams
    planes: list[Any]
    indices: list[tuple[int, ...]]
    lead_shape: tuple[int, ...]
    current_plane: tuple[int, ...] | None
    kwargs: dict[str, Any] = field(default_factory=dict)
    #: How the layer's values were mapped to [0, 1]; None when the core's own mapping (by
    #: dtype, or floats already in [0, 1]) is the chosen one and the data goes in unchanged.
    mapping: ValueMapping | None = None
    chosen_mapping: ValueMapping | None = None
    dtype: Any = None
    started: float = 0.0


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
        self._job: _Job | None = None
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
        }
        tooltips = {
            "scale": "how many times larger the result is on each side",
            "model": "the shipped network for this scale (docs/models.md)",
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
        }
        for name, text in tooltips.items():
            fields[name].tooltip = text
        # "0" means something different in each of these: show it as words
        _special_values(fields["iterations"], {0: "model default"})
        _special_values(fields["tile"], {_AUTOMATIC_TILE: "automatic", 0: "whole image"})
        _special_values(fields["bit_depth"], {0: "from dtype"})
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
        _wrap_and_elide(self.status)
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
        job_gen = self._job_gen = run_job(job.planes, job.kwargs)

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

    def _prepare(self) -> _Job:
        p = self.params
        layer = self.image_layer.value
        if layer is None:
            raise ValueError("select an image layer first")
        if p.weights and not Path(p.weights).is_file():
            raise ValueError(f"weights file {p.weights!r} does not exist")
        model: Any = Path(p.weights) if p.weights else p.model
        options = InferenceOptions(
            scale=p.scale,
            model=str(model),
            iterations=p.iterations or None,  # the spin box's 0 is "model default"
            tile=p.tile,
            device=p.device,
            precision=p.precision,
            self_ensemble=bool(p.self_ensemble),
        ).validate()  # the CLI's checks, in the CLI's words
        data = layer.data[0] if layer.multiscale else layer.data
        lead_shape = tuple(data.shape[: layer.ndim - 2])
        if lead_shape and not p.whole_stack:
            point = layer.world_to_data(self._viewer.dims.point)
            current = tuple(
                int(np.clip(np.round(x), 0, n - 1))
                for x, n in zip(point[: len(lead_shape)], lead_shape, strict=True)
            )
            indices = [current]
        else:
            current = None
            indices = list(itertools.product(*(range(n) for n in lead_shape)))
        planes = [data[idx] if idx else data for idx in indices]
        _check_plane_size(planes[0].shape, stacked=bool(lead_shape))
        chosen = choose_mapping(
            data,
            p.value_range,
            contrast_limits=tuple(layer.contrast_limits),
            bit_depth=p.bit_depth or None,
        )
        mapping = None if _core_maps_it(chosen, data.dtype) else chosen
        dtype = data.dtype
        if mapping is not None:
            planes = [mapping.to_unit(plane) for plane in planes]
        kwargs = {
            "scale": int(options.scale),
            "model": model,
            "iterations": options.iterations,
            "tile": options.tile,
            "device": options.device,
            "precision": options.precision,
            "self_ensemble": options.self_ensemble,
            "intermediates": bool(p.intermediates or p.blocking_map),
        }
        params = SuperResolveParams(**{k: getattr(p, k) for k in p.__dataclass_fields__})
        job = _Job(layer, params, planes, indices, lead_shape, current, kwargs)
        job.mapping, job.chosen_mapping, job.dtype = mapping, chosen, dtype
        job.started = time.monotonic()
        return job

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
            self._add_layers(job, outcome.results, outcome.blocking)
        except Exception as e:  # never raise inside Qt
            self._notify_error(f"napari-cisr: could not add the result: {type(e).__name__}: {e}")
            return
        self.progress.value = 1000
        mapped = f" ({job.mapping.describe()})" if job.mapping is not None else ""
        self.set_status("done" + mapped + self._hint(outcome.blocking))

    # ---------------------------------------------------------------- outputs
    def _assemble(self, job: _Job, arrays: list[Any]) -> Any:
        """Put per-plane arrays back into the leading (T/Z) axes."""
        if not job.lead_shape:
            return arrays[0]
        lead = job.lead_shape if job.current_plane is None else (1,) * len(job.lead_shape)
        if any(is_dask_array(a) for a in arrays):
            import dask.array as da

            stacked = da.stack(arrays)
        else:
            stacked = np.stack([np.asarray(a) for a in arrays])
        return stacked.reshape(lead + tuple(arrays[0].shape))

    @staticmethod
    def _hint(report: Any) -> str:
        """A one-line hint when the input shows no JPEG blocking (an uncompressed image)."""
        if report is not None and report.grid is None:
            return (
                " — no JPEG blocking was found in this image: the model is meant for "
                "compressed images, and may smooth a clean one"
            )
        return ""

    def _to_layer_values(self, job: _Job, array: Any) -> Any:
        """A core output back to the input's dtype and value range."""
        return array if job.mapping is None else job.mapping.from_unit(array, job.dtype)

    def _add_layers(self, job: _Job, results: list[Any], report: Any) -> None:
        layer, p, s = job.layer, job.params, job.params.scale
        plane = job.current_plane or ()
        hr_geom = output_geometry(layer, s, plane)
        lr_geom = output_geometry(layer, 1, plane)
        common: dict[str, Any] = {"rgb": layer.rgb}
        if not layer.rgb:
            common["colormap"] = layer.colormap
        axes = {"units": tuple(str(u) for u in layer.units), "axis_labels": layer.axis_labels}
        look = {"contrast_limits": layer.contrast_limits, "gamma": layer.gamma}
        settings = (
            "scale", "model", "weights", "iterations", "tile", "device", "precision",
            "self_ensemble", "value_range", "bit_depth",
        )  # fmt: skip
        cisr = {k: getattr(p, k) for k in settings}
        cisr["values"] = job.chosen_mapping.as_metadata()
        source_codec = {k: layer.metadata[k] for k in _SOURCE_KEYS if k in layer.metadata}
        if source_codec:  # what the reader found out about the input file
            cisr["source"] = source_codec
        meta = {"source": layer.name, "cisr": cisr}

        def values(arrays: list[Any]) -> Any:
            return self._assemble(job, [self._to_layer_values(job, a) for a in arrays])

        if p.blocking_map and results[0].blocking is not None:
            from napari.utils.colormaps import Colormap

            bmap = self._assemble(job, [r.blocking for r in results])
            grid = {}
            if report is not None:  # computed in the worker (run_job), not on this thread
                grid = {"grid": report.grid, "offset": report.offset, "score": report.score}
            self._viewer.add_image(
                bmap,
                name=f"{layer.name} blocking map{OUTPUT_SUFFIX}",
                colormap=Colormap(_BLOCKING_COLORS, name="cisr blocking"),
                contrast_limits=(0.0, 1.0),
                blending="translucent",
                visible=False,
                metadata={"source": layer.name, "meaning": _BLOCKING_MEANING, **grid},
                **axes,
                **lr_geom,
            )
        if p.intermediates and results[0].y_hats:
            n_j = len(results[0].y_hats)
            for j in range(n_j):
                for module, geom, estimates in (
                    ("ARM", lr_geom, [r.y_hats[j] for r in results]),
                    ("REM", hr_geom, [r.x_hats[j] for r in results]),
                ):
                    what = "artefacts removed, input size" if module == "ARM" else f"×{s}"
                    self._viewer.add_image(
                        values(estimates),
                        name=f"{layer.name} {module} {j + 1}/{n_j}{OUTPUT_SUFFIX}",
                        visible=False,
                        metadata={
                            "source": layer.name,
                            "estimate": f"{'ŷ' if module == 'ARM' else 'x̂'}_{j + 1}",
                            "meaning": f"iteration {j + 1} of {n_j}, {module} ({what})",
                        },
                        **common,
                        **look,
                        **axes,
                        **geom,
                    )
        # the result last: on top, visible, selected
        result = self._viewer.add_image(
            values([r.image for r in results]),
            name=f"{layer.name} ×{s}{OUTPUT_SUFFIX}",
            metadata=meta,
            **common,
            **look,
            **axes,
            **hr_geom,
        )
        self._viewer.layers.selection.active = result

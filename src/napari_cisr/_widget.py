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
    JobProgress,
    SuperResolveParams,
    is_dask_array,
    run_job,
)

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


def _stacked_geometry(geometry: dict[str, Any]) -> dict[str, Any]:
    """Add a leading axis (the iteration j) with unit scale to ``geometry``."""
    from napari.utils.transforms import Affine

    physical = Affine(
        scale=geometry["scale"],
        translate=geometry["translate"],
        rotate=geometry["rotate"],
        shear=geometry["shear"],
    ).expand_dims([0])
    extra = Affine(affine_matrix=geometry["affine"]).expand_dims([0])
    return {
        "scale": tuple(physical.scale),
        "translate": tuple(physical.translate),
        "rotate": physical.rotate,
        "shear": physical.shear,
        "affine": extra.affine_matrix,
    }


# --------------------------------------------------------------------------------------------
# the widget
# --------------------------------------------------------------------------------------------


def _precisions() -> list[str]:
    from napari_cisr.weights import PRECISIONS

    return list(PRECISIONS)


def _model_names() -> tuple[str, ...]:
    """The variants with shipped weights (others need a weight file: the *weights* field)."""
    try:
        from napari_cisr.weights import PRETRAINED

        return tuple(dict.fromkeys(spec.variant for spec in PRETRAINED.values())) or ("lite",)
    except ImportError:  # the weights registry is missing: offer the default only
        return ("lite",)


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


@dataclass
class _Job:
    layer: Any
    params: SuperResolveParams
    planes: list[Any]
    indices: list[tuple[int, ...]]
    lead_shape: tuple[int, ...]
    current_plane: tuple[int, ...] | None
    kwargs: dict[str, Any] = field(default_factory=dict)


def _show_in(widget: Any) -> Any:
    """A callback showing a parameter's new value in ``widget`` (if the widget can show it).

    A value the widget cannot represent (e.g. ``scale=5`` set from code) stays in the
    parameters and is rejected with a notification when *Run* is pressed.
    """

    def show(value: Any) -> None:
        if isinstance(widget, FileEdit):
            value = value or None
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
            "tile": SpinBox(label="tile size", min=0, max=8192, step=16),
            "device": ComboBox(label="device", choices=_devices()),
            "precision": ComboBox(label="precision", choices=_precisions()),
            "self_ensemble": CheckBox(text="self-ensemble (x8 time)"),
            "intermediates": CheckBox(text="add intermediate estimates"),
            "blocking_map": CheckBox(text="add blocking map"),
            "whole_stack": ComboBox(
                label="process",
                choices=[("current plane", False), ("whole stack", True)],
            ),
        }
        fields["weights"].tooltip = "optional trained weight file; overrides the model choice"
        fields["iterations"].tooltip = "0 = the model's default"
        fields["tile"].tooltip = "tile size in input pixels; 0 = automatic"
        fields["precision"].tooltip = "auto = bfloat16 where the device runs it natively"
        fields[
            "self_ensemble"
        ].tooltip = "average over the 8 rotations/flips of the input: 8x the time, a higher PSNR"
        self._fields = fields
        for name, widget in fields.items():
            _show_in(widget)(getattr(self.params, name))
            widget.changed.connect(self._store_in(name))
            getattr(self.params.events, name).connect(_show_in(widget))

        self.run_button = PushButton(text="Run")
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.progress = ProgressBar(label="progress", min=0, max=1000, value=0)
        self.status = Label(label="", value="")
        self.extend([self.image_layer, *fields.values(), self.run_button, self.cancel_button])
        self.extend([self.progress, self.status])

        self.run_button.changed.connect(self.run)
        self.cancel_button.changed.connect(self.cancel)
        self.image_layer.changed.connect(self._update_stack_choice)
        events = viewer.layers.events
        for event in (events.inserted, events.removed, events.reordered):
            event.connect(self.reset_choices)
        self.reset_choices()
        self._update_stack_choice()

    # ---------------------------------------------------------------- helpers
    def _store_in(self, name: str) -> Any:
        """A callback storing a widget's new value in ``params.<name>``."""

        def store(value: Any) -> None:
            if name == "weights":
                value = "" if value is None or str(value) in ("", ".") else str(value)
            setattr(self.params, name, value)

        return store

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

        self.status.value = message
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
        self.status.value = "starting…"
        self.run_button.enabled = False
        self.cancel_button.enabled = True
        self.worker.start()
        return self.worker

    def cancel(self, *_: Any) -> None:
        """Ask the running job to stop at its next tile/iteration boundary."""
        if self.worker is not None:
            self.status.value = "cancelling…"
            self.cancel_button.enabled = False
            self.worker.quit()

    def _prepare(self) -> _Job:
        p = self.params
        layer = self.image_layer.value
        if layer is None:
            raise ValueError("select an image layer first")
        if p.scale not in SCALES:
            raise ValueError(f"scale must be one of {SCALES}, got {p.scale}")
        if p.iterations < 0:
            raise ValueError(f"iterations must be ≥ 0 (0 = model default), got {p.iterations}")
        if p.tile < 0:
            raise ValueError(f"tile size must be ≥ 0 (0 = automatic), got {p.tile}")
        models = _model_names()
        model: Any = p.model
        if p.weights:
            model = Path(p.weights)
            if not model.is_file():
                raise ValueError(f"weights file {p.weights!r} does not exist")
        elif p.model not in models:
            raise ValueError(f"unknown model {p.model!r}; choose one of {', '.join(models)}")
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
        kwargs = {
            "scale": int(p.scale),
            "model": model,
            "iterations": p.iterations or None,
            "tile": p.tile or None,
            "device": p.device,
            "precision": p.precision,
            "self_ensemble": bool(p.self_ensemble),
            "intermediates": bool(p.intermediates or p.blocking_map),
        }
        params = SuperResolveParams(**{k: getattr(p, k) for k in p.__dataclass_fields__})
        return _Job(layer, params, planes, indices, lead_shape, current, kwargs)

    # ---------------------------------------------------------------- worker callbacks
    def _on_progress(self, update: JobProgress) -> None:
        self.progress.value = round(update.fraction * 1000)
        self.status.value = update.text
        self.progressed.emit(update)

    def _on_errored(self, error: BaseException) -> None:
        self._notify_error(JobFailed(error).message)

    def _on_aborted(self) -> None:
        self.status.value = "cancelled"
        self.progress.value = 0

    def _on_finished(self) -> None:
        if self._job_gen is not None:
            self._job_gen.close()  # closes the core generator too (cancel)
        self._job_gen = None
        self.worker = None
        self._job = None
        self.run_button.enabled = True
        self.cancel_button.enabled = False

    def _on_returned(self, outcome: list[Any] | JobFailed) -> None:
        job = self._job
        if isinstance(outcome, JobFailed):
            self._notify_error(outcome.message)
            self.progress.value = 0
            return
        if job is None or outcome is None:  # aborted
            return
        try:
            self._add_layers(job, outcome)
        except Exception as e:  # never raise inside Qt
            self._notify_error(f"napari-cisr: could not add the result: {type(e).__name__}: {e}")
            return
        self.progress.value = 1000
        self.status.value = "done"

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

    def _stack_j(self, job: _Job, per_plane: list[list[Any]]) -> Any:
        """ŷ_1..ŷ_J (or x̂) of every plane → one array with a leading j axis."""
        n_j = len(per_plane[0])
        per_j = [self._assemble(job, [plane[j] for plane in per_plane]) for j in range(n_j)]
        if any(is_dask_array(a) for a in per_j):
            import dask.array as da

            return da.stack(per_j)
        return np.stack(per_j)

    def _add_layers(self, job: _Job, results: list[Any]) -> None:
        layer, p, s = job.layer, job.params, job.params.scale
        plane = job.current_plane or ()
        hr_geom = output_geometry(layer, s, plane)
        lr_geom = output_geometry(layer, 1, plane)
        common: dict[str, Any] = {"rgb": layer.rgb}
        if not layer.rgb:
            common["colormap"] = layer.colormap
        axes = {"units": tuple(str(u) for u in layer.units), "axis_labels": layer.axis_labels}
        axes_j = {"units": ("pixel", *axes["units"]), "axis_labels": ("j", *axes["axis_labels"])}
        look = {"contrast_limits": layer.contrast_limits, "gamma": layer.gamma}

        image = self._assemble(job, [r.image for r in results])
        meta = {
            "source": layer.name,
            "cisr": {k: getattr(p, k) for k in ("scale", "model", "weights", "iterations")},
        }
        self._viewer.add_image(
            image,
            name=f"{layer.name} ×{s} (CISR)",
            metadata=meta,
            **common,
            **look,
            **axes,
            **hr_geom,
        )
        if p.intermediates and results[0].y_hats:
            self._viewer.add_image(
                self._stack_j(job, [r.y_hats for r in results]),
                name=f"{layer.name} ŷ_j (CISR)",
                visible=False,
                **common,
                **look,
                **axes_j,
                **_stacked_geometry(lr_geom),
            )
            self._viewer.add_image(
                self._stack_j(job, [r.x_hats for r in results]),
                name=f"{layer.name} x̂_j (CISR)",
                visible=False,
                **common,
                **look,
                **axes_j,
                **_stacked_geometry(hr_geom),
            )
        if p.blocking_map and results[0].blocking is not None:
            bmap = self._assemble(job, [r.blocking for r in results])
            self._viewer.add_image(
                bmap,
                name=f"{layer.name} blocking",
                colormap="inferno",
                contrast_limits=(0.0, 1.0),
                opacity=0.5,
                blending="translucent",
                **axes,
                **lr_geom,
            )

"""The super-resolve widget's parameters and its job, without napari or Qt.

:class:`SuperResolveParams` is the psygnal ``@evented`` dataclass the widget edits;
:func:`run_job` is the generator its ``thread_worker`` runs: it drives
:func:`napari_cisr.inference.steps_for` plane by plane, yields :class:`JobProgress`
and returns the results, or a :class:`JobFailed` holding the exception (nothing raises inside
Qt). Closing the generator (the widget's *Cancel*) closes the core's generator, which stops at
the next tile/iteration boundary.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from psygnal import evented

from napari_cisr.options import SCALES, InferenceOptions

if TYPE_CHECKING:  # pragma: no cover
    from napari_cisr.inference import Progress

__all__ = [
    "REGIONS",
    "SCALES",
    "JobFailed",
    "JobOutcome",
    "JobProgress",
    "SuperResolveParams",
    "is_dask_array",
    "run_job",
]


#: The choices of :attr:`SuperResolveParams.region`.
REGIONS = ("whole", "visible", "rectangle")


@dataclass(frozen=True)
class JobOutcome:
    """What a finished :func:`run_job` returns.

    Attributes
    ----------
    results : list of SuperResolveResult
        One per plane.
    blocking : BlockingReport or None
        :func:`napari_cisr.detect_blocking` of the first plane (grid, offset, score), computed
        in the worker so the GUI thread never waits for it; None for a lazy (dask) input.
    models : list of str
        The model that ran on each plane: a name routed by the plane's compression
        (``lite.mild``, :mod:`napari_cisr.compression`), or the weight file given.
    """

    results: list[Any]
    blocking: Any = None
    models: list[str] = field(default_factory=list)


@evented
@dataclass
class SuperResolveParams:
    """Parameters the widget edits; every change emits ``params.events.<name>``.

    Attributes
    ----------
    scale : int
        Super-resolution factor, 2, 3 or 4.
    model : str
        One of :data:`napari_cisr.weights.MODEL_NAMES` (its shipped weights).
    weights : str
        Optional path of a weight file (``.safetensors``/``.pt``/``.pth``, e.g. from
        ``napari-cisr train``); when set it is used instead of ``model``.
    iterations : int
        Unfolding iterations J; 0 means the model's default.
    tile : int or None
        Tile size in input pixels; None (the default) picks one that fits the memory, 0 runs
        the whole image in one pass, as everywhere else
        (:class:`~napari_cisr.options.InferenceOptions`).
    device : str
        ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"mps"``.
    precision : str
        ``"auto"`` (bfloat16 where the device has it natively), ``"float32"`` or
        ``"bfloat16"``.
    self_ensemble : bool
        Average the network over the eight rotations/flips of the input: eight times the
        time, a higher PSNR.
    intermediates : bool
        Also add ŷ_1..ŷ_J and x̂_1..x̂_J as layers.
    blocking_map : bool
        Also add the input's blocking map as an overlay.
    whole_stack : bool
        For a T/Z stack, process every plane instead of the current one.
    region : str
        What part of the image to process, one of :data:`REGIONS`: ``"whole"``; ``"visible"``,
        a preview of the part shown on the canvas; ``"rectangle"``, a preview of the last
        rectangle drawn in a Shapes layer. A preview region is grown to whole 16-pixel blocks,
        so the compression grid keeps its phase.
    value_range : str
        How the layer's values map to the network's [0, 1], one of
        :data:`napari_cisr.values.VALUE_RANGES`: ``"auto"`` maps unsigned integers by their
        dtype (or ``bit_depth``) and floats and signed integers by the layer's contrast limits.
    bit_depth : int
        Significant bits of unsigned integer data (e.g. 12 for a 12-bit camera in uint16);
        0 means the dtype's.
    """

    scale: int = 2
    model: str = "lite"
    weights: str = ""
    iterations: int = 0
    tile: int | None = None
    device: str = "auto"
    precision: str = "auto"
    self_ensemble: bool = False
    intermediates: bool = False
    blocking_map: bool = False
    whole_stack: bool = False
    region: str = "whole"
    value_range: str = "auto"
    bit_depth: int = 0


@dataclass(frozen=True)
class JobProgress:
    """Progress of a job over several planes.

    Attributes
    ----------
    plane, planes : int
        Index of the plane being processed, and how many there are.
    progress : napari_cisr.inference.Progress
        The core's progress within that plane.
    """

    plane: int
    planes: int
    progress: Progress

    @property
    def fraction(self) -> float:
        """Overall fraction done, 0..1."""
        p = self.progress
        within = p.done / p.total if p.total else 0.0
        return min(1.0, (self.plane + within) / max(self.planes, 1))

    @property
    def text(self) -> str:
        """Human-readable stage, with the plane when there are several."""
        prefix = f"plane {self.plane + 1}/{self.planes}, " if self.planes > 1 else ""
        return prefix + self.progress.stage


@dataclass(frozen=True)
class JobFailed:
    """An exception caught in the worker, to be reported on the GUI thread."""

    error: BaseException
    dask_input: bool = False

    @property
    def message(self) -> str:
        """One line for a notification."""
        text = str(self.error).strip().splitlines()
        first = text[0] if text else type(self.error).__name__
        if self.dask_input and isinstance(self.error, TypeError | NotImplementedError):
            return (
                "napari-cisr: the compute core cannot process lazy (dask/zarr) data yet "
                f"({first}); open a smaller region or convert the layer to numpy"
            )
        return f"napari-cisr: super-resolution failed: {type(self.error).__name__}: {first}"


def run_job(
    planes: Sequence[Any], options: InferenceOptions
) -> Generator[JobProgress, None, JobOutcome | JobFailed]:
    """Super-resolve each plane in turn, yielding progress; return the results.

    Parameters
    ----------
    planes : sequence of array
        H×W or H×W×C planes (numpy or dask), processed one after the other.
    options : InferenceOptions
        How to super-resolve each plane (:func:`napari_cisr.inference.steps_for`).

    Yields
    ------
    JobProgress
        After every step the core reports.

    Returns
    -------
    JobOutcome or JobFailed
        One result per plane and the blocking report, or the exception that stopped the job.
        Closing this generator
        (which the widget does on Cancel) closes the core's generator, which cancels it.
    """
    results: list[Any] = []
    models: list[str] = []
    is_dask = any(is_dask_array(p) for p in planes)
    try:
        from napari_cisr.inference import steps_for

        for k, plane in enumerate(planes):
            # a model name still untagged here (plan_job found no file quality) is routed by
            # the plane's pixels inside steps_for, off the GUI thread
            steps = steps_for(plane, options)
            try:
                while True:
                    try:
                        progress = next(steps)
                    except StopIteration as stop:
                        result = stop.value
                        break
                    yield JobProgress(k, len(planes), progress)
            finally:
                steps.close()
            models.append(str(result.model if result.model is not None else options.model))
            if is_dask_array(result.image):
                result = yield from _compute_lazy(result, k, len(planes))
            results.append(result)
        report = None
        if not is_dask_array(planes[0]):
            from napari_cisr.blocking import detect_blocking

            report = detect_blocking(np.asarray(planes[0]))
    except Exception as e:  # reported on the GUI thread, never raised inside Qt
        return JobFailed(e, dask_input=is_dask)
    return JobOutcome(results, report, models)


def is_dask_array(array: Any) -> bool:
    return type(array).__module__.startswith("dask")


#: A lazy (dask) result up to this many bytes is computed in the worker, chunk by chunk, so that
#: napari does not run the network on the GUI thread when it draws the layer.
LAZY_COMPUTE_LIMIT = 2 * 1024**3


def _compute_lazy(result: Any, plane: int, planes: int) -> Generator[JobProgress, None, Any]:
    """Compute a lazy :class:`SuperResolveResult` chunk by chunk, yielding progress.

    All outputs share one chunk grid on H and W (the core's tiles), so each step computes
    the matching block of every output in one ``dask.compute`` and the network runs once per
    tile. Cancelling (closing this generator) stops between chunks. A result larger than
    :data:`LAZY_COMPUTE_LIMIT` stays lazy (napari then computes what it displays).
    """
    import dask

    from napari_cisr.inference import Progress

    lazy = [result.image, *result.y_hats, *result.x_hats]
    if result.blocking is not None:
        lazy.append(result.blocking)
    if sum(a.nbytes for a in lazy) > LAZY_COMPUTE_LIMIT:
        return result
    grid = lazy[0].numblocks[:2]
    if any(a.numblocks[:2] != grid or any(n != 1 for n in a.numblocks[2:]) for a in lazy):
        yield JobProgress(plane, planes, Progress(0, 1, "computing the lazy result"))
        computed = dask.compute(*lazy)
    else:
        outs = [np.empty(a.shape, a.dtype) for a in lazy]
        total = grid[0] * grid[1]
        for n, (i, j) in enumerate(np.ndindex(*grid)):
            blocks = dask.compute(*(a.blocks[i, j] for a in lazy))
            for out, a, block in zip(outs, lazy, blocks, strict=True):
                y0, x0 = sum(a.chunks[0][:i]), sum(a.chunks[1][:j])
                out[y0 : y0 + block.shape[0], x0 : x0 + block.shape[1]] = block
            stage = f"computing chunk {n + 1}/{total}"
            yield JobProgress(plane, planes, Progress(n + 1, total, stage))
        computed = outs
    n_y, n_x = len(result.y_hats), len(result.x_hats)
    return type(result)(
        image=computed[0],
        y_hats=list(computed[1 : 1 + n_y]),
        x_hats=list(computed[1 + n_y : 1 + n_y + n_x]),
        blocking=computed[1 + n_y + n_x] if result.blocking is not None else None,
    )

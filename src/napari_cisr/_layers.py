"""The widget's napari side without Qt: where an output layer goes, and the layers it adds.

Geometry: a super-resolved pixel ``i`` has its centre at input pixel ``(i + 0.5)/s - 0.5``,
so an output ``s``× larger gets ``scale = scale_in / s`` and a translate chosen so that the
pixel centres coincide in world coordinates (:func:`output_geometry`), whatever the input's
scale, translate, rotate, shear and affine. Leading (T/Z) axes keep their scale and translate.

:class:`PlaneJob` is what *Run* sliced out of a layer; :func:`add_result_layers` puts the
job's results back into the viewer: the blocking map and every ŷ_j, x̂_j hidden, the result
last, visible and selected.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from napari_cisr._job import REGIONS, SuperResolveParams, is_dask_array
from napari_cisr.compression import compression_from_info, is_routed, route_model
from napari_cisr.options import InferenceOptions
from napari_cisr.registry import model_compression
from napari_cisr.values import MIN_SIDE, ValueMapping, choose_mapping

if TYPE_CHECKING:  # pragma: no cover
    import napari
    from napari.layers import Image

__all__ = [
    "OUTPUT_SUFFIX",
    "PlaneJob",
    "add_result_layers",
    "check_plane_size",
    "core_maps_it",
    "drawn_window",
    "no_blocking_hint",
    "output_geometry",
    "plan_job",
    "visible_window",
]

#: Every layer the widget adds ends its name with this.
OUTPUT_SUFFIX = " (CISR)"

#: The reader's description of the input file (io.image_info) carried into the metadata.
_SOURCE_KEYS = ("path", "codec", "quality", "lossless", "subsampling")

#: The widget settings recorded in the result's metadata.
_SETTINGS = (
    "scale", "model", "weights", "iterations", "tile", "device", "precision",
    "self_ensemble", "value_range", "bit_depth", "region",
)  # fmt: skip

#: Blocking map colours: transparent where there is no blocking, yellow to red where there is.
_BLOCKING_COLORS = np.array(
    [[1.0, 1.0, 0.0, 0.0], [1.0, 0.85, 0.0, 0.8], [1.0, 0.1, 0.0, 1.0]], dtype=np.float32
)
_BLOCKING_MEANING = (
    "d(z), the blocking detector's map at the input's size: 1 where a JPEG block edge is "
    "detected (the non-local operator does not borrow from it), 0 where none is"
)


def output_geometry(
    layer: Image, factor: float, plane: Sequence[int] = (), origin: Sequence[int] = (0, 0)
) -> dict[str, Any]:
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
    origin : sequence of int, optional
        ``(row, col)`` of the input pixel the output's first pixel comes from (a region's
        corner; 0, 0 for the whole image).

    Returns
    -------
    dict
        ``scale``, ``translate``, ``rotate``, ``shear`` and ``affine`` for the output layer.
    """
    ndim = layer.ndim
    lead = ndim - 2
    u0 = np.zeros(ndim)
    u0[:lead] = list(plane) if len(plane) else 0
    u0[lead:] = np.asarray(origin, dtype=float) + 0.5 / factor - 0.5
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


def check_plane_size(shape: Sequence[int], stacked: bool) -> None:
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


def core_maps_it(mapping: ValueMapping, dtype: Any) -> bool:
    """True when the core's own mapping (by dtype; floats as [0, 1]) equals ``mapping``."""
    dtype = np.dtype(dtype)
    if np.issubdtype(dtype, np.unsignedinteger) and dtype.itemsize <= 2:
        return mapping.low == 0 and mapping.high == np.iinfo(dtype).max
    return np.issubdtype(dtype, np.floating) and (mapping.low, mapping.high) == (0.0, 1.0)


def no_blocking_hint(report: Any, models: Sequence[str] = ()) -> str:
    """A one-line hint when the input shows no JPEG blocking (an uncompressed image): which
    weights ran on it, or, where weights for strong compression ran, that they may smooth it."""
    if report is None or report.grid is not None:
        return ""
    if models and all(model_compression(m) == "mild" for m in models):
        return " — no JPEG blocking was found in this image: the weights for mild compression ran"
    return (
        " — no JPEG blocking was found in this image: these weights are meant for "
        "compressed images, and may smooth a clean one (the model lite.mild is not)"
    )


#: A preview region is grown to multiples of this (JPEG's 8×8 and 16×16 MCUs, WebP's 16×16
#: macroblocks), so that it starts on the compression grid as the whole image does.
REGION_ALIGN = 16


def visible_window(layer: Any) -> tuple[slice, slice]:
    """The rows and columns of ``layer`` shown on the canvas, grown to whole blocks.

    From napari's ``layer.corner_pixels`` (the displayed region in data coordinates, kept
    up to date by the canvas); at least :data:`~napari_cisr.values.MIN_SIDE` pixels a side.
    """
    if layer.multiscale:
        raise ValueError("the visible-region preview needs a single-resolution layer")
    return _aligned_window(layer, np.asarray(layer.corner_pixels)[:, -2:])


def drawn_window(layer: Any, shapes: Any) -> tuple[slice, slice]:
    """The rows and columns of ``layer`` under the last rectangle drawn in ``shapes``.

    The rectangle is taken from the Shapes layer's data through world coordinates (the two
    layers may have different scales and translations), then grown to whole blocks as
    :func:`visible_window` does.
    """
    if layer.multiscale:
        raise ValueError("the rectangle preview needs a single-resolution layer")
    rectangles = [
        vertices
        for vertices, kind in zip(shapes.data, shapes.shape_type, strict=True)
        if kind == "rectangle"
    ]
    if not rectangles:
        raise ValueError(f"draw a rectangle in the Shapes layer {shapes.name!r} first")
    corners = np.array([layer.world_to_data(shapes.data_to_world(v)) for v in rectangles[-1]])[
        :, -2:
    ]
    height, width = layer.data.shape[layer.ndim - 2 : layer.ndim]
    low = np.clip(np.floor(corners.min(axis=0)), 0, None)
    high = np.minimum(np.ceil(corners.max(axis=0)) - 1, (height - 1, width - 1))
    if np.any(high < low):
        raise ValueError(f"the rectangle in {shapes.name!r} is outside the image {layer.name!r}")
    return _aligned_window(layer, np.stack([low, high]))


def _aligned_window(layer: Any, corners: np.ndarray) -> tuple[slice, slice]:
    """``corners`` (the first and last row/column shown, in data coordinates) grown to
    whole :data:`REGION_ALIGN` blocks, at least :data:`~napari_cisr.values.MIN_SIDE` a side."""
    height, width = layer.data.shape[layer.ndim - 2 : layer.ndim]
    window = []
    for (low, high), size in zip(corners.T, (height, width), strict=True):
        start = int(max(0, low)) // REGION_ALIGN * REGION_ALIGN
        stop = min(size, -(-(int(high) + 1) // REGION_ALIGN) * REGION_ALIGN)
        if stop - start < MIN_SIDE:
            start, stop = max(0, min(start, size - MIN_SIDE)), min(size, start + MIN_SIDE)
        window.append(slice(start, stop))
    return window[0], window[1]


@dataclass
class PlaneJob:
    """The plane(s) *Run* sliced out of ``layer``, and how to put results back."""

    layer: Any
    params: SuperResolveParams
    planes: list[Any]
    indices: list[tuple[int, ...]]
    lead_shape: tuple[int, ...]
    current_plane: tuple[int, ...] | None
    options: InferenceOptions = field(default_factory=InferenceOptions)
    #: How the layer's values were mapped to [0, 1]; None when the core's own mapping (by
    #: dtype, or floats already in [0, 1]) is the chosen one and the data goes in unchanged.
    mapping: ValueMapping | None = None
    chosen_mapping: ValueMapping | None = None
    dtype: Any = None
    started: float = 0.0
    #: ``(rows, cols)`` of a preview region; None: the whole plane.
    window: tuple[slice, slice] | None = None

    def assemble(self, arrays: list[Any]) -> Any:
        """Put per-plane arrays back into the leading (T/Z) axes."""
        if not self.lead_shape:
            return arrays[0]
        lead = self.lead_shape if self.current_plane is None else (1,) * len(self.lead_shape)
        if any(is_dask_array(a) for a in arrays):
            import dask.array as da

            stacked = da.stack(arrays)
        else:
            stacked = np.stack([np.asarray(a) for a in arrays])
        return stacked.reshape(lead + tuple(arrays[0].shape))

    def layer_values(self, arrays: list[Any]) -> Any:
        """Per-plane core outputs, back in the input's dtype and value range, assembled."""
        if self.mapping is not None:
            arrays = [self.mapping.from_unit(a, self.dtype) for a in arrays]
        return self.assemble(arrays)


def plan_job(
    layer: Any, p: SuperResolveParams, world_point: Sequence[float], shapes: Any = None
) -> PlaneJob:
    """Check ``p`` and slice ``layer`` into the plane(s) to super-resolve.

    Parameters
    ----------
    layer : napari.layers.Image or None
        The chosen layer (None: nothing chosen, refused).
    p : SuperResolveParams
        The widget's settings; copied into the job, so later edits do not reach it.
    world_point : sequence of float
        The viewer's current point (``viewer.dims.point``): which plane of a stack is the
        current one when ``p.whole_stack`` is off.
    shapes : napari.layers.Shapes, optional
        Where ``p.region == "rectangle"`` finds its rectangle (the widget passes the topmost
        Shapes layer).

    Raises
    ------
    ValueError
        One line naming the setting or the image's problem.
    """
    if layer is None:
        raise ValueError("select an image layer first")
    if p.weights and not Path(p.weights).is_file():
        raise ValueError(f"weights file {p.weights!r} does not exist")
    model: Any = Path(p.weights) if p.weights else p.model
    options = InferenceOptions.from_settings(
        p,
        model=str(model),
        iterations=p.iterations or None,  # the spin box's 0 is "model default"
        self_ensemble=bool(p.self_ensemble),
        intermediates=bool(p.intermediates or p.blocking_map),
    ).validate()  # the CLI's checks, in the CLI's words
    source = {k: layer.metadata[k] for k in _SOURCE_KEYS if k in layer.metadata}
    compression = compression_from_info(source)  # what the file says; else the pixels, later
    if compression is not None and is_routed(options.model):
        options = replace(options, model=route_model(options.model, p.scale, compression))
    data = layer.data[0] if layer.multiscale else layer.data
    lead_shape = tuple(data.shape[: layer.ndim - 2])
    if lead_shape and not p.whole_stack:
        point = layer.world_to_data(world_point)
        current = tuple(
            int(np.clip(np.round(x), 0, n - 1))
            for x, n in zip(point[: len(lead_shape)], lead_shape, strict=True)
        )
        indices = [current]
    else:
        current = None
        indices = list(itertools.product(*(range(n) for n in lead_shape)))
    planes = [data[idx] if idx else data for idx in indices]
    if p.region not in REGIONS:
        raise ValueError(f"region must be one of {', '.join(REGIONS)}, got {p.region!r}")
    window = None
    if p.region == "visible":
        window = visible_window(layer)
    elif p.region == "rectangle":
        if shapes is None:
            raise ValueError("add a Shapes layer and draw a rectangle on the image first")
        window = drawn_window(layer, shapes)
    if window is not None:
        planes = [plane[window] for plane in planes]
    check_plane_size(planes[0].shape, stacked=bool(lead_shape))
    chosen = choose_mapping(
        data,
        p.value_range,
        contrast_limits=tuple(layer.contrast_limits),
        bit_depth=p.bit_depth or None,
    )
    mapping = None if core_maps_it(chosen, data.dtype) else chosen
    dtype = data.dtype
    if mapping is not None:
        planes = [mapping.to_unit(plane) for plane in planes]
    params = SuperResolveParams(**{k: getattr(p, k) for k in p.__dataclass_fields__})
    job = PlaneJob(layer, params, planes, indices, lead_shape, current, options)
    job.mapping, job.chosen_mapping, job.dtype = mapping, chosen, dtype
    job.window = window
    job.started = time.monotonic()
    return job


def add_result_layers(
    viewer: napari.viewer.Viewer,
    job: PlaneJob,
    results: list[Any],
    report: Any,
    models: Sequence[str] = (),
) -> Any:
    """Add ``job``'s results to ``viewer``; returns the result layer (added last, selected).

    The blocking map and the ARM/REM estimates of every iteration are added hidden, each
    with what it means in its metadata; the result carries every setting, the source
    file's codec and, as ``model_run``, the model that ran on the planes (``models``, as
    :class:`napari_cisr._job.JobOutcome` lists them).
    """
    layer, p, s = job.layer, job.params, job.params.scale
    plane = job.current_plane or ()
    origin = (0, 0) if job.window is None else (job.window[0].start, job.window[1].start)
    hr_geom = output_geometry(layer, s, plane, origin)
    lr_geom = output_geometry(layer, 1, plane, origin)
    common: dict[str, Any] = {"rgb": layer.rgb}
    if not layer.rgb:
        common["colormap"] = layer.colormap
    axes = {"units": tuple(str(u) for u in layer.units), "axis_labels": layer.axis_labels}
    look = {"contrast_limits": layer.contrast_limits, "gamma": layer.gamma}
    cisr = {k: getattr(p, k) for k in _SETTINGS}
    cisr["values"] = job.chosen_mapping.as_metadata()
    source_codec = {k: layer.metadata[k] for k in _SOURCE_KEYS if k in layer.metadata}
    if source_codec:  # what the reader found out about the input file
        cisr["source"] = source_codec
    if models:  # the weights each plane's compression chose (napari_cisr.compression)
        cisr["model_run"] = ", ".join(dict.fromkeys(models))
    what = f"×{s}"
    if job.window is not None:
        rows, cols = job.window
        cisr["region"] = {"rows": [rows.start, rows.stop], "cols": [cols.start, cols.stop]}
        what = f"×{s} preview"

    if p.blocking_map and results[0].blocking is not None:
        from napari.utils.colormaps import Colormap

        grid = {}
        if report is not None:  # computed in the worker (run_job), not on the GUI thread
            grid = {"grid": report.grid, "offset": report.offset, "score": report.score}
        viewer.add_image(
            job.assemble([r.blocking for r in results]),
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
                viewer.add_image(
                    job.layer_values(estimates),
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
    result = viewer.add_image(
        job.layer_values([r.image for r in results]),
        name=f"{layer.name} {what}{OUTPUT_SUFFIX}",
        metadata={"source": layer.name, "cisr": cisr},
        **common,
        **look,
        **axes,
        **hr_geom,
    )
    viewer.layers.selection.active = result
    return result

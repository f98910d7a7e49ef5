"""Super-resolve numpy and dask images: the public dispatch over :mod:`napari_cisr.engine`.

A numpy image goes whole through the network or tile by tile (:mod:`napari_cisr.engine.local`);
a dask image always goes lazily by tiles (:mod:`napari_cisr.engine.lazy`). This is the compute
core behind the CLI, the napari widget and batch processing; it imports no napari or Qt.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Generator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from napari_cisr.compression import (
    compression_from_grid,
    compression_from_info,
    file_description,
    is_routed,
    route_model,
)
from napari_cisr.engine.core import (
    DIHEDRAL,
    Progress,
    SuperResolveResult,
    cached_model,
    check_image,
    compiled_network,
    from_network,
    is_dask,
    resolve_model,
    to_network,
    unfold_outputs,
)
from napari_cisr.engine.grid import estimate_grid
from napari_cisr.engine.lazy import tiled_super_resolve_dask
from napari_cisr.engine.local import tiled_super_resolve_steps
from napari_cisr.engine.plan import choose_tile
from napari_cisr.model import CISRPSI
from napari_cisr.model.resize import bicubic_upsample
from napari_cisr.options import InferenceOptions
from napari_cisr.runtime import inference_context, resolve_device, resolve_precision

log = logging.getLogger(__name__)

__all__ = [
    "DIHEDRAL",
    "Progress",
    "SuperResolveResult",
    "cached_model",
    "check_image",
    "from_network",
    "run_to_completion",
    "steps_for",
    "super_resolve",
    "super_resolve_steps",
    "to_network",
    "unfold_outputs",
]


def super_resolve_steps(
    image: np.ndarray, scale: int = 2, *, intermediates: bool = False, **settings: Any
) -> Generator[Progress, None, SuperResolveResult]:
    """Super-resolve an image step by step: yields :class:`Progress`, returns the result.

    Closing the generator (``gen.close()``, or a napari worker's ``quit()``) stops the work at
    the next iteration boundary.

    Parameters
    ----------
    image, scale
        As in :func:`super_resolve`.
    intermediates : bool
        Also return every ŷ_j, x̂_j and the blocking map.
    **settings
        ``model``, ``iterations``, ``tile``, ``device``, ``precision``, ``self_ensemble``:
        the keyword-only settings of :func:`super_resolve`, declared there (and as fields of
        :class:`~napari_cisr.options.InferenceOptions`) rather than again here. An unknown
        name is a TypeError.

    Returns
    -------
    SuperResolveResult
        As the generator's return value (``StopIteration.value``; :func:`run_to_completion`).

    Notes
    -----
    A dask array in gives lazy dask arrays out (always tiled; chunks are the tiles scaled by
    s): the generator yields nothing and returns at once, and nothing is computed until the
    caller computes the result.
    """
    options = InferenceOptions(scale=scale, intermediates=intermediates, **settings).validate()
    return (yield from steps_for(image, options))


def steps_for(
    image: np.ndarray, options: InferenceOptions, *, info: Mapping[str, Any] | None = None
) -> Generator[Progress, None, SuperResolveResult]:
    """:func:`super_resolve_steps` with its settings in one validated :class:`InferenceOptions`.

    The entry point for code that already holds options (the CLI, the widget, photo jobs): a
    setting added to :class:`InferenceOptions` reaches the engine without a new parameter
    here.

    Parameters
    ----------
    image : ndarray or dask.array.Array
        As in :func:`super_resolve`.
    options : InferenceOptions
        How to super-resolve, validated.
    info : mapping, optional
        The description of the file the image was read from
        (:func:`napari_cisr.io.image_info`): its JPEG or WebP quality then routes a model name
        without a compression tag (:mod:`napari_cisr.compression`). Without it, or where it
        says nothing, the image's blocking grid routes it, and the tiled drivers reuse that
        grid rather than detect it again.

    Returns
    -------
    SuperResolveResult
        As the generator's return value; its ``model`` names the weights that ran.
    """
    check_image(image)
    grid: Any = "auto"  # the tiled drivers' default: they detect it
    if is_routed(options.model):  # one set of weights per image, from its compression
        compression = compression_from_info(info)
        if compression is None:
            grid = estimate_grid(image)
            compression = compression_from_grid(grid)
        options = replace(options, model=route_model(options.model, options.scale, compression))
    ran = str(options.model) if isinstance(options.model, (str, Path)) else None
    if is_dask(image):
        return replace(tiled_super_resolve_dask(image, options, grid=grid), model=ran)
    target = resolve_device(options.device)
    network = resolve_model(options.model, options.scale, target)
    if options.tile is None:
        options = replace(options, tile=choose_tile(network.config, image.shape[:2], target))
    if options.tile:
        tiled = tiled_super_resolve_steps(image, replace(options, model=network), grid=grid)
        return replace((yield from tiled), model=ran)
    if options.compile:
        network = compiled_network(network)  # the whole image: one graph per image shape
    scale, intermediates = options.scale, options.intermediates
    rgb, alpha = to_network(image)
    rgb = rgb.to(target)
    total = options.iterations or network.config.iterations
    y_hats, x_hats = [], []
    dtype = resolve_precision(options.precision, target)
    # The contexts are thread-local: leave them before every yield, so that the caller's code
    # between steps never runs under inference mode or autocast.
    with inference_context(target, dtype):
        blocking = network.blocking(rgb)
        steps = unfold_outputs(network, rgb, total, blocking, options.self_ensemble)
    x_hat = None
    for j in range(1, total + 1):
        with inference_context(target, dtype):
            y_hat, x_hat = next(steps)
            if intermediates:
                y_hats.append(from_network(y_hat, alpha, image))
                hr_alpha = None if alpha is None else bicubic_upsample(alpha, scale).clamp(0, 1)
                x_hats.append(from_network(x_hat, hr_alpha, image))
        yield Progress(j, total, f"iteration {j}/{total}")
    with inference_context(target, dtype):
        hr_alpha = None if alpha is None else bicubic_upsample(alpha.to(target), scale).clamp(0, 1)
        result = from_network(x_hat, hr_alpha, image)
    return SuperResolveResult(
        image=result,
        y_hats=y_hats,
        x_hats=x_hats,
        blocking=blocking[0, 0].float().cpu().numpy() if intermediates else None,
        model=ran,
    )


def run_to_completion(steps: Generator[Progress, None, SuperResolveResult]) -> SuperResolveResult:
    """Drive a :func:`super_resolve_steps` generator and return its result."""
    while True:
        try:
            next(steps)
        except StopIteration as stop:
            return stop.value


def super_resolve(
    image: np.ndarray | str | os.PathLike,
    scale: int = 2,
    *,
    model: str | Path | CISRPSI = "lite",
    iterations: int | None = None,
    tile: int | None = None,
    device: str = "auto",
    precision: str = "auto",
    self_ensemble: bool = False,
    compile: bool = False,  # shadows the builtin: the option has one name everywhere
) -> np.ndarray:
    """Super-resolve a compressed image.

    Every setting after ``scale`` is keyword-only: ``super_resolve(image, 2, tile=0)``.

    Parameters
    ----------
    image : ndarray, dask.array.Array, str or os.PathLike
        H×W, H×W×3 or H×W×4; uint8, uint16 or float in [0, 1]. Alpha is upscaled
        bicubically on its own; grayscale stays grayscale. A path is read with
        :func:`napari_cisr.io.read_image`, and its file's compression routes the model (below).
    scale : int
        2, 3 or 4.
    model : str, Path or CISRPSI
        A model name with shipped weights ("lite", or "lite.x2" naming the scale too:
        :func:`napari_cisr.registry.list_models`), a weight file, or a loaded network. A name
        runs the weights trained for the image's compression (:mod:`napari_cisr.compression`):
        for a path, what its file says (its JPEG or WebP quality:
        :data:`napari_cisr.compression.HEAVY_QUALITY` and ``MILD_QUALITY``, as ``napari-cisr
        run`` does); for an array, or a file that says nothing, what its pixels show (the JPEG
        quality of its blocking grid, routed as a file's; the general ones for a grid whose
        quality is unknown, the mild ones for no grid). A tag chooses them instead
        ("lite.mild", "lite.strong", "lite.heavy").
    iterations : int, optional
        Unfolding iterations J (default: the model's).
    tile : int, optional
        Core tile side in LR pixels (:mod:`napari_cisr.engine`: halo from the model, tiles on
        the compression grid, blended overlaps). ``None`` chooses
        (:func:`napari_cisr.engine.plan.choose_tile`): the largest tile that fits half the
        available memory, on the CPU at most 256 px (faster there), and the whole image when
        it fits and, on the CPU, both sides are ≤ 384 px. ``0`` processes the whole image in
        one pass.
    device : str
        "auto", "cpu" or "cuda".
    precision : str
        "auto" (bfloat16 autocast where the device has native bfloat16, else float32),
        "float32" or "bfloat16".
    self_ensemble : bool
        Average the network over the eight rotations/flips of the input (:func:`unfold_outputs`):
        eight times the time for a higher PSNR (docs/models.md measures how much).
    compile : bool
        Run the network through ``torch.compile``
        (:attr:`napari_cisr.options.InferenceOptions.compile`); experimental: faster per tile,
        slower end to end on a 2-core CPU so far (docs/benchmarks.md).

    Returns
    -------
    ndarray or dask.array.Array
        Same layout and dtype, ``scale`` times larger in H and W; lazy (dask) for dask input.

    Raises
    ------
    napari_cisr.io.ImageReadError
        A path that cannot be read as an image (one line naming the file and the problem).
    """
    options = InferenceOptions(
        scale=scale, model=model, iterations=iterations, tile=tile, device=device,
        precision=precision, self_ensemble=self_ensemble, compile=compile,
    )  # fmt: skip
    options = options.validate()
    info = None
    if isinstance(image, (str, os.PathLike)):
        from napari_cisr.io import read_image

        path, image = image, read_image(image)
        info = file_description(path) if is_routed(model) else None
    return run_to_completion(steps_for(image, options, info=info)).image

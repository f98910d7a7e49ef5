"""Super-resolve numpy images: layouts, dtypes, alpha, progress and cancellation.

This is the compute core behind the CLI, the napari widget and batch processing; it imports
no napari or Qt.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from napari_cisr.model import CISRPSI
from napari_cisr.model.resize import bicubic_upsample
from napari_cisr.values import MIN_SIDE
from napari_cisr.weights import inference_context, load_model, resolve_device, resolve_precision

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Progress:
    """One unit of work done (a tile × iteration), for progress bars."""

    done: int
    total: int
    stage: str


@dataclass(frozen=True)
class SuperResolveResult:
    """Result of :func:`super_resolve_steps`.

    Attributes
    ----------
    image : ndarray
        x̂_J in the input's layout and dtype, s× larger in H and W.
    y_hats, x_hats : list of ndarray
        ŷ_1..ŷ_J (LR) and x̂_1..x̂_J (HR), same layout and dtype as the input; empty unless
        ``intermediates=True``.
    blocking : ndarray or None
        d(z): H×W float32 in [0, 1] at the input's size; ``None`` unless ``intermediates=True``.
    """

    image: np.ndarray
    y_hats: list[np.ndarray] = field(default_factory=list)
    x_hats: list[np.ndarray] = field(default_factory=list)
    blocking: np.ndarray | None = None


#: The eight rotations/flips of the self-ensemble, as (quarter turns, mirrored first).
DIHEDRAL = tuple((turns, mirror) for mirror in (False, True) for turns in range(4))


def _dihedral(tensor: torch.Tensor, turns: int, mirror: bool) -> torch.Tensor:
    if mirror:
        tensor = tensor.flip(-1)
    return torch.rot90(tensor, turns, dims=(-2, -1))


def _undo_dihedral(tensor: torch.Tensor, turns: int, mirror: bool) -> torch.Tensor:
    tensor = torch.rot90(tensor, -turns, dims=(-2, -1))
    return tensor.flip(-1) if mirror else tensor


def unfold_outputs(
    network: CISRPSI,
    z: torch.Tensor,
    iterations: int,
    blocking: torch.Tensor,
    self_ensemble: bool = False,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield (ŷ_j, x̂_j) for j = 1..``iterations``, one iteration at a time.

    Without ``self_ensemble`` this is ``network.unfold``. With it, every estimate is the mean
    over the eight rotations/flips of z (EDSR's x8 self-ensemble), each run of the network
    transformed back. d(z) is transformed with z rather than detected again, so the
    compression grid keeps its phase in every transform, also in a tile whose grid comes from
    the whole image. The eight runs advance together, one iteration at a time, each at batch 1:
    eight times the work of one run, the memory of one run plus eight iterates.

    Parameters
    ----------
    network : CISRPSI
    z : Tensor
        B×C×H×W compressed LR input in [0, 1].
    iterations : int
        J.
    blocking : Tensor
        d(z), B×1×H×W.
    self_ensemble : bool
        Average over the eight rotations/flips.
    """
    if not self_ensemble:
        yield from network.unfold(z, iterations, blocking)
        return
    runs = [
        network.unfold(_dihedral(z, turns, mirror), iterations, _dihedral(blocking, turns, mirror))
        for turns, mirror in DIHEDRAL
    ]
    for _ in range(iterations):
        y_sum = x_sum = None
        for (turns, mirror), run in zip(DIHEDRAL, runs, strict=True):
            y_hat, x_hat = next(run)
            y_hat = _undo_dihedral(y_hat, turns, mirror).float()
            x_hat = _undo_dihedral(x_hat, turns, mirror).float()
            y_sum = y_hat if y_sum is None else y_sum + y_hat
            x_sum = x_hat if x_sum is None else x_sum + x_hat
        yield y_sum / len(DIHEDRAL), x_sum / len(DIHEDRAL)


@functools.lru_cache(maxsize=4)
def cached_model(name: str, scale: int, device: str) -> CISRPSI:
    """Load a model once per (name, scale, device); inference never mutates it."""
    return _for_inference(load_model(name, scale=scale, device=device), torch.device(device))


def _for_inference(network: CISRPSI, device: torch.device) -> CISRPSI:
    """``network`` on ``device``; on the CPU with channels-last weights.

    oneDNN then runs every convolution without layout conversions (faster; the same numbers
    to ~1e-6 in float32). A given network is converted in place, so that it
    computes exactly as the same weights loaded by name.
    """
    network = network.to(device)
    if device.type == "cpu":
        network = network.to(memory_format=torch.channels_last)
    return network


def _resolve_model(model: str | Path | CISRPSI, scale: int, device: torch.device) -> CISRPSI:
    if isinstance(model, CISRPSI):
        if model.scale != scale:
            raise ValueError(f"the given model is for x{model.scale}, not x{scale}")
        return _for_inference(model, device)
    return cached_model(str(model), scale, str(device))


def check_image(image: np.ndarray) -> None:
    """Raise ValueError (one line) unless ``image`` is H×W, H×W×3 or H×W×4 of a supported dtype
    with both sides at least :data:`MIN_SIDE`."""
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (3, 4)):
        raise ValueError(f"expected an H×W, H×W×3 or H×W×4 image, got shape {image.shape}")
    if image.dtype not in (np.uint8, np.uint16) and not np.issubdtype(image.dtype, np.floating):
        raise ValueError(f"unsupported dtype {image.dtype}; use uint8, uint16 or float")
    if min(image.shape[:2]) < MIN_SIDE:
        h, w = image.shape[:2]
        raise ValueError(f"the image is {h}×{w} pixels; both sides must be at least {MIN_SIDE}")


def _is_dask(image: object) -> bool:
    return type(image).__module__.startswith("dask")


def _dtype_max(dtype: np.dtype) -> float:
    return float(np.iinfo(dtype).max) if np.issubdtype(dtype, np.integer) else 1.0


def to_network(image: np.ndarray) -> tuple[torch.Tensor, torch.Tensor | None]:
    """H×W[×C] numpy → (1×3×H×W float32 RGB in [0, 1], 1×1×H×W alpha or None)."""
    data = torch.from_numpy(np.ascontiguousarray(image).astype(np.float32)) / _dtype_max(
        image.dtype
    )
    if data.ndim == 2:
        data = data[..., None].expand(-1, -1, 3)
    data = data.permute(2, 0, 1)[None]
    alpha = data[:, 3:4] if data.shape[1] == 4 else None
    return data[:, :3].contiguous(), alpha


def from_network(rgb: torch.Tensor, alpha: torch.Tensor | None, like: np.ndarray) -> np.ndarray:
    """Inverse of :func:`to_network`: back to ``like``'s layout and dtype (rounded, clipped)."""
    if like.ndim == 2:
        # Grayscale in, grayscale out: the three channels saw identical input; average them.
        data = rgb.mean(dim=1, keepdim=True)
    else:
        data = torch.cat([rgb, alpha], dim=1) if alpha is not None else rgb
    array = data[0].permute(1, 2, 0).float().cpu().numpy()
    if like.ndim == 2:
        array = array[..., 0]
    if np.issubdtype(like.dtype, np.integer):
        peak = _dtype_max(like.dtype)
        return np.clip(np.round(array * peak), 0, peak).astype(like.dtype)
    return array.astype(like.dtype)


def super_resolve_steps(
    image: np.ndarray,
    scale: int = 2,
    model: str | Path | CISRPSI = "lite",
    iterations: int | None = None,
    tile: int | None = None,
    device: str = "auto",
    intermediates: bool = False,
    precision: str = "auto",
    self_ensemble: bool = False,
) -> Generator[Progress, None, SuperResolveResult]:
    """Super-resolve an image step by step: yields :class:`Progress`, returns the result.

    Closing the generator (``gen.close()``, or a napari worker's ``quit()``) stops the work at
    the next iteration boundary.

    Parameters
    ----------
    image : ndarray
        H×W, H×W×3 or H×W×4; uint8, uint16 or float (float taken to be in [0, 1]).
    scale : int
        2, 3 or 4.
    model : str, Path or CISRPSI
        Variant name ("lite", "tiny", "full"), a weight file, or a loaded network.
    iterations : int, optional
        Unfolding iterations J (default: the model's).
    tile : int, optional
        Core tile side in LR pixels (napari_cisr.tiling: halo from the model, tiles on the
        compression grid, blended overlaps). ``None`` chooses
        (:func:`napari_cisr.tiling.choose_tile`): the largest tile that fits half the available
        memory, on the CPU at most 256 px (faster there), and the whole image when it fits and,
        on the CPU, both sides are ≤ 384 px. ``0`` processes the whole image in one pass.
    device : str
        "auto", "cpu" or "cuda".
    intermediates : bool
        Also return every ŷ_j, x̂_j and the blocking map.
    precision : str
        "auto" (bfloat16 autocast where the device has native bfloat16, else float32),
        "float32" or "bfloat16".
    self_ensemble : bool
        Average the network over the eight rotations/flips of the input (:func:`unfold_outputs`):
        eight times the time for a higher PSNR (docs/models.md measures how much).

    Notes
    -----
    A dask array in gives lazy dask arrays out (always tiled; chunks are the tiles scaled by
    s): the generator yields nothing and returns at once, and nothing is computed until the
    caller computes the result.
    """
    check_image(image)
    if _is_dask(image):
        from napari_cisr.tiling import tiled_super_resolve_dask

        if tile == 0:
            raise ValueError("a dask array is always processed in tiles; tile=0 needs numpy")
        return tiled_super_resolve_dask(
            image, scale, model, iterations, tile, device, intermediates,
            precision=precision, self_ensemble=self_ensemble,
        )  # fmt: skip
    target = resolve_device(device)
    network = _resolve_model(model, scale, target)
    if tile is None:
        from napari_cisr.tiling import choose_tile

        tile = choose_tile(network.config, image.shape[:2], target)
    if tile:
        from napari_cisr.tiling import tiled_super_resolve_steps

        return (
            yield from tiled_super_resolve_steps(
                image,
                scale,
                network,
                iterations,
                tile,
                device,
                intermediates,
                precision=precision,
                self_ensemble=self_ensemble,
            )
        )
    rgb, alpha = to_network(image)
    rgb = rgb.to(target)
    total = iterations or network.config.iterations
    y_hats, x_hats = [], []
    dtype = resolve_precision(precision, target)
    # The contexts are thread-local: leave them before every yield, so that the caller's code
    # between steps never runs under inference mode or autocast.
    with inference_context(target, dtype):
        blocking = network.blocking(rgb)
        steps = unfold_outputs(network, rgb, total, blocking, self_ensemble)
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
    )


def run_to_completion(steps: Generator[Progress, None, SuperResolveResult]) -> SuperResolveResult:
    """Drive a :func:`super_resolve_steps` generator and return its result."""
    while True:
        try:
            next(steps)
        except StopIteration as stop:
            return stop.value


def super_resolve(
    image: np.ndarray,
    scale: int = 2,
    model: str | Path | CISRPSI = "lite",
    iterations: int | None = None,
    tile: int | None = None,
    device: str = "auto",
    precision: str = "auto",
    self_ensemble: bool = False,
) -> np.ndarray:
    """Super-resolve a compressed image.

    Parameters
    ----------
    image : ndarray or dask.array.Array
        H×W, H×W×3 or H×W×4; uint8, uint16 or float in [0, 1]. Alpha is upscaled
        bicubically on its own; grayscale stays grayscale.
    scale, model, iterations, tile, device, precision, self_ensemble
        As in :func:`super_resolve_steps`.

    Returns
    -------
    ndarray or dask.array.Array
        Same layout and dtype, ``scale`` times larger in H and W; lazy (dask) for dask input.
    """
    return run_to_completion(
        super_resolve_steps(
            image,
            scale,
            model,
            iterations,
            tile,
            device,
            precision=precision,
            self_ensemble=self_ensemble,
        )
    ).image

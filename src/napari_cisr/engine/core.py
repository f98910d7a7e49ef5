"""The low core under both tiled drivers and the whole-image path: image checks, the layouts
between numpy and the network, the network call (self-ensemble included), the model cache and
the progress and result types. Imports no napari, Qt or dask."""

from __future__ import annotations

import contextlib
import copy
import functools
import logging
import threading
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from napari_cisr.model import CISRPSI
from napari_cisr.runtime import resolve_device, resolve_precision
from napari_cisr.values import MIN_SIDE
from napari_cisr.weights import load_model

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Progress:
    """One unit of work done (a tile × iteration), for progress bars."""

    done: int
    total: int
    stage: str


@dataclass(frozen=True)
class SuperResolveResult:
    """Result of :func:`napari_cisr.inference.super_resolve_steps`.

    Attributes
    ----------
    image : ndarray
        x̂_J in the input's layout and dtype, s× larger in H and W.
    y_hats, x_hats : list of ndarray
        ŷ_1..ŷ_J (LR) and x̂_1..x̂_J (HR), same layout and dtype as the input; empty unless
        ``intermediates=True``.
    blocking : ndarray or None
        d(z): H×W float32 in [0, 1] at the input's size; ``None`` unless ``intermediates=True``.
    model : str or None
        The model that ran, as :func:`napari_cisr.inference.steps_for` resolved it: a name
        routed by the input's compression carries its tag (``"lite.mild"``), a weight file is
        its path; None for a network passed in (or from the tiled drivers, which the
        dispatch fills in).
    """

    image: np.ndarray
    y_hats: list[np.ndarray] = field(default_factory=list)
    x_hats: list[np.ndarray] = field(default_factory=list)
    blocking: np.ndarray | None = None
    model: str | None = None


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
    return for_inference(load_model(name, scale=scale, device=device), torch.device(device))


def for_inference(network: CISRPSI, device: torch.device) -> CISRPSI:
    """``network`` on ``device``; on the CPU with channels-last weights.

    oneDNN then runs every convolution without layout conversions (faster; the same numbers
    to ~1e-6 in float32). A given network is converted in place, so that it
    computes exactly as the same weights loaded by name.
    """
    network = network.to(device)
    if device.type == "cpu":
        network = network.to(memory_format=torch.channels_last)
    return network


def resolve_model(model: str | Path | CISRPSI, scale: int, device: torch.device) -> CISRPSI:
    if isinstance(model, CISRPSI):
        if model.scale != scale:
            raise ValueError(f"the given model is for x{model.scale}, not x{scale}")
        return for_inference(model, device)
    return cached_model(str(model), scale, str(device))


class _CompiledOrEager(torch.nn.Module):
    """``module`` through ``torch.compile`` (inductor, one graph per input shape), or eagerly
    from the first call whose compilation fails (no C++ compiler, an unsupported operation):
    a warning, then the same numbers as without compilation.

    The first call holds a lock, so that threads sharing the network (dask workers) do not
    compile the same graph at once.
    """

    def __init__(self, module: torch.nn.Module) -> None:
        super().__init__()
        self.eager = module
        self.compiled = torch.compile(module, dynamic=False)
        self.failed = False
        self._first_call = threading.Lock()
        self._warmed = False

    def forward(self, *args: torch.Tensor) -> torch.Tensor:
        if self.failed:
            return self.eager(*args)
        # A new input shape compiles again and can fail too, so every call is guarded.
        with contextlib.nullcontext() if self._warmed else self._first_call:
            try:
                output = self.compiled(*args)
            except Exception as error:  # any compiler failure: run eagerly from now on
                reason = str(error).strip().splitlines()[0] if str(error).strip() else ""
                log.warning("torch.compile failed, running eagerly: %s", reason or type(error))
                self.failed = True
                return self.eager(*args)
        self._warmed = True
        return output


#: The compiled copy of each network that was asked for one (freed with the network).
_COMPILED: weakref.WeakKeyDictionary[CISRPSI, CISRPSI] = weakref.WeakKeyDictionary()


def compiled_network(network: CISRPSI) -> CISRPSI:
    """A copy of ``network`` whose ARM and REM (the modules every iteration calls) run through
    ``torch.compile``; made once per network. The unfolding loop stays in Python, so progress
    and cancelling still come after every iteration."""
    if isinstance(network.arm, _CompiledOrEager):
        return network
    if network not in _COMPILED:
        twin = copy.deepcopy(network)
        twin.arm = _CompiledOrEager(twin.arm)
        twin.rem = _CompiledOrEager(twin.rem)
        _COMPILED[network] = twin
    return _COMPILED[network]


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


def is_dask(image: object) -> bool:
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


def network_for(
    model: str | Path | CISRPSI,
    scale: int,
    device: str,
    precision: str = "auto",
    compile_network: bool = False,
) -> tuple[CISRPSI, torch.device, torch.dtype]:
    """The network ready for inference (through :func:`compiled_network` if
    ``compile_network``), the device it runs on and the autocast dtype."""
    target = resolve_device(device)
    network = resolve_model(model, scale, target)
    if compile_network:
        network = compiled_network(network)
    return network, target, resolve_precision(precision, target)

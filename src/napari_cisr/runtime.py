"""Where and how the network runs: the device, the compute precision, autocast, free memory.

One policy for every entry point (the library, the CLI, the widget, batch and training):
``device="auto"`` is CUDA when present, else the CPU; ``precision="auto"`` is bfloat16 where
the device runs it natively, else float32; inference runs under ``torch.inference_mode`` with
bfloat16 autocast when that is the precision; the automatic tile is sized from the device's
free memory (:func:`napari_cisr.engine.plan.choose_tile`).

torch is imported by the functions that use it, not by this module, so that torch-free code
(the tile geometry of :mod:`napari_cisr.engine.plan`) can import it.
"""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING

from napari_cisr.registry import PRECISIONS

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = [
    "available_memory",
    "inference_context",
    "native_bfloat16",
    "resolve_device",
    "resolve_precision",
]

#: What :func:`available_memory` answers when the platform tells nothing.
_UNKNOWN_MEMORY = 4 * 2**30


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """The ``torch.device`` to run on: 'auto' → CUDA when available, else CPU.

    Parameters
    ----------
    device : str or torch.device
        "auto", "cpu", "cuda", "cuda:N", "mps", ...

    Returns
    -------
    torch.device

    Raises
    ------
    ValueError
        For CUDA on a machine without it.
    """
    import torch

    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but CUDA is not available")
    return device


def native_bfloat16(device: torch.device) -> bool:
    """Whether ``device`` computes bfloat16 natively (CUDA with bf16, a CPU with AVX512-BF16 or
    AMX); elsewhere bfloat16 convolutions are emulated, many times slower than float32."""
    import torch

    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        # Private but stable since torch 2.1; without AVX512-BF16 (or AMX) bfloat16 convolutions
        # are emulated and slower than float32.
        probe = getattr(torch.cpu, "_is_avx512_bf16_supported", None)
        return bool(probe and probe())
    return False


def resolve_precision(precision: str, device: torch.device) -> torch.dtype:
    """The compute dtype of inference: 'auto' → bfloat16 where ``device`` has it natively.

    bfloat16 autocast is about 2x faster on a CPU with AVX512-BF16
    (``benchmarks/throughput.py``) and changes Y-PSNR by less than 0.004 dB in every
    configuration measured (``benchmarks/precision.py``; the network keeps its per-pixel
    bandwidth and skip weights in float32). On CUDA it is no faster than float32 but
    needs less memory (docs/benchmarks.md).

    Parameters
    ----------
    precision : str
        One of :data:`napari_cisr.registry.PRECISIONS`.
    device : torch.device
        Where the network runs.

    Returns
    -------
    torch.dtype
        ``torch.bfloat16`` or ``torch.float32``.
    """
    import torch

    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    if precision == "auto":
        return torch.bfloat16 if native_bfloat16(device) else torch.float32
    return torch.bfloat16 if precision == "bfloat16" else torch.float32


def inference_context(device: torch.device, dtype: torch.dtype) -> contextlib.ExitStack:
    """``torch.inference_mode()`` plus bfloat16 autocast when ``dtype`` is bfloat16.

    The contexts are thread-local: a generator should leave them before every ``yield``.
    """
    import torch

    stack = contextlib.ExitStack()
    stack.enter_context(torch.inference_mode())
    if dtype == torch.bfloat16:
        stack.enter_context(torch.autocast(device.type, dtype=torch.bfloat16))
    return stack


def available_memory(device: str | torch.device = "cpu") -> int:
    """Bytes of free memory on ``device``: CUDA, the device's free memory; otherwise the
    host's available memory (``MemAvailable``), 4 GiB when the platform does not say."""
    if getattr(device, "type", str(device).partition(":")[0]) == "cuda":
        import torch

        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return _UNKNOWN_MEMORY

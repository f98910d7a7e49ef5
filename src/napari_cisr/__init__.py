"""napari-cisr: super-resolve compressed images with CISR-PSI.

The public API is imported lazily so that ``import napari_cisr`` stays cheap: torch, dask,
napari and Qt are only imported by the function that needs them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_LAZY = {
    "super_resolve": "napari_cisr.inference",
    "load_model": "napari_cisr.weights",
    "list_models": "napari_cisr.registry",
    "detect_blocking": "napari_cisr.blocking",
    "BlockingReport": "napari_cisr.blocking",
}

__all__ = [
    "BlockingReport",
    "__version__",
    "detect_blocking",
    "list_models",
    "load_model",
    "super_resolve",
]

if TYPE_CHECKING:  # pragma: no cover
    from napari_cisr.blocking import BlockingReport, detect_blocking
    from napari_cisr.inference import super_resolve
    from napari_cisr.registry import list_models
    from napari_cisr.weights import load_model


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'napari_cisr' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)

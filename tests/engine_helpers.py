"""What the engine tests share (tests/test_plan.py, test_grid.py, test_engine.py, test_lazy.py):
the halo they plan with, the free memory they inject, a JPEG round trip and a tiled run of the
small network of the ``model`` fixture (tests/conftest.py)."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from napari_cisr import tiling
from napari_cisr.inference import run_to_completion
from napari_cisr.options import InferenceOptions

HALO = 16
#: The free memory every automatic tile choice in the engine tests sees: injected (the
#: ``free_memory`` fixture), never read from the machine, so that how busy the machine is
#: cannot change the tiles a test gets.
FREE_MEMORY = 8 * 2**30


def jpeg_round_trip(image: np.ndarray, quality: int = 20) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
    buffer.seek(0)
    return np.asarray(Image.open(buffer).convert("RGB" if image.ndim == 3 else "L"))


def cpu_options(model, **settings) -> InferenceOptions:
    return InferenceOptions(scale=2, model=model, device="cpu", **settings)


def run_tiled(image, model, halo=HALO, blend=None, grid="auto", **settings):
    return run_to_completion(
        tiling.tiled_super_resolve_steps(
            image, cpu_options(model, **settings), halo=halo, blend=blend, grid=grid
        )
    )

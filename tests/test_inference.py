"""The public dispatch (``napari_cisr.inference``): its settings are keyword-only after
``scale``, and unknown settings are refused before any work."""

from __future__ import annotations

import numpy as np
import pytest

from napari_cisr import super_resolve
from napari_cisr.inference import run_to_completion, super_resolve_steps


def test_settings_after_scale_are_keyword_only():
    image = np.zeros((16, 16, 3), np.uint8)
    with pytest.raises(TypeError, match="positional"):
        super_resolve(image, 2, "lite")
    with pytest.raises(TypeError, match="positional"):
        super_resolve_steps(image, 2, "lite")


def test_super_resolve_steps_refuses_an_unknown_setting():
    steps = super_resolve_steps(np.zeros((16, 16, 3), np.uint8), 2, tiles=64)
    with pytest.raises(TypeError, match="tiles"):
        run_to_completion(steps)

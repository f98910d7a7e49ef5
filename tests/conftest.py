from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def fresh_weights(tmp_path_factory):
    """A weight file of a freshly initialised lite x2 network (quality irrelevant)."""
    import torch

    from napari_cisr.model import build_model, variant_config
    from napari_cisr.weights import save_weights

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "lite-x2-fresh.safetensors"
    save_weights(build_model(variant_config("lite", 2)), path)
    return path

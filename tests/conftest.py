from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from repo_scripts import load_script


@pytest.fixture(scope="session")
def modules_imported_by():
    """``f(module, candidates)``: which of ``candidates`` importing ``module`` loads, in a fresh
    interpreter (the layering checks: e.g. the compute core must not pull in napari or Qt)."""

    def imported(module: str, candidates: tuple[str, ...]) -> list[str]:
        code = (
            f"import json, sys, {module}; "
            f"print(json.dumps([m for m in {list(candidates)!r} if m in sys.modules]))"
        )
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr  # the import itself must work
        return json.loads(result.stdout.strip().splitlines()[-1])

    return imported


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


@pytest.fixture(scope="session")
def heldout_photos() -> list[Path]:
    """The held-out photos of ``scripts/photos.tsv``, as paths relative to the repository (where
    ``bash scripts/fetch_photos.sh`` puts them): never to be trained or validated on."""
    rows = load_script("fetch_photos").read_manifest()
    return [Path("data", r["folder"], r["name"]) for r in rows if r["split"] == "heldout"]


# ------------------------------------------------------------------ the engine tests' fixtures
# (tests/test_plan.py, test_grid.py, test_engine.py, test_lazy.py; helpers in engine_helpers.py)


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread: these images are tiny, and the suite shares the machine."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def free_memory(monkeypatch):
    """Inject ``engine_helpers.FREE_MEMORY`` into the automatic tile choice; the devices it was
    asked for."""
    from engine_helpers import FREE_MEMORY
    from napari_cisr.engine import plan as engine_plan

    asked = []

    def available(device):
        asked.append(device)
        return FREE_MEMORY

    monkeypatch.setattr(engine_plan, "available_memory", available)
    return asked


@pytest.fixture(scope="module")
def model():
    """A small randomly initialised network standing in for the trained one (quality is not
    measured by the tests; docs/benchmarks.md does that with trained weights). Its
    zero-initialised tails are randomised so that the output is not just bicubic."""
    import torch

    from napari_cisr.model import build_model, variant_config

    torch.manual_seed(0)
    config = variant_config("lite", 2, features=16, blocks=1, iterations=2, search_radius=2)
    network = build_model(config).eval()
    for tail in (network.arm.tail, network.rem.tail):
        torch.nn.init.normal_(tail.weight, std=0.05)
    return network


@pytest.fixture(scope="module")
def photo():
    """A compressed photo-like RGB image cropped by (5, 3): grid offset (3, 5)."""
    from engine_helpers import jpeg_round_trip

    rng = np.random.default_rng(1)
    y, x = np.mgrid[0:160, 0:200]
    base = 128 + 60 * np.sin(x / 9.0) * np.cos(y / 13.0) + 30 * np.sin((x + 2 * y) / 5.0)
    rgb = np.stack([base, base[::-1] * 0.8 + 20, 255 - base], axis=-1)
    rgb = np.clip(rgb + rng.normal(0, 6, rgb.shape), 0, 255).astype(np.uint8)
    return jpeg_round_trip(rgb, 15)[5:, 3:]  # 155×197, odd

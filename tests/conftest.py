from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


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
    script = REPO / "scripts" / "fetch_photos.py"
    spec = importlib.util.spec_from_file_location("fetch_photos", script)
    fetch_photos = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fetch_photos)
    rows = fetch_photos.read_manifest()
    return [Path("data", r["folder"], r["name"]) for r in rows if r["split"] == "heldout"]

"""Where and how the network runs (``napari_cisr.runtime``): device, precision, autocast and
free memory, one policy for every entry point."""

from __future__ import annotations

import pytest
import torch

from napari_cisr.runtime import (
    available_memory,
    inference_context,
    resolve_device,
    resolve_precision,
)


def test_the_runtime_module_imports_no_torch(modules_imported_by):
    # The tile geometry (engine/plan.py) imports it and must stay testable without torch.
    assert modules_imported_by("napari_cisr.runtime", ("torch",)) == []
    assert modules_imported_by("napari_cisr.engine.plan", ("torch",)) == []


def test_device_auto_is_cuda_when_present_else_cpu():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")


def test_precision_resolves_to_a_dtype_and_rejects_unknown_names(monkeypatch):
    cpu = torch.device("cpu")
    assert resolve_precision("float32", cpu) == torch.float32
    assert resolve_precision("bfloat16", cpu) == torch.bfloat16
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True)
    assert resolve_precision("auto", cpu) == torch.bfloat16
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    assert resolve_precision("auto", cpu) == torch.float32  # emulated bfloat16 is slower
    with pytest.raises(ValueError, match="precision must be one of auto, float32, bfloat16"):
        resolve_precision("half", cpu)


def test_inference_context_is_inference_mode_with_autocast_only_for_bfloat16():
    cpu = torch.device("cpu")
    with inference_context(cpu, torch.float32):
        assert torch.is_inference_mode_enabled() and not torch.is_autocast_enabled("cpu")
    with inference_context(cpu, torch.bfloat16):
        assert torch.is_inference_mode_enabled() and torch.is_autocast_enabled("cpu")
    assert not torch.is_inference_mode_enabled()


def test_available_memory_is_a_positive_byte_count():
    # Only its type and sign: the figure itself depends on the machine's load, which no test
    # may assert on (the tile choice takes it injected: tests/test_tiling.py).
    assert available_memory("cpu") > 0 and available_memory(torch.device("cpu")) > 0

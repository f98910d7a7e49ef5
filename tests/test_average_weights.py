"""``scripts/average_weights.py``: the element-wise mean of weight files of one architecture,
written as a weight file that loads strictly; files of another architecture are refused."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from napari_cisr.model.cisr import build_model
from napari_cisr.model.config import variant_config
from napari_cisr.weights import read_weights, save_weights
from repo_scripts import load_script


def _weights(path: Path, seed: int, **overrides) -> Path:
    torch.manual_seed(seed)
    config = variant_config("lite", 2, features=8, blocks=1, iterations=1, **overrides)
    save_weights(build_model(config), path)
    return path


def test_the_average_is_the_mean_of_every_tensor(tmp_path):
    first, second = _weights(tmp_path / "a.safetensors", 0), _weights(tmp_path / "b.safetensors", 1)
    out = tmp_path / "mean.safetensors"
    assert load_script("average_weights").main([str(first), str(second), "--out", str(out)]) == 0
    config, mean = read_weights(out)
    (config_a, a), (_, b) = read_weights(first), read_weights(second)
    assert config == config_a and mean.keys() == a.keys()
    for key in a:
        torch.testing.assert_close(mean[key], (a[key] + b[key]) / 2)
    assert any(not torch.equal(a[key], b[key]) for key in a)  # the two files differ


def test_files_of_another_architecture_are_refused(tmp_path):
    first = _weights(tmp_path / "a.safetensors", 0)
    other = _weights(tmp_path / "b.safetensors", 1, search_radius=2)
    args = [str(first), str(other), "--out", str(tmp_path / "mean.safetensors")]
    with pytest.raises(SystemExit, match="another architecture"):
        load_script("average_weights").main(args)

"""Weight files: safe loading, strict keys, hashes, the registry."""

from __future__ import annotations

import pickle

import pytest
import torch

from napari_cisr.model import build_model, variant_config
from napari_cisr.weights import (
    PRETRAINED,
    WeightsError,
    load_model,
    packaged_weights_path,
    read_weights,
    save_weights,
    sha256_of,
)


def test_safetensors_round_trip_keeps_weights_and_config(tmp_path):
    torch.manual_seed(3)
    model = build_model(variant_config("lite", 3))
    digest = save_weights(model, tmp_path / "m.safetensors")
    assert digest == sha256_of(tmp_path / "m.safetensors")
    loaded = load_model(tmp_path / "m.safetensors", scale=3)
    assert loaded.config == model.config
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value)
    assert not loaded.training


def test_scale_mismatch_is_refused(fresh_weights):
    with pytest.raises(WeightsError, match="x2, not x3"):
        load_model(fresh_weights, scale=3)


def test_plain_state_dict_pt_file_loads(tmp_path):
    model = build_model(variant_config("lite", 2))
    torch.save(model.state_dict(), tmp_path / "plain.pt")
    loaded = load_model(tmp_path / "plain.pt", scale=2)
    assert torch.equal(loaded.arm.tail.weight, model.arm.tail.weight)


def test_keys_are_matched_strictly(tmp_path):
    state = build_model(variant_config("lite", 2)).state_dict()
    state.pop("rem.tail.bias")
    torch.save(state, tmp_path / "missing.pt")
    with pytest.raises(WeightsError, match="do not fit the model"):
        load_model(tmp_path / "missing.pt", scale=2)


class _Payload:
    """Pickles to a call that would create a marker file if it ever ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_pickle_payload_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    with open(path, "wb") as handle:
        pickle.dump({"rem.tail.bias": _Payload(marker)}, handle)
    with pytest.raises(WeightsError, match="refusing to load"):
        load_model(path, scale=2)
    assert not marker.exists()


def test_garbage_safetensors_gives_one_line_error(tmp_path):
    path = tmp_path / "broken.safetensors"
    path.write_bytes(b"\x00\x01not really")
    with pytest.raises(WeightsError) as info:
        read_weights(path)
    assert "\n" not in str(info.value) and "broken.safetensors" in str(info.value)


def test_unknown_model_name_is_a_clear_error():
    with pytest.raises(WeightsError, match="unknown model 'huge'"):
        load_model("huge")


def test_fresh_weights_need_no_file():
    model = load_model("tiny", scale=4, pretrained=False)
    assert model.config.groups == 2 and model.config.scale == 4


@pytest.mark.parametrize("key", list(PRETRAINED))
def test_the_shipped_weights_have_a_valid_hash_and_load_by_name(key):
    spec = PRETRAINED[key]
    path = packaged_weights_path(spec)
    assert sha256_of(path) == spec.sha256
    model = load_model(f"{spec.variant}.{spec.compression}", scale=spec.scale)
    assert model.config == variant_config(spec.variant, spec.scale)
    assert {f"lite-x{s}" for s in (2, 3, 4)} <= set(PRETRAINED)  # general weights at every scale


def test_model_config_reads_a_file_s_config_without_its_tensors(tmp_path):
    from napari_cisr.weights import model_config

    config = variant_config("lite", 3, features=8, blocks=1, iterations=2, search_radius=1)
    path = tmp_path / "small.safetensors"
    save_weights(build_model(config), path)
    assert model_config(path, scale=3) == config
    assert model_config("lite", scale=2) == variant_config("lite", 2)
    with pytest.raises(WeightsError, match="are for x3, not x2"):
        model_config(path, scale=2)
    other = build_model(config)
    other.config = variant_config("lite", 3, features=16, blocks=1, iterations=2, search_radius=1)
    save_weights(other, tmp_path / "mislabelled.safetensors")  # tensors of one, config of another
    with pytest.raises(WeightsError, match="do not fit the model"):
        model_config(tmp_path / "mislabelled.safetensors", scale=3)
    with pytest.raises(WeightsError, match="no shipped weights"):
        model_config("tiny", scale=2)

"""The model registry: timm-style names (``lite.x2``), ``list_models``, and every place a
model name is accepted (``load_model``, ``model_config``, ``InferenceOptions``)."""

from __future__ import annotations

import pytest

import napari_cisr
from napari_cisr.options import InferenceOptions
from napari_cisr.registry import (
    DEFAULT_COMPRESSION,
    MODEL_NAMES,
    PRETRAINED,
    SCALES,
    check_model,
    list_models,
    parse_model_name,
)


def test_list_models_names_every_variant_at_every_scale():
    names = list_models()
    assert names[:3] == ["lite.x2", "lite.x3", "lite.x4"]
    assert len(names) == len(MODEL_NAMES) * len(SCALES) == len(set(names))
    assert napari_cisr.list_models is list_models  # the package's public name


def test_list_models_pretrained_lists_the_shipped_weights_only():
    shipped = list_models(pretrained=True)
    general = [s for s in PRETRAINED.values() if s.compression == DEFAULT_COMPRESSION]
    assert shipped == [f"{s.variant}.x{s.scale}" for s in general]
    assert set(shipped) <= set(list_models()) and "tiny.x2" not in shipped


@pytest.mark.parametrize(
    ("name", "scale", "meaning"),
    [
        ("lite", None, ("lite", 2)),
        ("lite", 3, ("lite", 3)),
        ("lite.x3", None, ("lite", 3)),
        ("lite.x3", 3, ("lite", 3)),
        ("full.x4", None, ("full", 4)),
        ("huge.x2", None, None),  # not a variant: a path
        ("lite.x2.safetensors", None, None),
        ("runs/lite.x2", None, None),
    ],
)
def test_a_model_name_means_a_variant_and_a_scale(name, scale, meaning):
    assert parse_model_name(name, scale) == meaning


def test_a_name_s_scale_and_a_different_scale_are_refused():
    with pytest.raises(ValueError, match=r"model 'lite.x3' is for x3, not x2"):
        parse_model_name("lite.x3", 2)
    with pytest.raises(ValueError, match="no shipped weights at x2"):
        check_model("tiny.x2", 2)
    check_model("lite.x4", 4)


def test_options_accept_a_timm_style_name():
    assert InferenceOptions(scale=3, model="lite.x3").validate().model == "lite.x3"
    with pytest.raises(ValueError, match="is for x3, not x2"):
        InferenceOptions(scale=2, model="lite.x3").validate()
    with pytest.raises(ValueError, match="no shipped weights"):
        InferenceOptions(scale=2, model="tiny.x2").validate()


def test_load_model_and_model_config_accept_a_timm_style_name():
    from napari_cisr.model import variant_config
    from napari_cisr.weights import WeightsError, load_model, model_config

    assert model_config("lite.x3") == variant_config("lite", 3)
    assert model_config("lite.x3", scale=3) == variant_config("lite", 3)
    model = load_model("lite.x4")
    assert model.config == load_model("lite", scale=4).config == variant_config("lite", 4)
    assert load_model("tiny.x3", pretrained=False).config.scale == 3
    with pytest.raises(WeightsError, match="is for x3, not x2"):
        load_model("lite.x3", scale=2)
    with pytest.raises(WeightsError, match=r"available: lite\.x2, lite\.x3, lite\.x4"):
        model_config("tiny.x2")

"""``options.py``: the one options object of every inference entry point, checked without
torch. (The CLI refusing the same settings before torch is imported is tests/test_faults.py;
model names through the options, tests/test_registry.py.)"""

from __future__ import annotations

import argparse
from types import SimpleNamespace

import pytest

from napari_cisr.options import PRESET_HELP, PRESETS, InferenceOptions, preset_iterations


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"scale": 5}, "scale must be one of 2, 3, 4, not 5"),
        ({"iterations": 0}, "iterations must be at least 1, not 0 (leave it out for"),
        ({"tile": -1}, "tile must be 0 (whole image) or a positive size, not -1"),
        ({"device": "tpu"}, "unknown device 'tpu'; use auto, cpu, cuda, cuda:N or mps"),
        ({"device": "cuda:x"}, "unknown device 'cuda:x'"),
        ({"precision": "fp8"}, "precision must be one of auto, float32, bfloat16, not 'fp8'"),
        ({"model": "nowhere.safetensors"}, "weight file 'nowhere.safetensors' does not exist"),
        (
            {"model": "nowhere"},
            "model 'nowhere' does not exist; use lite (lite.mild, lite.strong, lite.heavy) or",
        ),
    ],
    ids=["scale", "iterations", "tile", "device", "device index", "precision", "file", "model"],
)
def test_validate_refuses_a_bad_setting_in_one_line_naming_it(settings, message):
    options = InferenceOptions(**settings)
    with pytest.raises(ValueError) as refused:
        options.validate()
    assert message in str(refused.value)
    assert "\n" not in str(refused.value)


def test_validate_returns_the_options_it_accepts(tmp_path):
    weights = tmp_path / "mine.safetensors"
    weights.write_bytes(b"not read here")  # its contents are checked when it is loaded
    for options in (
        InferenceOptions(),
        InferenceOptions(scale=4, iterations=1, device="cuda:1", precision="bfloat16"),
        InferenceOptions(model=weights),
        InferenceOptions(model=str(weights), device="mps"),
        InferenceOptions(model=object()),  # a loaded network: checked when it runs
    ):
        assert options.validate() is options


def test_tile_none_is_automatic_0_the_whole_image_and_both_are_valid():
    assert InferenceOptions().tile is None  # the default: the automatic choice
    for tile in (None, 0, 1, 256):
        assert InferenceOptions(tile=tile).validate().tile == tile
    with pytest.raises(ValueError, match=r"0 \(whole image\).*\(leave it out for automatic\)"):
        InferenceOptions(tile=-256).validate()


def test_presets_name_their_iterations_and_each_is_explained():
    assert [preset_iterations(name) for name in ("best", "balanced", "fast")] == [None, 2, 1]
    assert list(PRESET_HELP) == list(PRESETS)
    with pytest.raises(ValueError, match="preset must be one of best, balanced, fast, not 'x'"):
        preset_iterations("x")


def test_from_settings_takes_the_fields_by_name_and_the_overrides_win():
    settings = SimpleNamespace(scale=3, tile=0, device="cpu", preset="fast", verbose=True)
    options = InferenceOptions.from_settings(settings)
    assert options == InferenceOptions(scale=3, tile=0, device="cpu")  # the rest: defaults
    overridden = InferenceOptions.from_settings(settings, tile=128, iterations=1)
    assert (overridden.scale, overridden.tile, overridden.iterations) == (3, 128, 1)
    parsed = argparse.Namespace(scale=4, self_ensemble=True, intermediates=False, model="lite")
    assert InferenceOptions.from_settings(parsed) == InferenceOptions(
        scale=4, self_ensemble=True, model="lite"
    )


def test_run_compile_reaches_the_options_and_other_commands_leave_it_off():
    """``napari-cisr run --compile`` sets the field by its name (``from_settings``); batch has
    no such flag, so its options keep the default."""
    from napari_cisr._cli.common import inference_options
    from napari_cisr.cli import build_parser

    parser = build_parser()
    assert inference_options(parser.parse_args(["run", "a.jpg", "b.png", "--compile"])).compile
    assert not inference_options(parser.parse_args(["run", "a.jpg", "b.png"])).compile
    assert not inference_options(parser.parse_args(["batch", "in", "out.zarr"])).compile

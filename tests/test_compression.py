"""Routing a model name to the weights trained for each input's compression: what a file says
(JPEG and WebP quality), else what its pixels show (a JPEG blocking grid and the quality its
quantisation shows), in the library, the
photo jobs and the evaluation; a tag or a weight file is never re-routed."""

from __future__ import annotations

from dataclasses import replace
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from napari_cisr import registry
from napari_cisr.compression import (
    HEAVY_QUALITY,
    MILD_QUALITY,
    compression_from_info,
    compression_from_pixels,
    input_compression,
    is_routed,
    route_model,
)
from napari_cisr.io import read_image

DATA = Path(str(resources.files("napari_cisr") / "data"))


@pytest.mark.parametrize(
    ("info", "compression"),
    [
        ({"codec": "jpeg", "quality": MILD_QUALITY["jpeg"]}, "mild"),
        ({"codec": "jpeg", "quality": MILD_QUALITY["jpeg"] - 1}, "strong"),
        ({"codec": "jpeg", "quality": HEAVY_QUALITY["jpeg"]}, "strong"),
        ({"codec": "jpeg", "quality": HEAVY_QUALITY["jpeg"] - 1}, "heavy"),
        ({"codec": "jpeg", "quality": None}, None),  # no quantisation table read
        ({"codec": "webp", "lossless": False, "quality": MILD_QUALITY["webp"]}, "mild"),
        ({"codec": "webp", "lossless": False, "quality": MILD_QUALITY["webp"] - 1}, "strong"),
        ({"codec": "webp", "lossless": False, "quality": HEAVY_QUALITY["webp"]}, "strong"),
        ({"codec": "webp", "lossless": False, "quality": HEAVY_QUALITY["webp"] - 1}, "heavy"),
        ({"codec": "webp", "lossless": True}, "mild"),
        ({"codec": "webp", "lossless": False}, None),  # header not read: the pixels decide
        ({"codec": "png"}, None),
        ({"codec": "tiff"}, None),
        ({}, None),
        (None, None),
    ],
)
def test_what_a_file_says_decides_where_it_says_it(info, compression):
    assert compression_from_info(info) == compression


def test_the_pixels_decide_by_the_blocking_grid_and_its_quality():
    jpeg = read_image(DATA / "sample_x2_q15.jpg")  # JPEG quality 15: a clear 8×8 grid
    clean = read_image(DATA / "sample_hr.png")
    assert compression_from_pixels(jpeg) == "heavy"  # the pixels show quality 15
    assert compression_from_pixels(clean) == "mild"
    import dask.array as da

    assert compression_from_pixels(da.from_array(clean, chunks=(40, 50, 3))) == "mild"
    # what a file says wins over the pixels; with neither, the general weights
    assert input_compression(clean, {"codec": "jpeg", "quality": 20}) == "heavy"
    assert input_compression(jpeg, {"codec": "png"}) == "heavy"  # the file says nothing
    assert input_compression() == registry.DEFAULT_COMPRESSION


def test_names_without_a_tag_are_routed_and_nothing_else_is(tmp_path):
    assert is_routed("lite") and is_routed("lite.x3") and is_routed(Path("lite"))
    assert route_model("lite", 2, "mild") == "lite.mild"
    assert route_model("lite.x3", 3, "strong") == "lite.x3.strong"
    for fixed in ("lite.mild", "lite.x4.strong", tmp_path / "w.safetensors", "runs/lite"):
        assert not is_routed(fixed)
        assert route_model(fixed, 2, "mild") == fixed


@pytest.mark.parametrize("compression", ["mild", "heavy"])
def test_a_scale_without_its_weights_runs_the_general_ones(monkeypatch, compression):
    without = {k: v for k, v in registry.PRETRAINED.items() if v.compression != compression}
    monkeypatch.setattr(registry, "PRETRAINED", without)
    monkeypatch.setattr("napari_cisr.compression.PRETRAINED", without)
    assert route_model("lite", 2, compression) == "lite.strong"


def test_model_names_carry_an_optional_compression_tag():
    assert registry.parse_model_name("lite.x2.mild") == ("lite", 2)
    assert registry.parse_model_name("lite.strong", 3) == ("lite", 3)
    assert registry.parse_model_name("lite.x2.safetensors") is None  # a file, not a tag
    assert registry.model_compression("lite.x3.mild") == "mild"
    assert registry.model_compression("lite.x3") is None
    assert registry.with_compression("lite.x3.mild", "strong") == "lite.x3.strong"
    with pytest.raises(ValueError, match="compression must be one of strong, mild, heavy"):
        registry.with_compression("lite", "extreme")
    with pytest.raises(ValueError, match="no shipped weights for mild compression at x2"):
        registry.check_model("tiny.mild", 2)


@pytest.mark.parametrize("scale", registry.SCALES)
def test_mild_weights_ship_at_every_scale_with_the_general_architecture(scale):
    from napari_cisr.weights import model_config

    registry.check_model("lite.mild", scale)
    spec = registry.PRETRAINED[registry.pretrained_key("lite", scale, "mild")]
    assert spec.compression == "mild" and spec.filename == f"lite-x{scale}-mild.safetensors"
    assert model_config("lite.mild", scale) == model_config("lite", scale)


def _run(image, model):
    from napari_cisr import super_resolve

    return super_resolve(image, 2, model=model, device="cpu", precision="float32")


def test_a_name_runs_the_weights_for_the_image_s_compression():
    jpeg = read_image(DATA / "sample_x2_q15.jpg")
    clean = read_image(DATA / "sample_hr.png")[:64, :80]
    mild, strong = _run(clean, "lite.mild"), _run(clean, "lite.strong")
    assert not np.array_equal(mild, strong)  # two sets of weights
    np.testing.assert_array_equal(_run(clean, "lite"), mild)
    heavy = route_model("lite", 2, "heavy")  # the pixels show JPEG quality 15
    np.testing.assert_array_equal(_run(jpeg, "lite"), _run(jpeg, heavy))


def test_a_photo_file_is_routed_by_its_own_quality(tmp_path):
    from napari_cisr.options import InferenceOptions
    from napari_cisr.photo_jobs import PhotoJob, process_photo

    clean = read_image(DATA / "sample_hr.png")[:64, :80]
    options = InferenceOptions(scale=2, device="cpu", precision="float32")
    heavy = route_model("lite", 2, "heavy")  # lite.heavy where it ships at x2
    for name, quality, expected in (("light.jpg", 90, "lite.mild"), ("heavy.webp", 20, heavy)):
        Image.fromarray(clean).save(tmp_path / name, quality=quality)
        job = PhotoJob(tmp_path / name, tmp_path / f"{name}.png", name)
        process_photo(job, options)
        decoded = read_image(tmp_path / name)  # WebP q20 shows no 8×8 grid: its header says
        np.testing.assert_array_equal(read_image(job.output), _run(decoded, expected))


def test_a_path_given_to_super_resolve_is_routed_by_its_file(tmp_path):
    from napari_cisr import super_resolve

    clean = read_image(DATA / "sample_hr.png")[:64, :80]
    Image.fromarray(clean).save(tmp_path / "light.jpg", quality=90)
    decoded = read_image(tmp_path / "light.jpg")
    settings = {"device": "cpu", "precision": "float32"}
    from_path = super_resolve(tmp_path / "light.jpg", 2, **settings)
    # a JPEG q90 says mild whatever its pixels show, as `napari-cisr run` routes it
    np.testing.assert_array_equal(from_path, _run(decoded, "lite.mild"))
    # a tag or a weight file is not re-routed by the file
    tagged = super_resolve(str(tmp_path / "light.jpg"), 2, model="lite.strong", **settings)
    np.testing.assert_array_equal(tagged, _run(decoded, "lite.strong"))
    from napari_cisr.io import ImageReadError

    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(ImageReadError, match=r"broken\.jpg"):
        super_resolve(tmp_path / "broken.jpg", 2, **settings)


@pytest.mark.parametrize("lazy", [False, True])
def test_routing_detects_the_grid_once_and_the_tiles_reuse_it(monkeypatch, lazy):
    import napari_cisr.engine.grid as grid_module
    import napari_cisr.engine.local
    import napari_cisr.inference
    from napari_cisr.inference import run_to_completion, steps_for
    from napari_cisr.options import InferenceOptions

    calls = []
    detect = grid_module.estimate_grid

    def counted(image):
        calls.append(image.shape)
        return detect(image)

    monkeypatch.setattr(napari_cisr.inference, "estimate_grid", counted)
    monkeypatch.setattr(napari_cisr.engine.local, "estimate_grid", counted)
    jpeg = read_image(DATA / "sample_x2_q15.jpg")
    if lazy:
        import dask.array as da

        jpeg = da.from_array(jpeg, chunks=(45, 50, 3))
    options = InferenceOptions(scale=2, tile=32, device="cpu", precision="float32")
    result = run_to_completion(steps_for(jpeg, options.validate()))
    # the q15 grid and the quality its pixels show routed it to the heavy weights
    assert result.model == route_model("lite", 2, "heavy")
    np.asarray(result.image)  # a lazy result computes its tiles here
    assert calls == [jpeg.shape]
    tagged = run_to_completion(steps_for(jpeg, replace(options, model="lite.mild")))
    np.asarray(tagged.image)
    assert tagged.model == "lite.mild"
    assert len(calls) == 1 + (not lazy)  # a tagged run detects it in the tiled driver


def test_the_evaluation_routes_each_configuration_as_its_file_would(tmp_path):
    from napari_cisr.train.evaluate import evaluate, format_table

    Image.open(DATA / "sample_hr.png").save(tmp_path / "photo.png")
    configs = [("jpeg", 30), ("jpeg", 70), ("webp", 30), ("webp", 90), ("none", 100)]
    report = evaluate([tmp_path], 2, "lite", configs, downscale=1, device="cpu")
    assert report["models_run"] == {
        "jpeg-q30": route_model("lite", 2, "heavy"),
        "jpeg-q70": "lite.strong",  # between the heavy and the mild bands
        "webp-q30": "lite.strong",
        "webp-q90": "lite.mild",
        "none": "lite.mild",
    }
    table = format_table(report)
    assert "lite.strong on jpeg-q70, webp-q30" in table
    assert "lite.mild on webp-q90, none" in table
    fixed = evaluate([tmp_path], 2, "lite.strong", configs[:1], downscale=1, device="cpu")
    assert "models_run" not in fixed


def test_the_evaluation_can_route_by_the_pixels_alone_as_an_array_is(tmp_path):
    from napari_cisr.train.evaluate import evaluate, evaluation_pairs, format_table, model_for

    Image.open(DATA / "sample_hr.png").save(tmp_path / "photo.png")
    configs = [("jpeg", 30), ("webp", 90)]
    report = evaluate([tmp_path], 2, "lite", configs, downscale=1, device="cpu", routing="pixels")
    assert report["routing"] == "pixels"
    assert "routed by the pixels alone" in format_table(report)
    pairs = {
        label: z for _, label, _, z in evaluation_pairs([tmp_path / "photo.png"], 2, configs, 1)
    }
    for label, z in pairs.items():  # each pair ran what its pixels alone route it to
        expected = route_model("lite", 2, compression_from_pixels(z))
        assert report["models_run"][label] == expected
        assert report["per_photo"]["photo.png"][label]["model"] == expected
    # a JPEG q30 array shows its quality in its pixels: heavy, as its file would be
    assert report["models_run"]["jpeg-q30"] == route_model("lite", 2, "heavy")
    assert model_for("lite", 2, "jpeg-q30", pairs["jpeg-q30"], "file") == route_model(
        "lite", 2, "heavy"
    )
    with pytest.raises(ValueError, match="routing must be one of file, pixels"):
        evaluate([tmp_path], 2, "lite", configs, downscale=1, routing="exif")

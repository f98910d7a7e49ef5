"""Degradations users have (paper §4.4): kernels, chroma subsampling, double compression, and
their use by the evaluation and the training sampler."""

from __future__ import annotations

import io
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from napari_cisr.degrade import (
    DEGRADATIONS,
    TRAIN_CONFIGS,
    Degradation,
    bicubic_downscale,
    compress,
    config_name,
    mixture,
)
from napari_cisr.train.data import PatchSampler
from napari_cisr.train.evaluate import degradation_for, degradation_means, evaluation_pairs
from napari_cisr.train.loop import TrainConfig


@pytest.fixture(scope="module")
def photo():
    from skimage import data

    return data.astronaut()  # uint8 512×512×3


def _chroma_error(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of the Cb/Cr planes."""
    cb_cr = lambda x: np.asarray(Image.fromarray(x).convert("YCbCr"), dtype=float)[..., 1:]  # noqa: E731
    return float(np.abs(cb_cr(a) - cb_cr(b)).mean())


def test_default_chroma_is_pillows_own_jpeg(photo):
    # The paper's protocol must not move: an explicit 4:2:0 is what Pillow wrote before.
    buffer = io.BytesIO()
    Image.fromarray(photo).save(buffer, format="JPEG", quality=30)
    assert np.array_equal(compress(photo, "jpeg", 30), np.asarray(Image.open(buffer)))


def test_full_chroma_keeps_colour_detail_that_4_2_0_halves(photo):
    subsampled = compress(photo, "jpeg", 50)
    full = compress(photo, "jpeg", 50, chroma="4:4:4")
    assert _chroma_error(full, photo) < 0.8 * _chroma_error(subsampled, photo)
    # WebP has no chroma choice: lossy WebP is always 4:2:0.
    assert np.array_equal(compress(photo, "webp", 30, chroma="4:4:4"), compress(photo, "webp", 30))


def test_the_default_degradation_is_the_papers(photo):
    paper = Degradation()
    assert np.array_equal(paper.downscale(photo, 3), bicubic_downscale(photo, 3))
    lr = bicubic_downscale(photo, 3)
    assert np.array_equal(paper.compress(lr, "webp", 10), compress(lr, "webp", 10))
    assert DEGRADATIONS["paper"] == (paper,)


def test_area_kernel_averages_each_block():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (31, 45, 3), dtype=np.uint8)  # odd sizes: cropped to ×3
    out = Degradation("area").downscale(image, 3)
    means = image[:30, :45].reshape(10, 3, 15, 3, 3).astype(float).mean(axis=(1, 3))
    assert out.shape == (10, 15, 3) and np.abs(out - means).max() <= 1


def test_aliased_kernel_keeps_what_antialiasing_removes():
    # Stripes one pixel wide: far above the LR Nyquist frequency. An antialiased ÷3 blurs them
    # towards grey; sampling without the low-pass folds them into full-contrast stripes.
    stripes = np.zeros((63, 63), dtype=np.uint8)
    stripes[:, ::2] = 255
    smooth = Degradation().downscale(stripes, 3).astype(float)
    aliased = Degradation(antialias=False).downscale(stripes, 3).astype(float)
    assert aliased.shape == smooth.shape == (21, 21)
    assert aliased[2:-2, 2:-2].std() > 4 * smooth[2:-2, 2:-2].std()


def test_aliased_sampling_is_centred_on_each_block():
    ramp = np.tile(np.arange(0, 240, 4, dtype=np.uint8), (12, 1))  # 12×60, linear in x
    out = Degradation("bilinear", antialias=False).downscale(ramp, 3)
    centres = ramp[0, 1::3]  # the middle pixel of each 3-pixel block
    assert np.abs(out[2, 1:-1].astype(int) - centres[1:-1]).max() <= 1


def test_double_compression_is_a_jpeg_first(photo):
    lr = bicubic_downscale(photo, 2)
    twice = Degradation(first_quality=90).compress(lr, "webp", 20)
    assert np.array_equal(twice, compress(compress(lr, "jpeg", 90), "webp", 20))
    assert not np.array_equal(twice, compress(lr, "webp", 20))


def test_bad_degradations_are_refused_by_name():
    with pytest.raises(ValueError, match="realistic"):
        mixture("instagram")
    with pytest.raises(ValueError, match="lanczos"):
        Degradation("gaussian")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="4:4:4"):
        Degradation(chroma="4:2:2")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="area"):
        Degradation("area", antialias=False)
    with pytest.raises(ValueError, match="instagram"):
        TrainConfig(degradations=["paper", "instagram"])


def test_realistic_is_every_variant_but_the_papers():
    realistic = set(mixture("realistic"))
    assert Degradation() not in realistic
    singles = {name: members for name, members in DEGRADATIONS.items() if len(members) == 1}
    others = {d for name, (d,) in singles.items() if name != "paper"}
    assert realistic == others and len(realistic) == 6


def test_evaluation_pairs_follow_the_named_degradation(tmp_path, photo):
    path = tmp_path / "astronaut.png"
    Image.fromarray(photo).save(path)
    configs = list(TRAIN_CONFIGS)
    paper = list(evaluation_pairs([path], 2, configs, downscale=2))
    realistic = list(evaluation_pairs([path], 2, configs, downscale=2, degradation="realistic"))
    again = list(evaluation_pairs([path], 2, configs, downscale=2, degradation="realistic"))
    truth = paper[0][2]
    for (_, _, _, z), (codec, quality) in zip(paper, configs, strict=True):
        assert np.array_equal(z, compress(bicubic_downscale(truth, 2), codec, quality))
    chosen = [degradation_for(mixture("realistic"), path.name, label) for _, label, _, _ in paper]
    assert len(set(chosen)) >= 3  # a mixture across the ten configurations, not one variant
    for (_, label, t, z), (_, _, _, z_again), choice, (codec, quality) in zip(
        realistic, again, chosen, configs, strict=True
    ):
        assert label == config_name(codec, quality) and np.array_equal(t, truth)
        assert np.array_equal(z, z_again)  # the same on every run
        assert np.array_equal(z, choice.compress(choice.downscale(truth, 2), codec, quality))


def test_sampler_draws_patches_through_the_chosen_degradation(photo):
    sampler = PatchSampler([photo], scale=3, patch=16, seed=3, degradations=["area"])
    for _ in range(4):
        z, y, x = sampler.sample()
        # Box averaging is local, so the LR window is exactly the HR window's area ÷3.
        assert np.array_equal(y, Degradation("area").downscale(x, 3))
        assert z.shape == y.shape == (16, 16, 3)


def test_a_mixture_draws_every_name_and_the_papers_stream_is_unchanged(photo):
    default = PatchSampler([photo], scale=2, patch=16, seed=5).batch(3)
    paper = PatchSampler([photo], scale=2, patch=16, seed=5, degradations=["paper"]).batch(3)
    assert all(np.array_equal(a, b) for a, b in zip(default, paper, strict=True))
    mixed = PatchSampler([photo], scale=2, patch=16, seed=5, degradations=["paper", "realistic"])
    drawn = {mixed._draw_degradation() for _ in range(200)}
    assert Degradation() in drawn and len(drawn) == 7


def test_eval_refuses_an_unknown_degradation_in_one_line(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "napari_cisr.cli", "eval", str(tmp_path), "--scale", "2",
         "--degradation", "instagram"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 2
    assert "invalid choice: 'instagram'" in result.stderr and "Traceback" not in result.stderr


def test_a_mixtures_report_is_broken_down_by_member():
    labels = [config_name(c, q) for c, q in TRAIN_CONFIGS]
    per_photo = {
        f"folder/photo{i}.png": {label: {"gain": float(i - j)} for j, label in enumerate(labels)}
        for i in range(6)
    }
    report = {"degradation": "realistic", "per_photo": per_photo}
    members = degradation_means(report)
    assert sum(row["pairs"] for row in members.values()) == 60
    names = {d: name for name, (d, *more) in DEGRADATIONS.items() if not more}
    for name, row in members.items():
        gains = [
            scores["gain"]
            for photo, rows in per_photo.items()
            for label, scores in rows.items()
            if names[degradation_for(mixture("realistic"), photo.split("/")[-1], label)] == name
        ]
        assert row["gain"] == pytest.approx(np.mean(gains))
        assert row["below_bicubic"] == sum(g < 0 for g in gains)
    assert degradation_means({"degradation": "paper", "per_photo": per_photo}) == {}

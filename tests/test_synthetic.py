"""Synthetic dead-leaves training images and their share of the training patches."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from napari_cisr.train.data import PatchSampler
from napari_cisr.train.loop import TrainConfig, train
from napari_cisr.train.synthetic import (
    dead_leaves,
    dead_leaves_set,
    photo_palette,
    power_law_noise,
)


def _palette(seed=0, size=64):
    return np.random.default_rng(seed).integers(0, 256, (size, 3), dtype=np.uint8)


def test_dead_leaves_are_reproducible_from_the_generator():
    first = dead_leaves(96, _palette(), np.random.default_rng(1))
    assert first.shape == (96, 96, 3) and first.dtype == np.uint8
    assert np.array_equal(first, dead_leaves(96, _palette(), np.random.default_rng(1)))
    assert not np.array_equal(first, dead_leaves(96, _palette(), np.random.default_rng(2)))


def test_flat_leaves_of_one_colour_cover_the_whole_image_with_it():
    colour = np.array([[200, 30, 90]], np.uint8)
    image = dead_leaves(64, colour, np.random.default_rng(0), textured=0.0)
    assert (image == colour[0]).all()  # no hole left uncovered (black) anywhere


def test_leaves_take_their_colours_from_the_palette():
    black_white = np.array([[0, 0, 0], [255, 255, 255]], np.uint8)
    image = dead_leaves(128, black_white, np.random.default_rng(3), textured=0.0)
    assert (image[..., 0] == image[..., 1]).all() and (image[..., 1] == image[..., 2]).all()
    # Mostly the palette's two colours; grey only on the antialiased edges.
    assert np.isin(image[..., 0], (0, 255)).mean() > 0.5
    assert {0, 255} <= set(np.unique(image))


def test_leaves_come_in_many_sizes():
    """The power law of radii: one image holds large flat areas and fine detail."""
    palette = _palette(size=256)
    image = dead_leaves(256, palette, np.random.default_rng(4), textured=0.0).astype(int)
    # Big leaves leave long runs of one colour along a row; small ones short runs.
    row = image[128, :, 0]
    changes = np.flatnonzero(np.diff(row) != 0)
    runs = np.diff(np.concatenate([[-1], changes, [len(row) - 1]]))
    assert runs.max() >= 16 and np.median(runs) <= 4


def test_a_steeper_spectrum_gives_a_smoother_noise_field():
    rng = np.random.default_rng(0)
    fine, smooth = power_law_noise(128, 1.0, rng), power_law_noise(128, 3.0, rng)
    for field in (fine, smooth):
        assert field.dtype == np.float32 and field.min() >= 0 and field.max() <= 1
    roughness = [np.abs(np.diff(f, axis=1)).mean() for f in (fine, smooth)]
    assert roughness[1] < roughness[0] / 3


def test_alpha_must_exceed_one():
    with pytest.raises(ValueError, match="alpha must be greater than 1"):
        dead_leaves(32, _palette(), np.random.default_rng(0), alpha=1.0)


def test_the_palette_is_drawn_from_the_photos_pixels():
    red = np.zeros((10, 10, 3), np.uint8)
    red[..., 0] = 255
    blue = np.zeros((30, 10, 3), np.uint8)
    blue[..., 2] = 255
    palette = photo_palette([red, blue], 4000, np.random.default_rng(0))
    assert palette.shape == (4000, 3) and palette.dtype == np.uint8
    is_red = (palette == [255, 0, 0]).all(axis=1)
    assert (is_red | (palette == [0, 0, 255]).all(axis=1)).all()
    assert is_red.mean() == pytest.approx(0.25, abs=0.03)  # by area: 100 of 400 pixels


def test_synthetic_share_of_the_patches_comes_from_the_synthetic_images():
    photos = [np.zeros((200, 200, 3), np.uint8)]
    synthetic = [np.full((150, 150, 3), 255, np.uint8)]
    sampler = PatchSampler(photos, 2, 24, seed=0, synthetic=synthetic, synthetic_share=0.25)
    white = [sampler.sample()[2].mean() > 127 for _ in range(400)]
    assert np.mean(white) == pytest.approx(0.25, abs=0.07)


def test_no_synthetic_images_draw_the_same_patches_as_before():
    photos = [np.random.default_rng(0).integers(0, 256, (160, 200, 3), dtype=np.uint8)]
    plain, with_nothing = (
        PatchSampler(photos, 2, 24, seed=5),
        PatchSampler(photos, 2, 24, seed=5, synthetic=(), synthetic_share=0.0),
    )
    for _ in range(3):
        pairs = zip(plain.sample(), with_nothing.sample(), strict=True)
        assert all(np.array_equal(a, b) for a, b in pairs)


@pytest.mark.parametrize(
    ("share", "images"), [(0.5, 0), (0.0, 1), (1.0, 1)], ids=["no-images", "no-share", "all"]
)
def test_a_share_without_images_or_images_without_a_share_are_refused(share, images):
    photos = [np.zeros((200, 200, 3), np.uint8)]
    synthetic = [np.zeros((150, 150, 3), np.uint8)] * images
    with pytest.raises(ValueError, match="synthetic_share must be in"):
        PatchSampler(photos, 2, 24, synthetic=synthetic, synthetic_share=share)


def test_the_set_is_reproducible_and_coloured_from_the_photos():
    photo = np.zeros((64, 64, 3), np.uint8)
    photo[..., 1] = 180  # one green: every synthetic pixel is it
    images = dead_leaves_set(2, 48, [photo], seed=3)
    assert [image.shape for image in images] == [(48, 48, 3)] * 2
    assert all((image == [0, 180, 0]).all() for image in images)
    again = dead_leaves_set(2, 48, [photo], seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(images, again, strict=True))


def test_training_with_a_synthetic_share(tmp_path):
    from skimage import data

    folder = tmp_path / "photos"
    folder.mkdir()
    Image.fromarray(data.astronaut()).save(folder / "astronaut.png")
    cfg = TrainConfig(
        steps=2, batch=2, patch=24, data=[str(folder)], output=str(tmp_path / "run"),
        validate_every=2, checkpoint_every=2, threads=1, downscale=2, bf16=False,
        compress_size=40, synthetic_share=0.5, synthetic_images=2,
    )  # fmt: skip
    assert train(cfg).exists()
    saved = json.loads((tmp_path / "run" / "train_config.json").read_text())
    assert saved["synthetic_share"] == 0.5 and saved["synthetic_images"] == 2

"""The JPEG quality read from a decoded image's pixels: the quality it was saved at (to within
one: neighbouring IJG tables differ in a few steps), wherever its grid starts and whatever
the dtype, and nothing for WebP, resampled or uncompressed pixels."""

from __future__ import annotations

import io
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from napari_cisr.blocking import detect_blocking
from napari_cisr.compression import HEAVY_QUALITY, MILD_QUALITY, compression_from_grid
from napari_cisr.engine.grid import GridInfo, estimate_grid
from napari_cisr.io import read_image
from napari_cisr.quantisation import jpeg_quality_from_pixels

DATA = Path(str(resources.files("napari_cisr") / "data"))


def _photo() -> np.ndarray:
    """A textured photo large enough for a few hundred 8×8 blocks."""
    hr = Image.fromarray(read_image(DATA / "sample_hr.png"))
    return np.asarray(hr.resize((hr.width * 2, hr.height * 2), Image.Resampling.BICUBIC))


def _saved(image: np.ndarray, codec: str, quality: int) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, codec, quality=quality)
    return np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))


@pytest.mark.parametrize("quality", [15, 30, 54, 55, 70, 90])
def test_a_jpeg_s_quality_is_read_from_its_pixels_wherever_its_grid_starts(quality):
    decoded = _saved(_photo(), "JPEG", quality)
    assert abs(jpeg_quality_from_pixels(decoded) - quality) <= 1
    cropped = decoded[5:, 3:]  # the grid now starts at row 3, column 5
    report = detect_blocking(cropped)
    assert report.grid == (8, 8) and report.offset == (3, 5)
    assert abs(jpeg_quality_from_pixels(cropped, report.offset) - quality) <= 1
    grey = np.asarray(Image.fromarray(decoded).convert("L"))
    assert abs(jpeg_quality_from_pixels(grey) - quality) <= 1


def test_the_dtype_does_not_change_the_reading():
    decoded = _saved(_photo(), "JPEG", 40)
    expected = jpeg_quality_from_pixels(decoded)
    assert jpeg_quality_from_pixels(decoded.astype(np.float32) / 255) == expected
    assert jpeg_quality_from_pixels(decoded.astype(np.uint16) * 257) == expected
    rgba = np.dstack([decoded, np.full(decoded.shape[:2], 255, np.uint8)])
    assert jpeg_quality_from_pixels(rgba) == expected


@pytest.mark.parametrize("quality", [20, 50, 80])
def test_webp_and_resampled_pixels_show_no_jpeg_quality(quality):
    photo = _photo()
    assert jpeg_quality_from_pixels(_saved(photo, "WEBP", quality)) is None
    decoded = Image.fromarray(_saved(photo, "JPEG", quality))
    resampled = decoded.resize((decoded.width * 2 // 3, decoded.height * 2 // 3))
    assert jpeg_quality_from_pixels(np.asarray(resampled)) is None


def test_too_little_texture_tells_nothing():
    flat = np.full((64, 64, 3), 128, np.uint8)
    assert jpeg_quality_from_pixels(flat) is None
    assert jpeg_quality_from_pixels(np.zeros((4, 4), np.uint8)) is None


def test_the_grid_of_a_plane_carries_its_quality_and_routes_by_it():
    photo = _photo()
    heavy, light = _saved(photo, "JPEG", 20), _saved(photo, "JPEG", 80)
    assert abs(estimate_grid(heavy).jpeg_quality - 20) <= 1
    assert compression_from_grid(estimate_grid(heavy)) == "heavy"
    assert compression_from_grid(estimate_grid(light)) == "mild"
    # a grid whose quality is unknown (WebP's macroblocks) runs the general weights
    assert compression_from_grid(GridInfo((16, 16), (0, 0))) == "strong"
    # a quality the pixels show routes as a JPEG file's would: heavy, general, mild
    for quality, compression in [
        (HEAVY_QUALITY["jpeg"] - 1, "heavy"),
        (HEAVY_QUALITY["jpeg"], "strong"),
        (MILD_QUALITY["jpeg"] - 1, "strong"),
        (MILD_QUALITY["jpeg"], "mild"),
    ]:
        assert compression_from_grid(GridInfo((8, 8), (0, 0), quality)) == compression
    assert compression_from_grid(None) == "mild"


def test_a_large_plane_s_quality_is_read_on_the_crop_that_showed_its_grid():
    """Planes above 1024² are analysed through five crops; the quality is read on the best one,
    with the grid offset of that crop, not of the plane."""
    photo = Image.fromarray(_photo())
    large = np.asarray(photo.resize((1300, 1100), Image.Resampling.BICUBIC))
    decoded = _saved(large, "JPEG", 30)[5:, 3:]  # the plane's grid starts at row 3, column 5
    grid = estimate_grid(decoded)
    assert grid.period == (8, 8) and grid.offset == (3, 5)
    assert abs(grid.jpeg_quality - 30) <= 1

"""Tests for napari_cisr.blocking on real codec round trips of scikit-image's photos.

Scores observed with Pillow 13 (libjpeg-turbo, libwebp), JPEG 4:4:4; ``SCORE_THRESHOLD`` 0.15:

==========  ====  ==========  ====  ====  ====  ====  =================================
photo       orig  3× smaller  q10   q30   q50   q90   WebP q5 / q20 / q40 (grid)
==========  ====  ==========  ====  ====  ====  ====  =================================
astronaut   0.00  0.05        3.97  2.91  2.10  0.45  0.31 / 0.32 / 0.31 (16, 16)
coffee      0.00  0.00        4.40  2.17  1.67  0.22  0.28 / 0.21 / 0.17 (16, 16)
chelsea     0.00  0.00        4.67  2.69  1.95  0.40  0.34 (8, 16) / 0.03 / 0.12 (None)
camera      0.00  0.08        4.01  2.37  1.74  0.34  0.50 (16, 16) / 0.26 / 0.23 (8, 16)
==========  ====  ==========  ====  ====  ====  ====  =================================

4:2:0 JPEG scores within 0.1 of 4:4:4 and shows the same 8×8 luma grid.  WebP's in-loop
deblocking filter leaves weak blocking: when a grid is reported it is made of the codec's
16-pixel macroblock and 4-pixel transform edges (periods 4, 8 or 16, offset 0).
"""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

from napari_cisr.blocking import (
    SCORE_THRESHOLD,
    BlockingReport,
    blocking_map,
    detect_blocking,
)

PHOTO_NAMES = ("astronaut", "coffee", "chelsea", "camera")  # camera is grayscale
COLOUR_PHOTO_NAMES = ("astronaut", "coffee", "chelsea")
JPEG_BLOCK = 8


@pytest.fixture(scope="module")
def photos() -> dict[str, np.ndarray]:
    return {name: getattr(data, name)() for name in PHOTO_NAMES}


@pytest.fixture(autouse=True)
def _single_torch_thread():
    """Run torch single-threaded: these tensors are small, and on a loaded machine every
    OpenMP barrier of a multi-threaded op can wait a whole scheduler slice (ms per op)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _codec_round_trip(image: np.ndarray, codec: str, **options) -> np.ndarray:
    """Encode with Pillow and decode again, keeping the number of channels."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, codec, **options)
    buffer.seek(0)
    decoded = Image.open(buffer)
    return np.asarray(decoded.convert("L" if image.ndim == 2 else "RGB"))


def _jpeg(image: np.ndarray, quality: int, subsampling: int = 0) -> np.ndarray:
    return _codec_round_trip(image, "JPEG", quality=quality, subsampling=subsampling)


def _bicubic_downscale(image: np.ndarray, factor: int) -> np.ndarray:
    """Downscaling averages away whatever faint artefacts the stored photo has."""
    pil_image = Image.fromarray(image)
    size = (pil_image.width // factor, pil_image.height // factor)
    return np.asarray(pil_image.resize(size, Image.BICUBIC))


def _flanking_mask(length: int, period: int, offset: int) -> np.ndarray:
    """Indices on either side of the grid lines (between offset - 1 and offset, mod period)."""
    index = np.arange(length)
    return (index % period == offset % period) | (index % period == (offset - 1) % period)


def _grid_pixels(shape: tuple[int, int], grid: tuple[int, int], offset: tuple[int, int]):
    rows = _flanking_mask(shape[0], grid[0], offset[0])
    cols = _flanking_mask(shape[1], grid[1], offset[1])
    return rows[:, None] | cols[None, :]


def _luminance_255(image: np.ndarray) -> np.ndarray:
    image = image.astype(np.float64)
    return image @ np.array([0.299, 0.587, 0.114]) if image.ndim == 3 else image


# --- grid detection on real codec output -----------------------------------------------------


@pytest.mark.parametrize("quality", [10, 30, 50])
@pytest.mark.parametrize("name", PHOTO_NAMES)
def test_jpeg_grid_is_8x8_at_offset_0(photos, name, quality):
    report = detect_blocking(_jpeg(photos[name], quality))

    assert isinstance(report, BlockingReport)
    assert report.grid == (JPEG_BLOCK, JPEG_BLOCK)
    assert report.offset == (0, 0)
    assert report.score >= SCORE_THRESHOLD


@pytest.mark.parametrize("quality", [10, 50])
@pytest.mark.parametrize("name", COLOUR_PHOTO_NAMES)
def test_chroma_subsampled_jpeg_reports_the_luma_8x8_grid(photos, name, quality):
    # 4:2:0 has 16×16 MCUs, but only chroma is coarser: luminance shows the 8×8 DCT grid.
    report = detect_blocking(_jpeg(photos[name], quality, subsampling=2))

    assert report.grid == (JPEG_BLOCK, JPEG_BLOCK)
    assert report.offset == (0, 0)


@pytest.mark.parametrize(
    ("crop_rows", "crop_cols"), [(5, 3), (1, 7), (4, 4), (7, 2), (0, 6), (3, 0)]
)
@pytest.mark.parametrize("name", ["astronaut", "camera"])
def test_cropped_jpeg_offset_follows_the_crop(photos, name, crop_rows, crop_cols):
    decoded = _jpeg(photos[name], 30)

    report = detect_blocking(decoded[crop_rows:, crop_cols:])

    assert report.grid == (JPEG_BLOCK, JPEG_BLOCK)
    assert report.offset == (-crop_rows % JPEG_BLOCK, -crop_cols % JPEG_BLOCK)


@pytest.mark.parametrize("downscale", [1, 3])
@pytest.mark.parametrize("name", PHOTO_NAMES)
def test_uncompressed_photo_has_no_grid(photos, name, downscale):
    image = photos[name] if downscale == 1 else _bicubic_downscale(photos[name], downscale)

    report = detect_blocking(image)

    assert report.grid is None
    assert report.offset == (0, 0)
    assert 0.0 <= report.score < SCORE_THRESHOLD
    assert report.map.shape == image.shape[:2]
    assert not report.map.any()


@pytest.mark.parametrize("name", PHOTO_NAMES)
def test_score_grows_with_compression_strength(photos, name):
    scores = [detect_blocking(photos[name]).score] + [
        detect_blocking(_jpeg(photos[name], quality)).score for quality in (90, 50, 10)
    ]

    assert scores == sorted(scores)
    assert scores[-1] > 10 * SCORE_THRESHOLD


@pytest.mark.parametrize("quality", [5, 20, 40])
@pytest.mark.parametrize("name", PHOTO_NAMES)
def test_webp_grid_when_reported_is_made_of_macroblock_and_transform_edges(photos, name, quality):
    report = detect_blocking(_codec_round_trip(photos[name], "WEBP", quality=quality))

    if name in ("astronaut", "camera"):  # the photos whose WebP blocking is clear at every q
        assert report.grid is not None
    if report.grid is None:
        assert not report.map.any()
    else:
        assert set(report.grid) <= {4, 8, 16}
        assert report.offset == (0, 0)


def test_strip_too_short_for_rows_still_finds_the_column_grid(photos):
    # 16 rows cannot hold four row periods; the columns alone decide, the grid is assumed
    # square and only vertical grid lines are marked.
    strip = _jpeg(photos["astronaut"], 10)[200:216, 3:]

    report = detect_blocking(strip)

    assert report.grid == (JPEG_BLOCK, JPEG_BLOCK)
    assert report.offset == (0, -3 % JPEG_BLOCK)
    marked_columns = np.flatnonzero(report.map.any(axis=0))
    assert marked_columns.size > 0
    assert _flanking_mask(strip.shape[1], JPEG_BLOCK, report.offset[1])[marked_columns].all()


def test_strip_too_thin_for_any_profile_gives_no_grid(photos):
    # 10 rows are too few to average a column profile over (noise would fake grids).
    report = detect_blocking(_jpeg(photos["astronaut"], 10)[200:210])

    assert report.grid is None
    assert not report.map.any()


# --- the blocking map -------------------------------------------------------------------------


@pytest.mark.parametrize("name", PHOTO_NAMES)
def test_map_marks_blocking_steps_on_grid_lines_only(photos, name):
    decoded = _jpeg(photos[name], 10)

    report = detect_blocking(decoded)
    blocking = report.map

    assert blocking.shape == decoded.shape[:2]
    assert blocking.dtype == np.float32
    assert blocking.min() >= 0.0
    assert blocking.max() <= 1.0
    on_grid = _grid_pixels(blocking.shape, report.grid, report.offset)
    assert not blocking[~on_grid].any()
    assert blocking[on_grid].mean() > 0.2

    # Classify the pixel pairs across the vertical grid lines from the decoded luminance:
    # a visible step between flat neighbours is blocking, a jump with comparable jumps beside
    # it is a real edge crossing the grid line.
    jumps = np.abs(np.diff(_luminance_255(decoded), axis=1))  # jumps[:, c - 1]: boundary c
    boundary = np.arange(JPEG_BLOCK, decoded.shape[1] - 1, JPEG_BLOCK)
    step, left, right = jumps[:, boundary - 1], jumps[:, boundary - 2], jumps[:, boundary]
    flat_step = (step >= 3) & (np.maximum(left, right) <= 1)
    crossing_edge = (step >= 20) & (np.minimum(left, right) >= 15)
    on_boundary = blocking[:, boundary]
    assert flat_step.sum() > 1000
    assert on_boundary[flat_step].mean() > 0.7
    if crossing_edge.sum() >= 20:
        assert on_boundary[crossing_edge].mean() < on_boundary[flat_step].mean() - 0.3


@pytest.mark.parametrize("name", PHOTO_NAMES)
def test_visually_lossless_jpeg_has_no_grid(photos, name):
    # At quality 98 the block steps are below a grey level: nothing for d(z) to mask.
    report = detect_blocking(_jpeg(photos[name], 98))

    assert report.grid is None
    assert not report.map.any()


# --- blocking_map: the network's d(z) ---------------------------------------------------------


def _patches(image: np.ndarray, corners: list[tuple[int, int]], size: int) -> torch.Tensor:
    """``B×C×size×size`` float tensor in [0, 1] of the patches at the given corners."""
    stack = np.stack([image[r : r + size, c : c + size] for r, c in corners])
    tensor = torch.from_numpy(stack.astype(np.float32) / 255)
    return tensor.unsqueeze(1) if tensor.ndim == 3 else tensor.permute(0, 3, 1, 2)


def test_blocking_map_estimates_the_grid_of_each_batch_element(photos):
    decoded = _jpeg(photos["astronaut"], 10)
    corners = [(160, 200), (203, 245), (251, 170), (306, 307)]
    size = 96
    batch = _patches(decoded, corners, size)

    maps = blocking_map(batch)

    assert maps.shape == (len(corners), 1, size, size)
    assert maps.dtype == batch.dtype
    assert maps.device == batch.device
    assert maps.min() >= 0
    assert maps.max() <= 1
    for element, (row, col) in zip(maps[:, 0].numpy(), corners, strict=True):
        offset = (-row % JPEG_BLOCK, -col % JPEG_BLOCK)
        on_grid = _grid_pixels((size, size), (JPEG_BLOCK, JPEG_BLOCK), offset)
        assert not element[~on_grid].any()
        assert element[on_grid].mean() > 0.2


def test_blocking_map_on_training_sized_patches(photos):
    # 16 patches of 48×48, the training crop size.  Most show their own 8-grid; a patch may
    # show too little blocking to commit to a grid, or (where the quantised DCT leaves steps
    # mid-block too) the 4-grid that contains it, but never lines off that 4-grid.
    decoded = _jpeg(photos["chelsea"], 20)
    rng = np.random.default_rng(7)
    size = 48
    rows = rng.integers(0, decoded.shape[0] - size, 16)
    cols = rng.integers(0, decoded.shape[1] - size, 16)
    corners = [(int(row), int(col)) for row, col in zip(rows, cols, strict=True)]

    maps = blocking_map(_patches(decoded, corners, size))[:, 0].numpy()

    on_own_8_grid = 0
    for element, (row, col) in zip(maps, corners, strict=True):
        offset = (-row % JPEG_BLOCK, -col % JPEG_BLOCK)
        on_4_grid = _grid_pixels((size, size), (4, 4), offset)
        assert not element[~on_4_grid].any()
        on_8_grid = _grid_pixels((size, size), (JPEG_BLOCK, JPEG_BLOCK), offset)
        on_own_8_grid += bool(element.any() and not element[~on_8_grid].any())
    assert on_own_8_grid >= len(corners) // 2


def test_blocking_map_matches_detect_blocking(photos):
    decoded = _jpeg(photos["coffee"], 30)[7:, 2:]
    batch = torch.from_numpy(decoded.astype(np.float32) / 255).permute(2, 0, 1)[None]

    from_batch = blocking_map(batch)[0, 0].numpy()

    np.testing.assert_array_equal(from_batch, detect_blocking(decoded).map)


def test_blocking_map_with_a_known_grid_matches_the_detected_map(photos):
    # Tiled processing passes the grid detected once on the whole image.
    decoded = _jpeg(photos["astronaut"], 20)[5:, 3:]
    report = detect_blocking(decoded)
    batch = torch.from_numpy(decoded.astype(np.float32) / 255).permute(2, 0, 1)[None]

    given = blocking_map(batch, grid=report.grid, offset=report.offset)[0, 0].numpy()

    assert report.grid == (JPEG_BLOCK, JPEG_BLOCK)
    np.testing.assert_array_equal(given, report.map)


def test_blocking_map_zero_for_uncompressed_and_keeps_float64(photos):
    image = photos["camera"].astype(np.float64) / 255
    batch = torch.from_numpy(image)[None, None]

    maps = blocking_map(batch)

    assert maps.dtype == torch.float64
    assert maps.shape == (1, 1, *image.shape)
    assert not maps.any()


def test_detect_blocking_finds_the_grid_of_a_6_megapixel_jpeg(photos):
    # Its speed (against decoding the same JPEG) is measured by benchmarks/blocking_speed.py.
    big = np.asarray(Image.fromarray(photos["astronaut"]).resize((3000, 2000), Image.BICUBIC))
    decoded = _jpeg(big, 30)

    report = detect_blocking(decoded)

    assert report.grid == (JPEG_BLOCK, JPEG_BLOCK)


# --- input handling ---------------------------------------------------------------------------


def test_uint8_uint16_float_and_rgba_inputs_agree(photos):
    as_uint8 = _jpeg(photos["chelsea"], 30)[3:, 6:]
    alpha = np.random.default_rng(0).integers(0, 256, as_uint8.shape[:2], dtype=np.uint8)
    variants = {
        "uint16": as_uint8.astype(np.uint16) * 257,
        "float32": as_uint8.astype(np.float32) / 255,
        "float64": as_uint8.astype(np.float64) / 255,
        "rgba": np.dstack([as_uint8, alpha]),
    }

    reference = detect_blocking(as_uint8)

    assert reference.grid == (JPEG_BLOCK, JPEG_BLOCK)
    for name, image in variants.items():
        report = detect_blocking(image)
        assert report.grid == reference.grid, name
        assert report.offset == reference.offset, name
        assert report.score == pytest.approx(reference.score, rel=1e-4), name
        np.testing.assert_allclose(report.map, reference.map, atol=1e-5, err_msg=name)


def test_single_channel_last_axis_equals_grey(photos):
    grey = _jpeg(photos["camera"], 30)

    with_channel_axis = detect_blocking(grey[..., None])
    reference = detect_blocking(grey)

    assert reference.grid == (JPEG_BLOCK, JPEG_BLOCK)
    assert (with_channel_axis.grid, with_channel_axis.offset) == (reference.grid, reference.offset)
    assert with_channel_axis.score == reference.score
    np.testing.assert_array_equal(with_channel_axis.map, reference.map)


@pytest.mark.parametrize("shape", [(1, 1), (5, 7), (5, 7, 3), (1, 1, 4), (3, 200), (200, 2)])
def test_tiny_images_give_no_grid(shape):
    image = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)

    report = detect_blocking(image)

    assert report.grid is None
    assert report.offset == (0, 0)
    assert report.map.shape == shape[:2]
    assert report.map.dtype == np.float32
    assert not report.map.any()


def test_tiny_batch_does_not_raise():
    maps = blocking_map(torch.rand(2, 1, 1, 1))

    assert maps.shape == (2, 1, 1, 1)
    assert not maps.any()


@pytest.mark.parametrize("shape", [(10,), (4, 4, 4, 3), (8, 8, 2), (8, 8, 5)])
def test_detect_blocking_rejects_wrong_shapes(shape):
    with pytest.raises(ValueError, match="expected"):
        detect_blocking(np.zeros(shape, np.uint8))


def test_detect_blocking_rejects_unsupported_dtype():
    with pytest.raises(TypeError, match="dtype"):
        detect_blocking(np.zeros((16, 16), np.int32))


@pytest.mark.parametrize("shape", [(3, 16, 16), (1, 2, 16, 16), (1, 4, 16, 16)])
def test_blocking_map_rejects_wrong_shapes(shape):
    with pytest.raises(ValueError, match="B×C×H×W"):
        blocking_map(torch.zeros(shape))

"""``values.py``: how an image's values map to the network's [0, 1] and back, chosen by dtype,
bit depth, contrast limits or percentiles. Small arrays, no torch, no napari (the widget's use
of it is tests/test_napari_plugin.py)."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest

from napari_cisr.values import ValueMapping, choose_mapping


def test_unsigned_integers_map_by_their_dtype_or_a_declared_bit_depth():
    assert choose_mapping(np.zeros((8, 8), np.uint8)) == ValueMapping(0.0, 255.0, "dtype")
    assert choose_mapping(np.zeros((8, 8), np.uint16)) == ValueMapping(0.0, 65535.0, "dtype")
    twelve = choose_mapping(np.zeros((8, 8), np.uint16), bit_depth=12)
    assert twelve == ValueMapping(0.0, 4095.0, "bit depth 12")
    # auto is dtype for unsigned integers, even with contrast limits given
    limited = choose_mapping(np.zeros((8, 8), np.uint8), contrast_limits=(10, 20))
    assert limited.source == "dtype"
    unit = choose_mapping(np.zeros(1, np.uint8)).to_unit(np.array([0, 51, 255], np.uint8))
    assert unit.dtype == np.float32
    np.testing.assert_allclose(unit, [0.0, 0.2, 1.0])
    with pytest.raises(ValueError, match=r"bit depth 9 does not fit a uint8 image \(1-8\)"):
        choose_mapping(np.zeros((8, 8), np.uint8), bit_depth=9)


def test_floats_map_by_their_contrast_limits_else_by_percentiles():
    image = np.linspace(-5.0, 5.0, 64 * 64, dtype=np.float32).reshape(64, 64)
    limits = choose_mapping(image, contrast_limits=(0, 1000))
    assert limits == ValueMapping(0.0, 1000.0, "contrast limits")
    assert limits.describe() == "values 0–1000 → 0–1 (contrast limits)"
    assert limits.as_metadata() == {"low": 0.0, "high": 1000.0, "source": "contrast limits"}
    robust = choose_mapping(image)
    assert robust.source == "percentiles 0.1–99.9"
    low, high = np.percentile(image.astype(np.float64), (0.1, 99.9))
    assert (robust.low, robust.high) == pytest.approx((low, high))
    np.testing.assert_array_equal(robust.to_unit(image[[0, -1], [0, -1]]), [0.0, 1.0])  # clipped
    with_nan = image.copy()
    with_nan[0, 0] = np.nan  # ignored by the percentiles
    assert np.isfinite([choose_mapping(with_nan).low, choose_mapping(with_nan).high]).all()
    lazy = choose_mapping(da.from_array(image, chunks=16))  # dask: the same range
    assert (lazy.low, lazy.high) == pytest.approx((robust.low, robust.high))


def test_signed_integers_map_by_an_explicit_range_kept_inside_the_dtype():
    signed = np.arange(-100, 100, dtype=np.int16).reshape(10, 20)
    assert choose_mapping(signed, contrast_limits=(-50, 50)).source == "contrast limits"
    assert choose_mapping(signed).source.startswith("percentiles")
    with pytest.raises(ValueError, match="a int16 image has no natural range"):
        choose_mapping(signed, "dtype")
    wide = choose_mapping(signed.astype(np.int8), contrast_limits=(-1000, 1000))
    assert (wide.low, wide.high) == (-128.0, 127.0)  # representable in the output dtype


@pytest.mark.parametrize(
    ("image", "kwargs"),
    [
        (np.arange(256, dtype=np.uint8).reshape(16, 16), {}),
        (np.arange(0, 4096, 16, dtype=np.uint16).reshape(16, 16), {"bit_depth": 12}),
        (np.arange(-128, 128, dtype=np.int16).reshape(16, 16), {"contrast_limits": (-128, 127)}),
        (np.linspace(0, 1000, 256, dtype=np.float32).reshape(16, 16), {"how": "percentiles"}),
    ],
    ids=["uint8", "uint16 at 12 bits", "int16 by limits", "float32 by percentiles"],
)
def test_from_unit_gives_back_the_input_dtype_and_range(image, kwargs):
    mapping = choose_mapping(image, **kwargs)
    back = mapping.from_unit(mapping.to_unit(image), image.dtype)
    assert back.dtype == image.dtype
    inside = (image >= mapping.low) & (image <= mapping.high)
    if np.issubdtype(image.dtype, np.integer):
        np.testing.assert_array_equal(back, image)
    else:  # the percentiles clip the tails
        np.testing.assert_allclose(back[inside], image[inside], rtol=1e-5)
        assert (back.min(), back.max()) == pytest.approx((mapping.low, mapping.high))
    overshoot = mapping.from_unit(np.array([-0.5, 1.5]), image.dtype)  # the network overshoots
    np.testing.assert_allclose(overshoot, [mapping.low, mapping.high], rtol=1e-6)


@pytest.mark.parametrize(
    ("image", "kwargs", "message"),
    [
        (np.zeros((8, 8), bool), {}, "a boolean image (a mask or labels) has no intensities"),
        (np.zeros((8, 8), np.complex64), {}, "unsupported dtype complex64"),
        (np.zeros((8, 8), np.uint8), {"how": "minmax"}, "unknown value range 'minmax'"),
        (np.zeros((8, 8), np.float32), {"how": "contrast limits"}, "no contrast limits given"),
        (np.full((8, 8), 3.0), {}, "the percentiles 0.1–99.9 give an empty value range (3 to 3)"),
        (np.zeros((8, 8), np.float32), {"contrast_limits": (5, 5)}, "empty value range (5 to 5)"),
    ],
    ids=["bool", "complex", "unknown how", "no limits", "constant", "empty limits"],
)
def test_what_cannot_be_mapped_is_refused_in_one_line(image, kwargs, message):
    with pytest.raises(ValueError) as refused:
        choose_mapping(image, **kwargs)
    assert message in str(refused.value) and "\n" not in str(refused.value)

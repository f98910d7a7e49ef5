"""napari_cisr.metrics: Y-PSNR and Y-SSIM with the paper's protocol."""

from __future__ import annotations

import numpy as np
import pytest

from napari_cisr.metrics import psnr_y, rgb_to_y, ssim_y


def _reference_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Wang et al.'s ``ssim_index`` on two Y planes: an 11-tap Gaussian (sigma 1.5) filtered
    over the 'valid' region only, population (co)variances, K1 = 0.01, K2 = 0.03, L = 255."""
    x = np.arange(11) - 5
    kernel = np.exp(-(x**2) / (2 * 1.5**2))
    kernel /= kernel.sum()

    def blur(image: np.ndarray) -> np.ndarray:
        rows = np.apply_along_axis(lambda r: np.convolve(r, kernel, mode="valid"), 1, image)
        return np.apply_along_axis(lambda c: np.convolve(c, kernel, mode="valid"), 0, rows)

    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu_a, mu_b = blur(a), blur(b)
    var_a, var_b = blur(a * a) - mu_a**2, blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / (
        (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
    )
    return float(ssim_map.mean())


@pytest.mark.parametrize("shape", [(37, 53, 3), (64, 48, 3), (29, 31)])
def test_ssim_y_matches_the_reference_code_to_rounding(shape):
    rng = np.random.default_rng(7)
    clean = rng.integers(0, 256, shape, dtype=np.uint8)
    noisy = np.clip(clean + rng.normal(0, 20, shape), 0, 255).astype(np.uint8)
    shave = 3
    expected = _reference_ssim(rgb_to_y(noisy)[3:-3, 3:-3], rgb_to_y(clean)[3:-3, 3:-3])
    assert ssim_y(noisy, clean, shave=shave) == pytest.approx(expected, abs=1e-12)
    assert 0 < expected < 0.99


def test_ssim_y_of_an_image_with_itself_is_one_and_shapes_must_match():
    image = np.random.default_rng(1).random((40, 40, 3))
    assert ssim_y(image, image) == pytest.approx(1.0, abs=1e-12)
    with pytest.raises(ValueError, match="shape mismatch"):
        ssim_y(image, image[:-1])


def test_psnr_y_on_a_known_error():
    """A uniform Y error of 2 levels is 20·log10(255 / 2) dB; identical images are infinite."""
    image = np.full((16, 16, 3), 100, dtype=np.uint8)
    brighter = image + np.uint8(2)  # +2 on R, G and B moves Y by 2·(65.481+128.553+24.966)/255
    error = 2 * (65.481 + 128.553 + 24.966) / 255
    assert psnr_y(brighter, image) == pytest.approx(20 * np.log10(255 / error))
    assert psnr_y(image, image) == float("inf")

"""Image-quality metrics with the paper's protocol (BasicSR conventions).

Images are numpy arrays H×W×3 RGB, uint8 (0-255) or float in [0, 1]; metrics are computed on
the BT.601 luma Y (16-235) after rounding to uint8, with ``shave`` pixels cropped on each side.
"""

from __future__ import annotations

import numpy as np


def _as_unit_float(image: np.ndarray) -> np.ndarray:
    if image.dtype == np.uint8:
        return image.astype(np.float64) / 255.0
    return np.round(np.clip(image, 0.0, 1.0) * 255.0) / 255.0


def rgb_to_y(image: np.ndarray) -> np.ndarray:
    """BT.601 luma on the 16-235 scale (MATLAB ``rgb2ycbcr``), float64 H×W.

    Parameters
    ----------
    image : ndarray
        H×W×3 uint8, or float in [0, 1] (rounded to 8 bits first, as the paper's outputs are).
    """
    rgb = _as_unit_float(image)
    if rgb.ndim == 2:
        return rgb * 219.0 + 16.0
    return 16.0 + rgb @ np.array([65.481, 128.553, 24.966])


def _shave(image: np.ndarray, shave: int) -> np.ndarray:
    return image[shave:-shave, shave:-shave] if shave > 0 else image


def psnr_y(output: np.ndarray, reference: np.ndarray, shave: int = 0) -> float:
    """PSNR (dB) on Y between two RGB images of equal shape, ``shave`` border pixels removed."""
    if output.shape != reference.shape:
        raise ValueError(f"shape mismatch: {output.shape} vs {reference.shape}")
    a = _shave(rgb_to_y(output), shave)
    b = _shave(rgb_to_y(reference), shave)
    mse = np.mean((a - b) ** 2)
    return float("inf") if mse == 0 else float(10.0 * np.log10(255.0**2 / mse))


def _gaussian_filter(image: np.ndarray, size: int = 11, sigma: float = 1.5) -> np.ndarray:
    """'valid' 2D Gaussian filtering (separable), as in the reference SSIM code."""
    x = np.arange(size) - size // 2
    kernel = np.exp(-(x**2) / (2 * sigma**2))
    kernel /= kernel.sum()
    rows = np.apply_along_axis(lambda r: np.convolve(r, kernel, mode="valid"), 1, image)
    return np.apply_along_axis(lambda c: np.convolve(c, kernel, mode="valid"), 0, rows)


def ssim_y(output: np.ndarray, reference: np.ndarray, shave: int = 0) -> float:
    """SSIM on Y (11×11 Gaussian window, sigma 1.5, K1 = 0.01, K2 = 0.03, L = 255)."""
    if output.shape != reference.shape:
        raise ValueError(f"shape mismatch: {output.shape} vs {reference.shape}")
    a = _shave(rgb_to_y(output), shave)
    b = _shave(rgb_to_y(reference), shave)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu_a, mu_b = _gaussian_filter(a), _gaussian_filter(b)
    var_a = _gaussian_filter(a * a) - mu_a**2
    var_b = _gaussian_filter(b * b) - mu_b**2
    cov = _gaussian_filter(a * b) - mu_a * mu_b
    ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / (
        (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
    )
    return float(ssim_map.mean())

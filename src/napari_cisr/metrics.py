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


def ssim_y(output: np.ndarray, reference: np.ndarray, shave: int = 0) -> float:
    """SSIM on Y (11×11 Gaussian window, sigma 1.5, K1 = 0.01, K2 = 0.03, L = 255).

    scikit-image's ``structural_similarity`` with the reference code's settings (population
    covariance, the window's valid region only), so the figures match Wang et al.'s MATLAB
    ``ssim_index`` and BasicSR's ``calculate_ssim``. Needs scikit-image (the ``train`` extra).

    Parameters
    ----------
    output, reference : ndarray
        H×W×3 RGB (or H×W grey) of equal shape; uint8, or float in [0, 1].
    shave : int
        Border pixels removed on each side before comparing.
    """
    from skimage.metrics import structural_similarity

    if output.shape != reference.shape:
        raise ValueError(f"shape mismatch: {output.shape} vs {reference.shape}")
    a = _shave(rgb_to_y(output), shave)
    b = _shave(rgb_to_y(reference), shave)
    return float(
        structural_similarity(
            a, b, data_range=255.0, gaussian_weights=True, sigma=1.5,
            use_sample_covariance=False, K1=0.01, K2=0.03,
        )
    )  # fmt: skip

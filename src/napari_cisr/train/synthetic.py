"""Synthetic training images with natural-image statistics: textured dead leaves.

The dead-leaves model (Matheron 1968) drops random shapes on the plane, the first fallen on
top, with radii drawn from a power law ``p(r) ∝ r^-alpha`` (alpha ≈ 3 gives the scale
invariance of natural images). Achddou, Gousseau and Ladjal ("Synthetic images as a
regularity prior for image restoration neural networks", SSVM 2021) train restoration
networks on such images with colours taken from natural images and textured leaves. Here
each leaf is a disk, an ellipse or a rotated rectangle; its colour is a pixel drawn from the
training photos, and half of the leaves are textured: two such colours mixed by a noise field
with a power-law spectrum ``1/f^beta`` (fine grain for small beta, smooth shading for large),
either smoothly, thresholded into patches, or as warped stripes (fabric, bark). Leaves are
drawn at twice the resolution and box-downscaled, so that edges are antialiased as a lens and
a sensor make them, not the staircase a rasteriser gives.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: Supersampling factor of the rasteriser (edges antialiased by a box filter of this size).
_SUPERSAMPLE = 2
#: Side of the precomputed noise fields that textured leaves crop from (at the supersampled
#: resolution; larger leaves tile them).
_FIELD_SIDE = 256
#: Spectral slopes beta of the noise fields: 1 = fine grain, 3 = smooth shading.
_SLOPES = (1.0, 1.5, 2.0, 2.5, 3.0)


def power_law_noise(side: int, slope: float, rng: np.random.Generator) -> np.ndarray:
    """A periodic noise field whose power spectrum falls as ``1/f^slope``.

    Returns
    -------
    ndarray
        float32 side×side, rescaled to [0, 1] by its 1st and 99th percentiles (clipped).
    """
    fy = np.fft.fftfreq(side)[:, None]
    fx = np.fft.rfftfreq(side)[None, :]
    frequency = np.hypot(fy, fx)
    frequency[0, 0] = 1.0  # the mean: any finite amplitude, removed by the rescaling below
    amplitude = frequency ** (-slope / 2)
    phase = rng.uniform(0, 2 * np.pi, amplitude.shape)
    field = np.fft.irfft2(amplitude * np.exp(1j * phase), s=(side, side))
    low, high = np.percentile(field, (1, 99))
    return np.clip((field - low) / (high - low), 0, 1).astype(np.float32)


def _shape_mask(
    rows: np.ndarray, cols: np.ndarray, radius: float, kind: int, rng: np.random.Generator
) -> np.ndarray:
    """Boolean mask of one leaf on the grid offsets (rows, cols) from its centre."""
    if kind == 0:  # disk
        return rows**2 + cols**2 <= radius**2
    angle = rng.uniform(0, np.pi)
    cos, sin = np.cos(angle), np.sin(angle)
    u = rows * cos + cols * sin
    v = -rows * sin + cols * cos
    aspect = rng.uniform(0.3, 1.0)
    if kind == 1:  # ellipse
        return (u / radius) ** 2 + (v / (radius * aspect)) ** 2 <= 1
    return (np.abs(u) <= radius) & (np.abs(v) <= radius * aspect)  # rotated rectangle


def _texture(
    shape: tuple[int, int], fields: Sequence[np.ndarray], rng: np.random.Generator
) -> np.ndarray:
    """A float32 mixing weight in [0, 1] of ``shape``: smooth, thresholded or striped."""
    field = fields[rng.integers(len(fields))]
    reps = (-(-shape[0] // _FIELD_SIDE), -(-shape[1] // _FIELD_SIDE))
    if reps != (1, 1):
        field = np.tile(field, reps)
    top = rng.integers(0, field.shape[0] - shape[0] + 1)
    left = rng.integers(0, field.shape[1] - shape[1] + 1)
    weight = field[top : top + shape[0], left : left + shape[1]]
    style = rng.integers(3)
    if style == 1:  # patches with soft edges
        return 1 / (1 + np.exp(-(weight - 0.5) * rng.uniform(8, 30)))
    if style == 2:  # stripes warped by the noise
        period = rng.uniform(3, 24) * _SUPERSAMPLE
        angle = rng.uniform(0, np.pi)
        rows, cols = np.ogrid[: shape[0], : shape[1]]
        phase = (rows * np.sin(angle) + cols * np.cos(angle)) / period
        return 0.5 + 0.5 * np.sin(2 * np.pi * (phase + rng.uniform(1, 4) * weight))
    return weight


def dead_leaves(
    side: int,
    palette: np.ndarray,
    rng: np.random.Generator,
    *,
    radius_min: float = 2.0,
    radius_max: float | None = None,
    alpha: float = 3.0,
    textured: float = 0.5,
) -> np.ndarray:
    """One textured dead-leaves image.

    Parameters
    ----------
    side : int
        Output side in pixels (the image is square).
    palette : ndarray
        uint8 N×3 RGB colours to draw leaves from (pixels of natural photos).
    rng : numpy.random.Generator
        The only source of randomness: equal generators give equal images.
    radius_min, radius_max : float
        Leaf radii in output pixels, drawn from ``p(r) ∝ r^-alpha`` on [radius_min,
        radius_max]; radius_max defaults to ``side / 2``.
    alpha : float
        Power-law exponent (> 1); 3 is scale-invariant.
    textured : float
        Share of the leaves that are textured rather than flat.

    Returns
    -------
    ndarray
        uint8 side×side×3.
    """
    if alpha <= 1:
        raise ValueError(f"alpha must be greater than 1, got {alpha}")
    palette = np.asarray(palette, dtype=np.float32).reshape(-1, 3)
    n = side * _SUPERSAMPLE
    r_min = radius_min * _SUPERSAMPLE
    r_max = (radius_max if radius_max is not None else side / 2) * _SUPERSAMPLE
    fields = [power_law_noise(_FIELD_SIDE, slope, rng) for slope in _SLOPES]
    image = np.zeros((n, n, 3), np.float32)
    free = np.ones((n, n), bool)
    remaining, stop = n * n, n * n // 1000  # stop at 99.9 % cover; the rest takes its neighbour
    # Inverse CDF of the truncated power law: r = (a + (b - a)·u)^(-1/(alpha-1)).
    a, b = r_max ** (1 - alpha), r_min ** (1 - alpha)
    while remaining > stop:
        radius = (a + (b - a) * rng.random()) ** (1 / (1 - alpha))
        cy, cx = rng.uniform(-radius, n + radius, size=2)
        y0, y1 = max(int(cy - radius), 0), min(int(cy + radius) + 2, n)
        x0, x1 = max(int(cx - radius), 0), min(int(cx + radius) + 2, n)
        if y0 >= y1 or x0 >= x1 or not free[y0:y1, x0:x1].any():
            continue  # most late leaves fall where earlier ones lie: nothing left to paint
        rows = np.arange(y0, y1, dtype=np.float32)[:, None] - cy
        cols = np.arange(x0, x1, dtype=np.float32)[None, :] - cx
        mask = _shape_mask(rows, cols, radius, int(rng.integers(3)), rng)
        mask &= free[y0:y1, x0:x1]
        count = int(mask.sum())
        if count == 0:
            continue
        colour = palette[rng.integers(len(palette))]
        window = image[y0:y1, x0:x1]
        if rng.random() < textured:
            other = palette[rng.integers(len(palette))]
            weight = _texture(mask.shape, fields, rng)[mask][:, None]
            window[mask] = colour * (1 - weight) + other * weight
        else:
            window[mask] = colour
        free[y0:y1, x0:x1] &= ~mask
        remaining -= count
    # The last uncovered specks (a few pixels each) take the colour of the pixel to their left
    # (or above, in the first column): no flat-colour holes.
    holes = np.argwhere(free)
    for row, col in holes:
        image[row, col] = image[row, col - 1] if col else image[row - 1, col] if row else 0
    image = image.reshape(side, _SUPERSAMPLE, side, _SUPERSAMPLE, 3).mean(axis=(1, 3))
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def photo_palette(photos: Sequence[np.ndarray], size: int, rng: np.random.Generator) -> np.ndarray:
    """``size`` pixels drawn uniformly from ``photos`` (uint8 H×W×3 each): uint8 size×3."""
    areas = np.array([p.shape[0] * p.shape[1] for p in photos], dtype=np.float64)
    which = rng.choice(len(photos), size=size, p=areas / areas.sum())
    pixels = np.empty((size, 3), np.uint8)
    for index in np.unique(which):
        chosen = np.flatnonzero(which == index)
        flat = photos[index].reshape(-1, 3)
        pixels[chosen] = flat[rng.integers(len(flat), size=len(chosen))]
    return pixels


def dead_leaves_set(
    count: int, side: int, photos: Sequence[np.ndarray], seed: int
) -> list[np.ndarray]:
    """``count`` dead-leaves images of ``side``² px with colours from ``photos``, from ``seed``.

    Returns
    -------
    list of ndarray
        uint8 side×side×3 each; the same for the same arguments.
    """
    rng = np.random.default_rng([seed, 0x5EED])
    palette = photo_palette(photos, 65536, rng)
    return [dead_leaves(side, palette, rng) for _ in range(count)]

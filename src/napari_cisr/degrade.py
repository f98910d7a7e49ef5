"""Degradations of the paper's data pipeline (Algorithm 1, Section 4.1): pure, seeded functions.

All images here are numpy uint8 arrays, H×W×3 (RGB) or H×W, values 0-255.
"""

from __future__ import annotations

import io
from typing import Literal

import numpy as np
from PIL import Image

Codec = Literal["jpeg", "webp"]

#: The paper's ten compression configurations (codec, quality).
TRAIN_CONFIGS: tuple[tuple[Codec, int], ...] = (
    ("jpeg", 10), ("jpeg", 20), ("jpeg", 30), ("jpeg", 40), ("jpeg", 50),
    ("webp", 5), ("webp", 10), ("webp", 20), ("webp", 30), ("webp", 40),
)  # fmt: skip
#: JPEG qualities never seen in training (paper Fig. 9).
UNSEEN_JPEG_CONFIGS: tuple[tuple[Codec, int], ...] = tuple(
    ("jpeg", q) for q in (15, 25, 35, 45, 55)
)


def config_name(codec: str, quality: int) -> str:
    """'jpeg-q10' style label."""
    return f"{codec}-q{quality}"


def parse_config(label: str) -> tuple[Codec, int]:
    """Inverse of :func:`config_name`; raises ValueError with the accepted form."""
    try:
        codec, quality = label.lower().split("-q")
        if codec not in ("jpeg", "webp"):
            raise ValueError
        return codec, int(quality)  # type: ignore[return-value]
    except ValueError:
        raise ValueError(
            f"bad compression config {label!r}; expected e.g. 'jpeg-q10', 'webp-q5'"
        ) from None


def bicubic_downscale(image: np.ndarray, scale: int) -> np.ndarray:
    """Antialiased bicubic downscaling by an integer factor (like MATLAB ``imresize``).

    Parameters
    ----------
    image : ndarray
        uint8, H×W×3 or H×W; H and W are cropped to multiples of ``scale`` first.
    scale : int
        Factor s.

    Returns
    -------
    ndarray
        uint8, (H//s)×(W//s)[×3].
    """
    height, width = (image.shape[0] // scale) * scale, (image.shape[1] // scale) * scale
    pil = Image.fromarray(image[:height, :width])
    return np.asarray(pil.resize((width // scale, height // scale), Image.Resampling.BICUBIC))


def compress(image: np.ndarray, codec: Codec, quality: int) -> np.ndarray:
    """Round trip through a lossy codec (Pillow's libjpeg-turbo / libwebp).

    JPEG uses Pillow's default 4:2:0 chroma subsampling (libjpeg's, like MATLAB's ``imwrite``).

    Parameters
    ----------
    image : ndarray
        uint8, H×W×3 or H×W.
    codec : {"jpeg", "webp"}
    quality : int
        1-100.

    Returns
    -------
    ndarray
        uint8, same shape as ``image``.
    """
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format=codec.upper(), quality=quality)
    buffer.seek(0)
    decoded = Image.open(buffer)
    decoded = decoded.convert("L" if image.ndim == 2 else "RGB")
    return np.asarray(decoded)

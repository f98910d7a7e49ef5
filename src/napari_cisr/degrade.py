"""Degradations of the paper's data pipeline (Algorithm 1, Section 4.1): pure, seeded functions.

All images here are numpy uint8 arrays, H×W×3 (RGB) or H×W, values 0-255.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from PIL import Image

Codec = Literal["jpeg", "webp", "none"]
#: The configuration label of an LR image left uncompressed (plain super-resolution): a share of
#: clean patches in a training mixture, or a plain-SR row in an eval.
UNCOMPRESSED = "none"
Kernel = Literal["bicubic", "bilinear", "lanczos", "area"]
Chroma = Literal["4:2:0", "4:4:4"]
_PIL_KERNELS = {
    "bicubic": Image.Resampling.BICUBIC,
    "bilinear": Image.Resampling.BILINEAR,
    "lanczos": Image.Resampling.LANCZOS,
    "area": Image.Resampling.BOX,
}
_JPEG_SUBSAMPLING = {"4:2:0": 2, "4:4:4": 0}

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
    """'jpeg-q10' style label; ``"none"`` for an uncompressed LR image (any quality)."""
    return UNCOMPRESSED if codec == UNCOMPRESSED else f"{codec}-q{quality}"


def parse_config(label: str) -> tuple[Codec, int]:
    """Inverse of :func:`config_name`; raises ValueError with the accepted form.

    Parameters
    ----------
    label : str
        ``"jpeg-q<Q>"`` or ``"webp-q<Q>"``, Q in 1..100 (any case), or ``"none"``: no
        compression, returned as ``("none", 100)``.
    """
    if label.lower() == UNCOMPRESSED:
        return UNCOMPRESSED, 100
    try:
        codec, quality = label.lower().split("-q")
        if codec not in ("jpeg", "webp"):
            raise ValueError
        number = int(quality)
    except ValueError:
        raise ValueError(
            f"bad compression config {label!r}; expected e.g. 'jpeg-q10', 'webp-q5', 'none'"
        ) from None
    if not 1 <= number <= 100:
        raise ValueError(f"compression quality must be in 1-100, got {label!r}")
    return codec, number  # type: ignore[return-value]


def parse_configs(labels: Sequence[str]) -> tuple[tuple[Codec, int], ...]:
    """:func:`parse_config` of each label: what ``--configs`` and ``compressions`` hold."""
    return tuple(parse_config(label) for label in labels)


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


def bicubic_upscale(image: np.ndarray, scale: int) -> np.ndarray:
    """The bicubic baseline every gain is measured against: uint8 H×W[×3] → uint8 sH×sW[×3]
    (Pillow bicubic)."""
    height, width = image.shape[:2]
    resized = Image.fromarray(image).resize(
        (width * scale, height * scale), Image.Resampling.BICUBIC
    )
    return np.asarray(resized)


def compress(image: np.ndarray, codec: Codec, quality: int, chroma: Chroma = "4:2:0") -> np.ndarray:
    """Round trip through a lossy codec (Pillow's libjpeg-turbo / libwebp).

    JPEG uses 4:2:0 chroma subsampling by default (libjpeg's, like MATLAB's ``imwrite``).

    Parameters
    ----------
    image : ndarray
        uint8, H×W×3 or H×W.
    codec : {"jpeg", "webp", "none"}
        ``"none"`` returns a copy of ``image``.
    quality : int
        1-100.
    chroma : {"4:2:0", "4:4:4"}
        JPEG chroma subsampling; lossy WebP is always 4:2:0.

    Returns
    -------
    ndarray
        uint8, same shape as ``image``.
    """
    if codec == UNCOMPRESSED:
        return image.copy()
    buffer = io.BytesIO()
    options = {"subsampling": _JPEG_SUBSAMPLING[chroma]} if codec == "jpeg" else {}
    Image.fromarray(image).save(buffer, format=codec.upper(), quality=quality, **options)
    buffer.seek(0)
    decoded = Image.open(buffer)
    decoded = decoded.convert("L" if image.ndim == 2 else "RGB")
    return np.asarray(decoded)


@dataclass(frozen=True)
class Degradation:
    """How a clean HR image becomes the compressed LR input z (paper §4.4: what users have).

    The default is the paper's protocol: antialiased bicubic ÷ s, then one compression with
    4:2:0 chroma (:func:`bicubic_downscale`, :func:`compress`).

    Parameters
    ----------
    kernel : {"bicubic", "bilinear", "lanczos", "area"}
        Downscaling filter ("area" averages each s×s block).
    antialias : bool
        False samples the kernel at the LR grid without widening it (what a naive resize does:
        aliasing); "area" is always an average.
    chroma : {"4:2:0", "4:4:4"}
        JPEG chroma subsampling. Lossy WebP is always 4:2:0.
    first_quality : int or None
        Double compression: the LR image is first saved as JPEG (4:2:0) at this quality, as a
        shared photo is before a platform recompresses it; None compresses once.
    """

    kernel: Kernel = "bicubic"
    antialias: bool = True
    chroma: Chroma = "4:2:0"
    first_quality: int | None = None

    def __post_init__(self) -> None:
        if self.kernel not in _PIL_KERNELS:
            raise ValueError(f"kernel {self.kernel!r}: expected one of {', '.join(_PIL_KERNELS)}")
        if self.chroma not in _JPEG_SUBSAMPLING:
            raise ValueError(f"chroma {self.chroma!r}: expected 4:2:0 or 4:4:4")
        if self.kernel == "area" and not self.antialias:
            raise ValueError("an area kernel always averages: antialias=False has no meaning")

    def downscale(self, image: np.ndarray, scale: int) -> np.ndarray:
        """uint8 H×W[×3] → (H//s)×(W//s)[×3], H and W cropped to multiples of ``scale``."""
        if (self.kernel, self.antialias) == ("bicubic", True):
            return bicubic_downscale(image, scale)
        height, width = (image.shape[0] // scale) * scale, (image.shape[1] // scale) * scale
        pil = Image.fromarray(image[:height, :width])
        size = (width // scale, height // scale)
        if self.antialias:
            return np.asarray(pil.resize(size, _PIL_KERNELS[self.kernel]))
        # An affine transform samples the source at each LR pixel's centre (Pillow adds the
        # half pixel) with the kernel's own support: no low-pass, so detail aliases as in a
        # naive resize.
        matrix = (scale, 0, 0, 0, scale, 0)
        return np.asarray(
            pil.transform(size, Image.Transform.AFFINE, matrix, _PIL_KERNELS[self.kernel])
        )

    def compress(self, image: np.ndarray, codec: Codec, quality: int) -> np.ndarray:
        """The LR image through the (double) compression; uint8, same shape. ``"none"`` leaves
        it as it is, double compression included: it stands for a clean LR image."""
        if codec == UNCOMPRESSED:
            return image.copy()
        if self.first_quality is not None:
            image = compress(image, "jpeg", self.first_quality)
        return compress(image, codec, quality, chroma=self.chroma)


#: Named degradations for ``napari-cisr eval --degradation`` and the ``degradations`` training
#: option: each name is a tuple drawn from uniformly (per photo × configuration in an eval).
DEGRADATIONS: dict[str, tuple[Degradation, ...]] = {
    "paper": (Degradation(),),
    "area": (Degradation("area"),),
    "bilinear": (Degradation("bilinear"),),
    "lanczos": (Degradation("lanczos"),),
    "bicubic-aliased": (Degradation(antialias=False),),
    "jpeg-444": (Degradation(chroma="4:4:4"),),
    "double": (Degradation(first_quality=90),),
}
# What a photo from a phone or a social-media site went through, as a mixture of the above.
DEGRADATIONS["realistic"] = tuple(d for name, (d,) in DEGRADATIONS.items() if name != "paper")


def mixture(name: str) -> tuple[Degradation, ...]:
    """:data:`DEGRADATIONS` ``[name]``; raises ValueError naming the accepted ones."""
    try:
        return DEGRADATIONS[name]
    except KeyError:
        raise ValueError(
            f"unknown degradation {name!r}; expected one of {', '.join(DEGRADATIONS)}"
        ) from None

"""What a file is, without decoding its pixels: codec, shape, JPEG quality, WebP kind."""

from __future__ import annotations

import logging
import os
import struct
from pathlib import Path
from typing import Any

import numpy as np

from napari_cisr.io.formats import CODEC_FROM_PIL, ImageReadError, check_readable, ensure_decoder
from napari_cisr.io.png16 import png_header

log = logging.getLogger(__name__)

# ITU-T T.81 Annex K, table K.1 (luminance), natural (row-major) order.
_ANNEX_K_LUMA = np.array(
    [
        [16, 11, 10, 16, 24, 40, 51, 61],
        [12, 12, 14, 19, 26, 58, 60, 55],
        [14, 13, 16, 24, 40, 57, 69, 56],
        [14, 17, 22, 29, 51, 87, 80, 62],
        [18, 22, 37, 56, 68, 109, 103, 77],
        [24, 35, 55, 64, 81, 104, 113, 92],
        [49, 64, 78, 87, 103, 121, 120, 101],
        [72, 92, 95, 98, 112, 100, 103, 99],
    ],
    dtype=np.int64,
).ravel()

_SAMPLING_NAMES = {0: "4:4:4", 1: "4:2:2", 2: "4:2:0"}


def _ijg_table(quality: int) -> np.ndarray:
    """The baseline IJG (libjpeg ``jpeg_set_quality``) luma table for ``quality`` 1..100."""
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality
    return np.clip((_ANNEX_K_LUMA * scale + 50) // 100, 1, 255)


_IJG_TABLES = np.stack([_ijg_table(q) for q in range(1, 101)])


def estimate_jpeg_quality(luma_table: Any) -> tuple[int, bool]:
    """Estimate the IJG quality (1..100) that produced a JPEG luminance quantisation table.

    The table is compared with the Annex K table scaled by libjpeg's formula for every quality
    and the closest one wins; the mean ratio ``100·T/T_K`` gives the classic inverse
    (``q = 5000/S`` for ``S > 100``, ``q = (200 - S)/2`` otherwise), used to break ties.

    Parameters
    ----------
    luma_table : sequence of 64 int
        The luminance table in natural (row-major) order, as Pillow's ``img.quantization[0]``.

    Returns
    -------
    quality : int
        The estimated quality, 1..100.
    exact : bool
        True when the table is exactly the IJG table for that quality (files written by
        libjpeg/libjpeg-turbo, Pillow, OpenCV, ...); False for other encoders' tables.
    """
    t = np.asarray(luma_table, dtype=np.int64).ravel()
    if t.size != 64:
        raise ValueError(f"a JPEG quantisation table has 64 entries, got {t.size}")
    err = np.abs(_IJG_TABLES - t).sum(axis=1)
    candidates = np.flatnonzero(err == err.min()) + 1
    s = float(np.mean(t * 100.0 / _ANNEX_K_LUMA))
    q_inv = 5000.0 / s if s > 100 else (200.0 - s) / 2.0
    quality = int(candidates[np.argmin(np.abs(candidates - q_inv))])
    return quality, bool(err.min() == 0)


def _webp_kind(path: Path) -> dict[str, Any]:
    with open(path, "rb") as f:
        head = f.read(4096)
    info: dict[str, Any] = {}
    if head[:4] != b"RIFF" or head[8:12] != b"WEBP":
        return info
    fourccs = []
    pos = 12
    while pos + 8 <= len(head):
        fourcc = head[pos : pos + 4]
        (size,) = struct.unpack("<I", head[pos + 4 : pos + 8])
        fourccs.append(fourcc)
        if fourcc in (b"VP8 ", b"VP8L"):
            break
        pos += 8 + size + (size & 1)
    if b"VP8L" in fourccs:
        info["lossless"] = True
    elif b"VP8 " in fourccs:
        info["lossless"] = False
    info["animated"] = b"ANIM" in fourccs
    return info


def image_info(path: str | os.PathLike) -> dict[str, Any]:
    """Describe an image file without decoding its pixels.

    Parameters
    ----------
    path : str or os.PathLike
        A file :func:`read_image` accepts.

    Returns
    -------
    dict
        Always ``codec`` (``"jpeg"``, ``"webp"``, ``"png"`` or ``"tiff"``, from the content),
        ``shape`` (as :func:`read_image` would return it, before the WebP grayscale collapse)
        and ``mode`` (Pillow's, or ``"tiff"``). For JPEG also ``quality`` (estimated IJG
        quality, see :func:`estimate_jpeg_quality`), ``quality_exact``, ``subsampling``
        (``"4:2:0"``, ``"4:2:2"``, ``"4:4:4"`` or ``None`` for grayscale) and ``progressive``.
        For WebP also ``lossless`` and ``animated`` when the header says.

    Raises
    ------
    ImageReadError
        As for :func:`read_image` (missing, empty, not an image).
    """
    p = Path(path)
    codec = check_readable(p)
    if codec == "tiff":
        import tifffile

        try:
            with tifffile.TiffFile(p) as tif:
                series = tif.series[0]
                return {
                    "codec": "tiff",
                    "shape": tuple(series.shape),
                    "mode": "tiff",
                    "dtype": str(series.dtype),
                }
        except Exception as e:  # tifffile raises many types for bad files
            raise ImageReadError(p, f"not a valid TIFF image ({e})") from e

    ensure_decoder(p, codec)
    from PIL import Image, JpegImagePlugin, UnidentifiedImageError

    try:
        with Image.open(p) as img:
            fmt = img.format or ""
            info: dict[str, Any] = {
                "codec": CODEC_FROM_PIL.get(fmt, fmt.lower()),
                "mode": img.mode,
                "shape": (
                    img.height,
                    img.width,
                    *(() if len(img.getbands()) == 1 else (len(img.getbands()),)),
                ),
            }
            if info["codec"] == "jpeg":
                qtables = getattr(img, "quantization", None) or {}
                if 0 in qtables:
                    info["quality"], info["quality_exact"] = estimate_jpeg_quality(qtables[0])
                else:
                    info["quality"], info["quality_exact"] = None, False
                sampling = JpegImagePlugin.get_sampling(img)
                info["subsampling"] = _SAMPLING_NAMES.get(sampling)
                info["progressive"] = bool(img.info.get("progressive", False))
    except UnidentifiedImageError as e:
        raise ImageReadError(p, "not an image (or a format Pillow cannot decode)") from e
    except (OSError, SyntaxError, ValueError, struct.error) as e:
        raise ImageReadError(p, f"corrupt image header ({e})") from e
    if info["codec"] == "png":
        header = png_header(p)
        if header is not None:
            info["bit_depth"] = header["bit_depth"]
    if info["codec"] == "webp":
        info.update(_webp_kind(p))
    return info


def tiff_attrs(path: str | os.PathLike) -> dict[str, Any]:
    """The JSON attributes a TIFF holds in tifffile's "shaped" ImageDescription.

    What :func:`napari_cisr.io.write_image` stored with ``attrs=`` (the napari writer keeps a
    layer's name, geometry and settings there, under ``napari``), without the ``shape``
    tifffile writes beside them.

    Parameters
    ----------
    path : str or os.PathLike
        A ``.tif``/``.tiff`` file.

    Returns
    -------
    dict
        Empty for a TIFF without such a description, or one that cannot be parsed (logged:
        the attributes are a courtesy, never the reason a file does not open).

    Raises
    ------
    ImageReadError
        As for :func:`image_info` (missing, empty, unsupported suffix).
    """
    p = Path(path)
    check_readable(p)
    import tifffile

    try:
        with tifffile.TiffFile(p) as tif:
            shaped = tif.shaped_metadata
    except Exception as error:  # tifffile raises many types for bad files
        log.warning("%s: TIFF attributes not read (%s: %s)", p, type(error).__name__, error)
        return {}
    if not shaped or not isinstance(shaped[0], dict):
        return {}
    return {key: value for key, value in shaped[0].items() if key != "shape"}

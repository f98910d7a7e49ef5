"""What a file is, without decoding its pixels: codec, shape, JPEG and WebP quality, WebP kind."""

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


def ijg_luma_table(quality: int) -> np.ndarray:
    """The baseline IJG (libjpeg ``jpeg_set_quality``) luma table for ``quality`` 1..100:
    64 int64 steps in natural (row-major) order."""
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality
    return np.clip((_ANNEX_K_LUMA * scale + 50) // 100, 1, 255)


#: :func:`ijg_luma_table` of every quality 1..100, 100×64 (row ``q - 1`` is quality ``q``).
IJG_LUMA_TABLES = np.stack([ijg_luma_table(q) for q in range(1, 101)])


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
    err = np.abs(IJG_LUMA_TABLES - t).sum(axis=1)
    candidates = np.flatnonzero(err == err.min()) + 1
    s = float(np.mean(t * 100.0 / _ANNEX_K_LUMA))
    q_inv = 5000.0 / s if s > 100 else (200.0 - s) / 2.0
    quality = int(candidates[np.argmin(np.abs(candidates - q_inv))])
    return quality, bool(err.min() == 0)


class _BoolDecoder:
    """VP8's boolean entropy decoder (RFC 6386, section 7.3), enough to read a frame header."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 2
        self.value = (data[0] << 8) | data[1] if len(data) >= 2 else 0
        self.range, self.bit_count = 255, 0

    def bool(self, probability: int = 128) -> int:
        split = 1 + (((self.range - 1) * probability) >> 8)
        if self.value >= split << 8:
            bit, self.range, self.value = 1, self.range - split, self.value - (split << 8)
        else:
            bit, self.range = 0, split
        while self.range < 128:
            self.value, self.range = self.value << 1, self.range << 1
            self.bit_count += 1
            if self.bit_count == 8:
                self.bit_count = 0
                if self.pos < len(self.data):
                    self.value |= self.data[self.pos]
                self.pos += 1
        return bit

    def literal(self, bits: int) -> int:
        value = 0
        for _ in range(bits):
            value = (value << 1) | self.bool()
        return value

    def signed(self, bits: int) -> int:
        """A flagged, signed field: 0 when its flag is off."""
        if not self.bool():
            return 0
        magnitude = self.literal(bits)
        return -magnitude if self.bool() else magnitude


def vp8_quantizer(frame: bytes) -> tuple[int, bool] | None:
    """The luma AC quantiser index (0-127) of a VP8 key frame's first segment, and whether
    the frame is segmented.

    Reads the frame header of RFC 6386 (sections 9.2-9.6, 19.2) up to ``y_ac_qi``. With
    segmentation on (libwebp's default: four segments, each with its own index, absolute or
    as a delta from ``y_ac_qi``), the first segment's. None for an interframe or a truncated
    header.
    """
    if len(frame) < 12 or frame[0] & 1 or frame[3:6] != b"\x9d\x01\x2a":
        return None  # not a key frame: a WebP's only frame always is one
    header = _BoolDecoder(frame[10:])
    header.literal(2)  # colour space, clamping type
    segment_quantizers, absolute, segmented = None, False, False
    if header.bool():  # segmentation enabled
        segmented = True
        update_map = header.bool()
        if header.bool():  # segment feature data follows
            absolute = bool(header.bool())
            segment_quantizers = [header.signed(7) for _ in range(4)]
            for _ in range(4):
                header.signed(6)  # loop-filter levels
        if update_map:
            for _ in range(3):
                if header.bool():
                    header.literal(8)  # segment-map probabilities
    header.literal(1 + 6 + 3)  # filter type, loop-filter level, sharpness
    if header.bool() and header.bool():  # loop-filter deltas, updated
        for _ in range(8):
            header.signed(6)
    header.literal(2)  # log2 of the DCT partitions
    base = header.literal(7)
    if header.pos > len(frame) - 10:
        return None
    if segment_quantizers is None:
        return base, segmented
    first = segment_quantizers[0] if absolute else base + segment_quantizers[0]
    return int(np.clip(first, 0, 127)), segmented


#: libwebp's spatial noise shaping at its default strength (50) raises the first segment's
#: compression to this power (``VP8SetSegmentParams``: ``1 − 0.9·(50/100)/128·(−127)``; its
#: segment "alpha" is always the lowest, −127, on every photo tried with libwebp 1.6).
_FIRST_SEGMENT_EXPONENT = 1.0 + 0.9 * 0.5 / 128 * 127


def estimate_webp_quality(quantizer: int, segmented: bool = True) -> int:
    """The libwebp quality (1..100) that gives a frame's first segment ``quantizer``.

    Inverts libwebp's mapping (``src/enc/quant_enc.c``: ``q = ⌊127·(1 − c^e)⌋`` with
    ``c = l^(1/3)``, ``l = 2Q/3`` below Q = 0.75 and ``2Q − 1`` above, and ``e`` the first
    segment's noise-shaping exponent, 1 without segments), from the middle of the index's
    interval. Exact to ±1 for libwebp's default settings (Pillow, ``cwebp`` without
    ``-sns``; ``tests/test_io.py``); a stronger noise shaping (``cwebp -preset photo``) reads
    as a lower quality.
    """
    index = min(max(quantizer, 0), 127) + 0.5
    compression = max(1.0 - index / 127.0, 0.0)
    if segmented:
        compression = compression ** (1.0 / _FIRST_SEGMENT_EXPONENT)
    linear = compression**3
    quality = linear * 1.5 if linear < 0.5 else (linear + 1.0) / 2.0
    return int(np.clip(round(100 * quality), 1, 100))


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
        if fourccs[-1] == b"VP8 " and b"ANIM" not in fourccs:
            found = vp8_quantizer(head[pos + 8 : pos + 8 + 64])
            if found is not None:
                info["quality"] = estimate_webp_quality(*found)
                info["quality_exact"] = False
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
        For WebP also ``lossless`` and ``animated`` when the header says, and for a lossy
        still WebP ``quality`` (estimated libwebp quality, see :func:`estimate_webp_quality`)
        with ``quality_exact`` False.

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

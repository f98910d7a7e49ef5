"""Image and zarr input/output without napari.

The CLI, the batch code and the napari adapters all read and write through this module, so
every caller gets the same behaviour:

* :func:`read_image` fully decodes a file (a truncated JPEG fails here, not later in the model)
  and keeps its dtype (8-bit stays ``uint8``, 16-bit PNG/TIFF stay ``uint16``, float TIFF stays
  float). Every failure is an :class:`ImageReadError` whose message is one line naming the file.
* :func:`image_info` reports the codec and, for a JPEG, the IJG quality estimated from its
  quantisation tables.
* :func:`write_image` and :func:`write_zarr` are atomic (a temporary file or folder beside the
  target is moved into place, and removed on failure) and never overwrite unless asked.
* :func:`open_zarr` opens a zarr array or a multiscale OME-Zarr group lazily as dask.

Decisions worth knowing:

* Pixels are returned in stored order: the EXIF orientation tag is *not* applied, so the 8×8
  JPEG block grid stays anchored at the top-left pixel, where the model expects it.
* WebP has no grayscale mode and Pillow decodes every WebP as RGB(A). An RGB WebP whose three
  channels agree to within 1 everywhere (lossy WebP rounds each channel of a neutral-chroma
  pixel separately) is returned as H×W luma, so a grayscale image survives a WebP round trip.
* A palette image is expanded to RGB (RGBA if it has transparency); gray+alpha becomes RGBA;
  CMYK/YCbCr JPEGs become RGB.
* Pillow cannot decode or encode 16-bit *colour* PNG (it silently drops to 8 bits), so those
  are handled by a small built-in PNG codec and stay ``uint16``.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import shutil
import struct
import tempfile
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from napari_cisr.metadata import PhotoMetadata

__all__ = [
    "IMAGE_SUFFIXES",
    "WRITE_SUFFIXES",
    "ImageReadError",
    "check_output_path",
    "ensure_decoder",
    "estimate_jpeg_quality",
    "image_info",
    "open_zarr",
    "read_image",
    "write_image",
    "write_json",
    "write_zarr",
]

#: File suffixes :func:`write_image` writes, mapped to their codec name.
WRITE_SUFFIXES: dict[str, str] = {
    ".jpg": "jpeg",
    ".jpeg": "jpeg",
    ".webp": "webp",
    ".png": "png",
    ".tif": "tiff",
    ".tiff": "tiff",
}

#: File suffixes :func:`read_image` understands, mapped to their codec name: those it writes,
#: plus AVIF (Pillow's own decoder) and HEIC/HEIF and JPEG XL (the optional plugins of
#: ``pip install 'napari-cisr[formats]'``: pillow-heif, pillow-jxl-plugin).
IMAGE_SUFFIXES: dict[str, str] = {
    **WRITE_SUFFIXES,
    ".avif": "avif",
    ".heic": "heif",
    ".heif": "heif",
    ".jxl": "jxl",
}

#: The optional decoders: codec → (module that registers it with Pillow, package to install).
_PLUGINS = {"heif": ("pillow_heif", "pillow-heif"), "jxl": ("pillow_jxl", "pillow-jxl-plugin")}

_CODEC_NAMES = {
    "jpeg": "JPEG", "webp": "WebP", "png": "PNG", "tiff": "TIFF", "avif": "AVIF",
    "heif": "HEIF", "jxl": "JPEG XL",
}  # fmt: skip
_PIL_FORMATS = {"jpeg": "JPEG", "webp": "WEBP", "png": "PNG"}
_CODEC_FROM_PIL = {
    "JPEG": "jpeg", "MPO": "jpeg", "WEBP": "webp", "PNG": "png", "TIFF": "tiff", "AVIF": "avif",
    "HEIF": "heif", "JXL": "jxl",
}  # fmt: skip


def ensure_decoder(path: str | os.PathLike, codec: str) -> None:
    """Make Pillow able to decode ``codec``, or raise :class:`ImageReadError` saying what to
    install (HEIF and JPEG XL come from optional plugins; AVIF needs a Pillow built with it)."""
    if codec in _PLUGINS:
        module, package = _PLUGINS[codec]
        try:
            plugin = importlib.import_module(module)
        except ImportError:
            raise ImageReadError(
                path,
                f"reading {_CODEC_NAMES[codec]} needs the optional package {package} "
                "(pip install 'napari-cisr[formats]')",
            ) from None
        if codec == "heif":
            plugin.register_heif_opener()
    elif codec == "avif":
        from PIL import features

        if not features.check("avif"):
            raise ImageReadError(path, "this Pillow cannot decode AVIF (Pillow >= 11.2 can)")


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


class ImageReadError(ValueError):
    """A file could not be read as an image.

    ``str(error)`` is one line naming the file and the problem, e.g.
    ``cannot read 'photo.jpg': truncated JPEG data``.

    Parameters
    ----------
    path : str or os.PathLike
        The file that could not be read.
    problem : str
        What went wrong, lower case, no trailing full stop.
    """

    def __init__(self, path: str | os.PathLike, problem: str) -> None:
        self.path = os.fspath(path)
        self.problem = " ".join(str(problem).split())  # always one line
        super().__init__(f"cannot read {self.path!r}: {self.problem}")


# --------------------------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------------------------


def _check_readable(path: Path) -> str:
    """Return the codec for ``path`` or raise :class:`ImageReadError`."""
    codec = IMAGE_SUFFIXES.get(path.suffix.lower())
    if codec is None:
        expected = ", ".join(sorted(IMAGE_SUFFIXES))
        raise ImageReadError(path, f"unsupported file type {path.suffix!r} (expected {expected})")
    if not path.exists():
        raise ImageReadError(path, "no such file")
    if path.is_dir():
        raise ImageReadError(path, "is a folder, not an image file")
    if path.stat().st_size == 0:
        raise ImageReadError(path, "file is empty")
    return codec


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read a JPEG, WebP, PNG or TIFF file into a numpy array.

    Parameters
    ----------
    path : str or os.PathLike
        A ``.jpg``, ``.jpeg``, ``.webp``, ``.png``, ``.tif`` or ``.tiff`` file, or ``.avif``,
        ``.heic``/``.heif``, ``.jxl`` (see :data:`IMAGE_SUFFIXES`). The content decides the
        decoder (a PNG named ``.jpg`` still reads); the suffix must be one of these.

    Returns
    -------
    numpy.ndarray
        H×W (grayscale), H×W×3 (RGB) or H×W×4 (RGBA) for JPEG/WebP/PNG, in stored pixel order
        (EXIF orientation not applied). dtype is the file's: ``uint8``, ``uint16`` for 16-bit
        PNG/TIFF, float for float TIFF. A TIFF may hold more dimensions (a stack); it is
        returned as tifffile reads it (samples last).

    Raises
    ------
    ImageReadError
        The file is missing, empty, truncated, corrupt, not an image, or of an unsupported
        type. The message is one line naming the file.
    """
    p = Path(path)
    codec = _check_readable(p)
    if codec == "tiff":
        return _read_tiff(p)
    if codec == "png":
        header = _png_header(p)
        if header is not None and header["bit_depth"] == 16 and header["color_type"] in (2, 4, 6):
            return _read_png16(p)
    ensure_decoder(p, codec)
    return _read_pillow(p, codec)


def _read_tiff(path: Path) -> np.ndarray:
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            if not tif.series:
                raise ImageReadError(path, "TIFF file holds no image")
            arr = tif.series[0].asarray()
    except ImageReadError:
        raise
    except tifffile.TiffFileError as e:
        raise ImageReadError(path, f"not a valid TIFF image ({e})") from e
    except (OSError, ValueError, EOFError, IndexError, KeyError, struct.error) as e:
        raise ImageReadError(
            path, f"corrupt or truncated TIFF data ({type(e).__name__}: {e})"
        ) from e
    return np.ascontiguousarray(arr)


def _read_pillow(path: Path, codec: str) -> np.ndarray:
    from PIL import Image, ImageFile, UnidentifiedImageError

    ImageFile.LOAD_TRUNCATED_IMAGES = False
    fmt = ""
    try:
        with Image.open(path) as img:
            fmt = img.format or ""
            img.load()
            arr = _pillow_to_array(img)
    except UnidentifiedImageError as e:
        raise ImageReadError(path, "not an image (or a format Pillow cannot decode)") from e
    except (OSError, SyntaxError, ValueError, EOFError, struct.error) as e:
        actual = _CODEC_FROM_PIL.get(fmt, codec)
        msg = str(e).lower()
        name = _CODEC_NAMES[actual]
        if (
            "truncated" in msg
            or "broken data stream" in msg
            or isinstance(e, EOFError)
            or _riff_truncated(path)
        ):
            raise ImageReadError(path, f"truncated {name} data") from e
        raise ImageReadError(path, f"corrupt {name} data ({e})") from e
    if _CODEC_FROM_PIL.get(fmt) == "webp" and arr.ndim == 3 and arr.shape[2] == 3:
        arr = _collapse_gray_webp(arr)
    return arr


def _riff_truncated(path: Path) -> bool:
    """True for a RIFF (WebP) file shorter than its header says."""
    with open(path, "rb") as f:
        head = f.read(12)
    if len(head) < 12 or head[:4] != b"RIFF":
        return False
    (size,) = struct.unpack("<I", head[4:8])
    return path.stat().st_size < size + 8


def _collapse_gray_webp(rgb: np.ndarray) -> np.ndarray:
    """Return H×W luma if the RGB channels agree to within 1 (a grayscale WebP), else ``rgb``.

    Lossy WebP stores YUV 4:2:0; a grayscale source has neutral chroma but the YUV→RGB
    conversion rounds each channel separately, so the channels differ by up to 1.
    """
    c = rgb.astype(np.int32)
    if np.abs(c[..., 0] - c[..., 1]).max() > 1 or np.abs(c[..., 2] - c[..., 1]).max() > 1:
        return rgb
    luma = (299 * c[..., 0] + 587 * c[..., 1] + 114 * c[..., 2] + 500) // 1000  # ITU-R 601
    return luma.astype(np.uint8)


def _pillow_to_array(img: Any) -> np.ndarray:
    mode = img.mode
    if mode in ("L", "RGB", "RGBA", "F") or mode.startswith("I;16"):
        arr = np.asarray(img)
        if mode.startswith("I;16"):
            arr = arr.astype(np.uint16, copy=False)
        return np.ascontiguousarray(arr)
    if mode == "I":  # 32-bit int; 16-bit grayscale PNGs arrive like this in older Pillow
        arr = np.asarray(img)
        if arr.size == 0 or (arr.min() >= 0 and arr.max() <= 65535):
            return arr.astype(np.uint16)
        return np.ascontiguousarray(arr)
    if mode == "1":
        return np.asarray(img.convert("L"))
    if mode in ("P", "PA"):
        has_alpha = mode == "PA" or "transparency" in img.info
        return np.asarray(img.convert("RGBA" if has_alpha else "RGB"))
    if mode == "LA":
        return np.asarray(img.convert("RGBA"))
    return np.asarray(img.convert("RGB"))  # CMYK, YCbCr, LAB, HSV, RGBX, ...


# --------------------------------------------------------------------------------------------
# 16-bit colour PNG (Pillow would silently reduce it to 8 bits)
# --------------------------------------------------------------------------------------------


def _png_chunks(data: bytes):
    pos = 8
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        ctype = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        if len(body) < length:
            raise EOFError("truncated chunk")
        yield ctype, body
        pos += 12 + length
        if ctype == b"IEND":
            return
    raise EOFError("no IEND chunk")


def _png_header(path: Path) -> dict[str, int] | None:
    with open(path, "rb") as f:
        head = f.read(33)
    if len(head) < 33 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return None
    width, height, bit_depth, color_type, _, _, interlace = struct.unpack(">IIBBBBB", head[16:29])
    return {
        "width": width,
        "height": height,
        "bit_depth": bit_depth,
        "color_type": color_type,
        "interlace": interlace,
    }


def _read_png16(path: Path) -> np.ndarray:
    """Decode a non-interlaced 16-bit gray+alpha, RGB or RGBA PNG to ``uint16``."""
    header = _png_header(path)
    assert header is not None
    if header["interlace"]:
        raise ImageReadError(path, "interlaced 16-bit colour PNG is not supported")
    channels = {2: 3, 4: 2, 6: 4}[header["color_type"]]
    h, w = header["height"], header["width"]
    try:
        data = path.read_bytes()
        idat = b"".join(body for ctype, body in _png_chunks(data) if ctype == b"IDAT")
        raw = zlib.decompress(idat)
    except (EOFError, zlib.error) as e:
        raise ImageReadError(path, "truncated PNG data") from e
    bpp = 2 * channels
    stride = w * bpp
    if len(raw) < h * (stride + 1):
        raise ImageReadError(path, "truncated PNG data")
    rows = np.frombuffer(raw, np.uint8, count=h * (stride + 1)).reshape(h, stride + 1)
    filters = rows[:, 0]
    if filters.max(initial=0) > 4:
        raise ImageReadError(path, f"corrupt PNG data (filter type {int(filters.max())})")
    out = _unfilter(rows[:, 1:].reshape(h, w, bpp), filters)
    arr = out.view(">u2").reshape(h, w, channels).astype(np.uint16)
    if channels == 2:  # gray + alpha -> RGBA, as for 8-bit
        arr = np.concatenate([arr[..., :1]] * 3 + [arr[..., 1:]], axis=-1)
    return arr


def _unfilter(filtered: np.ndarray, filters: np.ndarray) -> np.ndarray:
    """Undo the PNG scanline filters of an H×W×bpp byte array (row ``y`` used ``filters[y]``).

    Byte (y, x) depends on its left (y, x−1), upper (y−1, x) and upper-left neighbours (the
    Sub, Up, Average and Paeth predictors), so every pixel of an anti-diagonal y + x = d can be
    decoded at once from the two diagonals before it: h + w − 1 vectorised steps instead of a
    Python loop over every byte of the Average/Paeth rows. The work is laid out by diagonal
    (``skewed[d, y] = pixel (y, d − y)``) so that each step reads and writes plain slices.

    Returns
    -------
    ndarray
        uint8, H×(W·bpp): the raw scanlines.
    """
    h, w, bpp = filtered.shape
    rows, cols = np.mgrid[0:h, 0:w]
    # Diagonal-major, with one zero diagonal and one zero row in front: the "prior" of the
    # first row and the left neighbour of the first pixel are 0 in PNG.
    skewed = np.zeros((h + w, h + 1, bpp), np.int16)
    data = np.zeros((h + w, h + 1, bpp), np.int16)
    data[rows + cols + 1, rows + 1] = filtered
    kind = np.zeros(h + 1, np.int16)
    kind[1:] = filters
    for d in range(1, h + w):
        y0, y1 = max(1, d - w + 1), min(h, d) + 1  # rows (1-based) on this diagonal
        a = skewed[d - 1, y0:y1]  # left: previous diagonal, same row
        b = skewed[d - 1, y0 - 1 : y1 - 1]  # up: previous diagonal, row above
        c = skewed[d - 2, y0 - 1 : y1 - 1] if d >= 2 else np.zeros_like(a)  # up-left
        p = a + b - c
        pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - c)
        paeth = np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))
        t = kind[y0:y1, None]
        predictor = np.select([t == 0, t == 1, t == 2, t == 3], [0, a, b, (a + b) >> 1], paeth)
        skewed[d, y0:y1] = (data[d, y0:y1] + predictor) & 0xFF
    return skewed[rows + cols + 1, rows + 1].astype(np.uint8).reshape(h, w * bpp)


_XMP_KEYWORD = "XML:com.adobe.xmp"


def _encode_png16(arr: np.ndarray, metadata: PhotoMetadata | None = None) -> bytes:
    """Encode an H×W×3 or H×W×4 ``uint16`` array as PNG (filter 0, zlib level 6), with the
    profile (iCCP), EXIF (eXIf) and XMP (iTXt) of ``metadata``."""
    h, w, c = arr.shape
    color_type = {3: 2, 4: 6}[c]
    body = np.ascontiguousarray(arr.astype(">u2")).view(np.uint8).reshape(h, w * c * 2)
    raw = np.concatenate([np.zeros((h, 1), np.uint8), body], axis=1).tobytes()

    def chunk(ctype: bytes, payload: bytes) -> bytes:
        crc = zlib.crc32(ctype + payload) & 0xFFFFFFFF
        return struct.pack(">I", len(payload)) + ctype + payload + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", w, h, 16, color_type, 0, 0, 0)
    extra = b""  # the PNG specification puts iCCP and eXIf before the first IDAT
    if metadata is not None and metadata.icc_profile:
        extra += chunk(b"iCCP", b"ICC Profile\0\0" + zlib.compress(metadata.icc_profile))
    if metadata is not None and metadata.exif:
        extra += chunk(b"eXIf", metadata.exif.removeprefix(b"Exif\0\0"))
    if metadata is not None and metadata.xmp:
        extra += chunk(b"iTXt", _XMP_KEYWORD.encode() + b"\0\0\0\0\0" + metadata.xmp)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + extra
        + chunk(b"IDAT", zlib.compress(raw, 6))
        + chunk(b"IEND", b"")
    )


# --------------------------------------------------------------------------------------------
# info and JPEG quality
# --------------------------------------------------------------------------------------------


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
    codec = _check_readable(p)
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
                "codec": _CODEC_FROM_PIL.get(fmt, fmt.lower()),
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
        header = _png_header(p)
        if header is not None:
            info["bit_depth"] = header["bit_depth"]
    if info["codec"] == "webp":
        info.update(_webp_kind(p))
    return info


# --------------------------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------------------------


def default_mode(is_dir: bool) -> int:
    """The permissions a plain ``open``/``mkdir`` would give under the current umask.

    ``mkstemp``/``mkdtemp`` create owner-only temporaries; an output moved into place from one
    must get what the user's umask says instead.
    """
    umask = os.umask(0)  # reading the umask means setting it: set it straight back
    os.umask(umask)
    return (0o777 if is_dir else 0o666) & ~umask


@contextlib.contextmanager
def _atomic_target(path: Path, overwrite: bool, *, is_dir: bool = False):
    """Yield a temporary path beside ``path``; move it into place on success."""
    path = Path(path)
    if not overwrite and (path.exists() or path.is_symlink()):
        raise FileExistsError(f"refusing to overwrite {os.fspath(path)!r} (pass overwrite=True)")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise FileNotFoundError(
            f"cannot write {os.fspath(path)!r}: folder {str(parent)!r} does not exist"
        )
    if is_dir:
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=parent))
        shutil.rmtree(tmp)  # writers create it themselves
    else:
        fd, name = tempfile.mkstemp(
            prefix=f".{path.name}.", suffix=f".tmp{path.suffix}", dir=parent
        )
        os.close(fd)
        tmp = Path(name)
    try:
        yield tmp
        if tmp.exists():
            os.chmod(tmp, default_mode(is_dir))
        _move_into_place(tmp, path, overwrite, is_dir)
    except BaseException:
        if tmp.is_dir() and not tmp.is_symlink():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        raise


def _move_into_place(tmp: Path, path: Path, overwrite: bool, is_dir: bool) -> None:
    if not is_dir:
        if overwrite:
            os.replace(tmp, path)
            return
        try:  # a hard link fails if the target appeared meanwhile: no clobbering race
            os.link(tmp, path)
        except FileExistsError:
            raise FileExistsError(
                f"refusing to overwrite {os.fspath(path)!r} (pass overwrite=True)"
            ) from None
        except OSError:  # file system without hard links
            if path.exists():
                raise FileExistsError(
                    f"refusing to overwrite {os.fspath(path)!r} (pass overwrite=True)"
                ) from None
            os.replace(tmp, path)
            return
        tmp.unlink()
        return
    # folders: os.replace cannot replace a non-empty folder, so move the old one aside first
    old = None
    if path.exists():
        if not overwrite:
            raise FileExistsError(
                f"refusing to overwrite {os.fspath(path)!r} (pass overwrite=True)"
            )
        old = path.with_name(f".{path.name}.old-{os.getpid()}")
        os.replace(path, old)
    try:
        os.replace(tmp, path)
    except BaseException:
        if old is not None:
            os.replace(old, path)
        raise
    if old is not None:
        if old.is_dir():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink()


def check_output_path(path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Refuse, before any work, an image path that :func:`write_image` would refuse later.

    Checks the suffix, the overwrite policy, and that the folder exists and takes a new file
    (by creating and removing one: permission bits say nothing to root or on a read-only mount).

    Raises
    ------
    FileExistsError
        When the path exists and ``overwrite`` is False.
    ValueError
        Otherwise: one line naming the path and the problem.
    """
    p = Path(path)
    if WRITE_SUFFIXES.get(p.suffix.lower()) is None:
        expected = ", ".join(sorted(WRITE_SUFFIXES))
        raise ValueError(f"cannot write {os.fspath(p)!r}: unsupported suffix (expected {expected})")
    if not overwrite and (p.exists() or p.is_symlink()):
        raise FileExistsError(f"{os.fspath(p)!r} exists; pass --overwrite to replace it")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise ValueError(f"cannot write {os.fspath(p)!r}: folder {str(parent)!r} does not exist")
    try:
        handle, probe = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".probe", dir=parent)
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise ValueError(f"cannot write {os.fspath(p)!r}: {reason.lower()}") from None
    os.close(handle)
    os.unlink(probe)
    return p


def write_json(path: str | os.PathLike, data: Any) -> Path:
    """Write ``data`` as indented JSON, atomically, replacing ``path`` if it exists (a report)."""
    p = Path(path)
    with _atomic_target(p, overwrite=True) as tmp:
        tmp.write_text(json.dumps(data, indent=2) + "\n")
    return p


def _check_2d_image(arr: np.ndarray, fmt: str) -> None:
    if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] in (3, 4))):
        raise ValueError(
            f"{fmt} stores an H×W, H×W×3 or H×W×4 image, got shape {arr.shape}; use .tif or .zarr"
        )


def write_image(
    path: str | os.PathLike,
    array: Any,
    *,
    overwrite: bool = False,
    quality: int | None = None,
    metadata: PhotoMetadata | None = None,
) -> Path:
    """Write an image atomically, choosing the format from the suffix.

    Parameters
    ----------
    path : str or os.PathLike
        Target file: ``.png``, ``.tif``/``.tiff``, ``.jpg``/``.jpeg`` or ``.webp``.
    array : array-like
        H×W, H×W×3 or H×W×4. PNG takes ``uint8`` or ``uint16`` (16-bit colour included);
        JPEG takes ``uint8`` H×W or H×W×3; WebP takes ``uint8`` H×W×3/×4 (H×W is written as
        RGB); TIFF takes any dtype and any number of dimensions (the last one is samples when
        it is 3 or 4). A dask array is computed first.
    overwrite : bool, optional
        Replace an existing file. Default False.
    quality : int, optional
        JPEG/WebP quality 1..100 (default 95 for JPEG, 90 for WebP; JPEG uses 4:2:0
        subsampling as Pillow does by default). Ignored for PNG and TIFF.
    metadata : napari_cisr.metadata.PhotoMetadata, optional
        Embedded as the format allows: the ICC profile in every format; EXIF (orientation
        included) and XMP in JPEG, WebP and PNG; the orientation tag and XMP in TIFF. Pass
        what :meth:`~napari_cisr.metadata.PhotoMetadata.for_output` returns, so that the
        dimensions and the profile's colour space match ``array``.

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    FileExistsError
        ``path`` exists and ``overwrite`` is False.
    ValueError
        Unsupported suffix, or a dtype/shape the format cannot store.
    """
    p = Path(path)
    codec = WRITE_SUFFIXES.get(p.suffix.lower())
    if codec is None:
        expected = ", ".join(sorted(WRITE_SUFFIXES))
        raise ValueError(f"cannot write {os.fspath(p)!r}: unsupported suffix (expected {expected})")
    arr = np.asarray(array)
    if arr.dtype == bool:
        arr = arr.astype(np.uint8) * 255

    if codec == "tiff":
        import tifffile

        photometric = "rgb" if arr.ndim >= 3 and arr.shape[-1] in (3, 4) else "minisblack"
        extras = (
            {"extrasamples": ["unassalpha"]} if photometric == "rgb" and arr.shape[-1] == 4 else {}
        )
        if metadata is not None:
            extras.update(_tiff_metadata(metadata))
        with _atomic_target(p, overwrite) as tmp:
            tifffile.imwrite(tmp, arr, photometric=photometric, **extras)
        return p

    name = {"png": "PNG", "jpeg": "JPEG", "webp": "WebP"}[codec]
    _check_2d_image(arr, name)
    allowed = (np.uint8, np.uint16) if codec == "png" else (np.uint8,)
    if arr.dtype not in allowed:
        kinds = " or ".join(np.dtype(d).name for d in allowed)
        raise ValueError(
            f"{name} stores {kinds} pixels, got {arr.dtype}; use .tif for other dtypes"
        )
    if codec == "jpeg" and arr.ndim == 3 and arr.shape[2] == 4:
        raise ValueError("JPEG cannot store an alpha channel; use .png, .webp or .tif")
    if quality is not None and not 1 <= int(quality) <= 100:
        raise ValueError(f"quality must be in 1..100, got {quality}")

    from PIL import Image

    with _atomic_target(p, overwrite) as tmp:
        if codec == "png" and arr.dtype == np.uint16 and arr.ndim == 3:
            tmp.write_bytes(_encode_png16(arr, metadata))
        else:
            if codec == "png" and arr.dtype == np.uint16:
                img = Image.fromarray(np.ascontiguousarray(arr))  # I;16
            elif codec == "webp" and arr.ndim == 2:
                img = Image.fromarray(arr).convert("RGB")
            else:
                img = Image.fromarray(np.ascontiguousarray(arr))
            kwargs: dict[str, Any] = {}
            if codec == "jpeg":
                kwargs["quality"] = 95 if quality is None else int(quality)
            elif codec == "webp":
                kwargs["quality"] = 90 if quality is None else int(quality)
            if metadata is not None:
                kwargs.update(_pillow_metadata(metadata, codec))
            img.save(tmp, format=_PIL_FORMATS[codec], **kwargs)
    return p


def _pillow_metadata(metadata: PhotoMetadata, codec: str) -> dict[str, Any]:
    """Pillow ``save`` keywords that embed ``metadata`` in a JPEG, WebP or PNG."""
    kwargs: dict[str, Any] = {}
    if metadata.icc_profile:
        kwargs["icc_profile"] = metadata.icc_profile
    if metadata.exif:
        kwargs["exif"] = metadata.exif
    if metadata.xmp:
        if codec == "png":  # PNG keeps XMP in an iTXt chunk, not as a save keyword
            from PIL.PngImagePlugin import PngInfo

            info = PngInfo()
            info.add_itxt(_XMP_KEYWORD, metadata.xmp.decode("utf-8", "replace"))
            kwargs["pnginfo"] = info
        else:
            kwargs["xmp"] = metadata.xmp
    return kwargs


def _tiff_metadata(metadata: PhotoMetadata) -> dict[str, Any]:
    """tifffile ``imwrite`` keywords that embed ``metadata`` (profile, orientation, XMP)."""
    from napari_cisr.metadata import ORIENTATION_TAG, TIFF_XMP_TAG

    extratags: list[tuple[int, int | str, int, Any, bool]] = []
    if metadata.orientation != 1:
        extratags.append((ORIENTATION_TAG, "H", 1, metadata.orientation, True))
    if metadata.xmp:
        extratags.append((TIFF_XMP_TAG, 1, len(metadata.xmp), metadata.xmp, True))
    kwargs: dict[str, Any] = {"extratags": extratags} if extratags else {}
    if metadata.icc_profile:
        kwargs["iccprofile"] = metadata.icc_profile
    return kwargs


# --------------------------------------------------------------------------------------------
# zarr
# --------------------------------------------------------------------------------------------


def _zarr_attrs(path: Path) -> dict[str, Any]:
    for name in ("zarr.json", ".zattrs"):
        f = path / name
        if f.is_file():
            meta = json.loads(f.read_text())
            return meta.get("attributes", {}) if name == "zarr.json" else meta
    return {}


def _is_zarr_array(path: Path) -> bool:
    if (path / ".zarray").is_file():
        return True
    f = path / "zarr.json"
    return f.is_file() and json.loads(f.read_text()).get("node_type") == "array"


def ome_multiscales(path: str | os.PathLike) -> dict[str, Any] | None:
    """Return the first OME-Zarr ``multiscales`` entry of a group, or None.

    Understands OME-NGFF 0.4 (``multiscales`` in the group attributes) and 0.5 (under ``ome``).

    Parameters
    ----------
    path : str or os.PathLike
        A zarr group folder.

    Returns
    -------
    dict or None
        The entry (with ``datasets``, and ``axes``/``coordinateTransformations`` when present).
    """
    attrs = _zarr_attrs(Path(path))
    ms = attrs.get("multiscales") or attrs.get("ome", {}).get("multiscales")
    return ms[0] if ms else None


def open_zarr(path: str | os.PathLike) -> Any:
    """Open a zarr array, or a multiscale (OME-)Zarr group, lazily as dask.

    Parameters
    ----------
    path : str or os.PathLike
        A folder holding a zarr v2 or v3 array, or a group. A group with OME-Zarr
        ``multiscales`` metadata gives its datasets in the listed order; a group without it
        gives its arrays sorted from largest to smallest (a pyramid), or the single array it
        holds.

    Returns
    -------
    dask.array.Array or list of dask.array.Array
        One lazy array, or the levels of a multiscale image, highest resolution first.

    Raises
    ------
    ImageReadError
        Not a zarr store, or a group holding no arrays.
    """
    import dask.array as da

    p = Path(path)
    if not p.is_dir():
        raise ImageReadError(p, "no such zarr folder" if not p.exists() else "not a zarr folder")
    if _is_zarr_array(p):
        return da.from_zarr(os.fspath(p))
    if not ((p / ".zgroup").is_file() or (p / "zarr.json").is_file()):
        raise ImageReadError(p, "not a zarr array or group (no .zarray, .zgroup or zarr.json)")
    ms = ome_multiscales(p)
    if ms is not None:
        levels = [da.from_zarr(os.fspath(p / d["path"])) for d in ms["datasets"]]
    else:
        levels = [
            da.from_zarr(os.fspath(child))
            for child in sorted(p.iterdir())
            if child.is_dir() and _is_zarr_array(child)
        ]
        levels.sort(key=lambda a: -int(np.prod(a.shape)))
    if not levels:
        raise ImageReadError(p, "zarr group holds no arrays")
    if len(levels) == 1:
        return levels[0]
    return levels


def write_zarr(
    path: str | os.PathLike,
    array: Any,
    *,
    chunks: Any = None,
    overwrite: bool = False,
    attrs: dict[str, Any] | None = None,
) -> Path:
    """Write an array to a zarr store chunk by chunk, atomically.

    The data go through :func:`dask.array.to_zarr`, so a lazy (dask) array is computed one
    chunk at a time and never held in memory whole. They are written to a temporary folder
    beside ``path`` that is moved into place at the end (and removed on failure).

    Parameters
    ----------
    path : str or os.PathLike
        Target folder, conventionally ending in ``.zarr``.
    array : numpy.ndarray or dask.array.Array
        The data, any shape and dtype.
    chunks : tuple or str, optional
        Chunk shape to store. Default: the dask array's chunks (made regular if needed), or
        for numpy 512×512 spatial chunks with any trailing RGB(A) axis kept whole.
    overwrite : bool, optional
        Replace an existing store. Default False.
    attrs : dict, optional
        JSON attributes stored with the array.

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    FileExistsError
        ``path`` exists and ``overwrite`` is False.
    """
    import dask.array as da

    p = Path(path)
    if isinstance(array, da.Array):
        arr = array
        if chunks is not None:
            arr = arr.rechunk(chunks)
        elif any(len(set(c[:-1])) > 1 or (len(c) > 1 and c[-1] > c[0]) for c in arr.chunks):
            arr = arr.rechunk(arr.chunksize)  # zarr needs regular chunks
    else:
        np_arr = np.asarray(array)
        if chunks is None:
            rgb = np_arr.ndim >= 3 and np_arr.shape[-1] in (3, 4)
            n_spatial = np_arr.ndim - int(rgb)
            chunks = [1] * max(n_spatial - 2, 0) + [512] * min(n_spatial, 2)
            chunks += list(np_arr.shape[n_spatial:])
        arr = da.from_array(np_arr, chunks=chunks)
    with _atomic_target(p, overwrite, is_dir=True) as tmp:
        da.to_zarr(arr, os.fspath(tmp), compute=True)
        if attrs:
            import zarr

            zarr.open_array(os.fspath(tmp), mode="r+").attrs.update(attrs)
    return p

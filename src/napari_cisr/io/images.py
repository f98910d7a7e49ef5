"""Reading and writing image files (JPEG, WebP, PNG, TIFF; AVIF/HEIF/JPEG XL read only)."""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from napari_cisr.io.atomic import atomic_target, unwritable_reason
from napari_cisr.io.formats import (
    CODEC_FROM_PIL,
    CODEC_NAMES,
    WRITE_SUFFIXES,
    ImageReadError,
    WriteSettings,
    check_readable,
    ensure_decoder,
)
from napari_cisr.io.png16 import XMP_KEYWORD, encode_png16, is_png16_colour, read_png16
from napari_cisr.io.tiff import write_tiff

if TYPE_CHECKING:
    from napari_cisr.metadata import PhotoMetadata


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
    codec = check_readable(p)
    if codec == "tiff":
        return _read_tiff(p)
    if codec == "png" and is_png16_colour(p):
        return read_png16(p)
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
        actual = CODEC_FROM_PIL.get(fmt, codec)
        msg = str(e).lower()
        name = CODEC_NAMES[actual]
        if (
            "truncated" in msg
            or "broken data stream" in msg
            or isinstance(e, EOFError)
            or _riff_truncated(path)
        ):
            raise ImageReadError(path, f"truncated {name} data") from e
        raise ImageReadError(path, f"corrupt {name} data ({e})") from e
    if CODEC_FROM_PIL.get(fmt) == "webp" and arr.ndim == 3 and arr.shape[2] == 3:
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
    reason = unwritable_reason(parent)
    if reason is not None:
        raise ValueError(f"cannot write {os.fspath(p)!r}: {reason}")
    return p


def write_image(
    path: str | os.PathLike,
    array: Any,
    *,
    overwrite: bool = False,
    quality: int | None = None,
    metadata: PhotoMetadata | None = None,
    attrs: dict[str, Any] | None = None,
) -> Path:
    """Write an image atomically, choosing the format from the suffix.

    Parameters
    ----------
    path : str or os.PathLike
        Target file: ``.png``, ``.tif``/``.tiff``, ``.jpg``/``.jpeg``, ``.webp`` or ``.avif``.
    array : array-like
        H×W, H×W×3 or H×W×4. PNG takes ``uint8`` or ``uint16`` (16-bit colour included);
        JPEG takes ``uint8`` H×W or H×W×3; WebP and AVIF take ``uint8`` H×W×3/×4 (H×W is
        written as RGB); TIFF takes any dtype and any number of dimensions (the last one is
        samples when it is 3 or 4). A dask array is computed first.
    overwrite : bool, optional
        Replace an existing file. Default False.
    quality : int, optional
        JPEG/WebP/AVIF quality 1..100 (default 95 for JPEG, 90 for WebP and AVIF; JPEG and
        AVIF use 4:2:0 subsampling as Pillow does by default). Ignored for PNG and TIFF.
    metadata : napari_cisr.metadata.PhotoMetadata, optional
        Embedded as the format allows: the ICC profile, the EXIF orientation and XMP in every
        format; the EXIF block in JPEG, WebP, AVIF and PNG, and in TIFF as TIFF keeps EXIF
        (the camera's text tags such as Make, Model and DateTime in the image's own tags, the
        EXIF and GPS sub-IFDs beside it). Pass what
        :meth:`~napari_cisr.metadata.PhotoMetadata.for_output` returns, so that the
        dimensions and the profile's colour space match ``array``.
    attrs : dict, optional
        TIFF only: JSON-able attributes stored in the ImageDescription tag as tifffile's
        "shaped" JSON (beside the ``shape`` it writes anyway) and read back by
        :func:`napari_cisr.io.info.tiff_attrs`; the napari writer keeps a layer's settings
        there, as :func:`~napari_cisr.io.write_zarr` does in a store's attributes.

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    FileExistsError
        ``path`` exists and ``overwrite`` is False.
    ValueError
        Unsupported suffix, a dtype/shape the format cannot store, or ``attrs`` for a format
        other than TIFF.
    """
    p = Path(path)
    codec = WRITE_SUFFIXES.get(p.suffix.lower())
    if codec is None:
        expected = ", ".join(sorted(WRITE_SUFFIXES))
        raise ValueError(f"cannot write {os.fspath(p)!r}: unsupported suffix (expected {expected})")
    if attrs and codec != "tiff":
        raise ValueError(f"cannot write {os.fspath(p)!r}: only TIFF stores attributes")
    arr = np.asarray(array)
    if arr.dtype == bool:
        arr = arr.astype(np.uint8) * 255
    if codec != "tiff":
        _check_flat_image(arr, codec)
        if quality is not None and not 1 <= int(quality) <= 100:
            raise ValueError(f"quality must be in 1..100, got {quality}")
    write = _WRITERS[codec]
    with atomic_target(p, overwrite) as tmp:
        write(tmp, arr, WriteSettings(codec, quality, metadata, attrs))
    return p


def _check_flat_image(arr: np.ndarray, codec: str) -> None:
    """Refuse what a JPEG, WebP or PNG cannot store, before a temporary file exists."""
    name = CODEC_NAMES[codec]
    if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] in (3, 4))):
        raise ValueError(
            f"{name} stores an H×W, H×W×3 or H×W×4 image, got shape {arr.shape}; use .tif or .zarr"
        )
    allowed = (np.uint8, np.uint16) if codec == "png" else (np.uint8,)
    if arr.dtype not in allowed:
        kinds = " or ".join(np.dtype(d).name for d in allowed)
        raise ValueError(
            f"{name} stores {kinds} pixels, got {arr.dtype}; use .tif for other dtypes"
        )
    if codec == "jpeg" and arr.ndim == 3 and arr.shape[2] == 4:
        raise ValueError("JPEG cannot store an alpha channel; use .png, .webp or .tif")


def _write_pillow(tmp: Path, arr: np.ndarray, settings: WriteSettings) -> None:
    from PIL import Image

    codec, quality, metadata = settings.codec, settings.quality, settings.metadata
    if codec == "png" and arr.dtype == np.uint16 and arr.ndim == 3:
        tmp.write_bytes(encode_png16(arr, metadata))
        return
    if codec in ("webp", "avif") and arr.ndim == 2:
        img = Image.fromarray(arr).convert("RGB")
    else:
        img = Image.fromarray(np.ascontiguousarray(arr))  # uint16 H×W becomes I;16
    kwargs: dict[str, Any] = {}
    if codec in _DEFAULT_QUALITY:
        kwargs["quality"] = _DEFAULT_QUALITY[codec] if quality is None else int(quality)
    if metadata is not None:
        kwargs.update(_pillow_metadata(metadata, codec))
    img.save(tmp, format=_PIL_FORMATS[codec], **kwargs)


_PIL_FORMATS = {"jpeg": "JPEG", "webp": "WEBP", "png": "PNG", "avif": "AVIF"}
_DEFAULT_QUALITY = {"jpeg": 95, "webp": 90, "avif": 90}

#: codec → the function that writes an array to a temporary file in that format. A new output
#: format is one writer here and its suffix in :data:`~napari_cisr.io.formats.WRITE_SUFFIXES`.
_WRITERS = {
    "tiff": write_tiff, "jpeg": _write_pillow, "webp": _write_pillow, "png": _write_pillow,
    "avif": _write_pillow,
}  # fmt: skip


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
            info.add_itxt(XMP_KEYWORD, metadata.xmp.decode("utf-8", "replace"))
            kwargs["pnginfo"] = info
        else:
            kwargs["xmp"] = metadata.xmp
    return kwargs

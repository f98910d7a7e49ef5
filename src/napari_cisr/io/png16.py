"""16-bit colour PNG, which Pillow silently reduces to 8 bits: libpng through imagecodecs.

Only the metadata chunks are ours: imagecodecs encodes pixels only, so the profile (iCCP), EXIF
(eXIf) and XMP (iTXt) of a photo are spliced in after the header, where the PNG specification
wants them (before the first IDAT).
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from napari_cisr.io.formats import ImageReadError

if TYPE_CHECKING:
    from napari_cisr.metadata import PhotoMetadata

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
XMP_KEYWORD = "XML:com.adobe.xmp"
_IHDR_END = len(PNG_SIGNATURE) + 8 + 13 + 4  # signature, length + type, 13-byte body, CRC


def png_header(path: Path) -> dict[str, int] | None:
    """The IHDR fields of a PNG file (width, height, bit_depth, color_type, interlace), or
    None when ``path`` is not a PNG."""
    with open(path, "rb") as f:
        head = f.read(33)
    if len(head) < 33 or head[:8] != PNG_SIGNATURE or head[12:16] != b"IHDR":
        return None
    width, height, bit_depth, color_type, _, _, interlace = struct.unpack(">IIBBBBB", head[16:29])
    return {
        "width": width,
        "height": height,
        "bit_depth": bit_depth,
        "color_type": color_type,
        "interlace": interlace,
    }


def is_png16_colour(path: Path) -> bool:
    """True for a 16-bit gray+alpha, RGB or RGBA PNG: the kinds Pillow cannot keep at 16 bits."""
    header = png_header(path)
    return header is not None and header["bit_depth"] == 16 and header["color_type"] in (2, 4, 6)


def read_png16(path: Path) -> np.ndarray:
    """Decode a 16-bit gray+alpha, RGB or RGBA PNG to ``uint16`` H×W×3 or H×W×4 (gray+alpha
    becomes RGBA, as for 8-bit PNGs)."""
    import imagecodecs

    try:
        arr = imagecodecs.png_decode(path.read_bytes())
    except imagecodecs.PngError as e:
        raise ImageReadError(path, f"truncated or corrupt PNG data ({e})") from e
    arr = np.asarray(arr, dtype=np.uint16)
    if arr.ndim == 3 and arr.shape[2] == 2:
        arr = np.concatenate([arr[..., :1]] * 3 + [arr[..., 1:]], axis=-1)
    return np.ascontiguousarray(arr)


def _chunk(ctype: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(ctype + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + ctype + payload + struct.pack(">I", crc)


def encode_png16(arr: np.ndarray, metadata: PhotoMetadata | None = None) -> bytes:
    """Encode an H×W×3 or H×W×4 ``uint16`` array as PNG (zlib level 6), with the profile,
    EXIF and XMP of ``metadata``."""
    import imagecodecs

    encoded = bytes(imagecodecs.png_encode(np.ascontiguousarray(arr), level=6))
    extra = b""
    if metadata is not None and metadata.icc_profile:
        extra += _chunk(b"iCCP", b"ICC Profile\0\0" + zlib.compress(metadata.icc_profile))
    if metadata is not None and metadata.exif:
        extra += _chunk(b"eXIf", metadata.exif.removeprefix(b"Exif\0\0"))
    if metadata is not None and metadata.xmp:
        extra += _chunk(b"iTXt", XMP_KEYWORD.encode() + b"\0\0\0\0\0" + metadata.xmp)
    return encoded[:_IHDR_END] + extra + encoded[_IHDR_END:]

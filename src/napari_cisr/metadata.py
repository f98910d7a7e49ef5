"""What makes a photo its owner's, carried from an input file to its super-resolved output.

:func:`napari_cisr.io.read_image` returns pixels in stored order (the 8×8 JPEG grid must stay
anchored where the model expects it), so the EXIF orientation, the ICC colour profile and the
EXIF/XMP metadata are read here, apart from the pixels, and handed to
:func:`napari_cisr.io.write_image` with the output: a phone portrait stored sideways comes back
with the same orientation tag (or, with ``apply_orientation``, rotated upright and tagged 1), a
Display P3 photo keeps its profile, and the camera and GPS tags survive with the EXIF pixel
dimensions updated to the output's.

Metadata never fails a job: a file whose metadata cannot be parsed is processed without it, and
the reason is logged.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

__all__ = ["PhotoMetadata", "apply_orientation", "read_metadata"]

ORIENTATION_TAG = 0x0112
SOFTWARE_TAG = 0x0131
EXIF_IFD_TAG = 0x8769
GPS_IFD_TAG = 0x8825
INTEROP_IFD_TAG = 0xA005
PIXEL_X_DIMENSION_TAG = 0xA002
PIXEL_Y_DIMENSION_TAG = 0xA003
#: TIFF tags carried from a TIFF input and written to a TIFF output.
TIFF_XMP_TAG = 700
TIFF_ICC_TAG = 34675
#: The text tags of an EXIF block's first IFD that describe the photo rather than its pixel
#: layout, kept in a TIFF's own first IFD (EXIF is TIFF-structured): Make, Model, DateTime,
#: Artist, HostComputer, Copyright. ImageDescription is left out (tifffile keeps its JSON
#: there) and Software goes through tifffile's own ``software=``.
TIFF_EXIF_TEXT_TAGS = (0x010F, 0x0110, 0x0132, 0x013B, 0x013C, 0x8298)

#: ICC colour spaces (header bytes 16..20) an output of that many channels can carry.
_ICC_SPACE_FOR_CHANNELS = {1: b"GRAY", 3: b"RGB ", 4: b"RGB "}


@dataclass(frozen=True)
class PhotoMetadata:
    """The parts of a photo file that are not pixels.

    Attributes
    ----------
    orientation : int
        EXIF orientation 1..8 (1: stored upright).
    icc_profile : bytes or None
        The embedded ICC profile.
    exif : bytes or None
        The EXIF block as Pillow serialises it (``b"Exif\\0\\0"`` + TIFF structure).
    xmp : bytes or None
        The XMP packet (UTF-8 XML).
    mode : str
        The file's colour mode as Pillow names it ("RGB", "L", "CMYK", ...), "" when unknown.
    """

    orientation: int = 1
    icc_profile: bytes | None = None
    exif: bytes | None = None
    xmp: bytes | None = None
    mode: str = ""

    def for_output(self, width: int, height: int, channels: int, *, upright: bool) -> PhotoMetadata:
        """The metadata to write with an output of ``width``×``height`` and ``channels``.

        The EXIF pixel dimensions become the output's; ``upright`` (the pixels were rotated by
        :func:`apply_orientation`) resets the orientation to 1; an ICC profile of another
        colour space than the output's (a CMYK profile on an RGB output) is dropped. The EXIF
        thumbnail (IFD1, a small picture of the *input*) is not carried: the block is rewritten
        by Pillow, which writes IFD0 and its sub-IFDs only (``tests/test_metadata.py``).
        """
        orientation = 1 if upright else self.orientation
        icc = self.icc_profile
        if icc is not None and icc[16:20] != _ICC_SPACE_FOR_CHANNELS.get(channels):
            log.info(
                "dropping the %s ICC profile: the output has %d channel(s)",
                icc[16:20].decode("latin-1").strip(),
                channels,
            )
            icc = None
        exif = self.exif
        if exif is not None or orientation != 1:  # an orientation from a TIFF needs a block
            from PIL import Image

            tags = Image.Exif()
            if exif is not None:
                tags.load(exif)
            tags[ORIENTATION_TAG] = orientation
            sub_ifd = tags.get_ifd(EXIF_IFD_TAG)
            if sub_ifd:  # only a photo that states its dimensions gets them updated
                sub_ifd[PIXEL_X_DIMENSION_TAG] = width
                sub_ifd[PIXEL_Y_DIMENSION_TAG] = height
            exif = tags.tobytes()
        return replace(self, orientation=orientation, icc_profile=icc, exif=exif)


def read_metadata(path: str | os.PathLike) -> PhotoMetadata:
    """Read a photo file's orientation, ICC profile, EXIF and XMP without decoding its pixels.

    Parameters
    ----------
    path : str or os.PathLike
        An image file :func:`napari_cisr.io.read_image` reads.

    Returns
    -------
    PhotoMetadata
        Empty (orientation 1, nothing else) for a file without metadata or whose metadata
        cannot be parsed (logged).
    """
    p = Path(path)
    try:
        if p.suffix.lower() in (".tif", ".tiff"):
            return _read_tiff_metadata(p)
        return _read_pillow_metadata(p)
    except Exception as error:  # metadata is a courtesy: never the reason a photo fails
        log.warning("%s: metadata not carried (%s: %s)", p, type(error).__name__, error)
        return PhotoMetadata()


def _valid_orientation(value: object) -> int:
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _read_pillow_metadata(path: Path) -> PhotoMetadata:
    from PIL import Image

    from napari_cisr.io.formats import IMAGE_SUFFIXES, ensure_decoder

    ensure_decoder(path, IMAGE_SUFFIXES.get(path.suffix.lower(), ""))

    with Image.open(path) as img:  # reads the header and metadata, not the pixels
        exif = img.getexif()
        xmp = img.info.get("xmp") or img.info.get("XML:com.adobe.xmp")
        if isinstance(xmp, str):
            xmp = xmp.encode("utf-8")
        return PhotoMetadata(
            orientation=_valid_orientation(exif.get(ORIENTATION_TAG, 1)),
            icc_profile=img.info.get("icc_profile") or None,
            exif=exif.tobytes() if len(exif) else None,
            xmp=xmp or None,
            mode=img.mode,
        )


def _read_tiff_metadata(path: Path) -> PhotoMetadata:
    import tifffile

    with tifffile.TiffFile(path) as tif:
        tags = tif.pages.first.tags

        def value(code: int) -> object:
            tag = tags.get(code)
            return None if tag is None else tag.value

        icc, xmp = value(TIFF_ICC_TAG), value(TIFF_XMP_TAG)
        has_exif = any(code in tags for code in (*TIFF_EXIF_TEXT_TAGS, EXIF_IFD_TAG, GPS_IFD_TAG))
        if has_exif and tif.is_bigtiff:  # Pillow's EXIF reader parses classic TIFF only
            log.info("%s: EXIF of a BigTIFF not carried", path)
            has_exif = False
        return PhotoMetadata(
            orientation=_valid_orientation(value(ORIENTATION_TAG) or 1),
            icc_profile=bytes(icc) if icc else None,
            exif=_tiff_exif(path) if has_exif else None,
            xmp=bytes(xmp) if xmp else None,
            mode="TIFF",
        )


def _tiff_exif(path: Path) -> bytes | None:
    """The EXIF a TIFF holds (its photo text tags, EXIF and GPS sub-IFDs) as an EXIF block.

    A TIFF's first IFD is mostly its pixel layout (strips, sample format, ...), which must not
    reach another file's EXIF, so only :data:`TIFF_EXIF_TEXT_TAGS` and the two sub-IFDs are
    taken; Software is not, it names the program that wrote the TIFF. None when there are
    none, or when they cannot be parsed (logged: the profile and XMP are still carried).
    """
    from PIL import Image

    try:
        with open(path, "rb") as fp:
            found = Image.Exif()
            found.load_from_fp(fp)  # the first IFD's tags only: no pixels are decoded
            exif = Image.Exif()
            for code in TIFF_EXIF_TEXT_TAGS:
                if isinstance(found.get(code), str):
                    exif[code] = found[code]
            sub_ifds = exif_sub_ifds(found)
            for code, values in sub_ifds.items():
                exif.get_ifd(code).update(values)
            return exif.tobytes() if len(exif) or sub_ifds else None
    except Exception as error:  # metadata is a courtesy: never the reason a photo fails
        log.warning("%s: EXIF not carried (%s: %s)", path, type(error).__name__, error)
        return None


def exif_sub_ifds(exif: Any) -> dict[int, dict[int, Any]]:
    """The EXIF and GPS sub-IFDs of a loaded EXIF block, ready to be written again.

    Parameters
    ----------
    exif : PIL.Image.Exif
        Loaded from bytes (:meth:`PIL.Image.Exif.load`) or from a TIFF file.

    Returns
    -------
    dict
        :data:`EXIF_IFD_TAG` and/or :data:`GPS_IFD_TAG` → their tags, the non-empty ones only.
        The Interop IFD inside the EXIF IFD is nested as a dict: as loaded it is an offset
        into the old block, which would point nowhere in a new one.
    """
    found: dict[int, dict[int, Any]] = {}
    for code in (EXIF_IFD_TAG, GPS_IFD_TAG):
        values = dict(exif.get_ifd(code))
        if code == EXIF_IFD_TAG and INTEROP_IFD_TAG in values:
            interop = exif.get_ifd(INTEROP_IFD_TAG)
            if interop:
                values[INTEROP_IFD_TAG] = dict(interop)
            else:
                del values[INTEROP_IFD_TAG]
        if values:
            found[code] = values
    return found


def apply_orientation(image: np.ndarray, orientation: int) -> np.ndarray:
    """Rotate/flip stored-order pixels so they display upright (what EXIF ``orientation`` says).

    Parameters
    ----------
    image : ndarray
        H×W or H×W×C, any dtype.
    orientation : int
        EXIF orientation 1..8; 1 returns ``image`` unchanged.

    Returns
    -------
    ndarray
        The upright image (W×H for orientations 5-8), contiguous; the same transform as
        ``PIL.ImageOps.exif_transpose``.
    """
    transforms = {
        1: lambda a: a,
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: a.swapaxes(0, 1),
        6: lambda a: np.rot90(a, k=-1),
        7: lambda a: a.swapaxes(0, 1)[::-1, ::-1],
        8: lambda a: np.rot90(a, k=1),
    }
    if orientation not in transforms:
        raise ValueError(f"EXIF orientation must be 1..8, got {orientation}")
    return np.ascontiguousarray(transforms[orientation](image))

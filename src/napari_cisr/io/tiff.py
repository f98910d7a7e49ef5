"""TIFF output: pixels through tifffile, a photo's metadata, and the EXIF/GPS sub-IFDs.

tifffile writes the pixels, the ICC profile, XMP, the orientation and the EXIF text tags; it
refuses the IFD pointer tags (``ExifTag``, ``GPSTag``), so :func:`_add_sub_ifds` adds those
blocks to the finished file. Reading TIFF stays in :mod:`napari_cisr.io.images`.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from napari_cisr.io.formats import WriteSettings
    from napari_cisr.metadata import PhotoMetadata


def write_tiff(tmp: Path, arr: np.ndarray, settings: WriteSettings) -> None:
    """Write ``arr`` as a TIFF at ``tmp``, with the photo metadata and the JSON attributes of
    ``settings`` (TIFF is lossless: no quality)."""
    import tifffile

    metadata, attrs = settings.metadata, settings.attrs
    photometric = "rgb" if arr.ndim >= 3 and arr.shape[-1] in (3, 4) else "minisblack"
    extras = {"extrasamples": ["unassalpha"]} if photometric == "rgb" and arr.shape[-1] == 4 else {}
    sub_ifds: dict[int, dict[int, Any]] = {}
    if metadata is not None:
        tags, sub_ifds = _tiff_metadata(metadata)
        extras.update(tags)
    # {} (tifffile's default) still writes the shape: the description stays tifffile's JSON
    tifffile.imwrite(tmp, arr, photometric=photometric, metadata=attrs or {}, **extras)
    if sub_ifds:
        _add_sub_ifds(tmp, sub_ifds)


def _tiff_metadata(
    metadata: PhotoMetadata,
) -> tuple[dict[str, Any], dict[int, dict[int, Any]]]:
    """What of ``metadata`` a TIFF holds: (tifffile ``imwrite`` keywords, the sub-IFDs).

    The keywords carry the profile, the orientation, XMP and the EXIF block's text tags
    (:data:`~napari_cisr.metadata.TIFF_EXIF_TEXT_TAGS`, Software through ``software=``, which
    tifffile otherwise fills with its own name). The EXIF and GPS sub-IFDs come back apart,
    as Pillow decoded them, for :func:`_add_sub_ifds`: tifffile cannot write IFD tags.
    """
    from napari_cisr.metadata import (
        ORIENTATION_TAG,
        SOFTWARE_TAG,
        TIFF_EXIF_TEXT_TAGS,
        TIFF_XMP_TAG,
        exif_sub_ifds,
    )

    extratags: list[tuple[int, int | str, int, Any, bool]] = []
    kwargs: dict[str, Any] = {}
    sub_ifds: dict[int, dict[int, Any]] = {}
    if metadata.orientation != 1:
        extratags.append((ORIENTATION_TAG, "H", 1, metadata.orientation, True))
    if metadata.exif:
        from PIL import Image

        exif = Image.Exif()
        exif.load(metadata.exif)
        for code in TIFF_EXIF_TEXT_TAGS:
            text = exif.get(code)
            if isinstance(text, str) and text:
                extratags.append((code, 2, 0, text.encode("utf-8"), True))
        software = exif.get(SOFTWARE_TAG)
        if isinstance(software, str) and software:
            kwargs["software"] = software.encode("utf-8")
        sub_ifds = exif_sub_ifds(exif)
    if metadata.xmp:
        extratags.append((TIFF_XMP_TAG, 1, len(metadata.xmp), metadata.xmp, True))
    if extratags:
        kwargs["extratags"] = extratags
    if metadata.icc_profile:
        kwargs["iccprofile"] = metadata.icc_profile
    return kwargs, sub_ifds


def _add_sub_ifds(path: Path, sub_ifds: dict[int, dict[int, Any]]) -> None:
    """Append ``sub_ifds`` (pointer tag → tags) to a TIFF and point its first IFD at them.

    tifffile refuses IFD tags (``ExifTag``, ``GPSTag``) in ``extratags``, so this runs on the
    finished file: each sub-IFD is serialised by Pillow at the end of the file, and the first
    IFD is written again after them with the pointer tags added. Its other entries are copied
    as they are (their values stay where tifffile put them); the header then points at the
    new copy and the old one, a few hundred bytes, is left unreferenced. Classic TIFF in
    either byte order and little-endian BigTIFF (what tifffile writes past 4 GiB here).

    Raises
    ------
    ValueError
        A value Pillow cannot serialise in a TIFF IFD, or a big-endian BigTIFF.
    """
    from PIL import TiffImagePlugin

    with open(path, "r+b") as f:
        head = f.read(16)
        order = {b"II": "<", b"MM": ">"}[head[:2]]
        big = struct.unpack(order + "H", head[2:4])[0] == 43
        if big and order == ">":  # Pillow takes "MM\0+" for a classic header
            raise ValueError("cannot store the EXIF block in a big-endian BigTIFF")
        # classic: 2-byte count, 12-byte entries, 4-byte offsets; BigTIFF: 8, 20, 8
        count_fmt, offset_fmt, entry_size = ("Q", "Q", 20) if big else ("H", "I", 12)
        header = head if big else head[:8]
        first_at = 8 if big else 4
        (ifd0,) = struct.unpack_from(order + offset_fmt, header, first_at)
        f.seek(ifd0)
        (count,) = struct.unpack(order + count_fmt, f.read(struct.calcsize(count_fmt)))
        raw = f.read(count * entry_size)
        entries = {
            struct.unpack_from(order + "H", raw, i)[0]: raw[i : i + entry_size]
            for i in range(0, len(raw), entry_size)
        }
        next_ifd = f.read(struct.calcsize(offset_fmt))
        end = f.seek(0, os.SEEK_END)
        for code, values in sub_ifds.items():
            if end % 2:  # IFDs start on a word boundary
                end += f.write(b"\0")
            ifd = TiffImagePlugin.ImageFileDirectory_v2(ifh=header, group=code)
            try:
                for key, value in values.items():
                    ifd[key] = value
                data = ifd.tobytes(end)
            except (TypeError, struct.error) as error:
                raise ValueError(f"cannot store the EXIF block in a TIFF ({error})") from None
            pointer_type = 16 if big else 4  # LONG8 / LONG
            entries[code] = struct.pack(
                order + "HH" + offset_fmt + offset_fmt, code, pointer_type, 1, end
            )
            end += f.write(data)
        if end % 2:
            end += f.write(b"\0")
        f.write(struct.pack(order + count_fmt, len(entries)))
        f.write(b"".join(entries[code] for code in sorted(entries)))  # TIFF wants them sorted
        f.write(next_ifd)
        f.seek(first_at)
        f.write(struct.pack(order + offset_fmt, end))

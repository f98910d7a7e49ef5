"""``metadata.py``: what makes a photo its owner's (EXIF orientation, ICC profile, EXIF and
XMP), read from an input and carried to an output by ``io.write_image``. Real files made with
Pillow (tests/photo_files.py); the same carried through ``napari-cisr run`` is in
tests/test_photo_jobs.py."""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest
from PIL import ExifTags, Image, ImageOps

from napari_cisr.io import read_image, write_image
from napari_cisr.metadata import PhotoMetadata, apply_orientation, read_metadata
from photo_files import XMP, display_p3_profile, save_camera_jpeg, smooth_photo


@pytest.mark.parametrize("orientation", range(1, 9))
def test_apply_orientation_is_what_pillow_displays(orientation):
    pixels = smooth_photo(6, 10)
    image = Image.fromarray(pixels)
    exif = image.getexif()
    exif[0x0112] = orientation
    image.info["exif"] = exif.tobytes()
    expected = np.asarray(ImageOps.exif_transpose(image))
    np.testing.assert_array_equal(apply_orientation(pixels, orientation), expected)


@pytest.mark.parametrize(
    ("suffix", "dtype"),
    [(".jpg", np.uint8), (".webp", np.uint8), (".avif", np.uint8), (".png", np.uint8),
     (".png", np.uint16),
     (".tif", np.uint8), (".tif", np.uint16)],
)  # fmt: skip
def test_metadata_is_carried_into_every_output_format(tmp_path, suffix, dtype):
    source = save_camera_jpeg(tmp_path / "camera.jpg", height=40, width=56, orientation=6)
    metadata = read_metadata(source)
    assert metadata.orientation == 6 and metadata.icc_profile == display_p3_profile()
    carried = metadata.for_output(112, 80, 3, upright=False)
    pixels = smooth_photo(80, 112).astype(dtype) * (257 if dtype == np.uint16 else 1)
    output = write_image(tmp_path / f"out{suffix}", pixels, metadata=carried)

    back = read_metadata(output)
    assert back.orientation == 6
    assert back.icc_profile == display_p3_profile()
    assert back.xmp == XMP
    assert read_image(output).dtype == dtype
    tags = Image.Exif()  # TIFF: its own Make/Model tags and EXIF/GPS sub-IFDs, read back
    tags.load(back.exif)
    assert tags[0x010F] == "Canon" and tags[0x0110] == "Canon EOS 5D"
    assert tags.get_ifd(0x8825)[2] == (52.0, 31.0, 12.0)  # GPS
    sub = tags.get_ifd(0x8769)
    assert (sub[0xA002], sub[0xA003]) == (112, 80)  # the output's pixel dimensions


def test_a_profile_of_another_colour_space_is_dropped():
    cmyk_profile = bytearray(display_p3_profile())
    cmyk_profile[16:20] = b"CMYK"
    metadata = PhotoMetadata(icc_profile=bytes(cmyk_profile), mode="CMYK")
    assert metadata.for_output(10, 10, 3, upright=False).icc_profile is None
    p3 = PhotoMetadata(icc_profile=display_p3_profile())
    assert p3.for_output(10, 10, 1, upright=False).icc_profile is None  # gray output
    assert p3.for_output(10, 10, 4, upright=False).icc_profile == display_p3_profile()


def _exif_with_thumbnail(thumbnail: bytes) -> bytes:
    """A little-endian EXIF block: IFD0 (orientation 6) linked to IFD1, which holds a JPEG
    thumbnail (tags 513/514), as cameras and phones write it."""
    ifd0_offset = 8
    ifd1_offset = ifd0_offset + 2 + 12 + 4
    data_offset = ifd1_offset + 2 + 2 * 12 + 4
    ifd0 = struct.pack("<H", 1) + struct.pack("<HHIHH", 0x0112, 3, 1, 6, 0)
    ifd0 += struct.pack("<I", ifd1_offset)
    ifd1 = struct.pack("<H", 2)
    ifd1 += struct.pack("<HHII", 0x0201, 4, 1, data_offset)
    ifd1 += struct.pack("<HHII", 0x0202, 4, 1, len(thumbnail))
    ifd1 += struct.pack("<I", 0)
    return b"Exif\0\0" + b"II*\0" + struct.pack("<I", ifd0_offset) + ifd0 + ifd1 + thumbnail


def test_the_inputs_exif_thumbnail_is_not_carried(tmp_path):
    """The EXIF thumbnail shows the input; an output carrying it would show the wrong picture
    in file browsers, so it is left out while the tags are kept."""
    thumb = io.BytesIO()
    Image.new("RGB", (16, 12), (200, 30, 30)).save(thumb, format="JPEG")
    source = tmp_path / "phone.jpg"
    Image.new("RGB", (64, 48), (20, 120, 200)).save(
        source, format="JPEG", exif=_exif_with_thumbnail(thumb.getvalue())
    )
    with Image.open(source) as img:  # the test file does hold a thumbnail
        assert img.getexif().get_ifd(ExifTags.IFD.IFD1)[0x0202] == len(thumb.getvalue())
    carried = read_metadata(source).for_output(128, 96, 3, upright=False)
    output = write_image(tmp_path / "out.jpg", smooth_photo(96, 128), metadata=carried)
    with Image.open(output) as img:
        tags = img.getexif()
        assert tags[0x0112] == 6
        assert not tags.get_ifd(ExifTags.IFD.IFD1)
    assert thumb.getvalue()[2:64] not in output.read_bytes()


def test_unparseable_metadata_does_not_fail_the_photo(tmp_path, caplog):
    path = tmp_path / "odd.tif"
    path.write_bytes(b"II*\x00garbage")
    assert read_metadata(path) == PhotoMetadata()
    assert "metadata not carried" in caplog.text

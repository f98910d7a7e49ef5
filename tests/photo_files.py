"""Real photo files for the metadata and folder tests, made with Pillow: rotated, with a
Display P3 profile, camera and GPS tags and XMP."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
from PIL import Image

#: The XMP packet written into the test photos.
XMP = (
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
    b'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description '
    b'xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:creator>A. Photographer</dc:creator>'
    b"</rdf:Description></rdf:RDF></x:xmpmeta>"
)


def display_p3_profile() -> bytes:
    """A minimal ICC v2 display profile with the Display P3 primaries (D50-adapted) and a
    gamma-2.2 curve: a real, parseable non-sRGB profile without shipping a file."""

    def s15(v: float) -> bytes:
        return struct.pack(">i", round(v * 65536))

    def xyz(x: float, y: float, z: float) -> bytes:
        return b"XYZ \0\0\0\0" + s15(x) + s15(y) + s15(z)

    def text_description(text: str) -> bytes:
        ascii_text = text.encode("ascii") + b"\0"
        body = b"desc\0\0\0\0" + struct.pack(">I", len(ascii_text)) + ascii_text
        return body + b"\0" * 4 + b"\0" * 4 + b"\0" * 3 + b"\0" * 67  # no Unicode/ScriptCode

    curve = b"curv\0\0\0\0" + struct.pack(">IH", 1, round(2.2 * 256)) + b"\0\0"
    tags = [
        (b"desc", text_description("Display P3")),
        (b"cprt", b"text\0\0\0\0" + b"No copyright, test profile\0"),
        (b"wtpt", xyz(0.9642, 1.0, 0.8249)),
        (b"rXYZ", xyz(0.5151, 0.2412, -0.0011)),
        (b"gXYZ", xyz(0.2920, 0.6922, 0.0419)),
        (b"bXYZ", xyz(0.1571, 0.0666, 0.7841)),
        (b"rTRC", curve),
        (b"gTRC", curve),
        (b"bTRC", curve),
    ]
    table, data = b"", b""
    offset = 128 + 4 + 12 * len(tags)
    for signature, body in tags:
        body += b"\0" * (-len(body) % 4)
        table += signature + struct.pack(">II", offset + len(data), len(body))
        data += body
    size = offset + len(data)
    header = (
        struct.pack(">I", size)
        + b"lcms"
        + struct.pack(">I", 0x02100000)
        + b"mntrRGB XYZ "
        + struct.pack(">6H", 2026, 1, 1, 0, 0, 0)
        + b"acsp"
        + b"\0" * 24
        + struct.pack(">I", 0)
        + s15(0.9642) + s15(1.0) + s15(0.8249)
        + b"lcms"
        + b"\0" * 44
    )  # fmt: skip
    assert len(header) == 128
    return header + struct.pack(">I", len(tags)) + table + data


def camera_exif(orientation: int, width: int, height: int) -> Image.Exif:
    """EXIF as a camera writes it: orientation, make/model, exposure, pixel size, GPS."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "Canon"
    exif[0x0110] = "Canon EOS 5D"
    sub = exif.get_ifd(0x8769)
    sub[0x829A] = 1 / 250  # ExposureTime
    sub[0xA002] = width
    sub[0xA003] = height
    gps = exif.get_ifd(0x8825)
    gps[1] = "N"
    gps[2] = (52.0, 31.0, 12.0)
    return exif


def smooth_photo(height: int, width: int, channels: int = 3, seed: int = 0) -> np.ndarray:
    """A smooth uint8 test picture (gradients and a few discs), not noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    planes = []
    for c in range(channels):
        fy, fx = rng.uniform(0.02, 0.15, 2)
        planes.append(127 + 100 * np.sin(fy * yy + c) * np.cos(fx * xx - c))
    return np.clip(np.stack(planes, axis=-1), 0, 255).astype(np.uint8)


def save_camera_jpeg(path: Path, height: int = 40, width: int = 56, orientation: int = 6) -> Path:
    """A JPEG as a phone writes a portrait: stored sideways, orientation tag, P3, EXIF, XMP."""
    pixels = smooth_photo(height, width)
    Image.fromarray(pixels).save(
        path,
        quality=60,
        exif=camera_exif(orientation, width, height),
        icc_profile=display_p3_profile(),
        xmp=XMP,
    )
    return path

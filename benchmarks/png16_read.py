"""Reading 16-bit colour PNGs: the wavefront unfilter against the per-byte reference.

Pillow reads 16-bit RGB(A) PNGs only as 8-bit, so ``napari_cisr.io`` decodes them itself.
Encoders such as libpng pick a filter per row, mostly Average and Paeth for photos, whose
predictors depend on the pixel to the left: the first decoder undid them with a Python loop
over every byte. This script writes a photo-like H×W RGB 16-bit PNG whose rows cycle through
all five filters (Paeth and Average in most), checks ``read_image`` returns it exactly, and
times it against that per-byte loop (kept here as the reference).

    python benchmarks/png16_read.py --size 3000 4000 --reference-size 300 400
"""

from __future__ import annotations

import argparse
import struct
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np

from napari_cisr.io import read_image

#: Filter of each row, cycled: photos from libpng are mostly Paeth (4) and Average (3).
_FILTERS = (4, 4, 3, 4, 1, 4, 2, 3, 0, 4)


def _predictors(raw: np.ndarray, prior: np.ndarray) -> dict[int, np.ndarray]:
    """PNG predictors of one row (W×bpp int arrays) from its raw bytes and the raw row above."""
    a = np.zeros_like(raw)
    a[1:] = raw[:-1]
    c = np.zeros_like(prior)
    c[1:] = prior[:-1]
    b = prior
    p = a + b - c
    pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - c)
    paeth = np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))
    return {0: np.zeros_like(raw), 1: a, 2: b, 3: (a + b) >> 1, 4: paeth}


def png16(image: np.ndarray) -> bytes:
    """An RGB ``uint16`` image as PNG bytes, rows filtered with :data:`_FILTERS` in turn."""
    h, w, _ = image.shape
    raw = image.astype(">u2").view(np.uint8).reshape(h, w, 6).astype(np.int32)
    prior = np.zeros((w, 6), np.int32)
    body = bytearray()
    for y in range(h):
        kind = _FILTERS[y % len(_FILTERS)]
        body.append(kind)
        body += ((raw[y] - _predictors(raw[y], prior)[kind]) & 0xFF).astype(np.uint8).tobytes()
        prior = raw[y]

    def chunk(tag: bytes, payload: bytes) -> bytes:
        crc = zlib.crc32(tag + payload) & 0xFFFFFFFF
        return struct.pack(">I", len(payload)) + tag + payload + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(bytes(body), 6)) + chunk(b"IEND", b"")
    )  # fmt: skip


def sequential_reference(filtered: np.ndarray, filters: np.ndarray, bpp: int) -> np.ndarray:
    """The first decoder: rows in turn, Average/Paeth rows byte by byte in Python."""
    h, stride = filtered.shape
    out = np.zeros((h, stride), np.uint8)
    prior = [0] * stride
    for y in range(h):
        line, cur = filtered[y].tolist(), [0] * stride
        for i in range(stride):
            a = cur[i - bpp] if i >= bpp else 0
            b, c = prior[i], prior[i - bpp] if i >= bpp else 0
            kind = filters[y]
            if kind == 0:
                pred = 0
            elif kind == 1:
                pred = a
            elif kind == 2:
                pred = b
            elif kind == 3:
                pred = (a + b) >> 1
            else:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if (pa <= pb and pa <= pc) else (b if pb <= pc else c)
            cur[i] = (line[i] + pred) & 0xFF
        out[y], prior = cur, cur
    return out


def _photo(h: int, w: int) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    base = 32768 + 12000 * np.sin(x / 17.0) * np.cos(y / 23.0) + 6000 * np.sin((x + 2 * y) / 7.0)
    noise = np.random.default_rng(0).normal(0, 300, (h, w, 3))
    rgb = np.stack([base, base[::-1] * 0.8 + 4000, 65535 - base], axis=-1) + noise
    return np.clip(rgb, 0, 65535).astype(np.uint16)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, nargs=2, default=[600, 800], metavar=("H", "W"))
    parser.add_argument("--reference-size", type=int, nargs=2, default=[300, 400])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        for label, (h, w) in (("reference size", args.reference_size), ("large", args.size)):
            image = _photo(h, w)
            path = Path(folder) / f"{label}.png"
            path.write_bytes(png16(image))
            start = time.perf_counter()
            decoded = read_image(path)
            seconds = time.perf_counter() - start
            assert np.array_equal(decoded, image), "read_image did not return the image"
            line = f"{h}×{w} RGB 16-bit: read_image {seconds:.3f} s"
            if label == "reference size":
                # The single IDAT chunk follows the signature (8 bytes) and IHDR (25).
                (length,) = struct.unpack(">I", path.read_bytes()[33:37])
                raw = zlib.decompress(path.read_bytes()[41 : 41 + length])
                rows = np.frombuffer(raw, np.uint8).reshape(h, w * 6 + 1)
                start = time.perf_counter()
                reference = sequential_reference(rows[:, 1:], rows[:, 0], 6)
                ref_seconds = time.perf_counter() - start
                assert np.array_equal(reference.view(">u2").reshape(h, w, 3), image)
                line += f", per-byte reference {ref_seconds:.3f} s ({ref_seconds / seconds:.0f}x)"
            print(line, flush=True)


if __name__ == "__main__":
    main()

"""Which files are images, which codec reads each, the error every reader raises and the
settings every writer is given."""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from napari_cisr.metadata import PhotoMetadata

#: File suffixes :func:`write_image` writes, mapped to their codec name.
WRITE_SUFFIXES: dict[str, str] = {
    ".jpg": "jpeg",
    ".jpeg": "jpeg",
    ".webp": "webp",
    ".png": "png",
    ".tif": "tiff",
    ".tiff": "tiff",
    ".avif": "avif",
}

#: The output formats of a run over many files (``napari-cisr run -o``, ``--format``), by name,
#: with the suffix each is written as: every one is a key of :data:`WRITE_SUFFIXES`. PNG and
#: TIFF are lossless.
OUTPUT_FORMATS: dict[str, str] = {
    "png": ".png", "tif": ".tif", "webp": ".webp", "jpg": ".jpg", "avif": ".avif",
}  # fmt: skip

#: File suffixes :func:`read_image` understands, mapped to their codec name: those it writes,
#: plus HEIC/HEIF and JPEG XL (the optional plugins of
#: ``pip install 'napari-cisr[formats]'``: pillow-heif, pillow-jxl-plugin).
IMAGE_SUFFIXES: dict[str, str] = {
    **WRITE_SUFFIXES,
    ".heic": "heif",
    ".heif": "heif",
    ".jxl": "jxl",
}

#: The optional decoders: codec → (module that registers it with Pillow, package to install).
_PLUGINS = {"heif": ("pillow_heif", "pillow-heif"), "jxl": ("pillow_jxl", "pillow-jxl-plugin")}

CODEC_NAMES = {
    "jpeg": "JPEG", "webp": "WebP", "png": "PNG", "tiff": "TIFF", "avif": "AVIF",
    "heif": "HEIF", "jxl": "JPEG XL",
}  # fmt: skip
CODEC_FROM_PIL = {
    "JPEG": "jpeg", "MPO": "jpeg", "WEBP": "webp", "PNG": "png", "TIFF": "tiff", "AVIF": "avif",
    "HEIF": "heif", "JXL": "jxl",
}  # fmt: skip


@dataclass(frozen=True)
class WriteSettings:
    """What :func:`~napari_cisr.io.write_image` hands every writer of its table besides the
    pixels, already checked; each writer uses the fields its format stores."""

    codec: str  # the WRITE_SUFFIXES value of the file's suffix
    quality: int | None = None  # JPEG, WebP, AVIF; None: the format's default
    metadata: PhotoMetadata | None = None
    attrs: dict[str, Any] | None = None  # TIFF only


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


def check_readable(path: Path) -> str:
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
                f"reading {CODEC_NAMES[codec]} needs the optional package {package} "
                "(pip install 'napari-cisr[formats]')",
            ) from None
        if codec == "heif":
            plugin.register_heif_opener()
    elif codec == "avif":
        from PIL import features

        if not features.check("avif"):
            raise ImageReadError(path, "this Pillow cannot decode AVIF (Pillow >= 11.2 can)")

"""Image and zarr input/output without napari.

The CLI, the batch code and the napari adapters all read and write through this package, so
every caller gets the same behaviour:

* :func:`read_image` fully decodes a file (a truncated JPEG fails here, not later in the model)
  and keeps its dtype (8-bit stays ``uint8``, 16-bit PNG/TIFF stay ``uint16``, float TIFF stays
  float). Every failure is an :class:`ImageReadError` whose message is one line naming the file.
* :func:`image_info` reports the codec and, for a JPEG, the IJG quality estimated from its
  quantisation tables; for a lossy WebP, the libwebp quality estimated from its frame header.
* :func:`write_image` and :func:`write_zarr` are atomic (a temporary file or folder beside the
  target is moved into place, and removed on failure) and never overwrite unless asked.
* :func:`open_zarr` opens a zarr array or a multiscale OME-Zarr group lazily as dask.

One module per concern: ``formats`` (suffixes, codecs, the error), ``images`` (read and write),
``png16`` (16-bit colour PNG), ``info`` (what a file is), ``atomic`` (writes that are all or
nothing), ``zarr`` (stores).

Decisions worth knowing:

* Pixels are returned in stored order: the EXIF orientation tag is *not* applied, so the 8×8
  JPEG block grid stays anchored at the top-left pixel, where the model expects it.
* WebP has no grayscale mode and Pillow decodes every WebP as RGB(A). An RGB WebP whose three
  channels agree to within 1 everywhere (lossy WebP rounds each channel of a neutral-chroma
  pixel separately) is returned as H×W luma, so a grayscale image survives a WebP round trip.
* A palette image is expanded to RGB (RGBA if it has transparency); gray+alpha becomes RGBA;
  CMYK/YCbCr JPEGs become RGB.
* Pillow cannot decode or encode 16-bit *colour* PNG (it silently drops to 8 bits), so those
  go through libpng (``imagecodecs``) and stay ``uint16``.
"""

from napari_cisr.io.atomic import atomic_target, default_mode, write_json
from napari_cisr.io.formats import (
    IMAGE_SUFFIXES,
    OUTPUT_FORMATS,
    WRITE_SUFFIXES,
    ImageReadError,
    ensure_decoder,
)
from napari_cisr.io.images import check_output_path, read_image, write_image
from napari_cisr.io.info import estimate_jpeg_quality, image_info, tiff_attrs
from napari_cisr.io.zarr import ome_multiscales, open_zarr, write_zarr, zarr_attrs

__all__ = [
    "IMAGE_SUFFIXES",
    "OUTPUT_FORMATS",
    "WRITE_SUFFIXES",
    "ImageReadError",
    "atomic_target",
    "check_output_path",
    "default_mode",
    "ensure_decoder",
    "estimate_jpeg_quality",
    "image_info",
    "ome_multiscales",
    "open_zarr",
    "read_image",
    "tiff_attrs",
    "write_image",
    "write_json",
    "write_zarr",
    "zarr_attrs",
]

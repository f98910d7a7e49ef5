"""INPUT as lazy arrays: a folder of images, a zarr array or an OME-Zarr image.

Layouts follow the rest of the package: the last two axes are (y, x), or (y, x, c) when the
last axis has 3 or 4 entries (RGB/RGBA); every other axis is a stack, processed plane by plane.
OME-Zarr axes come from the metadata: a channel axis of 3 or 4 channels is taken as RGB(A),
any other channel count as independent grayscale channels.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from napari_cisr._batch.report import BatchError
from napari_cisr.values import MIN_SIDE

__all__ = ["Item", "folder_items", "zarr_items"]


@dataclass
class Item:
    """One array to produce: its lazy input in storage axis order and where it goes."""

    name: str  # for messages
    path: str  # array path inside OUTPUT ("" when OUTPUT is the array itself)
    source: Any  # dask array
    y_axis: int
    x_axis: int
    rgb_axis: int | None
    #: what the image's file says (:func:`napari_cisr.io.image_info`: its JPEG or WebP
    #: quality routes a model name, :mod:`napari_cisr.compression`); None for zarr arrays
    info: dict[str, Any] | None = None

    @property
    def plane_axes(self) -> list[int]:
        skip = {self.y_axis, self.x_axis, self.rgb_axis}
        return [a for a in range(self.source.ndim) if a not in skip]

    def output_shape(self, scale: int) -> tuple[int, ...]:
        shape = list(self.source.shape)
        shape[self.y_axis] *= scale
        shape[self.x_axis] *= scale
        return tuple(shape)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "path": self.path,
            "shape": list(self.source.shape),
            "dtype": str(self.source.dtype),
        }


def _layout(shape: tuple[int, ...]) -> tuple[int, int, int | None]:
    """(y, x, rgb) axes of an array without axis metadata, the package's convention."""
    if len(shape) >= 3 and shape[-1] in (3, 4):
        return len(shape) - 3, len(shape) - 2, len(shape) - 1
    return len(shape) - 2, len(shape) - 1, None


def _check_item(name: str, shape: tuple[int, ...], dtype: np.dtype, y: int, x: int) -> None:
    """Raise BatchError (one line) for arrays the network cannot take."""
    if len(shape) < 2:
        raise BatchError(f"{name}: expected an image (..., H, W[, 3|4]), got shape {shape}")
    dtype = np.dtype(dtype)
    if dtype not in (np.uint8, np.uint16) and not np.issubdtype(dtype, np.floating):
        raise BatchError(f"{name}: unsupported dtype {dtype}; use uint8, uint16 or float")
    if min(shape[y], shape[x]) < MIN_SIDE:
        raise BatchError(
            f"{name}: planes of {shape[y]}×{shape[x]} pixels (shape {shape}) are too small; "
            f"expected (..., H, W) or (..., H, W, 3|4) with H, W >= {MIN_SIDE}"
        )


def folder_items(folder: Path) -> tuple[list[Item], list[tuple[str, str]]]:
    """Items of a folder of images, and (file name, reason) for the files that cannot be read."""
    import dask
    import dask.array as da

    from napari_cisr.compression import file_description
    from napari_cisr.io import IMAGE_SUFFIXES, ImageReadError, read_image

    files = sorted(
        f for f in folder.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES
    )
    if not files:
        raise BatchError(
            f"no images in folder '{folder}' (looked for {', '.join(sorted(IMAGE_SUFFIXES))})"
        )
    stems = [f.stem for f in files]
    items, failed = [], []
    for f in files:
        try:
            pixels = read_image(f)  # full decode: a corrupt file fails here, in the client
            y, x, rgb = _layout(pixels.shape)
            _check_item(f.name, pixels.shape, pixels.dtype, y, x)
        except (ImageReadError, BatchError) as error:
            # the report pairs the name with the reason: do not repeat it in the reason
            failed.append((f.name, str(error).removeprefix(f"{f.name}: ")))
            continue
        path = f.stem if stems.count(f.stem) == 1 else f.name
        lazy = da.from_delayed(
            dask.delayed(read_image, pure=True)(str(f)), pixels.shape, pixels.dtype
        )
        items.append(Item(f.name, path, lazy, y, x, rgb, file_description(f)))
        del pixels
    return items, failed


def zarr_items(path: Path) -> tuple[list[Item], dict[str, Any] | None, int]:
    """Items of a zarr array or an OME-Zarr image; (items, multiscales or None, zarr format)."""
    import dask.array as da
    import zarr

    from napari_cisr.io import ome_multiscales

    try:
        node = zarr.open(store=os.fspath(path), mode="r")
    except Exception as error:  # zarr raises several types for non-stores
        raise BatchError(f"cannot open '{path}' as zarr: {error}") from None
    fmt = node.metadata.zarr_format
    if isinstance(node, zarr.Array):
        y, x, rgb = _layout(node.shape)
        _check_item(path.name, node.shape, node.dtype, y, x)
        return [Item(path.name, "", da.from_zarr(node), y, x, rgb)], None, fmt
    multiscales = ome_multiscales(path)
    if multiscales is None:
        raise BatchError(
            f"'{path}' is a zarr group without OME-Zarr multiscales metadata; pass a zarr array "
            "or an OME-Zarr image"
        )
    level0 = multiscales["datasets"][0]["path"]
    try:
        array = node[level0]
    except KeyError:
        raise BatchError(f"'{path}': OME-Zarr level '{level0}' is missing") from None
    axes = multiscales.get("axes")
    if axes:
        names = [a["name"] if isinstance(a, dict) else a for a in axes]
        types = [a.get("type") if isinstance(a, dict) else None for a in axes]
        if len(names) != array.ndim or "y" not in names or "x" not in names:
            raise BatchError(f"'{path}': axes {names} do not match the array's shape {array.shape}")
        y, x = names.index("y"), names.index("x")
        channel = [
            i
            for i, (n, t) in enumerate(zip(names, types, strict=True))
            if t == "channel" or n == "c"
        ]
        rgb = channel[0] if channel and array.shape[channel[0]] in (3, 4) else None
    else:
        y, x, rgb = _layout(array.shape)
    _check_item(f"{path.name}/{level0}", array.shape, array.dtype, y, x)
    return [Item(path.name, level0, da.from_zarr(array), y, x, rgb)], multiscales, fmt

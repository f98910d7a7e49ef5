"""Which images the network takes, and how their values map to its [0, 1] and back.

:data:`MIN_SIDE` is the one size policy of the library, ``run``, ``batch`` and the widget.

The network sees RGB in [0, 1]. Unsigned integers map by their dtype (0..2^bits-1) or by a
declared bit depth (12-bit data stored in uint16); floats and signed integers have no natural
range, so they map by an explicit range: the contrast limits a napari user sees, or robust
percentiles of the data. :func:`choose_mapping` picks one and says which;
:meth:`ValueMapping.to_unit` and :meth:`ValueMapping.from_unit` apply it. The output keeps
the input's dtype, and its values are mapped back into the input's range. Nothing here imports
torch or napari.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["MIN_SIDE", "VALUE_RANGES", "ValueMapping", "choose_mapping"]

#: Smallest image side accepted: below it the non-local search window and the blocking
#: detector's 8×8 grid have nothing to work on.
MIN_SIDE = 8

#: How a value range can be chosen: ``auto`` (dtype for unsigned integers, else contrast
#: limits when given, else percentiles), ``dtype``, ``contrast limits``, ``percentiles``.
VALUE_RANGES = ("auto", "dtype", "contrast limits", "percentiles")

#: Percentiles used for the robust range.
PERCENTILES = (0.1, 99.9)

#: At most this many pixels are read to estimate percentiles (a strided subsample).
_PERCENTILE_SAMPLE = 1_000_000


@dataclass(frozen=True)
class ValueMapping:
    """A linear map of ``[low, high]`` onto the network's ``[0, 1]``.

    Attributes
    ----------
    low, high : float
        The input values that map to 0 and to 1. Values outside are clipped.
    source : str
        How the range was chosen: ``"dtype"``, ``"bit depth 12"``, ``"contrast limits"``
        or ``"percentiles 0.1-99.9"``.
    """

    low: float
    high: float
    source: str

    def to_unit(self, image: Any) -> Any:
        """``image`` (numpy or dask, any real dtype) → float32 in [0, 1], clipped."""
        span = self.high - self.low
        unit = (image.astype(np.float32) - np.float32(self.low)) / np.float32(span)
        return unit.clip(0.0, 1.0)

    def from_unit(self, unit: Any, dtype: np.dtype) -> Any:
        """Inverse of :meth:`to_unit`: float in [0, 1] → ``dtype`` in ``[low, high]``.

        Values are clipped to ``[low, high]`` (the network's output may overshoot [0, 1]);
        integers are rounded (``[low, high]`` lies in the dtype's range).
        """
        values = unit.astype(np.float64).clip(0.0, 1.0) * (self.high - self.low) + self.low
        dtype = np.dtype(dtype)
        if np.issubdtype(dtype, np.integer):
            return np.round(values).clip(self.low, self.high).astype(dtype)
        return values.astype(dtype)

    def describe(self) -> str:
        """One line for a status bar: ``"values 0-1000 → 0-1 (contrast limits)"``."""
        return f"values {self.low:g}–{self.high:g} → 0–1 ({self.source})"

    def as_metadata(self) -> dict[str, Any]:
        """A JSON-ready record for an output's metadata."""
        return {"low": self.low, "high": self.high, "source": self.source}


def choose_mapping(
    image: Any,
    how: str = "auto",
    *,
    contrast_limits: tuple[float, float] | None = None,
    bit_depth: int | None = None,
) -> ValueMapping:
    """Choose how ``image``'s values map to [0, 1].

    Parameters
    ----------
    image : array (numpy or dask)
        Any real, non-boolean dtype.
    how : str
        One of :data:`VALUE_RANGES`. ``auto`` maps unsigned integers by their dtype (or
        ``bit_depth``), and floats and signed integers by ``contrast_limits`` when given, else by
        the 0.1/99.9 percentiles.
    contrast_limits : (float, float), optional
        What a viewer shows as black and white (napari's ``layer.contrast_limits``).
    bit_depth : int, optional
        Significant bits of unsigned integer data (e.g. 12 for a 12-bit camera in uint16).

    Returns
    -------
    ValueMapping

    Raises
    ------
    ValueError
        A boolean or complex image, an unknown ``how``, a range chosen that is empty (e.g.
        a constant image), a bit depth that does not fit the dtype, or a missing input
        (``contrast limits`` without them, ``dtype`` on a float image).
    """
    dtype = np.dtype(image.dtype)
    if dtype == np.bool_:
        raise ValueError(
            "a boolean image (a mask or labels) has no intensities to super-resolve; "
            "convert it to an intensity image first"
        )
    if not (np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.floating)):
        raise ValueError(f"unsupported dtype {dtype}; use an integer or float image")
    if how not in VALUE_RANGES:
        raise ValueError(f"unknown value range {how!r}; choose one of {', '.join(VALUE_RANGES)}")
    unsigned = np.issubdtype(dtype, np.unsignedinteger)
    if how == "auto":
        how = "dtype" if unsigned else ("contrast limits" if contrast_limits else "percentiles")
    if how == "dtype":
        if not unsigned:
            raise ValueError(
                f"a {dtype} image has no natural range; use contrast limits or percentiles"
            )
        bits = dtype.itemsize * 8
        if bit_depth:
            if not 1 <= bit_depth <= bits:
                raise ValueError(f"bit depth {bit_depth} does not fit a {dtype} image (1-{bits})")
            return ValueMapping(0.0, float(2**bit_depth - 1), f"bit depth {bit_depth}")
        return ValueMapping(0.0, float(np.iinfo(dtype).max), "dtype")
    if how == "contrast limits":
        if contrast_limits is None:
            raise ValueError("no contrast limits given; choose percentiles or dtype instead")
        low, high = (float(v) for v in contrast_limits)
        source = "contrast limits"
    else:
        low, high = _percentiles(image)
        source = f"percentiles {PERCENTILES[0]:g}–{PERCENTILES[1]:g}"
    if np.issubdtype(dtype, np.integer):  # keep the range representable in the output dtype
        info = np.iinfo(dtype)
        low, high = max(low, float(info.min)), min(high, float(info.max))
    if not np.isfinite([low, high]).all() or high <= low:
        raise ValueError(
            f"the {source} give an empty value range ({low:g} to {high:g}); "
            "is the image constant? set the layer's contrast limits"
        )
    return ValueMapping(low, high, source)


def _percentiles(image: Any) -> tuple[float, float]:
    """The 0.1/99.9 percentiles of (a strided subsample of) ``image``, NaNs ignored."""
    step = max(1, int(np.ceil(np.sqrt(image.size / _PERCENTILE_SAMPLE))))
    sample = np.asarray(image[::step, ::step] if image.ndim >= 2 else image[::step])
    low, high = np.nanpercentile(sample.astype(np.float64), PERCENTILES)
    return float(low), float(high)

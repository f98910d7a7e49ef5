"""napari sample data: a small photo compressed as JPEG q15 and as WebP q10.

The files are shipped in ``napari_cisr/data`` and made by ``scripts/make_sample_data.py``
(public-domain SpaceX launch photo from scikit-image, downscaled 2× after cleaning).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any


def data_path(name: str) -> Path:
    """Return the path of a file shipped in ``napari_cisr/data``.

    Parameters
    ----------
    name : str
        File name, e.g. ``"sample_x2_q15.jpg"``.

    Returns
    -------
    pathlib.Path
        The file's path inside the installed package.
    """
    return Path(str(resources.files("napari_cisr") / "data" / name))


#: A napari layer data tuple: ``(data, kwargs, layer_type)``.
LayerData = tuple[Any, dict[str, Any], str]


def _sample(name: str, layer_name: str) -> list[LayerData]:
    """The shipped file ``name`` as one ``(data, kwargs, "image")`` layer named ``layer_name``."""
    from napari_cisr._reader import layer_data

    data, kwargs, layer_type = layer_data(data_path(name))
    kwargs["name"] = layer_name
    return [(data, kwargs, layer_type)]


def jpeg_q15() -> list[LayerData]:
    """The 128×85 sample photo compressed as JPEG quality 15 (4:2:0), as one image layer."""
    return _sample("sample_x2_q15.jpg", "photo JPEG q15")


def webp_q10() -> list[LayerData]:
    """The 128×85 sample photo compressed as WebP quality 10, as one image layer."""
    return _sample("sample_x2_q10.webp", "photo WebP q10")

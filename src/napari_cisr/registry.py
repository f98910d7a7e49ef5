"""The models napari-cisr knows and the weights it ships, without torch.

One place for the variant names, the scales, the shipped weight files (with their sha256) and
the accepted precisions. The CLI and the widget validate against it before torch is imported;
:mod:`napari_cisr.weights` loads what it names.

A model is named as in timm: ``<variant>.x<scale>`` (``lite.x2``), or by its variant alone
(``lite``) where the scale is given separately; :func:`list_models` lists the names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "DEFAULT_SCALE",
    "MODEL_NAMES",
    "PRECISIONS",
    "PRETRAINED",
    "SCALES",
    "WeightSpec",
    "check_model",
    "list_models",
    "parse_model_name",
    "shipped_variants",
]

#: Every architecture variant (model/config.py); only some have shipped weights.
MODEL_NAMES: tuple[str, ...] = ("lite", "tiny", "full")

#: Super-resolution factors the models exist for.
SCALES: tuple[int, ...] = (2, 3, 4)

#: The scale of a bare variant name when no scale is given.
DEFAULT_SCALE = 2

#: A timm-style model name: ``<variant>.x<scale>``.
_NAME = re.compile(r"(?P<variant>.+)\.x(?P<scale>\d+)")


@dataclass(frozen=True)
class WeightSpec:
    """A pretrained model shipped inside the package."""

    variant: str
    scale: int
    filename: str
    sha256: str
    description: str = ""


#: Shipped weights, keyed "<variant>-x<scale>". Produced by ``napari-cisr train`` (docs/models.md).
PRETRAINED: dict[str, WeightSpec] = {
    "lite-x2": WeightSpec(
        variant="lite",
        scale=2,
        filename="lite-x2.safetensors",
        sha256="7ac6753a5252b4f31c7f6b7561e1931e2c004334f49aa1205c947b945a8570a2",
        description=(
            "stage 39 of experiments/configs/lite-x2/; its lineage, data, commands and "
            "scores are in docs/models.md"
        ),
    ),
    "lite-x3": WeightSpec(
        variant="lite",
        scale=3,
        filename="lite-x3.safetensors",
        sha256="88614cda348d308280960b02372079a38010d113bf65c236e386aeb7db022fe0",
        description=(
            "stage 22 of experiments/configs/lite-x3/; its lineage, data, commands and "
            "scores are in docs/models.md"
        ),
    ),
    "lite-x4": WeightSpec(
        variant="lite",
        scale=4,
        filename="lite-x4.safetensors",
        sha256="2b6f1a2c6059cddf15220c5ae9f03b8470be2c01e3ed1d33ce89794e6f22ecd8",
        description=(
            "stage 24 of experiments/configs/lite-x4/; its lineage, data, commands and "
            "scores are in docs/models.md"
        ),
    ),
}

#: Accepted values of every ``precision`` argument.
PRECISIONS = ("auto", "float32", "bfloat16")


def list_models(pretrained: bool = False) -> list[str]:
    """The model names, ``<variant>.x<scale>``, in registry order (variant, then scale).

    Parameters
    ----------
    pretrained : bool
        Only the models whose weights ship with the package (what ``load_model(name)`` loads
        without a weight file); by default every variant at every scale (the others build
        with ``load_model(name, pretrained=False)``, or load a trained weight file).

    Returns
    -------
    list of str
        For example ``["lite.x2", "lite.x3", "lite.x4"]`` with ``pretrained=True``.
    """
    return [
        f"{variant}.x{scale}"
        for variant in MODEL_NAMES
        for scale in SCALES
        if not pretrained or f"{variant}-x{scale}" in PRETRAINED
    ]


def parse_model_name(name: str, scale: int | None = None) -> tuple[str, int] | None:
    """The (variant, scale) a model name means, or None where ``name`` is not a model name
    (then it is the path of a weight file).

    ``"lite"`` takes ``scale`` (default :data:`DEFAULT_SCALE`); ``"lite.x3"`` carries its
    own, and a different ``scale`` beside it is a ValueError.
    """
    match = _NAME.fullmatch(name)
    variant, named_scale = (match["variant"], int(match["scale"])) if match else (name, None)
    if variant not in MODEL_NAMES:
        return None
    if named_scale is None:
        return variant, DEFAULT_SCALE if scale is None else scale
    if scale is not None and scale != named_scale:
        raise ValueError(f"model '{name}' is for x{named_scale}, not x{scale}")
    return variant, named_scale


def shipped_variants() -> tuple[str, ...]:
    """The variants with shipped weights at some scale, in registry order."""
    return tuple(dict.fromkeys(spec.variant for spec in PRETRAINED.values()))


def check_model(name: str, scale: int) -> None:
    """Raise ValueError (one line) unless ``name`` has shipped weights at ``scale``.

    Only for model names (``lite``, ``lite.x2``: :func:`parse_model_name`); weight files are
    checked when they are read.
    """
    variant, scale = parse_model_name(name, scale) or (name, scale)
    if f"{variant}-x{scale}" in PRETRAINED:
        return
    shipped = ", ".join(
        f"{v} (x{', x'.join(str(s.scale) for s in PRETRAINED.values() if s.variant == v)})"
        for v in shipped_variants()
    )
    raise ValueError(
        f"model '{name}' has no shipped weights at x{scale}; shipped: {shipped or 'none'}. "
        "For another variant, pass a weight file from `napari-cisr train`"
    )

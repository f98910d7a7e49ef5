"""The models napari-cisr knows and the weights it ships, without torch.

One place for the variant names, the shipped weight files (with their sha256) and the accepted
precisions. The CLI and the widget validate against it before torch is imported;
:mod:`napari_cisr.weights` loads what it names.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "MODEL_NAMES",
    "PRECISIONS",
    "PRETRAINED",
    "WeightSpec",
    "check_model",
    "shipped_variants",
]

#: Every architecture variant (model/config.py); only some have shipped weights.
MODEL_NAMES: tuple[str, ...] = ("lite", "tiny", "full")


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
        sha256="d731ae872bcf15fd762add9c823496cb8ae7672174f1b2a9390a90cd5a69aad6",
        description=(
            "stage 32 of experiments/configs/lite-x2/; its lineage, data, commands and "
            "scores are in docs/models.md"
        ),
    ),
    "lite-x3": WeightSpec(
        variant="lite",
        scale=3,
        filename="lite-x3.safetensors",
        sha256="13c9e10e866a1e88a08f1e361943a9da98615a8e3cc9c3bd8bd43f7fcb5f33e0",
        description=(
            "stage 16 of experiments/configs/lite-x3/; its lineage, data, commands and "
            "scores are in docs/models.md"
        ),
    ),
    "lite-x4": WeightSpec(
        variant="lite",
        scale=4,
        filename="lite-x4.safetensors",
        sha256="59cfd835106722e45ac2c05aaa337d795936db9cf8e15899139c7eef4da0a669",
        description=(
            "stage 16 of experiments/configs/lite-x4/; its lineage, data, commands and "
            "scores are in docs/models.md"
        ),
    ),
}

#: Accepted values of every ``precision`` argument.
PRECISIONS = ("auto", "float32", "bfloat16")


def shipped_variants() -> tuple[str, ...]:
    """The variants with shipped weights at some scale, in registry order."""
    return tuple(dict.fromkeys(spec.variant for spec in PRETRAINED.values()))


def check_model(name: str, scale: int) -> None:
    """Raise ValueError (one line) unless ``name`` has shipped weights at ``scale``.

    Only for names in :data:`MODEL_NAMES`; weight files are checked when they are read.
    """
    if f"{name}-x{scale}" in PRETRAINED:
        return
    shipped = ", ".join(
        f"{v} (x{', x'.join(str(s.scale) for s in PRETRAINED.values() if s.variant == v)})"
        for v in shipped_variants()
    )
    raise ValueError(
        f"model '{name}' has no shipped weights at x{scale}; shipped: {shipped or 'none'}. "
        "For another variant, pass a weight file from `napari-cisr train`"
    )

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
        sha256="dc80e3358f103f41290ad4a215f71fe3ef3ae4d291ba5a079050d2dac97d8737",
        description=(
            "stage 33 of experiments/configs/lite-x2/; its lineage, data, commands and "
            "scores are in docs/models.md"
        ),
    ),
    "lite-x3": WeightSpec(
        variant="lite",
        scale=3,
        filename="lite-x3.safetensors",
        sha256="9b2c3be578187564db6db792116cbfed7eb4eae7133c8359a57687fef67f07e5",
        description=(
            "stage 17 of experiments/configs/lite-x3/; its lineage, data, commands and "
            "scores are in docs/models.md"
        ),
    ),
    "lite-x4": WeightSpec(
        variant="lite",
        scale=4,
        filename="lite-x4.safetensors",
        sha256="4c29ef96550d06520d9087053595e56237df9225425715af9968006905d96588",
        description=(
            "stage 17 of experiments/configs/lite-x4/; its lineage, data, commands and "
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

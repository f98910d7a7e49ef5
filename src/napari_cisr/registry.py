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
        sha256="6bab71870cf52a82176089fb1a0fb3f65f518999511ad4738d73cfe50d919902",
        description=(
            "configs/lite-x2.json (1800 steps), lite-x2-stage2.json (best at 900), then "
            "lite-x2-stage3.json (best at 1250), then "
            "lite-x2-stage5.json on a GPU with more photos (best at 1500), "
            "lite-x2-stage6.json (best at 250), then lite-x2-stage7.json on the CPU with more "
            "photos again (best at 4750), then fine-tuned with the squared error by "
            "lite-x2-stage10.json (best at 700), then grown to 12 RCABs per module on a GPU by "
            "lite-x2-stage17.json (best at 750), then fine-tuned on the broad training set by "
            "lite-x2-stage24.json (best at 300), then on the broad set grown to 249 photos by "
            "lite-x2-stage25.json (best at 500), then with half its patches degraded as phones "
            "and social-media sites do by lite-x2-stage26.json (final step, 600), then on the "
            "broad set grown to 315 photos by lite-x2-stage27.json (final step, 600), then "
            "with a quarter of its patches from synthetic dead-leaves images by "
            "lite-x2-stage28.json (final step, 600), then with five lighter JPEG/WebP qualities "
            "by lite-x2-stage29.json (final step, 600; docs/models.md)"
        ),
    ),
    "lite-x3": WeightSpec(
        variant="lite",
        scale=3,
        filename="lite-x3.safetensors",
        sha256="0ad7b091679110689512fc66cbb2475d7d4a5cb47c2456d878343e502b3fa871",
        description=(
            "configs/lite-x3.json (1000 steps), lite-x3-stage2.json (best at 2000), then "
            "lite-x3-stage3.json on a GPU (best at 250), "
            "then lite-x3-stage4.json with more photos (best at 1250), then "
            "lite-x3-stage6.json on the CPU with more photos again (best at 2250) and "
            "lite-x3-stage7.json (best at 1000), then grown to 8 RCABs per module by "
            "lite-x3-stage8.json (best at 1500), then fine-tuned with the squared error by "
            "lite-x3-stage9.json (best at 1100), then grown to 12 RCABs per module by "
            "lite-x3-stage10.json (best at 1000), then fine-tuned on the broad training set by "
            "lite-x3-stage11.json (best at 400), then on the broad set grown to 249 photos by "
            "lite-x3-stage12.json (best at 500), then on the broad set grown to 315 photos "
            "with half its patches degraded as phones and social-media sites do by "
            "lite-x3-stage13.json (final step, 500), then with a quarter of its patches from "
            "synthetic dead-leaves images by lite-x3-stage14.json (final step, 500; "
            "docs/models.md)"
        ),
    ),
    "lite-x4": WeightSpec(
        variant="lite",
        scale=4,
        filename="lite-x4.safetensors",
        sha256="32eef5eaf0a5afdb529ed4a62e98bd69a090f4523800aae99c38b05db6c575e0",
        description=(
            "configs/lite-x4.json (1000 CPU steps), then lite-x4-stage2.json on a GPU "
            "(best at 500), then lite-x4-stage3.json with more photos (best at 1250) and "
            "lite-x4-stage4.json (best at 500), then lite-x4-stage5.json on the CPU with more "
            "photos again (stopped at 500 of 1000 steps, best at 500) and "
            "lite-x4-stage6.json (best at 2250), then grown to 8 RCABs per module by "
            "lite-x4-stage7.json (best at 2000) and lite-x4-stage8.json (best at 400), then "
            "fine-tuned with the squared error by lite-x4-stage10.json (best at 300), then "
            "fine-tuned on the broad training set by lite-x4-stage11.json (best at 500), then "
            "on the broad set grown to 249 photos by lite-x4-stage12.json (best at 500), then "
            "on the broad set grown to 315 photos with half its patches degraded as phones and "
            "social-media sites do by lite-x4-stage13.json (final step, 400), then with a "
            "quarter of its patches from synthetic dead-leaves images by lite-x4-stage14.json "
            "(final step, 400; docs/models.md)"
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

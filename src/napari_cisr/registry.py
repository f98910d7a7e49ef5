"""The models napari-cisr knows and the weights it ships, without torch.

One place for the variant names, the scales, the shipped weight files (with their sha256) and
the accepted precisions. The CLI and the widget validate against it before torch is imported;
:mod:`napari_cisr.weights` loads what it names.

A model is named as in timm: ``<variant>.x<scale>`` (``lite.x2``), or by its variant alone
(``lite``) where the scale is given separately; :func:`list_models` lists the names. A name may
end with the compression its weights were trained for, as timm's pretrained tags
(``lite.x2.mild``, ``lite.strong``, ``lite.heavy``: :data:`COMPRESSIONS`); a name without one
is routed per input by :mod:`napari_cisr.compression`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "COMPRESSIONS",
    "DEFAULT_COMPRESSION",
    "DEFAULT_SCALE",
    "MODEL_NAMES",
    "PRECISIONS",
    "PRETRAINED",
    "SCALES",
    "WeightSpec",
    "check_model",
    "list_models",
    "model_compression",
    "parse_model_name",
    "pretrained_key",
    "shipped_variants",
    "with_compression",
]

#: Every architecture variant (model/config.py); only some have shipped weights.
MODEL_NAMES: tuple[str, ...] = ("lite", "tiny", "full")

#: Super-resolution factors the models exist for.
SCALES: tuple[int, ...] = (2, 3, 4)

#: The scale of a bare variant name when no scale is given.
DEFAULT_SCALE = 2

#: What a set of shipped weights was trained for. ``strong``: every compression, the paper's
#: JPEG q10-50 and WebP q5-40 weighted most (the general weights, what a model name without a
#: tag loads where no input decides, what files between the heavy and the mild qualities run,
#: and what an image whose pixels show blocking but whose quality is unknown runs); ``mild``:
#: light compression and uncompressed input only, where it restores more detail
#: (docs/models.md, *Mild compression*); ``heavy``: heavy compression only (docs/models.md,
#: *Heavy compression*). Which qualities run which: :mod:`napari_cisr.compression`.
COMPRESSIONS: tuple[str, ...] = ("strong", "mild", "heavy")

#: The weights a name without a compression tag loads when no input decides.
DEFAULT_COMPRESSION = "strong"

#: A timm-style model name: ``<variant>``, ``<variant>.x<scale>``, each optionally followed by
#: ``.<compression>``.
_NAME = re.compile(
    r"(?P<variant>[^.]+)(?:\.x(?P<scale>\d+))?(?:\.(?P<compression>"
    + "|".join(COMPRESSIONS)
    + r"))?"
)


@dataclass(frozen=True)
class WeightSpec:
    """A pretrained model shipped inside the package."""

    variant: str
    scale: int
    filename: str
    sha256: str
    description: str = ""
    #: What the weights were trained for (:data:`COMPRESSIONS`).
    compression: str = DEFAULT_COMPRESSION


def pretrained_key(variant: str, scale: int, compression: str = DEFAULT_COMPRESSION) -> str:
    """The :data:`PRETRAINED` key of a variant's weights at a scale for a compression:
    ``lite-x2`` (the general weights), ``lite-x2-mild``."""
    tail = "" if compression == DEFAULT_COMPRESSION else f"-{compression}"
    return f"{variant}-x{scale}{tail}"


#: Shipped weights, keyed by :func:`pretrained_key`. Produced by ``napari-cisr train``
#: (docs/models.md).
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
    "lite-x2-heavy": WeightSpec(
        variant="lite",
        scale=2,
        filename="lite-x2-heavy.safetensors",
        sha256="e0833fc2d1836cabe75af56305b4bcc46c3f95903b9910af1b51dc4c1ff581b7",
        description=(
            "stage 42 of experiments/configs/lite-x2/; its lineage, data, commands and "
            "scores are in docs/models.md"
        ),
        compression="heavy",
    ),
    "lite-x2-mild": WeightSpec(
        variant="lite",
        scale=2,
        filename="lite-x2-mild.safetensors",
        sha256="e3d05a24b7b8ff56729fcf29dd391a1daea983b629bf3dbb90e1cccf525f3157",
        description=(
            "stage 2 of experiments/configs/lite-mild-x2/; its lineage, data, commands and "
            "scores are in docs/models.md"
        ),
        compression="mild",
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
    "lite-x3-heavy": WeightSpec(
        variant="lite",
        scale=3,
        filename="lite-x3-heavy.safetensors",
        sha256="5d1f45dad69ec3c445766c143f840e2bddf0ba29f7f20245076f847be06a6cc6",
        description=(
            "stage 25 of experiments/configs/lite-x3/; its lineage, data, commands and "
            "scores are in docs/models.md"
        ),
        compression="heavy",
    ),
    "lite-x3-mild": WeightSpec(
        variant="lite",
        scale=3,
        filename="lite-x3-mild.safetensors",
        sha256="b2c633b59080da60a320ee38a756359760f7127f2256a08dcebdbf16c5d25465",
        description=(
            "stage 2 of experiments/configs/lite-mild-x3/; its lineage, data, commands and "
            "scores are in docs/models.md"
        ),
        compression="mild",
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
    "lite-x4-heavy": WeightSpec(
        variant="lite",
        scale=4,
        filename="lite-x4-heavy.safetensors",
        sha256="4863b8539891b844934ea9f5650bdbdfeed8eb15e381aea9f40dec64367fb187",
        description=(
            "stage 27 of experiments/configs/lite-x4/; its lineage, data, commands and "
            "scores are in docs/models.md"
        ),
        compression="heavy",
    ),
    "lite-x4-mild": WeightSpec(
        variant="lite",
        scale=4,
        filename="lite-x4-mild.safetensors",
        sha256="1ad1c2a6e0205469d9326c17939ebab530aae2fbe3862ec9da2161defd130b6e",
        description=(
            "stage 2 of experiments/configs/lite-mild-x4/; its lineage, data, commands and "
            "scores are in docs/models.md"
        ),
        compression="mild",
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
    own, and a different ``scale`` beside it is a ValueError. A compression tag
    (``"lite.x3.mild"``) is allowed and left out: :func:`model_compression` reads it.
    """
    match = _NAME.fullmatch(name)
    if match is None or match["variant"] not in MODEL_NAMES:
        return None
    variant = match["variant"]
    if match["scale"] is None:
        return variant, DEFAULT_SCALE if scale is None else scale
    named_scale = int(match["scale"])
    if scale is not None and scale != named_scale:
        raise ValueError(f"model '{name}' is for x{named_scale}, not x{scale}")
    return variant, named_scale


def model_compression(name: str) -> str | None:
    """The compression tag of a model name (``"mild"`` for ``"lite.x2.mild"``), None without one
    (or for a weight file's path)."""
    match = _NAME.fullmatch(name)
    if match is None or match["variant"] not in MODEL_NAMES:
        return None
    return match["compression"]


def with_compression(name: str, compression: str) -> str:
    """A model name with its compression tag set: ``with_compression("lite.x2", "mild")`` is
    ``"lite.x2.mild"``; ValueError for an unknown compression or a name that is not a model's."""
    if compression not in COMPRESSIONS:
        raise ValueError(
            f"compression must be one of {', '.join(COMPRESSIONS)}, not {compression!r}"
        )
    match = _NAME.fullmatch(name)
    if match is None or match["variant"] not in MODEL_NAMES:
        raise ValueError(f"'{name}' is not a model name")
    scale = "" if match["scale"] is None else f".x{match['scale']}"
    return f"{match['variant']}{scale}.{compression}"


def shipped_variants() -> tuple[str, ...]:
    """The variants with shipped weights at some scale, in registry order."""
    return tuple(dict.fromkeys(spec.variant for spec in PRETRAINED.values()))


def check_model(name: str, scale: int) -> None:
    """Raise ValueError (one line) unless ``name`` has shipped weights at ``scale``.

    Only for model names (``lite``, ``lite.x2``, ``lite.x2.mild``: :func:`parse_model_name`);
    weight files are checked when they are read. A name without a compression tag needs the
    general weights (:data:`DEFAULT_COMPRESSION`).
    """
    variant, scale = parse_model_name(name, scale) or (name, scale)
    compression = model_compression(name) or DEFAULT_COMPRESSION
    if pretrained_key(variant, scale, compression) in PRETRAINED:
        return
    scales = {
        v: [s.scale for s in PRETRAINED.values() if s.variant == v and s.compression == compression]
        for v in shipped_variants()
    }
    shipped = ", ".join(
        f"{v} (x{', x'.join(map(str, found))})" for v, found in scales.items() if found
    )
    what = "" if compression == DEFAULT_COMPRESSION else f" for {compression} compression"
    raise ValueError(
        f"model '{name}' has no shipped weights{what} at x{scale}; shipped: {shipped or 'none'}. "
        "For another variant, pass a weight file from `napari-cisr train`"
    )

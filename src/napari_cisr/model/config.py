"""Frozen configuration of a CISR-PSI network and the named variants."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

SkipMode = Literal["adaptive", "z", "g", "u"]

SCALES = (2, 3, 4)


@dataclass(frozen=True)
class CISRConfig:
    """Architecture of a CISR-PSI network (paper Section 3).

    Parameters
    ----------
    scale : int
        Upscaling factor s (2, 3 or 4).
    features : int
        Channels of the RCAN backbone of each module.
    groups : int
        Residual groups per module (tiny: 2, full: 5).
    blocks : int
        Residual channel-attention blocks per group (12 in the paper).
    reduction : int
        Channel-attention squeeze ratio (16 in RCAN).
    iterations : int
        Unfolding iterations J of Eq. (7).
    loss_weights : tuple of float
        rho_1..rho_J of Eq. (8); length must equal ``iterations``.
    search_radius : int
        The non-local operator compares each pixel with the (2r+1)^2 candidates of a window
        centred on it. A bounded window keeps memory and time linear in the image size.
    nonlocal_patch : int
        Side of the patches compared by the non-local operator (3 in the paper's code).
    use_nonlocal : bool
        Ablation "no non-local operator": u is replaced by z.
    fixed_bandwidth : float or None
        Ablation: a fixed h (0-255 scale; 30 in the paper's Table 6) instead of the learned map.
    skip : {"adaptive", "z", "g", "u"}
        Long skip: the adaptive softmax combination of Eq. (11), or a single image (ablation).
    use_blocking_mask : bool
        Multiply non-local weights by d(z) (Eq. 10).
    """

    scale: int = 2
    features: int = 64
    groups: int = 2
    blocks: int = 12
    reduction: int = 16
    iterations: int = 5
    loss_weights: tuple[float, ...] = (0.2, 0.4, 0.6, 0.8, 1.0)
    search_radius: int = 7
    nonlocal_patch: int = 3
    use_nonlocal: bool = True
    fixed_bandwidth: float | None = None
    skip: SkipMode = "adaptive"
    use_blocking_mask: bool = True

    def __post_init__(self) -> None:
        if self.scale not in SCALES:
            raise ValueError(f"scale must be one of {SCALES}, got {self.scale}")
        if len(self.loss_weights) != self.iterations:
            raise ValueError(
                f"loss_weights has {len(self.loss_weights)} entries "
                f"but iterations={self.iterations}"
            )
        if self.iterations < 1:
            raise ValueError("iterations must be >= 1")
        if self.nonlocal_patch % 2 != 1:
            raise ValueError("nonlocal_patch must be odd")

    def with_(self, **changes: Any) -> CISRConfig:
        """Return a copy with ``changes`` applied (``loss_weights`` follows ``iterations``)."""
        if "iterations" in changes and "loss_weights" not in changes:
            changes["loss_weights"] = default_loss_weights(changes["iterations"])
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form, stored next to weights."""
        out = asdict(self)
        out["loss_weights"] = list(self.loss_weights)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CISRConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error."""
        data = dict(data)
        data["loss_weights"] = tuple(data.get("loss_weights", ()))
        return cls(**data)


def default_loss_weights(iterations: int) -> tuple[float, ...]:
    """rho_j = j / J, the curriculum of the paper (0.2..1 for J=5; close to 0.3, 0.6, 1 for J=3)."""
    return tuple(round((j + 1) / iterations, 4) for j in range(iterations))


#: Variants of the paper (Section 4.1) and the CPU-sized default.
VARIANTS: dict[str, CISRConfig] = {
    "full": CISRConfig(
        groups=5, blocks=12, features=64, iterations=3, loss_weights=(0.3, 0.6, 1.0)
    ),
    "tiny": CISRConfig(
        groups=2, blocks=12, features=64, iterations=5, loss_weights=(0.2, 0.4, 0.6, 0.8, 1.0)
    ),
    # Chosen by measuring training-step time on 2 CPU cores (docs/models.md): narrow and shallow,
    # with J = 3 and a 7×7 search window, so that an hour of CPU training gives thousands of steps.
    "lite": CISRConfig(
        groups=1,
        blocks=4,
        features=32,
        reduction=8,
        iterations=3,
        loss_weights=(0.3, 0.6, 1.0),
        search_radius=3,
    ),
}


#: Where a variant differs by scale: its shipped weights at that scale are of this shape.
#: lite x2, x3 and x4 were grown from the 4-block lite to 12 RCABs per module (docs/models.md:
#: stages x2-17, x3-8 and x3-10, x4-7 and x4-22; ``TrainConfig.init_deeper``).
SCALE_CHANGES: dict[str, dict[int, dict[str, Any]]] = {
    "lite": {2: {"blocks": 12}, 3: {"blocks": 12}, 4: {"blocks": 12}},
}


def variant_config(name: str, scale: int = 2, **overrides: Any) -> CISRConfig:
    """Configuration of a named variant at ``scale`` (with its :data:`SCALE_CHANGES`), with
    optional overrides."""
    try:
        base = VARIANTS[name]
    except KeyError:
        raise ValueError(
            f"unknown model variant {name!r}; choose one of {sorted(VARIANTS)}"
        ) from None
    changes = {**SCALE_CHANGES.get(name, {}).get(scale, {}), **overrides}
    return base.with_(scale=scale, **changes)

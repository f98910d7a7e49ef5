"""The unfolded CISR-PSI network (paper Eq. 7, Fig. 2, Algorithm 2)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

from napari_cisr.model.arm import ArtefactRemovalModule
from napari_cisr.model.config import CISRConfig
from napari_cisr.model.rem import ResolutionEnhancementModule
from napari_cisr.model.resize import bicubic_upsample


@dataclass
class CISROutput:
    """Every estimate of one forward pass.

    Attributes
    ----------
    y_hat : list of Tensor
        ŷ_1..ŷ_J, B×C×H×W (LR).
    x_hat : list of Tensor
        x̂_1..x̂_J, B×C×sH×sW (HR); ``x_hat[-1]`` is the result.
    blocking : Tensor
        d(z) as B×1×H×W in [0, 1] (zeros when the mask is disabled).
    """

    y_hat: list[torch.Tensor]
    x_hat: list[torch.Tensor]
    blocking: torch.Tensor

    @property
    def result(self) -> torch.Tensor:
        """x̂_J."""
        return self.x_hat[-1]


class CISRPSI(nn.Module):
    """Parallel-and-series integration of an ARM and a REM, unfolded over J iterations.

    ``x̂_0 = bicubic(z)``; for j = 1..J: ``ŷ_j = ARM(x̂_{j−1}, z)``, ``x̂_j = REM(ŷ_j, z)``.
    The same two modules (shared weights) run at every iteration, and both see the original
    compressed input z at every iteration (the parallel part).

    Input z: B×C×H×W float in [0, 1] (C = 3). No clamping inside: training sees the raw output.
    """

    def __init__(self, config: CISRConfig) -> None:
        super().__init__()
        self.config = config
        self.arm = ArtefactRemovalModule(config)
        self.rem = ResolutionEnhancementModule(config)

    @property
    def scale(self) -> int:
        return self.config.scale

    def blocking(self, z: torch.Tensor) -> torch.Tensor:
        """d(z): B×1×H×W in [0, 1], 1 on detected blocking edges."""
        if not self.config.use_blocking_mask:
            return z.new_zeros(z.shape[0], 1, *z.shape[2:])
        from napari_cisr.blocking import blocking_map

        return blocking_map(z)

    def unfold(
        self,
        z: torch.Tensor,
        iterations: int | None = None,
        blocking: torch.Tensor | None = None,
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield (ŷ_j, x̂_j) for j = 1..J, one iteration at a time (for progress and cancel).

        Parameters
        ----------
        z : Tensor
            B×C×H×W compressed LR input in [0, 1].
        iterations : int, optional
            J; defaults to the configured number. More iterations than trained reuse the same
            weights.
        blocking : Tensor, optional
            Precomputed d(z), B×1×H×W; computed from z when omitted.
        """
        if blocking is None:
            blocking = self.blocking(z)
        keep = 1.0 - blocking
        x_hat = bicubic_upsample(z, self.scale)
        for _ in range(iterations or self.config.iterations):
            y_hat = self.arm(x_hat, z, keep)
            x_hat = self.rem(y_hat, z, keep)
            yield y_hat, x_hat

    def forward(
        self,
        z: torch.Tensor,
        iterations: int | None = None,
        blocking: torch.Tensor | None = None,
    ) -> CISROutput:
        if blocking is None:
            blocking = self.blocking(z)
        y_hats, x_hats = [], []
        for y_hat, x_hat in self.unfold(z, iterations, blocking):
            y_hats.append(y_hat)
            x_hats.append(x_hat)
        return CISROutput(y_hat=y_hats, x_hat=x_hats, blocking=blocking)


def build_model(config: CISRConfig) -> CISRPSI:
    """The one constructor of CISR-PSI networks."""
    return CISRPSI(config)

"""Module I, the artefact removal module (ARM; paper Fig. 3a): ŷ = P(x̂, z)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from napari_cisr.model.backbone import RCANBackbone, conv3x3
from napari_cisr.model.combine import AdaptiveSkip
from napari_cisr.model.config import CISRConfig
from napari_cisr.model.nonlocal_op import BlockingAwareNonLocal


def registered_copy_index(scale: int) -> int:
    """0-based index of the space-to-depth copy of x̂ registered with z.

    The paper takes copy k = round((s² + 1) / 2) (1-based, rounding halves up): 3 of 4 at x2,
    5 of 9 at x3 (the exact centre), 9 of 16 at x4.
    """
    return (scale * scale + 1 + 1) // 2 - 1


class ArtefactRemovalModule(nn.Module):
    """Estimate the clean LR image ŷ from z and the current HR estimate x̂.

    x̂ (B×3×sH×sW) is rearranged by space-to-depth into s² LR copies; the registered copy g
    drives the non-local operator and the long skip, the other s² − 1 copies join the backbone
    input with z, g and u. Output B×3×H×W = backbone(z, g, u, other copies) + v.
    """

    def __init__(self, config: CISRConfig, channels: int = 3) -> None:
        super().__init__()
        self.scale = config.scale
        self.channels = channels
        self.registered_index = registered_copy_index(config.scale)
        self.use_nonlocal = config.use_nonlocal
        self.nonlocal_op = BlockingAwareNonLocal(
            channels, config.search_radius, config.nonlocal_patch, config.fixed_bandwidth
        )
        self.skip = AdaptiveSkip(channels, mode=config.skip)
        in_channels = 3 * channels + channels * (config.scale**2 - 1)
        self.backbone = RCANBackbone(
            in_channels, config.features, config.groups, config.blocks, config.reduction
        )
        self.tail = conv3x3(config.features, channels)
        # Zero-initialised tail: the module starts as its long skip (close to the identity).
        nn.init.zeros_(self.tail.weight)
        nn.init.zeros_(self.tail.bias)

    def split_copies(self, x_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Space-to-depth: (registered copy B×C×H×W, the other copies B×C(s²−1)×H×W)."""
        batch = x_hat.shape[0]
        s2 = self.scale * self.scale
        copies = F.pixel_unshuffle(x_hat, self.scale)
        copies = copies.view(batch, self.channels, s2, *copies.shape[2:])
        others = [i for i in range(s2) if i != self.registered_index]
        registered = copies[:, :, self.registered_index]
        rest = copies[:, :, others].reshape(batch, self.channels * (s2 - 1), *copies.shape[3:])
        return registered, rest

    def forward(
        self, x_hat: torch.Tensor, z: torch.Tensor, keep: torch.Tensor | None = None
    ) -> torch.Tensor:
        g, other_copies = self.split_copies(x_hat)
        u = self.nonlocal_op(z, g, keep) if self.use_nonlocal else z
        v = self.skip(z, g, u)
        features = self.backbone(torch.cat([z, g, u, other_copies], dim=1))
        return self.tail(features) + v

"""Module II, the resolution enhancement module (REM; paper Fig. 3b): x̂ = R(ŷ, z)."""

from __future__ import annotations

import torch
from torch import nn

from napari_cisr.model.backbone import PixelShuffleUpsampler, RCANBackbone, conv3x3
from napari_cisr.model.combine import AdaptiveSkip
from napari_cisr.model.config import CISRConfig
from napari_cisr.model.nonlocal_op import BlockingAwareNonLocal
from napari_cisr.model.resize import bicubic_upsample


class ResolutionEnhancementModule(nn.Module):
    """Estimate the HR image x̂ from z and the current clean-LR estimate ŷ.

    g = ŷ drives the non-local operator and the long skip; after the backbone an RCAN
    upsampler (convolution to s²·features channels and pixel shuffle) and a conv to RGB;
    the long skip is upsampled bicubically. Output B×3×sH×sW.
    """

    def __init__(self, config: CISRConfig, channels: int = 3) -> None:
        super().__init__()
        self.scale = config.scale
        self.use_nonlocal = config.use_nonlocal
        self.nonlocal_op = BlockingAwareNonLocal(
            channels, config.search_radius, config.nonlocal_patch, config.fixed_bandwidth
        )
        self.skip = AdaptiveSkip(channels, mode=config.skip)
        self.backbone = RCANBackbone(
            3 * channels, config.features, config.groups, config.blocks, config.reduction
        )
        self.upsampler = PixelShuffleUpsampler(config.features, config.scale)
        self.tail = conv3x3(config.features, channels)
        nn.init.zeros_(self.tail.weight)
        nn.init.zeros_(self.tail.bias)

    def forward(
        self, y_hat: torch.Tensor, z: torch.Tensor, keep: torch.Tensor | None = None
    ) -> torch.Tensor:
        g = y_hat
        u = self.nonlocal_op(z, g, keep) if self.use_nonlocal else z
        v = self.skip(z, g, u)
        features = self.upsampler(self.backbone(torch.cat([z, g, u], dim=1)))
        return self.tail(features) + bicubic_upsample(v, self.scale)

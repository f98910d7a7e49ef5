"""Adaptive combination for the long skip connection (paper Eq. 11, Fig. 4b)."""

from __future__ import annotations

import torch
from torch import nn

from napari_cisr.model.config import SkipMode
from napari_cisr.model.precision import full_precision


class AdaptiveSkip(nn.Module):
    """Per-pixel convex combination ``v = t1·z + t2·g + t3·u`` with ``t = softmax(net(z, g, u))``.

    ``net`` is conv1x1(3C→64)-ReLU-conv1x1(64→3); the softmax runs over the three maps at every
    pixel, so t1 + t2 + t3 = 1 and the skip stays close to an identity mapping. With ``mode``
    set to "z", "g" or "u" the skip passes that single image instead (the paper's ablation).
    """

    def __init__(self, channels: int = 3, hidden: int = 64, mode: SkipMode = "adaptive") -> None:
        super().__init__()
        self.mode = mode
        if mode == "adaptive":
            self.net = nn.Sequential(
                nn.Conv2d(3 * channels, hidden, 1),
                nn.ReLU(inplace=True),
                nn.Conv2d(hidden, 3, 1),
            )

    def weights(self, z: torch.Tensor, g: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """t: B×3×H×W, non-negative, summing to 1 over dim 1 (order z, g, u)."""
        if self.mode != "adaptive":
            index = "zgu".index(self.mode)
            onehot = z.new_zeros(z.shape[0], 3, *z.shape[2:])
            onehot[:, index] = 1.0
            return onehot
        with full_precision(z):
            inputs = torch.cat([z, g, u], dim=1).to(self.net[0].weight.dtype)
            return torch.softmax(self.net(inputs), dim=1)

    def forward(self, z: torch.Tensor, g: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """v: B×C×H×W."""
        if self.mode != "adaptive":
            return {"z": z, "g": g, "u": u}[self.mode]
        t = self.weights(z, g, u)
        return t[:, 0:1] * z + t[:, 1:2] * g + t[:, 2:3] * u

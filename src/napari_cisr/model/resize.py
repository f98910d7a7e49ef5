"""Resizing inside the network: torch bicubic (a = −0.75, half-pixel centres, no antialias)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def bicubic_upsample(image: torch.Tensor, scale: int) -> torch.Tensor:
    """B×C×H×W → B×C×sH×sW, HR pixel i centred at LR coordinate (i + 0.5)/s − 0.5."""
    return F.interpolate(image, scale_factor=scale, mode="bicubic", align_corners=False)

"""Where the network must stay in float32 under bfloat16 autocast."""

from __future__ import annotations

import torch


def full_precision(like: torch.Tensor) -> torch.autocast:
    """Disable autocast on ``like``'s device for the enclosed ops.

    The per-pixel bandwidth h and the skip weights t scale whole images: in bfloat16 (8-bit
    mantissa) they lose quality, while their small convolutions cost little.
    """
    return torch.autocast(like.device.type, enabled=False)

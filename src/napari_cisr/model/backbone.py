"""RCAN backbone: residual groups of residual channel-attention blocks (Zhang et al., ECCV 2018)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def conv3x3(in_channels: int, out_channels: int) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 3, padding=1)


class ChannelAttention(nn.Module):
    """Squeeze (global average) and excite (two 1x1 convs, sigmoid): the B×C×1×1 channel gate."""

    def __init__(self, channels: int, reduction: int) -> None:
        super().__init__()
        hidden = max(channels // reduction, 1)
        self.squeeze = nn.Conv2d(channels, hidden, 1)
        self.excite = nn.Conv2d(hidden, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.bfloat16 and x.device.type == "cpu":
            # bfloat16 mean() first copies the whole map to float32 (on the CPU that copy took
            # longer than the convolutions around it); the pooling kernel accumulates in
            # float32 without the copy, to the same result. Not on CUDA: there a whole-map
            # pooling window is summed by one thread per channel (5x slower end to end).
            gate = F.avg_pool2d(x, x.shape[2:])
        else:
            gate = x.mean(dim=(2, 3), keepdim=True)
        return torch.sigmoid(self.excite(torch.relu(self.squeeze(gate))))


class ResidualChannelAttentionBlock(nn.Module):
    """conv-ReLU-conv, channel attention, identity skip."""

    def __init__(self, channels: int, reduction: int) -> None:
        super().__init__()
        self.conv1 = conv3x3(channels, channels)
        self.conv2 = conv3x3(channels, channels)
        self.attention = ChannelAttention(channels, reduction)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # In-place ReLU and a fused multiply-add: each saves a full pass over the feature map
        # (the block is memory-bound outside its two convolutions).
        features = self.conv2(torch.relu_(self.conv1(x)))
        return torch.addcmul(x, features, self.attention(features))


def load_into_deeper(model: nn.Module, state: dict[str, torch.Tensor]) -> int:
    """Load ``state`` into ``model``, a network with more RCABs per residual group than the one
    that saved ``state``; the blocks ``state`` lacks start as the identity (``conv2`` zeroed,
    so the block adds nothing): the deeper network starts by computing what the shallower did.

    Returns the number of blocks added. Raises ``ValueError`` if ``state`` lacks anything other
    than whole RCABs, or has keys ``model`` does not or of other shapes.
    """
    own = model.state_dict()
    missing = {key for key in own if key not in state}
    # Keys model lacks, or whose shapes differ (another width): not a deeper copy.
    unexpected = sorted(
        key for key in state if key not in own or own[key].shape != state[key].shape
    )
    added = {
        name: module
        for name, module in model.named_modules()
        if isinstance(module, ResidualChannelAttentionBlock) and f"{name}.conv1.weight" in missing
    }
    covered = {f"{name}.{key}" for name, block in added.items() for key in block.state_dict()}
    if unexpected or missing != covered:
        odd = unexpected or sorted(missing - covered)
        raise ValueError(f"the weights differ from the network by more than RCABs: {odd[:3]}")
    model.load_state_dict(state, strict=False)
    with torch.no_grad():
        for block in added.values():
            block.conv2.weight.zero_()
            block.conv2.bias.zero_()
    return len(added)


class ResidualGroup(nn.Module):
    """``blocks`` RCABs and a closing conv, with a short skip over the group."""

    def __init__(self, channels: int, blocks: int, reduction: int) -> None:
        super().__init__()
        self.blocks = nn.Sequential(
            *(ResidualChannelAttentionBlock(channels, reduction) for _ in range(blocks))
        )
        self.conv = conv3x3(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(self.blocks(x))


class RCANBackbone(nn.Module):
    """Head conv, residual groups, body conv, with RCAN's long skip over the groups.

    Input B×in_channels×H×W, output B×features×H×W (same spatial size).
    """

    def __init__(
        self, in_channels: int, features: int, groups: int, blocks: int, reduction: int
    ) -> None:
        super().__init__()
        self.head = conv3x3(in_channels, features)
        self.groups = nn.Sequential(
            *(ResidualGroup(features, blocks, reduction) for _ in range(groups))
        )
        self.body_conv = conv3x3(features, features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        head = self.head(x)
        return head + self.body_conv(self.groups(head))


class PixelShuffleUpsampler(nn.Module):
    """RCAN's upsampler: conv to s²·features channels and pixel shuffle (two x2 stages for x4)."""

    def __init__(self, features: int, scale: int) -> None:
        super().__init__()
        stages: list[nn.Module] = []
        factors = [2, 2] if scale == 4 else [scale]
        for factor in factors:
            stages += [conv3x3(features, features * factor * factor), nn.PixelShuffle(factor)]
        self.stages = nn.Sequential(*stages)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(x)

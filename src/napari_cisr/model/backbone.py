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


def load_into_larger(
    model: nn.Module, state: dict[str, torch.Tensor], *, deeper: bool = True, wider: bool = False
) -> tuple[int, int]:
    """Load ``state`` into ``model``, a network of the same design that is larger, so that the
    larger network starts by computing exactly what the smaller one did.

    * **Deeper** (more RCABs per residual group): the blocks ``state`` lacks start as the
      identity (``conv2`` zeroed, so the block adds nothing).
    * **Wider** (more features): every tensor that grew gets the old values in its leading
      block (old channels first: for the pixel-shuffle upsampler, whose channel ``c·s² + i``
      feeds output channel ``c``, that keeps each old channel's sub-pixels together); the
      weights from new input channels to old output channels are zeroed, so nothing old
      reads a new channel; new output channels keep the larger network's fresh
      initialisation, so they are not a symmetric saddle and start learning at once.

    Parameters
    ----------
    model : nn.Module
        The larger network, freshly built.
    state : dict
        The smaller network's state dict.
    deeper, wider : bool
        Which kinds of growth are allowed; anything else is an error.

    Returns
    -------
    (int, int)
        Blocks added, and the number of tensors widened.

    Raises
    ------
    ValueError
        If ``state`` has keys ``model`` lacks, lacks anything other than whole RCABs (or any
        block when not ``deeper``), or has a tensor that is not a leading block of the
        model's (or any tensor of another shape when not ``wider``).
    """
    own = model.state_dict()
    missing = {key for key in own if key not in state}
    unexpected = sorted(key for key in state if key not in own)
    grown = sorted(key for key in state if key in own and own[key].shape != state[key].shape)
    not_leading = [
        key
        for key in grown
        if state[key].ndim != own[key].ndim
        or any(old > new for old, new in zip(state[key].shape, own[key].shape, strict=True))
    ]
    added = {
        name: module
        for name, module in model.named_modules()
        if isinstance(module, ResidualChannelAttentionBlock) and f"{name}.conv1.weight" in missing
    }
    covered = {f"{name}.{key}" for name, block in added.items() for key in block.state_dict()}
    if unexpected or missing != covered:
        odd = unexpected or sorted(missing - covered)
        raise ValueError(f"the weights differ from the network by more than RCABs: {odd[:3]}")
    if added and not deeper:
        raise ValueError(f"the weights lack {len(added)} RCABs of the network (not deeper)")
    if not_leading or (grown and not wider):
        odd = not_leading or grown
        raise ValueError(f"the weights differ from the network by more than width: {odd[:3]}")
    loaded = dict(state)
    for key in grown:
        old, tensor = state[key], own[key].clone()
        if tensor.ndim >= 2:  # (out, in, ...): old outputs must not read new inputs
            tensor[: old.shape[0], old.shape[1] :] = 0
        tensor[tuple(slice(0, size) for size in old.shape)] = old
        loaded[key] = tensor
    model.load_state_dict(loaded, strict=False)
    with torch.no_grad():
        for block in added.values():
            block.conv2.weight.zero_()
            block.conv2.bias.zero_()
    return len(added), len(grown)


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

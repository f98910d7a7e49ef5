"""One tile: run the network on its window and pack every output into one HR array, already
weighted for blending; and the way back from a blended pack to the outputs."""

from __future__ import annotations

from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from napari_cisr.engine.core import from_network, to_network, unfold_outputs
from napari_cisr.engine.grid import GridInfo
from napari_cisr.model import CISRPSI
from napari_cisr.model.resize import bicubic_upsample
from napari_cisr.options import InferenceOptions
from napari_cisr.runtime import inference_context


@dataclass(frozen=True)
class Layout:
    """Channels of the packed HR prediction of a tile.

    HR part: [alpha (if any)] [x̂_J (3)] [x̂_1..x̂_{J-1} (3 each) if intermediates] [LR pack];
    the LR pack holds ŷ_1..ŷ_J (3 each), d(z) and the LR alpha, zero-padded to a multiple of
    s² channels and pixel-shuffled into HR (s² LR values per HR pixel, no loss).
    ``self_ensemble`` says how each tile's prediction is made (:func:`unfold_outputs`).
    """

    scale: int
    iterations: int
    alpha: bool
    intermediates: bool
    self_ensemble: bool = False

    @classmethod
    def of(cls, options: InferenceOptions, iterations: int, image: Any) -> Layout:
        """The layout both drivers use for ``image`` under ``options``: the one place where
        the per-tile settings are read from the options."""
        alpha = image.ndim == 3 and image.shape[2] == 4
        return cls(options.scale, iterations, alpha, options.intermediates, options.self_ensemble)

    @property
    def lr_channels(self) -> int:
        if not self.intermediates:
            return 0
        return 3 * self.iterations + 1 + int(self.alpha)

    @property
    def lr_packed(self) -> int:
        s2 = self.scale**2
        return -(-self.lr_channels // s2)

    @property
    def hr_direct(self) -> int:
        return int(self.alpha) + 3 * (self.iterations if self.intermediates else 1)

    @property
    def channels(self) -> int:
        return self.hr_direct + self.lr_packed


def _crop(
    tensor: torch.Tensor,
    window: tuple[int, int, int, int],
    extent: tuple[int, int, int, int],
    f: int,
) -> torch.Tensor:
    """Crop B×C×h×w (window at ``f``× resolution) to the extent (both in LR coordinates)."""
    wy0, _, wx0, _ = window
    ey0, ey1, ex0, ex1 = extent
    return tensor[..., (ey0 - wy0) * f : (ey1 - wy0) * f, (ex0 - wx0) * f : (ex1 - wx0) * f]


def predict_tile(
    network: CISRPSI,
    window_pixels: np.ndarray,
    window: tuple[int, int, int, int],
    extent: tuple[int, int, int, int],
    weights: np.ndarray,
    grid: GridInfo | None,
    layout: Layout,
    device: torch.device,
    dtype: torch.dtype = torch.float32,
) -> Generator[int, None, np.ndarray]:
    """Run the network on one window; yield after each iteration; return the weighted pack.

    Returns
    -------
    ndarray
        float32 (h·s)×(w·s)×K over the tile's extent, already multiplied by its blend weights.
    """
    s = layout.scale
    rgb, alpha = to_network(window_pixels)
    rgb = rgb.to(device)
    with inference_context(device, dtype):
        if grid is None or not network.config.use_blocking_mask:
            blocking = rgb.new_zeros(1, 1, *rgb.shape[2:])
        else:
            from napari_cisr.blocking import blocking_map

            local = (grid.offset[0] - window[0], grid.offset[1] - window[2])
            blocking = blocking_map(rgb, grid=grid.period, offset=local)
        steps: Iterator[tuple[torch.Tensor, torch.Tensor]] = unfold_outputs(
            network, rgb, layout.iterations, blocking, layout.self_ensemble
        )
    hr_parts: list[torch.Tensor] = []
    lr_parts: list[torch.Tensor] = []
    x_hat = None
    for j in range(layout.iterations):
        with inference_context(device, dtype):
            y_hat, x_hat = next(steps)
            if layout.intermediates:
                lr_parts.append(_crop(y_hat, window, extent, 1).float())
                if j < layout.iterations - 1:
                    hr_parts.append(_crop(x_hat, window, extent, s).float())
        yield j + 1
    with inference_context(device, dtype):
        head = [_crop(x_hat, window, extent, s).float()]
        if alpha is not None:
            alpha = alpha.to(device)
            hr_alpha = bicubic_upsample(alpha, s).clamp(0, 1)
            head.insert(0, _crop(hr_alpha, window, extent, s))
        parts = head + hr_parts
        if layout.intermediates:
            lr_parts.append(_crop(blocking, window, extent, 1).float())
            if alpha is not None:
                lr_parts.append(_crop(alpha, window, extent, 1))
            lr = torch.cat(lr_parts, dim=1)
            pad = layout.lr_packed * s * s - lr.shape[1]
            if pad:
                lr = torch.cat([lr, lr.new_zeros(1, pad, *lr.shape[2:])], dim=1)
            parts.append(torch.nn.functional.pixel_shuffle(lr, s))
        packed = torch.cat(parts, dim=1)[0].permute(1, 2, 0).cpu().numpy()
    return packed * weights[..., None]


def finish(packed: np.ndarray, layout: Layout, like: np.ndarray) -> dict[str, Any]:
    """Convert a blended pack (h·s×w·s×K float32) to the outputs, in ``like``'s dtype/layout."""
    s = layout.scale
    tensor = torch.from_numpy(np.ascontiguousarray(packed)).permute(2, 0, 1)[None]
    a = int(layout.alpha)
    hr_alpha = tensor[:, :1] if layout.alpha else None
    out: dict[str, Any] = {"image": from_network(tensor[:, a : a + 3], hr_alpha, like)}
    if not layout.intermediates:
        return out
    x_hats = [tensor[:, a + 3 + 3 * j : a + 6 + 3 * j] for j in range(layout.iterations - 1)]
    x_hats.append(tensor[:, a : a + 3])
    out["x_hats"] = [from_network(x, hr_alpha, like) for x in x_hats]
    lr = torch.nn.functional.pixel_unshuffle(tensor[:, layout.hr_direct :], s)
    n = layout.iterations
    lr_alpha = lr[:, 3 * n + 1 : 3 * n + 2] if layout.alpha else None
    out["y_hats"] = [from_network(lr[:, 3 * j : 3 * j + 3], lr_alpha, like) for j in range(n)]
    out["blocking"] = lr[0, 3 * n].numpy().astype(np.float32)
    return out

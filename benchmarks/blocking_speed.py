"""Speed of the blocking detector, as ratios measured in one run (this machine is noisy).

- ``detect_blocking`` on a 6-megapixel JPEG (q30) against decoding that JPEG with Pillow;
- ``estimate_grid`` on the same decoded photo (what routing an array runs: the grid on five
  1024² crops, then the JPEG quality read from the best one's pixels,
  :func:`napari_cisr.quantisation.jpeg_quality_from_pixels`), and that quality read alone on
  a 1024² crop, against the same decode;
- ``blocking_map`` on one training batch (16×3×48²) against the lite x2 network's forward pass
  on the same batch, the step it is computed in.

Median of 5 runs each. Usage::

    python benchmarks/blocking_speed.py
"""

from __future__ import annotations

import io
import statistics
import time

import numpy as np
import torch
from PIL import Image
from skimage import data

from napari_cisr.blocking import blocking_map, detect_blocking
from napari_cisr.engine.grid import estimate_grid
from napari_cisr.model import build_model, variant_config
from napari_cisr.quantisation import jpeg_quality_from_pixels


def _median_seconds(work, repeats: int = 5) -> float:
    work()  # warm-up
    durations = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        durations.append(time.perf_counter() - start)
    return statistics.median(durations)


def main() -> None:
    torch.set_num_threads(2)
    big = Image.fromarray(data.astronaut()).resize((3000, 2000), Image.BICUBIC)
    buffer = io.BytesIO()
    big.save(buffer, "JPEG", quality=30)
    encoded = buffer.getvalue()
    decoded = np.asarray(Image.open(io.BytesIO(encoded)))
    decode_s = _median_seconds(lambda: np.asarray(Image.open(io.BytesIO(encoded))))
    detect_s = _median_seconds(lambda: detect_blocking(decoded))
    print(f"detect_blocking, 6 MPix JPEG: {detect_s / decode_s:.2f}x the time to decode it")
    grid = estimate_grid(decoded)
    grid_s = _median_seconds(lambda: estimate_grid(decoded))
    print(
        f"estimate_grid with the quality read ({grid.jpeg_quality}), 6 MPix JPEG: "
        f"{grid_s / decode_s:.2f}x the time to decode it"
    )
    crop = decoded[:1024, :1024]
    read_s = _median_seconds(lambda: jpeg_quality_from_pixels(crop))
    print(f"jpeg_quality_from_pixels, 1024² crop: {read_s / decode_s:.2f}x that decode")

    batch = torch.rand(16, 3, 48, 48)
    model = build_model(variant_config("lite", 2)).eval()
    with torch.no_grad():
        forward_s = _median_seconds(lambda: model(batch))
    map_s = _median_seconds(lambda: blocking_map(batch))
    print(f"blocking_map, 16x3x48²: {map_s / forward_s:.3f}x the lite x2 forward pass")


if __name__ == "__main__":
    main()

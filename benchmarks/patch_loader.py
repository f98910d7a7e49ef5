"""What one loader process costs: seconds to draw a training batch (``PatchSampler.batch``) from
the training photos, by ``compress_size`` (64: the runs before x2 stage 22; 192: the default).

A GPU step of t seconds needs about (seconds per batch) / t loader processes
(``TrainConfig.workers``) to never wait for data. Single process, one thread.

    python benchmarks/patch_loader.py --scales 2 3 4 --sizes 64 192 --batch 64
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from napari_cisr.train.data import PatchSampler, list_photos, load_training_photos

DATA = ["data/photos-mate", "data/photos", "data/photos-2"]
HELD_OUT = ["Storm", "LadyBird", "YellowFlower", "Wood", "Path"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", type=int, nargs="+", default=[2, 3, 4])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 192])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    paths = list_photos(DATA, exclude=HELD_OUT)
    photos = load_training_photos(paths, [3])
    print(f"{len(photos)} photos; batch {args.batch}; median of {args.repeat} batches")
    for scale in args.scales:
        for size in args.sizes:
            sampler = PatchSampler(photos, scale, seed=0, compress_size=size)
            times = []
            for _ in range(args.repeat):
                start = time.perf_counter()
                sampler.batch(args.batch)
                times.append(time.perf_counter() - start)
            print(f"x{scale} compress_size {size}: {np.median(times):.3f} s per batch")


if __name__ == "__main__":
    main()

"""Peak memory of whole-image inference against ``tiling.estimate_memory``.

Each measurement runs in a fresh child process: it warms the model up on a 16² image, then
super-resolves a size² random RGB image whole (``tile=0``) and reports the growth of its peak
RSS (``ru_maxrss``) over the warm-up, next to the estimate the automatic tile size relies on.
``--nonlocal-strategy batched`` measures the non-local evaluation that CUDA uses (on the CPU,
where RSS can be read).

    python benchmarks/inference_memory.py --scales 2 4 --sizes 256 512 \
        --json experiments/results/inference-memory-lite.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

CHILD = """
import json, resource, sys
import numpy as np, torch
torch.set_num_threads(1)
from napari_cisr.inference import cached_model, super_resolve
from napari_cisr.model import variant_config
from napari_cisr.tiling import estimate_memory
model, scale, size, precision = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
for module in cached_model(model, scale, "cpu").modules():
    if hasattr(module, "strategy"):
        module.strategy = sys.argv[5]
image = np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)
super_resolve(image[:16, :16], scale, model=model, tile=0, precision=precision)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
super_resolve(image, scale, model=model, tile=0, precision=precision)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
estimate = estimate_memory(variant_config(model, scale), size * size)
print(json.dumps({"measured": after - before, "estimate": estimate}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="lite")
    parser.add_argument("--scales", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--precisions", nargs="+", default=["float32", "bfloat16"])
    parser.add_argument(
        "--nonlocal-strategy", default="auto", choices=["auto", "streamed", "batched"]
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rows = []
    print("| scale | LR size | precision | peak RSS growth (MiB) | estimate (MiB) |")
    print("| --- | --- | --- | --- | --- |")
    for scale in args.scales:
        for size in args.sizes:
            for precision in args.precisions:
                command = [sys.executable, "-c", CHILD, args.model, str(scale), str(size)]
                done = subprocess.run(
                    [*command, precision, args.nonlocal_strategy],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                row = json.loads(done.stdout.strip().splitlines()[-1])
                row.update(
                    scale=scale, size=size, precision=precision,
                    nonlocal_strategy=args.nonlocal_strategy,
                )  # fmt: skip
                rows.append(row)
                print(
                    f"| x{scale} | {size}² | {precision} | {row['measured'] / 2**20:.0f} | "
                    f"{row['estimate'] / 2**20:.0f} |",
                    flush=True,
                )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()

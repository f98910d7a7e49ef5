"""Eager vs ``torch.compile`` inference of a shipped model on one tile, in the same run.

The ARM and the REM (the modules each unfolding iteration calls) are compiled with inductor
(``dynamic=False``: one graph per tile shape, as a tile-size bucket would use); the unfolding
loop stays in Python. Reported per precision: the first compiled call (compilation included),
the best of ``--repeat`` timed calls of each path after a warm-up, their ratio, and the
agreement of the two outputs as a PSNR (dB) of compiled against eager.

    python benchmarks/compile_speed.py --scale 2 --size 256 --precisions bfloat16 float32 \
        --json experiments/results/compile-speed-lite-x2.json
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import platform
import time
from pathlib import Path

import torch
import torch._inductor.config

from napari_cisr.engine.core import for_inference
from napari_cisr.runtime import inference_context
from napari_cisr.weights import load_model

CPU = torch.device("cpu")


def _forward(model, z: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    with inference_context(CPU, dtype):
        return model(z).result.float()


def _best_of(model, z: torch.Tensor, dtype: torch.dtype, repeat: int) -> tuple[float, torch.Tensor]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        output = _forward(model, z, dtype)
        times.append(time.perf_counter() - start)
    return min(times), output


def measure(scale: int, size: int, dtype: torch.dtype, repeat: int, freezing: bool = False) -> dict:
    eager = for_inference(load_model("lite", scale), CPU)
    torch.manual_seed(0)
    z = torch.rand(1, 3, size, size).contiguous(memory_format=torch.channels_last)
    _forward(eager, z, dtype)  # warm-up
    eager_s, eager_out = _best_of(eager, z, dtype, repeat)

    compiled = copy.deepcopy(eager)
    torch._inductor.config.freezing = freezing
    torch._dynamo.reset()  # each precision compiles from scratch: its first call pays it all
    compiled.arm = torch.compile(compiled.arm, dynamic=False)
    compiled.rem = torch.compile(compiled.rem, dynamic=False)
    start = time.perf_counter()
    _forward(compiled, z, dtype)
    first_s = time.perf_counter() - start
    compiled_s, compiled_out = _best_of(compiled, z, dtype, repeat)
    mse = float(((eager_out.clamp(0, 1) - compiled_out.clamp(0, 1)) ** 2).mean())
    return {
        "eager_s": round(eager_s, 3),
        "compiled_s": round(compiled_s, 3),
        "first_compiled_call_s": round(first_s, 1),
        "eager_over_compiled": round(eager_s / compiled_s, 3),
        "agreement_psnr_db": round(10 * math.log10(1 / max(mse, 1e-20)), 1),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=int, default=2)
    parser.add_argument("--size", type=int, default=256, help="tile side in LR pixels")
    parser.add_argument("--precisions", nargs="+", default=["bfloat16", "float32"])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--freezing", action="store_true", help="inductor freezing (see above)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    report = {
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "threads": args.threads,
        "scale": args.scale,
        "size": args.size,
        "freezing": args.freezing,
        "results": {},
    }
    for name in args.precisions:
        dtype = getattr(torch, name)
        report["results"][name] = measure(args.scale, args.size, dtype, args.repeat, args.freezing)
        print(name, report["results"][name], flush=True)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()

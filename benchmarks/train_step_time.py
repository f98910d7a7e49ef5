"""Training-step time of CISR-PSI variants on this machine's CPU (choosing the lite widths).

One step = forward through all J iterations + Eq. (8) loss + backward + Adam, batch 16 of
48×48 LR patches at x2, blocking map precomputed (zeros). Reports the best of a few steps for
fp32, bfloat16 autocast and channels_last. Usage::

    python benchmarks/train_step_time.py [--threads 2] [--steps 4]
    python benchmarks/train_step_time.py --compile   # lite, bf16: eager vs torch.compile
"""

from __future__ import annotations

import argparse
import time

import torch

from napari_cisr.model import build_model, variant_config
from napari_cisr.train.loop import psi_loss

CANDIDATES = {
    "lite (r=3)": {},
    "lite, r=5": {"search_radius": 5},
    "lite, no non-local": {"use_nonlocal": False},
    "lite, 48 features, 6 blocks": {"features": 48, "blocks": 6},
}


def step_time(
    overrides: dict, bf16: bool, channels_last: bool, steps: int, compiled: bool = False
) -> float:
    torch.manual_seed(0)
    config = variant_config("lite", 2, **overrides)
    model = build_model(config)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    if compiled:
        model = torch.compile(model)
    optimizer = torch.optim.Adam(model.parameters(), 1e-4)
    batch, patch, s = 16, 48, config.scale
    z, y = torch.rand(batch, 3, patch, patch), torch.rand(batch, 3, patch, patch)
    x = torch.rand(batch, 3, patch * s, patch * s)
    blocking = torch.zeros(batch, 1, patch, patch)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = model(z, blocking=blocking)
            loss = psi_loss(out.y_hat, out.x_hat, y, x, config.loss_weights, 1.0)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
    return min(times[1:])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--compile", action="store_true", help="eager vs torch.compile only")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.compile:
        eager = step_time({}, True, False, args.steps)
        start = time.perf_counter()
        compiled = step_time({}, True, False, args.steps, compiled=True)
        total = time.perf_counter() - start
        print(
            f"lite x2, bf16 autocast, {args.threads} threads: eager {eager:.3f} s/step, "
            f"torch.compile {compiled:.3f} s/step (best of steps 2..{args.steps}; "
            f"{total:.0f} s for the compiled run, compilation included)"
        )
        return
    print(f"seconds per training step, batch 16 of 48², x2, {args.threads} threads\n")
    print("| variant | fp32 | bf16 autocast | channels_last |")
    print("| --- | --- | --- | --- |")
    for name, overrides in CANDIDATES.items():
        row = [step_time(overrides, bf16, cl, args.steps) for bf16, cl in
               [(False, False), (True, False), (False, True)]]  # fmt: skip
        print(f"| {name} | " + " | ".join(f"{t:.3f}" for t in row) + " |")


if __name__ == "__main__":
    main()

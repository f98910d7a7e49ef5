"""How many operations a training step issues, and what they cost before any arithmetic.

An eager PyTorch step pays the host a fixed price for every operation it dispatches (and, on
a GPU, for every kernel it launches), whatever the tensor sizes. This script counts the
kernel-level operations of one training step of a network (forward through the J iterations,
Eq. (8) loss, backward, Adam) for each non-local strategy, and times the step

* on tiny inputs (batch 1 of 16² LR patches), where arithmetic is negligible and the time is
  the dispatch floor of that step on this host in eager mode, and
* at the given training sizes (``--batch``, ``--patch``) on ``--device``.

On a GPU the "kernels" column counts the CUDA kernels the profiler saw. Usage::

    python benchmarks/step_dispatch.py --threads 2 --json experiments/results/step-dispatch-cpu.json
    python benchmarks/step_dispatch.py --device cuda --batch 64 128 256   # on a GPU machine
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch
from torch.profiler import ProfilerActivity, profile

from napari_cisr.model import build_model, variant_config
from napari_cisr.train.loop import psi_loss

#: aten operations that only make views or read metadata: no kernel behind them.
_NO_KERNEL = {
    "aten::empty", "aten::empty_strided", "aten::empty_like", "aten::as_strided",
    "aten::slice", "aten::view", "aten::select", "aten::t", "aten::transpose", "aten::expand",
    "aten::unsqueeze", "aten::squeeze", "aten::permute", "aten::detach", "aten::alias",
    "aten::reshape", "aten::_unsafe_view", "aten::_reshape_alias", "aten::resize_",
    "aten::result_type", "aten::lift_fresh", "aten::unbind", "aten::split", "aten::narrow",
    "aten::chunk", "aten::contiguous", "aten::is_nonzero", "aten::item",
    "aten::_local_scalar_dense", "aten::view_as", "aten::expand_as", "aten::set_",
}  # fmt: skip


def _network(scale: int, strategy: str, device: torch.device) -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_model(variant_config("lite", scale)).to(device)
    for module in model.modules():
        if hasattr(module, "strategy"):
            module.strategy = strategy
    return model


def _step_fn(model, batch: int, patch: int, bf16: bool, device: torch.device):
    config, scale = model.config, model.config.scale
    z = torch.rand(batch, 3, patch, patch, device=device)
    y = torch.rand(batch, 3, patch, patch, device=device)
    x = torch.rand(batch, 3, patch * scale, patch * scale, device=device)
    optimizer = torch.optim.Adam(model.parameters(), 1e-4)

    def step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            out = model(z)
            loss = psi_loss(out.y_hat, out.x_hat, y, x, config.loss_weights, 1.0, "l2")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _median_step(step, device: torch.device, repeat: int) -> float:
    step()
    step()  # warm-up: allocator, cuDNN algorithm choice
    times = []
    for _ in range(repeat):
        _sync(device)
        start = time.perf_counter()
        step()
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _count_operations(step, device: torch.device) -> tuple[int, int | None]:
    """(kernel-level aten operations, CUDA kernels or None) of one step."""
    activities = [ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(ProfilerActivity.CUDA)
    with profile(activities=activities) as prof:
        step()
        _sync(device)
    events = prof.events()
    aten = [e for e in events if e.name.startswith("aten::")]
    parents = {e.id for e in aten for c in e.cpu_children if c.name.startswith("aten::")}
    leaves = sum(1 for e in aten if e.id not in parents and e.name not in _NO_KERNEL)
    kernels = None
    if device.type == "cuda":
        kernels = sum(1 for e in events if e.device_type == torch.autograd.DeviceType.CUDA)
    return leaves, kernels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--scale", type=int, default=2)
    parser.add_argument("--batch", type=int, nargs="+", default=[16])
    parser.add_argument("--patch", type=int, default=48)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--bf16", action="store_true", help="bfloat16 autocast, as training")
    parser.add_argument("--json", help="also write the rows here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    rows = []
    for strategy in ("streamed", "batched"):
        model = _network(args.scale, strategy, device)
        tiny = _step_fn(model, 1, 16, args.bf16, device)
        operations, kernels = _count_operations(tiny, device)
        floor = _median_step(tiny, device, args.repeat)
        for batch in args.batch:
            step = _step_fn(model, batch, args.patch, args.bf16, device)
            seconds = _median_step(step, device, args.repeat)
            rows.append({
                "strategy": strategy, "operations": operations, "cuda_kernels": kernels,
                "tiny_step_s": floor, "batch": batch, "patch": args.patch, "step_s": seconds,
                "patches_per_s": batch / seconds,
            })  # fmt: skip
            kernel_text = f", {kernels} CUDA kernels" if kernels is not None else ""
            print(
                f"{strategy}: {operations} operations{kernel_text}; step on 1×16²: "
                f"{floor * 1e3:.0f} ms; batch {batch} of {args.patch}²: {seconds * 1e3:.0f} ms "
                f"({batch / seconds:.0f} patches/s)",
                flush=True,
            )
    streamed, batched = rows[: len(args.batch)], rows[len(args.batch) :]
    for s, b in zip(streamed, batched, strict=True):
        print(
            f"batch {s['batch']}: batched/streamed operations "
            f"{b['operations'] / s['operations']:.3f}, tiny step "
            f"{b['tiny_step_s'] / s['tiny_step_s']:.3f}, step {b['step_s'] / s['step_s']:.3f}"
        )
    if args.json:
        meta = {
            "device": torch.cuda.get_device_name(device) if device.type == "cuda"
            else platform.processor() or platform.machine(),
            "threads": torch.get_num_threads(), "torch": torch.__version__,
            "scale": args.scale, "bf16": args.bf16, "network": "lite "
            f"({sum(p.numel() for p in model.parameters())} parameters)",
        }  # fmt: skip
        with open(args.json, "w") as fh:
            json.dump({"meta": meta, "rows": rows}, fh, indent=1)


if __name__ == "__main__":
    main()

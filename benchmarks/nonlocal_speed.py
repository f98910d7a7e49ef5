"""The non-local operator's CPU time: its two strategies, streamed and batched.

``BlockingAwareNonLocal`` evaluates Eq. (9)-(10) either one window offset at a time on
shifted slices, accumulating the normalisation sums (*streamed*, what ``strategy="auto"``
uses on the CPU), or every offset of a band at once with ``F.unfold`` (*batched*, im2col
tensors (2r+1)²·C times the band; what ``auto`` uses on CUDA, where it cuts the operations a
training step dispatches: ``benchmarks/step_dispatch.py``). The script checks that both give
the same result and times them, with and without autograd (inference and training).

    python benchmarks/nonlocal_speed.py --size 256 512 --radius 3
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from napari_cisr.model.nonlocal_op import BlockingAwareNonLocal


def _median_time(fn, repeat: int) -> float:
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _timed(op: BlockingAwareNonLocal, strategy: str, fn, repeat: int) -> float:
    op.strategy = strategy
    return _median_time(fn, repeat)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--radius", type=int, default=3, help="search radius r (lite: 3)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    op = BlockingAwareNonLocal(3, args.radius, 3)
    for size in args.size:
        z, g = torch.rand(1, 3, size, size), torch.rand(1, 3, size, size)
        keep = (torch.rand(1, 1, size, size) > 0.1).float()
        with torch.inference_mode():
            op.strategy = "streamed"
            streamed_u = op(z, g, keep)
            op.strategy = "batched"
            diff = (streamed_u - op(z, g, keep)).abs().max().item()
            streamed = _timed(op, "streamed", lambda x=(z, g, keep): op(*x), args.repeat)
            batched = _timed(op, "batched", lambda x=(z, g, keep): op(*x), args.repeat)
        print(
            f"inference {size}², r={args.radius}, {torch.get_num_threads()} threads: streamed "
            f"{streamed * 1e3:.0f} ms, batched {batched * 1e3:.0f} ms "
            f"(streamed {batched / streamed:.2f}× faster), max |difference| {diff:.1e}",
            flush=True,
        )
    # Training: forward + backward on a batch of 16 patches of 48², as in one module call.
    zb, gb = torch.rand(16, 3, 48, 48), torch.rand(16, 3, 48, 48, requires_grad=True)
    keep = torch.ones(16, 1, 48, 48)
    streamed = _timed(op, "streamed", lambda: op(zb, gb, keep).sum().backward(), args.repeat)
    batched = _timed(op, "batched", lambda: op(zb, gb, keep).sum().backward(), args.repeat)
    print(
        f"training 16×48², r={args.radius}: streamed {streamed * 1e3:.0f} ms, batched "
        f"{batched * 1e3:.0f} ms (streamed {batched / streamed:.2f}× faster)",
        flush=True,
    )


if __name__ == "__main__":
    main()

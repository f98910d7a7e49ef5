"""The non-local operator's CPU time: shipped (streamed over offsets) vs an im2col reference.

``BlockingAwareNonLocal`` computes Eq. (9)-(10) one window offset at a time on shifted slices,
accumulating the normalisation sums instead of storing the (2r+1)² weights per pixel.
Its first version gathered every offset at once with ``F.unfold`` (im2col tensors (2r+1)²·C
times the image); that version is kept here as the reference: the script checks that both give
the same result and times them, with and without autograd (inference and training).

    python benchmarks/nonlocal_speed.py --size 256 512 --radius 3
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from napari_cisr.model.nonlocal_op import _BANDWIDTH_EPS, _MIN_KEPT, BlockingAwareNonLocal


def im2col_reference(
    op: BlockingAwareNonLocal, z: torch.Tensor, g: torch.Tensor, keep: torch.Tensor
) -> torch.Tensor:
    """Eq. (9)-(10) with every window offset gathered at once by ``F.unfold`` (one band)."""
    batch, channels, height, width = z.shape
    r, p = op.search_radius, op.patch // 2
    window = 2 * r + 1
    keep = F.avg_pool2d(keep, op.patch, stride=1, padding=p, count_include_pad=False)
    h = op.bandwidth_map(g)
    g_pad = F.pad(g, [r + p] * 4, mode="replicate")
    z_pad = F.pad(z, [r] * 4)
    keep_pad = F.pad(keep, [r] * 4, value=0.0)
    g_centre = g_pad[:, :, r : r + height + 2 * p, r : r + width + 2 * p]
    g_window = F.unfold(g_pad, window)
    g_window = g_window.view(batch, channels, window * window, height + 2 * p, width + 2 * p)
    sq = (g_centre.unsqueeze(2) - g_window).square().sum(1)
    dist = F.avg_pool2d(sq, op.patch, stride=1) * (op.patch * op.patch)
    weights = torch.softmax(-dist / (h.square() + _BANDWIDTH_EPS), dim=1)
    kept = F.unfold(keep_pad, window).view(batch, window * window, height, width)
    masked = weights * kept
    total = masked.sum(1, keepdim=True)
    weights = torch.where(total > _MIN_KEPT, masked / total.clamp_min(_MIN_KEPT), weights)
    z_window = F.unfold(z_pad, window).view(batch, channels, window * window, height, width)
    return (weights.unsqueeze(1) * z_window).sum(2)


def _median_time(fn, repeat: int) -> float:
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


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
            diff = (op(z, g, keep) - im2col_reference(op, z, g, keep)).abs().max().item()
            shipped = _median_time(lambda x=(z, g, keep): op(*x), args.repeat)
            reference = _median_time(lambda x=(z, g, keep): im2col_reference(op, *x), args.repeat)
        print(
            f"inference {size}², r={args.radius}, {torch.get_num_threads()} threads: shipped "
            f"{shipped * 1e3:.0f} ms, im2col {reference * 1e3:.0f} ms "
            f"(shipped {reference / shipped:.2f}× faster), max |difference| {diff:.1e}",
            flush=True,
        )
    # Training: forward + backward on a batch of 16 patches of 48², as in one module call.
    zb, gb = torch.rand(16, 3, 48, 48), torch.rand(16, 3, 48, 48, requires_grad=True)
    keep = torch.ones(16, 1, 48, 48)
    shipped = _median_time(lambda: op(zb, gb, keep).sum().backward(), args.repeat)
    reference = _median_time(
        lambda: im2col_reference(op, zb, gb, keep).sum().backward(), args.repeat
    )
    print(
        f"training 16×48², r={args.radius}: shipped {shipped * 1e3:.0f} ms, im2col "
        f"{reference * 1e3:.0f} ms (shipped {reference / shipped:.2f}× faster)",
        flush=True,
    )


if __name__ == "__main__":
    main()

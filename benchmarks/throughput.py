"""Throughput and efficiency of a model on the CPU or a GPU, and the overhead of tiled inference.

* Throughput: output megapixels per second of whole-image inference on an ``--size``² LR image.
* Efficiency: the model's FLOP/s (FLOPs counted by ``torch.utils.flop_counter.FlopCounterMode``
  on the same input, divided by the measured time) over the FLOP/s of one large 64→64 3×3
  float32 convolution (1×64×``--conv-size``² input, best memory format) timed in the same run,
  same threads; for bfloat16 also over the same convolution under bfloat16 autocast (the
  stricter ratio).
* The ceiling the architecture allows: the same ratios over a conv as wide as the model's
  features (``features``→``features``, e.g. 32→32 for ``lite``), which is what most of the
  model's convolutions are; and, per precision, the share of time spent in convolutions.
* Each ``--precisions`` entry is timed (``auto`` resolves as the library does on this machine).
* Tiled overhead: time of tiled inference (``--tile``) over whole-image inference, same image.

Timings are the median of ``--repeat`` runs after one warm-up run (CUDA synchronised). On a GPU
(``--device cuda``) the reference convolutions are float32 (cuDNN's default, TF32 allowed) and
bfloat16, batch 1; peak GPU memory of each run is recorded.

    python benchmarks/throughput.py --weights lite --scale 2 --size 512 --overhead-size 1024 \
        --tile 512 --precisions float32 bfloat16 --json experiments/results/throughput.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from napari_cisr.degrade import bicubic_downscale, compress
from napari_cisr.inference import run_to_completion, super_resolve_steps
from napari_cisr.options import InferenceOptions
from napari_cisr.runtime import inference_context, resolve_precision
from napari_cisr.tiling import model_halo, plan_tiles, tiled_super_resolve_steps
from napari_cisr.train.data import load_clean_photo
from napari_cisr.weights import load_model

PHOTO = "data/heldout/paper6/Storm.jpg"
#: ``tile=0``: the whole image in one pass (``tile=None`` lets the automatic choice tile it).
WHOLE = 0


DEVICE = torch.device("cpu")


def _sync() -> None:
    if DEVICE.type == "cuda":
        torch.cuda.synchronize(DEVICE)


def _timed(fn, repeat: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        _sync()
        start = time.perf_counter()
        fn()
        _sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _test_image(size: int, scale: int) -> np.ndarray:
    """A size×size JPEG-q30 LR image cut from a real photo (tiled by mirroring if needed)."""
    photo = load_clean_photo(PHOTO, 1)
    lr = bicubic_downscale(photo, scale)
    reps = (-(-size // lr.shape[0]), -(-size // lr.shape[1]), 1)
    big = np.tile(np.concatenate([lr, lr[::-1]], axis=0), reps)[:size, :size]
    return compress(np.ascontiguousarray(big), "jpeg", 30)


def conv_flops_per_second(size: int, repeat: int, channels: int = 64) -> dict[str, float]:
    """FLOP/s of a channels→channels 3×3 conv on 1×channels×size²: float32 in both memory
    formats (the best is the reference, so the efficiency is not flattered by a slow
    reference) and bfloat16."""
    rates = {}
    for name, fmt, dtype in (
        ("float32_nchw", torch.contiguous_format, torch.float32),
        ("float32_channels_last", torch.channels_last, torch.float32),
        ("bfloat16_channels_last", torch.channels_last, torch.bfloat16),
    ):
        conv = torch.nn.Conv2d(channels, channels, 3, padding=1).eval()
        conv = conv.to(DEVICE, memory_format=fmt)
        x = torch.rand(1, channels, size, size, device=DEVICE).contiguous(memory_format=fmt)
        with inference_context(DEVICE, dtype):
            seconds = _timed(lambda conv=conv, x=x: conv(x), repeat)
        rates[name] = 2 * 9 * channels * channels * size * size / seconds
    return rates


def _where() -> str:
    if DEVICE.type == "cuda":
        return torch.cuda.get_device_name(DEVICE)
    return f"CPU, {torch.get_num_threads()} threads"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default="lite")
    parser.add_argument("--scale", type=int, default=2)
    parser.add_argument("--size", type=int, default=512, help="LR side for throughput")
    parser.add_argument("--conv-size", type=int, default=512, help="side of the reference conv")
    parser.add_argument("--overhead-size", type=int, default=1024, help="LR side, tiled vs whole")
    parser.add_argument("--tile", type=int, default=512, help="core tile for the overhead run")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument(
        "--precisions", nargs="+", default=["auto"], choices=("auto", "float32", "bfloat16")
    )
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument(
        "--channels-last",
        action="store_true",
        help="channels-last weights on CUDA too (the library uses them on the CPU only)",
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    global DEVICE
    DEVICE = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)

    model = load_model(args.weights, scale=args.scale)
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    s = args.scale
    image = _test_image(args.size, s)

    def whole(img=image, precision=args.precisions[0]):
        steps = super_resolve_steps(
            img, s, model=model, tile=WHOLE, device=DEVICE, precision=precision
        )
        return run_to_completion(steps)

    whole(image[:32, :32])  # puts the model in its inference layout (channels-last on the CPU)

    # FLOPs of the network alone (what the counter sees: convolutions, matmuls), one pass.
    z = torch.from_numpy(image.astype(np.float32) / 255).permute(2, 0, 1)[None].contiguous()
    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        model.to(DEVICE)(z.to(DEVICE))
    flops = counter.get_total_flops()

    # Where the time goes: self time of the convolutions vs everything else, one pass.
    from torch.profiler import ProfilerActivity, profile

    cuda = DEVICE.type == "cuda"

    def time_shares(precision: str) -> tuple[float, list[tuple[str, float]]]:
        """(share of time in convolutions, the top 8 ops' shares) of one pass in PRECISION."""
        with inference_context(DEVICE, resolve_precision(precision, DEVICE)):
            activity = ProfilerActivity.CUDA if cuda else ProfilerActivity.CPU
            with profile(activities=[activity]) as prof:
                model(z.to(DEVICE))
                _sync()
        by_op = {
            e.key: e.self_device_time_total if cuda else e.self_cpu_time_total
            for e in prof.key_averages()
        }
        by_op = {k: v for k, v in by_op.items() if v > 0}
        total_us = sum(by_op.values())
        # CPU: aten::*convolution*; CUDA: cuDNN's kernels (forward "fprop", implicit GEMM).
        conv_names = ("conv", "fprop", "implicit_gemm")
        conv_us = sum(v for k, v in by_op.items() if any(n in k.lower() for n in conv_names))
        top = sorted(by_op.items(), key=lambda kv: -kv[1])[:8]
        return conv_us / total_us, [(k, v / total_us) for k, v in top]

    conv_rates = conv_flops_per_second(args.conv_size, args.repeat)
    conv_rate = max(conv_rates["float32_nchw"], conv_rates["float32_channels_last"])
    width = model.config.features
    width_rates = conv_flops_per_second(args.conv_size, args.repeat, channels=width)
    width_rate = {
        "float32": max(width_rates["float32_nchw"], width_rates["float32_channels_last"]),
        "bfloat16": width_rates["bfloat16_channels_last"],
    }
    out_mpix = (s * args.size) ** 2 / 1e6
    by_precision = {}
    for precision in args.precisions:
        dtype = resolve_precision(precision, DEVICE)
        if cuda:
            torch.cuda.reset_peak_memory_stats(DEVICE)
        seconds = _timed(lambda precision=precision: whole(precision=precision), args.repeat)
        rate = flops / seconds
        entry = {
            "resolved": str(dtype).split(".")[-1],
            "seconds": seconds,
            "peak_gpu_gib": torch.cuda.max_memory_allocated(DEVICE) / 2**30 if cuda else None,
            "output_mpix_per_s": out_mpix / seconds,
            "model_gflop_per_s": rate / 1e9,
            "efficiency": rate / conv_rate,
        }
        if dtype == torch.bfloat16:
            entry["efficiency_vs_bfloat16_conv"] = rate / conv_rates["bfloat16_channels_last"]
        resolved = entry["resolved"]
        if resolved in width_rate:
            entry["efficiency_vs_model_width_conv"] = rate / width_rate[resolved]
        entry["conv_time_share"], top = time_shares(precision)
        entry["top_ops_time_share"] = dict(top)
        by_precision[precision] = entry
        print(
            f"{args.weights} x{s}, {precision} ({entry['resolved']}), "
            f"{_where()}, {args.size}² LR → {s * args.size}²: "
            f"{seconds:.3f} s, {entry['output_mpix_per_s']:.3f} output MPix/s; "
            f"{flops / 1e9:.1f} GFLOP → {rate / 1e9:.1f} GFLOP/s; float32 64→64 conv "
            f"{conv_rate / 1e9:.1f} GFLOP/s; efficiency {entry['efficiency']:.2f}"
            + (
                f" (vs the bfloat16 conv, {conv_rates['bfloat16_channels_last'] / 1e9:.1f} "
                f"GFLOP/s: {entry['efficiency_vs_bfloat16_conv']:.2f})"
                if "efficiency_vs_bfloat16_conv" in entry
                else ""
            ),
            flush=True,
        )
        if "efficiency_vs_model_width_conv" in entry:
            print(
                f"  vs a {width}→{width} {resolved} conv "
                f"({width_rate[resolved] / 1e9:.1f} GFLOP/s, "
                f"{width_rate[resolved] / conv_rate:.2f} of the float32 64→64 one): "
                f"{entry['efficiency_vs_model_width_conv']:.2f}",
                flush=True,
            )
        print(
            f"  time in convolutions {100 * entry['conv_time_share']:.0f}%; top ops: "
            + ", ".join(f"{k} {100 * v:.0f}%" for k, v in top),
            flush=True,
        )
    result = {
        "weights": args.weights,
        "scale": s,
        "config": model.config.to_dict(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "device": _where(),
        "channels_last": args.channels_last or DEVICE.type == "cpu",
        "lr_size": args.size,
        "model_gflop": flops / 1e9,
        "conv64_gflop_per_s": conv_rate / 1e9,
        "conv64_gflop_per_s_by_kind": {k: v / 1e9 for k, v in conv_rates.items()},
        "model_width": width,
        "model_width_conv_gflop_per_s_by_kind": {k: v / 1e9 for k, v in width_rates.items()},
        "by_precision": by_precision,
    }

    if args.overhead_size:
        big = _test_image(args.overhead_size, s)
        halo = model_halo(model.config)
        plan = plan_tiles(big.shape[:2], s, args.tile, halo)

        def tiled(img=big):
            options = InferenceOptions(
                scale=s, model=model, tile=args.tile, device=DEVICE, precision=args.precisions[0]
            )
            steps = tiled_super_resolve_steps(img, options)
            return run_to_completion(steps)

        whole_s = _timed(lambda: whole(big), args.repeat)
        tiled_s = _timed(tiled, args.repeat)
        result.update(
            overhead_lr_size=args.overhead_size,
            overhead_tile=plan.tile,
            overhead_tiles=plan.n_tiles,
            overhead_halo=halo,
            overhead_precision=args.precisions[0],
            whole_s=whole_s,
            tiled_s=tiled_s,
            tiled_over_whole=tiled_s / whole_s,
        )
        print(
            f"tiled overhead, {args.overhead_size}² LR, tile {plan.tile} ({plan.n_tiles} tiles, "
            f"halo {halo}): whole {whole_s:.2f} s, tiled {tiled_s:.2f} s, "
            f"ratio {tiled_s / whole_s:.3f}",
            flush=True,
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

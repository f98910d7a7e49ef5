"""Batch benchmarks: peak memory against image size, 1 vs 2 workers, and scheduling cost.

Each measurement runs ``run_batch`` in a fresh child process (the local dask cluster runs its
workers as threads of that process), which reports its own peak RSS (``ru_maxrss``) and wall
time. Inputs are zarr arrays of ``size``² LR pixels, RGB uint8, made from a real photo (tiled by
mirroring) compressed as JPEG q30, written once to ``--workdir``.

    python benchmarks/batch_bench.py memory --sizes 2048 4096 --stacks 4x2048 --repeats 3
    python benchmarks/batch_bench.py memory --sizes 2048 4096 --held-mib 100000 --as-before
    python benchmarks/batch_bench.py scaling --size 1024 --weights lite
    python benchmarks/batch_bench.py submit --sizes 2048 4096 8192

``--stacks PxS`` adds inputs of P planes of S² (the same content), as much work as one plane of
(√P·S)² but planes no larger than S². ``--repeats`` runs each input several times (peak RSS
is a maximum over a run, so single runs are noisy) and reports the median and the range.
``--as-before`` turns off, in the child, what batch does to keep memory flat (bands of block
columns, no worker profiler, returning free heap memory after each block), for comparison.

``submit`` times, on a scheduler without workers (nothing is computed), how long one tile
takes to reach the scheduler when submitted with the graph of its whole plane (as a collection
would be) and with the plane's graph culled to what the tile needs (as batch does), and
measures the memory of the plane's materialised graph (``tracemalloc``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def make_input(workdir: Path, size: int, scale: int, planes: int = 1) -> Path:
    """A size² RGB uint8 zarr array (or stack of ``planes``) of JPEG-q30 content (512² chunks)."""
    import zarr

    sys.path.insert(0, os.fspath(HERE))
    from throughput import _test_image

    path = workdir / (f"input-{size}.zarr" if planes == 1 else f"input-{planes}x{size}.zarr")
    if path.exists():
        return path
    block = _test_image(min(size, 1024), scale)
    reps = -(-size // block.shape[0])
    image = np.tile(block, (reps, reps, 1))[:size, :size]
    shape, chunks = image.shape, (512, 512, 3)
    if planes > 1:
        shape, chunks = (planes, *shape), (1, *chunks)
    array = zarr.create_array(os.fspath(path), shape=shape, chunks=chunks, dtype=np.uint8)
    array[...] = np.broadcast_to(image, shape)
    return path


def child(args: argparse.Namespace) -> None:
    """Run one batch and print a JSON line with its time and peak RSS."""
    import dataclasses

    from napari_cisr.batch import ClusterSettings, run_batch

    settings = ClusterSettings()
    (held_mib,) = args.held_mib
    if held_mib:  # the in-memory cap of held tiles per worker (0: batch's default)
        settings = dataclasses.replace(settings, held_bytes=held_mib * 2**20)
    if args.as_before:
        # rows of blocks as wide as the image; free heap memory stays with malloc; the profiler
        settings = dataclasses.replace(settings, min_band=10**9, malloc_trim=False, profiler=True)

    start = time.perf_counter()
    report = run_batch(
        args.input,
        args.output,
        scale=args.scale,
        model=args.weights,
        tile=args.tile,
        workers=args.workers,
        threads=args.threads or None,
        overwrite=True,
        cluster_settings=settings,
    )
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(
        json.dumps(
            {"seconds": seconds, "peak_rss": peak, "blocks": report.computed, "ok": report.ok}
        )
    )


def measure(
    input_path: Path,
    output: Path,
    args: argparse.Namespace,
    workers: int,
    threads: int,
    held_mib: int = 0,
) -> dict:
    command = [
        sys.executable,
        __file__,
        "child",
        "--input",
        os.fspath(input_path),
        "--output",
        os.fspath(output),
        "--scale",
        str(args.scale),
        "--weights",
        args.weights,
        "--workers",
        str(workers),
        "--threads",
        str(threads),
        "--held-mib",
        str(held_mib),
    ]
    if args.tile:
        command += ["--tile", str(args.tile)]
    if args.as_before:
        command.append("--as-before")
    env = dict(os.environ)
    if args.glibc_arenas:  # glibc's default (8 per core) instead of batch's limit of 2
        env["MALLOC_ARENA_MAX"] = str(8 * (os.cpu_count() or 1))
    done = subprocess.run(command, check=True, capture_output=True, text=True, env=env)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    shutil.rmtree(output, ignore_errors=True)
    return result


def submit_cost(size: int, scale: int, weights: str, tiles: int = 8) -> dict:
    """Seconds per tile to register on the scheduler: whole-plane graph vs culled graph."""
    import dask.array as da
    from distributed import Client, LocalCluster

    from napari_cisr._batch.schedule import PlaneGraph
    from napari_cisr.batch import WORKER_BUDGET
    from napari_cisr.options import InferenceOptions
    from napari_cisr.tiling import build_tiled_dask, choose_tile, lazy_grid, model_halo
    from napari_cisr.weights import model_config

    config = model_config(weights, scale=scale)
    tile = choose_tile(config, None, "cpu", budget=WORKER_BUDGET)
    image = da.zeros((size, size, 3), dtype=np.uint8, chunks=(512, 512, 3))
    grid = lazy_grid(image)
    options = InferenceOptions(scale=scale, model=weights, tile=tile, device="cpu")
    built = build_tiled_dask(image, options, halo=model_halo(config), grid=grid)
    tiles = min(tiles, built.tiles.numblocks[1])
    # Whole-plane graphs for tiles of row 0, culled graphs for tiles of row 1: no key is shared.
    names = [(built.tiles.name, 1, c, 0) for c in range(tiles)]
    start = time.perf_counter()
    n_tasks = len(PlaneGraph(built.result.image.__dask_graph__()).tasks)
    materialise = time.perf_counter() - start
    # Again, traced, on a copy of the collection: the memory the materialised tasks hold.
    copy = build_tiled_dask(image, options, halo=model_halo(config), grid=grid)
    graph = PlaneGraph(copy.result.image.__dask_graph__())
    del copy
    tracemalloc.start()
    graph.tasks  # noqa: B018
    graph_bytes = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    delayed = built.tiles.to_delayed(optimize_graph=False)[0].ravel()
    with (
        LocalCluster(n_workers=0, processes=False, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        scheduler = cluster.scheduler

        def registered(key: object) -> None:
            while key not in scheduler.tasks:
                time.sleep(1e-4)

        futures = [client.compute(grid, optimize_graph=False)]
        registered(grid.key)
        start = time.perf_counter()
        for d in delayed[:tiles]:
            futures.append(client.compute(d, optimize_graph=False))
            registered(d.key)
        whole = (time.perf_counter() - start) / tiles
        start = time.perf_counter()
        for key in names:
            futures += client.get(graph.cull([key], {grid.key}), [key], sync=False)
            registered(key)
        culled = (time.perf_counter() - start) / tiles
        for future in futures:
            future.cancel()
    return {
        "lr_size": size,
        "graph_tasks": n_tasks,
        "materialise_s": materialise,
        "graph_bytes": graph_bytes,
        "whole_plane_s_per_tile": whole,
        "culled_s_per_tile": culled,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("memory", "scaling", "submit", "child"))
    parser.add_argument("--weights", default="lite")
    parser.add_argument("--scale", type=int, default=2)
    parser.add_argument("--sizes", type=int, nargs="*", default=[2048, 4096])
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--tile", type=int, default=0, help="0: batch's automatic tile")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/napari-cisr-bench"))
    parser.add_argument(
        "--glibc-arenas", action="store_true", help="keep glibc's default malloc arena count"
    )
    parser.add_argument(
        "--held-mib",
        type=int,
        nargs="+",
        default=[0],
        help="memory: in-memory cap of held tiles per worker, MiB (0: batch's default); "
        "a huge value turns spilling off",
    )
    parser.add_argument(
        "--stacks", nargs="*", default=[], help="memory: stacks of planes, as PLANESxSIZE"
    )
    parser.add_argument("--repeats", type=int, default=1, help="memory: runs per input")
    parser.add_argument(
        "--as-before", action="store_true", help="without batch's memory-flattening measures"
    )
    parser.add_argument("--json", type=Path)
    # child-only
    parser.add_argument("--input")
    parser.add_argument("--output")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    args.tile = args.tile or None
    if args.mode == "child":
        child(args)
        return
    args.workdir.mkdir(parents=True, exist_ok=True)
    cores = os.cpu_count() or 1
    results = []
    if args.mode == "memory":
        from napari_cisr.batch import ClusterSettings

        default_held = ClusterSettings().held_bytes

        inputs = [(1, size) for size in args.sizes]
        inputs += [tuple(int(n) for n in spec.split("x")) for spec in args.stacks]
        for held in args.held_mib:
            for planes, size in inputs:
                source = make_input(args.workdir, size, args.scale, planes)
                runs = [
                    measure(source, args.workdir / "out.zarr", args, 1, cores, held)
                    for _ in range(args.repeats)
                ]
                peaks = sorted(run["peak_rss"] for run in runs)
                row = {
                    "seconds": float(np.median([run["seconds"] for run in runs])),
                    "peak_rss": int(np.median(peaks)),
                    "peak_rss_min": peaks[0],
                    "peak_rss_max": peaks[-1],
                    "runs": runs,
                    "blocks": runs[0]["blocks"],
                    "ok": all(run["ok"] for run in runs),
                    "lr_size": size,
                    "planes": planes,
                    "workers": 1,
                    "threads": cores,
                    "glibc_arenas": args.glibc_arenas,
                    "as_before": args.as_before,
                    "held_mib": held or default_held // 2**20,
                }
                pixels = planes * (args.scale * size) ** 2
                row["output_mpix_per_s"] = pixels / 1e6 / row["seconds"]
                results.append(row)
                print(
                    f"held ≤ {row['held_mib']} MiB, {planes} × {size}² LR → {args.scale * size}²: "
                    f"{row['seconds']:.1f} s ({row['output_mpix_per_s']:.3f} MPix/s), "
                    f"{row['blocks']} blocks, peak RSS {row['peak_rss'] / 2**30:.2f} GiB "
                    f"({peaks[0] / 2**30:.2f}-{peaks[-1] / 2**30:.2f}, {len(runs)} runs)",
                    flush=True,
                )
    elif args.mode == "submit":
        for size in args.sizes:
            row = submit_cost(size, args.scale, args.weights)
            results.append(row)
            print(
                f"{size}² LR, {row['graph_tasks']} tasks (materialised in "
                f"{row['materialise_s']:.2f} s, {row['graph_bytes'] / 2**20:.1f} MiB): per tile "
                f"{row['whole_plane_s_per_tile'] * 1e3:.1f} ms with the whole plane's graph, "
                f"{row['culled_s_per_tile'] * 1e3:.1f} ms culled",
                flush=True,
            )
    else:
        source = make_input(args.workdir, args.size, args.scale)
        for workers, threads in ((1, 1), (2, 1), (1, cores)):
            row = measure(source, args.workdir / "out.zarr", args, workers, threads)
            row.update(lr_size=args.size, workers=workers, threads=threads)
            results.append(row)
            print(
                f"{workers} worker(s) × {threads} torch thread(s): {row['seconds']:.1f} s, "
                f"peak RSS {row['peak_rss'] / 2**30:.2f} GiB",
                flush=True,
            )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

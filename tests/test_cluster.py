"""``napari-cisr batch --scheduler``: a real dask.distributed cluster of worker processes, one of
which is killed mid-run; the job still finishes, with output identical to a one-process run."""

from __future__ import annotations

import os
import signal
import threading

import numpy as np
import pytest

from napari_cisr.cli import main
from napari_cisr.io import read_image, write_image
from photo_files import save_camera_jpeg, smooth_photo

pytestmark = pytest.mark.slow


def _photos(folder):
    folder.mkdir()
    save_camera_jpeg(folder / "portrait.jpg", height=48, width=64)
    for index in range(7):
        write_image(folder / f"p{index}.jpg", smooth_photo(48, 64, seed=index), quality=30)


def test_a_killed_worker_does_not_change_the_result(tmp_path, fresh_weights, monkeypatch):
    from distributed import Client, LocalCluster

    photos = tmp_path / "photos"
    _photos(photos)
    model = ["--model", os.fspath(fresh_weights), "--device", "cpu"]
    # One process, two worker threads of one torch thread each: what the cluster's worker
    # processes run with (dask's nanny sets OMP_NUM_THREADS=1). oneDNN's sums depend on the
    # thread count (by 1 in a few pixels), so the reference runs on as many as the workers.
    reference = tmp_path / "one-process"
    assert main(["batch", os.fspath(photos), os.fspath(reference), "--workers", "2", *model]) == 0

    cluster = LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
    )
    killer = Client(cluster)
    killed = threading.Event()

    def kill_one_worker_after_the_first_photo(*args):
        # runs in the client's as_completed loop (through progress.finish below)
        if not killed.is_set():
            killed.set()
            victim = next(iter(killer.scheduler_info()["workers"]))
            pid = killer.run(os.getpid, workers=[victim])[victim]
            os.kill(pid, signal.SIGKILL)  # as the kernel's OOM killer would

    class KillingProgress:
        def start(self, job, index, total):
            pass

        def step(self, done, total):
            pass

        def finish(self, job, outcome, detail):
            kill_one_worker_after_the_first_photo()

        def close(self):
            pass

    monkeypatch.setattr("napari_cisr.progress.LogLines", lambda quiet=False: KillingProgress())
    out = tmp_path / "cluster"
    try:
        args = [
            "batch",
            os.fspath(photos),
            os.fspath(out),
            "--scheduler",
            cluster.scheduler_address,
        ]
        assert main([*args, *model]) == 0
    finally:
        killer.close()
        cluster.close()
    assert killed.is_set()
    names = sorted(p.name for p in reference.iterdir())
    assert len(names) == 8 and sorted(p.name for p in out.iterdir()) == names
    for name in names:
        np.testing.assert_array_equal(read_image(out / name), read_image(reference / name))

"""The dask.distributed client a batch runs on, and the memory settings of its workers."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from napari_cisr._batch.report import BatchError

__all__ = ["Cluster", "ClusterSettings", "return_free_memory"]


def _glibc_function(name: str) -> Any:
    """A function of glibc's malloc, or None off Linux/glibc."""
    import ctypes
    import ctypes.util
    import platform

    if platform.system() != "Linux":
        return None
    try:
        return getattr(ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6"), name)
    except (OSError, AttributeError):  # not glibc
        return None


_MALLOC_TRIM = _glibc_function("malloc_trim")


def return_free_memory() -> None:
    """Give the C heap's free pages back to the system (glibc only; elsewhere a no-op).

    Each block frees the network's activations and the tile buffers it used; glibc keeps such
    memory cached in its arenas, in pieces that fragment as tiles of different shapes come and
    go, so without this the resident memory of a batch creeps up with the work it has done
    (docs/benchmarks.md).
    """
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


def _limit_malloc_arenas(arenas: int = 2) -> None:
    """Cap glibc's malloc arenas for the threads started from now on (Linux/glibc only).

    Every thread that allocates gets its own arena by default (up to 8 per core), and freed
    tile-sized buffers stay cached in each: the local cluster's worker threads then hold
    several tiles' worth of freed memory. Two arenas lower the batch's peak RSS (measured in
    docs/benchmarks.md). Same effect as ``MALLOC_ARENA_MAX=2``, which, when set, is left to
    decide; a no-op on other platforms.
    """
    mallopt = _glibc_function("mallopt")
    if mallopt is None or os.environ.get("MALLOC_ARENA_MAX"):
        return
    mallopt(-8, arenas)  # M_ARENA_MAX


@dataclass(frozen=True)
class ClusterSettings:
    """How a batch uses memory and schedules rows (defaults: what docs/benchmarks.md measured).

    Attributes
    ----------
    held_bytes : int
        Bytes of computed tiles a local worker keeps in memory; beyond that dask.distributed
        spills the least recently used ones to its scratch folder on disk. Batch holds three
        rows of a band's tile predictions, and the two columns of tiles beside the band's
        edges for as long as the image is tall (so that the next band need not compute them
        again): the cap keeps the tiles held in memory from growing with the image.
    min_band : int
        Fewest block columns in a band (:func:`napari_cisr._batch.schedule.blocks`); a band is
        also at least two blocks per worker thread, so that a row keeps every thread busy.
    malloc_trim : bool
        Whether each block's task gives the C heap's free pages back
        (:func:`return_free_memory`).
    profiler : bool
        Whether local workers run dask.distributed's statistical profiler. It keeps a
        per-second history of sampled stacks for 1000 s
        (``distributed.admin.low-level-log-length``): memory that grows with the batch's
        duration, for a dashboard a local batch never shows.
    """

    held_bytes: int = 64 * 2**20
    min_band: int = 4
    malloc_trim: bool = True
    profiler: bool = False


class Cluster:
    """A dask.distributed client: on a new in-process LocalCluster, or an existing scheduler.

    The local cluster runs its workers as threads of this process (so a killed batch leaves
    no orphan workers behind) with torch's threads pinned to cores // workers; the model
    cache is per process, so the network is loaded once. Each worker holds at most
    ``settings.held_bytes`` of results in memory and spills the rest to disk. An existing
    scheduler's workers keep their own memory settings. A context manager: leaving it closes
    the client (and the local cluster) and restores torch's thread count.

    Parameters
    ----------
    workers : int, optional
        Workers of the local cluster (default 1); ignored with ``scheduler``.
    scheduler : str, optional
        Address of an existing dask scheduler.
    threads : int, optional
        torch threads per local worker (default cores // workers).
    timeout : float
        Seconds to wait for ``scheduler``.
    settings : ClusterSettings, optional
        Memory and scheduling settings (default: ``ClusterSettings()``).
    """

    def __init__(
        self,
        workers: int | None,
        scheduler: str | None,
        threads: int | None,
        timeout: float,
        settings: ClusterSettings | None = None,
    ) -> None:
        from distributed import Client, LocalCluster

        self.settings = settings or ClusterSettings()
        self.cluster = None
        self.saved_threads: int | None = None
        if scheduler is not None:
            try:
                self.client = Client(scheduler, timeout=timeout)
            except (OSError, TimeoutError) as error:
                reason = " ".join(str(error).split())[:160]
                raise BatchError(
                    f"cannot reach the dask scheduler at '{scheduler}': {reason}"
                ) from None
            self.workers = max(1, len(self.client.scheduler_info().get("workers", {})))
            self.threads = max(1, sum(self.client.nthreads().values()))
            return
        import dask
        import torch

        from napari_cisr.runtime import available_memory

        _limit_malloc_arenas()
        held_bytes = self.settings.held_bytes
        self.workers = max(1, workers or 1)
        self.threads = self.workers  # one thread per local worker
        cores = os.cpu_count() or 1
        self.saved_threads = torch.get_num_threads()
        torch.set_num_threads(threads or max(1, cores // self.workers))
        # The scheduler refuses a task whose inputs exceed a worker's memory limit, so the limit
        # stays the machine's share and the cap is set as the spilling "target" fraction of it.
        # Spill by the size of the held results alone: the worker threads share this process,
        # whose memory (model, torch, client) must not trigger spilling, pausing or killing.
        limit = max(available_memory(torch.device("cpu")) // self.workers, 2 * held_bytes)
        memory = {
            "distributed.worker.memory.target": held_bytes / limit,
            "distributed.worker.memory.spill": False,
            "distributed.worker.memory.pause": False,
            "distributed.worker.memory.terminate": False,
            "distributed.worker.profile.enabled": self.settings.profiler,
        }
        with dask.config.set(memory):
            self.cluster = LocalCluster(
                n_workers=self.workers,
                threads_per_worker=1,
                processes=False,
                # None still serves HTTP on the default 8787 (a warning when it is taken): any
                # free port instead
                dashboard_address=":0",
                memory_limit=limit,
            )
        self.client = Client(self.cluster)

    @property
    def band(self) -> int:
        """Block columns per band for this cluster's worker threads."""
        return max(self.settings.min_band, 2 * self.threads)

    def close(self) -> None:
        """Close the client (and the local cluster); restore torch's thread count."""
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()
        if self.saved_threads is not None:
            import torch

            torch.set_num_threads(self.saved_threads)

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

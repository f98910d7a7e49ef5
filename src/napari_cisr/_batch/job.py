"""The job record: what decides a store's content, and what a rerun does with a store.

A batch describes its work as a job (:func:`job_record`: input, scale, model, tile, device
kind, precision, items, ...) and records it in OUTPUT. Settings left free (the automatic tile,
``device="auto"``, ``precision="auto"``) are resolved once and pinned by the record
(:func:`pin_settings`), so a rerun computes the remaining blocks as the first run did. A rerun
of the same job resumes the store, another job is refused (:func:`replace_or_resume`).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from napari_cisr._batch.cluster import Cluster
from napari_cisr._batch.report import BatchError
from napari_cisr._batch.sources import Item
from napari_cisr._batch.store import check_writable, is_zarr, read_job, remove_partial_chunks
from napari_cisr.options import InferenceOptions

log = logging.getLogger(__name__)

#: Job keys that do not decide what a store holds: which files failed to read is a report (a
#: rerun after the bad files were removed, or still with them, finishes the same store), and a
#: rerun adopts the torch thread count of the run that started the store.
REPORT_KEYS = frozenset({"failed_on_read", "torch_threads"})


def check_job_arguments(model: Any, scale: int, precision: str) -> tuple[Any, str]:
    """(the model's config, how workers name the model); BatchError for what cannot run."""
    from napari_cisr.registry import (
        PRECISIONS,
        model_compression,
        parse_model_name,
        with_compression,
    )
    from napari_cisr.weights import WeightsError, model_config

    if scale not in (2, 3, 4):
        raise BatchError(f"scale must be 2, 3 or 4, got {scale}")
    if precision not in PRECISIONS:
        raise BatchError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    try:
        config = model_config(model, scale=scale)
    except (WeightsError, ValueError) as error:
        raise BatchError(str(error)) from None
    # Workers get the model by name, or by absolute path (loaded once per worker process). A
    # name is recorded as its variant ("lite.x2" as "lite", the scale being the job's own) and
    # its compression tag if it has one ("lite.x2.mild" as "lite.mild"; without one each plane
    # is routed by its blocking, the same on every rerun), so a rerun naming the same model
    # either way resumes the store.
    model_ref = os.fspath(model)
    named = parse_model_name(model_ref, scale)  # model_config refused a scale mismatch
    if named is None:
        return config, os.fspath(Path(model_ref).resolve())
    tag = model_compression(model_ref)
    return config, named[0] if tag is None else with_compression(named[0], tag)


def stored_job(output: Path) -> dict[str, Any] | None:
    """The job recorded in an existing OUTPUT store, or None."""
    if not is_zarr(output):
        return None
    state = read_job(output)
    job = (state or {}).get("job")
    return job if isinstance(job, dict) else None


@dataclass(frozen=True)
class Pinned:
    """The settings that change pixels and may be left free: as the job record pins them."""

    tile: int  # core tile side asked for (aligned by the tile plan)
    device: str  # what the workers are told
    device_type: str  # "cpu", "cuda", "mps": recorded in the job
    precision: str  # "float32" or "bfloat16" ("auto" only for a store from before)


def resolve_settings(
    config: Any, device: str, precision: str, tile: int | None, budget: int
) -> tuple[str, str, int]:
    """(device type, precision, tile) that "auto" and a free tile mean where this runs.

    Runs on a worker of an existing scheduler (its device and CPU decide), else in the
    client, whose threads the local workers are. ``budget`` is the bytes of network
    activations a free tile may take.
    """
    import torch

    from napari_cisr.runtime import resolve_device, resolve_precision
    from napari_cisr.tiling import choose_tile

    resolved = resolve_device(device)
    dtype = resolve_precision(precision, resolved)
    if tile is None:
        tile = choose_tile(config, None, resolved, budget=budget)
    assert tile is not None  # no image shape: always a tile
    return resolved.type, "bfloat16" if dtype == torch.bfloat16 else "float32", tile


def pin_settings(
    output: Path,
    stored: dict[str, Any] | None,
    config: Any,
    tile: int | None,
    device: str,
    precision: str,
    remote: Cluster | None,
    budget: int,
) -> Pinned:
    """Resolve the free settings (automatic tile, "auto" device and precision) once per store.

    A new store gets what they mean on this machine (or on a worker of ``remote``); a store
    being resumed or checked keeps what its job recorded, so that the rest of its blocks are
    computed as the first ones were, whatever the free memory, device or CPU of the rerun.
    Settings given explicitly are used as given (a store with others is refused later).
    ``budget`` is :func:`resolve_settings`'s.
    """
    stored = stored or {}
    adopted = []
    if tile is None and stored.get("tile"):
        tile = int(stored["tile"])
        adopted.append(f"tile {tile}")
    if device == "auto" and stored.get("device"):
        device = str(stored["device"])
        adopted.append(f"device {device}")
    keep_precision = precision == "auto" and stored.get("precision") is not None
    arguments = (config, device, precision, tile, budget)
    try:
        if remote is None:
            device_type, resolved, tile = resolve_settings(*arguments)
        else:
            future = remote.client.submit(resolve_settings, *arguments, pure=False)
            device_type, resolved, tile = future.result()
    except ValueError as error:  # e.g. CUDA asked for (or recorded) and absent
        where = f"; output '{output}' was started with {', '.join(adopted)}" if adopted else ""
        raise BatchError(f"{error}{where}") from None
    if keep_precision:
        resolved = str(stored["precision"])
        adopted.append(f"precision {resolved}")
    if adopted:
        log.info("as the run that started '%s': %s", output, ", ".join(adopted))
    return Pinned(tile, device if device != "auto" else device_type, device_type, resolved)


def job_record(
    source: Path,
    options: InferenceOptions,
    config: Any,
    halo: int,
    items: list[Item],
    failed: list[tuple[str, str]],
    device_type: str,
) -> dict[str, Any]:
    """The job record: what decides the store's content (a rerun resumes only the same job).

    ``options`` hold the resolved tile and precision (:func:`pin_settings`); ``device_type``
    is the kind of device the blocks are computed on (its kernels round differently).
    """
    from napari_cisr import __version__

    iterations = options.iterations
    return {
        "input": os.fspath(source.resolve()),
        "scale": options.scale,
        "model": options.model,
        "config": config.to_dict(),
        "tile": options.tile,
        "halo": halo,
        "device": device_type,
        "precision": options.precision,
        "self_ensemble": options.self_ensemble,
        # Only a J other than the model's own: stores from before this key resume as before.
        **({"iterations": iterations} if iterations not in (None, config.iterations) else {}),
        "items": [it.describe() for it in items],
        "failed_on_read": [name for name, _ in failed],
        "napari_cisr": __version__,
    }


def same_job(stored: dict[str, Any] | None, job: dict[str, Any]) -> bool:
    """Whether a stored job makes the same store as ``job`` (report-only keys aside)."""
    if stored is None:
        return False
    keys = (set(stored) | set(job)) - REPORT_KEYS
    return all(stored.get(key) == job.get(key) for key in keys)


def repaired_items(stored: dict[str, Any] | None, job: dict[str, Any]) -> list[str] | None:
    """Items ``job`` reads that the stored job could not, when that is all that differs.

    A folder's file that failed to read (corrupt, unsupported) and has since been repaired is
    the same job's item: its array is added to the store
    (:func:`~napari_cisr._batch.store.add_items`) and computed, the others are kept. Returns
    [] for the same job, None for another job (a file the stored job read that is gone or
    changed, a new file, another setting).
    """
    if stored is None:
        return None
    if same_job(stored, job):
        return []
    if not same_job({**stored, "items": None}, {**job, "items": None}):
        return None
    before = {item["name"]: item for item in stored.get("items", [])}
    now = {item["name"]: item for item in job.get("items", [])}
    if any(now.get(name) != item for name, item in before.items()):
        return None
    added = [name for name in now if name not in before]
    if not set(added) <= set(stored.get("failed_on_read", [])):
        return None
    return added


def job_difference(state: dict[str, Any] | None, job: dict[str, Any]) -> str:
    """`` and holds another job (its tile differs)``, for the refusal message."""
    stored = (state or {}).get("job")
    if stored is None:
        return ""
    keys = sorted((set(stored) | set(job)) - REPORT_KEYS)
    differing = [key for key in keys if stored.get(key) != job.get(key)]
    if not differing:
        return ""
    verb = "differs" if len(differing) == 1 else "differ"
    return f" and holds another job (its {', '.join(differing)} {verb})"


@dataclass(frozen=True)
class Plan:
    """What to do with OUTPUT (:func:`replace_or_resume`)."""

    replace: bool | None  # None: it already holds the finished job
    threads: int | None  # torch threads per local worker
    added: tuple[str, ...] = ()  # items the stored job could not read and this one can
    record: dict[str, Any] | None = None  # the job to record in the store, when it changed
    failed_before: tuple[str, ...] = ()  # items the stored run failed on


def replace_or_resume(
    output: Path, job: dict[str, Any], overwrite: bool, threads: int | None, scheduler: str | None
) -> Plan:
    """What to do with OUTPUT: create it, replace it or resume it (or nothing: it is done).

    An existing OUTPUT is resumed when it holds the same job (items it failed to read may have
    been removed or repaired since: the repaired ones are added, :func:`repaired_items`),
    replaced with ``overwrite``, and otherwise refused (BatchError). A resumed job keeps the
    torch thread count it started with.
    """
    if not (output.exists() or output.is_symlink()):
        return Plan(False, threads)
    state = read_job(output) if is_zarr(output) else None
    if overwrite:
        return Plan(True, threads)
    stored = (state or {}).get("job")
    added = repaired_items(stored, job)
    if state is None or added is None:
        raise BatchError(
            f"output '{output}' already exists{job_difference(state, job)} "
            "(pass --overwrite to replace it)"
        )
    if state.get("complete") and not added:
        log.info("'%s' is already complete", output)
        return Plan(None, threads)
    check_writable(output, "output store")
    log.info("resuming the incomplete batch in '%s'", output)
    if added:
        log.info("retrying %s: read now, unreadable before", ", ".join(added))
    remove_partial_chunks(output)
    started_with = stored.get("torch_threads")
    if scheduler is None and threads is None and started_with:
        threads = started_with  # the same sums as the blocks already written
        log.info("%d torch thread(s) per worker, as the run that started it", threads)
    # The record keeps what the store was started with; which items there are and which
    # could not be read are what this run found.
    record = {**stored, "items": job["items"], "failed_on_read": job["failed_on_read"]}
    failed_before = tuple(state.get("failed", ()))
    return Plan(False, threads, tuple(added), record if record != stored else None,
                failed_before)  # fmt: skip

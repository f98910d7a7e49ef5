"""The widget's job (``napari_cisr._job``): runs without napari, Qt or a display."""

from __future__ import annotations

import numpy as np
import pytest

from napari_cisr._job import JobFailed, JobProgress, SuperResolveParams, run_job
from napari_cisr.options import InferenceOptions


def test_job_module_does_not_import_napari_or_qt(modules_imported_by):
    banned = ("napari", "qtpy", "PyQt5", "PyQt6", "magicgui")
    assert modules_imported_by("napari_cisr._job", banned) == []


def test_params_emit_an_event_per_change():
    params = SuperResolveParams()
    seen = []
    params.events.scale.connect(seen.append)
    params.scale = 3
    assert seen == [3]


def test_job_yields_progress_over_planes_and_returns_each_result(fresh_weights):
    rng = np.random.default_rng(0)
    planes = [rng.integers(0, 256, (20, 28, 3), dtype=np.uint8) for _ in range(2)]
    job = run_job(planes, InferenceOptions(scale=2, model=fresh_weights, tile=0, device="cpu"))
    updates = []
    while True:
        try:
            updates.append(next(job))
        except StopIteration as stop:
            outcome = stop.value
            break
    assert all(isinstance(u, JobProgress) for u in updates)
    assert {u.plane for u in updates} == {0, 1} and all(u.planes == 2 for u in updates)
    fractions = [u.fraction for u in updates]
    assert fractions == sorted(fractions) and 0 < fractions[0] and fractions[-1] == 1.0
    assert updates[0].text.startswith("plane 1/2, ")
    assert [r.image.shape for r in outcome.results] == [(40, 56, 3), (40, 56, 3)]
    assert outcome.blocking.grid is None  # noise has no 8×8 grid; computed in the job


def test_job_returns_the_failure_instead_of_raising(fresh_weights):
    job = run_job([np.zeros((5,), np.uint8)], InferenceOptions(scale=2, model=fresh_weights))
    with pytest.raises(StopIteration) as stop:
        next(job)
    failure = stop.value.value
    assert isinstance(failure, JobFailed)
    message = failure.message
    assert message.startswith("napari-cisr: super-resolution failed: ") and "\n" not in message

"""Test guards for fail-fast checks: refuse new files, and fail if any work starts."""

from __future__ import annotations

import tempfile
from typing import Any


def refuse_file_creation(monkeypatch: Any) -> None:
    """Make ``tempfile.mkstemp`` (the output probes) fail as on a read-only mount: root still
    writes into a 0o555 folder, so chmod alone proves nothing when the tests run as root."""

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", refuse)


def forbid_work(monkeypatch: Any, message: str, *targets: tuple[Any, str]) -> None:
    """Replace each ``(owner, attribute)`` by a function that fails the test with ``message``."""

    def never(*args: Any, **kwargs: Any) -> None:
        raise AssertionError(message)

    for owner, attribute in targets:
        monkeypatch.setattr(owner, attribute, never)

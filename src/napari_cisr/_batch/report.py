"""What a batch tells its caller: the one-line error, progress, and the final report."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["BatchError", "BatchProgress", "BatchReport"]


class BatchError(ValueError):
    """A batch that cannot start (bad INPUT/OUTPUT, unreachable scheduler); one-line message."""


@dataclass(frozen=True)
class BatchProgress:
    """Progress of a batch: output blocks done out of the blocks this run has to compute.

    ``stage`` names the level being written (``"level 0"``, ``"pyramid level 1"``, ...);
    ``skipped`` blocks were written by an earlier, interrupted run and are not in ``total``.
    """

    done: int
    total: int
    elapsed: float
    skipped: int = 0
    stage: str = "level 0"

    @property
    def eta(self) -> float | None:
        """Seconds left at the rate so far, or ``None`` before the first block."""
        if self.done == 0:
            return None
        return self.elapsed / self.done * (self.total - self.done)


@dataclass
class BatchReport:
    """What a batch did.

    Attributes
    ----------
    output : Path
        The store written.
    completed : list of str
        Items (images / arrays) fully written.
    failed : list of (str, str)
        Items that could not be processed, with a one-line reason.
    computed : int
        Blocks computed by this run.
    skipped : int
        Blocks found done by an earlier, interrupted run.
    retried : list of str
        Items an earlier run of the job failed on (read or computed) and this run completed.
    """

    output: Path
    completed: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    computed: int = 0
    skipped: int = 0
    retried: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing failed."""
        return not self.failed

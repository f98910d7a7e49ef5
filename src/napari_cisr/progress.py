"""Progress of many-file runs as people know it: tqdm bars on a terminal, log lines elsewhere.

:func:`photo_progress` picks one of the :class:`napari_cisr.photo_jobs.PhotoProgress`
implementations below for a stream: bars (images, and work units within the image being
processed, each with rate and ETA; in ``napari-cisr batch`` to a folder, the work units of the
images the workers are computing) when the stream is a terminal, one log line per image when
it is not (a log file, a pipe, CI), and only failures with ``quiet``. :class:`BlockProgress`
does the same for the blocks of a zarr batch (:func:`napari_cisr.batch.run_batch`).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from napari_cisr.batch import BatchProgress
    from napari_cisr.photo_jobs import PhotoJob, PhotoProgress

log = logging.getLogger(__name__)

__all__ = ["BlockProgress", "photo_progress"]


class LogLines:
    """One log line per finished image: ``[3/20] trip/beach.jpg: done (1024×768 in 2.1 s)``."""

    #: Whether ``step`` shows anything (a batch's workers then report their progress).
    wants_steps = False

    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet
        self.label = ""

    def start(self, job: PhotoJob, index: int, total: int) -> None:
        self.label = f"[{index}/{total}] {job.name}"

    def step(self, done: int, total: int) -> None:
        pass

    def finish(self, job: PhotoJob, outcome: str, detail: str) -> None:
        if outcome == "failed":
            log.warning("%s: failed (%s)", self.label, detail)
        elif not self.quiet:
            log.info("%s: %s (%s)", self.label, outcome, detail)

    def close(self) -> None:
        pass


class Bars(LogLines):
    """tqdm bars: images done of the run, and work units (tiles × iterations) of the image, or
    of the images being computed when a batch's workers compute several at once."""

    wants_steps = True

    def __init__(self, stream: Any, total: int) -> None:
        super().__init__()
        from tqdm import tqdm

        self._tqdm = tqdm
        self.stream = stream
        self.images = tqdm(total=total, unit="image", file=stream, position=0, dynamic_ncols=True)
        self.units: Any = None

    def start(self, job: PhotoJob, index: int, total: int) -> None:
        super().start(job, index, total)
        self.images.set_postfix_str(job.name, refresh=True)

    def step(self, done: int, total: int) -> None:
        if self.units is None:
            self.units = self._tqdm(
                total=total, unit="step", file=self.stream, position=1, leave=False,
                dynamic_ncols=True,
            )  # fmt: skip
        if total != self.units.total:  # another image started on another worker
            self.units.total = total
        self.units.update(done - self.units.n)

    def finish(self, job: PhotoJob, outcome: str, detail: str) -> None:
        if self.units is not None:
            self.units.close()
            self.units = None
        if outcome == "failed":
            self.images.write(f"{self.label}: failed ({detail})", file=self.stream)
        self.images.update(1)

    def close(self) -> None:
        if self.units is not None:
            self.units.close()
        self.images.close()


def photo_progress(stream: Any, total: int, *, quiet: bool = False) -> PhotoProgress:
    """Bars on a terminal, log lines otherwise; ``quiet`` reports failures only.

    Parameters
    ----------
    stream : file-like
        Where bars go (``sys.stderr``).
    total : int
        Images to process.
    quiet : bool
        No bars and no per-image lines; failures are still logged.
    """
    if quiet or not getattr(stream, "isatty", lambda: False)():
        return LogLines(quiet=quiet)
    return Bars(stream, total)


class BlockProgress:
    """``on_progress`` of :func:`napari_cisr.batch.run_batch`: a tqdm bar per stage on a
    terminal, otherwise a log line every 10 % of a stage (and at its end), so logs stay short.

    Parameters
    ----------
    stream : file-like
        Where bars go (``sys.stderr``).
    """

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self.bar: Any = None
        self.stage = ""
        self.last_decile = -1

    def __call__(self, progress: BatchProgress) -> None:
        if progress.stage != self.stage:
            self.close()
            self.stage, self.last_decile = progress.stage, -1
            if self.tty:
                from tqdm import tqdm

                before = f" (+{progress.skipped} done before)" if progress.skipped else ""
                self.bar = tqdm(total=progress.total, unit="block", file=self.stream,
                                desc=f"{progress.stage}{before}", dynamic_ncols=True)  # fmt: skip
        if self.bar is not None:
            self.bar.update(progress.done - self.bar.n)
            return
        decile = int(10 * progress.done / max(progress.total, 1))
        if decile != self.last_decile or progress.done == progress.total:
            self.last_decile = decile
            eta = "" if progress.eta is None else f", about {progress.eta:.0f} s left"
            before = f" (+{progress.skipped} done before)" if progress.skipped else ""
            log.info("%s: %d/%d blocks%s%s", progress.stage, progress.done, progress.total,
                     before, eta)  # fmt: skip

    def close(self) -> None:
        """Close the current stage's bar."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None

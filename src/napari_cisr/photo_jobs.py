"""Many photo files in, a folder of images out: what ``napari-cisr run -o DIR`` and
``napari-cisr batch FOLDER OUT_DIR`` do.

One plan serves both: :func:`plan_jobs` turns files, folders and globs into
:class:`PhotoJob` items (sub-folders mirrored, outputs named ``<stem>_x<scale>.<ext>``), and an
item is done when its output file exists: outputs are written atomically, so an existing file
is a finished one, a rerun skips it, and an item that failed has no output and is retried.
:func:`process_photo` does one item (read, super-resolve, write with the photo's orientation,
ICC profile and EXIF/XMP); :func:`run_photos` runs the items in this process and
:func:`napari_cisr.batch.run_photo_batch` on a dask cluster. Both return a :class:`RunSummary`.
"""

from __future__ import annotations

import glob
import logging
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from napari_cisr.io import IMAGE_SUFFIXES, OUTPUT_FORMATS
from napari_cisr.options import InferenceOptions

log = logging.getLogger(__name__)

__all__ = [
    "PhotoJob",
    "RunSummary",
    "plan_jobs",
    "process_photo",
    "run_photos",
]


@dataclass(frozen=True)
class PhotoJob:
    """One input file and the output file it becomes.

    Attributes
    ----------
    source : Path
        The input image.
    output : Path
        Where its result goes.
    name : str
        The input as reports show it: its path relative to the folder it was found in.
    """

    source: Path
    output: Path
    name: str


@dataclass
class RunSummary:
    """What a run of many files did.

    Attributes
    ----------
    done : list of str
        Inputs whose output this run wrote.
    skipped : list of str
        Inputs whose output existed already (not recomputed).
    failed : list of (str, str)
        Inputs that failed, with the reason (one line, without the file name).
    outputs : dict of str to str
        Output path of every input written or skipped.
    """

    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    outputs: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when no input failed."""
        return not self.failed

    def line(self) -> str:
        """One line: ``18 done, 0 skipped, 2 failed``."""
        return f"{len(self.done)} done, {len(self.skipped)} skipped, {len(self.failed)} failed"

    @classmethod
    def with_skipped(cls, done: Iterable[PhotoJob]) -> RunSummary:
        """A summary that starts with the jobs whose output exists already."""
        done = list(done)
        return cls(
            skipped=[job.name for job in done],
            outputs={job.name: os.fspath(job.output) for job in done},
        )

    def to_dict(self) -> dict[str, Any]:
        """The summary as JSON-ready data (the ``--json`` report)."""
        return {
            "done": self.done,
            "skipped": self.skipped,
            "failed": [{"input": name, "reason": reason} for name, reason in self.failed],
            "outputs": self.outputs,
        }


class PhotoProgress(Protocol):
    """What :func:`run_photos` reports, for progress bars (the CLI's tqdm bars, log lines)."""

    def start(self, job: PhotoJob, index: int, total: int) -> None: ...

    def step(self, done: int, total: int) -> None: ...

    def finish(self, job: PhotoJob, outcome: str, detail: str) -> None: ...

    def close(self) -> None: ...


_WILDCARDS = frozenset("*?[")


def _expand(source: str) -> list[Path]:
    """A file, a folder or a glob (expanded here too, for quoted patterns) as paths."""
    path = Path(source)
    if path.exists() or not _WILDCARDS.intersection(source):
        return [path]
    return [Path(match) for match in sorted(glob.glob(source, recursive=True))]


def _found_files(sources: Sequence[str | os.PathLike], skip: Path | None):
    """Yield (file, its path relative to where it was found) for every source, and
    (source, reason) for sources that match nothing."""
    for source in sources:
        paths = _expand(os.fspath(source))
        if not paths:
            yield None, (os.fspath(source), "no file matches this pattern")
        for path in paths:
            if path.is_dir():
                files = sorted(
                    f
                    for f in path.rglob("*")
                    if f.is_file()
                    and f.suffix.lower() in IMAGE_SUFFIXES
                    and not f.name.startswith(".")  # our own temporaries, hidden files
                    and (skip is None or skip not in f.resolve().parents)
                )
                for f in files:
                    yield (f, f.relative_to(path)), None
            elif path.exists():
                yield (path, Path(path.name)), None
            else:
                yield None, (os.fspath(path), "no such file or folder")


def plan_jobs(
    sources: Sequence[str | os.PathLike],
    output_dir: str | os.PathLike,
    scale: int,
    *,
    output_format: str | None = None,
    suffix: str | None = None,
) -> tuple[list[PhotoJob], list[tuple[str, str]]]:
    """Plan the outputs of many inputs: one :class:`PhotoJob` per image file found.

    Parameters
    ----------
    sources : sequence of str or os.PathLike
        Image files, folders (searched recursively for the suffixes of
        :data:`napari_cisr.io.IMAGE_SUFFIXES`; sub-folders are mirrored in ``output_dir``) and
        glob patterns.
    output_dir : str or os.PathLike
        The folder outputs go to (files already under it are never taken as inputs).
    scale : int
        The factor, named in the output: ``<stem>_x<scale>.<ext>``.
    output_format : str, optional
        A key of :data:`napari_cisr.io.OUTPUT_FORMATS`. Default: lossless, ``tif`` for TIFF
        inputs (they may hold float or stacks), ``png`` for the rest.
    suffix : str, optional
        What follows the stem (default ``_x<scale>``).

    Returns
    -------
    jobs : list of PhotoJob
        In the order found. Two inputs that would share an output name (``a.jpg``, ``a.png``)
        get their input suffix in it (``a_jpg_x2.png``, ``a_png_x2.png``).
    problems : list of (str, str)
        Sources that matched no file, with the reason.
    """
    if output_format is not None and output_format not in OUTPUT_FORMATS:
        raise ValueError(
            f"unknown output format {output_format!r}; use {', '.join(OUTPUT_FORMATS)}"
        )
    out = Path(output_dir)
    tail = f"_x{scale}" if suffix is None else suffix
    found, problems = [], []
    for item, problem in _found_files(sources, out.resolve()):
        if problem is not None:
            problems.append(problem)
        else:
            found.append(item)
    found = list(dict.fromkeys(found))  # a file named twice (a folder and a glob) runs once

    def extension(source: Path) -> str:
        if output_format is not None:
            return OUTPUT_FORMATS[output_format]
        return ".tif" if IMAGE_SUFFIXES[source.suffix.lower()] == "tiff" else ".png"

    def target(source: Path, relative: Path, with_suffix: bool) -> Path:
        stem = relative.stem + (f"_{relative.suffix[1:].lower()}" if with_suffix else "")
        return out / relative.parent / f"{stem}{tail}{extension(source)}"

    plain = [target(source, relative, False) for source, relative in found]
    jobs = []
    for (source, relative), output in zip(found, plain, strict=True):
        if plain.count(output) > 1:
            output = target(source, relative, True)
        jobs.append(PhotoJob(source, output, relative.as_posix()))
    return jobs, problems


def split_done(jobs: Iterable[PhotoJob], overwrite: bool) -> tuple[list[PhotoJob], list[PhotoJob]]:
    """(to do, done): a job is done when its output exists (outputs are written atomically),
    unless ``overwrite``."""
    todo, done = [], []
    for job in jobs:
        (done if not overwrite and job.output.exists() else todo).append(job)
    return todo, done


class PhotoFailed(Exception):
    """One input failed; ``str(error)`` is the reason in one line, without the file name.

    ``verb`` says what failed (``read``, ``process`` or ``write``), for
    :meth:`sentence`: ``cannot read 'a.jpg': truncated JPEG data``.
    """

    def __init__(self, reason: str, verb: str = "process") -> None:
        super().__init__(" ".join(str(reason).split()))
        self.verb = verb

    def sentence(self, name: str) -> str:
        """The failure as one sentence naming the file."""
        return f"cannot {self.verb} {name!r}: {self}"


def process_photo(
    job: PhotoJob,
    options: InferenceOptions,
    *,
    overwrite: bool = False,
    quality: int | None = None,
    apply_orientation: bool = False,
    on_step: Callable[[int, int], None] | None = None,
) -> tuple[int, int]:
    """Read, super-resolve and write one photo, carrying its orientation, profile and metadata.

    Parameters
    ----------
    job : PhotoJob
        The input and its output (its folder is created).
    options : InferenceOptions
        How to super-resolve.
    overwrite : bool
        Replace an existing output.
    quality : int, optional
        JPEG/WebP output quality (see :func:`napari_cisr.io.write_image`).
    apply_orientation : bool
        Rotate the output upright and tag it orientation 1, instead of writing the pixels in
        stored order with the input's orientation tag (the default, which keeps the pixels'
        relation to the compression grid as they were).
    on_step : callable, optional
        Called with (done, total) work units (tiles × iterations) as the network runs.

    Returns
    -------
    (int, int)
        Width and height of the output written.

    Raises
    ------
    PhotoFailed
        The input could not be read or processed, or the output format cannot hold the
        result; the message is one line.
    """
    from napari_cisr.compression import file_description, is_routed
    from napari_cisr.inference import steps_for
    from napari_cisr.io import ImageReadError, read_image, write_image
    from napari_cisr.metadata import apply_orientation as upright
    from napari_cisr.metadata import read_metadata

    try:
        image = read_image(job.source)
    except ImageReadError as error:
        raise PhotoFailed(error.problem, "read") from None
    metadata = read_metadata(job.source)
    if metadata.mode in ("CMYK", "YCbCr", "LAB"):
        log.info("%s: %s image converted to RGB", job.name, metadata.mode)
    elif image.ndim == 2 and metadata.mode != "TIFF":
        # a gray photo stays gray (one channel in, one out), which a user expecting colour
        # should hear about; gray WebPs arrive as RGB and are collapsed by read_image. Not
        # for TIFF: 2-D TIFFs are the usual scientific input, a line each would be noise.
        log.info("%s: grayscale image, processed as one channel", job.name)
    # the file's own compression chooses the weights of a model name (steps_for routes it)
    info = file_description(job.source) if is_routed(options.model) else None
    steps = steps_for(image, options, info=info)
    try:
        while True:
            progress = next(steps)
            if on_step is not None:
                on_step(progress.done, progress.total)
    except StopIteration as stop:
        result = stop.value.image
        log.debug("%s: %s", job.name, stop.value.model)  # -v shows the weights that ran
    except ValueError as error:  # e.g. smaller than the network's minimum side
        raise PhotoFailed(str(error)) from None
    if apply_orientation and metadata.orientation != 1 and result.ndim in (2, 3):
        result = upright(result, metadata.orientation)
    height, width = result.shape[:2]
    channels = 1 if result.ndim == 2 else result.shape[2]
    carried = metadata.for_output(width, height, channels, upright=apply_orientation)
    job.output.parent.mkdir(parents=True, exist_ok=True)
    try:
        try:
            write_image(job.output, result, overwrite=overwrite, quality=quality, metadata=carried)
        except ValueError as error:
            if carried.exif is None:
                raise
            # JPEG holds at most 64 KiB of EXIF: the pixels matter more than the metadata
            write_image(
                job.output, result, overwrite=overwrite, quality=quality,
                metadata=replace(carried, exif=None),
            )  # fmt: skip
            log.warning("%s: EXIF not carried (%s)", job.name, error)
    except FileExistsError:
        raise
    except (ValueError, OSError) as error:
        raise PhotoFailed(f"{job.output.name}: {error}", "write") from None
    return width, height


def run_photos(
    jobs: Sequence[PhotoJob],
    options: InferenceOptions,
    *,
    overwrite: bool = False,
    quality: int | None = None,
    apply_orientation: bool = False,
    progress: PhotoProgress | None = None,
) -> RunSummary:
    """Process many photos in this process, one after another; existing outputs are skipped.

    Parameters are those of :func:`process_photo`; ``progress`` is told about each item.
    One failed item is recorded in the summary and the rest go on.
    """
    todo, done = split_done(jobs, overwrite)
    summary = RunSummary.with_skipped(done)
    for index, job in enumerate(todo, start=1):
        if progress is not None:
            progress.start(job, index, len(todo))
        started = time.perf_counter()
        try:
            width, height = process_photo(
                job,
                options,
                overwrite=overwrite,
                quality=quality,
                apply_orientation=apply_orientation,
                on_step=None if progress is None else progress.step,
            )
        except PhotoFailed as error:
            outcome, detail = "failed", f"cannot {error.verb}: {error}"
            summary.failed.append((job.name, detail))
        except FileExistsError:  # written meanwhile by another run: that run's result stands
            summary.skipped.append(job.name)
            outcome, detail = "skipped", "written meanwhile by another run"
        else:
            summary.done.append(job.name)
            summary.outputs[job.name] = os.fspath(job.output)
            seconds = time.perf_counter() - started
            outcome, detail = "done", f"{width}×{height} in {seconds:.1f} s"
        if progress is not None:
            progress.finish(job, outcome, detail)
    return summary

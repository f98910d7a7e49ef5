"""Writing a file or folder so that a reader sees the old one or the new one, never half of it.

Images, zarr stores, reports, weights and training checkpoints all go through
:func:`atomic_target`: the data are written to a temporary sibling (``.NAME.XXXX.tmp…``) that is
moved into place at the end and removed on failure.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any


def unwritable_reason(folder: Path) -> str | None:
    """Why ``folder`` does not take a new file (lower case, e.g. "permission denied"), or None.

    Tried by creating and removing a probe file: permission bits say nothing to root or on a
    read-only mount, and every caller must find out before any work, not after it.
    """
    try:
        handle, probe = tempfile.mkstemp(prefix=".napari-cisr.", suffix=".probe", dir=folder)
    except OSError as error:
        return (error.strerror or type(error).__name__).lower()
    os.close(handle)
    os.unlink(probe)
    return None


def default_mode(is_dir: bool) -> int:
    """The permissions a plain ``open``/``mkdir`` would give under the current umask.

    ``mkstemp``/``mkdtemp`` create owner-only temporaries; an output moved into place from one
    must get what the user's umask says instead.
    """
    umask = os.umask(0)  # reading the umask means setting it: set it straight back
    os.umask(umask)
    return (0o777 if is_dir else 0o666) & ~umask


@contextlib.contextmanager
def atomic_target(path: Path, overwrite: bool, *, is_dir: bool = False):
    """Yield a temporary path beside ``path``; move it into place on success."""
    path = Path(path)
    if not overwrite and (path.exists() or path.is_symlink()):
        raise FileExistsError(f"refusing to overwrite {os.fspath(path)!r} (pass overwrite=True)")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise FileNotFoundError(
            f"cannot write {os.fspath(path)!r}: folder {str(parent)!r} does not exist"
        )
    if is_dir:
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=parent))
        shutil.rmtree(tmp)  # writers create it themselves
    else:
        fd, name = tempfile.mkstemp(
            prefix=f".{path.name}.", suffix=f".tmp{path.suffix}", dir=parent
        )
        os.close(fd)
        tmp = Path(name)
    try:
        yield tmp
        if tmp.exists():
            os.chmod(tmp, default_mode(is_dir))
        _move_into_place(tmp, path, overwrite, is_dir)
    except BaseException:
        if tmp.is_dir() and not tmp.is_symlink():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        raise


def _move_into_place(tmp: Path, path: Path, overwrite: bool, is_dir: bool) -> None:
    if not is_dir:
        if overwrite:
            os.replace(tmp, path)
            return
        try:  # a hard link fails if the target appeared meanwhile: no clobbering race
            os.link(tmp, path)
        except FileExistsError:
            raise FileExistsError(
                f"refusing to overwrite {os.fspath(path)!r} (pass overwrite=True)"
            ) from None
        except OSError:  # file system without hard links
            if path.exists():
                raise FileExistsError(
                    f"refusing to overwrite {os.fspath(path)!r} (pass overwrite=True)"
                ) from None
            os.replace(tmp, path)
            return
        tmp.unlink()
        return
    # folders: os.replace cannot replace a non-empty folder, so move the old one aside first
    old = None
    if path.exists():
        if not overwrite:
            raise FileExistsError(
                f"refusing to overwrite {os.fspath(path)!r} (pass overwrite=True)"
            )
        old = path.with_name(f".{path.name}.old-{os.getpid()}")
        os.replace(path, old)
    try:
        os.replace(tmp, path)
    except BaseException:
        if old is not None:
            os.replace(old, path)
        raise
    if old is not None:
        if old.is_dir():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink()


def write_json(path: str | os.PathLike, data: Any) -> Path:
    """Write ``data`` as indented JSON, atomically, replacing ``path`` if it exists (a report)."""
    p = Path(path)
    with atomic_target(p, overwrite=True) as tmp:
        tmp.write_text(json.dumps(data, indent=2) + "\n")
    return p

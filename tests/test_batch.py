"""Batch processing: folders, zarr and OME-Zarr in, zarr out; resumable, safe, clear errors.

A small randomly initialised network saved as a weight file stands in for the shipped ones
(batch passes models to workers by name or path).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
import zarr
from PIL import Image

from napari_cisr import tiling
from napari_cisr.batch import ATTR, MARKERS, BatchError, ClusterSettings, run_batch
from napari_cisr.cli import main
from napari_cisr.inference import run_to_completion
from napari_cisr.model import build_model, variant_config
from napari_cisr.options import InferenceOptions
from napari_cisr.weights import load_model, save_weights

TILE = 64


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    config = variant_config("lite", 2, features=16, blocks=1, iterations=2, search_radius=2)
    network = build_model(config)
    for tail in (network.arm.tail, network.rem.tail):
        torch.nn.init.normal_(tail.weight, std=0.05)
    path = tmp_path_factory.mktemp("weights") / "small.safetensors"
    save_weights(network, path)
    return path


def _photo(shape: tuple[int, ...], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0 : shape[0], 0 : shape[1]]
    base = 120 + 60 * np.sin(x / (7.0 + seed)) * np.cos(y / 11.0)
    image = base[..., None] + np.array([0, 25, -25])[: shape[2] if len(shape) > 2 else 1]
    image = image if len(shape) > 2 else image[..., 0]
    return np.clip(image + rng.normal(0, 5, image.shape), 0, 255).astype(np.uint8)


def _expected(image: np.ndarray, weights: Path | str, **kwargs) -> np.ndarray:
    model = load_model(weights, scale=2)
    options = InferenceOptions(scale=2, model=model, tile=TILE, device="cpu", **kwargs)
    steps = tiling.tiled_super_resolve_steps(image, options)
    return run_to_completion(steps).image


def _tree_digest(root: Path) -> dict[str, str]:
    return {
        os.fspath(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _state(path: Path, array: str = "") -> dict:
    node = (
        zarr.open(store=os.fspath(path), path=array, mode="r")
        if array
        else zarr.open(store=os.fspath(path), mode="r")
    )
    return dict(node.attrs[ATTR])


@pytest.fixture
def folder(tmp_path) -> Path:
    src = tmp_path / "photos"
    src.mkdir()
    Image.fromarray(_photo((70, 90, 3), 1)).save(src / "rgb.jpg", quality=25)
    Image.fromarray(_photo((75, 66), 2)).save(src / "gray.png")
    (src / "notes.txt").write_text("not an image, ignored")
    return src


# ------------------------------------------------------------------------------ folders


def test_folder_to_zarr_keeps_names_and_matches_tiled_inference(folder, weights, tmp_path):
    before = _tree_digest(folder)
    out = tmp_path / "out.zarr"
    seen = []
    report = run_batch(folder, out, scale=2, model=weights, tile=TILE, on_progress=seen.append)
    assert report.ok and sorted(report.completed) == ["gray.png", "rgb.jpg"]
    assert seen[-1].done == seen[-1].total == report.computed > 1
    root = zarr.open_group(os.fspath(out), mode="r")
    assert sorted(root.array_keys()) == ["gray", "rgb"]
    from napari_cisr.io import read_image

    for name, stem in (("rgb.jpg", "rgb"), ("gray.png", "gray")):
        expected = _expected(read_image(folder / name), weights)
        np.testing.assert_array_equal(root[stem][...], expected)
        assert _state(out, stem)["complete"] is True
        assert root[stem].chunks[:2] == (2 * TILE, 2 * TILE)
    assert _state(out)["complete"] is True
    assert not (out / MARKERS).exists()
    assert _tree_digest(folder) == before  # INPUT untouched


def test_self_ensemble_is_part_of_the_job(folder, weights, tmp_path):
    from napari_cisr.io import read_image

    out = tmp_path / "out.zarr"
    report = run_batch(folder, out, scale=2, model=weights, tile=TILE, self_ensemble=True)
    assert report.ok and _state(out)["job"]["self_ensemble"] is True
    expected = _expected(read_image(folder / "rgb.jpg"), weights, self_ensemble=True)
    np.testing.assert_array_equal(zarr.open_group(os.fspath(out), mode="r")["rgb"][...], expected)
    assert not np.array_equal(expected, _expected(read_image(folder / "rgb.jpg"), weights))
    # The same OUTPUT without the ensemble is another job: refused, not mixed.
    with pytest.raises(BatchError, match="already exists"):
        run_batch(folder, out, scale=2, model=weights, tile=TILE)


def test_iterations_reach_the_workers_and_are_part_of_the_job(folder, weights, tmp_path):
    from napari_cisr.io import read_image

    out = tmp_path / "out.zarr"
    report = run_batch(folder, out, scale=2, model=weights, tile=TILE, iterations=1)
    assert report.ok and _state(out)["job"]["iterations"] == 1
    expected = _expected(read_image(folder / "rgb.jpg"), weights, iterations=1)
    np.testing.assert_array_equal(zarr.open_group(os.fspath(out), mode="r")["rgb"][...], expected)
    assert not np.array_equal(expected, _expected(read_image(folder / "rgb.jpg"), weights))
    with pytest.raises(BatchError, match="already exists"):
        run_batch(folder, out, scale=2, model=weights, tile=TILE)  # the model's own J: another job


def test_local_workers_spill_held_results_beyond_their_cap():
    from napari_cisr._batch.cluster import Cluster, ClusterSettings

    cluster = Cluster(1, None, 1, 10.0, ClusterSettings(held_bytes=2 * 2**20))
    try:
        held = [cluster.client.submit(np.full, (256, 1024), i, key=f"held-{i}") for i in range(6)]
        cluster.client.gather(held)  # six 2-MiB results, one fits under the cap
        placed = cluster.client.run(lambda dask_worker: (len(dask_worker.data.fast),
                                                         len(dask_worker.data.slow)))  # fmt: skip
        ((in_memory, on_disk),) = placed.values()
        assert in_memory <= 1 and on_disk >= 5
        assert [int(f.result()[0, 0]) for f in held] == list(range(6))  # read back intact
    finally:
        cluster.close()


def test_batch_with_every_tile_spilled_writes_the_same_store(folder, weights, tmp_path):
    assert run_batch(folder, tmp_path / "memory.zarr", scale=2, model=weights, tile=TILE).ok
    spill_all = ClusterSettings(held_bytes=64 * 2**10)  # smaller than one tile
    spilled = run_batch(folder, tmp_path / "spilled.zarr", scale=2, model=weights, tile=TILE,
                        cluster_settings=spill_all)  # fmt: skip
    assert spilled.ok
    for stem in ("rgb", "gray"):
        memory = zarr.open_array(os.fspath(tmp_path / "memory.zarr"), path=stem, mode="r")
        spilled = zarr.open_array(os.fspath(tmp_path / "spilled.zarr"), path=stem, mode="r")
        np.testing.assert_array_equal(spilled[...], memory[...])


def test_each_submission_carries_only_what_its_row_needs(tmp_path, weights, monkeypatch):
    """Submitting a row must not cost in proportion to the image (docs/benchmarks.md)."""
    import distributed

    sizes: list[int] = []
    submit = distributed.Client.get

    def recording_get(self, dsk, keys, **kwargs):
        sizes.append(len(dsk))
        return submit(self, dsk, keys, **kwargs)

    monkeypatch.setattr(distributed.Client, "get", recording_get)
    largest = {}
    for rows in (3, 7):  # tile rows of the same width: one interior row, then five
        image = _photo((rows * TILE, 2 * TILE, 3), seed=rows)
        source = tmp_path / f"rows-{rows}.zarr"
        zarr.create_array(os.fspath(source), data=image, chunks=(TILE, TILE, 3))
        sizes.clear()
        out = tmp_path / f"out-{rows}.zarr"
        assert run_batch(source, out, scale=2, model=weights, tile=TILE).ok
        largest[rows] = max(sizes)
        written = zarr.open_array(os.fspath(out), mode="r")[...]
        np.testing.assert_array_equal(written, _expected(image, weights))
    assert largest[7] == largest[3]


def test_wide_images_go_in_bands_computing_each_tile_once(tmp_path, weights, monkeypatch):
    """A row of blocks is a band's width, not the image's; tiles on a band's edge are kept."""
    import distributed

    submitted: list[dict] = []
    submit = distributed.Client.get

    def recording_get(self, dsk, keys, **kwargs):
        submitted.append(dsk)
        return submit(self, dsk, keys, **kwargs)

    monkeypatch.setattr(distributed.Client, "get", recording_get)
    largest = {}
    for columns in (9, 17):  # bands of 4 block columns (one worker thread): 3 and 5 bands
        image = _photo((3 * TILE, columns * TILE, 3), seed=columns)
        source = tmp_path / f"columns-{columns}.zarr"
        zarr.create_array(os.fspath(source), data=image, chunks=(TILE, TILE, 3))
        submitted.clear()
        out = tmp_path / f"out-{columns}.zarr"
        assert run_batch(source, out, scale=2, model=weights, tile=TILE, workers=1).ok
        tiles = Counter(
            key
            for dsk in submitted
            for key in dsk
            if isinstance(key, tuple) and key[0].startswith("cisr-tiles")
        )
        assert len(tiles) == 3 * columns and set(tiles.values()) == {1}
        largest[columns] = max(map(len, submitted))
        written = zarr.open_array(os.fspath(out), mode="r")[...]
        np.testing.assert_array_equal(written, _expected(image, weights))
    assert largest[17] == largest[9]


def test_corrupt_image_is_listed_and_the_rest_processed(folder, weights, tmp_path, capsys, caplog):
    caplog.set_level(logging.INFO, logger="napari_cisr")
    good = (folder / "rgb.jpg").read_bytes()
    (folder / "broken.jpg").write_bytes(good[: len(good) // 3])
    out = tmp_path / "out.zarr"
    args = ["batch", os.fspath(folder), os.fspath(out), "--scale", "2", "--tile", str(TILE)]
    status = main([*args, "--model", os.fspath(weights)])
    assert status == 1  # some work failed
    err = capsys.readouterr().err
    assert "broken.jpg" in err and "1 item(s) failed" in err
    assert "level 0: " in caplog.text and " blocks, about " in caplog.text  # off a tty: lines
    root = zarr.open_group(os.fspath(out), mode="r")
    assert sorted(root.array_keys()) == ["gray", "rgb"]
    state = _state(out)
    assert state["complete"] is False and state["failed"] == ["broken.jpg"]
    assert _state(out, "rgb")["complete"] is True


def test_folder_without_images(tmp_path, weights):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.md").write_text("x")
    with pytest.raises(BatchError, match="no images in folder"):
        run_batch(empty, tmp_path / "out.zarr", scale=2, model=weights)
    assert not (tmp_path / "out.zarr").exists()


# ------------------------------------------------------------------------------ zarr


def test_zarr_stack_v2_in_zarr_v2_out(tmp_path, weights):
    stack = np.stack([_photo((40, 70), seed) for seed in range(3)]).astype(np.uint16) * 200
    src = tmp_path / "stack.zarr"
    array = zarr.create_array(
        os.fspath(src), shape=stack.shape, chunks=(1, 16, 16), dtype=stack.dtype, zarr_format=2
    )
    array[...] = stack
    out = tmp_path / "out.zarr"
    report = run_batch(src, out, scale=2, model=weights, tile=TILE)
    assert report.ok
    result = zarr.open_array(os.fspath(out), mode="r")
    assert result.metadata.zarr_format == 2 and result.shape == (3, 80, 140)
    assert result.dtype == np.uint16
    for k in range(3):
        np.testing.assert_array_equal(result[k], _expected(stack[k], weights))
    assert _state(out)["complete"] is True


def test_stack_planes_are_built_as_they_are_reached(tmp_path, weights, monkeypatch):
    """A long stack costs per plane what one plane costs: graphs built lazily, each its own."""
    import distributed

    from napari_cisr._batch import schedule

    events: list[str] = []
    sizes: dict[int, list[int]] = {}
    build, get = tiling.build_tiled_dask, distributed.Client.get
    tasks = schedule.PlaneGraph.tasks.fget

    def recording_build(*args, **kwargs):
        events.append("build")
        return build(*args, **kwargs)

    def recording_get(self, dsk, keys, **kwargs):
        events.append("submit")
        return get(self, dsk, keys, **kwargs)

    def recording_tasks(self):
        if self._tasks is None:
            sizes[planes].append(len(tasks(self)))
        return tasks(self)

    monkeypatch.setattr(tiling, "build_tiled_dask", recording_build)
    monkeypatch.setattr(distributed.Client, "get", recording_get)
    monkeypatch.setattr(schedule.PlaneGraph, "tasks", property(recording_tasks))
    for planes in (2, 6):
        stack = np.stack([_photo((TILE, 2 * TILE, 3), seed) for seed in range(planes)])
        source = tmp_path / f"stack-{planes}.zarr"
        zarr.create_array(os.fspath(source), data=stack, chunks=(1, TILE, TILE, 3))
        events.clear()
        sizes[planes] = []
        out = tmp_path / f"out-{planes}.zarr"
        assert run_batch(source, out, scale=2, model=weights, tile=TILE).ok
        assert events.index("submit") <= 2  # this plane and, looked ahead, the next
        written = zarr.open_array(os.fspath(out), mode="r")
        for k in (0, planes - 1):
            np.testing.assert_array_equal(written[k], _expected(stack[k], weights))
    assert len(set(sizes[2] + sizes[6])) == 1  # every plane's graph the same size


def test_a_timm_style_model_name_is_the_shipped_model_as_in_run(tmp_path):
    """``--model lite.x2`` names the shipped weights (not a file called lite.x2), recorded as
    its variant so that a rerun naming ``lite`` is the same job."""
    source = tmp_path / "small.zarr"
    image = _photo((24, 32), 3)
    zarr.create_array(os.fspath(source), data=image)
    out = tmp_path / "out.zarr"
    assert main(["batch", str(source), str(out), "--model", "lite.x2", "--tile", str(TILE)]) == 0
    assert _state(out)["job"]["model"] == "lite" and _state(out)["complete"] is True
    assert run_batch(source, out, scale=2, model="lite").computed == 0  # found complete
    # the plane shows no blocking grid: the weights for mild compression ran on it
    result = zarr.open(store=os.fspath(out), mode="r")[:]
    np.testing.assert_array_equal(result, _expected(image, "lite.mild"))
    # a compression tag is part of the job, and is not routed
    tagged = tmp_path / "strong.zarr"
    assert (
        main(["batch", str(source), str(tagged), "--model", "lite.x2.strong", "--tile", str(TILE)])
        == 0
    )
    assert _state(tagged)["job"]["model"] == "lite.strong"
    result = zarr.open(store=os.fspath(tagged), mode="r")[:]
    np.testing.assert_array_equal(result, _expected(image, "lite.strong"))


def test_batch_takes_the_speed_preset_as_run_does(tmp_path, weights):
    """``batch`` declares its model flags with ``run``'s: ``--preset fast`` is one iteration,
    recorded in the job, and ``--preset`` with ``--iterations`` is refused by argparse."""
    source = tmp_path / "small.zarr"
    zarr.create_array(os.fspath(source), data=_photo((24, 32), 3))
    out = tmp_path / "out.zarr"
    args = ["batch", str(source), str(out), "--model", str(weights), "--tile", str(TILE)]
    assert main([*args, "--preset", "fast"]) == 0
    assert _state(out)["job"]["iterations"] == 1 and _state(out)["complete"] is True
    with pytest.raises(SystemExit) as refused:
        main([*args, "--preset", "fast", "--iterations", "2"])
    assert refused.value.code == 2


@pytest.mark.parametrize(
    ("shape", "dtype", "message"),
    [
        ((100,), np.uint8, "expected an image"),
        ((50, 60), np.int32, "unsupported dtype"),
        ((40, 30, 2), np.uint8, "too small"),
    ],
)
def test_bad_zarr_arrays(tmp_path, weights, shape, dtype, message):
    src = tmp_path / "bad.zarr"
    zarr.create_array(os.fspath(src), shape=shape, dtype=dtype)
    with pytest.raises(BatchError, match=message):
        run_batch(src, tmp_path / "out.zarr", scale=2, model=weights)
    assert not (tmp_path / "out.zarr").exists()


def _write_ome(path: Path, image: np.ndarray, version: str = "0.4") -> None:
    """OME-NGFF ``version`` (0.4: zarr v2; 0.5: zarr v3), axes (c, y, x), two levels, 0.5 µm
    pixels, OMERO channels."""
    root = zarr.open_group(os.fspath(path), mode="w", zarr_format=2 if version == "0.4" else 3)
    levels = [image, image[:, ::2, ::2]]
    datasets = []
    for k, level in enumerate(levels):
        root.create_array(str(k), shape=level.shape, chunks=(1, 32, 32), dtype=level.dtype)[...] = (
            level
        )
        pixel = 0.5 * 2**k
        datasets.append(
            {
                "path": str(k),
                "coordinateTransformations": [{"type": "scale", "scale": [1, pixel, pixel]}],
            }
        )
    multiscales = {
        "name": "cells",
        "axes": [
            {"name": "c", "type": "channel"},
            {"name": "y", "type": "space", "unit": "micrometer"},
            {"name": "x", "type": "space", "unit": "micrometer"},
        ],
        "datasets": datasets,
    }
    window = {"min": 0, "max": 255, "start": 0, "end": 255}
    colours = {"R": "FF0000", "G": "00FF00", "B": "0000FF"}
    omero = {"channels": [{"label": n, "color": c, "window": window} for n, c in colours.items()]}
    if version == "0.4":
        root.attrs.update({"multiscales": [{"version": "0.4", **multiscales}], "omero": omero})
    else:
        root.attrs["ome"] = {"version": "0.5", "multiscales": [multiscales], "omero": omero}


def test_ome_zarr_pyramid_and_pixel_sizes(tmp_path, weights):
    rgb = _photo((60, 84, 3), 4)
    src = tmp_path / "image.ome.zarr"
    _write_ome(src, np.moveaxis(rgb, -1, 0))
    out = tmp_path / "out.ome.zarr"
    assert run_batch(src, out, scale=2, model=weights, tile=TILE).ok
    root = zarr.open_group(os.fspath(out), mode="r")
    assert root.metadata.zarr_format == 2
    meta = root.attrs["multiscales"][0]
    assert meta["version"] == "0.4" and [a["name"] for a in meta["axes"]] == ["c", "y", "x"]
    scales = [d["coordinateTransformations"][0]["scale"] for d in meta["datasets"]]
    assert scales == [[1.0, 0.25, 0.25], [1.0, 0.5, 0.5]]
    translation = meta["datasets"][0]["coordinateTransformations"][1]["translation"]
    assert translation[1:] == [-0.125, -0.125]  # HR pixel 0 is centred at LR pixel −1/4
    assert root.attrs["omero"]["channels"][0]["label"] == "R"
    level0 = root["0"][...]
    # (c, y, x) with 3 channels is RGB: processed like the H×W×3 photo.
    np.testing.assert_array_equal(np.moveaxis(level0, 0, -1), _expected(rgb, weights))
    mean = level0.astype(np.float64).reshape(3, 60, 2, 84, 2).mean(axis=(2, 4))
    np.testing.assert_array_equal(root["1"][...], np.round(mean).astype(np.uint8))
    assert _state(out)["complete"] is True


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_ome_zarr_output_is_read_and_validated_by_the_ome_zarr_libraries(
    tmp_path, weights, version
):
    """ome-zarr-py's reader finds the pyramid and the pixel sizes store.ome_output writes, and
    ome-zarr-models validates the metadata (NGFF 0.4 on zarr v2, 0.5 on zarr v3)."""
    pytest.importorskip("ome_zarr_models")
    from ome_zarr.io import parse_url
    from ome_zarr.reader import OMERO, Multiscales, Reader

    src, out = tmp_path / "image.ome.zarr", tmp_path / "out.ome.zarr"
    _write_ome(src, np.moveaxis(_photo((40, 56, 3), 5), -1, 0), version)
    assert run_batch(src, out, scale=2, model=weights, tile=TILE).ok

    location = parse_url(os.fspath(out))
    assert location is not None and location.version == version
    image = next(iter(Reader(location)()))
    assert image.load(Multiscales) is not None and image.load(OMERO) is not None
    assert [level.shape for level in image.data] == [(3, 80, 112), (3, 40, 56)]
    assert [axis["name"] for axis in image.metadata["axes"]] == ["c", "y", "x"]
    level0 = image.metadata["coordinateTransformations"][0]
    assert level0[0] == {"type": "scale", "scale": [1.0, 0.25, 0.25]}  # 0.5 µm / 2
    assert image.metadata["channel_names"] == ["R", "G", "B"]  # OMERO, carried over
    _ngff_image_model(version).from_zarr(zarr.open_group(os.fspath(out), mode="r"))  # validates


def test_a_multiscale_level_transform_is_folded_into_the_output_datasets():
    """ome-zarr-py's writer takes dataset transforms only, so an input's multiscale-level
    scale and translation (applied after the dataset's) are folded into each output level."""
    import dask.array as da

    from napari_cisr._batch.sources import Item
    from napari_cisr._batch.store import ome_output

    item = Item("cells", "0", da.zeros((3, 8, 8), np.uint8), y_axis=1, x_axis=2, rgb_axis=0)
    multiscales = {
        "datasets": [
            {"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [1, 1, 1]}]},
            {"path": "1", "coordinateTransformations": [{"type": "scale", "scale": [1, 2, 2]}]},
        ],
        "coordinateTransformations": [
            {"type": "scale", "scale": [1, 0.5, 0.5]},
            {"type": "translation", "translation": [0, 10, 20]},
        ],
    }
    ome = ome_output(multiscales, item, scale=2)
    level0, level1 = (d["coordinateTransformations"] for d in ome["datasets"])
    # input pixel 0.5 µm at (10, 20); output pixel 0.25 µm centred 1/4 input pixel before it
    assert level0 == [
        {"type": "scale", "scale": [1.0, 0.25, 0.25]},
        {"type": "translation", "translation": [0.0, 9.875, 19.875]},
    ]
    assert level1[0]["scale"] == [1.0, 0.5, 0.5]
    assert level1[1]["translation"] == [0.0, 10.0, 20.0]
    assert ome["name"] == "cells" and ome["axes"] is None


def _ngff_image_model(version: str):
    """ome-zarr-models' Image class of NGFF ``version``."""
    import ome_zarr_models.v04
    import ome_zarr_models.v05

    if version == "0.5":
        return ome_zarr_models.v05.Image
    # pydantic >= 2.13 leaves the v0.4 Image incomplete until its generic member types are
    # named (ome-zarr-models-py issue 417, open)
    import pydantic_zarr.v2

    names = {"ArraySpec": pydantic_zarr.v2.ArraySpec, "GroupSpec": pydantic_zarr.v2.GroupSpec}
    ome_zarr_models.v04.Image.model_rebuild(_types_namespace=names)
    return ome_zarr_models.v04.Image


# ------------------------------------------------------------------------------ safety


def test_overwrite_protection(folder, weights, tmp_path):
    out = tmp_path / "out.zarr"
    zarr.create_array(os.fspath(out), shape=(4, 4), dtype=np.uint8)
    with pytest.raises(BatchError, match="already exists"):
        run_batch(folder, out, scale=2, model=weights, tile=TILE)
    assert run_batch(folder, out, scale=2, model=weights, tile=TILE, overwrite=True).ok
    # A finished job run again is left alone; a different job is refused.
    assert run_batch(folder, out, scale=2, model=weights, tile=TILE).computed == 0
    with pytest.raises(BatchError, match="already exists"):
        run_batch(folder, out, scale=2, model=weights, tile=2 * TILE)
    plain = tmp_path / "my-documents"
    plain.mkdir()
    (plain / "thesis.tex").write_text("precious")
    with pytest.raises(BatchError, match="not a zarr store"):
        run_batch(folder, plain, scale=2, model=weights, overwrite=True)
    assert (plain / "thesis.tex").read_text() == "precious"
    with pytest.raises(BatchError, match="outside the input"):
        run_batch(folder, folder / "inside.zarr", scale=2, model=weights)


def test_unreachable_scheduler(folder, weights, tmp_path):
    out = tmp_path / "out.zarr"
    with pytest.raises(BatchError, match="cannot reach the dask scheduler"):
        run_batch(
            folder, out, scale=2, model=weights, scheduler="tcp://127.0.0.1:9", connect_timeout=1
        )
    assert not out.exists()


@pytest.mark.parametrize("resume_workers", ["1", "2"])
def test_resume_after_sigkill_is_byte_identical(tmp_path, weights, resume_workers):
    """Also when the rerun asks for another worker count (issue 21.4): it adopts the torch
    thread count the killed run started with."""
    src = tmp_path / "photos"
    src.mkdir()
    for k in range(3):
        Image.fromarray(_photo((150, 190, 3), 10 + k)).save(src / f"p{k}.jpg", quality=30)
    before = _tree_digest(src)
    reference = tmp_path / "reference.zarr"
    killed = tmp_path / "killed.zarr"
    command = [sys.executable, "-m", "napari_cisr.cli", "batch", os.fspath(src)]
    options = ["--scale", "2", "--tile", str(TILE), "--model", os.fspath(weights)]

    subprocess.run([*command, os.fspath(reference), *options], check=True, capture_output=True)

    # The run kills itself once 4 blocks of the first photo are marked: mid-way on a machine
    # of any speed (waiting for markers from outside raced a fast machine to the end).
    from napari_cisr._batch.store import KILL_AT

    process = subprocess.run(
        [*command, os.fspath(killed), *options],
        env={**os.environ, KILL_AT: "written:p0@4"},
        capture_output=True,
    )
    assert process.returncode == -signal.SIGKILL, process.stderr.decode()[-2000:]
    assert len(list((killed / MARKERS).rglob("*_*"))) >= 4
    assert _state(killed)["complete"] is False  # a partial store says so

    resumed = subprocess.run(
        [*command, os.fspath(killed), *options, "--workers", resume_workers],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "resuming" in resumed.stderr
    found = int(resumed.stderr.split(" blocks computed, ")[1].split(" found done")[0])
    assert found >= 4
    assert _tree_digest(killed) == _tree_digest(reference)
    assert _tree_digest(src) == before
    assert json.loads((killed / "zarr.json").read_text())["attributes"][ATTR]["complete"] is True


@pytest.fixture(scope="module")
def ome_and_reference(tmp_path_factory, weights) -> tuple[Path, Path]:
    """An OME-Zarr input with a 2-level pyramid (4 blocks on level 1) and its batch, unbroken."""
    folder = tmp_path_factory.mktemp("kill")
    source = folder / "image.ome.zarr"
    _write_ome(source, np.moveaxis(_photo((150, 190, 3), 12), -1, 0))
    reference = folder / "reference.zarr"
    assert run_batch(source, reference, scale=2, model=weights, tile=TILE).ok
    return source, reference


@pytest.mark.parametrize("point", ["store-layout", "written:1"])
def test_a_sigkill_at_store_creation_or_in_the_pyramid_resumes_byte_identical(
    tmp_path, weights, ome_and_reference, point
):
    """Issue 21: kill -9 while the store is laid out (before its rename into place) and after
    the first block of pyramid level 1; the rerun ends byte-identical to an unbroken run.
    (The kill in the middle of level 0 is ``test_resume_after_sigkill_is_byte_identical``.)"""
    from napari_cisr._batch.store import KILL_AT

    source, reference = ome_and_reference
    out = tmp_path / "out.ome.zarr"
    command = [sys.executable, "-m", "napari_cisr.cli", "batch", os.fspath(source)]
    command += [os.fspath(out), "--scale", "2", "--tile", str(TILE), "--model", os.fspath(weights)]
    killed = subprocess.run(command, env={**os.environ, KILL_AT: point}, capture_output=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()[-2000:]
    if point == "store-layout":
        assert not out.exists() and len(list(tmp_path.glob(".out.ome.zarr.*.tmp"))) == 1
    else:
        assert _state(out)["complete"] is False
        level0 = len(list((out / MARKERS / "0").iterdir()))
        assert level0 > 1 and len(list((out / MARKERS / "1").iterdir())) == 1

    resumed = subprocess.run(command, capture_output=True, text=True, check=True)
    if point != "store-layout":
        assert f"{level0 + 1} found done" in resumed.stderr, resumed.stderr
    assert _tree_digest(out) == _tree_digest(reference)
    assert [p.name for p in tmp_path.iterdir()] == ["out.ome.zarr"]  # nothing left beside it


def test_resume_removes_the_chunk_writes_a_killed_run_left(folder, weights, tmp_path):
    reference = tmp_path / "reference.zarr"
    run_batch(folder, reference, scale=2, model=weights, tile=TILE)
    interrupted = tmp_path / "interrupted.zarr"

    def stop_after_first_block(progress):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_batch(
            folder,
            interrupted,
            scale=2,
            model=weights,
            tile=TILE,
            on_progress=stop_after_first_block,
        )
    assert _state(interrupted)["complete"] is False
    # What zarr's LocalStore leaves when killed between writing a chunk and renaming it.
    leftover = interrupted / "rgb" / "c" / "0" / "0" / f"0.{'ab' * 16}.partial"
    leftover.parent.mkdir(parents=True, exist_ok=True)
    leftover.write_bytes(b"")

    run_batch(folder, interrupted, scale=2, model=weights, tile=TILE)
    assert not leftover.exists()
    assert _tree_digest(interrupted) == _tree_digest(reference)


def test_a_batch_with_failed_files_completes_once_they_are_removed(folder, weights, tmp_path):
    """Issue 21.3: which files failed is a report, not part of what the store holds."""
    (folder / "broken.jpg").write_bytes((folder / "rgb.jpg").read_bytes()[:200])
    out = tmp_path / "out.zarr"
    first = run_batch(folder, out, scale=2, model=weights, tile=TILE)
    assert [name for name, _ in first.failed] == ["broken.jpg"] and first.computed > 0
    (folder / "broken.jpg").unlink()
    again = run_batch(folder, out, scale=2, model=weights, tile=TILE)
    assert again.ok and again.computed == 0 and sorted(again.completed) == ["gray.png", "rgb.jpg"]
    with pytest.raises(BatchError, match=r"holds another job \(its tile differs\)"):
        run_batch(folder, out, scale=2, model=weights, tile=2 * TILE)


def test_a_repaired_file_is_retried_alone_and_completes_the_store(
    folder, weights, tmp_path, caplog
):
    """Issue 21, "a batch can always finish": a file that failed to read and has been replaced
    by a good one is computed by the rerun, and only it; the store then ends as a fresh run's."""
    (folder / "late.jpg").write_bytes((folder / "rgb.jpg").read_bytes()[:200])
    out = tmp_path / "out.zarr"
    first = run_batch(folder, out, scale=2, model=weights, tile=TILE)
    assert [name for name, _ in first.failed] == ["late.jpg"] and first.computed > 0
    assert _state(out)["failed"] == ["late.jpg"]
    chunks = [p for name in ("gray", "rgb") for p in (out / name / "c").rglob("*") if p.is_file()]
    assert len(chunks) >= 2
    written_before = {p: p.stat().st_mtime_ns for p in chunks}

    Image.fromarray(_photo((66, 80, 3), 7)).save(folder / "late.jpg", quality=30)
    args = ["batch", os.fspath(folder), os.fspath(out), "--scale", "2", "--tile", str(TILE)]
    caplog.set_level(logging.INFO, logger="napari_cisr")
    assert main([*args, "--model", os.fspath(weights)]) == 0
    (summary,) = [r.getMessage() for r in caplog.records if "item(s) done" in r.getMessage()]
    assert "3 item(s) done" in summary and "retried: late.jpg" in summary, summary
    computed = int(summary.split("item(s) done (")[1].split(" blocks computed")[0])
    assert {p: p.stat().st_mtime_ns for p in chunks} == written_before  # not rewritten
    state = _state(out)
    assert state["complete"] is True and "failed" not in state
    assert [item["name"] for item in state["job"]["items"]] == ["gray.png", "late.jpg", "rgb.jpg"]

    reference = tmp_path / "reference.zarr"
    fresh = run_batch(folder, reference, scale=2, model=weights, tile=TILE)
    assert computed == fresh.computed - first.computed  # the repaired file's blocks alone
    assert _tree_digest(out) == _tree_digest(reference)


def test_a_resume_keeps_the_tile_and_precision_its_job_left_free(
    folder, weights, tmp_path, monkeypatch
):
    """Issue 21, deterministic results: the automatic tile and "auto" precision are resolved
    once and pinned by the job record; a rerun on a machine with another memory budget and
    CPU resumes with them and ends byte-identical to an uninterrupted run."""
    import napari_cisr.batch
    import napari_cisr.runtime
    from napari_cisr._batch.job import resolve_settings

    default_budget = napari_cisr.batch.WORKER_BUDGET

    def machine(budget: int, native_bfloat16: bool) -> None:
        monkeypatch.setattr(napari_cisr.batch, "WORKER_BUDGET", budget)

        def resolve(precision, device):
            if precision == "auto":
                return torch.bfloat16 if native_bfloat16 else torch.float32
            return torch.bfloat16 if precision == "bfloat16" else torch.float32

        monkeypatch.setattr(napari_cisr.runtime, "resolve_precision", resolve)

    machine(1, native_bfloat16=True)  # little memory: the smallest tile
    reference = tmp_path / "reference.zarr"
    assert run_batch(folder, reference, scale=2, model=weights).ok
    job = _state(reference)["job"]
    assert (job["tile"], job["precision"], job["device"]) == (64, "bfloat16", "cpu")

    interrupted = tmp_path / "interrupted.zarr"

    def stop_after_a_block(progress):
        if progress.done:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_batch(folder, interrupted, scale=2, model=weights, on_progress=stop_after_a_block)

    machine(default_budget, native_bfloat16=False)
    config = load_model(weights, scale=2).config
    free = resolve_settings(config, "cpu", "auto", None, budget=default_budget)
    assert free[1:] == ("float32", 256)  # what this machine would pick for a new store
    resumed = run_batch(folder, interrupted, scale=2, model=weights)
    assert resumed.ok and resumed.skipped >= 1
    assert _tree_digest(interrupted) == _tree_digest(reference)


def test_a_temporary_store_left_by_a_killed_run_is_removed(folder, weights, tmp_path):
    """Issue 21.5: a kill while the store was being laid out leaves .NAME.XXXX.tmp/ behind."""
    out = tmp_path / "out.zarr"
    stale = tmp_path / ".out.zarr.k1ll3d.tmp"
    (stale / "0").mkdir(parents=True)
    aside = tmp_path / ".out.zarr.old-4242"  # an old store being replaced: the user's data
    aside.mkdir()
    assert run_batch(folder, out, scale=2, model=weights, tile=TILE).ok
    assert not stale.exists() and aside.exists()


def test_a_temporary_file_left_by_a_killed_worker_is_removed(tmp_path):
    """A photo worker killed inside its atomic write leaves .NAME.XXXX.tmp.png beside the photo
    a retry then writes; the photo batch removes it for each photo of the run (run_photo_batch),
    and only that photo's."""
    from napari_cisr._batch.store import remove_stale_temporaries

    out = tmp_path / "p0_x2.png"
    out.write_bytes(b"written by the retry")
    stale = tmp_path / ".p0_x2.png.k1ll3d.tmp.png"
    stale.write_bytes(b"half")
    other = tmp_path / ".p1_x2.png.k1ll3d.tmp.png"
    other.write_bytes(b"another photo's write")
    remove_stale_temporaries(out)
    assert out.exists() and not stale.exists() and other.exists()


def test_a_failed_photos_temporary_is_removed_too(folder, weights, tmp_path, caplog):
    """A worker killed inside a photo's write leaves its temporary; when that photo then fails
    (here: its file was damaged since), the batch still removes the temporary."""
    good = (folder / "rgb.jpg").read_bytes()
    (folder / "broken.jpg").write_bytes(good[: len(good) // 3])
    out = tmp_path / "out"
    out.mkdir()
    stale = out / ".broken_x2.png.k1ll3d.tmp.png"
    stale.write_bytes(b"half")
    args = ["batch", os.fspath(folder), os.fspath(out), "--scale", "2", "--workers", "1"]
    assert main([*args, "--model", os.fspath(weights)]) == 1  # broken.jpg failed
    assert "broken.jpg: cannot read" in caplog.text
    assert sorted(p.name for p in out.iterdir()) == ["gray_x2.png", "rgb_x2.png"]


def test_the_private_dask_task_spec_batch_relies_on_still_works():
    """batch culls graphs through ``dask._task_spec`` (a private module): fail loudly if it moves.

    pyproject pins dask below its next major release; this says what broke when it changes.
    """
    import operator

    from dask._task_spec import Task, TaskRef, convert_legacy_graph

    tasks = convert_legacy_graph({"a": 1, "b": (operator.add, "a", 1)})
    assert tasks["b"].dependencies == {"a"}
    write = Task("c", operator.mul, TaskRef("b"), 3)
    assert write.dependencies == {"b"}
    assert write({"b": 2}) == 6


def test_block_progress_draws_a_tqdm_bar_per_stage_on_a_terminal():
    from napari_cisr.batch import BatchProgress
    from napari_cisr.progress import BlockProgress

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream = Terminal()
    bar = BlockProgress(stream)
    for done in range(4):
        bar(BatchProgress(done, 3, float(done), skipped=2))
    bar(BatchProgress(1, 1, 0.5, stage="pyramid level 1"))
    bar.close()
    text = stream.getvalue()
    assert "level 0 (+2 done before)" in text and "3/3" in text
    assert "pyramid level 1" in text and "1/1" in text


def test_a_folder_batch_shows_the_tiles_of_an_image_on_a_terminal(tmp_path, weights, monkeypatch):
    """Issue 23, progress: ``batch DIR OUT_DIR`` draws, as ``run -o`` does, a bar of images and
    one of the work units (tiles × iterations) of the image being computed, which the worker
    reports while it computes it."""
    import napari_cisr.progress

    source = tmp_path / "photos"
    source.mkdir()
    Image.fromarray(_photo((150, 190, 3), 3)).save(source / "big.jpg", quality=30)

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    steps = []
    draw = napari_cisr.progress.Bars.step

    def step(self, done, total):
        steps.append((done, total))
        draw(self, done, total)

    monkeypatch.setattr(napari_cisr.progress.Bars, "step", step)
    out = tmp_path / "out"
    args = ["batch", os.fspath(source), os.fspath(out), "--tile", str(TILE)]
    assert main([*args, "--model", os.fspath(weights)]) == 0
    assert [p.name for p in out.iterdir()] == ["big_x2.png"]
    assert steps, "no progress within the image reached the client"
    assert all(0 < done <= total for done, total in steps) and steps[0][1] > 1
    assert [done for done, _ in steps] == sorted(done for done, _ in steps)
    text = terminal.getvalue()
    assert "step" in text and "image" in text


def test_a_folder_s_files_are_routed_by_their_own_quality(tmp_path):
    """As ``run`` routes a photo: a WebP q20 file says heavy compression, which its pixels
    alone would not (no JPEG quality to read in them)."""
    from napari_cisr.compression import compression_from_pixels, route_model
    from napari_cisr.io import read_image

    folder = tmp_path / "photos"
    folder.mkdir()
    Image.fromarray(_photo((40, 48, 3), 2)).save(folder / "heavy.webp", quality=20)
    decoded = read_image(folder / "heavy.webp")
    heavy = route_model("lite", 2, "heavy")
    assert route_model("lite", 2, compression_from_pixels(decoded)) != heavy
    out = tmp_path / "out.zarr"
    assert run_batch(folder, out, scale=2, model="lite", tile=TILE).ok
    result = zarr.open_group(os.fspath(out), mode="r")["heavy"][...]
    np.testing.assert_array_equal(result, _expected(decoded, heavy))

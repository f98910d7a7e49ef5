"""Fault tests (issue 21): every bad argument refused in one line before torch is imported,
the exit status says whose fault it was, and outputs get the umask's permissions."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from guards import forbid_work, refuse_file_creation
from napari_cisr.cli import main
from napari_cisr.io import write_image

SAMPLE = Path(__file__).parents[1] / "src" / "napari_cisr" / "data" / "sample_x2_q15.jpg"

#: Run the CLI in a fresh interpreter and report whether torch got imported.
_PROBE = (
    "import sys\n"
    "from napari_cisr.cli import main\n"
    "status = main(sys.argv[1:])\n"
    "print('torch imported' if 'torch' in sys.modules else 'torch not imported')\n"
    "sys.exit(status)\n"
)


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", _PROBE, *args], capture_output=True, text=True)


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--iterations", "-1"], "iterations must be at least 1"),
        (["--iterations", "0"], "iterations must be at least 1"),
        (["--device", "tpu"], "unknown device 'tpu'"),
        (["--tile", "-5"], "tile must be 0"),
        (["--model", "tiny"], "model 'tiny' has no shipped weights at x2"),
        (["--model", "full", "--scale", "3"], "model 'full' has no shipped weights at x3"),
        (["--model", "nowhere.safetensors"], "weight file 'nowhere.safetensors' does not exist"),
    ],
)
def test_bad_arguments_are_refused_before_torch_is_imported(tmp_path, args, named):
    output = tmp_path / "out.png"
    result = _cli("run", str(SAMPLE), str(output), *args)
    assert result.returncode == 2
    assert result.stdout.strip() == "torch not imported"
    (line,) = result.stderr.strip().splitlines()
    assert named in line and "Traceback" not in result.stderr
    assert not output.exists() and list(tmp_path.iterdir()) == []


def test_batch_and_eval_refuse_the_same_arguments_alike(tmp_path):
    for command in (
        ["batch", str(tmp_path), str(tmp_path / "out.zarr")],
        ["eval", str(SAMPLE)],
        ["demo", "--output", str(tmp_path / "demo")],
    ):
        result = _cli(*command, "--device", "tpu")
        assert result.returncode == 2, command
        assert result.stdout.strip() == "torch not imported", command
        assert result.stderr.strip() == "napari-cisr: unknown device 'tpu'; use auto, cpu, " \
            "cuda, cuda:N or mps"  # fmt: skip
    assert list(tmp_path.iterdir()) == []


def test_malformed_config_metadata_names_the_weight_file(tmp_path, capsys):
    import torch
    from safetensors.torch import save_file

    weights = tmp_path / "bad-meta.safetensors"
    save_file({"a": torch.zeros(1)}, weights, metadata={"cisr_config": "{not json"})
    status = main(["run", str(SAMPLE), str(tmp_path / "o.png"), "--model", str(weights)])
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and "bad-meta.safetensors" in line and "cisr_config" in line
    assert "sample_x2_q15" not in line  # the weights' fault, not the input's


def test_a_pickle_weight_file_is_refused_in_one_whole_sentence(tmp_path, capsys):
    import torch

    weights = tmp_path / "pickled.pt"
    torch.save({"model": {"w": torch.zeros(1)}, "extra": Path("x")}, weights)
    status = main(["run", str(SAMPLE), str(tmp_path / "o.png"), "--model", str(weights)])
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and "refusing to load weights" in line and "pickled.pt" in line
    assert line.endswith("`napari-cisr train`")  # not cut off mid-sentence


def test_work_that_fails_on_its_input_exits_1(tmp_path, capsys, fresh_weights):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(SAMPLE.read_bytes()[:100])
    status = main(["run", str(broken), str(tmp_path / "o.png"), "--model", str(fresh_weights)])
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert status == 1 and "broken.jpg" in line


def test_version_and_verbose_after_the_subcommand(tmp_path, capsys, fresh_weights):
    from napari_cisr import __version__

    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0 and capsys.readouterr().out.strip().endswith(__version__)
    output = tmp_path / "o.png"
    args = ["run", str(SAMPLE), str(output), "--model", str(fresh_weights), "--iterations", "1"]
    assert main([*args, "-v"]) == 0 and output.exists()


@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_outputs_get_the_umask_permissions(tmp_path, umask, fresh_weights):
    source = tmp_path / "in" / "a.png"
    source.parent.mkdir()
    write_image(source, np.full((16, 16, 3), 100, np.uint8))
    previous = os.umask(umask)
    try:
        image = tmp_path / "out.png"
        store = tmp_path / "out.zarr"
        assert main(["run", str(source), str(image), "--model", str(fresh_weights)]) == 0
        batch = ["batch", str(source.parent), str(store), "--model", str(fresh_weights)]
        assert main(batch) == 0
    finally:
        os.umask(previous)
    assert stat.S_IMODE(image.stat().st_mode) == 0o666 & ~umask
    assert stat.S_IMODE(store.stat().st_mode) == 0o777 & ~umask


def test_eval_names_the_mean_it_takes(tmp_path):
    from napari_cisr.train.evaluate import format_table, summarise

    row = {"bicubic_psnr": 30.0, "bicubic_ssim": 0.8, "psnr": 30.5, "ssim": 0.81}
    configs = {label: dict(row) for label in ("jpeg-q10", "webp-q5", "jpeg-q15")}
    report = summarise({"scale": 2, "model": "m", "photos": ["a"], "configs": configs})
    table = format_table(report)
    assert "mean of 2 of the ten" in table and "mean of 1 unseen" in table
    assert "mean of the ten" not in table


def test_batch_is_quiet_when_the_dashboard_port_is_taken(tmp_path, capfd, fresh_weights):
    import socket

    source = tmp_path / "in" / "a.png"
    source.parent.mkdir()
    write_image(source, np.full((16, 16, 3), 100, np.uint8))
    taken = socket.socket()
    try:
        taken.bind(("127.0.0.1", 8787))
        taken.listen()
    except OSError:
        pass  # already taken by something else: the same situation
    try:
        store = tmp_path / "o.zarr"
        assert main(["batch", str(source.parent), str(store), "--model", str(fresh_weights)]) == 0
    finally:
        taken.close()
    assert "8787" not in capfd.readouterr().err


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--batch", "0"], "batch must be at least 1, got 0"),
        (["--steps", "-3"], "steps must be at least 1, got -3"),
        (["--lr", "-0.1"], "need 0 <= lr_min <= lr"),
        (["--compressions", "jpeg-q90", "jpg-q80"], "bad compression config 'jpg-q80'"),
    ],
)
def test_bad_training_options_are_refused_in_one_line_before_any_photo(tmp_path, args, named):
    result = _cli("train", "--data", str(tmp_path / "nowhere"), "--output", str(tmp_path / "run"),
                  *args)  # fmt: skip
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert named in line and "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()  # refused before the run folder was made


def test_a_corrupt_checkpoint_is_refused_in_one_line_and_kept(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "last.pt").write_bytes(b"half a checkpoint")  # a run killed mid-write by an old version
    photos = tmp_path / "photos"
    photos.mkdir()
    noise = np.random.default_rng(0).integers(0, 256, (300, 300, 3), dtype=np.uint8)
    write_image(photos / "noise.png", noise)
    result = _cli("train", "--data", str(photos), "--output", str(run), "--steps", "1")
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert f"{run / 'last.pt'}: cannot resume from it (not a PyTorch checkpoint" in line
    assert "move it away" in line and "Traceback" not in result.stderr
    assert (run / "last.pt").read_bytes() == b"half a checkpoint"  # nothing lost


@pytest.mark.parametrize("case", ["missing folder", "read-only folder"])
def test_batch_refuses_an_unwritable_zarr_output_before_any_work(
    tmp_path, capsys, monkeypatch, case, fresh_weights
):
    """Issue 21.1: ``batch SRC out.zarr`` into a missing or read-only folder fails in one line
    (exit 2) before an image is read or a cluster started, not with a traceback after."""

    import napari_cisr.batch
    import napari_cisr.io

    source = tmp_path / "in"
    source.mkdir()
    write_image(source / "a.png", np.full((16, 16, 3), 100, np.uint8))
    parent = tmp_path / ("no/such" if case == "missing folder" else "locked")
    if case == "read-only folder":
        parent.mkdir()
        parent.chmod(0o555)
        if os.geteuid() == 0:
            refuse_file_creation(monkeypatch)
    forbid_work(
        monkeypatch, "work started before the output was checked",
        (napari_cisr.io, "read_image"), (napari_cisr.batch, "Cluster"),
    )  # fmt: skip
    output = parent / "out.zarr"
    try:
        status = main(["batch", str(source), str(output), "--model", str(fresh_weights)])
    finally:
        if parent.exists():
            parent.chmod(0o755)
    err = capsys.readouterr().err.strip()
    assert status == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    problem = "does not exist" if case == "missing folder" else "permission denied"
    assert f"output folder '{parent}'" in err and problem in err, err
    assert not output.exists() and (not parent.exists() or list(parent.iterdir()) == [])

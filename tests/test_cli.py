"""``napari-cisr run``: bad input gives one line and no output; odd valid input works."""

from __future__ import annotations

import io
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from guards import forbid_work, refuse_file_creation
from napari_cisr.cli import main
from napari_cisr.io import read_image


def _jpeg_bytes(shape=(24, 32, 3), quality=30) -> bytes:
    rng = np.random.default_rng(0)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, shape, dtype=np.uint8)).save(
        buffer, "JPEG", quality=quality
    )
    return buffer.getvalue()


def _bad_inputs(tmp_path):
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(_jpeg_bytes()[:300])
    text = tmp_path / "notes.png"
    text.write_text("this is not an image\n")
    return {
        "empty": (empty, "empty"),
        "truncated": (truncated, "truncated"),
        "not an image": (text, "not an image"),
        "missing": (tmp_path / "nowhere.webp", "no such file"),
    }


@pytest.mark.parametrize("case", ["empty", "truncated", "not an image", "missing"])
def test_bad_input_exits_nonzero_with_one_line_and_no_output(tmp_path, capsys, case, fresh_weights):
    path, problem = _bad_inputs(tmp_path)[case]
    output = tmp_path / "out.png"
    status = main(["run", str(path), str(output), "--model", str(fresh_weights)])
    err = capsys.readouterr().err.strip()
    assert status == 1  # the input's fault: failed work, not a usage error
    assert len(err.splitlines()) == 1, err
    assert path.name in err and problem in err
    assert "Traceback" not in err
    assert not output.exists()
    assert list(tmp_path.glob("out*")) == []


def test_installed_script_reports_without_traceback(tmp_path):
    bad = tmp_path / "bad.webp"
    bad.write_bytes(b"RIFF\x00\x00")
    result = subprocess.run(
        [sys.executable, "-m", "napari_cisr.cli", "run", str(bad), str(tmp_path / "o.png")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1 and "bad.webp" in result.stderr


def test_quiet_run_prints_nothing_when_nothing_fails(tmp_path):
    source = tmp_path / "in.jpg"
    source.write_bytes(_jpeg_bytes())
    command = [sys.executable, "-m", "napari_cisr.cli", "run", str(source)]
    loud = subprocess.run([*command, str(tmp_path / "a.png")], capture_output=True, text=True)
    quiet = subprocess.run(
        [*command, str(tmp_path / "b.png"), "-q"], capture_output=True, text=True
    )
    assert loud.returncode == quiet.returncode == 0
    assert "a.png" in loud.stderr and quiet.stderr == "" and quiet.stdout == ""
    assert (tmp_path / "b.png").is_file()


def test_paths_may_follow_the_options(tmp_path, capsys):
    source = tmp_path / "in.jpg"
    source.write_bytes(_jpeg_bytes())
    output = tmp_path / "out.png"
    assert main(["run", str(source), "--preset", "fast", "--device", "cpu", str(output)]) == 0
    assert read_image(output).shape == (48, 64, 3)
    with pytest.raises(SystemExit) as refused:  # an unknown option is still refused
        main(["run", str(source), str(tmp_path / "b.png"), "--bogus"])
    assert refused.value.code == 2 and "unrecognized arguments: --bogus" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # and so is a stray path where no list of paths is
        main(["batch", str(tmp_path), str(tmp_path / "o.zarr"), "--scale", "2", "extra"])
    assert "unrecognized arguments: extra" in capsys.readouterr().err


def test_existing_output_is_not_overwritten_without_flag(tmp_path, capsys, fresh_weights):
    source = tmp_path / "in.jpg"
    source.write_bytes(_jpeg_bytes())
    output = tmp_path / "out.png"
    output.write_bytes(b"precious")
    status = main(["run", str(source), str(output), "--model", str(fresh_weights)])
    assert status == 2 and "--overwrite" in capsys.readouterr().err
    assert output.read_bytes() == b"precious"
    assert (
        main(["run", str(source), str(output), "--model", str(fresh_weights), "--overwrite"]) == 0
    )
    assert read_image(output).shape == (48, 64, 3)


@pytest.mark.parametrize(
    ("name", "array"),
    [
        ("gray.png", np.tile(np.arange(0, 240, 10, dtype=np.uint8), (9, 1))),
        ("rgba.png", np.dstack([np.full((8, 9, 3), 90, np.uint8), np.full((8, 9), 128, np.uint8)])),
        ("deep.tif", (np.arange(8 * 10 * 3).reshape(8, 10, 3) * 250).astype(np.uint16)),
        ("deep_gray.png", (np.arange(8 * 8).reshape(8, 8) * 1000).astype(np.uint16)),
    ],
)
def test_odd_but_valid_inputs_work(tmp_path, name, array, fresh_weights):
    from napari_cisr.io import write_image

    source = tmp_path / name
    write_image(source, array)
    output = tmp_path / f"out_{name}"
    assert main(["run", str(source), str(output), "--model", str(fresh_weights)]) == 0
    result = read_image(output)
    assert result.dtype == array.dtype
    assert result.shape[:2] == (array.shape[0] * 2, array.shape[1] * 2)
    assert result.shape[2:] == array.shape[2:]
    if array.ndim == 3 and array.shape[2] == 4:
        # Alpha is upscaled on its own: a constant alpha stays constant.
        assert np.all(result[..., 3] == 128)


@pytest.mark.parametrize("shape", [(1, 1, 3), (2, 3), (7, 40, 3)])
def test_run_and_batch_refuse_images_under_8_pixels_alike(tmp_path, capsys, shape, fresh_weights):
    """One size policy (values.MIN_SIDE) for run, batch and the library: one line, exit 2 for
    run, nothing written."""
    from napari_cisr.io import write_image

    source = tmp_path / "inputs" / "tiny.png"
    source.parent.mkdir()
    write_image(source, np.full(shape, 90, np.uint8))
    output = tmp_path / "out.png"
    assert main(["run", str(source), str(output), "--model", str(fresh_weights)]) != 0
    err = capsys.readouterr().err.strip()
    assert "at least 8" in err and str(source.name) in err and len(err.splitlines()) == 1
    assert not output.exists()
    store = tmp_path / "out.zarr"
    assert main(["batch", str(source.parent), str(store), "--model", str(fresh_weights)]) != 0
    (line,) = [x for x in capsys.readouterr().err.splitlines() if ">= 8" in x]
    assert line.count("tiny.png") == 1  # the reason does not repeat the name


def test_run_with_self_ensemble_writes_the_ensembled_image(tmp_path):
    from napari_cisr import super_resolve

    source = tmp_path / "in.jpg"
    source.write_bytes(_jpeg_bytes())
    plain, ensembled = tmp_path / "plain.png", tmp_path / "ensembled.png"
    assert main(["run", str(source), str(plain), "--device", "cpu"]) == 0
    assert main(["run", str(source), str(ensembled), "--device", "cpu", "--self-ensemble"]) == 0
    # the path is routed by its file's quality (30: the heavy weights), as run routes it
    expected = super_resolve(source, 2, device="cpu", self_ensemble=True)
    np.testing.assert_array_equal(read_image(ensembled), expected)
    assert not np.array_equal(read_image(plain), expected)


def test_fast_preset_is_one_iteration_and_excludes_iterations(tmp_path, capsys):
    from napari_cisr import super_resolve

    source = tmp_path / "in.jpg"
    source.write_bytes(_jpeg_bytes())
    fast = tmp_path / "fast.png"
    assert main(["run", str(source), str(fast), "--device", "cpu", "--preset", "fast"]) == 0
    expected = super_resolve(source, 2, device="cpu", iterations=1)  # routed as run routes it
    np.testing.assert_array_equal(read_image(fast), expected)
    assert not np.array_equal(super_resolve(source, 2, device="cpu"), expected)
    with pytest.raises(SystemExit) as refused:
        main(["run", str(source), str(tmp_path / "b.png"), "--preset", "fast", "--iterations", "2"])
    assert refused.value.code == 2 and "not allowed with" in capsys.readouterr().err
    assert not (tmp_path / "b.png").exists()


@pytest.mark.parametrize("case", ["missing folder", "unwritable folder", "suffix", "exists"])
def test_run_refuses_a_bad_output_path_before_reading_or_computing(
    tmp_path, capsys, monkeypatch, case
):
    import napari_cisr.inference
    import napari_cisr.io

    source = tmp_path / "photo.jpg"
    source.write_bytes(_jpeg_bytes())
    output = {
        "missing folder": tmp_path / "no" / "such" / "out.png",
        "unwritable folder": tmp_path / "out.png",
        "suffix": tmp_path / "out.gif",
        "exists": tmp_path / "out.png",
    }[case]
    problem = {
        "missing folder": "does not exist",
        "unwritable folder": "permission denied",
        "suffix": "unsupported suffix",
        "exists": "--overwrite",
    }[case]
    if case == "exists":
        output.write_bytes(b"keep me")
    if case == "unwritable folder":
        refuse_file_creation(monkeypatch)
    forbid_work(
        monkeypatch, "the input was read or processed before the output was checked",
        (napari_cisr.io, "read_image"), (napari_cisr.inference, "super_resolve"),
    )  # fmt: skip
    status = main(["run", str(source), str(output)])
    err = capsys.readouterr().err.strip()
    assert status == 2 and len(err.splitlines()) == 1, err
    assert str(output.name) in err and problem in err.lower(), err
    assert "Traceback" not in err
    assert case != "exists" or output.read_bytes() == b"keep me"

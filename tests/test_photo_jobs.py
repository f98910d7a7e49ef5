"""Folder workflows (issue 23): many files in, a folder out, resumable; photos keep their
orientation, colour profile and metadata. Real files made with Pillow (tests/photo_files.py).
``metadata.py`` on its own is tested in tests/test_metadata.py, the photo formats' readers in
tests/test_io.py."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from napari_cisr.cli import main
from napari_cisr.io import read_image, write_image
from napari_cisr.photo_jobs import plan_jobs
from photo_files import XMP, display_p3_profile, save_camera_jpeg, smooth_photo

# --------------------------------------------------------------------------------------------
# metadata through `napari-cisr run` (metadata.py itself: tests/test_metadata.py)
# --------------------------------------------------------------------------------------------


def test_a_tiff_output_carries_the_exif_as_tiff_tags(tmp_path, fresh_weights):
    """``run --format tif``: the camera's tags in the TIFF's first IFD, the EXIF and GPS
    sub-IFDs beside it (pixel dimensions updated), as Pillow and other readers find them."""
    photos = tmp_path / "photos"
    photos.mkdir()
    source = save_camera_jpeg(photos / "camera.jpg", height=40, width=56, orientation=6)
    with Image.open(source) as image:
        image.getexif()[0x0131] = "Firmware 1.0"  # Software: the camera's, not tifffile's
        exif = image.getexif()
        image.save(source, exif=exif, icc_profile=display_p3_profile(), xmp=XMP, quality=60)
    args = ["run", str(photos), "-o", str(tmp_path / "big"), "--format", "tif"]
    assert main([*args, "--model", str(fresh_weights)]) == 0
    output = tmp_path / "big" / "camera_x2.tif"
    assert read_image(output).shape == (80, 112, 3)  # stored order, tagged 6
    with Image.open(output) as image:
        tags = image.getexif()
        assert image.info["icc_profile"] == display_p3_profile()
        assert (tags[0x0112], tags[0x010F], tags[0x0110]) == (6, "Canon", "Canon EOS 5D")
        assert tags[0x0131] == "Firmware 1.0"
        sub = tags.get_ifd(0x8769)
        assert (sub[0xA002], sub[0xA003]) == (112, 80)  # the output's pixel dimensions
        assert float(sub[0x829A]) == pytest.approx(1 / 250)  # ExposureTime
        assert tags.get_ifd(0x8825)[2] == (52.0, 31.0, 12.0)  # GPS


# --------------------------------------------------------------------------------------------
# planning
# --------------------------------------------------------------------------------------------


def test_plan_mirrors_folders_names_outputs_and_resolves_clashes(tmp_path):
    photos = tmp_path / "photos"
    (photos / "trip").mkdir(parents=True)
    for name in ("a.jpg", "a.png", "trip/b.webp", "scan.tif"):
        write_image(photos / name, smooth_photo(16, 16))
    (photos / "notes.txt").write_text("not an image")
    out = photos / "big"  # inside the input folder: its files are never taken as inputs
    out.mkdir()
    write_image(out / "old_x2.png", smooth_photo(16, 16))

    jobs, problems = plan_jobs([photos, tmp_path / "missing.jpg"], out, 2)
    outputs = {job.name: job.output.relative_to(out).as_posix() for job in jobs}
    assert outputs == {
        "a.jpg": "a_jpg_x2.png",
        "a.png": "a_png_x2.png",
        "scan.tif": "scan_x2.tif",  # TIFF stays TIFF (float, stacks)
        "trip/b.webp": "trip/b_x2.png",
    }
    assert problems == [(str(tmp_path / "missing.jpg"), "no such file or folder")]

    jobs, _ = plan_jobs([str(photos / "*.jpg")], out, 3, output_format="webp", suffix="-big")
    assert [job.output.name for job in jobs] == ["a-big.webp"]  # a quoted glob is expanded


# --------------------------------------------------------------------------------------------
# the folder of 20 mixed photos (issue 23, "done when")
# --------------------------------------------------------------------------------------------


def _mixed_folder(folder: Path) -> dict[str, str]:
    """20 files: 18 good (a phone portrait, WebP, 16-bit and RGBA PNGs, TIFF, 13 JPEGs) and 2
    bad (a truncated JPEG, a text file named .jpg).
    Returns the kind of each file by its name relative to ``folder``."""
    kinds = {}
    (folder / "phone").mkdir(parents=True)
    save_camera_jpeg(folder / "phone" / "portrait.jpg", height=40, width=56, orientation=6)
    kinds["phone/portrait.jpg"] = "portrait"
    write_image(folder / "web.webp", smooth_photo(24, 32, seed=1), quality=40)
    kinds["web.webp"] = "webp"
    deep = smooth_photo(24, 24, seed=2).astype(np.uint16) * 257
    write_image(folder / "deep16.png", deep)
    kinds["deep16.png"] = "uint16"
    rgba = np.dstack([smooth_photo(24, 24, seed=3), np.full((24, 24), 200, np.uint8)])
    write_image(folder / "alpha.png", rgba)
    kinds["alpha.png"] = "rgba"
    for index in range(13):
        name = f"holiday/img_{index:02d}.jpg"
        (folder / name).parent.mkdir(exist_ok=True)
        write_image(folder / name, smooth_photo(16, 24, seed=10 + index), quality=30)
        kinds[name] = "jpeg"
    truncated = (folder / "holiday" / "img_00.jpg").read_bytes()
    (folder / "truncated.jpg").write_bytes(truncated[: len(truncated) // 2])
    kinds["truncated.jpg"] = "bad"
    (folder / "readme.jpg").write_text("this is a text file, not a photo")
    kinds["readme.jpg"] = "bad"
    write_image(folder / "scan.tif", smooth_photo(20, 20, seed=4))
    kinds["scan.tif"] = "tiff"
    assert len(kinds) == 20
    return kinds


def _messages(caplog, capsys) -> str:
    """What a run logged and printed (the summary of a failed run is its one-line error)."""
    text = "\n".join(record.getMessage() for record in caplog.records)
    caplog.clear()
    return text + "\n" + capsys.readouterr().err


def test_a_folder_of_mixed_photos_runs_resumes_and_retries(tmp_path, caplog, capsys, fresh_weights):
    photos, out = tmp_path / "photos", tmp_path / "big"
    kinds = _mixed_folder(photos)
    report = tmp_path / "report.json"
    args = [
        "run",
        str(photos),
        "-o",
        str(out),
        "--model",
        str(fresh_weights),
        "--json",
        str(report),
    ]

    caplog.set_level("INFO")
    assert main(args) == 1  # two inputs failed
    err = _messages(caplog, capsys)
    failures = [line for line in err.splitlines() if line.startswith("failed: ")]
    assert sorted(line.split(":")[1].strip() for line in failures) == [
        "readme.jpg",
        "truncated.jpg",
    ]
    assert all(len(line) < 200 for line in failures)
    assert "18 done, 0 skipped, 2 failed" in err and "Traceback" not in err
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert len(written) == 18 and "phone/portrait_x2.png" in written  # sub-folders mirrored
    summary = json.loads(report.read_text())
    assert len(summary["done"]) == 18 and not summary["skipped"]
    assert {f["input"] for f in summary["failed"]} == {"readme.jpg", "truncated.jpg"}

    portrait = out / "phone" / "portrait_x2.png"
    with Image.open(portrait) as image:  # a viewer applies the tag: upright, as the phone showed
        assert ImageOps.exif_transpose(image).size == (80, 112)
        assert image.info["icc_profile"] == display_p3_profile()
        assert image.getexif()[0x0110] == "Canon EOS 5D"
    assert read_image(out / "deep16_x2.png").dtype == np.uint16
    assert read_image(out / "alpha_x2.png").shape == (48, 48, 4)
    assert read_image(out / "scan_x2.tif").shape == (40, 40, 3)
    before = {name: (out / name).stat().st_mtime_ns for name in written}

    assert main(args) == 1  # the rerun skips the 18 and retries the 2 (still bad)
    err = _messages(caplog, capsys)
    assert "0 done, 18 skipped, 2 failed" in err
    assert {name: (out / name).stat().st_mtime_ns for name in written} == before

    write_image(photos / "truncated.jpg", smooth_photo(16, 16), overwrite=True)  # repaired
    (photos / "readme.jpg").unlink()
    assert main(args) == 0
    assert "1 done, 18 skipped, 0 failed" in _messages(caplog, capsys)
    assert kinds["truncated.jpg"] == "bad" and (out / "truncated_x2.png").exists()


def test_apply_orientation_writes_upright_pixels_tagged_1(tmp_path, fresh_weights):
    source = save_camera_jpeg(tmp_path / "portrait.jpg", height=40, width=56, orientation=6)
    output = tmp_path / "upright.png"
    args = ["run", str(source), str(output), "--model", str(fresh_weights)]
    assert main([*args, "--apply-orientation"]) == 0
    with Image.open(output) as image:
        assert image.size == (80, 112) and image.getexif()[0x0112] == 1
        assert image.info["icc_profile"] == display_p3_profile()


def test_exif_a_jpeg_cannot_hold_is_dropped_not_the_photo(tmp_path, caplog, fresh_weights):
    source = tmp_path / "annotated.png"
    exif = Image.Exif()
    exif[0x010F] = "Canon"
    exif.get_ifd(0x8769)[0x9286] = b"ASCII\0\0\0" + b"x" * 70_000  # a 70 kB UserComment
    Image.fromarray(smooth_photo(16, 16)).save(source, exif=exif)
    output = tmp_path / "annotated.jpg"
    with caplog.at_level("WARNING"):
        assert main(["run", str(source), str(output), "--model", str(fresh_weights)]) == 0
    assert read_image(output).shape == (32, 32, 3)
    assert "annotated.png: EXIF not carried" in caplog.text


def test_a_cmyk_jpeg_becomes_rgb_with_a_note(tmp_path, caplog, fresh_weights):
    source = tmp_path / "print.jpg"
    Image.fromarray(smooth_photo(16, 16)).convert("CMYK").save(source, quality=80)
    output = tmp_path / "print_x2.png"
    with caplog.at_level("INFO"):
        assert main(["run", str(source), str(output), "--model", str(fresh_weights)]) == 0
    assert read_image(output).shape == (32, 32, 3)
    notes = [r.getMessage() for r in caplog.records if "CMYK" in r.getMessage()]
    assert notes == ["print.jpg: CMYK image converted to RGB"]


def test_a_grayscale_jpeg_stays_gray_with_a_note(tmp_path, caplog, fresh_weights):
    source = tmp_path / "scan.jpg"
    Image.fromarray(smooth_photo(16, 16, channels=1)[..., 0]).save(source, quality=80)
    with Image.open(source) as image:
        assert image.mode == "L"
    output = tmp_path / "scan_x2.png"
    with caplog.at_level("INFO"):
        assert main(["run", str(source), str(output), "--model", str(fresh_weights)]) == 0
    assert read_image(output).shape == (32, 32)  # one channel in, one out
    notes = [r.getMessage() for r in caplog.records if r.getMessage().startswith("scan.jpg:")]
    assert notes == ["scan.jpg: grayscale image, processed as one channel"]


def test_folder_options_and_empty_plans_are_refused_in_one_line(tmp_path, capsys):
    photo = tmp_path / "a.png"
    write_image(photo, smooth_photo(16, 16))
    assert main(["run", str(photo), str(tmp_path / "b.png"), "--format", "jpg"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line == "napari-cisr: --format applies to a run into a folder (-o/--output-dir)"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["run", str(empty), "-o", str(tmp_path / "out")]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("napari-cisr: no images in ") and "empty" in line
    assert not (tmp_path / "out").exists()


def test_many_inputs_need_an_output_folder(tmp_path, capsys):
    a, b, c = (tmp_path / f"{n}.png" for n in "abc")
    for path in (a, b):
        write_image(path, smooth_photo(16, 16))
    assert main(["run", str(a), str(b), str(c)]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "-o/--output-dir" in line
    assert not c.exists()


def test_batch_to_a_folder_plans_resumes_and_retries_like_run(
    tmp_path, caplog, capsys, fresh_weights
):
    photos, by_run, by_batch = tmp_path / "photos", tmp_path / "run", tmp_path / "batch"
    _mixed_folder(photos)
    model = ["--model", str(fresh_weights)]
    caplog.set_level("INFO")
    assert main(["run", str(photos), "-o", str(by_run), *model]) == 1
    _messages(caplog, capsys)
    batch = ["batch", str(photos), str(by_batch), "--workers", "2", *model]
    assert main(batch) == 1
    err = _messages(caplog, capsys)
    assert "18 done, 0 skipped, 2 failed" in err and "Traceback" not in err
    written = sorted(p.relative_to(by_batch) for p in by_batch.rglob("*") if p.is_file())
    assert written == sorted(p.relative_to(by_run) for p in by_run.rglob("*") if p.is_file())
    for name in written:  # the same network on other thread counts: equal to rounding
        difference = read_image(by_batch / name).astype(int) - read_image(by_run / name)
        assert np.abs(difference).max() <= 1, name
    with Image.open(by_batch / "phone" / "portrait_x2.png") as image:
        assert image.getexif()[0x0112] == 6
        assert image.info["icc_profile"] == display_p3_profile()
    assert main(batch) == 1
    assert "0 done, 18 skipped, 2 failed" in _messages(caplog, capsys)


def test_batch_refuses_folder_options_for_a_zarr_store(tmp_path, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    write_image(photos / "a.png", smooth_photo(16, 16))
    status = main(["batch", str(photos), str(tmp_path / "out.zarr"), "--format", "jpg"])
    assert status == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line == "napari-cisr: --format applies to a folder of images, not to a zarr store"
    assert not (tmp_path / "out.zarr").exists()

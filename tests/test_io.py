"""Tests for napari_cisr.io: reading (the photo formats people have too), info, atomic
writing, the TIFF EXIF sub-IFDs, zarr (no napari, no viewer)."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import dask.array as da
import numpy as np
import pytest
from PIL import Image

import napari_cisr
from napari_cisr import io
from napari_cisr.io import read_image
from napari_cisr.io.info import ijg_luma_table as ijg_table
from napari_cisr.io.info import vp8_quantizer
from napari_cisr.metadata import read_metadata
from photo_files import display_p3_profile, save_camera_jpeg, smooth_photo

DATA = Path(napari_cisr.__file__).parent / "data"


@pytest.fixture
def rgb() -> np.ndarray:
    rng = np.random.default_rng(0)
    base = rng.random((37, 53, 3))
    return (np.cumsum(base, axis=1) / 53 * 255).astype(np.uint8)  # smooth-ish, compressible


# ------------------------------------------------------------------------------- read_image


@pytest.mark.parametrize(
    ("suffix", "kwargs"),
    [(".png", {}), (".tif", {}), (".webp", {"lossless": True, "exact": True})],
)
def test_lossless_roundtrip_rgb_and_rgba(tmp_path, rgb, suffix, kwargs):
    for arr in (rgb, np.dstack([rgb, rgb[..., :1]])):
        path = tmp_path / f"a{arr.shape[2]}{suffix}"
        if suffix == ".tif":
            io.write_image(path, arr)
        else:
            Image.fromarray(arr).save(path, **kwargs)
        out = io.read_image(path)
        assert out.dtype == np.uint8
        np.testing.assert_array_equal(out, arr)


def test_jpeg_grayscale_and_rgb_shapes(tmp_path, rgb):
    io.write_image(tmp_path / "c.jpg", rgb, quality=90)
    io.write_image(tmp_path / "g.jpeg", rgb[..., 0], quality=90)
    c, g = io.read_image(tmp_path / "c.jpg"), io.read_image(tmp_path / "g.jpeg")
    assert c.shape == rgb.shape and c.dtype == np.uint8
    assert g.shape == rgb.shape[:2] and g.dtype == np.uint8
    assert np.abs(c.astype(int) - rgb).mean() < 6  # decoded, not garbage


def test_png16_gray_and_colour_stay_uint16(tmp_path):
    rng = np.random.default_rng(1)
    gray = rng.integers(0, 65536, (21, 34), dtype=np.uint16)
    colour = rng.integers(0, 65536, (21, 34, 3), dtype=np.uint16)
    rgba = rng.integers(0, 65536, (9, 5, 4), dtype=np.uint16)
    for name, arr in {"g.png": gray, "c.png": colour, "a.png": rgba}.items():
        io.write_image(tmp_path / name, arr)
        out = io.read_image(tmp_path / name)
        assert out.dtype == np.uint16
        np.testing.assert_array_equal(out, arr)
    assert io.image_info(tmp_path / "c.png")["bit_depth"] == 16


def _png_filter(row: np.ndarray, prior: np.ndarray, ftype: int, bpp: int) -> np.ndarray:
    """Forward PNG filter of one scanline (the reference definition, byte by byte)."""
    r, b = row.astype(int), prior.astype(int)
    out = np.zeros_like(r)
    for i in range(len(r)):
        a = r[i - bpp] if i >= bpp else 0
        c = b[i - bpp] if i >= bpp else 0
        if ftype == 0:
            pred = 0
        elif ftype == 1:
            pred = a
        elif ftype == 2:
            pred = b[i]
        elif ftype == 3:
            pred = (a + b[i]) // 2
        else:
            p = a + b[i] - c
            pa, pb, pc = abs(p - a), abs(p - b[i]), abs(p - c)
            pred = a if pa <= pb and pa <= pc else (b[i] if pb <= pc else c)
        out[i] = (r[i] - pred) % 256
    return out.astype(np.uint8)


@pytest.mark.parametrize(
    ("channels", "color_type", "shape"), [(3, 2, (10, 7)), (4, 6, (13, 9)), (2, 4, (6, 17))]
)
def test_png16_colour_decoder_handles_every_filter_type(tmp_path, channels, color_type, shape):
    """A 16-bit RGB / RGBA / gray+alpha PNG whose rows use all five filters (in turn, then at
    random) decodes exactly; for RGB, Pillow agrees on the top byte."""
    rng = np.random.default_rng(2)
    h, w = shape
    bpp = 2 * channels
    arr = rng.integers(0, 65536, (h, w, channels), dtype=np.uint16)
    raw_rows = arr.astype(">u2").view(np.uint8).reshape(h, w * bpp)
    prior = np.zeros(w * bpp, np.uint8)
    body = b""
    for y in range(h):
        ftype = y % 5 if y < 5 else int(rng.integers(5))
        body += bytes([ftype]) + _png_filter(raw_rows[y], prior, ftype, bpp).tobytes()
        prior = raw_rows[y]

    def chunk(tag: bytes, payload: bytes) -> bytes:
        crc = zlib.crc32(tag + payload) & 0xFFFFFFFF
        return struct.pack(">I", len(payload)) + tag + payload + struct.pack(">I", crc)

    png = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, color_type, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(body))
        + chunk(b"IEND", b"")
    )
    path = tmp_path / "filters.png"
    path.write_bytes(png)
    out = io.read_image(path)
    if channels == 2:  # gray + alpha is returned as RGBA
        arr = np.concatenate([arr[..., :1]] * 3 + [arr[..., 1:]], axis=-1)
    np.testing.assert_array_equal(out, arr)
    if channels == 3:
        np.testing.assert_array_equal(np.asarray(Image.open(path)), (arr >> 8).astype(np.uint8))


def test_tiff_keeps_dtype_and_stacks(tmp_path):
    rng = np.random.default_rng(3)
    stack = rng.random((3, 11, 13)).astype(np.float32)
    u16 = rng.integers(0, 65536, (11, 13, 3), dtype=np.uint16)
    io.write_image(tmp_path / "s.tif", stack)
    io.write_image(tmp_path / "c.tiff", u16)
    np.testing.assert_array_equal(io.read_image(tmp_path / "s.tif"), stack)
    np.testing.assert_array_equal(io.read_image(tmp_path / "c.tiff"), u16)
    assert io.image_info(tmp_path / "c.tiff")["codec"] == "tiff"


def test_tiff_attributes_round_trip_and_are_tiff_only(tmp_path):
    from napari_cisr.io.info import tiff_attrs

    stack = np.zeros((2, 5, 7), np.float32)
    attrs = {"napari": {"name": "x", "scale": [1.0, 2.0, 2.0], "metadata": {"cisr": {"scale": 2}}}}
    io.write_image(tmp_path / "a.tif", stack, attrs=attrs)
    assert tiff_attrs(tmp_path / "a.tif") == attrs  # tifffile's own "shape" left out
    np.testing.assert_array_equal(io.read_image(tmp_path / "a.tif"), stack)
    io.write_image(tmp_path / "plain.tif", stack)
    assert tiff_attrs(tmp_path / "plain.tif") == {}
    with pytest.raises(ValueError, match=r"a\.png'.*only TIFF stores attributes"):
        io.write_image(tmp_path / "a.png", stack[0].astype(np.uint8), attrs=attrs)
    assert not (tmp_path / "a.png").exists()


def test_grayscale_webp_comes_back_2d_colour_stays_rgb(tmp_path, rgb):
    """WebP has no gray mode: a gray image survives as H×W, a colour one stays H×W×3."""
    gray = rgb[..., 1]
    for quality in (10, 90):
        io.write_image(tmp_path / "g.webp", gray, quality=quality, overwrite=True)
        out = io.read_image(tmp_path / "g.webp")
        assert out.shape == gray.shape
        assert np.abs(out.astype(int) - gray).mean() < 12
    io.write_image(tmp_path / "c.webp", rgb, quality=90)
    assert io.read_image(tmp_path / "c.webp").shape == rgb.shape


def test_palette_and_gray_alpha_png_expand(tmp_path, rgb):
    Image.fromarray(rgb).convert("P").save(tmp_path / "p.png")
    Image.fromarray(rgb[..., 0]).convert("LA").save(tmp_path / "la.png")
    assert io.read_image(tmp_path / "p.png").shape == rgb.shape
    la = io.read_image(tmp_path / "la.png")
    assert la.shape == (*rgb.shape[:2], 4)
    np.testing.assert_array_equal(la[..., 0], rgb[..., 0])


def test_exif_orientation_is_not_applied(tmp_path, rgb):
    """Stored pixel order is kept so the 8×8 JPEG grid stays anchored top-left."""
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° CW on display
    Image.fromarray(rgb).save(tmp_path / "o.jpg", quality=95, exif=exif)
    assert io.read_image(tmp_path / "o.jpg").shape == rgb.shape


@pytest.mark.parametrize(
    ("suffix", "plugin"), [(".avif", None), (".heic", "pillow_heif"), (".jxl", "pillow_jxl")]
)
def test_modern_photo_formats_are_read_with_their_metadata(tmp_path, suffix, plugin):
    if plugin is not None:
        module = pytest.importorskip(plugin)
        if plugin == "pillow_heif":
            module.register_heif_opener()
    pixels = smooth_photo(32, 48)
    path = tmp_path / f"phone{suffix}"
    Image.fromarray(pixels).save(path, quality=90, icc_profile=display_p3_profile())
    image = read_image(path)
    assert image.shape == (32, 48, 3) and image.dtype == np.uint8
    assert np.abs(image.astype(int) - pixels).mean() < 8  # a lossy round trip, not garbage
    profile = read_metadata(path).icc_profile
    if suffix == ".jxl":  # libjxl re-encodes the profile it was given: still an RGB one
        assert profile is not None and profile[16:20] == b"RGB "
    else:
        assert profile == display_p3_profile()


# ------------------------------------------------------------------------------- errors


def _one_line(err: io.ImageReadError) -> str:
    msg = str(err)
    assert "\n" not in msg
    return msg


def test_read_errors_are_one_line_and_name_the_file(tmp_path, rgb):
    good = tmp_path / "good.jpg"
    io.write_image(good, rgb, quality=80)
    cases = {}
    (tmp_path / "empty.jpg").write_bytes(b"")
    cases["empty.jpg"] = "file is empty"
    (tmp_path / "trunc.jpg").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    cases["trunc.jpg"] = "truncated JPEG data"
    (tmp_path / "text.png").write_text("hello, I am not an image\n")
    cases["text.png"] = "not an image"
    cases["missing.webp"] = "no such file"
    io.write_image(tmp_path / "w.webp", rgb, quality=50)
    webp = (tmp_path / "w.webp").read_bytes()
    (tmp_path / "trunc.webp").write_bytes(webp[: len(webp) // 2])
    cases["trunc.webp"] = "truncated WebP data"
    io.write_image(tmp_path / "w.png", rgb)
    png = (tmp_path / "w.png").read_bytes()
    (tmp_path / "trunc.png").write_bytes(png[: len(png) // 2])
    cases["trunc.png"] = "PNG data"
    io.write_image(tmp_path / "w16.png", rgb.astype(np.uint16) * 257)  # decoded by libpng
    png16 = (tmp_path / "w16.png").read_bytes()
    (tmp_path / "trunc16.png").write_bytes(png16[: len(png16) // 2])
    cases["trunc16.png"] = "PNG data"
    io.write_image(tmp_path / "t.tif", rgb)
    tif = (tmp_path / "t.tif").read_bytes()
    (tmp_path / "trunc.tif").write_bytes(tif[: len(tif) // 2])
    cases["trunc.tif"] = "TIFF"
    (tmp_path / "x.bmp").write_bytes(b"BM")
    cases["x.bmp"] = "unsupported file type '.bmp'"

    for name, problem in cases.items():
        with pytest.raises(io.ImageReadError) as info:
            io.read_image(tmp_path / name)
        msg = _one_line(info.value)
        assert msg.startswith(f"cannot read '{tmp_path / name}': "), msg
        assert problem in msg, msg
    assert issubclass(io.ImageReadError, ValueError)


def test_a_missing_optional_decoder_is_named_in_one_line(tmp_path, monkeypatch):
    import sys

    from napari_cisr.io import ImageReadError

    monkeypatch.setitem(sys.modules, "pillow_heif", None)  # as if not installed
    path = tmp_path / "phone.heic"
    path.write_bytes(b"\0\0\0\x18ftypheic" + b"\0" * 64)
    with pytest.raises(ImageReadError) as error:
        read_image(path)
    assert str(error.value) == (
        f"cannot read {str(path)!r}: reading HEIF needs the optional package pillow-heif "
        "(pip install 'napari-cisr[formats]')"
    )


# ------------------------------------------------------------------------------- image_info


@pytest.mark.parametrize("quality", [10, 15, 25, 40, 50, 63, 75, 85, 95])
def test_jpeg_quality_estimate_roundtrips(tmp_path, rgb, quality):
    path = tmp_path / "q.jpg"
    Image.fromarray(rgb).save(path, quality=quality)
    info = io.image_info(path)
    assert info["codec"] == "jpeg"
    assert abs(info["quality"] - quality) <= 1
    assert info["quality_exact"] is True
    assert info["subsampling"] == "4:2:0"


def test_jpeg_quality_estimate_every_quality_and_foreign_table():
    for q in range(1, 101):
        table = ijg_table(q)
        est, exact = io.estimate_jpeg_quality(table)
        # q=1..3 (and 98..100) give identical clamped tables in places; all else is exact
        assert exact and np.array_equal(ijg_table(est), table)
    foreign = np.clip(ijg_table(80) + np.arange(64) % 3, 1, 255)  # not an IJG table
    est, exact = io.estimate_jpeg_quality(foreign)
    assert not exact and 70 <= est <= 85
    with pytest.raises(ValueError, match="64 entries"):
        io.estimate_jpeg_quality([1, 2, 3])


@pytest.mark.parametrize("quality", [1, 5, 10, 25, 40, 44, 45, 50, 63, 75, 85, 95, 100])
def test_webp_quality_estimate_roundtrips(tmp_path, rgb, quality):
    # libwebp's default settings (Pillow's): the first segment's quantiser gives the quality
    # back to within one (neighbouring qualities share an index)
    path = tmp_path / "q.webp"
    Image.fromarray(rgb).save(path, quality=quality)
    info = io.image_info(path)
    assert (info["codec"], info["lossless"], info["quality_exact"]) == ("webp", False, False)
    assert abs(info["quality"] - quality) <= 1


def test_webp_quality_estimate_reads_flat_and_extended_files(tmp_path, rgb):
    flat = np.full((40, 56, 3), 128, np.uint8)  # one segment's worth of content
    Image.fromarray(flat).save(tmp_path / "flat.webp", quality=70)
    assert abs(io.image_info(tmp_path / "flat.webp")["quality"] - 70) <= 1
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 200, np.uint8)])  # VP8X + ALPH chunks first
    Image.fromarray(rgba).save(tmp_path / "alpha.webp", quality=60)
    assert abs(io.image_info(tmp_path / "alpha.webp")["quality"] - 60) <= 1
    Image.fromarray(rgb).save(tmp_path / "l.webp", lossless=True)
    assert "quality" not in io.image_info(tmp_path / "l.webp")
    assert vp8_quantizer(b"\x01" + bytes(40)) is None  # an interframe: no key-frame header


def test_image_info_codecs_from_content(tmp_path, rgb):
    io.write_image(tmp_path / "a.webp", rgb, quality=10)
    Image.fromarray(rgb).save(tmp_path / "l.webp", lossless=True)
    Image.fromarray(rgb[..., 0]).save(tmp_path / "g.jpg", quality=30)
    Image.fromarray(rgb).save(tmp_path / "really_png.jpg", format="PNG")
    webp = io.image_info(tmp_path / "a.webp")
    assert (webp["codec"], webp["lossless"]) == ("webp", False)
    assert io.image_info(tmp_path / "l.webp")["lossless"] is True
    g = io.image_info(tmp_path / "g.jpg")
    assert g["quality"] == 30 and g["subsampling"] is None and g["shape"] == rgb.shape[:2]
    assert io.image_info(tmp_path / "really_png.jpg")["codec"] == "png"


def test_shipped_samples_are_small_and_as_described():
    hr, jpg, webp = DATA / "sample_hr.png", DATA / "sample_x2_q15.jpg", DATA / "sample_x2_q10.webp"
    for f in (hr, jpg, webp):
        assert f.stat().st_size < 60 * 1024
    h, w, _ = io.read_image(hr).shape
    assert 256 <= max(h, w) <= 384
    assert io.read_image(jpg).shape == (h // 2, w // 2, 3)
    assert io.read_image(webp).shape == (h // 2, w // 2, 3)
    info = io.image_info(jpg)
    assert (info["quality"], info["subsampling"]) == (15, "4:2:0")


# ------------------------------------------------------------------------------- write_image


def test_write_image_refuses_to_overwrite_and_leaves_no_temp(tmp_path, rgb):
    path = tmp_path / "out.png"
    io.write_image(path, rgb)
    before = path.read_bytes()
    with pytest.raises(FileExistsError) as info:
        io.write_image(path, rgb[::-1])
    assert "\n" not in str(info.value) and "out.png" in str(info.value)
    assert path.read_bytes() == before
    io.write_image(path, rgb[::-1], overwrite=True)
    np.testing.assert_array_equal(io.read_image(path), rgb[::-1])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]


def test_write_image_failure_keeps_old_file_and_removes_temp(tmp_path, rgb, monkeypatch):
    path = tmp_path / "out.tif"
    io.write_image(path, rgb)
    before = path.read_bytes()
    import tifffile

    def boom(file, *args, **kwargs):
        Path(file).write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(tifffile, "imwrite", boom)
    with pytest.raises(OSError, match="disk full"):
        io.write_image(path, rgb[::-1], overwrite=True)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["out.tif"]


def test_write_image_rejects_what_the_format_cannot_store(tmp_path, rgb):
    with pytest.raises(ValueError, match="float32"):
        io.write_image(tmp_path / "f.png", rgb.astype(np.float32))
    with pytest.raises(ValueError, match="alpha"):
        io.write_image(tmp_path / "a.jpg", np.dstack([rgb, rgb[..., :1]]))
    with pytest.raises(ValueError, match="shape"):
        io.write_image(tmp_path / "s.png", np.zeros((2, 5, 5), np.uint8))
    with pytest.raises(ValueError, match="suffix"):
        io.write_image(tmp_path / "x.bmp", rgb)
    assert list(tmp_path.iterdir()) == []


def test_write_jpeg_webp_and_avif_quality(tmp_path, rgb):
    io.write_image(tmp_path / "q.jpg", rgb, quality=37)
    assert io.image_info(tmp_path / "q.jpg")["quality"] == 37
    for suffix in (".webp", ".avif"):
        low = io.write_image(tmp_path / f"lo{suffix}", rgb, quality=5)
        high = io.write_image(tmp_path / f"hi{suffix}", rgb, quality=95)
        assert low.stat().st_size < high.stat().st_size
        assert io.read_image(high).shape == rgb.shape
        assert io.image_info(high)["codec"] == suffix[1:]


@pytest.mark.parametrize(
    "layout", [{}, {"byteorder": ">"}, {"bigtiff": True}], ids=["classic", "big-endian", "bigtiff"]
)
def test_exif_sub_ifds_are_added_to_any_tiff_layout(tmp_path, layout):
    import tifffile

    from napari_cisr.io.tiff import _add_sub_ifds, _tiff_metadata

    source = save_camera_jpeg(tmp_path / "camera.jpg", height=40, width=56, orientation=1)
    kwargs, sub_ifds = _tiff_metadata(read_metadata(source).for_output(8, 6, 3, upright=False))
    assert set(sub_ifds) == {0x8769, 0x8825}
    path = tmp_path / "out.tif"
    pixels = smooth_photo(6, 8)
    tifffile.imwrite(path, pixels, photometric="rgb", **kwargs, **layout)
    _add_sub_ifds(path, sub_ifds)
    with tifffile.TiffFile(path) as tif:
        tags = tif.pages.first.tags
        assert tags["Make"].value == "Canon"
        assert tags["ExifTag"].value["PixelXDimension"] == 8
        assert tags["GPSTag"].value["GPSLatitudeRef"] == "N"
        np.testing.assert_array_equal(tif.asarray(), pixels)  # the pixels are where they were


# ------------------------------------------------------------------------------- zarr


def test_write_zarr_is_lazy_chunked_and_atomic(tmp_path, rgb):
    calls = []

    def record(block):
        if block.size:  # dask probes with an empty block to infer meta
            calls.append(block.shape)
        return block

    lazy = da.from_array(rgb, chunks=(16, 20, 3)).map_blocks(record, dtype=rgb.dtype)
    path = tmp_path / "x.zarr"
    io.write_zarr(path, lazy, attrs={"note": "hi"})
    assert len(calls) == 9 and max(c[0] for c in calls) == 16  # chunk by chunk
    back = io.open_zarr(path)
    assert isinstance(back, da.Array) and back.chunksize == (16, 20, 3)
    np.testing.assert_array_equal(back.compute(), rgb)
    with pytest.raises(FileExistsError):
        io.write_zarr(path, rgb)
    io.write_zarr(path, rgb[::-1], overwrite=True)
    np.testing.assert_array_equal(io.open_zarr(path).compute(), rgb[::-1])
    assert [p.name for p in tmp_path.iterdir()] == ["x.zarr"]


def test_write_zarr_failure_removes_temp_and_keeps_old(tmp_path, rgb):
    path = tmp_path / "x.zarr"
    io.write_zarr(path, rgb)

    def fail(block):
        raise RuntimeError("chunk failed")

    bad = da.from_array(rgb, chunks=(16, 20, 3)).map_blocks(fail, dtype=rgb.dtype)
    with pytest.raises(RuntimeError, match="chunk failed"):
        io.write_zarr(path, bad, overwrite=True)
    np.testing.assert_array_equal(io.open_zarr(path).compute(), rgb)
    assert [p.name for p in tmp_path.iterdir()] == ["x.zarr"]


def test_write_zarr_regularises_irregular_chunks(tmp_path, rgb):
    lazy = da.from_array(rgb, chunks=((10, 27), (53,), (3,)))
    io.write_zarr(tmp_path / "r.zarr", lazy)
    np.testing.assert_array_equal(io.open_zarr(tmp_path / "r.zarr").compute(), rgb)


def make_ome_zarr(path: Path, image: np.ndarray, levels: int = 3) -> list[np.ndarray]:
    """Write a minimal OME-NGFF 0.4 multiscale group (zarr v2) with 2× pyramid levels."""
    import zarr

    root = zarr.open_group(str(path), mode="w", zarr_format=2)
    pyramid = [image[:: 2**k, :: 2**k] for k in range(levels)]
    for k, level in enumerate(pyramid):
        arr = root.create_array(str(k), shape=level.shape, dtype=level.dtype, chunks=(16, 16))
        arr[:] = level
    root.attrs["multiscales"] = [
        {
            "version": "0.4",
            "axes": [{"name": "y", "type": "space"}, {"name": "x", "type": "space"}],
            "datasets": [
                {
                    "path": str(k),
                    "coordinateTransformations": [{"type": "scale", "scale": [0.5 * 2**k] * 2}],
                }
                for k in range(levels)
            ],
        }
    ]
    return pyramid


def test_open_ome_zarr_multiscale_highest_resolution_first(tmp_path, rgb):
    pyramid = make_ome_zarr(tmp_path / "ome.zarr", rgb[..., 0])
    levels = io.open_zarr(tmp_path / "ome.zarr")
    assert isinstance(levels, list) and len(levels) == 3
    for lvl, ref in zip(levels, pyramid, strict=True):
        assert isinstance(lvl, da.Array)
        np.testing.assert_array_equal(lvl.compute(), ref)
    assert io.ome_multiscales(tmp_path / "ome.zarr")["datasets"][1]["path"] == "1"


def test_open_zarr_errors(tmp_path):
    with pytest.raises(io.ImageReadError, match="no such zarr folder"):
        io.open_zarr(tmp_path / "nope.zarr")
    (tmp_path / "plain.zarr").mkdir()
    with pytest.raises(io.ImageReadError, match="not a zarr"):
        io.open_zarr(tmp_path / "plain.zarr")
    (tmp_path / "g.zarr").mkdir()
    (tmp_path / "g.zarr" / "zarr.json").write_text(
        json.dumps({"zarr_format": 3, "node_type": "group", "attributes": {}})
    )
    with pytest.raises(io.ImageReadError, match="no arrays"):
        io.open_zarr(tmp_path / "g.zarr")


def test_io_does_not_import_napari_or_qt(modules_imported_by):
    banned = ("napari", "qtpy", "PyQt5", "PyQt6", "torch")
    assert modules_imported_by("napari_cisr.io", banned) == []

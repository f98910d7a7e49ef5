"""Training data, the loop (resume, best checkpoint), evaluation and the shipped configs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from napari_cisr.degrade import (
    TRAIN_CONFIGS,
    Degradation,
    bicubic_downscale,
    compress,
    config_name,
    parse_config,
    parse_configs,
)
from napari_cisr.model import variant_config
from napari_cisr.train.data import (
    PatchSampler,
    PatchStream,
    load_clean_photo,
    load_training_photos,
)
from napari_cisr.train.evaluate import evaluate, format_table
from napari_cisr.train.loop import TrainConfig, train
from napari_cisr.weights import load_model, read_weights

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """Two small real photos (scikit-image's astronaut and coffee) as a data folder."""
    from skimage import data

    folder = tmp_path_factory.mktemp("photos")
    for name in ("astronaut", "coffee"):
        Image.fromarray(getattr(data, name)()).save(folder / f"{name}.png")
    return folder


def test_degradations_keep_shape_and_dtype():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (33, 47, 3), dtype=np.uint8)
    assert bicubic_downscale(image, 2).shape == (16, 23, 3)
    for codec, quality in TRAIN_CONFIGS:
        out = compress(image, codec, quality)
        assert out.shape == image.shape and out.dtype == np.uint8
    assert parse_config(config_name("webp", 5)) == ("webp", 5)
    with pytest.raises(ValueError, match="jpeg-q10"):
        parse_config("png-q3")


def test_the_compressions_drawn_are_the_configured_ones():
    assert TrainConfig().compressions == [config_name(c, q) for c, q in TRAIN_CONFIGS]
    rng = np.random.default_rng(1)
    # Noise in 10-px cells: structure JPEG q95 keeps (pixel noise loses its chroma to 4:2:0).
    cells = rng.integers(0, 255, (20, 18, 3), dtype=np.uint8)
    photos = [np.kron(cells, np.ones((10, 10, 1), dtype=np.uint8))]
    errors = {}
    for quality in (10, 95):
        sampler = PatchSampler(photos, scale=2, patch=24, seed=7, configs=[("jpeg", quality)])
        z, y, _ = sampler.batch(8)
        errors[quality] = (z - y).abs().mean().item()
    assert errors[95] < 0.5 * errors[10]


def test_uncompressed_patches_are_the_clean_lr():
    """A "none" in a mixture draws plain super-resolution pairs: z is the clean LR, whatever the
    degradation (double compression included)."""
    assert parse_config("None") == ("none", 100) and config_name("none", 100) == "none"
    assert TrainConfig(compressions=["jpeg-q10", "none"]).compressions[-1] == "none"
    rng = np.random.default_rng(2)
    cells = rng.integers(0, 255, (20, 18, 3), dtype=np.uint8)
    photos = [np.kron(cells, np.ones((10, 10, 1), dtype=np.uint8))]
    sampler = PatchSampler(
        photos, scale=2, patch=24, seed=3, configs=parse_configs(["none"]),
        degradations=["paper", "realistic"],
    )  # fmt: skip
    z, y, x = sampler.batch(6)
    assert torch.equal(z, y) and x.shape == (6, 3, 48, 48)
    image = cells.copy()
    assert np.array_equal(compress(image, "none", 100), cells)
    assert np.array_equal(Degradation(first_quality=90).compress(image, "none", 100), cells)


def test_sampler_is_reproducible_and_shapes_follow_the_scale():
    rng = np.random.default_rng(1)
    photos = [rng.integers(0, 255, (200, 180, 3), dtype=np.uint8)]
    first = PatchSampler(photos, scale=3, patch=24, seed=7).batch(4)
    second = PatchSampler(photos, scale=3, patch=24, seed=7).batch(4)
    for a, b in zip(first, second, strict=True):
        assert torch.equal(a, b)
    z, y, x = first
    assert z.shape == y.shape == (4, 3, 24, 24) and x.shape == (4, 3, 72, 72)
    # z is a compressed version of y, not y itself.
    assert 0 < (z - y).abs().mean() < 0.1


def test_compress_size_64_draws_the_patches_of_the_runs_before_it():
    """The configs of runs before ``compress_size`` pin 64: the sampler must then draw exactly
    what it drew then (a 64² LR region = patch 48 + 16-px margin, same random calls)."""
    rng = np.random.default_rng(4)
    photo = rng.integers(0, 255, (300, 260, 3), dtype=np.uint8)
    sampler = PatchSampler([photo], scale=2, patch=48, seed=9, compress_size=64)
    before = np.random.default_rng(9)  # the pre-compress_size sampling, written out
    for _ in range(3):
        z, y, x = sampler.sample()
        before.choice(1, p=[1.0])
        top, left = before.integers(0, 300 - 128 + 1), before.integers(0, 260 - 128 + 1)
        hr = np.rot90(photo[top : top + 128, left : left + 128], k=before.integers(4))
        if before.integers(2):
            hr = hr[:, ::-1]
        lr = bicubic_downscale(np.ascontiguousarray(hr), 2)
        codec, quality = TRAIN_CONFIGS[before.integers(len(TRAIN_CONFIGS))]
        dy, dx = before.integers(0, 17, size=2)
        assert np.array_equal(z, compress(lr, codec, quality)[dy : dy + 48, dx : dx + 48])
        assert np.array_equal(y, lr[dy : dy + 48, dx : dx + 48])
        assert np.array_equal(x, hr[dy * 2 : (dy + 48) * 2, dx * 2 : (dx + 48) * 2])


@pytest.mark.parametrize(
    ("compress_size", "photo_side", "region"),
    [(192, 900, 192), (192, 300, 100), (64, 900, 64), (10, 900, 40)],
)
def test_sampler_compresses_a_region_around_the_patch(
    monkeypatch, compress_size, photo_side, region
):
    """The codec sees a ``compress_size``² LR region (capped by the photo, at least patch + 16)
    and the patch is that region's decoded pixels at the drawn position: z is a crop of the
    compressed region, not a compressed crop (which WebP codes differently)."""
    import napari_cisr.degrade as degrade_module

    seen = []

    def recording_compress(image, codec, quality, chroma="4:2:0"):
        seen.append(image)
        return compress(image, codec, quality, chroma)

    # The sampler compresses through its Degradation, which calls degrade.compress.
    monkeypatch.setattr(degrade_module, "compress", recording_compress)
    rng = np.random.default_rng(3)
    photo = rng.integers(0, 255, (photo_side, photo_side + 7, 3), dtype=np.uint8)
    sampler = PatchSampler([photo], scale=3, patch=24, seed=2, compress_size=compress_size)
    for _ in range(6):
        z, y, _x = sampler.sample()
        lr = seen[-1]
        assert lr.shape == (region, region, 3)
        # Find the patch in the region: y is the clean LR there, z the decoded pixels there.
        hits = [
            (dy, dx)
            for dy in range(region - 23)
            for dx in range(region - 23)
            if np.array_equal(lr[dy : dy + 24, dx : dx + 24], y)
        ]
        assert len(hits) == 1
        dy, dx = hits[0]
        assert any(
            np.array_equal(compress(lr, codec, quality)[dy : dy + 24, dx : dx + 24], z)
            for codec, quality in TRAIN_CONFIGS
        )


def _first_batches(stream: PatchStream, workers: int, count: int) -> list[torch.Tensor]:
    loader = torch.utils.data.DataLoader(stream, batch_size=None, num_workers=workers)
    batches = iter(loader)
    return [next(batches)[0] for _ in range(count)]


def test_loader_workers_draw_a_reproducible_stream_of_distinct_batches():
    rng = np.random.default_rng(2)
    photos = [rng.integers(0, 255, (160, 170, 3), dtype=np.uint8)]
    stream = PatchStream(photos, scale=2, patch=16, batch=3, seed=5)
    first = _first_batches(stream, workers=2, count=4)
    again = _first_batches(stream, workers=2, count=4)
    for a, b in zip(first, again, strict=True):
        assert torch.equal(a, b)
    # Each worker draws its own patches: no two batches of the stream repeat.
    assert not any(torch.equal(first[i], first[j]) for i in range(4) for j in range(i + 1, 4))


def test_training_photos_come_at_every_downscale_factor(photos):
    paths = [photos / "astronaut.png", photos / "coffee.png"]
    loaded = load_training_photos(paths, [3, 4])
    assert [p.shape for p in loaded] == [(170, 170, 3), (128, 128, 3), (133, 200, 3), (100, 150, 3)]
    assert np.array_equal(loaded[2], load_clean_photo(paths[1], 3))


def test_training_with_loader_workers_and_whole_photo_validation(photos, tmp_path):
    cfg = TrainConfig(
        steps=2, batch=2, patch=24, data=[str(photos)], validation=[str(photos / "coffee.png")],
        exclude=[], output=str(tmp_path / "run"), validate_every=2, checkpoint_every=2,
        validation_crop=0, threads=1, downscale=4, extra_downscales=[5], bf16=False, workers=2,
    )  # fmt: skip
    assert train(cfg).exists()
    record = json.loads((tmp_path / "run" / "log.jsonl").read_text())
    assert record["step"] == 2 and 15 < record["val_psnr"] < 50
    # With loader processes the loop records its wait for batches (how long depends on the
    # machine's load, so no figure or relation between durations is asserted; speed is
    # measured in benchmarks/patch_loader.py).
    assert isinstance(record["data_wait_s"], float) and record["data_wait_s"] >= 0


def test_training_resumes_and_keeps_the_best_checkpoint(photos, tmp_path):
    cfg = TrainConfig(
        steps=2, batch=2, patch=24, data=[str(photos)], validation=[str(photos / "coffee.png")],
        exclude=[], output=str(tmp_path / "run"), validate_every=1, checkpoint_every=1,
        validation_crop=32, threads=1, downscale=2, bf16=False,
    )  # fmt: skip
    best = train(cfg)
    assert best.exists()
    records = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").open()]
    assert [r["step"] for r in records] == [1, 2]
    cfg.steps = 3
    train(cfg)  # resumes from last.pt at step 2
    records = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").open()]
    assert [r["step"] for r in records] == [1, 2, 3]
    state = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    assert state["step"] == 3
    # The final weights, next to the best: what the last step left, key for key.
    _, final = read_weights(tmp_path / "run" / "last.safetensors")
    assert set(final) == set(state["model"])
    assert all(torch.equal(final[key], state["model"][key].to(final[key].dtype)) for key in final)
    model = load_model(best, scale=2)
    assert model.config == variant_config("lite", 2)


def test_a_fine_tuning_that_never_passes_its_init_keeps_the_init(photos, tmp_path):
    from napari_cisr.model import build_model
    from napari_cisr.weights import save_weights

    overrides = {"features": 8, "blocks": 1, "iterations": 1, "search_radius": 1}
    init = tmp_path / "init.safetensors"
    save_weights(build_model(variant_config("lite", 2, **overrides)), init)
    cfg = TrainConfig(
        steps=1, batch=2, patch=24, data=[str(photos)], validation=[str(photos / "coffee.png")],
        exclude=[], output=str(tmp_path / "run"), validate_every=1, checkpoint_every=1,
        validation_crop=32, threads=1, downscale=2, bf16=False, init=str(init), lr=0.0,
        lr_min=0.0, overrides=overrides,
    )  # fmt: skip
    best = train(cfg)
    records = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").open()]
    assert [r["step"] for r in records] == [0, 1] and records[0]["loss"] is None
    # A zero learning rate leaves the weights as they were: step 1 ties step 0, the init stays.
    assert records[1]["val_psnr"] == pytest.approx(records[0]["val_psnr"])
    _, kept = read_weights(best)
    _, initial = read_weights(init)
    assert all(torch.equal(kept[key], initial[key]) for key in initial)


def test_compiled_training_keeps_the_network_keys(photos, tmp_path):
    overrides = {"features": 8, "blocks": 1, "iterations": 1, "search_radius": 1}
    cfg = TrainConfig(
        steps=2, batch=2, patch=24, data=[str(photos)], validation=[], exclude=[],
        output=str(tmp_path / "run"), checkpoint_every=2, threads=1, downscale=4, bf16=False,
        compile=True, overrides=overrides,
    )  # fmt: skip
    best = train(cfg)
    state = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    network = load_model(best, scale=2)  # strict keys: no torch.compile wrapper prefix
    assert state["step"] == 2 and set(state["model"]) == set(network.state_dict())
    assert all(torch.isfinite(t).all() for t in state["model"].values())


def test_evaluation_reports_every_config_next_to_bicubic(photos, fresh_weights):
    report = evaluate([photos], 2, fresh_weights, [("jpeg", 10), ("webp", 30)], downscale=3)
    assert set(report["configs"]) == {"jpeg-q10", "webp-q30"}
    for row in report["configs"].values():
        assert 15 < row["bicubic_psnr"] < 50 and 0 < row["ssim"] <= 1
        assert row["gain"] == pytest.approx(row["psnr"] - row["bicubic_psnr"])
    assert "mean of 2 of the ten" in format_table(report)  # two configurations were chosen
    assert report["mean"]["gain"] == pytest.approx(
        np.mean([r["gain"] for r in report["configs"].values()])
    )
    # Each photo's own scores, whose mean is the config's row.
    assert set(report["per_photo"]) == {"astronaut.png", "coffee.png"}
    for label, row in report["configs"].items():
        own = [report["per_photo"][photo][label] for photo in report["per_photo"]]
        assert own[0]["psnr"] != own[1]["psnr"]
        for key in ("bicubic_psnr", "psnr", "ssim", "gain"):
            assert row[key] == pytest.approx(np.mean([scores[key] for scores in own]))
    table = format_table(report)
    coffee = report["per_photo"]["coffee.png"]
    least = min(coffee, key=lambda label: coffee[label]["gain"])
    mean = np.mean([r["gain"] for r in coffee.values()])
    assert f"| coffee.png | {mean:+.2f} | {coffee[least]['gain']:+.2f} ({least}) |" in table


def test_evaluation_keeps_photos_of_the_same_name_apart(photos, fresh_weights, tmp_path):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "coffee.png").write_bytes((photos / "coffee.png").read_bytes())
    folders = [tmp_path / "a", tmp_path / "b"]
    report = evaluate(folders, 2, fresh_weights, [("jpeg", 10)], downscale=4)
    expected = [str(tmp_path / "a" / "coffee.png"), str(tmp_path / "b" / "coffee.png")]
    assert report["photos"] == expected and list(report["per_photo"]) == expected


def test_evaluation_reports_each_source_the_mean_of_its_photos(photos, fresh_weights, tmp_path):
    from skimage import data

    # A photo's source is its folder: two sources, one of two photos and one of one.
    (tmp_path / "web").mkdir()
    for name in ("astronaut.png", "coffee.png"):
        (tmp_path / "web" / name).write_bytes((photos / name).read_bytes())
    (tmp_path / "scans").mkdir()
    Image.fromarray(data.chelsea()).save(tmp_path / "scans" / "chelsea.png")
    sources = [tmp_path / "web", tmp_path / "scans"]
    report = evaluate(sources, 2, fresh_weights, [("jpeg", 10), ("webp", 30)], downscale=4)
    assert {s: r["photos"] for s, r in report["sources"].items()} == {"scans": 1, "web": 2}
    per_photo = report["per_photo"]
    web = [
        np.mean([r["gain"] for r in per_photo[name].values()])
        for name in ("astronaut.png", "coffee.png")
    ]
    assert report["sources"]["web"]["gain"] == pytest.approx(np.mean(web))
    chelsea = per_photo["chelsea.png"]
    assert report["sources"]["scans"]["least_gain"] == pytest.approx(
        min(r["gain"] for r in chelsea.values())
    )
    assert f"| web | 2 | {np.mean(web):+.2f} |" in format_table(report)


CONFIGS = REPO / "experiments" / "configs"


@pytest.mark.parametrize(
    "path", sorted(CONFIGS.rglob("*.json")), ids=lambda p: str(p.relative_to(CONFIGS))
)
def test_shipped_training_configs_are_valid(path, heldout_photos):
    cfg = TrainConfig.from_json(path)
    config = variant_config(cfg.variant, cfg.scale, **cfg.overrides)
    assert config.scale == cfg.scale
    # No held-out photo is trained or validated on, in either layout of data/: the manifest's
    # (held-out photos only under data/heldout/) or the earlier one (the paper's six in
    # data/photos).
    heldout_folders = {str(photo.parent) for photo in heldout_photos}
    assert not heldout_folders & {str(Path(folder)) for folder in cfg.data}
    heldout_stems = {photo.stem for photo in heldout_photos}
    assert not {Path(v).stem for v in cfg.validation} & heldout_stems
    assert {"Storm", "LadyBird", "YellowFlower"} <= set(cfg.exclude)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ({"distance": "huber"}, "distance must be one of"),
        ({"distanse": "l2"}, "distanse"),
        ({"synthetic_share": 1.0}, "synthetic_share must be in [0, 1), got 1.0"),
        ({"synthetic_images": 0}, "synthetic_images must be at least 1, got 0"),
        ({"compressions": ["jpeg-q10", "png-q5"]}, "bad compression config 'png-q5'"),
        ({"compressions": ["webp-q101"]}, "quality must be in 1-100, got 'webp-q101'"),
        ({"compressions": []}, "compressions must name at least one"),
    ],
)
def test_a_bad_training_config_is_refused_naming_its_file(tmp_path, content, problem):
    path = tmp_path / "bad-config.json"
    path.write_text(json.dumps(content))
    with pytest.raises(ValueError, match=r"bad-config\.json") as error:
        TrainConfig.from_json(path)
    assert problem in str(error.value)


def _trained_looking(config):
    from napari_cisr.model import build_model

    torch.manual_seed(0)
    network = build_model(config).eval()
    for parameter in network.parameters():  # nothing left at zero, as after training
        torch.nn.init.normal_(parameter, std=0.05)
    return network


def test_a_deeper_network_starts_from_shallower_weights_with_the_same_output(tmp_path):
    from napari_cisr.model import build_model
    from napari_cisr.model.backbone import load_into_larger

    small = {"features": 8, "blocks": 1, "iterations": 2, "search_radius": 1}
    shallow = _trained_looking(variant_config("lite", 2, **small))
    deeper = build_model(variant_config("lite", 2, **{**small, "blocks": 3})).eval()
    # 2 blocks added in ARM and in REM, nothing widened
    assert load_into_larger(deeper, shallow.state_dict()) == (4, 0)
    z = torch.rand(1, 3, 20, 22)
    with torch.no_grad():
        assert torch.allclose(deeper(z).result, shallow(z).result, atol=1e-6)
    narrower = build_model(variant_config("lite", 2, **{**small, "features": 4}))
    with pytest.raises(ValueError, match="more than width"):
        load_into_larger(deeper, narrower.state_dict())


@pytest.mark.parametrize("scale", [2, 4])
def test_a_wider_and_deeper_network_starts_with_the_same_output_and_learns(scale):
    from napari_cisr.model import build_model
    from napari_cisr.model.backbone import load_into_larger

    small = {"features": 8, "blocks": 1, "iterations": 2, "search_radius": 1, "reduction": 4}
    narrow = _trained_looking(variant_config("lite", scale, **small))
    # 8 -> 16 features also widens channel attention's squeeze (2 -> 4 hidden units)
    wide = build_model(variant_config("lite", scale, **{**small, "features": 16, "blocks": 2}))
    added, widened = load_into_larger(wide.eval(), narrow.state_dict(), wider=True)
    assert added == 2 and widened > 0
    z = torch.rand(2, 3, 14, 17)
    with torch.no_grad():
        assert torch.allclose(wide(z).result, narrow(z).result, atol=1e-5)
    # The new channels are not stuck: the zeroed weights that read them get a gradient (the
    # new channels carry fresh, non-zero activations), so the first step starts using them.
    wide.train()
    wide(z).result.square().mean().backward()
    assert wide.arm.tail.weight.grad[:, 8:].abs().sum() > 0
    assert wide.rem.tail.weight.grad[:, 8:].abs().sum() > 0
    with pytest.raises(ValueError, match="more than width"):
        load_into_larger(wide, narrow.state_dict())  # wider=False


def test_growing_refuses_a_network_of_another_design():
    from napari_cisr.model import build_model
    from napari_cisr.model.backbone import load_into_larger

    small = {"features": 8, "blocks": 1, "iterations": 2, "search_radius": 1}
    wider = build_model(variant_config("lite", 2, **{**small, "features": 16}))
    x3 = build_model(variant_config("lite", 3, **small))  # other upsampler shapes
    with pytest.raises(ValueError, match="more than width"):
        load_into_larger(wider, x3.state_dict(), wider=True)
    deeper = build_model(variant_config("lite", 2, **{**small, "blocks": 2}))
    shallow = build_model(variant_config("lite", 2, **small))
    with pytest.raises(ValueError, match="lack 2 RCABs"):
        load_into_larger(deeper, shallow.state_dict(), deeper=False)


def test_learning_rate_warms_up_linearly_then_decays_by_cosine():
    from napari_cisr.train.loop import learning_rate

    cfg = TrainConfig(steps=110, lr=1e-3, lr_min=1e-5, warmup=10)
    assert learning_rate(cfg, 0) == pytest.approx(1e-4)
    assert learning_rate(cfg, 9) == pytest.approx(1e-3)
    assert learning_rate(cfg, 10) == pytest.approx(1e-3)
    assert learning_rate(cfg, 60) == pytest.approx(1e-5 + 0.5 * (1e-3 - 1e-5))
    assert learning_rate(cfg, 110) == pytest.approx(1e-5)
    no_warmup = TrainConfig(steps=100, lr=1e-3, lr_min=0.0)
    assert learning_rate(no_warmup, 0) == pytest.approx(1e-3)  # as before warm-up existed
    assert learning_rate(no_warmup, 50) == pytest.approx(5e-4)


@pytest.mark.parametrize("native", [False, True])
def test_bf16_on_a_cpu_without_native_bfloat16_is_trained_as_configured_with_a_warning(
    photos, tmp_path, monkeypatch, caplog, native
):
    """Emulated bfloat16 convolutions are many times slower than float32: the run says so and
    how to train in float32 instead, but keeps the config's recipe."""
    import napari_cisr.runtime

    monkeypatch.setattr(napari_cisr.runtime, "native_bfloat16", lambda device: native)
    overrides = {"features": 8, "blocks": 1, "iterations": 1, "search_radius": 1}
    cfg = TrainConfig(
        steps=1, batch=2, patch=24, data=[str(photos)], validation=[], exclude=[],
        output=str(tmp_path / "run"), checkpoint_every=1, threads=1, downscale=4, bf16=True,
        device="cpu", overrides=overrides,
    )  # fmt: skip
    with caplog.at_level("WARNING", logger="napari_cisr.train.loop"):
        train(cfg)
    warned = [r.getMessage() for r in caplog.records if "without native bfloat16" in r.message]
    assert len(warned) == (0 if native else 1)
    if warned:
        assert '"bf16": false' in warned[0]
    assert (tmp_path / "run" / "last.safetensors").is_file()

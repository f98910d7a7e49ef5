"""The same computations on a CUDA device as on the CPU (skipped where there is no GPU).

CI has no GPU; these run on the GPU machine that is sometimes lent to the project
(`scripts/gpu_session.sh`).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from napari_cisr.degrade import bicubic_downscale, compress
from napari_cisr.metrics import psnr_y
from napari_cisr.model import build_model, variant_config
from napari_cisr.runtime import resolve_precision
from napari_cisr.tiling import choose_tile
from napari_cisr.weights import load_model

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.fixture(scope="module")
def compressed():
    """A 96×128 JPEG-q20 LR image from a real photo."""
    from skimage import data

    lr = bicubic_downscale(data.astronaut()[::2, ::2][:192, :256], 2)
    return compress(np.ascontiguousarray(lr), "jpeg", 20)


def test_auto_precision_is_bfloat16_on_cuda():
    assert resolve_precision("auto", torch.device("cuda")) == torch.bfloat16


def test_network_forward_matches_the_cpu():
    torch.manual_seed(0)
    model = build_model(variant_config("lite", 2)).eval()
    z = torch.rand(1, 3, 40, 48)
    with torch.no_grad():
        on_cpu = model(z).result
        on_gpu = model.cuda()(z.cuda()).result.cpu()
    assert on_gpu.shape == (1, 3, 80, 96)
    assert torch.allclose(on_gpu, on_cpu, atol=2e-3)


@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_super_resolve_on_cuda_matches_the_cpu(compressed, precision):
    from napari_cisr import super_resolve

    reference = super_resolve(compressed, 2, tile=0, device="cpu", precision="float32")
    on_gpu = super_resolve(compressed, 2, tile=0, device="cuda", precision=precision)
    assert on_gpu.shape == reference.shape and on_gpu.dtype == np.uint8
    # float32 differs by TF32 convolutions and rounding; bfloat16 by its 8-bit mantissa.
    assert psnr_y(on_gpu, reference) > (50 if precision == "float32" else 40)


def test_tiled_on_cuda_agrees_with_whole_image(compressed):
    from napari_cisr import super_resolve

    whole = super_resolve(compressed, 2, tile=0, device="cuda", precision="float32")
    tiled = super_resolve(compressed, 2, tile=64, device="cuda", precision="float32")
    assert psnr_y(tiled, whole) > 45


def test_automatic_tile_on_cuda_comes_from_gpu_memory():
    config = load_model("lite", scale=2).config
    assert choose_tile(config, (512, 512), "cuda") is None  # fits: one pass
    budget = 256 * 2**20
    tile = choose_tile(config, (8192, 8192), "cuda", budget=budget)
    assert tile is not None and 64 <= tile < 8192


def test_training_runs_on_cuda_with_bf16_and_loader_workers(tmp_path):
    from PIL import Image
    from skimage import data

    from napari_cisr.train.loop import TrainConfig, train

    Image.fromarray(data.coffee()).save(tmp_path / "coffee.png")
    Image.fromarray(data.chelsea()).save(tmp_path / "chelsea.png")
    cfg = TrainConfig(
        steps=3, batch=4, patch=24, data=[str(tmp_path)],
        validation=[str(tmp_path / "chelsea.png")], exclude=[], output=str(tmp_path / "run"),
        validate_every=3, checkpoint_every=3,
        validation_crop=0, downscale=2, bf16=True, device="cuda", workers=2,
    )  # fmt: skip
    best = train(cfg)
    assert best.exists()
    record = json.loads((tmp_path / "run" / "log.jsonl").read_text().splitlines()[-1])
    assert record["step"] == 3 and np.isfinite(record["val_psnr"])
    state = torch.load(tmp_path / "run" / "last.pt", weights_only=True, map_location="cpu")
    assert all(torch.isfinite(t).all() for t in state["model"].values())

"""The training loop: Eq. (8) end to end through the unfolding, Adam, cosine schedule."""

from __future__ import annotations

import json
import logging
import math
import time
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from napari_cisr.degrade import (
    TRAIN_CONFIGS,
    Codec,
    bicubic_downscale,
    compress,
    config_name,
    mixture,
    parse_configs,
)
from napari_cisr.io import atomic_target
from napari_cisr.metrics import psnr_y
from napari_cisr.model import CISRPSI, CISRConfig, build_model, variant_config
from napari_cisr.model.backbone import load_into_larger
from napari_cisr.train.data import (
    COMPRESS_SIZE,
    PatchSampler,
    PatchStream,
    compressed_region,
    list_photos,
    load_clean_photo,
    load_training_photos,
    to_tensor,
)
from napari_cisr.train.synthetic import dead_leaves_set
from napari_cisr.weights import save_weights

log = logging.getLogger(__name__)

#: Configurations used for the quick validation that selects the best checkpoint.
VALIDATION_CONFIGS: tuple[tuple[Codec, int], ...] = (
    ("jpeg", 10), ("jpeg", 30), ("jpeg", 50), ("webp", 10), ("webp", 30),
)  # fmt: skip


#: Squared error added before the log in the "psnr" distance: a patch's score saturates near
#: 50 dB, so that flat patches bicubic already gets right cannot dominate the gradient.
_PSNR_FLOOR = 1e-5


def _negative_psnr(difference: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of 10·log10(MSE + floor) per sample: minus its mean PSNR in dB."""
    per_sample = difference.square().flatten(1).mean(1)
    return 10.0 * torch.log10(per_sample + _PSNR_FLOOR).mean()


#: Eq. (8)'s distance, by ``TrainConfig.distance``.
_DISTANCES = {
    "l1": lambda difference: difference.abs().mean(),
    "l2": lambda difference: difference.square().mean(),
    "psnr": _negative_psnr,
}


def _distance_function(name: str):
    try:
        return _DISTANCES[name]
    except KeyError:
        raise ValueError(f"distance must be one of {sorted(_DISTANCES)}, got {name!r}") from None


@dataclass
class TrainConfig:
    """Everything a training run needs; saved into its output folder as ``train_config.json``."""

    variant: str = "lite"
    scale: int = 2
    steps: int = 5000
    batch: int = 16
    patch: int = 48
    #: LR side of the region compressed around each patch (``PatchSampler``): real images are
    #: compressed whole, and WebP codes a 64² crop differently from a photo. 64 = the runs
    #: before this option (patch 48 + the 16-px grid margin).
    compress_size: int = COMPRESS_SIZE
    lr: float = 5e-4
    lr_min: float = 1e-5
    #: Steps of linear warm-up to ``lr`` before the cosine decay: a run that starts from
    #: trained weights with a fresh Adam otherwise moves every weight by about ``lr`` on its
    #: first step (Adam's first update is ±lr whatever the gradient's size).
    warmup: int = 0
    gamma: float = 1.0
    #: The distance in Eq. (8): "l1" as in the paper; "l2" (mean squared error, which PSNR
    #: measures) for a final fine-tuning schedule; "psnr" (minus each patch's PSNR, averaged:
    #: every patch counts by its error in dB, as every photo and configuration counts in the
    #: evaluation's mean gain, instead of by its squared error, which low qualities dominate).
    distance: str = "l1"
    #: Folders of clean photos. The default is the training share of Debian's mate-backgrounds
    #: as ``scripts/fetch_photos.sh`` lays it out (its held-out photos are elsewhere).
    data: list[str] = field(default_factory=lambda: ["data/photos-mate"])
    exclude: list[str] = field(default_factory=list)
    validation: list[str] = field(default_factory=list)
    downscale: int = 3
    #: How each patch's LR input is made: names in ``napari_cisr.degrade.DEGRADATIONS``
    #: ("paper": antialiased bicubic, 4:2:0; "realistic": other kernels, 4:4:4 chroma, double
    #: compression), drawn uniformly per patch. Validation keeps the paper's.
    degradations: list[str] = field(default_factory=lambda: ["paper"])
    #: The compression configurations each patch's LR input is drawn from, uniformly, as
    #: ``napari-cisr eval --configs`` labels ("jpeg-q10", "webp-q5"); default: the paper's
    #: ten. Lighter ones (what most users' photos have) may be added; validation keeps its five.
    compressions: list[str] = field(
        default_factory=lambda: [config_name(codec, quality) for codec, quality in TRAIN_CONFIGS]
    )
    #: The training photos are also used downscaled by these factors: the same scenes at other
    #: scales, more varied patches from a few photos (validation stays at ``downscale``).
    extra_downscales: list[int] = field(default_factory=list)
    #: Share of the patches cut from synthetic textured dead-leaves images (Achddou et al.
    #: 2021; ``train.synthetic``) instead of photos: 0 = photos only.
    synthetic_share: float = 0.0
    #: How many synthetic images are generated, once per run from ``seed`` and coloured from
    #: the training photos, when ``synthetic_share`` > 0; each is 1.5 compressed regions wide.
    synthetic_images: int = 64
    output: str = "runs/lite-x2"
    seed: int = 0
    threads: int = 0
    bf16: bool = True
    device: str = "auto"
    validate_every: int = 250
    #: LR side of the centred validation crop; 0 validates on the whole photos.
    validation_crop: int = 128
    checkpoint_every: int = 250
    init: str | None = None
    #: ``init`` holds a network with fewer RCABs per group than this one (e.g. ``lite`` weights
    #: for ``overrides: {"blocks": 8}``): the added blocks start as the identity.
    init_deeper: bool = False
    #: ``init`` holds a network with fewer features (e.g. ``overrides: {"features": 64}``):
    #: old channels keep their weights and ignore the new ones (``load_into_larger``).
    init_wider: bool = False
    #: DataLoader processes drawing patches (0: drawn in the training process, as on the CPU).
    workers: int = 0
    #: Train through ``torch.compile`` (lite x2 on 2 CPU cores: 0.48 vs 0.63 s/step after about
    #: two minutes of compilation; benchmarks/train_step_time.py --compile).
    compile: bool = False
    overrides: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Refuse a bad config before any photo is loaded, naming the field.
        _distance_function(self.distance)
        for name in self.degradations:
            mixture(name)
        if not self.compressions:
            raise ValueError("compressions must name at least one configuration")
        parse_configs(self.compressions)
        if self.scale not in (2, 3, 4):
            raise ValueError(f"scale must be 2, 3 or 4, got {self.scale}")
        positive = ("steps", "batch", "patch", "downscale", "validate_every", "checkpoint_every")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("warmup", "workers", "threads", "validation_crop"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative, got {getattr(self, name)}")
        if not 0 <= self.lr_min <= self.lr:
            raise ValueError(f"need 0 <= lr_min <= lr, got lr {self.lr}, lr_min {self.lr_min}")
        if not 0 <= self.synthetic_share < 1:
            raise ValueError(f"synthetic_share must be in [0, 1), got {self.synthetic_share}")
        if self.synthetic_images < 1:
            raise ValueError(f"synthetic_images must be at least 1, got {self.synthetic_images}")
        if any(factor < 1 for factor in self.extra_downscales):
            raise ValueError(f"extra_downscales must be at least 1, got {self.extra_downscales}")

    @classmethod
    def from_json(cls, path: str | Path) -> TrainConfig:
        """Read a config file; keys starting with "_" are comments."""
        data = json.loads(Path(path).read_text())
        try:
            return cls(**{key: value for key, value in data.items() if not key.startswith("_")})
        except (TypeError, ValueError) as error:  # an unknown key, a bad value
            raise ValueError(f"{path}: {error}") from None


def learning_rate(cfg: TrainConfig, step: int) -> float:
    """Learning rate of step ``step`` (0-based): linear warm-up over ``cfg.warmup`` steps from
    ``cfg.lr / warmup`` to ``cfg.lr``, then cosine decay to ``cfg.lr_min`` at ``cfg.steps``."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    progress = min((step - cfg.warmup) / max(cfg.steps - cfg.warmup, 1), 1.0)
    return cfg.lr_min + 0.5 * (cfg.lr - cfg.lr_min) * (1 + math.cos(math.pi * progress))


def psi_loss(
    model_out_y: list[torch.Tensor],
    model_out_x: list[torch.Tensor],
    y: torch.Tensor,
    x: torch.Tensor,
    rho: tuple[float, ...],
    gamma: float,
    distance: str = "l1",
) -> torch.Tensor:
    """Eq. (8): (1/J) Σ_j ρ_j (‖ŷ_j − y‖₁ + γ ‖x̂_j − x‖₁), L1 as the mean absolute error.

    ``distance="l2"`` replaces the mean absolute error with the mean squared error;
    ``distance="psnr"`` with 10·log10 of each sample's mean squared error (plus 1e-5), averaged
    over the batch (minus the mean per-patch PSNR in dB; negative).
    """
    error = _distance_function(distance)
    terms = [
        weight * (error(y_hat.float() - y) + gamma * error(x_hat.float() - x))
        for weight, y_hat, x_hat in zip(rho, model_out_y, model_out_x, strict=True)
    ]
    return torch.stack(terms).sum() / len(terms)


def _validation_set(
    photos: list[np.ndarray], scale: int, crop: int
) -> list[tuple[torch.Tensor, np.ndarray]]:
    """(z, HR uint8) pairs: a centred crop of each photo (``crop`` ≤ 0: the whole photo, trimmed
    to a multiple of ``scale``) under each validation config."""
    pairs = []
    for photo in photos:
        if crop > 0:
            height = width = crop * scale
        else:
            height, width = (photo.shape[0] // scale) * scale, (photo.shape[1] // scale) * scale
        top, left = (photo.shape[0] - height) // 2, (photo.shape[1] - width) // 2
        hr = np.ascontiguousarray(photo[top : top + height, left : left + width])
        lr = bicubic_downscale(hr, scale)
        for codec, quality in VALIDATION_CONFIGS:
            pairs.append((to_tensor([compress(lr, codec, quality)]), hr))
    return pairs


@torch.no_grad()
def validate(
    model: CISRPSI, pairs: list[tuple[torch.Tensor, np.ndarray]], device: torch.device
) -> float:
    """Mean Y-PSNR (shave = scale) of x̂_J over the validation pairs."""
    model.eval()
    scores = []
    for z, hr in pairs:
        out = model(z.to(device)).result.clamp(0, 1)
        image = out[0].permute(1, 2, 0).float().cpu().numpy()
        scores.append(psnr_y(image, hr, shave=model.scale))
    model.train()
    return float(np.mean(scores))


def _record_validation(
    model: CISRPSI,
    val_pairs: list[tuple[torch.Tensor, np.ndarray]],
    device: torch.device,
    out: Path,
    step: int,
    loss: torch.Tensor | None,
    elapsed: float,
    best: float,
    data_wait: float | None = None,
) -> float:
    """Validate, append the record to ``log.jsonl`` (``loss`` and ``data_wait`` None before the
    first step), save ``best.safetensors`` if it is the best so far; returns the new best."""
    score = validate(model, val_pairs, device)
    record = {
        "step": step,
        "loss": None if loss is None else float(loss),
        "val_psnr": score,
        "elapsed_s": round(elapsed, 1),
        # Of elapsed_s, the time the loop waited for training batches: near elapsed_s, the
        # patch pipeline (not the device) sets the pace, and more loader workers would help.
        "data_wait_s": None if data_wait is None else round(data_wait, 3),
    }
    with open(out / "log.jsonl", "a") as handle:
        handle.write(json.dumps(record) + "\n")
    if score > best:
        best = score
        save_weights(model, out / "best.safetensors")
    log.info("validation at step %d: %.3f dB (best %.3f dB)", step, score, best)
    return best


def train(cfg: TrainConfig) -> Path:
    """Train (or resume) a model; returns the path of the best weights (safetensors).

    The output folder holds ``last.pt`` (resumable checkpoint: model, optimiser, step, RNG),
    ``best.safetensors`` (the best validation PSNR so far; a run with ``init`` validates those
    weights first, at step 0, so they are the score to beat), ``last.safetensors`` (the weights
    of the last step, written when the run completes), ``train_config.json`` and
    ``log.jsonl`` (one record per validation: step, loss, validation PSNR, seconds since the
    start and, of those, seconds spent waiting for training batches).
    """
    from napari_cisr.runtime import native_bfloat16, resolve_device
    from napari_cisr.weights import read_weights

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = resolve_device(cfg.device)
    out = Path(cfg.output)
    out.mkdir(parents=True, exist_ok=True)
    (out / "train_config.json").write_text(json.dumps(asdict(cfg), indent=2))

    model_config: CISRConfig = variant_config(cfg.variant, cfg.scale, **cfg.overrides)
    model = build_model(model_config).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    step, best = 0, -math.inf
    checkpoint = out / "last.pt"
    if checkpoint.exists():
        try:
            state = torch.load(checkpoint, map_location=device, weights_only=True)
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            step, best = int(state["step"]), float(state["best"])
        except Exception as error:  # truncated, another run's network, not a checkpoint at all
            if not zipfile.is_zipfile(checkpoint):  # torch.save writes a zip archive
                reason = "not a PyTorch checkpoint: truncated, or another kind of file"
            else:
                reason = (str(error).strip().splitlines() or [type(error).__name__])[0][:160]
            raise ValueError(
                f"{checkpoint}: cannot resume from it ({reason}); move it away to start over"
            ) from None
        log.info("resumed %s at step %d (best %.3f dB)", checkpoint, step, best)
    elif cfg.init:
        _, init_state = read_weights(cfg.init)
        if cfg.init_deeper or cfg.init_wider:
            added, widened = load_into_larger(
                model, init_state, deeper=cfg.init_deeper, wider=cfg.init_wider
            )
            log.info(
                "initialised from %s: %d identity blocks added, %d tensors widened",
                cfg.init, added, widened,
            )  # fmt: skip
        else:
            model.load_state_dict(init_state, strict=True)
            log.info("initialised from %s", cfg.init)

    excluded = [Path(v).stem for v in cfg.validation] + list(cfg.exclude)
    train_paths = list_photos(cfg.data, exclude=excluded)
    if not train_paths:
        raise ValueError(f"no training photos found in {cfg.data}")
    log.info(
        "training on %d photos ÷ %s: %s",
        len(train_paths), [cfg.downscale, *cfg.extra_downscales], [p.name for p in train_paths],
    )  # fmt: skip
    photos = load_training_photos(train_paths, [cfg.downscale, *cfg.extra_downscales])
    synthetic = []
    if cfg.synthetic_share:
        side = compressed_region(cfg.patch, cfg.compress_size) * cfg.scale * 3 // 2
        synthetic = dead_leaves_set(cfg.synthetic_images, side, photos, cfg.seed)
        log.info(
            "%d synthetic dead-leaves images of %d² px for %.0f %% of the patches",
            len(synthetic), side, 100 * cfg.synthetic_share,
        )  # fmt: skip
    # Reseed from the step so that a resumed run draws new patches rather than replaying.
    seed = cfg.seed * 1_000_003 + step
    if cfg.workers > 0:
        loader = torch.utils.data.DataLoader(
            PatchStream(
                photos, cfg.scale, cfg.patch, cfg.batch, seed, cfg.compress_size,
                cfg.degradations, synthetic, cfg.synthetic_share,
            ),
            batch_size=None, num_workers=cfg.workers, pin_memory=device.type == "cuda",
            prefetch_factor=4, persistent_workers=True,
        )  # fmt: skip
        batches = iter(loader)
    else:
        sampler = PatchSampler(
            photos, cfg.scale, cfg.patch, seed=seed, compress_size=cfg.compress_size,
            degradations=cfg.degradations, synthetic=synthetic,
            synthetic_share=cfg.synthetic_share,
            configs=parse_configs(cfg.compressions),
        )  # fmt: skip
        batches = iter(lambda: sampler.batch(cfg.batch), None)
    if device.type == "cuda":
        # Fixed patch shapes: let cuDNN pick the fastest convolution algorithms once.
        torch.backends.cudnn.benchmark = True
    val_photos = [load_clean_photo(p, cfg.downscale) for p in list_photos(cfg.validation)]
    val_pairs = _validation_set(val_photos, cfg.scale, cfg.validation_crop)

    # bfloat16 autocast on both CPU (AVX512-BF16) and CUDA: its fp32 exponent range needs no
    # gradient scaler, unlike float16.
    use_autocast = cfg.bf16 and device.type in ("cpu", "cuda")
    if use_autocast and not native_bfloat16(device):
        # Emulated bfloat16 convolutions (x2 stage 42 on a 2-core AVX2 CPU, 2026-12-07: no
        # step-100 record after 18 minutes, where stage 41 with AVX512-BF16 took 3.6). Kept
        # as configured: the config is the recipe, and a silent switch would change it.
        log.warning(
            "bf16 on %s without native bfloat16 (AVX512-BF16 or AMX): each step is many times "
            'slower than in float32; set "bf16": false to train in float32',
            device,
        )
    # The compiled module shares the parameters; validation and checkpoints use the plain one
    # (other image shapes would recompile; state-dict keys stay those of the network).
    forward = torch.compile(model) if cfg.compile else model
    if val_pairs and step == 0 and cfg.init:
        # The weights a run starts from are the score to beat: a fine-tuning that never passes
        # them leaves them as best.safetensors, and log.jsonl says so (step 0).
        best = _record_validation(model, val_pairs, device, out, step, None, 0.0, -math.inf)
    model.train()
    started, start_step, running, data_wait = time.perf_counter(), step, None, 0.0
    while step < cfg.steps:
        # Only the host's wait for the next batch: a copy to the GPU can wait for its queue too.
        fetching = time.perf_counter()
        batch = next(batches)
        data_wait += time.perf_counter() - fetching
        z, y, x = (t.to(device, non_blocking=True) for t in batch)
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(cfg, step)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_autocast):
            result = forward(z)
            loss = psi_loss(
                result.y_hat, result.x_hat, y, x, model_config.loss_weights, cfg.gamma, cfg.distance
            )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
        # A device tensor: calling .item() every step would make the CPU wait for the GPU.
        running = loss.detach() if running is None else 0.98 * running + 0.02 * loss.detach()
        if step % 25 == 0 or step == cfg.steps:
            elapsed = time.perf_counter() - started
            rate = elapsed / (step - start_step)
            log.info(
                "step %d/%d loss %.4f lr %.2e %.3fs/step (%.0f%% waiting for data) eta %s "
                "best %.3f dB",
                step, cfg.steps, float(running), learning_rate(cfg, step), rate,
                100 * data_wait / elapsed, tqdm.format_interval(rate * (cfg.steps - step)), best,
            )  # fmt: skip
        if val_pairs and (step % cfg.validate_every == 0 or step == cfg.steps):
            elapsed = time.perf_counter() - started
            best = _record_validation(
                model, val_pairs, device, out, step, running, elapsed, best, data_wait
            )
        if step % cfg.checkpoint_every == 0 or step == cfg.steps:
            with atomic_target(checkpoint, overwrite=True) as tmp:
                torch.save(
                    {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                     "step": step, "best": best},
                    tmp,
                )  # fmt: skip
    if not val_pairs:
        save_weights(model, out / "best.safetensors")
    # The final weights too: a run whose validation protocol is not the one it trains for (a
    # degradation mixture) is judged on the held-out set, not by its best validation step.
    save_weights(model, out / "last.safetensors")
    return out / "best.safetensors"

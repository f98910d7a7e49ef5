"""Pretrained-weight registry and safe loading (timm / CSBDeep style).

Weight files are safetensors whose metadata carries the :class:`CISRConfig` as JSON, so one
file fully describes a model. Legacy ``.pt``/``.pth`` files are read with
``torch.load(weights_only=True)``: a file carrying a pickle payload is refused and its
payload never runs.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import torch

from napari_cisr.model import CISRPSI, CISRConfig, build_model, variant_config

log = logging.getLogger(__name__)

MODEL_NAMES: tuple[str, ...] = ("lite", "tiny", "full")


class WeightsError(ValueError):
    """A weight file that cannot be used; the message is one line naming the file."""


@dataclass(frozen=True)
class WeightSpec:
    """A pretrained model shipped inside the package."""

    variant: str
    scale: int
    filename: str
    sha256: str
    description: str = ""


#: Shipped weights, keyed "<variant>-x<scale>". Produced by ``napari-cisr train`` (docs/models.md).
PRETRAINED: dict[str, WeightSpec] = {
    "lite-x2": WeightSpec(
        variant="lite",
        scale=2,
        filename="lite-x2.safetensors",
        sha256="daefa0fa19e08a826af87b5f04394150ad598e6772d6ee7dcdf72dd99e17e0f3",
        description=(
            "configs/lite-x2.json (1800 steps), lite-x2-stage2.json (best at 900), then "
            "lite-x2-stage3.json (best at 1250), then "
            "lite-x2-stage5.json on a GPU with more photos (best at 1500), "
            "lite-x2-stage6.json (best at 250), then lite-x2-stage7.json on the CPU with more "
            "photos again (best at 4750), then fine-tuned with the squared error by "
            "lite-x2-stage10.json (best at 700), then grown to 12 RCABs per module on a GPU by "
            "lite-x2-stage17.json (best at 750), then fine-tuned on the broad training set by "
            "lite-x2-stage24.json (best at 300; docs/models.md)"
        ),
    ),
    "lite-x3": WeightSpec(
        variant="lite",
        scale=3,
        filename="lite-x3.safetensors",
        sha256="45ed1f13332fbbaf6fc274c93d2941d0b61ea2de817095b79ada29697fce2b24",
        description=(
            "configs/lite-x3.json (1000 steps), lite-x3-stage2.json (best at 2000), then "
            "lite-x3-stage3.json on a GPU (best at 250), "
            "then lite-x3-stage4.json with more photos (best at 1250), then "
            "lite-x3-stage6.json on the CPU with more photos again (best at 2250) and "
            "lite-x3-stage7.json (best at 1000), then grown to 8 RCABs per module by "
            "lite-x3-stage8.json (best at 1500), then fine-tuned with the squared error by "
            "lite-x3-stage9.json (best at 1100), then grown to 12 RCABs per module by "
            "lite-x3-stage10.json (best at 1000; docs/models.md)"
        ),
    ),
    "lite-x4": WeightSpec(
        variant="lite",
        scale=4,
        filename="lite-x4.safetensors",
        sha256="c47a365b7e66f73abed8b03b0bf72fa7a097c1d69f17e2aecc29e7f2e25145b2",
        description=(
            "configs/lite-x4.json (1000 CPU steps), then lite-x4-stage2.json on a GPU "
            "(best at 500), then lite-x4-stage3.json with more photos (best at 1250) and "
            "lite-x4-stage4.json (best at 500), then lite-x4-stage5.json on the CPU with more "
            "photos again (stopped at 500 of 1000 steps, best at 500) and "
            "lite-x4-stage6.json (best at 2250), then grown to 8 RCABs per module by "
            "lite-x4-stage7.json (best at 2000) and lite-x4-stage8.json (best at 400), then "
            "fine-tuned with the squared error by lite-x4-stage10.json (best at 300; "
            "docs/models.md)"
        ),
    ),
}


def sha256_of(path: str | Path) -> str:
    """Hex sha256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def save_weights(model: CISRPSI, path: str | Path) -> str:
    """Write ``model`` as safetensors (config in the metadata), atomically; return its sha256."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    metadata = {"format": "pt", "cisr_config": json.dumps(model.config.to_dict())}
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(fd)
    try:
        save_file(state, tmp, metadata=metadata)
        os.chmod(tmp, 0o644)  # mkstemp makes owner-only files; weights are meant to be shared
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return sha256_of(path)


def read_weights(path: str | Path) -> tuple[CISRConfig | None, dict[str, torch.Tensor]]:
    """Read a weight file without running any code from it.

    Returns the config stored in it (``None`` for a bare state dict) and the tensors.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"cannot load weights '{path}': no such file")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(path), framework="pt") as handle:
                metadata = handle.metadata() or {}
                state = {key: handle.get_tensor(key) for key in handle.keys()}
        except (SafetensorError, OSError, ValueError) as error:
            raise WeightsError(
                f"cannot load weights '{path}': not a safetensors file ({error})"
            ) from None
        raw = metadata.get("cisr_config")
        return (CISRConfig.from_dict(json.loads(raw)) if raw else None), state
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises UnpicklingError, RuntimeError, EOFError, ...
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise WeightsError(
            f"refusing to load weights '{path}': not plain tensors (weights_only load failed: "
            f"{reason[:160]})"
        ) from None
    if isinstance(payload, dict) and "model" in payload and "config" in payload:
        return CISRConfig.from_dict(payload["config"]), payload["model"]
    if isinstance(payload, dict) and all(isinstance(v, torch.Tensor) for v in payload.values()):
        return None, payload
    raise WeightsError(f"cannot load weights '{path}': no state dict found in it")


def packaged_weights_path(spec: WeightSpec) -> Path:
    """Path of a shipped weight file, verified against its sha256."""
    path = Path(str(resources.files("napari_cisr") / "weights_data" / spec.filename))
    if not path.is_file():
        raise WeightsError(f"shipped weights '{spec.filename}' are missing from the package")
    digest = sha256_of(path)
    if digest != spec.sha256:
        raise WeightsError(
            f"shipped weights '{path}' fail their sha256 check ({digest[:12]}… != "
            f"{spec.sha256[:12]}…)"
        )
    return path


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """'auto' → CUDA when available, else CPU."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but CUDA is not available")
    return device


#: Accepted values of every ``precision`` argument.
PRECISIONS = ("auto", "float32", "bfloat16")


def _native_bfloat16(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        # Private but stable since torch 2.1; without AVX512-BF16 (or AMX) bfloat16 convolutions
        # are emulated and slower than float32.
        probe = getattr(torch.cpu, "_is_avx512_bf16_supported", None)
        return bool(probe and probe())
    return False


def resolve_precision(precision: str, device: torch.device) -> torch.dtype:
    """The compute dtype of inference: 'auto' → bfloat16 where ``device`` has it natively.

    bfloat16 autocast is about 2x faster on a CPU with AVX512-BF16
    (``benchmarks/throughput.py``) and changes Y-PSNR by less than 0.004 dB in every
    configuration measured (``benchmarks/precision.py``; the network keeps its per-pixel
    bandwidth and skip weights in float32). On CUDA it is no faster than float32 but
    needs less memory (docs/benchmarks.md).
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    if precision == "auto":
        return torch.bfloat16 if _native_bfloat16(device) else torch.float32
    return torch.bfloat16 if precision == "bfloat16" else torch.float32


def inference_context(device: torch.device, dtype: torch.dtype) -> contextlib.ExitStack:
    """``torch.inference_mode()`` plus bfloat16 autocast when ``dtype`` is bfloat16."""
    stack = contextlib.ExitStack()
    stack.enter_context(torch.inference_mode())
    if dtype == torch.bfloat16:
        stack.enter_context(torch.autocast(device.type, dtype=torch.bfloat16))
    return stack


def load_model(
    name_or_path: str | Path = "lite",
    scale: int = 2,
    pretrained: bool = True,
    device: str | torch.device = "cpu",
) -> CISRPSI:
    """Build a CISR-PSI network, with weights.

    Parameters
    ----------
    name_or_path : str or Path
        A variant name (``"lite"``, ``"tiny"``, ``"full"``) or the path of a weight file
        (``.safetensors``, or ``.pt``/``.pth`` holding plain tensors).
    scale : int
        2, 3 or 4; for a file, it must match the file's config when the file has one.
    pretrained : bool
        Load the shipped weights of the variant; ``False`` gives freshly initialised weights.
    device : str
        "cpu", "cuda", "auto", ...

    Returns
    -------
    CISRPSI
        In eval mode, on ``device``. Strict key matching: a file for another architecture fails.
    """
    target = resolve_device(device)
    name = str(name_or_path)
    if name in MODEL_NAMES:
        config = variant_config(name, scale)
        model = build_model(config)
        if pretrained:
            key = f"{name}-x{scale}"
            spec = PRETRAINED.get(key)
            if spec is None:
                available = ", ".join(sorted(PRETRAINED)) or "none"
                raise WeightsError(
                    f"no shipped weights for model '{name}' at x{scale} (available: {available});"
                    " pass pretrained=False or a weight file"
                )
            _, state = read_weights(packaged_weights_path(spec))
            _load_strict(model, state, spec.filename)
    else:
        path = Path(name_or_path)
        if path.suffix not in (".safetensors", ".pt", ".pth") and not path.exists():
            raise WeightsError(
                f"unknown model '{name}': use one of {', '.join(MODEL_NAMES)} or a weight file"
            )
        stored, state = read_weights(path)
        config = stored or variant_config("lite", scale)
        if config.scale != scale:
            raise WeightsError(f"weights '{path}' are for x{config.scale}, not x{scale}")
        model = build_model(config)
        _load_strict(model, state, str(path))
    return model.eval().to(target)


def _load_strict(model: CISRPSI, state: dict[str, torch.Tensor], source: str) -> None:
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        first = str(error).splitlines()[1].strip() if "\n" in str(error) else str(error)
        raise WeightsError(f"weights '{source}' do not fit the model: {first[:200]}") from None

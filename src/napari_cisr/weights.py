"""Weight files: safe loading and saving, and the shipped weights by name (timm / CSBDeep style).

The names and files shipped are :mod:`napari_cisr.registry`'s; where and in which precision a
network runs is :mod:`napari_cisr.runtime`'s.

Weight files are safetensors whose metadata carries the :class:`CISRConfig` as JSON, so one
file fully describes a model. Legacy ``.pt``/``.pth`` files are read with
``torch.load(weights_only=True)``: a file carrying a pickle payload is refused and its
payload never runs.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from importlib import resources
from pathlib import Path

import torch

from napari_cisr.model import CISRPSI, CISRConfig, build_model, variant_config
from napari_cisr.registry import (
    DEFAULT_COMPRESSION,
    DEFAULT_SCALE,
    MODEL_NAMES,
    PRETRAINED,
    WeightSpec,
    list_models,
    model_compression,
    parse_model_name,
    pretrained_key,
)
from napari_cisr.runtime import resolve_device

log = logging.getLogger(__name__)


class WeightsError(ValueError):
    """A weight file that cannot be used; the message is one line naming the file."""


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

    from napari_cisr.io import atomic_target

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    metadata = {"format": "pt", "cisr_config": json.dumps(model.config.to_dict())}
    with atomic_target(path, overwrite=True) as tmp:
        save_file(state, os.fspath(tmp), metadata=metadata)
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
        return (_config_from(raw, path, as_json=True) if raw else None), state
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises UnpicklingError, RuntimeError, EOFError, ...
        # torch's own message is a page of advice about weights_only=False, which is exactly
        # what must not be done with an untrusted file: say what it means instead
        kind = type(error).__name__
        raise WeightsError(
            f"refusing to load weights '{path}': it is not a plain-tensor file ({kind}: it "
            "holds other Python objects, which could run code, or is damaged); use a "
            ".safetensors file from `napari-cisr train`"
        ) from None
    if isinstance(payload, dict) and "model" in payload and "config" in payload:
        return _config_from(payload["config"], path), payload["model"]
    if isinstance(payload, dict) and all(isinstance(v, torch.Tensor) for v in payload.values()):
        return None, payload
    raise WeightsError(f"cannot load weights '{path}': no state dict found in it")


def _config_from(raw: object, path: Path, as_json: bool = False) -> CISRConfig:
    """The architecture config stored in a weight file, or a one-line WeightsError."""
    try:
        return CISRConfig.from_dict(json.loads(raw) if as_json else raw)
    except (TypeError, ValueError, KeyError, AttributeError) as error:
        raise WeightsError(
            f"cannot load weights '{path}': its architecture config (metadata 'cisr_config') "
            f"is malformed ({type(error).__name__}: {str(error).splitlines()[0][:120]})"
        ) from None


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


def _named(name_or_path: str | Path, scale: int | None) -> tuple[str, int, str] | None:
    """(variant, scale, compression) of a model name (``lite``, ``lite.x2``, ``lite.x2.mild``;
    :data:`DEFAULT_COMPRESSION` without a tag), None for a weight file."""
    try:
        named = parse_model_name(str(name_or_path), scale)
    except ValueError as error:  # "lite.x3" with scale=2
        raise WeightsError(str(error)) from None
    if named is None:
        return None
    return (*named, model_compression(str(name_or_path)) or DEFAULT_COMPRESSION)


def _shipped(variant: str, scale: int, compression: str, fix: str = "") -> WeightSpec:
    """The shipped weights of a variant at a scale for a compression, or a one-line
    WeightsError naming those that ship (and ``fix``, what the caller can do instead)."""
    spec = PRETRAINED.get(pretrained_key(variant, scale, compression))
    if spec is None:
        available = ", ".join(list_models(pretrained=True)) or "none"
        what = "" if compression == DEFAULT_COMPRESSION else f" for {compression} compression"
        raise WeightsError(
            f"no shipped weights for model '{variant}'{what} at x{scale} (available: "
            f"{available}){fix}"
        )
    return spec


def model_config(name_or_path: str | Path = "lite", scale: int | None = None) -> CISRConfig:
    """The architecture config of a model, read without loading its weights.

    For a shipped name, the variant's config (after checking that weights ship for it); for
    a ``.safetensors`` file, the config in its metadata, after checking that the file's tensor
    names and shapes are those of that architecture (from the file's header and a network
    built on torch's "meta" device: nothing is read or allocated). Other files (``.pt``) are
    read, as :func:`load_model` reads them.

    Parameters
    ----------
    name_or_path, scale
        As in :func:`load_model`.

    Returns
    -------
    CISRConfig

    Raises
    ------
    WeightsError
        As :func:`load_model` would, in one line.
    """
    named = _named(name_or_path, scale)
    if named is not None:
        _shipped(*named)
        return variant_config(*named[:2])
    scale = DEFAULT_SCALE if scale is None else scale
    path = Path(name_or_path)
    if path.suffix != ".safetensors":
        return load_model(path, scale=scale, device="cpu").config
    if not path.is_file():
        raise WeightsError(f"cannot load weights '{path}': no such file")
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            raw = (handle.metadata() or {}).get("cisr_config")
            shapes = {key: tuple(handle.get_slice(key).get_shape()) for key in handle.keys()}
    except (SafetensorError, OSError, ValueError) as error:
        raise WeightsError(
            f"cannot load weights '{path}': not a safetensors file ({error})"
        ) from None
    config = _config_from(raw, path, as_json=True) if raw else variant_config("lite", scale)
    if config.scale != scale:
        raise WeightsError(f"weights '{path}' are for x{config.scale}, not x{scale}")
    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in build_model(config).state_dict().items()}
    if shapes != expected:
        differing = sorted(set(shapes) ^ set(expected)) or sorted(
            k for k in shapes if shapes[k] != expected[k]
        )
        raise WeightsError(f"weights '{path}' do not fit the model: {differing[0]} differs")
    return config


def load_model(
    name_or_path: str | Path = "lite",
    scale: int | None = None,
    pretrained: bool = True,
    device: str | torch.device = "cpu",
) -> CISRPSI:
    """Build a CISR-PSI network, with weights.

    Parameters
    ----------
    name_or_path : str or Path
        A model name, a variant (``"lite"``, ``"tiny"``, ``"full"``) or a variant at a scale
        (``"lite.x2"``, as :func:`napari_cisr.registry.list_models` lists them), either with
        a compression tag (``"lite.x2.mild"``: the weights trained for that compression; the
        general ones without a tag), or the path of a weight file (``.safetensors``, or
        ``.pt``/``.pth`` holding plain tensors).
    scale : int, optional
        2, 3 or 4; default the scale in the name, else 2. A name's scale and a different
        ``scale`` are refused; for a file, it must match the file's config when the file has
        one.
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
    named = _named(name_or_path, scale)
    if named is not None:
        model = build_model(variant_config(*named[:2]))
        if pretrained:
            spec = _shipped(*named, fix="; pass pretrained=False or a weight file")
            _, state = read_weights(packaged_weights_path(spec))
            _load_strict(model, state, spec.filename)
    else:
        scale = DEFAULT_SCALE if scale is None else scale
        path = Path(name_or_path)
        if path.suffix not in (".safetensors", ".pt", ".pth") and not path.exists():
            raise WeightsError(
                f"unknown model '{name_or_path}': use one of {', '.join(MODEL_NAMES)}, a name "
                "such as lite.x2, or a weight file"
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

"""One options object for every inference entry point, validated before torch is imported.

``run``, ``batch``, ``demo``, ``eval`` and the widget build an :class:`InferenceOptions` from
their arguments and call :meth:`InferenceOptions.validate` first, so that a bad argument is
refused in one line naming it, before any import of torch and before any pixel is read or
computed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING

from napari_cisr.registry import PRECISIONS, SCALES, check_model, parse_model_name

if TYPE_CHECKING:  # torch is imported only where a network runs
    from napari_cisr.model import CISRPSI

__all__ = ["PRESETS", "PRESET_HELP", "SCALES", "InferenceOptions", "preset_iterations"]

#: Named speed/quality choices: the unfolding iterations J each runs (None = the model's own).
#: On the 45 held-out photos (docs/models.md, *Presets*), the shipped models' mean gain at
#: ``balanced`` (J = 2 of their 3) is within 0.0011 dB of ``best`` at every scale, lower at
#: strong compression and higher at mild; ``fast`` (J = 1) is 0.03-0.04 dB below ``best``.
PRESETS: dict[str, int | None] = {"best": None, "balanced": 2, "fast": 1}
#: What each preset means to a user (the CLI's help, the widget's choices); the speed-ups are
#: ``benchmarks/photo_speed.py`` at x2 on a 12-MP output.
PRESET_HELP: dict[str, str] = {
    "best": "the model's own iterations",
    "balanced": "2 iterations, about 1.4x faster, within 0.01 dB of best on the mean",
    "fast": "1 iteration, about 2.4x faster, a little less quality",
}

#: Devices accepted by name: ``auto``, ``cpu``, ``mps``, ``cuda`` or ``cuda:N``.
_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")

#: Suffixes of weight files (``napari-cisr train`` writes ``.safetensors``).
WEIGHT_SUFFIXES = (".safetensors", ".pt", ".pth")


def preset_iterations(preset: str) -> int | None:
    """The iterations J of a named preset (None: the model's own); ValueError if unknown."""
    if preset not in PRESETS:
        raise ValueError(f"preset must be one of {', '.join(PRESETS)}, not {preset!r}")
    return PRESETS[preset]


@dataclass(frozen=True)
class InferenceOptions:
    """How to super-resolve: the settings shared by the library, the CLI and the widget.

    Attributes
    ----------
    scale : int
        2, 3 or 4.
    model : str, Path or CISRPSI
        A model with shipped weights (``lite``, or ``lite.x2`` naming its scale too), the path
        of a weight file, or a loaded network (library callers only). A name runs, on each
        input, the weights trained for its compression (:mod:`napari_cisr.compression`); a
        tag chooses them (``lite.mild``, ``lite.x2.strong``).
    compile : bool
        Run the ARM and the REM through ``torch.compile`` (inductor: fused C++/OpenMP kernels
        on the CPU, Triton on CUDA): one graph per input shape and process, kept in inductor's
        on-disk cache; eager mode where compilation fails. A numpy image's tiles are grown to
        one standard shape (:meth:`napari_cisr.engine.plan.TilePlan.compiled_window`), so a
        folder of photos larger than a tile needs few graphs; a dask array's tiles keep their
        shapes. Experimental: slower end to end on a 2-core CPU so far (docs/benchmarks.md,
        *torch.compile*).
    iterations : int or None
        Unfolding iterations J; None = the model's own.
    tile : int or None
        Tile side in LR pixels; None = automatic, 0 = the whole image in one pass.
    device : str
        ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.
    precision : str
        One of :data:`napari_cisr.registry.PRECISIONS`.
    self_ensemble : bool
        Average over the eight rotations/flips of the input.
    intermediates : bool
        Also return every ŷ_j, x̂_j and the blocking map.
    """

    scale: int = 2
    model: str | Path | CISRPSI = "lite"
    compile: bool = False
    iterations: int | None = None
    tile: int | None = None
    device: str = "auto"
    precision: str = "auto"
    self_ensemble: bool = False
    intermediates: bool = False

    @classmethod
    def from_settings(cls, settings: object, **overrides: object) -> InferenceOptions:
        """Options from any object with attributes named like the fields (argparse's
        ``Namespace``, the widget's ``SuperResolveParams``); ``overrides`` win.

        So a new field reaches the CLI and the widget through a flag or a control of the same
        name, without a line here or in their adapters.
        """
        names = [f.name for f in fields(cls) if hasattr(settings, f.name)]
        values = {name: getattr(settings, name) for name in names}
        return cls(**{**values, **overrides})

    def validate(self) -> InferenceOptions:
        """Raise ValueError (one line naming the setting and the fix) unless usable; return self.

        Only what can be known without torch: whether CUDA is present, and whether a weight
        file's contents fit, are checked when the model is loaded.
        """
        if self.scale not in SCALES:
            scales = ", ".join(map(str, SCALES))
            raise ValueError(f"scale must be one of {scales}, not {self.scale}")
        if self.iterations is not None and self.iterations < 1:
            raise ValueError(
                f"iterations must be at least 1, not {self.iterations} "
                "(leave it out for the model's own J)"
            )
        if self.tile is not None and self.tile < 0:
            raise ValueError(
                f"tile must be 0 (whole image) or a positive size, not {self.tile} "
                "(leave it out for automatic)"
            )
        if not _DEVICE.match(str(self.device)):
            raise ValueError(f"unknown device {self.device!r}; use auto, cpu, cuda, cuda:N or mps")
        if self.precision not in PRECISIONS:
            raise ValueError(
                f"precision must be one of {', '.join(PRECISIONS)}, not {self.precision!r}"
            )
        if not isinstance(self.model, (str, Path)):
            return self  # a loaded network: its fit is checked when it runs
        model = str(self.model)
        if parse_model_name(model, self.scale) is not None:  # ValueError if the scales differ
            check_model(model, self.scale)
        elif not Path(model).is_file():
            what = "weight file" if Path(model).suffix in WEIGHT_SUFFIXES else "model"
            raise ValueError(
                f"{what} '{model}' does not exist; use lite (lite.mild, lite.strong, "
                "lite.heavy) or the path of a weight file"
            )
        return self

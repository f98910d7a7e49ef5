"""Average the weights of stages of one lineage (weight averaging, Izmailov et al., "Averaging
weights leads to wider optima and better generalization", 2018) into a new stage.

Consecutive stages of a lineage are fine-tunings of one another, so their weights lie in one
basin and their average is a network too; it often generalises better than either end point.
The files must hold the same architecture (the config in their safetensors metadata); the
average is written, as a stage of the lineage, where ``scripts/ship_weights.py`` reads stages:

    python scripts/average_weights.py --out runs/lite-mild-x2-stage4/last.safetensors \
        src/napari_cisr/weights_data/lite-x2-mild.safetensors \
        runs/lite-mild-x2-stage3/last.safetensors
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import sys
from pathlib import Path

import torch

from napari_cisr.model.cisr import build_model
from napari_cisr.model.config import CISRConfig
from napari_cisr.weights import read_weights, save_weights

log = logging.getLogger("average_weights")


def average(paths: list[Path]) -> tuple[CISRConfig, dict[str, torch.Tensor]]:
    """(config, the element-wise mean of the state dicts) of weight files of one architecture.

    Raises
    ------
    SystemExit
        If a file lacks its config, or the configs or the tensors' names and shapes differ.
    """
    config, total = None, None
    for path in paths:
        own, state = read_weights(path)
        if own is None:
            raise SystemExit(f"{path}: no architecture config in the file")
        if config is None:
            config, total = own, {k: v.double() for k, v in state.items()}
            continue
        if own != config:
            raise SystemExit(f"{path}: another architecture than {paths[0]}")
        if state.keys() != total.keys() or any(state[k].shape != total[k].shape for k in state):
            raise SystemExit(f"{path}: other tensors than {paths[0]}")
        for key, tensor in state.items():
            total[key] += tensor.double()
    mean = {k: (v / len(paths)).float() for k, v in total.items()}
    return config, mean


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights", nargs="+", type=Path, help="two or more weight files")
    parser.add_argument("--out", type=Path, required=True, help="the averaged weights")
    args = parser.parse_args(argv)
    if len(args.weights) < 2:
        parser.error("average two or more weight files")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    config, state = average(args.weights)
    model = build_model(config)
    model.load_state_dict(state, strict=True)
    sha = save_weights(model, args.out)
    for path in args.weights:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        log.info("averaged %s (sha256 %s…)", path, digest[:12])
    log.info("wrote %s: sha256 %s", args.out, sha)
    return 0


if __name__ == "__main__":
    sys.exit(main())

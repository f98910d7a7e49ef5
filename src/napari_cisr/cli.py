"""``napari-cisr`` command line: run, demo, train, eval, batch.

Library functions never receive an argparse Namespace: each subcommand unpacks its arguments.
Expected failures (bad input files, bad weights, bad parameters) end with one line on stderr
and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

log = logging.getLogger("napari_cisr")


class CLIError(Exception):
    """An expected failure: printed as one line, exit status 2."""


def _cmd_train(args: argparse.Namespace) -> None:
    from dataclasses import fields

    from napari_cisr.train.loop import TrainConfig, train

    cfg = TrainConfig.from_json(args.config) if args.config else TrainConfig()
    for f in fields(TrainConfig):
        value = getattr(args, f.name, None)
        if value is not None:
            setattr(cfg, f.name, value)
    best = train(cfg)
    log.info("best weights: %s", best)


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a model (paper Algorithm 1, Eq. 8)")
    p.add_argument("--config", type=Path, help="JSON file of TrainConfig fields (configs/*.json)")
    p.add_argument("--variant", choices=("lite", "tiny", "full"))
    p.add_argument("--scale", type=int, choices=(2, 3, 4))
    p.add_argument("--steps", type=int)
    p.add_argument("--batch", type=int)
    p.add_argument("--patch", type=int, help="LR patch side")
    p.add_argument("--lr", type=float)
    p.add_argument("--data", nargs="+", help="folders (or files) of HR photos")
    p.add_argument("--validation", nargs="+", help="held-out photos for checkpoint selection")
    p.add_argument("--output", help="run folder (resumes from its last.pt)")
    p.add_argument("--threads", type=int, help="torch threads (0 = torch default)")
    p.add_argument("--device", help="cpu, cuda or auto")
    p.add_argument("--init", help="start from these weights")
    p.set_defaults(func=_cmd_train)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="napari-cisr", description="Super-resolve compressed images with CISR-PSI."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in _SUBCOMMANDS:
        add(sub)
    return parser


_SUBCOMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [_add_train]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``napari-cisr`` script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s" if args.verbose else "%(message)s",
    )
    try:
        args.func(args)
    except CLIError as error:
        print(f"napari-cisr: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("napari-cisr: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())

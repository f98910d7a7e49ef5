"""``napari-cisr`` command line: run, demo, train, eval, batch.

Library functions never receive an argparse Namespace: each subcommand unpacks its arguments.
Expected failures end with one line on stderr, never a traceback: exit status 2 for a usage
error (a bad argument or output path, refused before torch is imported and before any input is
read), 1 for work that failed (an unreadable input, a batch item that failed).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from napari_cisr._cli.batch import add_batch
from napari_cisr._cli.common import CLIError, WorkFailed, expected_errors
from napari_cisr._cli.lab import add_eval, add_train
from napari_cisr._cli.run import add_demo, add_run

__all__ = ["CLIError", "WorkFailed", "build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="napari-cisr", description="Super-resolve compressed images with CISR-PSI."
    )
    from napari_cisr import __version__

    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in _SUBCOMMANDS:
        add(sub)
    for subparser in sub.choices.values():
        # -v after the subcommand too; SUPPRESS keeps a -v given before it
        subparser.add_argument(
            "-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="debug logging"
        )
    return parser


_SUBCOMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [
    add_run,
    add_demo,
    add_eval,
    add_train,
    add_batch,
]


#: Positionals that take any number of paths, which may also come after options
#: (``run in.jpg --scale 4 out.png``): argparse alone stops such a list at the first option.
_PATH_LISTS = ("inputs", "sources")


def _parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    args, extras = parser.parse_known_args(argv)
    paths = next(
        (name for name in _PATH_LISTS if isinstance(getattr(args, name, None), list)), None
    )
    if extras and (paths is None or any(extra.startswith("-") for extra in extras)):
        parser.error(f"unrecognized arguments: {' '.join(extras)}")
    if extras:
        getattr(args, paths).extend(extras)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``napari-cisr`` script; returns the exit status."""
    parser = build_parser()
    args = _parse(parser, argv)
    quiet = getattr(args, "quiet", False)  # -q: failures only, so no info lines either
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING if quiet else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s" if args.verbose else "%(message)s",
    )
    try:
        args.func(args)
    except CLIError as error:
        print(f"napari-cisr: {error}", file=sys.stderr)
        return 2
    except WorkFailed as error:
        print(f"napari-cisr: {error}", file=sys.stderr)
        return 1
    except expected_errors() as error:
        print(f"napari-cisr: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("napari-cisr: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())

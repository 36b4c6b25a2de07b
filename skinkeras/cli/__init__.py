"""The `skinkeras` command.

Each module in this package that defines `register(subparsers)` adds one top-level subcommand
(`data`, `bench`, `models`, ...). A subcommand's handler takes the parsed arguments and returns an
exit code. Handlers import TensorFlow lazily so that `skinkeras --help` stays instant.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys

from skinkeras import __version__
from skinkeras.errors import SkinkerasError
from skinkeras.quiet import VERBOSE_ENV, quiet_tensorflow


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="skinkeras",
        description="Skin-lesion classification: data, models, training, evaluation and export.",
    )
    parser.add_argument("--version", action="version", version=f"skinkeras {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help=f"debug logging and TensorFlow's own log lines (also {VERBOSE_ENV}=1)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        if hasattr(module, "register"):
            module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # Before any handler imports TensorFlow: its C++ start-up chatter hides the output people came for.
    quiet_tensorflow(args.verbose)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except SkinkerasError as error:
        print(f"skinkeras: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("skinkeras: interrupted", file=sys.stderr)
        return 130

"""The command line: a thin layer over the library API (parsing, progress, printing).

Each subcommand lives in its own module exposing ``add_parser(subparsers)``, which registers the
parser and sets ``func`` to a function taking the parsed args and returning an exit status.
A SpecError (bad spec, option or input) prints one line and exits with status 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from ..spec import SpecError

# Subcommand modules, in the order `--help` lists them.
COMMANDS = ("build", "explain", "tune", "bench", "emit", "targets")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line and status 2, as for a bad spec
        self.exit(2, f"{self.prog}: error: {message}\n")


def make_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="sepconv-codegen",
        description="Generate, check, tune and benchmark depthwise-separable convolution kernels.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as err:
            if err.name == f"{__name__}.{name}":
                continue  # a subcommand this install does not have
            raise
        module.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except SpecError as err:
        print(f"sepconv-codegen {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"sepconv-codegen {args.command}: interrupted", file=sys.stderr)
        return 130

"""Options shared by several subcommands: reading a spec or the built-in default network."""

from __future__ import annotations

import argparse

from ..spec import Network, mobilenet_v1
from ..specfile import load_spec


def add_spec_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "spec", nargs="?", default=None,
        help="a .toml or .json spec file (default: the 13 separable blocks of MobileNetV1, 224x224)",
    )


def network_from_args(args: argparse.Namespace) -> Network:
    return mobilenet_v1() if args.spec is None else load_spec(args.spec)


def add_target_argument(parser: argparse.ArgumentParser, default: str = "llvm",
                        extra: str = "") -> None:
    parser.add_argument(
        "--target", default=default,
        help="a target name ('llvm' is this machine's CPU; see `targets`) or a TVM target JSON"
             + extra,
    )


def name_width(network: Network, minimum: int) -> int:
    """Width of a table's layer column: ``minimum``, or the longest layer name (never cut)."""
    return max(minimum, *(len(layer.name) for layer in network))

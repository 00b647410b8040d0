"""`targets`: the named targets `--target` accepts, as a table (or JSON)."""

from __future__ import annotations

import argparse
import json

from ..targets import Target, list_targets


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "targets",
        help="list the named targets --target accepts",
        description="List every named target: what it is, its TVM target JSON, its vector width "
        "and whether kernels built for it run on this machine. --target also takes a "
        "raw TVM target JSON (a string starting with '{').",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(func=run)


def _row(target: Target) -> dict:
    names = ", ".join((target.name, *target.aliases))
    return {
        "name": names,
        "description": target.description,
        "tvm": json.dumps(target.tvm, separators=(",", ":")),
        "vector_bits": target.vector_bits,
        "runs_here": "yes"
        if target.runs_here
        else (f"no ({target.emulator})" if target.emulator else "no"),
    }


def format_table(targets: list[Target]) -> str:
    """A plain-text table, one target per line."""
    rows = [_row(t) for t in targets]
    headers = {
        "name": "name",
        "description": "description",
        "tvm": "TVM target JSON",
        "vector_bits": "vector bits",
        "runs_here": "runs here?",
    }
    widths = {k: max(len(str(h)), *(len(str(r[k])) for r in rows)) for k, h in headers.items()}
    lines = ["  ".join(str(h).ljust(widths[k]) for k, h in headers.items()).rstrip()]
    lines.append("  ".join("-" * widths[k] for k in headers))
    for row in rows:
        lines.append("  ".join(str(row[k]).ljust(widths[k]) for k in headers).rstrip())
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    targets = list_targets()
    if args.json:
        data = [
            {
                "name": t.name,
                "aliases": list(t.aliases),
                "description": t.description,
                "tvm": t.tvm,
                "family": t.family,
                "vector_bits": t.vector_bits,
                "vector_registers": t.vector_registers,
                "cross_compiler": t.cross_compiler,
                "runs_here": t.runs_here,
                "emulator": t.emulator,
            }
            for t in targets
        ]
        print(json.dumps(data, indent=2))
        return 0
    print(format_table(targets))
    print(
        "\n'c' (`build --target c`, sc.build(layer, 'c')) compiles the standalone C with gcc for "
        "this machine; `emit` writes it for firmware.\nAny other --target may be a TVM target "
        'JSON such as \'{"kind":"llvm","mtriple":"aarch64-linux-gnu","mcpu":"cortex-a55"}\'.'
    )
    return 0

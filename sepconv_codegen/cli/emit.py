"""`emit`: standalone C99 kernels (NAME.h, NAME.c) for every layer of a spec, with their RAM."""

from __future__ import annotations

import argparse
import json

from ..cgen.emit import emit_c
from ..cgen.plan import c_knobs, make_plan, peak_ram_bytes
from ..cgen.weights import network_weights
from ..kernel import output_folder
from ..spec import SpecError
from .common import add_spec_argument, name_width, network_from_args


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "emit",
        help="write standalone C99 kernels (.c/.h) for every layer of a spec",
        description="Write NAME.h and NAME.c for every layer (default: MobileNetV1's blocks): "
        "portable C99 with no dependencies, weights optionally compiled in. Prints "
        "each kernel's scratch buffer and peak RAM, fused and unfused.",
    )
    add_spec_argument(parser)
    parser.add_argument("-o", "--output", required=True, help="output folder")
    parser.add_argument(
        "--weights",
        default=None,
        metavar="FILE.npz",
        help="compile these weights in: keys LAYER/depthwise_filter, LAYER/pointwise_filter and "
        "LAYER/bias (a one-layer spec may use the bare names); float32, TF layouts",
    )
    parser.add_argument(
        "--knobs",
        default=None,
        metavar="JSON",
        help="knobs to change in every layer's C defaults, as a JSON object, e.g. "
        '\'{"fused": false}\' or \'{"tile_h": 2, "tile_w": 8}\'',
    )
    parser.set_defaults(func=run)


def _knob_overrides(text: str | None) -> dict | None:
    if text is None:
        return None
    try:
        overrides = json.loads(text)
    except json.JSONDecodeError as err:
        raise SpecError(f"--knobs {text!r} is not valid JSON: {err}") from None
    if not isinstance(overrides, dict):
        raise SpecError(f"--knobs must be a JSON object of knob names and values, got {text!r}")
    return overrides


def run(args: argparse.Namespace) -> int:
    network = network_from_args(args)
    overrides = _knob_overrides(args.knobs)
    knobs = {layer.name: c_knobs(layer, overrides) for layer in network}
    for layer in network:  # float32, and arrays the C addresses: refused before any file is written
        make_plan(layer, knobs[layer.name])
    if args.weights is not None and not args.weights.strip():
        raise SpecError("--weights is empty: name a .npz file")
    weights = network_weights(network, args.weights) if args.weights is not None else {}
    out_dir = output_folder(args.output, "-o")
    width = name_width(network, 12)
    header = (
        f"{'layer':<{width}} {'function':<56} {'scratch B':>10} {'peak RAM B':>11} "
        f"{'unfused B':>11} {'ratio':>6}"
    )
    print(header)
    print("-" * len(header))
    functions: dict[str, list[str]] = {}  # function -> the layers it serves
    for layer in network:
        emitted = emit_c(layer, out_dir, knobs=knobs[layer.name], weights=weights.get(layer.name))
        functions.setdefault(emitted.function, []).append(layer.name)
        ram = peak_ram_bytes(emitted.plan)
        print(
            f"{layer.name:<{width}} {emitted.function:<56} {emitted.scratch_bytes:>10} "
            f"{ram['kernel']:>11} {ram['unfused']:>11} {ram['kernel'] / ram['unfused']:>6.2f}"
        )
    count = len(functions)
    print(f"wrote {count} kernel{'s' if count != 1 else ''} ({2 * count} files) to {out_dir}/")
    for function, names in functions.items():
        if len(names) > 1:  # the files' header comment shows the last of them
            print(f"layers {', '.join(names)} have the same workload and share {function}")
    print("peak RAM: input + output + scratch; unfused: input + output + the whole intermediate")
    return 0

"""`explain`: what a layer computes, its cost against conv2d, and what channel_multiplier does."""

from __future__ import annotations

import argparse
import re

from ..explain import explain_layer
from ..spec import SeparableConv2D, SpecError
from ..specfile import load_spec


def _ints(text: str) -> list[int]:
    """'1,56,56,128' or '1x56x56x128'."""
    try:
        return [int(v) for v in re.split(r"[,x]", text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers separated by commas, got {text!r}") from None


def _padding(text: str):
    """SAME or VALID (any case), or explicit TOP,BOTTOM,LEFT,RIGHT (or [[T, B], [L, R]])."""
    numbers = re.findall(r"-?\d+", text)
    if re.fullmatch(r"[\s\[\],\d-]*", text) and len(numbers) == 4:
        top, bottom, left, right = map(int, numbers)
        return ((top, bottom), (left, right))
    if re.fullmatch(r"[\s\[\],\d-]*", text):
        raise SpecError(f"--padding {text!r}: explicit padding takes four integers, "
                        "TOP,BOTTOM,LEFT,RIGHT")
    return text  # a name: the layer refuses anything but SAME and VALID


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "explain", help="explain what a separable layer computes and why it is cheaper",
        description="Explain a layer from a spec file, or one described by options.",
    )
    parser.add_argument("spec", nargs="?", default=None, help="a .toml or .json spec file")
    parser.add_argument("--layer", default=None, help="only this layer of the spec (by name)")
    # The layer options describe a layer when no spec file is given; they default to None here so
    # that run() can tell which were given (and refuse them beside a spec), then applies _DEFAULTS.
    parser.add_argument("--input-shape", type=_ints, default=None, metavar="N,H,W,C")
    parser.add_argument("--kernel-size", type=_ints, default=None, metavar="K or KH,KW")
    parser.add_argument("--channel-multiplier", type=int, default=None, metavar="M")
    parser.add_argument("--out-channels", type=int, default=None, metavar="O")
    parser.add_argument("--strides", type=_ints, default=None, metavar="S or SH,SW")
    parser.add_argument("--dilation", type=_ints, default=None, metavar="D or DH,DW")
    parser.add_argument("--padding", default=None, metavar="SAME|VALID|T,B,L,R",
                        help="SAME or VALID (any case), or explicit TOP,BOTTOM,LEFT,RIGHT")
    parser.add_argument("--dtype", default=None)
    parser.add_argument("--bias", action="store_true", default=None)
    parser.add_argument("--activation", default=None, help="relu or relu6")
    parser.set_defaults(func=run)


# The layer `explain` describes when no spec file is given, for each option left out.
_DEFAULTS = {
    "input_shape": [1, 56, 56, 128],
    "kernel_size": [3],
    "channel_multiplier": 1,
    "out_channels": None,
    "strides": [1],
    "dilation": [1],
    "padding": "SAME",
    "dtype": "float32",
    "bias": False,
    "activation": None,
}


def _one_or_pair(values: list[int]):
    return values[0] if len(values) == 1 else values


def run(args: argparse.Namespace) -> int:
    given = [key for key in _DEFAULTS if getattr(args, key) is not None]
    if args.spec is not None:
        if given:
            options = ", ".join("--" + key.replace("_", "-") for key in given)
            raise SpecError(
                f"{options} describe a layer by options and cannot be combined with the spec file "
                f"{args.spec!r}; give the spec (with --layer NAME to pick one of its layers) or the options"
            )
        layers = list(load_spec(args.spec))
        if args.layer:
            layers = [layer for layer in layers if layer.name == args.layer]
            if not layers:
                raise SpecError(f"--layer {args.layer!r} is not in {args.spec}")
    else:
        if args.layer is not None:
            raise SpecError(
                f"--layer {args.layer!r} picks a layer of a spec file, but no spec file was given"
            )
        opts = {key: _DEFAULTS[key] if getattr(args, key) is None else getattr(args, key)
                for key in _DEFAULTS}
        layers = [SeparableConv2D(
            name="layer",
            input_shape=opts["input_shape"],
            kernel_size=_one_or_pair(opts["kernel_size"]),
            channel_multiplier=opts["channel_multiplier"],
            out_channels=opts["out_channels"],
            strides=_one_or_pair(opts["strides"]),
            dilation=_one_or_pair(opts["dilation"]),
            padding=_padding(opts["padding"]),
            dtype=opts["dtype"],
            bias=opts["bias"],
            activation=opts["activation"],
        )]
    print("\n\n".join(explain_layer(layer) for layer in layers))
    return 0

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


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "explain", help="explain what a separable layer computes and why it is cheaper",
        description="Explain a layer from a spec file, or one described by options.",
    )
    parser.add_argument("spec", nargs="?", default=None, help="a .toml or .json spec file")
    parser.add_argument("--layer", default=None, help="only this layer of the spec (by name)")
    parser.add_argument("--input-shape", type=_ints, default=[1, 56, 56, 128], metavar="N,H,W,C")
    parser.add_argument("--kernel-size", type=_ints, default=[3], metavar="K or KH,KW")
    parser.add_argument("--channel-multiplier", type=int, default=1, metavar="M")
    parser.add_argument("--out-channels", type=int, default=None, metavar="O")
    parser.add_argument("--strides", type=_ints, default=[1], metavar="S or SH,SW")
    parser.add_argument("--dilation", type=_ints, default=[1], metavar="D or DH,DW")
    parser.add_argument("--padding", default="SAME", help="SAME or VALID (any case)")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--bias", action="store_true")
    parser.add_argument("--activation", default=None, help="relu or relu6")
    parser.set_defaults(func=run)


def _one_or_pair(values: list[int]):
    return values[0] if len(values) == 1 else values


def run(args: argparse.Namespace) -> int:
    if args.spec:
        layers = list(load_spec(args.spec))
        if args.layer:
            layers = [layer for layer in layers if layer.name == args.layer]
            if not layers:
                raise SpecError(f"--layer {args.layer!r} is not in {args.spec}")
    else:
        layers = [SeparableConv2D(
            name="layer",
            input_shape=args.input_shape,
            kernel_size=_one_or_pair(args.kernel_size),
            channel_multiplier=args.channel_multiplier,
            out_channels=args.out_channels,
            strides=_one_or_pair(args.strides),
            dilation=_one_or_pair(args.dilation),
            padding=args.padding,
            dtype=args.dtype,
            bias=args.bias,
            activation=args.activation,
        )]
    print("\n\n".join(explain_layer(layer) for layer in layers))
    return 0

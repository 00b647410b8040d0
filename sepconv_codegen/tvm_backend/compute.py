"""The algorithm: the TE compute of one separable layer, with bias and activation fused in.

No schedule here: sizes come from the layer, nothing is assumed about the target.

    X    [N, H, W, C]          input
    DW   [KH, KW, C, M]        depthwise filter
    PW   [1, 1, C*M, O]        pointwise filter (TF layout), or, packed for a register tile of
                               `pack` channels, [ceil(O/pack), C*M, pack] (see pack_pointwise)
    B    [O]                   bias (only when layer.bias)
    out  [N, OH, OW, O]

Blocks, in order: "pad" (only when the layer pads), "dw" (the depthwise result, C*M channels,
channel q*M + r), "pw" (the pointwise reduction) and "out" (bias, activation, cast).

With `pixels` set, "dw" and "pw" run over a flat pixel axis [N, pixels, ...] (pixel p = row p // OW,
column p % OW) padded up to `pixels` >= OH*OW: the padding pixels repeat the last one, so any
register tile that divides `pixels` reads only valid memory and carries no predicate in its
reduction loop; "out" is then [N, OH*OW, O], the same memory as NHWC.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..spec import SeparableConv2D
from ._tvm import te, tirx


@dataclass(frozen=True)
class LayerCompute:
    layer: SeparableConv2D
    inputs: tuple  # te tensors in call order: X, DW, PW[, B]
    output: object

    @property
    def args(self) -> list:
        return [*self.inputs, self.output]

    def prim_func(self):
        return te.create_prim_func(self.args)


def accumulate_dtype(dtype: str) -> str:
    # float16 accumulates in float32 (as TF's CPU kernels do) and rounds at each step's end.
    return "float32" if dtype == "float16" else dtype


def packed_pointwise_shape(layer: SeparableConv2D, pack: int) -> tuple[int, int, int]:
    return (-(-layer.out_channels // pack), layer.depthwise_channels, pack)


def separable_compute(layer: SeparableConv2D, pack: int | None = None, pixels: int | None = None) -> LayerCompute:
    """The TE graph of ``layer``: TF's separable_conv2d, then bias and activation.

    pack: when set, PW is taken pre-packed in panels of `pack` output channels.
    pixels: when set, the intermediate and the pointwise step use a flat pixel axis of this
    length (at least OH*OW).
    """
    n, h, w, c = layer.input_shape
    _, oh, ow, o = layer.output_shape
    (kh, kw), (sh, sw), (dh, dw) = layer.kernel_size, layer.strides, layer.dilation
    (pt, pb), (pl, pr) = layer.pads
    m, cm = layer.channel_multiplier, layer.depthwise_channels
    dtype, acc = layer.dtype, accumulate_dtype(layer.dtype)

    x = te.placeholder((n, h, w, c), dtype, name="X")
    dwf = te.placeholder((kh, kw, c, m), dtype, name="DW")
    if pack:
        pwf = te.placeholder(packed_pointwise_shape(layer, pack), dtype, name="PW")

        def weight(r_, k_):
            return pwf[k_ // pack, r_, k_ % pack]
    else:
        pwf = te.placeholder((1, 1, cm, o), dtype, name="PW")

        def weight(r_, k_):
            return pwf[0, 0, r_, k_]

    inputs = [x, dwf, pwf]

    source = x
    if pt or pb or pl or pr:
        def pad(b, i, j, q):
            inside = tirx.all(i >= pt, i < pt + h, j >= pl, j < pl + w)
            return tirx.if_then_else(inside, x[b, i - pt, j - pl, q], tirx.const(0, dtype))

        source = te.compute((n, h + pt + pb, w + pl + pr, c), pad, name="pad")

    rkh = te.reduce_axis((0, kh), "kh")
    rkw = te.reduce_axis((0, kw), "kw")

    def depthwise(b, i, j, q):
        pixel = source[b, i * sh + rkh * dh, j * sw + rkw * dw, q // m]
        return te.sum(pixel.astype(acc) * dwf[rkh, rkw, q // m, q % m].astype(acc), axis=[rkh, rkw])

    if pixels:
        if pixels < oh * ow:
            raise ValueError(f"pixels ({pixels}) must cover the {oh * ow} output pixels")

        def flat_depthwise(b, p, q):
            p = tirx.min(p, oh * ow - 1) if pixels > oh * ow else p
            return depthwise(b, p // ow, p % ow, q)

        inter = te.compute((n, pixels, cm), flat_depthwise, name="dw")
    else:
        inter = te.compute((n, oh, ow, cm), depthwise, name="dw")
    if acc != dtype:
        # TF rounds the depthwise result to the layer dtype before the pointwise step.
        inter = te.compute(inter.shape, lambda *i: inter(*i).astype(dtype).astype(acc), name="dw_round")
    r = te.reduce_axis((0, cm), "r")
    # Packed, the pointwise step runs over whole panels: the zero channels past O cost a little
    # work but keep every register tile free of a channel test in its reduction loop.
    o_computed = -(-o // pack) * pack if pack else o
    point = te.compute(
        (*inter.shape[:-1], o_computed),
        lambda *i: te.sum(inter[(*i[:-1], r)] * weight(r, i[-1]).astype(acc), axis=r),
        name="pw",
    )

    bias = None
    if layer.bias:
        bias = te.placeholder((o,), dtype, name="B")
        inputs.append(bias)

    def epilogue(*index):
        value = point(*index)
        k = index[-1]
        if bias is not None:
            value = value + bias[k].astype(acc)
        # Written as selects so that NaN passes through, as in TF and numpy: TVM's max/min lower
        # to compare-and-select, which turns max(NaN, 0) into 0.
        zero, six = tirx.const(0, acc), tirx.const(6, acc)
        if layer.activation == "relu":
            value = tirx.Select(value < zero, zero, value)
        elif layer.activation == "relu6":
            value = tirx.Select(value < zero, zero, tirx.Select(value > six, six, value))
        return value.astype(dtype)

    # Flat, "out" is [N, OH*OW, O]: the schedule restores NHWC with transform_layout.
    out = te.compute((n, oh * ow, o) if pixels else (n, oh, ow, o), epilogue, name="out")
    return LayerCompute(layer, tuple(inputs), out)

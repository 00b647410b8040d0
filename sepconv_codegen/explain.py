"""What a separable layer computes and why it is cheaper, with the layer's own numbers.

Every figure is computed from the layer (and, for the claims about channel_multiplier, checked
numerically with the reference on random filters); nothing is canned.
"""

from __future__ import annotations

import numpy as np

from .reference import reference
from .spec import SeparableConv2D

__all__ = ["explain_layer", "combined_filter"]


def combined_filter(depthwise: np.ndarray, pointwise: np.ndarray) -> np.ndarray:
    """The equivalent conv2d filter [KH, KW, C, O]: W[kh,kw,q,k] = sum_r dw[kh,kw,q,r] * pw[q*M+r,k]."""
    kh, kw, c, m = depthwise.shape
    o = pointwise.shape[-1]
    pw = pointwise.reshape(c, m, o)
    return np.einsum("hwqr,qrk->hwqk", depthwise.astype(np.float64), pw.astype(np.float64))


# The numeric demonstrations run on filters cut to at most this many taps, filters per channel and
# output channels (and 8 input channels), so explain allocates well under a few MB whatever the
# layer. The rank of a slice, min(M, KH*KW, O) for random filters, is unchanged by the cut as long as
# it is at most _RANK_CAP: every real layer.
_RANK_CAP = 64


def _rank_per_channel(layer: SeparableConv2D, rng: np.random.Generator) -> int:
    """The largest rank of W[:, :, q, :] (KH*KW x O) over a few input channels q, random filters.

    Computed on filters cut to at most _RANK_CAP taps (the KH*KW taps flattened), filters and
    outputs: the rank is that of the real slice whenever min(M, KH*KW, O) <= _RANK_CAP.
    """
    kh, kw = layer.kernel_size
    taps = min(kh * kw, _RANK_CAP)
    c = min(layer.in_channels, 8)  # a few input channels are enough to show the bound
    m, o = min(layer.channel_multiplier, _RANK_CAP), min(layer.out_channels, _RANK_CAP)
    dw = rng.standard_normal((taps, 1, c, m))
    pw = rng.standard_normal((1, 1, c * m, o))
    w = combined_filter(dw, pw)
    return max(int(np.linalg.matrix_rank(w[:, 0, q, :])) for q in range(c))


def _small_copy(layer: SeparableConv2D) -> SeparableConv2D:
    """The same layer on a small input, so the numeric demonstration stays instant.

    The kernel (to 16) and dilation (to 8) are cut too when larger: the reference loops over every
    tap of a padded input, and the demonstration does not depend on them.
    """
    n, h, w, c = layer.input_shape
    return layer.replace(input_shape=[1, min(h, 6), min(w, 6), min(c, 4)],
                         out_channels=min(layer.out_channels, 6), name="demo", padding="SAME",
                         kernel_size=[min(k, 16) for k in layer.kernel_size],
                         dilation=[min(d, 8) for d in layer.dilation])


def _channel_spread(layer: SeparableConv2D, ones: bool, rng: np.random.Generator) -> float:
    """Largest difference between output channels, M = 1, with an all-ones or a random pointwise filter."""
    demo = _small_copy(layer).replace(channel_multiplier=1, bias=False, activation=None)
    x = rng.standard_normal(demo.input_shape)
    dw = rng.standard_normal(demo.depthwise_filter_shape)
    shape = demo.pointwise_filter_shape
    out = reference(demo, x, dw, np.ones(shape) if ones else rng.standard_normal(shape))
    return float(np.abs(out - out[..., :1]).max())


def explain_layer(layer: SeparableConv2D, seed: int = 0) -> str:
    """A plain-text explanation of ``layer`` for a learner."""
    rng = np.random.default_rng(seed)
    n, h, w, c = layer.input_shape
    _, oh, ow, o = layer.output_shape
    (kh, kw), (sh, sw), (dh, dw_) = layer.kernel_size, layer.strides, layer.dilation
    (pt, pb), (pl, pr) = layer.pads
    m, cm = layer.channel_multiplier, layer.depthwise_channels
    lines = [
        f"Layer {layer.name!r}: separable_conv2d of a {n}x{h}x{w}x{c} input (N, H, W, C) into {n}x{oh}x{ow}x{o}.",
        "",
        "What it computes",
        f"  1. depthwise {kh}x{kw}, stride {sh}x{sw}, dilation {dh}x{dw_}: each of the {c} input channels is",
        f"     convolved with its own {m} filter(s), giving {c}*{m} = {cm} channels; nothing mixes channels.",
        f"     D[b,i,j,q*{m}+r] = sum_(di<{kh}, dj<{kw}) x[b, {sh}*i + {dh}*di - {pt}, {sw}*j + {dw_}*dj - {pl}, q] * dw[di,dj,q,r]",
        f"  2. pointwise 1x1: each output channel k < {o} mixes all {cm} depthwise channels.",
        f"     y[b,i,j,k] = sum_(c' < {cm}) D[b,i,j,c'] * pw[0,0,c',k]",
    ]
    if layer.bias or layer.activation:
        post = " + bias[k]" if layer.bias else ""
        act = f", then {layer.activation}" if layer.activation else ""
        lines.append(f"  3. epilogue: y{post}{act}.")
    lines += [
        f"  Padding {layer.padding!r}: top {pt}, bottom {pb}, left {pl}, right {pr} zeros"
        + (" (TF puts the odd pixel at the bottom/right)."
           if layer.padding == "SAME" and (pt != pb or pl != pr) else "."),
        "",
    ]
    sep_m, conv_m = layer.macs, layer.conv2d_macs
    cheaper = sep_m < conv_m
    if cheaper:
        lines.append("Why it is cheaper than conv2d (same input, output and kernel)")
    else:  # a 1x1 kernel, or M >= KH*KW or close to O: the factorization costs more than it saves
        lines.append("Cost against conv2d (same input, output and kernel): here separable is NOT cheaper")
    bound, rank = min(m, kh * kw, o), _rank_per_channel(layer, rng)
    if bound <= _RANK_CAP:
        rank_text = f"with random filters it has rank {rank}"
    else:  # M, KH*KW and O all above the cap: say what was checked
        rank_text = (f"with random filters cut to {_RANK_CAP} taps, filters and outputs it has rank "
                     f"{rank}, the most it can")
    sep_p, conv_p = layer.param_count, layer.conv2d_param_count
    lines += [
        f"  parameters: separable {kh}*{kw}*{cm} + {cm}*{o}{' + ' + str(o) if layer.bias else ''} = {sep_p:,}"
        f"   conv2d {kh}*{kw}*{c}*{o}{' + ' + str(o) if layer.bias else ''} = {conv_p:,}   ratio {sep_p / conv_p:.4f}",
        f"  MACs:       separable {sep_m:,} (depthwise {layer.depthwise_macs:,}, pointwise {layer.pointwise_macs:,})"
        f"   conv2d {conv_m:,}   ratio {sep_m / conv_m:.4f}",
        f"  (without bias the ratio is M/O + M/(KH*KW) = {m}/{o} + {m}/{kh * kw} = {m / o + m / (kh * kw):.4f}; "
        + (f"{conv_m / sep_m:.1f}x fewer MACs)" if cheaper else
           f"{sep_m / conv_m:.1f}x the MACs of conv2d: it is cheaper only when M is well below both"
           f" KH*KW and O)"),
        "",
        f"What channel_multiplier (M = {m}) does",
        f"  The layer equals a conv2d whose filter is factored: W[kh,kw,q,k] = sum_(r<{m}) dw[kh,kw,q,r] * pw[q*{m}+r,k].",
        f"  For each input channel q the {kh * kw}x{o} slice W[:,:,q,:] has rank at most M = {m}"
        f" (here at most {bound}); {rank_text}.",
    ]
    ones, random = _channel_spread(layer, True, rng), _channel_spread(layer, False, rng)
    lines += [
        "  With M = 1 and an all-ones pointwise filter every output channel is the same (the sum over input",
        "  channels of their convolutions): on random data the largest difference between output channels",
        f"  is {ones:.3g}; with a random pointwise filter it is {random:.3g}.",
        "  Separable conv2d is therefore not a drop-in conv2d: M controls how rich the factorization is",
        "  (4 to 8 is typical for an RGB input; MobileNet uses 1 where C is large).",
    ]
    return "\n".join(lines)

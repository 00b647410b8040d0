"""The reference against a literal transcription of the formula, one output element at a time."""

import itertools

import numpy as np
import pytest

from sepconv_codegen import SeparableConv2D, SpecError, reference
from tests.conftest import random_arrays


def formula(layer, x, dw, pw, bias=None):
    """output[b,i,j,k] = sum_{di,dj,q,r} x[b, s*i + d*di - pt, s*j + d*dj - pl, q] dw[di,dj,q,r] pw[0,0,qM+r,k]."""
    n, h, w, c = layer.input_shape
    _, oh, ow, o = layer.output_shape
    (kh, kw), (sh, sw), (dh, dw_) = layer.kernel_size, layer.strides, layer.dilation
    (pt, _), (pl, _) = layer.pads
    m = layer.channel_multiplier
    out = np.zeros(layer.output_shape)
    for b, i, j, k in itertools.product(range(n), range(oh), range(ow), range(o)):
        total = 0.0
        for di, dj, q, r in itertools.product(range(kh), range(kw), range(c), range(m)):
            y, xx = sh * i + dh * di - pt, sw * j + dw_ * dj - pl
            if 0 <= y < h and 0 <= xx < w:
                total += float(x[b, y, xx, q]) * float(dw[di, dj, q, r]) * float(pw[0, 0, q * m + r, k])
        if bias is not None:
            total += float(bias[k])
        if layer.activation == "relu":
            total = max(total, 0.0)
        elif layer.activation == "relu6":
            total = min(max(total, 0.0), 6.0)
        out[b, i, j, k] = total
    return out


CASES = {
    "same_even_kernel": SeparableConv2D(input_shape=(1, 5, 6, 2), kernel_size=(2, 4), out_channels=3),
    "stride2_mult3_bias_relu6": SeparableConv2D(input_shape=(2, 7, 5, 2), strides=2, channel_multiplier=3,
                                                out_channels=4, bias=True, activation="relu6"),
    "dilated_valid": SeparableConv2D(input_shape=(1, 7, 7, 3), dilation=2, padding="VALID", out_channels=2,
                                     activation="relu"),
    "explicit_uneven": SeparableConv2D(input_shape=(1, 4, 5, 2), padding=((2, 0), (0, 1)), strides=(1, 2)),
}


@pytest.mark.parametrize("name", CASES)
def test_reference_follows_the_formula(name):
    layer = CASES[name]
    arrays = random_arrays(layer, seed=3)
    bias = arrays[3] if layer.bias else None
    got = reference(layer, *arrays[:3], bias)
    np.testing.assert_allclose(got, formula(layer, *arrays[:3], bias), rtol=1e-12, atol=1e-12)


def test_reference_checks_shapes_and_bias():
    layer = CASES["same_even_kernel"]
    x, dw, pw = random_arrays(layer)
    with pytest.raises(SpecError, match="depthwise_filter"):
        reference(layer, x, dw[..., :1, :], pw)
    with pytest.raises(SpecError, match="bias"):
        reference(layer, x, dw, pw, np.zeros(3))
    with pytest.raises(SpecError, match="layer must be a SeparableConv2D, got str"):
        reference("layer", x, dw, pw)
    with pytest.raises(SpecError, match="input must hold real numbers, got dtype bool"):
        reference(layer, x > 0, dw, pw)
    with pytest.raises(SpecError, match="pointwise_filter must hold real numbers, got dtype complex"):
        reference(layer, x, dw, pw + 1j)

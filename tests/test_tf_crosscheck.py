"""Cross-check against TensorFlow itself: tf.nn.separable_conv2d and keras.layers.SeparableConv2D.

The operation is TF's, so TF is the final word on padding, channel order and output shape. The
float64 reference is compared with TF on a sweep of geometries (cheap: no kernel is built), and
the compiled kernels (TVM and the C backend) on a set of layers chosen to hit every rule in
SEMANTICS.md that TF can express: SAME with the odd pixel at the bottom/right, VALID, explicit
padding, dilation, channel multipliers, non-square kernels, batch > 1, bias and activations,
float16 and float64. TF cannot run unequal strides or dilation with stride; the reference and the
PyTorch cross-check cover those. Skipped when TensorFlow is absent (pip install '.[tf]').
"""

from __future__ import annotations

import itertools
import os

import numpy as np
import pytest

import sepconv_codegen as sc
from tests.conftest import random_arrays

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
tf = pytest.importorskip("tensorflow", reason="pip install 'sepconv_codegen[tf]' (tensorflow-cpu)")

# Ours against TF, relative to max(1, |TF|). float16: both round the depthwise result to float16,
# then sum in float32 in different orders and round once more: a few float16 ulps apart.
TF_TOLERANCE = {"float32": 1e-5, "float64": 1e-12, "float16": 4e-3}


def tf_padding(layer: sc.SeparableConv2D, spelled: str):
    if spelled != "explicit":
        return spelled.upper()
    (pt, pb), (pl, pr) = layer.pads
    return [[0, 0], [pt, pb], [pl, pr], [0, 0]]


def tf_separable(layer: sc.SeparableConv2D, spelled, x, dw, pw, bias=None) -> np.ndarray:
    """What TF computes for ``layer`` (spelled: the padding as the user wrote it)."""
    s = layer.strides[0]
    y = tf.nn.separable_conv2d(x, dw, pw, strides=[1, s, s, 1], padding=tf_padding(layer, spelled),
                               dilations=list(layer.dilation))
    if bias is not None:
        y = tf.nn.bias_add(y, bias)
    if layer.activation == "relu":
        y = tf.nn.relu(y)
    elif layer.activation == "relu6":
        y = tf.nn.relu6(y)
    return y.numpy()


def relative_error(got: np.ndarray, want: np.ndarray) -> float:
    assert got.shape == want.shape
    scale = max(1.0, float(np.abs(want).max()))
    return float(np.abs(got.astype(np.float64) - want.astype(np.float64)).max()) / scale


S = sc.SeparableConv2D
# name -> (padding as the user spelled it, the layer)
CASES = {
    "same_stride2_even_pads_0_1": ("SAME", S(input_shape=(1, 16, 16, 8), strides=2, out_channels=16)),
    "same_stride3_k4_odd": ("SAME", S(input_shape=(1, 13, 11, 5), kernel_size=4, strides=3,
                                      channel_multiplier=2, out_channels=7)),
    "valid_k2x5_mult3_bias_relu": ("valid", S(input_shape=(2, 9, 12, 6), kernel_size=(2, 5), padding="valid",
                                              channel_multiplier=3, out_channels=11, bias=True,
                                              activation="relu")),
    "explicit_pads_stride2": ("explicit", S(input_shape=(1, 10, 9, 4), strides=2, padding=((0, 2), (1, 0)),
                                            channel_multiplier=2, out_channels=5)),
    "dilation2_k3_same_relu6": ("same", S(input_shape=(1, 12, 10, 16), dilation=2, padding="same",
                                          out_channels=24, bias=True, activation="relu6")),
    "kernel_larger_than_input": ("SAME", S(input_shape=(1, 3, 2, 3), kernel_size=5, out_channels=4)),
    "mobilenet_like_14x14": ("SAME", S(input_shape=(1, 14, 14, 64), out_channels=64, bias=True,
                                       activation="relu6")),
    "float16_mult2": ("SAME", S(input_shape=(1, 9, 9, 8), channel_multiplier=2, out_channels=12,
                                dtype="float16", bias=True)),
    "float64_valid_dilation3": ("VALID", S(input_shape=(2, 11, 11, 3), dilation=3, padding="VALID",
                                           out_channels=6, dtype="float64", activation="relu")),
}


@pytest.mark.parametrize(("height", "kernel", "stride", "dilation", "padding"), [
    (h, k, s, d, p)
    for h, k, s, d, p in itertools.product(range(1, 10), (1, 2, 3, 4), (1, 2, 3), (1, 2), ("SAME", "VALID"))
    if (s == 1 or d == 1) and (p == "SAME" or h >= (k - 1) * d + 1)
])
def test_reference_matches_tf_geometry(height, kernel, stride, dilation, padding):
    """Output shape and values of the float64 reference equal TF's, for every small geometry."""
    layer = sc.SeparableConv2D(input_shape=(1, height, height + 1, 2), kernel_size=kernel, strides=stride, dilation=dilation, padding=padding, channel_multiplier=2,
                               out_channels=3, dtype="float64")
    x, dw, pw = random_arrays(layer, seed=height * 100 + kernel * 10 + stride)
    want = tf_separable(layer, padding, x, dw, pw)
    assert layer.output_shape == want.shape
    assert relative_error(sc.reference(layer, x, dw, pw), want) <= 1e-12


@pytest.mark.parametrize("name", CASES)
def test_kernel_matches_tf(name):
    padding, layer = CASES[name]
    arrays = random_arrays(layer, seed=3)
    bias = arrays[3] if layer.bias else None
    want = tf_separable(layer, padding, *arrays[:3], bias)
    got = sc.build(layer, target="llvm")(*arrays[:3], bias=bias)
    assert got.dtype == np.dtype(layer.dtype)
    assert relative_error(got, want) <= TF_TOLERANCE[layer.dtype]
    if layer.dtype == "float32":  # the C backend emits float32 kernels
        got_c = sc.build(layer, target="c")(*arrays[:3], bias=bias)
        assert relative_error(got_c, want) <= TF_TOLERANCE[layer.dtype]


def test_keras_layer_weights_run_unchanged():
    """A trained keras SeparableConv2D's weights, in keras' own layouts, give keras' output."""
    keras = tf.keras
    layer = sc.SeparableConv2D(input_shape=(2, 15, 15, 6), kernel_size=3, strides=2, padding="same",
                               channel_multiplier=2, out_channels=10, bias=True, activation="relu")
    rng = np.random.default_rng(5)
    x = rng.uniform(-1, 1, layer.input_shape).astype(np.float32)
    k = keras.layers.SeparableConv2D(10, 3, strides=2, padding="same", depth_multiplier=2,
                                     activation="relu", use_bias=True)
    k.build((None, 15, 15, 6))
    dw, pw, b = (rng.uniform(-1, 1, w.shape).astype(np.float32) for w in k.get_weights())
    k.set_weights([dw, pw, b])
    want = k(x).numpy()
    got = sc.build(layer)(x, dw, pw, bias=b)
    assert relative_error(got, want) <= TF_TOLERANCE["float32"]


def test_tf_tensors_are_accepted_as_arrays():
    layer = CASES["same_stride2_even_pads_0_1"][1]
    x, dw, pw = random_arrays(layer, seed=4)
    got = sc.build(layer)(tf.constant(x), tf.constant(dw), tf.constant(pw))
    assert relative_error(got, tf_separable(layer, "SAME", x, dw, pw)) <= TF_TOLERANCE["float32"]
    with pytest.raises(sc.SpecError, match="input has dtype float64"):
        sc.build(layer)(tf.constant(x.astype(np.float64)), dw, pw)

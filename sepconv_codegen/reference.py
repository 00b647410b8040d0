"""The reference: a deliberately naive numpy implementation of tf.nn.separable_conv2d.

It follows the formula in the docs literally, tap by tap, in float64, so that it is easy to check by
eye. Every kernel the project generates is tested against it.
"""

from __future__ import annotations

import numpy as np

from .spec import SeparableConv2D, SpecError

__all__ = ["reference"]


def _check(name: str, array: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    try:
        array = np.asarray(array)
    except (TypeError, ValueError) as err:
        raise SpecError(f"{name} must be an array, got {type(array).__name__} ({err})") from None
    if array.shape != tuple(shape):
        raise SpecError(f"{name} must have shape {tuple(shape)}, got {array.shape}")
    if array.dtype.kind not in "fiu":  # any real number converts to float64 exactly enough
        raise SpecError(f"{name} must hold real numbers, got dtype {array.dtype}")
    return array


def reference(
    layer: SeparableConv2D,
    input: np.ndarray,
    depthwise_filter: np.ndarray,
    pointwise_filter: np.ndarray,
    bias: np.ndarray | None = None,
) -> np.ndarray:
    """Compute the layer in float64; returns a float64 array of shape ``layer.output_shape``.

    output[b,i,j,k] = act(bias[k] + sum_{di,dj,q,r} x[b, sh*i + dh*di - pt, sw*j + dw*dj - pl, q]
                                       * dw[di,dj,q,r] * pw[0,0,q*M+r,k])     (x is 0 outside)

    For float16 layers the depthwise result is rounded to float16 before the pointwise step, as
    TensorFlow does.
    """
    if not isinstance(layer, SeparableConv2D):
        raise SpecError(f"layer must be a SeparableConv2D, got {type(layer).__name__}")
    x = _check("input", input, layer.input_shape).astype(np.float64)
    dwf = _check("depthwise_filter", depthwise_filter, layer.depthwise_filter_shape).astype(np.float64)
    pwf = _check("pointwise_filter", pointwise_filter, layer.pointwise_filter_shape).astype(np.float64)
    if layer.bias and bias is None:
        raise SpecError(f"layer {layer.name!r} has a bias: pass bias of shape {layer.bias_shape}")
    if not layer.bias and bias is not None:
        raise SpecError(f"layer {layer.name!r} has no bias, but bias was given")

    n, oh, ow, _ = layer.output_shape
    (pt, pb), (pl, pr) = layer.pads
    (kh, kw), (sh, sw), (dh, dw) = layer.kernel_size, layer.strides, layer.dilation
    c, m = layer.in_channels, layer.channel_multiplier
    padded = np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)))

    # Depthwise: D[b, i, j, q, r] = sum_{di,dj} padded[b, sh*i + dh*di, sw*j + dw*dj, q] * dw[di,dj,q,r]
    depthwise = np.zeros((n, oh, ow, c, m), dtype=np.float64)
    for di in range(kh):
        for dj in range(kw):
            top, left = dh * di, dw * dj
            window = padded[:, top : top + sh * (oh - 1) + 1 : sh, left : left + sw * (ow - 1) + 1 : sw, :]
            depthwise += window[..., :, None] * dwf[di, dj][None, None, None, :, :]
    depthwise = depthwise.reshape(n, oh, ow, c * m)  # channel q*M + r: input-channel major
    if layer.dtype == "float16":
        depthwise = depthwise.astype(np.float16).astype(np.float64)

    out = np.einsum("bijc,ck->bijk", depthwise, pwf[0, 0], optimize=False)
    if bias is not None:
        out = out + _check("bias", bias, layer.bias_shape).astype(np.float64)
    if layer.activation == "relu":
        out = np.maximum(out, 0.0)
    elif layer.activation == "relu6":
        out = np.clip(out, 0.0, 6.0)
    return out

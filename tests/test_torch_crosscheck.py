"""Cross-check against a real framework: PyTorch's grouped conv2d then a 1x1 conv.

TF's SAME padding is applied explicitly (asymmetric where TF pads the odd pixel at the
bottom/right); PyTorch's own symmetric padding would be wrong there. Skipped when torch is absent.
"""

import numpy as np
import pytest

import sepconv_codegen as sc
from tests.conftest import random_arrays

torch = pytest.importorskip("torch", reason="pip install 'sepconv_codegen[torch]' (torch==2.13.0)")
F = torch.nn.functional


def torch_separable(layer, x, dw, pw, bias=None):
    """NHWC numpy in, NHWC numpy out, computed by torch in float64."""
    (pt, pb), (pl, pr) = layer.pads
    kh, kw, c, m = dw.shape
    t = torch.from_numpy(x.astype(np.float64)).permute(0, 3, 1, 2)
    t = F.pad(t, (pl, pr, pt, pb))
    # TF depthwise [KH, KW, C, M] -> torch [C*M, 1, KH, KW]; output channel q*M + r in both.
    w_dw = torch.from_numpy(dw.astype(np.float64)).permute(2, 3, 0, 1).reshape(c * m, 1, kh, kw)
    t = F.conv2d(t, w_dw, stride=layer.strides, dilation=layer.dilation, groups=c)
    w_pw = torch.from_numpy(pw[0, 0].astype(np.float64)).T[:, :, None, None]
    b = torch.from_numpy(bias.astype(np.float64)) if bias is not None else None
    t = F.conv2d(t, w_pw, bias=b)
    if layer.activation == "relu":
        t = F.relu(t)
    elif layer.activation == "relu6":
        t = F.relu6(t)
    return t.permute(0, 2, 3, 1).numpy()


CASES = {
    "mobilenet_block2_224_pads_0_1": sc.SeparableConv2D(input_shape=(1, 24, 24, 16), strides=2, out_channels=32),
    "mult4_k5_bias_relu6": sc.SeparableConv2D(input_shape=(2, 11, 9, 3), kernel_size=5, channel_multiplier=4,
                                              out_channels=16, bias=True, activation="relu6"),
    "dilation2_k4_even_same": sc.SeparableConv2D(input_shape=(1, 10, 10, 8), kernel_size=4, dilation=2,
                                                 out_channels=8, activation="relu"),
    "explicit_stride_1x2": sc.SeparableConv2D(input_shape=(1, 8, 9, 4), padding=((0, 2), (1, 0)),
                                              strides=(1, 2), channel_multiplier=2, out_channels=5),
}


@pytest.mark.parametrize("name", CASES)
def test_kernel_matches_pytorch(name):
    layer = CASES[name]
    arrays = random_arrays(layer, seed=7)
    bias = arrays[3] if layer.bias else None
    want = torch_separable(layer, *arrays[:3], bias)
    # The reference and torch agree to float64 rounding...
    np.testing.assert_allclose(sc.reference(layer, *arrays[:3], bias), want, rtol=1e-10, atol=1e-10)
    # ...and the float32 kernel agrees with torch within float32 accumulation error.
    got = sc.build(layer)(*arrays[:3], bias=bias)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_symmetric_padding_would_be_wrong():
    """The reason for explicit padding: torch's padding=1 is not TF's SAME at stride 2 on even sizes."""
    layer = CASES["mobilenet_block2_224_pads_0_1"]
    x, dw, pw = random_arrays(layer, seed=1)
    c = layer.in_channels
    t = torch.from_numpy(x.astype(np.float64)).permute(0, 3, 1, 2)
    w = torch.from_numpy(dw.astype(np.float64)).permute(2, 3, 0, 1).reshape(c, 1, 3, 3)
    symmetric = F.conv2d(t, w, stride=2, padding=1, groups=c)
    symmetric = F.conv2d(symmetric, torch.from_numpy(pw[0, 0].astype(np.float64)).T[:, :, None, None])
    assert np.abs(symmetric.permute(0, 2, 3, 1).numpy() - sc.reference(layer, x, dw, pw)).max() > 1e-3


def test_torch_tensors_are_accepted_as_arrays():
    layer = CASES["mult4_k5_bias_relu6"]
    x, dw, pw, b = random_arrays(layer, seed=2)
    kernel = sc.build(layer)
    got = kernel(torch.from_numpy(x), torch.from_numpy(dw), torch.from_numpy(pw), bias=torch.from_numpy(b))
    np.testing.assert_allclose(got, torch_separable(layer, x, dw, pw, b), rtol=1e-5, atol=1e-5)
    with pytest.raises(sc.SpecError, match="depthwise_filter: a Tensor that numpy cannot convert"):
        kernel(x, torch.from_numpy(dw).requires_grad_(), pw, bias=b)

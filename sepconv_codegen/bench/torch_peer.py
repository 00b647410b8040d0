"""PyTorch: a grouped (depthwise) conv2d then a 1x1 conv2d, channels_last, under inference_mode.

Padding: TF SAME pads may be asymmetric (224x224, k3, s2 pads (0, 1)), which conv2d's symmetric
``padding=`` cannot express. The symmetric part goes to conv2d (free) and only the remainder, when
there is one, to an explicit F.pad (a copy). Weights (TF layout in):

    depthwise [C*M, 1, KH, KW]   groups=C: output channel q*M + r reads input channel q, as in TF
    pointwise [O, C*M, 1, 1]
"""

from __future__ import annotations

import numpy as np

from ..spec import SeparableConv2D
from .peers import Bound, Peer


def _split_pads(layer: SeparableConv2D) -> tuple[tuple[int, int], tuple[int, int, int, int] | None]:
    """(conv2d padding (h, w), F.pad amounts (left, right, top, bottom) or None)."""
    (pt, pb), (pl, pr) = layer.pads
    common_h, common_w = min(pt, pb), min(pl, pr)
    rest = (pl - common_w, pr - common_w, pt - common_h, pb - common_h)
    return (common_h, common_w), (rest if any(rest) else None)


class TorchPeer(Peer):
    name = "torch"
    modules = ("torch",)
    distribution = "torch"
    dtypes = ("float32", "float64")

    def version(self) -> str:
        import torch

        return str(torch.__version__)

    def build(self, layer: SeparableConv2D, arrays: list[np.ndarray], threads: int) -> Bound:
        import torch
        import torch.nn.functional as F

        # Global to the process: the runner builds every peer for a thread count right before it
        # times them, so this holds for the whole interleaved run.
        torch.set_num_threads(threads)
        channels_last = torch.channels_last
        x_nhwc, dw, pw = arrays[:3]
        kh, kw = layer.kernel_size
        cm = layer.depthwise_channels
        x = torch.from_numpy(x_nhwc).permute(0, 3, 1, 2).contiguous(memory_format=channels_last)
        w_dw = torch.from_numpy(
            np.ascontiguousarray(dw.transpose(2, 3, 0, 1).reshape(cm, 1, kh, kw))
        )
        w_pw = torch.from_numpy(
            np.ascontiguousarray(pw[0, 0].T).reshape(layer.out_channels, cm, 1, 1)
        )
        w_dw = w_dw.contiguous(memory_format=channels_last)
        w_pw = w_pw.contiguous(memory_format=channels_last)
        bias = torch.from_numpy(arrays[3]) if layer.bias else None
        conv_pad, extra_pad = _split_pads(layer)
        groups, strides, dilation = layer.in_channels, layer.strides, layer.dilation
        activation = layer.activation
        last = {}

        def run():
            with torch.inference_mode():
                inp = x if extra_pad is None else F.pad(x, extra_pad)
                mid = F.conv2d(inp, w_dw, None, strides, conv_pad, dilation, groups)
                y = F.conv2d(mid, w_pw, bias)
                if activation == "relu":
                    y = F.relu_(y)
                elif activation == "relu6":
                    y = F.hardtanh_(y, 0.0, 6.0)
            last["y"] = y
            return y

        def output() -> np.ndarray:
            return last["y"].permute(0, 2, 3, 1).numpy().copy()

        notes = "channels_last; " + ("F.pad + conv2d" if extra_pad else "conv2d padding")
        return Bound(run, output, notes)

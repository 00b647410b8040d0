"""sepconv_codegen: fast, checked depthwise-separable convolution kernels for your hardware.

    >>> import numpy as np, sepconv_codegen as sc
    >>> layer = sc.SeparableConv2D(input_shape=(1, 56, 56, 128), out_channels=128)
    >>> kernel = sc.build(layer, target="llvm")
    >>> y = kernel(x, depthwise_filter, pointwise_filter)        # TF layouts, NHWC

TVM is imported only when something is compiled or loaded, so the spec, the reference and the C
emitter work without it.
"""

from __future__ import annotations

__version__ = "0.1.0"

from .builder import build  # noqa: E402 - TVM itself is imported on first compile
from .reference import reference
from .schedule.knobs import Knobs
from .spec import Network, SeparableConv2D, SpecError, mobilenet_v1
from .specfile import load_spec
from .tuning.tuner import tune  # the `tune` command from Python; imports no TVM

__all__ = [
    "Knobs",
    "Network",
    "SeparableConv2D",
    "SpecError",
    "__version__",
    "build",
    "emit_c",
    "load",
    "load_spec",
    "mobilenet_v1",
    "reference",
    "tune",
]


def load(path):
    """Load a kernel exported with ``kernel.export(path)``, compiling nothing."""
    from .tvm_backend.module import load as _load

    return _load(path)


def emit_c(layer, out_dir, knobs=None, weights=None):
    """Write standalone C for a layer; see :func:`sepconv_codegen.cgen.emit.emit_c`."""
    from .cgen.emit import emit_c as _emit_c

    return _emit_c(layer, out_dir, knobs=knobs, weights=weights)


"""Checking and timing a built kernel on random data: what `build` prints for every layer."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .kernel import Kernel
from .reference import reference
from .spec import SeparableConv2D

# Max error allowed against the float64 reference, relative to max(1, |reference|) (SEMANTICS.md).
TOLERANCE = {"float32": 1e-5, "float64": 1e-12, "float16": 2e-3}


def tolerance(layer: SeparableConv2D) -> float:
    """TOLERANCE for the layer's dtype, widened for long reductions.

    Rounding error of a sum grows with its length n: about sqrt(n) units of roundoff for random
    terms. Each output sums KH*KW depthwise products and then C*M pointwise ones, and the
    inputs of random_inputs keep every partial sum of order 1, so the bound is
    max(TOLERANCE, eps * sqrt(n)) for the accumulation type (float32 for float16 layers). It is
    TOLERANCE up to n = 7000 in float32 (MobileNet's largest n is 1033); at n = 400009
    (4 channels x multiplier 100000) the error measured on this kernel was 1.1e-5, and the bound is
    7.5e-5.
    """
    kh, kw = layer.kernel_size
    n = kh * kw + layer.depthwise_channels
    eps = float(np.finfo(np.float64 if layer.dtype == "float64" else np.float32).eps)
    return max(TOLERANCE[layer.dtype], eps * n**0.5)


def random_inputs(layer: SeparableConv2D, seed: int = 0) -> list[np.ndarray]:
    """input, depthwise, pointwise[, bias] in the layer's dtype, scaled as a trained network's.

    Input and bias are uniform in [-1, 1]; each filter is uniform in [-1, 1] divided by the square
    root of its fan-in (KH*KW for the depthwise, C*M for the pointwise), so outputs are of order 1
    at every layer size and an absolute error means the same thing for every layer.
    """
    rng = np.random.default_rng(seed)
    kh, kw = layer.kernel_size
    scaled = [
        (layer.input_shape, 1.0),
        (layer.depthwise_filter_shape, (kh * kw) ** -0.5),
        (layer.pointwise_filter_shape, layer.depthwise_channels ** -0.5),
    ]
    if layer.bias:
        scaled.append((layer.bias_shape, 1.0))
    return [(rng.uniform(-1, 1, size=shape) * scale).astype(layer.dtype) for shape, scale in scaled]


@dataclass(frozen=True)
class CheckResult:
    max_abs_error: float
    max_rel_error: float  # relative to max(1, |reference|)
    tolerance: float

    @property
    def ok(self) -> bool:
        return self.max_rel_error <= self.tolerance


def check_kernel(kernel: Kernel, seed: int = 0) -> CheckResult:
    """Run the kernel on random data and compare it with the reference."""
    layer = kernel.layer
    arrays = random_inputs(layer, seed)
    bias = arrays[3] if layer.bias else None
    got = kernel(*arrays[:3], bias=bias).astype(np.float64)
    want = reference(layer, *arrays[:3], bias)
    abs_err = float(np.abs(got - want).max())
    return CheckResult(abs_err, abs_err / max(1.0, float(np.abs(want).max())), tolerance(layer))


def time_kernel(kernel: Kernel, repeat: int = 15, min_seconds: float = 0.02, seed: int = 0) -> float:
    """Median seconds per call over ``repeat`` batches of calls, each batch at least min_seconds."""
    layer = kernel.layer
    arrays = random_inputs(layer, seed)
    if hasattr(kernel, "time"):  # TVM kernels: TVM's own evaluator, no Python in the timed loop
        return statistics.median(kernel.time(arrays, number=1, repeat=repeat,
                                             min_repeat_ms=int(min_seconds * 1000)))
    run = kernel.bind(*arrays[:3], bias=arrays[3] if layer.bias else None)
    run()
    return statistics.median(seconds_per_call(run, min_seconds) for _ in range(repeat))


def seconds_per_call(run: Callable[[], object], min_seconds: float) -> float:
    """Seconds per call of ``run``, called back to back for at least ``min_seconds``."""
    count, start = 0, time.perf_counter()
    while True:
        run()
        count += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return elapsed / count

"""The machine's measured limits and the roofline bound of a layer.

peak: the best single-thread sgemm rate of the BLAS libraries at hand (torch.mm, numpy.matmul with
its BLAS pool held to one thread by threadpoolctl), scaled by the thread count. A vendor GEMM is the
closest thing to peak FMA throughput a Python process can measure, and measuring beats a
datasheet on a VM whose CPU model says "AMD EPYC" and nothing else.

bandwidth: a large array copy (bytes read + bytes written over the time), numpy single-threaded
and torch at each thread count, best of several. The arrays are far larger than the caches.

bound(layer) = max(flops / peak, bytes / bandwidth), with bytes the compulsory traffic: input,
filters (and bias) and output, each moved once. Our fraction of it is bound / our time.
"""

from __future__ import annotations

import importlib.util
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..spec import SeparableConv2D

__all__ = ["Roofline", "layer_bytes", "measure_roofline"]

GEMM_SIZE = 1024  # 2.1 GFLOP per product: ~25 ms at 80 GFLOP/s, long enough to time
COPY_BYTES = 64 << 20  # 64 MiB per array: twice the largest L3 this is likely to meet
REPEATS = 5


def layer_bytes(layer: SeparableConv2D) -> int:
    """Compulsory memory traffic of one call: input, filters, bias and output, each once."""
    itemsize = np.dtype(layer.dtype).itemsize
    shapes = [
        layer.input_shape,
        layer.depthwise_filter_shape,
        layer.pointwise_filter_shape,
        layer.output_shape,
    ]
    if layer.bias:
        shapes.append(layer.bias_shape)
    return itemsize * sum(int(np.prod(s)) for s in shapes)


@dataclass(frozen=True)
class Roofline:
    """Measured peak FLOP/s per thread and copy bandwidth per thread count."""

    peak_flops_per_thread: float
    peak_gauge: str  # which measurement gave the peak, e.g. "torch.mm"
    bandwidth: dict[int, float]  # thread count -> bytes/s
    bandwidth_gauge: dict[int, str]
    gauges: dict[str, float] = field(default_factory=dict)  # every measurement, for the record
    notes: dict[str, str] = field(default_factory=dict)  # which BLAS, and settings that slow it

    def peak_flops(self, threads: int) -> float:
        return self.peak_flops_per_thread * threads

    def bound_seconds(self, layer: SeparableConv2D, threads: int) -> float:
        """The roofline time of ``layer``: max(compute time at peak, traffic time at bandwidth)."""
        bandwidth = self.bandwidth.get(threads) or max(self.bandwidth.values())
        return max(layer.flops / self.peak_flops(threads), layer_bytes(layer) / bandwidth)

    def best_of(self, other: Roofline) -> Roofline:
        """The higher peak and the higher bandwidth of two measurements of the same machine.

        A peak is what the machine can do, so a slow moment (a busy neighbour on a shared VM)
        must not lower it: a run measures at its start and at its end and keeps the best.
        """
        peak = max((self, other), key=lambda r: r.peak_flops_per_thread)
        bandwidth, gauge = {}, {}
        for t in self.bandwidth:
            best = max((self, other), key=lambda r: r.bandwidth.get(t, 0.0))
            bandwidth[t], gauge[t] = best.bandwidth[t], best.bandwidth_gauge[t]
        gauges = {k: max(self.gauges.get(k, 0.0), other.gauges.get(k, 0.0))
                  for k in {**self.gauges, **other.gauges}}
        return Roofline(peak.peak_flops_per_thread, peak.peak_gauge, bandwidth, gauge, gauges,
                        {**self.notes, **other.notes})

    def to_dict(self) -> dict:
        return {
            "peak_gflops_per_thread": self.peak_flops_per_thread / 1e9,
            "peak_gauge": self.peak_gauge,
            "bandwidth_gb_s": {str(t): b / 1e9 for t, b in self.bandwidth.items()},
            "bandwidth_gauge": {str(t): g for t, g in self.bandwidth_gauge.items()},
            "gauges": dict(self.gauges),
            "notes": dict(self.notes),
            "method": "peak: best single-thread sgemm x threads (measured before and after the "
            "timings, the higher kept); bandwidth: large copy, "
            "(read + written bytes) / time; bound = max(flops/peak, bytes/bandwidth), "
            "bytes = input + filters + output",
        }


def _best_seconds(run: Callable[[], object], repeats: int = REPEATS) -> float:
    run()  # warm: page faults, BLAS buffers, thread start
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _gemm_gauges() -> dict[str, float]:
    """Single-thread sgemm FLOP/s of each available BLAS."""
    n = GEMM_SIZE
    flops = 2.0 * n**3
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    gauges = {}
    if _has("torch"):
        import torch

        before = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            ta, tb = torch.from_numpy(a), torch.from_numpy(b)
            gauges["torch.mm"] = flops / _best_seconds(lambda: torch.mm(ta, tb))
        finally:
            torch.set_num_threads(before)
    if _has("threadpoolctl"):
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1, user_api="blas"):
            gauges["numpy.matmul"] = flops / _best_seconds(lambda: a @ b)
    else:  # without threadpoolctl numpy's BLAS may use every core: not a single-thread figure
        gauges["numpy.matmul (BLAS threads not limited)"] = flops / _best_seconds(lambda: a @ b)
    return gauges


def _copy_gauges(threads: tuple[int, ...]) -> dict[str, float]:
    """Copy bandwidth, (read + written bytes) / s: numpy (1 thread), torch at each thread count."""
    count = COPY_BYTES // 4
    src = np.ones(count, np.float32)
    dst = np.empty_like(src)
    moved = 2.0 * src.nbytes
    gauges = {"numpy.copyto@1": moved / _best_seconds(lambda: np.copyto(dst, src))}
    if _has("torch"):
        import torch

        before = torch.get_num_threads()
        tsrc, tdst = torch.from_numpy(src), torch.from_numpy(dst)
        try:
            for t in threads:
                torch.set_num_threads(t)
                gauges[f"torch.copy_@{t}"] = moved / _best_seconds(lambda: tdst.copy_(tsrc))
        finally:
            torch.set_num_threads(before)
    return gauges


def _blas_notes() -> dict[str, str]:
    """numpy's BLAS and the OpenBLAS variables that can pin it to a slower kernel."""
    notes = {k: os.environ[k] for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE") if k in os.environ}
    if _has("threadpoolctl"):
        from threadpoolctl import threadpool_info

        for info in threadpool_info():
            if info.get("user_api") == "blas":
                notes[f"blas:{info.get('prefix')}"] = (
                    f"{info.get('internal_api')} {info.get('version')} "
                    f"({info.get('architecture', 'architecture unknown')})"
                )
    return notes


def measure_roofline(threads: tuple[int, ...]) -> Roofline:
    """Measure peak and bandwidth now (about a second); noisy on a busy machine, like any timing."""
    gemm = _gemm_gauges()
    peak_gauge = max(gemm, key=gemm.get)
    copies = _copy_gauges(tuple(threads))
    bandwidth, bandwidth_gauge = {}, {}
    for t in threads:
        # A copy at fewer threads is still a lower bound on what t threads can move.
        usable = {k: v for k, v in copies.items() if int(k.rsplit("@", 1)[1]) <= t}
        best = max(usable, key=usable.get)
        bandwidth[t], bandwidth_gauge[t] = usable[best], best
    return Roofline(
        gemm[peak_gauge], peak_gauge, bandwidth, bandwidth_gauge, {**gemm, **copies}, _blas_notes()
    )

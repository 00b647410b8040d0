"""The peer benchmark: our kernels against PyTorch, ONNX Runtime and TFLite (XNNPACK), per layer.

    >>> from sepconv_codegen.bench import run_benchmark
    >>> result = run_benchmark(threads=(1, 2), runs=30)        # MobileNetV1's 13 blocks
    >>> result.totals(1)["speedup_vs_best_peer_total"]

Every implementation is checked against the float64 reference before it is timed; peers are timed
interleaved with ours (timing.py). The peers need the optional extra:
``pip install 'sepconv_codegen[bench]'``.
"""

from __future__ import annotations

from .peers import PEER_NAMES
from .results import BenchResult, ImplResult, LayerRun
from .runner import TOLERANCE, parse_threads, run_benchmark

__all__ = [
    "PEER_NAMES",
    "TOLERANCE",
    "BenchResult",
    "ImplResult",
    "LayerRun",
    "parse_threads",
    "run_benchmark",
]

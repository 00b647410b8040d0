#!/usr/bin/env python3
"""How close each kernel runs to the core's FMA peak: ours and TFLite/XNNPACK's, on one thread.

    python examples/peak_fraction.py [SPEC] [--layers 3,7,13] [--rounds 20] [--vs tflite]

The bench's roofline takes its compute peak from numpy's sgemm, which is itself below the core's
peak. This takes it from a loop of nothing but independent AVX2 FMAs (12 accumulators, more than
FMA latency x FMA ports), compiled here with the system C compiler and run for about half a
millisecond just before every timed sample. A shared machine's speed drifts by tens of percent
over minutes; a sample divided by the peak taken beside it drifts much less, so the fraction of
peak is comparable across layers and runs where absolute times are not.

For each layer it prints the fraction of the FMA peak of each implementation (FLOPs of the whole
layer: depthwise and pointwise), and our median time over the peer's in the same rounds. The FMA
loop touches no memory, so a neighbour that contends for caches or memory slows the kernels and
not the loop; "quiet rounds" gives each implementation's 10th-percentile time against the median
peak, the closest to an undisturbed machine.
The totals line also gives the floor: the time of all layers at exactly the FMA peak over the
peer's total. No kernel can beat the peer's total by more than that.

x86-64 with AVX2 and FMA only (the peak loop is AVX2). Needs a C compiler (cc) and, for the peer,
the bench extra (``pip install -e .[bench]``).
"""

from __future__ import annotations

import argparse
import ctypes
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import sepconv_codegen as sc  # noqa: E402
from sepconv_codegen.bench.ours import bound_tvm_spinning, build_ours  # noqa: E402
from sepconv_codegen.bench.peers import get_peer  # noqa: E402
from sepconv_codegen.bench.runner import TOLERANCE, random_arrays, relative_error  # noqa: E402
from sepconv_codegen.check import seconds_per_call  # noqa: E402
from sepconv_codegen.reference import reference  # noqa: E402
from sepconv_codegen.targets import host_features  # noqa: E402

PEAK_LOOP = r"""
#include <immintrin.h>
#include <time.h>
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t);
                          return t.tv_sec + 1e-9 * t.tv_nsec; }
/* Start values the compiler cannot see, so it cannot merge equal chains (1 + i * 1e-7 does
   round to equal floats, and GCC then drops the duplicate FMAs). */
static volatile float start[12] = {1.0f, 1.1f, 1.2f, 1.3f, 1.4f, 1.5f, 1.6f, 1.7f, 1.8f, 1.9f, 2.0f, 2.1f};
#define D(i) __m256 a##i = _mm256_set1_ps(start[i]);
#define F(i) a##i = _mm256_fmadd_ps(a##i, b, c);
float peak_sink;
/* GFLOP/s of n rounds of 12 independent 8-wide FMAs. */
double fma_peak(long n) {
  D(0) D(1) D(2) D(3) D(4) D(5) D(6) D(7) D(8) D(9) D(10) D(11)
  __m256 b = _mm256_set1_ps(0.9999999f), c = _mm256_set1_ps(1e-8f);
  double t0 = now();
  for (long i = 0; i < n; i++) {
    F(0) F(1) F(2) F(3) F(4) F(5) F(6) F(7) F(8) F(9) F(10) F(11)
    __asm__ volatile("" : "+x"(a0), "+x"(a1), "+x"(a2), "+x"(a3), "+x"(a4), "+x"(a5));
    __asm__ volatile("" : "+x"(a6), "+x"(a7), "+x"(a8), "+x"(a9), "+x"(a10), "+x"(a11));
  }
  double s = now() - t0;
  __m256 r = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)),
                           _mm256_add_ps(_mm256_add_ps(a4, a5), _mm256_add_ps(a6, a7)));
  r = _mm256_add_ps(r, _mm256_add_ps(_mm256_add_ps(a8, a9), _mm256_add_ps(a10, a11)));
  float x[8]; _mm256_storeu_ps(x, r); peak_sink = x[0];
  return n * 12.0 * 16.0 / s / 1e9;
}
"""
PEAK_ROUNDS = 300_000  # ~58 MFLOP: about half a millisecond at 100 GFLOP/s


def has_avx2_fma() -> bool:
    """Whether this CPU runs the peak loop: x86-64 with AVX2 and FMA."""
    return platform.machine() in ("x86_64", "AMD64") and {"avx2", "fma"} <= host_features()


def load_peak_loop(folder: Path):
    if not has_avx2_fma():
        sys.exit("peak_fraction.py: needs an x86-64 CPU with AVX2 and FMA (the peak loop is AVX2)")
    source, lib = folder / "peak.c", folder / "peak.so"
    source.write_text(PEAK_LOOP)
    cmd = ["cc", "-O2", "-mavx2", "-mfma", "-shared", "-fPIC", str(source), "-o", str(lib)]
    try:
        subprocess.run(cmd, check=True, capture_output=True, text=True)
    except (OSError, subprocess.CalledProcessError) as err:
        sys.exit(f"peak_fraction.py: could not compile the FMA loop with {' '.join(cmd)}: {err}")
    peak = ctypes.CDLL(str(lib)).fma_peak
    peak.restype, peak.argtypes = ctypes.c_double, [ctypes.c_long]
    return lambda: peak(PEAK_ROUNDS)


def best_seconds_per_call(run, min_seconds: float = 0.01, repeat: int = 3) -> float:
    """The best of ``repeat`` loops of at least ``min_seconds`` each, per call."""
    return min(seconds_per_call(run, min_seconds) for _ in range(repeat))


def tenth_percentile(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[(len(ordered) - 1) // 10]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("spec", nargs="?", help="a .toml or .json spec (default: MobileNetV1)")
    parser.add_argument("--layers", help="1-based layer numbers, comma-separated (default: all)")
    parser.add_argument("--rounds", type=int, default=20, help="samples per implementation")
    parser.add_argument("--vs", default="tflite", help="one peer: tflite, onnxruntime or torch")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error(f"--rounds must be at least 1, got {args.rounds}")
    network = sc.load_spec(args.spec) if args.spec else sc.mobilenet_v1()
    layers = list(network.layers)
    if args.layers:
        try:
            picks = [int(n) for n in args.layers.split(",")]
        except ValueError:
            parser.error(f"--layers takes numbers like 3,7,13, got {args.layers!r}")
        bad = [n for n in picks if not 1 <= n <= len(layers)]
        if bad:
            parser.error(f"--layers {bad[0]} is not a layer (the network has {len(layers)})")
        layers = [layers[n - 1] for n in picks]

    bound_tvm_spinning()
    try:
        peer = get_peer(args.vs)
    except sc.SpecError as err:
        parser.error(f"--vs: {err}")
    reason = peer.unavailable_reason()
    if reason:
        sys.exit(f"peak_fraction.py: {reason}")
    with tempfile.TemporaryDirectory() as folder:
        peak = load_peak_loop(Path(folder))
        print(f"FMA loop: {statistics.median(peak() for _ in range(5)):.1f} GFLOP/s now, one core")
        print(f"{'':18} {'median':>15}  {'':11}  {'quiet rounds':>15}")
        print(
            f"{'layer':10} {'MFLOP':>7} {'ours':>6} {args.vs:>8}  {'ours/' + args.vs:>11}  "
            f"{'ours':>6} {args.vs:>8}"
        )
        totals = {"flops": 0.0, "ours": 0.0, "peer": 0.0}
        for layer in layers:
            reason = peer.unsupported_reason(layer)
            if reason:
                print(f"{layer.name:10} skipped: {reason}")
                continue
            arrays = random_arrays(layer, seed=0)
            want = reference(layer, *arrays)
            ours = build_ours(layer, "tvm")
            if ours.failure:
                print(f"{layer.name:10} ours: {ours.failure}")
                continue
            impls = {"ours": ours.bind(arrays, 1), "peer": peer.build(layer, arrays, 1)}
            for name, bound in impls.items():  # checked as `bench` checks them
                bound()
                err = relative_error(bound.output(), want)
                if not err <= TOLERANCE[layer.dtype]:
                    sys.exit(f"peak_fraction.py: {name} is wrong on {layer.name} (error {err:.2g}, "
                             f"tolerance {TOLERANCE[layer.dtype]:g})")
            flops = float(layer.flops)
            # Per sample: (seconds, GFLOP/s of the FMA loop run just before it).
            samples = {name: [] for name in impls}
            for _ in range(args.rounds):
                for name, bound in impls.items():
                    gflops = peak()
                    samples[name].append((best_seconds_per_call(bound), gflops))
            fractions = {
                name: [flops / (s * g * 1e9) for s, g in values] for name, values in samples.items()
            }
            fraction = {name: statistics.median(f) for name, f in fractions.items()}
            # Quiet rounds: the 10th percentile of the times against the median of all peaks (a
            # time over the peak read beside it can exceed 100% when that read was disturbed).
            peak_median = statistics.median(g for values in samples.values() for _, g in values)
            best = {
                name: flops / (tenth_percentile([s for s, _ in values]) * peak_median * 1e9)
                for name, values in samples.items()
            }
            ratio = statistics.median(
                a / b for (a, _), (b, _) in zip(samples["ours"], samples["peer"])
            )
            print(
                f"{layer.name:10} {flops / 1e6:7.1f} {fraction['ours']:6.1%} "
                f"{fraction['peer']:8.1%}  {ratio:11.3f}  {best['ours']:6.1%} {best['peer']:8.1%}"
            )
            # Work in units of "seconds at the peak taken beside the sample": drift cancels.
            totals["flops"] += flops
            for name in impls:
                totals[name] += statistics.median(s * g * 1e9 for s, g in samples[name])
        if totals["ours"] and totals["peer"]:
            print(
                f"{'total':10} {totals['flops'] / 1e6:7.1f} "
                f"{totals['flops'] / totals['ours']:6.1%} {totals['flops'] / totals['peer']:8.1%}"
                f"  {totals['ours'] / totals['peer']:11.3f}"
            )
            print(
                f"floor: every layer at the FMA peak would take "
                f"{totals['flops'] / totals['peer']:.3f}x {args.vs}'s time"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())

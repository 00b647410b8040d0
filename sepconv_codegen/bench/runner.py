"""run_benchmark(): our kernels against the peers, layer by layer, at each thread count.

Ours is built once per layer; then, at each thread count and for each layer, each peer is built,
every implementation's output is checked against the float64 reference, and all are timed
interleaved (timing.py). A peer that is missing, cannot express the layer, fails or computes a
wrong answer is reported with the reason and left out of "best peer"; nothing is dropped silently.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable

import numpy as np

from ..builder import check_indexable
from ..host import usable_cores
from ..reference import reference
from ..spec import Network, SeparableConv2D, SpecError, mobilenet_v1
from ..tuning.records import check_database
from . import ours as ours_module
from .machine import machine_info
from .peers import KNOWN_PEERS, PEER_NAMES, Bound, get_peer, parse_peer_names
from .results import BenchResult, ImplResult, LayerRun
from .roofline import Roofline, measure_roofline
from .timing import interleaved

__all__ = ["TOLERANCE", "relative_error", "run_benchmark"]

# Max |got - reference| / max(1, max |reference|) an implementation may show.
TOLERANCE = {"float32": 1e-4, "float64": 1e-10, "float16": 2e-3}
DEFAULT_RUNS = 30
MIN_RUNS_ADVISED = 20
SETTLE_S = 0.02  # > the ~10 ms an OpenMP (torch) pool spins after a call, see timing.py
WARM_S = 0.02  # untimed calls after the pause, until the core is back at speed (timing.py)
IMPLS = ("tvm", "c")


def relative_error(got: np.ndarray, want: np.ndarray) -> float:
    """max |got - want| / max(1, max |want|); inf for a wrong shape or a non-finite value."""
    got = np.asarray(got)
    if got.shape != want.shape or not np.all(np.isfinite(got)):
        return float("inf")
    scale = max(1.0, float(np.abs(want).max()))
    return float(np.abs(got.astype(np.float64) - want).max()) / scale


def as_network(network: Network | SeparableConv2D | None) -> Network:
    """None -> MobileNetV1's blocks; a single layer -> a one-layer network."""
    if network is None:
        return mobilenet_v1()
    if isinstance(network, SeparableConv2D):
        return Network((network,), name=network.name)
    if isinstance(network, Network):
        return network
    raise SpecError(f"network must be a Network or a SeparableConv2D, got {type(network).__name__}")


def random_arrays(layer: SeparableConv2D, seed: int) -> list[np.ndarray]:
    """input, dw, pw[, bias] uniform in [-1, 1], in the layer's dtype."""
    rng = np.random.default_rng(seed)
    shapes = [layer.input_shape, layer.depthwise_filter_shape, layer.pointwise_filter_shape]
    if layer.bias:
        shapes.append(layer.bias_shape)
    return [rng.uniform(-1, 1, size=s).astype(layer.dtype) for s in shapes]


def parse_threads(threads: Iterable[int] | str, name: str = "threads") -> tuple[int, ...]:
    """(1, 2) or '1,2' -> (1, 2); SpecError for anything not a list of positive integers.
    ``name`` is the argument's, in errors ("--threads" on the command line)."""
    items = threads.split(",") if isinstance(threads, str) else list(threads)
    parsed = []
    for item in items:
        text = str(item).strip()
        if isinstance(item, bool) or not text.isdigit() or int(text) < 1:
            raise SpecError(f"{name} must be positive integers like 1,2, got {threads!r}")
        parsed.append(int(text))
    if not parsed:
        raise SpecError(f"{name} must name at least one thread count, got {threads!r}")
    return tuple(dict.fromkeys(parsed))


def _check_options(impl: str, runs: int, peers: Iterable[str], database) -> tuple[str, ...]:
    if impl not in IMPLS:
        raise SpecError(f"impl must be one of {', '.join(IMPLS)}, got {impl!r}")
    if isinstance(runs, bool) or not isinstance(runs, int) or runs < 1:
        raise SpecError(f"runs must be a positive integer, got {runs!r}")
    names = parse_peer_names(peers) if isinstance(peers, str) else tuple(dict.fromkeys(peers))
    for name in names:
        if name not in KNOWN_PEERS:
            raise SpecError(f"unknown peer {name!r} (known: {', '.join(KNOWN_PEERS)})")
    if database is not None:
        check_database(database)
        if impl == "c" and "sepconv-tvm" not in names:
            raise SpecError(f"database {str(database)!r} holds TVM schedules: with impl 'c' it "
                            "applies only to the sepconv-tvm peer, which was not asked for")
    return names


def _bound(roofline: Roofline, layer, threads: int, threads_ours: int | None) -> float | None:
    """Our kernel's roofline time: at the threads it ran on (TVM cannot exceed its pool, the C
    kernel runs on one), and for float32 only (the peak is an sgemm's; a float64 kernel's is
    half of it, a float16 one's is not measured)."""
    if layer.dtype != "float32":
        return None
    return roofline.bound_seconds(layer, min(threads, threads_ours or threads))


def _check(bound: Bound, want: np.ndarray, dtype: str) -> tuple[float, bool]:
    bound()
    error = relative_error(bound.output(), want)
    return error, error <= TOLERANCE[dtype]


def _prepare(
    name: str, make: Callable[[], Bound], want: np.ndarray, dtype: str
) -> tuple[ImplResult, Bound | None]:
    """Build one implementation and check its output; failures become the result's reason."""
    try:
        bound = make()
        error, ok = _check(bound, want, dtype)
    except Exception as err:  # noqa: BLE001 - a peer's own failure is a result to report
        return ImplResult(name, failure=f"{type(err).__name__}: {err}".splitlines()[0]), None
    return ImplResult(name, error=error, ok=ok, notes=bound.notes, details=bound.details), bound


def _run_layer_at(layer, arrays, want, threads: int, ours, peers, settings) -> LayerRun:
    """Build, check and time every implementation of one layer at one thread count."""
    results: dict[str, ImplResult] = {}
    bound: dict[str, Bound] = {}
    if ours.failure:
        results["ours"] = ImplResult("ours", failure=ours.failure)
    else:
        results["ours"], bound["ours"] = _prepare(
            "ours", lambda: ours.bind(arrays, threads), want, layer.dtype
        )
    for peer in peers:
        reason = peer.unsupported_reason(layer)
        if reason:
            results[peer.name] = ImplResult(peer.name, failure=reason)
            continue
        results[peer.name], bound[peer.name] = _prepare(
            peer.name, lambda peer=peer: peer.build(layer, arrays, threads), want, layer.dtype
        )
    bound = {name: b for name, b in bound.items() if b is not None}
    samples = interleaved(
        {n: b.run for n, b in bound.items()},
        rounds=settings["runs"],
        warmup=settings["warmup"],
        settle_s=settings["settle_s"],
        warm_calls=settings["warm_calls"],
        warm_s=settings["warm_s"],
        loop_s=settings["loop_s"],
    )
    for name, s in samples.items():
        results[name].samples = s
    return LayerRun(layer, threads, results)


def _warn_if_busy(log) -> None:
    """Say so when other processes already load the machine: every timing will carry it."""
    if not hasattr(os, "getloadavg"):
        return
    load, cores = os.getloadavg()[0], usable_cores()
    if load > 0.5 * cores:
        log(
            f"note: load average {load:.1f} on {cores} core(s) before starting: other processes "
            "are running, so timings will be noisy"
        )


def _available_peers(names: tuple[str, ...], log) -> tuple[list, dict[str, str]]:
    """(peers that can run here, {peer: why not} for the others)."""
    available, skipped = [], {}
    for name in names:
        peer = get_peer(name)
        reason = peer.unavailable_reason()
        if reason:
            skipped[name] = reason
            log(reason)
        else:
            available.append(peer)
    return available, skipped


def _prepare_layers(network: Network, impl: str, database, seed: int, log) -> list[tuple]:
    """Per layer: (layer, arrays, reference output, our built kernel or why there is none)."""
    prepared, reported = [], set()
    for index, layer in enumerate(network):
        arrays = random_arrays(layer, seed + index)
        want = reference(layer, *arrays[:3], arrays[3] if layer.bias else None)
        ours = ours_module.build_ours(layer, impl, database)
        if ours.failure and ours.failure not in reported:
            reported.add(ours.failure)
            log(f"ours ({impl}): {ours.failure}")
        prepared.append((layer, arrays, want, ours))
    return prepared


def run_benchmark(
    network: Network | SeparableConv2D | None = None,
    threads: Iterable[int] | str = (1, 2),
    peers: Iterable[str] = PEER_NAMES,
    impl: str = "tvm",
    runs: int = DEFAULT_RUNS,
    *,
    database: str | os.PathLike | None = None,
    warmup: int = 2,
    settle_s: float = SETTLE_S,
    warm_calls: int = 1,
    warm_s: float = WARM_S,
    loop_s: float = 0.0,
    seed: int = 0,
    roofline: Roofline | None = None,
    log: Callable[[str], None] | None = None,
    on_run: Callable[[LayerRun], None] | None = None,
) -> BenchResult:
    """Benchmark ``network`` (default: MobileNetV1's 13 separable blocks) against the peers.

    threads: thread counts to run at, e.g. (1, 2). peers: names from PEER_NAMES; a peer whose
    package is missing is skipped with the reason (see ``BenchResult.skipped``). impl: "tvm"
    (sepconv_codegen.build(layer, "llvm", database=...)) or "c" (build(layer, "c")). runs: timed
    rounds (medians over them; 20 or more advised). loop_s: 0 times one call per round (after the
    pause and warm-up of timing.py); more times back-to-back calls for at least that many seconds
    and takes their mean per call. roofline: a Roofline measured before
    (default: measured now, about a second). log: called with one-line messages (skips,
    warnings); on_run: called with each LayerRun as soon as it is timed.

    This process's TVM thread pool is told to spin at most about a millisecond when idle
    (TVM_THREAD_POOL_SPIN_COUNT, unless already set; it only takes effect if no TVM kernel has run
    in this process yet), for the reason given in timing.py.
    """
    log = log or (lambda message: None)
    network = as_network(network)
    thread_counts = parse_threads(threads)
    names = _check_options(impl, runs, peers, database)
    if (isinstance(loop_s, bool) or not isinstance(loop_s, (int, float))
            or not math.isfinite(loop_s) or loop_s < 0):
        raise SpecError(f"loop_s must be zero or a finite number of seconds, got {loop_s!r}")
    for layer in network:
        check_indexable(layer)  # before the peers and the reference allocate its tensors
    if runs < MIN_RUNS_ADVISED:
        log(f"note: {runs} rounds; medians of fewer than {MIN_RUNS_ADVISED} are noisy")
    if max(thread_counts) > usable_cores():
        log(f"note: {max(thread_counts)} threads on {usable_cores()} usable core(s): the peers "
            "oversubscribe the cores, and TVM runs on at most as many threads as its pool has")
    if impl == "tvm" or "sepconv-tvm" in names:  # any TVM kernel's idle pool slows what follows
        ours_module.bound_tvm_spinning()
    _warn_if_busy(log)
    available, skipped = _available_peers(names, log)
    for peer in available:
        if hasattr(peer, "database"):  # our TVM kernels as a peer take the same schedules
            peer.database = database
    settings = {
        "runs": runs,
        "warmup": warmup,
        "settle_s": settle_s,
        "warm_calls": warm_calls,
        "warm_s": warm_s,
        "loop_s": loop_s,
        "seed": seed,
        "tolerance": TOLERANCE,
        "impl": impl,
        "database": str(database) if database is not None else None,
        "tvm_thread_pool_spin_count": os.environ.get("TVM_THREAD_POOL_SPIN_COUNT"),
        "load_average_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }
    measured_here = roofline is None
    if roofline is None:
        roofline = measure_roofline(thread_counts)
    elif any(t not in roofline.bandwidth for t in thread_counts):
        raise SpecError(
            f"the roofline given was measured for threads {sorted(roofline.bandwidth)}, "
            f"not {list(thread_counts)}"
        )
    prepared = _prepare_layers(network, impl, database, seed, log)
    runs_done: list[LayerRun] = []
    for t in thread_counts:
        for layer, arrays, want, ours in prepared:
            run = _run_layer_at(layer, arrays, want, t, ours, available, settings)
            run.threads_effective = ours.threads_in_effect
            run.bound_s = _bound(roofline, layer, t, ours.threads_in_effect)
            runs_done.append(run)
            if on_run:
                on_run(run)
    if measured_here and runs_done:
        before = roofline.peak_flops_per_thread
        roofline = roofline.best_of(measure_roofline(thread_counts))
        if roofline.peak_flops_per_thread > before * 1.02:
            log(f"note: the sgemm peak measured after the timings, {roofline.peak_flops_per_thread / 1e9:.0f} "
                f"GFLOP/s per thread, is above the {before / 1e9:.0f} measured before them; the roofline "
                "fractions in the summary and the JSON use the higher")
        for run in runs_done:
            run.bound_s = _bound(roofline, run.layer, run.threads, run.threads_effective)
    versions = {p.name: p.version() for p in available}
    return BenchResult(
        network.name,
        impl,
        thread_counts,
        names,
        skipped,
        runs_done,
        roofline,
        machine_info(versions),
        settings,
    )

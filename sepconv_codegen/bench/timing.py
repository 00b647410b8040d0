"""Interleaved timing: every implementation once per round, in a rotating order, medians.

Interleaving spreads whatever else the machine is doing (other users, frequency changes) over all
implementations alike, where timing one after the other would hand all of a noisy minute to one of
them. Rotating the order keeps any one implementation from always running right after the same
other one.

Thread pools are the catch. After a call, each runtime's idle workers spin for a while before they
sleep (TVM by default yield-spins for about a second; ONNX Runtime and OpenMP for milliseconds), and
on a small machine a pool still spinning steals cores from whichever implementation runs next.
So each timed call may be preceded by a pause (``settle_s``: the previous implementation's workers
go to sleep) and untimed calls (``warm_calls``, and for at least ``warm_s`` seconds: this
implementation's own pool and caches are hot, as in a network whose layers run back to back). The
timed call is then that implementation alone.

The pause has a cost of its own: a core that slept is slow for a while after it wakes. On the
2-vCPU EPYC VM these figures come from, one call right after a 20 ms sleep took 1.3-1.9x as long
as the same call in a loop (1 thread, 112x112x32 -> 64 layer: 1.45 ms against 0.78-1.06 ms), and
still ~1.5x after one warm call; after 20 ms of warm calls it was within the run-to-run noise of
the loop. Every implementation gets the same pause and warm-up.

A sample is one call by default: the latency of a layer run once, as in a network. With
``loop_s`` it is instead the mean of back-to-back calls over at least that long: each call then
finds its weights and its own last output in cache, as in a layer run in a loop. The two answer
different questions; the benchmark reports either (``bench --loop-ms``), so that a claim made
with one can be checked with the other.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

__all__ = ["Samples", "interleaved"]


@dataclass(frozen=True)
class Samples:
    """Seconds per call of one implementation, one value per round."""

    name: str
    seconds: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def min(self) -> float:
        return min(self.seconds)

    @property
    def max(self) -> float:
        return max(self.seconds)

    def to_dict(self) -> dict:
        return {
            "median_s": self.median,
            "min_s": self.min,
            "max_s": self.max,
            "rounds": len(self.seconds),
        }


def rotation(names: list[str], round_index: int) -> list[str]:
    """The order of round ``round_index``: the list rotated left by round_index places."""
    k = round_index % len(names)
    return names[k:] + names[:k]


def interleaved(
    calls: Mapping[str, Callable[[], object]],
    rounds: int,
    warmup: int = 2,
    settle_s: float = 0.0,
    warm_calls: int = 0,
    clock: Callable[[], int] = time.perf_counter_ns,
    warm_s: float = 0.0,
    loop_s: float = 0.0,
) -> dict[str, Samples]:
    """Time each call once per round for ``rounds`` rounds after ``warmup`` untimed rounds.

    Before each timed call: sleep ``settle_s`` seconds, then make untimed calls: at least
    ``warm_calls`` of them, and more until ``warm_s`` seconds have passed. With ``loop_s`` > 0 a
    sample is the mean seconds per call of back-to-back calls for at least ``loop_s`` seconds
    (at least one call), instead of one call.
    Returns name -> Samples with exactly ``rounds`` values. A call that raises propagates: the
    caller decides whether an implementation that fails is excluded.
    """
    if rounds < 1:
        raise ValueError(f"rounds must be at least 1, got {rounds}")
    if not (math.isfinite(loop_s) and loop_s >= 0):  # inf would never end a sample
        raise ValueError(f"loop_s must be zero or a finite number of seconds, got {loop_s}")
    names = list(calls)
    if not names:
        return {}
    for r in range(warmup):
        for name in rotation(names, r):
            calls[name]()
    samples: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in rotation(names, r):
            call = calls[name]
            if settle_s > 0:
                time.sleep(settle_s)
            warm_until = clock() + warm_s * 1e9
            made = 0
            while made < warm_calls or clock() < warm_until:
                call()
                made += 1
            start = clock()
            loop_until = start + loop_s * 1e9
            calls_timed = 0
            while True:
                call()
                calls_timed += 1
                end = clock()
                if end >= loop_until:
                    break
            samples[name].append((end - start) / 1e9 / calls_timed)
    return {name: Samples(name, tuple(values)) for name, values in samples.items()}

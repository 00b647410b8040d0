"""Measuring one candidate, isolated from the tuner: a crash, a hang or a compile error in a
candidate costs that candidate, never the session.

`measure_candidate` runs in a worker process (see LocalRunner); it receives plain data and
returns plain data.
"""

from __future__ import annotations

import math
import multiprocessing
import statistics
import traceback
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

from ..schedule.knobs import Knobs
from ..spec import SeparableConv2D
from ..targets import Target

__all__ = ["LocalRunner", "Measurement", "measure_candidate"]


@dataclass(frozen=True)
class Measurement:
    knobs: Knobs
    seconds: float | None  # median seconds per call, None when it failed
    error: str | None = None
    samples: tuple[float, ...] = ()
    max_rel_error: float | None = None  # set when checked against the reference


_COMPILED: dict[tuple, object] = {}  # per worker: leaders are re-timed without recompiling


def _geometric_mean(values) -> float:
    values = list(values)
    return math.exp(sum(math.log(v) for v in values) / len(values))


def measure_candidate(layer_data: dict, target: Target, knobs_data: dict, repeat: int, check: bool,
                      threads: int | tuple[int, ...] | None) -> dict:
    """Compile one candidate, time it (and optionally check it); runs in a worker process.

    threads: one thread count, or several: the candidate is then timed at each and its time is the
    geometric mean over them (a schedule good at 1 thread and at 2, not only at one of them).
    """
    try:
        from ..builder import compile_kernel
        from ..check import check_kernel, random_inputs
        from ..tvm_backend._tvm import set_num_threads

        counts = tuple(threads) if isinstance(threads, (tuple, list)) else (threads,)
        layer = SeparableConv2D.from_dict(layer_data)
        key = (layer.workload_key, target.key, tuple(sorted(knobs_data.items())))
        kernel = _COMPILED.get(key)
        if kernel is None:
            if len(_COMPILED) > 64:
                _COMPILED.clear()
            kernel = compile_kernel(layer, target, Knobs.from_dict(knobs_data), "tuning")
            _COMPILED[key] = kernel
        arrays, per_count = random_inputs(layer), []
        for count in counts:
            if count:
                set_num_threads(count)
            per_count.append(kernel.time(arrays, number=1, repeat=repeat, min_repeat_ms=25))
        samples = [_geometric_mean(column) for column in zip(*per_count)]
        seconds = _geometric_mean(statistics.median(values) for values in per_count)
        result = {"seconds": seconds, "samples": samples}
        if check:
            outcome = check_kernel(kernel, seed=1)
            result["max_rel_error"] = outcome.max_rel_error
            if not outcome.ok:
                result["error"] = (f"differs from the reference: max relative error "
                                   f"{outcome.max_rel_error:.3g} > {outcome.tolerance:g}")
        return result
    except Exception as err:  # noqa: BLE001 - any failure is this candidate's, recorded and skipped
        lines = traceback.format_exception_only(type(err), err)
        return {"error": "".join(lines).strip().splitlines()[-1][:500]}


class LocalRunner:
    """Measures candidates on this machine, one at a time, in a worker process.

    One worker at a time so that candidates never compete for cores while being timed. A worker
    that crashes or runs past ``timeout`` seconds is killed and replaced; the candidate is
    recorded as failed.
    """

    def __init__(self, timeout: float = 120.0, threads: int | tuple[int, ...] | None = None,
                 measure=measure_candidate) -> None:
        self.timeout = timeout
        self.threads = threads
        self._measure = measure  # a picklable function with measure_candidate's signature
        self._pool: ProcessPoolExecutor | None = None

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
        return self._pool

    def _discard(self) -> None:
        if self._pool is not None:
            for process in list(getattr(self._pool, "_processes", {}).values()):
                process.kill()
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def measure(self, layer: SeparableConv2D, target: Target, candidates: list[Knobs], repeat: int = 5,
                check: bool = False):
        """Yield one Measurement per candidate, in order, as each finishes."""
        for knobs in candidates:
            future = self._executor().submit(self._measure, layer.to_dict(), target,
                                             knobs.to_dict(), repeat, check, self.threads)
            try:
                data = future.result(timeout=self.timeout)
            except FutureTimeout:
                self._discard()
                data = {"error": f"timed out after {self.timeout:g} s"}
            except BrokenProcessPool:
                self._discard()
                data = {"error": "the candidate crashed its worker process"}
            yield Measurement(
                knobs=knobs,
                seconds=data.get("seconds") if not data.get("error") else None,
                error=data.get("error"),
                samples=tuple(data.get("samples", ())),
                max_rel_error=data.get("max_rel_error"),
            )

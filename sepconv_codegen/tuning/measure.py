"""Measuring one candidate, isolated from the tuner: a crash, a hang or a compile error in a
candidate costs that candidate, never the session.

`measure_candidate` runs in a worker process (see LocalRunner); it receives plain data and
returns plain data. Workers are started with spawn, so each one re-imports the main script: a
worker that dies before it has answered `start_pool`'s handshake could not start, which is the
tuner's problem (usually an unguarded script), never the candidate's.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import statistics
import traceback
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

from ..schedule.knobs import Knobs
from ..spec import SeparableConv2D, SpecError
from ..targets import Target

__all__ = ["LocalRunner", "Measurement", "check_timeout", "exit_with_parent", "kill_pool",
           "measure_candidate", "start_pool"]

WORKER_STARTUP = 120.0  # seconds a new worker may take to start, re-import the script and TVM
                        # (RPC builds add it to their first build's deadline)

WORKER_DIED = (
    "the tuner's worker process exited before it was given a candidate (its own error is on "
    "stderr): workers are started with spawn and re-import the main script, so a script must call "
    "sc.tune under `if __name__ == \"__main__\":`")
WORKER_SLOW = (
    f"the tuner's worker process did not start within {WORKER_STARTUP:g} s: does the main script "
    "do slow work when imported? Workers are started with spawn and re-import it; keep that work "
    "under `if __name__ == \"__main__\":`")


@dataclass(frozen=True)
class Measurement:
    knobs: Knobs
    seconds: float | None  # median seconds per call, None when it failed
    error: str | None = None
    samples: tuple[float, ...] = ()
    max_rel_error: float | None = None  # set when checked against the reference
    retry: bool = False  # failed for a reason that is not the candidate's (a lost device)
    timeout_s: float | None = None  # failed by running past this limit: retried under a longer one


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


def check_timeout(timeout, name: str = "timeout") -> float:
    """A timeout is a finite positive number of seconds: with nan or inf every candidate would
    be recorded as timed out (nan) or a hung one would hang the session (inf)."""
    if (isinstance(timeout, bool) or not isinstance(timeout, (int, float))
            or not math.isfinite(timeout) or timeout <= 0):
        raise SpecError(f"{name} must be a positive number of seconds, got {timeout!r}")
    return float(timeout)


def worker_ready() -> int:
    """The handshake a new worker answers before it is given any candidate. It imports TVM too,
    so that the first candidate's timeout does not pay for that."""
    from ..tvm_backend import _tvm  # noqa: F401

    return os.getpid()


PARENT_POLL_S = 1.0


def exit_with_parent(parent: int) -> None:
    """Pool initializer: end this worker once the tuner that started it is gone. A tuner killed
    by SIGTERM, SIGHUP or SIGKILL cannot stop its pool, and a worker waiting for its next
    candidate would otherwise wait forever (holding a few hundred MB)."""
    import threading
    import time

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_POLL_S)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def start_pool(workers: int = 1) -> ProcessPoolExecutor:
    """A spawn pool whose first worker has answered the handshake.

    A worker that dies before answering never ran a candidate, so blaming the next candidate would
    record a sound one as failed, in a database every rerun trusts: raise instead. The usual cause
    is a script that calls tune() unguarded: the worker's re-import calls it again, and
    multiprocessing refuses to start a process while bootstrapping. Pool workers all start the
    same way, so one handshake speaks for them all.
    """
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=exit_with_parent, initargs=(os.getpid(),))
    try:
        pool.submit(worker_ready).result(timeout=WORKER_STARTUP)
    except BrokenProcessPool:
        kill_pool(pool)
        raise SpecError(WORKER_DIED) from None
    except FutureTimeout:
        kill_pool(pool)
        raise SpecError(WORKER_SLOW) from None
    except BaseException:
        kill_pool(pool)
        raise
    return pool


def kill_pool(pool: ProcessPoolExecutor) -> None:
    """Kill a pool's workers now (a hung or broken one would not shut down cleanly)."""
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        process.kill()
    pool.shutdown(wait=False, cancel_futures=True)


class LocalRunner:
    """Measures candidates on this machine, one at a time, in a worker process.

    One worker at a time so that candidates never compete for cores while being timed. A worker
    that crashes or runs past ``timeout`` seconds is killed and replaced; the candidate is
    recorded as failed. A worker that cannot start raises a SpecError (see `start_pool`).
    """

    def __init__(self, timeout: float = 120.0, threads: int | tuple[int, ...] | None = None,
                 measure=measure_candidate) -> None:
        self.timeout = check_timeout(timeout)
        self.threads = threads
        # What a record's time depends on besides the candidate: resumes match it.
        self.setting = {} if threads is None else {"threads": list(
            threads if isinstance(threads, (tuple, list)) else (threads,))}
        self._measure = measure  # a picklable function with measure_candidate's signature
        self._pool: ProcessPoolExecutor | None = None

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = start_pool(1)
        return self._pool

    def _discard(self) -> None:
        if self._pool is not None:
            kill_pool(self._pool)
            self._pool = None

    def _submit(self, *arguments):
        try:
            return self._executor().submit(self._measure, *arguments)
        except BrokenProcessPool:  # the worker died while idle: not this candidate's doing
            self._discard()
            return self._executor().submit(self._measure, *arguments)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def measure(self, layer: SeparableConv2D, target: Target, candidates: list[Knobs], repeat: int = 5,
                check: bool = False):
        """Yield one Measurement per candidate, in order, as each finishes."""
        for knobs in candidates:
            future = self._submit(layer.to_dict(), target, knobs.to_dict(), repeat, check,
                                  self.threads)
            try:
                data = future.result(timeout=self.timeout)
            except FutureTimeout:
                self._discard()
                data = {"error": f"timed out after {self.timeout:g} s", "timeout_s": self.timeout}
            except BrokenProcessPool:
                self._discard()
                data = {"error": "the candidate crashed its worker process"}
            yield Measurement(
                knobs=knobs,
                seconds=data.get("seconds") if not data.get("error") else None,
                error=data.get("error"),
                samples=tuple(data.get("samples", ())),
                max_rel_error=data.get("max_rel_error"),
                timeout_s=data.get("timeout_s"),
            )

"""Building candidates for remote devices: compiled and exported here, in worker processes.

A compiler crash or hang costs the candidate, never the session: each build runs in a worker
process with a deadline, and a pool that breaks is replaced. Libraries are kept for the runner's
life, so re-timing the leaders compiles nothing again.

A pool's workers that cannot start are no candidate's fault. Each new pool is first given
measure.worker_ready, without waiting for it (the runner's loop must keep serving the devices'
deadlines meanwhile). When a pool breaks before any of its workers has answered, its builds are
started again in a new pool; when that happens twice in a row, or a build's deadline passes before
the answer, the session ends with a SpecError saying why (usually a script that calls tune()
outside `if __name__ == "__main__":`), and nothing is recorded.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import CancelledError, Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from ..naming import kernel_name, target_detail
from ..spec import SpecError
from .measure import (
    WORKER_DIED,
    WORKER_SLOW,
    WORKER_STARTUP,
    exit_with_parent,
    kill_pool,
    worker_ready,
)
from .rpc_session import Job, build_candidate

__all__ = ["WORKER_STARTUP", "Builds"]

CRASHES = 2  # a candidate whose builds broke the pool this often has crashed its worker


class Builds:
    """The build workers, the builds in flight with their deadlines, and the libraries built.

    ``start`` submits builds; each finished one is announced by calling ``announce(future)``
    (from a pool thread), and the runner hands that future to ``finished``.
    """

    def __init__(self, workers: int, timeout: float, announce: Callable[[Future], None],
                 build=build_candidate) -> None:
        self.workers, self.timeout = workers, timeout
        self._announce, self._build = announce, build
        self._pool: ProcessPoolExecutor | None = None
        self._pool_started = False  # whether a worker of this pool has finished a build yet
        self._handshakes: dict[ProcessPoolExecutor, Future] = {}  # each pool -> its worker_ready
        self._unstarted: set[ProcessPoolExecutor] = set()  # pools in a row that broke unanswered
        self._in_flight: dict[Future, tuple[Job, float, ProcessPoolExecutor]] = {}
        self._libraries: dict[tuple, str] = {}  # Job.build_key -> exported library
        self._serial = itertools.count()
        self._folder = tempfile.TemporaryDirectory(prefix="sepconv-rpc-")

    def library(self, job: Job) -> str | None:
        return self._libraries.get(job.build_key)

    def deadlines(self) -> list[float]:
        return [deadline for _, deadline, _ in self._in_flight.values()]

    def start(self, unbuilt) -> None:
        """Submit builds from the deque ``unbuilt`` while a worker is free."""
        while unbuilt and len(self._in_flight) < self.workers:
            job = unbuilt.popleft()
            name = kernel_name(job.layer, job.target.name, job.knobs, target_detail(job.target))
            path = Path(self._folder.name) / f"{next(self._serial)}-{name}.so"
            arguments = (job.layer.to_dict(), job.target, job.knobs.to_dict(), str(path))
            try:
                future = self._executor().submit(self._build, *arguments)
            except BrokenProcessPool:  # a worker died and its news is still queued: start afresh
                self._discard(self._pool)
                future = self._executor().submit(self._build, *arguments)
            startup = 0.0 if self._pool_started else WORKER_STARTUP
            self._in_flight[future] = (job, time.monotonic() + self.timeout + startup, self._pool)
            future.add_done_callback(self._announce)

    def finished(self, future: Future) -> tuple[Job, dict | None] | None:
        """(job, {"path"} or {"error"}) for a finished build; (job, None) when the job should be
        built again (its pool broke, maybe for another candidate); None when it was dropped."""
        entry = self._in_flight.pop(future, None)
        if entry is None:  # it ran out of time and has been recorded
            return None
        job, _, pool = entry
        try:
            data = future.result()
        except (BrokenProcessPool, CancelledError):
            self._discard(pool)
            if not self._answered(pool):  # no worker of that pool ever started
                self._unstarted.add(pool)
                if len(self._unstarted) >= CRASHES:
                    raise SpecError(WORKER_DIED) from None
                return job, None
            job.build_crashes += 1
            if self.workers > 1 and job.build_crashes < CRASHES:
                return job, None
            return job, {"error": "the candidate crashed its build worker"}
        if pool is self._pool:
            self._pool_started = True
        self._unstarted.clear()
        if data.get("path"):
            self._libraries[job.build_key] = data["path"]
        return job, data

    def expired(self) -> list[Job]:
        """Builds past their deadline, dropped (their pool is killed)."""
        now = time.monotonic()
        late = [(future, entry) for future, entry in self._in_flight.items() if now >= entry[1]]
        if any(not self._answered(pool) for _, (_, _, pool) in late):
            self._discard(self._pool)
            raise SpecError(WORKER_SLOW)
        for future, (_, _, pool) in late:
            del self._in_flight[future]
            self._discard(pool)
        return [job for _, (job, _, _) in late]

    def close(self) -> None:
        if self._in_flight:
            self._discard(self._pool)
        elif self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        self._folder.cleanup()

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            # Not measure.start_pool: waiting for its handshake would block the event loop for the
            # worker's start (seconds: it imports TVM) while device deadlines run. The handshake
            # is sent first and looked at only when a build of this pool breaks or runs late; a
            # worker's start is allowed for in the first build's deadline (WORKER_STARTUP).
            self._pool = ProcessPoolExecutor(max_workers=self.workers,
                                             mp_context=multiprocessing.get_context("spawn"),
                                             initializer=exit_with_parent, initargs=(os.getpid(),))
            self._pool_started = False
            self._handshakes[self._pool] = self._pool.submit(worker_ready)
        return self._pool

    def _answered(self, pool: ProcessPoolExecutor) -> bool:
        """Whether a worker of ``pool`` started and answered its handshake."""
        handshake = self._handshakes.get(pool)
        return (handshake is not None and handshake.done() and not handshake.cancelled()
                and handshake.exception() is None)

    def _discard(self, pool: ProcessPoolExecutor | None) -> None:
        """Kill ``pool``'s workers; a pool already replaced is left alone."""
        if pool is None or pool is not self._pool:
            return
        kill_pool(pool)
        self._pool = None

"""Measuring candidates on devices registered with a TVM RPC tracker: boards on a desk, or a rack.

Candidates are compiled here, in a worker process (a compiler crash costs the candidate, not the
session), and exported as shared libraries linked here, with the target's cross compiler where it
has one: a device needs TVM's runtime and ``python -m tvm.exec.rpc_server``, no compiler. Every
device registered under the key gets a session and a thread, and measures one candidate at a
time: TVM's time_evaluator runs on the device (median of the repeats); a check runs the kernel
there and compares its output with the reference here.

Failures: a device that drops its connection, or returns nothing within ``timeout`` seconds, gives
its candidate back to the others and asks the tracker for a device again. A candidate that fails
twice (on two devices where there are two) or fails to build is recorded as failed. Every wait on
a device has a deadline: when no device is left, the remaining candidates fail with an error
that says so.

TVM RPC has no authentication: keep the tracker and the servers on a private network or behind
an SSH tunnel (README, "Tuning on your board").
"""

from __future__ import annotations

import logging
import math
import os
import queue
import struct
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Self

from ..schedule.knobs import Knobs
from ..spec import SeparableConv2D, SpecError
from ..targets import Target, check_cross_compiler
from .measure import Measurement, check_timeout
from .rpc_build import Builds
from .rpc_session import (
    NO_ADDRESS,
    DeviceSession,
    Job,
    build_candidate,
    request_session,
    tracker_call,
)

__all__ = ["RPCRunner", "build_candidate", "parse_tracker_address", "registered_devices",
           "rpc_runner_from_args"]

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 120.0  # seconds for one candidate on a device (upload, load, time, check)
DEFAULT_SESSION_TIMEOUT = 600.0  # at least: the device's server ends a session this old
DEFAULT_CONNECT_TIMEOUT = 60.0  # seconds to wait for the tracker to hand over a device
ATTEMPTS = 2  # a candidate failing this often (on as many devices as there are) is recorded failed


# ---- the tracker ---------------------------------------------------------------------------------


def _summary(host: str, port: int, timeout: float = 10.0) -> dict:
    from ..tvm_backend._tvm import tvm

    try:
        code, summary = tracker_call(host, port, [tvm.rpc.base.TrackerCode.SUMMARY], timeout)
    except (OSError, ValueError, struct.error) as err:
        raise SpecError(
            f"cannot reach a TVM RPC tracker at {host}:{port} ({err}); start one with "
            f"`python -m tvm.exec.rpc_tracker --host {host} --port {port}`") from None
    if code != tvm.rpc.base.TrackerCode.SUCCESS:
        raise SpecError(f"the TVM RPC tracker at {host}:{port} answered {code!r} to a summary")
    return summary


def registered_devices(host: str, port: int, key: str) -> list[str]:
    """Addresses ('HOST:PORT') of the RPC servers registered at the tracker under ``key``."""
    servers = _summary(host, port).get("server_info", [])
    return sorted(":".join(map(str, s["addr"])) for s in servers if s.get("key") == f"server:{key}")


def parse_tracker_address(text: str) -> tuple[str, int]:
    """'HOST:PORT' (or '[IPv6]:PORT') -> (host, port); a SpecError naming the value otherwise."""
    host, sep, port_text = str(text).strip().rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        host = ""  # a bare IPv6 address: where its port starts is ambiguous
    if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise SpecError(f"--rpc {text!r} is not HOST:PORT with a port in 1..65535 "
                        "(e.g. 127.0.0.1:9190)")
    return host, int(port_text)


def rpc_runner_from_args(args) -> RPCRunner:
    """The RPCRunner that `tune --rpc HOST:PORT --key KEY` asks for."""
    host, port = parse_tracker_address(args.rpc)
    if not args.key:
        raise SpecError(f"--rpc needs --key KEY, the key the devices' rpc_server registered with "
                        f"(`python -m tvm.exec.query_rpc_tracker --host {host} --port {port}` "
                        "lists them)")
    if getattr(args, "threads", None):
        raise SpecError("--threads applies to this machine; with --rpc a device's server uses the "
                        "threads TVM_NUM_THREADS gives it on the device")
    session_timeout = getattr(args, "session_timeout", None)
    if session_timeout is not None and 0 < session_timeout <= args.timeout:
        raise SpecError(f"--session-timeout must be 0 (no limit) or more than --timeout "
                        f"({args.timeout:g} s), got {session_timeout:g}")
    return RPCRunner(host, port, args.key, timeout=args.timeout, session_timeout=session_timeout)


@dataclass
class _State:
    phase: str  # "connecting", "idle" or "busy"
    deadline: float | None = None
    job: Job | None = None


@dataclass
class _Round:
    """The candidates of one measure() call."""

    jobs: list[Job]
    unbuilt: deque = field(default_factory=deque)
    ready: deque = field(default_factory=deque)

    @property
    def left(self) -> list[Job]:
        return [job for job in self.jobs if not job.done]


# ---- the runner ----------------------------------------------------------------------------------


class RPCRunner:
    """Measures candidates on every device a TVM RPC tracker holds under ``key``, in parallel.

    The interface is LocalRunner's: ``measure(...)`` yields one Measurement per candidate, in the
    order they finish; ``close()`` ends the sessions. ``lost`` lists every session lost
    ('HOST:PORT: why'); ``parallelism`` is how many devices it drives.

    timeout: seconds one candidate may take on a device (upload, load, timing, check); a build
    here gets as long. session_timeout: the device's server ends a session this old (0: never;
    default: 600 s or 4 timeouts), which is what frees a board whose kernel hangs; sessions are
    renewed before they would expire mid-candidate. connect_timeout: how long to wait for the
    tracker to hand over a device. build_workers: compiler processes here (default: one per
    device, at most one per core). build: the function a build worker runs (build_candidate's
    signature; module level, so that a spawned worker can import it).
    """

    def __init__(self, tracker_host: str, tracker_port: int, key: str,
                 timeout: float = DEFAULT_TIMEOUT, session_timeout: float | None = None,
                 max_devices: int | None = None, *,
                 connect_timeout: float = DEFAULT_CONNECT_TIMEOUT, priority: int = 1,
                 build_workers: int | None = None, build=build_candidate) -> None:
        if session_timeout is None:
            session_timeout = max(DEFAULT_SESSION_TIMEOUT, 4 * timeout)
        _check_settings(key, timeout, session_timeout, max_devices, connect_timeout, build_workers)
        self.host, self.port, self.key = str(tracker_host), int(tracker_port), key
        self.timeout, self.session_timeout = float(timeout), float(session_timeout)
        self.setting = {"rpc_key": key}  # what a record's time depends on: resumes match it
        self.connect_timeout, self.priority = float(connect_timeout), priority
        self.max_devices = max_devices
        self.closed = False
        self.lost: list[str] = []
        self._events: queue.SimpleQueue = queue.SimpleQueue()
        self._states: dict[DeviceSession, _State] = {}
        found = registered_devices(self.host, self.port, key)
        if not found:
            raise SpecError(self._no_such_key())
        count = len(found) if max_devices is None else min(max_devices, len(found))
        workers = build_workers or max(1, min(count, os.cpu_count() or 1))
        self._builds = Builds(workers, self.timeout, self._announce_build, build)
        for _ in range(count):
            self._start_device(self.connect_timeout)

    @property
    def parallelism(self) -> int:
        """Devices driven now: the tuner proposes this many candidates at a time."""
        return max(1, len(self._states))

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def measure(self, layer: SeparableConv2D, target: Target, candidates: list[Knobs],
                repeat: int = 5, check: bool = False):
        """Yield one Measurement per candidate, in the order they finish."""
        if self.closed:
            raise SpecError("this RPCRunner is closed")
        _check_toolchain(target)
        round_ = _Round([Job(layer, target, knobs, repeat, check) for knobs in candidates])
        if round_.jobs and not self._states:
            self._rediscover()
        for job in round_.jobs:
            job.path = self._builds.library(job)
            (round_.ready if job.path else round_.unbuilt).append(job)
        try:
            while round_.left:
                self._builds.start(round_.unbuilt)
                self._dispatch(round_)
                if not self._states:
                    for job in round_.left:  # not the candidate's failure: retried on resume
                        yield self._finish(job, error=self._no_device(job), retry=True)
                    return
                yield from self._next_event(round_)
        finally:
            for job in round_.jobs:  # a round left early: later news of its jobs is ignored
                job.done = True

    def close(self) -> None:
        """End every session and stop the build workers; the runner cannot measure again."""
        if self.closed:
            return
        self.closed = True
        idle = [d for d, s in self._states.items() if s.phase == "idle"]
        for device, state in self._states.items():
            device.abandoned = state.phase != "idle"  # a busy one drops its session when done
            device.inbox.put(None)
        self._states.clear()
        for device in idle:
            device.join(timeout=5)
        self._builds.close()

    # -- sessions --

    def _request_session(self, wait: float):
        """(address, session) of a device the tracker hands over within ``wait`` seconds."""
        return request_session(self.host, self.port, self.key, self.priority,
                               self.session_timeout, wait)

    def _start_device(self, wait: float) -> None:
        device = DeviceSession(self, wait)
        # Connecting covers the tracker's wait and the handshake with the device's server.
        self._states[device] = _State("connecting", time.monotonic() + wait + self.timeout)
        device.start()

    def _rediscover(self) -> None:
        """No device left from earlier rounds: ask the tracker again (a board may be back)."""
        try:
            found = registered_devices(self.host, self.port, self.key)
        except SpecError as err:
            self.lost.append(f"tracker: {err}")
            return
        count = len(found) if self.max_devices is None else min(self.max_devices, len(found))
        for _ in range(count):
            self._start_device(self.connect_timeout)

    def _lose(self, device: DeviceSession, why: str) -> None:
        self.lost.append(f"{device.address}: {why}")
        log.warning("RPC device %s (key %s) lost its session: %s", device.address, self.key, why)

    def _no_such_key(self) -> str:
        servers = _summary(self.host, self.port).get("server_info", [])
        keys = sorted({s.get("key", "").partition(":")[2] for s in servers} - {""})
        return (f"no device with key {self.key!r} is registered at the RPC tracker "
                f"{self.host}:{self.port} (registered keys: {', '.join(keys) or 'none'}); on the "
                f"device run `python -m tvm.exec.rpc_server --tracker {self.host}:{self.port} "
                f"--key {self.key}`")

    def _no_device(self, job: Job) -> str:
        last = {entry.partition(": ")[0]: entry for entry in self.lost}  # the latest per device
        lost = "; ".join(list(last.values())[-3:]) or "none registered"
        earlier = f"; this candidate earlier: {'; '.join(job.failures)}" if job.failures else ""
        return (f"no device with key {self.key!r} left at tracker {self.host}:{self.port} "
                f"(lost: {lost}){earlier}")

    # -- scheduling --

    def _dispatch(self, round_: _Round) -> None:
        for device, state in self._states.items():
            if state.phase != "idle" or not round_.ready:
                continue
            job = self._pick(device, round_.ready)
            if job is not None:
                round_.ready.remove(job)
                state.phase, state.job = "busy", job
                state.deadline = time.monotonic() + self.timeout
                device.inbox.put(job)

    def _pick(self, device: DeviceSession, ready: deque) -> Job | None:
        """The first candidate this device has not failed; one it failed only when every other
        device failed it too, or there is none (a device still connecting counts: it has a
        deadline)."""
        others = {d.address for d in self._states if d is not device}
        for job in ready:
            if device.address not in job.failed_on or others <= job.failed_on:
                return job
        return None

    def _next_event(self, round_: _Round):
        deadlines = [s.deadline for s in self._states.values() if s.deadline is not None]
        deadlines += self._builds.deadlines()
        wait = min(deadlines, default=time.monotonic() + 1.0) - time.monotonic()
        try:
            event = self._events.get(timeout=min(1.0, max(0.01, wait)))
        except queue.Empty:
            event = None
        if event is not None:
            yield from self._handle(event, round_)
        yield from self._expire(round_)

    def _handle(self, event: tuple, round_: _Round):
        kind, device, *details = event
        if kind == "built":
            yield from self._built(details[0], round_)
            return
        state = self._states.get(device)
        if state is None:  # abandoned, or from before close()
            return
        if kind == "ready":
            state.phase, state.deadline, state.job = "idle", None, None
        elif kind == "gone":
            del self._states[device]
            again = "" if device.address == NO_ADDRESS else " back"
            self._lose(device, f"got no device{again}: {details[0]}")
        elif kind == "done":
            job, result = details
            state.phase, state.deadline, state.job = "idle", None, None
            if not job.done:
                yield self._finish(job, result)
        elif kind == "fault":
            job, why = details
            # The thread asks the tracker for a device again, within its wait.
            state.phase, state.job = "connecting", None
            state.deadline = time.monotonic() + device.wait + self.timeout
            self._lose(device, f"{why} (measuring {job.knobs.tag}; asking the tracker again)")
            if not job.done:
                yield from self._retry(job, device.address, why, round_)

    def _expire(self, round_: _Round):
        now = time.monotonic()
        for device, state in list(self._states.items()):
            if state.deadline is None or now < state.deadline:
                continue
            device.abandoned = True
            del self._states[device]
            if state.phase == "busy":
                why = f"no result within {self.timeout:g} s"
                self._lose(device, why)
                # Its server ends the hung session within session_timeout; then it is free again.
                self._start_device(max(self.connect_timeout, self.session_timeout))
                if not state.job.done:
                    yield from self._retry(state.job, device.address, why, round_)
            else:
                self._lose(device, f"no session within {device.wait + self.timeout:g} s")
        for job in self._builds.expired():
            if not job.done:
                yield self._finish(job, error=f"building took over {self.timeout:g} s",
                                   timeout_s=self.timeout)

    def _retry(self, job: Job, address: str, why: str, round_: _Round):
        job.failures.append(f"{address}: {why}")
        job.failed_on.add(address)
        if len(job.failures) >= ATTEMPTS:  # lost sessions and devices: retried on resume
            yield self._finish(job, error=f"failed {len(job.failures)} times: "
                                          + "; ".join(job.failures), retry=True)
        else:
            round_.ready.appendleft(job)

    def _announce_build(self, future) -> None:  # called from a pool thread
        self._events.put(("built", None, future))

    def _built(self, future, round_: _Round):
        finished = self._builds.finished(future)
        if finished is None:
            return
        job, data = finished
        if job.done:
            return
        if data is None:
            round_.unbuilt.appendleft(job)
        elif data.get("error"):
            yield self._finish(job, error=f"build failed: {data['error']}")
        else:
            job.path = data["path"]
            round_.ready.append(job)

    def _finish(self, job: Job, result: dict | None = None, error: str | None = None,
                retry: bool = False, timeout_s: float | None = None):
        job.done = True
        data = {"error": error} if error else result
        return Measurement(
            knobs=job.knobs,
            seconds=data.get("seconds") if not data.get("error") else None,
            error=data.get("error"),
            samples=tuple(data.get("samples", ())),
            max_rel_error=data.get("max_rel_error"),
            retry=retry,
            timeout_s=timeout_s,
        )


def _check_settings(key, timeout, session_timeout, max_devices, connect_timeout,
                    build_workers) -> None:
    if not isinstance(key, str) or not key.strip():
        raise SpecError(f"the RPC device key must be a non-empty string, got {key!r}")
    for name, value in (("timeout", timeout), ("connect_timeout", connect_timeout)):
        check_timeout(value, name)
    if (isinstance(session_timeout, bool) or not isinstance(session_timeout, (int, float))
            or not math.isfinite(session_timeout) or session_timeout < 0
            or 0 < session_timeout <= timeout):
        raise SpecError(f"the session timeout must be 0 (no limit) or more than the timeout "
                        f"({timeout:g} s), got {session_timeout!r}")
    for name, value in (("max_devices", max_devices), ("build_workers", build_workers)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or value < 1):
            raise SpecError(f"{name} must be a positive integer or None, got {value!r}")


def _check_toolchain(target: Target) -> None:
    check_cross_compiler(target)

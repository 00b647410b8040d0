"""One device session over TVM RPC, and what it runs: the runner side is in rpc.py.

A `DeviceSession` is a thread that holds one session with a device the tracker handed over and
measures one candidate at a time on it: upload the library built here, load it there, time it
with TVM's time_evaluator there, and (when asked) run it once there and compare the output with
the reference here. It reports each outcome to the runner's event queue; it never decides what a
failure means for the candidate.
"""

from __future__ import annotations

import queue
import socket
import statistics
import struct
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..check import check_kernel, random_inputs
from ..kernel import Kernel
from ..schedule.knobs import Knobs
from ..spec import SeparableConv2D
from ..targets import Target

if TYPE_CHECKING:
    from .rpc import RPCRunner

__all__ = ["NO_ADDRESS", "DeviceSession", "Job", "RemoteKernel", "build_candidate", "one_line",
           "request_session", "tracker_call"]

MIN_REPEAT_MS = 25  # as LocalRunner: each timed repeat runs at least this long
NO_ADDRESS = "(new session)"  # a DeviceSession's address until the tracker hands it a device
_DEVICE_TYPES = {"llvm": "cpu", "c": "cpu", "cuda": "cuda"}  # TVM target kind -> device type


def one_line(err: BaseException) -> str:
    """The last line of an exception's message (TVM's carry a traceback), at most 300 chars."""
    text = "".join(traceback.format_exception_only(type(err), err))
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return (lines[-1] if lines else type(err).__name__)[:300]


def build_candidate(layer_data: dict, target: Target, knobs_data: dict, path: str) -> dict:
    """Compile one candidate and export it as a shared library at ``path`` (a worker process)."""
    try:
        from ..builder import compile_kernel

        layer = SeparableConv2D.from_dict(layer_data)
        compile_kernel(layer, target, Knobs.from_dict(knobs_data), "tuning").export(path)
        return {"path": path}
    except Exception as err:  # noqa: BLE001 - any failure is this candidate's, recorded
        return {"error": one_line(err)}


def tracker_call(host: str, port: int, message: list, timeout: float):
    """One request to a TVM RPC tracker on a connection of our own, so every wait has a deadline
    (TVM's TrackerSession waits for a free device without one)."""
    from ..tvm_backend._tvm import tvm

    base = tvm.rpc.base
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(struct.pack("<i", base.RPC_TRACKER_MAGIC))
        if struct.unpack("<i", base.recvall(sock, 4))[0] != base.RPC_TRACKER_MAGIC:
            raise ConnectionError(f"{host}:{port} is not a TVM RPC tracker")
        base.sendjson(sock, message)
        return base.recvjson(sock)


def request_session(host: str, port: int, key: str, priority: int, session_timeout: float,
                    wait: float):
    """(address 'HOST:PORT', session) of a device the tracker hands over within ``wait`` seconds.

    session_timeout: the device's server ends the session after this many seconds (0: never).
    """
    from ..tvm_backend._tvm import tvm

    codes = tvm.rpc.base.TrackerCode
    try:
        code, value = tracker_call(host, port, [codes.REQUEST, key, "", priority], wait)
    except TimeoutError:  # socket.timeout
        raise RuntimeError(f"the tracker had no free device with key {key!r} within "
                           f"{wait:g} s") from None
    if code != codes.SUCCESS:
        raise RuntimeError(f"the tracker refused a device: {value!r}")
    url, server_port, match_key = value
    session = tvm.rpc.connect(url, server_port, match_key, session_timeout=session_timeout)
    return f"{url}:{server_port}", session


@dataclass(eq=False)
class Job:
    """One candidate of a measure() call, and what has happened to it so far."""

    layer: SeparableConv2D
    target: Target
    knobs: Knobs
    repeat: int
    check: bool
    path: str | None = None  # the exported library, once built
    failures: list[str] = field(default_factory=list)  # "device: why"
    failed_on: set[str] = field(default_factory=set)
    build_crashes: int = 0
    done: bool = False

    @property
    def build_key(self) -> tuple:
        return self.layer.workload_key, self.target.key, self.knobs


class RemoteKernel(Kernel):
    """A kernel loaded in a device session: run and timed there, on arrays sent from here in the
    layout the compiled function takes (TVMKernel's, via kernel_arrays)."""

    def __init__(self, layer, target: Target, knobs: Knobs, module, device) -> None:
        super().__init__(layer, "remote", target.name, knobs, "tuning")
        self._module, self._device = module, device

    def _send(self, arrays: list[np.ndarray]):
        from ..tvm_backend._tvm import tvm
        from ..tvm_backend.module import kernel_arrays

        tensors = [tvm.runtime.tensor(a, self._device)
                   for a in kernel_arrays(self.layer, self.knobs, arrays)]
        return tensors, tvm.runtime.empty(self.layer.output_shape, self.layer.dtype, self._device)

    def _run(self, arrays: list[np.ndarray], out: np.ndarray) -> None:
        tensors, result = self._send(arrays)
        self._module["main"](*tensors, result)
        np.copyto(out, result.numpy())

    def time(self, arrays: list[np.ndarray], number: int = 1, repeat: int = 5,
             min_repeat_ms: int = MIN_REPEAT_MS) -> list[float]:
        tensors, result = self._send(arrays)
        evaluator = self._module.time_evaluator("main", self._device, number=number,
                                                repeat=repeat, min_repeat_ms=min_repeat_ms)
        return list(evaluator(*tensors, result).results)


class DeviceSession(threading.Thread):
    """One device session and the thread that drives it, one candidate at a time.

    It reports to the runner's event queue: ("ready", dev), ("done", dev, job, result),
    ("fault", dev, job, why) and ("gone", dev, why). Once the runner abandons it (hung), it
    reports nothing more; its blocked call ends when the device's server ends the session.
    """

    def __init__(self, runner: RPCRunner, wait: float) -> None:
        super().__init__(name="sepconv-rpc-device", daemon=True)
        self.runner, self.wait = runner, wait
        self.address = NO_ADDRESS
        self.inbox: queue.SimpleQueue = queue.SimpleQueue()
        self.abandoned = False
        self._session = None
        self._opened = 0.0
        self._kernels: dict[str, RemoteKernel] = {}

    def _report(self, kind: str, *details) -> None:
        if not self.abandoned:
            self.runner._events.put((kind, self, *details))

    def run(self) -> None:
        if not self._connect():
            return
        while True:
            job = self.inbox.get()
            if job is None or self.abandoned:
                break
            try:
                result, fault = self._measure(job), None
            except Exception as err:  # noqa: BLE001 - the session is suspect: report, reconnect
                fault = one_line(err)
            # Outside the except clause: its traceback would keep the session (and the device's
            # server) alive while we ask the tracker for a device again.
            if self.abandoned:  # the runner gave up on this call: report nothing, hold nothing
                break
            if fault is None:
                self._report("done", job, result)
                continue
            self._report("fault", job, fault)
            self._close_session()
            if not self._connect():
                return
        self._close_session()

    def _connect(self) -> bool:
        try:
            self._open()
        except Exception as err:  # noqa: BLE001 - no device: the runner decides what follows
            self._report("gone", one_line(err))
            return False
        if self.abandoned or self.runner.closed:
            self._close_session()
            return False
        self._report("ready")
        return True

    def _open(self) -> None:
        self.address, self._session = self.runner._request_session(self.wait)
        self._opened = time.monotonic()
        self._kernels.clear()

    def _close_session(self) -> None:
        self._kernels.clear()
        self._session = None  # TVM closes the connection when the session is released

    def _measure(self, job: Job) -> dict:
        limit, timeout = self.runner.session_timeout, self.runner.timeout
        if limit and time.monotonic() - self._opened > limit - timeout:
            self._close_session()  # a fresh session, before the server ends this one mid-candidate
            self._open()
        kernel = self._kernel(job)
        samples = kernel.time(random_inputs(job.layer), number=1, repeat=job.repeat)
        result = {"seconds": statistics.median(samples), "samples": tuple(samples)}
        if job.check:
            outcome = check_kernel(kernel, seed=1)  # the seed LocalRunner checks with
            result["max_rel_error"] = outcome.max_rel_error
            if not outcome.ok:
                result["error"] = (f"differs from the reference on {self.address}: max relative "
                                   f"error {outcome.max_rel_error:.3g} > {outcome.tolerance:g}")
        return result

    def _kernel(self, job: Job) -> RemoteKernel:
        kernel = self._kernels.get(job.path)
        if kernel is None:
            name = Path(job.path).name
            self._session.upload(job.path, target=name)
            try:
                module = self._session.load_module(name)
            except Exception as err:  # noqa: BLE001 - say what the usual cause is first
                raise RuntimeError(f"the device cannot load a {job.target.name} kernel (is it a "
                                   f"{job.target.description}?): {one_line(err)[:160]}") from None
            device = self._session.device(_DEVICE_TYPES.get(job.target.tvm["kind"], "cpu"))
            kernel = RemoteKernel(job.layer, job.target, job.knobs, module, device)
            if len(self._kernels) >= 64:  # leaders are re-timed without uploading them again
                self._kernels.clear()
            self._kernels[job.path] = kernel
        return kernel

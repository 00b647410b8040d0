"""A TVM RPC tracker and servers on 127.0.0.1 for the RPC tests, each in its own process group so
that one kill ends a server and the session processes it forked; and build functions that fail on
request (module level, so a spawned build worker can import them)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from sepconv_codegen.schedule.knobs import Knobs
from sepconv_codegen.tuning.rpc import registered_devices
from sepconv_codegen.tuning.rpc_session import build_candidate

ROOT = Path(__file__).resolve().parent.parent
FAIL_ONCE = "SEPCONV_TEST_FAIL_ONCE"  # env: a file whose presence fails the next build
BUILD_RULES = "SEPCONV_TEST_BUILD_RULES"  # env: JSON {knobs tag: "crash" or "hang"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Cluster:
    """A tracker and servers on 127.0.0.1, started together; ``kill_all`` ends every one."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.port = free_port()
        self.started: list[subprocess.Popen] = []
        self.servers: dict[str, list[tuple[subprocess.Popen, str]]] = {}

    def _start(self, name: str, *args: str, threads: int | None = None) -> subprocess.Popen:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        if threads:
            env["TVM_NUM_THREADS"] = str(threads)
        with open(self.logs / f"{name}.log", "wb") as log:
            process = subprocess.Popen([sys.executable, "-m", *args], env=env, stdout=log,
                                       stderr=subprocess.STDOUT, start_new_session=True)
        self.started.append(process)
        return process

    def start_tracker(self) -> None:
        self._start("tracker", "tvm.exec.rpc_tracker", "--host", "127.0.0.1",
                    "--port", str(self.port), "--port-end", str(self.port + 1))

    def start_server(self, key: str) -> None:
        """A server that registers under ``key`` (it retries until the tracker is up)."""
        port = free_port()
        process = self._start(f"server-{key}-{port}", "tvm.exec.rpc_server", "--host", "127.0.0.1",
                              "--port", str(port), "--port-end", str(port + 1),
                              "--tracker", f"127.0.0.1:{self.port}", "--key", key, threads=1)
        self.servers.setdefault(key, []).append((process, f"127.0.0.1:{port}"))

    def wait_registered(self, timeout: float = 180.0) -> None:
        deadline = time.monotonic() + timeout
        while not all(self._registered(key) for key in self.servers):
            if any(p.poll() is not None for p in self.started) or time.monotonic() > deadline:
                logs = "\n".join(f"--- {f.name}\n{f.read_text(errors='replace')[-1500:]}"
                                 for f in sorted(self.logs.glob("*.log")))
                raise AssertionError(f"the tracker and servers did not come up\n{logs}")
            time.sleep(0.3)

    def _registered(self, key: str) -> bool:
        if not _accepts(self.port):
            return False
        wanted = {address for _, address in self.servers[key]}
        return wanted <= set(registered_devices("127.0.0.1", self.port, key))

    def kill_all(self) -> None:
        for process in self.started:
            signal_group(process, signal.SIGKILL)


def signal_group(process: subprocess.Popen, sig: int) -> None:
    """Send ``sig`` to the process's group: the server and the session processes it forked."""
    try:
        os.killpg(process.pid, sig)
    except ProcessLookupError:
        pass
    if sig == signal.SIGKILL:
        process.wait(timeout=10)


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def build_failing_once(layer_data, target, knobs_data, path):
    """build_candidate, except that the first build after the file named by $SEPCONV_TEST_FAIL_ONCE
    appears fails (as a schedule TVM rejects would) and removes the file."""
    marker = os.environ.get(FAIL_ONCE)
    if marker:
        try:
            os.remove(marker)  # atomic: exactly one build claims it
        except FileNotFoundError:
            pass
        else:
            return {"error": "ScheduleError: rejected on purpose by the test"}
    return build_candidate(layer_data, target, knobs_data, path)


def build_by_rules(layer_data, target, knobs_data, path):
    """build_candidate, except that the candidates $SEPCONV_TEST_BUILD_RULES names crash their
    worker (as a segfaulting compiler would) or hang."""
    rule = json.loads(os.environ.get(BUILD_RULES, "{}")).get(Knobs.from_dict(knobs_data).tag)
    if rule == "crash":
        os._exit(11)
    if rule == "hang":
        time.sleep(3600)
    return build_candidate(layer_data, target, knobs_data, path)

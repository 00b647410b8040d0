"""Tuning over TVM RPC: candidates built here, measured on the devices a tracker hands over.

The scheduling test stands devices in with TVM's LocalSession (this process) that fail as told: a
dropped connection, a candidate that breaks every device, a hang, no device at all. The
distributed test runs a real tracker and two servers on 127.0.0.1, kills one mid-session, and
checks the database and the chosen schedules against the reference; the CLI tests run
`tune --rpc` as a user does.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import weakref

import pytest

import sepconv_codegen as sc
from sepconv_codegen.cli import main as cli_main
from sepconv_codegen.naming import kernel_name
from sepconv_codegen.spec import SpecError
from sepconv_codegen.targets import resolve_target
from sepconv_codegen.tuning import rpc
from sepconv_codegen.tuning.database import Database
from sepconv_codegen.tuning.rpc import RPCRunner, parse_tracker_address, rpc_runner_from_args
from sepconv_codegen.tuning.tuner import tune
from tests import rpc_helpers
from tests.conftest import (
    ROOT,
    assert_matches_reference,
    assert_unguarded_script_refused,
    random_arrays,
)

KEY, CLI_KEY = "sepconv-test", "sepconv-cli"
NET = sc.Network((
    sc.SeparableConv2D(name="a", input_shape=(1, 6, 6, 4), out_channels=8),
    sc.SeparableConv2D(name="b", input_shape=(1, 6, 6, 8), strides=2, channel_multiplier=2,
                       out_channels=8, bias=True, activation="relu"),
))
TRIALS = 4
SPEC = """
name = "tiny"
[[layer]]
name = "a"
input_shape = [1, 6, 6, 4]
out_channels = 8
[[layer]]
name = "b"
input_shape = [1, 6, 6, 8]
strides = 2
channel_multiplier = 2
out_channels = 8
"""


# ---- arguments -----------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["localhost", "board:", ":9190", "board:rpc", "board:0",
                                   "board:70000", "::1:9190", ""])
def test_a_malformed_tracker_address_is_named(value):
    with pytest.raises(SpecError, match="is not HOST:PORT") as err:
        parse_tracker_address(value)
    assert repr(value) in str(err.value)


def test_tracker_addresses_parse():
    assert parse_tracker_address("board.local:9190") == ("board.local", 9190)
    assert parse_tracker_address(" [::1]:9190 ") == ("::1", 9190)


def test_unreachable_tracker_missing_key_and_bad_timeouts_are_named():
    port = rpc_helpers.free_port()  # nothing listens there
    args = argparse.Namespace(rpc=f"127.0.0.1:{port}", key=KEY, timeout=5.0, session_timeout=None,
                              threads=None)
    with pytest.raises(SpecError, match=f"cannot reach a TVM RPC tracker at 127.0.0.1:{port}"):
        rpc_runner_from_args(args)
    with pytest.raises(SpecError, match="--rpc needs --key"):
        rpc_runner_from_args(argparse.Namespace(**{**vars(args), "key": None}))
    with pytest.raises(SpecError, match="--threads applies to this machine"):
        rpc_runner_from_args(argparse.Namespace(**{**vars(args), "threads": 2}))
    with pytest.raises(SpecError, match="session timeout must be 0 .* more than the timeout"):
        RPCRunner("127.0.0.1", port, KEY, timeout=30, session_timeout=10)
    with pytest.raises(SpecError, match="max_devices must be a positive integer"):
        RPCRunner("127.0.0.1", port, KEY, max_devices=0)


@pytest.mark.parametrize("argv, message", [
    (["--rpc", "board"], "'board' is not HOST:PORT"),
    (["--rpc", "127.0.0.1:9190"], "--rpc needs --key"),
    (["--key", KEY], "only meaningful with --rpc"),
    (["--rpc", "127.0.0.1:9190", "--key", KEY, "--timeout", "60", "--session-timeout", "30"],
     "--session-timeout must be 0 (no limit) or more than --timeout (60 s), got 30"),
    (["--threads", "0"], "--threads must be positive integers like 1,2, got '0'"),
])
def test_cli_rejects_bad_rpc_options_in_one_line(tmp_path, capsys, argv, message):
    spec = tmp_path / "tiny.toml"
    spec.write_text(SPEC)
    assert cli_main(["tune", str(spec), "--db", str(tmp_path / "db.jsonl"), *argv]) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.strip().splitlines()) == 1 and message in err


def test_cross_compiled_candidates_are_linked_here_for_the_board(tmp_path):
    if shutil.which("aarch64-linux-gnu-gcc") is None:
        pytest.skip("needs the AArch64 cross compiler: apt-get install gcc-aarch64-linux-gnu")
    layer, target = NET.layers[1], resolve_target("cortex-a72")
    knobs = target.schedule_space().default_knobs(layer, target)
    path = tmp_path / "k.so"
    assert rpc.build_candidate(layer.to_dict(), target, knobs.to_dict(), str(path)) == {
        "path": str(path)}
    header = path.read_bytes()[:20]
    assert header[:4] == b"\x7fELF" and header[16] == 3  # ET_DYN: a shared library
    assert int.from_bytes(header[18:20], "little") == 183  # EM_AARCH64


# ---- scheduling, with this process standing in for the devices ----------------------------------


class LocalDevices:
    """A stand-in tracker handing out devices that are this process (TVM's LocalSession).

    ``rules`` maps a kernel name to how a device treats it: "reset-once" (the first device to get
    it drops the connection), "reset" (every device does) or "hang" (every device hangs until
    ``release`` is set). A device stays taken while a session holds it, as with a real tracker.
    All share one LocalSession: each new one would re-register TVM's global upload folder.
    """

    def __init__(self, addresses: list[str], rules: dict[str, str]) -> None:
        from sepconv_codegen.tvm_backend._tvm import tvm

        self.session = tvm.rpc.LocalSession()
        self.addresses, self.rules = addresses, rules
        self.taken: set[str] = set()
        self.attempts: dict[str, list[str]] = {}  # kernel name -> addresses, in order
        self.release = threading.Event()
        self._lock = threading.Lock()

    def request(self, wait: float):
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            with self._lock:
                free = [a for a in self.addresses if a not in self.taken]
                if free:
                    self.taken.add(free[0])
                    return free[0], _LocalDevice(self, free[0])
            time.sleep(0.02)
        raise RuntimeError(f"no free device within {wait:g} s")

    def rule_for(self, address: str, path: str) -> str | None:
        with self._lock:
            for name, rule in self.rules.items():
                if name in path:
                    self.attempts.setdefault(name, []).append(address)
                    first = len(self.attempts[name]) == 1
                    return None if rule == "reset-once" and not first else rule
        return None


class _LocalDevice:
    """One session with a stand-in device: its uploads get a folder of their own in the shared
    LocalSession (overwriting a loaded library would crash this process)."""

    _opened = iter(range(1_000_000))

    def __init__(self, devices: LocalDevices, address: str) -> None:
        self._devices, self._address = devices, address
        self._session = devices.session
        self._prefix = f"{address}-{next(self._opened)}-"
        weakref.finalize(self, devices.taken.discard, address)  # released with the session

    def upload(self, path: str, target: str) -> None:
        rule = self._devices.rule_for(self._address, path)
        if rule in ("reset", "reset-once"):
            raise ConnectionResetError(f"{self._address}: connection reset by peer")
        if rule == "hang":
            self._devices.release.wait()
        self._session.upload(path, target=self._prefix + target)

    def load_module(self, name: str):
        return self._session.load_module(self._prefix + name)

    def device(self, kind: str):
        return self._session.device(kind)


class LocalDevicesRunner(RPCRunner):
    def __init__(self, devices: LocalDevices, **settings) -> None:
        self.devices = devices
        super().__init__("127.0.0.1", 9, "local", **settings)

    def _request_session(self, wait: float):
        return self.devices.request(wait)


def test_candidates_move_to_other_devices_and_fail_after_two_devices(monkeypatch):
    layer = NET.layers[0]
    target = resolve_target("llvm")
    space = target.schedule_space().search_space(layer, target)[:8]
    names = [kernel_name(layer, target.name, knobs) for knobs in space]
    devices = LocalDevices(["dev-a", "dev-b"], {names[1]: "reset-once", names[2]: "reset",
                                                names[4]: "hang"})
    monkeypatch.setattr(rpc, "registered_devices", lambda *_: list(devices.addresses))
    monkeypatch.setenv(rpc_helpers.BUILD_RULES, json.dumps({space[6].tag: "crash",
                                                            space[7].tag: "hang"}))
    runner = LocalDevicesRunner(devices, timeout=3, session_timeout=0, connect_timeout=1,
                                build_workers=1, build=rpc_helpers.build_by_rules)
    try:
        assert runner.parallelism == 2
        got = {m.knobs: m for m in runner.measure(layer, target, space[:4], repeat=2)}
        assert set(got) == set(space[:4])  # one measurement per candidate, none lost
        for knobs in (space[0], space[1], space[3]):
            assert got[knobs].error is None and got[knobs].seconds > 0
        # Reset once, then measured; always reset, given up after two tries. The retry goes to the
        # other device when it has a session then: when both lost theirs at once, the first back
        # takes it (the choice itself is tested in test_a_retry_prefers_a_device_that_has_not_failed).
        assert len(devices.attempts[names[1]]) == 2
        assert len(devices.attempts[names[2]]) == 2
        assert got[space[2]].seconds is None and "failed 2 times" in got[space[2]].error

        (checked,) = runner.measure(layer, target, [space[0]], check=True)
        assert checked.error is None and checked.max_rel_error < 1e-5

        # A build that hangs is stopped at the timeout; one that kills its worker is recorded.
        got = {m.knobs: m for m in runner.measure(layer, target, [space[7], space[6]])}
        assert got[space[7]].error == "building took over 3 s"
        assert got[space[6]].error == "build failed: the candidate crashed its build worker"

        # A hang on every device: each gives up after the timeout, and no device is left.
        start = time.monotonic()
        got = {m.knobs: m for m in runner.measure(layer, target, [space[4], space[5]])}
        assert got[space[5]].error is None
        assert got[space[4]].error.count("no result within 3 s") == 2
        (late,) = runner.measure(layer, target, [space[3]])
        assert late.seconds is None and "no device with key 'local' left" in late.error
        assert time.monotonic() - start < 30
    finally:
        devices.release.set()
        runner.close()


# ---- a tracker and servers on 127.0.0.1 ----------------------------------------------------------


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A tracker, two servers under KEY and one under CLI_KEY, killed whatever happens."""
    cluster = rpc_helpers.Cluster(tmp_path_factory.mktemp("rpc-logs"))
    try:
        cluster.start_tracker()
        for key in (KEY, KEY, CLI_KEY):
            cluster.start_server(key)
        cluster.wait_registered()
        yield cluster
    finally:
        cluster.kill_all()


def test_a_key_no_device_has_is_named(cluster):
    with pytest.raises(SpecError, match="no device with key 'nobody' .*registered keys: "
                                        f"{CLI_KEY}, {KEY}"):
        RPCRunner("127.0.0.1", cluster.port, "nobody")


def test_tuning_survives_a_device_killed_mid_session(cluster, tmp_path, monkeypatch):
    marker = tmp_path / "fail-next-build"
    monkeypatch.setenv(rpc_helpers.FAIL_ONCE, str(marker))
    db = tmp_path / "db.jsonl"
    (victim, victim_address), (_, survivor_address) = cluster.servers[KEY]
    killed = []

    def kill_after_the_first_records(progress):
        if not killed and progress.trial >= 2:
            rpc_helpers.signal_group(victim, signal.SIGKILL)
            marker.touch()  # and the next candidate built fails, as a rejected schedule does
            killed.append(len(list(Database(db).records())))

    runner = RPCRunner("127.0.0.1", cluster.port, KEY, timeout=60, connect_timeout=5,
                       build=rpc_helpers.build_failing_once)
    try:
        assert runner.parallelism == 2
        results = tune(NET, "llvm", database=db, trials=TRIALS, runner=runner,
                       progress=kill_after_the_first_records)
    finally:
        runner.close()
    assert killed and killed[0] >= 2
    assert any(entry.startswith(victim_address) for entry in runner.lost)
    assert not any(entry.startswith(survivor_address) for entry in runner.lost)

    trials = [r for r in Database(db).records() if r.stage == "trial"]
    assert len(trials) == len(NET) * TRIALS
    assert len({(r.workload, r.knobs) for r in trials}) == len(trials)  # each candidate once
    failed = [r for r in trials if r.status == "failed"]
    assert len(failed) == 1 and "rejected on purpose" in failed[0].error
    assert all(r.seconds > 0 for r in trials if r.status == "ok")
    assert [r.trials for r in results] == [TRIALS] * len(NET)
    assert sum(r.failed for r in results) == 1

    for layer, result in zip(NET, results):
        kernel = sc.build(layer, database=db)
        assert kernel.schedule_source.startswith("tuned") and kernel.knobs == result.best
        arrays = random_arrays(layer)
        bias = arrays[3] if layer.bias else None
        assert_matches_reference(layer, kernel(*arrays[:3], bias=bias), arrays)


def test_cli_tunes_over_rpc(cluster, tmp_path):
    spec, db = tmp_path / "tiny.toml", tmp_path / "db.jsonl"
    spec.write_text(SPEC)
    done = subprocess.run(
        [sys.executable, "-m", "sepconv_codegen", "tune", str(spec), "--rpc",
         f"127.0.0.1:{cluster.port}", "--key", CLI_KEY, "--trials", "2", "--db", str(db)],
        check=False, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    records = list(Database(db).records())
    assert sum(r.stage == "trial" and r.status == "ok" for r in records) == 2 * len(NET)
    assert sum(r.stage == "confirmed" and r.status == "ok" for r in records) == len(NET)


UNGUARDED_SCRIPT = """
import sepconv_codegen as sc
from sepconv_codegen.tuning.rpc import RPCRunner

runner = RPCRunner("127.0.0.1", {port}, {key!r}, timeout=60)
print(sc.tune(sc.load_spec("tiny.toml"), "llvm", database="db.jsonl", trials=1, runner=runner))
"""


def test_an_unguarded_script_over_rpc_is_refused_and_its_database_left_clean(cluster, tmp_path):
    # Here it is the build workers that re-import the script and die.
    (tmp_path / "tiny.toml").write_text(SPEC)
    script = UNGUARDED_SCRIPT.format(port=cluster.port, key=CLI_KEY)
    assert_unguarded_script_refused(tmp_path, script)


def test_build_workers_that_cannot_start_blame_no_candidate(monkeypatch):
    import queue
    from collections import deque
    from concurrent.futures import ProcessPoolExecutor

    from sepconv_codegen.tuning import rpc_build
    from sepconv_codegen.tuning.rpc_session import Job

    # Every worker exits before it can run anything, as one does that re-imports an unguarded script.
    def dying(*args, initializer=None, initargs=(), **kwargs):
        return ProcessPoolExecutor(*args, initializer=os._exit, initargs=(3,), **kwargs)

    monkeypatch.setattr(rpc_build, "ProcessPoolExecutor", dying)
    layer, target = NET.layers[0], resolve_target("llvm")
    job = Job(layer, target, target.schedule_space().default_knobs(layer, target), 1, False)
    events = queue.SimpleQueue()
    builds = rpc_build.Builds(1, 60, events.put)
    try:
        builds.start(deque([job]))
        assert builds.finished(events.get(timeout=120)) == (job, None)  # built again, not blamed
        assert job.build_crashes == 0
        builds.start(deque([job]))
        with pytest.raises(SpecError, match="spawn and re-import the main script"):
            builds.finished(events.get(timeout=120))
    finally:
        builds.close()


def test_cli_with_a_malformed_rpc_value_exits_2_with_one_line(tmp_path):
    spec = tmp_path / "tiny.toml"
    spec.write_text(SPEC)
    done = subprocess.run([sys.executable, "-m", "sepconv_codegen", "tune", str(spec), "--rpc",
                           "board:rpc", "--key", KEY], check=False, capture_output=True,
                          text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 2
    assert done.stdout == "" and len(done.stderr.strip().splitlines()) == 1
    assert "'board:rpc' is not HOST:PORT" in done.stderr


def test_a_retry_prefers_a_device_that_has_not_failed():
    from collections import deque
    from types import SimpleNamespace

    class Device:  # hashable by identity, as DeviceSession is
        def __init__(self, address: str) -> None:
            self.address = address

    a, b = Device("dev-a"), Device("dev-b")
    failed_on_a = SimpleNamespace(failed_on={"dev-a"})
    fresh = SimpleNamespace(failed_on=set())
    both = SimpleNamespace(_states={a: None, b: None})
    assert rpc.RPCRunner._pick(both, a, deque([failed_on_a, fresh])) is fresh
    assert rpc.RPCRunner._pick(both, a, deque([failed_on_a])) is None  # left for dev-b
    assert rpc.RPCRunner._pick(both, b, deque([failed_on_a, fresh])) is failed_on_a
    alone = SimpleNamespace(_states={a: None})
    assert rpc.RPCRunner._pick(alone, a, deque([failed_on_a])) is failed_on_a  # no other device
    failed_on_both = SimpleNamespace(failed_on={"dev-a", "dev-b"})
    assert rpc.RPCRunner._pick(both, a, deque([failed_on_both])) is failed_on_both

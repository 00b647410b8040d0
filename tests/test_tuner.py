"""The tuner: records every trial, resumes, survives crashing and hanging candidates and killed
sessions, and build() uses what it found."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from multiprocessing import get_context
from pathlib import Path

import pytest

import sepconv_codegen as sc
import sepconv_codegen.tvm_backend._tvm  # noqa: F401  (sc.tvm_backend._tvm below)
from sepconv_codegen.schedule.cpu import default_knobs
from sepconv_codegen.schedule.knobs import Knobs
from sepconv_codegen.targets import resolve_target
from sepconv_codegen.tuning.database import Database, Record
from sepconv_codegen.tuning.measure import LocalRunner
from sepconv_codegen.tuning.tuner import tune
from tests import tuning_helpers
from tests.conftest import (
    ROOT,
    assert_matches_reference,
    assert_unguarded_script_refused,
    random_arrays,
)

NET = sc.Network((
    sc.SeparableConv2D(name="a", input_shape=(1, 10, 10, 8), out_channels=16),
    sc.SeparableConv2D(name="b", input_shape=(1, 10, 10, 16), strides=2, channel_multiplier=2,
                       out_channels=24, bias=True, activation="relu"),
))


def trial_records(path):
    return [r for r in Database(path).records() if r.stage == "trial"]


def test_tune_records_every_trial_resumes_and_build_uses_it(tmp_path):
    db = tmp_path / "db.jsonl"
    results = sc.tune(NET, "llvm", database=db, trials=3)  # the public entry point
    assert [r.trials for r in results] == [3, 3]
    assert len(trial_records(db)) == 6
    confirmed = [r for r in Database(db).records() if r.stage == "confirmed"]
    assert {r.workload for r in confirmed} == {layer.workload_key for layer in NET}
    assert all(r.versions["tvm"] and r.seconds > 0 for r in confirmed)

    again = tune(NET, "llvm", database=db, trials=5)  # resume: only the 2 missing trials per layer
    assert [r.resumed for r in again] == [3, 3] and [r.trials for r in again] == [5, 5]
    records = trial_records(db)
    assert len(records) == 10
    assert len({(r.workload, r.knobs) for r in records}) == 10  # no candidate measured twice

    layer = NET.layers[1]
    kernel = sc.build(layer, database=db)
    assert kernel.schedule_source.startswith("tuned")
    best = min((r for r in Database(db).records() if r.workload == layer.workload_key
                and r.stage == "confirmed"), key=lambda r: r.seconds)
    assert kernel.knobs == best.knobs
    arrays = random_arrays(layer)
    assert_matches_reference(layer, kernel(*arrays[:3], bias=arrays[3]), arrays)


def test_crashing_candidates_are_recorded_and_skipped(tmp_path):
    db = tmp_path / "db.jsonl"
    layer = NET.layers[0]
    runner = LocalRunner(measure=tuning_helpers.crash_unless_default)
    try:
        (result,) = tune(layer, "llvm", database=db, trials=5, runner=runner)
    finally:
        runner.close()
    records = trial_records(db)
    default = default_knobs(layer, resolve_target("llvm"))
    crashed = [r for r in records if r.knobs != default]
    assert len(records) == 5 and len(crashed) == 4
    assert all(r.status == "failed" and "crashed" in r.error for r in crashed)
    assert result.failed == 4 and result.best == default


def test_hanging_candidates_time_out():
    layer = NET.layers[0]
    target = resolve_target("llvm")
    runner = LocalRunner(timeout=20, measure=tuning_helpers.hang_on_unfused)
    unfused = Knobs(tile_w=8, px=4, oc=16, vec=target.lanes("float32"), fused=False)
    try:
        (m,) = list(runner.measure(layer, target, [unfused]))
        (ok,) = list(runner.measure(layer, target, [unfused.__class__(**{**unfused.to_dict(), "fused": True})]))
    finally:
        runner.close()
    assert m.seconds is None and "timed out" in m.error
    assert ok.error is None and ok.seconds > 0


@pytest.mark.parametrize("name", ["cuda", "aarch64"])
def test_local_tuning_refuses_a_target_that_does_not_run_here(name, tmp_path):
    target = resolve_target(name)
    if target.runs_here:
        pytest.skip(f"{name} runs on this machine")
    with pytest.raises(sc.SpecError, match="does not run on this machine.*--rpc"):
        tune(NET, name, database=tmp_path / "db.jsonl", trials=1)
    assert not (tmp_path / "db.jsonl").exists()


def test_a_missing_database_is_an_error_not_a_silent_fallback(tmp_path):
    missing = tmp_path / "typo.jsonl"
    with pytest.raises(sc.SpecError, match="typo.jsonl' does not exist"):
        sc.build(NET.layers[0], "llvm", database=missing)


def test_bad_trials_value():
    with pytest.raises(sc.SpecError, match="trials"):
        tune(NET, database="unused.jsonl", trials=0)


def _append_many(path, tag, count):
    db = Database(path)
    knobs = Knobs()
    for i in range(count):
        db.append(Record(workload=f"{tag}-{i}", target="t", knobs=knobs, status="ok", seconds=1.0,
                         error="x" * 3000))


def test_concurrent_writers_never_interleave(tmp_path):
    path = tmp_path / "db.jsonl"
    ctx = get_context("spawn")
    workers = [ctx.Process(target=_append_many, args=(path, tag, 150)) for tag in "xyz"]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    lines = path.read_text().splitlines()
    assert len(lines) == 450
    assert all(json.loads(line)["status"] == "ok" for line in lines)


def test_torn_last_line_is_skipped(tmp_path):
    path = tmp_path / "db.jsonl"
    _append_many(path, "w", 2)
    with open(path, "a") as handle:
        handle.write('{"workload": "half')  # what a kill mid-write could leave
    assert len(list(Database(path).records())) == 2


def test_killed_session_loses_nothing_and_resumes(tmp_path):
    spec = tmp_path / "net.toml"
    spec.write_text('[[layer]]\nname = "a"\ninput_shape = [1, 10, 10, 8]\nout_channels = 16\n')
    db = tmp_path / "db.jsonl"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "sepconv_codegen", "tune", str(spec), "--trials", "12", "--db", str(db)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and len(trial_records(db)) < 3:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = trial_records(db)
    assert 3 <= len(before) < 12
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    after = trial_records(db)
    assert len(after) == 12 and {r.knobs for r in before} <= {r.knobs for r in after}
    assert f"{len(before):>7}" in done.stdout  # the summary's "resumed" column


def test_records_from_another_tvm_or_cpu_are_not_applied(tmp_path):
    layer = NET.layers[0]
    target = resolve_target("llvm")
    db = Database(tmp_path / "db.jsonl")
    knobs = Knobs(tile_h=1, tile_w=5, px=5, oc=8, vec=8)
    db.append(Record(workload=layer.workload_key, target=target.key, knobs=knobs, status="ok",
                     seconds=1e-6, versions={"tvm": "0.1.0"}, stage="confirmed"))
    other_cpu = json.dumps({**target.tvm, "mcpu": "some-other-cpu"}, sort_keys=True, separators=(",", ":"))
    db.append(Record(workload=layer.workload_key, target=other_cpu, knobs=knobs, status="ok",
                     seconds=1e-6, versions={"tvm": sc.tvm_backend._tvm.tvm.__version__}, stage="confirmed"))
    kernel = sc.build(layer, database=db.path)
    assert kernel.schedule_source.startswith("default") and "TVM 0.1.0" in kernel.schedule_source
    assert kernel.knobs != knobs


@pytest.mark.parametrize("threads, block, shipped", [
    ("2", "block12", True),  # tuned on 2 cores: 2 parallel tasks are enough here
    ("4", "block12", False),
    ("16", "block7", False),  # 4 tasks
    ("16", "block1", True),  # 56 tasks
])
def test_shipped_records_with_too_few_parallel_tasks_give_way_on_bigger_machines(
        threads, block, shipped, monkeypatch):
    from sepconv_codegen.builder import choose_knobs
    from sepconv_codegen.schedule.cpu import DEFAULT_TASKS, parallel_tasks

    monkeypatch.setenv("TVM_NUM_THREADS", threads)
    target = resolve_target('{"kind": "llvm", "mcpu": "znver3"}')  # the CPU the shipped file is for
    layer = next(layer for layer in sc.mobilenet_v1().layers if layer.name == block)
    knobs, source = choose_knobs(layer, target)
    if shipped:
        assert source == "shipped (llvm-znver3.jsonl)"
    else:
        assert source.startswith("default (the shipped record runs as")
        assert f"too few for {threads} threads here; tune on this machine" in source
        assert parallel_tasks(layer, knobs) >= min(int(threads), DEFAULT_TASKS)


def test_a_users_own_records_are_kept_whatever_their_parallel_tasks(tmp_path, monkeypatch):
    monkeypatch.setenv("TVM_NUM_THREADS", "16")
    layer = NET.layers[0]
    target = resolve_target("llvm")
    db = Database(tmp_path / "db.jsonl")
    knobs = Knobs(tile_h=layer.output_shape[1], tile_w=layer.output_shape[2], px=1, oc=8, vec=8)  # 1 task
    db.append(Record(workload=layer.workload_key, target=target.key, knobs=knobs, status="ok",
                     seconds=1e-6, versions={"tvm": sc.tvm_backend._tvm.tvm.__version__}, stage="confirmed"))
    from sepconv_codegen.builder import choose_knobs

    chosen, source = choose_knobs(layer, target, db.path)
    assert chosen == knobs and source.startswith("tuned")


def test_candidate_timed_at_several_thread_counts_scores_their_geometric_mean(monkeypatch):
    from sepconv_codegen.tuning import measure
    from sepconv_codegen.tvm_backend import _tvm
    from sepconv_codegen.tvm_backend.module import TVMKernel

    state = {"threads": None}
    monkeypatch.setattr(_tvm, "set_num_threads", lambda n: state.update(threads=n) or n)
    # 3 ms at 1 thread, 12 ms at 4: the geometric mean is 6 ms (the arithmetic one, 7.5).
    monkeypatch.setattr(TVMKernel, "time", lambda self, arrays, number, repeat, min_repeat_ms:
                        [{1: 3e-3, 4: 12e-3}[state["threads"]]] * repeat)
    layer = NET.layers[0]
    target = resolve_target("llvm")
    knobs = default_knobs(layer, target).to_dict()
    result = measure.measure_candidate(layer.to_dict(), target, knobs, 3, False, (1, 4))
    assert result["seconds"] == pytest.approx(6e-3)
    assert result["samples"] == pytest.approx([6e-3] * 3)
    single = measure.measure_candidate(layer.to_dict(), target, knobs, 3, False, 4)
    assert single["seconds"] == pytest.approx(12e-3)


def test_tune_cli_rejects_bad_thread_counts(tmp_path, capsys):
    from sepconv_codegen.cli import main as cli_main

    assert cli_main(["tune", "--threads", "1,0", "--db", str(tmp_path / "db.jsonl")]) == 2
    assert "1,0" in capsys.readouterr().err


TINY_LAYER = '[[layer]]\nname = "a"\ninput_shape = [1, 8, 8, 4]\nout_channels = 8\n'

UNGUARDED_SCRIPT = """
import sepconv_codegen as sc

layers = sc.load_spec("net.toml")
print(sc.tune(layers, "llvm", database="db.jsonl", trials=1))
"""


def test_an_unguarded_script_is_refused_and_its_database_left_clean(tmp_path):
    (tmp_path / "net.toml").write_text(TINY_LAYER)
    assert_unguarded_script_refused(tmp_path, UNGUARDED_SCRIPT)


def _tiny_spec(tmp_path):
    spec = tmp_path / "net.toml"
    spec.write_text(TINY_LAYER)
    return str(spec)


@pytest.mark.parametrize("value", ["nan", "inf"])
def test_tune_cli_refuses_a_timeout_that_is_not_a_positive_number(value, tmp_path, capsys):
    from sepconv_codegen.cli import main as cli_main

    db = tmp_path / "db.jsonl"
    args = ["tune", _tiny_spec(tmp_path), "--trials", "1", "--db", str(db), f"--timeout={value}"]
    assert cli_main(args) == 2
    out, err = capsys.readouterr()
    assert not out and not db.exists()
    assert err.count("\n") == 1
    assert f"--timeout must be a positive number of seconds, got {float(value)}" in err


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 0, -1.0])
def test_runners_refuse_a_timeout_that_is_not_a_positive_number(value):
    from sepconv_codegen.tuning.rpc import RPCRunner

    words = f"^timeout must be a positive number of seconds, got {value}$"
    with pytest.raises(sc.SpecError, match=words):
        LocalRunner(timeout=value)
    with pytest.raises(sc.SpecError, match=words):
        RPCRunner("127.0.0.1", 9, "board", timeout=value)  # refused before it connects


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_rpc_runner_refuses_a_session_timeout_that_is_not_finite(value):
    from sepconv_codegen.tuning.rpc import RPCRunner

    with pytest.raises(sc.SpecError, match=f"session timeout must be 0 .*got {value}$"):
        RPCRunner("127.0.0.1", 9, "board", session_timeout=value)


class _MeasuresNothing:
    """A runner for tests that must refuse before any candidate is measured."""

    def measure(self, *args, **kwargs):
        raise AssertionError("a candidate was measured")


def _unwritable_databases(tmp_path):
    """(path, what the error says) for databases that cannot be appended to, even by root."""
    afile = tmp_path / "net.toml"
    afile.write_text(TINY_LAYER)
    (tmp_path / "folder").mkdir()
    return [
        (afile / "db.jsonl", f"cannot be written: {str(afile)!r} is a file, not a folder"),
        (afile / "sub" / "db.jsonl", f"cannot be written: {str(afile)!r} is a file, not a folder"),
        (tmp_path / "folder", "is a folder, not a database file (name a file in it"),
        (Path("/proc/sepconv-tuning.jsonl"), "cannot be written: "),  # procfs takes no new files
    ]


def test_tune_refuses_a_database_it_cannot_write_before_any_work(tmp_path):
    for path, words in _unwritable_databases(tmp_path):
        with pytest.raises(sc.SpecError, match="^" + re.escape(f"database {str(path)!r} {words}")):
            tune(NET.layers[0], "llvm", database=path, trials=1, runner=_MeasuresNothing())


def test_tune_cli_refuses_a_database_it_cannot_write(tmp_path, capsys):
    from sepconv_codegen.cli import main as cli_main

    spec = str(tmp_path / "net.toml")
    for path, words in _unwritable_databases(tmp_path):
        assert cli_main(["tune", spec, "--trials", "1", "--db", str(path)]) == 2
        out, err = capsys.readouterr()
        assert not out and err.count("\n") == 1 and f"--db {str(path)!r} {words}" in err


def test_the_database_check_leaves_no_file_behind(tmp_path):
    from sepconv_codegen.tuning.database import check_writable

    path = tmp_path / "new" / "tuning.jsonl"
    check_writable(path, "--db")  # a run refused after this check must not leave an empty database
    assert path.parent.is_dir() and list(path.parent.iterdir()) == []
    path.write_text("")
    check_writable(path, "--db")
    assert path.read_text() == ""


# ---- resuming: what counts as tried ---------------------------------------------------------------


class _FakeRunner:
    """Times every candidate as 1 ms plus a little per knob tag, or fails them all as told."""

    def __init__(self, fail=None, timeout=None, setting=None, check_fails=None):
        self.fail, self.timeout, self.check_fails = fail, timeout, check_fails
        self.setting = setting or {}
        self.measured = set()

    def measure(self, layer, target, candidates, repeat=5, check=False):
        from sepconv_codegen.tuning.measure import Measurement

        for knobs in candidates:
            failure = self.check_fails if check else self.fail
            if not check:
                self.measured.add(knobs)  # trials and the leaders' re-timing
            if failure:
                yield Measurement(knobs, None, **failure)
            else:
                yield Measurement(knobs, 1e-3 * (1 + (hash(knobs.tag) % 100) / 1e3))


LOST = {"error": "failed 2 times: lost its session", "retry": True}


def test_failures_that_are_not_the_candidates_are_measured_again_on_resume(tmp_path):
    db, layer = tmp_path / "db.jsonl", NET.layers[0]
    (first,) = tune(layer, "llvm", database=db, trials=4, runner=_FakeRunner(fail=LOST))
    assert first.failed == 4 and first.best is None
    assert all(r.retry for r in trial_records(db))
    runner = _FakeRunner()
    (again,) = tune(layer, "llvm", database=db, trials=4, runner=runner)
    assert again.resumed == 0 and len(runner.measured) == 4 and again.best and again.confirmed
    # the candidate's own failures are not retried
    (third,) = tune(layer, "llvm", database=db, trials=4, runner=_FakeRunner(fail={"error": "x"}))
    assert third.resumed == 4 and third.best == again.best


def test_a_timeout_is_retried_only_under_a_longer_one(tmp_path):
    db, layer = tmp_path / "db.jsonl", NET.layers[0]
    timed_out = {"error": "timed out after 1 s", "timeout_s": 1.0}
    tune(layer, "llvm", database=db, trials=3, runner=_FakeRunner(fail=timed_out, timeout=1.0))
    same = _FakeRunner(timeout=1.0)
    (result,) = tune(layer, "llvm", database=db, trials=3, runner=same)
    assert result.resumed == 3 and not same.measured and result.failed == 3
    assert all("(earlier session)" in e for e in result.errors)  # the summary says why
    longer = _FakeRunner(timeout=10.0)
    (result,) = tune(layer, "llvm", database=db, trials=3, runner=longer)
    assert result.resumed == 0 and len(longer.measured) == 3 and result.confirmed


def test_records_of_another_tvm_or_timing_setting_are_not_resumed(tmp_path):
    db, layer = tmp_path / "db.jsonl", NET.layers[0]
    tune(layer, "llvm", database=db, trials=3, runner=_FakeRunner(setting={"threads": [2]}))
    one_thread = _FakeRunner(setting={"threads": [1]})
    (result,) = tune(layer, "llvm", database=db, trials=3, runner=one_thread)
    assert result.resumed == 0 and len(one_thread.measured) == 3
    lines = [json.loads(line) for line in db.read_text().splitlines()]
    for line in lines:
        line["versions"]["tvm"] = "0.1.0"
    db.write_text("".join(json.dumps(line) + "\n" for line in lines))
    again = _FakeRunner(setting={"threads": [1]})
    (result,) = tune(layer, "llvm", database=db, trials=3, runner=again)
    assert result.resumed == 0 and len(again.measured) == 3


def test_a_best_trial_whose_confirmation_could_not_run_is_reported_unconfirmed(tmp_path):
    runner = _FakeRunner(check_fails=LOST)
    (result,) = tune(NET.layers[0], "llvm", database=tmp_path / "db.jsonl", trials=3, runner=runner)
    assert result.best is not None and not result.confirmed and result.seconds
    # leaders whose check found them wrong are no best trial, confirmed or not
    wrong = _FakeRunner(check_fails={"error": "differs from the reference"})
    (result,) = tune(NET.layers[0], "llvm", database=tmp_path / "db2.jsonl", trials=3, runner=wrong)
    assert result.best is None and not result.confirmed


def test_build_never_applies_knobs_whose_confirmation_found_them_wrong(tmp_path):
    layer, target = NET.layers[0], resolve_target("llvm")
    db = Database(tmp_path / "db.jsonl")
    wrong = Knobs(tile_h=1, tile_w=5, px=5, oc=8, vec=8)
    tvm_version = {"tvm": sc.tvm_backend._tvm.tvm.__version__}
    for stage, status, error in (("trial", "ok", None),
                                 ("confirmed", "failed", "differs from the reference")):
        db.append(Record(workload=layer.workload_key, target=target.key, knobs=wrong,
                         status=status, seconds=1e-9 if status == "ok" else None, error=error,
                         versions=tvm_version, stage=stage))
    assert sc.build(layer, database=db.path).knobs != wrong


def test_an_appended_record_survives_a_torn_line_before_it(tmp_path):
    path = tmp_path / "db.jsonl"
    _append_many(path, "w", 2)
    with open(path, "a") as handle:
        handle.write('{"workload": "half')
    _append_many(path, "after", 1)
    assert [r.workload for r in Database(path).records()] == ["w-0", "w-1", "after-0"]


def test_tune_will_not_append_to_a_file_that_is_not_a_database(tmp_path):
    spec = tmp_path / "net.toml"
    spec.write_text(TINY_LAYER)
    with pytest.raises(sc.SpecError, match="is not a tuning database: line 1"):
        tune(NET.layers[0], "llvm", database=spec, trials=1, runner=_MeasuresNothing())
    assert spec.read_text() == TINY_LAYER
    torn_first = tmp_path / "torn.jsonl"  # killed during its first write: still a database
    torn_first.write_text('{"workload": "hal')
    tune(NET.layers[0], "llvm", database=torn_first, trials=1, runner=_FakeRunner())


def test_tune_names_a_path_given_for_the_network_or_no_database(tmp_path):
    with pytest.raises(sc.SpecError, match=r"got the path 'net.toml': read a spec file with sc\.load_spec"):
        sc.tune("net.toml", "llvm", database=tmp_path / "db.jsonl")
    with pytest.raises(sc.SpecError, match="database must be the path .* got None"):
        sc.tune(NET, "llvm", database=None)


def test_build_says_when_a_database_holds_the_layer_for_another_cpu(tmp_path):
    layer, target = NET.layers[0], resolve_target("llvm")
    other = json.dumps({**target.tvm, "mcpu": "skylake"}, sort_keys=True, separators=(",", ":"))
    db = Database(tmp_path / "db.jsonl")
    db.append(Record(workload=layer.workload_key, target=other, knobs=Knobs(), status="ok",
                     seconds=1e-6, versions={"tvm": sc.tvm_backend._tvm.tvm.__version__}))
    source = sc.build(layer, database=db.path).schedule_source
    assert source.startswith("default") and "skylake" in source and "not " + target.key in source


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc (Linux)")
def test_a_tuner_killed_by_sigterm_leaves_no_worker_behind(tmp_path):
    spec = _tiny_spec(tmp_path)
    db = tmp_path / "db.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "sepconv_codegen", "tune", str(spec), "--trials",
                             "50", "--db", str(db)], env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not trial_records(db):
        time.sleep(0.2)
    workers = _children(proc.pid)
    assert workers, "the tuner had no worker process"
    proc.send_signal(signal.SIGTERM)
    proc.wait(30)
    deadline = time.time() + 20
    while time.time() < deadline and any(Path(f"/proc/{pid}").exists() for pid in workers):
        time.sleep(0.2)
    alive = [pid for pid in workers if Path(f"/proc/{pid}").exists()
             and Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"]
    for pid in alive:
        os.kill(pid, signal.SIGKILL)
    assert not alive, "workers outlived the tuner"


def test_build_prints_the_tag_of_the_tuned_record_it_applies(tmp_path, capsys):
    from sepconv_codegen.cli import main as cli_main

    spec = _tiny_spec(tmp_path)
    layer = sc.load_spec(spec).layers[0]
    target = resolve_target("llvm")
    knobs = Knobs(tile_h=1, tile_w=4, px=4, oc=8, vec=8)
    Database(tmp_path / "db.jsonl").append(Record(
        workload=layer.workload_key, target=target.key, knobs=knobs, status="ok", seconds=1e-6,
        versions={"tvm": sc.tvm_backend._tvm.tvm.__version__}, stage="confirmed"))
    assert cli_main(["build", spec, "--database", str(tmp_path / "db.jsonl"), "--no-c",
                     "-o", str(tmp_path / "out")]) == 0
    assert f"tuned (db.jsonl) {knobs.tag}" in capsys.readouterr().out

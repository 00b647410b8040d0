"""The peer benchmark: every peer computes the layer exactly, the timer interleaves, the CLI works.

Peers whose package is missing are skipped with the pip command as the reason.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from sepconv_codegen import SeparableConv2D, SpecError
from sepconv_codegen.bench import PEER_NAMES, run_benchmark
from sepconv_codegen.bench.peers import get_peer, parse_peer_names
from sepconv_codegen.bench.roofline import Roofline, layer_bytes
from sepconv_codegen.bench.runner import parse_threads, relative_error
from sepconv_codegen.bench.timing import interleaved, rotation
from sepconv_codegen.cli import main
from tests.conftest import assert_matches_reference, random_arrays

# Small layers that exercise what the peers must express with their own padding rules.
LAYERS = {
    # SAME, stride 2 on an even size: TF pads (0, 1), which symmetric padding gets wrong.
    "same_s2_asym_m2_bias_relu6": SeparableConv2D(
        input_shape=(1, 10, 12, 6),
        strides=2,
        channel_multiplier=2,
        out_channels=7,
        bias=True,
        activation="relu6",
        name="same_s2",
    ),
    # Explicit asymmetric pads and dilation: a PAD op in TFLite, F.pad plus conv padding in torch.
    "explicit_pads_dilation2_relu": SeparableConv2D(
        input_shape=(1, 9, 8, 5),
        padding=((1, 2), (0, 1)),
        dilation=2,
        out_channels=4,
        activation="relu",
        name="explicit",
    ),
    # SAME stride 1, odd sizes, M=3, more outputs than depthwise channels.
    "same_s1_m3": SeparableConv2D(
        input_shape=(1, 7, 5, 3), channel_multiplier=3, out_channels=11, name="same_s1"
    ),
}


def _available_peer(name: str):
    peer = get_peer(name)
    reason = peer.unavailable_reason()
    if reason:
        pytest.skip(reason)
    return peer


@pytest.mark.parametrize("layer_id", list(LAYERS))
@pytest.mark.parametrize("peer_name", PEER_NAMES)
def test_peer_matches_reference(peer_name: str, layer_id: str) -> None:
    peer = _available_peer(peer_name)
    layer = LAYERS[layer_id]
    arrays = random_arrays(layer, seed=3)
    for threads in (1, 2):
        bound = peer.build(layer, arrays, threads)
        bound()
        assert_matches_reference(layer, bound.output(), arrays)


def test_tflite_runs_under_xnnpack() -> None:
    peer = _available_peer("tflite")
    layer = LAYERS["same_s2_asym_m2_bias_relu6"]
    bound = peer.build(layer, random_arrays(layer), 1)
    assert bound.details["xnnpack"] is True, bound.notes


def test_ours_in_the_benchmark_matches_reference() -> None:
    from sepconv_codegen.bench.ours import build_ours

    layer = LAYERS["same_s2_asym_m2_bias_relu6"]
    arrays = random_arrays(layer, seed=5)
    ours = build_ours(layer, "tvm")
    assert ours.failure is None, ours.failure
    bound = ours.bind(arrays, 1)
    assert ours.threads_in_effect == 1
    assert_matches_reference(layer, bound.output(), arrays)


def test_missing_package_makes_a_peer_unavailable_with_the_extra_to_install() -> None:
    from sepconv_codegen.bench.peers import Peer

    class Missing(Peer):
        name = "missing"
        modules = ("sepconv_codegen_no_such_module",)

    reason = Missing().unavailable_reason()
    assert "sepconv_codegen_no_such_module" in reason
    assert "pip install 'sepconv_codegen[bench]'" in reason


def test_relative_error_flags_wrong_and_non_finite() -> None:
    want = np.array([[2.0, -4.0]])
    assert relative_error(np.array([[2.0, -4.0]]), want) == 0.0
    assert relative_error(np.array([[2.0, -3.0]]), want) == pytest.approx(0.25)
    assert relative_error(np.array([[np.nan, -4.0]]), want) == float("inf")
    assert relative_error(np.zeros((2, 1)), want) == float("inf")


class _FakeClock:
    """A clock in integer nanoseconds that only the fake calls advance."""

    def __init__(self) -> None:
        self.now = 0
        self.log: list[str] = []

    def __call__(self) -> int:
        return self.now

    def call(self, name: str, cost_ns: int):
        def run() -> None:
            self.log.append(name)
            self.now += cost_ns

        return run


def test_interleaved_times_each_call_once_per_round_in_rotating_order() -> None:
    clock = _FakeClock()
    calls = {"a": clock.call("a", 3000), "b": clock.call("b", 5000), "c": clock.call("c", 7000)}
    samples = interleaved(calls, rounds=4, warmup=1, warm_calls=1, clock=clock)
    assert {n: len(s.seconds) for n, s in samples.items()} == {"a": 4, "b": 4, "c": 4}
    assert samples["a"].median == pytest.approx(3e-6)
    assert samples["c"].max == pytest.approx(7e-6)
    # 1 warm-up round of 3 calls, then per round each name twice (untimed warm call + timed).
    assert len(clock.log) == 3 + 4 * 3 * 2
    timed_rounds = clock.log[3:]
    firsts = [timed_rounds[6 * r] for r in range(4)]
    assert firsts == ["a", "b", "c", "a"]
    assert rotation(["a", "b", "c"], 2) == ["c", "a", "b"]


def test_interleaved_warms_up_for_a_time_before_each_timed_call() -> None:
    clock = _FakeClock()
    calls = {"a": clock.call("a", 3000), "b": clock.call("b", 5000)}
    samples = interleaved(calls, rounds=2, warmup=0, warm_calls=1, warm_s=10e-6, clock=clock)
    assert samples["a"].median == pytest.approx(3e-6)
    # Warm calls until 10 us have passed: 4 of a (3 us each), 2 of b (5 us), then the timed one.
    assert clock.log == ["a"] * 5 + ["b"] * 3 + ["b"] * 3 + ["a"] * 5


def test_interleaved_loop_samples_are_means_of_back_to_back_calls() -> None:
    clock = _FakeClock()
    calls = {"a": clock.call("a", 3000), "b": clock.call("b", 5000)}
    samples = interleaved(calls, rounds=2, warmup=0, loop_s=10e-6, clock=clock)
    # Calls until 10 us have passed: 4 of a (12 us), 2 of b (10 us); the sample is per call.
    assert samples["a"].seconds == pytest.approx((3e-6, 3e-6))
    assert samples["b"].seconds == pytest.approx((5e-6, 5e-6))
    assert clock.log == ["a"] * 4 + ["b"] * 2 + ["b"] * 2 + ["a"] * 4
    for bad in (float("nan"), float("inf"), -1e-3):
        with pytest.raises(ValueError, match="loop_s must be zero or a finite number of seconds"):
            interleaved(calls, rounds=1, loop_s=bad, clock=clock)


def test_interleaved_medians_of_varying_samples() -> None:
    clock = _FakeClock()
    costs = iter([10, 1000, 30, 20, 40])
    calls = {"x": lambda: setattr(clock, "now", clock.now + next(costs))}
    samples = interleaved(calls, rounds=5, warmup=0, clock=clock)["x"]
    assert samples.seconds == (1e-8, 1e-6, 3e-8, 2e-8, 4e-8)
    assert samples.median == pytest.approx(3e-8)
    assert samples.min == pytest.approx(1e-8)


@pytest.mark.parametrize("text", ["0", "a", "", "1,,2", "-1", "1.5", "2,0"])
def test_bad_threads_are_spec_errors(text: str) -> None:
    with pytest.raises(SpecError, match="threads"):
        parse_threads(text)


def test_threads_and_peers_parse() -> None:
    assert parse_threads("1,2") == (1, 2)
    assert parse_threads([2, 1, 2]) == (2, 1)
    assert parse_peer_names("torch, tflite") == ("torch", "tflite")
    assert parse_peer_names("none") == ()
    with pytest.raises(SpecError, match="unknown peer 'tensorflow'"):
        parse_peer_names("torch,tensorflow")


def test_roofline_bound_is_the_larger_of_compute_and_traffic() -> None:
    layer = SeparableConv2D(input_shape=(1, 4, 4, 2), out_channels=3)
    # input 32 + dw 18 + pw 6 + output 48 floats
    assert layer_bytes(layer) == 4 * (32 + 18 + 6 + 48)
    roof = Roofline(1e9, "test", {1: 1e6, 2: 1e6}, {1: "t", 2: "t"})
    assert roof.bound_seconds(layer, 1) == pytest.approx(layer_bytes(layer) / 1e6)
    fast_memory = Roofline(1e9, "test", {1: 1e15}, {1: "t"})
    assert fast_memory.bound_seconds(layer, 1) == pytest.approx(layer.flops / 1e9)


def test_run_benchmark_api_reports_checks_and_ratios() -> None:
    layer = LAYERS["same_s2_asym_m2_bias_relu6"]
    roof = Roofline(5e10, "test", {1: 1e10}, {1: "t"})
    result = run_benchmark(layer, threads=(1,), peers=("tflite",), runs=3, roofline=roof, loop_s=1e-3)
    assert result.settings["loop_s"] == 1e-3
    (run,) = result.runs
    assert run.ours.ok and len(run.ours.samples.seconds) == 3
    assert run.ours.error <= 1e-5
    if "tflite" in result.skipped:
        assert "pip install" in result.skipped["tflite"]
    else:
        peer = run.results["tflite"]
        assert peer.ok and run.best_peer is peer
        assert run.speedup == pytest.approx(peer.median / run.ours.median)
    assert run.roofline_fraction == pytest.approx(roof.bound_seconds(layer, 1) / run.ours.median)
    json.dumps(result.to_dict())


def test_long_layer_names_are_printed_whole_and_aligned(capsys) -> None:
    from sepconv_codegen.bench import report

    names = ["xception_entry1", "xception_entry2"]  # the same in their first 12 characters
    layers = [LAYERS["same_s1_m3"].replace(name=n) for n in names]
    roof = Roofline(5e10, "test", {1: 1e10}, {1: "t"})
    results = [run_benchmark(layer, threads=(1,), peers=(), runs=1, roofline=roof) for layer in layers]
    width = report.layer_width(names)
    assert width == len("xception_entry1") and report.layer_width(["a"]) == 12
    rows = [report.format_row(r.runs[0], ["ours"], width) for r in results]
    header = report.format_header(["ours"], 1, width).splitlines()[1]
    for row, name in zip(rows, names):
        assert row.startswith(name + " ") and len(row) == len(header)
    summary = report.format_summary(results[0])
    assert summary.splitlines()[1].startswith("layer" + " " * (width - 4))


@pytest.mark.parametrize("loop_s", [-1.0, float("nan"), "1", True])
def test_run_benchmark_refuses_a_bad_loop_time(loop_s) -> None:
    with pytest.raises(SpecError, match=r"loop_s must be zero or a finite number of seconds, got"):
        run_benchmark(LAYERS["same_s1_m3"], threads=(1,), peers=(), runs=1, loop_s=loop_s)


def test_impl_c_runs_or_says_why_not() -> None:
    layer = LAYERS["same_s1_m3"]
    roof = Roofline(5e10, "test", {1: 1e10}, {1: "t"})
    messages: list[str] = []
    result = run_benchmark(
        layer, threads=(1,), peers=(), impl="c", runs=2, roofline=roof, log=messages.append
    )
    ours = result.runs[0].ours
    if ours.failure:
        assert any("ours (c)" in m for m in messages)
    else:
        assert ours.ok, ours.error


SPEC = """
name = "tiny"

[[layer]]
name = "s2_m2"
input_shape = [1, 12, 12, 8]
strides = 2
channel_multiplier = 2
out_channels = 16
bias = true
activation = "relu6"

[[layer]]
name = "s1"
out_channels = 8
"""


def test_cli_end_to_end_writes_json_and_png(tmp_path, capsys) -> None:
    spec = tmp_path / "tiny.toml"
    spec.write_text(SPEC)
    out_json, out_png = tmp_path / "bench.json", tmp_path / "bench.png"
    status = main(
        [
            "bench",
            str(spec),
            "--threads",
            "1,2",
            "--runs",
            "3",
            "--json",
            str(out_json),
            "--png",
            str(out_png),
        ]
    )
    printed = capsys.readouterr().out
    assert status == 0
    assert "total 1t" in printed and "total 2t" in printed
    data = json.loads(out_json.read_text())
    assert data["network"] == "tiny" and data["threads"] == [1, 2]
    assert data["machine"]["cpu"] and data["roofline"]["peak_gflops_per_thread"] > 0
    assert [(e["layer"], e["threads"]) for e in data["layers"]] == [
        ("s2_m2", 1),
        ("s1", 1),
        ("s2_m2", 2),
        ("s1", 2),
    ]
    for entry in data["layers"]:
        ours = entry["impls"]["ours"]
        assert ours["status"] == "ok" and ours["error"] <= 1e-4 and ours["rounds"] == 3
        assert ours["min_s"] <= ours["median_s"] <= ours["max_s"]
        for name in PEER_NAMES:
            if name in data["peers_skipped"]:
                continue
            assert entry["impls"][name]["status"] == "ok", entry["impls"][name]
            assert data["machine"]["versions"][f"peer:{name}"]
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--vs", "tensorflow"], "unknown peer 'tensorflow'"),
        (["--threads", "0"], "threads"),
        (["--threads", "a"], "threads"),
        (["--runs", "0"], "runs"),
        (["--loop-ms", "-1"], "--loop-ms must be zero or a finite number of milliseconds, got -1"),
        (["--loop-ms", "inf"], "--loop-ms"),
        (["--impl", "cuda"], "--impl"),
        (["--database", "/nonexistent/db.jsonl"], "database"),
        # Output files are checked before the minutes of timing whose results they would hold.
        (["--json", "{tmp}/tiny.toml/out.json"], "--json '"),
        (["--png", "{tmp}/tiny.toml/out.png"], "--png '"),
        (["--json", "{tmp}"], "is a folder"),
        (["--json", ""], "--json is empty"),
        (["--png", "{tmp}/chart.pdf"], "--png '{tmp}/chart.pdf' must name a .png file"),
    ],
)
def test_cli_bad_options_exit_2_with_one_line(argv, message, tmp_path, capsys) -> None:
    spec = tmp_path / "tiny.toml"
    spec.write_text(SPEC)
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    try:
        status = main(["bench", str(spec), *argv])
    except SystemExit as exit_:  # argparse's own errors
        status = exit_.code
    out, err = capsys.readouterr()
    assert status == 2
    assert len(err.strip().splitlines()) == 1, err
    assert message.replace("{tmp}", str(tmp_path)) in err
    assert out == ""  # refused before any work


def test_c_and_tvm_kernels_compared_in_one_run(tmp_path):
    """`bench --impl c --vs sepconv-tvm`: both of our backends, checked and timed together."""
    import json
    import os
    import subprocess
    import sys

    from tests.conftest import ROOT

    spec = tmp_path / "one.toml"
    spec.write_text('[[layer]]\nname = "a"\ninput_shape = [1, 9, 9, 16]\nout_channels = 24\n'
                    'strides = 2\nbias = true\nactivation = "relu6"\n')
    out = tmp_path / "r.json"
    done = subprocess.run(
        [sys.executable, "-m", "sepconv_codegen", "bench", str(spec), "--impl", "c", "--vs",
         "sepconv-tvm", "--threads", "1", "--runs", "3", "--json", str(out)],
        capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 0, done.stderr
    impls = json.loads(out.read_text())["layers"][0]["impls"]
    assert impls["ours"]["status"] == "ok" and impls["sepconv-tvm"]["status"] == "ok"
    assert impls["ours"]["error"] < 1e-4 and impls["sepconv-tvm"]["error"] < 1e-4
    assert impls["ours"]["rounds"] == 3 and impls["sepconv-tvm"]["rounds"] == 3


def test_roofline_keeps_the_best_of_two_measurements() -> None:
    slow_moment = Roofline(7e10, "numpy.matmul", {1: 1.1e10, 2: 1.6e10}, {1: "a@1", 2: "b@2"}, {"numpy.matmul": 7e10})
    quiet = Roofline(8e10, "torch.mm", {1: 1.3e10, 2: 1.5e10}, {1: "a@1", 2: "b@2"}, {"numpy.matmul": 7.5e10})
    best = slow_moment.best_of(quiet)
    assert best.peak_flops_per_thread == 8e10 and best.peak_gauge == "torch.mm"
    assert best.bandwidth == {1: 1.3e10, 2: 1.6e10}
    assert best.gauges["numpy.matmul"] == 7.5e10
    assert best == quiet.best_of(slow_moment)


def test_a_wrong_kernel_of_ours_gets_no_ratio_and_fails_the_run(tmp_path, capsys, monkeypatch):
    from sepconv_codegen.bench import runner

    monkeypatch.setattr(runner, "relative_error", lambda got, want: 0.5)  # every output wrong
    spec = tmp_path / "tiny.toml"
    spec.write_text(SPEC)
    out = tmp_path / "r.json"
    assert main(["bench", str(spec), "--vs", "none", "--threads", "1", "--runs", "1",
                 "--json", str(out)]) == 1
    captured = capsys.readouterr()
    assert "ours differs from the reference on" in captured.err
    assert "no speedup, GFLOP/s or roofline given" in captured.out
    for entry in json.loads(out.read_text())["layers"]:
        assert entry["impls"]["ours"]["status"] == "wrong"
        assert entry["speedup_vs_best_peer"] is None and entry["roofline_fraction_ours"] is None


def test_roofline_only_for_float32_and_skipped_peers_in_the_summary() -> None:
    from sepconv_codegen.bench import report

    roof = Roofline(5e10, "test", {1: 1e10}, {1: "t"})
    layer = LAYERS["same_s1_m3"].replace(dtype="float64")
    result = run_benchmark(layer, threads=(1,), peers=(), runs=1, roofline=roof)
    assert result.runs[0].ours.ok and result.runs[0].roofline_fraction is None
    result.skipped["tflite"] = "tflite: skipped, Python package 'ai_edge_litert' is not installed"
    assert "not compared with tflite: skipped" in report.format_summary(result)


def test_a_database_for_the_c_kernels_alone_is_refused(tmp_path) -> None:
    db = tmp_path / "db.jsonl"
    db.write_text('{"workload": "w", "target": "t"}\n')
    with pytest.raises(SpecError, match="applies only to the sepconv-tvm peer"):
        run_benchmark(LAYERS["same_s1_m3"], threads=(1,), peers=(), impl="c", runs=1, database=db)

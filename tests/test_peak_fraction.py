"""examples/peak_fraction.py: every layer is checked, then reported against the FMA peak."""

import importlib.util
import re
from pathlib import Path

import pytest

from tests.conftest import TINY_SPEC

SCRIPT = Path(__file__).resolve().parent.parent / "examples" / "peak_fraction.py"
_spec = importlib.util.spec_from_file_location("peak_fraction", SCRIPT)
peak_fraction = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(peak_fraction)

pytestmark = pytest.mark.skipif(not peak_fraction.has_avx2_fma(), reason="the peak loop is AVX2/FMA")

ROW = re.compile(r"^(\w+)\s+([\d.]+)\s+([\d.]+)%\s+([\d.]+)%\s+([\d.]+)\s+([\d.]+)%\s+([\d.]+)%$")


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(TINY_SPEC)
    return path


def test_reports_every_layer_and_the_floor(spec: Path, capsys) -> None:
    pytest.importorskip("ai_edge_litert")
    assert peak_fraction.main([str(spec), "--rounds", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    peak = float(re.match(r"FMA loop: ([\d.]+) GFLOP/s", lines[0]).group(1))
    assert 1 < peak < 10_000
    rows = {m.group(1): m for m in map(ROW.match, lines) if m}
    assert set(rows) == {"first", "second"}
    for row in rows.values():
        ours, peer, ratio = float(row.group(3)), float(row.group(4)), float(row.group(5))
        assert 0 < ours < 200 and 0 < peer < 200 and 0 < ratio < 100
    total = next(line for line in lines if line.startswith("total")).split()
    floor = float(re.search(r"take ([\d.]+)x tflite", lines[-1]).group(1))
    # The floor is the peer's total fraction of the peak: the time at the peak over its time.
    assert floor == pytest.approx(float(total[3].rstrip("%")) / 100, abs=1e-3)


def test_a_wrong_result_stops_the_run(spec: Path, monkeypatch) -> None:
    pytest.importorskip("ai_edge_litert")
    real = peak_fraction.reference
    monkeypatch.setattr(peak_fraction, "reference", lambda *args: real(*args) + 1.0)
    with pytest.raises(SystemExit, match="ours is wrong on first"):
        peak_fraction.main([str(spec), "--layers", "1", "--rounds", "1"])


@pytest.mark.parametrize(
    "args, message",
    [
        (["--layers", "3"], "--layers 3 is not a layer (the network has 2)"),
        (["--layers", "x"], "--layers takes numbers like 3,7,13, got 'x'"),
        (["--rounds", "0"], "--rounds must be at least 1, got 0"),
        (["--vs", "tvm"], "--vs: unknown peer 'tvm'"),
    ],
)
def test_bad_arguments_are_refused_by_name(spec: Path, capsys, args, message) -> None:
    with pytest.raises(SystemExit) as exit_:
        peak_fraction.main([str(spec), *args])
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err

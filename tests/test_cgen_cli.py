"""`python -m sepconv_codegen emit`, run as a user runs it, in a subprocess from the repository."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import numpy as np
import pytest

from sepconv_codegen import SpecError, mobilenet_v1
from sepconv_codegen.cgen import c_knobs, peak_ram, scratch_bytes
from sepconv_codegen.specfile import load_spec
from tests.conftest import ROOT, TINY_SPEC

SPEC = TINY_SPEC


def emit(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "sepconv_codegen", "emit", *args],
        cwd=ROOT,
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture
def spec(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(SPEC)
    return path


def _rows(stdout: str) -> dict[str, list[str]]:
    return {
        line.split()[0]: line.split()
        for line in stdout.splitlines()
        if re.match(r"^(first|second|block\d+) ", line)
    }


def test_emit_writes_every_layer_and_prints_its_ram(spec, tmp_path):
    out = tmp_path / "c"
    done = emit(str(spec), "-o", str(out))
    assert done.returncode == 0, done.stderr
    rows = _rows(done.stdout)
    for layer in load_spec(spec):
        _, function, scratch, ram, unfused, _ = rows[layer.name]
        assert (out / f"{function}.c").is_file() and (out / f"{function}.h").is_file()
        assert int(scratch) == scratch_bytes(layer)
        assert int(ram) == peak_ram(layer)["kernel"] and int(unfused) == peak_ram(layer)["unfused"]
    assert "wrote 2 kernels (4 files)" in done.stdout


def test_emit_defaults_to_mobilenet(tmp_path):
    done = emit("-o", str(tmp_path))
    assert done.returncode == 0, done.stderr
    rows = _rows(done.stdout)
    assert sorted(rows) == sorted(layer.name for layer in mobilenet_v1())
    assert all(int(row[3]) < int(row[4]) for row in rows.values())  # fused RAM below unfused


def test_knobs_override_the_c_defaults(spec, tmp_path):
    done = emit(
        str(spec), "-o", str(tmp_path), "--knobs", '{"fused": false, "order": "pixels_outer"}'
    )
    assert done.returncode == 0, done.stderr
    layer = load_spec(spec).layers[0]
    knobs = c_knobs(layer, {"fused": False, "order": "pixels_outer"})
    assert int(_rows(done.stdout)["first"][2]) == scratch_bytes(layer, knobs)
    assert scratch_bytes(layer, knobs) == 4 * int(np.prod(layer.intermediate_shape))


def test_weights_are_baked_in_per_layer(spec, tmp_path):
    arrays = {}
    for layer in load_spec(spec):
        arrays[f"{layer.name}/depthwise_filter"] = np.ones(layer.depthwise_filter_shape, np.float32)
        arrays[f"{layer.name}/pointwise_filter"] = np.ones(layer.pointwise_filter_shape, np.float32)
        if layer.bias:
            arrays[f"{layer.name}/bias"] = np.zeros(layer.bias_shape, np.float32)
    np.savez(tmp_path / "w.npz", **arrays)
    done = emit(str(spec), "-o", str(tmp_path / "c"), "--weights", str(tmp_path / "w.npz"))
    assert done.returncode == 0, done.stderr
    for row in _rows(done.stdout).values():
        header = (tmp_path / "c" / f"{row[1]}.h").read_text()
        assert f"int {row[1]}(const float *input, float *output, void *scratch);" in header


@pytest.mark.parametrize(
    "args, message",
    [
        (["--knobs", "{fused: false}"], "--knobs '{fused: false}' is not valid JSON"),
        (["--knobs", "[1]"], "--knobs must be a JSON object"),
        (["--knobs", '{"tile_w": 0}'], "knob tile_w must be a positive integer, got 0"),
        (["--weights", "missing.npz"], "weights file 'missing.npz' does not exist"),
    ],
)
def test_bad_options_fail_with_one_line(spec, tmp_path, args, message):
    done = emit(str(spec), "-o", str(tmp_path), *args)
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith(f"sepconv-codegen emit: error: {message}")
    assert done.stdout == ""


def test_bad_weights_for_a_later_layer_write_nothing(spec, tmp_path):
    layers = list(load_spec(spec))
    arrays = {}
    for layer in layers:
        arrays[f"{layer.name}/depthwise_filter"] = np.ones(layer.depthwise_filter_shape, np.float32)
        arrays[f"{layer.name}/pointwise_filter"] = np.ones(layer.pointwise_filter_shape, np.float32)
        if layer.bias:
            arrays[f"{layer.name}/bias"] = np.zeros(layer.bias_shape, np.float32)
    last = layers[-1]
    arrays[f"{last.name}/pointwise_filter"] = np.ones((1, 1, 1, 1), np.float32)
    np.savez(tmp_path / "w.npz", **arrays)
    done = emit(str(spec), "-o", str(tmp_path / "c"), "--weights", str(tmp_path / "w.npz"))
    assert done.returncode == 2
    assert f"weights['pointwise_filter'] has shape (1, 1, 1, 1), layer {last.name!r} needs" in done.stderr
    assert done.stdout == "" and not list((tmp_path / "c").glob("*"))


def test_weights_for_an_unknown_layer_fail(spec, tmp_path):
    np.savez(tmp_path / "w.npz", **{"third/bias": np.zeros(3, np.float32)})
    done = emit(str(spec), "-o", str(tmp_path), "--weights", str(tmp_path / "w.npz"))
    assert done.returncode == 2 and "names no layer of this spec" in done.stderr


def test_c_knobs_rejects_a_non_mapping():
    with pytest.raises(SpecError, match="mapping"):
        c_knobs(mobilenet_v1().layers[0], ["fused"])


def test_weights_that_are_not_an_npz_archive_are_named(spec, tmp_path):
    np.save(tmp_path / "w.npy", np.zeros(3, np.float32))
    (tmp_path / "wdir").mkdir()
    (tmp_path / "w.toml").write_text("a = 1\n")  # numpy would call it a pickle
    np.savez(tmp_path / "whole.npz", a=np.zeros(300, np.float32))
    (tmp_path / "cut.npz").write_bytes((tmp_path / "whole.npz").read_bytes()[:300])
    for weights, says in (
        ("w.npy", "is not a .npz archive but a single array (.npy)"),
        ("wdir", "is a folder, not a .npz archive"),
        ("w.toml", "is not a .npz archive (np.savez writes one): it starts with b'a = 1\\n'"),
        ("cut.npz", "is not a readable .npz archive: File is not a zip file"),
    ):
        done = emit(str(spec), "-o", str(tmp_path / "c"), "--weights", str(tmp_path / weights))
        assert done.returncode == 2, done.stderr
        (line,) = done.stderr.strip().splitlines()
        assert line.startswith(
            f"sepconv-codegen emit: error: weights file {str(tmp_path / weights)!r} {says}")
    assert not (tmp_path / "c").exists()


def test_a_layer_the_c_cannot_address_is_refused_before_any_file(tmp_path):
    # Its header's size macros would be no C integer constant at all.
    spec = tmp_path / "big.toml"
    spec.write_text(
        'name = "big"\n[[layer]]\nname = "ok"\ninput_shape = [1, 8, 8, 4]\nout_channels = 4\n'
        '[[layer]]\nname = "huge"\nout_channels = 99999999999999999\n'
    )
    done = emit(str(spec), "-o", str(tmp_path / "c"))
    assert done.returncode == 2, done.stdout
    (line,) = done.stderr.strip().splitlines()
    assert "layer 'huge': its output (1, 8, 8, 99999999999999999) takes" in line
    assert not (tmp_path / "c").exists() and done.stdout == ""


def test_the_python_c_paths_refuse_it_too(tmp_path):
    from sepconv_codegen import SeparableConv2D, build, emit_c

    huge = SeparableConv2D(name="huge", input_shape=(1, 8, 8, 99999999999999999), out_channels=4)
    for make in (lambda: emit_c(huge, tmp_path / "c"), lambda: build(huge, "c")):
        with pytest.raises(SpecError, match=r"layer 'huge': its input .* bytes, more than"):
            make()
    assert not (tmp_path / "c").exists()


def test_layers_with_one_workload_share_one_kernel_and_are_named(tmp_path):
    spec = tmp_path / "same.toml"
    spec.write_text('[[layer]]\nname = "first"\ninput_shape = [1, 6, 6, 8]\nout_channels = 8\n'
                    '[[layer]]\nname = "second"\nout_channels = 8\n')
    done = emit(str(spec), "-o", str(tmp_path / "c"))
    assert done.returncode == 0, done.stderr
    rows = _rows(done.stdout)
    assert rows["first"][1] == rows["second"][1]
    assert f"wrote 1 kernel (2 files) to {tmp_path / 'c'}/" in done.stdout
    assert f"layers first, second have the same workload and share {rows['first'][1]}" in done.stdout


def test_long_layer_names_are_printed_whole(tmp_path):
    spec = tmp_path / "long.toml"
    spec.write_text('[[layer]]\nname = "efficientnet_block_k5"\ninput_shape = [1, 6, 6, 8]\nout_channels = 8\n')
    done = emit(str(spec), "-o", str(tmp_path / "c"))
    assert done.returncode == 0, done.stderr
    header, rule, row = done.stdout.splitlines()[:3]
    assert row.startswith("efficientnet_block_k5 ") and header.index("function") == row.index("sepconv_")

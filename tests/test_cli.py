"""The command line, run as a user runs it: `python -m sepconv_codegen ...` in a subprocess."""

import json

import pytest

from tests.conftest import TINY_SPEC, run_cli

SPEC = TINY_SPEC


cli = run_cli


@pytest.fixture
def spec(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(SPEC)
    return path


def test_build_writes_libraries_and_manifest(tmp_path, spec):
    done = cli("build", str(spec), "--target", "llvm", "-o", str(tmp_path / "out"), "--no-c")
    assert done.returncode == 0, done.stderr
    assert "first" in done.stdout and "second" in done.stdout and "total" in done.stdout
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert [e["layer"] for e in manifest["layers"]] == ["first", "second"]
    for entry in manifest["layers"]:
        assert (tmp_path / "out" / entry["files"]["library"]).is_file()
        assert entry["max_rel_error"] < 1e-5
        assert entry["macs"] > 0 and entry["shapes"]["output"]


def test_build_without_spec_builds_mobilenet_v1(tmp_path):
    """The README's main command: all 13 blocks built, checked (max error < 1e-4) and listed."""
    done = cli("build", "--target", "llvm", "-o", str(tmp_path / "build"), timeout=900)
    assert done.returncode == 0, done.stderr
    manifest = json.loads((tmp_path / "build" / "manifest.json").read_text())
    assert manifest["network"] == "mobilenet_v1"
    assert [e["layer"] for e in manifest["layers"]] == [f"block{i}" for i in range(1, 14)]
    for entry in manifest["layers"]:
        assert entry["max_abs_error"] < 1e-4, entry
        assert entry["layer"] in done.stdout
        # The firmware C beside each library: its fused RAM below the unfused layer's.
        ram = entry["c"]["peak_ram_bytes"]
        assert ram["kernel"] < ram["unfused"], entry["layer"]
        assert all((tmp_path / "build" / name).is_file() for name in entry["c"]["files"].values())


def test_explain_prints_computed_numbers():
    done = cli("explain", "--input-shape", "1,32,32,3", "--channel-multiplier", "4",
               "--out-channels", "64", "--kernel-size", "5")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "5*5*12 + 12*64 = 1,068" in out and "5*5*3*64 = 4,800" in out
    assert "rank at most M = 4" in out and "rank 4" in out
    assert "difference between output channels\n  is 0" in out


def test_explain_a_spec_layer(spec):
    done = cli("explain", str(spec), "--layer", "second")
    assert done.returncode == 0, done.stderr
    assert "Layer 'second'" in done.stdout and "relu6" in done.stdout


@pytest.mark.parametrize(
    "args, words",
    [
        (["explain", "--strides", "0"], "strides"),
        (["explain", "--padding", "full"], "padding"),
        (["build", "missing.toml"], "does not exist"),
        (["build", "--target", "tpu"], "target 'tpu'"),
        (["explain", "--input-shape", "1,x"], "--input-shape"),
        (["tune", "--trials", "0"], "trials"),
        (["build", "--database", "nope.jsonl"], "database 'nope.jsonl' does not exist"),
        (["tune", "--target", "cuda", "--db", "t.jsonl"], "does not run on this machine"),
    ],
)
def test_bad_input_is_one_line_and_status_2(args, words, tmp_path):
    done = cli(*args, cwd=tmp_path)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert words in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) <= 2
    assert not (tmp_path / "t.jsonl").exists()  # refused before any work
    assert not done.stdout.strip()  # nor any banner


def test_bad_spec_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[[layer]]\ninput_shape = [1, 4, 4, 0]\n')
    done = cli("build", str(bad), "-o", str(tmp_path / "o"))
    assert done.returncode == 2 and "input_shape[3]" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("command", ["build", "tune", "bench"])
def test_a_layer_beyond_32_bit_indexing_is_refused_before_any_work(command, tmp_path):
    # 8192 x 8192 x 64 = 2^32 input elements: TVM's lowering would fail on an int32 literal.
    big = tmp_path / "big.toml"
    big.write_text('[[layer]]\nname = "big"\ninput_shape = [1, 8192, 8192, 64]\nout_channels = 64\n')
    done = cli(command, str(big), *(["--db", "t.jsonl"] if command == "tune" else []), cwd=tmp_path)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "input_shape (1, 8192, 8192, 64)" in done.stderr and "index range" in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "t.jsonl").exists()


def test_python_build_refuses_a_layer_beyond_32_bit_indexing():
    from sepconv_codegen import SeparableConv2D, SpecError, build

    wide = SeparableConv2D(name="wide", input_shape=(1, 64, 64, 8), out_channels=2**20)
    with pytest.raises(SpecError, match=r"'wide': its output \(1, 64, 64, 1048576\)"):
        build(wide)


@pytest.mark.parametrize(
    "output, says",
    [
        ("", "-o is empty"),
        ("spec.toml/sub", "-o 'spec.toml/sub' cannot be written: 'spec.toml' is a file"),
        ("/proc/sepconv_out", "-o '/proc/sepconv_out' cannot be written"),
    ],
)
@pytest.mark.parametrize("command", ["build", "emit"])
def test_an_output_folder_that_cannot_be_written_is_refused_before_any_work(
        command, output, says, tmp_path):
    (tmp_path / "spec.toml").write_text(SPEC)
    done = cli(command, "spec.toml", "-o", output, cwd=tmp_path)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert f"sepconv-codegen {command}: error: {says}" in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not done.stdout.strip() and sorted(p.name for p in tmp_path.iterdir()) == ["spec.toml"]


def test_folders_given_for_files_are_called_folders(tmp_path):
    (tmp_path / "db").mkdir()
    done = cli("build", str(tmp_path / "db"), cwd=tmp_path)
    assert done.returncode == 2 and "is a folder, not a .toml or .json spec" in done.stderr
    done = cli("build", "--database", "db", cwd=tmp_path)
    assert done.returncode == 2 and "--database 'db' is a folder" in done.stderr


def test_a_database_that_is_not_json_lines_is_refused(spec, tmp_path):
    # A spec given as the database would leave every layer on the default schedule, silently.
    done = cli("build", str(spec), "--database", str(spec), "-o", str(tmp_path / "o"))
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert f"--database {str(spec)!r} is not a tuning database: line 2 is not a JSON record" \
        in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and not (tmp_path / "o").exists()
    # A killed tuner's torn lines among records, or a file with none yet, are a database.
    from sepconv_codegen.tuning.records import check_database

    db = tmp_path / "t.jsonl"
    db.write_text('{"workl\n{"workload": "w", "status": "ok"}\n{"torn')
    check_database(db)
    db.write_text("")
    check_database(db)


def test_build_target_c_builds_checks_and_exports_the_c_kernels(spec, tmp_path):
    import numpy as np

    import sepconv_codegen as sc
    from tests.conftest import assert_matches_reference, random_arrays

    out = tmp_path / "out"
    done = cli("build", str(spec), "--target", "c", "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("target: standalone C") and "total" in done.stdout
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["target"] == "c"
    for entry in manifest["layers"]:
        assert entry["max_rel_error"] < 1e-5 and entry["schedule"] == "default (C)"
        stem = entry["kernel"]
        assert set(entry["files"]["all"]) == {f"{stem}.so", f"{stem}.c", f"{stem}.h"}
        kernel = sc.load(out / entry["files"]["library"])  # the C library loads like a TVM one
        assert kernel.name == stem and kernel.layer.to_dict() == entry["spec"]
        arrays = random_arrays(kernel.layer)
        bias = arrays[3] if kernel.layer.bias else None
        assert_matches_reference(kernel.layer, kernel(*arrays[:3], bias=bias), arrays)
        assert np.isfinite(kernel(*arrays[:3], bias=bias)).all()


def test_build_target_c_refuses_what_the_c_backend_cannot_build(tmp_path):
    f16 = tmp_path / "f16.toml"
    f16.write_text('[[layer]]\nname = "h"\ninput_shape = [1, 8, 8, 4]\ndtype = "float16"\n')
    done = cli("build", str(f16), "--target", "c", "-o", "out", cwd=tmp_path)
    assert done.returncode == 2 and "float32 kernels only" in done.stderr
    done = cli("build", str(f16), "--target", "c", "--database", "x.jsonl", cwd=tmp_path)
    assert done.returncode == 2 and "--database holds TVM schedules" in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f16.toml"]


def test_build_says_when_it_writes_no_c_for_a_layer(tmp_path):
    spec = tmp_path / "half.toml"
    spec.write_text('[defaults]\ndtype = "float16"\n[[layer]]\nname = "h"\ninput_shape = [1, 8, 8, 4]\n'
                    '[[layer]]\nname = "g"\nout_channels = 8\n')
    done = cli("build", str(spec), "--target", "llvm", "-o", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    assert "no standalone C for h (float16), g (float16): the C emitter takes float32 layers only" in done.stdout
    entries = json.loads((tmp_path / "out" / "manifest.json").read_text())["layers"]
    assert [e["layer"] for e in entries] == ["h", "g"] and not any("c" in e for e in entries)
    assert not list((tmp_path / "out").glob("*.c"))

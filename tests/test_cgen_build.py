"""build_c: emitted C compiled to a cached shared library and called from Python as a Kernel."""

from __future__ import annotations

import ctypes
import shutil
import subprocess
import threading

import numpy as np
import pytest

from sepconv_codegen import Knobs, SeparableConv2D, SpecError
from sepconv_codegen.builder import build
from sepconv_codegen.cgen import CKernel, build_c, emit_c
from sepconv_codegen.cgen.plan import default_c_knobs
from sepconv_codegen.kernel import Kernel
from sepconv_codegen.naming import kernel_name
from tests.conftest import assert_matches_reference, random_arrays

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="apt-get install gcc")

LAYER = SeparableConv2D(
    input_shape=(2, 7, 6, 4), channel_multiplier=2, out_channels=12, bias=True, activation="relu"
)
KNOBS = Knobs(tile_h=2, tile_w=4, px=3, oc=8, vec=8, order="channels_outer")


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SEPCONV_CODEGEN_CACHE", str(tmp_path / "cache"))


def test_build_c_returns_a_kernel_that_matches_the_reference():
    kernel = build_c(LAYER, KNOBS, cflags=("-O2",))
    assert isinstance(kernel, CKernel) and isinstance(kernel, Kernel)
    assert kernel.name == kernel_name(LAYER, "c", KNOBS) and kernel.target == "c"
    assert kernel.knobs == KNOBS and kernel.schedule_source == "given"
    arrays = random_arrays(LAYER, seed=4)
    assert_matches_reference(LAYER, kernel(*arrays[:3], bias=arrays[3]), arrays)


def test_build_with_target_c_dispatches_to_the_c_backend():
    kernel = build(LAYER, target="c")
    assert isinstance(kernel, CKernel)
    assert kernel.knobs == default_c_knobs(LAYER) and kernel.schedule_source == "default (C)"
    arrays = random_arrays(LAYER, seed=5)
    assert_matches_reference(LAYER, kernel(*arrays[:3], bias=arrays[3]), arrays)


def test_target_c_refuses_a_database_it_would_not_read(tmp_path):
    with pytest.raises(SpecError, match="database='nope.jsonl' holds TVM schedules: target 'c'"):
        build(LAYER, target="c", database="nope.jsonl")


def test_bound_calls_reuse_a_snapshot_of_the_arguments_and_the_thread_scratch():
    kernel = build_c(LAYER, KNOBS, cflags=("-O2",))
    arrays = random_arrays(LAYER, seed=6)
    kept = [a.copy() for a in arrays]
    out = np.zeros(LAYER.output_shape, np.float32)
    run = kernel.bind(*arrays[:3], bias=arrays[3], out=out)
    scratch = kernel._scratch()
    assert run() is out
    first = out.copy()
    out[...] = 0
    for a in arrays:  # bind took a copy: later writes to the caller's arrays are not seen
        a[...] = 0
    run()
    np.testing.assert_array_equal(out, first)
    assert kernel._scratch() == scratch and scratch % 64 == 0
    assert_matches_reference(LAYER, out, kept)


def test_calls_from_two_threads_at_once_do_not_share_scratch():
    # The C function keeps its depthwise tile in the scratch the caller passes, and ctypes releases
    # the GIL: with one buffer per kernel, most of these calls returned another call's values.
    layer = SeparableConv2D(input_shape=(1, 28, 28, 32), out_channels=32)
    kernel = build_c(layer, cflags=("-O2",))
    inputs = [random_arrays(layer, seed=seed) for seed in (1, 2)]
    wanted = [kernel(*arrays[:3]) for arrays in inputs]
    for arrays, want in zip(inputs, wanted):
        assert_matches_reference(layer, want, arrays)
    wrong = []

    def work(which: int) -> None:
        arrays = inputs[which]
        for _ in range(300):
            if not np.array_equal(kernel(*arrays[:3]), wanted[which]):
                wrong.append(which)

    threads = [threading.Thread(target=work, args=(which,)) for which in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not wrong, f"{len(wrong)} of 600 concurrent calls returned a wrong result"


def test_libraries_are_cached_per_compiler_flags():
    first = build_c(LAYER, KNOBS, cflags=("-O2",))
    stamp = first.library.stat().st_mtime_ns
    again = build_c(LAYER, KNOBS, cflags=("-O2",))
    assert again.library == first.library and again.library.stat().st_mtime_ns == stamp
    other = build_c(LAYER, KNOBS, cflags=("-O1",))
    assert other.library != first.library and other.library.parent == first.library.parent


def test_bad_compiler_or_flags_are_spec_errors():
    with pytest.raises(SpecError, match="C compiler 'no-such-cc' was not found"):
        build_c(LAYER, KNOBS, cc="no-such-cc")
    with pytest.raises(SpecError, match="cflags must be a sequence of strings"):
        build_c(LAYER, KNOBS, cflags="-O2")


def test_wrong_arrays_are_refused_before_any_c_runs():
    kernel = build_c(LAYER, KNOBS, cflags=("-O2",))
    arrays = random_arrays(LAYER)
    with pytest.raises(SpecError, match="input has shape"):
        kernel(arrays[0][:1], *arrays[1:3], bias=arrays[3])
    with pytest.raises(SpecError, match="was built with a bias"):
        kernel(*arrays[:3])


def test_null_required_pointers_return_nonzero_and_write_nothing():
    kernel = build_c(LAYER, KNOBS, cflags=("-O2",))
    arrays = random_arrays(LAYER)
    out = np.full(LAYER.output_shape, 7.0, np.float32)
    pointers = [a.ctypes.data for a in arrays[:3]] + [
        arrays[3].ctypes.data,
        out.ctypes.data,
        kernel._scratch(),
    ]
    for missing in range(6):
        args = list(pointers)
        args[missing] = None
        assert kernel._function(*args) == -1
    assert (out == 7.0).all()
    assert kernel._function(*pointers) == 0


def test_export_copies_a_loadable_library(tmp_path):
    kernel = build_c(LAYER, KNOBS, cflags=("-O2",))
    path = kernel.export(tmp_path / "out" / "kernel.so")
    library = ctypes.CDLL(str(path))
    assert hasattr(library, kernel.name)


@pytest.mark.parametrize(
    "flags, body",
    [
        (("-mavx2", "-mfma"), "_mm256_fmadd_ps"),
        (("-mavx2", "-mfma", "-DSEPCONV_GENERIC"), "acc0[o] += x0 * w[o]"),
        ((), "acc0[o] += x0 * w[o]"),
    ],
)
def test_compiler_flags_select_the_register_tile_body(tmp_path, flags, body):
    emitted = emit_c(LAYER, tmp_path, KNOBS)
    preprocessed = subprocess.run(
        ["gcc", "-std=c99", *flags, "-E", str(emitted.source)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    code = preprocessed[preprocessed.index(f"{emitted.function}_tile_") :]
    assert body in code
    assert ("_mm256_fmadd_ps" in code) == (body == "_mm256_fmadd_ps")

"""Emitted C kernels against the numpy reference on this machine (x86-64, gcc -O2).

Shapes cover kernel sizes, strides, dilation, every padding kind, multipliers 1 to 8, output
channels below/equal/above C*M, batches, 1x1 inputs, bias with each activation, fused and unfused;
knob points cover tiles that do not divide the output, register tiles cut short at row ends, and
channel counts that are not multiples of the register tile or the vector width.
A subset also runs under AddressSanitizer and UBSan, as a subprocess.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import numpy as np
import pytest

from sepconv_codegen import Knobs, SeparableConv2D, reference
from sepconv_codegen.cgen.build import build_c
from sepconv_codegen.cgen.emit import emit_c
from sepconv_codegen.cgen.harness import emit_harness, parse_harness_output
from tests.conftest import assert_matches_reference, random_arrays

requires_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="apt-get install gcc")


def knobs(**fields) -> Knobs:
    base = {
        "tile_h": 1,
        "tile_w": 8,
        "px": 4,
        "oc": 16,
        "vec": 8,
        "fused": True,
        "order": "pixels_outer",
    }
    return Knobs(**{**base, **fields})


def layer(shape, **fields) -> SeparableConv2D:
    return SeparableConv2D(input_shape=shape, **fields)


# (id, layer, knobs or None for the C defaults)
CASES = [
    ("k1_valid", layer((1, 5, 6, 4), kernel_size=1, out_channels=8, padding="VALID"), None),
    ("k3_same_mobilenet_like", layer((1, 10, 10, 16), out_channels=32), None),
    (
        "k5_s2_same_odd_asymmetric",
        layer((1, 11, 13, 3), kernel_size=5, strides=2, out_channels=16),
        None,
    ),
    ("k7_same", layer((1, 9, 8, 2), kernel_size=7, out_channels=16), knobs(tile_w=4)),
    ("k4_same_even_kernel", layer((1, 7, 8, 3), kernel_size=4, out_channels=8), knobs(oc=8)),
    ("k3x5_nonsquare", layer((1, 8, 9, 4), kernel_size=(3, 5), out_channels=16), None),
    ("k3_s2_same_even_input", layer((1, 8, 8, 8), strides=2, out_channels=16), None),
    ("k3_strides_2x1", layer((1, 9, 7, 4), strides=(2, 1), out_channels=16), None),
    ("k3_dilation2", layer((1, 9, 10, 4), dilation=2, out_channels=16), None),
    (
        "k3_dilation2x3_valid",
        layer((1, 11, 12, 4), dilation=(2, 3), padding="VALID", out_channels=16),
        None,
    ),
    ("k3_dilation2_stride2", layer((1, 12, 12, 4), dilation=2, strides=2, out_channels=16), None),
    ("k3_valid", layer((1, 9, 8, 5), padding="VALID", out_channels=16), None),
    ("c20_depthwise_block_remainder", layer((1, 6, 5, 20), out_channels=16), None),
    ("k3_explicit_padding", layer((1, 6, 7, 3), padding=((1, 2), (0, 3)), out_channels=16), None),
    (
        "k3_explicit_all_padding_window",
        layer((1, 2, 2, 3), padding=((3, 3), (3, 3)), out_channels=8),
        knobs(oc=8),
    ),
    ("m2_o_below_cm", layer((1, 6, 6, 8), channel_multiplier=2, out_channels=12), knobs(oc=8)),
    ("m3_o_equal_cm", layer((1, 6, 6, 5), channel_multiplier=3, out_channels=15), knobs(oc=8)),
    ("m4_o_above_cm", layer((1, 5, 5, 3), channel_multiplier=4, out_channels=40), None),
    ("m5", layer((1, 5, 6, 3), channel_multiplier=5, out_channels=16), None),
    ("m6", layer((1, 4, 5, 2), channel_multiplier=6, out_channels=16), None),
    ("m7", layer((1, 5, 4, 3), channel_multiplier=7, out_channels=24), knobs(oc=24)),
    ("m8_rgb_like", layer((1, 8, 8, 3), channel_multiplier=8, out_channels=32), None),
    ("batch3", layer((3, 6, 7, 4), out_channels=16), knobs(tile_h=2, tile_w=3)),
    ("input_1x1", layer((1, 1, 1, 8), out_channels=16), None),
    ("input_1x1_batch2_k5", layer((2, 1, 1, 4), kernel_size=5, out_channels=8), knobs(oc=8)),
    ("bias_no_activation", layer((1, 6, 6, 4), out_channels=16, bias=True), None),
    ("bias_relu", layer((1, 6, 6, 4), out_channels=16, bias=True, activation="relu"), None),
    ("bias_relu6", layer((1, 6, 6, 4), out_channels=16, bias=True, activation="relu6"), None),
    ("relu6_no_bias", layer((1, 6, 6, 4), out_channels=16, activation="relu6"), None),
    (
        "unfused",
        layer((2, 7, 9, 4), channel_multiplier=2, out_channels=16, bias=True),
        knobs(fused=False),
    ),
    (
        "unfused_channels_outer",
        layer((1, 9, 7, 4), out_channels=20, activation="relu"),
        knobs(fused=False, order="channels_outer", tile_h=2, tile_w=5),
    ),
    ("tile_not_dividing_output", layer((1, 10, 11, 4), out_channels=16), knobs(tile_h=3, tile_w=4)),
    ("row_end_register_tiles", layer((1, 5, 13, 4), out_channels=32), knobs(tile_w=7, px=3)),
    ("px_wider_than_tile", layer((1, 4, 5, 4), out_channels=16), knobs(tile_w=2, px=4)),
    ("tile_larger_than_output", layer((1, 3, 4, 4), out_channels=16), knobs(tile_h=8, tile_w=16)),
    ("o13_not_multiple_of_vector", layer((1, 6, 6, 4), out_channels=13, bias=True), knobs(oc=8)),
    ("o5_below_register_tile", layer((1, 6, 6, 4), out_channels=5), knobs(oc=16)),
    (
        "o37_channels_outer_edge",
        layer((1, 6, 7, 4), out_channels=37, bias=True, activation="relu6"),
        knobs(order="channels_outer", oc=16),
    ),
    ("c5_o20_oc4_px1", layer((1, 5, 5, 5), out_channels=20), knobs(oc=4, vec=4, px=1)),
    ("oc24_tile_h2", layer((1, 8, 8, 6), out_channels=48), knobs(oc=24, tile_h=2, tile_w=4, px=2)),
]

ISA_FLAGS = {
    "portable": ("-O2", "-DSEPCONV_GENERIC"),
    "avx2": ("-O2", "-mavx2", "-mfma"),
}


def _host_has_avx2() -> bool:
    try:
        with open("/proc/cpuinfo") as info:
            flags = info.read()
    except OSError:
        return False
    return " avx2" in flags and " fma" in flags


@pytest.fixture(scope="module", autouse=True)
def private_cache(tmp_path_factory):
    """Compiled kernels go to a fresh cache, not the user's."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SEPCONV_CODEGEN_CACHE", str(tmp_path_factory.mktemp("c-cache")))
        yield


@requires_gcc
@pytest.mark.parametrize(
    "case_layer, case_knobs", [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_matches_reference(case_layer, case_knobs):
    kernel = build_c(case_layer, case_knobs, cflags=("-O2",))
    arrays = random_arrays(case_layer, seed=1)
    bias = arrays[3] if case_layer.bias else None
    assert_matches_reference(case_layer, kernel(*arrays[:3], bias=bias), arrays)


ISA_CASES = [
    "m4_o_above_cm",
    "o37_channels_outer_edge",
    "unfused",
    "row_end_register_tiles",
    "bias_relu6",
]


@requires_gcc
@pytest.mark.parametrize("isa", sorted(ISA_FLAGS))
@pytest.mark.parametrize("case_id", ISA_CASES)
def test_each_code_path_is_bit_exact_on_dyadic_inputs(case_id, isa):
    if isa == "avx2" and not _host_has_avx2():
        pytest.skip("this CPU has no AVX2+FMA")
    _, case_layer, case_knobs = next(c for c in CASES if c[0] == case_id)
    kernel = build_c(case_layer, case_knobs, cflags=ISA_FLAGS[isa])
    arrays = random_arrays(case_layer, seed=2, dyadic=True)
    bias = arrays[3] if case_layer.bias else None
    want = reference(case_layer, *arrays[:3], bias).astype(np.float32)
    np.testing.assert_array_equal(kernel(*arrays[:3], bias=bias), want)


SANITIZED_CASES = [
    "k5_s2_same_odd_asymmetric",
    "k3_explicit_all_padding_window",
    "m7",
    "batch3",
    "unfused_channels_outer",
    "o13_not_multiple_of_vector",
    "input_1x1",
]
SANITIZE_FLAGS = [
    "-O1",
    "-g",
    "-fsanitize=address,undefined",
    "-fno-sanitize-recover=all",
    "-fno-omit-frame-pointer",
    "-std=c99",
]


@requires_gcc
@pytest.mark.parametrize("case_id", SANITIZED_CASES)
def test_runs_clean_under_address_and_undefined_sanitizers(case_id, tmp_path):
    _, case_layer, case_knobs = next(c for c in CASES if c[0] == case_id)
    emitted = emit_c(case_layer, tmp_path, case_knobs)
    arrays = random_arrays(case_layer, seed=3)
    harness = emit_harness(emitted, arrays)
    program = tmp_path / "check"
    subprocess.run(
        ["gcc", *SANITIZE_FLAGS, str(harness), str(emitted.source), "-o", str(program)],
        check=True,
        capture_output=True,
        text=True,
    )
    env = {**os.environ, "ASAN_OPTIONS": "detect_leaks=0:abort_on_error=0"}
    run = subprocess.run(
        [str(program)], check=False, capture_output=True, text=True, timeout=120, env=env
    )
    assert run.returncode == 0, f"sanitizer report:\n{run.stderr[-4000:]}"
    assert "runtime error" not in run.stderr, run.stderr[-4000:]
    got = parse_harness_output(run.stdout, case_layer.output_shape)
    assert_matches_reference(case_layer, got, arrays)


def test_case_ids_are_unique():
    ids = [case[0] for case in CASES]
    assert len(ids) == len(set(ids))


def _nan_input_arrays(case_layer):
    """Random arrays with one NaN input value: it reaches every output its window covers."""
    arrays = random_arrays(case_layer, seed=3)
    arrays[0][0, 1, 1, 0] = np.nan
    return arrays


@requires_gcc
@pytest.mark.parametrize("isa", sorted(ISA_FLAGS))
@pytest.mark.parametrize("activation", ["relu", "relu6"])
def test_nan_passes_through_the_activation(activation, isa):
    # x86's max(x, 0) returns 0 for a NaN x; TF and numpy give NaN.
    if isa == "avx2" and not _host_has_avx2():
        pytest.skip("this CPU has no AVX2+FMA")
    case_layer = layer((1, 5, 5, 8), out_channels=16, bias=True, activation=activation)
    arrays = _nan_input_arrays(case_layer)
    got = build_c(case_layer, knobs(), cflags=ISA_FLAGS[isa])(*arrays[:3], bias=arrays[3])
    want = reference(case_layer, *arrays)
    assert np.isnan(want).sum() == 9 * 16  # the 3x3 windows that hold the NaN, every channel
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    finite = ~np.isnan(want)
    np.testing.assert_allclose(got[finite], want[finite], rtol=0, atol=1e-5)

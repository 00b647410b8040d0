"""Built TVM kernels against the reference over an explicit table of layers, and their argument checks."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import sepconv_codegen as sc
from sepconv_codegen import SeparableConv2D as L
from sepconv_codegen import SpecError
from tests.conftest import assert_matches_reference, random_arrays

# name -> layer. Sizes are small so the table builds in seconds; each row exercises one rule.
CASES = {
    "k1": L(input_shape=(1, 6, 6, 8), kernel_size=1, out_channels=8),
    "k3": L(input_shape=(1, 9, 9, 8), kernel_size=3, out_channels=16),
    "k5": L(input_shape=(1, 9, 9, 8), kernel_size=5, out_channels=8),
    "k7": L(input_shape=(1, 10, 10, 4), kernel_size=7, out_channels=12),
    "k3x5_nonsquare": L(input_shape=(1, 8, 11, 4), kernel_size=(3, 5), out_channels=8),
    "k2x4_even_same_asymmetric": L(input_shape=(1, 7, 7, 3), kernel_size=(2, 4), out_channels=5),
    "stride2_even_size_pad01": L(input_shape=(1, 12, 12, 8), strides=2, out_channels=16),
    "stride2_odd_size_pad11": L(input_shape=(1, 11, 11, 8), strides=2, out_channels=16),
    "stride_1x2": L(input_shape=(1, 8, 9, 4), strides=(1, 2), out_channels=8),
    "dilation2": L(input_shape=(1, 12, 12, 8), dilation=2, out_channels=8),
    "dilation2_stride2": L(input_shape=(1, 13, 13, 4), dilation=2, strides=2, out_channels=8),
    "valid": L(input_shape=(1, 9, 10, 8), padding="VALID", out_channels=8),
    "valid_stride2": L(input_shape=(1, 10, 10, 8), padding="valid", strides=2, out_channels=8),
    "explicit": L(input_shape=(1, 8, 8, 4), padding=((2, 0), (1, 3)), out_channels=8),
    "mult2": L(input_shape=(1, 8, 8, 4), channel_multiplier=2, out_channels=8),
    "mult3_odd_channels": L(input_shape=(1, 7, 7, 5), channel_multiplier=3, out_channels=11),
    "mult8": L(input_shape=(1, 6, 6, 3), channel_multiplier=8, out_channels=16),
    "out_below_cm": L(input_shape=(1, 8, 8, 16), channel_multiplier=2, out_channels=8),
    "out_equal_cm": L(input_shape=(1, 8, 8, 16), out_channels=16),
    "out_above_cm": L(input_shape=(1, 8, 8, 8), out_channels=40),
    "out_not_multiple_of_vector": L(input_shape=(1, 8, 8, 7), out_channels=13),
    "batch3": L(input_shape=(3, 7, 7, 8), strides=2, out_channels=8),
    "input_1x1": L(input_shape=(1, 1, 1, 8), out_channels=8),
    "input_1x1_valid_k1": L(input_shape=(2, 1, 1, 3), kernel_size=1, padding="VALID", out_channels=5),
    "bias": L(input_shape=(1, 8, 8, 8), out_channels=16, bias=True),
    "bias_relu": L(input_shape=(1, 8, 8, 8), out_channels=16, bias=True, activation="relu"),
    "bias_relu6": L(input_shape=(1, 8, 8, 8), out_channels=16, bias=True, activation="relu6"),
    "relu6_no_bias": L(input_shape=(1, 8, 8, 8), out_channels=16, activation="relu6"),
    "float64": L(input_shape=(1, 8, 8, 8), out_channels=16, dtype="float64", bias=True),
    "float16": L(input_shape=(1, 8, 8, 8), out_channels=16, dtype="float16", bias=True, activation="relu"),
    "mobilenet_block2_shape_small": L(input_shape=(1, 16, 16, 32), strides=2, out_channels=64),
}


@pytest.mark.parametrize("name", CASES)
def test_kernel_matches_reference(name):
    layer = CASES[name]
    kernel = sc.build(layer, target="llvm")
    arrays = random_arrays(layer, seed=len(name))
    out = kernel(*arrays[:3], bias=arrays[3] if layer.bias else None)
    assert_matches_reference(layer, out, arrays)


def test_dyadic_inputs_match_to_the_bit():
    layer = L(input_shape=(1, 9, 9, 8), channel_multiplier=2, strides=2, out_channels=24, bias=True,
              activation="relu6")
    arrays = random_arrays(layer, dyadic=True)
    out = sc.build(layer)(*arrays[:3], bias=arrays[3])
    np.testing.assert_array_equal(out, sc.reference(layer, *arrays[:3], arrays[3]).astype(np.float32))


@pytest.fixture(scope="module")
def kernel():
    return sc.build(L(input_shape=(2, 6, 6, 4), channel_multiplier=2, out_channels=8, bias=True))


def test_out_argument_is_written_and_returned(kernel):
    layer = kernel.layer
    arrays = random_arrays(layer)
    for out in (np.full(layer.output_shape, np.nan, np.float32),  # numpy's own alignment
                sc.kernel._aligned_empty(layer.output_shape, "float32")):  # shared, no copy
        got = kernel(*arrays[:3], bias=arrays[3], out=out)
        assert got is out
        assert_matches_reference(layer, out, arrays)


def test_non_contiguous_inputs_are_accepted(kernel):
    layer = kernel.layer
    arrays = random_arrays(layer)
    x = np.asfortranarray(arrays[0])
    assert not x.flags.c_contiguous
    assert_matches_reference(layer, kernel(x, *arrays[1:3], bias=arrays[3]), arrays)


def test_bind_runs_repeatedly(kernel):
    arrays = random_arrays(kernel.layer)
    run = kernel.bind(*arrays[:3], bias=arrays[3])
    assert_matches_reference(kernel.layer, run(), arrays)
    assert_matches_reference(kernel.layer, run(), arrays)


@pytest.mark.parametrize("aligned", [False, True], ids=["numpy_alignment", "64_byte_aligned"])
def test_bind_computes_on_the_arguments_as_they_were_at_bind_time(kernel, aligned):
    # Aligned arrays used to be shared with TVM and unaligned ones copied, so refilling the input
    # after bind changed the result of some bound calls and not others.
    layer = kernel.layer
    arrays = random_arrays(layer, seed=3)
    if aligned:
        arrays = [sc.kernel._aligned_copy(a) for a in arrays]
        assert all(a.ctypes.data % 64 == 0 for a in arrays)
    kept = [a.copy() for a in arrays]
    run = kernel.bind(*arrays[:3], bias=arrays[3])
    for a in arrays:
        a[...] = np.random.default_rng(9).standard_normal(a.shape)
    assert_matches_reference(layer, run(), kept)


@pytest.mark.parametrize(
    "change, words",
    [
        (lambda a: [a[0][:, :5]] + a[1:], "input has shape"),
        (lambda a: [a[0].astype(np.float64)] + a[1:], "input has dtype float64"),
        (lambda a: [a[0], a[1][:, :, :2]] + a[2:], "depthwise_filter has shape"),
        (lambda a: a[:2] + [a[2][:, :, :4]] + a[3:], "pointwise_filter has shape"),  # 4 divides C*M=8
        (lambda a: a[:2] + [a[2].reshape(8, 8)[None, None]] + a[3:], None),  # same shape: fine
        (lambda a: [a[0].tolist()] + a[1:], "input must be a numpy array"),
    ],
    ids=["input_shape", "input_dtype", "depthwise_channels", "pointwise_grouped", "ok", "list"],
)
def test_wrong_arguments_are_refused_by_name(kernel, change, words):
    arrays = random_arrays(kernel.layer)
    args = change(arrays[:3]) + [arrays[3]]
    if words is None:
        kernel(*args[:3], bias=args[3])
        return
    with pytest.raises(SpecError, match=words):
        kernel(*args[:3], bias=args[3])


def test_bias_presence_is_checked(kernel):
    arrays = random_arrays(kernel.layer)
    with pytest.raises(SpecError, match="bias"):
        kernel(*arrays[:3])
    plain = sc.build(L(input_shape=(1, 4, 4, 2)))
    x, dw, pw = random_arrays(plain.layer)
    with pytest.raises(SpecError, match="without a bias"):
        plain(x, dw, pw, bias=np.zeros(2, np.float32))


def test_bad_out_is_refused(kernel):
    arrays = random_arrays(kernel.layer)
    with pytest.raises(SpecError, match="out has dtype"):
        kernel(*arrays[:3], bias=arrays[3], out=np.empty(kernel.layer.output_shape, np.float64))
    with pytest.raises(SpecError, match="out must be a writeable C-contiguous"):
        kernel(*arrays[:3], bias=arrays[3], out=np.empty(kernel.layer.output_shape, np.float32, order="F"))


def test_bad_build_arguments():
    layer = L(input_shape=(1, 4, 4, 2))
    with pytest.raises(SpecError, match="target 'tpu'"):
        sc.build(layer, target="tpu")
    with pytest.raises(SpecError, match="layer must be a SeparableConv2D"):
        sc.build({"input_shape": (1, 4, 4, 2)})
    with pytest.raises(SpecError, match="knobs"):
        sc.build(layer, knobs={"tile_w": 4})


def test_the_check_tolerance_grows_with_the_reduction_length():
    from sepconv_codegen.check import TOLERANCE, check_kernel, tolerance

    assert all(tolerance(layer) == TOLERANCE["float32"] for layer in sc.mobilenet_v1())
    # 4 channels x multiplier 20000: each output sums 80009 float32 terms, whose rounding error
    # (about sqrt(n) units of roundoff) outgrows the fixed 1e-5; the kernel is still right.
    long = L(input_shape=(1, 6, 6, 4), channel_multiplier=20000, out_channels=8)
    assert tolerance(long) == pytest.approx(np.finfo(np.float32).eps * 80009**0.5)
    result = check_kernel(sc.build(long))
    assert result.ok and result.tolerance == tolerance(long), result
    assert result.max_rel_error < tolerance(long) / 3


PINNED_RUN = """
import os, sys
import numpy as np
os.sched_setaffinity(0, {{{cpu}}})
import sepconv_codegen as sc
from sepconv_codegen.reference import reference
from sepconv_codegen.tvm_backend._tvm import set_num_threads
layer = sc.SeparableConv2D(input_shape=(1, 12, 12, 8), kernel_size=3, out_channels=16, padding="SAME")
kernel = sc.build(layer, target="llvm")
rng = np.random.default_rng(0)
x, dw, pw = (rng.standard_normal(s).astype("float32") for s in
             (layer.input_shape, layer.depthwise_filter_shape, layer.pointwise_filter_shape))
for threads in (1, 2, 1):  # as tune and bench set the thread count per measurement
    set_num_threads(threads)
    y = kernel(x, dw, pw)
error = float(np.max(np.abs(y - reference(layer, x, dw, pw))))
print(sorted(os.sched_getaffinity(0)), error)
"""


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2,
                    reason="needs CPU affinity and at least 2 usable CPUs")
def test_a_process_pinned_to_one_cpu_stays_there():
    # TVM pins its threads to the machine's first cores whatever the process was given: a process
    # pinned to its last CPU was moved to core 0, where it shared a core with whatever ran there.
    cpu = max(os.sched_getaffinity(0))
    env = {k: v for k, v in os.environ.items() if k not in ("TVM_BIND_THREADS", "TVM_NUM_THREADS")}
    done = subprocess.run([sys.executable, "-c", PINNED_RUN.format(cpu=cpu)], env=env, timeout=300,
                          capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0, done.stderr[-2000:]
    cpus, error = done.stdout.split("]")
    assert cpus + "]" == f"[{cpu}]"
    assert float(error) < 1e-5  # float32, 3*3 + 8 terms per output


@pytest.mark.parametrize("activation", ["relu", "relu6"])
def test_nan_passes_through_the_activation(activation):
    # TVM's max(x, 0) is a compare and select that gives 0 for a NaN x; TF and numpy give NaN.
    layer = L(input_shape=(1, 5, 5, 8), out_channels=16, bias=True, activation=activation)
    arrays = random_arrays(layer, seed=3)
    arrays[0][0, 1, 1, 0] = np.nan
    got = sc.build(layer)(*arrays)
    want = sc.reference(layer, *arrays)
    assert np.isnan(want).sum() == 9 * 16  # the 3x3 windows that hold the NaN, every channel
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    finite = ~np.isnan(want)
    np.testing.assert_allclose(got[finite], want[finite], rtol=0, atol=1e-5)

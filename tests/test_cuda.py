"""CUDA kernels with no GPU: the schedule space, the launch configuration against the scheduled
loops, the generated source run on the CPU (tests/cuda_emulator.py) against the reference, PTX
from nvcc for sm_80 and sm_90, exports, and the refusal to run here."""

import json
import re
import shutil
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import sepconv_codegen as sc
from sepconv_codegen import Knobs, SpecError
from sepconv_codegen import SeparableConv2D as L
from sepconv_codegen.schedule import cuda as space
from sepconv_codegen.targets import resolve_target
from sepconv_codegen.tvm_backend.cuda_kernel import CudaKernel
from sepconv_codegen.tvm_backend.schedule_cuda import schedule_cuda
from tests import cuda_emulator
from tests.conftest import assert_matches_reference, random_arrays

TARGET = resolve_target("cuda")
NVCC = shutil.which("nvcc")
needs_nvcc = pytest.mark.skipif(
    NVCC is None, reason="install the CUDA toolkit (nvcc): apt-get install nvidia-cuda-toolkit"
)
needs_cxx = pytest.mark.skipif(not cuda_emulator.available(), reason="apt-get install g++")

# name -> layer; each row exercises one rule of the CUDA schedule.
CASES = {
    "stride1_bias_relu6": L(
        input_shape=(1, 14, 14, 32), out_channels=64, bias=True, activation="relu6"
    ),
    "stride2_mult2_odd": L(
        input_shape=(2, 9, 11, 5), channel_multiplier=2, out_channels=10, strides=2
    ),
    "odd_channels_valid": L(input_shape=(1, 7, 7, 13), out_channels=7, padding="VALID"),
    "dilation2": L(input_shape=(1, 10, 10, 8), out_channels=16, dilation=2),
    "mobilenet_block13_like": L(input_shape=(1, 4, 4, 256), out_channels=256),
}
PTX_CASES = ("stride1_bias_relu6", "stride2_mult2_odd")  # float4 and float2 paths
SAMPLE = 6  # points of each space besides the default (nvcc takes about 1.5 s per compile)


def _points(layer, count):
    return space.search_space(layer, TARGET, limit=1 + count, seed=1)


def _bound_extents(layer, knobs) -> dict[str, int]:
    sch = schedule_cuda(layer, knobs)
    extents = {}
    for loop in sch.get_loops(sch.get_sblock("out")):
        stmt = sch.get(loop)
        if stmt.thread_binding is not None:
            extents[stmt.thread_binding.thread_tag] = int(stmt.extent)
    return extents


# ---- the space ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(CASES))
def test_every_point_of_the_space_fits_and_the_default_leads(name):
    layer = CASES[name]
    points = space.search_space(layer, TARGET)
    assert points[0] == space.default_knobs(layer, TARGET)
    assert len(set(points)) == len(points) > 10
    for knobs in points:
        space.check_knobs(layer, knobs)  # raises if a point breaks a rule
        geometry = space.launch_geometry(layer, knobs)
        assert geometry.shared_bytes <= space.SHARED_BUDGET


@pytest.mark.parametrize("batch", [1, 32])
def test_mobilenet_defaults_fit_and_fill_the_gpu(batch):
    h100 = resolve_target("cuda-sm90")
    for layer in sc.mobilenet_v1(batch):
        knobs = space.default_knobs(layer, h100)
        space.check_knobs(layer, knobs)
        geometry = space.launch_geometry(layer, knobs)
        assert 32 <= geometry.threads <= 512 and knobs.vec == 4
        if batch == 32:  # enough blocks for every SM, and the 4x4 register tile
            assert geometry.grid[0] * geometry.grid[1] >= h100.gpu.multiprocessors
            assert (knobs.px, knobs.vec) in ((4, 4), (2, 4))


@pytest.mark.parametrize(
    "change, says",
    [
        ({"fused": False}, "fused must be true"),
        ({"vec": 4, "oc": 8}, "divide out_channels"),
        ({"tile_w": 6, "px": 4}, "multiple of px"),
        ({"tile_h": 8, "tile_w": 16, "px": 1, "oc": 32, "vec": 1}, "threads per block"),
        ({"pack": True}, "pack must be false"),
    ],
)
def test_knobs_outside_the_space_are_spec_errors(change, says):
    layer = L(input_shape=(1, 16, 16, 32), out_channels=10)  # 10 channels: vec 1 or 2
    base = {"tile_h": 1, "tile_w": 8, "px": 4, "oc": 10, "vec": 2}
    with pytest.raises(SpecError, match=says):
        sc.build(layer, target="cuda", knobs=Knobs(**{**base, **change}))


@pytest.mark.parametrize("name", list(CASES))
def test_launch_geometry_is_what_the_schedule_binds(name):
    layer = CASES[name]
    for knobs in _points(layer, 3):
        geometry = space.launch_geometry(layer, knobs)
        assert _bound_extents(layer, knobs) == {
            "blockIdx.x": geometry.grid[0],
            "blockIdx.y": geometry.grid[1],
            "threadIdx.x": geometry.threads,
        }


# ---- kernels ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def kernel():
    return sc.build(CASES["stride1_bias_relu6"], target="cuda-sm90")


def test_build_returns_a_cuda_kernel_with_source_and_launch_config(kernel):
    assert isinstance(kernel, CudaKernel) and kernel.target == "cuda-sm90"
    source = kernel.cuda_source()
    config = kernel.launch_config()
    geometry = space.launch_geometry(kernel.layer, kernel.knobs)
    assert config["grid"] == list(geometry.grid) and config["block"] == list(geometry.block)
    assert f"__launch_bounds__({geometry.threads}) {config['kernel']}(" in source
    assert sorted(a["name"] for a in config["args"]) == ["B", "DW", "PW", "X", "out"]
    assert {a["role"] for a in config["args"]} >= {"input", "output", "bias"}
    assert 0 < config["static_shared_bytes"] <= space.SHARED_BUDGET
    assert config["dynamic_shared_bytes"] == 0


def test_calling_a_cuda_kernel_is_a_clear_spec_error(kernel):
    arrays = random_arrays(kernel.layer)
    for attempt in (
        lambda: kernel(*arrays),
        lambda: kernel.bind(*arrays),
        lambda: kernel.time(arrays),
    ):
        with pytest.raises(SpecError, match="no GPU or CUDA runtime"):
            attempt()


def test_export_so_cu_and_json(kernel, tmp_path):
    library = kernel.export(tmp_path / "k.so")
    assert library.read_bytes()[:4] == b"\x7fELF"
    assert kernel.cuda_source().encode() in library.read_bytes()  # embedded for TVM to compile
    from sepconv_codegen.tvm_backend._tvm import tvm

    if not tvm.runtime.enabled("cuda"):
        with pytest.raises(SpecError, match="cuda-sm90.*cannot load"):
            sc.load(library)
    source = (tmp_path / "k.cu").read_text()
    assert source == kernel.cuda_source()
    config = json.loads((tmp_path / "k.json").read_text())
    assert config["cuda"] == kernel.launch_config() and config["source"] == "k.cu"
    assert sc.SeparableConv2D.from_dict(config["layer"]) == kernel.layer
    assert Knobs.from_dict(config["knobs"]) == kernel.knobs
    only = kernel.export(tmp_path / "only" / "k.cu")
    assert only.read_text() == source and (tmp_path / "only" / "k.json").is_file()


@needs_cxx
@pytest.mark.parametrize("name", list(CASES))
def test_cuda_source_run_on_the_cpu_matches_reference(name):
    """The source, grid, block and argument order together compute the layer."""
    layer = CASES[name]
    arrays = random_arrays(layer, seed=5)
    buffers = dict(zip(("X", "DW", "PW", "B"), arrays))
    for knobs in _points(layer, 2):
        kernel = sc.build(layer, target=TARGET, knobs=knobs)
        got = cuda_emulator.emulate(kernel.cuda_source(), kernel.launch_config(), buffers)
        assert_matches_reference(layer, got, arrays)


@needs_cxx
def test_nan_passes_through_relu6_in_the_cuda_source():
    """As in TF: CUDA's fmaxf(NaN, 0) would give 0."""
    layer = CASES["stride1_bias_relu6"]
    arrays = random_arrays(layer, seed=5)
    arrays[0][0, 3, 3, 0] = np.nan
    kernel = sc.build(layer, target=TARGET)
    got = cuda_emulator.emulate(kernel.cuda_source(), kernel.launch_config(),
                                dict(zip(("X", "DW", "PW", "B"), arrays)))
    want = sc.reference(layer, *arrays)
    assert np.isnan(want).sum() == 9 * layer.out_channels
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))


# ---- PTX ----------------------------------------------------------------------------------------


def _ptx(source: str, arch: str) -> str:
    from tvm.support import nvcc

    from sepconv_codegen.tvm_backend._tvm import tvm

    # compile_cuda reads the architecture from the current target.
    with tvm.target.Target({"kind": "cuda", "arch": arch}):
        return bytes(nvcc.compile_cuda(source, target_format="ptx", compiler="nvcc")).decode()


@needs_nvcc
@pytest.mark.parametrize("name", PTX_CASES)
def test_sampled_points_compile_to_ptx_for_sm80_and_sm90(name):
    layer = CASES[name]
    kernels = [sc.build(layer, target=TARGET, knobs=k) for k in _points(layer, SAMPLE)]
    jobs = [(k, arch) for k in kernels for arch in ("sm_80", "sm_90")]
    with ThreadPoolExecutor(max_workers=2) as pool:
        ptxs = list(pool.map(lambda job: _ptx(job[0].cuda_source(), job[1]), jobs))
    for (kernel, arch), ptx in zip(jobs, ptxs):
        config = kernel.launch_config()
        assert f".target {arch}" in ptx
        assert re.search(rf"\.entry {config['kernel']}\(", ptx)
        assert re.search(rf"\.maxntid {config['block'][0]}, 1, 1", ptx)
        assert "bar.sync" in ptx  # the barrier between the depthwise and pointwise steps
        shared = sum(int(n) for n in re.findall(r"\.shared \.align \d+ \.b8 \w+\[(\d+)\]", ptx))
        assert shared == config["static_shared_bytes"]

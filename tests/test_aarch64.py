"""AArch64 kernels: TVM's NEON code, linked into the C harness, run under qemu-aarch64 against the
reference; the cross kernel's exports and its refusal to run here."""

import json
import platform
import shutil
import tarfile

import numpy as np
import pytest

import sepconv_codegen as sc
from sepconv_codegen import SeparableConv2D as L
from sepconv_codegen import SpecError
from sepconv_codegen.schedule import aarch64 as neon_space
from sepconv_codegen.targets import resolve_target
from sepconv_codegen.tvm_backend import elfmeta
from sepconv_codegen.tvm_backend.cross import CrossKernel, harness_source, link_harness, run_harness
from sepconv_codegen.tvm_backend.module import META_SECTION
from tests.conftest import assert_matches_reference, random_arrays

ON_AARCH64 = platform.machine().lower() in ("aarch64", "arm64")
INSTALL = "apt-get install gcc-aarch64-linux-gnu qemu-user"
needs_cross_tools = pytest.mark.skipif(
    not ON_AARCH64 and not (shutil.which("aarch64-linux-gnu-gcc") and shutil.which("qemu-aarch64")),
    reason=INSTALL,
)
EM_AARCH64 = 183  # ELF e_machine

# name -> layer; each row exercises one rule of the NEON schedule (4 lanes, 4x16 register tile).
CASES = {
    "stride1": L(input_shape=(1, 8, 8, 16), out_channels=16),
    "stride2_odd_size": L(input_shape=(1, 11, 11, 8), strides=2, out_channels=16),
    "mult2": L(input_shape=(1, 8, 9, 4), channel_multiplier=2, out_channels=8),
    "odd_sizes": L(input_shape=(1, 7, 13, 5), out_channels=7),
    "bias_relu6": L(input_shape=(1, 8, 8, 8), out_channels=24, bias=True, activation="relu6"),
    "channels_not_multiple_of_4": L(
        input_shape=(1, 6, 6, 3), channel_multiplier=3, out_channels=13
    ),
    "out_above_register_tile": L(input_shape=(1, 6, 6, 8), out_channels=40),
    "valid_k5_batch2": L(input_shape=(2, 9, 9, 4), kernel_size=5, padding="VALID", out_channels=8),
    "dilation2": L(input_shape=(1, 10, 10, 4), dilation=2, out_channels=8),
    "mobilenet_block12_like": L(input_shape=(1, 8, 8, 64), strides=2, out_channels=128),
}


def _run_on_aarch64(kernel, arrays, tmp_path, threads=1):
    program = link_harness(kernel, tmp_path / "run_kernel")
    emulator = None if ON_AARCH64 else "qemu-aarch64"
    return run_harness(program, kernel, arrays, emulator=emulator, threads=threads)[0]


@needs_cross_tools
@pytest.mark.parametrize("name", list(CASES))
def test_neon_kernel_matches_reference_under_qemu(name, tmp_path):
    layer = CASES[name]
    kernel = sc.build(layer, target="aarch64")
    assert kernel.knobs == neon_space.default_knobs(layer, resolve_target("aarch64"))
    arrays = random_arrays(layer, seed=3)
    assert_matches_reference(layer, _run_on_aarch64(kernel, arrays, tmp_path), arrays)


@needs_cross_tools
@pytest.mark.parametrize("core", ["cortex-a53", "cortex-a72", "cortex-a76"])
def test_core_presets_are_bit_exact_on_dyadic_inputs(core, tmp_path):
    layer = L(
        input_shape=(1, 9, 7, 6),
        strides=2,
        channel_multiplier=2,
        out_channels=10,
        bias=True,
        activation="relu",
    )
    arrays = random_arrays(layer, seed=1, dyadic=True)
    got = _run_on_aarch64(sc.build(layer, target=core), arrays, tmp_path, threads=2)
    want = sc.reference(layer, *arrays[:3], arrays[3])
    np.testing.assert_array_equal(got, want.astype(np.float32))


@needs_cross_tools
def test_other_points_of_the_neon_space(tmp_path):
    """Unfused, staged padding, a packed pointwise filter, taps in registers, taps over blocks of
    pixels (on a row of 10: a partial block), the other loop order, flat pixel runs and channel
    chunks also hold on NEON."""
    layer = L(input_shape=(1, 9, 10, 6), out_channels=9, bias=True)
    deep = L(input_shape=(1, 5, 5, 8), out_channels=16)  # 25 pixels: few tiles, channel chunks
    target = resolve_target("aarch64")
    space = neon_space.search_space(layer, target, seed=2)
    picks = [
        (layer, next(k for k in space if not k.fused)),
        (layer, next(k for k in space if k.pad == "stage")),
        (layer, next(k for k in space if k.pack and k.taps == "inner")),
        (layer, next(k for k in space if k.taps == "pixels" and not k.flat)),
        (layer, next(k for k in space if k.order == "channels_outer" and k.px != 4)),
        (layer, next(k for k in space if k.flat and k.tile_w % 10)),  # runs that span rows, padded
        (deep, next(k for k in neon_space.search_space(deep, target, seed=2) if k.oc_split > 1)),
    ]
    for i, (case, knobs) in enumerate(picks):
        arrays = random_arrays(case, seed=4)
        kernel = sc.build(case, target=target, knobs=knobs)
        folder = tmp_path / str(i)
        folder.mkdir()
        assert_matches_reference(case, _run_on_aarch64(kernel, arrays, folder), arrays)


@pytest.fixture(scope="module")
def cross_kernel():
    return sc.build(L(input_shape=(1, 6, 6, 8), out_channels=8, bias=True), target="cortex-a72")


@pytest.mark.skipif(ON_AARCH64, reason="runs on this machine's own CPU")
def test_calling_a_cross_kernel_is_a_clear_spec_error(cross_kernel):
    assert isinstance(cross_kernel, CrossKernel)
    arrays = random_arrays(cross_kernel.layer)
    for attempt in (
        lambda: cross_kernel(*arrays),
        lambda: cross_kernel.bind(*arrays),
        lambda: cross_kernel.time(arrays),
    ):
        with pytest.raises(SpecError, match="cortex-a72.*cannot run on this machine.*qemu-aarch64"):
            attempt()


@pytest.mark.skipif(
    not ON_AARCH64 and not shutil.which("aarch64-linux-gnu-gcc"),
    reason="apt-get install gcc-aarch64-linux-gnu",
)
def test_export_so_is_cross_linked_and_carries_the_spec(cross_kernel, tmp_path):
    path = cross_kernel.export(tmp_path / "k.so")
    data = path.read_bytes()
    assert data[:4] == b"\x7fELF" and int.from_bytes(data[18:20], "little") == EM_AARCH64
    meta = elfmeta.read_section(path, META_SECTION)
    assert b'"target": "cortex-a72"' in meta and cross_kernel.name.encode() in meta
    if not ON_AARCH64:
        with pytest.raises(SpecError, match="'cortex-a72', built for aarch64; this machine is "
                                            "x86_64: load it there"):
            sc.load(path)


def test_export_tar_and_object_for_linking(cross_kernel, tmp_path):
    tar_path = cross_kernel.export(tmp_path / "k.tar")
    with tarfile.open(tar_path) as tar:
        assert [m.name for m in tar.getmembers()] == ["lib0.o"]
    obj = cross_kernel.export(tmp_path / "k.o").read_bytes()
    assert obj[:4] == b"\x7fELF" and int.from_bytes(obj[18:20], "little") == EM_AARCH64
    assert b"__tvm_ffi_main" in obj
    with pytest.raises(SpecError, match=r"\.so, \.tar or \.o"):
        cross_kernel.export(tmp_path / "k.dll")


def test_harness_source_ships_with_the_package():
    text = harness_source().read_text()
    for symbol in (
        "__TVMBackendParallelLaunch",
        "__TVMBackendAllocWorkspace",
        "__TVMBackendFreeWorkspace",
        "TVMFFIErrorSetRaisedFromCStrParts",
        "kTVMFFIDLTensorPtr",
    ):
        assert symbol in text


@needs_cross_tools
def test_harness_reports_a_shape_mismatch_instead_of_crashing(cross_kernel, tmp_path):
    """The kernel's own argument checks still run inside the harness."""
    program = link_harness(cross_kernel, tmp_path / "run_kernel")
    arrays = random_arrays(cross_kernel.layer)
    arrays[0] = arrays[0][:, :5]  # 5 input rows where the kernel was built for 6
    emulator = None if ON_AARCH64 else "qemu-aarch64"
    with pytest.raises(SpecError, match="kernel error"):
        run_harness(program, cross_kernel, arrays, emulator=emulator)


@needs_cross_tools
def test_build_checks_aarch64_kernels_under_the_emulator(tmp_path, capsys):
    from sepconv_codegen.cli import main as cli_main

    spec = tmp_path / "net.toml"
    spec.write_text('[[layer]]\nname = "a"\ninput_shape = [1, 9, 7, 6]\nstrides = 2\n'
                    'channel_multiplier = 2\nout_channels = 10\nbias = true\nactivation = "relu6"\n')
    assert cli_main(["build", str(spec), "--target", "cortex-a72", "--no-c",
                     "-o", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "checked under qemu-aarch64, not timed" in out or ON_AARCH64
    (entry,) = json.loads((tmp_path / "out" / "manifest.json").read_text())["layers"]
    assert entry["max_rel_error"] <= 1e-5


def test_a_missing_cross_compiler_is_named_before_any_work(tmp_path, monkeypatch, capsys):
    from sepconv_codegen.cli import main as cli_main
    from sepconv_codegen.targets import check_cross_compiler

    monkeypatch.setenv("PATH", str(tmp_path))  # no compiler at all
    target = resolve_target("cortex-a72")
    if target.cross_compiler is None:
        pytest.skip("AArch64 kernels are linked by this machine's own compiler")
    with pytest.raises(SpecError, match="apt-get install gcc-aarch64-linux-gnu"):
        check_cross_compiler(target)
    assert cli_main(["build", "--target", "cortex-a72", "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "aarch64-linux-gnu-gcc, which is not installed" in err and len(err.splitlines()) == 1

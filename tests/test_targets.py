"""Target names, aliases and raw TVM JSON; their attributes; the targets command; NEON knobs."""

import json
import platform
import re

import numpy as np
import pytest

from sepconv_codegen import Knobs, SpecError
from sepconv_codegen import SeparableConv2D as L
from sepconv_codegen import build as sc_build
from sepconv_codegen import load as sc_load
from sepconv_codegen.cli import main
from sepconv_codegen.schedule import aarch64 as neon_space
from sepconv_codegen.schedule import cpu as cpu_space
from sepconv_codegen.schedule import cuda as cuda_space
from sepconv_codegen.targets import list_targets, resolve_target, target_names

ON_X86 = platform.machine().lower() in ("x86_64", "amd64")
AARCH64_NAMES = ("aarch64", "cortex-a53", "cortex-a72", "cortex-a76")
CUDA_NAMES = ("cuda", "cuda-sm70", "cuda-sm75", "cuda-sm80", "cuda-sm86", "cuda-sm89", "cuda-sm90")


@pytest.mark.parametrize("name", ["llvm", "host", "x86", "native"])
def test_host_names_are_one_target(name):
    target = resolve_target(name)
    assert target.name == "llvm" and target.family == "cpu" and target.runs_here
    assert target.tvm["kind"] == "llvm" and target.tvm["mcpu"] not in ("native", "generic")
    assert target.schedule_space() is (neon_space if not ON_X86 else cpu_space)


def test_names_resolve_in_any_case():
    assert resolve_target("LLVM") is resolve_target("llvm")
    assert resolve_target(" Cortex-A72 ") is resolve_target("cortex-a72")
    assert resolve_target("CUDA-SM90") is resolve_target("cuda-sm90")


@pytest.mark.parametrize("name", AARCH64_NAMES)
def test_aarch64_presets(name):
    target = resolve_target(name)
    assert target.tvm["mtriple"] == "aarch64-linux-gnu" and target.tvm["mattr"] == ["+neon"]
    assert target.tvm.get("mcpu") == (None if name == "aarch64" else name)
    assert (target.vector_bits, target.vector_registers, target.lanes("float32")) == (128, 32, 4)
    assert target.family == "cpu" and target.schedule_space() is neon_space
    if ON_X86:
        assert target.cross_compiler == "aarch64-linux-gnu-gcc"
        assert target.runs_here is False and target.emulator == "qemu-aarch64"


@pytest.mark.parametrize("name", CUDA_NAMES)
def test_cuda_presets(name):
    target = resolve_target(name)
    sm = 80 if name == "cuda" else int(name.removeprefix("cuda-sm"))
    assert target.tvm == {"kind": "cuda", "arch": f"sm_{sm}"}
    assert target.family == "cuda" and target.schedule_space() is cuda_space
    assert target.gpu.sm == sm and target.gpu.multiprocessors > 0 and not target.runs_here
    assert target.lanes("float32") == 4  # float4 loads


def test_every_listed_target_resolves_by_each_of_its_names():
    targets = list_targets()
    assert targets[0].name == "llvm"
    listed = {name for t in targets for name in (t.name, *t.aliases)}
    assert listed == set(target_names())
    assert {*AARCH64_NAMES, *CUDA_NAMES} <= listed
    for target in targets:
        for name in (target.name, *target.aliases):
            assert resolve_target(name) == target
        assert json.loads(target.key) == target.tvm  # the tuning-database key is the JSON
        assert target.schedule_file.startswith(target.tvm["kind"] + "-")


def test_raw_json_string_and_dict_inherit_the_matching_preset():
    text = '{"kind": "llvm", "mtriple": "aarch64-linux-gnu", "mcpu": "cortex-a55"}'
    from_text = resolve_target(text)
    from_dict = resolve_target(json.loads(text))
    assert from_text == from_dict
    assert from_text.name == "custom" and from_text.tvm["mcpu"] == "cortex-a55"
    assert from_text.vector_bits == 128 and from_text.schedule_space() is neon_space
    host = resolve_target({"kind": "llvm", "mcpu": "skylake-avx512"})
    assert host.family == "cpu" and host.tvm == {"kind": "llvm", "mcpu": "skylake-avx512"}
    gpu = resolve_target('{"kind": "cuda", "arch": "sm_90"}')
    assert gpu.family == "cuda" and gpu.gpu.sm == 90 and gpu.tvm["arch"] == "sm_90"


def test_a_target_object_passes_through():
    target = resolve_target("cortex-a72")
    assert resolve_target(target) is target


@pytest.mark.parametrize(
    "bad, says",
    [
        ("cortex-a99", "is unknown"),
        ("cuda-sm100", "is unknown"),
        ("", "is unknown"),
        ("{not json", "is not valid JSON"),
        ("[1, 2]", "is unknown"),
        ('{"mcpu": "znver3"}', 'with a "kind"'),
        ('{"kind": "llvm", "bogus": 1}', "rejected by TVM"),
        ('{"kind": "rocm"}', "supported kinds are llvm and cuda"),
        ('{"kind": "llvm", "mtriple": "riscv64-linux-gnu"}', "only x86_64 and aarch64"),
        (42, "is a int"),
        (None, "is a NoneType"),
    ],
)
def test_unknown_or_malformed_targets_name_themselves_and_list_the_known(bad, says):
    with pytest.raises(SpecError) as err:
        resolve_target(bad)
    message = str(err.value)
    assert says in message and repr(bad) in message
    assert "cortex-a53" in message and "cuda-sm90" in message and "llvm" in message
    assert "build also takes 'c', the standalone C backend" in message


@pytest.mark.skipif(not ON_X86, reason="the CPU names checked here are x86 and AArch64 ones")
@pytest.mark.parametrize(
    "bad, says",
    [
        # LLVM would log a line and build generic 128-bit code, which runs, slowly.
        ('{"kind": "llvm", "mcpu": "skylake-avx51"}', "did you mean 'skylake-avx512'"),
        ('{"kind": "llvm", "mcpu": "cortex-a72"}',
         'it is an AArch64 CPU: add "mtriple": "aarch64-linux-gnu" (or use target \'cortex-a72\')'),
        ('{"kind": "llvm", "mtriple": "aarch64-linux-gnu", "mcpu": "cortex-z99"}',
         "for mtriple 'aarch64-linux-gnu'"),
        ('{"kind": "llvm", "mtriple": "aarch64-linux-gnu", "mcpu": "znver3"}', "it is an x86 CPU"),
        ({"kind": "llvm", "mcpu": "native"}, "for this machine's CPU use target 'llvm'"),
    ],
)
def test_an_mcpu_llvm_does_not_know_for_the_triple_is_refused(bad, says):
    with pytest.raises(SpecError) as err:
        resolve_target(bad)
    message = str(err.value)
    mcpu = (json.loads(bad) if isinstance(bad, str) else bad)["mcpu"]
    assert f"has mcpu {mcpu!r}, which LLVM does not know" in message and says in message
    assert len(message.splitlines()) == 1


def test_the_cpu_names_llvm_knows_are_read_once_per_triple():
    from sepconv_codegen.targets import _llvm_cpus

    _llvm_cpus.cache_clear()
    for _ in range(3):
        resolve_target({"kind": "llvm", "mtriple": "aarch64-linux-gnu", "mcpu": "cortex-a55"})
    assert _llvm_cpus.cache_info().misses == 1 and "cortex-a55" in _llvm_cpus("aarch64-linux-gnu")


def test_a_mistyped_mcpu_fails_the_build_command(capsys):
    assert main(["build", "--target", '{"kind":"llvm","mcpu":"skylake-avx51"}']) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "mcpu 'skylake-avx51'" in err


def test_targets_command_prints_a_table(capsys):
    assert main(["targets"]) == 0
    out = capsys.readouterr().out
    header = out.splitlines()[0]
    for column in ("name", "description", "TVM target JSON", "vector bits", "runs here?"):
        assert column in header
    for name in (*AARCH64_NAMES, *CUDA_NAMES, "llvm"):
        assert any(line.split()[0].rstrip(",") == name for line in out.splitlines()[2:] if line)
    assert '{"kind":"cuda","arch":"sm_90"}' in out
    assert "`build --target c`" in out  # what 'c' is, and where it is accepted
    line = next(li for li in out.splitlines() if li.startswith("cortex-a53 "))
    assert "128" in line and ("no (qemu-aarch64)" in line if ON_X86 else "yes" in line)


def test_targets_command_json(capsys):
    assert main(["targets", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    by_name = {d["name"]: d for d in data}
    assert by_name["aarch64"]["vector_registers"] == 32
    assert by_name["cuda-sm86"]["tvm"] == {"kind": "cuda", "arch": "sm_86"}


def test_unknown_target_on_the_command_line_is_one_line_and_status_2(capsys):
    assert main(["build", "--target", "cortex-a99"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cortex-a99" in err and "cortex-a53" in err


# ---- NEON knobs ---------------------------------------------------------------------------------

NEON = resolve_target("aarch64")


@pytest.mark.parametrize(
    "layer, tile",
    [
        (L(input_shape=(1, 56, 56, 128), out_channels=128), (4, 16)),  # MobileNet block 3
        (L(input_shape=(1, 28, 28, 128), out_channels=256), (4, 16)),
        (L(input_shape=(1, 14, 14, 512), out_channels=512), (7, 8)),  # not 14x8: 28 accumulators
        (L(input_shape=(1, 7, 7, 1024), out_channels=1024), (7, 8)),
    ],
)
def test_neon_default_register_tile(layer, tile):
    knobs = neon_space.default_knobs(layer, NEON)
    assert (knobs.px, knobs.oc) == tile and knobs.vec == 4


@pytest.mark.parametrize(
    "shape, out", [((1, 9, 9, 8), 10), ((1, 3, 3, 8), 3), ((2, 5, 13, 3), 7), ((1, 12, 12, 16), 40)]
)
def test_neon_default_fits_the_register_file_and_divides_the_tile(shape, out):
    layer = L(input_shape=shape, out_channels=out)
    knobs = neon_space.default_knobs(layer, NEON)
    vectors = knobs.oc // knobs.vec
    assert knobs.vec == 4 and knobs.tile_w % knobs.px == 0
    assert knobs.px * vectors + vectors + 1 <= NEON.vector_registers


def test_neon_space_has_its_default_first_and_is_the_cpu_space():
    layer = L(input_shape=(1, 14, 14, 32), strides=2, out_channels=64)
    space = neon_space.search_space(layer, NEON)
    assert space[0] == neon_space.default_knobs(layer, NEON)
    assert set(space[1:]) <= set(cpu_space.search_space(layer, NEON))
    assert len(set(space)) == len(space) and all(k.vec == 4 for k in space)
    assert neon_space.search_space(layer, NEON, limit=5) == space[:5]


def _host_has(feature: str) -> bool:
    from sepconv_codegen.targets import _llvm_features

    return feature in _llvm_features(resolve_target("llvm").tvm)


@pytest.mark.skipif(not ON_X86, reason="x86 targets run only on an x86 host")
def test_x86_json_takes_its_own_cpu_and_runs_here_only_if_this_cpu_can(tmp_path):
    # An AVX-512 module on a CPU without AVX-512 dies of an illegal instruction when called; it is
    # built, exported and never run here.
    avx512 = resolve_target({"kind": "llvm", "mcpu": "skylake-avx512"})
    assert (avx512.vector_bits, avx512.vector_registers, avx512.space) == (512, 32, "cpu")
    generic = resolve_target('{"kind": "llvm"}')  # LLVM's baseline x86-64: SSE2, 128-bit
    assert generic.vector_bits == 128 and generic.runs_here
    if _host_has("avx512f"):
        pytest.skip("this CPU runs AVX-512 modules")
    assert not avx512.runs_here and "avx512f" in avx512.description
    assert resolve_target({"kind": "llvm", "mcpu": "haswell"}).runs_here is _host_has("avx2")
    layer = L(input_shape=(1, 8, 8, 16), out_channels=32)
    kernel = sc_build(layer, avx512)
    x, dw, pw = (np.zeros(s, np.float32) for s in (layer.input_shape, layer.depthwise_filter_shape,
                                                   layer.pointwise_filter_shape))
    with pytest.raises(SpecError, match="cannot run on this machine"):
        kernel(x, dw, pw)
    assert kernel.export(tmp_path / "k.so").stat().st_size > 0
    with pytest.raises(SpecError, match="cannot run on this machine"):  # nor once loaded back
        sc_load(tmp_path / "k.so")(x, dw, pw)
    spec = tmp_path / "one.json"
    spec.write_text(json.dumps({"layer": [layer.to_dict()]}))
    status = main(["build", str(spec), "--target", json.dumps(avx512.tvm), "-o", str(tmp_path / "out"),
                   "--no-c"])  # in this process: an illegal instruction would end the test run
    assert status == 0 and (tmp_path / "out" / "manifest.json").exists()


@pytest.mark.parametrize("bad, says", [
    ('{"kind": "llvm", "mtriple": "arm64-apple-darwin"}', "only x86_64 and aarch64 Linux"),
    ('{"kind": "llvm", "mtriple": "aarch64_be-linux-gnu"}', "only x86_64 and aarch64 Linux"),
    ('{"kind": "llvm", "mtriple": "x86_64-pc-windows-msvc"}', "only x86_64 and aarch64 Linux"),
    ('{"kind": "cuda", "arch": "sm_87", "host": {"kind": "llvm", "mtriple": "aarch64-linux-gnu"}}',
     "its host must be this machine's"),
])
def test_targets_this_machine_cannot_link_are_refused(bad, says):
    if "aarch64-linux-gnu\"}}" in bad and not ON_X86:
        pytest.skip("an AArch64 host is this machine's own")
    with pytest.raises(SpecError, match=re.escape(says)):
        resolve_target(bad)


def test_two_custom_targets_give_two_kernel_names():
    from sepconv_codegen.naming import kernel_name, target_detail

    layer = L(input_shape=(1, 8, 8, 4), out_channels=8)
    knobs = Knobs()
    names = {kernel_name(layer, t.name, knobs, target_detail(t)) for t in (
        resolve_target('{"kind": "llvm", "mtriple": "aarch64-linux-gnu", "mcpu": "cortex-a57"}'),
        resolve_target('{"kind": "llvm", "mtriple": "aarch64-linux-gnu", "mcpu": "cortex-a78ae"}'),
        resolve_target('{"kind": "llvm", "mcpu": "skylake-avx512"}'))}
    assert len(names) == 3
    assert kernel_name(layer, "llvm", knobs, target_detail(resolve_target("llvm"))) == \
        kernel_name(layer, "llvm", knobs)  # named targets keep their names

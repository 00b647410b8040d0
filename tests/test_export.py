"""Exported kernels load back in a fresh process with their spec, compiling nothing."""

import json
import re
import subprocess
import sys

import numpy as np
import pytest

import sepconv_codegen as sc
from sepconv_codegen.tvm_backend import elfmeta
from tests.conftest import ROOT, assert_matches_reference, random_arrays

LOADER = r"""
import sys, json, numpy as np
import sepconv_codegen as sc
kernel = sc.load(sys.argv[1])
data = np.load(sys.argv[2])
args = [data[k] for k in ("x", "dw", "pw", "b")]
np.save(sys.argv[3], kernel(*args[:3], bias=args[3]))
print(json.dumps({"name": kernel.name, "layer": kernel.layer.to_dict(), "source": kernel.schedule_source}))
"""


@pytest.mark.parametrize(
    "knobs",
    [
        # Packed pointwise panels: the loader must repack from the knobs stored in the library.
        sc.Knobs(tile_h=1, tile_w=5, px=5, oc=8, vec=8, pack=True),
        # Flat runs over a padded pixel axis and channel chunks: same NHWC signature.
        sc.Knobs(tile_h=1, tile_w=8, px=4, oc=8, vec=8, pack=True, flat=True, oc_split=2),
    ],
    ids=["packed", "flat_chunks"],
)
def test_export_and_load_in_a_new_process(tmp_path, knobs):
    layer = sc.SeparableConv2D(name="exported", input_shape=(1, 9, 9, 6), channel_multiplier=2,
                               out_channels=10, strides=2, bias=True, activation="relu6")
    kernel = sc.build(layer, knobs=knobs)
    path = kernel.export(tmp_path / "k.so")
    arrays = random_arrays(layer)
    np.savez(tmp_path / "in.npz", x=arrays[0], dw=arrays[1], pw=arrays[2], b=arrays[3])
    # The child process must not compile: a guard module makes tvm.compile raise there.
    (tmp_path / "guard").mkdir()
    (tmp_path / "guard" / "sitecustomize.py").write_text(
        "import tvm\n"
        "def _no(*a, **k):\n    raise AssertionError('load() compiled something')\n"
        "tvm.compile = _no\ntvm.tirx.build = _no\n"
    )
    env = {"PYTHONPATH": f"{tmp_path / 'guard'}:{ROOT}", "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", LOADER, str(path), str(tmp_path / "in.npz"),
                           str(tmp_path / "out.npy")], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    meta = json.loads(done.stdout.strip().splitlines()[-1])
    assert meta["name"] == kernel.name and meta["source"] == kernel.schedule_source
    assert sc.SeparableConv2D.from_dict(meta["layer"]) == layer
    out = np.load(tmp_path / "out.npy")
    np.testing.assert_array_equal(out, kernel(*arrays[:3], bias=arrays[3]))
    assert_matches_reference(layer, out, arrays)


def test_load_refuses_what_is_not_a_kernel(tmp_path):
    with pytest.raises(sc.SpecError, match="does not exist"):
        sc.load(tmp_path / "missing.so")
    other = tmp_path / "other.so"
    other.write_bytes(b"not an elf file")
    with pytest.raises(sc.SpecError, match="not a sepconv_codegen kernel"):
        sc.load(other)


def test_metadata_section_round_trip(tmp_path):
    source = tmp_path / "meta.c"
    source.write_text(elfmeta.c_source(".sepconv_meta", '{"a": "b\\"c"}'))
    obj = tmp_path / "meta.o"
    subprocess.run(["gcc", "-c", str(source), "-o", str(obj)], check=True)
    assert elfmeta.read_section(obj, ".sepconv_meta").rstrip(b"\0") == b'{"a": "b\\"c"}'
    assert elfmeta.read_section(obj, ".absent") is None


SMALL = sc.SeparableConv2D(name="small", input_shape=(1, 8, 8, 4), out_channels=8, bias=True)


@pytest.fixture(scope="module")
def small_kernel():
    return sc.build(SMALL)


def _same_results(kernel, loaded):
    arrays = random_arrays(SMALL)
    np.testing.assert_array_equal(loaded(*arrays[:3], bias=arrays[3]),
                                  kernel(*arrays[:3], bias=arrays[3]))


def test_export_refuses_a_path_it_cannot_write_before_linking(tmp_path, small_kernel):
    (tmp_path / "file").write_text("")
    for path, says in (
        (tmp_path / "file" / "k.so", f"{str(tmp_path / 'file')!r} is a file, not a folder"),
        (tmp_path, "is a folder, not a file (name a file in it)"),
        ("", "export path is empty"),
        ("/proc/sepconv_k.so", "export path '/proc/sepconv_k.so' cannot be written"),
    ):
        with pytest.raises(sc.SpecError, match="^" + re.escape(f"export path {str(path)!r}"
                                                               if path else says)) as err:
            small_kernel.export(path)
        assert says in str(err.value) and len(str(err.value).splitlines()) == 1


@pytest.mark.parametrize("name", ["noext", "k.bin", "lib.so.1"])
def test_a_kernel_loads_whatever_its_file_is_called(tmp_path, small_kernel, name):
    # TVM picks its loader by the extension; load() must not blame the machine for a name.
    path = small_kernel.export(tmp_path / name)
    assert path.name == name
    _same_results(small_kernel, sc.load(path))
    (tmp_path / "link.so").symlink_to(path)  # TVM resolves a link before it looks at the name
    _same_results(small_kernel, sc.load(tmp_path / "link.so"))


def test_load_names_a_truncated_library_and_a_folder(tmp_path, small_kernel):
    data = small_kernel.export(tmp_path / "k.so").read_bytes()
    (tmp_path / "half.so").write_bytes(data[: len(data) // 2])
    with pytest.raises(sc.SpecError, match=r"'.*half\.so' is truncated or not an ELF shared library"):
        sc.load(tmp_path / "half.so")
    with pytest.raises(sc.SpecError, match="is a folder, not an exported kernel"):
        sc.load(tmp_path)


def test_a_c_kernel_exports_and_loads_back_as_a_kernel(tmp_path):
    from sepconv_codegen.cgen import CKernel

    kernel = sc.build(SMALL, "c")
    path = kernel.export(tmp_path / "ck.so")
    loaded = sc.load(path)
    assert isinstance(loaded, CKernel) and loaded.name == kernel.name
    assert loaded.layer == SMALL and loaded.knobs == kernel.knobs
    assert loaded.schedule_source == kernel.schedule_source
    _same_results(kernel, loaded)
    again = loaded.export(tmp_path / "copy")  # a loaded C kernel exports as it was loaded
    _same_results(kernel, sc.load(again))


def test_a_native_c_kernel_from_a_cpu_with_more_instruction_sets_is_refused(tmp_path, monkeypatch):
    # -march=native code from a CPU with, say, AVX-512 would die of an illegal instruction here.
    from sepconv_codegen.cgen import CKernel

    kernel = sc.build(SMALL, "c")
    assert "-march=native" in kernel.metadata()["cflags"]
    assert kernel.metadata()["cpu_features"]  # what this CPU has: loads back here
    _same_results(kernel, sc.load(kernel.export(tmp_path / "here.so")))
    recorded = CKernel.metadata
    monkeypatch.setattr(CKernel, "metadata", lambda self: {
        **recorded(self), "cpu_features": [*recorded(self)["cpu_features"], "+an-isa-this-cpu-lacks"]})
    path = kernel.export(tmp_path / "there.so")
    with pytest.raises(sc.SpecError, match=r"compiled with -march=native .*an-isa-this-cpu-lacks.*build it again"):
        sc.load(path)


def test_a_loaded_kernel_exports_again_as_the_file_it_came_from(tmp_path, small_kernel):
    # TVM cannot link a loaded library again: its re-export used to hold the spec and no code.
    first = small_kernel.export(tmp_path / "first.so")
    again = sc.load(first).export(tmp_path / "again.so")
    assert again.read_bytes() == first.read_bytes()
    _same_results(small_kernel, sc.load(again))
    with pytest.raises(sc.SpecError, match=r"loaded from a \.so, which holds no object files"):
        sc.load(first).export(tmp_path / "again.tar")


def _flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1 :]


@pytest.mark.parametrize("target", ["llvm", "c"])
def test_a_library_corrupted_after_export_is_refused_before_it_is_loaded(tmp_path, target):
    # dlopen of a damaged library can kill the process; the digest sealed at export catches it.
    data = sc.build(SMALL, target).export(tmp_path / "k.so").read_bytes()
    assert elfmeta.intact(data) is True
    for at in (len(data) // 3, len(data) // 2, len(data) - 9):
        (tmp_path / "bad.so").write_bytes(_flip(data, at))
        with pytest.raises(sc.SpecError, match=r"is corrupted: its bytes do not match the SHA-256"):
            sc.load(tmp_path / "bad.so")
    # section headers at an offset past any file: a SpecError, not an OverflowError
    (tmp_path / "far.so").write_bytes(data[:40] + b"\xff" * 8 + data[48:])
    with pytest.raises(sc.SpecError, match="truncated or not an ELF shared library"):
        sc.load(tmp_path / "far.so")


def test_a_library_exported_without_a_digest_still_loads(tmp_path, small_kernel, monkeypatch):
    # Exports from before the digest hold none: nothing to check them against.
    monkeypatch.setattr(elfmeta, "meta_source",
                        lambda meta: elfmeta.c_source(elfmeta.META_SECTION, json.dumps(meta)))
    monkeypatch.setattr(elfmeta, "seal", lambda path: None)
    path = small_kernel.export(tmp_path / "old.so")
    assert elfmeta.intact(path.read_bytes()) is None
    _same_results(small_kernel, sc.load(path))


def test_load_names_an_archive_and_a_library_without_kernel_code(tmp_path, small_kernel):
    small_kernel.export(tmp_path / "k.tar")
    with pytest.raises(sc.SpecError, match=r"archive of object files .*export the kernel to a \.so"):
        sc.load(tmp_path / "k.tar")
    source = tmp_path / "meta.c"  # a kernel's spec, linked with no code
    source.write_text(elfmeta.c_source(elfmeta.META_SECTION, json.dumps(small_kernel.metadata())))
    subprocess.run(["gcc", "-shared", "-fPIC", str(source), "-o", str(tmp_path / "empty.so")],
                   check=True)
    with pytest.raises(sc.SpecError, match=r"has no function 'main' \(its library holds only its spec\)"):
        sc.load(tmp_path / "empty.so")

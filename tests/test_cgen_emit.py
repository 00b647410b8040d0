"""The C emitter: files, names, preamble, strictness, weights, plans, and what the code may use.

Correctness of the emitted arithmetic is in test_cgen_kernels.py; this file checks the product
around it: the ABI the header states, compile-cleanliness under strict flags, no writable globals,
bad input rejected with a SpecError naming it.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess

import jinja2
import numpy as np
import pytest

from sepconv_codegen import Knobs, SeparableConv2D, SpecError, mobilenet_v1
from sepconv_codegen.cgen import c_manifest_entry, emit_c, peak_ram, scratch_bytes
from sepconv_codegen.cgen.emit import comment_safe_json, environment, render
from sepconv_codegen.cgen.measure import _stack_of, object_figures
from sepconv_codegen.cgen.plan import default_c_knobs, make_plan
from sepconv_codegen.cgen.toolchains import HOST, WARNING_FLAGS, Toolchain
from sepconv_codegen.cgen.weights import bake
from sepconv_codegen.naming import kernel_name
from tests.conftest import random_arrays

SMALL = SeparableConv2D(
    name="small",
    input_shape=(1, 6, 7, 4),
    channel_multiplier=2,
    out_channels=12,
    bias=True,
    activation="relu6",
)


def weights_of(layer, seed=0):
    return dict(
        zip(("depthwise_filter", "pointwise_filter", "bias"), random_arrays(layer, seed)[1:])
    )


# ---- files, names, preamble ----------------------------------------------------------------------


def test_emit_writes_header_and_source_named_for_the_kernel(tmp_path):
    emitted = emit_c(SMALL, tmp_path)
    name = kernel_name(SMALL, "c", default_c_knobs(SMALL))
    assert emitted.function == name and name.isidentifier()
    assert emitted.header == tmp_path / f"{name}.h" and emitted.source == tmp_path / f"{name}.c"
    assert emitted.scratch_bytes == make_plan(SMALL).scratch_bytes > 0
    assert emitted.knobs == default_c_knobs(SMALL) and not emitted.baked_weights
    with pytest.raises(dataclasses.FrozenInstanceError):
        emitted.function = "other"
    header = emitted.header.read_text()
    assert f"int {name}(const float *input, const float *depthwise_filter, " in header
    assert f"#define {name}_SCRATCH_BYTES {emitted.scratch_bytes}u" in header
    for macro, value in [
        ("IN_H", 6),
        ("IN_W", 7),
        ("IN_C", 4),
        ("OUT_C", 12),
        ("MULTIPLIER", 2),
        ("HAS_BIAS", 1),
        ("OUTPUT_SIZE", 6 * 7 * 12),
    ]:
        assert f"#define {name}_{macro} {value}" in header


@pytest.mark.parametrize("suffix, template", [(".h", "sepconv.h.j2"), (".c", "sepconv.c.j2")])
def test_every_file_starts_with_the_do_not_edit_preamble(tmp_path, suffix, template):
    emitted = emit_c(SMALL, tmp_path)
    lines = emitted.source.with_suffix(suffix).read_text().splitlines()
    assert lines[0] == "/*" and "Auto-generated file. Do not edit!" in lines[1]
    assert f"Template: {template}" in lines[2]
    spec_line = next(line for line in lines[:8] if "Layer: " in line)
    assert json.loads(spec_line.split("Layer: ", 1)[1]) == SMALL.to_dict()


def test_preamble_json_cannot_close_the_comment():
    data = {"name": "a*/b??/c", "nested": ["*/"]}
    text = comment_safe_json(data)
    assert "*/" not in text and "?" not in text
    assert json.loads(text) == data


def test_layer_name_appears_only_in_the_preamble_comment(tmp_path):
    layer = SMALL.replace(name="Layer-7.v2")
    for path in (emit_c(layer, tmp_path).header, emit_c(layer, tmp_path).source):
        text = path.read_text()
        preamble_end = text.index("*/") + 2
        assert "Layer-7.v2" in text[:preamble_end] and "Layer-7.v2" not in text[preamble_end:]


def test_files_are_rewritten_only_when_their_content_changes(tmp_path):
    first = emit_c(SMALL, tmp_path)
    stamps = {p: p.stat().st_mtime_ns for p in (first.header, first.source)}
    emit_c(SMALL, tmp_path)
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    first.source.write_text("edited by hand")
    emit_c(SMALL, tmp_path)
    assert first.source.read_text().startswith("/*\n * Auto-generated file. Do not edit!")
    assert first.header.stat().st_mtime_ns == stamps[first.header]


def test_knobs_name_the_kernel_and_size_the_scratch(tmp_path):
    fused = Knobs(tile_h=2, tile_w=3, px=3, oc=8, vec=8, fused=True, order="pixels_outer")
    unfused = dataclasses.replace(fused, fused=False)
    panel = dataclasses.replace(fused, order="channels_outer")
    a, b, c = (emit_c(SMALL, tmp_path, knobs) for knobs in (fused, unfused, panel))
    assert len({a.function, b.function, c.function}) == 3
    dw_c = SMALL.depthwise_channels
    assert a.scratch_bytes == 4 * 2 * 3 * dw_c
    assert b.scratch_bytes == 4 * 6 * 7 * dw_c  # the whole intermediate
    assert c.scratch_bytes == 4 * (2 * 3 * dw_c + dw_c * 8)  # tile + one packed filter panel
    assert scratch_bytes(SMALL, fused) == a.scratch_bytes


# ---- the one strict environment ------------------------------------------------------------------


def test_environment_is_created_once_and_is_strict():
    env = environment()
    assert env is environment()
    assert env.undefined is jinja2.StrictUndefined
    with pytest.raises(jinja2.UndefinedError):
        render("_preamble.j2", layer_json="{}")  # knobs_json is missing


def test_template_contracts_are_checked():
    with pytest.raises(jinja2.TemplateRuntimeError, match="contract"):
        environment().globals["require"](False, "always")


# ---- plans: the tile arithmetic ------------------------------------------------------------------


@pytest.mark.parametrize(
    "out_w, tile_w, px, counts",
    [
        (8, 8, 4, (4,)),
        (13, 7, 3, (3, 1)),  # rows of 7 (3+3+1) and 6 (3+3)
        (10, 4, 3, (3, 2, 1)),  # rows of 4 (3+1) and 2
        (5, 2, 4, (2, 1)),  # px clamped to the tile width
        (3, 16, 4, (3,)),  # tile clamped to the output
    ],
)
def test_register_tile_widths_cover_every_row_end(out_w, tile_w, px, counts):
    layer = SeparableConv2D(input_shape=(1, 3, out_w, 4), out_channels=16, padding="SAME")
    plan = make_plan(layer, Knobs(tile_w=tile_w, px=px, oc=16, vec=8))
    assert plan.pixel_counts == counts


def test_no_register_tiles_when_all_channels_are_edge_channels():
    plan = make_plan(SMALL, Knobs(oc=16, vec=8))
    assert plan.full_channels == 0 and plan.pixel_counts == () and plan.edge_channels == 12


@pytest.mark.parametrize("layer", list(mobilenet_v1()), ids=lambda layer: layer.name)
def test_fused_kernel_needs_less_ram_than_the_unfused_layer_on_mobilenet(layer):
    ram = peak_ram(layer)
    assert ram["kernel"] < ram["unfused"]
    intermediate = 4 * int(np.prod(layer.intermediate_shape))
    assert ram["unfused"] - ram["kernel"] == intermediate - scratch_bytes(layer)


@pytest.mark.parametrize("layer", [
    SeparableConv2D(input_shape=(1, 1, 1, 3), channel_multiplier=2, out_channels=5),
    SeparableConv2D(input_shape=(1, 2, 2, 16), kernel_size=1, out_channels=16),
    SeparableConv2D(input_shape=(1, 4, 4, 32), strides=2, out_channels=64),
    *mobilenet_v1(resolution=96, width=0.25).layers[-2:],  # 3x3 outputs, 256 channels
    SeparableConv2D(input_shape=(3, 3, 3, 64), out_channels=64),  # a batch of small outputs
], ids=lambda layer: "x".join(map(str, layer.output_shape)))
def test_fused_ram_is_never_above_unfused_on_small_outputs(layer):
    # There the packed filter panel alone can outweigh the whole intermediate.
    ram = peak_ram(layer)
    assert ram["kernel"] <= ram["unfused"]
    if layer.output_shape[1] * layer.output_shape[2] > 1:  # more than one tile: fusing saves
        assert ram["kernel"] < ram["unfused"]


def test_an_oc_override_brings_a_vec_that_divides_it():
    from sepconv_codegen.cgen.plan import c_knobs

    assert c_knobs(SMALL, {"oc": 4}).vec == 4 and c_knobs(SMALL, {"oc": 12}).oc == 12
    assert c_knobs(SMALL, {"oc": 16}).vec == 8 and c_knobs(SMALL, {"oc": 16, "vec": 4}).vec == 4


def test_fused_ram_is_below_unfused_with_the_tvm_default_knobs_too():
    from sepconv_codegen.schedule.cpu import default_knobs
    from sepconv_codegen.targets import resolve_target

    host = resolve_target("llvm")
    for layer in mobilenet_v1():
        knobs = default_knobs(layer, host)  # unfused on depthwise-heavy layers: as fast, on a big CPU
        assert peak_ram(layer, knobs)["kernel"] == peak_ram(layer, knobs)["unfused"] or knobs.fused
        ram = peak_ram(layer, dataclasses.replace(knobs, fused=True))  # its tile, fused
        assert ram["kernel"] < ram["unfused"], layer.name


# ---- bad input -----------------------------------------------------------------------------------


def test_non_float32_layers_are_refused(tmp_path):
    with pytest.raises(SpecError, match="float64.*float32"):
        emit_c(SMALL.replace(dtype="float64"), tmp_path)


def test_knobs_must_be_knobs(tmp_path):
    with pytest.raises(SpecError, match="knobs must be a Knobs"):
        emit_c(SMALL, tmp_path, knobs={"tile_h": 2})


def test_output_must_be_a_folder(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(SpecError, match="not a folder"):
        emit_c(SMALL, tmp_path / "file")


def test_a_folder_in_the_place_of_a_file_is_named(tmp_path):
    header = tmp_path / f"{make_plan(SMALL).function}.h"
    header.mkdir()
    with pytest.raises(SpecError, match=f"cannot write {str(header)!r}: Is a directory"):
        emit_c(SMALL, tmp_path)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda w: w.pop("bias"), r"weights\['bias'\] is missing"),
        (lambda w: w.update(extra=np.zeros(3, np.float32)), r"weights\['extra'\] is not a weight"),
        (lambda w: w.update(bias=np.zeros(5, np.float32)), r"weights\['bias'\] has shape \(5,\)"),
        (
            lambda w: w.update(pointwise_filter=w["pointwise_filter"].astype(np.float64)),
            r"weights\['pointwise_filter'\] has dtype float64",
        ),
        (
            lambda w: w["depthwise_filter"].__setitem__((0, 0, 0, 0), np.nan),
            r"weights\['depthwise_filter'\] holds NaN",
        ),
        (
            lambda w: w.update(depthwise_filter=[[1.0]]),
            r"weights\['depthwise_filter'\] must be a numpy",
        ),
    ],
)
def test_bad_weights_are_refused_naming_the_key(tmp_path, change, message):
    weights = weights_of(SMALL)
    change(weights)
    with pytest.raises(SpecError, match=message):
        emit_c(SMALL, tmp_path, weights=weights)


def test_weights_file_and_sequence_errors(tmp_path):
    with pytest.raises(SpecError, match="does not exist"):
        emit_c(SMALL, tmp_path, weights=tmp_path / "missing.npz")
    (tmp_path / "bad.npz").write_text("not a zip")
    with pytest.raises(SpecError, match=r"is not a \.npz archive \(np\.savez writes one\)"):
        emit_c(SMALL, tmp_path, weights=tmp_path / "bad.npz")
    (tmp_path / "bad.npz").write_text("PK but no zip after it")
    with pytest.raises(SpecError, match="not a readable .npz"):
        emit_c(SMALL, tmp_path, weights=tmp_path / "bad.npz")
    with pytest.raises(SpecError, match="must hold 3 arrays"):
        emit_c(SMALL, tmp_path, weights=tuple(weights_of(SMALL).values())[:2])
    with pytest.raises(SpecError, match="weights must be"):
        emit_c(SMALL, tmp_path, weights=42)


# ---- baked weights -------------------------------------------------------------------------------


def test_baked_weights_from_npz_mapping_or_tuple_give_the_same_kernel(tmp_path):
    weights = weights_of(SMALL)
    np.savez(tmp_path / "w.npz", **weights)
    kernels = [
        emit_c(SMALL, tmp_path / kind, weights=source)
        for kind, source in [
            ("npz", tmp_path / "w.npz"),
            ("map", weights),
            ("tuple", tuple(weights.values())),
        ]
    ]
    assert len({k.function for k in kernels}) == 1
    assert len({k.source.read_text() for k in kernels}) == 1
    baked = kernels[0]
    assert baked.baked_weights
    assert baked.function.startswith(kernel_name(SMALL, "c", default_c_knobs(SMALL)) + "_w")
    assert (
        f"int {baked.function}(const float *input, float *output, void *scratch);"
        in baked.header.read_text()
    )
    source = baked.source.read_text()
    assert f"static const float {baked.function}_pointwise_filter[{8 * 12}] = {{" in source
    assert f"{weights['bias'][0]!s}f," in source


def test_baked_literals_round_trip_exactly():
    values = np.array([0.1, -0.0, 1e-45, 1.17549435e-38, 3.4028235e38, -2.5, 1 / 3], np.float32)
    (tensor,) = bake({"bias": values})
    literals = " ".join(tensor.lines).replace(",", " ").split()
    assert all(literal.endswith("f") for literal in literals)
    parsed = np.array([np.float32(literal[:-1]) for literal in literals], np.float32)
    np.testing.assert_array_equal(parsed.view(np.uint32), values.view(np.uint32))


def test_different_baked_weights_get_different_functions(tmp_path):
    a = emit_c(SMALL, tmp_path, weights=weights_of(SMALL, seed=1))
    b = emit_c(SMALL, tmp_path, weights=weights_of(SMALL, seed=2))
    assert a.function != b.function  # two same-shape layers can live in one firmware image


# ---- strict compilers, and what the code may use -------------------------------------------------

STRICT_LAYERS = {
    "fused_bias_relu6": (SMALL, None),
    "unfused_edge_channels": (
        SeparableConv2D(input_shape=(2, 5, 9, 3), kernel_size=(3, 5), strides=2, out_channels=13),
        Knobs(tile_w=4, px=3, oc=8, vec=8, fused=False),
    ),
    "panel_dilated_valid": (
        SeparableConv2D(
            input_shape=(1, 9, 9, 8),
            dilation=2,
            padding="VALID",
            out_channels=32,
            activation="relu",
        ),
        Knobs(tile_h=2, tile_w=5, px=4, oc=16, vec=8, order="channels_outer"),
    ),
}
COMPILERS = {
    "gcc": ["gcc"],
    "gcc-native": ["gcc", "-march=native"],
    "gcc-generic": ["gcc", "-DSEPCONV_GENERIC"],
    "clang": ["clang"],
    "clang-native": ["clang", "-march=native"],
}


@pytest.mark.parametrize("baked", [False, True], ids=["weights-as-arguments", "baked-weights"])
@pytest.mark.parametrize("compiler", sorted(COMPILERS))
@pytest.mark.parametrize("case", sorted(STRICT_LAYERS))
def test_compiles_cleanly_under_strict_c99(tmp_path, case, compiler, baked):
    command = COMPILERS[compiler]
    if shutil.which(command[0]) is None:
        pytest.skip(f"apt-get install {command[0]}")
    layer, knobs = STRICT_LAYERS[case]
    emitted = emit_c(layer, tmp_path, knobs, weights=weights_of(layer) if baked else None)
    done = subprocess.run(
        [*command, *WARNING_FLAGS, "-O2", "-c", str(emitted.source), "-o", str(tmp_path / "k.o")],
        check=False,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr


@pytest.mark.skipif(shutil.which("g++") is None, reason="apt-get install g++")
def test_header_is_usable_from_cpp(tmp_path):
    emitted = emit_c(SMALL, tmp_path)
    user = tmp_path / "user.cpp"
    user.write_text(
        f'#include "{emitted.header.name}"\n'
        f"int (*kernel)(const float *, const float *, const float *, const float *,"
        f" float *, void *) = {emitted.function};\n"
    )
    done = subprocess.run(
        ["g++", "-Wall", "-Werror", "-c", str(user), "-o", str(tmp_path / "u.o")],
        check=False,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr


@pytest.mark.skipif(not HOST.available, reason=HOST.install_hint)
def test_objects_hold_no_writable_globals_and_call_no_allocator(tmp_path):
    for layer, knobs in STRICT_LAYERS.values():
        emitted = emit_c(layer, tmp_path, knobs, weights=weights_of(layer))
        figures = object_figures(emitted.source, HOST)
        assert figures["data_bytes"] == 0 and figures["bss_bytes"] == 0
        obj = tmp_path / "k.o"
        subprocess.run(
            ["gcc", "-O2", "-std=c99", "-c", str(emitted.source), "-o", str(obj)], check=True
        )
        undefined = subprocess.run(
            ["nm", "-u", str(obj)], check=False, capture_output=True, text=True
        ).stdout.split()
        assert set(undefined) - {"U"} <= {"memset", "memcpy", "memmove"}, undefined


def test_includes_only_freestanding_headers(tmp_path):
    emitted = emit_c(SMALL, tmp_path, weights=weights_of(SMALL))
    includes = {
        line.split()[1]
        for path in (emitted.header, emitted.source)
        for line in path.read_text().splitlines()
        if line.startswith("#include")
    }
    assert includes == {"<stddef.h>", f'"{emitted.header.name}"', "<immintrin.h>", "<arm_neon.h>"}
    source = emitted.source.read_text()
    for intrinsic_header in ("<immintrin.h>", "<arm_neon.h>"):  # only behind their ISA guards
        guard = source[: source.index(intrinsic_header)].rsplit("#if", 1)[1]
        assert "!defined(SEPCONV_GENERIC)" in guard


# ---- measurements and the manifest entry ---------------------------------------------------------


def test_stack_report_is_summed_and_dynamic_frames_are_refused():
    report = "k.c:10:13:f\t48\tstatic\nk.c:20:5:g\t112\tstatic\n"
    assert _stack_of(report) == 160
    with pytest.raises(SpecError, match="dynamic"):
        _stack_of("k.c:1:1:h\t32\tdynamic\n")


def test_missing_toolchain_is_reported_with_its_install_command():
    absent = Toolchain("absent", "no-such-gcc", "no-such-size", (), ("gcc-absent",))
    assert object_figures(__file__, absent) == {"unavailable": "apt-get install gcc-absent"}


@pytest.mark.skipif(not HOST.available, reason=HOST.install_hint)
def test_manifest_entry_describes_files_ram_code_and_stack(tmp_path):
    layer = mobilenet_v1().layers[12]
    entry = c_manifest_entry(layer, tmp_path)
    assert (tmp_path / entry["files"]["header"]).is_file()
    assert (tmp_path / entry["files"]["source"]).is_file()
    assert entry["function"] == kernel_name(layer, "c", default_c_knobs(layer))
    assert entry["scratch_bytes"] == scratch_bytes(layer)
    assert entry["peak_ram_bytes"]["kernel"] < entry["peak_ram_bytes"]["unfused"]
    host = entry["toolchains"]["host-gcc"]
    assert host["text_bytes"] > 0 and 0 < host["stack_bytes"] < 64 * 1024
    assert set(entry["toolchains"]) == {"host-gcc", "aarch64", "cortex-m4"}
    json.dumps(entry)  # goes into manifest.json as is

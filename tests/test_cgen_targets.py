"""Emitted C on other targets, run under emulation and compared with the reference.

- AArch64: aarch64-linux-gnu-gcc -static, run under qemu-aarch64 (NEON and portable bodies);
- Cortex-M4: arm-none-eabi-gcc with newlib semihosting, run under qemu-system-arm -M mps2-an386,
  linked with examples/firmware's startup code and linker script;
- the firmware example itself: `make run`.
Each program is the check harness (cgen.harness): the test data is compiled in, the output printed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from sepconv_codegen import Knobs, SeparableConv2D
from sepconv_codegen.cgen import emit_c, emit_harness, parse_harness_output
from sepconv_codegen.cgen.toolchains import AARCH64, CORTEX_M4, compile_c
from tests.conftest import ROOT, assert_matches_reference, random_arrays

FIRMWARE = ROOT / "examples" / "firmware"

CASES = {
    "m2_bias_relu6_panel": (
        SeparableConv2D(
            input_shape=(1, 7, 9, 4),
            channel_multiplier=2,
            out_channels=24,
            bias=True,
            activation="relu6",
        ),
        Knobs(tile_h=2, tile_w=4, px=3, oc=8, vec=4, order="channels_outer"),
    ),
    "k5_s2_edge_channels_unfused": (
        SeparableConv2D(input_shape=(2, 9, 8, 3), kernel_size=5, strides=2, out_channels=21),
        Knobs(tile_w=3, px=2, oc=16, vec=8, fused=False),
    ),
    "dilated_explicit_padding_oc6": (
        SeparableConv2D(
            input_shape=(1, 8, 8, 5),
            dilation=2,
            padding=((2, 1), (0, 3)),
            out_channels=12,
            activation="relu",
        ),
        Knobs(tile_w=5, px=4, oc=6, vec=2),
    ),  # oc not a multiple of 4: portable body only
    "default_knobs_mobilenet_like": (
        SeparableConv2D(input_shape=(1, 10, 10, 16), out_channels=32, bias=True),
        None,
    ),
}


def _weights(arrays):
    return tuple(arrays[1:])


def _check_run(layer, arrays, command, timeout=180):
    run = subprocess.run(
        command,
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    assert run.returncode == 0, (
        f"{command[0]} exited {run.returncode}:\n{run.stdout[-2000:]}{run.stderr[-2000:]}"
    )
    assert_matches_reference(layer, parse_harness_output(run.stdout, layer.output_shape), arrays)


# ---- AArch64 -------------------------------------------------------------------------------------


def _skip_without_aarch64():
    if not AARCH64.available:
        pytest.skip(AARCH64.install_hint)
    if not AARCH64.emulator_available:
        pytest.skip(AARCH64.emulator_install_hint)


@pytest.mark.parametrize("body", ["neon", "portable"])
@pytest.mark.parametrize("baked", [False, True], ids=["weights-as-arguments", "baked-weights"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_aarch64_under_qemu_matches_reference(case, baked, body, tmp_path):
    _skip_without_aarch64()
    layer, knobs = CASES[case]
    arrays = random_arrays(layer, seed=5)
    emitted = emit_c(layer, tmp_path, knobs, weights=_weights(arrays) if baked else None)
    harness = emit_harness(emitted, arrays)
    flags = ["-O2", "-std=c99"] + (["-DSEPCONV_GENERIC"] if body == "portable" else [])
    if body == "neon":
        preprocessed = subprocess.run(
            [AARCH64.compiler, *flags, "-E", str(emitted.source)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        if emitted.plan.oc % 4:
            assert "vfmaq_n_f32" not in preprocessed
        else:
            assert "vfmaq_n_f32" in preprocessed  # the NEON register tiles are what runs
    program = tmp_path / "check"
    compile_c(
        AARCH64.compiler, [*flags, "-static", str(harness), str(emitted.source), "-o", str(program)]
    )
    _check_run(layer, arrays, [AARCH64.emulator, str(program)])


# ---- Cortex-M4 (MPS2 AN386) ----------------------------------------------------------------------


def _skip_without_cortex_m():
    if not CORTEX_M4.available:
        pytest.skip(CORTEX_M4.install_hint)
    if not CORTEX_M4.emulator_available:
        pytest.skip(CORTEX_M4.emulator_install_hint)


def _run_on_mps2(program) -> list[str]:
    # Under `timeout`: a core that faults before the FPU is enabled would hang qemu silently.
    return [
        "timeout",
        "120",
        CORTEX_M4.emulator,
        "-M",
        "mps2-an386",
        "-nographic",
        "-semihosting",
        "-kernel",
        str(program),
    ]


@pytest.mark.parametrize("baked", [False, True], ids=["weights-as-arguments", "baked-weights"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_cortex_m4_under_qemu_matches_reference(case, baked, tmp_path):
    _skip_without_cortex_m()
    layer, knobs = CASES[case]
    arrays = random_arrays(layer, seed=6)
    emitted = emit_c(layer, tmp_path, knobs, weights=_weights(arrays) if baked else None)
    harness = emit_harness(emitted, arrays)
    program = tmp_path / "check.elf"
    compile_c(
        CORTEX_M4.compiler,
        [
            *CORTEX_M4.flags,
            "-std=c99",
            "--specs=rdimon.specs",
            "-T",
            str(FIRMWARE / "mps2_an386.ld"),
            str(FIRMWARE / "startup.c"),
            str(harness),
            str(emitted.source),
            "-o",
            str(program),
        ],
    )
    _check_run(layer, arrays, _run_on_mps2(program))


@pytest.mark.skipif(shutil.which("make") is None, reason="apt-get install make")
def test_firmware_example_runs_and_passes(tmp_path):
    _skip_without_cortex_m()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [
            "make",
            "--no-print-directory",
            "-C",
            str(FIRMWARE),
            "run",
            f"BUILD={tmp_path}",
            f"PYTHON={sys.executable}",
        ],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert lines[-1] == "PASS"
    assert any(line.startswith("checksum 0x") for line in lines)
    error_line = next(line for line in lines if line.startswith("max abs error"))
    assert float(error_line.split()[3]) <= 1e-5

"""Shared fixtures: random TF-layout arrays for a layer, and a tolerance check against the reference."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # tests run against the source tree as well as an installed package
    sys.path.insert(0, str(ROOT))

from sepconv_codegen import SeparableConv2D, reference  # noqa: E402

# Tolerances against the float64 reference, relative to max(1, |reference|) (SEMANTICS.md): the
# same table `build` checks its kernels with.
from sepconv_codegen.check import TOLERANCE  # noqa: E402


def random_arrays(layer: SeparableConv2D, seed: int = 0, dyadic: bool = False) -> list[np.ndarray]:
    """input, depthwise, pointwise[, bias] for ``layer`` in its dtype.

    dyadic: multiples of 1/16 in [-1, 1], whose float32 products and sums are exact, so any
    summation order must match the reference to the bit.
    """
    rng = np.random.default_rng(seed)
    shapes = [layer.input_shape, layer.depthwise_filter_shape, layer.pointwise_filter_shape]
    if layer.bias:
        shapes.append(layer.bias_shape)
    if dyadic:
        return [(rng.integers(-16, 17, size=s) / 16).astype(layer.dtype) for s in shapes]
    return [rng.uniform(-1, 1, size=s).astype(layer.dtype) for s in shapes]


def assert_matches_reference(layer: SeparableConv2D, got: np.ndarray, arrays: list[np.ndarray]) -> float:
    """Max error relative to max(1, |reference|); fails above the dtype's tolerance."""
    bias = arrays[3] if layer.bias else None
    want = reference(layer, *arrays[:3], bias)
    assert got.shape == layer.output_shape
    assert got.dtype == np.dtype(layer.dtype)
    scale = max(1.0, float(np.abs(want).max()))
    err = float(np.abs(got.astype(np.float64) - want).max()) / scale
    assert err <= TOLERANCE[layer.dtype], f"max relative error {err:.3g} for {layer.workload_key}"
    return err


# A two-layer network for command-line tests: SAME stride 1, then stride 2, multiplier 2, bias,
# relu6; its shapes chain.
TINY_SPEC = """
name = "tiny"
[defaults]
kernel_size = 3
[[layer]]
name = "first"
input_shape = [1, 12, 12, 8]
out_channels = 16
[[layer]]
name = "second"
strides = 2
channel_multiplier = 2
out_channels = 24
bias = true
activation = "relu6"
"""


def run_cli(*args: str, cwd=None, timeout: float = 300):
    """`python -m sepconv_codegen ARGS` in a subprocess, as a user runs it."""
    import os
    import subprocess

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "sepconv_codegen", *args], capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=timeout)


def assert_unguarded_script_refused(folder: Path, script: str) -> None:
    """Run ``script`` (a tuning script without the main guard) in ``folder`` and check that it
    ends with the SpecError naming the guard and leaves ``folder/db.jsonl`` without a record.

    Spawned workers re-import the script, whose unguarded tune() then cannot start a process:
    each worker dies before taking a candidate. That is no candidate's failure: recorded as one,
    it would be resumed as failed by every later session."""
    import os
    import subprocess

    from sepconv_codegen.tuning.database import Database

    (folder / "script.py").write_text(script)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "script.py"], cwd=folder, env=env, check=False,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode != 0, done.stdout
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("sepconv_codegen.spec.SpecError:") and "spawn" in last
    assert 'under `if __name__ == "__main__":`' in last
    assert not list(Database(folder / "db.jsonl").records())


@pytest.fixture
def arrays_for():
    return random_arrays

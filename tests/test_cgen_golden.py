"""Golden generated C: a few kernels compared to the byte with files kept in tests/golden/.

A template change shows up here as a diff. When the change is intended, refresh the files and
review the diff before committing:

    SEPCONV_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/test_cgen_golden.py
    git diff tests/golden/
"""

from __future__ import annotations

import difflib
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from sepconv_codegen import Knobs, SeparableConv2D, mobilenet_v1
from sepconv_codegen.cgen import emit_c

GOLDEN = Path(__file__).resolve().parent / "golden"
UPDATE = os.environ.get("SEPCONV_UPDATE_GOLDEN") == "1"

SMALL = SeparableConv2D(
    name="golden_small",
    input_shape=(1, 5, 6, 3),
    channel_multiplier=2,
    out_channels=10,
    bias=True,
    activation="relu6",
)


def ramp(shape: tuple[int, ...]) -> np.ndarray:
    """Deterministic dyadic weights (multiples of 1/16 in [-1, 1]), the same on every machine."""
    count = int(np.prod(shape))
    return ((np.arange(count) * 7 % 33 - 16) / 16).astype(np.float32).reshape(shape)


CASES = {
    "mobilenet_block3_default_knobs": lambda out: emit_c(mobilenet_v1().layers[2], out),
    "unfused_pixels_outer_edge_channels": lambda out: emit_c(
        SMALL, out, Knobs(tile_h=2, tile_w=4, px=3, oc=8, vec=8, fused=False)
    ),
    "baked_weights_channels_outer": lambda out: emit_c(
        SMALL,
        out,
        Knobs(tile_h=1, tile_w=6, px=4, oc=8, vec=8, order="channels_outer"),
        weights=(
            ramp(SMALL.depthwise_filter_shape),
            ramp(SMALL.pointwise_filter_shape),
            ramp(SMALL.bias_shape),
        ),
    ),
}


def _files(folder: Path) -> dict[str, str]:
    return {path.name: path.read_text() for path in sorted(folder.iterdir())}


@pytest.mark.parametrize("case", sorted(CASES))
def test_generated_files_match_golden(case, tmp_path):
    CASES[case](tmp_path)
    produced = _files(tmp_path)
    expected_dir = GOLDEN / case
    if UPDATE:
        shutil.rmtree(expected_dir, ignore_errors=True)
        expected_dir.mkdir(parents=True)
        for name, text in produced.items():
            (expected_dir / name).write_text(text)
    assert expected_dir.is_dir(), f"no golden files for {case}: run with SEPCONV_UPDATE_GOLDEN=1"
    expected = _files(expected_dir)
    assert sorted(produced) == sorted(expected), "the kernel's file names changed"
    for name, text in produced.items():
        diff = "".join(
            difflib.unified_diff(
                expected[name].splitlines(True),
                text.splitlines(True),
                f"golden/{case}/{name}",
                "generated",
                n=2,
            )
        )
        assert not diff, (
            f"generated {name} differs from golden (to refresh on purpose, see the module "
            f"docstring):\n{diff[:6000]}"
        )

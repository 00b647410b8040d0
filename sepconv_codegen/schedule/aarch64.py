"""AArch64 (NEON) schedule space: the CPU space, with the default register tile chosen for NEON.

Pure data and arithmetic: no TVM here. The CPU schedule (tvm_backend.schedule_cpu) applies it;
targets whose `space` is "aarch64" (aarch64, cortex-a53/a72/a76, an AArch64 host) come here.

Why NEON gets its own default: the CPU default for a 32-register file (AVX-512) is 6 pixels x 2
vectors, which with 4-lane NEON vectors is a 6 x 8 tile, and LLVM compiles TVM's 6-pixel tile
with address arithmetic inside the pointwise loop. llvm-mca 14 on the pointwise inner loop TVM
0.27 emits for a 28x28x128 -> 128 layer (flop per cycle; the models' peaks are 8 and 4):

    register tile (px x oc)   4x16   4x8    2x32   2x16   6x8    8x8
    cortex-a72 model          7.7    7.0    7.7    7.0    2.9    3.3
    cortex-a53 model          2.6    2.1    2.3    2.1     -     1.2

4 pixels x 4 vectors (16 accumulators + 4 filter vectors + 1 broadcast = 21 of 32 registers) is
the best or tied for best on both: the same 16x4 shape as OpenBLAS's ARMv8 sgemm kernel. It is
an estimate of throughput, not a timing on a board.
"""

from __future__ import annotations

from dataclasses import replace

from ..spec import SeparableConv2D
from ..targets import Target
from . import cpu
from .knobs import Knobs

__all__ = ["default_knobs", "search_space"]

PIXELS, VECTORS = 4, 4  # the register tile above: 4 pixels x 4 vectors of lanes


def default_knobs(layer: SeparableConv2D, target: Target) -> Knobs:
    """The CPU default (spatial tile, loop order) with NEON's 4 x (4 vectors) register tile;
    fewer vectors when the layer has fewer output channels."""
    lanes = target.lanes(layer.dtype)
    _, _, ow, o = layer.output_shape
    vectors = max(1, min(VECTORS, -(-o // lanes)))
    base = cpu.default_knobs(layer, target)
    return replace(base, px=min(PIXELS, ow, base.tile_w), oc=vectors * lanes, vec=lanes)


def search_space(layer: SeparableConv2D, target: Target, limit: int | None = None,
                 seed: int = 0) -> list[Knobs]:
    """The CPU search space for this target (its register tiles fit 32 registers), NEON default
    first, capped at ``limit``."""
    default = default_knobs(layer, target)
    rest = [k for k in cpu.search_space(layer, target, seed=seed) if k != default]
    space = [default, *rest]
    return space[:limit] if limit else space

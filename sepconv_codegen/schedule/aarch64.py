"""AArch64 (NEON) schedule space: the CPU space, with a register tile of at most 16 accumulators.

Pure data and arithmetic: no TVM here. The CPU schedule (tvm_backend.schedule_cpu) applies it;
targets whose `space` is "aarch64" (aarch64, cortex-a53/a72/a76, an AArch64 host) come here.

The CPU default takes the register tile with the most FMAs per loaded value that fits the register
file and divides the tile. With NEON's 32 registers that can be 14 pixels x 2 vectors: 28
accumulators + 2 filter vectors + 1 broadcast, 31 of 32 registers, and the in-order Cortex-A53
loses a third of its throughput there. llvm-mca 14's estimate of the pointwise inner loop TVM 0.27
emits (flop per cycle; the models' peaks are 8 and 4; * = this default):

    layer (tile width)         tile   cortex-a72 model   cortex-a53 model
    28x28x128 -> 128 (28)      4x16*  7.7                2.6
                               7x8    8.0                2.0
                               4x8    7.0                2.1
    14x14x256 -> 256 (14)      7x8*   8.0                2.3
                               14x8   8.0                1.7
    7x7x512 -> 512 (7)         7x8*   8.0                2.3

So NEON keeps the CPU's choice among tiles of at most 16 accumulators (half the register file):
4x16 where 4 divides the tile (the 16x4 shape of OpenBLAS's ARMv8 sgemm kernel), else 7x8. These
are throughput estimates, not timings on a board. Flat tiles (runs across rows) are in the
space for tuning on a board, but not in this default: they were not part of these estimates.

Depthwise taps stay "grouped" here, where the x86 default takes "pixels" for depthwise-heavy
layers on rows (one filter load per 4 pixels; 0.89-0.95x the time on znver3). llvm-mca 14's
estimate of the two tap loops disagrees between cores: per FMA, "pixels" takes 0.63x the cycles
of "grouped" on the cortex-a72 and cortex-a76 models (load-bound: one filter and one input load
per FMA), but 1.12x on the in-order cortex-a53 (4 accumulators instead of 8 hide less of the
FMA latency). Both are in the space: tune on the board.
"""

from __future__ import annotations

from dataclasses import replace

from ..spec import SeparableConv2D
from ..targets import Target
from . import cpu
from .knobs import Knobs

__all__ = ["ACCUMULATORS", "default_knobs", "search_space"]

ACCUMULATORS = 16  # at most px * (oc / lanes) vector accumulators in the register tile


def _fmas_per_load(px: int, vectors: int) -> float:
    # Each reduction step loads `vectors` filter vectors and broadcasts `px` intermediate values.
    return px * vectors / (px + vectors)


def default_knobs(layer: SeparableConv2D, target: Target) -> Knobs:
    """The CPU default (spatial tile, packing, loop order) with the register tile that has the most
    FMAs per loaded value among those of at most 16 accumulators."""
    lanes = target.lanes(layer.dtype)
    base = cpu.default_knobs(layer, target, flat=False, pixel_taps=False)
    tiles = [
        (px, oc)
        for px, oc in cpu.register_tiles(target, lanes, base.tile_w, layer.out_channels)
        if px * (oc // lanes) <= ACCUMULATORS
    ]
    if not tiles:
        return base
    o = layer.out_channels
    px, oc = max(tiles, key=lambda t: (_fmas_per_load(t[0], t[1] // lanes) * cpu.channel_use(t[1], o), t[0]))
    return replace(base, px=px, oc=oc, vec=lanes)


def search_space(
    layer: SeparableConv2D, target: Target, limit: int | None = None, seed: int = 0
) -> list[Knobs]:
    """The CPU search space for this target (its register tiles fit 32 registers), the NEON
    default first, capped at ``limit``."""
    default = default_knobs(layer, target)
    rest = [k for k in cpu.search_space(layer, target, seed=seed) if k != default]
    space = [default, *rest]
    return space[:limit] if limit else space

"""CPU schedule spaces (x86 AVX2/AVX-512, AArch64 NEON): the default knobs and the search space.

Pure data and arithmetic: no TVM here. tvm_backend.schedule_cpu applies a point; the C emitter
reads the same knobs.
"""

from __future__ import annotations

import itertools
import random

from ..spec import SeparableConv2D
from ..targets import Target
from .knobs import Knobs

__all__ = ["default_knobs", "search_space"]


def _register_tiles(vector_registers: int, lanes: int, out_channels: int) -> list[tuple[int, int]]:
    """(px, oc) register tiles that fit the vector register file.

    The pointwise inner loop holds px * (oc/lanes) accumulators, loads oc/lanes filter vectors and
    broadcasts one intermediate value at a time, so it needs
        px * v + v + 1 <= registers,   v = oc / lanes.
    With 16 registers (AVX2) that allows 4x3, 6x2 and 14x1 vectors; with 32 (AVX-512, NEON) 6x4,
    9x3 and 14x2.
    """
    max_v = max(1, -(-out_channels // lanes))
    tiles = []
    for v in range(1, min(max_v, 4) + 1):
        px = (vector_registers - 1 - v) // v
        for p in sorted({px, max(1, px - 2), 4, 2} & set(range(1, px + 1))):
            tiles.append((p, v * lanes))
    return tiles


def default_knobs(layer: SeparableConv2D, target: Target) -> Knobs:
    """Knobs derived from the layer's shape and the target's register file, before any tuning.

    Register tile: 4 pixels x 2 vectors (4*2 + 2 + 1 = 11 registers of 16) left the most headroom
    for address arithmetic; it was the best tile on every MobileNetV1 block we timed in a grid
    (AMD EPYC znver3, 1 thread: block3 1.57 ms = 70 GFLOP/s, block1 1.11 ms = 53 GFLOP/s).
    Spatial tile: one output row of 8 pixels keeps the tile's depthwise result (8*C*M values, 32 KB
    at C*M = 1024) in L1/L2 while the pointwise step reads it once per channel block.
    Loop order: a panel of the pointwise filter is reused across the tile's pixels when the filter
    is large (C*M*O over 64K values), the depthwise rows otherwise.
    """
    lanes = target.lanes(layer.dtype)
    _, _, ow, o = layer.output_shape
    vectors = 2 if o > lanes else 1
    px = min(4 if target.vector_registers <= 16 else 6, ow)
    big_filter = layer.depthwise_channels * o > 64 * 1024
    return Knobs(
        tile_h=1,
        tile_w=min(8, ow),
        px=px,
        oc=vectors * lanes,
        vec=lanes,
        fused=True,
        order="channels_outer" if big_filter else "pixels_outer",
        unroll=True,
        pad="inline",
    )


def _spatial_tiles(size: int) -> list[int]:
    candidates = {size, 4, 7, 8, 14, 16, 28, 32, 56}
    return sorted(t for t in candidates if t <= size)


def search_space(layer: SeparableConv2D, target: Target, limit: int | None = None, seed: int = 0) -> list[Knobs]:
    """Every candidate for this layer (default first), shuffled reproducibly, capped at ``limit``."""
    lanes = target.lanes(layer.dtype)
    _, oh, ow, o = layer.output_shape
    points = set()
    for (px, oc), th, tw, order, fused, pad in itertools.product(
        _register_tiles(target.vector_registers, lanes, o),
        sorted({1, 2, 4} & set(range(1, oh + 1))) or [1],
        _spatial_tiles(ow),
        ("pixels_outer", "channels_outer"),
        (True, False),
        ("inline", "stage"),
    ):
        if px > tw or (pad == "stage" and not fused):
            continue
        points.add(Knobs(tile_h=th, tile_w=tw, px=px, oc=oc, vec=lanes, fused=fused, order=order,
                         unroll=True, pad=pad))
    default = default_knobs(layer, target)
    rest = sorted(points - {default}, key=lambda k: tuple(str(v) for v in k.to_dict().values()))
    random.Random(seed).shuffle(rest)
    space = [default, *rest]
    return space[:limit] if limit else space

"""The CPU schedule (x86 and AArch64 through LLVM): Knobs -> a TensorIR schedule of the compute.

The shape of the loop nest, for the fused variant:

    parallel for tile in (n, oh / tile_h, ow / tile_w):
        dw_local[tile_h, tile_w, C*M] = depthwise(tile)          # vectorized over C*M
        for (pixel group, channel block) in tile, in `order`:
            acc[px, oc] = 0                                      # px * oc/vec vector registers
            for r in C*M:  acc[p, :] += dw_local[p, r] * PW[r, :]
            out[...] = act(acc + bias)

The unfused variant computes the whole intermediate first (parallel over rows), then the same
pointwise nest reading it from memory.

Flat (knobs.flat): a tile is a run of tile_w row-major pixels and the register tile's px pixels
may span two rows. The compute then has a flat pixel axis padded to whole runs ("dw", "pw" over
[N, pixels, ...]); "out" is [N, OH*OW, O] while scheduling and transform_layout gives it back
its NHWC shape at the end, so the kernel's signature does not change.
oc_split: the channel blocks are split into that many chunks, fused with the tiles into the
parallel loop (the fused depthwise of a tile is then computed once per chunk).
"""

from __future__ import annotations

import numpy as np

from ..schedule.cpu import DW_PIXELS, channel_chunks, register_channels, tap_group
from ..schedule.knobs import Knobs
from ..spec import SeparableConv2D
from ._tvm import Schedule
from .compute import accumulate_dtype, separable_compute


def has_block(sch: Schedule, name: str) -> bool:
    try:
        sch.get_sblock(name)
        return True
    except Exception:  # noqa: BLE001 - TVM raises a bare error for a missing block
        return False


def split_by(sch, loop, factor: int):
    return sch.split(loop, [None, factor])


# L1 way size of current x86 and Arm cores (32-64 KB, 8-16 ways): rows of the intermediate whose
# stride is a multiple of it share one L1 set, so the register tile's 6 rows evict each other.
L1_WAY_BYTES = 4096


def _align_rows(sch: Schedule, dw, layer: SeparableConv2D, knobs: Knobs) -> None:
    """Offset the intermediate's pixel rows by one cache line when their stride is a multiple of
    the L1 way size (C*M = 1024 float32 channels, MobileNet's last block): AMD EPYC znver3,
    1 thread, 7x7x1024 -> 1024, interleaved, 0.91-0.97x the time without; 14x14x512 (2 KB rows)
    level, so it is left alone there."""
    itemsize = np.dtype(accumulate_dtype(layer.dtype)).itemsize  # float16 sums in float32
    if (layer.depthwise_channels * itemsize) % L1_WAY_BYTES:
        return
    sch.storage_align(dw, 0, 1 if knobs.flat else 2, L1_WAY_BYTES // itemsize, 64 // itemsize)


def schedule_cpu(layer: SeparableConv2D, knobs: Knobs) -> Schedule:
    """A TensorIR schedule of ``layer`` shaped by ``knobs``; raises on a schedule TVM rejects."""
    _, oh, ow, _ = layer.output_shape
    oc = register_channels(layer, knobs)
    # Flat: the intermediate and the pointwise step run over pixels padded to whole runs.
    pixels = -(-oh * ow // knobs.tile_w) * knobs.tile_w if knobs.flat else None
    sch = Schedule(separable_compute(layer, pack=oc if knobs.pack else None, pixels=pixels).prim_func())
    out, pw, dw = sch.get_sblock("out"), sch.get_sblock("pw"), sch.get_sblock("dw")

    if knobs.flat:
        px = knobs.px
        n, p, k = sch.get_loops(out)
        po, pi = split_by(sch, p, knobs.tile_w)
        pio, pii = split_by(sch, pi, px)
        tiles, groups = [n, po], [pio]
    else:
        tile_w, px = min(knobs.tile_w, ow), min(knobs.px, knobs.tile_w, ow)
        n, h, w, k = sch.get_loops(out)
        ho, hi = split_by(sch, h, min(knobs.tile_h, oh))
        wo, wi = split_by(sch, w, tile_w)
        wio, pii = split_by(sch, wi, px)
        tiles, groups = [n, ho, wo], [hi, wio]
    ko, ki = split_by(sch, k, oc)
    chunks = channel_chunks(layer, knobs)
    if chunks > 1:  # channel chunks join the tiles as parallel tasks
        kc, ko = sch.split(ko, [chunks, None])
        tiles = [kc, *tiles]
    if knobs.order == "pixels_outer":
        sch.reorder(*tiles, *groups, ko, pii, ki)
    else:
        sch.reorder(*tiles, ko, *groups, pii, ki)
    tile = sch.fuse(*tiles)
    sch.parallel(tile)
    register_tile = sch.get_loops(out)[-3]  # the loop just above (wii, ki)

    # Pointwise: accumulate the (px x oc) register tile over r, in local memory (registers).
    sch.compute_at(pw, register_tile, preserve_unit_loops=True)
    sch.set_scope(pw, 0, "local")
    pw_wii, pw_ki, pw_r = sch.get_loops(pw)[-3:]
    pw_ko, pw_kv = split_by(sch, pw_ki, knobs.vec)
    sch.reorder(pw_r, pw_wii, pw_ko, pw_kv)
    sch.vectorize(pw_kv)
    if knobs.unroll:
        sch.unroll(pw_wii)
        sch.unroll(pw_ko)

    # Epilogue (bias, activation, cast): write the register tile back, vectorized.
    out_wii, out_ki = sch.get_loops(out)[-2:]
    out_ko, out_kv = split_by(sch, out_ki, knobs.vec)
    sch.vectorize(out_kv)
    if knobs.unroll:
        sch.unroll(out_wii)

    # The intermediate: per tile in local memory (fused), or whole in global memory.
    if has_block(sch, "dw_round"):
        sch.compute_inline(sch.get_sblock("dw_round"))
    if knobs.fused:
        sch.compute_at(dw, tile, preserve_unit_loops=True)
        sch.set_scope(dw, 0, "local")
        dw_loops = sch.get_loops(dw)[1:]
    else:
        dn, dh_, *rest = sch.get_loops(dw)
        dw_loops = [sch.fuse(dn, dh_), *rest]
        sch.parallel(dw_loops[0])
    _align_rows(sch, dw, layer, knobs)
    *spatial, cm, kh, kw = dw_loops
    cmo, cmv = split_by(sch, cm, knobs.vec)
    if knobs.taps == "inner":  # all taps of one channel vector accumulate in a register
        sch.reorder(*spatial, cmo, kh, kw, cmv)
        sch.unroll(kh)
        sch.unroll(kw)
    elif knobs.taps in ("grouped", "channel_major"):  # taps outside a group of channel vectors
        vectors = -(-layer.depthwise_channels // knobs.vec)  # kept in registers
        cmo, group = sch.split(cmo, [None, tap_group(vectors)])
        if knobs.taps == "channel_major":  # the groups outside the tile's pixels, or a row's
            outer, inner = ([], spatial) if knobs.fused else (spatial[:1], spatial[1:])
            sch.reorder(*outer, cmo, *inner, kh, kw, group, cmv)
        else:
            sch.reorder(*spatial, cmo, kh, kw, group, cmv)
        sch.unroll(group)
    elif knobs.taps == "pixels":  # taps outside DW_PIXELS pixels of one channel vector
        *outer, last = spatial
        lo, li = split_by(sch, last, DW_PIXELS)
        sch.reorder(*outer, lo, cmo, kh, kw, li, cmv)
        sch.unroll(li)
    else:
        sch.reorder(*spatial, kh, kw, cmo, cmv)
    sch.vectorize(cmv)  # vectorize before decompose_reduction: the init loop copies the kind

    if has_block(sch, "pad"):
        pad = sch.get_sblock("pad")
        if knobs.pad == "stage" and knobs.fused:
            sch.compute_at(pad, tile, preserve_unit_loops=True)
            sch.set_scope(pad, 0, "local")
            *_, pad_c = sch.get_loops(pad)
            sch.vectorize(split_by(sch, pad_c, knobs.vec)[1])
        else:
            sch.compute_inline(pad)

    sch.decompose_reduction(dw, cmo if knobs.taps == "inner" else kh)
    sch.decompose_reduction(pw, pw_r)
    if knobs.flat:  # the output parameter is NHWC, as for every other kernel
        sch.transform_layout(out, ("write", 0), lambda b, p, k: (b, p // ow, p % ow, k))
    return sch

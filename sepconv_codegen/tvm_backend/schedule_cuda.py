"""The CUDA schedule: Knobs -> a TensorIR schedule of the compute, one kernel per layer.

See sepconv_codegen.schedule.cuda for what each knob means on a GPU. The loop nest:

    blockIdx (spatial tile, channel block), in `order`:
        [pad_shared[halo tile, C] = padded input]             # pad == "stage" only
        for i in ceil(tile pixels * C*M / threads):           # threadIdx.x: consecutive channels
            dw_local = sum_{kh,kw} x * dw; dw_shared[...] = dw_local
        __syncthreads()                                        # inserted by TVM
        threadIdx.x = (row, pixel group, channel group):
            acc[px, vec] = 0
            for r in C*M: acc[p, :] += dw_shared[p, r] * PW[r, k:k+vec]
            out[...] = act(acc + bias)

Registered as the "cuda" family at import; tvm_backend.schedules imports this module.
"""

from __future__ import annotations

from ..schedule.cuda import check_knobs, launch_geometry
from ..schedule.knobs import Knobs
from ..spec import SeparableConv2D
from ._tvm import Schedule
from .compute import separable_compute
from .schedule_cpu import has_block, split_by
from .schedules import register_family


def _bind_cooperative(sch: Schedule, block, anchor, threads: int, keep: int = 0):
    """Compute ``block`` per thread block (at ``anchor``) into shared memory, its elements spread
    over the block's threads, consecutive threads on consecutive channels (coalesced). The last
    ``keep`` loops (reduction loops) stay inside each thread. Returns the thread loop."""
    sch.compute_at(block, anchor, preserve_unit_loops=True)
    sch.set_scope(block, 0, "shared")
    loops = sch.get_loops(block)
    anchor_stmt = sch.get(anchor)
    depth = 1 + next(i for i, loop in enumerate(loops) if sch.get(loop).same_as(anchor_stmt))
    spatial = loops[depth : len(loops) - keep]
    _, inner = split_by(sch, sch.fuse(*spatial), threads)
    sch.bind(inner, "threadIdx.x")
    return inner


def schedule_cuda(layer: SeparableConv2D, knobs: Knobs) -> Schedule:
    """A TensorIR schedule of ``layer`` for CUDA shaped by ``knobs`` (SpecError if they misfit)."""
    check_knobs(layer, knobs)
    threads = launch_geometry(layer, knobs).threads
    sch = Schedule(separable_compute(layer).prim_func())
    out, pw, dw = sch.get_sblock("out"), sch.get_sblock("pw"), sch.get_sblock("dw")

    # The output: (spatial tile, channel block) -> blocks; (row, pixel group, channel group) ->
    # threads, channel group fastest so a warp's stores are contiguous.
    n, h, w, k = sch.get_loops(out)
    ho, hi = split_by(sch, h, knobs.tile_h)
    wo, wi = split_by(sch, w, knobs.tile_w)
    wio, wii = split_by(sch, wi, knobs.px)
    ko, ki = split_by(sch, k, knobs.oc)
    kio, kii = split_by(sch, ki, knobs.vec)
    if knobs.order == "pixels_outer":
        sch.reorder(ko, n, ho, wo, hi, wio, kio, wii, kii)
        tile = sch.fuse(n, ho, wo)
        sch.bind(tile, "blockIdx.x")
        sch.bind(ko, "blockIdx.y")
        anchor = tile
    else:
        sch.reorder(n, ho, wo, ko, hi, wio, kio, wii, kii)
        tile = sch.fuse(n, ho, wo)
        sch.bind(tile, "blockIdx.y")
        sch.bind(ko, "blockIdx.x")
        anchor = ko
    thread = sch.fuse(hi, wio, kio)
    sch.bind(thread, "threadIdx.x")

    # Pointwise: a (px x vec) register tile per thread, accumulated over r.
    sch.compute_at(pw, thread, preserve_unit_loops=True)
    sch.set_scope(pw, 0, "local")
    pw_p, pw_k, pw_r = sch.get_loops(pw)[-3:]
    sch.reorder(pw_r, pw_p, pw_k)
    sch.vectorize(pw_k)
    out_p, out_k = sch.get_loops(out)[-2:]
    sch.vectorize(out_k)
    if knobs.unroll:
        sch.unroll(pw_p)
        sch.unroll(out_p)

    # Depthwise: the tile's intermediate in shared memory. Each thread accumulates its element
    # in a register and stores it once: accumulating in shared memory makes TVM want a barrier
    # inside the predicated loop, which it cannot insert.
    if has_block(sch, "dw_round"):
        sch.compute_inline(sch.get_sblock("dw_round"))
    dw_thread = _bind_cooperative(sch, dw, anchor, threads, keep=2)
    store = sch.cache_write(dw, 0, "local")
    sch.reverse_compute_at(store, dw_thread, preserve_unit_loops=True)
    dw_kh, dw_kw = sch.get_loops(dw)[-2:]
    if knobs.unroll:
        sch.unroll(dw_kh)
        sch.unroll(dw_kw)

    if has_block(sch, "pad"):
        pad = sch.get_sblock("pad")
        if knobs.pad == "stage":
            _bind_cooperative(sch, pad, anchor, threads)
        else:
            sch.compute_inline(pad)

    sch.decompose_reduction(dw, dw_kh)
    sch.decompose_reduction(pw, pw_r)
    return sch


register_family("cuda", schedule_cuda)

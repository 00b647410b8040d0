"""The CUDA schedule space: what the shared Knobs mean on a GPU, the default, the search space and
the launch geometry that follows from a point.

Pure data and arithmetic: no TVM here. tvm_backend.schedule_cuda applies a point.

One kernel, one thread block per (spatial tile, output-channel block):

    block (tile of tile_h x tile_w output pixels, channels [ko*oc, ko*oc + oc)):
        dw_shared[tile_h, tile_w, C*M] = depthwise(tile)       # each thread a few (pixel, channel)
        __syncthreads()
        thread (pixel group, channel group):                  # channel group varies fastest
            acc[px, vec] = sum_r dw_shared[p, r] * PW[r, k:k+vec]   # vec-wide loads of PW
            out[...] = act(acc + bias)                         # vec-wide stores

Knob meanings on CUDA:

    tile_h, tile_w  output rows x columns of one thread block. Tiles are row-aligned (w is split
                    alone): fusing n, h, w before splitting makes the depthwise region non-affine
                    and TVM refuses to bind it.
    px              output pixels per thread, consecutive along w (tile_w is a multiple of px)
    oc              output channels per thread block (gridDim.y or .x covers O / oc blocks);
                    the depthwise tile is recomputed once per channel block
    vec             output channels per thread, contiguous: float4 (vec 4) or float2 loads of the
                    pointwise filter and stores of the output; O must be a multiple of vec
    fused           always True: the depthwise tile lives in shared memory and never reaches
                    global memory
    order           "pixels_outer": blockIdx.x runs over spatial tiles, so blocks resident together
                    share one channel block's pointwise-filter panel in L2; "channels_outer":
                    blockIdx.x runs over channel blocks, so they share one input tile instead
    unroll          unroll the per-thread register tile and the kernel window loops
    pad             "inline": padding is a predicate on the depthwise loads (L1 serves the reuse);
                    "stage": the padded input tile, halo included, is staged in shared memory first
                    (only offered for layers that pad)
    pack            must be false: the pointwise filter is read in TF layout (vec-wide rows)
    taps            not used: each thread accumulates its depthwise taps in a register
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass

from ..spec import SeparableConv2D, SpecError, ceil_div
from ..targets import Target
from .knobs import Knobs

__all__ = ["LaunchGeometry", "check_knobs", "default_knobs", "launch_geometry", "search_space"]

WARP = 32
MIN_THREADS, MAX_THREADS = 32, 512  # more than 512 threads cuts registers per thread below 128
SHARED_BUDGET = 48 * 1024  # static shared memory per block, every architecture


@dataclass(frozen=True)
class LaunchGeometry:
    """Grid and block of the one kernel a point compiles to, and its static shared memory."""

    grid: tuple[int, int, int]
    block: tuple[int, int, int]
    shared_bytes: int

    @property
    def threads(self) -> int:
        return self.block[0] * self.block[1] * self.block[2]

    def to_dict(self) -> dict:
        return {
            "grid": list(self.grid),
            "block": list(self.block),
            "shared_bytes": self.shared_bytes,
        }


_INPUT_BYTES = {"float16": 2, "float32": 4, "float64": 8}


def _itemsize(layer: SeparableConv2D) -> int:
    # The depthwise tile is held in the accumulation type (float32 for float16 layers).
    return 8 if layer.dtype == "float64" else 4


def _halo(layer: SeparableConv2D, tile_h: int, tile_w: int) -> tuple[int, int]:
    (kh, kw), (sh, sw), (dh, dw) = layer.kernel_size, layer.strides, layer.dilation
    return (tile_h - 1) * sh + (kh - 1) * dh + 1, (tile_w - 1) * sw + (kw - 1) * dw + 1


def _pads(layer: SeparableConv2D) -> bool:
    return any(v for pair in layer.pads for v in pair)


def shared_bytes(layer: SeparableConv2D, knobs: Knobs) -> int:
    """Static shared memory of a point: the depthwise tile, plus the input tile when staged."""
    size = knobs.tile_h * knobs.tile_w * layer.depthwise_channels * _itemsize(layer)
    if knobs.pad == "stage" and _pads(layer):
        rows, cols = _halo(layer, knobs.tile_h, knobs.tile_w)
        size += rows * cols * layer.in_channels * _INPUT_BYTES[layer.dtype]
    return size


def launch_geometry(layer: SeparableConv2D, knobs: Knobs) -> LaunchGeometry:
    """The grid and block that tvm_backend.schedule_cuda binds for ``knobs``."""
    n, oh, ow, o = layer.output_shape
    tiles = n * ceil_div(oh, knobs.tile_h) * ceil_div(ow, knobs.tile_w)
    channel_blocks = ceil_div(o, knobs.oc)
    grid = (
        (tiles, channel_blocks, 1) if knobs.order == "pixels_outer" else (channel_blocks, tiles, 1)
    )
    threads = knobs.tile_h * (knobs.tile_w // knobs.px) * (knobs.oc // knobs.vec)
    return LaunchGeometry(grid, (threads, 1, 1), shared_bytes(layer, knobs))


def check_knobs(layer: SeparableConv2D, knobs: Knobs) -> None:
    """Raise SpecError when ``knobs`` is not a CUDA point for ``layer`` (see the module doc)."""
    o = layer.out_channels
    problems = []
    if not knobs.fused:
        problems.append("fused must be true (the depthwise tile is kept in shared memory)")
    if getattr(knobs, "pack", False):
        problems.append("pack must be false (the kernel reads the pointwise filter in TF layout)")
    if knobs.vec not in (1, 2, 4) or o % knobs.vec:
        problems.append(f"vec ({knobs.vec}) must be 1, 2 or 4 and divide out_channels ({o})")
    if knobs.tile_w % knobs.px:
        problems.append(f"tile_w ({knobs.tile_w}) must be a multiple of px ({knobs.px})")
    geometry = launch_geometry(layer, knobs)
    if not 1 <= geometry.threads <= 1024:
        problems.append(f"{geometry.threads} threads per block is outside 1..1024")
    if geometry.shared_bytes > SHARED_BUDGET:
        problems.append(f"{geometry.shared_bytes} bytes of shared memory exceed {SHARED_BUDGET}")
    if problems:
        raise SpecError(
            f"knobs {knobs.tag} do not fit CUDA for {layer.name!r}: " + "; ".join(problems)
        )


def _vec(o: int, lanes: int) -> int:
    return next(v for v in (lanes, 4, 2, 1) if v <= lanes and o % v == 0)


def _tile_w(ow: int, px: int, most: int) -> int:
    """The widest row tile of at most ``most`` pixels (a multiple of px) that wastes least of a row.

    112 -> 56 (2 tiles, none wasted) rather than 64 (2 tiles, 16 of 128 columns idle).
    """
    most = max(px, min(most, ceil_div(ow, px) * px))

    def cost(tw: int) -> tuple[bool, int, int]:
        idle = ceil_div(ow, tw) * tw - ow
        return idle * 20 > ow, ceil_div(ow, tw), idle  # under 5% idle, fewest tiles, least idle

    return min(range(px, most + 1, px), key=cost)


def _spatial_tile(layer: SeparableConv2D, px: int, oc: int, vec: int) -> tuple[int, int]:
    """(tile_h, tile_w): about 256 threads, within the shared-memory budget."""
    _, oh, ow, _ = layer.output_shape
    pixel_budget = SHARED_BUDGET // (layer.depthwise_channels * _itemsize(layer))
    pixels = min(max(1, 256 // (oc // vec)) * px, max(px, pixel_budget))
    tile_w = _tile_w(ow, px, pixels)
    return max(1, min(oh, pixels // tile_w)), tile_w


def default_knobs(layer: SeparableConv2D, target: Target) -> Knobs:
    """A CUDA point derived from the layer's shape and the GPU's SM count (not measured on a GPU).

    Register tile: 4 pixels x 4 channels per thread = 16 accumulators, fed by 4 shared loads (the
    depthwise values, broadcast across the warp) and one float4 load of the pointwise filter
    per reduction step: 16 FMAs for 5 loads.
    Channel block: one warp across output channels (oc = 32 * vec = 128), so the 32 threads of a
    warp read the same depthwise value (a shared-memory broadcast, no bank conflicts) and 512
    contiguous bytes of the filter row (coalesced).
    Spatial tile: about 256 threads per block, within the 48 KB shared-memory budget (a 1024
    channel intermediate leaves room for 12 pixels).
    Small grids (batch 1 on the late 14x14 and 7x7 layers) cannot fill the GPU that way: among
    smaller channel blocks and register tiles, the point that keeps the most threads busy (up to
    512 per SM: 16 warps, each with 16 independent FMAs in flight) wins, the larger register
    tile on a tie.
    """
    _, _, ow, o = layer.output_shape
    if SHARED_BUDGET < layer.depthwise_channels * _itemsize(layer):
        raise SpecError(
            f"layer {layer.name!r}: one pixel of its depthwise result "
            f"({layer.depthwise_channels} channels) exceeds {SHARED_BUDGET} bytes "
            "of shared memory"
        )
    vec = _vec(o, target.lanes(layer.dtype))
    sms = target.gpu.multiprocessors if target.gpu else 80
    widest = min(ceil_div(o, vec) * vec, WARP * vec)
    candidates = []
    for oc in sorted({widest, widest // 2, widest // 4} - {0}, reverse=True):
        for px in sorted({min(4, ow), 2, 1} & set(range(1, ow + 1)), reverse=True):
            if oc % vec:
                continue
            tile_h, tile_w = _spatial_tile(layer, px, oc, vec)
            knobs = Knobs(
                tile_h=tile_h,
                tile_w=tile_w,
                px=px,
                oc=oc,
                vec=vec,
                fused=True,
                order="pixels_outer",
                unroll=True,
                pad="inline",
            )
            geometry = launch_geometry(layer, knobs)
            busy = min(geometry.grid[0] * geometry.grid[1] * geometry.threads, sms * 512)
            candidates.append((busy, px * vec, oc, knobs))
    return max(candidates, key=lambda c: c[:3])[3]


def search_space(
    layer: SeparableConv2D, target: Target, limit: int | None = None, seed: int = 0
) -> list[Knobs]:
    """Every CUDA point for this layer (default first), shuffled reproducibly, capped at ``limit``.

    Points that exceed the shared-memory budget or leave a block with fewer than 32 or more than
    512 threads are left out.
    """
    _, oh, ow, o = layer.output_shape
    vec_max = _vec(o, target.lanes(layer.dtype))
    points = set()
    for vec, px, oc_threads, th, tw, order, unroll, pad in itertools.product(
        sorted({vec_max, 1} | ({2} if vec_max >= 2 else set())),
        sorted({1, 2, 4} & set(range(1, ow + 1))),
        (8, 16, 32, 64),
        sorted({1, 2, 4} & set(range(1, oh + 1))),
        sorted({4, 7, 8, 14, 16, 28, 32, 56, ow}),
        ("pixels_outer", "channels_outer"),
        (True, False),
        ("inline", "stage") if _pads(layer) else ("inline",),
    ):
        oc = oc_threads * vec
        if tw % px or tw > ceil_div(ow, px) * px or oc > ceil_div(o, vec) * vec * 2:
            continue
        knobs = Knobs(
            tile_h=th,
            tile_w=tw,
            px=px,
            oc=oc,
            vec=vec,
            fused=True,
            order=order,
            unroll=unroll,
            pad=pad,
        )
        geometry = launch_geometry(layer, knobs)
        if (
            MIN_THREADS <= geometry.threads <= MAX_THREADS
            and geometry.shared_bytes <= SHARED_BUDGET
        ):
            points.add(knobs)
    default = default_knobs(layer, target)
    rest = sorted(points - {default}, key=lambda k: tuple(str(v) for v in k.to_dict().values()))
    random.Random(seed).shuffle(rest)
    space = [default, *rest]
    return space[:limit] if limit else space

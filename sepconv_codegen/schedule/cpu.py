"""CPU schedule spaces (x86 AVX2/AVX-512, AArch64 NEON): the default knobs and the search space.

Pure data and arithmetic: no TVM here. tvm_backend.schedule_cpu applies a point; the C emitter
reads the same knobs.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import replace

import numpy as np

from ..spec import SeparableConv2D
from ..targets import Target
from .knobs import TAP_ORDERS, Knobs

__all__ = ["DW_PIXELS", "TAP_GROUP", "channel_chunks", "channel_use", "default_knobs", "flat_tiles", "parallel_tasks",
           "register_channels", "register_tiles", "search_space", "tap_group"]

# The default splits the output channels into chunks until there are this many parallel tasks;
# the space offers chunks to points with fewer than SPLIT_BELOW_TASKS tiles. Points with a single
# task (a kernel that leaves every core but one idle) are left out of the space.
DEFAULT_TASKS = 8
SPLIT_BELOW_TASKS = 16
# Pointwise filters above this many bytes take the channel panels outside the pixels in the
# default (AMD EPYC znver3 VM, shared L3, 1 thread, interleaved: 10x10x1536 -> 2048, a 12.6 MB
# filter, one run of 100 pixels 7.95 ms against 9.8-25.6 ms for pixels_outer in three runs minutes
# apart, ONNX Runtime 9.4 ms; 10x10x1024 -> 1536, 6.3 MB, and 7x7x1024 -> 1024, 4 MB, stay faster
# with pixels_outer: 3.76 against 4.10 ms, 1.38 against 1.47 ms).
HUGE_FILTER_BYTES = 8 * 2**20
L1_BYTES = 32 * 1024  # L1 data cache of current x86 cores (AMD Zen 2-4, Intel since Skylake: 32-48 KB)
# Channel vectors whose depthwise sums stay in registers across the taps ("grouped"): 8 of the 16
# AVX2 registers, the rest for inputs. AMD EPYC znver3, 1 thread, 56x56x128 (block 3), interleaved
# against taps="outer": groups of 4 took 1.12x the time, 8 0.96x, 12 1.05x, 16 0.98x.
TAP_GROUP = 8
# Pixels along the row whose depthwise sums stay in registers across the taps (taps="pixels"), one
# channel vector at a time: each filter vector loaded serves this many pixels.
DW_PIXELS = 4


def tap_group(vectors: int) -> int:
    """Channel vectors per group of taps="grouped": TAP_GROUP, or the largest divisor of the
    vectors from 4 up to it, so that no group is partial (a partial group tests its channels in
    the innermost loop: 56x56x144 -> 40, 5x5, stride 2, 18 vectors, 1 thread, groups of 8
    0.57 ms, of 6 0.32 ms)."""
    if vectors <= TAP_GROUP:
        return vectors
    divisors = [d for d in range(4, TAP_GROUP + 1) if vectors % d == 0]
    return max(divisors) if divisors else TAP_GROUP


def _divisors(n: int, limit: int) -> list[int]:
    return [d for d in range(1, min(n, limit) + 1) if n % d == 0]


def _channel_tiles(lanes: int, out_channels: int) -> list[tuple[int, int]]:
    """(vectors, oc) for register tiles of 1-4 vectors, up to the tile that covers the output
    channels. Where oc does not divide them, the packed pointwise step computes the last block
    whole, over zero filter channels (compute.py), so no register tile has a channel test."""
    max_v = max(1, -(-out_channels // lanes))
    return [(v, v * lanes) for v in range(1, min(max_v, 4) + 1)]


def channel_use(oc: int, out_channels: int) -> float:
    """The share of the computed output channels that are real: blocks of oc cover O rounded up."""
    return out_channels / (-(-out_channels // oc) * oc)


def ragged(oc: int, out_channels: int) -> bool:
    """Whether the channel blocks of oc leave a partial last block (that only packing computes
    without a test in the reduction loop)."""
    return oc < out_channels and out_channels % oc != 0


def register_tiles(target: Target, lanes: int, tile_w: int, out_channels: int) -> list[tuple[int, int]]:
    """(px, oc) register tiles that fit the vector register file and leave no ragged tail.

    The pointwise inner loop holds px * v accumulators (v = oc / lanes vectors), loads v filter
    vectors and broadcasts one intermediate value at a time, so it needs
        px * v + v + 1 <= registers.
    With 16 registers (AVX2): 7x1, 6x2 (4x2), 4x3; with 32 (AVX-512, NEON): 14x2, 9x3, 6x4.
    px must divide the tile width: a tail there is a predicate inside the reduction loop, which
    keeps accumulators in memory (2-4x slower). oc need not divide the output channels (see
    _channel_tiles).
    """
    tiles = []
    for v, oc in _channel_tiles(lanes, out_channels):
        budget = (target.vector_registers - 1 - v) // v
        for px in _divisors(tile_w, budget):
            if px >= min(4, tile_w) or px == tile_w:
                tiles.append((px, oc))
    return tiles or [(1, lanes)]


# Outputs of at least this many pixels take the longest flat run: its padding (under 64 pixels)
# is then at most 1% of the output. Smaller outputs take the run with the least padding.
# (AMD EPYC znver3, 147x147x64 -> 128, interleaved: runs of 60 pixels took 0.89-0.92x the time of
# runs of 18, the least padding, on 1 thread; on 56x56 and 74x74 outputs longer runs were level.)
LONG_RUNS_FROM = 6400


def _padded_share(pixels: int, run: int) -> float:
    """Computed pixels over output pixels for runs of ``run``; 1.0 for every run on an output of
    LONG_RUNS_FROM pixels or more, where the padding does not count and the longest run wins."""
    if pixels >= LONG_RUNS_FROM:
        return 1.0
    return -(-pixels // run) * run / pixels


def _flat_runs(pixels: int, px: int) -> list[int]:
    """Runs of pixels for a flat tile with a px-pixel register tile, the two with the least
    padding (on large outputs, the two longest) that still split the output into at least two
    tiles (so a second core has work)."""
    whole = -(-pixels // px) * px
    runs = [r for r in range(px, 65, px) if r >= 16 and r < whole] or [whole]
    runs.sort(key=lambda r: (_padded_share(pixels, r), -r))
    return runs[:2]


def flat_tiles(target: Target, lanes: int, pixels: int, out_channels: int) -> list[tuple[int, int, int]]:
    """(run, px, oc) for flat tiles: the register tile runs along the row-major pixels, so px no
    longer has to divide the width (7- and 14-wide outputs get 4 x 2 vectors instead of 7 x 1).
    Same register budget as register_tiles; px from 4 up, at most 8."""
    tiles = []
    for v, oc in _channel_tiles(lanes, out_channels):
        budget = min(8, (target.vector_registers - 1 - v) // v)
        for px in range(min(4, pixels), budget + 1):
            tiles.extend((run, px, oc) for run in _flat_runs(pixels, px))
    return tiles


def register_channels(layer: SeparableConv2D, knobs: Knobs) -> int:
    """Output channels of the register tile: knobs.oc, capped at O rounded up to a vector."""
    return min(knobs.oc, -(-layer.out_channels // knobs.vec) * knobs.vec)


def channel_chunks(layer: SeparableConv2D, knobs: Knobs) -> int:
    """The output-channel chunks a schedule makes: the most, up to knobs.oc_split, that divide
    the register tile's channel blocks evenly."""
    blocks = -(-layer.out_channels // register_channels(layer, knobs))
    return max(d for d in range(1, knobs.oc_split + 1) if blocks % d == 0)


def parallel_tasks(layer: SeparableConv2D, knobs: Knobs) -> int:
    """Parallel tasks of the pointwise loop nest: tiles (over the batch too) x channel chunks."""
    n, oh, ow, _ = layer.output_shape
    if knobs.flat:
        tiles = -(-oh * ow // knobs.tile_w)
    else:
        tiles = -(-oh // min(knobs.tile_h, oh)) * -(-ow // min(knobs.tile_w, ow))
    return n * tiles * channel_chunks(layer, knobs)


def _oc_splits(layer: SeparableConv2D, knobs: Knobs) -> list[int]:
    """The oc_split values among 1, 2, 4 that this register tile's channel blocks allow."""
    return [s for s in (1, 2, 4) if channel_chunks(layer, replace(knobs, oc_split=s)) == s]


def _tile_widths(ow: int) -> list[int]:
    widths = [d for d in _divisors(ow, 112) if d >= 4 or d == ow]
    return widths[-4:]  # the widest few: narrow tiles redo the depthwise halo for little gain


def _score(knobs: Knobs, out_channels: int) -> tuple:
    """Preference among register tiles: most FMAs per loaded value, counting only those on real
    output channels, then more pixels."""
    v = knobs.oc // knobs.vec
    return (knobs.px * v / (knobs.px + v) * channel_use(knobs.oc, out_channels), knobs.px)


def _useful(knobs: Knobs, pixels: int) -> float:
    """The share of the computed pixels that are output pixels: a flat tile computes its pixel
    axis padded to whole runs."""
    if not knobs.flat:
        return 1.0
    return 1 / _padded_share(pixels, knobs.tile_w)


def _flat_score(knobs: Knobs, pixels: int, out_channels: int) -> tuple:
    fmas_per_load, px = _score(knobs, out_channels)
    return (fmas_per_load * _useful(knobs, pixels), px)


def depthwise_heavy(layer: SeparableConv2D) -> bool:
    """Whether the depthwise step is at least an eighth of the multiply-adds (KH*KW per output
    channel of the pointwise step: a 3x3 layer with at most 72 output channels)."""
    kh, kw = layer.kernel_size
    return 8 * kh * kw >= layer.out_channels


def default_knobs(layer: SeparableConv2D, target: Target, flat: bool = True, pixel_taps: bool = True) -> Knobs:
    """Knobs derived from the layer's shape and the target's register file, before any tuning.

    Register tile: the tile with the most FMAs per loaded value among those that fit the register
    file and divide the tile (register_tiles): 4 px x 2 vectors = 11 of 16 ymm registers on AVX2
    where the width allows it, 7x1 along a 7- or 14-wide row (14x1 would take all 16 registers,
    and spilled). Where a flat tile (flat_tiles) scores higher, it is taken: 6 px x 2 vectors on
    runs of row-major pixels, the padding up to whole runs computed and dropped (AMD EPYC
    znver3, 1 thread, 14x14x512 -> 512: 7x1 along rows 49 GFLOP/s, flat 4x2 65, flat 6x2 on
    18-pixel runs 63-83 as the machine's speed drifted; 7x7x1024 -> 1024: 50 -> 56-59).
    A flat tile's score is scaled by the share of its computed pixels that are output pixels:
    a 7x7 output takes 5 px on runs of 25 (50 computed pixels), not 6 px on runs of 18 (54),
    which took 0.92x the time (same machine, 1 and 2 threads, 7x7x1024 -> 1024).
    flat=False keeps the tile along rows (the NEON default, whose choice rests on estimates made
    for row tiles); pixel_taps=False keeps depthwise-heavy layers on taps="grouped" (the NEON
    default: taps="pixels" was timed on x86 only).
    Depthwise-heavy layers (depthwise_heavy: 3x3 with at most 72 output channels) keep the tile
    along rows when a 2-vector register tile divides the row, and are not fused: the depthwise
    step then runs over whole rows without the per-pixel index arithmetic of flat runs or the
    per-tile start-up of a fused tile (same machine, 112x112x32 -> 64, against its tuned
    record: flat and fused 1.32x the time on 1 thread, along rows and fused 1.12x, along rows
    and not fused 1.01x).
    Output channels that no 2-vector block divides (Xception's 728 = 91 vectors of 8) keep the
    2-vector tile: the packed pointwise step computes the last block whole over zero filter
    channels, and the score counts only the real channels (same machine, 19x19x728 -> 728,
    1 thread: one vector per tile, as when blocks had to divide O, 10.3 ms; 6 px x 2 vectors
    5.2 ms; ONNX Runtime 5.4-5.7 ms).
    Parallel tasks: with fewer than 8 tiles the output channels are split into 2 or 4 chunks
    (oc_split) so that every core gets an equal share (same machine, 2 threads, 7x7x1024: three
    tiles 0.52 ms, three tiles x 2 chunks 0.44 ms).
    Spatial tile: one row (up to 56 pixels): the tile's depthwise result (tile_w*C*M values, 56 KB
    at 56x256) stays in L2 while each channel block of the pointwise step reads it.
    Packing, loop order and depthwise taps: the pointwise filter is packed into panels, the
    register tile walks the channel blocks inside each pixel group (pixels_outer), and the
    depthwise taps are walked outside groups of 8 channel vectors whose sums stay in registers
    (taps="grouped"). Against the tuned records of MobileNetV1's blocks 2-5 and 7 (same machine,
    1 and 2 threads, interleaved, two runs), the earlier default (packing only filters of 64K
    values or more, channels_outer for those, taps="outer") took 1.01-1.15x the time; this one
    0.97-1.05x.
    """
    lanes = target.lanes(layer.dtype)
    _, oh, ow, o = layer.output_shape
    pixels = oh * ow
    tile_w = max(d for d in _divisors(ow, 56))
    if tile_w < 4:
        tile_w = ow
    def fits(px: int, oc: int) -> bool:
        # One register short of the file: the 16th of 16 (14x1 on 14-wide layers) made LLVM spill.
        # A tile that holds every output channel may take all 16: 4 px x 3 vectors on 24 channels
        # (same machine, 56x56x144 -> 24, 1 thread: 0.47 ms against 0.57 for 4 x 2 vectors over
        # 32 computed channels). On 512 channels 4 x 3 took 1.0-1.14x the time of 6 x 2.
        spare = 1 if oc >= o else 2
        return px * (oc // lanes) + oc // lanes + spare <= target.vector_registers

    candidates = [Knobs(tile_h=1, tile_w=tile_w, px=px, oc=oc, vec=lanes)
                  for px, oc in register_tiles(target, lanes, tile_w, o) if fits(px, oc)]
    candidates = candidates or [Knobs(tile_h=1, tile_w=tile_w, px=1, oc=lanes, vec=lanes)]
    best = max(candidates, key=lambda k: _score(k, o))
    heavy = depthwise_heavy(layer)
    rows_suffice = heavy and best.oc >= 2 * lanes
    flat_points = [Knobs(tile_h=1, tile_w=run, px=px, oc=oc, vec=lanes, flat=True)
                   for run, px, oc in flat_tiles(target, lanes, pixels, o) if fits(px, oc)] if flat else []
    if flat_points and not rows_suffice:
        # the first run of the best tile on a tie: _flat_runs orders them
        best_flat = max(flat_points, key=lambda k: _flat_score(k, pixels, o))
        if _flat_score(best_flat, pixels, o) > _score(best, o):
            best = best_flat
    # Groups of taps need a divisor of the channel vectors (tap_group); without one (13 vectors:
    # 100 channels) the taps go outside every vector instead (same machine, 35x35x100 -> 300,
    # interleaved: 0.86-0.87x the time of grouped with a partial group, on 1 and 2 threads).
    vectors = -(-layer.depthwise_channels // lanes)
    taps = "grouped" if vectors % tap_group(vectors) == 0 else "outer"
    kh, kw = layer.kernel_size
    itemsize = np.dtype(layer.dtype).itemsize
    if taps == "grouped" and kh * kw >= 25 and 2 * kh * kw * layer.depthwise_channels * itemsize > L1_BYTES:
        # A pixel's taps over all channels, and the filter, overflow L1: walk one channel group
        # over the pixels at a time (same machine, interleaved, 1 and 2 threads: 28x28x240 -> 80,
        # 5x5, 0.74-0.81x the time; 56x56x144 -> 40, 5x5 stride 2, 0.96-0.99x; on 3x3 layers
        # (56x56x128, 14x14x512, 112x112x96, 33x33x320) it took 1.03-1.36x, so they keep "grouped").
        taps = "channel_major"
    if pixel_taps and heavy and not best.flat and best.tile_w % DW_PIXELS == 0:
        # Depthwise-heavy layers on row tiles: "grouped" loads a filter vector for every input
        # vector (two loads per FMA, load-bound); here one filter load serves DW_PIXELS pixels
        # (same machine, interleaved, 1 and 2 threads, against grouped or channel_major: 0.89-0.95x
        # the time on 112x112x32 -> 64, MobileNetV2's 112x112x96 s2 -> 24, 56x56x144 -> 24 and
        # 28x28x192 -> 32, the 5x5 28x28x240 -> 80 and 56x56x144 s2 -> 40, the RGB stem with
        # multiplier 8; 1 vector x 4 pixels beat 2 x 4, 1 x 8 and 1 x 2. On flat runs it took
        # 1.07-1.29x (the row and column of each pixel are recomputed per pixel and tap), and
        # on 56x56x128 -> 128 rows, not depthwise-heavy, 1.00-1.02x).
        taps = "pixels"
    knobs = Knobs(tile_h=1, tile_w=best.tile_w, px=best.px, oc=best.oc, vec=lanes, fused=not heavy,
                  order="pixels_outer", unroll=True, pad="inline", pack=True, taps=taps,
                  flat=best.flat)
    if layer.depthwise_channels * o * itemsize > HUGE_FILTER_BYTES and flat:
        # Each pixel group of pixels_outer reads the whole filter: one that falls out of the
        # last-level cache then streams from memory once per px pixels. Channel panels outside
        # one run of up to 100 pixels read it about once per call.
        run = knobs.px * -(-min(pixels, 100) // knobs.px)
        knobs = replace(knobs, order="channels_outer", flat=True, tile_w=run)
    splits = _oc_splits(layer, knobs)
    enough = [s for s in splits if parallel_tasks(layer, knobs) * s >= DEFAULT_TASKS]
    split = min(enough) if enough else max(splits)
    # A fused tile split into channel chunks computes its depthwise step once per chunk: 1.10x
    # the time with 2 chunks, 1.21-1.23x with 4, against 1.03-1.08x not fused (AMD EPYC znver3,
    # 1 and 2 threads, 7x7x1024 -> 1024, against its one-chunk tuned record).
    return replace(knobs, oc_split=split, fused=knobs.fused and split == 1)


def search_space(layer: SeparableConv2D, target: Target, limit: int | None = None, seed: int = 0) -> list[Knobs]:
    """Every candidate for this layer (default first), shuffled reproducibly, capped at ``limit``."""
    lanes = target.lanes(layer.dtype)
    n, oh, ow, o = layer.output_shape
    points = set()
    for tw in _tile_widths(ow):
        for (px, oc), th, order, fused, pad, pack, taps in itertools.product(
            register_tiles(target, lanes, tw, o),
            [d for d in _divisors(oh, 8) if d in (1, 2, 4, 7, 8)] or [1],
            ("pixels_outer", "channels_outer"),
            (True, False),
            ("inline", "stage"),
            (True, False),
            TAP_ORDERS,
        ):
            if (pad == "stage" and not fused) or (ragged(oc, o) and not pack):
                continue
            points.add(Knobs(tile_h=th, tile_w=tw, px=px, oc=oc, vec=lanes, fused=fused, order=order,
                             unroll=True, pad=pad, pack=pack, taps=taps))
    for (run, px, oc), order, fused, pack, taps in itertools.product(
        flat_tiles(target, lanes, oh * ow, o),
        ("pixels_outer", "channels_outer"),
        (True, False),
        (True, False),
        [t for t in TAP_ORDERS if t != "pixels"],  # 1.07-1.29x the time of grouped on flat runs
    ):
        if ragged(oc, o) and not pack:  # a channel test in the reduction loop: 2-4x slower
            continue
        points.add(Knobs(tile_h=1, tile_w=run, px=px, oc=oc, vec=lanes, fused=fused, order=order,
                         unroll=True, pad="inline", pack=pack, taps=taps, flat=True))
    for k in list(points):  # few tiles: channel chunks as extra parallel tasks
        if parallel_tasks(layer, k) < SPLIT_BELOW_TASKS:
            points.update(replace(k, oc_split=s) for s in _oc_splits(layer, k)[1:])
    points = {k for k in points if parallel_tasks(layer, k) >= min(2, n * oh * ow)}
    default = default_knobs(layer, target)
    rest = sorted(points - {default}, key=lambda k: tuple(str(v) for v in k.to_dict().values()))
    random.Random(seed).shuffle(rest)
    space = [default, *rest]
    return space[:limit] if limit else space

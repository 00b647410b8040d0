"""The plan of one C kernel: every number the templates print, worked out here.

Templates only fill in these values; tile arithmetic (clamping tiles to the output, which register
tile sizes occur at the edges, the scratch size) lives in this module so it can be tested and read
in one place.

The C path reads these knobs: tile_h, tile_w (spatial tile of the fused loop), px, oc (register
tile of the pointwise step), fused and order; ``vec`` only constrains ``oc``. Every other knob
(unroll, pad, pack, taps, flat) steers the TVM schedules only: the C register tiles are always unrolled,
padding is always handled by clamping each output pixel's range of filter taps to the input, and
since a C kernel receives its filter on every call, it packs filter panels per tile (below).

order "channels_outer" copies one panel of the pointwise filter (C*M rows x oc columns) into
scratch per tile and runs every pixel of the tile past it. Read in place, a panel's rows lie O
floats apart (4 KB at O = 1024), so they fall into a handful of L1/L2 cache sets and miss every
time; the contiguous copy stays in cache. "pixels_outer" reads the filter in place (no panel).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..naming import kernel_name
from ..schedule.knobs import Knobs
from ..spec import SeparableConv2D, SpecError

__all__ = [
    "FLOAT_BYTES",
    "INTRINSIC_PATHS",
    "IntrinsicPath",
    "KernelPlan",
    "c_knobs",
    "default_c_knobs",
    "make_plan",
    "peak_ram_bytes",
]

FLOAT_BYTES = 4
# The emitted C indexes with size_t and offsets pointers with ptrdiff_t: an array of more bytes
# than a 64-bit ptrdiff_t holds has no valid C (its size macro is no integer constant at all).
MAX_ARRAY_BYTES = 2**63 - 1


@dataclass(frozen=True)
class IntrinsicPath:
    """An ISA whose register tiles are written in intrinsics (templates/_tile_<name>.c.j2).

    The generated file selects it when the compiler's predefined macros satisfy ``condition``
    (and -DSEPCONV_GENERIC is not given); otherwise the portable C body is compiled.
    """

    name: str
    description: str
    condition: str
    header: str
    lanes: int

    @property
    def macro(self) -> str:
        return f"USE_{self.name.upper()}"

    def offsets(self, channels: int) -> tuple[int, ...]:
        """Offsets of the vectors in a register tile row of ``channels`` floats."""
        return tuple(range(0, channels, self.lanes))


INTRINSIC_PATHS = (
    IntrinsicPath(
        "avx2",
        "AVX2+FMA (x86-64, -mavx2 -mfma or -march=native)",
        "defined(__AVX2__) && defined(__FMA__)",
        "immintrin.h",
        lanes=8,
    ),
    IntrinsicPath(
        "neon",
        "NEON (AArch64)",
        "defined(__ARM_NEON) && defined(__aarch64__)",
        "arm_neon.h",
        lanes=4,
    ),
)


# Bound on one tile's intermediate (the fused scratch): small enough to stay in a desktop core's
# L2 cache (512 KB on Zen 3) beside a filter panel while every channel block reads it.
TILE_BUDGET_BYTES = 128 * 1024
# Pixels per tile that amortise the panel copy: every tile copies the whole filter (C*M*O values,
# read O floats apart, about a cycle each) and then does P*C*M*O multiply-adds (16 a cycle with
# AVX2 FMA), so the copy costs about 16/P of the work: P = 64 keeps it near a quarter, P = 28
# (the most a 7x7 output allows, below) near half. Measured on MobileNetV1's 7x7x1024 block
# (znver3, 1 thread): 3.9 ms with 3x7 tiles, 2.8 ms with 4x7.
TILE_PIXELS = 64


def default_c_knobs(layer: SeparableConv2D) -> Knobs:
    """Knobs for the C kernel when none are given, derived from the layer's shape.

    Register tile px=6 pixels x oc=16 channels: with AVX2 that is 6*2 accumulators + 2 filter
    vectors + 1 broadcast = 15 of the 16 ymm registers, 12 FMAs for 8 loads per step, so the
    FMA units rather than the load ports set the pace (4x16 ran at 0.66x the speed of 6x16 on
    MobileNetV1's 14x14x512 block, znver3); with NEON 6*4 + 4 + 1 = 29 of 32 registers. Layers with
    fewer output channels get oc=8 or 4, so that most channels still take a vector path.
    Spatial tile: whole output rows (up to 128 pixels wide), as many as make TILE_PIXELS pixels,
    as long as the tile's intermediate fits TILE_BUDGET_BYTES and the scratch (tile + filter
    panel) stays below the whole intermediate, so that fusing saves RAM. MobileNetV1 at
    224: 1x112 at 112x112, 2x56 at 56x56, 3x28 at 28x28, 4-5 x14 at 14x14, 4x7 at 7x7.
    Loop order channels_outer: a packed filter panel per tile (see the module docstring); on
    outputs of at most one row + oc pixels (3x3 at MobileNetV1-0.25 on 96x96), where the panel
    alone outweighs what fusing saves, pixels_outer (no panel), so that the scratch is never
    above the whole intermediate. The other knobs keep their defaults: the C path does not read
    them.
    """
    n, oh, ow, out_channels = layer.output_shape
    pixel_bytes = layer.depthwise_channels * FLOAT_BYTES
    oc = 16 if out_channels >= 16 else 8 if out_channels >= 8 else 4
    tile_w = max(1, min(ow, 128, TILE_BUDGET_BYTES // pixel_bytes))
    tile_h = max(1, min(-(-TILE_PIXELS // tile_w), TILE_BUDGET_BYTES // (pixel_bytes * tile_w)))
    while tile_h > 1 and tile_h * tile_w + oc >= n * oh * ow:  # scratch below the intermediate
        tile_h -= 1
    panel_pays = tile_h * tile_w + oc < n * oh * ow
    return Knobs(
        tile_h=tile_h,
        tile_w=tile_w,
        px=min(6, tile_w),
        oc=oc,
        vec=min(8, oc),
        fused=True,
        order="channels_outer" if panel_pays else "pixels_outer",
    )


def c_knobs(layer: SeparableConv2D, overrides: dict | None = None) -> Knobs:
    """The C defaults for ``layer`` with some knobs replaced, e.g. ``{"fused": False}``."""
    if overrides is None:
        return default_c_knobs(layer)
    if not isinstance(overrides, dict):
        raise SpecError(
            f"knob overrides must be a mapping of knob names to values, got {overrides!r}"
        )
    knobs = {**default_c_knobs(layer).to_dict(), **overrides}
    if "oc" in overrides and "vec" not in overrides and isinstance(overrides["oc"], int):
        knobs["vec"] = math.gcd(overrides["oc"], 8)  # the C does not read vec: let it divide oc
    return Knobs.from_dict(knobs)


@dataclass(frozen=True)
class KernelPlan:
    """What one emitted kernel does and how, in the numbers its templates print.

    tile_h, tile_w    the spatial tile, clamped to the output
    px, oc            the register tile: px consecutive pixels x oc output channels
    pixel_counts      every number of pixels a register tile covers (px, and the shorter tiles at
                      the end of a run of pixels), largest first: one specialised function each;
                      empty when no output channels are left for whole register tiles
    full_channels     output channels covered by whole oc blocks; the rest (fewer than oc) go
                      through the generic edge tile
    panel_floats      scratch for the packed filter panel (C*M x oc, channels_outer), else 0
    intermediate_floats  scratch for the intermediate: one tile when fused, all of it if not
    """

    function: str
    layer: SeparableConv2D
    knobs: Knobs
    tile_h: int
    tile_w: int
    px: int
    oc: int
    pixel_counts: tuple[int, ...]
    full_channels: int
    panel_floats: int
    intermediate_floats: int

    @property
    def fused(self) -> bool:
        return self.knobs.fused

    @property
    def flat_tiles(self) -> bool:
        """Tiles span whole output rows: the pointwise step sees each as one run of pixels."""
        return self.tile_w == self.layer.output_shape[2]

    @property
    def channels_outer(self) -> bool:
        return self.knobs.order == "channels_outer"

    @property
    def packs_panel(self) -> bool:
        return self.panel_floats > 0

    @property
    def scratch_floats(self) -> int:
        """The scratch buffer: [panel_floats][intermediate_floats]."""
        return self.panel_floats + self.intermediate_floats

    @property
    def scratch_bytes(self) -> int:
        return self.scratch_floats * FLOAT_BYTES

    @property
    def edge_channels(self) -> int:
        return self.layer.out_channels - self.full_channels

    @property
    def intrinsic_paths(self) -> tuple[IntrinsicPath, ...]:
        """The ISAs whose vectors tile a register tile row exactly (oc a multiple of the lanes)."""
        return tuple(path for path in INTRINSIC_PATHS if self.oc % path.lanes == 0)

    @property
    def depthwise_block(self) -> int:
        """Input channels whose depthwise sums stay in registers across all taps: about 16
        accumulators (2 AVX2 or 4 NEON vectors), depthwise_block * M of them."""
        return min(self.layer.in_channels, max(1, 16 // self.layer.channel_multiplier))

    @property
    def depthwise_rest(self) -> int:
        return self.layer.in_channels % self.depthwise_block

    @property
    def constants(self) -> dict[str, int]:
        """The geometry the C source names (as macros local to the file), in print order."""
        layer = self.layer
        n, h, w, c = layer.input_shape
        _, oh, ow, o = layer.output_shape
        (kh, kw), (sh, sw), (dh, dw) = layer.kernel_size, layer.strides, layer.dilation
        (pad_top, _), (pad_left, _) = layer.pads
        return {
            "BATCH": n,
            "IN_H": h,
            "IN_W": w,
            "IN_C": c,
            "MULTIPLIER": layer.channel_multiplier,
            "DW_C": layer.depthwise_channels,
            "DW_BLOCK": self.depthwise_block,
            "OUT_H": oh,
            "OUT_W": ow,
            "OUT_C": o,
            "KERNEL_H": kh,
            "KERNEL_W": kw,
            "STRIDE_H": sh,
            "STRIDE_W": sw,
            "DILATION_H": dh,
            "DILATION_W": dw,
            "PAD_TOP": pad_top,
            "PAD_LEFT": pad_left,
            "TILE_H": self.tile_h,
            "TILE_W": self.tile_w,
            "TILE_PX": self.px,
            "TILE_OC": self.oc,
            "FULL_C": self.full_channels,
            # Row stride of the filter the register tiles read: the packed panel's, or the filter's.
            "FILTER_STRIDE": self.oc if self.packs_panel else o,
        }


def _pixel_runs(out_h: int, out_w: int, tile_h: int, tile_w: int) -> set[int]:
    """Lengths of the runs of consecutive pixels the pointwise step walks in register tiles.

    A tile as wide as the output is one run of tile_h * out_w pixels (its rows are consecutive in
    the intermediate and in the output); a narrower tile is tile_h runs of tile_w pixels.
    """
    if tile_w == out_w:
        return {tile_h * out_w, out_h % tile_h * out_w} - {0}
    return {tile_w, out_w % tile_w} - {0}


def _pixel_counts(runs: set[int], px: int) -> tuple[int, ...]:
    """Register tile widths that occur: whole px groups and the remainder of each run."""
    counts = set()
    for length in runs:
        if length >= px:
            counts.add(px)
        if length % px:
            counts.add(length % px)
    return tuple(sorted(counts, reverse=True))


def make_plan(layer: SeparableConv2D, knobs: Knobs | None = None) -> KernelPlan:
    """The plan for ``layer`` with ``knobs`` (None: :func:`default_c_knobs`)."""
    if not isinstance(layer, SeparableConv2D):
        raise SpecError(f"layer must be a SeparableConv2D, got {type(layer).__name__}")
    if layer.dtype != "float32":
        raise SpecError(
            f"layer {layer.name!r} has dtype {layer.dtype!r}: "
            "the C backend emits float32 kernels only"
        )
    if knobs is None:
        knobs = default_c_knobs(layer)
    elif not isinstance(knobs, Knobs):
        raise SpecError(f"knobs must be a Knobs, got {type(knobs).__name__}")
    n, oh, ow, out_channels = layer.output_shape
    tile_h, tile_w = min(knobs.tile_h, oh), min(knobs.tile_w, ow)
    runs = _pixel_runs(oh, ow, tile_h, tile_w)
    px = min(knobs.px, max(runs))
    intermediate_pixels = tile_h * tile_w if knobs.fused else n * oh * ow
    full_channels = out_channels - out_channels % knobs.oc
    packs_panel = knobs.order == "channels_outer" and full_channels > 0
    plan = KernelPlan(
        function=kernel_name(layer, "c", knobs),
        layer=layer,
        knobs=knobs,
        tile_h=tile_h,
        tile_w=tile_w,
        px=px,
        oc=knobs.oc,
        pixel_counts=_pixel_counts(runs, px) if full_channels else (),
        full_channels=full_channels,
        panel_floats=layer.depthwise_channels * knobs.oc if packs_panel else 0,
        intermediate_floats=intermediate_pixels * layer.depthwise_channels,
    )
    _check_c_sizes(plan)
    return plan


def _check_c_sizes(plan: KernelPlan) -> None:
    """Refuse a plan whose arrays (tensors or scratch) hold more bytes than the emitted C can
    address, naming the layer and the array, before anything is written."""
    layer = plan.layer
    for what, shape in (
        ("input", layer.input_shape),
        ("depthwise filter", layer.depthwise_filter_shape),
        ("pointwise filter", layer.pointwise_filter_shape),
        ("output", layer.output_shape),
        ("scratch", (plan.scratch_floats,)),
    ):
        size = math.prod(shape) * FLOAT_BYTES
        if size > MAX_ARRAY_BYTES:
            raise SpecError(
                f"layer {layer.name!r}: its {what} {tuple(shape)} takes {size} bytes, more than "
                f"the {MAX_ARRAY_BYTES} a C pointer offset (64-bit ptrdiff_t) reaches"
            )


def peak_ram_bytes(plan: KernelPlan) -> dict[str, int]:
    """RAM the layer needs while it runs, in bytes: with this kernel, and computed unfused.

    kernel: input + output + this kernel's scratch (one tile of the intermediate when fused).
    unfused: input + the whole intermediate [N, OH, OW, C*M] + output.
    Weights are constant and usually live in flash, so neither counts them.
    """
    layer = plan.layer
    tensors = math.prod(layer.input_shape) + math.prod(layer.output_shape)
    return {
        "kernel": (tensors + plan.scratch_floats) * FLOAT_BYTES,
        "unfused": (tensors + math.prod(layer.intermediate_shape)) * FLOAT_BYTES,
    }

"""A schedule is data: the knobs that say how a layer is computed, shared by TVM and the C emitter.

Knobs never change what is computed, only how: every point of every space is correct for every
layer the IR accepts (tests check a capped sample of each space against the reference).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields
from typing import Any

from ..spec import SpecError

__all__ = ["Knobs", "LOOP_ORDERS", "PAD_MODES", "TAP_ORDERS"]

LOOP_ORDERS = ("pixels_outer", "channels_outer")
PAD_MODES = ("inline", "stage")
TAP_ORDERS = ("outer", "inner", "grouped", "channel_major", "pixels")
_LATER_KNOBS = {"flat": False, "oc_split": 1}  # knobs added later: left out of dicts at their default


@dataclass(frozen=True)
class Knobs:
    """How one layer is tiled and vectorized.

    tile_h, tile_w  output rows x columns of one parallel tile (the fused depthwise is computed per
                    tile into a local buffer of tile_h*tile_w*C*M values); with `flat`, tile_h is 1
                    and the tile is a run of tile_w pixels in row-major order, across rows
    px, oc          register tile of the pointwise step: px pixels (along w, or along the run
                    when flat) x oc output channels
    oc_split        the output channels are cut into this many chunks, each a parallel task with
                    every tile (the fused depthwise is recomputed per chunk): with few tiles, as
                    on 7x7 layers, both threads of a 2-core machine still get equal work
    flat            the pixels are one flat axis, padded up to a multiple of tile_w (the padding
                    repeats the last pixel and is never stored): a 4-pixel register tile then
                    serves a 14x14 or 7x7 output, where along w only 7 or 14 divide the width
    vec             vector lanes (oc is split into oc/vec vectors)
    fused           depthwise computed per tile inside the pointwise loop nest (True), or whole
                    into a global intermediate first (False)
    order           "pixels_outer": pixel groups outside the output-channel blocks (the tile's
                    depthwise rows stay hot); "channels_outer": channel blocks outside (a panel of
                    the pointwise filter stays hot while the tile's pixels stream past)
    unroll          unroll the register tile loops
    pad             "inline": padding folded into the depthwise loads as a predicate;
                    "stage": the padded tile is materialised first
    taps            depthwise loop order: "outer" walks the kernel taps outside the channel
                    vectors (the tile's result is updated in memory once per tap); "inner"
                    accumulates all taps of a channel vector in a register and stores it once;
                    "grouped" walks the taps outside a group of 8 channel vectors whose sums
                    stay in registers (one padding test per tap and group, 8 FMAs per test);
                    "channel_major": as "grouped", with the groups outside the pixels (of the
                    tile, or of a row when not fused), so that one group's filter taps stay in
                    L1 while the pixels stream past: for large kernels on many channels;
                    "pixels" walks the taps outside 4 pixels along the row of one channel
                    vector, so that one filter load serves 4 pixels: for depthwise-heavy
                    layers on row tiles (on flat runs each pixel recomputes its row and column)
    pack            the pointwise filter is repacked once, when the weights are bound, into
                    panels [ceil(O/oc), C*M, oc] that the register tile reads contiguously (in
                    TF layout a panel's rows are O floats apart: at O >= 512 they fall into a
                    few L1 sets and evict each other)
    """

    tile_h: int = 1
    tile_w: int = 8
    px: int = 4
    oc: int = 16
    vec: int = 8
    fused: bool = True
    order: str = "pixels_outer"
    unroll: bool = True
    pad: str = "inline"
    pack: bool = False
    taps: str = "outer"
    flat: bool = False
    oc_split: int = 1

    def __post_init__(self) -> None:
        for name in ("tile_h", "tile_w", "px", "oc", "vec", "oc_split"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise SpecError(f"knob {name} must be a positive integer, got {value!r}")
        if self.oc % self.vec:
            raise SpecError(f"knob oc ({self.oc}) must be a multiple of vec ({self.vec})")
        if self.order not in LOOP_ORDERS:
            raise SpecError(f"knob order must be one of {LOOP_ORDERS}, got {self.order!r}")
        if self.taps not in TAP_ORDERS:
            raise SpecError(f"knob taps must be one of {TAP_ORDERS}, got {self.taps!r}")
        if self.pad not in PAD_MODES:
            raise SpecError(f"knob pad must be one of {PAD_MODES}, got {self.pad!r}")
        for name in ("fused", "unroll", "pack", "flat"):
            if not isinstance(getattr(self, name), bool):
                raise SpecError(f"knob {name} must be true or false, got {getattr(self, name)!r}")
        if self.flat and self.tile_h != 1:
            raise SpecError(f"knob tile_h must be 1 when flat (tile_w counts pixels), got {self.tile_h}")
        if self.flat and self.tile_w % self.px:
            raise SpecError(f"knob px ({self.px}) must divide tile_w ({self.tile_w}) when flat")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for name, default in _LATER_KNOBS.items():  # records and names from before these knobs stay valid
            if data[name] == default:
                del data[name]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Knobs":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise SpecError(f"unknown knob {unknown[0]!r} (known: {', '.join(sorted(known))})")
        return cls(**data)

    @property
    def tag(self) -> str:
        """A short, stable, identifier-safe name for these knobs (used in kernel names)."""
        text = json.dumps(self.to_dict(), sort_keys=True)
        digest = hashlib.sha1(text.encode()).hexdigest()[:8]
        tile = f"p{self.tile_w}" if self.flat else f"t{self.tile_h}x{self.tile_w}"  # p: a run of pixels
        return f"{tile}_r{self.px}x{self.oc}_{'f' if self.fused else 'u'}_{digest}"

"""One procedural name per kernel: C symbol, file name, cache key and test id all come from it."""

from __future__ import annotations

import hashlib

from .schedule.knobs import Knobs
from .spec import SeparableConv2D


def kernel_name(layer: SeparableConv2D, target: str, knobs: Knobs | None, detail: str = "") -> str:
    """e.g. ``sepconv_f32_112x112x32_k3x3s1_m1o64_llvm_1a2b3c4d``: readable, unique, a C identifier.

    The readable part names dtype, input, kernel, stride, multiplier and out channels; the digest
    covers everything else (padding, dilation, bias, activation, batch, target, knobs), and
    ``detail``: a custom target's JSON, so that two custom targets get two names.
    """
    _, h, w, c = layer.input_shape
    (kh, kw), (sh, sw) = layer.kernel_size, layer.strides
    dtype = {"float32": "f32", "float16": "f16", "float64": "f64"}[layer.dtype]
    stride = f"{sh}" if sh == sw else f"{sh}x{sw}"
    knob_text = knobs.tag if knobs else "none"
    text = f"{layer.workload_key}|{target}|{knob_text}" + (f"|{detail}" if detail else "")
    digest = hashlib.sha1(text.encode()).hexdigest()[:8]
    safe_target = "".join(ch if ch.isalnum() else "_" for ch in target)[:16]
    return f"sepconv_{dtype}_{h}x{w}x{c}_k{kh}x{kw}s{stride}_m{layer.channel_multiplier}o{layer.out_channels}_{safe_target}_{digest}"


def target_detail(target) -> str:
    """What a kernel's name must cover beyond its target's name: a custom target's JSON (every
    custom target is named "custom"); nothing for a named one."""
    return target.key if target.name == "custom" else ""

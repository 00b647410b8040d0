"""The layer IR: a frozen, validated description of one separable convolution layer, and networks.

Nothing here knows about TVM or C. Every other stage (compute, schedules, the C emitter, the CLI)
imports this module; it imports none of them.

Layouts (TensorFlow's, everywhere in the project):

    input             [N, H, W, C]
    depthwise_filter  [KH, KW, C, M]        M = channel_multiplier
    pointwise_filter  [1, 1, C*M, O]        O = out_channels
    bias              [O]                   added after the pointwise step, before the activation
    output            [N, OH, OW, O]
"""

from __future__ import annotations

import functools
import math
import numbers
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

__all__ = [
    "ACTIVATIONS",
    "DTYPES",
    "Network",
    "SeparableConv2D",
    "SpecError",
]

DTYPES = ("float32", "float16", "float64")
ACTIVATIONS = (None, "relu", "relu6")
# Used with fullmatch: `$` would also match before a trailing newline ("blk\n").
_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,63}")


class SpecError(ValueError):
    """A layer, network or kernel argument that sepconv_codegen refuses; the message names it."""


def _numpy():
    try:
        import numpy as np
    except ImportError:  # pragma: no cover - numpy is a dependency
        return None
    return np


def _show(value: Any) -> str:
    """repr on one line: a numpy array of rank 2 prints over several."""
    return re.sub(r"\s*\n\s*", " ", repr(value))


def _is_int(value: Any) -> bool:
    # bool is an int subclass in Python; `strides=True` is a mistake, not a stride of 1.
    if isinstance(value, bool):
        return False
    np = _numpy()
    if np is not None and isinstance(value, np.integer):
        return True
    return isinstance(value, int)


def _items(value: Any) -> list[Any] | None:
    """The entries of a list, a tuple, a tf.TensorShape or an array of rank >= 1 (its rows: numpy,
    or a tensor numpy converts); None for anything else.

    Entries are checked by the caller as for a list, so a float or bool array is still refused.
    """
    if isinstance(value, (list, tuple)):
        return list(value)
    if callable(getattr(value, "as_list", None)):  # tf.TensorShape; unknown rank: ValueError
        try:
            return list(value.as_list())
        except ValueError:
            return None
    np = _numpy()
    if np is not None and not isinstance(value, (str, bytes)) and hasattr(value, "__array__"):
        value = np.asarray(value)  # a numpy array, or a TF/PyTorch tensor
        if value.ndim >= 1:
            return list(value)
    return None


def _dtype(value: Any) -> str:
    """One of DTYPES from its name, a numpy dtype or a numpy scalar type (np.float32)."""
    if isinstance(value, str):
        if value in DTYPES:
            return str(value)
    else:
        np = _numpy()
        if np is not None and (
            isinstance(value, np.dtype) or (isinstance(value, type) and issubclass(value, np.generic))
        ):
            name = np.dtype(value).name
            if name in DTYPES:
                return name
    raise SpecError(f"dtype must be one of {', '.join(DTYPES)}, got {_show(value)}")


def _positive_int(fieldname: str, value: Any) -> int:
    if not _is_int(value) or int(value) <= 0:
        raise SpecError(f"{fieldname} must be a positive integer, got {_show(value)}")
    return int(value)


def _pair(fieldname: str, value: Any) -> tuple[int, int]:
    """An int, an (h, w) pair, or TF's 4-element form (1, h, w, 1); each entry positive."""
    if _is_int(value):
        v = _positive_int(fieldname, value)
        return (v, v)
    items = _items(value)
    if items is not None:
        if len(items) == 4:
            if not (_is_int(items[0]) and _is_int(items[3]) and items[0] == 1 and items[3] == 1):
                raise SpecError(
                    f"{fieldname} given as 4 values must be (1, h, w, 1) in NHWC, got {_show(value)}"
                )
            items = items[1:3]
        if len(items) == 2:
            if not all(_is_int(v) and int(v) > 0 for v in items):
                raise SpecError(f"{fieldname} must hold positive integers, got {_show(value)}")
            return (int(items[0]), int(items[1]))
    raise SpecError(f"{fieldname} must be an int or a pair (h, w), got {_show(value)}")


def _padding(value: Any) -> str | tuple[tuple[int, int], tuple[int, int]]:
    if isinstance(value, str):
        upper = value.upper()
        if upper not in ("SAME", "VALID"):
            raise SpecError(f"padding must be 'SAME', 'VALID' (any case) or explicit pairs, got {_show(value)}")
        return upper
    items = _items(value)
    if items is not None:
        pairs = [_items(p) for p in items]
        if len(pairs) == 4:  # TF's explicit form: [[0, 0], [t, b], [l, r], [0, 0]]
            ends = [pairs[0], pairs[3]]
            if not all(e is not None and len(e) == 2 and all(_is_int(v) and v == 0 for v in e) for e in ends):
                raise SpecError(
                    f"padding given as 4 pairs must not pad the batch or channel axes, got {_show(value)}"
                )
            pairs = pairs[1:3]
        if len(pairs) == 2 and all(p is not None and len(p) == 2 for p in pairs):
            flat = [v for p in pairs for v in p]
            if all(_is_int(v) and int(v) >= 0 for v in flat):
                return ((int(flat[0]), int(flat[1])), (int(flat[2]), int(flat[3])))
    raise SpecError(
        "padding must be 'SAME', 'VALID' (any case) or ((top, bottom), (left, right)) "
        f"with non-negative integers, got {_show(value)}"
    )


def _same_pads(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    # TF SAME: out = ceil(in / stride); the odd pixel of padding goes to the bottom/right.
    effective = (kernel - 1) * dilation + 1
    out = -(-size // stride)
    total = max((out - 1) * stride + effective - size, 0)
    return (total // 2, total - total // 2)


@dataclass(frozen=True)
class SeparableConv2D:
    """One ``tf.nn.separable_conv2d`` layer: a KxK depthwise convolution then a 1x1 pointwise one.

    Construction validates every field and raises :class:`SpecError` naming the field and value.
    Ints are accepted for ``kernel_size``, ``strides`` and ``dilation``; ``padding`` is "SAME" or
    "VALID" in any case, or explicit ``((top, bottom), (left, right))``.
    """

    input_shape: tuple[int, int, int, int]
    kernel_size: tuple[int, int] = (3, 3)
    channel_multiplier: int = 1
    out_channels: int | None = None
    strides: tuple[int, int] = (1, 1)
    dilation: tuple[int, int] = (1, 1)
    padding: Any = "SAME"
    dtype: str = "float32"
    bias: bool = False
    activation: str | None = None
    name: str = "sepconv"
    pads: tuple[tuple[int, int], tuple[int, int]] = field(init=False, repr=False, compare=False)
    output_shape: tuple[int, int, int, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        put = object.__setattr__
        if not isinstance(self.name, str) or not _NAME_RE.fullmatch(self.name):
            raise SpecError(
                "name must be 1-64 characters of letters, digits, '_', '-' or '.', not starting "
                f"with '-' or '.', got {_show(self.name)}"
            )
        put(self, "name", str(self.name))
        shape = _items(self.input_shape)
        if shape is None or len(shape) != 4:
            raise SpecError(f"input_shape must have rank 4 (N, H, W, C), got {_show(self.input_shape)}")
        dims = tuple(
            _positive_int(f"input_shape[{i}] ({axis})", v) for i, (axis, v) in enumerate(zip("NHWC", shape))
        )
        put(self, "input_shape", dims)
        put(self, "kernel_size", _pair("kernel_size", self.kernel_size))
        put(self, "channel_multiplier", _positive_int("channel_multiplier", self.channel_multiplier))
        out_channels = self.out_channels
        if out_channels is None:
            out_channels = dims[3] * self.channel_multiplier
        put(self, "out_channels", _positive_int("out_channels", out_channels))
        put(self, "strides", _pair("strides", self.strides))
        put(self, "dilation", _pair("dilation", self.dilation))
        put(self, "padding", _padding(self.padding))
        put(self, "dtype", _dtype(self.dtype))
        np = _numpy()
        if not (isinstance(self.bias, bool) or (np is not None and isinstance(self.bias, np.bool_))):
            raise SpecError(f"bias must be true or false, got {_show(self.bias)}")
        put(self, "bias", bool(self.bias))
        activation = self.activation
        if isinstance(activation, str):
            activation = str(activation).lower()
            if activation in ("none", "linear", ""):
                activation = None
        if not (activation is None or (isinstance(activation, str) and activation in ACTIVATIONS)):
            raise SpecError(f"activation must be none, 'relu' or 'relu6', got {_show(self.activation)}")
        put(self, "activation", activation)
        self._derive_geometry()

    def _derive_geometry(self) -> None:
        _, h, w, _ = self.input_shape
        (kh, kw), (sh, sw), (dh, dw) = self.kernel_size, self.strides, self.dilation
        if self.padding == "SAME":
            pads = (_same_pads(h, kh, sh, dh), _same_pads(w, kw, sw, dw))
        elif self.padding == "VALID":
            pads = ((0, 0), (0, 0))
        else:
            pads = self.padding
        out = []
        for axis, size, k, s, d, (lo, hi) in (
            ("height", h, kh, sh, dh, pads[0]),
            ("width", w, kw, sw, dw, pads[1]),
        ):
            span = size + lo + hi - ((k - 1) * d + 1)
            if span < 0:
                raise SpecError(
                    f"padding {self.padding!r} leaves an empty output: the input {axis} {size} with "
                    f"padding ({lo}, {hi}) is smaller than the effective kernel {(k - 1) * d + 1} "
                    f"(kernel_size {k}, dilation {d})"
                )
            out.append(span // s + 1)
        object.__setattr__(self, "pads", pads)
        object.__setattr__(self, "output_shape", (self.input_shape[0], out[0], out[1], self.out_channels))

    # ---- tensor shapes (TF layouts) -------------------------------------------------------------

    @property
    def in_channels(self) -> int:
        return self.input_shape[3]

    @property
    def depthwise_channels(self) -> int:
        """C*M: channels of the depthwise result (the intermediate), input-channel major."""
        return self.input_shape[3] * self.channel_multiplier

    @property
    def depthwise_filter_shape(self) -> tuple[int, int, int, int]:
        return (*self.kernel_size, self.in_channels, self.channel_multiplier)

    @property
    def pointwise_filter_shape(self) -> tuple[int, int, int, int]:
        return (1, 1, self.depthwise_channels, self.out_channels)

    @property
    def bias_shape(self) -> tuple[int]:
        return (self.out_channels,)

    @property
    def intermediate_shape(self) -> tuple[int, int, int, int]:
        n, oh, ow, _ = self.output_shape
        return (n, oh, ow, self.depthwise_channels)

    # ---- cost -----------------------------------------------------------------------------------

    @property
    def param_count(self) -> int:
        kh, kw = self.kernel_size
        count = kh * kw * self.depthwise_channels + self.depthwise_channels * self.out_channels
        return count + (self.out_channels if self.bias else 0)

    @property
    def depthwise_macs(self) -> int:
        n, oh, ow, _ = self.output_shape
        return n * oh * ow * self.depthwise_channels * self.kernel_size[0] * self.kernel_size[1]

    @property
    def pointwise_macs(self) -> int:
        n, oh, ow, o = self.output_shape
        return n * oh * ow * self.depthwise_channels * o

    @property
    def macs(self) -> int:
        return self.depthwise_macs + self.pointwise_macs

    @property
    def flops(self) -> int:
        """2 per multiply-accumulate (bias and activation not counted)."""
        return 2 * self.macs

    @property
    def conv2d_param_count(self) -> int:
        """Parameters of the plain conv2d with the same input, output and kernel."""
        kh, kw = self.kernel_size
        return kh * kw * self.in_channels * self.out_channels + (self.out_channels if self.bias else 0)

    @property
    def conv2d_macs(self) -> int:
        n, oh, ow, o = self.output_shape
        return n * oh * ow * self.kernel_size[0] * self.kernel_size[1] * self.in_channels * o

    # ---- identity -------------------------------------------------------------------------------

    @property
    def workload_key(self) -> str:
        """A canonical string of everything that determines the computation (not the name).

        Used as the tuning-database key and inside kernel names, so two layers that compute the
        same thing share schedules.
        """
        n, h, w, c = self.input_shape
        (kh, kw), (sh, sw), (dh, dw) = self.kernel_size, self.strides, self.dilation
        (pt, pb), (pl, pr) = self.pads
        act = self.activation or "none"
        return (
            f"{self.dtype}_n{n}h{h}w{w}c{c}_k{kh}x{kw}_s{sh}x{sw}_d{dh}x{dw}_p{pt}_{pb}_{pl}_{pr}"
            f"_m{self.channel_multiplier}_o{self.out_channels}_b{int(self.bias)}_{act}"
        )

    def to_dict(self) -> dict[str, Any]:
        """A plain-data form that :meth:`from_dict` (and spec files) read back."""
        padding = self.padding if isinstance(self.padding, str) else [list(p) for p in self.padding]
        return {
            "name": self.name,
            "input_shape": list(self.input_shape),
            "kernel_size": list(self.kernel_size),
            "channel_multiplier": self.channel_multiplier,
            "out_channels": self.out_channels,
            "strides": list(self.strides),
            "dilation": list(self.dilation),
            "padding": padding,
            "dtype": self.dtype,
            "bias": self.bias,
            "activation": self.activation,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "layer") -> "SeparableConv2D":
        if not isinstance(data, dict):
            raise SpecError(f"{where} must be a table of fields, got {_show(data)}")
        _check_field_names(data, where)
        if "input_shape" not in data:
            raise SpecError(f"{where}: input_shape is required")
        fields_ = dict(data)
        if fields_.get("activation") in ("none", "None"):
            fields_["activation"] = None
        try:
            return cls(**fields_)
        except SpecError as err:
            raise SpecError(f"{where}: {err}") from None

    def replace(self, **changes: Any) -> "SeparableConv2D":
        data = self.to_dict()
        data.update(changes)
        return SeparableConv2D(**data)


# Keras's names for our fields (keras.layers.SeparableConv2D): a porting user's first guess.
_KERAS_NAMES = {"depth_multiplier": "channel_multiplier", "filters": "out_channels",
                "dilation_rate": "dilation", "use_bias": "bias"}


def _check_field_names(given: Iterable[str], where: str) -> None:
    known = set(SeparableConv2D.__dataclass_fields__) - {"pads", "output_shape"}
    unknown = sorted(set(given) - known)
    if unknown:
        keras = _KERAS_NAMES.get(unknown[0])
        hint = f"Keras's name for {keras}; " if keras else ""
        raise SpecError(f"{where}: unknown field {unknown[0]!r} ({hint}known: "
                        f"{', '.join(sorted(known))})")


def _named_fields_checked(init):
    """The dataclass __init__, refusing an unknown keyword with a SpecError that lists the fields
    (and Keras's names), where Python would raise a bare TypeError."""
    @functools.wraps(init)
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        _check_field_names(kwargs, "SeparableConv2D")
        if not args and "input_shape" not in kwargs:
            raise SpecError("SeparableConv2D: input_shape (N, H, W, C) is required")
        init(self, *args, **kwargs)
    return __init__


SeparableConv2D.__init__ = _named_fields_checked(SeparableConv2D.__init__)


@dataclass(frozen=True)
class Network:
    """An ordered list of layers whose shapes chain: each layer's output is the next one's input.

    With ``chained=False`` the layers are independent (the separable layers of a model with
    pooling or residual additions between them): any shapes and dtypes, names still unique.
    """

    layers: tuple[SeparableConv2D, ...]
    name: str = "network"
    chained: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise SpecError(f"network name must be a non-empty string, got {_show(self.name)}")
        layers = tuple(self.layers)
        if not layers:
            raise SpecError("a network needs at least one layer, got none")
        for i, layer in enumerate(layers):
            if not isinstance(layer, SeparableConv2D):
                raise SpecError(f"layers[{i}] must be a SeparableConv2D, got {type(layer).__name__}")
        names = [layer.name for layer in layers]
        dup = next((n for n in names if names.count(n) > 1), None)
        if dup is not None:
            raise SpecError(f"layer names must be unique in a network, {dup!r} appears twice")
        if not isinstance(self.chained, bool):
            raise SpecError(f"chained must be true or false, got {self.chained!r}")
        for prev, nxt in zip(layers, layers[1:]) if self.chained else ():
            if prev.output_shape != nxt.input_shape:
                raise SpecError(
                    f"layer {nxt.name!r}: input_shape {nxt.input_shape} does not match the output "
                    f"{prev.output_shape} of the layer before it, {prev.name!r}"
                )
            if prev.dtype != nxt.dtype:
                raise SpecError(f"layer {nxt.name!r}: dtype {nxt.dtype!r} differs from {prev.dtype!r}")
        object.__setattr__(self, "layers", layers)

    def __iter__(self):
        return iter(self.layers)

    def __len__(self) -> int:
        return len(self.layers)

    @property
    def macs(self) -> int:
        return sum(layer.macs for layer in self.layers)


def _layer_from_fields(i: int, block: Any, defaults: dict[str, Any],
                       input_shape: Sequence[int] | None) -> SeparableConv2D:
    """Layer ``i`` of a spec: its fields over the defaults, named layer{i} unless it says, with
    ``input_shape`` where it gives none (None: it must give one)."""
    if not isinstance(block, dict):
        raise SpecError(f"layer {i} must be a table of fields, got {_show(block)}")
    fields_ = {**defaults, **block}
    fields_.setdefault("name", f"layer{i}")
    if input_shape is not None:
        fields_.setdefault("input_shape", input_shape)
    elif "input_shape" not in fields_:
        raise SpecError(f"layer {i} ({fields_['name']}) must give input_shape [N, H, W, C]: with "
                        "chained = false no layer takes the shape of the one before")
    return SeparableConv2D.from_dict(fields_, where=f"layer {i} ({fields_['name']})")


def chain(
    input_shape: Sequence[int], blocks: Iterable[dict[str, Any]], name: str = "network", **defaults: Any
) -> Network:
    """Build a Network from per-layer fields, inferring each input_shape from the layer before."""
    layers: list[SeparableConv2D] = []
    for i, block in enumerate(blocks):
        # The first layer's shape is validated (and refused by name) by SeparableConv2D itself.
        layers.append(_layer_from_fields(i, block, defaults, input_shape if not layers else layers[-1].output_shape))
    return Network(tuple(layers), name=name)


def independent(blocks: Iterable[dict[str, Any]], name: str = "network", **defaults: Any) -> Network:
    """Build an unchained Network from per-layer fields, each giving its own input_shape."""
    layers = [_layer_from_fields(i, block, defaults, None) for i, block in enumerate(blocks)]
    return Network(tuple(layers), name=name, chained=False)


def mobilenet_v1(batch: int = 1, resolution: int = 224, width: float = 1.0) -> Network:
    """The 13 depthwise-separable blocks of MobileNetV1 (3x3, SAME), after its first 3x3 conv.

    width is Keras's alpha: every channel count c becomes int(c * width), as in
    keras.applications.MobileNet.
    """
    for name, value in (("batch", batch), ("resolution", resolution)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
            raise SpecError(f"mobilenet_v1: {name} must be a positive integer, got {value!r}")
    if isinstance(width, bool) or not isinstance(width, numbers.Real) \
            or not math.isfinite(width) or int(32 * width) < 1:
        raise SpecError(f"mobilenet_v1: width must be a number of at least 1/32 (Keras's alpha: "
                        f"the 32-channel input keeps int(32 * width) channels), got {width!r}")

    def ch(c: int) -> int:
        return int(c * width)

    # (stride, out_channels) of each block; the stem conv before them halves the resolution to 112.
    plan = [(1, 64), (2, 128), (1, 128), (2, 256), (1, 256), (2, 512)]
    plan += [(1, 512)] * 5 + [(2, 1024), (1, 1024)]
    size = -(-resolution // 2)
    blocks = [
        {"name": f"block{i + 1}", "strides": s, "out_channels": ch(o)} for i, (s, o) in enumerate(plan)
    ]
    return chain((batch, size, size, ch(32)), blocks, name="mobilenet_v1", kernel_size=3, padding="SAME")


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


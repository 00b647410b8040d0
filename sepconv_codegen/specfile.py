"""Spec files: a network of separable layers in TOML (read with tomllib) or JSON.

Schema (TOML shown; JSON is the same structure)::

    name = "my_net"              # optional, default: the file's stem

    [defaults]                   # optional: fields applied to every layer unless it sets them
    kernel_size = 3
    padding = "SAME"

    chained = true               # optional: false for independent layers, each with its own
                                 # input_shape (the separable layers of a model with pooling or
                                 # residual additions between them)

    [[layer]]                    # one table per layer, in order
    name = "block1"              # optional, default layer0, layer1, ...
    input_shape = [1, 112, 112, 32]   # required on the first layer; later layers take the
                                      # previous layer's output shape when they omit it
    channel_multiplier = 1
    out_channels = 64
    strides = 1                  # int or [h, w]
    dilation = 1
    dtype = "float32"            # float32 | float16 | float64
    bias = false
    activation = "relu"          # "none" | "relu" | "relu6"

Every field of :class:`~sepconv_codegen.spec.SeparableConv2D` may appear; unknown keys are errors.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

from .spec import Network, SpecError, chain, independent

__all__ = ["load_spec", "network_from_dict"]

_TOP_KEYS = {"name", "chained", "defaults", "layer", "layers"}


def network_from_dict(data: Any, default_name: str = "network") -> Network:
    """A Network from the parsed contents of a spec file."""
    if not isinstance(data, dict):
        raise SpecError(f"a spec must be a table with a 'layer' list, got {type(data).__name__}")
    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        raise SpecError(f"spec: unknown top-level key {unknown[0]!r} (known: chained, defaults, layer, name)")
    if "layer" in data and "layers" in data:
        raise SpecError("spec: both 'layer' and 'layers' are given; use one of them for the list of layers")
    layers = data.get("layer", data.get("layers"))
    if not isinstance(layers, list) or not layers:
        raise SpecError("spec: 'layer' must be a non-empty list of layer tables")
    for i, layer in enumerate(layers):
        if not isinstance(layer, dict):
            raise SpecError(f"spec: layer {i} must be a table of fields, got {layer!r}")
    defaults = data.get("defaults", {})
    if not isinstance(defaults, dict):
        raise SpecError(f"spec: 'defaults' must be a table, got {defaults!r}")
    name = data.get("name", default_name)
    if not isinstance(name, str):
        raise SpecError(f"spec: name must be a string, got {name!r}")
    chained = data.get("chained", True)
    if not isinstance(chained, bool):
        raise SpecError(f"spec: chained must be true or false, got {chained!r}")
    if not chained:
        return independent(layers, name=name, **defaults)
    first = {**defaults, **layers[0]}
    if "input_shape" not in first:
        raise SpecError("spec: the first layer must give input_shape [N, H, W, C]")
    return chain(first["input_shape"], layers, name=name, **defaults)


def load_spec(path: str | Path) -> Network:
    """Read a .toml or .json spec file into a Network; SpecError on anything wrong with it."""
    if isinstance(path, str) and not path.strip():
        raise SpecError(f"spec file path is empty, got {path!r}")
    path = Path(path)
    if path.is_dir():
        raise SpecError(f"spec file {str(path)!r} is a folder, not a .toml or .json spec")
    if not path.exists():
        raise SpecError(f"spec file {str(path)!r} does not exist")
    if not path.is_file():
        raise SpecError(f"spec file {str(path)!r} is not a regular file")
    try:
        text = path.read_bytes()
    except OSError as err:
        raise SpecError(f"spec file {str(path)!r} cannot be read: {err.strerror or err}") from None
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text)
        elif path.suffix.lower() == ".toml":
            data = tomllib.loads(text.decode("utf-8"))
        else:
            raise SpecError(f"spec file {str(path)!r} must end in .toml or .json")
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, UnicodeDecodeError) as err:
        raise SpecError(f"spec file {str(path)!r} is not valid {path.suffix[1:].upper()}: {err}") from None
    return network_from_dict(data, default_name=path.stem)

"""Weights baked into a C kernel: read, checked against the layer, printed as C float literals."""

from __future__ import annotations

import os
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..spec import Network, SeparableConv2D, SpecError

__all__ = [
    "BakedTensor",
    "bake",
    "load_weights",
    "network_weights",
    "read_npz",
    "weight_names",
    "weight_shapes",
]

VALUES_PER_LINE = 8


@dataclass(frozen=True)
class BakedTensor:
    """One weight tensor as the C template prints it: a name, an element count, literal lines."""

    name: str
    size: int
    lines: tuple[str, ...]


def weight_names(layer: SeparableConv2D) -> tuple[str, ...]:
    """The tensors a layer's weights consist of, in ABI order."""
    names = ("depthwise_filter", "pointwise_filter")
    return names + ("bias",) if layer.bias else names


def weight_shapes(layer: SeparableConv2D) -> dict[str, tuple[int, ...]]:
    """Each weight tensor's TF-layout shape, in ABI order."""
    shapes = {
        "depthwise_filter": layer.depthwise_filter_shape,
        "pointwise_filter": layer.pointwise_filter_shape,
        "bias": layer.bias_shape,
    }
    return {name: shapes[name] for name in weight_names(layer)}


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """Every array of a .npz archive by key; a missing or unreadable file is a SpecError."""
    if path.is_dir():
        raise SpecError(f"weights file {str(path)!r} is a folder, not a .npz archive")
    if not path.is_file():
        raise SpecError(f"weights file {str(path)!r} does not exist")
    with open(path, "rb") as file:
        magic = file.read(6)
    if not magic.startswith((b"PK", b"\x93NUMPY")):  # numpy would guess a pickle, and say so
        raise SpecError(f"weights file {str(path)!r} is not a .npz archive (np.savez writes one): "
                        f"it starts with {magic!r}")
    try:
        loaded = np.load(path, allow_pickle=False)
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as err:  # cut short, or not a zip
        raise SpecError(
            f"weights file {str(path)!r} is not a readable .npz archive: {err}"
        ) from None
    if not isinstance(loaded, np.lib.npyio.NpzFile):  # a .npy: one array, with no names
        raise SpecError(
            f"weights file {str(path)!r} is not a .npz archive but a single array (.npy); "
            "save the named tensors with np.savez"
        )
    try:
        with loaded as archive:
            return {key: archive[key] for key in archive.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as err:
        raise SpecError(
            f"weights file {str(path)!r} is not a readable .npz archive: {err}"
        ) from None


def load_weights(layer: SeparableConv2D, weights: Any) -> dict[str, np.ndarray]:
    """The layer's weights from a .npz path, a mapping or a tuple (dw, pw[, bias]), checked.

    Every tensor must be float32 with the layer's TF-layout shape and finite values; a missing,
    unexpected or malformed tensor is a SpecError naming its key.
    """
    names = weight_names(layer)
    if isinstance(weights, (str, os.PathLike)):
        given = read_npz(Path(weights))
    elif isinstance(weights, Mapping):
        given = dict(weights)
    elif isinstance(weights, (tuple, list)):
        if len(weights) != len(names):
            raise SpecError(
                f"weights given as a sequence must hold {len(names)} arrays ({', '.join(names)}) "
                f"for layer {layer.name!r}, got {len(weights)}"
            )
        given = dict(zip(names, weights))
    else:
        raise SpecError(
            "weights must be a .npz path, a mapping or a tuple of arrays, "
            f"got {type(weights).__name__}"
        )
    unexpected = sorted(set(given) - set(names))
    if unexpected:
        raise SpecError(
            f"weights[{unexpected[0]!r}] is not a weight of layer {layer.name!r} "
            f"(expected keys: {', '.join(names)})"
        )
    shapes = weight_shapes(layer)
    return {name: _checked(layer, name, given, shapes[name]) for name in names}


def network_weights(network: Network, path: str | os.PathLike) -> dict[str, dict[str, np.ndarray]]:
    """Per layer name, that layer's weights from one .npz for a whole network.

    Keys are ``LAYER/depthwise_filter``, ``LAYER/pointwise_filter`` and ``LAYER/bias``; a
    one-layer network may use the bare names. Every layer must be present, and every layer's
    tensors are checked here (:func:`load_weights`), so that a bad tensor in a later layer is
    refused before anything is written for the earlier ones.
    """
    archive = read_npz(Path(path))
    names = {layer.name for layer in network}
    per_layer: dict[str, dict[str, np.ndarray]] = {name: {} for name in names}
    for key, value in archive.items():
        layer_name, _, tensor = key.rpartition("/")
        if not layer_name and len(network) == 1:
            layer_name = network.layers[0].name
        if layer_name not in names:
            raise SpecError(
                f"weights key {key!r} in {str(path)!r} names no layer of this spec "
                "(expected LAYER/depthwise_filter etc. with LAYER one of "
                f"{', '.join(sorted(names))})"
            )
        per_layer[layer_name][tensor] = value
    missing = [name for name, tensors in per_layer.items() if not tensors]
    if missing:
        raise SpecError(f"weights file {str(path)!r} has no tensors for layer {missing[0]!r}")
    return {layer.name: load_weights(layer, per_layer[layer.name]) for layer in network}


def _checked(layer: SeparableConv2D, name: str, given: dict, shape: tuple[int, ...]) -> np.ndarray:
    if name not in given:
        raise SpecError(f"weights[{name!r}] is missing: layer {layer.name!r} needs shape {shape}")
    value = given[name]
    if not isinstance(value, np.ndarray):
        raise SpecError(f"weights[{name!r}] must be a numpy array, got {type(value).__name__}")
    if value.dtype != np.float32:
        raise SpecError(
            f"weights[{name!r}] has dtype {value.dtype}; C kernels take float32 "
            "(convert with .astype('float32'))"
        )
    if value.shape != shape:
        raise SpecError(
            f"weights[{name!r}] has shape {value.shape}, layer {layer.name!r} needs {shape}"
        )
    if not np.isfinite(value).all():
        raise SpecError(f"weights[{name!r}] holds NaN or infinite values")
    return value


def bake(weights: dict[str, np.ndarray]) -> list[BakedTensor]:
    """Each tensor as C float literals, VALUES_PER_LINE to a line, exact (shortest round trip)."""
    baked = []
    for name, array in weights.items():
        literals = [f"{value!s}f," for value in array.reshape(-1)]
        lines = tuple(
            " ".join(literals[start : start + VALUES_PER_LINE])
            for start in range(0, len(literals), VALUES_PER_LINE)
        )
        baked.append(BakedTensor(name, len(literals), lines))
    return baked

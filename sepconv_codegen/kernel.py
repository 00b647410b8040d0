"""The kernel object every build returns, whatever produced it (TVM module, compiled C).

A kernel is called with numpy arrays in TF layouts and checks each one against the layer it was
built for before any native code sees it: a wrong shape or dtype is a SpecError naming the argument,
never a crash inside the kernel.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .schedule.knobs import Knobs
from .spec import SeparableConv2D, SpecError

__all__ = ["Kernel", "check_arguments", "output_file", "output_folder"]


def _folder_problem(folder: Path) -> str | None:
    """Why ``folder`` cannot take new files (creating it if need be), or None when it can."""
    if folder.exists() and not folder.is_dir():
        return f"{str(folder)!r} is a file, not a folder"
    for parent in folder.parents:  # mkdir would say only "Not a directory"
        if parent.exists():
            if not parent.is_dir():
                return f"{str(parent)!r} is a file, not a folder"
            break
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):  # root passes access(), yet /proc takes no files
            pass
    except OSError as err:
        return err.strerror or type(err).__name__
    return None


def output_folder(path: str | os.PathLike, what: str = "output folder") -> Path:
    """``path`` as a folder that exists and takes new files, created if need be; else a SpecError
    naming ``what`` (the option or argument) and the path. Called before any work: a path that
    cannot be written must not cost a compile first."""
    if not str(path).strip():
        raise SpecError(f"{what} is empty: name a folder to write into")
    folder = Path(path)
    problem = _folder_problem(folder)
    if problem is not None:
        raise SpecError(f"{what} {str(folder)!r} cannot be written: {problem}")
    return folder


def output_file(path: str | os.PathLike, what: str = "path") -> Path:
    """``path`` as a file that can be written (its folder created if need be); else a SpecError
    naming ``what`` and the path."""
    if not str(path).strip():
        raise SpecError(f"{what} is empty: name a file to write")
    file = Path(path)
    if file.is_dir():
        raise SpecError(f"{what} {str(file)!r} is a folder, not a file (name a file in it)")
    problem = _folder_problem(file.parent)
    if problem is not None:
        raise SpecError(f"{what} {str(file)!r} cannot be written: {problem}")
    return file


def _shapes(layer: SeparableConv2D) -> dict[str, tuple[int, ...]]:
    return {
        "input": layer.input_shape,
        "depthwise_filter": layer.depthwise_filter_shape,
        "pointwise_filter": layer.pointwise_filter_shape,
        "bias": layer.bias_shape,
        "out": layer.output_shape,
    }


def check_arguments(
    layer: SeparableConv2D,
    input: Any,
    depthwise_filter: Any,
    pointwise_filter: Any,
    bias: Any = None,
    out: Any = None,
) -> tuple[list[np.ndarray], np.ndarray]:
    """Validate kernel arguments; returns (C-contiguous inputs, output array) or raises SpecError."""
    if layer.bias and bias is None:
        raise SpecError(f"layer {layer.name!r} was built with a bias: pass bias= of shape {layer.bias_shape}")
    if not layer.bias and bias is not None:
        raise SpecError(f"layer {layer.name!r} was built without a bias, but bias= was given")
    shapes = _shapes(layer)
    given = {"input": input, "depthwise_filter": depthwise_filter, "pointwise_filter": pointwise_filter}
    if layer.bias:
        given["bias"] = bias
    arrays = []
    for name, value in given.items():
        value = _as_array(layer, name, value)
        _check_array(layer, name, value, shapes[name])
        arrays.append(np.ascontiguousarray(value))
    if out is None:
        out = _aligned_empty(layer.output_shape, layer.dtype)
    else:
        if not isinstance(out, np.ndarray):
            raise SpecError(f"out must be a numpy array, got {type(out).__name__}")
        _check_array(layer, "out", out, shapes["out"])
        if not out.flags.c_contiguous or not out.flags.writeable:
            raise SpecError("out must be a writeable C-contiguous array")
        if any(np.shares_memory(out, a) for a in arrays):
            raise SpecError("out must not overlap an input array")
    return arrays, out


def _as_array(layer: SeparableConv2D, name: str, value: Any) -> np.ndarray:
    """A numpy array, or an array object that converts to one with its own dtype (a TF or
    PyTorch CPU tensor, anything with __array__); never a guess at the dtype of a list."""
    if isinstance(value, np.ndarray):
        return value
    if hasattr(value, "__array__") or hasattr(value, "__array_interface__"):
        try:
            return np.asarray(value)
        except Exception as e:  # noqa: BLE001 - e.g. a torch tensor that requires grad
            raise SpecError(f"{name}: a {type(value).__name__} that numpy cannot convert ({e})") from None
    raise SpecError(
        f"{name} must be a numpy array (or a tensor numpy converts), got {type(value).__name__}; "
        f"for a list use np.asarray(..., dtype='{layer.dtype}')"
    )


def _aligned_empty(shape: tuple[int, ...], dtype: str, alignment: int = 64) -> np.ndarray:
    """An uninitialized C-contiguous array whose data starts on a 64-byte boundary.

    Kernels share (rather than copy) arrays so aligned; numpy itself only aligns to 16 bytes.
    """
    dtype_ = np.dtype(dtype)
    nbytes = int(np.prod(shape)) * dtype_.itemsize
    raw = np.empty(nbytes + alignment, dtype=np.uint8)
    start = (-raw.ctypes.data) % alignment
    return raw[start : start + nbytes].view(dtype_).reshape(shape)


def _aligned_copy(array: np.ndarray) -> np.ndarray:
    copy = _aligned_empty(array.shape, array.dtype.str)
    np.copyto(copy, array)
    return copy


def _check_array(layer: SeparableConv2D, name: str, value: np.ndarray, shape: tuple[int, ...]) -> None:
    if value.dtype != np.dtype(layer.dtype):
        raise SpecError(
            f"{name} has dtype {value.dtype}, but layer {layer.name!r} was built for {layer.dtype} "
            f"(convert with .astype('{layer.dtype}'))"
        )
    if value.shape != tuple(shape):
        raise SpecError(
            f"{name} has shape {value.shape}, but layer {layer.name!r} expects {tuple(shape)}"
        )


class Kernel:
    """A compiled separable layer, callable from Python.

    ``kernel(input, depthwise_filter, pointwise_filter, bias=None, out=None)`` returns the output
    [N, OH, OW, O]; ``out=`` writes into a given array (and returns it).
    """

    def __init__(
        self,
        layer: SeparableConv2D,
        name: str,
        target: str,
        knobs: Knobs | None,
        schedule_source: str,
    ) -> None:
        self.layer = layer
        self.name = name
        self.target = target
        self.knobs = knobs
        self.schedule_source = schedule_source

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} for {self.target} ({self.schedule_source} schedule)>"

    def __call__(self, input, depthwise_filter, pointwise_filter, bias=None, *, out=None) -> np.ndarray:
        arrays, out = check_arguments(self.layer, input, depthwise_filter, pointwise_filter, bias, out)
        self._run(arrays, out)
        return out

    def bind(self, input, depthwise_filter, pointwise_filter, bias=None, *, out=None) -> Callable[[], np.ndarray]:
        """Check and convert the arguments once; returns a no-argument function that runs the kernel.

        The function computes on the arguments' values at bind time: they are copied, so later
        changes to those arrays are not seen (bind again for new data, or call the kernel). Each
        call writes into ``out`` (a new array when not given) and returns it. Benchmarks time that
        function, so they measure the kernel and not argument checking.
        """
        arrays, out = check_arguments(self.layer, input, depthwise_filter, pointwise_filter, bias, out)
        arrays = [_aligned_copy(a) for a in arrays]  # a snapshot, whatever the backend or alignment
        return self._bind(arrays, out)

    # Subclasses implement these two.
    def _run(self, arrays: list[np.ndarray], out: np.ndarray) -> None:
        raise NotImplementedError

    def _bind(self, arrays: list[np.ndarray], out: np.ndarray) -> Callable[[], np.ndarray]:
        def run() -> np.ndarray:
            self._run(arrays, out)
            return out

        return run

    def metadata(self) -> dict[str, Any]:
        """What is stored with an exported kernel: enough to call it again with no compiler."""
        return {
            "format": "sepconv_codegen.kernel/1",
            "name": self.name,
            "target": self.target,
            "layer": self.layer.to_dict(),
            "knobs": self.knobs.to_dict() if self.knobs else None,
            "schedule_source": self.schedule_source,
        }

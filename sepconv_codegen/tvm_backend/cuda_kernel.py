"""CUDA kernels: the CUDA C source TVM generated, its launch configuration, and exports.

TVM does not compile CUDA C when it builds: the module keeps the source, and nvcc or NVRTC compiles
it when the module is loaded on a machine with a GPU. So a CUDA kernel built here can be exported
(.so with the source embedded, for TVM on the GPU machine) or written as plain CUDA C plus a JSON
launch configuration (for any CUDA host program: nvcc, CuPy, the driver API), but not called.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from ..schedule.cuda import launch_geometry
from ..spec import SpecError
from .cross import CrossKernel

__all__ = ["CudaKernel", "parse_kernel_signature", "static_shared_bytes"]

# Kernel arguments are TVM's buffer names plus "_ptr"; the compute names them X, DW, PW, B, out.
_SIGNATURE = re.compile(
    r'extern "C" __global__ void (?:__launch_bounds__\((\d+)\) )?(\w+)\(([^)]*)\)\s*\{'
)
_SHARED = re.compile(r"__shared__ (?:alignas\(\d+\) )?(\w+) (\w+)\[(\d+)\];")
_CTYPE_BYTES = {"float": 4, "double": 8, "half": 2, "float4": 16, "float2": 8}
ARGUMENTS = {
    "X": "input",
    "DW": "depthwise_filter",
    "PW": "pointwise_filter",
    "B": "bias",
    "out": "output",
}


def parse_kernel_signature(source: str) -> tuple[str, list[str], int | None]:
    """(kernel name, argument buffer names in order, __launch_bounds__ or None) of the one
    __global__ function defined in ``source``."""
    found = _SIGNATURE.findall(source)
    if len(found) != 1:
        raise SpecError(
            f"expected one __global__ kernel definition in the CUDA source, found {len(found)}"
        )
    bounds, name, params = found[0]
    args = []
    for param in params.split(","):
        arg = param.strip().split()[-1]
        args.append(arg.removesuffix("_ptr"))
    return name, args, int(bounds) if bounds else None


def static_shared_bytes(source: str) -> int:
    """Bytes of the fixed-size __shared__ arrays the source declares."""
    return sum(_CTYPE_BYTES[ctype] * int(count) for ctype, _, count in _SHARED.findall(source))


class CudaKernel(CrossKernel):
    """A kernel for an NVIDIA GPU: CUDA C source, launch configuration, exportable; not callable
    here (this machine has no GPU and TVM's CUDA runtime is not available)."""

    def _cannot_run(self) -> SpecError:
        return SpecError(
            f"kernel {self.name} is CUDA ({self._target.description}) and there is no GPU or CUDA "
            f"runtime here: export it with kernel.export('{self.name}.so') for TVM on a GPU "
            f"machine, or kernel.export('{self.name}.cu') for the CUDA source and its launch "
            "configuration (examples/gpu_check.py runs those with CuPy)"
        )

    def cuda_source(self) -> str:
        """The generated CUDA C (one extern "C" __global__ kernel)."""
        for module in self._module.mod.imports:
            if module.kind == "cuda":
                return str(module.inspect_source())
        raise SpecError(f"kernel {self.name} has no CUDA module")

    def launch_config(self) -> dict[str, Any]:
        """How to launch the kernel: its name, grid, block, dynamic and static shared bytes, and
        its arguments in order, each a TVM buffer name (X, DW, PW, B, out) with its role and shape.
        """
        source = self.cuda_source()
        name, args, bounds = parse_kernel_signature(source)
        geometry = launch_geometry(self.layer, self.knobs)
        if bounds is not None and bounds != geometry.threads:
            raise SpecError(
                f"kernel {self.name}: __launch_bounds__({bounds}) differs from the "
                f"schedule's {geometry.threads} threads"
            )
        shapes = {
            "X": self.layer.input_shape,
            "DW": self.layer.depthwise_filter_shape,
            "PW": self.layer.pointwise_filter_shape,
            "B": self.layer.bias_shape,
            "out": self.layer.output_shape,
        }
        return {
            "kernel": name,
            "grid": list(geometry.grid),
            "block": list(geometry.block),
            "dynamic_shared_bytes": 0,
            "static_shared_bytes": static_shared_bytes(source),
            "args": [
                {
                    "name": a,
                    "role": ARGUMENTS.get(a, a),
                    "shape": list(shapes[a]),
                    "dtype": self.layer.dtype,
                }
                for a in args
            ],
        }

    def export(self, path: str | os.PathLike) -> Path:
        """``k.cu``: the CUDA source, and ``k.json`` beside it (launch configuration, layer, knobs).
        ``k.so``: TVM's library with the source embedded, and the .cu and .json beside it.
        ``k.tar``: TVM's object archive."""
        path = Path(path)
        if path.suffix.lower() == ".cu":
            return self._write_source(path)
        result = super().export(path)
        if path.suffix.lower() == ".so":
            self._write_source(path.with_suffix(".cu"))
        return result

    def _write_source(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        source = self.cuda_source()
        config = {**self.metadata(), "cuda": self.launch_config(), "source": path.name}
        _write_if_changed(path, source)
        _write_if_changed(
            path.with_suffix(".json"), json.dumps(config, indent=2, sort_keys=True) + "\n"
        )
        return path


def _write_if_changed(path: Path, text: str) -> None:
    if not path.is_file() or path.read_text() != text:
        path.write_text(text)

"""build_c: a layer's standalone C kernel compiled into a shared library and called through ctypes.

Libraries are cached under ``$SEPCONV_CODEGEN_CACHE/c`` (default ``~/.cache/sepconv_codegen/c``),
one folder per kernel name, one library per (compiler, flags, source): a second build of the same
kernel loads the library it finds.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from ..kernel import Kernel
from ..kernel import _aligned_empty as aligned_empty
from ..schedule.knobs import Knobs
from ..spec import SeparableConv2D, SpecError
from .emit import EmittedKernel, emit_c
from .plan import make_plan
from .toolchains import compile_c

__all__ = ["CKernel", "build_c", "cache_dir", "compile_library"]

DEFAULT_CFLAGS = ("-O3", "-march=native")


def cache_dir() -> Path:
    """Where compiled C kernels are kept."""
    root = os.environ.get("SEPCONV_CODEGEN_CACHE")
    if root:
        return Path(root) / "c"
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "sepconv_codegen" / "c"


def compile_library(
    emitted: EmittedKernel, cc: str = "gcc", cflags: Sequence[str] = DEFAULT_CFLAGS
) -> Path:
    """The shared library of an emitted (unbaked) kernel, compiled unless already there."""
    if shutil.which(cc) is None:
        raise SpecError(f"C compiler {cc!r} was not found (install one, e.g. apt-get install gcc)")
    if isinstance(cflags, str) or not all(isinstance(flag, str) for flag in cflags):
        raise SpecError(f"cflags must be a sequence of strings, got {cflags!r}")
    key = "\0".join([cc, *cflags, emitted.header.read_text(), emitted.source.read_text()])
    digest = hashlib.sha1(key.encode()).hexdigest()[:12]
    library = emitted.source.with_name(f"{emitted.function}_{digest}.so")
    if not library.is_file():
        partial = library.with_name(f".{library.name}.{os.getpid()}.tmp")
        compile_c(
            cc, [*cflags, "-std=c99", "-shared", "-fPIC", "-o", str(partial), str(emitted.source)]
        )
        os.replace(partial, library)
    return library


class CKernel(Kernel):
    """A C kernel loaded from its shared library; owns one scratch buffer: one call at a time."""

    def __init__(
        self, layer: SeparableConv2D, emitted: EmittedKernel, library: Path, schedule_source: str
    ):
        super().__init__(layer, emitted.function, "c", emitted.knobs, schedule_source)
        self.library = library
        self._dll = ctypes.CDLL(str(library))
        function = getattr(self._dll, emitted.function)
        function.argtypes = [ctypes.c_void_p] * 6
        function.restype = ctypes.c_int
        self._function = function
        # 64-byte aligned: the kernel needs float alignment only, but whole cache lines help.
        self._scratch = aligned_empty((emitted.scratch_bytes // 4,), "float32")

    def _pointers(self, arrays: list[np.ndarray], out: np.ndarray) -> tuple:
        bias = arrays[3].ctypes.data if self.layer.bias else None
        return (
            arrays[0].ctypes.data,
            arrays[1].ctypes.data,
            arrays[2].ctypes.data,
            bias,
            out.ctypes.data,
            self._scratch.ctypes.data,
        )

    def _call(self, pointers: tuple) -> None:
        status = self._function(*pointers)
        if status != 0:
            raise RuntimeError(f"C kernel {self.name} returned {status}")

    def _run(self, arrays: list[np.ndarray], out: np.ndarray) -> None:
        self._call(self._pointers(arrays, out))

    def _bind(self, arrays: list[np.ndarray], out: np.ndarray) -> Callable[[], np.ndarray]:
        return _BoundCall(self, arrays, out)

    def export(self, path: str | os.PathLike) -> Path:
        """Copy the shared library to ``path`` (the C function is NAME, see the .h beside it)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.library, path)
        return path


class _BoundCall:
    """One kernel call with its arguments fixed; holds the arrays its pointers point into."""

    def __init__(self, kernel: CKernel, arrays: list[np.ndarray], out: np.ndarray) -> None:
        self._kernel, self._arrays, self._out = kernel, arrays, out
        self._pointers = kernel._pointers(arrays, out)

    def __call__(self) -> np.ndarray:
        self._kernel._call(self._pointers)
        return self._out


def build_c(
    layer: SeparableConv2D,
    knobs: Knobs | None = None,
    *,
    cc: str = "gcc",
    cflags: Sequence[str] = DEFAULT_CFLAGS,
) -> CKernel:
    """Emit the layer's C kernel, compile it (``cc cflags``) into a cached library, load it."""
    plan = make_plan(layer, knobs)
    emitted = emit_c(layer, cache_dir() / plan.function, knobs=plan.knobs)
    library = compile_library(emitted, cc, cflags)
    return CKernel(layer, emitted, library, "given" if knobs is not None else "default (C)")

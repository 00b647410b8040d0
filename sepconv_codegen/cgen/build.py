"""build_c: a layer's standalone C kernel compiled into a shared library and called through ctypes.

Libraries are cached under ``$SEPCONV_CODEGEN_CACHE/c`` (default ``~/.cache/sepconv_codegen/c``),
one folder per kernel name, one library per (compiler, flags, source): a second build of the same
kernel loads the library it finds.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import tempfile
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from ..kernel import Kernel, output_file, output_folder
from ..kernel import _aligned_empty as aligned_empty
from ..schedule.knobs import Knobs
from ..spec import SeparableConv2D, SpecError
from ..tvm_backend import elfmeta
from .emit import EmittedKernel, emit_c
from .plan import KernelPlan, make_plan
from .toolchains import compile_c

__all__ = [
    "CKernel",
    "build_c",
    "cache_dir",
    "check_compiler",
    "compile_library",
    "load_c_library",
]

DEFAULT_CFLAGS = ("-O3", "-march=native")


def cache_dir() -> Path:
    """Where compiled C kernels are kept."""
    root = os.environ.get("SEPCONV_CODEGEN_CACHE")
    if root:
        return Path(root) / "c"
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "sepconv_codegen" / "c"


def check_compiler(cc: str = "gcc") -> None:
    """The C compiler must be installed: a SpecError saying how, before any work."""
    if shutil.which(cc) is None:
        raise SpecError(f"C compiler {cc!r} was not found (install one, e.g. apt-get install gcc)")


def compile_library(
    emitted: EmittedKernel, cc: str = "gcc", cflags: Sequence[str] = DEFAULT_CFLAGS
) -> Path:
    """The shared library of an emitted (unbaked) kernel, compiled unless already there."""
    check_compiler(cc)
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
    """A C kernel loaded from its shared library. The C function takes its scratch memory from
    the caller: each Python thread gets its own buffer, so calls from several threads at once
    do not share it."""

    def __init__(
        self,
        layer: SeparableConv2D,
        emitted: EmittedKernel | None,
        library: Path,
        schedule_source: str,
        *,
        plan: KernelPlan | None = None,
        compiler: tuple[str, tuple[str, ...]] = ("gcc", DEFAULT_CFLAGS),
    ):
        plan = emitted.plan if emitted is not None else plan
        super().__init__(layer, plan.function, "c", plan.knobs, schedule_source)
        self.library = library
        self._emitted = emitted  # None for a kernel loaded from an export: its source is not here
        self._compiler = compiler
        try:
            self._dll = ctypes.CDLL(str(library))
            function = getattr(self._dll, plan.function)
        except (OSError, AttributeError) as err:  # another CPU's library, or a stripped one
            raise SpecError(
                f"C kernel library {str(library)!r} cannot be loaded here: {err}"
            ) from None
        function.argtypes = [ctypes.c_void_p] * 6
        function.restype = ctypes.c_int
        self._function = function
        self._scratch_floats = plan.scratch_bytes // 4
        self._per_thread = threading.local()  # ctypes releases the GIL during the call

    def _scratch(self) -> int:
        """The address of this thread's scratch buffer (64-byte aligned: the kernel needs float
        alignment only, but whole cache lines help)."""
        buffer = getattr(self._per_thread, "scratch", None)
        if buffer is None:
            buffer = self._per_thread.scratch = aligned_empty((self._scratch_floats,), "float32")
        return buffer.ctypes.data

    def _pointers(self, arrays: list[np.ndarray], out: np.ndarray) -> tuple:
        """The kernel's arguments but its scratch, which _call adds per thread."""
        bias = arrays[3].ctypes.data if self.layer.bias else None
        return (arrays[0].ctypes.data, arrays[1].ctypes.data, arrays[2].ctypes.data, bias, out.ctypes.data)

    def _call(self, pointers: tuple) -> None:
        status = self._function(*pointers, self._scratch())
        if status != 0:
            raise RuntimeError(f"C kernel {self.name} returned {status}")

    def _run(self, arrays: list[np.ndarray], out: np.ndarray) -> None:
        self._call(self._pointers(arrays, out))

    def _bind(self, arrays: list[np.ndarray], out: np.ndarray) -> Callable[[], np.ndarray]:
        return _BoundCall(self, arrays, out)

    def metadata(self) -> dict:
        """The base metadata, and the compiler and flags; for -march=native code, the instruction
        sets of the CPU it was compiled on, which load() checks against the CPU it runs on."""
        cc, cflags = self._compiler
        meta = {**super().metadata(), "cc": cc, "cflags": list(cflags)}
        if any(flag in ("-march=native", "-mcpu=native") for flag in cflags):
            from ..targets import host_features

            meta["cpu_features"] = sorted(host_features())
            meta["machine"] = platform.machine()
        return meta

    def export(self, path: str | os.PathLike) -> Path:
        """Write a shared library with the kernel's spec inside, which :func:`sepconv_codegen.load`
        reads back with no compiler (the C function is NAME, declared in the NAME.h `emit`
        writes). The library is the kernel's source and its spec, compiled as when it was built."""
        path = output_file(path, "export path")
        if self._emitted is None:  # loaded from an export: the library already holds the spec
            if Path(self.library).resolve() != path.resolve():
                shutil.copyfile(self.library, path)
            return path
        if not self._emitted.source.is_file():
            raise SpecError(f"the source of C kernel {self.name} is gone from the cache "
                            f"({str(self._emitted.source)!r}): build it again to export it")
        with tempfile.TemporaryDirectory() as tmp:
            addon = Path(tmp) / "sepconv_meta.c"
            addon.write_text(elfmeta.meta_source(self.metadata()))
            partial = Path(tmp) / "kernel.so"
            cc, cflags = self._compiler
            compile_c(cc, [*cflags, "-std=c99", "-shared", "-fPIC", "-o", str(partial),
                           str(self._emitted.source), str(addon)])
            elfmeta.seal(partial)
            shutil.copyfile(partial, path)
        return path


def load_c_library(path: Path, layer: SeparableConv2D, name: str, knobs: Knobs | None,
                   schedule_source: str, compiler: tuple[str, tuple[str, ...]] | None = None,
                   cpu_features: list[str] | None = None, machine: str | None = None) -> CKernel:
    """A C kernel from a library its export wrote, by the spec, knobs and compiler stored in it.

    One compiled with -march=native on a CPU with instruction sets this one lacks is refused:
    calling it would kill the process with an illegal instruction.
    """
    if cpu_features is not None and platform.machine() == machine:
        from ..targets import missing_here

        missing = missing_here(frozenset(map(str, cpu_features)))
        if missing:
            raise SpecError(f"{str(path)!r} holds C kernel {name}, compiled with -march=native on a "
                            f"CPU with instruction sets this one lacks ({', '.join(missing[:6])}"
                            f"{', ...' if len(missing) > 6 else ''}): build it again here")
    plan = make_plan(layer, knobs)
    if plan.function != name:  # the stored knobs do not give the stored function: not ours
        raise SpecError(f"{str(path)!r} holds C kernel {name}, but its stored spec and knobs "
                        f"describe {plan.function}")
    return CKernel(layer, None, path, schedule_source, plan=plan,
                   compiler=compiler or ("gcc", DEFAULT_CFLAGS))


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
    folder = output_folder(cache_dir() / plan.function, "the C kernel cache (SEPCONV_CODEGEN_CACHE)")
    emitted = emit_c(layer, folder, knobs=plan.knobs)
    library = compile_library(emitted, cc, cflags)
    return CKernel(layer, emitted, library, "given" if knobs is not None else "default (C)",
                   compiler=(cc, tuple(cflags)))

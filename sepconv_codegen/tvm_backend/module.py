"""TVM-built kernels: compile a schedule, call it, export it with its spec, load it back."""

from __future__ import annotations

import io
import json
import os
import platform
import shutil
import tarfile
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..kernel import Kernel, output_file
from ..kernel import _aligned_empty as aligned_empty
from ..schedule.cpu import register_channels
from ..schedule.knobs import Knobs
from ..spec import SeparableConv2D, SpecError
from ..targets import Target, check_cross_compiler, resolve_target
from . import elfmeta
from ._tvm import TVMError, cpu_device, tvm

META_SECTION = elfmeta.META_SECTION


def compile_schedule(sch, target: Target):
    """tvm.compile under our target JSON; returns a runtime module (an Executable)."""
    return tvm.compile(sch.mod, target=tvm.target.Target(target.tvm))


ALIGNMENT = 64  # TVM's default data alignment; it shares (does not copy) arrays aligned to it


def pack_pointwise(pointwise: np.ndarray, pack: int) -> np.ndarray:
    """[1, 1, C*M, O] -> [ceil(O/pack), C*M, pack] panels, zero-padded past O (compute.py)."""
    cm, o = pointwise.shape[2:]
    panels = -(-o // pack)
    padded = np.zeros((cm, panels * pack), dtype=pointwise.dtype)
    padded[:, :o] = pointwise[0, 0]
    return np.ascontiguousarray(padded.reshape(cm, panels, pack).transpose(1, 0, 2))


def kernel_arrays(layer: SeparableConv2D, knobs: Knobs | None,
                  arrays: list[np.ndarray]) -> list[np.ndarray]:
    """input, depthwise, pointwise[, bias] (TF layouts) in the layout the compiled function takes.

    Knobs with pack: the kernel reads the pointwise filter in panels, packed here once per bind
    (per call for __call__), as inference runtimes pack constant weights at load. Kernels run
    elsewhere (over RPC) are given these arrays too.
    """
    if knobs is None or not knobs.pack:
        return list(arrays)
    pack = register_channels(layer, knobs)
    return [arrays[0], arrays[1], pack_pointwise(arrays[2], pack), *arrays[3:]]


def _as_tensor(array: np.ndarray, device):
    if array.ctypes.data % ALIGNMENT == 0 and array.flags.writeable and array.size:
        try:
            return tvm.runtime.from_dlpack(array)
        except (RuntimeError, BufferError, TypeError):
            pass
    return tvm.runtime.tensor(array, device)


def _shares(tensor, array: np.ndarray) -> bool:
    return int(tensor.data_ptr()) == array.ctypes.data


class TVMKernel(Kernel):
    """A kernel compiled by TVM for this machine's CPU (or loaded from an exported .so)."""

    def __init__(self, layer: SeparableConv2D, name: str, target: Target | str, knobs: Knobs | None,
                 schedule_source: str, module: Any, library: bytes | None = None) -> None:
        target_name = target.name if isinstance(target, Target) else str(target)
        super().__init__(layer, name, target_name, knobs, schedule_source)
        self._target = target if isinstance(target, Target) else None
        self._module = module
        self._library = library  # the exported file's bytes, for a kernel load() read back
        try:
            self._func = module["main"]
        except (AttributeError, *TVMError):  # a library holding a spec and no code
            raise SpecError(f"kernel {name} has no function 'main' (its library holds only its "
                            "spec): export the kernel again") from None
        self._device = cpu_device()

    def metadata(self) -> dict[str, Any]:
        """The base metadata, and the TVM target JSON, so that load() can tell whether this CPU
        runs the code."""
        meta = super().metadata()
        meta["tvm_target"] = self._target.tvm if self._target is not None else None
        return meta

    def _tensors(self, arrays: list[np.ndarray], out: np.ndarray) -> tuple[list, Any, bool]:
        """TVM tensors over the arrays: shared when 64-byte aligned, else copies.

        Returns (inputs, output, whether the output is shared with ``out``).
        """
        args = [_as_tensor(a, self._device) for a in kernel_arrays(self.layer, self.knobs, arrays)]
        result = _as_tensor(out, self._device)
        shared = _shares(result, out)
        return args, result, shared

    def _run(self, arrays: list[np.ndarray], out: np.ndarray) -> None:
        args, result, shared = self._tensors(arrays, out)
        self._func(*args, result)
        if not shared:
            np.copyto(out, result.numpy())

    def _bind(self, arrays: list[np.ndarray], out: np.ndarray) -> Callable[[], np.ndarray]:
        args, result, shared = self._tensors(arrays, out)
        func = self._func

        def run() -> np.ndarray:
            func(*args, result)
            if not shared:
                np.copyto(out, result.numpy())
            return out

        return run

    def time(self, arrays: list[np.ndarray], number: int = 10, repeat: int = 5, min_repeat_ms: int = 20) -> list[float]:
        """Seconds per call, one value per repeat (TVM's time_evaluator: no Python in the loop)."""
        out = aligned_empty(self.layer.output_shape, self.layer.dtype)
        args, result, _ = self._tensors(arrays, out)
        evaluator = getattr(self._module, "mod", self._module).time_evaluator("main", self._device, number=number, repeat=repeat,
                                                min_repeat_ms=min_repeat_ms)
        return list(evaluator(*args, result).results)

    def _no_objects(self, path: Path) -> SpecError:
        """The error for an object-file export (.tar, .o) of a kernel that load() read back."""
        return SpecError(f"kernel {self.name} was loaded from a .so, which holds no object "
                         f"files: export it to a .so, not {str(path)!r}")

    def export(self, path: str | os.PathLike) -> Path:
        """Write a shared library that :func:`sepconv_codegen.load` reads back with no compiler
        (whatever its name ends in; ``.tar`` gives TVM's object archive instead, which load does
        not read). A kernel that load() read back is written as the file it came from."""
        path = output_file(path, "export path")
        if self._library is not None:  # its module is a loaded library: TVM cannot link it again
            if path.suffix.lower() == ".tar":
                raise self._no_objects(path)
            path.write_bytes(self._library)
            return path
        with tempfile.TemporaryDirectory() as tmp:
            addon = Path(tmp) / "sepconv_meta.c"
            addon.write_text(elfmeta.meta_source(self.metadata()))
            kwargs = {}
            if self._target is not None and self._target.cross_compiler:
                from tvm.support import cc

                if path.suffix.lower() != ".tar":  # a .tar holds objects: nothing is linked
                    check_cross_compiler(self._target)
                kwargs["fcompile"] = cc.cross_compiler(self._target.cross_compiler)
            self._module.export_library(str(path), addons=[str(addon)], **kwargs)
        if path.suffix.lower() != ".tar":
            elfmeta.seal(path)
        return path


def load(path: str | os.PathLike) -> Kernel:
    """Load a kernel exported with ``kernel.export(path)``; nothing is compiled.

    A TVM kernel comes back as a TVMKernel (a CrossKernel when built for a CPU this machine cannot
    run), a C kernel (``build(layer, "c")``) as a CKernel: the same Kernel API either way.
    """
    path = Path(path)
    if path.is_dir():
        raise SpecError(f"kernel file {str(path)!r} is a folder, not an exported kernel")
    if not path.is_file():
        raise SpecError(f"kernel file {str(path)!r} does not exist")
    library = path.read_bytes()
    if tarfile.is_tarfile(io.BytesIO(library)):
        raise SpecError(f"{str(path)!r} is an archive of object files (an export to .tar), which "
                        "load cannot read: export the kernel to a .so")
    try:
        raw = elfmeta.section(library, META_SECTION)
    except elfmeta.ElfError as err:
        raise SpecError(f"kernel file {str(path)!r} is truncated or not an ELF shared library "
                        f"({err})") from None
    if raw is None:
        raise SpecError(f"{str(path)!r} is not a sepconv_codegen kernel (no {META_SECTION} section)")
    if elfmeta.intact(library) is False:  # loading it could crash the process: refuse instead
        raise SpecError(f"kernel file {str(path)!r} is corrupted: its bytes do not match the "
                        "SHA-256 written into it at export; export the kernel again")
    try:
        meta = json.loads(raw.rstrip(b"\0").decode("utf-8"))
        layer = SeparableConv2D.from_dict(meta["layer"])
        knobs = Knobs.from_dict(meta["knobs"]) if meta.get("knobs") else None
        name, target_name, source = meta["name"], meta["target"], meta["schedule_source"]
    except (ValueError, KeyError, TypeError, AttributeError) as err:  # SpecError: a ValueError
        raise SpecError(f"kernel file {str(path)!r} has an unreadable {META_SECTION} section "
                        f"({type(err).__name__}: {err})") from None
    if target_name == "c":
        from ..cgen.build import load_c_library

        compiler = (str(meta.get("cc", "gcc")), tuple(map(str, meta.get("cflags", ()))))
        return load_c_library(path, layer, name, knobs, source, compiler,
                              meta.get("cpu_features"), meta.get("machine"))
    built_for, here = elfmeta.machine(library), platform.machine().lower().replace("arm64", "aarch64")
    if built_for is not None and built_for != here:  # dlopen would only say "No such file"
        raise SpecError(f"{str(path)!r} holds kernel {name} for target {target_name!r}, built for "
                        f"{built_for}; this machine is {here}: load it there")
    try:
        module = _load_module(path)
    except TVMError as err:  # built for another CPU (AArch64), or CUDA with no CUDA runtime here
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise SpecError(f"{str(path)!r} holds kernel {name} for target {target_name!r}, "
                        f"which this machine cannot load: {first}") from None
    target = _target_of(meta)
    if target is not None and target.family == "cuda":  # never called from Python: says so
        from .cuda_kernel import CudaKernel

        return CudaKernel(layer, name, target, knobs, source, module, library)
    if target is not None and target.family == "cpu" and not target.runs_here:
        from .cross import CrossKernel  # its calls raise a SpecError instead of running the code

        return CrossKernel(layer, name, target, knobs, source, module, library)
    return TVMKernel(layer, name, target_name, knobs, source, module, library)


def _load_module(path: Path):
    """tvm.runtime.load_module, whatever the file is called: TVM picks its loader by the name's
    extension (after resolving symlinks), so a library named otherwise is loaded from a copy
    named .so; the loaded library stays mapped after the copy is gone."""
    if Path(os.path.realpath(path)).suffix == ".so":
        return tvm.runtime.load_module(str(path))
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "kernel.so"
        shutil.copyfile(path, copy)
        return tvm.runtime.load_module(str(copy))


def _target_of(meta: dict[str, Any]) -> Target | None:
    """The Target an exported kernel was built for, where it recorded its TVM target JSON (an x86
    kernel built for AVX-512 loads on an AVX2 CPU and would die of an illegal instruction)."""
    if not meta.get("tvm_target"):
        return None
    try:
        return resolve_target(meta["tvm_target"])
    except SpecError:  # a target this TVM no longer knows: it loaded, so let it run as before
        return None

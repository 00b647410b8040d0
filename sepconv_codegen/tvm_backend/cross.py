"""Kernels built for another machine: export them here, run them there (or under an emulator).

A `CrossKernel` holds a module compiled for a CPU this machine is not (AArch64 on x86): calling it
raises a SpecError that says so, and `export(path)` writes

    k.so    a shared library linked with the target's cross compiler (load it there with TVM),
    k.tar   TVM's archive of the kernel's object file(s) (lib0.o), for linking into a program,
    k.o     the object alone.

The object links into `aarch64_harness.c` (installed with the package) to give a program that runs
the kernel with no TVM runtime: `link_harness` builds it and `run_harness` runs it, under
qemu-aarch64 on an x86 machine.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..kernel import Kernel, output_file
from ..spec import SeparableConv2D, SpecError
from ..targets import Target
from .module import TVMKernel

__all__ = ["CrossKernel", "harness_source", "kernel_class", "link_harness", "run_harness"]

HARNESS = "aarch64_harness.c"


class CrossKernel(TVMKernel):
    """A kernel for a machine this is not: exportable, not callable here."""

    def __init__(
        self, layer: SeparableConv2D, name: str, target: Target, knobs, schedule_source: str, module,
        library: bytes | None = None,
    ) -> None:
        # TVMKernel.__init__ would look up module["main"], which JIT-links the code for this CPU.
        Kernel.__init__(self, layer, name, target.name, knobs, schedule_source)
        self._target = target
        self._module = module
        self._library = library  # the exported file's bytes, for a kernel load() read back

    @property
    def target_info(self) -> Target:
        return self._target

    def _cannot_run(self) -> SpecError:
        target = self._target
        how = f"export it with kernel.export('{self.name}.so') and run it on such a machine"
        if target.emulator:
            how += (
                f", or export a .tar, link it with link_harness() and run it under "
                f"{target.emulator}"
            )
        elif target.family == "cpu" and target.space == "cpu":  # x86 code this CPU cannot run
            how = "run it on such a machine, or build it again for this one (target='llvm')"
        return SpecError(
            f"kernel {self.name} was compiled for {target.name} ({target.description}) "
            f"and cannot run on this machine: {how}"
        )

    def __call__(self, *args, **kwargs):
        raise self._cannot_run()

    def bind(self, *args, **kwargs):
        raise self._cannot_run()

    def time(self, *args, **kwargs):
        raise self._cannot_run()

    def _run(self, arrays, out) -> None:
        raise self._cannot_run()

    def export(self, path: str | os.PathLike) -> Path:
        """Write ``path``: a cross-linked .so (with the kernel's spec, for sepconv_codegen.load on
        the target), a .tar of object files, or a single .o."""
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix == ".so":
            return super().export(path)
        if suffix not in (".tar", ".o"):
            raise SpecError(f"export path {str(path)!r} must end in .so, .tar or .o")
        if self._library is not None:
            raise self._no_objects(path)
        path = output_file(path, "export path")
        if suffix == ".tar":
            self._module.export_library(str(path))
            return path
        with tempfile.TemporaryDirectory() as tmp:
            archive = Path(tmp) / "kernel.tar"
            self._module.export_library(str(archive))
            objects = _extract_objects(archive, Path(tmp))
            if len(objects) != 1:
                raise SpecError(
                    f"kernel {self.name} has {len(objects)} object files; export a .tar"
                )
            shutil.copyfile(objects[0], path)
        return path


def kernel_class(target: Target) -> type[TVMKernel]:
    """The Kernel subclass that wraps a module compiled for ``target``."""
    if target.family == "cuda":
        from .cuda_kernel import CudaKernel

        return CudaKernel
    return TVMKernel if target.runs_here else CrossKernel


# ---- running an exported object without TVM -----------------------------------------------------


def harness_source() -> Path:
    """The C harness that runs a kernel object with no TVM runtime (see its header comment)."""
    return Path(__file__).resolve().parent / HARNESS


def _extract_objects(archive: Path, folder: Path) -> list[Path]:
    with tarfile.open(archive) as tar:
        names = [m.name for m in tar.getmembers() if m.isfile() and m.name.endswith(".o")]
        for name in names:
            if os.path.isabs(name) or ".." in Path(name).parts:
                raise SpecError(f"{str(archive)!r} holds an unsafe path {name!r}")
        tar.extractall(folder, members=[tar.getmember(n) for n in names], filter="data")
    return [folder / name for name in names]


def _include_dirs() -> list[str]:
    import tvm.libinfo
    import tvm_ffi.libinfo

    ffi = Path(tvm_ffi.libinfo.find_include_path())
    found = tvm.libinfo.find_include_path()
    tvm_dirs = [found] if isinstance(found, str) else list(found)
    return [str(ffi), str(ffi / "dlpack"), *map(str, tvm_dirs)]


def link_harness(
    kernel: CrossKernel | str | os.PathLike, output: str | os.PathLike, compiler: str | None = None
) -> Path:
    """Link the kernel (a CrossKernel, or an exported .tar or .o) with the C harness into a static
    program at ``output``. ``compiler`` defaults to the kernel's target's cross compiler."""
    if compiler is None:
        compiler = kernel.target_info.cross_compiler if isinstance(kernel, CrossKernel) else None
        compiler = compiler or "gcc"
    if shutil.which(compiler) is None:
        raise SpecError(
            f"compiler {compiler!r} is not installed (Debian: apt-get install "
            "gcc-aarch64-linux-gnu)"
        )
    output = Path(output)
    with tempfile.TemporaryDirectory() as tmp:
        if isinstance(kernel, CrossKernel):
            path = kernel.export(Path(tmp) / "kernel.tar")
        else:
            path = Path(kernel)
        objects = _extract_objects(path, Path(tmp)) if path.suffix == ".tar" else [path]
        command = [
            compiler,
            "-O2",
            "-static",
            "-fno-tree-vectorize",
            "-std=gnu11",
            *(f"-I{d}" for d in _include_dirs()),
            str(harness_source()),
            *map(str, objects),
            "-lpthread",
            "-lm",
            "-o",
            str(output),
        ]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SpecError(
            f"linking the harness failed:\n{' '.join(command)}\n{result.stderr[-2000:]}"
        )
    return output


def run_harness(
    program: str | os.PathLike,
    kernel: Kernel,
    arrays: Sequence[np.ndarray],
    emulator: str | None = None,
    threads: int = 1,
    repeats: int = 0,
    timeout: float = 120,
) -> tuple[np.ndarray, float | None]:
    """Run the harness linked with ``kernel`` on ``arrays`` (input, dw, pw[, bias], TF layouts);
    returns (output, ms per call when ``repeats`` > 0, else None). ``emulator`` (e.g.
    "qemu-aarch64") runs a foreign program. The arrays are converted to the layout the kernel's
    knobs ask for (a packed pointwise filter) as the kernel object itself would."""
    from .module import kernel_arrays

    layer = kernel.layer
    arrays = kernel_arrays(layer, kernel.knobs, list(arrays))
    bits = {"float16": 16, "float32": 32, "float64": 64}[layer.dtype]
    with tempfile.TemporaryDirectory() as tmp:
        specs = []
        for i, array in enumerate(arrays):
            file = Path(tmp) / f"arg{i}.bin"
            np.ascontiguousarray(array, dtype=layer.dtype).tofile(file)
            specs.append(f"{file}:{','.join(map(str, array.shape))}")
        out_file = Path(tmp) / "out.bin"
        specs.append(f"{out_file}:{','.join(map(str, layer.output_shape))}")
        command = [
            *([emulator] if emulator else []),
            str(program),
            "-t",
            str(threads),
            "-r",
            str(repeats),
            "-b",
            str(bits),
            *specs,
        ]
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, check=False
        )
        if result.returncode != 0 or "rc=0" not in result.stdout:
            raise SpecError(
                f"{' '.join(command[:2])} failed ({result.returncode}): "
                f"{result.stdout[-500:]}{result.stderr[-1500:]}"
            )
        out = np.fromfile(out_file, dtype=layer.dtype).reshape(layer.output_shape)
    ms = None
    for word in result.stdout.split():
        if word.startswith("time_ms="):
            ms = float(word.split("=", 1)[1])
    return out, ms


def check_emulated(kernel: CrossKernel, seed: int = 0):
    """check.check_kernel for a kernel this CPU cannot run: linked with the harness and run under
    the target's emulator on the same random inputs, against the same reference."""
    from ..check import CheckResult, random_inputs, tolerance
    from ..reference import reference

    layer = kernel.layer
    arrays = random_inputs(layer, seed)
    with tempfile.TemporaryDirectory() as tmp:
        program = link_harness(kernel, Path(tmp) / "run_kernel")
        got, _ = run_harness(program, kernel, arrays, emulator=kernel.target_info.emulator)
    want = reference(layer, *arrays[:3], arrays[3] if layer.bias else None)
    abs_err = float(np.abs(got.astype(np.float64) - want).max())
    return CheckResult(abs_err, abs_err / max(1.0, float(np.abs(want).max())), tolerance(layer))

"""The C toolchains kernels are measured and tested with, as data: compiler, flags, size tool.

A toolchain that is not installed is reported with the apt command that installs it, never as a
traceback.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "AARCH64",
    "CORTEX_M4",
    "HOST",
    "TOOLCHAINS",
    "WARNING_FLAGS",
    "CompileError",
    "Toolchain",
    "compile_c",
]

# What every emitted file must compile cleanly under.
WARNING_FLAGS = ("-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic")


@dataclass(frozen=True)
class Toolchain:
    """A compiler for one target, the flags kernels are built with for it, and its size tool.

    flags: target selection and optimisation for the figures reported in manifests (code size,
    stack use); emulator: the program that runs its executables on this machine, if any.
    """

    name: str
    compiler: str
    size_tool: str
    flags: tuple[str, ...]
    apt_packages: tuple[str, ...]
    emulator: str | None = None
    emulator_packages: tuple[str, ...] = ()

    @property
    def available(self) -> bool:
        return shutil.which(self.compiler) is not None and shutil.which(self.size_tool) is not None

    @property
    def install_hint(self) -> str:
        return "apt-get install " + " ".join(self.apt_packages)

    @property
    def emulator_available(self) -> bool:
        return self.emulator is not None and shutil.which(self.emulator) is not None

    @property
    def emulator_install_hint(self) -> str:
        return "apt-get install " + " ".join(self.emulator_packages)


HOST = Toolchain("host-gcc", "gcc", "size", ("-O2",), ("gcc", "binutils"))
AARCH64 = Toolchain(
    "aarch64",
    "aarch64-linux-gnu-gcc",
    "aarch64-linux-gnu-size",
    ("-O2",),
    ("gcc-aarch64-linux-gnu",),
    emulator="qemu-aarch64",
    emulator_packages=("qemu-user",),
)
CORTEX_M4 = Toolchain(
    "cortex-m4",
    "arm-none-eabi-gcc",
    "arm-none-eabi-size",
    ("-O2", "-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"),
    ("gcc-arm-none-eabi", "libnewlib-arm-none-eabi"),
    emulator="qemu-system-arm",
    emulator_packages=("qemu-system-arm",),
)
TOOLCHAINS = (HOST, AARCH64, CORTEX_M4)


class CompileError(RuntimeError):
    """A C compiler failed; the message holds its command and output."""


def compile_c(
    compiler: str, args: list[str], cwd: str | Path | None = None, timeout: float = 300
) -> None:
    """Run ``compiler *args``; raises CompileError with the compiler's output when it fails."""
    command = [compiler, *args]
    result = subprocess.run(
        command, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )
    if result.returncode != 0:
        raise CompileError(f"{' '.join(command)} failed:\n{result.stdout}{result.stderr}")

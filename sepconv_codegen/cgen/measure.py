"""What an emitted C kernel costs: scratch, peak RAM, and per toolchain code size and stack use.

Code size and stack use are measured by compiling the kernel to an object with each toolchain
present on this machine (``size`` of the object; ``-fstack-usage``). Missing toolchains are
reported with the command that installs them.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..schedule.knobs import Knobs
from ..spec import SeparableConv2D, SpecError
from .plan import make_plan, peak_ram_bytes
from .toolchains import TOOLCHAINS, Toolchain, compile_c

if TYPE_CHECKING:  # emit.py imports this module for c_manifest_entry
    from .emit import EmittedKernel

__all__ = ["describe", "object_figures", "peak_ram", "scratch_bytes"]


def scratch_bytes(layer: SeparableConv2D, knobs: Knobs | None = None) -> int:
    """NAME_SCRATCH_BYTES of the layer's C kernel with these knobs (None: the C defaults)."""
    return make_plan(layer, knobs).scratch_bytes


def peak_ram(layer: SeparableConv2D, knobs: Knobs | None = None) -> dict[str, int]:
    """Bytes of RAM while the layer runs: {"kernel": input + output + scratch, "unfused": input +
    whole intermediate + output}. The fused kernel needs less whenever its tile is smaller than
    the output."""
    return peak_ram_bytes(make_plan(layer, knobs))


def _size_of(toolchain: Toolchain, obj: Path) -> dict[str, int]:
    # Berkeley format: "   text    data     bss     dec     hex filename", then one row.
    result = subprocess.run(
        [toolchain.size_tool, str(obj)], capture_output=True, text=True, check=True
    )
    text, data, bss = (int(v) for v in result.stdout.splitlines()[1].split()[:3])
    return {"text_bytes": text, "data_bytes": data, "bss_bytes": bss}


def _stack_of(report: str) -> int:
    """Worst-case stack bytes from a -fstack-usage report: the sum of every function's frame.

    The kernel has no recursion, so no call path holds a function twice and the sum bounds every
    path. A frame of dynamic size would make that bound meaningless, so it is an error.
    """
    total = 0
    for line in report.splitlines():
        _, frame, qualifier = line.rsplit("\t", 2)
        if qualifier.strip() == "dynamic":
            raise SpecError(f"a function of this kernel has a dynamic stack frame: {line}")
        total += int(frame)
    return total


def object_figures(source: Path, toolchain: Toolchain) -> dict[str, Any]:
    """Compile ``source`` to an object with ``toolchain``; its section sizes and stack bound.

    Returns {"flags", "text_bytes", "data_bytes", "bss_bytes", "stack_bytes"}, or
    {"unavailable": <install command>} when the toolchain is not installed.
    """
    if not toolchain.available:
        return {"unavailable": toolchain.install_hint}
    with tempfile.TemporaryDirectory() as tmp:
        obj = Path(tmp) / "kernel.o"
        compile_c(
            toolchain.compiler,
            [
                *toolchain.flags,
                "-std=c99",
                "-fstack-usage",
                "-c",
                str(Path(source).resolve()),
                "-o",
                str(obj),
            ],
            cwd=tmp,
        )
        figures = {"flags": " ".join(toolchain.flags), **_size_of(toolchain, obj)}
        figures["stack_bytes"] = _stack_of(obj.with_suffix(".su").read_text())
    return figures


def describe(
    emitted: EmittedKernel, toolchains: tuple[Toolchain, ...] = TOOLCHAINS
) -> dict[str, Any]:
    """A manifest entry for an emitted kernel: files, function, knobs, scratch, RAM, and per
    toolchain the object's code size and stack bound."""
    return {
        "function": emitted.function,
        "files": {"header": emitted.header.name, "source": emitted.source.name},
        "baked_weights": emitted.baked_weights,
        "knobs": emitted.knobs.to_dict(),
        "scratch_bytes": emitted.scratch_bytes,
        "peak_ram_bytes": peak_ram_bytes(emitted.plan),
        "toolchains": {tc.name: object_figures(emitted.source, tc) for tc in toolchains},
    }

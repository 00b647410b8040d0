"""Standalone C99 kernels from Jinja templates: no Python, TVM or OS needed to run them.

emit_c(layer, out_dir, knobs=None, weights=None)   NAME.h + NAME.c (see the header's ABI)
build_c(layer, knobs=None, cc="gcc", cflags=...)   compiled, loaded, callable from Python
c_manifest_entry(layer, out_dir, knobs=None)       emitted files and their costs, as a dict
scratch_bytes / peak_ram / object_figures          what a kernel costs in RAM, code and stack
"""

from .build import CKernel, build_c
from .emit import EmittedKernel, c_manifest_entry, emit_c
from .harness import emit_harness, parse_harness_output
from .measure import object_figures, peak_ram, scratch_bytes
from .plan import c_knobs, default_c_knobs
from .toolchains import TOOLCHAINS, Toolchain

__all__ = [
    "TOOLCHAINS",
    "CKernel",
    "EmittedKernel",
    "Toolchain",
    "build_c",
    "c_knobs",
    "c_manifest_entry",
    "default_c_knobs",
    "emit_c",
    "emit_harness",
    "object_figures",
    "parse_harness_output",
    "peak_ram",
    "scratch_bytes",
]

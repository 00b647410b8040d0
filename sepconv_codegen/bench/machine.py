"""What the results were measured on: CPU, cores, library versions, date."""

from __future__ import annotations

import datetime
import importlib.metadata
import os
import platform

from ..host import usable_cores


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo ("unknown" where there is none)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def llvm_cpu() -> str | None:
    """LLVM's name for this CPU (what our kernels are compiled for), None without TVM."""
    try:
        from ..tvm_backend import _tvm
    except ImportError:
        return None
    return _tvm.host_cpu_name()


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def machine_info(peer_versions: dict[str, str]) -> dict:
    """A JSON-ready description of this machine and the software measured on it."""
    from .. import __version__

    versions = {"sepconv_codegen": __version__, "python": platform.python_version()}
    for dist in (
        "numpy",
        "apache-tvm",
        "apache-tvm-ffi",
        "torch",
        "onnx",
        "onnxruntime",
        "ai-edge-litert",
        "matplotlib",
    ):
        versions[dist] = _version(dist)
    versions.update({f"peer:{name}": v for name, v in peer_versions.items()})
    return {
        "cpu": cpu_model(),
        "llvm_cpu": llvm_cpu(),
        "machine": platform.machine(),
        "cores_usable": usable_cores(),
        "cores_total": os.cpu_count(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "versions": versions,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }

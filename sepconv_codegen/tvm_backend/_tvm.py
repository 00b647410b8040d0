"""The one place that imports TVM.

TVM's Python API moves between releases (tir became tirx and s_tir in 2026); keeping every import
here makes the next move a small change. Importing this module also fixes three defaults of TVM 0.27
that cost a user half their machine or more:

- the thread pool: TVM assumes SMT and starts ``hardware_concurrency / 2`` workers (1 on a 2-core
  VM). ``TVM_NUM_THREADS`` must be set before the runtime starts, so it is set here, to the number
  of cores this process may use, unless the user set it;
- thread pinning: TVM pins its threads, the caller's included, to the machine's first cores
  whatever CPUs the process was given. Under ``taskset -c 1`` (or a cpuset) the caller moved to
  core 0: two 1-thread processes pinned to cores 0 and 1 then shared core 0 and each took 2.3x as
  long (2-vCPU AMD EPYC, 14x14x512 layer: 3.0 ms against 1.3 ms alone). So when this process may
  not use every CPU, ``TVM_BIND_THREADS=0`` leaves placement to the OS, within the process's
  mask, unless the user set it. Where the process has every CPU, pinning stays: unpinned, four
  MobileNetV1 blocks (2, 3, 7, 13) took 1.04-1.08x as long on 2 threads on that machine;
- ``mcpu=native`` is silently replaced by ``generic`` (SSE-only code); targets.py asks LLVM for the
  host CPU's name instead.
"""

from __future__ import annotations

import os
import sys

from ..host import usable_cores

if "tvm" not in sys.modules:
    os.environ.setdefault("TVM_NUM_THREADS", str(usable_cores()))
    if usable_cores() < (os.cpu_count() or 1):
        os.environ.setdefault("TVM_BIND_THREADS", "0")

import tvm  # noqa: E402
from tvm import te, tirx  # noqa: E402
from tvm.s_tir import Schedule, ScheduleError  # noqa: E402

__all__ = [
    "Schedule",
    "ScheduleError",
    "TVMError",
    "cpu_device",
    "host_cpu_name",
    "max_threads",
    "set_num_threads",
    "te",
    "tirx",
    "tvm",
]

# TVM 0.27 raises RuntimeError subclasses (InternalError, ScheduleError, ...) for its own failures.
TVMError = (RuntimeError, tvm.error.InternalError)


def host_cpu_name() -> str:
    """The LLVM name of this machine's CPU (e.g. 'znver3'), what mcpu=native should have meant."""
    return str(tvm.target.codegen.llvm_get_system_cpu())


def cpu_device():
    return tvm.cpu(0)


def max_threads() -> int:
    return int(tvm.get_global_func("runtime.NumThreads")())


def set_num_threads(n: int) -> int:
    """Use n worker threads (at most the startup maximum); returns the count in effect."""
    tvm.get_global_func("runtime.config_threadpool")(0, int(n))
    return max_threads()

"""Our implementation in the benchmark: a kernel from sepconv_codegen.build, bound to its arrays.

impl "tvm" builds for this machine's CPU through TVM (``target="llvm"``, with a tuning database
when given); impl "c" builds the standalone C kernel (``target="c"``). Either may be unable to
build a layer; that is recorded as the reason, not raised.
"""

from __future__ import annotations

import os

import numpy as np

from ..spec import SeparableConv2D, SpecError
from .peers import IDLE_SPIN_US, Bound

__all__ = ["Ours", "bound_tvm_spinning", "build_ours"]

# TVM's idle workers call sched_yield this many times before sleeping; at roughly 0.5 us a yield
# this is about IDLE_SPIN_US. TVM's default, 300000, keeps a core busy for about a second after
# every call (measured on a 2-core EPYC VM: ~270 ms of CPU in the second after the last call).
TVM_SPIN_COUNT = str(2 * IDLE_SPIN_US)


def bound_tvm_spinning() -> None:
    """Bound the TVM pool's idle spinning in this process, unless the user chose a value.

    TVM reads the variable once, when its first worker starts, so this must run before the first
    parallel TVM kernel call of the process.
    """
    os.environ.setdefault("TVM_THREAD_POOL_SPIN_COUNT", TVM_SPIN_COUNT)


class Ours:
    """A built kernel (or the reason there is none) and how to run it at a thread count."""

    def __init__(self, impl: str, kernel=None, failure: str | None = None) -> None:
        self.impl = impl
        self.kernel = kernel
        self.failure = failure
        self.threads_in_effect: int | None = None

    def _set_threads(self, threads: int) -> int:
        if self.impl == "tvm":
            from ..tvm_backend import _tvm

            return _tvm.set_num_threads(threads)
        setter = getattr(self.kernel, "set_num_threads", None)
        if setter is not None:
            return int(setter(threads) or threads)
        return 1  # a C kernel without thread control runs on the calling thread

    def bind(self, arrays: list[np.ndarray], threads: int) -> Bound:
        """The kernel at ``threads`` threads (or as many as it can use; see threads_in_effect)."""
        self.threads_in_effect = self._set_threads(threads)
        bias = arrays[3] if len(arrays) > 3 else None
        run = self.kernel.bind(arrays[0], arrays[1], arrays[2], bias)
        out = run()
        notes = f"{self.kernel.name} ({self.kernel.schedule_source} schedule)"
        if self.threads_in_effect != threads:
            notes += f"; runs on {self.threads_in_effect} thread(s), not {threads}"
        details = {
            "kernel": self.kernel.name,
            "schedule": self.kernel.schedule_source,
            "threads_in_effect": self.threads_in_effect,
        }
        return Bound(run, lambda: np.array(out), notes, details)


def build_ours(layer: SeparableConv2D, impl: str, database=None) -> Ours:
    """Build our kernel for ``layer``; an Ours carrying the reason when that is not possible."""
    import sepconv_codegen

    try:
        if impl == "c":
            kernel = sepconv_codegen.build(layer, target="c")
        else:
            kernel = sepconv_codegen.build(layer, target="llvm", database=database)
    except ImportError as err:
        what = "the C backend" if impl == "c" else "the TVM backend"
        return Ours(impl, failure=f"skipped, {what} is not available here ({err})")
    except (SpecError, NotImplementedError) as err:
        return Ours(impl, failure=f"cannot build this layer: {err}")
    except Exception as err:  # noqa: BLE001 - a backend bug: report it, keep timing the peers
        return Ours(impl, failure=f"build failed: {type(err).__name__}: {err}".splitlines()[0])
    return Ours(impl, kernel)

"""Our other backend as a peer: `bench --impl c --vs sepconv-tvm` times the standalone C kernels
against the TVM kernels in the same interleaved run (and `--impl tvm --vs sepconv-c` the reverse).
"""

from __future__ import annotations

import numpy as np

from ..spec import SeparableConv2D, SpecError
from .ours import build_ours
from .peers import Bound, Peer


class _SepconvPeer(Peer):
    impl = ""
    dtypes = ("float32",)
    database = None  # the TVM peer's tuning database: bench --database sets it

    def version(self) -> str:
        from .. import __version__

        return __version__

    def build(self, layer: SeparableConv2D, arrays: list[np.ndarray], threads: int) -> Bound:
        ours = build_ours(layer, self.impl, self.database if self.impl == "tvm" else None)
        if ours.failure:
            raise SpecError(f"{self.name}: {ours.failure}")
        return ours.bind(arrays, threads)


class SepconvTVMPeer(_SepconvPeer):
    name = "sepconv-tvm"
    impl = "tvm"


class SepconvCPeer(_SepconvPeer):
    name = "sepconv-c"
    impl = "c"

"""The peers a layer is compared with, behind one small interface.

A peer turns a layer and its TF-layout arrays into a :class:`Bound` operation at a thread count.
Each peer lives in its own module and imports its framework only when it builds, so a missing
package makes that peer unavailable (with the pip extra to install) instead of breaking the
benchmark.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
from collections.abc import Callable

import numpy as np

from ..spec import SeparableConv2D, SpecError

__all__ = ["PEER_NAMES", "Bound", "Peer", "PeerUnavailable", "get_peer", "parse_peer_names"]

INSTALL_HINT = "pip install 'sepconv_codegen[bench]'"

# name -> (module under sepconv_codegen.bench, class)
_REGISTRY = {
    "torch": ("torch_peer", "TorchPeer"),
    "onnxruntime": ("onnx_peer", "OnnxRuntimePeer"),
    "tflite": ("tflite_peer", "TFLitePeer"),
    # Our own other backend, to compare the TVM and C kernels in one run.
    "sepconv-tvm": ("self_peer", "SepconvTVMPeer"),
    "sepconv-c": ("self_peer", "SepconvCPeer"),
}
# The frameworks compared by default; the sepconv-* entries are asked for by name.
PEER_NAMES = ("torch", "onnxruntime", "tflite")
KNOWN_PEERS = tuple(_REGISTRY)

# How long an idle thread pool may spin before sleeping, where a runtime lets us say so (see
# timing.py for why it matters when implementations are interleaved on a small machine).
IDLE_SPIN_US = 1000


class PeerUnavailable(Exception):
    """A peer that cannot run here (package missing, dtype unsupported); str() says why."""


class Bound:
    """One implementation, ready to run: calling it runs the operation once, which is what is timed.

    ``output()`` returns the result of the last call as an NHWC numpy array (not timed: peers whose
    native layout is NCHW convert there). ``notes`` says in a few words how it runs, for the report;
    ``details`` holds facts for the JSON results (e.g. whether a delegate was applied).
    """

    def __init__(
        self,
        run: Callable[[], object],
        output: Callable[[], np.ndarray],
        notes: str = "",
        details: dict | None = None,
    ) -> None:
        self.run = run
        self.output = output
        self.notes = notes
        self.details = dict(details or {})

    def __call__(self) -> object:
        return self.run()


class Peer:
    """A framework that computes a separable layer; subclasses set the attributes and build()."""

    name: str = ""
    modules: tuple[str, ...] = ()  # import names that must be present
    distribution: str = ""  # the pip distribution whose version is reported
    dtypes: tuple[str, ...] = ("float32",)

    def unavailable_reason(self) -> str | None:
        """None when the peer can run here, else one line saying why not and how to fix it."""
        missing = [m for m in self.modules if importlib.util.find_spec(m) is None]
        if missing:
            return (
                f"{self.name}: skipped, Python package {missing[0]!r} is not installed "
                f"({INSTALL_HINT})"
            )
        return None

    def unsupported_reason(self, layer: SeparableConv2D) -> str | None:
        """None when this peer can compute ``layer``, else why not."""
        if layer.dtype not in self.dtypes:
            return (
                f"{self.name} is benchmarked for {', '.join(self.dtypes)} only, not {layer.dtype}"
            )
        return None

    def version(self) -> str:
        try:
            return importlib.metadata.version(self.distribution)
        except importlib.metadata.PackageNotFoundError:
            return "unknown"

    def build(self, layer: SeparableConv2D, arrays: list[np.ndarray], threads: int) -> Bound:
        """The layer with these weights (input, dw, pw[, bias], TF layouts) at ``threads`` threads.

        The input is converted to the peer's own layout here, once, not in the timed call.
        """
        raise NotImplementedError


def get_peer(name: str) -> Peer:
    """The peer called ``name`` (one of PEER_NAMES); SpecError for any other name."""
    if name not in _REGISTRY:
        raise SpecError(f"unknown peer {name!r} (known: {', '.join(KNOWN_PEERS)})")
    module_name, class_name = _REGISTRY[name]
    module = importlib.import_module(f"{__package__}.{module_name}")
    return getattr(module, class_name)()


def parse_peer_names(text: str | None) -> tuple[str, ...]:
    """'torch,tflite' -> ('torch', 'tflite'); '' or 'none' -> (); SpecError on an unknown name."""
    if text is None or text.strip().lower() in ("", "none"):
        return ()
    names = [part.strip() for part in text.split(",")]
    for name in names:
        if name not in _REGISTRY:
            raise SpecError(f"unknown peer {name!r} (known: {', '.join(KNOWN_PEERS)}, or none)")
    return tuple(dict.fromkeys(names))

"""What a benchmark produced: per layer and thread count, each implementation's check and times.

Ratios are speedups: a peer's median time over ours, so 1.5 means ours takes two thirds of the
time, and below 1 means the peer is faster.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..spec import SeparableConv2D
from .roofline import Roofline, layer_bytes
from .timing import Samples

__all__ = ["BenchResult", "ImplResult", "LayerRun"]

OURS = "ours"


@dataclass
class ImplResult:
    """One implementation of one layer at one thread count."""

    name: str
    samples: Samples | None = None  # None: not timed (see failure)
    error: float | None = None  # max |got - ref| / max(1, max |ref|)
    ok: bool = False  # error within tolerance
    notes: str = ""
    details: dict = field(default_factory=dict)
    failure: str | None = None  # why it did not run at all

    @property
    def timed(self) -> bool:
        return self.samples is not None

    @property
    def median(self) -> float | None:
        return self.samples.median if self.samples else None

    @property
    def status(self) -> str:
        if self.failure:
            return "skipped"
        return "ok" if self.ok else "wrong"

    def to_dict(self, flops: int) -> dict[str, Any]:
        data: dict[str, Any] = {"status": self.status, "error": self.error, "notes": self.notes}
        if self.failure:
            data["reason"] = self.failure
        if self.samples:
            data.update(self.samples.to_dict())
            data["gflops"] = flops / self.samples.median / 1e9
            data["samples_s"] = list(self.samples.seconds)
        if self.details:
            data["details"] = self.details
        return data


@dataclass
class LayerRun:
    """Every implementation of one layer at one thread count."""

    layer: SeparableConv2D
    threads: int
    results: dict[str, ImplResult]
    bound_s: float | None = None  # roofline time at this thread count
    threads_effective: int | None = None  # threads our kernel actually used

    @property
    def ours(self) -> ImplResult:
        return self.results[OURS]

    def valid_peers(self) -> list[ImplResult]:
        """Peers that ran and matched the reference: the only ones that can be 'best'."""
        return [r for n, r in self.results.items() if n != OURS and r.timed and r.ok]

    @property
    def best_peer(self) -> ImplResult | None:
        peers = self.valid_peers()
        return min(peers, key=lambda r: r.median) if peers else None

    @property
    def speedup(self) -> float | None:
        """Best peer's median over ours (>1: ours is faster); None if either is missing, or if
        ours failed the reference check (a wrong kernel's speed means nothing)."""
        best = self.best_peer
        if best is None or not self._ours_valid:
            return None
        return best.median / self.ours.median

    @property
    def _ours_valid(self) -> bool:
        return self.ours.timed and self.ours.ok

    @property
    def ours_gflops(self) -> float | None:
        return self.layer.flops / self.ours.median / 1e9 if self._ours_valid else None

    @property
    def roofline_fraction(self) -> float | None:
        if self.bound_s is None or not self._ours_valid:
            return None
        return self.bound_s / self.ours.median

    def to_dict(self) -> dict[str, Any]:
        best = self.best_peer
        return {
            "layer": self.layer.name,
            "spec": self.layer.to_dict(),
            "threads": self.threads,
            "threads_effective_ours": self.threads_effective,
            "flops": self.layer.flops,
            "bytes": layer_bytes(self.layer),
            "roofline_bound_s": self.bound_s,
            "roofline_fraction_ours": self.roofline_fraction,
            "best_peer": best.name if best else None,
            "speedup_vs_best_peer": self.speedup,
            "impls": {n: r.to_dict(self.layer.flops) for n, r in self.results.items()},
        }


def _sum(values: list[float | None]) -> float | None:
    return None if not values or any(v is None for v in values) else float(sum(values))


def _ratio(num: float | None, den: float | None) -> float | None:
    return num / den if num is not None and den else None


@dataclass
class BenchResult:
    """Everything run_benchmark measured, with the machine and settings it was measured under."""

    network: str
    impl: str
    threads: tuple[int, ...]
    peers: tuple[str, ...]  # requested
    skipped: dict[str, str]  # peer -> why it did not run at all
    runs: list[LayerRun]
    roofline: Roofline
    machine: dict[str, Any]
    settings: dict[str, Any]

    def runs_at(self, threads: int) -> list[LayerRun]:
        return [r for r in self.runs if r.threads == threads]

    def impl_names(self) -> list[str]:
        names = [OURS]
        for run in self.runs:
            names += [n for n in run.results if n not in names]
        return names

    def totals(self, threads: int) -> dict[str, Any]:
        """Sums of per-layer medians at ``threads``.

        An implementation's total is None when some layer has no checked time for it (not run,
        or wrong); ``seconds_including_wrong`` still sums what was timed.
        """
        runs = self.runs_at(threads)
        per_impl, timed_all = {}, {}
        for name in self.impl_names():
            results = [r.results.get(name) for r in runs]
            timed = [x.median if x is not None and x.timed else None for x in results]
            valid = [t if x is not None and x.ok else None for t, x in zip(timed, results)]
            per_impl[name] = _sum(valid)
            timed_all[name] = _sum(timed)
        ours = per_impl.get(OURS)
        peers = {n: t for n, t in per_impl.items() if n != OURS and t is not None}
        best_total_peer = min(peers, key=peers.get) if peers else None
        per_layer_best = _sum([r.best_peer.median if r.best_peer else None for r in runs])
        flops = sum(r.layer.flops for r in runs)
        bound = _sum([r.bound_s for r in runs])
        return {
            "seconds": per_impl,
            # Also summed where some layer failed the reference check: shown, never compared.
            "seconds_including_wrong": timed_all,
            "speedup_vs": {n: _ratio(t, ours) for n, t in peers.items()},
            "best_peer_by_total": best_total_peer,
            "speedup_vs_best_peer_total": _ratio(peers.get(best_total_peer), ours),
            "per_layer_best_peer_s": per_layer_best,
            "speedup_vs_per_layer_best": _ratio(per_layer_best, ours),
            "ours_gflops": _ratio(flops / 1e9, ours),
            "roofline_bound_s": bound,
            "roofline_fraction_ours": _ratio(bound, ours),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": "sepconv_codegen.bench/1",
            "network": self.network,
            "impl": self.impl,
            "threads": list(self.threads),
            "peers_requested": list(self.peers),
            "peers_skipped": dict(self.skipped),
            "machine": self.machine,
            "roofline": self.roofline.to_dict(),
            "settings": self.settings,
            "layers": [r.to_dict() for r in self.runs],
            "totals": {str(t): self.totals(t) for t in self.threads},
        }

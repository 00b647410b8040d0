"""Benchmark results as a text table and as JSON."""

from __future__ import annotations

import json
import os
from pathlib import Path

from .results import BenchResult, ImplResult, LayerRun

__all__ = ["describe_machine", "format_header", "format_row", "format_summary", "layer_width", "write_json"]

_LAYER_W = 12


def layer_width(layer_names) -> int:
    """The layer column's width: 12, or the longest name (names are never cut: two layers whose
    names differ only past the 12th character must stay apart)."""
    return max(_LAYER_W, *(len(name) for name in layer_names))


def _impl_width(name: str) -> int:
    return max(9, len(name) + 3)


def _time_cell(result: ImplResult | None, width: int) -> str:
    """Median in ms; '!' marks a result that failed the reference check, '-' one not timed."""
    if result is None or not result.timed:
        return f"{'-':>{width}}"
    mark = "" if result.ok else "!"
    return f"{result.median * 1e3:>{width - 1}.3f}{mark or ' '}"


def _fmt(value: float | None, spec: str, width: int, suffix: str = "") -> str:
    return f"{'-':>{width}}" if value is None else f"{format(value, spec) + suffix:>{width}}"


def format_header(names: list[str], threads: int, width: int = _LAYER_W) -> str:
    """The column titles of the per-layer table at one thread count."""
    cells = [f"{'layer':<{width}}", f"{'MFLOP':>7}"]
    cells += [f"{n + ' ms':>{_impl_width(n)}}" for n in names]
    cells += [f"{'best peer':>12}", f"{'speedup':>8}", f"{'GFLOP/s':>8}", f"{'roofline':>9}"]
    line = " ".join(cells)
    title = f"threads {threads}: median ms per call; speedup = best peer / ours (>1: ours faster)"
    return f"{title}\n{line}\n{'-' * len(line)}"


def format_row(run: LayerRun, names: list[str], width: int = _LAYER_W) -> str:
    """One layer at one thread count."""
    best = run.best_peer
    cells = [f"{run.layer.name:<{width}}", f"{run.layer.flops / 1e6:>7.1f}"]
    cells += [_time_cell(run.results.get(n), _impl_width(n)) for n in names]
    cells += [
        f"{best.name if best else '-':>12}",
        _fmt(run.speedup, ".2f", 8, "x"),
        _fmt(run.ours_gflops, ".1f", 8),
        _fmt(_pct(run.roofline_fraction), ".0f", 9, "%"),
    ]
    return " ".join(cells)


def _pct(fraction: float | None) -> float | None:
    return None if fraction is None else 100 * fraction


def _total_row(result: BenchResult, threads: int, names: list[str], width: int) -> str:
    totals = result.totals(threads)
    flops = sum(r.layer.flops for r in result.runs_at(threads))
    label = f"total {threads}t"
    cells = [f"{label:<{width}}", f"{flops / 1e6:>7.1f}"]
    for n in names:
        seconds, mark = totals["seconds"].get(n), " "
        if seconds is None and totals["seconds_including_wrong"].get(n) is not None:
            seconds, mark = totals["seconds_including_wrong"][n], "!"
        cells.append(
            _fmt(None if seconds is None else seconds * 1e3, ".3f", _impl_width(n) - 1) + mark
        )
    best = totals["best_peer_by_total"]
    cells += [
        f"{best or '-':>12}",
        _fmt(totals["speedup_vs_best_peer_total"], ".2f", 8, "x"),
        _fmt(totals["ours_gflops"], ".1f", 8),
        _fmt(_pct(totals["roofline_fraction_ours"]), ".0f", 9, "%"),
    ]
    return " ".join(cells)


def _problems(result: BenchResult) -> list[str]:
    """Lines about anything a reader must know: wrong results, skips, missing delegates."""
    lines, seen = [], set()
    for run in result.runs:
        for name, r in run.results.items():
            if r.failure:
                key = (name, r.failure)
                if key not in seen:
                    seen.add(key)
                    lines.append(f"{name} not run on {run.layer.name}: {r.failure}")
            elif not r.ok:
                excluded = ("no speedup, GFLOP/s or roofline given; bench exits 1" if name == "ours"
                            else "excluded from best peer")
                lines.append(
                    f"{name} FAILED the reference check on {run.layer.name} at "
                    f"{run.threads} thread(s): relative error {r.error:.3g} "
                    f"(marked '!', {excluded})"
                )
            elif r.details.get("xnnpack") is False and (name, "xnnpack") not in seen:
                seen.add((name, "xnnpack"))
                lines.append(f"{name}: the XNNPACK delegate was NOT applied; built-in kernels ran")
        if (
            run.threads_effective not in (None, run.threads)
            and ("threads", run.threads) not in seen
        ):
            seen.add(("threads", run.threads))
            why = (
                "TVM cannot exceed the thread count it started with, TVM_NUM_THREADS"
                if result.impl == "tvm"
                else "the C kernel has no thread control"
            )
            lines.append(
                f"ours ({result.impl}) ran on {run.threads_effective} thread(s) when "
                f"{run.threads} were asked ({why})"
            )
    return lines


def format_summary(result: BenchResult) -> str:
    """Totals per thread count (sums of per-layer medians), then anything that went wrong."""
    names = result.impl_names()
    width = layer_width(run.layer.name for run in result.runs)
    header = format_header(names, 0, width).splitlines()[1]
    out = [
        "totals: sums of the per-layer medians; speedup = best peer's total / ours",
        header,
        "-" * len(header),
    ]
    out += [_total_row(result, t, names, width) for t in result.threads]
    for t in result.threads:
        totals = result.totals(t)
        if totals["speedup_vs_per_layer_best"] is not None:
            out.append(
                f"  {t} thread(s): against the best peer of each layer "
                f"({totals['per_layer_best_peer_s'] * 1e3:.3f} ms in all) ours is "
                f"{totals['speedup_vs_per_layer_best']:.2f}x"
            )
    notes = [f"not compared with {why}" for why in result.skipped.values()]
    notes += _problems(result)
    if notes:
        out.append("notes:")
        out += [f"  {line}" for line in notes]
    return "\n".join(out)


def describe_machine(result: BenchResult) -> str:
    """Two lines: the machine and software, and the measured roofline at each thread count."""
    m, roof = result.machine, result.roofline
    versions = m.get("versions", {})
    peers = ", ".join(
        f"{n} {versions.get(f'peer:{n}')}" for n in result.peers if versions.get(f"peer:{n}")
    )
    llvm = f" ({m['llvm_cpu']})" if m.get("llvm_cpu") else ""
    machine = (
        f"machine: {m.get('cpu')}{llvm}, {m.get('cores_usable')} core(s); "
        f"TVM {versions.get('apache-tvm')}" + (f"; {peers}" if peers else "")
    )
    parts = [
        f"{t} thread(s) {roof.peak_flops(t) / 1e9:.0f} GFLOP/s, {roof.bandwidth[t] / 1e9:.1f} GB/s"
        for t in result.threads
    ]
    return machine + f"\nroofline (peak from {roof.peak_gauge}, x threads): " + "; ".join(parts)


def write_json(result: BenchResult, path: str | os.PathLike) -> Path:
    """Write the full results (every sample included) as indented JSON."""
    path = Path(path)
    if path.parent and not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result.to_dict(), indent=1, sort_keys=False) + "\n")
    return path

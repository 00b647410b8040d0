"""A PNG chart of benchmark results: per layer, grouped bars of GFLOP/s, one panel per thread count.

Throughput rather than time, so that layers of very different sizes share one axis; the black tick
over each group is the layer's roofline bound at that thread count. A hatched bar failed the
reference check.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..spec import SpecError
from .results import OURS, BenchResult

__all__ = ["write_png"]

_OURS_COLOR = "#d62728"
_PEER_COLORS = ["#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]


def require_pyplot():
    """matplotlib.pyplot on the Agg backend; a SpecError saying how to install it if missing."""
    try:
        import matplotlib
    except ImportError:
        raise SpecError("--png needs matplotlib (pip install 'sepconv_codegen[bench]')") from None
    matplotlib.use("Agg")  # no display needed, and never a window
    import matplotlib.pyplot as plt

    return plt


def _panel(ax, result: BenchResult, threads: int, names: list[str]) -> None:
    runs = result.runs_at(threads)
    width = 0.8 / len(names)
    colors = {OURS: _OURS_COLOR}
    colors.update({n: _PEER_COLORS[i % len(_PEER_COLORS)] for i, n in enumerate(names[1:])})
    for k, name in enumerate(names):
        xs, ys, hatches = [], [], []
        for i, run in enumerate(runs):
            r = run.results.get(name)
            if r is None or not r.timed:
                continue
            xs.append(i - 0.4 + width * (k + 0.5))
            ys.append(run.layer.flops / r.median / 1e9)
            hatches.append("" if r.ok else "//")
        label = f"ours ({result.impl})" if name == OURS else name
        bars = ax.bar(
            xs, ys, width, label=label, color=colors[name], edgecolor="white", linewidth=0.3
        )
        for bar, hatch in zip(bars, hatches):
            bar.set_hatch(hatch)
    tallest = max((b.get_height() for b in ax.patches), default=1.0)
    # Tiny layers have bounds far above anything reachable (their bytes sit in cache, not DRAM):
    # cap the axis so the bars stay readable, and write the value of a bound that is cut off.
    top = 1.15 * tallest
    bounds = [run.layer.flops / run.bound_s / 1e9 if run.bound_s else None for run in runs]
    top = max(top, min(max((b for b in bounds if b), default=top), 2.5 * tallest) * 1.05)
    for i, bound in enumerate(bounds):
        if bound is None:
            continue
        shown = min(bound, top * 0.97)
        ax.hlines(
            shown,
            i - 0.42,
            i + 0.42,
            colors="black",
            linewidth=1.2,
            linestyles="solid" if bound <= top else "dotted",
            label="roofline bound" if i == 0 else None,
        )
        if bound > top:
            ax.annotate(
                f"bound {bound:.0f}",
                (i, shown),
                textcoords="offset points",
                xytext=(0, -9),
                ha="center",
                fontsize=6,
            )
    ax.set_ylim(0, top)
    ax.set_xticks(range(len(runs)))
    ax.set_xticklabels([r.layer.name for r in runs], rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("GFLOP/s (higher is better)")
    ax.set_title(f"{threads} thread{'s' if threads > 1 else ''}", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)


def write_png(result: BenchResult, path: str | os.PathLike) -> Path:
    """Draw the chart to ``path`` (PNG, via matplotlib's Agg backend)."""
    plt = require_pyplot()
    names = result.impl_names()
    panels = len(result.threads)
    layers = max(len(result.runs_at(t)) for t in result.threads)
    fig, axes = plt.subplots(
        panels, 1, figsize=(max(7.0, 0.75 * layers + 3), 3.6 * panels), squeeze=False
    )
    for ax, t in zip(axes[:, 0], result.threads):
        _panel(ax, result, t, names)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    if any(r.timed and not r.ok for run in result.runs for r in run.results.values()):
        from matplotlib.patches import Patch

        handles.append(Patch(facecolor="white", edgecolor="gray", hatch="//"))
        labels.append("failed the reference check")
    columns = min(len(labels), 4)  # more would run past a narrow chart's edges
    top_inches = 0.2 + 0.17 * -(-len(labels) // columns)
    fig.legend(
        handles,
        labels,
        loc="upper center",
        ncol=columns,
        fontsize=8,
        frameon=False,
        bbox_to_anchor=(0.5, 1 - 0.45 / fig.get_figheight()),
    )
    cpu = result.machine.get("cpu", "")
    llvm = result.machine.get("llvm_cpu")
    dtypes = ", ".join(sorted({r.layer.dtype for r in result.runs}))
    versions = result.machine.get("versions", {})
    runs = result.settings.get("runs")
    fig.suptitle(
        f"{result.network}: separable conv layers ({dtypes}) - {cpu}"
        + (f" ({llvm})" if llvm else "")
        + f"\n{result.machine.get('date', '')}, sepconv_codegen "
        f"{versions.get('sepconv_codegen', '?')}, TVM {versions.get('apache-tvm', '?')}, "
        f"medians of {runs} rounds",
        fontsize=10,
        y=1 - 0.05 / fig.get_figheight(),
        va="top",
    )
    fig.tight_layout(rect=(0, 0, 1, 1 - top_inches / fig.get_figheight()))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)
    return path

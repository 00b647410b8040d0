"""`bench`: time our kernels against PyTorch, ONNX Runtime and TFLite on every layer of a spec."""

from __future__ import annotations

import argparse
import math
import sys

from ..bench import report
from ..bench.peers import PEER_NAMES, parse_peer_names
from ..bench.runner import DEFAULT_RUNS, IMPLS, parse_threads, run_benchmark
from ..host import usable_cores
from ..kernel import output_file
from ..spec import SpecError
from ..tuning.records import check_database
from .common import add_spec_argument, network_from_args


def _default_threads() -> str:
    return ",".join(str(t) for t in dict.fromkeys((1, usable_cores())))


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="benchmark our kernels against PyTorch, ONNX Runtime and TFLite",
        description="Check every implementation against the reference, then time ours and each "
        "peer interleaved, layer by layer, at each thread count. Peers need "
        "pip install 'sepconv_codegen[bench]'.",
    )
    add_spec_argument(parser)
    parser.add_argument(
        "--threads",
        default=_default_threads(),
        help="comma-separated thread counts (default: 1 and all cores)",
    )
    parser.add_argument(
        "--vs",
        default=",".join(PEER_NAMES),
        help=f"comma-separated peers: {', '.join(PEER_NAMES)}, or none (default: all)",
    )
    parser.add_argument(
        "--impl",
        choices=IMPLS,
        default="tvm",
        help="ours: TVM for this CPU (tvm) or the standalone C kernel (c)",
    )
    parser.add_argument(
        "--runs",
        type=int,
        default=DEFAULT_RUNS,
        help=f"timed rounds per layer; medians (default {DEFAULT_RUNS})",
    )
    parser.add_argument(
        "--loop-ms",
        type=float,
        default=0.0,
        metavar="MS",
        help="time each round as the mean of back-to-back calls over at least MS milliseconds "
        "(default 0: one call per round, after a pause and a warm-up)",
    )
    parser.add_argument("--json", default=None, metavar="PATH", help="write the results as JSON")
    parser.add_argument("--png", default=None, metavar="PATH", help="write a chart as PNG")
    parser.add_argument(
        "--database",
        default=None,
        metavar="PATH",
        help="a tuning database to take our TVM schedules from",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    threads = parse_threads(args.threads, "--threads")
    peers = parse_peer_names(args.vs)
    if args.runs < 1:
        raise SpecError(f"--runs must be a positive integer, got {args.runs}")
    if not math.isfinite(args.loop_ms) or args.loop_ms < 0:
        raise SpecError(f"--loop-ms must be zero or a finite number of milliseconds, got {args.loop_ms:g}")
    # Output files are checked before any work: a bench takes minutes, and its results would be lost.
    if args.database is not None:
        check_database(args.database, "--database")
    for option in ("json", "png"):
        if getattr(args, option) is not None:
            output_file(getattr(args, option), f"--{option}")
    if args.png is not None:
        if not str(args.png).lower().endswith(".png"):
            raise SpecError(f"--png {args.png!r} must name a .png file")
        from ..bench.chart import require_pyplot

        require_pyplot()  # matplotlib missing: say so now, not after the run
    network = network_from_args(args)
    width = report.layer_width(layer.name for layer in network)
    names: list[str] = []
    current: list[int] = []

    def log(message: str) -> None:
        print(message, flush=True)

    def on_run(run) -> None:
        if not current or current[0] != run.threads:
            if current:
                print()
            current[:] = [run.threads]
            names[:] = list(run.results)
            print(report.format_header(names, run.threads, width), flush=True)
        print(report.format_row(run, names, width), flush=True)

    print(
        f"bench {network.name}: {len(network)} layer(s), ours = {args.impl}, "
        f"peers = {', '.join(peers) or 'none'}, threads = {','.join(map(str, threads))}, "
        f"{args.runs} rounds" + (f" of {args.loop_ms:g} ms loops" if args.loop_ms else ""),
        flush=True,
    )
    result = run_benchmark(
        network,
        threads,
        peers,
        args.impl,
        args.runs,
        database=args.database,
        loop_s=args.loop_ms / 1e3,
        log=log,
        on_run=on_run,
    )
    print()
    print(report.describe_machine(result))
    print(report.format_summary(result))
    if args.json is not None:
        print(f"wrote {report.write_json(result, args.json)}")
    if args.png is not None:
        from ..bench.chart import write_png

        print(f"wrote {write_png(result, args.png)}")
    sys.stdout.flush()
    wrong = sorted({run.layer.name for run in result.runs if run.ours.timed and not run.ours.ok})
    if wrong:
        print(f"error: ours differs from the reference on {', '.join(wrong)}", file=sys.stderr)
        return 1
    return 0

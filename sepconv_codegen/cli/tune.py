"""`tune`: search schedules for every layer of a spec, on this machine, into a database."""

from __future__ import annotations

import argparse
import sys

from ..bench.runner import parse_threads
from ..builder import check_indexable
from ..spec import SpecError
from ..targets import resolve_target
from ..tuning.database import check_writable
from ..tuning.measure import LocalRunner, check_timeout
from ..tuning.tuner import DEFAULT_TRIALS, TuneProgress, check_runs_here, tune
from .common import add_spec_argument, add_target_argument, network_from_args


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "tune", help="search the fastest schedule for every layer; resumable",
        description="Measure candidate schedules per layer and append every trial to a JSON-lines "
                    "database; a rerun resumes where a killed session stopped.",
    )
    add_spec_argument(parser)
    add_target_argument(parser)
    parser.add_argument("--trials", type=int, default=DEFAULT_TRIALS,
                        help=f"candidates per layer (default {DEFAULT_TRIALS})")
    parser.add_argument("--db", default="sepconv_tuning.jsonl",
                        help="the database file (default: ./sepconv_tuning.jsonl)")
    parser.add_argument("--timeout", type=float, default=120.0,
                        help="seconds before a candidate is abandoned as hung (default 120)")
    parser.add_argument("--threads", default=None,
                        help="threads while timing, e.g. 1 or 1,2: with several, a candidate's "
                             "time is the geometric mean over them (default: all cores)")
    parser.add_argument("--rpc", default=None, metavar="HOST:PORT",
                        help="measure on devices registered with a TVM RPC tracker")
    parser.add_argument("--key", default=None, help="the device key at the RPC tracker")
    parser.add_argument("--session-timeout", type=float, default=None, metavar="SECONDS",
                        help="with --rpc: a device's server ends a session this old, which frees "
                             "a board whose kernel hangs; 0: never (default 600)")
    parser.set_defaults(func=run)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s"


def _print_progress(p: TuneProgress) -> None:
    best = "-" if p.best_seconds is None else (
        f"{p.best_seconds * 1e3:.3f} ms ({p.layer.flops / p.best_seconds / 1e9:.1f} GFLOP/s)")
    note = f"  [{p.message}]" if p.message else ""
    print(f"{p.layer.name:<10} trial {p.trial:>3}/{p.trials:<3} best {best:<28} "
          f"elapsed {_duration(p.elapsed)}  left ~{_duration(p.remaining)}{note}", flush=True)


def _runner(args):
    if args.rpc:
        from ..tuning.rpc import rpc_runner_from_args

        return rpc_runner_from_args(args)
    if args.key or args.session_timeout is not None:
        raise SpecError("--key and --session-timeout are only meaningful with --rpc HOST:PORT")
    threads = None if args.threads is None else parse_threads(args.threads, "--threads")
    return LocalRunner(timeout=args.timeout, threads=threads)


def run(args: argparse.Namespace) -> int:
    if args.trials < 1:
        raise SpecError(f"--trials must be a positive integer, got {args.trials}")
    check_timeout(args.timeout, "--timeout")  # nan or inf would fail every candidate
    if args.threads is not None:
        parse_threads(args.threads, "--threads")  # a clear error before any work
    network = network_from_args(args)
    target = resolve_target(args.target)
    if not args.rpc:
        check_runs_here(target)
    for layer in network:
        check_indexable(layer)
    check_writable(args.db, "--db")  # not after the first trial
    runner = _runner(args)
    timed = (f"on devices with key {args.key!r} at {args.rpc}" if args.rpc else
             f"on {args.threads} thread(s)" if args.threads else "on all cores")
    described = target.description.replace(", all cores", "") if args.threads else target.description
    print(f"tuning {len(network)} layers for {described}, timed {timed}; "
          f"database {args.db}")
    try:
        results = tune(network, target, database=args.db, trials=args.trials, runner=runner,
                       progress=_print_progress)
    finally:
        runner.close()
    print(f"\n{'layer':<10} {'trials':>6} {'failed':>6} {'resumed':>7} {'best ms':>9} {'GFLOP/s':>8}  knobs")
    for r in results:
        ms = f"{r.seconds * 1e3:9.3f}" if r.seconds else f"{'-':>9}"
        gf = f"{r.layer.flops / r.seconds / 1e9:8.1f}" if r.seconds else f"{'-':>8}"
        knobs = r.best.tag if r.best else "none (all candidates failed)"
        if r.best and not r.confirmed:
            knobs += " (fastest trial, not confirmed: its re-timing and check did not run)"
        print(f"{r.layer.name:<10} {r.trials:>6} {r.failed:>6} {r.resumed:>7} {ms} {gf}  {knobs}")
        for err in r.errors[:3]:
            print(f"           failed: {err}", file=sys.stderr)
    return 0 if all(r.best and r.confirmed for r in results) else 1

"""The tuner: search each layer's schedule space, measure candidates, keep the best.

For each layer: measure up to ``trials`` candidates from the space (the default first), appending a
record to the database after each; then re-time the leaders interleaved, several rounds, because
on a shared machine the gap between the top few is smaller than the noise of one measurement;
check the winner against the reference; record it as confirmed. A rerun skips what the database
already holds, so a killed session resumes where it stopped.
"""

from __future__ import annotations

import os
import random
import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Iterable

from ..builder import check_indexable
from ..schedule.knobs import Knobs
from ..spec import Network, SeparableConv2D, SpecError
from ..targets import Target, resolve_target
from .database import Database, Record, check_writable, versions
from .measure import LocalRunner, Measurement

__all__ = ["LayerResult", "TuneProgress", "tune"]

DEFAULT_TRIALS = 24
LEADERS = 4
LEADER_ROUNDS = 3


@dataclass(frozen=True)
class TuneProgress:
    layer: SeparableConv2D
    trial: int
    trials: int
    best_seconds: float | None
    elapsed: float
    remaining: float | None  # estimated seconds left in the whole session
    message: str = ""


@dataclass
class LayerResult:
    layer: SeparableConv2D
    best: Knobs | None
    seconds: float | None
    trials: int
    failed: int
    resumed: int  # trials found in the database from an earlier session
    errors: list[str] = field(default_factory=list)
    confirmed: bool = False  # best was re-timed and checked against the reference; else it is
                             # the fastest single trial (its confirmation could not run)


def _space(layer: SeparableConv2D, target: Target) -> list[Knobs]:
    return target.schedule_space().search_space(layer, target)


def _record(layer, target, knobs, m: Measurement | None, stage: str, seconds=None, error=None,
            setting=None) -> Record:
    return Record(
        workload=layer.workload_key, target=target.key, knobs=knobs,
        status="failed" if error else "ok", seconds=seconds, error=error, versions=versions(),
        layer=layer.to_dict(), timestamp=time.time(), stage=stage, setting=setting or {},
        retry=bool(error and m is not None and m.retry),
        timeout_s=m.timeout_s if error and m is not None else None,
    )


def _setting(runner) -> dict:
    """How the runner times candidates (threads, RPC key): records made otherwise are another
    measurement, which a resumed session neither counts nor compares with."""
    return dict(getattr(runner, "setting", None) or {})


def _history(db: Database, layer: SeparableConv2D, target: Target, setting: dict) -> list[Record]:
    """The database's records for this layer and target, made by this TVM and timed the way the
    runner times (a record from TVM 0.26, or timed on 2 threads, says nothing about this
    session's candidates; build() does not apply another TVM's records either)."""
    tvm_version = versions()["tvm"]
    return [r for r in db.for_workload(layer.workload_key, target.key)
            if r.versions.get("tvm") == tvm_version and r.setting == setting]


def tune(
    network: Network | SeparableConv2D | Iterable[SeparableConv2D],
    target: str | dict | Target = "llvm",
    *,
    database: str | Database,
    trials: int = DEFAULT_TRIALS,
    runner=None,
    progress: Callable[[TuneProgress], None] | None = None,
) -> list[LayerResult]:
    """Tune every layer; returns per-layer results. The database holds every trial.

    Candidates are measured in worker processes started with spawn, which re-import the main
    script: a script calls this under ``if __name__ == "__main__":`` (else a SpecError says so).
    """
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise SpecError(f"trials must be a positive integer, got {trials!r}")
    if isinstance(network, (str, bytes, os.PathLike)):
        raise SpecError(f"network must be a Network, a layer or a list of layers, got the path "
                        f"{network!r}: read a spec file with sc.load_spec(path)")
    if database is None or not isinstance(database, (str, os.PathLike, Database)):
        raise SpecError(f"database must be the path of the JSON-lines file that holds every "
                        f"trial, got {database!r}")
    layers = [network] if isinstance(network, SeparableConv2D) else list(network)
    for i, layer in enumerate(layers):
        if not isinstance(layer, SeparableConv2D):
            raise SpecError(f"layers[{i}] must be a SeparableConv2D, got {type(layer).__name__}")
    target = resolve_target(target)
    if runner is None or isinstance(runner, LocalRunner):
        check_runs_here(target)
    for layer in layers:
        check_indexable(layer)  # every candidate would fail to compile
    check_writable(database.path if isinstance(database, Database) else database, "database")
    db = database if isinstance(database, Database) else Database(database)
    owns_runner = runner is None
    runner = runner or LocalRunner()
    session = _Session(len(layers), trials, progress)
    try:
        return [_tune_layer(layer, target, db, trials, runner, session) for layer in layers]
    finally:
        if owns_runner:
            runner.close()


def check_runs_here(target: Target) -> None:
    """Candidates timed here must run here: an emulator's or a missing GPU's times mean nothing."""
    if not target.runs_here:
        where = ("CUDA kernels are timed only on GPU machines over RPC" if target.family == "cuda"
                 else "tune on a machine that runs it, or time them on boards over RPC")
        raise SpecError(
            f"target {target.name!r} ({target.description}) does not run on this machine, so its "
            f"candidates cannot be timed here: {where}: boards registered with a TVM RPC tracker "
            "(--rpc HOST:PORT --key KEY; from Python, "
            "runner=sepconv_codegen.tuning.rpc.RPCRunner(...))")


class _Session:
    """Progress bookkeeping across layers: trials done, time per trial, time left."""

    def __init__(self, layers: int, trials: int, callback) -> None:
        self.total = layers * trials
        self.done = 0
        self.start = time.monotonic()
        self.callback = callback

    def report(self, layer, trial, trials, best, message="") -> None:
        if self.callback is None:
            return
        elapsed = time.monotonic() - self.start
        per_trial = elapsed / self.done if self.done else None
        remaining = per_trial * (self.total - self.done) if per_trial else None
        self.callback(TuneProgress(layer, trial, trials, best, elapsed, remaining, message))


def _distance(a: Knobs, b: Knobs) -> int:
    da, db_ = asdict(a), asdict(b)
    return sum(da[k] != db_[k] for k in da)


def _next_batch(space: list[Knobs], tried: set[Knobs], measured: dict, size: int, rng) -> list[Knobs]:
    """The next candidates: neighbours of the fastest so far (one or two knobs changed), closest
    first; random untried points once the neighbourhood is exhausted. The space is large (about
    a thousand points for a MobileNet block) and a trial costs about a second, so the search
    climbs from the best point instead of sampling blindly."""
    untried = [k for k in space if k not in tried]
    if not untried:
        return []
    if measured:
        best = min(measured, key=measured.get)
        near = [k for k in untried if _distance(k, best) <= 2]
        rng.shuffle(near)
        near.sort(key=lambda k: _distance(k, best))
        if near:
            return near[:size]
    if space[0] not in tried:
        return [space[0]]  # the default first
    return rng.sample(untried, min(size, len(untried)))


def _tune_layer(layer, target, db: Database, trials, runner, session: _Session) -> LayerResult:
    setting = _setting(runner)
    timeout = getattr(runner, "timeout", None)
    earlier = _history(db, layer, target, setting)
    history = [r for r in earlier if r.stage == "trial" and not r.retried_under(timeout)]
    tried = {r.knobs for r in history}
    failed = [r for r in history if r.status == "failed"]
    result = LayerResult(layer, None, None, len(history), len(failed), resumed=len(history),
                         errors=[f"{r.knobs.tag}: {r.error} (earlier session)" for r in failed])
    session.total -= min(trials, len(history))
    measured = {r.knobs: r.seconds for r in history if r.status == "ok" and r.seconds}
    best = min(measured.values(), default=None)
    space = _space(layer, target)
    rng = random.Random(len(history))
    parallel = max(1, int(getattr(runner, "parallelism", 1)))
    new_trials = 0
    while result.trials < trials:
        batch = _next_batch(space, tried, measured, min(parallel, trials - result.trials), rng)
        if not batch:
            break
        tried.update(batch)
        for m in runner.measure(layer, target, batch):
            db.append(_record(layer, target, m.knobs, m, "trial", m.seconds, m.error, setting))
            result.trials += 1
            new_trials += 1
            session.done += 1
            if m.error:
                result.failed += 1
                result.errors.append(f"{m.knobs.tag}: {m.error}")
            else:
                measured[m.knobs] = m.seconds
                best = m.seconds if best is None else min(best, m.seconds)
            session.report(layer, result.trials, trials, best, m.error or "")
    confirmed = [r for r in earlier if r.stage == "confirmed" and r.status == "ok"]
    if confirmed and not new_trials:  # finished in an earlier session: nothing new to confirm
        winner = min(confirmed, key=lambda r: r.seconds)
        result.best, result.seconds, result.confirmed = winner.knobs, winner.seconds, True
        return result
    _confirm_leaders(layer, target, db, runner, measured, result, session, setting)
    if result.best is None and measured:  # no confirmation ran (its device was lost): say so
        result.best = min(measured, key=measured.get)
        result.seconds = measured[result.best]
    return result


def _confirm_leaders(layer, target, db, runner, measured: dict, result: LayerResult, session,
                     setting: dict) -> None:
    """Re-time the leaders interleaved, check the fastest against the reference, record it."""
    leaders = sorted(measured, key=measured.get)[:LEADERS]
    if not leaders:
        return
    samples: dict[Knobs, list[float]] = {k: [] for k in leaders}
    for round_ in range(LEADER_ROUNDS):
        order = leaders[round_ % len(leaders):] + leaders[: round_ % len(leaders)]
        for m in runner.measure(layer, target, order):
            if m.seconds:
                samples[m.knobs].append(m.seconds)
    medians = {k: statistics.median(v) for k, v in samples.items() if v}
    for knobs in sorted(medians, key=medians.get):
        (check,) = list(runner.measure(layer, target, [knobs], check=True))
        if check.error:
            db.append(_record(layer, target, knobs, check, "confirmed", error=check.error,
                              setting=setting))
            result.errors.append(f"{knobs.tag}: {check.error}")
            if not check.retry:  # wrong, not unchecked: never the best trial either
                del measured[knobs]
            continue
        db.append(_record(layer, target, knobs, check, "confirmed", seconds=medians[knobs],
                          setting=setting))
        result.best, result.seconds, result.confirmed = knobs, medians[knobs], True
        session.report(layer, result.trials, result.trials, medians[knobs], "confirmed")
        return

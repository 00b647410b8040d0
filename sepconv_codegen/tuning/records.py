"""Which tuning record build() uses: the user's database first, then the schedules shipped with
the package for this CPU. A record made by another TVM version or for another CPU is not applied,
nor a shipped record with too few parallel tasks for the threads here: build says so and falls
back to the default schedule."""

from __future__ import annotations

import json
import os
from pathlib import Path

from .._resources import shipped_schedules
from ..host import usable_cores
from ..schedule.cpu import DEFAULT_TASKS, parallel_tasks
from ..spec import SeparableConv2D, SpecError
from ..targets import Target
from .database import Database, Record, versions


def shipped_database(target: Target) -> Database | None:
    """The shipped schedules file for this target's CPU, e.g. schedules/llvm-znver3.jsonl."""
    path = shipped_schedules(target.schedule_file)
    return Database(path, source=f"shipped ({path.name})") if path is not None else None


def _no_shipped_file(target: Target) -> str:
    folder = shipped_schedules("")
    have = sorted(p.stem for p in folder.glob("*.jsonl")) if folder is not None else []
    return (f"no shipped schedules for {target.schedule_file[:-6]}"
            + (f" (shipped: {', '.join(have)})" if have else ""))


def check_database(database, option: str = "database") -> None:
    """A database to read schedules from must exist and be one: a mistyped path, or another file
    given by mistake (a spec), would silently fall back to the default schedules. ``option``
    names it in errors (the command line's "--database")."""
    if isinstance(database, Database):
        return
    path = Path(database)
    what = f"{option} {str(database)!r}"
    if path.is_dir():
        raise SpecError(f"{what} is a folder, not a tuning database (the JSON-lines file that "
                        "`tune --db` writes)")
    if not path.is_file():
        raise SpecError(f"{what} does not exist (a tuning database is the "
                        "JSON-lines file that `tune --db` writes)")
    try:
        with open(path, "rb") as handle:
            first_bad = None
            for number, line in enumerate(handle, 1):
                if _is_record(line):
                    return  # a torn line elsewhere (a killed tuner) is skipped when read
                if first_bad is None and line.strip():
                    first_bad = number
    except OSError as err:
        raise SpecError(f"{what} cannot be read: {err.strerror}") from None
    if first_bad is not None:  # lines, and not one tuning record among them
        raise SpecError(f"{what} is not a tuning database: line {first_bad} is not a JSON record "
                        "(a tuning database is the JSON-lines file that `tune --db` writes)")


def _is_record(line: bytes) -> bool:
    try:
        data = json.loads(line)
    except ValueError:  # UnicodeDecodeError included
        return False
    return isinstance(data, dict) and "workload" in data


def best_record(layer: SeparableConv2D, target: Target, database=None) -> tuple[Record | None, str]:
    """(fastest usable record, "") or (None, why nothing was used)."""
    databases = []
    if database is not None:
        check_database(database)
        databases.append(database if isinstance(database, Database) else Database(Path(database)))
    shipped = shipped_database(target)
    why = ""
    if shipped is not None:
        databases.append(shipped)
    elif database is None:
        why = _no_shipped_file(target)
    current = versions()
    for db in databases:
        for_layer = [r for r in db.records() if r.workload == layer.workload_key]
        every = [r for r in for_layer if r.target == target.key]
        if not every and for_layer and db is not shipped:
            why = why or _other_targets(db, for_layer, target)
        # knobs whose confirmation found them wrong (not a lost device) are never applied
        rejected = {r.knobs for r in every
                    if r.stage == "confirmed" and r.status == "failed" and not r.retry}
        records = [r for r in every if r.status == "ok" and r.knobs not in rejected]
        usable = [r for r in records if r.versions.get("tvm") == current["tvm"] and r.seconds]
        if records and not usable:
            other = sorted({r.versions.get("tvm", "?") for r in records})
            why = f"records in {db.path.name} come from TVM {', '.join(other)}, not {current['tvm']}"
            continue
        if db is shipped and usable:
            usable, why = _enough_tasks(layer, target, usable)
        confirmed = [r for r in usable if r.stage == "confirmed"]
        if confirmed or usable:  # a checked, re-timed winner beats any single trial
            return min(confirmed or usable, key=lambda r: r.seconds), ""
    return None, why


def _other_targets(db: Database, records: list[Record], target: Target) -> str:
    """Why a database with records for this layer, but for other targets, gave none: a database
    tuned on another CPU would otherwise be ignored without a word."""
    others = sorted({r.target for r in records})
    return (f"records in {db.path.name} for this layer are for {', '.join(others[:2])}"
            f"{', ...' if len(others) > 2 else ''}, not {target.key}")


def threads_here() -> int:
    """The threads a kernel built here runs on by default (TVM_NUM_THREADS, else usable cores)."""
    value = os.environ.get("TVM_NUM_THREADS", "")
    if value.isdigit() and int(value) > 0:
        return int(value)
    return usable_cores()


def _enough_tasks(layer: SeparableConv2D, target: Target, records: list[Record]) -> tuple[list[Record], str]:
    """Shipped records with enough parallel tasks for this machine, and why, when none are left.

    The shipped records were tuned on a 2-core machine, where 2-6 tasks for a 7x7 or 14x14 layer
    are fastest; on a bigger machine of the same CPU model they would leave most cores idle, so
    a record with fewer tasks than min(threads, DEFAULT_TASKS) gives way to the default schedule,
    which makes at least DEFAULT_TASKS. A user's own database is taken as tuned for its machine.
    """
    if target.family != "cpu" or not target.runs_here:
        return records, ""
    threads = threads_here()
    tasks = {id(r): parallel_tasks(layer, r.knobs) for r in records}
    kept = [r for r in records if tasks[id(r)] >= min(threads, DEFAULT_TASKS)]
    if kept:
        return kept, ""
    return [], (f"the shipped record runs as {min(tasks.values())} parallel task(s), too few for "
                f"{threads} threads here; tune on this machine")

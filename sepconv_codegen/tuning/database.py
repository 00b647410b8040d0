"""The tuning database: JSON lines, one record per finished trial, appended as it happens.

Durability: each record is one line written with a single write() under an exclusive flock on a
file opened O_APPEND, then fsync'd, so a killed tuner loses at most the trial it was running, and
two tuners appending to the same file never interleave lines. A reader skips a torn last line.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from ..kernel import output_file
from ..schedule.knobs import Knobs
from ..spec import SpecError

__all__ = ["Database", "Record", "check_writable", "versions"]


def versions() -> dict[str, str]:
    """What produced a record; a record from other versions is not applied blindly."""
    from .. import __version__
    from ..tvm_backend._tvm import tvm

    return {"sepconv_codegen": __version__, "tvm": str(tvm.__version__)}


def check_writable(path: str | os.PathLike, name: str = "database") -> None:
    """Refuse, before any work, a database that cannot be appended to; ``name`` is the argument
    that gave it (``--db`` on the command line). Found at the first append instead, it would cost
    the trial just measured and end the session with a traceback.

    The folder is checked as for any output file (kernel.output_file: made if missing, and a
    temporary file created in it), so that a run refused later leaves no empty database behind;
    an existing file is opened the way `Database.append` opens it.
    """
    if str(path).strip() and Path(path).is_dir():
        raise SpecError(f"{name} {str(path)!r} is a folder, not a database file (name a file in "
                        f"it, such as {str(Path(path) / 'tuning.jsonl')!r})")
    path = output_file(path, name)
    if not path.exists():
        return
    if not path.is_file():
        raise SpecError(f"{name} {str(path)!r} is not a regular file")
    try:
        os.close(os.open(path, os.O_RDWR | os.O_APPEND))
    except OSError as err:
        raise SpecError(f"{name} {str(path)!r} cannot be written: "
                        f"{err.strerror or type(err).__name__}") from None
    with open(path, "rb") as handle:
        head = handle.read(1 << 16)
    if head and not (head.startswith(b'{"') and b"\n" not in head):  # not one torn record
        from .records import check_database  # another file given by mistake (a spec): keep it

        check_database(path, name)


@dataclass(frozen=True)
class Record:
    workload: str  # SeparableConv2D.workload_key
    target: str  # Target.key (TVM target JSON, sorted)
    knobs: Knobs
    status: str  # "ok" or "failed"
    seconds: float | None = None  # median time per call
    error: str | None = None
    versions: dict[str, str] = field(default_factory=dict)
    layer: dict[str, Any] | None = None
    timestamp: float = 0.0
    stage: str = "trial"  # "trial": one measurement; "confirmed": re-timed and checked winner
    source: str = "tuned"  # where build() says the knobs came from
    setting: dict[str, Any] = field(default_factory=dict)  # how it was timed: threads, RPC key
    retry: bool = False  # a failure that was not the candidate's (a lost device): tried again
    timeout_s: float | None = None  # a failure by running past this limit

    def retried_under(self, timeout: float | None) -> bool:
        """Whether a resumed session measures this trial again instead of counting it: a failure
        that was not the candidate's, or a timeout shorter than the one in force now."""
        if self.status != "failed":
            return False
        return self.retry or (self.timeout_s is not None and timeout is not None
                              and timeout > self.timeout_s)

    def to_json(self) -> str:
        return json.dumps(
            {
                "workload": self.workload,
                "target": self.target,
                "knobs": self.knobs.to_dict(),
                "status": self.status,
                "seconds": self.seconds,
                "error": self.error,
                "versions": self.versions,
                "layer": self.layer,
                "timestamp": self.timestamp or time.time(),
                "stage": self.stage,
                "setting": self.setting,
                "retry": self.retry,
                "timeout_s": self.timeout_s,
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, line: str, source: str = "tuned") -> "Record":
        data = json.loads(line)
        return cls(
            workload=data["workload"],
            target=data["target"],
            knobs=Knobs.from_dict(data["knobs"]),
            status=data["status"],
            seconds=data.get("seconds"),
            error=data.get("error"),
            versions=data.get("versions") or {},
            layer=data.get("layer"),
            timestamp=data.get("timestamp", 0.0),
            stage=data.get("stage", "trial"),
            source=source,
            setting=data.get("setting") or {},
            retry=bool(data.get("retry", False)),
            timeout_s=data.get("timeout_s"),
        )


class Database:
    """An append-only JSON-lines file of tuning records."""

    def __init__(self, path: str | os.PathLike, source: str | None = None) -> None:
        self.path = Path(path)
        self.source = source or f"tuned ({self.path.name})"
        if self.path.exists() and not self.path.is_file():
            raise SpecError(f"database {str(self.path)!r} is not a file")

    def append(self, record: Record) -> None:
        line = (record.to_json() + "\n").encode("utf-8")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":  # a torn last line: end it first,
                line = b"\n" + line  # else this record would be glued to it and lost too
            os.write(fd, line)
            os.fsync(fd)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def records(self) -> Iterator[Record]:
        """Every readable record, in file order; torn or foreign lines are skipped."""
        if not self.path.exists():
            return
        with open(self.path, "rb") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_SH)
            data = handle.read()
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        for raw in data.splitlines():
            try:
                yield Record.from_json(raw.decode("utf-8"), source=self.source)
            except (ValueError, KeyError, TypeError, SpecError):
                continue

    def for_workload(self, workload: str, target: str) -> list[Record]:
        return [r for r in self.records() if r.workload == workload and r.target == target]

"""Append-only JSON-lines journals of the operations folder (core layer): the drift history, the alerts
and the retrain history.

An append takes an exclusive file lock (so two processes never interleave) and replaces the file
atomically with the old lines plus the new ones, so a crash leaves the old journal or the new one.
A damaged line is skipped on read, never fatal.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..atomic import write_text
from ..results import jsonable

DRIFT_HISTORY = "drift_history.jsonl"
ALERTS = "alerts.jsonl"
RETRAIN_HISTORY = "retrain_history.jsonl"


@contextlib.contextmanager
def file_lock(path: str | os.PathLike, blocking: bool = True) -> Iterator[bool]:
    """An exclusive advisory lock on `path` (created); yields False when non-blocking and taken."""
    import fcntl

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fh = open(path, "a+")  # noqa: SIM115 - held for the duration of the lock
    try:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
    finally:
        fh.close()


def read(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The records of a journal; damaged lines are skipped."""
    path = Path(path)
    if not path.is_file():
        return []
    out = []
    for line in path.read_bytes().splitlines():
        try:
            rec = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError):
            continue
        if isinstance(rec, dict):
            out.append(rec)
    return out


def append(path: str | os.PathLike, records: list[dict[str, Any]]) -> Path:
    """Append `records` to the journal at `path` under its lock, atomically."""
    path = Path(path)
    with file_lock(path.with_name(f".{path.name}.lock")):
        old = path.read_text(encoding="utf-8", errors="replace") if path.is_file() else ""
        if old and not old.endswith("\n"):
            old += "\n"
        new = "".join(json.dumps(jsonable(r), sort_keys=False) + "\n" for r in records)
        write_text(path, old + new)
    return path


def append_line(path: str | os.PathLike, record: dict[str, Any]) -> None:
    """Append one record as one JSON line in a single ``O_APPEND`` write: whole lines from several
    writers at once, no lock (the router's hot path; :func:`append` rewrites under a lock)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    line = (json.dumps(record, default=str, separators=(",", ":")) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)

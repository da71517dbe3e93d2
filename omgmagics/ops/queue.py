"""The durable retrain queue (core layer): SQLite in ``monitoring/retrain_queue.db``.

Jobs move ``queued -> running -> done | failed``. The next job is the queued one of highest priority,
oldest first. A new request is folded into a job that already covers it: a running job of the same
trigger that carries all its evidence (alert ids), or a queued job of the same trigger (evidence and
priority are merged in). So a burst of drift alerts gives one retrain, and a trigger that arrives while
a retrain runs waits in the queue instead of starting a second run.

Jobs run one at a time: a worker holds an exclusive lock on ``monitoring/retrain.lock`` while it runs a
job. A job left ``running`` by a worker that died (the lock is free) is marked failed when the next
worker starts.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..clock import stamp
from ..errors import UsageError, unknown_choice
from ..io.journal import file_lock

PRIORITIES = {"low": 0, "normal": 1, "high": 2}
TRIGGERS = ("drift", "schedule", "performance", "manual")
STATES = ("queued", "running", "done", "failed")
QUEUE_DB = "retrain_queue.db"
LOCK = "retrain.lock"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    trigger TEXT NOT NULL,
    priority INTEGER NOT NULL,
    state TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    alerts TEXT NOT NULL DEFAULT '[]',
    requests INTEGER NOT NULL DEFAULT 1,
    created TEXT NOT NULL,
    triggered TEXT NOT NULL,
    started TEXT,
    finished TEXT,
    worker TEXT,
    result TEXT,
    error TEXT
);
CREATE INDEX IF NOT EXISTS jobs_next ON jobs (state, priority DESC, created, id);
"""


@dataclass
class Job:
    id: int
    trigger: str
    priority: int
    state: str
    reason: str
    alerts: list[str]
    requests: int
    created: str
    triggered: str
    started: str | None
    finished: str | None
    worker: str | None
    result: dict[str, Any] | None
    error: str | None

    @property
    def priority_name(self) -> str:
        return {v: k for k, v in PRIORITIES.items()}.get(self.priority, str(self.priority))

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "trigger": self.trigger, "priority": self.priority_name,
                "state": self.state, "reason": self.reason, "alerts": self.alerts,
                "requests": self.requests, "created": self.created, "triggered": self.triggered,
                "started": self.started, "finished": self.finished, "worker": self.worker,
                "result": self.result, "error": self.error}


def _job(row: sqlite3.Row) -> Job:
    return Job(row["id"], row["trigger"], row["priority"], row["state"], row["reason"],
               json.loads(row["alerts"]), row["requests"], row["created"], row["triggered"],
               row["started"], row["finished"], row["worker"],
               json.loads(row["result"]) if row["result"] else None, row["error"])


class RetrainQueue:
    """The queue of one project folder (``monitoring/``)."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.db = self.folder / QUEUE_DB
        self.lock_path = self.folder / LOCK
        with self._connect() as con:
            con.executescript(_SCHEMA)

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        con = sqlite3.connect(self.db, timeout=30, isolation_level=None)
        con.row_factory = sqlite3.Row
        try:
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA synchronous=FULL")
            yield con
        finally:
            con.close()

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """A write transaction taken up front (BEGIN IMMEDIATE): no two writers interleave."""
        with self._connect() as con:
            con.execute("BEGIN IMMEDIATE")
            try:
                yield con
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise

    # --- requests -----------------------------------------------------------------------------------
    def enqueue(self, trigger: str, priority: str = "normal", reason: str = "",
                alerts: list[str] | None = None, triggered: str | None = None) -> tuple[Job, str]:
        """Queue a retrain, or fold it into a job that already covers it.

        Returns
        -------
        (Job, str)
            The job and what happened: ``queued``, ``folded into queued job N`` or
            ``already covered by running job N``.
        """
        if trigger not in TRIGGERS:
            raise UsageError(unknown_choice("retrain trigger", trigger, TRIGGERS))
        if priority not in PRIORITIES:
            raise UsageError(unknown_choice("priority", priority, PRIORITIES))
        alerts = sorted(set(alerts or []))
        now = stamp()
        with self._tx() as con:
            rows = con.execute("SELECT * FROM jobs WHERE trigger = ? AND state IN ('queued', 'running') "
                               "ORDER BY id", (trigger,)).fetchall()
            for row in rows:
                job = _job(row)
                # a running job answers a request only for evidence it already carries; a request
                # without evidence (manual, schedule) waits for the next run instead
                if (alerts or job.state == "queued") and set(alerts) <= set(job.alerts):
                    con.execute("UPDATE jobs SET requests = requests + 1 WHERE id = ?", (job.id,))
                    verb = "already covered by running" if job.state == "running" else "folded into queued"
                    return self._get(con, job.id), f"{verb} job {job.id}"
            queued = [_job(r) for r in rows if r["state"] == "queued"]
            if queued:
                job = queued[0]
                merged = sorted(set(job.alerts) | set(alerts))
                con.execute("UPDATE jobs SET requests = requests + 1, alerts = ?, priority = MAX(priority, ?),"
                            " reason = CASE WHEN ? = '' THEN reason ELSE reason || '; ' || ? END "
                            "WHERE id = ?", (json.dumps(merged), PRIORITIES[priority], reason, reason,
                                             job.id))
                return self._get(con, job.id), f"folded into queued job {job.id}"
            cur = con.execute(
                "INSERT INTO jobs (trigger, priority, state, reason, alerts, created, triggered) "
                "VALUES (?, ?, 'queued', ?, ?, ?, ?)",
                (trigger, PRIORITIES[priority], reason, json.dumps(alerts), now, triggered or now))
            return self._get(con, cur.lastrowid), "queued"

    def _get(self, con: sqlite3.Connection, job_id: int) -> Job:
        return _job(con.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone())

    def get(self, job_id: int) -> Job:
        with self._connect() as con:
            row = con.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise UsageError(f"No retrain job {job_id}. See `omg ops pipeline --action history`.")
        return _job(row)

    def jobs(self, states: tuple[str, ...] | None = None, limit: int | None = None) -> list[Job]:
        """Jobs, newest first (optionally of some states)."""
        sql = "SELECT * FROM jobs"
        args: list[Any] = []
        if states:
            sql += f" WHERE state IN ({','.join('?' * len(states))})"
            args += list(states)
        sql += " ORDER BY id DESC" + (f" LIMIT {int(limit)}" if limit else "")
        with self._connect() as con:
            return [_job(r) for r in con.execute(sql, args).fetchall()]

    def pending(self) -> list[Job]:
        """Queued jobs in the order they will run."""
        with self._connect() as con:
            rows = con.execute("SELECT * FROM jobs WHERE state = 'queued' "
                               "ORDER BY priority DESC, created, id").fetchall()
        return [_job(r) for r in rows]

    # --- the worker -----------------------------------------------------------------------------------
    @contextlib.contextmanager
    def worker(self) -> Iterator[bool]:
        """Hold the run lock; yields False when another worker holds it (nothing may run)."""
        with file_lock(self.lock_path, blocking=False) as got:
            if got:
                self._recover()
            yield got

    def _recover(self) -> None:
        # with the lock held, nothing runs: a 'running' job is a leftover of a worker that died
        with self._tx() as con:
            con.execute("UPDATE jobs SET state = 'failed', finished = ?, error = "
                        "'the worker stopped before the job finished (process ended)' "
                        "WHERE state = 'running'", (stamp(),))

    def claim(self, worker: str) -> Job | None:
        """Move the next queued job to running (call inside :meth:`worker`)."""
        with self._tx() as con:
            row = con.execute("SELECT * FROM jobs WHERE state = 'queued' "
                              "ORDER BY priority DESC, created, id LIMIT 1").fetchone()
            if row is None:
                return None
            con.execute("UPDATE jobs SET state = 'running', started = ?, worker = ? WHERE id = ?",
                        (stamp(), worker, row["id"]))
            return self._get(con, row["id"])

    def finish(self, job_id: int, result: dict[str, Any] | None = None, error: str | None = None) -> Job:
        from ..results import jsonable

        with self._tx() as con:
            con.execute("UPDATE jobs SET state = ?, finished = ?, result = ?, error = ? WHERE id = ?",
                        ("failed" if error else "done", stamp(),
                         json.dumps(jsonable(result)) if result is not None else None, error, job_id))
            return self._get(con, job_id)

    def running(self) -> Job | None:
        jobs = self.jobs(("running",), limit=1)
        return jobs[0] if jobs else None

    def table(self, jobs: list[Job]) -> Any:
        import pandas as pd

        return pd.DataFrame([{
            "job": j.id, "trigger": j.trigger, "priority": j.priority_name, "state": j.state,
            "requests": j.requests, "alerts": len(j.alerts), "triggered": j.triggered,
            "started": j.started or "", "finished": j.finished or "",
            "decision": (j.result or {}).get("decision", ""), "reason": j.reason,
            "error": j.error or ""} for j in jobs])

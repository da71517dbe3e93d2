"""Time stamps and ids (floor 0): one rule for everything the kit writes.

- :func:`stamp`: UTC, ISO 8601, to the second (``2026-12-04T03:10:00+00:00``): the ``created``,
  ``started``, ``time`` fields of reports, manifests, journals and state files; ``ms=True`` for
  request-level records (the prediction log, router events, the deployment history).
- :func:`file_stamp`: ``20261204-031000`` (UTC), for file names that sort by time.
- :func:`new_id`: ``[PREFIX-]20261204-031000-1a2b`` (UTC, then random hex): run ids, rollout ids,
  drift-check and alert ids. Ids sort by creation time and are unique across processes.
- :func:`today`: the local calendar date, for the dates of documents people read (the brief, the
  plan, ADRs, the runbook).
"""

from __future__ import annotations

import datetime as dt
import secrets


def now() -> dt.datetime:
    """The current time, UTC, timezone-aware."""
    return dt.datetime.now(dt.UTC)


def today() -> dt.date:
    """The local calendar date (documents for people carry the date where they were written)."""
    return dt.date.today()


def stamp(t: dt.datetime | None = None, *, ms: bool = False) -> str:
    """`t` (default now) in UTC as ISO 8601, to the second or the millisecond."""
    return (t or now()).astimezone(dt.UTC).isoformat(timespec="milliseconds" if ms else "seconds")


def file_stamp(t: dt.datetime | None = None) -> str:
    return (t or now()).astimezone(dt.UTC).strftime("%Y%m%d-%H%M%S")


def new_id(prefix: str | None = None) -> str:
    body = f"{file_stamp()}-{secrets.token_hex(2)}"
    return f"{prefix}-{body}" if prefix else body

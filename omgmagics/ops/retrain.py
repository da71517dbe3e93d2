"""Retrain state (core layer): triggers, requests, decisions not to retrain, the retrain history.

The verb ``omg ops retrain`` (:func:`omgmagics.lifecycle.retrain_job.retrain`) builds on this module:
it requests (or declines) here, then works through the queue with the job runner.

Triggers:

- ``drift``: an unanswered drift alert exists (dataset, feature or prediction drift);
- ``performance``: an unanswered performance alert exists (the live metric fell below its threshold);
- ``schedule``: the last finished retrain is older than ``retraining.schedule`` (or there was none);
- ``manual``: always.

When the trigger holds, a job is queued (:mod:`omgmagics.ops.queue`, folded into a job that already
covers it) and the queue is worked through (:mod:`omgmagics.lifecycle.retrain_job`). ``decline`` records a
decision not to retrain instead, with its reason. Every request, decision and its reason lands in
``monitoring/retrain_history.jsonl``; an alert counts as answered once a retrain that carried it
finished with a decision, or a decision not to retrain named it.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from .. import clock
from ..errors import UsageError
from ..io import journal
from .alerts import DRIFT_KINDS, list_alerts
from .queue import RetrainQueue
from .settings import retraining_settings

TRIGGER_ALERTS = {"drift": DRIFT_KINDS, "performance": ("performance",)}


def history_path(project: Any) -> Path:
    return Path(project.monitoring_dir) / journal.RETRAIN_HISTORY


def history(project: Any) -> list[dict[str, Any]]:
    return journal.read(history_path(project))


def record(project: Any, event: str, **fields: Any) -> dict[str, Any]:
    rec = {"time": clock.stamp(), "event": event, **fields}
    journal.append(history_path(project), [rec])
    return rec


def queue_of(project: Any) -> RetrainQueue:
    return RetrainQueue(project.monitoring_dir)


def answered(project: Any) -> dict[str, str]:
    """Alert id -> how it was answered (a retrain decision or a decision not to retrain)."""
    out: dict[str, str] = {}
    for rec in history(project):
        if rec.get("event") == "declined":
            for a in rec.get("alerts", []):
                out[a] = f"declined: {rec.get('reason', '')}"
        elif rec.get("event") == "decision" and rec.get("decision") in ("promote", "keep"):
            for a in rec.get("alerts", []):
                out[a] = f"retrain job {rec.get('job')}: {rec.get('decision')}"
    return out


def pending_alerts(project: Any) -> dict[str, int]:
    """Alert id -> the queued or running job that carries it (answered once the job decides)."""
    out = {}
    for job in queue_of(project).jobs(("queued", "running")):
        for a in job.alerts:
            out[a] = job.id
    return out


def check_trigger(project: Any, trigger: str) -> tuple[bool, str, list[str], str | None]:
    """(holds, why, alert ids it answers, time the trigger first held)."""
    if trigger in TRIGGER_ALERTS:
        done = answered(project)
        open_ = [a for a in list_alerts(project, TRIGGER_ALERTS[trigger]) if a["id"] not in done]
        if not open_:
            return False, f"no unanswered {trigger} alert", [], None
        kinds = sorted({a["kind"] for a in open_})
        first = min(a["time"] for a in open_)
        return True, f"{len(open_)} unanswered alert(s) ({', '.join(kinds)})", [a["id"] for a in open_], first
    if trigger == "schedule":
        settings = retraining_settings(project)
        from .windows import parse_duration

        every = parse_duration(settings["schedule"], "retraining.schedule")
        decisions = [r for r in history(project) if r.get("event") == "decision"
                     and r.get("decision") in ("promote", "keep")]
        if not decisions:
            return True, "no retrain has finished yet", [], None
        last = dt.datetime.fromisoformat(decisions[-1]["time"])
        elapsed = clock.now() - last
        if elapsed >= every.timedelta:
            return True, f"the last retrain finished {elapsed.days} day(s) ago (schedule {every})", [], None
        return False, f"the last retrain finished {elapsed} ago, within the schedule ({every})", [], None
    if trigger == "manual":
        return True, "requested by hand", [], None
    from ..errors import unknown_choice
    from .queue import TRIGGERS

    raise UsageError(unknown_choice("retrain trigger", trigger, TRIGGERS))


def request_retrain(project: Any, trigger: str, priority: str = "normal", reason: str = "",
                    force: bool = False) -> dict[str, Any]:
    """Queue a retrain when `trigger` holds (or with `force`); returns what happened."""
    holds, why, alerts, first = check_trigger(project, trigger)
    if not holds and not force:
        rec = record(project, "not_triggered", trigger=trigger, reason=why)
        return {"queued": False, "outcome": f"not queued: the {trigger} trigger does not hold ({why})",
                "job": None, "record": rec}
    text = "; ".join(x for x in [reason, why if holds else f"forced ({why})"] if x)
    job, outcome = queue_of(project).enqueue(trigger, priority, text, alerts, triggered=first)
    rec = record(project, "requested", job=job.id, outcome=outcome, trigger=trigger, priority=priority,
                 reason=text, alerts=alerts)
    return {"queued": True, "outcome": outcome, "job": job, "record": rec}


def decline(project: Any, trigger: str, reason: str, by: str | None = None) -> dict[str, Any]:
    """Record a decision not to retrain; it answers the trigger's unanswered alerts."""
    if not reason or not reason.strip():
        raise UsageError("A decision not to retrain needs its reason: pass --reason TEXT, e.g. "
                         "--reason 'seasonal shift, expected to revert'.")
    holds, why, alerts, _ = check_trigger(project, trigger) if trigger in TRIGGER_ALERTS else \
        (True, "", [], None)
    waiting = pending_alerts(project)
    alerts = [a for a in alerts if a not in waiting]
    rec = record(project, "declined", trigger=trigger, reason=reason.strip(), by=by, alerts=alerts)
    return {"record": rec, "alerts": alerts, "why": why if holds else "no unanswered alert"}

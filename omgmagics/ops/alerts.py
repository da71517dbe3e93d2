"""Alerts (core layer): ``monitoring/alerts.jsonl``, raised by the monitor and by drift detection.

An alert is a JSON object ``{"id", "time", "kind", "severity", "window", "metric", "value",
"threshold", "message", "source", "key"}``. The same condition in the same window (same ``key``) is
raised once, however often the check runs. Whether an alert was answered (a retrain ran, or a decision
not to retrain was recorded) is read from the retrain history (:mod:`omgmagics.ops.retrain`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .. import clock
from ..io import journal

DRIFT_KINDS = ("dataset_drift", "feature_drift", "prediction_drift")


def alerts_path(project: Any) -> Path:
    return Path(project.monitoring_dir) / journal.ALERTS


def make_alert(kind: str, severity: str, window: Any, metric: str, value: Any, threshold: Any,
               message: str, source: str, scope: str = "") -> dict[str, Any]:
    win = window.to_dict() if hasattr(window, "to_dict") else window
    key = "|".join([kind, metric, scope, (win or {}).get("start", ""), (win or {}).get("end", "")])
    return {"id": clock.new_id("alert"), "time": clock.stamp(), "kind": kind, "severity": severity,
            "window": win, "metric": metric, "value": value, "threshold": threshold,
            "message": message, "source": source, "key": key}


def raise_alerts(project: Any, alerts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Record the alerts not raised before (by key); return the new ones."""
    if not alerts:
        return []
    known = {a.get("key") for a in journal.read(alerts_path(project))}
    new, seen = [], set()
    for a in alerts:
        if a["key"] in known or a["key"] in seen:
            continue
        seen.add(a["key"])
        new.append(a)
    if new:
        journal.append(alerts_path(project), new)
    return new


def list_alerts(project: Any, kinds: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
    out = journal.read(alerts_path(project))
    return [a for a in out if kinds is None or a.get("kind") in kinds]


def alerts_table(alerts: list[dict[str, Any]], status: dict[str, str] | None = None) -> Any:
    import pandas as pd

    rows = [{"time": a.get("time"), "kind": a.get("kind"), "severity": a.get("severity"),
             "window": _win(a.get("window")), "value": a.get("value"), "threshold": a.get("threshold"),
             "message": a.get("message"), "id": a.get("id"),
             **({"answered": status.get(a.get("id"), "no")} if status is not None else {})}
            for a in alerts]
    return pd.DataFrame(rows)


def _win(w: Any) -> str:
    if not isinstance(w, dict):
        return ""
    return f"{str(w.get('start', ''))[:16]} .. {str(w.get('end', ''))[:16]}".replace("T", " ")

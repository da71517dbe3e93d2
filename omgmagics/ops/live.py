"""Live performance (core layer): predictions joined with ground truth that arrived later.

Used by the monitor (per window), by retraining (the latest labeled window both models are scored
on) and by the phase 5 gate (the champion's live metric).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .predlog import BATCH_RECORDS, encode_labels, feedback_path, read_feedback


def join_feedback(log: Any, feedback: Any) -> Any:
    """The log rows with a ``label`` column (NaN where no label arrived) and the feedback's
    attributes the log lacks, joined by request_id."""
    if log.empty:
        return log.assign(label=np.nan)
    out = log.copy()
    out["request_id"] = out["request_id"].astype(str)
    extra = ["request_id"] + [c for c in feedback.columns if c not in out.columns and c != "label_time"]
    return out.merge(feedback[extra], on="request_id", how="left")


def metric_arrays(project: Any, labels: Any, scores: Any, predictions: Any = None,
                  metric: str | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labeled rows as three float arrays (label, score, prediction) that :func:`metric_of_arrays`
    scores: classes encoded 1 for the positive label, 0 otherwise; a regression's values as they are.
    Arrays of several batches concatenated give the metric of all the rows (the monitor keeps these
    compact arrays per window instead of the rows)."""
    from ..metrics import get_metric

    m = get_metric(metric or project.primary_metric)
    n = len(labels)
    if m.task == "regression":
        y = np.asarray(labels, dtype=np.float64)
        p = np.asarray(predictions if predictions is not None else scores, dtype=np.float64)
        return y, p, p
    positive = project.config.get_path("brief.objective.positive_label")
    y = np.asarray(encode_labels(labels, positive), dtype=np.float64)
    s = np.asarray(scores, dtype=np.float64) if scores is not None else np.full(n, np.nan)
    p = (np.asarray(encode_labels(predictions, positive), dtype=np.float64) if predictions is not None
         else np.full(n, np.nan))
    return y, s, p


def metric_of_arrays(project: Any, y: np.ndarray, s: np.ndarray, p: np.ndarray,
                     metric: str | None = None) -> float:
    """The primary metric (or `metric`) of :func:`metric_arrays`; NaN when undefined (one class ...)."""
    from ..metrics import get_metric, score

    name = metric or project.primary_metric
    m = get_metric(name)
    if len(y) == 0:
        return float("nan")
    if m.task == "regression":
        ok = ~np.isnan(y) & ~np.isnan(p)
        return score(name, y[ok], p[ok], "regression") if ok.any() else float("nan")
    if np.isnan(s).all():
        # no probabilities logged: metrics of the predicted class only
        s = p
    ok = ~np.isnan(y) & ~np.isnan(s)
    if ok.sum() == 0 or len(np.unique(y[ok])) < 2 and name in ("roc_auc", "average_precision"):
        return float("nan")
    return score(name, y[ok].astype(int), s[ok], "classification")


def metric_value(project: Any, labels: Any, scores: Any, predictions: Any = None,
                 metric: str | None = None) -> float:
    """The primary metric (or `metric`) of labeled rows; NaN when undefined (one class ...)."""
    return metric_of_arrays(project, *metric_arrays(project, labels, scores, predictions, metric), metric)


def labeled(project: Any, settings: dict[str, Any], start: Any = None, end: Any = None) -> tuple[Any, Any]:
    """(log rows in ``[start, end)`` that have a label, damaged parts skipped while reading).

    The log is read in batches, each joined with the feedback and cut to its labeled rows, so memory
    follows the labels, not the requests."""
    import pandas as pd

    from .predlog import Problems, iter_log, records_frame

    problems, fb_problems = Problems(), Problems()
    fb = read_feedback(feedback_path(project, settings), fb_problems)
    parts = []
    for batch in iter_log(project, start, end, settings, problems, batch_rows=BATCH_RECORDS):
        joined = join_feedback(batch, fb)
        ok = joined["label"].notna() & (joined["status"] == "ok")
        if ok.any():
            parts.append(joined[ok])
    problems.items += fb_problems.items
    if not parts:
        return join_feedback(records_frame([]), fb), problems
    return pd.concat(parts, ignore_index=True), problems


def latest_labeled_window(project: Any, settings: dict[str, Any], window: Any,
                          min_labels: int) -> tuple[Any, Any, list[str]]:
    """The labeled requests of the latest `window` that has labels, widened back window by window
    until it holds at least `min_labels` (so a quiet day still gives a sound estimate).

    Returns (rows, Window, notes); rows is empty when the log has no labels at all.
    """
    from .windows import Window, current_window, from_ns, to_ns

    rows, problems = labeled(project, settings)
    notes = list(problems.items)
    if rows.empty:
        return rows, None, notes
    last = to_ns(rows["time"].max().to_pydatetime())
    w = current_window(last, window)
    start = w.start
    while True:
        sel = rows[(rows["time"] >= start) & (rows["time"] < w.end)]
        if len(sel) >= min_labels or start <= rows["time"].min().to_pydatetime():
            break
        start = from_ns(to_ns(start) - window.ns)
    if start != w.start:
        notes.append(f"The latest {window} held fewer than {min_labels} labels; the window was widened "
                     f"to start at {start.isoformat(timespec='seconds')}.")
    return sel.reset_index(drop=True), Window(start, w.end), notes

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


PROBA_METRICS = ("roc_auc", "average_precision", "log_loss")  # need scores, not only the labels


def class_mode(project: Any, metric: str | None = None) -> str:
    """``regression``, ``binary`` (the brief names a positive label) or ``multiclass``."""
    from ..metrics import get_metric

    if get_metric(metric or project.primary_metric).task == "regression":
        return "regression"
    return "binary" if project.config.get_path("brief.objective.positive_label") is not None \
        else "multiclass"


def label_text(v: Any) -> str:
    """A class as text: 1, "1", 1.0 and True agree (labels come back from JSON, CSV or a model)."""
    if isinstance(v, (bool, np.bool_)):
        return str(int(v))
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


class ClassCodes:
    """Class -> code (0, 1, ...) shared by labels, predictions and probability columns, so the
    arrays of several batches line up; codes are handed out in order of first sight, after the
    model's own classes when known."""

    def __init__(self, classes: Any = None):
        self.index: dict[str, int] = {}
        for c in classes or []:
            self.code(c)

    def code(self, v: Any) -> int:
        return self.index.setdefault(label_text(v), len(self.index))

    def encode(self, values: Any) -> np.ndarray:
        import pandas as pd

        return np.array([np.nan if v is None or (not isinstance(v, str) and pd.isna(v)) else
                         float(self.code(v)) for v in list(values)], dtype=np.float64)

    def matrix(self, probabilities: Any, n: int) -> np.ndarray:
        """Per-class probabilities as an (n, K) matrix in code order: `probabilities` is a list of
        ``{class: p}`` (None for a row without them, that row NaN) or an (n, k) array whose
        columns are the first k codes. Empty (n, 0) when there are none at all."""
        if probabilities is None:
            return np.full((n, 0), np.nan)
        if isinstance(probabilities, np.ndarray) and probabilities.ndim == 2:
            return np.asarray(probabilities, dtype=np.float64)
        rows = list(probabilities)
        if not any(isinstance(r, dict) and r for r in rows):
            return np.full((n, 0), np.nan)
        for r in rows:
            if isinstance(r, dict):
                for c in r:
                    self.code(c)
        out = np.full((n, len(self.index)), np.nan)
        for i, r in enumerate(rows):
            if isinstance(r, dict) and r:
                out[i] = 0.0
                for c, v in r.items():
                    out[i, self.index[label_text(c)]] = np.nan if v is None else float(v)
        return out


def concat_arrays(parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]]
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The (label, score, prediction) arrays of several batches as one; probability matrices of
    different widths (a class first seen in a later batch) are padded with zeros."""
    ys, ss, ps = zip(*parts, strict=True)
    if any(s.ndim == 2 for s in ss):
        k = max(s.shape[1] for s in ss if s.ndim == 2)
        ss = tuple(np.pad(s, ((0, 0), (0, k - s.shape[1]))) if s.ndim == 2
                   else np.full((len(s), k), np.nan) for s in ss)
    return np.concatenate(ys), np.concatenate(ss), np.concatenate(ps)


def metric_arrays(project: Any, labels: Any, scores: Any, predictions: Any = None,
                  metric: str | None = None, codes: ClassCodes | None = None,
                  probabilities: Any = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labeled rows as three float arrays (label, score, prediction) that :func:`metric_of_arrays`
    scores. Binary: classes encoded 1 for the positive label, 0 otherwise, the score P(positive);
    multiclass: class codes (`codes`, shared across batches) and the score an (n, K) matrix of the
    per-class probabilities when they are known (`probabilities`: ``{class: p}`` per row as the
    log holds them, or a model's matrix in `codes` order), else (n, 0); regression: the values.
    Arrays of several batches joined by :func:`concat_arrays` give the metric of all the rows (the
    monitor keeps these compact arrays per window instead of the rows)."""
    n = len(labels)
    mode = class_mode(project, metric)
    if mode == "regression":
        y = np.asarray(labels, dtype=np.float64)
        p = np.asarray(predictions if predictions is not None else scores, dtype=np.float64)
        return y, p, p
    if mode == "multiclass":
        codes = codes if codes is not None else ClassCodes()
        s = codes.matrix(probabilities, n)
        y = codes.encode(labels)
        p = codes.encode(predictions) if predictions is not None else np.full(n, np.nan)
        return y, s, p
    positive = project.config.get_path("brief.objective.positive_label")
    y = np.asarray(encode_labels(labels, positive), dtype=np.float64)
    s = np.asarray(scores, dtype=np.float64) if scores is not None else np.full(n, np.nan)
    p = (np.asarray(encode_labels(predictions, positive), dtype=np.float64) if predictions is not None
         else np.full(n, np.nan))
    return y, s, p


def _multiclass_metric(name: str, y: np.ndarray, s: np.ndarray, p: np.ndarray) -> float:
    from sklearn import metrics as skm

    from ..metrics import score

    if name in PROBA_METRICS:
        if s.ndim != 2 or s.shape[1] == 0:
            return float("nan")  # no per-class probabilities: not from the labels alone
        ok = ~np.isnan(y) & np.isfinite(s).all(axis=1)
        if not ok.any():
            return float("nan")
        yy, ss = y[ok].astype(int), s[ok]
        k = max(ss.shape[1], int(yy.max()) + 1)
        ss = np.pad(ss, ((0, 0), (0, k - ss.shape[1])))
        if name == "log_loss":
            total = ss.sum(axis=1, keepdims=True)
            ss = np.clip(ss / np.where(total > 0, total, 1), 1e-15, 1 - 1e-15)
            return float(skm.log_loss(yy, ss, labels=list(range(k))))
        fn = skm.roc_auc_score if name == "roc_auc" else skm.average_precision_score
        # one vs rest, macro over the classes present with both outcomes in the window
        per = [fn(yy == c, ss[:, c]) for c in range(k) if 0 < (yy == c).sum() < len(yy)]
        return float(np.mean(per)) if per else float("nan")
    ok = ~np.isnan(y) & ~np.isnan(p)
    if not ok.any():
        return float("nan")
    yy, pp = y[ok].astype(int), p[ok].astype(int)
    k = int(max(yy.max(), pp.max())) + 1
    return score(name, yy, np.eye(k)[pp], "classification")  # one-hot rows: argmax is the class


def metric_of_arrays(project: Any, y: np.ndarray, s: np.ndarray, p: np.ndarray,
                     metric: str | None = None) -> float:
    """The primary metric (or `metric`) of :func:`metric_arrays`; NaN when undefined (one class,
    or a probability metric of a multiclass model whose probabilities are not known)."""
    from ..metrics import score

    name = metric or project.primary_metric
    if len(y) == 0:
        return float("nan")
    mode = class_mode(project, name)
    if mode == "regression":
        ok = ~np.isnan(y) & ~np.isnan(p)
        return score(name, y[ok], p[ok], "regression") if ok.any() else float("nan")
    if mode == "multiclass":
        return _multiclass_metric(name, y, s, p)
    if np.isnan(s).all():
        # no probabilities logged: metrics of the predicted class only
        s = p
    ok = ~np.isnan(y) & ~np.isnan(s)
    if ok.sum() == 0 or len(np.unique(y[ok])) < 2 and name in ("roc_auc", "average_precision"):
        return float("nan")
    return score(name, y[ok].astype(int), s[ok], "classification")


def metric_value(project: Any, labels: Any, scores: Any, predictions: Any = None,
                 metric: str | None = None, probabilities: Any = None, classes: Any = None) -> float:
    """The primary metric (or `metric`) of labeled rows; NaN when undefined (one class ...).
    `probabilities`: per-class probabilities of a multiclass model (see :func:`metric_arrays`),
    an array's columns in the order of `classes`."""
    arrays = metric_arrays(project, labels, scores, predictions, metric, ClassCodes(classes),
                           probabilities)
    return metric_of_arrays(project, *arrays, metric)


def rows_probabilities(rows: Any) -> Any:
    """The logged per-class probabilities of log rows (``probabilities`` field), or None."""
    if "probabilities" not in getattr(rows, "columns", ()):
        return None
    values = rows["probabilities"].tolist()
    return values if any(isinstance(v, dict) and v for v in values) else None


def scorer_metric(project: Any, scorer: Any, rows: Any, metric: str | None = None) -> float:
    """The metric of `scorer` re-scoring the inputs of labeled log rows (with its per-class
    probabilities for a multiclass model)."""
    full = getattr(scorer, "predict_full", None)
    if full is not None:
        scores, preds, proba, classes = full(rows)
    else:
        (scores, preds), proba, classes = scorer.predict(rows), None, None
    return metric_value(project, rows["label"], scores, preds, metric, proba, classes)


def logged_metric(project: Any, rows: Any, metric: str | None = None) -> float:
    """The metric of labeled log rows from what the log holds (scores, predictions, probabilities)."""
    return metric_value(project, rows["label"], rows["score"], rows["prediction"], metric,
                        rows_probabilities(rows))


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

"""``omg ops monitor`` (core layer): the served model, window by window, from the prediction log.

Per window (``monitoring.window``, default one day): requests, errors and error rate, latency p50/p99,
the score distribution (p10/p50/p90 of P(positive) for a binary model, of the predicted values for a
regression; positive rate), the largest share of missing values among the
input features, the model versions that answered and, once ground truth has arrived, the primary
metric on the labeled requests. Each threshold of ``monitoring.thresholds`` that a window breaks
raises one alert (``monitoring/alerts.jsonl``); the dashboard is ``reports/monitoring_dashboard.html``.

Streaming. The log is read day file by day file, in batches of at most ``BATCH_ROWS`` records
(:func:`~omgmagics.ops.predlog.iter_records`); each batch is joined with the feedback (by request_id),
added to per-window accumulators and dropped, so memory does not grow with the number of requests:

- exact: requests, errors, error rate, positive rate (counts), missing shares per input column (counts
  of present values per window and column), labels, model versions, and the live metric, computed from
  the labeled requests of the window kept as three compact float64 arrays (encoded label, score,
  prediction: 24 bytes per labeled request; a multiclass model's class codes, plus its per-class
  probabilities when the log holds them: 8 bytes per class more);
- quantiles (latency p50/p99, score p10/p50/p90) are exact (``numpy.percentile``, linear interpolation)
  while a window holds at most ``EXACT_CAP`` values of the quantity; above that the window keeps counts
  over fixed bins instead (only the bins that occur) and a quantile is interpolated between the bin
  midpoints of the two order statistics, as numpy does between the values. Resolution of a binned
  quantile: a score (bins of width 1e-4 on [0, 1]) is within 5e-5 of the exact percentile; a latency
  (bins of width 1e-4 ms below 0.01 ms, then log-spaced with ratio 1.01) within 0.5 % of it (or 5e-5 ms
  below 0.01 ms). Values outside those ranges (negative, a score above 1) fall in the same kind of
  log-spaced bins, mirrored for negatives.

Memory per window: a few counters, one count per input column, and per quantity either at most
``EXACT_CAP`` float64 values (32 KB) or 16 bytes per occupied bin (at most 10,000 score bins on [0, 1],
160 KB; about 1,100 latency bins from 1 ms to 60 s). Besides the windows: 24 bytes per labeled request,
the feedback table (bounded by the number of labels, not of requests) and one batch of records —
nothing grows with the number of requests itself.

Windows are ``floor(earliest time) + k x duration``, as before streaming. The first batch fixes the
grid; a later batch with an earlier time (a record in a later day file) keeps it when the shift is a
whole number of windows (always for windows of one unit: 1d, 1h, 1m, 1s); otherwise the
log is read once more for its earliest time, then aggregated again on the right grid.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError
from .alerts import alerts_table, make_alert, raise_alerts
from .live import ClassCodes, concat_arrays, metric_arrays, metric_of_arrays
from .predlog import BATCH_RECORDS, META, feedback_path, read_feedback
from .settings import monitoring_settings
from .sketch import (  # noqa: F401 - EXACT_CAP and the bin helpers are re-exported
    EXACT_CAP,
    LATENCY_BINS,
    SCORE_BINS,
    Sketch,
    bin_keys,
    bin_values,
)
from .windows import current_window, floor_ns, from_ns, parse_duration, to_ns, to_utc

DASHBOARD = "monitoring_dashboard.html"
BATCH_ROWS = BATCH_RECORDS  # log records parsed into one DataFrame at a time
class _Window:
    """The accumulators of one window."""

    __slots__ = ("requests", "errors", "ok", "present", "preds", "preds_pos", "scored", "scored_pos",
                 "latency", "score", "labels", "versions")

    def __init__(self) -> None:
        self.requests = self.errors = self.ok = 0
        self.preds = self.preds_pos = self.scored = self.scored_pos = 0
        self.present: dict[str, int] = {}  # input column -> requests (status ok) where it is present
        self.latency = Sketch(LATENCY_BINS)
        self.score = Sketch(SCORE_BINS)
        self.labels: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self.versions: set[str] = set()


class _Rephase(Exception):
    """A batch holds a time before the first window whose bounds shift the windows' grid."""


class WindowStats:
    """Per-window accumulators of the monitor, fed one batch of log rows at a time.

    Windows are those of the whole log: ``floor(earliest time) + k x duration``. The earliest time is
    only known at the end; `origin` fixes it beforehand (the floor of the earliest time), else the
    first batch sets it and a later batch with an earlier time shifts it, which is exact whenever the
    shift is a whole number of windows (always for one-unit windows such as 1d or 1h); otherwise
    :meth:`add` raises ``_Rephase`` and the caller starts again with the true origin.
    """

    def __init__(self, project: Any, feedback: Any, duration: Any, origin: int | None = None):
        from ..metrics import get_metric

        self.project = project
        self.metric = project.primary_metric
        get_metric(self.metric)
        self.positive = project.config.get_path("brief.objective.positive_label")
        self.duration = duration
        self.origin = origin
        self.latest: int | None = None  # the latest time seen (ns)
        self.rows = 0
        self.inputs: dict[str, None] = {}  # input columns in order of appearance
        self.windows: dict[int, _Window] = {}
        self._feedback = feedback
        self._fb_index: Any = None
        self._fb_labels: Any = None
        self.codes = ClassCodes()  # multiclass: one class coding for every batch and window
        self.regression = get_metric(self.metric).task == "regression"

    def _labels(self, df: Any) -> np.ndarray:
        """The label of each row, looked up by request_id in the feedback (None where none arrived)."""
        if self._fb_labels is None:
            import pandas as pd

            fb = self._feedback() if callable(self._feedback) else self._feedback
            self._fb_labels = fb["label"].to_numpy(dtype=object)
            self._fb_index = pd.Index(fb["request_id"].astype(str)) if len(fb) else None
        if "label" in df.columns:  # an input of that name shadows the feedback (as a join would)
            return df["label"].to_numpy(dtype=object)
        out = np.full(len(df), None, dtype=object)
        if self._fb_index is not None:
            pos = self._fb_index.get_indexer(df["request_id"].astype(str))
            hit = pos >= 0
            out[hit] = self._fb_labels[pos[hit]]
        return out

    def add(self, df: Any) -> None:
        """Add one batch of log rows (a :func:`~omgmagics.ops.predlog.records_frame`)."""
        import pandas as pd

        if df.empty:
            return
        dur = self.duration.ns
        ns = pd.DatetimeIndex(df["time"]).as_unit("ns").asi8
        lo, hi = int(ns.min()), int(ns.max())
        first = floor_ns(lo, self.duration)
        if self.origin is None:
            self.origin = first
        elif first < self.origin and (self.origin - first) % dur:
            raise _Rephase(first)
        self.latest = hi if self.latest is None else max(self.latest, hi)
        self.rows += len(df)
        for c in df.columns:
            if c not in META:
                self.inputs.setdefault(c, None)

        w = (ns - self.origin) // dur
        keys, inv = np.unique(w, return_inverse=True)
        nw = len(keys)
        ok = (df["status"] == "ok").to_numpy()
        lat = df["latency_ms"].to_numpy(dtype=np.float64)
        pred = df["prediction"]
        if self.regression:  # the score columns of a regression are its predicted values
            score = pd.to_numeric(pred, errors="coerce").to_numpy(dtype=np.float64)
        else:
            score = df["score"].to_numpy(dtype=np.float64)
        has_pred = ok & pred.notna().to_numpy()
        has_score = ok & ~np.isnan(score)
        with np.errstate(invalid="ignore"):
            score_pos = has_score & (score >= 0.5) & (not self.regression)
        pred_pos = (has_pred & (pred.astype(str) == str(self.positive)).to_numpy()
                    if self.positive is not None else np.zeros(len(df), dtype=bool))

        def count(mask: np.ndarray) -> np.ndarray:
            return np.bincount(inv[mask], minlength=nw)

        requests, errors, n_ok = count(np.ones(len(df), dtype=bool)), count(~ok), count(ok)
        preds, preds_pos, scored, scored_pos = count(has_pred), count(pred_pos), count(has_score), \
            count(score_pos)
        present = {c: count(ok & df[c].notna().to_numpy()) for c in df.columns if c not in META}
        labels = self._labels(df)
        lab = ok & pd.notna(labels)
        probs = (df["probabilities"].to_numpy(dtype=object)[lab]
                 if "probabilities" in df.columns and lab.any() else None)
        y, s, p = (metric_arrays(self.project, labels[lab], score[lab], pred.to_numpy(dtype=object)[lab],
                                 codes=self.codes, probabilities=probs)
                   if lab.any() else (None, None, None))
        lab_w = inv[lab]
        mv = df["model_version"]
        mv_ok = mv.notna().to_numpy()
        versions = pd.DataFrame({"w": inv[mv_ok], "v": mv[mv_ok].map(str).to_numpy()}).drop_duplicates()

        order = np.argsort(inv, kind="stable")
        bounds = np.concatenate([[0], np.cumsum(requests)])
        lat_sorted, lat_ok = lat[order], ~np.isnan(lat[order])
        score_sorted, score_ok = score[order], has_score[order]
        lab_order = np.argsort(lab_w, kind="stable")
        lab_bounds = np.concatenate([[0], np.cumsum(np.bincount(lab_w, minlength=nw))])
        for j, key in enumerate(keys.tolist()):
            win = self.windows.get(key)
            if win is None:
                win = self.windows[key] = _Window()
            win.requests += int(requests[j])
            win.errors += int(errors[j])
            win.ok += int(n_ok[j])
            win.preds += int(preds[j])
            win.preds_pos += int(preds_pos[j])
            win.scored += int(scored[j])
            win.scored_pos += int(scored_pos[j])
            for c, n in present.items():
                win.present[c] = win.present.get(c, 0) + int(n[j])
            a, b = bounds[j], bounds[j + 1]
            win.latency.add(lat_sorted[a:b][lat_ok[a:b]])
            win.score.add(score_sorted[a:b][score_ok[a:b]])
            a, b = lab_bounds[j], lab_bounds[j + 1]
            if b > a:
                sel = lab_order[a:b]
                win.labels.append((y[sel], s[sel], p[sel]))
        for j, v in zip(versions["w"].tolist(), versions["v"].tolist(), strict=True):
            self.windows[keys[j].item()].versions.add(v)

    def series(self) -> Any:
        """One row per window that holds requests, oldest first (as :func:`window_series`)."""
        import pandas as pd

        dur = self.duration.ns
        rows = []
        for key in sorted(self.windows):
            win = self.windows[key]
            start_ns = self.origin + key * dur
            if win.preds and self.positive is not None:
                pos_rate = win.preds_pos / win.preds
            elif win.scored and not self.regression:
                pos_rate = win.scored_pos / win.scored
            else:
                pos_rate = np.nan
            miss_share, miss_col = 0.0, ""
            if self.inputs and win.ok:
                shares = [(win.ok - win.present.get(c, 0)) / win.ok for c in self.inputs]
                best = int(np.argmax(shares))
                miss_share = float(shares[best])
                miss_col = list(self.inputs)[best] if miss_share > 0 else ""
            n_lab = sum(len(t[0]) for t in win.labels)
            live = metric_of_arrays(self.project, *concat_arrays(win.labels)) if n_lab else np.nan
            p50, p99 = win.latency.percentiles([50, 99])
            s10, s50, s90 = win.score.percentiles([10, 50, 90])
            rows.append({
                "window start": from_ns(start_ns), "window end": from_ns(start_ns + dur),
                "requests": win.requests, "errors": win.errors, "error rate": win.errors / win.requests,
                "latency p50 ms": p50, "latency p99 ms": p99,
                "score p10": s10, "score p50": s50, "score p90": s90,
                "positive rate": pos_rate,
                "max missing share": miss_share, "most missing feature": miss_col,
                "labels": n_lab, f"live {self.metric}": live,
                "model versions": ", ".join(sorted(win.versions)),
            })
        return pd.DataFrame(rows)


def window_series(project: Any, log: Any, feedback: Any, duration: Any) -> Any:
    """One row per window of the log (a DataFrame already in memory): the figures the monitor judges."""
    stats = WindowStats(project, feedback, duration)
    stats.add(log)
    return stats.series()


def stream_windows(project: Any, feedback: Any, duration: Any, start: Any = None, end: Any = None,
                   settings: dict[str, Any] | None = None,
                   batch_rows: int = BATCH_ROWS) -> tuple[WindowStats, Any]:
    """Read the log in ``[start, end)`` batch by batch into :class:`WindowStats`.

    `feedback` is the feedback table, or a function returning it (called once, at the first record).
    Returns (stats, problems met reading the log); ``stats.rows == 0`` when no record is in range.
    """
    from .predlog import Problems, iter_records, records_frame

    cache: list[Any] = []

    def table() -> Any:
        if not cache:
            cache.append(feedback() if callable(feedback) else feedback)
        return cache[0]

    origin = None
    while True:
        problems = Problems()
        stats = WindowStats(project, table, duration, origin)
        try:
            for records in iter_records(project, start, end, settings, problems, batch_rows):
                stats.add(records_frame(records))
            return stats, problems
        except _Rephase:
            # the earliest time first (times only), then once more on the right grid
            earliest = min(min(r["time"] for r in records)
                           for records in iter_records(project, start, end, settings, Problems(),
                                                       batch_rows))
            origin = floor_ns(to_ns(earliest), duration)


def _alerts(project: Any, series: Any, th: dict[str, Any], now_ns: int) -> list[dict[str, Any]]:
    from ..metrics import get_metric
    from .windows import Window

    metric = project.primary_metric
    higher = get_metric(metric).greater_is_better
    out = []
    for _, r in series.iterrows():
        win = Window(r["window start"], r["window end"])
        still_open = to_ns(r["window end"]) > now_ns

        def add(kind: str, sev: str, name: str, value: Any, limit: Any, text: str, scope: str = "",
                win: Window = win) -> None:
            out.append(make_alert(kind, sev, win, name, round(float(value), 4), limit,
                                  f"{win.label()}: {text}", "monitor", scope))

        if th.get("latency_p99_ms") is not None and r["latency p99 ms"] > th["latency_p99_ms"]:
            add("latency", "critical", "latency p99 ms", r["latency p99 ms"], th["latency_p99_ms"],
                f"latency p99 {r['latency p99 ms']:.1f} ms > {th['latency_p99_ms']} ms.")
        if th.get("latency_p50_ms") is not None and r["latency p50 ms"] > th["latency_p50_ms"]:
            add("latency", "warning", "latency p50 ms", r["latency p50 ms"], th["latency_p50_ms"],
                f"latency p50 {r['latency p50 ms']:.1f} ms > {th['latency_p50_ms']} ms.")
        if th.get("error_rate") is not None and r["error rate"] > th["error_rate"]:
            add("error_rate", "critical", "error rate", r["error rate"], th["error_rate"],
                f"error rate {r['error rate']:.2%} > {th['error_rate']:.2%} ({r['errors']} errors).")
        if th.get("min_volume") is not None and r["requests"] < th["min_volume"] and not still_open:
            add("volume", "warning", "requests", r["requests"], th["min_volume"],
                f"{r['requests']} requests < {th['min_volume']}.")
        if th.get("max_volume") is not None and r["requests"] > th["max_volume"]:
            add("volume", "warning", "requests", r["requests"], th["max_volume"],
                f"{r['requests']} requests > {th['max_volume']}.")
        if th.get("missing_share") is not None and r["max missing share"] > th["missing_share"]:
            add("missingness", "warning", "missing share", r["max missing share"], th["missing_share"],
                f"'{r['most missing feature']}' missing in {r['max missing share']:.1%} of requests "
                f"> {th['missing_share']:.0%}.", r["most missing feature"])
        live = r[f"live {metric}"]
        if th.get("metric_min") is not None and r["labels"] >= (th.get("min_labels") or 1) \
                and np.isfinite(live) and (live < th["metric_min"] if higher else live > th["metric_min"]):
            add("performance", "critical", f"live {metric}", live, th["metric_min"],
                f"live {metric} {live:.4f} {'<' if higher else '>'} {th['metric_min']} on "
                f"{r['labels']} labeled requests.")
    return out


def run_monitor(project: Any, config: str | None = None, *, window: str | None = None,
                since: str | None = None, until: str | None = None, env: str | None = None,
                write: bool = True) -> Any:
    """Monitor the prediction log window by window; raise alerts; write the dashboard.

    Parameters
    ----------
    config : str, optional
        A monitoring.yaml overriding ``omg.yaml`` ``monitoring:``.
    window : str, optional
        Bucket length (default ``monitoring.window``, 1d).
    since, until : str, optional
        Limit the log to ``[since, until)``.
    env : str, optional
        Only requests of this environment (default ``monitoring.env``: all).
    """
    from ..clock import now
    from ..results import Report
    from . import plots
    from .html import write_page
    from .predlog import Problems

    settings = monitoring_settings(project, config)
    if env:
        settings["env"] = env
    duration = parse_duration(window or settings["window"], "window")
    start = to_utc(since, "--since") if since else None
    end = to_utc(until, "--until") if until else None
    fb_problems = Problems()
    fb_cache: list[Any] = []

    def feedback() -> Any:  # read once the log holds a record (an empty log is reported first)
        if not fb_cache:
            fb_cache.append(read_feedback(feedback_path(project, settings), fb_problems))
        return fb_cache[0]

    stats, problems = stream_windows(project, feedback, duration, start, end, settings)
    if stats.rows == 0:
        from .predlog import envs

        span = f" in {since or '...'} .. {until or '...'}" if since or until else ""
        env = envs(settings)
        span += f" of env {', '.join(sorted(env))} (monitoring.env)" if env else ""
        extra = (" Skipped: " + " ".join(problems.items)) if problems.items else ""
        raise DataError(f"The prediction log has no records{span}.{extra} Serve the model "
                        "(`omg deploy serve`) or replay traffic (`omg ops simulate`) first, or widen "
                        "--since/--until.")
    fb = feedback()
    th = settings["thresholds"]
    series = stats.series()
    metric = project.primary_metric
    new = raise_alerts(project, _alerts(project, series, th, to_ns(now()))) if write else []
    last = series.iloc[-1]
    lw = current_window(stats.latest, duration)
    summary = {
        "requests": int(series["requests"].sum()),
        "windows": f"{len(series)} x {duration} ({series['window start'].iloc[0]:%Y-%m-%d %H:%M} .. "
                   f"{series['window end'].iloc[-1]:%Y-%m-%d %H:%M} UTC)",
        "latest window": lw.label(),
        "error rate (latest)": round(float(last["error rate"]), 4),
        "latency p99 ms (latest)": round(float(last["latency p99 ms"]), 2),
        f"live {metric} (latest)": (round(float(last[f"live {metric}"]), 4)
                                     if np.isfinite(last[f"live {metric}"]) else "no labels yet"),
        "labels joined": int(series["labels"].sum()),
        "new alerts": len(new),
    }
    shown = series.copy()
    shown["window"] = [f"{a:%Y-%m-%d %H:%M}" for a in shown["window start"]]
    shown = shown.drop(columns=["window start", "window end"])
    shown = shown[["window"] + [c for c in shown.columns if c != "window"]]
    report = Report(title=f"Monitoring {len(series)} window(s): {len(new)} new alert(s)",
                    summary=summary, tables={"windows": shown}, value=series)
    if new:
        report.tables["new alerts"] = alerts_table(new).drop(columns=["id"])
    report.add_figure("dashboard", plots.monitor_series(series, th, metric))
    report.messages += problems.items + fb_problems.items
    from .live import PROBA_METRICS, class_mode

    if (class_mode(project) == "multiclass" and metric in PROBA_METRICS and series["labels"].sum()
            and not np.isfinite(series[f"live {metric}"]).any()):
        report.messages.append(f"Live {metric} needs per-class probabilities, and the prediction log "
                               "holds none (a record's 'probabilities'): it is not computed per window. "
                               "The phase 5 gate and retraining re-score the requests' inputs with the "
                               "model instead.")
    if not len(fb):
        report.messages.append("No ground truth yet (monitoring/feedback.jsonl): the live metric is "
                               "computed once labels arrive.")
    checked = ", ".join(f"{k} {v}" for k, v in th.items() if v is not None)
    report.messages.append(f"Thresholds: {checked}.")
    if write:
        page = write_page(Path(project.reports_dir) / DASHBOARD, report,
                          "Monitoring dashboard from the prediction log.")
        report.artifacts["dashboard"] = str(page)
        if new:
            report.artifacts["alerts"] = str(Path(project.monitoring_dir) / "alerts.jsonl")
    report.data["alerts"] = new
    return report

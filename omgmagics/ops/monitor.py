"""``omg ops monitor`` (core layer): the served model, window by window, from the prediction log.

Per window (``monitoring.window``, default one day): requests, errors and error rate, latency p50/p99,
the score distribution (p10/p50/p90, positive rate), the largest share of missing values among the
input features, the model versions that answered and, once ground truth has arrived, the primary
metric on the labeled requests. Each threshold of ``monitoring.thresholds`` that a window breaks
raises one alert (``monitoring/alerts.jsonl``); the dashboard is ``reports/monitoring_dashboard.html``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError
from .alerts import alerts_table, make_alert, raise_alerts
from .live import join_feedback, metric_value
from .predlog import META, feedback_path, read_feedback, read_log
from .settings import monitoring_settings
from .windows import current_window, from_ns, parse_duration, to_ns, to_utc

DASHBOARD = "monitoring_dashboard.html"


def _window_index(times: Any, duration: Any) -> tuple[np.ndarray, int]:
    from .windows import floor_ns

    ns = times.astype("int64").to_numpy() if hasattr(times, "astype") else np.asarray(times)
    first = floor_ns(int(ns.min()), duration)
    return (ns - first) // duration.ns, first


def window_series(project: Any, log: Any, feedback: Any, duration: Any) -> Any:
    """One row per window of the log: the figures the monitor judges."""
    import pandas as pd

    from ..metrics import get_metric

    metric = project.primary_metric
    get_metric(metric)
    positive = project.config.get_path("brief.objective.positive_label")
    joined = join_feedback(log, feedback)
    idx, first = _window_index(joined["time"].dt.tz_convert("UTC").dt.tz_localize(None), duration)
    joined["_w"] = idx
    # the request fields only: attributes that arrive with the labels are not the requests' own
    inputs = [c for c in log.columns if c not in META]
    rows = []
    for w, g in joined.groupby("_w", sort=True):
        start = from_ns(first + int(w) * duration.ns)
        ok = g["status"] == "ok"
        lat = g["latency_ms"].dropna()
        sc = g.loc[ok, "score"].dropna()
        pred = g.loc[ok, "prediction"].dropna()
        if len(pred) and positive is not None:
            pos_rate = float((pred.astype(str) == str(positive)).mean())
        elif len(sc):
            pos_rate = float((sc >= 0.5).mean())
        else:
            pos_rate = np.nan
        miss = g.loc[ok, inputs].isna().mean() if inputs and ok.any() else pd.Series(dtype=float)
        lab = g[ok & g["label"].notna()]
        live = metric_value(project, lab["label"], lab["score"], lab["prediction"]) if len(lab) else np.nan
        rows.append({
            "window start": start, "window end": from_ns(first + (int(w) + 1) * duration.ns),
            "requests": int(len(g)), "errors": int((~ok).sum()), "error rate": float((~ok).mean()),
            "latency p50 ms": float(np.percentile(lat, 50)) if len(lat) else np.nan,
            "latency p99 ms": float(np.percentile(lat, 99)) if len(lat) else np.nan,
            "score p10": float(np.percentile(sc, 10)) if len(sc) else np.nan,
            "score p50": float(np.percentile(sc, 50)) if len(sc) else np.nan,
            "score p90": float(np.percentile(sc, 90)) if len(sc) else np.nan,
            "positive rate": pos_rate,
            "max missing share": float(miss.max()) if len(miss) else 0.0,
            "most missing feature": str(miss.idxmax()) if len(miss) and miss.max() > 0 else "",
            "labels": int(len(lab)), f"live {metric}": live,
            "model versions": ", ".join(sorted({str(v) for v in g["model_version"].dropna()})),
        })
    return pd.DataFrame(rows)


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
    from ..results import Report
    from . import plots
    from .html import write_page
    from .journal import now
    from .predlog import Problems

    settings = monitoring_settings(project, config)
    if env:
        settings["env"] = env
    duration = parse_duration(window or settings["window"], "window")
    start = to_utc(since, "--since") if since else None
    end = to_utc(until, "--until") if until else None
    log, problems = read_log(project, start, end, settings)
    if log.empty:
        from .predlog import envs

        span = f" in {since or '...'} .. {until or '...'}" if since or until else ""
        env = envs(settings)
        span += f" of env {', '.join(sorted(env))} (monitoring.env)" if env else ""
        extra = (" Skipped: " + " ".join(problems.items)) if problems.items else ""
        raise DataError(f"The prediction log has no records{span}.{extra} Serve the model "
                        "(`omg deploy serve`) or replay traffic (`omg ops simulate`) first, or widen "
                        "--since/--until.")
    fb_problems = Problems()
    fb = read_feedback(feedback_path(project, settings), fb_problems)
    th = settings["thresholds"]
    series = window_series(project, log, fb, duration)
    metric = project.primary_metric
    new = raise_alerts(project, _alerts(project, series, th, to_ns(now()))) if write else []
    last = series.iloc[-1]
    lw = current_window(to_ns(log["time"].max().to_pydatetime()), duration)
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

"""``omg ops drift`` (core layer): reference vs the current window (or every window since a date),
with a report in ``reports/drift_*.html``, the drift history and drift alerts.

The current data is the prediction log by default (its ``inputs`` and ``score``), or any table with a
time column. Columns that are not features (the target, ids, the time column, the log's own fields)
are left out of the comparison; the model's score (or prediction) is compared as prediction drift.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .. import clock
from ..errors import DataError, UsageError
from ..io import journal
from ..io.sources import TIME, open_source
from .alerts import make_alert, raise_alerts
from .drift import WindowDrift, compare, count_current, profile_reference
from .predlog import META, LogSource
from .settings import monitoring_settings
from .windows import (
    current_window,
    parse_duration,
    rolling_windows,
    to_ns,
    to_utc,
    window_ending,
)

NOT_FEATURES = set(META) | {"label", "label_time", "inputs"}


def _resolve_reference(project: Any, reference: Any, settings: dict[str, Any]) -> Any:
    if reference is not None:
        return open_source(reference, "reference", base=project.root)
    default = Path(project.root) / settings["reference"]
    if not default.exists():
        raise UsageError(f"No reference data: pass --reference PATH (e.g. the training data), or write "
                         f"{settings['reference']} (`omg ops simulate` writes one from the held-out "
                         "data with the champion's scores).")
    return open_source(default, "reference")


def _features(project: Any, ref_cols: list[str], cur_cols: list[str], explicit: list[str] | None,
              exclude: set[str]) -> list[str]:
    if explicit:
        unknown = [f for f in explicit if f not in ref_cols]
        if unknown:
            from ..errors import did_you_mean

            raise UsageError(f"Feature '{unknown[0]}' is not a column of the reference."
                             f"{did_you_mean(unknown[0], ref_cols)} Columns: {', '.join(ref_cols)}.")
        return list(explicit)
    skip = exclude | NOT_FEATURES | {c for c in [project.target,
                                                 project.config.get_path("data.id_column")] if c}
    return [c for c in ref_cols if c not in skip]


def run_drift(project: Any, reference: Any = None, current: Any = None, *, window: str | None = None,
              since: str | None = None, until: str | None = None, features: list[str] | None = None,
              time_column: str | None = None, config: str | None = None, env: str | None = None,
              write: bool = True, batch_rows: int | None = None) -> Any:
    """Compare the current window(s) with the reference; report, history, alerts.

    Parameters
    ----------
    project : Project
    reference, current : DataFrame or path, optional
        Default reference: ``monitoring.reference``; default current: the prediction log.
    window : str, optional
        Window length such as ``7d`` (default ``monitoring.drift.window``).
    since : str, optional
        Compare every window from this date on (rolling), not only the current one.
    until : str, optional
        End of the current window (default: just after the latest time in the data).
    features : list of str, optional
        Compare only these columns.
    time_column : str, optional
        Time column of `current` (default: ``brief.time_column``; the log's ``time``).
    env : str, optional
        With the prediction log: only requests of this environment (default ``monitoring.env``).
    write : bool
        Write the HTML report, the history and alerts (the library may switch it off).

    Returns
    -------
    Report
        ``value`` is the list of :class:`~omgmagics.ops.drift.WindowDrift`.
    """
    from ..results import Report

    settings = monitoring_settings(project, config)
    if env:
        settings["env"] = env
    ds = settings["drift"]
    duration = parse_duration(window or ds["window"], "window")
    ref_src = _resolve_reference(project, reference, settings)
    if current is None:
        cur_src = LogSource(project, settings)
        tcol = "time"
    else:
        cur_src = open_source(current, "current", base=project.root)
        tcol = time_column or project.time_column
        if tcol and tcol not in cur_src.kinds:
            if time_column:
                raise DataError(f"The current data has no time column '{tcol}'. Its columns: "
                                f"{', '.join(cur_src.columns)}.")
            tcol = None
    if tcol and cur_src.kinds.get(tcol) not in (TIME, "categorical"):
        raise DataError(f"The time column '{tcol}' is not a time: it holds {cur_src.kinds.get(tcol)} "
                        "values. Use timestamps, dates or ISO-8601 text, or name another column with "
                        "--time-column.")
    pred_col = ds.get("prediction")
    if not pred_col:
        pred_col = next((c for c in ("score", "prediction") if c in ref_src.kinds and c in cur_src.kinds),
                        None)
    feats = _features(project, ref_src.columns, cur_src.columns, features or ds.get("features"),
                      {tcol, pred_col, project.time_column} - {None})
    if not feats:
        raise DataError(f"No feature columns to compare in the reference {ref_src.name}.")
    missing = [c for c in feats if c not in cur_src.kinds]
    if missing:
        raise DataError(f"The current data ({cur_src.name}) lacks {len(missing)} column(s) of the "
                        f"reference {ref_src.name}: {', '.join(missing)}. Compare the shared columns "
                        "with --features, or fix the data.")
    messages: list[str] = []
    windows = None
    if tcol:
        first, last, bad = _time_range(cur_src, tcol)
        if bad:
            messages.append(f"{bad} row(s) of the current data have no valid time in '{tcol}' and were "
                            "left out.")
        if since:
            windows = rolling_windows(to_utc(since, "--since"), last, duration)
        elif until:
            windows = [window_ending(to_utc(until, "--until"), duration)]
        else:
            windows = [current_window(last, duration)]
    else:
        if window or since or until:
            raise UsageError("--window, --since and --until need a time column in the current data: "
                             "set brief.time_column in omg.yaml or pass --time-column.")
        messages.append("The current data has no time column: it is compared as one window.")
    engine = {k: ds[k] for k in ds if k in _ENGINE_KEYS}
    if current is None:
        replay = _replayed_rows(project)
        if replay:
            engine["max_independent_rows"] = replay
            messages.append(f"The simulated traffic reuses {replay:,} held-out rows (sampled with "
                            f"replacement): each window's tests count at most {replay:,} independent "
                            "rows, since a repeated row is no new evidence.")
    ref = profile_reference(ref_src, feats, prediction=pred_col, categorical=ds.get("categorical"),
                            settings=engine)
    if (pred_col == "score" and not ds.get("prediction") and ref.binnings["score"].skipped
            and "prediction" in ref_src.kinds and "prediction" in cur_src.kinds):
        # no P(positive) (a multiclass model or a regression): the predicted class or value instead
        pred_col = "prediction"
        ref = profile_reference(ref_src, feats, prediction=pred_col,
                                categorical=ds.get("categorical"), settings=engine)
    counts = count_current(cur_src, ref, time_column=tcol, windows=windows)
    results = [compare(ref, counts, w, windows[w] if windows else None)
               for w in range(len(windows) if windows else 1)]
    empty = [r for r in results if r.rows == 0]
    results = [r for r in results if r.rows > 0]
    if not results:
        w = windows[0] if windows and len(windows) == 1 else None
        span = f" The data spans {_fmt_ns(first)} .. {_fmt_ns(last)}." if tcol else ""
        what = f"the window {w.label()}" if w else f"any of the {len(empty)} windows"
        raise DataError(f"No rows of the current data ({cur_src.name}) fall in {what}.{span} "
                        "Choose another --until / --since or a longer --window.")
    if empty:
        messages.append(f"{len(empty)} window(s) without rows were skipped: "
                        + ", ".join(r.window.label() for r in empty[:5]) + ("..." if len(empty) > 5 else ""))
    problems = getattr(cur_src, "problems", None)
    messages += list(getattr(problems, "items", []))
    return _report(project, ref, ref_src, cur_src, results, duration, bool(since), messages, ds, write,
                   Report)


def _replayed_rows(project: Any) -> int | None:
    """The number of distinct rows the simulated traffic replays when it reused them (sampled with
    replacement), from ``monitoring/simulation.json``; None for traffic that did not."""
    from .simulate import _read_simulations

    reused = [int(r.get("distinct rows") or 0) for r in _read_simulations(project)
              if r.get("sampled with replacement")]
    return max(reused) if reused and min(reused) > 0 else None


_ENGINE_KEYS = {"max_independent_rows", "bins", "psi_bins", "sample_size", "max_categories", "alpha", "correction", "effect",
                "min_effect", "psi_moderate", "psi_high", "js_threshold", "wasserstein_threshold",
                "drift_share", "min_rows"}


def _fmt_ns(ns: int) -> str:
    from .windows import from_ns

    return from_ns(ns).isoformat(timespec="seconds")


def _time_range(source: Any, tcol: str) -> tuple[int, int, int]:
    from ..io.sources import NAT

    if isinstance(source, LogSource):
        return to_ns(source.first), to_ns(source.last), 0
    lo, hi, bad = None, None, 0
    for batch in source.batches([], tcol):
        t, b = batch.times(tcol)
        bad += b
        t = t[t != NAT]
        if len(t):
            lo = int(t.min()) if lo is None else min(lo, int(t.min()))
            hi = int(t.max()) if hi is None else max(hi, int(t.max()))
    if hi is None:
        raise DataError(f"The time column '{tcol}' of {source.name} holds no valid time. Use "
                        "timestamps, dates or ISO-8601 text.")
    return lo, hi, bad


def _alerts_for(r: WindowDrift, ref_name: str, ds: dict[str, Any]) -> list[dict[str, Any]]:
    rules = set(ds.get("alert_on") or [])
    out = []
    high = [f.feature for f in r.features if f.drifted and f.severity == "high"]
    if "dataset" in rules and r.dataset_drift:
        out.append(make_alert("dataset_drift", "critical", r.window, "drifted share", round(r.share, 4),
                              ds["drift_share"], f"Dataset drift: {len(r.drifted)} of {r.judged} features "
                              f"drifted ({', '.join(r.drifted)}).", "drift", ref_name))
    elif "feature" in rules and high:
        out.append(make_alert("feature_drift", "warning", r.window, "features with PSI >= "
                              f"{ds['psi_high']}", len(high), 1,
                              f"High drift in {', '.join(high)}.", "drift", ref_name))
    if "prediction" in rules and r.prediction is not None and r.prediction.drifted:
        p = r.prediction
        out.append(make_alert("prediction_drift", "warning", r.window, f"PSI of {p.feature}",
                              round(p.psi, 4), ds["min_effect"],
                              f"Prediction drift: the distribution of {p.feature} shifted (PSI "
                              f"{p.psi:.3f}).", "drift", ref_name))
    return out


def _report(project: Any, ref: Any, ref_src: Any, cur_src: Any, results: list[WindowDrift],
            duration: Any, rolling: bool, messages: list[str], ds: dict[str, Any], write: bool,
            Report: Any) -> Any:
    import pandas as pd

    from . import plots
    from .html import write_page

    last = results[-1]
    win = last.window
    pred = last.prediction
    summary = {
        "reference": f"{ref_src.name} ({ref.rows:,} rows)",
        "current": cur_src.name,
        "window": win.label() if win else "all rows",
        "rows in window": last.rows,
        "features compared": last.judged,
        "drifted": ", ".join(last.drifted) or "none",
        "drifted share": round(last.share, 3) if last.judged else None,
        "dataset drift": "fail" if last.dataset_drift else "pass",
        "prediction drift": ("not computed" if pred is None else
                             {True: "fail", False: "pass", None: "not judged"}[pred.drifted]),
    }
    report = Report(title=f"Drift {'over ' + str(len(results)) + ' windows' if rolling else 'of the current window'}"
                          f" vs the reference: {'dataset drift' if last.dataset_drift else 'no dataset drift'}",
                    summary=summary, messages=list(messages) + list(last.notes), value=results)
    report.tables["features (latest window)" if rolling else "features"] = last.table()
    if rolling:
        report.tables["windows"] = pd.DataFrame([{
            "window start": r.window.start, "window": r.window.label(), "rows": r.rows,
            "drifted": len(r.drifted), "drifted share": r.share, "dataset drift": "fail" if r.dataset_drift else "pass",
            "prediction drift": "" if r.prediction is None else {True: "fail", False: "pass", None: "n/a"}[r.prediction.drifted],
            "drifted features": ", ".join(r.drifted)} for r in results])
        report.add_figure("drifted share per window", plots.drift_over_time(report.tables["windows"]))
        report.tables["windows"] = report.tables["windows"].drop(columns="window start")
    report.add_figure("reference vs current distributions",
                      plots.drift_histograms(last.features + ([pred] if pred else [])))
    if pred is None:
        report.messages.append("Prediction drift not computed: the reference and the current data share "
                               "no score or prediction column.")
    report.messages.append(
        f"A feature drifts when its test (KS / chi-square) is significant after a {ds['correction']} "
        f"correction (p < {ds['alpha']}) and its {ds['effect']} is at least {ds['min_effect']}; "
        f"dataset drift from {ds['drift_share']:.0%} of the features.")
    if not write:
        return report
    stamp = clock.file_stamp()
    page = Path(project.reports_dir) / f"drift_{stamp}.html"
    write_page(page, report)
    report.artifacts["report"] = str(page)
    records, alerts = [], []
    for r in results:
        records.append({
            "id": clock.new_id("drift"), "time": clock.stamp(), "reference": ref_src.name,
            "current": cur_src.name, "window": r.window.to_dict() if r.window else None, "rows": r.rows,
            "features": r.judged, "drifted": r.drifted, "share": r.share,
            "dataset_drift": r.dataset_drift,
            "prediction_drift": None if r.prediction is None else r.prediction.drifted,
            "psi": {f.feature: round(f.psi, 5) for f in r.features},
            "report": str(page.relative_to(project.root))})
        alerts += _alerts_for(r, ref_src.name, ds)
    hist = journal.append(Path(project.monitoring_dir) / journal.DRIFT_HISTORY, records)
    report.artifacts["history"] = str(hist)
    new = raise_alerts(project, alerts)
    if new:
        report.artifacts["alerts"] = str(Path(project.monitoring_dir) / journal.ALERTS)
        report.messages.insert(0, f"{len(new)} new drift alert(s): " + "; ".join(a["message"] for a in new))
    report.data["alerts"] = new
    return report

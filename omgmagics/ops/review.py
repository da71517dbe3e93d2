"""The iteration review (core layer): ``docs/iteration_review.md``, the end of the 05_ops notebook.

What it reads: labeled traffic (the prediction log joined with the feedback), the alerts, the drift
history and the retrain decisions since the previous review (``monitoring/iterations.jsonl``). What it
writes: the slices where the live model errs most (each categorical input value and each quartile of a
numeric input, with enough labeled requests), alerts and drift since the last iteration, the retrain
decisions, the closed-loop timings, and the improvement opportunities they suggest.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .. import clock
from ..io import journal

ITERATIONS = "iterations.jsonl"


def error_slices(project: Any, rows: Any, min_rows: int = 30, top: int = 10) -> Any:
    """Slices of labeled requests ranked by error rate (misclassified share, or mean absolute error)."""
    import pandas as pd

    from ..metrics import get_metric
    from .live import class_mode, label_text, logged_metric
    from .predlog import META, encode_labels

    if rows.empty:
        return pd.DataFrame()
    metric = project.primary_metric
    regression = get_metric(metric).task == "regression"
    if regression:
        err = (pd.to_numeric(rows["prediction"], errors="coerce") -
               pd.to_numeric(rows["label"], errors="coerce")).abs()
    elif class_mode(project) == "multiclass":  # the class itself, not "positive or not"
        err = (rows["prediction"].map(label_text) != rows["label"].map(label_text)).astype(float)
    else:
        pos = project.config.get_path("brief.objective.positive_label")
        err = (encode_labels(rows["prediction"], pos) != encode_labels(rows["label"], pos)).astype(float)
    overall = float(err.mean())
    out = []
    for col in [c for c in rows.columns if c not in META and c not in ("label", "label_time")]:
        s = rows[col]
        if pd.api.types.is_numeric_dtype(s) and s.nunique() > 10:
            try:
                groups = pd.qcut(s, 4, duplicates="drop").astype(str)
            except ValueError:
                continue
        else:
            groups = s.astype(str).where(s.notna(), "(missing)")
        for value, idx in groups.groupby(groups).groups.items():
            if len(idx) < min_rows:
                continue
            e = float(err.loc[idx].mean())
            sub = rows.loc[idx]
            out.append({"slice": f"{col} = {value}", "requests": len(idx),
                        ("mean abs error" if regression else "error rate"): e,
                        "vs overall": e / overall if overall > 0 else np.nan,
                        metric: logged_metric(project, sub)})
    if not out:
        return pd.DataFrame()
    key = "mean abs error" if regression else "error rate"
    return pd.DataFrame(out).sort_values([key, "requests"], ascending=[False, False]).head(top) \
        .reset_index(drop=True)


def _since(project: Any) -> str | None:
    prev = journal.read(Path(project.monitoring_dir) / ITERATIONS)
    return prev[-1]["time"] if prev else None


def opportunities(slices: Any, alerts: list[dict[str, Any]], drift: list[dict[str, Any]],
                  decisions: list[dict[str, Any]], metric: str) -> list[str]:
    """Improvement opportunities suggested by the evidence (rules, each naming its evidence)."""
    tips = []
    if len(slices):
        worst = slices.iloc[0]
        ratio = worst.get("vs overall")
        if ratio is not None and np.isfinite(ratio) and ratio >= 1.5:
            tips.append(f"The model errs {ratio:.1f}x more than overall on `{worst['slice']}` "
                        f"({int(worst['requests'])} requests): collect more labeled examples of it, check "
                        "its labels, and look for a feature that separates it (phase 2).")
    counts: dict[str, int] = {}
    for rec in drift:
        for f in rec.get("drifted") or []:
            counts[f] = counts.get(f, 0) + 1
    if counts:
        often = sorted(counts.items(), key=lambda kv: -kv[1])[:3]
        tips.append("Drift was found in " + ", ".join(f"`{f}` ({n} window(s))" for f, n in often) +
                    ": confirm with the data owners whether the change is real or an upstream bug (units, "
                    "encoding); add a range or distribution check for it to the schema (phase 2); if it "
                    "is real and lasting, keep retraining on recent data.")
    kinds = {a.get("kind") for a in alerts}
    if "latency" in kinds:
        tips.append("Latency alerts: profile and optimize the model (`omg optim profile`, `quantize`) or "
                    "add serving capacity (phase 4).")
    if "error_rate" in kinds:
        tips.append("Error-rate alerts: read the failing requests in the prediction log (`error` field) "
                    "and tighten request validation in the signature.")
    if "missingness" in kinds:
        tips.append("Missing-value alerts: fix the source feeding the affected features, or make the "
                    "feature pipeline impute them explicitly.")
    if "performance" in kinds:
        tips.append(f"The live {metric} fell below its threshold: check label quality and delays, then "
                    "retrain on recent labeled data.")
    kept = [d for d in decisions if d.get("decision") == "keep"]
    if kept:
        tips.append("A retrained challenger did not beat the champion: more data of the same kind does "
                    "not help this model; revisit features or the model family (phase 3).")
    if any((d.get("rollout") or {}).get("status") == "pending" for d in decisions):
        tips.append("A better challenger waits for its rollout: start the canary "
                    "(`omg deploy cloud --env production --strategy canary`).")
    if not tips:
        tips.append("No alert, drift or weak slice stands out in this iteration: keep monitoring.")
    return tips


def _md_table(df: Any) -> str:
    if df is None or len(df) == 0:
        return "_none_\n"
    cols = list(df.columns)

    def cell(v: Any) -> str:
        if isinstance(v, float):
            return "" if not np.isfinite(v) else f"{v:.4g}"
        return str(v).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def write_review(project: Any, min_rows: int = 30, record_iteration: bool = True) -> Any:
    """Write ``docs/iteration_review.md`` and return it as a Report."""
    import pandas as pd

    from ..atomic import write_text
    from ..results import Report
    from .alerts import alerts_table, list_alerts
    from .live import labeled
    from .retrain import answered, history
    from .settings import monitoring_settings
    from .simulate import _read_simulations, loop_summary

    since = _since(project)
    settings = monitoring_settings(project)
    rows, problems = labeled(project, settings)
    slices = error_slices(project, rows, min_rows=min_rows)
    alerts = [a for a in list_alerts(project) if since is None or a.get("time", "") > since]
    drift = [r for r in journal.read(Path(project.monitoring_dir) / journal.DRIFT_HISTORY)
             if since is None or r.get("time", "") > since]
    decisions = [r for r in history(project) if r.get("event") in ("decision", "declined")
                 and (since is None or r.get("time", "") > since)]
    metric = project.primary_metric
    tips = opportunities(slices, alerts, drift, decisions, metric)
    loop = loop_summary(project)
    status = answered(project)
    now = clock.stamp()
    sims = _read_simulations(project)
    lines = [f"# Iteration review: {project.name}", "",
             f"Written {now} by `omg ops review` (phase 5). Covers "
             + (f"everything since the previous review ({since})." if since else "everything so far (first review)."),
             ""]
    if sims:
        lines += ["> **Simulation.** The traffic in this iteration was replayed from held-out data over "
                  "simulated days (timestamps, label delays and any injected shift are simulated; the "
                  "predictions are the registered model's). See `monitoring/simulation.json`.", ""]
    lines += ["## Where the live model errs most", "",
              f"{len(rows)} labeled requests; slices with at least {min_rows} of them, by error rate.", "",
              _md_table(slices), "## Alerts since the last iteration", ""]
    at = alerts_table(alerts, status)
    lines += [_md_table(at.drop(columns=["id"]) if len(at) else at), "## Drift since the last iteration", ""]
    dt_rows = pd.DataFrame([{"window": f"{str((r.get('window') or {}).get('start', ''))[:10]} .. "
                                       f"{str((r.get('window') or {}).get('end', ''))[:10]}",
                             "rows": r.get("rows"), "drifted": ", ".join(r.get("drifted") or []) or "none",
                             "dataset drift": "yes" if r.get("dataset_drift") else "no"} for r in drift])
    lines += [_md_table(dt_rows), "## Retraining decisions", ""]
    dec = pd.DataFrame([{"time": d.get("time"), "job": d.get("job", ""),
                         "decision": d.get("decision", "decline"), "reason": d.get("reason"),
                         "rollout": (d.get("rollout") or {}).get("status", "")} for d in decisions])
    lines += [_md_table(dec), "## The closed loop", ""]
    lines += [f"- {k}: {v}" for k, v in loop.items()] + ["", "## Improvement opportunities", ""]
    lines += [f"{i}. {t}" for i, t in enumerate(tips, 1)] + [""]
    if problems.items:
        lines += ["## Damaged log parts skipped", ""] + [f"- {p}" for p in problems.items] + [""]
    path = write_text(Path(project.docs_dir) / "iteration_review.md", "\n".join(lines))
    if record_iteration:
        journal.append(Path(project.monitoring_dir) / ITERATIONS,
                       [{"time": now, "since": since, "labeled": len(rows), "alerts": len(alerts),
                         "drift checks": len(drift), "decisions": len(decisions)}])
    report = Report(title=f"Iteration review: {len(tips)} improvement opportunit{'y' if len(tips) == 1 else 'ies'}",
                    summary={"since": since or "the start", "labeled requests": len(rows),
                             "alerts": len(alerts), "drift checks": len(drift),
                             "retrain decisions": len(decisions), **loop},
                    tables={"slices where the model errs most": slices} if len(slices) else {},
                    messages=tips + problems.items, artifacts={"review": str(path)})
    return report

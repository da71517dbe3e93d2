"""The phase 5 gate, "production stable" (core layer), judged from the files after the loop acted.

- every drift alert was answered: a retrain that carried it finished with a decision, or a decision
  not to retrain named it (``monitoring/retrain_history.jsonl``);
- the current champion's live primary metric on the latest labeled window reaches
  ``monitoring.thresholds.metric_min`` (default: the brief's threshold). The window is
  ``retraining.eval_window`` back from the latest labeled request, widened until it holds
  ``retraining.eval_min_labels`` labels. Requests the champion served are judged on their logged
  scores; if the champion was promoted after that traffic, it re-scores the window's inputs.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def phase5_criteria(project: Any) -> tuple[list[Any], str]:
    from ..gates import Criterion

    criteria = [_alerts_answered(project, Criterion)]
    criteria.append(_champion_live(project, Criterion))
    return criteria, "judged after the operations loop acted (monitor, drift, retrain)"


def _alerts_answered(project: Any, Criterion: Any) -> Any:
    from .alerts import DRIFT_KINDS, list_alerts
    from .retrain import answered, history, pending_alerts

    drift = list_alerts(project, DRIFT_KINDS)
    done = answered(project)
    waiting = pending_alerts(project)
    failed = {a: r for r in history(project) if r.get("event") == "decision"
              and r.get("decision") == "failed" for a in r.get("alerts", [])}
    open_ = [a for a in drift if a["id"] not in done]
    if not open_:
        return Criterion("drift alerts answered", "pass", f"{len(drift)} of {len(drift)}",
                         detail="no drift alert" if not drift else "each has a retrain decision or a "
                                "recorded decision not to retrain")
    parts = [f"{a['kind']} {str((a.get('window') or {}).get('start', ''))[:10]}"
             + (f" (retrain job {waiting[a['id']]} not finished)" if a["id"] in waiting else "")
             for a in open_[:5]]
    why = {failed[a["id"]].get("job"): failed[a["id"]].get("reason") for a in open_ if a["id"] in failed}
    detail = "unanswered: " + "; ".join(parts) + (f" and {len(open_) - 5} more" if len(open_) > 5 else "") + "."
    detail += "".join(f" Retrain job {j} failed: {r}" for j, r in list(why.items())[:2])
    return Criterion("drift alerts answered", "fail", f"{len(drift) - len(open_)} of {len(drift)}",
                     "all", detail=detail + " Run `omg ops retrain --trigger drift` or record a "
                     "decision with `--decline --reason TEXT`")


def _champion_live(project: Any, Criterion: Any) -> Any:
    from ..metrics import get_metric
    from .live import latest_labeled_window, metric_value
    from .settings import monitoring_settings, retraining_settings
    from .windows import parse_duration

    metric = project.primary_metric
    name = f"champion live {metric}"
    ms = monitoring_settings(project)
    rs = retraining_settings(project)
    threshold = ms["thresholds"].get("metric_min")
    min_labels = int(rs["eval_min_labels"])
    rows, win, _ = latest_labeled_window(project, ms, parse_duration(rs["eval_window"]), min_labels)
    if rows.empty:
        return Criterion(name, "fail", detail="no labeled traffic: the prediction log has no request "
                         "with ground truth in monitoring/feedback.jsonl")
    try:
        from .registry import Registry

        registry = Registry(project)
        champion = registry.alias("champion")
    except Exception as exc:  # noqa: BLE001 - an unreachable registry fails the criterion, with why
        return Criterion(name, "fail", detail=f"the model registry cannot be read: {exc}")
    if champion is None:
        return Criterion(name, "fail", detail="no model holds the alias champion")
    served = rows["model_version"].astype(str).isin(served_names(project, champion))
    if served.all():
        value = metric_value(project, rows["label"], rows["score"], rows["prediction"])
        how = "logged scores of the requests it served"
    else:
        scores, preds = registry.scorer(champion).predict(rows)
        value = metric_value(project, rows["label"], scores, preds)
        how = (f"re-scored: it served {int(served.sum())} of the {len(rows)} labeled requests "
               "(promoted after them)")
    detail = f"v{champion} on {len(rows)} labeled requests of {win.label()}, {how}"
    if len(rows) < min_labels:
        return Criterion(name, "fail", None if not np.isfinite(value) else round(value, 4),
                         f">= {min_labels} labels", detail=detail + f"; fewer than {min_labels} labels")
    if threshold is None:
        return Criterion(name, "warn", round(value, 4), detail=detail + "; no threshold set "
                         "(monitoring.thresholds.metric_min or brief.objective.threshold)")
    higher = get_metric(metric).greater_is_better
    ok = np.isfinite(value) and (value >= threshold if higher else value <= threshold)
    return Criterion(name, "pass" if ok else "fail", None if not np.isfinite(value) else round(value, 4),
                     f"{'>=' if higher else '<='} {threshold}", detail=detail)


def served_names(project: Any, version: str) -> set[str]:
    """How the prediction log names registry version `version`: the version itself, or the
    ``NAME/VERSION`` of a serving bundle (phase 4) packaged from it."""
    import json
    from pathlib import Path

    names = {str(version)}
    for meta in Path(project.models_dir).glob("*/*/metadata.json"):
        try:
            data = json.loads(meta.read_text())
        except (OSError, ValueError):
            continue
        reg = (data.get("model") or {}).get("registry") or {}
        if str(reg.get("version")) == str(version):
            names.add(f"{data.get('name')}/{data.get('version')}")
    return names

"""The phase 5 gate, "production stable" (core layer), judged from the files after the loop acted.

- every drift alert was answered: a retrain that carried it finished with a decision, or a decision
  not to retrain named it (``monitoring/retrain_history.jsonl``);
- the current champion's live primary metric on the latest labeled window reaches
  ``monitoring.thresholds.metric_min`` (default: the brief's threshold; at or above it, or at or
  below for a lower-is-better metric such as rmse). Without a threshold it is compared with the
  champion's test metric in ``reports/evaluation.json``, within its 95 % confidence interval. The
  metric is the brief's, for the task: P(positive) scores for a binary model, class labels (or
  per-class probabilities, re-scored when the log has none) for a multiclass one, values for a
  regression. The window is
  ``retraining.eval_window`` back from the latest labeled request, widened until it holds
  ``retraining.eval_min_labels`` labels. Requests the champion served are judged on their logged
  scores; if the champion was promoted after that traffic, it re-scores the window's inputs.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def phase5_criteria(project: Any) -> tuple[list[Any], str]:
    from ..criteria import Criterion

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
    detail += "".join(f" Retrain job {j} failed: {_one_line(r)}" for j, r in list(why.items())[:2])
    return Criterion("drift alerts answered", "fail", f"{len(drift) - len(open_)} of {len(drift)}",
                     "all", detail=detail + " Run `omg ops retrain --trigger drift` or record a "
                     "decision with `--decline --reason TEXT`")


def _one_line(text: Any, limit: int = 300) -> str:
    """The first line of a message, at most `limit` characters (a gate states its reason in one line)."""
    line = next((x.strip() for x in str(text or "").splitlines() if x.strip()), "")
    return line if len(line) <= limit else line[:limit - 3] + "..."


def _champion_live(project: Any, Criterion: Any) -> Any:
    from ..metrics import get_metric
    from .live import PROBA_METRICS, class_mode, latest_labeled_window, logged_metric, scorer_metric
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
    value = logged_metric(project, rows) if served.all() else float("nan")
    if served.all() and (np.isfinite(value) or not (class_mode(project) == "multiclass"
                                                    and metric in PROBA_METRICS)):
        how = "logged scores of the requests it served"
    else:
        value = scorer_metric(project, registry.scorer(champion), rows)
        how = ("re-scored: the log holds no per-class probabilities" if served.all() else
               f"re-scored: it served {int(served.sum())} of the {len(rows)} labeled requests "
               "(promoted after them)")
    shown = None if not np.isfinite(value) else round(float(value), 4)
    detail = f"v{champion} on {len(rows)} labeled requests of {win.label()}, {how}"
    if len(rows) < min_labels:
        return Criterion(name, "fail", shown, f">= {min_labels} labels",
                         detail=f"only {len(rows)} labeled requests in all the traffic, fewer than "
                         f"retraining.eval_min_labels ({min_labels}): too few to judge the live "
                         f"{metric}; replay or collect more labeled traffic ({detail})")
    higher = get_metric(metric).greater_is_better
    op = ">=" if higher else "<="
    if threshold is None:
        ref = _test_metric(project, metric)
        if ref is None:
            return Criterion(name, "warn", shown, detail=detail + "; no threshold set "
                             "(monitoring.thresholds.metric_min or brief.objective.threshold) and no "
                             f"test {metric} in reports/evaluation.json to compare with")
        test, limit, tol = ref
        ok = np.isfinite(value) and (value >= limit if higher else value <= limit)
        return Criterion(name, "pass" if ok else "fail", shown, f"{op} {limit:.4g}",
                         detail=detail + f"; no threshold in the brief: compared with the champion's "
                         f"test {metric} {test:.4f} (reports/evaluation.json), tolerance {tol}")
    ok = np.isfinite(value) and (value >= threshold if higher else value <= threshold)
    return Criterion(name, "pass" if ok else "fail", shown, f"{op} {threshold}", detail=detail)


TEST_TOLERANCE = 0.05  # relative, when the evaluation has no confidence interval


def _test_metric(project: Any, metric: str) -> tuple[float, float, str] | None:
    """(test value, the live value it must reach, the tolerance in words) from phase 3's
    ``reports/evaluation.json``: the live metric may be as far from the test value as the lower
    (higher-is-better) or upper bound of its 95 % confidence interval, else 5 % of the value."""
    import json
    from pathlib import Path

    from ..metrics import get_metric

    try:
        ev = json.loads((Path(project.reports_dir) / "evaluation.json").read_text())
        entry = (ev.get("metrics") or {}).get(metric) or {}
        value = float(entry["value"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    if not np.isfinite(value):
        return None
    higher = get_metric(metric).greater_is_better
    bound = entry.get("ci_low" if higher else "ci_high")
    if isinstance(bound, (int, float)) and np.isfinite(bound):
        return value, float(bound), (f"its 95 % CI {'lower' if higher else 'upper'} bound "
                                     f"{float(bound):.4f}")
    margin = TEST_TOLERANCE * abs(value)
    return value, value - margin if higher else value + margin, f"{TEST_TOLERANCE:.0%} of it"


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

"""The phase 3 gate, "model meets criteria" (core layer), read from the files the phase wrote.

- the primary metric on the test split reaches the brief's threshold (``reports/evaluation.json``);
  where the brief sets none, the model must beat the best baseline significantly, and the gate says
  that this is the rule it applied;
- every fairness difference with a threshold in ``omg.yaml`` ``fairness:`` is within it;
- a model holds the ``champion`` alias in the registry (phase 4 serves it), ideally the evaluated one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

NO_THRESHOLD_RULE = "beats the best baseline significantly (rule applied: the brief sets no threshold)"


def phase3_criteria(project: Any) -> tuple[list[Any], str]:
    """The criteria of the phase 3 gate and a note on the rule applied."""
    from ..criteria import Criterion

    path = Path(project.reports_dir) / "evaluation.json"
    if not path.is_file():
        return [Criterion("model evaluated", "fail",
                          detail="no reports/evaluation.json: run `omg train evaluate "
                                 "--comprehensive --fairness --robustness`")], ""
    ev = json.loads(path.read_text())
    criteria: list[Any] = []
    note = ""
    primary = ev.get("primary_metric", project.primary_metric)
    value = (ev.get("metrics", {}).get(primary) or {}).get("value")
    threshold = project.config.get_path("brief.objective.threshold")
    higher = ev.get("greater_is_better", True)
    if threshold is not None:
        ok = value is not None and (value >= threshold if higher else value <= threshold)
        criteria.append(Criterion(f"test {primary}", "pass" if ok else "fail",
                                  None if value is None else round(float(value), 4),
                                  f"{'>=' if higher else '<='} {threshold}"))
    else:
        note = ("The brief sets no threshold for " + primary + ": the rule applied is that the "
                "chosen model must beat the best baseline significantly on the test split.")
        vs = ev.get("vs_baseline")
        if vs and vs.get("champion_is_baseline"):
            criteria.append(Criterion(NO_THRESHOLD_RULE, "warn",
                                      detail=f"the baseline is the champion ({vs['baseline']}): no "
                                             "trained model beat it; set brief.objective.threshold "
                                             "to judge it on the metric"))
        elif not vs or "skipped" in vs:
            why = vs["skipped"] if vs else "no baseline run to test against"
            criteria.append(Criterion(NO_THRESHOLD_RULE, "fail",
                                      detail=f"{why}; run `omg train baseline` then evaluate again"))
        else:
            shown = (f"{primary} {vs['a']:.4f} vs {vs['b']:.4f} ({vs['baseline']}), "
                     f"{vs['test']} p={vs['p_value']:.3g}")
            criteria.append(Criterion(NO_THRESHOLD_RULE, "pass" if vs["significant"] else "fail",
                                      shown, f"better with p < {vs.get('alpha', 0.05)}"))
    criteria += _fairness(project, ev)
    criteria.append(_champion(project, ev))
    return criteria, note


def _fairness(project: Any, ev: dict[str, Any]) -> list[Any]:
    """One criterion per sensitive feature and threshold that applies to the task; a warning with
    the reason where a difference could not be computed or no threshold applies."""
    from ..criteria import Criterion
    from .fairness import THRESHOLD_KEYS

    limits = {k: project.config.get_path(f"fairness.{k}") for k in THRESHOLD_KEYS}
    limits = {k: v for k, v in limits.items() if v is not None}
    if not limits:
        return []
    if not project.sensitive_features:
        return [Criterion("fairness", "warn",
                          detail="not assessed: the brief names no sensitive feature")]
    fair = ev.get("fairness")
    if not fair:
        return [Criterion("fairness evaluated", "fail",
                          detail="omg.yaml sets fairness thresholds but the evaluation has no "
                                 "fairness section: run `omg train evaluate --fairness`")]
    regression = ev.get("task") == "regression"
    out = []
    for feature, entry in fair.get("features", {}).items():
        applicable = {k: v for k, v in limits.items()
                      if not (regression and k != "metric_difference")}
        if not applicable:
            metric = entry.get("metric", ev.get("primary_metric", "the metric"))
            spread = entry.get("metric_difference")
            now = f"; now {spread:.4g}" if isinstance(spread, int | float) else ""
            out.append(Criterion(f"fairness ({feature})", "warn",
                                 detail=f"not judged: demographic parity and equalized odds are "
                                        f"defined for classes; set fairness.metric_difference to "
                                        f"judge the spread of {metric} between groups{now}"))
            continue
        for key, limit in applicable.items():
            name = f"{key.replace('_', ' ')} ({feature})"
            if key not in entry:
                why = entry.get("not_computed") or "too few rows per group"
                out.append(Criterion(name, "warn", detail=f"not computed: {why}"))
                continue
            v = float(entry[key])
            worst = entry.get(f"{key}_class")
            out.append(Criterion(name, "pass" if v <= limit else "fail", round(v, 4), f"<= {limit}",
                                 detail=f"one class against the rest; worst class: {worst}"
                                 if worst else ""))
    return out


def _champion(project: Any, ev: dict[str, Any]) -> Any:
    from ..criteria import Criterion

    try:
        from .tracking import connect

        tracking = connect(project)
        mv = tracking.alias_version("champion")
    except Exception as exc:  # noqa: BLE001 - an unreachable tracking server is a warning here
        return Criterion("champion registered", "warn", detail=f"registry not readable: {exc}")
    if mv is None:
        return Criterion("champion registered", "fail",
                         detail=f"no version of {tracking.model_name} has the alias champion: run "
                                "`omg train compare`")
    evaluated = ev.get("model", {}).get("run_id")
    if evaluated and mv.run_id != evaluated:
        return Criterion("champion registered", "warn", f"v{mv.version}",
                         detail=f"champion v{mv.version} is not the evaluated model (run {evaluated}): "
                                "evaluate the champion")
    return Criterion("champion registered", "pass", f"{tracking.model_name} v{mv.version}")

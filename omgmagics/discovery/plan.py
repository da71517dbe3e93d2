"""The project plan (core layer): ``docs/project_plan.md`` and ``decisions/adr-000-project-scope.md``.

Both are generated from the brief and the phase 1 results (``feasibility.json``, ``data_audit.json``):
an architecture sketch, resource requirements, the timeline with its milestones and approvers, and a
mitigation for every risk found.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
from pathlib import Path
from typing import Any

from .. import clock
from ..atomic import write_text
from ..criteria import GATE_NAMES
from ..errors import ConfigError, ProjectError
from ..results import Report
from .brief import Brief, _md_table

TIMELINE_PHASES = {"discovery": 1, "data": 2, "model": 3, "deploy": 4, "ops": 5}
PHASE_WORK = {
    1: ("01_discovery", "problem framing, data audit, feasibility, plan", "reports/data_audit.*, "
        "reports/feasibility.json, docs/problem_statement.md, docs/project_plan.md"),
    2: ("02_data", "collect, validate, label, augment, split, features, feature store",
        "data/raw, data/processed, features/NAME/vN, docs/data_dictionary.md"),
    3: ("03_model", "baselines, training, tuning, evaluation, comparison",
        "MLflow runs and registry (aliases champion/challenger), docs/model_card.md"),
    4: ("04_deploy", "optimization, packaging, staging, production canary", "models/ bundles, "
        "docs/runbook.md"),
    5: ("05_ops", "monitoring, drift detection, retraining, continuous improvement",
        "monitoring/ prediction log and drift history"),
}


def load_result(path: str | os.PathLike, what: str, fix: str) -> dict[str, Any]:
    """Read a phase 1 JSON result, or raise :class:`ProjectError` saying which step writes it."""
    path = Path(path)
    if not path.is_file():
        raise ProjectError(f"No {what} at {path}: {fix}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        raise ProjectError(f"{path} is not valid JSON (an interrupted write?): {fix}") from None


def _start_date(brief: Brief, start: str | None) -> dt.date:
    text = start or brief.created
    if not text:
        return clock.today()
    try:
        return dt.date.fromisoformat(str(text)[:10])
    except ValueError:
        raise ConfigError(f"Start date '{text}' is not an ISO date (YYYY-MM-DD). Pass --start "
                          "2026-01-05 or fix project.created in omg.yaml.") from None


def timeline_rows(brief: Brief, start: dt.date) -> list[list[Any]]:
    """Phase, weeks, start, end, milestone (the gate) and approver, from ``brief.timeline``."""
    rows, day = [], start
    for key, weeks in brief.timeline.items():
        phase = TIMELINE_PHASES.get(str(key))
        if isinstance(weeks, bool) or not isinstance(weeks, (int, float)) or weeks < 0:
            raise ConfigError(f"brief.timeline.{key} must be a number of weeks, got {weeks!r}.")
        end = day + dt.timedelta(days=round(7 * weeks))
        check = brief.checkpoints.get(phase) or brief.checkpoints.get(str(phase)) or {}
        check = check if isinstance(check, dict) else {"name": check}
        milestone = f"gate {phase}: {check.get('name') or GATE_NAMES[phase]}" if phase else "-"
        rows.append([key, f"{weeks:g}", day.isoformat(), end.isoformat(), milestone,
                     check.get("owner", "")])
        day = end
    return rows


def _resources(brief: Brief, feas: dict[str, Any], audit: dict[str, Any] | None) -> list[list[str]]:
    proto = feas["prototype"]
    rows_total = (audit or {}).get("data", {}).get("rows") or proto["rows"]
    mem = (audit or {}).get("data", {}).get("memory_mb")
    fit = proto["model"]["fit_seconds"]
    scale = max(1.0, rows_total / max(proto["rows"], 1))
    one_fit = fit * scale
    folds = int(feas.get("estimated_accuracy", {}).get("folds", 5))
    trials = brief.n_trials or 50
    tuning_h = trials * folds * one_fit / 3600
    out = [["Data", f"{rows_total:,} rows" + (f", {mem:,.0f} MB in memory" if mem else "") +
            "; plan about 5x that in RAM for training copies and encodings"],
           ["Training compute", f"one fit of the prototype took {fit:.2f} s on {proto['rows']:,} rows; "
            f"about {one_fit:.1f} s on all rows (linear scaling)"],
           ["Tuning compute", f"{trials} trials x {folds} folds ~ {tuning_h:.2f} CPU-hours at that "
            "speed (xgboost/MLP trials cost more); Optuna on the project SQLite, or shared storage "
            "for parallel workers"]]
    serving = proto.get("serving") or {}
    rps = brief.constraints.get("throughput_rps")
    if serving and rps:
        per_worker = 1000 / max(serving["latency_p50_ms"], 1e-3)
        workers = max(1, math.ceil(1.5 * rps / per_worker))
        out.append(["Serving", f"the prototype answers one row in {serving['latency_p50_ms']:.1f} ms "
                    f"(p50) = about {per_worker:.0f} requests/s per worker; {rps:g} requests/s with 50% "
                    f"headroom needs about {workers} worker(s) before optimization (phase 4)"])
    if brief.stakeholders:
        out.append(["People", ", ".join(brief.stakeholders)])
    return out


def _architecture(brief: Brief, feas: dict[str, Any]) -> list[str]:
    obj = feas["objective"]
    from ..redact import redact_uri

    tracking = redact_uri(brief.tracking_uri) if brief.tracking_uri else \
        "sqlite:///mlflow.db (in the project)"
    tuning = redact_uri(brief.tuning_storage) if brief.tuning_storage else \
        "the project's SQLite (optuna.db)"
    source = "bundled demo data" if brief.source in (None, "demo") else str(brief.source)
    lat = brief.constraints.get("latency_p99_ms")
    mermaid = [
        "```mermaid", "flowchart LR",
        f'  src[("{source}")] --> raw["data/raw<br/>parquet + lineage"]',
        '  raw --> prep["validate, label,<br/>split (phase 2)"] --> feat["feature pipeline<br/>(scikit-learn)"]',
        '  feat --> store[("feature store<br/>features/NAME/vN")]',
        '  store --> train["baselines, training,<br/>tuning (phase 3)"] --> mlflow[("MLflow<br/>runs + registry")]',
        f'  mlflow --> gate3{{"{obj["primary_metric"]} gate<br/>+ fairness"}} --> bundle["bundle<br/>(phase 4)"]',
        '  bundle --> staging["FastAPI staging"] --> canary["production canary"]',
        '  canary --> monitor["monitoring + drift<br/>(phase 5)"] -->|trigger| train',
        "```"]
    models = ("dummy, linear (logistic) and tree baselines; gradient boosting (the prototype's "
              f"HistGradientBoosting reached {obj['primary_metric']} {feas['estimated_accuracy']['mean']:.4f}), "
              "xgboost tuned with Optuna; a torch MLP as challenger")
    serving = ("an HTTP service (FastAPI + uvicorn: /predict, /health, /metrics) validated in staging, "
               "then a canary rollout in production that shifts traffic on healthy metrics and rolls "
               "back on errors or latency" + (f"; latency budget p99 {lat:g} ms" if lat else ""))
    rows = [[p, f"`notebooks/{w[0]}`", w[1], w[2]] for p, w in PHASE_WORK.items()]
    return (mermaid + ["", _md_table(["phase", "notebook", "work", "outputs"], rows), "",
                       f"- **Models**: {models}.", f"- **Serving**: {serving}.",
                       f"- **Stores**: tracking {tracking}; tuning {tuning}; feature store and "
                       "monitoring as files in the project."])


def render_plan(brief: Brief, feas: dict[str, Any], audit: dict[str, Any] | None,
                start: dt.date) -> str:
    est = feas["estimated_accuracy"]
    obj = feas["objective"]
    today = clock.today().isoformat()
    thr = f" (success threshold {obj['threshold']:g})" if obj.get("threshold") is not None else ""
    out = [f"# Project plan: {brief.name}", "",
           f"_Generated by the kit on {today} from `omg.yaml`, `reports/feasibility.json` and "
           "`reports/data_audit.json`. Change the brief and re-run phase 1 rather than editing._", ""]
    if not feas.get("proceed"):
        out += [f"> **Blocked.** {feas['recommendation']}", ""]
    out += ["## 1. Scope", "",
            f"- **Objective**: {obj['task']} of `{obj['target']}`"
            + (f" (positive class `{obj['positive_label']}`)" if obj.get("positive_label") is not None
               else "") + f", judged by `{obj['primary_metric']}`{thr} on a held-out test set.",
            f"- **Feasibility**: {feas['recommendation']}. technical_feasibility "
            f"{feas['technical_feasibility']}, data_readiness {feas['data_readiness']}; prototype "
            f"{est['metric']} {est['low']:.4f}-{est['high']:.4f} (mean {est['mean']:.4f}, "
            f"{est['basis']}).",
            f"- **Similar solutions**: {'yes' if feas['similar_solutions_exist'] else 'no'}: "
            f"{feas['similar_solutions_basis']}."]
    if audit:
        c = audit["counts"]
        out.append(f"- **Data**: {audit['data']['rows']:,} rows x {audit['data']['columns']} columns; "
                   f"audit {c['pass']} pass, {c['warn']} warn, {c['fail']} fail.")
    out += ["", "## 2. Architecture sketch", ""] + _architecture(brief, feas)
    out += ["", "## 3. Resource requirements", "",
            _md_table(["resource", "estimate"], _resources(brief, feas, audit)), ""]
    out += ["## 4. Timeline and milestones", ""]
    rows = timeline_rows(brief, start)
    out.append(_md_table(["phase", "weeks", "start", "end", "milestone", "approver"], rows)
               if rows else "_No timeline in the brief (brief.timeline: weeks per phase)._")
    out += ["", "Each milestone is a quality gate checked by `omg ml run`, then approved with "
            "`omg ml gate approve --phase N --by NAME`.", "", "## 5. Risks and mitigations", ""]
    risks = feas.get("risks", [])
    out.append(_md_table(["risk", "severity", "evidence", "mitigation"],
                         [[r["risk"], r["severity"] + (" (blocking)" if r.get("blocking") else ""),
                           r["evidence"], r["mitigation"]] for r in risks])
               if risks else "_No risk found by the feasibility study._")
    findings = [i for i in (audit or {}).get("items", []) if i["status"] != "pass"]
    if findings:
        out += ["", "Audit findings to address:", "",
                _md_table(["check", "status", "evidence"],
                          [[i["check"], i["status"], i["evidence"]] for i in findings])]
    notes = feas.get("notes", [])
    if notes:
        out += [""] + [f"- {n}" for n in notes]
    return "\n".join(out).rstrip() + "\n"


def render_adr(brief: Brief, feas: dict[str, Any], audit: dict[str, Any] | None) -> str:
    obj = feas["objective"]
    est = feas["estimated_accuracy"]
    owner = brief.checkpoints.get(1) or brief.checkpoints.get("1") or {}
    owner = owner.get("owner", "") if isinstance(owner, dict) else ""
    status = ("proposed: accepted when the phase 1 gate is approved (`omg ml gate approve --phase 1 "
              "--by NAME`)" if feas.get("proceed") else f"proposed, blocked: {feas['recommendation']}")
    features = feas["prototype"]["features"]
    thr = (f"at least {obj['threshold']:g}" if obj.get("greater_is_better") else
           f"at most {obj['threshold']:g}") if obj.get("threshold") is not None else "better than the best baseline"
    cons = [f"{k} {v:g}" for k, v in brief.constraints.items() if v is not None]
    high = [r for r in feas.get("risks", []) if r["severity"] == "high"]
    out = ["# ADR-000: Project scope", "", f"- Status: {status}",
           f"- Date: {clock.today().isoformat()}",
           f"- Deciders: {owner or 'the phase 1 approver'}" + (f"; {', '.join(brief.stakeholders)}"
                                                                if brief.stakeholders else ""), "",
           "## Context", "", brief.business_problem or "_Business problem not stated in the brief._", "",
           f"The feasibility study cross-validated a dummy baseline against HistGradientBoosting on "
           f"{feas['prototype']['sample']}: {est['metric']} {est['low']:.4f}-{est['high']:.4f} (mean "
           f"{est['mean']:.4f}) against {feas['prototype']['dummy']['mean']:.4f} for the dummy; "
           f"technical_feasibility {feas['technical_feasibility']}, data_readiness "
           f"{feas['data_readiness']}; recommendation: {feas['recommendation']}."]
    if audit:
        c = audit["counts"]
        out.append(f"The data audit found {c['pass']} pass, {c['warn']} warn, {c['fail']} fail items "
                   f"on {audit['data']['rows']:,} rows.")
    out += ["", "## Decision", "",
            f"We build a {obj['task']} model of `{obj['target']}` from {len(features)} tabular features "
            f"and judge it by `{obj['primary_metric']}` on a held-out test set, {thr}"
            + (f", within the constraints {', '.join(cons)}" if cons else "") + ". It is served over "
            "HTTP (staging, then a production canary) and monitored for drift.", "",
            "In scope: " + ", ".join(f"`{f}`" for f in features[:20])
            + (f" and {len(features) - 20} more" if len(features) > 20 else "") + ".", ""]
    left = list(brief.exclude_columns) + feas["prototype"]["left_out"]["leakage_suspects"]
    out.append("Out of scope: " + (", ".join(f"`{c}`" for c in dict.fromkeys(left)) + " as inputs; "
                                   if left else "") + "non-tabular data; decisions taken without a "
               "human review of the phase gates.")
    if brief.sensitive:
        out += ["", f"Sensitive attributes ({', '.join(brief.sensitive)}) are kept for the fairness "
                "evaluation of phase 3; whether they are model inputs is decided in phase 2 and "
                "recorded in its own ADR."]
    out += ["", "## Consequences", "",
            "- Every later phase is judged against this scope: the phase 3 gate checks the metric "
            "threshold and the fairness limits of `omg.yaml`.",
            "- Changing the target, the metric or the threshold means a new ADR superseding this one."]
    out += [f"- We watch: {r['risk'].lower()} ({r['mitigation']})." for r in high]
    return "\n".join(out).rstrip() + "\n"


def write_plan(brief: Brief, feas: dict[str, Any], audit: dict[str, Any] | None, *,
               plan_path: str | os.PathLike, adr_path: str | os.PathLike,
               start: str | None = None) -> Report:
    """Write the project plan and the scope ADR (atomically) from the phase 1 results.

    Parameters
    ----------
    feas : dict
        ``feasibility.json``.
    audit : dict or None
        ``data_audit.json`` if the audit ran.
    start : str, optional
        ISO date the timeline starts (default: ``project.created``, else today).
    """
    if feas.get("objective", {}).get("target") != brief.target or \
            feas.get("objective", {}).get("primary_metric") != brief.metric:
        raise ProjectError(
            f"reports/feasibility.json was computed for target '{feas.get('objective', {}).get('target')}' "
            f"and metric '{feas.get('objective', {}).get('primary_metric')}', but omg.yaml now says "
            f"'{brief.target}' and '{brief.metric}'. Re-run the feasibility study first.")
    day = _start_date(brief, start)
    plan = render_plan(brief, feas, audit, day)
    adr = render_adr(brief, feas, audit)
    write_text(plan_path, plan)
    write_text(adr_path, adr)
    rows = timeline_rows(brief, day)
    summary = {"recommendation": feas["recommendation"], "risks": len(feas.get("risks", [])),
               "start": day.isoformat(), "end": rows[-1][3] if rows else "n/a",
               "weeks": sum(float(r[1]) for r in rows) if rows else 0}
    import pandas as pd

    tables = {"timeline": pd.DataFrame(rows, columns=["phase", "weeks", "start", "end", "milestone",
                                                      "approver"])}
    if feas.get("risks"):
        tables["risk mitigation"] = pd.DataFrame(
            [{"risk": r["risk"], "severity": r["severity"], "mitigation": r["mitigation"]}
             for r in feas["risks"]])
    return Report(title=f"Project plan: {brief.name}", summary=summary, tables=tables,
                  artifacts={"project plan": str(plan_path), "scope ADR": str(adr_path)})

"""Phase 1 gate criteria (discovery): "Feasibility approved"."""

from __future__ import annotations

import json
from typing import Any

from ..criteria import Criterion


def phase1_criteria(project: Any) -> tuple[list[Criterion], str]:
    """Feasibility approved: the study recommends proceeding and the data audit has no failed item.

    Reads ``reports/feasibility.json`` and ``reports/data_audit.json``; audit warnings are allowed and
    listed. Both must have been computed for the brief's current target.
    """
    def read(name: str) -> dict | None:
        path = project.reports_dir / name
        try:
            return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
        except ValueError:
            return None

    target = project.config.get_path("brief.objective.target")
    feas, audit = read("feasibility.json"), read("data_audit.json")
    criteria = []
    if feas is None:
        criteria.append(Criterion("feasibility study", "fail", "missing", detail=(
            "reports/feasibility.json is missing or unreadable: run `omg ml feasibility`")))
    else:
        proceed = bool(feas.get("proceed")) and str(feas.get("recommendation", "")).startswith("Proceed")
        blockers = list(feas.get("blockers", []))
        # a failed audit item is stated once, by the audit's own criterion below
        audited = {i.get("check") for i in (audit or {}).get("items", [])
                   if i.get("id") in (audit or {}).get("failed", [])}
        own = [b for b in blockers if not any(b.startswith(f"audit item '{c}' failed") for c in audited)]
        detail = "; ".join(own) if own else ("the data audit's failed item (next criterion)"
                                             if blockers else "")
        criteria.append(Criterion("recommendation is to proceed", "pass" if proceed else "fail",
                                  feas.get("recommendation"), detail=detail))
        criteria.append(Criterion("technical_feasibility", "pass", feas.get("technical_feasibility")))
        criteria.append(Criterion("data_readiness", "pass", feas.get("data_readiness")))
        seen = feas.get("objective", {}).get("target")
        if seen != target:
            criteria.append(Criterion("feasibility is current", "fail", seen, detail=(
                f"computed for target '{seen}', omg.yaml says '{target}': re-run the study")))
    if audit is None:
        criteria.append(Criterion("data audit", "fail", "missing", detail=(
            "reports/data_audit.json is missing or unreadable: run `omg data validate --audit`")))
    else:
        by_id = {i["id"]: i for i in audit.get("items", [])}
        failed, warned = audit.get("failed", []), audit.get("warnings", [])
        criteria.append(Criterion("data audit has no failed item", "fail" if failed else "pass",
                                  failed or 0, detail="; ".join(
                                      f"{by_id.get(i, {}).get('check', i)}: "
                                      f"{by_id.get(i, {}).get('evidence', '')}" for i in failed)))
        if warned:
            names = ", ".join(by_id.get(i, {}).get("check", i) for i in warned)
            criteria.append(Criterion(f"data audit warns on {names}", "warn", len(warned),
                                      detail="; ".join(by_id.get(i, {}).get("evidence", "")
                                                       for i in warned)))
        seen = audit.get("brief", {}).get("target")
        if seen != target:
            criteria.append(Criterion("data audit is current", "fail", seen, detail=(
                f"audited for target '{seen}', omg.yaml says '{target}': re-run the audit")))
    for name in ("problem_statement.md", "project_plan.md"):
        if not (project.docs_dir / name).is_file():
            criteria.append(Criterion(f"docs/{name}", "warn", "missing",
                                      detail="written by `omg ml brief` / `omg ml plan`"))
    return criteria, ""

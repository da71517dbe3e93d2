"""Quality gates of the five phases (core layer).

After a phase notebook runs, the lifecycle runner calls :func:`check_gate`, which reads the artifacts the
phase wrote (reports, manifests, MLflow) and the thresholds of ``omg.yaml``, and returns a
:class:`GateResult`. A gate never trusts the notebook's word: it re-reads files.

Each phase issue owns its ``_phaseN`` function below.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

GATE_NAMES = {
    1: "Feasibility approved",
    2: "Data ready",
    3: "Model meets criteria",
    4: "Staging validated",
    5: "Production stable",
}


@dataclass
class Criterion:
    """One checked condition of a gate: ``status`` is ``pass``, ``warn`` or ``fail``."""

    name: str
    status: str
    value: Any = None
    threshold: Any = None
    detail: str = ""


@dataclass
class GateResult:
    """The verdict of a phase's gate.

    ``status`` is ``passed``, ``failed``, or ``none`` when the phase has no criteria yet.
    """

    phase: int
    name: str
    status: str
    criteria: list[Criterion] = field(default_factory=list)
    note: str = ""

    @classmethod
    def from_criteria(cls, phase: int, criteria: list[Criterion], note: str = "") -> GateResult:
        failed = any(c.status == "fail" for c in criteria)
        return cls(phase, GATE_NAMES[phase], "failed" if failed else "passed", criteria, note)

    @property
    def failures(self) -> list[Criterion]:
        return [c for c in self.criteria if c.status == "fail"]

    def summary(self) -> str:
        """One line: the verdict and, on failure, each failed criterion with its value."""
        if self.status == "none":
            return f"{self.name}: no criteria yet ({self.note})"
        if self.status == "passed":
            warns = [c.name for c in self.criteria if c.status == "warn"]
            return f"{self.name}: passed" + (f" with warnings: {', '.join(warns)}" if warns else "")
        parts = [f"{c.name} (value {c.value}, needs {c.threshold})" if c.threshold is not None
                 else f"{c.name}: {c.detail or c.value}" for c in self.failures]
        return f"{self.name}: failed on " + "; ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        from .results import jsonable

        return jsonable(asdict(self))


def _none(phase: int, issue: str) -> GateResult:
    return GateResult(phase, GATE_NAMES[phase], "none", note=f"its criteria land with {issue}")


def _phase1(project: Any) -> GateResult:
    """Feasibility approved: the study recommends proceeding and the data audit has no failed item.

    Reads ``reports/feasibility.json`` and ``reports/data_audit.json``; audit warnings are allowed and
    listed. Both must have been computed for the brief's current target.
    """
    import json

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
        criteria.append(Criterion("recommendation is to proceed", "pass" if proceed else "fail",
                                  feas.get("recommendation"), detail="; ".join(feas.get("blockers", []))))
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
    return GateResult.from_criteria(1, criteria)


def _phase2(project: Any) -> GateResult:
    # Criteria in omgmagics/dataprep/gate.py: schema validation passed, splits intact (and leakage
    # reported), data dictionary, the project's feature set stored with its pipeline from these splits.
    from .dataprep.gate import phase2_criteria

    criteria, note = phase2_criteria(project)
    return GateResult.from_criteria(2, criteria, note)


def _phase3(project: Any) -> GateResult:
    # Criteria in omgmagics/modeling/gate.py: test metric vs threshold (or a significant win over the
    # best baseline when the brief sets none), fairness differences, a registered champion.
    from .modeling.gate import phase3_criteria

    criteria, note = phase3_criteria(project)
    return GateResult.from_criteria(3, criteria, note)


def _phase4(project: Any) -> GateResult:
    """Staging validated: the last ``serve --validate`` passed, on a bundle that still verifies."""
    from .deploy.gate import staging_criteria

    return GateResult.from_criteria(4, staging_criteria(project))


def _phase5(project: Any) -> GateResult:
    # Criteria in omgmagics/ops/gate.py: every drift alert answered (a retrain decision or a recorded
    # decision not to retrain), the champion's live metric on the latest labeled window >= threshold.
    from .ops.gate import phase5_criteria

    criteria, note = phase5_criteria(project)
    return GateResult.from_criteria(5, criteria, note)


GATES: dict[int, Callable[[Any], GateResult]] = {
    1: _phase1, 2: _phase2, 3: _phase3, 4: _phase4, 5: _phase5,
}


def check_gate(project: Any, phase: int) -> GateResult:
    """Judge `phase` of `project` from the artifacts on disk."""
    return GATES[phase](project)

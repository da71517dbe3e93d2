"""Quality gates of the five phases (core layer).

After a phase notebook runs, the lifecycle runner calls :func:`check_gate`, which reads the artifacts the
phase wrote (reports, manifests, MLflow) and the thresholds of ``omg.yaml``, and returns a
:class:`GateResult`. A gate never trusts the notebook's word: it re-reads files.

The criteria live with their phase (``discovery/gate.py`` ... ``ops/gate.py``, on the floor
:mod:`omgmagics.criteria`); this module only dispatches, so nothing below imports it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .criteria import GATE_NAMES, Criterion, GateResult

__all__ = ["GATES", "GATE_NAMES", "Criterion", "GateResult", "check_gate"]

def _none(phase: int, issue: str) -> GateResult:
    return GateResult(phase, GATE_NAMES[phase], "none", note=f"its criteria land with {issue}")


def _phase1(project: Any) -> GateResult:
    # Criteria in omgmagics/discovery/gate.py: the feasibility study recommends proceeding and the
    # data audit has no failed item, both computed for the brief's current target.
    from .discovery.gate import phase1_criteria

    criteria, note = phase1_criteria(project)
    return GateResult.from_criteria(1, criteria, note)


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

"""Gate criteria and verdicts (floor layer): what every phase's gate returns.

Each phase package judges its own artifacts (``discovery/gate.py``, ``dataprep/gate.py``,
``modeling/gate.py``, ``deploy/gate.py``, ``ops/gate.py``) into :class:`Criterion` lists; the
dispatch in :mod:`omgmagics.gates` turns them into a :class:`GateResult`.
"""

from __future__ import annotations

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

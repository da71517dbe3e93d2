"""An ensemble: the weighted average of other models' scores (built by `train ensemble`).

Its members are whole model bundles of their own families (each in its safe format) in the
ensemble's folder, ``members/m0``, ``members/m1`` ..., named with their weights in ``members.json``.
Loading reads that file as data, checks every member's path stays inside the bundle, refuses a
member that is itself an ensemble and checks that every member takes the ensemble's features and
classes, so a foreign or edited file is refused rather than half-loaded.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ...errors import DataError
from .base import Family, Fitted

MEMBERS_FILE = "members.json"


class Blend:
    """The estimator of an ensemble model: members (``OmgModel``) and their weights (sum 1)."""

    def __init__(self, members: list[Any], weights: list[float], runs: list[str] | None = None):
        self.members = list(members)
        self.weights = [float(w) for w in weights]
        self.runs = list(runs or [m.meta.get("run_name") or m.model_type for m in members])

    def __repr__(self) -> str:
        parts = ", ".join(f"{r} {w:.2f}" for r, w in zip(self.runs, self.weights, strict=True))
        return f"Blend({parts})"


class EnsembleFamily(Family):
    name = "ensemble"
    step = "member"
    quantize_with = None
    kind = "ensemble"
    variant = "native"

    def runtime_libraries(self, model: Any) -> tuple[str, ...]:
        libs: dict[str, None] = {}
        for member in model.estimator.members:
            libs.update(dict.fromkeys(member.family_impl.runtime_libraries(member)))
        return tuple(libs)

    def valid_params(self, model_type: Any, task: str) -> list[str]:
        return []

    def fit(self, model_type: Any, params: dict[str, Any], data: Any, **kwargs: Any) -> Fitted:
        raise DataError("An ensemble is built from trained runs by `omg train ensemble`, not "
                        "trained from hyper-parameters.")

    def predict_scores(self, model: Any, X: Any) -> Any:
        blend = model.estimator
        total = None
        for member, weight in zip(blend.members, blend.weights, strict=True):
            part = weight * member.family_impl.predict_scores(member, X)
            total = part if total is None else total + part
        return total

    def save(self, model: Any, folder: Path) -> str:
        blend = model.estimator
        entries = []
        for i, (member, weight, run) in enumerate(zip(blend.members, blend.weights, blend.runs,
                                                      strict=True)):
            member.save(folder / "members" / f"m{i}")
            entries.append({"path": f"members/m{i}", "weight": weight, "run": run,
                            "model_type": member.model_type})
        (folder / MEMBERS_FILE).write_text(json.dumps({"members": entries}, indent=2) + "\n")
        return MEMBERS_FILE

    def load(self, meta: dict[str, Any], file: Path) -> Any:
        raise DataError(f"{file} is an ensemble: load its bundle with OmgModel.load.")

    def read(self, meta: dict[str, Any], file: Path, load_bundle: Callable[[Path], Any]) -> Any:
        from ...io import inside

        spec = json.loads(file.read_text())
        entries = spec.get("members") if isinstance(spec, dict) else None
        if not isinstance(entries, list) or len(entries) < 2:
            raise DataError(f"{file} lists no members (an ensemble needs at least two).")
        members, weights, runs = [], [], []
        for entry in entries:
            weight = entry.get("weight") if isinstance(entry, dict) else None
            if not isinstance(weight, int | float) or not math.isfinite(weight) or weight < 0:
                raise DataError(f"{file}: a member's weight must be a number >= 0, got {weight!r}.")
            path = inside(file.parent, entry.get("path"), f"A member path of {file.name}")
            member = load_bundle(path)
            if isinstance(member.estimator, Blend):
                raise DataError(f"{file}: member {entry.get('path')} is itself an ensemble; "
                                "ensembles of ensembles are refused.")
            if member.feature_names != list(meta.get("feature_names") or []) or \
                    member.classes != meta.get("classes") or member.task != meta.get("task"):
                raise DataError(f"{file}: member {entry.get('path')} takes other features, classes "
                                "or task than the ensemble.")
            members.append(member)
            weights.append(float(weight))
            runs.append(str(entry.get("run") or member.model_type))
        if not math.isclose(sum(weights), 1.0, abs_tol=1e-6):
            raise DataError(f"{file}: the members' weights sum to {sum(weights):.6g}, not 1.")
        return Blend(members, weights, runs)

    def model_meta(self, model: Any) -> dict[str, Any]:
        versions: dict[str, str] = {}
        for member in model.estimator.members:
            versions.update(member.family_impl.versions())
        return {"libraries": versions}

    def importance(self, model: Any) -> list[float] | None:
        return None  # members' importances are on different scales; SHAP explains the blend

    def parameter_count(self, model: Any) -> int | None:
        counts = [m.family_impl.parameter_count(m) for m in model.estimator.members]
        return None if any(c is None for c in counts) else int(sum(counts))

"""The model registry as retraining sees it (core layer): aliases, new versions, scorers.

A thin layer over :mod:`omgmagics.modeling.tracking` (MLflow, aliases ``champion`` / ``challenger``).
"""

from __future__ import annotations

from typing import Any


class Registry:
    """The project's registered model."""

    def __init__(self, project: Any):
        from ..modeling.tracking import connect

        self.project = project
        self.tracking = connect(project)
        self.name = self.tracking.model_name

    def alias(self, alias: str) -> str | None:
        mv = self.tracking.alias_version(alias)
        return str(mv.version) if mv is not None else None

    def set_alias(self, alias: str, version: str) -> None:
        self.tracking.set_alias(alias, str(version))

    def delete_alias(self, alias: str) -> None:
        if self.alias(alias) is not None:
            self.tracking.client.delete_registered_model_alias(self.name, alias)

    def versions_since(self, epoch_ms: int) -> list[str]:
        """Versions created at or after `epoch_ms`, oldest first."""
        from mlflow.exceptions import MlflowException

        try:
            found = self.tracking.client.search_model_versions(f"name = '{self.name}'")
        except MlflowException:
            return []
        new = [mv for mv in found if int(mv.creation_timestamp or 0) >= epoch_ms]
        return [str(mv.version) for mv in sorted(new, key=lambda m: int(m.version))]

    def run_of(self, version: str) -> str | None:
        try:
            return self.tracking.client.get_model_version(self.name, str(version)).run_id
        except Exception:  # noqa: BLE001 - MlflowException for an unknown version
            return None

    def scorer(self, version: str) -> Any:
        from .scoring import load_scorer

        return load_scorer(self.project, version=str(version))

"""Lifecycle runs on disk (floor layer): run ids and the manifests in ``runs/RUN_ID/manifest.json``.

The runner (:mod:`omgmagics.runner`) writes them; the review index, the pipeline status and the
retrain job read them through here, so none of them needs the runner.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import clock
from .errors import ProjectError
from .log import get_logger

if TYPE_CHECKING:
    from .project import Project

log = get_logger(__name__)


def new_run_id() -> str:
    return clock.new_id()


def load_manifest(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "manifest.json"
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ProjectError(f"Run manifest {path} cannot be read ({exc}). The run folder is damaged; "
                           "start a new run with `omg ml run`.") from None


def list_runs(project: Project, kind: str | None = None) -> list[dict[str, Any]]:
    """Manifests of all runs, newest first; only runs of `kind` (``lifecycle`` or ``retrain``) when
    given."""
    runs = []
    if project.runs_dir.is_dir():
        for d in project.runs_dir.iterdir():
            if (d / "manifest.json").is_file():
                try:
                    runs.append(json.loads((d / "manifest.json").read_text()))
                except json.JSONDecodeError:
                    log.warning("skipping unreadable manifest in %s", d)
    if kind is not None:
        runs = [r for r in runs if r.get("kind", "lifecycle") == kind]
    return sorted(runs, key=lambda m: m.get("started", ""), reverse=True)

"""Every real phase notebook, executed by papermill through the runner on tiny demo data."""

from __future__ import annotations

import json

import pytest

from omgmagics.project import PHASES, Project
from omgmagics.runner import run_lifecycle

pytestmark = pytest.mark.slow


def test_full_lifecycle_on_tiny_demo_data(demo_project):
    project = Project.at(demo_project)
    report = run_lifecycle(project, phases=[1, 2, 3, 4, 5], params={"n_trials": 2})
    manifest = report.value
    failed = {p: s.get("error") or s.get("gate_summary") for p, s in manifest["phases"].items()
              if s["status"] != "passed"}
    assert manifest["status"] == "passed", failed
    for phase, folder in PHASES.items():
        html = demo_project / "reports" / f"phase{phase}_{folder.split('_', 1)[1]}.html"
        assert html.is_file() and html.stat().st_size > 1000
    saved = json.loads((project.runs_dir / manifest["run_id"] / "manifest.json").read_text())
    assert [saved["phases"][str(p)]["status"] for p in PHASES] == ["passed"] * 5
    # nbdev export ran in the project: the exported module matches the notebooks.
    assert (demo_project / "projectlib" / "features.py").read_text().count("def capital_net") == 1

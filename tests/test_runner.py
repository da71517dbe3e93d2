"""The lifecycle runner over real papermill runs: manifest, reports, failure, resume, gates.

The runner executes whatever phase notebooks a project holds; these tests swap in small notebooks
so they exercise the runner itself (the real phase notebooks run in test_e2e.py and the data-set
matrix, test_matrix.py).
"""

from __future__ import annotations

import json
import re

import nbformat
import pytest

from omgmagics.errors import GateFailedError, PhaseFailedError, UsageError
from omgmagics.project import PHASES, Project
from omgmagics.runner import approve_gate, lifecycle_status, run_lifecycle


def write_notebook(path, *cells, params="project_dir = '.'\nseed = 42\nsample_frac = 1.0"):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    p = nbformat.v4.new_code_cell(params)
    p.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell("# A phase"), p] + [nbformat.v4.new_code_cell(c) for c in cells]
    nbformat.write(nb, path)


@pytest.fixture
def small_project(demo_project, monkeypatch):
    """The demo project with small notebooks; the phases' real gates are replaced by a gate that
    checks the one file these notebooks write (the real gates are tested with their phases)."""
    from omgmagics import gates

    def wrote_report(phase):
        def gate(project):
            path = project.root / "reports" / f"p{phase}.txt"
            return gates.GateResult.from_criteria(phase, [gates.Criterion(
                f"reports/p{phase}.txt written", "pass" if path.is_file() else "fail")])
        return gate
    for phase in PHASES:
        monkeypatch.setitem(gates.GATES, phase, wrote_report(phase))
    for phase, folder in PHASES.items():
        write_notebook(demo_project / "notebooks" / folder / f"{folder}.ipynb",
                       f"import pathlib\npathlib.Path('reports/p{phase}.txt').write_text(str(seed))",
                       f"print('phase {phase} done')")
    return Project.at(demo_project)


def test_run_writes_manifest_reports_and_artifacts(small_project):
    report = run_lifecycle(small_project, phases=[1, 2], params={"seed": 7})
    manifest = report.value
    assert manifest["status"] == "passed"
    run_dir = small_project.runs_dir / manifest["run_id"]
    saved = json.loads((run_dir / "manifest.json").read_text())
    assert saved == json.loads(json.dumps(manifest))
    for phase in ("1", "2"):
        state = saved["phases"][phase]
        assert state["status"] == "passed"
        assert state["parameters"] == {"project_dir": str(small_project.root), "seed": 7}
        assert state["started"] <= state["ended"]
        arts = {a["path"]: a for a in state["artifacts"]}
        assert f"reports/p{phase}.txt" in arts
        assert re.fullmatch(r"[0-9a-f]{64}", arts[f"reports/p{phase}.txt"]["sha256"])
        assert (run_dir / f"{PHASES[int(phase)]}.ipynb").is_file()
    assert (small_project.root / "reports" / "p1.txt").read_text() == "7"
    html = (small_project.root / "reports" / "phase1_discovery.html").read_text()
    assert "phase 1 done" in html
    assert "pathlib.Path" not in html  # reports hide code


def test_failing_cell_stops_the_run_and_resume_continues(small_project, run_cli):
    nb2 = small_project.notebook(2)
    good = nb2.read_text()
    write_notebook(nb2, "x = 1", "raise ValueError('planted failure')")
    code, _, err = run_cli(["ml", "run", "--phases", "1-3", "-q"], cwd=small_project.root)
    assert code == 1
    runs = sorted(small_project.runs_dir.iterdir())
    run_id = runs[-1].name
    assert err.strip() == (
        f"error: Phase 2 (Data & features) failed at cell 5 (In [4]): ValueError: planted failure. The executed "
        f"notebook is saved at runs/{run_id}/02_data.ipynb. Fix the cause, then resume with "
        "`omg ml run --resume` (or `%omgml run --resume`).")
    manifest = json.loads((runs[-1] / "manifest.json").read_text())
    assert manifest["status"] == "failed" and manifest["failed_phase"] == 2
    assert manifest["phases"]["2"]["error"]["cell"] == 5
    assert "3" not in manifest["phases"]
    saved = nbformat.read(runs[-1] / "02_data.ipynb", as_version=4)
    assert any(o.get("ename") == "ValueError" for c in saved.cells for o in c.get("outputs", []))
    first_phase1 = manifest["phases"]["1"]["started"]

    nb2.write_text(good)
    code, out, _ = run_cli(["ml", "run", "--resume", "-q"], cwd=small_project.root)
    assert code == 0, out
    manifest = json.loads((runs[-1] / "manifest.json").read_text())
    assert manifest["status"] == "passed"
    assert manifest["phases"]["1"]["started"] == first_phase1  # not redone
    assert set(manifest["phases"]) == {"1", "2", "3"}
    assert len(manifest["resumed"]) == 1


def test_dead_kernel_is_reported(small_project):
    write_notebook(small_project.notebook(1), "import os\nos._exit(1)")
    with pytest.raises(PhaseFailedError, match=r"Phase 1 \(Discovery & planning\) failed at a dead "
                                               r"kernel: DeadKernelError"):
        run_lifecycle(small_project, phases=[1])


def test_unknown_parameter_is_refused(small_project):
    with pytest.raises(UsageError, match=re.escape(
            "Parameter 'sead' is not declared by any phase notebook. Did you mean: seed? "
            "Known: project_dir, sample_frac, seed.")):
        run_lifecycle(small_project, phases=[1], params={"sead": 1})
    assert list(small_project.runs_dir.iterdir()) == []  # nothing started


def test_resume_without_runs(small_project):
    with pytest.raises(UsageError, match=re.escape("Nothing to resume: this project has no runs yet.")):
        run_lifecycle(small_project, resume=True)


def test_failed_gate_stops_the_run(small_project, monkeypatch):
    from omgmagics import gates

    def failing(project):
        return gates.GateResult.from_criteria(1, [gates.Criterion("audit has no failed item", "fail",
                                                                  value=2, threshold=0)])
    monkeypatch.setitem(gates.GATES, 1, failing)
    with pytest.raises(GateFailedError, match=re.escape(
            "Phase 1 (Discovery & planning) ran but its gate failed: Feasibility approved: failed on "
            "audit has no failed item (value 2, needs 0).")):
        run_lifecycle(small_project, phases=[1, 2])


def test_status_and_gate_approval(small_project, run_cli):
    with pytest.raises(UsageError, match="No run to approve"):
        approve_gate(small_project, phase=1, by="alice")
    run_lifecycle(small_project, phases=[1])
    report = approve_gate(small_project, phase=1, by="alice", note="scope agreed")
    assert report.title.startswith("Approved phase 1 (Feasibility approved) of run ")
    with pytest.raises(GateFailedError, match=r"Phase 2 of run .* has not passed its gate \(status: "
                                              r"not run\); it cannot be approved\."):
        approve_gate(small_project, phase=2, by="bob")
    status = lifecycle_status(small_project)
    assert list(status.tables["approvals"]["by"]) == ["alice"]
    code, out, _ = run_cli(["ml", "gate", "list"], cwd=small_project.root)
    assert code == 0 and "1 governance approval(s) in demo" in out
    code, _, err = run_cli(["ml", "gate", "approve", "--phase", "1"], cwd=small_project.root)
    assert code == 2 and "gate approve needs --phase N and --by NAME" in err


def test_a_retrain_run_keeps_its_reports_and_is_not_the_latest_lifecycle_run(small_project):
    first = run_lifecycle(small_project, phases=[1, 2]).value
    index = (small_project.reports_dir / "index.html").read_text()
    report2 = (small_project.reports_dir / "phase2_data.html").read_bytes()
    retrain = run_lifecycle(small_project, phases=[2], params={"seed": 9}, kind="retrain").value
    run_dir = small_project.runs_dir / retrain["run_id"]
    assert retrain["kind"] == "retrain" and retrain["status"] == "passed"
    assert (run_dir / "reports" / "phase2_data.html").is_file()
    assert retrain["phases"]["2"]["report"] == f"runs/{retrain['run_id']}/reports/phase2_data.html"
    # the lifecycle run's reports and review index are untouched
    assert (small_project.reports_dir / "phase2_data.html").read_bytes() == report2
    assert (small_project.reports_dir / "index.html").read_text() == index
    status = lifecycle_status(small_project)
    assert status.title.startswith(f"Project {small_project.name}: latest run {first['run_id']}")
    approve = approve_gate(small_project, 1, by="reviewer")
    assert approve.summary["run_id"] == first["run_id"]

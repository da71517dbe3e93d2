"""Phase 1 end to end: feasibility, plan, the phase 1 gate, the verbs from a terminal and a notebook."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from omgmagics.discovery.audit import audit_data
from omgmagics.discovery.brief import Brief
from omgmagics.discovery.feasibility import assess_feasibility, technical_scores
from omgmagics.discovery.plan import load_result, write_plan
from omgmagics.errors import DataError, ProjectError, UsageError
from omgmagics.gates import check_gate
from omgmagics.project import Project
from tests.test_discovery import SOURCE, make_brief, make_frame

SEED_SHAPE = {"technical_feasibility", "data_readiness", "similar_solutions_exist", "estimated_accuracy",
              "risks", "recommendation"}


def feasibility(df: pd.DataFrame, tmp_path: Path, **kw):
    path = tmp_path / "feasibility.json"
    brief = kw.pop("brief", None) or make_brief()
    report = assess_feasibility(df, brief, json_path=path, source=SOURCE, **kw)
    return report, json.loads(path.read_text())


def risks_by_name(doc: dict) -> dict[str, dict]:
    return {r["risk"]: r for r in doc["risks"]}


def test_feasibility_on_clean_data_proceeds(tmp_path):
    report, doc = feasibility(make_frame(), tmp_path, cv=3)
    assert SEED_SHAPE <= set(doc)
    assert doc["recommendation"] == "Proceed with Phase 2" and doc["proceed"] is True
    assert 0 <= doc["data_readiness"] <= 1 and 0 < doc["technical_feasibility"] <= 1
    est = doc["estimated_accuracy"]
    assert est["metric"] == "roc_auc" and est["low"] <= est["mean"] <= est["high"] <= 1
    assert est["mean"] > doc["prototype"]["dummy"]["mean"] + 0.1
    assert doc["prototype"]["dummy"]["mean"] == pytest.approx(0.5)
    assert "technical_feasibility = 0.5 * lift + 0.5 * reach" in doc["technical_feasibility_formula"]
    assert "data_readiness = mean(completeness" in doc["data_readiness_formula"]
    assert doc["similar_solutions_exist"] is True
    assert all(r["mitigation"] for r in doc["risks"])
    assert "Unfair outcomes across groups" in risks_by_name(doc)
    assert any("Drift: no time column" in n for n in doc["notes"])
    assert report.summary["recommendation"] == "Proceed with Phase 2"
    assert list(report.tables["prototype (cross-validated)"]["model"]) == ["dummy (class prior)",
                                                                           "HistGradientBoosting"]


def test_leaked_target_blocks_and_is_left_out_of_the_prototype(tmp_path):
    df = make_frame()
    df["settled_flag"] = df["churned"].map({"yes": 1, "no": 0})
    _, doc = feasibility(df, tmp_path, cv=3)
    assert doc["proceed"] is False
    assert doc["recommendation"].startswith("Do not proceed to Phase 2 yet: Target leakage")
    assert doc["prototype"]["left_out"]["leakage_suspects"] == ["settled_flag"]
    assert "settled_flag" not in doc["prototype"]["features"]
    assert doc["estimated_accuracy"]["high"] < 0.99  # the estimate is honest, without the leak
    assert doc["data_readiness_terms"]["leakage_free"] == 0.0
    assert risks_by_name(doc)["Target leakage"]["blocking"] is True


def test_no_signal_and_out_of_reach_threshold_block(tmp_path):
    df = make_frame()
    df["churned"] = np.random.default_rng(5).choice(["yes", "no"], size=len(df))
    _, doc = feasibility(df, tmp_path, cv=3, brief=make_brief(threshold=0.95))
    risks = risks_by_name(doc)
    assert risks["No signal over the baseline"]["blocking"]
    assert risks["Success threshold out of reach"]["blocking"]
    assert doc["similar_solutions_exist"] is False
    assert not doc["proceed"]


def test_drift_between_halves_of_the_time_column(tmp_path):
    df = make_frame()
    df["signup"] = pd.date_range("2023-01-01", periods=len(df), freq="h")
    late = np.arange(len(df)) >= len(df) // 2
    df.loc[late, "spend"] = df.loc[late, "spend"] + 200  # prices changed
    _, doc = feasibility(df, tmp_path, cv=3, brief=make_brief(time_column="signup"))
    drift = risks_by_name(doc)["Drift over time"]
    assert drift["severity"] == "high" and "'signup': spend" in drift["evidence"]
    assert doc["prototype"]["cv"] == "3-split time-ordered (expanding window)"


def test_missing_labels_and_imbalance_risks(tmp_path):
    df = make_frame()
    df.loc[df.index[::4], "churned"] = None
    rng = np.random.default_rng(2)
    yes = df.index[(df["churned"] == "yes").to_numpy()]
    df.loc[rng.choice(yes, size=len(yes) - 40, replace=False), "churned"] = "no"
    _, doc = feasibility(df, tmp_path, cv=3)
    risks = risks_by_name(doc)
    assert risks["Missing labels"]["severity"] == "medium"
    assert "300 rows (25.0%) have no 'churned' value" in risks["Missing labels"]["evidence"]
    assert risks["Class imbalance"]["severity"] == "medium"
    assert "outnumbers the rarest 'yes' 21.5 to 1 (4.4% of labeled rows)" in risks["Class imbalance"]["evidence"]
    assert doc["data_readiness_terms"]["label_coverage"] == 0.75


def test_regression_lower_is_better_metric(tmp_path):
    df = make_frame().drop(columns="churned")
    df["revenue"] = 3 * df["x1"] + np.random.default_rng(1).normal(size=len(df))
    brief = make_brief(task="regression", target="revenue", metric="rmse", threshold=2.0,
                       positive_label=None)
    _, doc = feasibility(df, tmp_path, cv=3, brief=brief)
    model, dummy = doc["prototype"]["model"]["mean"], doc["prototype"]["dummy"]["mean"]
    assert model < dummy and doc["proceed"]
    assert doc["technical_feasibility_terms"]["lift"] == pytest.approx((dummy - model) / dummy, abs=1e-3)


def test_technical_scores_formula():
    brief = make_brief(threshold=0.8)
    assert technical_scores(brief, 0.5, 0.9) == {"value": 0.9, "terms": {
        "dummy": 0.5, "model": 0.9, "best_possible": 1.0, "lift": 0.8, "threshold": 0.8, "reach": 1.0}}
    assert technical_scores(make_brief(threshold=None), 0.5, 0.75)["value"] == 0.5


def test_feasibility_bad_options(tmp_path):
    with pytest.raises(UsageError, match=re.escape("--cv must be at least 2, got 1.")):
        feasibility(make_frame(), tmp_path, cv=1)
    df = make_frame(n=300)
    df.loc[df.index[3:], "churned"] = "no"
    with pytest.raises(DataError, match=re.escape("The rarest class has 3 row(s) in the prototype sample, "
                                                  "fewer than the 5 cross-validation folds.")):
        feasibility(df, tmp_path, cv=5)
    assert not (tmp_path / "feasibility.json").exists()


# --- the plan and the gate -----------------------------------------------------------------------

def write_project(root: Path, df: pd.DataFrame, *, extra: str = "") -> Path:
    """A minimal project on `df` (written as data/raw/customers.csv)."""
    (root / "data" / "raw").mkdir(parents=True)
    df.to_csv(root / "data" / "raw" / "customers.csv", index=False)
    (root / "omg.yaml").write_text(f"""project:
  name: churn
  created: "2026-01-05"
brief:
  business_problem: Keep customers who are about to leave.
  stakeholders: [product owner, ML lead]
  objective: {{type: classification, target: churned, positive_label: "yes", primary_metric: roc_auc,
              threshold: 0.7}}
  constraints: {{latency_p99_ms: 5000, throughput_rps: 10}}
  sensitive_features: [group]
  timeline: {{discovery: 1, data: 2, model: 2}}
  checkpoints: {{1: {{name: Feasibility approved, owner: product owner}}}}
data:
  source: data/raw/customers.csv
{extra}seed: 7
""")
    return root


def test_plan_and_adr_from_feasibility(tmp_path):
    root = write_project(tmp_path / "p", make_frame())
    project = Project.at(root)
    brief = Brief.from_config(project.config)
    _, doc = feasibility(project.load_source_data(), tmp_path, cv=3, brief=brief)
    report = write_plan(brief, doc, None, plan_path=root / "docs" / "project_plan.md",
                        adr_path=root / "decisions" / "adr-000-project-scope.md")
    plan = (root / "docs" / "project_plan.md").read_text()
    adr = (root / "decisions" / "adr-000-project-scope.md").read_text()
    assert "```mermaid" in plan and "## 3. Resource requirements" in plan
    assert "| discovery | 1 | 2026-01-05 | 2026-01-12 | gate 1: Feasibility approved | product owner |" in plan
    assert "| model | 2 | 2026-01-26 | 2026-02-09 | gate 3: Model meets criteria |  |" in plan
    for risk in doc["risks"]:
        assert risk["mitigation"] in plan
    assert "# ADR-000: Project scope" in adr and "- Status: proposed: accepted when the phase 1 gate" in adr
    assert "Keep customers who are about to leave." in adr
    assert report.summary["end"] == "2026-02-09"


def test_plan_needs_a_current_feasibility_study(tmp_path):
    with pytest.raises(ProjectError, match=re.escape("run `omg ml feasibility` first.")):
        load_result(tmp_path / "feasibility.json", "feasibility study", "run `omg ml feasibility` first.")
    _, doc = feasibility(make_frame(), tmp_path, cv=3)
    with pytest.raises(ProjectError, match=re.escape("was computed for target 'churned' and metric "
                                                     "'roc_auc', but omg.yaml now says 'x1'")):
        write_plan(make_brief(target="x1"), doc, None, plan_path=tmp_path / "p.md",
                   adr_path=tmp_path / "a.md")


def test_verbs_from_the_terminal_and_the_gate(tmp_path, run_cli):
    root = write_project(tmp_path / "p", make_frame())
    gate = check_gate(Project.at(root), 1)
    assert gate.status == "failed" and "reports/feasibility.json is missing" in gate.summary()
    code, out, err = run_cli(["ml", "brief", "-q"], cwd=root)
    assert code == 0, err
    assert (root / "docs" / "problem_statement.md").is_file()
    code, out, err = run_cli(["data", "validate", "--audit", "-q"], cwd=root)
    assert code == 0, err
    assert "Data audit: churn (" in out
    page = (root / "reports" / "data_audit.html").read_text()
    assert 'id="omg-audit-checklist"' in page and "Profile: fg-data-profiling, minimal mode" in page
    audit = json.loads((root / "reports" / "data_audit.json").read_text())
    assert audit["data"]["source"]["kind"] == "file" and len(audit["data"]["source"]["sha256"]) == 64
    code, out, err = run_cli(["ml", "feasibility", "--cv", "3", "-q"], cwd=root)
    assert code == 0, err
    assert "Proceed with Phase 2" in out
    code, out, err = run_cli(["ml", "plan", "-q"], cwd=root)
    assert code == 0, err
    gate = check_gate(Project.at(root), 1)
    assert gate.status == "passed", gate.summary()
    assert gate.summary().startswith("Feasibility approved: passed")
    code, out, err = run_cli(["ml", "feasibility", "--bogus"], cwd=root)
    assert code == 2 and "unrecognized arguments: --bogus" in err
    code, out, err = run_cli(["data", "validate", "--audit", "--report", "audit.txt"], cwd=root)
    assert code == 2 and "--report 'audit.txt' must name an .html file" in err


def test_gate_fails_on_a_failed_audit_item_and_the_audit_writes_nothing_on_bad_input(tmp_path, run_cli):
    df = make_frame()
    df["email"] = [f"person{i}@example.org" for i in range(len(df))]
    root = write_project(tmp_path / "p", df)
    project = Project.at(root)
    brief = Brief.from_config(project.config)
    report = audit_data(project.load_source_data(), brief, html_path=None, source=SOURCE,
                        json_path=project.reports_dir / "data_audit.json")
    assert report.data["failed"] == ["privacy.personal_data"]
    code, out, err = run_cli(["ml", "feasibility", "--cv", "3", "-q"], cwd=root)
    assert code == 0 and "Do not proceed to Phase 2 yet" in out
    gate = check_gate(Project.at(root), 1)
    assert gate.status == "failed"
    assert "data audit has no failed item: Privacy: personal data: email: e-mail address" in gate.summary()
    (root / "empty.csv").write_text("")
    before = {p.name: p.stat().st_mtime_ns for p in (root / "reports").iterdir()}
    code, out, err = run_cli(["data", "validate", "--audit", "--data", "empty.csv"], cwd=root)
    assert code == 1 and "empty.csv is empty (0 bytes)" in err
    code, out, err = run_cli(["ml", "brief", "--data", "customers.csv"], cwd=root)
    assert code == 1 and "does not exist" in err
    (root / "notes.parquet").write_text("not a table at all")
    code, out, err = run_cli(["ml", "feasibility", "--data", "notes.parquet"], cwd=root)
    assert code == 1 and "notes.parquet could not be read as a parquet table" in err
    (root / "notes.txt").write_text("a b c")
    code, out, err = run_cli(["data", "validate", "--audit", "--data", "notes.txt"], cwd=root)
    assert code == 1 and "unknown file type '.txt'" in err
    (root / "one.csv").write_text("a;b;churned\n1;2;yes\n")
    code, out, err = run_cli(["data", "validate", "--audit", "--data", "one.csv"], cwd=root)
    assert code == 1 and "has a single column ('a;b;churned')" in err
    assert {p.name: p.stat().st_mtime_ns for p in (root / "reports").iterdir()} == before


def test_audit_magic_on_a_notebook_dataframe(tmp_path, ipython):
    root = write_project(tmp_path / "p", make_frame())
    df = make_frame()
    df["const"] = 0
    ipython.user_ns["df"] = df
    ipython.run_line_magic("omgdata", f"validate --audit --data df --project {root} -q --out checklist")
    table = ipython.user_ns["checklist"]
    assert table.set_index("check").at["Constant columns", "status"] == "warn"
    audit = json.loads((root / "reports" / "data_audit.json").read_text())
    assert audit["data"]["source"]["kind"] == "dataframe"
    assert "notebook DataFrame 'df'" in audit["items"][0]["evidence"]
    ipython.user_ns["bad"] = df.rename(columns={"churned": "churnd"})
    with pytest.raises(DataError, match=re.escape("Did you mean: churnd?")):
        ipython.run_line_magic("omgml", f"feasibility --data bad --project {root} -q")


def test_phase1_notebook_runs_the_four_steps_as_magics():
    import nbformat

    root = Path(__file__).resolve().parents[1]
    nb = nbformat.read(root / "notebooks" / "01_discovery" / "01_discovery.ipynb", as_version=4)
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    assert "parameters" in nb.cells[1].metadata.get("tags", [])
    for magic in ("%omgml brief --data df", "%omgdata validate --audit --data df --report data_audit.html",
                  "%omgml feasibility --data df", "%omgml plan"):
        assert magic in code
    assert all(not c.get("outputs") and c.get("execution_count") is None
               for c in nb.cells if c.cell_type == "code")

"""The phase 2 verbs end to end on a demo project (CLI and magics), and the "data ready" gate."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest

from omgmagics.gates import check_gate
from omgmagics.project import Project


@pytest.fixture
def prepared(demo_project, run_cli):
    """collect, infer + validate, label, split: what extract needs."""
    for args in (["data", "collect"], ["data", "validate", "--infer"],
                 ["data", "validate", "--schema", "schema.yaml", "--strict"],
                 ["data", "label", "--hide-share", "0.1"], ["data", "split"]):
        code, out, err = run_cli(args, cwd=demo_project)
        assert code == 0, (args, err)
    return demo_project


def test_extract_select_store_and_the_gate(prepared, run_cli):
    root = prepared
    project = Project.at(root)
    gate = check_gate(project, 2)
    assert gate.status == "failed" and [c.name for c in gate.failures] == ["feature set stored"]
    code, out, err = run_cli(["feature", "extract"], cwd=root)
    assert code == 1 and "The features config" in err and "--infer" in err
    code, out, err = run_cli(["feature", "extract", "--infer"], cwd=root)
    assert code == 0, err
    text = (root / "features.yaml").read_text()
    assert "projectlib.features.capital_net" in text and "sex" not in text.split("features:")[1]
    code, out, err = run_cli(["feature", "extract"], cwd=root)
    assert code == 0, err
    code, out, err = run_cli(["feature", "select", "--k", "500"], cwd=root)
    assert code == 0 and re.search(r"--k 500 keeps every feature: there are \d+, so nothing is left "
                                   "out.", out)
    code, out, err = run_cli(["feature", "select", "--k", "many"], cwd=root)
    assert code == 2 and "'many' is not a whole number or auto" in err
    # a selection of 2 features loses to all of them on a quick model: tried, not used
    code, out, err = run_cli(["feature", "select", "--k", "2", "--format", "json"], cwd=root)
    assert code == 0, err
    rep = json.loads(out)
    assert rep["title"].startswith("Selected 2 of ") and rep["title"].endswith("; not used")
    assert rep["summary"]["used"] == "no (all features scored better)"
    before, after = rep["summary"]["validation roc_auc (all / selected)"].split(" / ")
    assert float(before) > float(after)
    assert any(m.startswith("Tried, not used: a quick model (xgboost, up to 300 trees early-stopped "
                            "on the validation split) scored roc_auc ") for m in rep["messages"])
    stage = json.loads((root / "data" / "processed" / "features" / "selection.json").read_text())
    assert stage["used"] is False and stage["check"]["selected_features"] == 2
    code, out, err = run_cli(["feature", "store", "--name", "tried", "--format", "json"], cwd=root)
    assert code == 0, err
    stored = json.loads(out)["summary"]
    assert stored["features"] == stage["check"]["all_features"]
    assert stored["selection"] == "all features (mutual_info (k=2) tried, not used)"
    # --no-check keeps the selection as chosen
    code, out, err = run_cli(["feature", "select", "--method", "mutual_info", "--k", "20",
                              "--no-check"], cwd=root)
    assert code == 0 and "Selection not compared (--no-check): kept as chosen." in out, err
    code, out, err = run_cli(["feature", "store", "--format", "json"], cwd=root)
    assert code == 0, err
    assert json.loads(out)["summary"]["feature set"] == "project_features@v1"

    from omgmagics.features.store import load_feature_set

    fs = load_feature_set(project.features_dir, "project_features@latest")
    assert len(fs.feature_columns) == 20 and fs.manifest["selection"]["method"] == "mutual_info"
    assert fs.manifest["id_column"] == "row_id" and fs.manifest["pipeline"] == "pipeline.skops"
    assert set(fs.manifest["raw_columns"]) >= {"age", "capital_gain", "workclass"}
    assert set(fs.manifest["requires_modules"]) <= {"projectlib.features"}
    lineage = fs.manifest["lineage"]
    assert lineage["raw_sources"]["adult"]["kind"] == "demo" and lineage["validation"]["status"] == "pass"
    assert lineage["labeling"]["hide_share"] == 0.1 and lineage["split"]["mode"] == "stratified"
    assert fs.train["income"].isin(["<=50K", ">50K"]).all()
    # serving: the stored pipeline turns raw test rows into exactly the stored test features
    raw_test = pd.read_parquet(root / "data" / "processed" / "test.parquet")
    out_features = fs.load_pipeline().transform(raw_test[list(fs.manifest["raw_columns"])])
    assert list(out_features.columns) == fs.feature_columns
    pd.testing.assert_frame_equal(out_features.reset_index(drop=True),
                                  fs.test[fs.feature_columns].reset_index(drop=True), check_dtype=False)
    gate = check_gate(project, 2)
    assert gate.status == "passed", gate.summary()
    code, out, err = run_cli(["feature", "store", "--version", "v1"], cwd=root)
    assert code == 2 and "already exists and versions are immutable" in err
    code, out, err = run_cli(["feature", "store", "--list"], cwd=root)
    assert code == 0 and re.search(r"project_features\s+v1\b", out)
    # re-splitting makes the stored set stale for the gate
    code, out, err = run_cli(["data", "split", "--train", "0.6", "--val", "0.2", "--test", "0.2"], cwd=root)
    assert code == 0
    gate = check_gate(project, 2)
    assert gate.status == "failed" and "built from older splits" in gate.summary()


def test_magics_run_the_same_verbs(prepared, ipython):
    import os

    os.chdir(prepared)
    ipython.run_line_magic("omgdata", "augment --strategy smote --out aug")
    assert ipython.user_ns["aug"]["label_source"].eq("synthetic").any()
    ipython.run_line_magic("omgfeature", "extract --infer")
    ipython.run_line_magic("omgfeature", "extract --no-check --out train_features")
    train = ipython.user_ns["train_features"]
    assert len(train) == len(ipython.user_ns["aug"])  # fitted on the augmented training split
    # judged: the quick model's choice of rows is the one fitted, and recorded
    ipython.run_line_magic("omgfeature", "extract --out judged")
    extract = json.loads((prepared / "data" / "processed" / "features" / "extract.json").read_text())
    check = extract["train"]["rows_check"]
    assert [v["training rows"] for v in check["variants"]] == [
        "human labels only", "with weak labels",
        "with weak labels and synthetic rows (smote)"]
    chosen = check["variants"][check["chosen"]]
    assert len(ipython.user_ns["judged"]) == chosen["rows"]
    assert extract["train"]["augmented"] is (check["chosen"] == 2)
    ipython.run_line_magic("omgfeature", "store --name my_set --version v3")
    assert (prepared / "features" / "my_set" / "v3" / "manifest.json").is_file()
    from omgmagics.errors import UsageError

    with pytest.raises(UsageError, match="Split fractions must sum to 1"):
        ipython.run_line_magic("omgdata", "split --train 0.5")


def test_gate_on_a_fresh_project_names_each_missing_step(demo_project):
    gate = check_gate(Project.at(demo_project), 2)
    assert gate.status == "failed"
    failed = {c.name: c.detail for c in gate.failures}
    assert failed == {
        "schema validation passed": "no reports/validation.json: run `omg data validate --schema "
                                    "schema.yaml --strict`",
        "splits written": "no data/processed/split_manifest.json: run `omg data split`",
        "feature set stored": "no version of project_features in features/: run `omg feature extract` "
                              "and `omg feature store`",
    }

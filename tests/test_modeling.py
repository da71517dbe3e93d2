"""Phase 3 end to end on a tiny seeded feature set: baseline, train, tune (and resume), compare,
evaluate, model card and gate, with the MLflow records each leaves."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from omgmagics.project import Project
from tests.helpers.modeling import make_project, write_experiment

EXPERIMENT = """\
model: xgboost
params: {n_estimators: 60, max_depth: 3, learning_rate: 0.2}
early_stopping_rounds: 10
seed: 7
name: v1
"""


@pytest.fixture(scope="module")
def flow(tmp_path_factory):
    """One project taken through the whole phase; each step's report is kept for the tests."""
    from omgmagics.modeling.baseline import run_baselines
    from omgmagics.modeling.compare import compare_runs
    from omgmagics.modeling.evaluate import evaluate_model
    from omgmagics.modeling.model_card import write_model_card
    from omgmagics.modeling.train import train_model
    from omgmagics.modeling.tune import tune_model

    root = make_project(tmp_path_factory.mktemp("flow") / "demo")
    project = Project.at(root)
    exp = write_experiment(root / "experiment.yaml", EXPERIMENT)
    out = {"root": root, "project": project}
    out["baseline"] = run_baselines(project, cv=3)
    out["train"] = train_model(project, exp)
    out["tune2"] = tune_model(project, "xgboost", trials=2)
    out["tune4"] = tune_model(project, "xgboost", trials=4)
    out["compare"] = compare_runs(project, ["baseline", "v1", "tuned-xgboost"], n_bootstrap=100)
    out["evaluate"] = evaluate_model(project, comprehensive=True, fairness=True, robustness=True,
                                     n_bootstrap=50, shap_rows=60)
    out["card"] = write_model_card(project)
    return out


def _runs(project, **kw):
    from omgmagics.modeling.tracking import connect

    return connect(project).runs(**kw)


def test_tracking_store_is_embedded_in_the_project(flow):
    root = flow["root"]
    assert (root / "mlflow.db").is_file() and (root / "mlartifacts").is_dir()
    import mlflow

    assert mlflow.get_tracking_uri() == f"sqlite:///{root.resolve() / 'mlflow.db'}"
    names = {r.info.run_name for r in _runs(flow["project"])}
    assert {"baseline", "baseline-dummy", "baseline-linear", "baseline-tree", "v1", "tuned-xgboost",
            "compare"} <= names


def test_baseline_leaderboard_and_runs(flow):
    board = flow["baseline"].value
    assert list(board["model"]) and set(board["model"]) == {"dummy", "linear", "tree"}
    assert {"roc_auc mean", "roc_auc std", "accuracy mean", "f1 mean", "fit time (s)",
            "predict time (s)"} <= set(board.columns)
    assert board.set_index("model").loc["dummy", "roc_auc mean"] == pytest.approx(0.5)
    assert board["roc_auc mean"].is_monotonic_decreasing
    parent = _runs(flow["project"], name="baseline")[0]
    assert parent.data.tags["omg.kind"] == "baseline"
    assert parent.data.tags["omg.feature_set"] == "project_features@v1"
    assert parent.data.tags["omg.best_baseline"] == board.iloc[0]["model"]
    assert "test_roc_auc" in parent.data.metrics and "cv_roc_auc_mean" in parent.data.metrics
    child = _runs(flow["project"], name="baseline-tree")[0]
    assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id


def test_train_logs_params_metrics_model_and_registers_challenger(flow):
    from omgmagics.modeling.tracking import connect

    project = flow["project"]
    run = _runs(project, name="v1")[0]
    assert run.data.params["model_type"] == "xgboost"
    assert run.data.params["params.max_depth"] == "3"
    assert run.data.params["seed"] == "7"
    assert {"val_roc_auc", "test_roc_auc", "test_f1", "best_iteration", "latency_p50_ms",
            "model_size_bytes"} <= set(run.data.metrics)
    assert run.data.tags["omg.kind"] == "train"
    arts = {a.path for a in connect(project).client.list_artifacts(run.info.run_id, "model")}
    assert arts == {"model/model.ubj", "model/omg_model.json"}
    versions = connect(project).versions_of_run(run.info.run_id)
    assert len(versions) == 1
    report = flow["train"]
    assert report.summary["run"] == "v1" and "registered" in report.summary
    assert set(report.figures) == {"learning_curve", "feature_importance"}
    assert "(2 plot(s) shown in a notebook" in report.to_text()  # the terminal draws nothing
    assert report._repr_html_().count('src="data:image/png;base64,') == 2  # drawn when shown


def test_tune_resumes_where_it_stopped(flow):
    first, second = flow["tune2"], flow["tune4"]
    assert first.summary["new this call"] == 2 and first.summary["trials"] == 2
    assert second.summary["new this call"] == 2 and second.summary["trials"] == 4
    assert any("Resumed study 'demo-xgboost-project_features-v1': 2 finished trials before, 2 now." in m
               for m in second.messages)
    import optuna

    study = optuna.load_study(study_name="demo-xgboost-project_features-v1",
                              storage=f"sqlite:///{flow['root'].resolve() / 'optuna.db'}")
    assert len(study.trials) == 4
    assert len({json.dumps(t.params, sort_keys=True) for t in study.trials}) == 4  # no replay
    assert {"optimization_history", "param_importances"} <= set(second.figures)
    run = _runs(flow["project"], name="tuned-xgboost")[0]
    assert run.data.tags["omg.study"] == "demo-xgboost-project_features-v1"
    assert run.data.metrics["n_trials_complete"] + run.data.metrics["n_trials_pruned"] == 4


def test_compare_promotes_champion_and_writes_the_adr(flow):
    from omgmagics.modeling.tracking import connect

    report = flow["compare"]
    table = report.value
    assert set(table["run"]) == {"baseline", "v1", "tuned-xgboost"}
    best = report.data["best"]["run"]
    assert table.iloc[0]["run"] == best
    assert {t["test"] for t in report.data["tests"]} == {"McNemar"}
    tracking = connect(flow["project"])
    champion = tracking.alias_version("champion")
    assert champion is not None and champion.run_id == report.data["best"]["run_id"]
    adr = (flow["root"] / "decisions" / "adr-001-model-choice.md").read_text()
    assert "# ADR-001: Model choice" in adr and f"We choose **{best}**" in adr
    assert "models:/demo-model@champion" in adr
    assert (flow["root"] / "reports" / "comparison.json").is_file()


def test_evaluate_writes_cis_fairness_robustness_shap(flow):
    ev = json.loads((flow["root"] / "reports" / "evaluation.json").read_text())
    assert ev["model"]["ref"].endswith("(models:/demo-model@champion)")
    auc = ev["metrics"]["roc_auc"]
    assert auc["ci_low"] <= auc["value"] <= auc["ci_high"]
    assert set(ev["fairness"]["features"]) == {"sex", "race"}
    sex = ev["fairness"]["features"]["sex"]
    assert {"demographic_parity_difference", "equalized_odds_difference"} <= set(sex)
    race = ev["fairness"]["features"]["race"]  # 120 test rows: two groups under 30 rows
    assert race["small_groups"] == ["Black", "Other"] and "demographic_parity_difference" not in race
    assert set(ev["robustness"]["curves"]) == {"noise", "missing", "categories", "shift"}
    assert ev["shap"]["global"] and ev["confusion_matrix"]["labels"] == ["<=50K", ">50K"]
    report = flow["evaluate"]
    assert {"confusion_matrix", "roc_pr_calibration", "shap_importance", "robustness",
            "fairness_sex"} <= set(report.figures)
    from omgmagics.modeling.tracking import connect

    run = connect(flow["project"]).client.get_run(ev["mlflow_run"])
    assert run.data.metrics["test_roc_auc"] == pytest.approx(auc["value"])
    assert "test_roc_auc_ci_low" in run.data.metrics
    assert "fairness_sex_demographic_parity_difference" in run.data.metrics


def test_model_card_has_the_evaluation(flow):
    card = (flow["root"] / "docs" / "model_card.md").read_text()
    for heading in ("## Model details", "## Intended use", "## Data", "## Metrics", "## Fairness",
                    "## Robustness and limitations", "## Explanations", "## Caveats"):
        assert heading in card
    ev = json.loads((flow["root"] / "reports" / "evaluation.json").read_text())
    assert f"{ev['metrics']['roc_auc']['value']:.4f}" in card
    assert "| sex | demographic_parity_difference |" in card


def test_gate_passes_on_threshold_and_fairness(flow):
    from omgmagics.gates import check_gate

    gate = check_gate(flow["project"], 3)
    by_name = {c.name: c for c in gate.criteria}
    assert by_name["test roc_auc"].status == "pass"
    assert by_name["test roc_auc"].threshold == ">= 0.7"
    assert by_name["demographic parity difference (sex)"].status == "pass"
    assert by_name["champion registered"].status == "pass"
    assert gate.status == "passed"


def test_champion_loads_from_its_safe_format(flow):
    from omgmagics.modeling import load_model
    from omgmagics.modeling.data import load_model_data

    model = load_model(flow["project"], "models:/demo-model@champion")
    data = load_model_data(flow["project"])
    proba = model.predict_proba(data.frames["test"])
    assert proba.shape == (len(data.y["test"]), 2) and np.allclose(proba.sum(axis=1), 1)
    assert set(model.predict(data.frames["test"][:5])) <= {"<=50K", ">50K"}
    assert model.meta["run_id"] == flow["compare"].data["best"]["run_id"]


def test_magic_and_cli_words(flow, ipython, run_cli):
    root = flow["root"]
    ipython.run_line_magic("omgtrain", f"compare --experiments baseline,v1 --no-promote "
                                       f"--bootstrap 50 --adr {root}/decisions/adr-test.md "
                                       f"--out cmp --project {root}")
    assert list(ipython.user_ns["cmp"]["run"])[0] in {"baseline", "v1"}
    code, out, err = run_cli(["train", "tune", "--trials", "0"], cwd=root)
    assert code == 2 and "--trials must be at least 1, got 0." in err
    code, out, err = run_cli(["train", "evaluate", "--bogus"], cwd=root)
    assert code == 2 and re.search(r"unrecognized arguments: --bogus", err)

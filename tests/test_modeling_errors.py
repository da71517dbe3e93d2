"""Bad input to phase 3: a clear OmgError with the exact message, and nothing half-logged in MLflow."""

from __future__ import annotations

import json
import re

import pytest

from omgmagics.errors import ConfigError, DataError, UsageError
from omgmagics.project import Project
from tests.helpers.modeling import make_project, write_experiment


@pytest.fixture
def project(tmp_path):
    return Project.at(make_project(tmp_path / "demo"))


def _no_runs(project) -> None:
    """Either no store was opened at all, or it holds no run (finished, failed or deleted)."""
    db = project.root / "mlflow.db"
    if not db.exists():
        return
    from omgmagics.modeling.tracking import connect

    t = connect(project)
    from mlflow.entities import ViewType

    assert t.client.search_runs([t.experiment_id], run_view_type=ViewType.ALL) == []


def test_unknown_model_type_did_you_mean(project):
    from omgmagics.modeling.train import train_model

    with pytest.raises(ConfigError, match=re.escape(
            "Unknown model 'xgbost'. Available: decision_tree, dummy, extra_trees, "
            "hist_gradient_boosting, knn, lightgbm, linear_regression, logistic_regression, mlp, "
            "random_forest, ridge, xgboost. Did you mean: xgboost?")):
        train_model(project, None, overrides={"model": "xgbost"})
    _no_runs(project)


def test_unknown_sklearn_class_did_you_mean(project):
    from omgmagics.modeling.models import get_model_type

    with pytest.raises(ConfigError, match=re.escape(
            "Unknown scikit-learn classifier 'RandomForestRegresor'. Did you mean: "
            "RandomForestClassifier")):
        get_model_type("RandomForestRegresor", "classification")


def test_unknown_hyper_parameter_lists_valid_ones(project):
    from omgmagics.modeling.train import train_model

    exp = write_experiment(project.root / "exp.yaml", "model: xgboost\nparams: {max_dept: 3}\n")
    with pytest.raises(ConfigError) as info:
        train_model(project, exp)
    msg = str(info.value)
    assert msg.startswith(f"{exp}: unknown hyper-parameter 'max_dept' for model 'xgboost'. "
                          "Did you mean: max_depth, max_delta_step? Valid: base_score, booster, ")
    assert "max_depth, max_leaves" in msg
    _no_runs(project)


def test_unknown_experiment_key(project):
    from omgmagics.modeling.train import train_model

    exp = write_experiment(project.root / "exp.yaml", "model: xgboost\nparms: {}\n")
    with pytest.raises(ConfigError, match=re.escape(f"{exp}: unknown key 'parms'. Did you mean: "
                                                    "params?")):
        train_model(project, exp)
    _no_runs(project)


def test_mlp_parameter_values_are_checked(project):
    from omgmagics.modeling.train import train_model

    with pytest.raises(ConfigError, match=re.escape(
            "mlp dropout must be in [0, 1), got 1.5.")):
        train_model(project, None, overrides={"model": "mlp", "params": {"dropout": 1.5}})
    _no_runs(project)


def test_search_space_low_above_high(tmp_path):
    from omgmagics.modeling.tune import tune_model

    root = make_project(tmp_path / "demo", extra_yaml="tuning:\n  search_space:\n    xgboost:\n"
                                                      "      max_depth: {low: 9, high: 3}\n")
    project = Project.at(root)
    with pytest.raises(ConfigError, match=re.escape(
            "omg.yaml tuning.search_space: xgboost.max_depth: low 9 > high 3. Swap them.")):
        tune_model(project, "xgboost", trials=2)
    assert not (root / "optuna.db").exists()
    _no_runs(project)


def test_search_space_file_unknown_parameter(project, tmp_path):
    from omgmagics.modeling.tune import tune_model

    space = tmp_path / "space.yaml"
    space.write_text("xgboost:\n  learning_rat: {low: 0.01, high: 0.3}\n")
    with pytest.raises(ConfigError, match=re.escape(
            f"{space}: xgboost.learning_rat: unknown hyper-parameter 'learning_rat' for model "
            "'xgboost'. Did you mean: learning_rate?")):
        tune_model(project, "xgboost", trials=2, space_file=space)
    _no_runs(project)


def test_trials_zero(project):
    from omgmagics.modeling.tune import tune_model

    with pytest.raises(UsageError, match=re.escape("--trials must be at least 1, got 0.")):
        tune_model(project, "xgboost", trials=0)
    _no_runs(project)


def test_target_missing_from_the_feature_set(project):
    from omgmagics.modeling.train import train_model

    exp = write_experiment(project.root / "exp.yaml", "model: xgboost\ntarget: salary\n")
    with pytest.raises(DataError, match=re.escape(
            "The target column 'salary' is missing from project_features@v1 (train split). "
            "Columns: x0, x1, x2, x3, x4, x5, is_flag, income. Pass --target or set "
            "brief.objective.target.")):
        train_model(project, exp)
    _no_runs(project)


def test_missing_feature_set(tmp_path):
    from omgmagics.modeling.baseline import run_baselines

    project = Project.at(make_project(tmp_path / "demo", store=False))
    with pytest.raises(DataError, match=re.escape("No feature set 'project_features' in ")):
        run_baselines(project)
    _no_runs(project)


def test_sensitive_feature_missing_from_the_test_split(project, tmp_path):
    from omgmagics.modeling.data import load_model_data
    from omgmagics.modeling.evaluate import evaluate_model
    from omgmagics.modeling.models import fit_model, get_model_type

    data = load_model_data(project)
    fit = fit_model(get_model_type("logistic_regression", "classification"), {}, data,
                    metric="roc_auc", seed=0)
    bundle = fit.model.save(tmp_path / "bundle")
    text = (project.root / "omg.yaml").read_text().replace("[sex, race]", "[sex, religion]")
    (project.root / "omg.yaml").write_text(text)
    project = project.reload()
    with pytest.raises(DataError, match=re.escape(
            "The sensitive feature 'religion' is missing from the test split: it is not a feature "
            "column of project_features@v1 and not a column of "
            f"{project.root / 'data' / 'processed' / 'test.parquet'}. Check the name in omg.yaml or "
            "keep the column in data/processed/.")):
        evaluate_model(project, str(bundle), fairness=True, n_bootstrap=10)
    assert not (project.root / "reports" / "evaluation.json").exists()
    _no_runs(project)


def test_fairness_without_sensitive_features_is_not_assessed(project, tmp_path):
    """A table with no sensitive feature: fairness is skipped with its reason, and the phase 3 gate
    warns instead of failing."""
    import json

    from omgmagics.gates import check_gate
    from omgmagics.modeling.data import load_model_data
    from omgmagics.modeling.evaluate import evaluate_model
    from omgmagics.modeling.models import fit_model, get_model_type

    data = load_model_data(project)
    fit = fit_model(get_model_type("logistic_regression", "classification"), {}, data,
                    metric="roc_auc", seed=0)
    bundle = fit.model.save(tmp_path / "bundle")
    (project.root / "omg.yaml").write_text(
        (project.root / "omg.yaml").read_text().replace("[sex, race]", "[]"))
    project = project.reload()
    report = evaluate_model(project, str(bundle), fairness=True, n_bootstrap=10)
    reason = ("fairness not assessed: the brief names no sensitive feature "
              "(brief.sensitive_features in omg.yaml)")
    assert report.summary["fairness"] == "not assessed (no sensitive feature)"
    assert "Fairness not assessed: the brief names no sensitive feature " \
        "(brief.sensitive_features in omg.yaml)." in report.messages
    ev = json.loads((project.reports_dir / "evaluation.json").read_text())
    assert ev["fairness_skipped"] == reason and "fairness" not in ev
    fairness = [c for c in check_gate(project, 3).criteria if c.name == "fairness"]
    assert [(c.status, c.detail) for c in fairness] == [
        ("warn", "not assessed: the brief names no sensitive feature")]


def test_missing_experiment_file(project):
    from omgmagics.modeling.train import train_model

    with pytest.raises(ConfigError, match=re.escape(
            "Experiment file experiment.yaml not found (looked in the working folder and")):
        train_model(project, "experiment.yaml")


def test_compare_needs_two_runs_and_known_names(project):
    from omgmagics.modeling.compare import compare_runs

    with pytest.raises(UsageError, match=re.escape("Compare needs at least two model runs; found 0.")):
        compare_runs(project)
    with pytest.raises(DataError, match=re.escape(
            "No finished MLflow run named 'v9' in experiment 'demo'. Train one first")):
        compare_runs(project, ["v9", "v8"])


def test_evaluate_without_any_model(project):
    from omgmagics.modeling.evaluate import evaluate_model

    with pytest.raises(DataError, match=re.escape(
            "No model to evaluate: no champion and no tuned or trained run.")):
        evaluate_model(project)


def test_failed_run_is_deleted_not_half_logged(project):
    from omgmagics.modeling.tracking import connect

    tracking = connect(project)
    with pytest.raises(RuntimeError, match="boom"):
        with tracking.run("half", "train") as log:
            log.metrics({"x": 1.0})
            raise RuntimeError("boom")
    assert tracking.runs() == []
    from mlflow.entities import ViewType

    (run,) = tracking.client.search_runs([tracking.experiment_id], run_view_type=ViewType.ALL)
    assert run.info.status == "FAILED" and run.info.lifecycle_stage == "deleted"


def test_card_and_gate_without_evaluation(project):
    from omgmagics.gates import check_gate
    from omgmagics.modeling.model_card import write_model_card

    with pytest.raises(DataError, match=re.escape("No reports/evaluation.json: evaluate the chosen "
                                                  "model first")):
        write_model_card(project)
    gate = check_gate(project, 3)
    assert gate.status == "failed"
    assert gate.summary() == ("Model meets criteria: failed on model evaluated: no "
                              "reports/evaluation.json: run `omg train evaluate --comprehensive "
                              "--fairness --robustness`")


def _evaluation(project, **extra):
    ev = {"primary_metric": "roc_auc", "greater_is_better": True, "feature_set": "project_features@v1",
          "metrics": {"roc_auc": {"value": 0.81, "ci_low": 0.75, "ci_high": 0.86}},
          "model": {"run_id": None}, **extra}
    (project.root / "reports").mkdir(exist_ok=True)
    (project.root / "reports" / "evaluation.json").write_text(json.dumps(ev))


def test_gate_failure_names_criterion_and_value(tmp_path):
    from omgmagics.gates import check_gate

    project = Project.at(make_project(tmp_path / "demo", threshold=0.9, dpd=0.1, eod=None))
    _evaluation(project, fairness={"features": {"sex": {"demographic_parity_difference": 0.23}}})
    gate = check_gate(project, 3)
    assert gate.status == "failed"
    summary = gate.summary()
    assert "test roc_auc (value 0.81, needs >= 0.9)" in summary
    assert "demographic parity difference (sex) (value 0.23, needs <= 0.1)" in summary
    assert "champion registered: no version of demo-model has the alias champion" in summary


def test_gate_without_threshold_applies_the_baseline_rule(tmp_path):
    from omgmagics.gates import check_gate
    from omgmagics.modeling.gate import NO_THRESHOLD_RULE

    project = Project.at(make_project(tmp_path / "demo", threshold=None, dpd=None, eod=None))
    _evaluation(project, vs_baseline={"a": 0.81, "b": 0.70, "baseline": "linear", "test": "McNemar",
                                      "p_value": 0.001, "significant": True, "alpha": 0.05})
    gate = check_gate(project, 3)
    rule = next(c for c in gate.criteria if c.name == NO_THRESHOLD_RULE)
    assert rule.status == "pass"
    assert rule.value == "roc_auc 0.8100 vs 0.7000 (linear), McNemar p=0.001"
    assert "the rule applied is that the chosen model must beat the best baseline" in gate.note
    _evaluation(project, vs_baseline={"a": 0.81, "b": 0.80, "baseline": "linear", "test": "McNemar",
                                      "p_value": 0.4, "significant": False, "alpha": 0.05})
    gate = check_gate(project, 3)
    assert gate.status == "failed"
    assert (f"{NO_THRESHOLD_RULE} (value roc_auc 0.8100 vs 0.8000 (linear), McNemar p=0.4, "
            "needs better with p < 0.05)") in gate.summary()


def test_init_writes_a_valid_documented_experiment_once(project, run_cli):
    from omgmagics.modeling.models import get_model_type
    from omgmagics.modeling.train import read_experiment

    code, out, err = run_cli(["train", "train", "--init"], cwd=project.root)
    assert code == 0 and "Wrote the example experiment file experiment.yaml" in out
    spec = read_experiment(project.root / "experiment.yaml")
    get_model_type(spec["model"], "classification").check_params(spec["params"], "classification")
    assert spec["early_stopping_rounds"] == 30 and spec["name"] == "v1"
    code, out, err = run_cli(["train", "train", "--init"], cwd=project.root)
    assert code == 1 and "experiment.yaml already exists; --init never overwrites it." in err
    _no_runs(project)


def test_gate_when_the_baseline_is_the_champion(project):
    """No threshold and the best baseline won the comparison: the gate says so (a warn), it does
    not claim there is no baseline to test against."""
    import json

    from omgmagics.modeling.gate import NO_THRESHOLD_RULE, phase3_criteria

    text = (project.root / "omg.yaml").read_text()
    (project.root / "omg.yaml").write_text(text.replace("threshold: 0.7", "threshold: null"))
    project = project.reload()
    project.reports_dir.mkdir(parents=True, exist_ok=True)
    (project.reports_dir / "evaluation.json").write_text(json.dumps({
        "primary_metric": "roc_auc", "metrics": {"roc_auc": {"value": 0.8}},
        "vs_baseline": {"baseline_run": "r1", "champion_is_baseline": True, "baseline": "linear"}}))
    criteria, _ = phase3_criteria(project)
    rule = next(c for c in criteria if c.name == NO_THRESHOLD_RULE)
    assert (rule.status, rule.detail) == (
        "warn", "the baseline is the champion (linear): no trained model beat it; set "
                "brief.objective.threshold to judge it on the metric")

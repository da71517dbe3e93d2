"""Phase 3 on each problem type: fairness with the task's own metrics (fairlearn ``MetricFrame``) and
SHAP per class for a multi-class model.

- multi-class: demographic parity and equalized odds one class against the rest, the worst class
  judged and named; a class too thin in a group is left out of equalized odds, and the report says so;
- regression: MAE, RMSE, mean target and mean prediction per group; demographic parity and equalized
  odds do not apply, so the gate says so and judges ``fairness.metric_difference`` when set;
- a multi-class model's SHAP importance per class, in the evaluation and as a figure.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import demographic_parity_difference

from omgmagics.modeling.fairness import MIN_CLASS_ROWS, fairness_report
from omgmagics.project import Project
from tests.helpers.modeling import make_project

LIMITS = {"demographic_parity_difference": 0.3, "equalized_odds_difference": 0.2,
          "metric_difference": None}


def _multiclass(n=600, seed=0):
    """Three classes; group b is predicted class 2 far more often than group a; class 1 has only
    three rows in group b."""
    rng = np.random.default_rng(seed)
    groups = np.where(np.arange(n) < n // 2, "a", "b")
    y = rng.integers(0, 3, n)
    y[(groups == "b") & (y == 1)] = 0
    y[np.flatnonzero(groups == "b")[:3]] = 1
    scores = rng.random((n, 3))
    scores[np.arange(n), y] += 0.6
    scores[(groups == "b") & (rng.random(n) < 0.5), 2] += 2.0
    return y, scores / scores.sum(axis=1, keepdims=True), pd.DataFrame({"g": groups})


def test_multiclass_parity_is_one_class_against_the_rest_and_names_the_worst_class():
    y, scores, attrs = _multiclass()
    rep = fairness_report(y, scores, attrs, task="classification", metric="f1_macro",
                          thresholds=LIMITS, classes=["low", "mid", "high"])
    entry = rep["features"]["g"]
    pred = scores.argmax(axis=1)
    by_hand = {c: demographic_parity_difference((y == k).astype(int), (pred == k).astype(int),
                                                sensitive_features=attrs["g"])
               for k, c in enumerate(["low", "mid", "high"])}
    assert {c: v["demographic_parity_difference"] for c, v in entry["per_class"].items()} == \
        pytest.approx(by_hand)
    assert entry["demographic_parity_difference_class"] == "high"
    assert entry["demographic_parity_difference"] == pytest.approx(max(by_hand.values()))
    assert entry["demographic_parity_difference"] > 0.3
    # class "mid" has 3 rows in group b: no equalized odds for it
    assert "equalized_odds_difference" not in entry["per_class"]["mid"]
    assert "equalized_odds_difference" in entry["per_class"]["low"]
    assert (f"g: class(es) mid have fewer than {MIN_CLASS_ROWS} test rows in some group and are left "
            "out of equalized odds.") in rep["messages"]
    assert [(c["criterion"], c["status"]) for c in rep["checks"]] == [
        ("demographic_parity_difference", "fail"), ("equalized_odds_difference",
                                                    "pass" if entry["equalized_odds_difference"]
                                                    <= 0.2 else "fail")]
    table = rep["tables"]["g"]
    assert list(table.columns) == ["g", "count", "accuracy", "balanced_accuracy", "f1_macro",
                                   "in differences"]
    assert entry["metric_difference"] == pytest.approx(table["f1_macro"].max() - table["f1_macro"].min())


def test_regression_groups_are_compared_on_the_metric_and_the_mean_prediction():
    rng = np.random.default_rng(1)
    n = 300
    groups = pd.DataFrame({"district": np.where(np.arange(n) % 3 == 0, "north", "south")})
    y = rng.normal(100, 10, n)
    pred = y + np.where(groups["district"] == "north", 8.0, 0.0) + rng.normal(0, 1, n)
    rep = fairness_report(y, pred, groups, task="regression", metric="rmse",
                          thresholds={**LIMITS, "metric_difference": 2.0})
    entry = rep["features"]["district"]
    table = rep["tables"]["district"].set_index("district")
    north, south = (groups["district"] == "north").to_numpy(), (groups["district"] == "south").to_numpy()
    assert table.loc["north", "mean_prediction"] == pytest.approx(pred[north].mean())
    assert table.loc["south", "rmse"] == pytest.approx(np.sqrt(np.mean((y[south] - pred[south]) ** 2)))
    assert entry["metric_difference"] == pytest.approx(table["rmse"].max() - table["rmse"].min())
    assert entry["mean_prediction_difference"] == pytest.approx(
        abs(pred[north].mean() - pred[south].mean()))
    assert entry["not_computed"] == ("demographic parity and equalized odds are defined for "
                                     "classes, not for a regression")
    assert [(c["criterion"], c["status"]) for c in rep["checks"]] == [("metric_difference", "fail")]


def _evaluated(tmp_path, **kw):
    """A project with a fitted model, evaluated with fairness (and SHAP with `comprehensive`)."""
    from omgmagics.modeling.data import load_model_data
    from omgmagics.modeling.evaluate import evaluate_model
    from omgmagics.modeling.models import fit_model, get_model_type

    comprehensive = kw.pop("comprehensive", False)
    family = kw.pop("family")
    project = Project.at(make_project(tmp_path / "p", threshold=None, **kw))
    data = load_model_data(project)
    task = "regression" if kw.get("task") == "regression" else "classification"
    fit = fit_model(get_model_type(family, task), {"n_estimators": 20} if family == "xgboost" else {},
                    data, metric=project.primary_metric, seed=0)
    bundle = fit.model.save(tmp_path / "bundle")
    report = evaluate_model(project, str(bundle), fairness=True, comprehensive=comprehensive,
                            n_bootstrap=10, shap_rows=60)
    return project, report, json.loads((project.reports_dir / "evaluation.json").read_text())


def test_a_regression_gate_says_why_parity_does_not_apply_then_judges_the_spread(tmp_path):
    from omgmagics.gates import check_gate

    project, report, ev = _evaluated(tmp_path, task="regression", dpd=0.3, eod=0.2, family="ridge")
    assert set(ev["fairness"]["features"]) == {"sex", "race"}
    assert "fairness_sex" in report.figures  # mean target and prediction per group
    spread = ev["fairness"]["features"]["sex"]["metric_difference"]
    crit = {c.name: c for c in check_gate(project, 3).criteria}
    assert (crit["fairness (sex)"].status, crit["fairness (sex)"].detail) == (
        "warn", "not judged: demographic parity and equalized odds are defined for classes; set "
                f"fairness.metric_difference to judge the spread of rmse between groups; now {spread:.4g}")
    text = (project.root / "omg.yaml").read_text()
    (project.root / "omg.yaml").write_text(text.replace(
        "equalized_odds_difference: 0.2\n", "equalized_odds_difference: 0.2\n  metric_difference: 0.0001\n"))
    crit = {c.name: c for c in check_gate(project.reload(), 3).criteria}
    assert (crit["metric difference (sex)"].status, crit["metric difference (sex)"].value,
            crit["metric difference (sex)"].threshold) == ("fail", round(spread, 4), "<= 0.0001")


def test_a_multiclass_model_is_explained_per_class_and_judged_on_the_worst_class(tmp_path):
    from omgmagics.gates import check_gate

    project, report, ev = _evaluated(tmp_path, classes=3, dpd=0.3, eod=0.2, family="xgboost",
                                     comprehensive=True)
    per_class = ev["shap"]["per_class"]
    assert sorted(per_class) == ["high", "low", "mid"]
    assert set(per_class["low"]) == set(ev["shap"]["global"])
    # the global importance is the mean over classes of the per-class importances
    for feat, value in ev["shap"]["global"].items():
        assert value == pytest.approx(np.mean([per_class[c][feat] for c in per_class]))
    assert report.figures["shap_importance"][:8] == b"\x89PNG\r\n\x1a\n"
    sex = ev["fairness"]["features"]["sex"]
    assert set(sex["per_class"]) == {"high", "low", "mid"}
    worst = sex["demographic_parity_difference_class"]
    assert sex["demographic_parity_difference"] == max(
        v["demographic_parity_difference"] for v in sex["per_class"].values())
    crit = {c.name: c for c in check_gate(project, 3).criteria}
    dp = crit["demographic parity difference (sex)"]
    assert (dp.value, dp.threshold, dp.detail) == (
        round(sex["demographic_parity_difference"], 4), "<= 0.3",
        f"one class against the rest; worst class: {worst}")


def test_a_numeric_sensitive_feature_is_compared_in_quartile_groups():
    rng = np.random.default_rng(3)
    n = 400
    age = pd.Series(rng.integers(18, 90, n).astype(float))
    age[:8] = np.nan
    y = rng.integers(0, 2, n)
    scores = np.clip(y * 0.6 + rng.random(n) * 0.5, 0, 1)
    rep = fairness_report(y, scores, pd.DataFrame({"age": age}), task="classification",
                          metric="roc_auc", thresholds=LIMITS)
    table = rep["tables"]["age"]
    q = np.nanquantile(age, [0, 0.25, 0.5, 0.75, 1])
    assert list(table["age"]) == sorted([f"{q[0]:.4g} to {q[1]:.4g}", f"{q[1]:.4g} to {q[2]:.4g}",
                                         f"{q[2]:.4g} to {q[3]:.4g}", f"{q[3]:.4g} to {q[4]:.4g}",
                                         "missing"])
    assert table.set_index("age").loc["missing", "count"] == 8
    assert (f"age: {age.nunique()} distinct values, compared in 4 groups cut at its quartiles."
            in rep["messages"])
    assert "demographic_parity_difference" in rep["features"]["age"]

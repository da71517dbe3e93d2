"""Phase 5 on tables that are not the demo: a small multiclass table (class labels, column names
with spaces and brackets) and a regression (a lower-is-better metric), each through simulate,
monitor, drift, retrain and the phase 5 gate on a real MLflow registry; the live metric per task and
a small table that ends with a recorded, reasoned decision not to retrain."""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from omgmagics.gates import check_gate
from omgmagics.lifecycle.retrain_job import retrain
from omgmagics.ops.drift_report import run_drift
from omgmagics.ops.live import metric_value
from omgmagics.ops.monitor import run_monitor
from omgmagics.ops.retrain import history
from omgmagics.ops.simulate import loop_summary, simulate_traffic
from omgmagics.project import Project

MATRIX = Path(__file__).parent / "data" / "matrix"
NUMPY_REPR = re.compile(r"\bnp\.\w+\(|\bnumpy\.")


def _yaml(task: str, target: str, metric: str, threshold: float | None, extra: str = "") -> str:
    return ("project: {name: table}\n"
            "brief:\n"
            f"  objective: {{type: {task}, target: {target!r}, positive_label: null,\n"
            f"              primary_metric: {metric}, threshold: {'null' if threshold is None else threshold}}}\n"
            "  constraints: {latency_p99_ms: 500, detect_drift_within_hours: 24, retrain_within_hours: 4}\n"
            "data: {source: data/raw/source.csv}\n"
            "seed: 7\n" + extra)


def _fit(df: pd.DataFrame, target: str, task: str, features: list[str]):
    from sklearn.linear_model import LogisticRegression, Ridge

    from omgmagics.modeling.models import OmgModel

    X = df[features].to_numpy(dtype=float)
    if task == "regression":
        return OmgModel("sklearn", "ridge", Ridge(alpha=0.1).fit(X, df[target].to_numpy(dtype=float)),
                        task="regression", feature_names=features, classes=None)
    classes = sorted(df[target].astype(str).unique())
    y = df[target].astype(str).map({c: i for i, c in enumerate(classes)}).to_numpy()
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    est = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(X, y)
    return OmgModel("sklearn", "logistic_regression", est, task="classification",
                    feature_names=features, classes=classes)


def _register(project, model, alias):
    from omgmagics.modeling.tracking import connect

    tracking = connect(project)
    with tempfile.TemporaryDirectory() as tmp:
        model.save(Path(tmp) / "model")
        with tracking.run("phase5-any-table", "train") as log:
            log.artifacts(Path(tmp) / "model", "model")
            run_id = log.run_id
    return tracking.register(run_id, alias), run_id


def _make_train(target: str, task: str, features: list[str], seen: list):
    """A real training step standing in for the phase 2 and 3 notebooks the runner executes."""
    def train(project, data_path, params, phases, progress):
        df = pd.read_parquet(data_path)
        seen.append(df)
        _, run_id = _register(project, _fit(df.dropna(subset=[target]), target, task, features),
                              "challenger")
        return {"run_id": run_id, "gates_ok": True, "gate_note": ""}
    return train


def _project(root: Path, table: str, target: str, task: str, metric: str, threshold: float | None,
             extra: str = "", test_rows: int | None = None, schema: str = "") -> tuple[Project, list[str]]:
    """A project that reached phase 4: splits, a champion in MLflow, phase 3's evaluation.json."""
    df = pd.read_csv(MATRIX / table)
    for sub in ("monitoring", "reports", "docs", "data/raw", "data/processed"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    df.to_csv(root / "data/raw/source.csv", index=False)
    (root / "omg.yaml").write_text(_yaml(task, target, metric, threshold, extra))
    if schema:
        (root / "schema.yaml").write_text(schema)
    shuffled = df.sample(frac=1.0, random_state=3).reset_index(drop=True)
    n = len(shuffled)
    n_test = test_rows or int(n * 0.2)
    n_tr = int((n - n_test) * 0.75)
    parts = {"train": shuffled.iloc[:n_tr], "val": shuffled.iloc[n_tr:n - n_test],
             "test": shuffled.iloc[n - n_test:]}
    for name, part in parts.items():
        part.to_parquet(root / "data/processed" / f"{name}.parquet", index=False)
    project = Project.at(root)
    features = [c for c in df.columns if c != target]
    model = _fit(parts["train"], target, task, features)
    version, _ = _register(project, model, "champion")
    assert version == "1"
    # phase 3's evaluation of the champion on the test split, with a bootstrap 95 % CI
    test = parts["test"]
    from omgmagics.ops.scoring import Scorer

    scorer = Scorer("1", model)
    rng = np.random.default_rng(0)
    boot = []
    for _ in range(200):
        idx = rng.integers(0, len(test), len(test))
        part = test.iloc[idx]
        s, p, proba, classes = scorer.predict_full(part)
        boot.append(metric_value(project, part[target], s, p, probabilities=proba, classes=classes))
    s, p, proba, classes = scorer.predict_full(test)
    value = metric_value(project, test[target], s, p, probabilities=proba, classes=classes)
    (root / "reports" / "evaluation.json").write_text(json.dumps({
        "primary_metric": metric, "metrics": {metric: {
            "value": value, "ci_low": float(np.nanpercentile(boot, 2.5)),
            "ci_high": float(np.nanpercentile(boot, 97.5))}}}))
    return project, features


def _no_numpy_reprs(*texts) -> None:
    for t in texts:
        assert not NUMPY_REPR.search(str(t)), t


# --- the live metric per task -------------------------------------------------------------------
def test_the_live_metric_of_each_task(tmp_path):
    from omgmagics.ops.live import ClassCodes, concat_arrays, metric_arrays, metric_of_arrays

    root = tmp_path / "m"
    root.mkdir()
    (root / "omg.yaml").write_text(_yaml("classification", "kind", "f1_macro", None))
    project = Project.at(root)
    labels = ["a", "b", "c", "a", "b", "c"]
    preds = ["a", "b", "b", "a", "c", "c"]
    from sklearn.metrics import accuracy_score, f1_score

    assert metric_value(project, labels, None, preds) == pytest.approx(
        f1_score(labels, preds, average="macro"))
    assert metric_value(project, labels, None, preds, "accuracy") == pytest.approx(
        accuracy_score(labels, preds))
    # classes 0, 1, 2 from JSON, a CSV or a model agree: 1, "1" and 1.0 are one class
    assert metric_value(project, [0, 1, 2, 1], None, ["0", 1.0, "2", np.int64(1)], "accuracy") == 1.0
    # roc_auc (one vs rest) only with per-class probabilities
    probs = [{"a": 0.8, "b": 0.1, "c": 0.1}, {"a": 0.1, "b": 0.7, "c": 0.2},
             {"a": 0.1, "b": 0.5, "c": 0.4}, {"a": 0.6, "b": 0.3, "c": 0.1},
             {"a": 0.2, "b": 0.3, "c": 0.5}, {"a": 0.1, "b": 0.2, "c": 0.7}]
    assert np.isnan(metric_value(project, labels, None, preds, "roc_auc"))
    from sklearn.metrics import roc_auc_score

    matrix = np.array([[p[c] for c in "abc"] for p in probs])
    expected = roc_auc_score(labels, matrix, multi_class="ovr", labels=list("abc"))
    assert metric_value(project, labels, None, preds, "roc_auc", probs) == pytest.approx(expected)
    assert metric_value(project, labels, None, preds, "roc_auc", matrix, ["a", "b", "c"]) == \
        pytest.approx(expected)
    # batches coded with one ClassCodes (a class first seen later) give the metric of all the rows
    codes = ClassCodes()
    parts = [metric_arrays(project, labels[:3], None, preds[:3], "roc_auc", codes,
                           [{"a": p["a"], "b": p["b"] + p["c"]} for p in probs[:3]]),
             metric_arrays(project, labels[3:], None, preds[3:], "roc_auc", codes, probs[3:])]
    assert parts[0][1].shape == (3, 2) and parts[1][1].shape == (3, 3)
    joined = concat_arrays(parts)
    assert joined[1].shape == (6, 3) and np.isfinite(metric_of_arrays(project, *joined, "roc_auc"))
    assert metric_of_arrays(project, *joined, "f1_macro") == pytest.approx(
        f1_score(labels, preds, average="macro"))

    (root / "omg.yaml").write_text(_yaml("regression", "price", "rmse", 3.0))
    project = project.reload()
    y, p = [10.0, 12.0, 8.0], [11.0, 12.0, 5.0]
    assert metric_value(project, y, None, p) == pytest.approx(np.sqrt((1 + 0 + 9) / 3))
    assert metric_value(project, y, None, p, "mae") == pytest.approx(4 / 3)


# --- a small multiclass table, end to end ---------------------------------------------------------
IRIS_SCHEMA = ("columns:\n"
               "  petal length (cm): {dtype: float, min: 1.0, max: 6.9}\n"
               "  petal width (cm): {dtype: float, min: 0.1, max: 2.5}\n"
               "  species: {dtype: str, allowed: [setosa, versicolor, virginica]}\n")


def test_a_small_multiclass_table_through_the_loop(tmp_path):
    project, features = _project(
        tmp_path / "iris", "iris.csv", "species", "classification", "f1_macro", None,
        extra="retraining: {eval_window: 2d, eval_min_labels: 50, rollout: direct}\n",
        test_rows=30, schema=IRIS_SCHEMA)
    sim = simulate_traffic(project, days=14, shift="'petal length (cm)'*1.6, 'petal width (cm)'*2",
                           shift_from=9, seed=1)
    # 30 held-out rows replayed as 14 days of at least 30 requests: with replacement, stated
    assert sim.data["requests per day"] == 30 and sim.data["sampled with replacement"]
    assert any("30 held-out row(s) for 14 day(s) x 30 requests" in m for m in sim.messages)
    assert any("value(s) of 'petal length (cm)', " in m and "value(s) of 'petal width (cm)' were clipped to "
               "its min/max" in m for m in sim.messages)
    from omgmagics.ops.predlog import read_log

    log, _ = read_log(project)
    assert set(log["prediction"]) <= {"setosa", "versicolor", "virginica"}
    assert log["score"].isna().all()  # no P(positive) for three classes
    assert set(log["probabilities"].iloc[0]) == {"setosa", "versicolor", "virginica"}
    assert log["petal length (cm)"].max() <= 6.9
    ref = pd.read_parquet(project.monitoring_dir / "reference.parquet")
    assert "score" not in ref.columns and set(ref["prediction"]) <= {"setosa", "versicolor", "virginica"}

    mon = run_monitor(project, window="1d")
    series = mon.value
    # the last day's labels are due after the simulated period (label delay 1d)
    assert series["live f1_macro"].iloc[:-1].notna().all() and series["labels"].iloc[-1] == 0
    assert series["live f1_macro"].iloc[:7].mean() > series["live f1_macro"].iloc[-4:].mean()

    drift = run_drift(project, window="1d", since="2026-01-01")
    assert any(m.startswith("The simulated traffic reuses 30 held-out rows") for m in drift.messages)
    windows = drift.value
    before = [w for w in windows if w.window.end.day <= 9]
    after = [w for w in windows if w.window.start.day >= 9]
    assert all(w.prediction is not None and w.prediction.test == "chi-square" for w in windows)
    assert all({"petal length (cm)", "petal width (cm)"} <= set(w.drifted) for w in after)
    assert all(w.prediction.drifted for w in after)  # the predicted class distribution moved
    assert sum(bool(w.drifted) for w in before) <= 1  # repeats of 30 rows are not taken as evidence
    summary = loop_summary(project)
    assert summary["shifted columns"] == "petal length (cm), petal width (cm)"
    assert summary["shift to detection h (simulated)"] == 24.0

    seen: list = []
    out = retrain(project, "drift", "high", reason="drift",
                  train=_make_train("species", "classification", features, seen))
    dec = [r for r in history(project) if r["event"] == "decision"][-1]
    assert dec["decision"] == "promote", dec["reason"]
    assert dec["metric"] == "f1_macro" and dec["challenger"]["value"] > dec["champion"]["value"]
    # the reference (train + val) and the labeled traffic before the evaluation window (days 12, 13)
    assert dec["eval_labels"] == 60 and dec["data"]["new labeled rows"] == 11 * 30
    assert len(seen[0]) == 90 + 30 + 11 * 30
    _no_numpy_reprs(out.title, out.summary, out.messages, dec["reason"])

    gate = check_gate(project, 5)
    crit = {c.name: c for c in gate.criteria}
    assert crit["drift alerts answered"].status == "pass"
    live = crit["champion live f1_macro"]
    assert "re-scored" in live.detail and "no threshold in the brief: compared with the champion's " \
        "test f1_macro" in live.detail and "(reports/evaluation.json), tolerance its 95 % CI lower " \
        "bound" in live.detail
    # the new champion is better than the old on the shifted window, yet below the test CI: the gate
    # fails on that, in one line
    assert live.status == "fail" and live.value < float(live.threshold.split()[-1]) and "\n" not in live.detail
    assert live.threshold == f">= {json.loads((project.reports_dir / 'evaluation.json').read_text())['metrics']['f1_macro']['ci_low']:.4g}"
    _no_numpy_reprs(gate.summary(), *(c.detail for c in gate.criteria), drift.messages, mon.messages)
    # the iteration review ranks slices by the misclassified share of the class itself
    from omgmagics.ops.live import labeled
    from omgmagics.ops.review import error_slices, write_review
    from omgmagics.ops.settings import monitoring_settings

    rows, _ = labeled(project, monitoring_settings(project))
    slices = error_slices(project, rows, min_rows=30)
    wrong = (rows["prediction"].astype(str) != rows["label"].astype(str)).mean()
    assert 0 < wrong < 1 and slices["error rate"].max() >= wrong and "f1_macro" in slices.columns
    review = write_review(project, min_rows=30)
    _no_numpy_reprs(review.title, review.summary, review.messages)


def test_a_multiclass_roc_auc_brief_is_judged_from_logged_probabilities(tmp_path):
    project, _ = _project(tmp_path / "wine", "wine.csv", "cultivar", "classification", "roc_auc", None,
                          test_rows=36)
    simulate_traffic(project, days=4, per_day=40, seed=2)
    series = run_monitor(project, window="1d").value
    # one vs rest, from the logged probabilities (the last day's labels are not due yet)
    assert series["live roc_auc"].iloc[:-1].between(0.8, 1.0).all()
    crit = check_gate(project, 5).criteria[1]
    assert crit.name == "champion live roc_auc" and crit.status == "pass"
    assert "logged scores of the requests it served" in crit.detail and "tolerance its 95 % CI lower " \
        "bound" in crit.detail and crit.threshold.startswith(">= ")


def test_a_small_table_ends_with_a_reasoned_decision_not_to_retrain(tmp_path):
    """Too few labels to compare a challenger: the retrain is not run, the decision and its reason
    are recorded, the drift alerts count as answered, and the live criterion fails in one line."""
    project, features = _project(
        tmp_path / "iris", "iris.csv", "species", "classification", "f1_macro", 0.8,
        extra="retraining: {eval_window: 2d, eval_min_labels: 500, rollout: direct}\n", test_rows=25)
    simulate_traffic(project, days=14, shift="'petal length (cm)'*1.6", shift_from=9, seed=1)
    run_drift(project, window="1d", since="2026-01-01")
    seen: list = []
    out = retrain(project, "drift", "high", train=_make_train("species", "classification", features, seen))
    assert not seen  # no training run: it could not change the decision
    assert out.summary["decision"] == "keep"
    # 13 days of 30 labels (the last day's are not due): all the traffic, widened window by window
    assert out.summary["reason"] == (
        "only 390 labeled requests in all the traffic (2025-12-31 .. 2026-01-14), fewer than "
        "retraining.eval_min_labels (500): a challenger could not be compared with the champion, so no "
        "retrain was run and the champion stays. Collect more labels (or lower "
        "retraining.eval_min_labels) and retrain then")
    dec = [r for r in history(project) if r["event"] == "decision"][-1]
    assert dec["decision"] == "keep" and dec["trained"] is False and dec["alerts"]
    gate = check_gate(project, 5)
    answered, live = gate.criteria
    n = len(dec["alerts"])
    assert (answered.status, answered.value) == ("pass", f"{n} of {n}")
    assert live.status == "fail" and "\n" not in live.detail
    assert live.detail.startswith("only ") and "fewer than retraining.eval_min_labels (500): too few to " \
        "judge the live f1_macro" in live.detail


# --- a regression --------------------------------------------------------------------------------
def test_a_regression_through_the_loop(tmp_path):
    project, features = _project(
        tmp_path / "diabetes", "diabetes.csv", "progression", "regression", "rmse", 70.0,
        extra="retraining: {eval_window: 2d, eval_min_labels: 50, rollout: none}\n")
    sim = simulate_traffic(project, days=10, per_day=60, shift="bmi*3,s5+0.08", shift_from=6, seed=4)
    assert "mean prediction" in sim.tables["days"].columns
    ref = pd.read_parquet(project.monitoring_dir / "reference.parquet")
    assert "score" not in ref.columns and ref["prediction"].dtype == float
    series = run_monitor(project, window="1d").value
    assert series["live rmse"].iloc[:-1].notna().all() and series["positive rate"].isna().all()
    assert series["score p50"].notna().all()  # the predicted values' distribution
    drift = run_drift(project, window="1d", since="2026-01-01").value
    for w in drift:
        assert w.prediction is not None and (w.prediction.feature, w.prediction.kind, w.prediction.test) \
            == ("prediction", "numeric", "KS")
    assert all(w.prediction.drifted for w in drift if w.window.start.day >= 6)
    assert not any(w.prediction.drifted for w in drift if w.window.end.day <= 6)
    gate = check_gate(project, 5)
    live = gate.criteria[1]
    assert live.name == "champion live rmse" and live.threshold == "<= 70.0"
    assert live.status == "fail" and live.value > 70.0  # the shifted window: the model is worse
    retrain(project, "drift", "high", train=_make_train("progression", "regression", features, []))
    dec = [r for r in history(project) if r["event"] == "decision"][-1]
    assert dec["decision"] == "promote" and dec["metric"] == "rmse"
    assert dec["challenger"]["value"] < dec["champion"]["value"]  # lower is better
    assert "better by" in dec["reason"]
    _no_numpy_reprs(dec["reason"], gate.summary())
    assert check_gate(project, 5).criteria[0].status == "pass"

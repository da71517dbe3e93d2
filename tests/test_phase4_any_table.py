"""Phase 4 (optimization and deployment) on tables that are not the demo: a multi-class table
(iris, 150 rows: ~20 validation rows, with integer class labels), a regression table (diabetes)
and, for the units of the metric, a regression on prices in the millions.

Each project is built through the kit's public functions (raw splits, a feature set with its fitted
pipeline, an xgboost champion in MLflow), then: profile, the ONNX export with the task's metric,
packaging, the served output over real HTTP on loopback (per-class probabilities, the value), the
MLflow pyfunc, staging validation with its train/serve skew check, and a canary rollout.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from tests.helpers.deploy import stop_all

MATRIX = Path(__file__).parent / "data" / "matrix"
OMG_YAML = """\
project:
  name: {name}
brief:
  objective:
    type: {task}
    target: {target}
    positive_label: null
    primary_metric: {metric}
    threshold: null
  constraints:
    latency_p99_ms: 2000
features:
  name: project_features
seed: 42
"""
STAGING = "validation:\n  rows: 2000\n  load_requests: 150\n  concurrency: 4\n"
NAN_HANDLER = '''
def postprocess(scores, classes, task):
    return [{"prediction": float("nan"), "score": float("inf")} for _ in scores]
'''


def build(parent: Path, table: str, target: str, task: str, metric: str,
          relabel: dict | None = None) -> Path:
    """A phase-4-ready project on a matrix table: champion = xgboost v1; an ONNX export of it in
    models/optimized/champion; bundles 1 (native) and 2 (ONNX)."""
    from omgmagics.features.extract import extract_features, save_pipeline
    from omgmagics.features.spec import check_spec
    from omgmagics.features.store import write_feature_set
    from omgmagics.modeling.data import load_model_data
    from omgmagics.modeling.models import fit_model, get_model_type
    from omgmagics.modeling.record import record_model
    from omgmagics.modeling.tracking import connect
    from omgmagics.project import Project

    root = parent / table
    root.mkdir(parents=True)
    (root / "omg.yaml").write_text(OMG_YAML.format(name=table, task=task, target=target,
                                                   metric=metric))
    df = pd.read_csv(MATRIX / f"{table}.csv")
    if relabel:
        df[target] = df[target].map(relabel).astype("int64")
    df.insert(0, "row_id", np.arange(len(df)))
    part = np.random.default_rng(7).choice(["train", "val", "test"], size=len(df),
                                           p=[0.7, 0.15, 0.15])
    raw = {s: df[part == s].reset_index(drop=True) for s in ("train", "val", "test")}
    project = Project.at(root)
    project.processed_dir.mkdir(parents=True, exist_ok=True)
    for split, frame in raw.items():
        frame.to_parquet(project.processed_dir / f"{split}.parquet", index=False)
    # Written by hand (the tables are numeric): phase 4 is under test here, not the spec inference.
    columns = [c for c in df.columns if c not in ("row_id", target)]
    spec = {"features": [{"name": "numeric", "transform": "standard", "columns": columns}]}
    rep = extract_features(check_spec(spec), raw, target)
    pipe = root / "pipeline.skops"
    save_pipeline(rep.value["pipeline"], pipe)
    write_feature_set(project.features_dir, "project_features", "v1", rep.value["splits"], target,
                      extra={"pipeline": "pipeline.skops", "raw_columns": rep.value["raw_columns"],
                             "id_column": "row_id"}, files={"pipeline.skops": pipe})
    pipe.unlink()
    project = Project.at(root)
    data = load_model_data(project)
    tracking = connect(project)
    params = {"n_estimators": 30, "max_depth": 3}
    fit = fit_model(get_model_type("xgboost", task), params, data, metric=metric, seed=1)
    rec = record_model(tracking, project, data, fit, name="xgb", kind="train", params=params,
                       metrics=[metric], register=True)
    tracking.set_alias("champion", rec["version"])
    return root


@pytest.fixture(scope="module")
def multiclass(tmp_path_factory):
    from omgmagics.project import Project

    root = build(tmp_path_factory.mktemp("multi"), "iris", "species", "classification",
                 "f1_macro", relabel={"setosa": 0, "versicolor": 1, "virginica": 2})
    yield Project.at(root)
    stop_all(root)


@pytest.fixture(scope="module")
def regression(tmp_path_factory):
    from omgmagics.project import Project

    root = build(tmp_path_factory.mktemp("reg"), "diabetes", "progression", "regression", "rmse")
    yield Project.at(root)
    stop_all(root)


def _phase4_models(project) -> dict:
    """The notebook's first steps: quantize (ONNX) the champion, package it and the export."""
    from omgmagics.deploy.packaging import package_model
    from omgmagics.optim.quantize import quantize_model

    q = quantize_model(project, "champion", export="auto", max_drop=0.01,
                       output="models/optimized/champion")
    native = package_model(project, "champion")
    onnx = package_model(project, "models/optimized/champion")
    return {"quantize": q, "native": Path(native.value), "onnx": Path(onnx.value),
            "package": onnx}


@pytest.fixture(scope="module")
def multi4(multiclass):
    return _phase4_models(multiclass)


@pytest.fixture(scope="module")
def reg4(regression):
    return _phase4_models(regression)


def _strict_json(text: str):
    """json.loads that refuses NaN and Infinity (not JSON)."""
    def refuse(name):
        raise ValueError(f"{name} is not JSON")

    return json.loads(text, parse_constant=refuse)


# --- optimization -------------------------------------------------------------------------------
def test_profile_multiclass_and_regression_report_the_tasks_metric(multiclass, regression):
    from omgmagics.optim.profile import profile_model

    for project, metric in ((multiclass, "f1_macro"), (regression, "rmse")):
        rep = profile_model(project, "champion", "1,64", repeats=5)
        assert rep.summary["type"] == "xgboost" and rep.summary["parameters"] > 0
        assert math.isfinite(rep.summary[f"val {metric}"])
        assert rep.summary["rows from"] == "project_features@v1 (val)"
        assert [r["batch"] for r in rep.data["rows"]] == [1, 64]


def test_onnx_export_of_multiclass_and_regressor_keeps_the_metric(multi4, reg4, multiclass):
    from omgmagics.optim.models import load_any_model

    m, r = multi4["quantize"], reg4["quantize"]
    assert m.title == "Exported xgboost (onnx), written to champion"
    assert m.summary["method"] == "ONNX export (onnxruntime)"
    assert m.summary["label agreement"] == 1 and m.data["comparison"]["max_score_diff"] < 1e-5
    assert m.summary["val f1_macro"].count("->") == 1
    assert r.title == "Exported xgboost (onnx), written to champion"
    assert "label agreement" not in r.summary and "val rmse" in r.summary
    assert r.summary["metric drop"].endswith(" of the value)")
    onnx = load_any_model(multiclass, "models/optimized/champion")
    scores = onnx.predict_scores(np.zeros((3, len(onnx.feature_names))))
    assert scores.shape == (3, 3) and np.allclose(scores.sum(axis=1), 1, atol=1e-5)
    assert onnx.classes == [0, 1, 2]


def test_max_drop_is_a_share_of_the_value_for_metrics_in_the_targets_units():
    from omgmagics.errors import DataError
    from omgmagics.optim.quantize import check_drop

    cmp = {"before": {"metric": 1_808_074.3587}, "after": {"metric": 1_808_074.3926},
           "drop": 0.0339}
    assert check_drop(cmp, "rmse", 0.01, False, "the ONNX export") == []
    worse = {"before": {"metric": 100.0}, "after": {"metric": 103.0}, "drop": 3.0}
    with pytest.raises(DataError) as err:
        check_drop(worse, "rmse", 0.01, False, "the ONNX export")
    assert str(err.value) == (
        "Refused: the ONNX export raises val rmse from 100 to 103 (by 0.03 of its value > "
        "--max-drop 0.01, a share for rmse); nothing was written. Pass --force to write it "
        "anyway, raise --max-drop, or serve the original model.")
    auc = {"before": {"metric": 0.9}, "after": {"metric": 0.85}, "drop": 0.05}
    with pytest.raises(DataError, match=r"lowers val roc_auc from 0.9000 to 0.8500 \(drop 0.0500"):
        check_drop(auc, "roc_auc", 0.01, False, "int8 quantization")


# --- the served output --------------------------------------------------------------------------
def _serve(project, bundle):
    from omgmagics.deploy.serving import start_server
    from omgmagics.deploy.settings import resolve_settings

    settings = resolve_settings(project, "qa", port=0)
    return start_server(project, settings, bundle, role="server", port=0)


def _records(project, bundle, n=5):
    from omgmagics.deploy.bundle import ServingBundle
    from omgmagics.deploy.staging import split_valid

    _, valid, _ = split_valid(ServingBundle.load(bundle),
                              pd.read_parquet(project.processed_dir / "val.parquet"))
    return valid[:n]


def test_multiclass_response_carries_every_class_probability(multiclass, multi4):
    from omgmagics.deploy.bundle import ServingBundle
    from omgmagics.deploy.process import stop_process
    from omgmagics.deploy.pyfunc import _load_pyfunc

    bundle = multi4["onnx"]
    sig = json.loads((bundle / "signature.json").read_text())
    assert sig["task"] == "classification" and sig["classes"] == [0, 1, 2]
    assert sig["outputs"]["probabilities"]["classes"] == ["0", "1", "2"]
    records = _records(multiclass, bundle)
    server = _serve(multiclass, bundle)
    try:
        with httpx.Client(base_url=server.url, timeout=30) as c:
            one = c.post("/predict", json=records[0])
            batch = c.post("/predict", json=records)
    finally:
        stop_process(server.pid)
    assert one.status_code == 200 and batch.status_code == 200
    item = _strict_json(one.text)
    assert set(item) == {"request_id", "model_version", "prediction", "score", "probabilities"}
    probs = item["probabilities"]
    assert list(probs) == ["0", "1", "2"] and abs(sum(probs.values()) - 1) < 1e-5
    assert item["prediction"] == int(max(probs, key=probs.get)) and item["score"] is None
    served = _strict_json(batch.text)["predictions"]
    offline = ServingBundle.load(bundle).predict_records(records)
    pyfunc = _load_pyfunc(str(bundle / "data" / "omg")).predict(pd.DataFrame(records))
    assert served == offline
    assert pyfunc.to_dict("records") == offline
    assert all(isinstance(p["prediction"], int) for p in served)


def test_regression_response_is_the_number_and_agrees_with_pyfunc(regression, reg4):
    from omgmagics.deploy.bundle import ServingBundle
    from omgmagics.deploy.process import stop_process
    from omgmagics.deploy.pyfunc import _load_pyfunc

    bundle = reg4["onnx"]
    sig = json.loads((bundle / "signature.json").read_text())
    assert sig["task"] == "regression" and sig["outputs"]["score"] is None
    records = _records(regression, bundle)
    server = _serve(regression, bundle)
    try:
        with httpx.Client(base_url=server.url, timeout=30) as c:
            batch = c.post("/predict", json=records)
    finally:
        stop_process(server.pid)
    served = _strict_json(batch.text)["predictions"]
    assert all(set(p) == {"prediction", "score"} and p["score"] is None for p in served)
    assert all(isinstance(p["prediction"], float) for p in served)
    offline = ServingBundle.load(bundle).predict_records(records)
    assert served == offline
    assert _load_pyfunc(str(bundle / "data" / "omg")).predict(
        pd.DataFrame(records)).to_dict("records") == offline


def test_non_finite_predictions_are_null_in_the_response_and_the_log(regression, reg4, tmp_path):
    from omgmagics.deploy.packaging import package_model
    from omgmagics.deploy.predlog import read_log
    from omgmagics.deploy.process import stop_process

    handler = tmp_path / "nan_handler.py"
    handler.write_text(NAN_HANDLER)
    bundle = Path(package_model(regression, "champion", handler=str(handler), name="nan").value)
    records = _records(regression, bundle, 2)
    server = _serve(regression, bundle)
    try:
        with httpx.Client(base_url=server.url, timeout=30) as c:
            one = c.post("/predict", json=records[0], headers={"x-request-id": "nan-1"})
    finally:
        stop_process(server.pid)
    assert one.status_code == 200
    body = _strict_json(one.text)
    assert body["prediction"] is None and body["score"] is None
    logged = [r for r in read_log(regression.predictions_dir) if r["request_id"] == "nan-1"]
    assert logged and logged[0]["prediction"] is None and logged[0]["score"] is None


def test_default_postprocess_per_task_has_no_numpy_values():
    from omgmagics.deploy.bundle import default_postprocess, json_safe

    multi = default_postprocess(np.array([[0.2, 0.7, 0.1]]), [np.int64(3), np.int64(5),
                                                              np.int64(7)], "classification")
    assert multi == [{"prediction": 5, "score": None,
                      "probabilities": {"3": 0.2, "5": 0.7, "7": 0.1}}]
    assert type(multi[0]["prediction"]) is int
    assert default_postprocess(np.array([0.2, 0.9]), ["no", "yes"], "classification") == [
        {"prediction": "no", "score": 0.2}, {"prediction": "yes", "score": 0.9}]
    assert default_postprocess(np.array([1.5, np.nan]), None, "regression")[0] == {
        "prediction": 1.5, "score": None}
    assert json_safe({"a": np.float32(np.inf), "b": [np.nan, np.int64(2)]}) == {"a": None,
                                                                                "b": [None, 2]}


# --- staging and the canary ---------------------------------------------------------------------
def _validate(project, bundle):
    from omgmagics.deploy.serving import serve

    cfg = Path(project.root) / "staging.yaml"
    cfg.write_text(STAGING)
    return serve(project, "staging", str(cfg), port=0, bundle=str(bundle), validate=True)


def test_staging_validation_on_regression_compares_the_predicted_values(regression, reg4):
    from omgmagics.deploy.gate import staging_criteria

    report = _validate(regression, reg4["onnx"])
    result = report.data["result"]
    checks = {c["name"]: c for c in result["criteria"]}
    assert result["passed"], checks
    skew = checks["no train/serve skew (vs stored features)"]
    n = result["replay"]["valid"]
    assert skew["value"] == f"max |prediction diff| 0 on {n} rows"
    assert skew["detail"] == "relative to the value above 1"
    assert checks["predictions identical to the offline bundle"]["value"] == \
        "0 predictions differ, max |prediction diff| 0"
    assert report.summary["prediction mismatches"] == 0
    assert f"validation.rows is 2000 but the validation split has {n} rows: all {n} were " \
        "replayed." in report.messages
    assert all(c.status == "pass" for c in staging_criteria(regression))


def test_staging_validation_on_a_tiny_multiclass_table_gives_a_verdict(multiclass, multi4):
    report = _validate(multiclass, multi4["onnx"])
    result = report.data["result"]
    checks = {c["name"]: c for c in result["criteria"]}
    n = result["replay"]["valid"]
    assert n < 100 and result["passed"], checks
    assert checks["no train/serve skew (vs stored features)"]["value"] == \
        f"max |probability diff| 0 on {n} rows"
    assert checks["predictions identical to the offline bundle"]["value"] == \
        "0 label mismatches, max |probability diff| 0"
    assert result["replay"]["p99_ms"] is None
    assert (f"The replay's {n} requests are too few for a p99 estimate (fewer than 100): its p99 "
            "is not reported; the load test's is the criterion.") in report.messages
    assert "np." not in json.dumps(result)


def test_skew_check_compares_labels_when_the_handler_returns_none(multiclass, multi4):
    from omgmagics.deploy.bundle import ServingBundle
    from omgmagics.deploy.staging import _skew, replay_rows, split_valid
    from omgmagics.features.store import load_feature_set

    bundle = ServingBundle.load(multi4["onnx"])
    rows, fs = replay_rows(multiclass, bundle, 50)
    _, valid, _ = split_valid(bundle, rows)
    items = [{"prediction": p["prediction"]} for p in bundle.predict_records(valid)]
    fs = load_feature_set(multiclass.features_dir, "project_features@v1")
    skew = _skew(bundle, rows, fs, items)
    assert skew["compared"] == "label" and skew["ok"] and skew["mismatches"] == 0
    items[0] = {"prediction": (items[0]["prediction"] + 1) % 3}
    assert _skew(bundle, rows, fs, items)["mismatches"] == 1


@pytest.mark.parametrize("which", ["multiclass", "regression"])
def test_canary_promotes_on_any_task(which, request):
    from omgmagics.deploy.rollout import cloud_local

    project = request.getfixturevalue(which)
    models = request.getfixturevalue("multi4" if which == "multiclass" else "reg4")
    report = cloud_local(project, champion=str(models["native"]), challenger=str(models["onnx"]),
                         port=0, window=20)
    assert report.summary["outcome"] == "promoted", report.data["status"]
    assert report.summary["lost requests"] == 0
    assert report.summary["challenger requests"] >= 20 * 4



def test_blue_green_smoke_test_compares_regression_values(regression, reg4):
    from omgmagics.deploy.rollout import cloud_local, same_prediction

    report = cloud_local(regression, "production", "blue-green", champion=str(reg4["onnx"]),
                         challenger=str(reg4["native"]), port=0, window=20)
    assert report.summary["blue-green smoke test"] == "ok"
    assert report.summary["outcome"] == "promoted"
    assert same_prediction({"prediction": 151.00000000001}, {"prediction": 151.0}, "regression")
    assert not same_prediction({"prediction": 151.001}, {"prediction": 151.0}, "regression")
    assert not same_prediction({"prediction": None}, {"prediction": 151.0}, "regression")
    assert same_prediction({"prediction": "b"}, {"prediction": "b"}, "classification")

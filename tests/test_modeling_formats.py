"""Safe model formats, every model family, a regression project with LightGBM and a tuned MLP,
and the statistics behind comparisons."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from sklearn.preprocessing import StandardScaler

from omgmagics.errors import DataError
from omgmagics.project import Project
from tests.helpers.modeling import make_project


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from omgmagics.modeling.data import load_model_data

    root = make_project(tmp_path_factory.mktemp("fmt") / "demo", n=400)
    return load_model_data(Project.at(root))


@pytest.mark.parametrize("model_type, params, file", [
    ("xgboost", {"n_estimators": 30, "max_depth": 3}, "model.ubj"),
    ("lightgbm", {"n_estimators": 30, "num_leaves": 8}, "model.txt"),
    ("random_forest", {"n_estimators": 20, "max_depth": 4}, "model.skops"),
    ("ExtraTreesClassifier", {"n_estimators": 10}, "model.skops"),
    ("mlp", {"hidden_sizes": [16], "epochs": 5}, "model.pt"),
])
def test_roundtrip_in_a_safe_format(data, tmp_path, model_type, params, file):
    from omgmagics.modeling.models import OmgModel, fit_model, get_model_type

    fit = fit_model(get_model_type(model_type, "classification"), params, data, metric="roc_auc",
                    seed=3, early_stopping_rounds=5)
    bundle = fit.model.save(tmp_path / "bundle")
    assert sorted(p.name for p in bundle.iterdir()) == sorted([file, "omg_model.json"])
    meta = json.loads((bundle / "omg_model.json").read_text())
    assert meta["classes"] == ["<=50K", ">50K"] and meta["feature_names"] == data.feature_names
    loaded = OmgModel.load(bundle)
    X = data.frames["test"]
    assert np.allclose(loaded.predict_scores(X), fit.model.predict_scores(X), atol=1e-6)
    assert list(loaded.predict(X[:3])) == list(fit.model.predict(X[:3]))
    if model_type == "mlp":
        import torch

        state = torch.load(bundle / file, weights_only=True)  # a plain state dict, no pickled code
        assert {"x_mean", "x_std", "net.0.weight"} <= set(state)
        assert meta["architecture"]["hidden_sizes"] == [16] and meta["architecture"]["n_features"] == 7


class HomeMadeScaler(StandardScaler):
    """A type outside scikit-learn: its skops file must not be loaded blindly."""


def test_skops_file_with_foreign_types_is_refused(data, tmp_path):
    import skops.io as sio

    from omgmagics.modeling.models import OmgModel, fit_model, get_model_type

    est = HomeMadeScaler().fit(data.X["train"])
    model = OmgModel("sklearn", "custom", est, task="classification",
                     feature_names=data.feature_names, classes=data.classes)
    with pytest.raises(DataError, match=re.escape(
            "The HomeMadeScaler model holds types the kit does not load back: "
            "tests.test_modeling_formats.HomeMadeScaler. Use one of the kit's model types.")):
        model.save(tmp_path / "refused")
    assert not (tmp_path / "refused" / "model.skops").exists()
    # A model folder whose file was replaced afterwards (as an attacker would): refused on load.
    fit = fit_model(get_model_type("decision_tree", "classification"), {}, data, metric="roc_auc",
                    seed=0)
    bundle = fit.model.save(tmp_path / "bundle")
    sio.dump(est, bundle / "model.skops")
    with pytest.raises(DataError, match=re.escape(
            "holds types outside the kit's scikit-learn allow-list, so it was not loaded: "
            "tests.test_modeling_formats.HomeMadeScaler.")):
        OmgModel.load(bundle)


@pytest.mark.parametrize("payload", ["builtins.eval", "builtins.exec", "os.system"])
def test_skops_file_naming_a_builtin_callable_is_refused(data, tmp_path, payload):
    """H1: a prefix list let `builtins.eval` through; the allow-list is exact."""
    import importlib

    import skops.io as sio

    from omgmagics.modeling.models import OmgModel, fit_model, get_model_type

    fit = fit_model(get_model_type("decision_tree", "classification"), {}, data, metric="roc_auc",
                    seed=0)
    bundle = fit.model.save(tmp_path / "bundle")
    OmgModel.load(bundle)  # the honest file loads
    module, _, name = payload.rpartition(".")
    sio.dump({"tree": fit.model.estimator, "f": getattr(importlib.import_module(module), name)},
             bundle / "model.skops")
    assert payload in {t.replace("posix.", "os.") for t in sio.get_untrusted_types(
        file=bundle / "model.skops")}
    with pytest.raises(DataError, match=re.escape(
            "holds types outside the kit's scikit-learn allow-list, so it was not loaded: ")):
        OmgModel.load(bundle)


def test_every_sklearn_model_type_saves_and_loads_within_the_allow_list(data, tmp_path):
    from omgmagics.modeling.models import MODEL_TYPES, OmgModel, fit_model, get_model_type

    names = [m.name for m in MODEL_TYPES.values()
             if m.family == "sklearn" and "classification" in m.classes]
    for name in names:
        fit = fit_model(get_model_type(name, "classification"), {}, data, metric="roc_auc", seed=0)
        loaded = OmgModel.load(fit.model.save(tmp_path / name))
        np.testing.assert_allclose(loaded.predict_proba(data.frames["test"]),
                                   fit.model.predict_proba(data.frames["test"]))


def test_bundle_input_checks(data, tmp_path):
    from omgmagics.modeling.models import OmgModel, fit_model, get_model_type

    fit = fit_model(get_model_type("logistic_regression", "classification"), {}, data,
                    metric="roc_auc", seed=0)
    with pytest.raises(DataError, match=re.escape(
            "The input lacks 1 feature column(s) the model was trained on: x3.")):
        fit.model.predict(data.frames["test"].drop(columns=["x3"]))
    with pytest.raises(DataError, match=re.escape("is not a model saved by omg (no omg_model.json)")):
        OmgModel.load(tmp_path)


def test_regression_project_with_lightgbm_and_a_tuned_mlp(tmp_path):
    from omgmagics.modeling.baseline import run_baselines
    from omgmagics.modeling.evaluate import evaluate_model
    from omgmagics.modeling.train import train_model
    from omgmagics.modeling.tune import tune_model

    root = make_project(tmp_path / "reg", task="regression", threshold=None, n=300)
    project = Project.at(root)
    board = run_baselines(project, cv=2).value
    assert board.iloc[0]["model"] != "dummy" and "rmse mean" in board
    trained = train_model(project, None, overrides={
        "model": "lightgbm", "name": "lgb", "early_stopping_rounds": 10,
        "params": {"n_estimators": 50, "num_leaves": 8, "min_child_samples": 5}})
    assert trained.summary["model"] == "lightgbm" and "learning_curve" in trained.figures
    space = tmp_path / "space.yaml"
    space.write_text("epochs: 4\nhidden_sizes: {choices: [[8], [16, 8]]}\nbatch_size: 64\n")
    tuned = tune_model(project, "mlp", trials=2, space_file=space)
    assert tuned.summary["trials"] == 2 and tuned.value.family == "mlp"
    assert tuned.data["best_params"]["hidden_sizes"] in ([8], [16, 8])
    report = evaluate_model(project, "lgb", comprehensive=True, robustness=True, n_bootstrap=20,
                            shap_rows=30)
    ev = report.data
    assert ev["task"] == "regression" and {"rmse", "mae", "r2"} == set(ev["metrics"])
    assert "residuals" in report.figures and "confusion_matrix" not in ev
    assert ev["vs_baseline"]["test"] == "paired bootstrap"
    assert ev["robustness"]["curves"]["noise"][0][0] == 0.0


def test_metric_scores_for_multiclass_and_binary():
    from omgmagics.metrics import better, score

    y = np.array([0, 1, 2, 2, 1, 0])
    proba = np.eye(3)[[0, 1, 2, 1, 1, 0]] * 0.8 + 0.2 / 3
    assert score("accuracy", y, proba, "multiclass") == pytest.approx(5 / 6)
    assert score("roc_auc", y, proba, "multiclass") > 0.8
    assert score("f1_macro", y, proba, "multiclass") == pytest.approx(0.8222, abs=1e-3)
    assert np.isnan(score("roc_auc", np.ones(4), np.full(4, 0.7)))
    assert score("rmse", np.array([1.0, 3.0]), np.array([2.0, 2.0]), "regression") == 1.0
    assert better("rmse", 1.0, 2.0) and better("roc_auc", 0.9, 0.8)


def test_mcnemar_and_paired_bootstrap():
    from omgmagics.modeling.stats import mcnemar, paired_bootstrap, significance

    y = np.array([1] * 60 + [0] * 60)
    a = y.copy()
    b = y.copy()
    b[:30] = 1 - b[:30]  # B wrong on 30 rows A gets right
    m = mcnemar(y, a, b)
    assert (m["a_only"], m["b_only"], m["method"]) == (30, 0, "chi-square, continuity corrected")
    assert m["p_value"] < 1e-6
    small = mcnemar(y, a, np.where(np.arange(120) < 3, 1 - y, y))
    assert small["method"] == "exact binomial" and small["p_value"] == pytest.approx(0.25)
    rng = np.random.default_rng(0)
    truth = rng.normal(size=200)
    good, bad = truth + rng.normal(scale=0.1, size=200), truth + rng.normal(scale=1.0, size=200)
    boot = paired_bootstrap("rmse", truth, good, bad, "regression", n_boot=200)
    assert boot["difference"] > 0 and boot["p_value"] == 0.0 and boot["ci_low"] > 0
    sig = significance("roc_auc", "classification", y, a.astype(float), b.astype(float), 100)
    assert sig["significant"] and sig["test"] == "McNemar"
    assert not significance("roc_auc", "classification", y, b.astype(float), a.astype(float),
                            100)["significant"]


@pytest.mark.parametrize("file", ["/etc/passwd", "../outside.ubj", "", None])
def test_a_model_file_path_outside_its_folder_is_refused(data, tmp_path, file):
    """H2: omg_model.json could name an absolute `file` anywhere on the machine."""
    from omgmagics.modeling.models import OmgModel, fit_model, get_model_type

    fit = fit_model(get_model_type("decision_tree", "classification"), {}, data, metric="roc_auc",
                    seed=0)
    folder = fit.model.save(tmp_path / "bundle")
    meta = json.loads((folder / "omg_model.json").read_text())
    meta["file"] = file
    (folder / "omg_model.json").write_text(json.dumps(meta))
    with pytest.raises(DataError, match=re.escape("The model file named by omg_model.json in ")):
        OmgModel.load(folder)


def test_inside():
    from omgmagics.io import inside

    assert inside("/tmp/b", "model/x.ubj", "x") == Path("/tmp/b/model/x.ubj").resolve()
    with pytest.raises(DataError, match=re.escape("points outside it ('a/../../c')")):
        inside("/tmp/b", "a/../../c", "The path")
    with pytest.raises(DataError, match=re.escape("must be a relative path inside it, got '/c'")):
        inside("/tmp/b", "/c", "The path")

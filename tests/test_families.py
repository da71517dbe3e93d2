"""Model families are objects: each owns its fitting, step metric, file and optimization hooks; a
project can register one of its own; an unknown family in a model file is refused."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from omgmagics.errors import DataError
from omgmagics.modeling.families import FAMILIES, get_family, register_family
from omgmagics.modeling.families.sklearn import SklearnFamily
from omgmagics.project import Project
from tests.helpers.modeling import make_project


@pytest.fixture(scope="module")
def regression(tmp_path_factory):
    from omgmagics.modeling.data import load_model_data

    root = make_project(tmp_path_factory.mktemp("fam") / "reg", task="regression", n=400)
    return load_model_data(Project.at(root))


def test_the_registry_holds_the_five_families_with_what_differs():
    assert sorted(FAMILIES) == ["ensemble", "lightgbm", "mlp", "sklearn", "xgboost"]
    assert {n: (f.step, f.tune_patience, f.quantize_with, f.prunable, f.baseline)
            for n, f in FAMILIES.items()} == {
        "xgboost": ("boosting round", 50, "onnx", False, False),
        "lightgbm": ("boosting round", 50, "onnx", False, False),
        "sklearn": ("boosting round", None, "onnx", False, True),
        "mlp": ("epoch", 10, "torch", True, False),
        "ensemble": ("member", None, None, False, False)}
    # the brief's metric, or the library's stand-in, with the direction it moves in
    assert get_family("xgboost").eval_metric("roc_auc", "classification", 2) == ("auc", True)
    assert get_family("lightgbm").eval_metric("roc_auc", "classification", 4) == \
        ("multi_logloss", False)
    assert get_family("mlp").eval_metric("rmse", "regression", 0) == ("rmse", False)
    assert get_family("mlp").eval_metric("f1_macro", "classification", 3) == ("f1_macro", True)


def test_tuning_an_mlp_regressor_reports_its_rmse_in_the_studys_direction(regression):
    """The MLP reports the brief's metric per epoch; a minimised RMSE must reach the pruner as it is
    (it was negated, so the pruner kept the worst trials and pruned the best)."""
    import optuna

    from omgmagics.modeling.models import get_model_type
    from omgmagics.modeling.tune import make_objective

    mt = get_model_type("mlp", "regression")
    space = {"epochs": {"fixed": 4}, "hidden_sizes": {"fixed": [8]},
             "learning_rate": {"type": "float", "low": 1e-3, "high": 1e-2, "step": None, "log": True}}
    objective = make_objective(mt, space, regression, metric="rmse",
                               seed=0, early_stopping_rounds=None, model_threads=1)
    study = optuna.create_study(direction="minimize", pruner=optuna.pruners.NopPruner())
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study.optimize(objective, n_trials=1)
    steps = study.trials[0].intermediate_values
    assert sorted(steps) == [1, 2, 3, 4]
    assert all(v > 0 for v in steps.values())  # an RMSE, not its negation
    assert min(steps.values()) == pytest.approx(study.trials[0].value, rel=1e-6)


def test_a_model_file_of_an_unknown_family_is_refused_before_anything_is_read(regression,
                                                                             tmp_path):
    from omgmagics.modeling.models import OmgModel, fit_model, get_model_type

    fit = fit_model(get_model_type("ridge", "regression"), {}, regression, metric="rmse", seed=0)
    folder = fit.model.save(tmp_path / "m")
    meta = json.loads((folder / "omg_model.json").read_text())
    (folder / "omg_model.json").write_text(json.dumps({**meta, "family": "pickle"}))
    with pytest.raises(DataError, match=re.escape(
            "Unknown model family 'pickle'. Available: ensemble, lightgbm, mlp, sklearn, xgboost. The "
            "model was saved by another version of omg or by hand.")):
        OmgModel.load(folder)


class ClippedRidgeFamily(SklearnFamily):
    """A project's own family: a scikit-learn regressor whose predictions are clipped at zero."""

    name = "clipped"
    kind = "clipped regressor"

    def predict_scores(self, model, X):  # noqa: ANN001, ANN201
        return np.clip(super().predict_scores(model, X), 0, None)


def test_a_project_can_register_a_family_of_its_own(regression, tmp_path):
    from omgmagics.modeling.models import (
        MODEL_TYPES,
        ModelType,
        OmgModel,
        fit_model,
        register_model_type,
    )

    register_family(ClippedRidgeFamily())
    mt = register_model_type(ModelType("clipped_ridge", "clipped",
                                       {"regression": "sklearn.linear_model.Ridge"}))
    try:
        fit = fit_model(mt, {"alpha": 2.0}, regression, metric="rmse", seed=0)
        raw = fit.model.estimator.predict(regression.X["test"])
        assert raw.min() < 0  # the data reaches below zero, so the clip is visible
        scores = fit.model.predict_scores(regression.X["test"])
        assert scores.min() == 0 and np.allclose(scores[raw > 0], raw[raw > 0])
        folder = fit.model.save(tmp_path / "clipped")
        loaded = OmgModel.load(folder)
        assert loaded.family == "clipped" and loaded.params["alpha"] == 2.0
        assert np.allclose(loaded.predict_scores(regression.X["test"]), scores)
        assert json.loads((folder / "omg_model.json").read_text())["file"] == "model.skops"
    finally:
        MODEL_TYPES.pop("clipped_ridge", None)
        FAMILIES.pop("clipped", None)

"""Greedy ensemble selection (issue 19): the weights, the blend as one model (saved, refused when
tampered with, compared, evaluated, optimized and packaged like any other), and tuning several model
types in one call, on a binary, a multi-class and a regression project."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest

from omgmagics.errors import DataError, UsageError
from omgmagics.modeling.ensemble import build_ensemble, greedy_weights
from omgmagics.modeling.models import OmgModel
from omgmagics.project import Project
from tests.helpers.modeling import make_project


def test_greedy_selection_blends_models_that_are_right_on_different_rows():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, size=400)
    half = np.arange(400) < 200
    noise = rng.random(400)
    first = np.where(half, 0.2 + 0.6 * y, noise)  # right on the first half, noise on the second
    second = np.where(half, noise, 0.2 + 0.6 * y)
    weights, trace = greedy_weights([first, second], y, "roc_auc", "classification", size=10)
    assert weights[0] > 0 and weights[1] > 0 and sum(weights) == pytest.approx(1.0)
    alone = max(trace[0], 0)
    assert trace[-1] > alone  # the blend beats either model alone on these rows


def test_greedy_selection_keeps_one_model_when_no_blend_is_better():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, size=300)
    perfect, noise = 0.1 + 0.8 * y, rng.random(300)
    weights, trace = greedy_weights([noise, perfect], y, "roc_auc", "classification")
    assert weights == [0.0, 1.0] and trace == [1.0]
    with pytest.raises(UsageError, match=re.escape("--size must be at least 1, got 0.")):
        greedy_weights([noise], y, "roc_auc", "classification", size=0)


@pytest.fixture(scope="module")
def regression(tmp_path_factory):
    """A regression project with xgboost and lightgbm tuned in one call, and their ensemble."""
    from omgmagics.modeling.tune import tune_models

    root = make_project(tmp_path_factory.mktemp("ens") / "reg", task="regression", n=900)
    project = Project.at(root)
    tuned = tune_models(project, ["xgboost", "lightgbm"], trials=4, timeout=120)
    return {"root": root, "project": project, "tuned": tuned, "ensemble": build_ensemble(project)}


def test_several_model_types_are_tuned_in_one_call(regression):
    table = regression["tuned"].tables["models"]
    assert table["model"].tolist() == ["xgboost", "lightgbm"]
    assert table["mlflow run"].tolist() == ["tuned-xgboost", "tuned-lightgbm"]
    assert (table["completed"] + table["pruned"] == 4).all()
    best = table.loc[table["best val rmse"].idxmin(), "model"]
    assert regression["tuned"].summary["best"] == best
    assert regression["tuned"].value.model_type == best
    project = regression["project"]
    from omgmagics.modeling.tune import tune_models

    with pytest.raises(UsageError, match=re.escape("--model names a model type twice: "
                                                   "xgboost,xgboost.")):
        tune_models(project, ["xgboost", "xgboost"])
    with pytest.raises(UsageError, match=re.escape(
            "--name names one run, but --model lists 2 model types; tune them one at a time to name "
            "each.")):
        tune_models(project, ["xgboost", "lightgbm"], name="mine")


def test_the_ensemble_is_one_model_logged_compared_and_evaluated(regression):
    from omgmagics.modeling.compare import compare_runs
    from omgmagics.modeling.data import load_model_data
    from omgmagics.modeling.evaluate import evaluate_model
    from omgmagics.modeling.tracking import connect

    rep, project = regression["ensemble"], regression["project"]
    weights = rep.data["weights"]
    assert set(weights) == {"tuned-xgboost", "tuned-lightgbm"}
    assert sum(weights.values()) == pytest.approx(1.0)
    # two members with weight: a blend that scores better on validation than either alone
    assert rep.value is not None and all(w > 0 for w in weights.values())
    table = rep.tables["members"]
    assert rep.summary["val rmse (ensemble)"] < table["val rmse alone"].min()
    run = connect(project).find_run("ensemble")
    assert run.data.tags["omg.kind"] == "ensemble"
    assert run.data.tags["omg.members"].split(",") == rep.value.params["members"]
    # the bundle reloads to the same predictions, each member in its own safe format
    data = load_model_data(project, None)
    back = OmgModel.load(rep.value.save(regression["root"] / "bundle"))
    assert np.array_equal(back.predict_scores(data.X["test"]), rep.value.predict_scores(data.X["test"]))
    files = sorted(p.name for p in (regression["root"] / "bundle" / "members").glob("*/*")
                   if p.name != "omg_model.json")
    assert files == ["model.txt", "model.ubj"]
    # compare takes every candidate of the feature set by default, the ensemble among them
    cmp = compare_runs(project, n_bootstrap=50)
    assert set(cmp.tables["runs"]["run"]) == {"tuned-xgboost", "tuned-lightgbm", "ensemble"}
    assert cmp.summary["best"] == "ensemble"  # better on test too, on this table
    ev = evaluate_model(project, comprehensive=True, fairness=True, n_bootstrap=20, shap_rows=20)
    assert ev.summary["model"] == "ensemble (models:/demo-model@champion)"
    assert set(ev.data["shap"]["global"]) == set(data.feature_names)


def test_an_ensemble_passes_optimization_unchanged_and_packages(regression, run_cli):
    from omgmagics.optim.quantize import quantize_model

    root = regression["root"]
    project = regression["project"]
    out = quantize_model(project, "ensemble", export="auto", output="models/optimized/ens")
    assert out.title == "Kept ensemble as it is (written to ens)"
    assert out.messages[0] == ("Optimization did not apply: the ensemble has no single torch module "
                               "or ONNX graph to optimize")
    with pytest.raises(UsageError, match=re.escape(
            "Cannot quantize ensemble: the ensemble has no single torch module or ONNX graph. Use "
            "--export auto to keep it as it is.")):
        quantize_model(project, "ensemble", export="onnx")
    code, text, err = run_cli(["deploy", "package", "--model", "models/optimized/ens", "--format",
                               "json"], cwd=root)
    assert code == 0, err
    bundle = root / json.loads(text)["artifacts"]["bundle"]  # an absolute path stays as it is
    requirements = (bundle / "requirements.txt").read_text()
    assert "xgboost==" in requirements and "lightgbm==" in requirements
    code, text, err = run_cli(["deploy", "package", "--verify", str(bundle)], cwd=root)
    assert code == 0, err


def test_a_tampered_ensemble_is_refused(regression, tmp_path):
    folder = regression["ensemble"].value.save(tmp_path / "ens")
    nested = regression["ensemble"].value.save(tmp_path / "nested")
    members = folder / "members.json"
    spec = json.loads(members.read_text())

    def refused(change, message):
        members.write_text(json.dumps(change(json.loads(json.dumps(spec)))))
        with pytest.raises(DataError, match=re.escape(message)):
            OmgModel.load(folder)

    def escape(s):
        s["members"][0]["path"] = "../../elsewhere"
        return s

    def negative(s):
        s["members"][0]["weight"] = -1
        return s

    def uneven(s):
        s["members"][0]["weight"] = 0.9
        s["members"][1]["weight"] = 0.9
        return s

    refused(escape, "A member path of members.json")
    refused(negative, "members.json: a member's weight must be a number >= 0, got -1.")
    refused(uneven, "members.json: the members' weights sum to 1.8, not 1.")
    refused(lambda s: {"members": s["members"][:1]}, "lists no members (an ensemble needs at least "
                                                      "two).")
    members.write_text(json.dumps(spec))
    # a member that is an ensemble itself
    shutil.copytree(nested, folder / "members" / "m0", dirs_exist_ok=True)
    with pytest.raises(DataError, match=re.escape("is itself an ensemble; ensembles of ensembles "
                                                  "are refused.")):
        OmgModel.load(folder)


@pytest.mark.parametrize("classes", [2, 3])
def test_classification_projects_blend_or_say_why_not(tmp_path, classes, run_cli):
    from omgmagics.modeling.tune import tune_models

    root = make_project(tmp_path / "p", classes=classes, n=900)
    project = Project.at(root)
    tune_models(project, ["xgboost", "lightgbm"], trials=3)
    code, text, err = run_cli(["train", "ensemble", "--format", "json"], cwd=root)
    assert code == 0, err
    rep = json.loads(text)
    weights = rep["data"]["weights"]
    assert set(weights) == {"tuned-xgboost", "tuned-lightgbm"}
    assert sum(weights.values()) == pytest.approx(1.0)
    metric = "f1_macro" if classes > 2 else "roc_auc"
    if sum(w > 0 for w in weights.values()) == 1:
        assert rep["title"] == "Ensemble of 2 runs: tried, not used" and rep["data"]["run_id"] is None
        assert rep["messages"][0].startswith("Tried, not used: greedy selection kept tuned-")
    else:
        assert rep["summary"][f"val {metric} (ensemble)"] > max(
            rep["summary"][k] for k in rep["summary"] if k.startswith(f"val {metric} (best alone"))
    code, text, err = run_cli(["train", "ensemble", "--experiments", "tuned-xgboost"], cwd=root)
    assert code == 2 and ("An ensemble needs at least two trained or tuned runs of one feature set; "
                          "found 1.") in err
    code, text, err = run_cli(["train", "ensemble", "--size", "0"], cwd=root)
    assert code == 2 and "--size must be at least 1, got 0." in err

"""label: labeling functions, majority vote and the Dawid-Skene label model, coverage/conflict table."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from omgmagics.dataprep.label import (
    LabelingFunction,
    dawid_skene,
    label_frame,
    majority_vote,
    vote_matrix,
)
from omgmagics.dataprep.labeling import ABSTAIN, labeling_function
from omgmagics.errors import ConfigError, DataError


def _noisy_votes(n=4000, accuracies=(0.95, 0.9, 0.65, 0.6, 0.55), coverage=0.7, seed=0):
    """Votes of independent functions with known accuracies on a known binary truth."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 2, n)
    L = np.full((n, len(accuracies)), -1)
    for j, acc in enumerate(accuracies):
        voted = rng.random(n) < coverage
        right = rng.random(n) < acc
        L[voted, j] = np.where(right[voted], truth[voted], 1 - truth[voted])
    return L, truth


def test_dawid_skene_learns_accuracies_and_beats_majority_vote():
    L, truth = _noisy_votes()
    ds = dawid_skene(L, 2)  # unsupervised: no gold labels
    np.testing.assert_allclose(ds["accuracy"], [0.95, 0.9, 0.65, 0.6, 0.55], atol=0.04)
    voted = (L >= 0).any(1)
    ds_acc = (ds["posterior"].argmax(1)[voted] == truth[voted]).mean()
    mv, _ = majority_vote(L, 2)
    mv_acc = (mv[voted] == truth[voted]).mean()
    assert ds_acc > mv_acc + 0.02  # two good functions outweigh three noisy ones


def test_gold_labels_anchor_the_model():
    L, truth = _noisy_votes(seed=1)
    gold = np.where(np.arange(len(truth)) < 1000, truth, -1)
    ds = dawid_skene(L, 2, gold=gold)
    assert ds["semi_supervised"] is True
    np.testing.assert_allclose(ds["accuracy"], [0.95, 0.9, 0.65, 0.6, 0.55], atol=0.04)


def test_majority_vote_abstains_where_nobody_votes():
    L = np.array([[0, 0, 1], [1, -1, -1], [-1, -1, -1]])
    pred, conf = majority_vote(L, 2)
    assert pred.tolist() == [0, 1, -1] and conf.round(2).tolist() == [0.67, 1.0, 0.0]


@pytest.fixture
def people() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    n = 600
    hours = rng.integers(10, 70, n)
    rich = (hours > 45) ^ (rng.random(n) < 0.1)
    return pd.DataFrame({"hours": hours, "gain": np.where(rich, rng.integers(0, 9000, n), 0),
                         "y": np.where(rich, "high", "low")})


def _lfs():
    @labeling_function()
    def long_hours(df):
        return np.where(df["hours"] > 50, "high", ABSTAIN)

    @labeling_function(name="short hours")
    def short(df):
        return np.where(df["hours"] < 35, "low", None)

    @labeling_function(rowwise=True)
    def gains(row):
        return "high" if row["gain"] > 1000 else ABSTAIN

    return [LabelingFunction(f._omg_labeling_function["name"], f, f._omg_labeling_function["rowwise"])
            for f in (long_hours, short, gains)]


def test_label_frame_reports_coverage_conflict_accuracy_and_hidden_truth(people):
    report = label_frame(people, _lfs(), "y", hide_share=0.3, seed=7)
    out = report.value
    table = report.tables["labeling functions"].set_index("function")
    assert list(table.index) == ["long_hours", "short hours", "gains"]
    assert table.loc["short hours", "votes for"] == "low"
    assert 0 < table.loc["gains", "coverage"] < 1 and table.loc["long_hours", "accuracy (gold)"] > 0.8
    assert {"overlap", "conflict", "gold votes", "learned accuracy"} <= set(table.columns)
    s = report.summary
    assert s["hidden labels"] == 180 and s["agreement with hidden truth"] > 0.8
    assert s["labelled by the model"] + s["left unlabelled (dropped)"] == 180
    assert len(out) == 600 - s["left unlabelled (dropped)"]
    assert set(out["label_source"]) == {"gold", "weak"} and out["y"].notna().all()
    assert out["row_id"].is_unique
    models = report.tables["label models"]
    assert list(models["label model"]) == ["majority vote", "Dawid-Skene"]


def test_bad_labeling_functions_are_named(people):
    def wrong_class(df):
        return np.where(df["hours"] > 50, "HIGH", None)

    with pytest.raises(DataError, match=re.escape(
            "Labeling function wrong_class voted ['HIGH'], which is not a class of the target (high, low). "
            "Return one of these or None to abstain.")):
        label_frame(people, [LabelingFunction("wrong_class", wrong_class)], "y")

    def broken(df):
        return df["hourz"]

    with pytest.raises(DataError, match=re.escape("Labeling function broken failed: KeyError: 'hourz'.")):
        label_frame(people, [LabelingFunction("broken", broken)], "y")

    with pytest.raises(DataError, match=re.escape(
            "Labeling function short must return one vote per row (600), got 3.")):
        label_frame(people, [LabelingFunction("short", lambda df: [1, 2, 3])], "y")
    assert vote_matrix(pd.DataFrame({"a": ["x", None]}), ["x", "y"]).tolist() == [[0], [-1]]


def test_label_verb_uses_the_projects_exported_functions(demo_project, run_cli):
    code, out, err = run_cli(["data", "label", "--hide-share", "0.2"], cwd=demo_project)
    assert code == 0, err
    assert "Weak supervision on 'income'" in out and "lf_young" in out
    meta = json.loads((demo_project / "data" / "processed" / "labeled.json").read_text())
    assert meta["functions"] == "projectlib.features" and meta["hide_share"] == 0.2
    labeled = pd.read_parquet(demo_project / "data" / "processed" / "labeled.parquet")
    assert labeled["label_source"].eq("weak").sum() > 150
    code, out, err = run_cli(["data", "label", "--functions", "projectlib.labels"], cwd=demo_project)
    assert code == 1 and "Cannot import the labeling functions module 'projectlib.labels'" in err


def test_a_module_without_labeling_functions_is_an_error(tmp_path):
    from omgmagics.dataprep.label import load_labeling_functions

    (tmp_path / "empty.py").write_text("def helper(df):\n    return df\n")
    with pytest.raises(DataError, match=re.escape("No labeling functions in omg_user_empty.")):
        load_labeling_functions(str(tmp_path / "empty.py"))
    with pytest.raises(ConfigError, match="does not exist"):
        load_labeling_functions(str(tmp_path / "nope.py"))

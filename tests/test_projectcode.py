"""The project code ``omg ml init`` generates from a table (``omgmagics.projectcode``): sizes derived
from the data, feature and labeling functions over any column names, the handler of each task, the
phase 5 shift, and the edit of the notebooks' parameters."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from omgmagics import projectcode as pc


def _run(cell: str, df: pd.DataFrame) -> dict:
    """Execute a generated cell (its ``#| export`` line is a comment) with `df` in scope."""
    scope: dict = {"df": df}
    exec(compile(pc.IMPORTS + cell, "<generated>", "exec"), scope)
    return scope


def test_sizes_follow_the_table():
    demo = pc.derive_sizes(48_842, 14, "classification", [37_155, 11_687])
    assert (demo["n_trials"], demo["cv_folds"], demo["per_day"], demo["min_labels"],
            demo["canary_window"], demo["eval_min_labels"]) == (30, 5, 300, 50, 100, 50)
    tiny = pc.derive_sizes(150, 4, "classification", [50, 50, 50])
    assert (tiny["n_trials"], tiny["cv_folds"], tiny["per_day"], tiny["min_labels"],
            tiny["canary_window"], tiny["eval_min_labels"]) == (50, 5, 100, 50, 20, 50)
    rare = pc.derive_sizes(400, 10, "classification", [397, 3])
    assert rare["cv_folds"] == 3 and rare["smallest_class_rows"] == 3
    huge = pc.derive_sizes(2_000_000, 30, "regression", [])
    assert huge["n_trials"] == 10 and huge["cv_folds"] == 5 and huge["smallest_class_rows"] is None


@pytest.mark.parametrize("name,expected", [
    ("weight (kg)", "weight_kg"), ("2nd_address", "c2nd_address"), ("région", "region"),
    ("placed.at", "placed_at"), ("%%", "col"), ("od280/od315", "od280_od315")])
def test_identifier_from_any_column_name(name, expected):
    assert pc.identifier(name) == expected


def _odd_table(n: int = 600, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    size = rng.gamma(2.0, 3.0, n)
    df = pd.DataFrame({
        "size (m²)": size.round(2),
        "2nd.size": (size * 1.5 + rng.normal(0, 0.5, n)).clip(0.1).round(2),
        "colour 'x'": rng.choice(["red", "blue", "green"], n),
        "when": pd.date_range("2024-01-01", periods=n, freq="7h").strftime("%Y-%m-%d %H:%M"),
    })
    df["label"] = np.where(df["size (m²)"] > 8, "big", "small")
    return df


def test_feature_functions_run_on_odd_column_names():
    df = _odd_table()
    cell, preview, notes = pc.feature_code(df, ["size (m²)", "2nd.size", "colour 'x'"])
    scope = _run(cell, df)
    ratio = scope["size_m2_per_2nd_size"](df)
    assert ratio.iloc[0] == pytest.approx(df["size (m²)"].iloc[0] / df["2nd.size"].iloc[0])
    assert "size_m2_per_2nd_size" in preview and len(notes) == 1
    table = eval(preview.splitlines()[-1], scope)
    assert list(table.columns) == ["size_m2_per_2nd_size"]


def test_no_feature_function_without_a_correlated_pair():
    df = pd.DataFrame({"a": np.arange(50) % 3, "b": ["x", "y"] * 25})
    cell, preview, notes = pc.feature_code(df, ["a", "b"])
    assert cell.startswith("# No feature function was generated") and notes == []
    assert preview == ('df = project.load_source_data(sample_frac)\n'
                       'print("No feature functions defined above.")')


def test_mined_labeling_functions_are_precise_on_held_out_rows():
    df = _odd_table(2000, seed=1)
    df.loc[df.sample(frac=0.3, random_state=0).index, "label"] = np.nan
    rules, note = pc.mine_labeling_functions(df, "label", ["size (m²)", "2nd.size", "colour 'x'"])
    assert rules and note.startswith(f"{len(rules)} rules from")
    assert {r["column"] for r in rules} <= {"size (m²)", "2nd.size"}  # colour carries no signal
    assert all(r["precision"] > 0.8 for r in rules)
    cell = pc.labeling_code(rules, 1400, note)
    scope = _run(cell, df)
    lfs = [v for k, v in scope.items() if k.startswith("lf_")]
    labeled = df[df["label"].notna()]
    for lf in lfs:
        votes = pd.Series(lf(labeled), index=labeled.index)
        voted = votes.notna()
        assert (votes[voted] == labeled.loc[voted, "label"]).mean() > 0.8


def test_too_few_labels_to_mine():
    df = _odd_table(50)
    rules, note = pc.mine_labeling_functions(df, "label", ["size (m²)"])
    assert rules == [] and note == "only 50 labeled rows: too few to mine labeling functions from"
    assert pc.labeling_code(rules, 50, note).startswith(
        "# No labeling function was generated: only 50 labeled rows")


@pytest.mark.parametrize("kind,scores,classes,expected", [
    ("binary", np.array([0.2, 0.7]), ["no", "yes"],
     [{"prediction": "no", "score": 0.2}, {"prediction": "yes", "score": 0.7}]),
    ("multiclass", np.array([[0.1, 0.6, 0.3]]), [0, 1, 2],
     [{"prediction": 1, "score": None, "probabilities": {"0": 0.1, "1": 0.6, "2": 0.3}}]),
    ("regression", np.array([3.5]), None, [{"prediction": 3.5, "score": None}]),
])
def test_handler_of_each_task(kind, scores, classes, expected):
    scope: dict = {}
    exec(compile(pc.handler_code(kind, positive="yes"), "<handler>", "exec"), scope)
    assert scope["preprocess"]([{"a": 1}]) == [{"a": 1}]
    task = "regression" if kind == "regression" else "classification"
    assert scope["postprocess"](scores, classes, task) == expected


def test_shift_prefers_columns_whose_range_holds_zero():
    rng = np.random.default_rng(0)
    n = 500
    df = pd.DataFrame({"gain": np.where(rng.random(n) < 0.7, 0, rng.gamma(2, 500, n)),
                       "weight (kg)": rng.gamma(3, 2, n) + 1, "zone": rng.choice(["a", "b"], n)})
    df["y"] = df["gain"] + 100 * df["weight (kg)"] + rng.normal(0, 1, n)
    shift, text = pc.shift_spec(df, "y", ["gain", "weight (kg)", "zone"])
    assert shift == "gain*0.8,'weight (kg)'*0.8"
    assert text == "`gain` falls by a fifth and `weight (kg)` falls by a fifth"


def test_set_parameters_keeps_comments_and_refuses_unknown_names():
    cell = 'seed = 42\nk_features = 40  # kept\nshift = ""  # injected'
    out = pc.set_parameters(cell, {"k_features": "auto", "shift": "a*0.8,'b c'*0.8"})
    assert out == 'seed = 42\nk_features = "auto"  # kept\nshift = "a*0.8,\'b c\'*0.8"  # injected'
    with pytest.raises(KeyError, match="parameter 'nope' is not in the parameters cell"):
        pc.set_parameters(cell, {"nope": 1})

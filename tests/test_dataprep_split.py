"""split (stratified / group / time, determinism, leakage checks) and augment (training split only)."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from omgmagics.dataprep.augment import augment_frame
from omgmagics.dataprep.split import leakage_checks, split_frame, split_report
from omgmagics.errors import DataError, UsageError


@pytest.fixture
def table() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 1000
    return pd.DataFrame({
        "user": rng.integers(0, 120, n),
        "day": pd.Timestamp("2025-01-01") + pd.to_timedelta(rng.integers(0, 300, n), unit="D"),
        "x": rng.normal(size=n).round(3),
        "colour": rng.choice(["red", "green", "blue"], n),
        "y": np.where(rng.random(n) < 0.2, "yes", "no"),
    })


def test_stratified_split_is_deterministic_and_balanced(table):
    a = split_frame(table, "y", (0.7, 0.15, 0.15), seed=3)
    b = split_frame(table, "y", (0.7, 0.15, 0.15), seed=3)
    c = split_frame(table, "y", (0.7, 0.15, 0.15), seed=4)
    assert all(a[k].equals(b[k]) for k in a) and not a["test"].equals(c["test"])
    assert [len(a[k]) for k in ("train", "val", "test")] == [700, 150, 150]
    ids = pd.concat([a[k]["row_id"] for k in a])
    assert sorted(ids) == list(range(1000))  # stable ids: each input row once
    shares = {k: (v["y"] == "yes").mean() for k, v in a.items()}
    assert max(shares.values()) - min(shares.values()) < 0.01


def test_duplicates_stay_in_one_split_so_no_leakage(table):
    dup = pd.concat([table, table.head(200)], ignore_index=True)  # 200 exact copies
    splits = split_frame(dup, "y", seed=1)
    checks = leakage_checks(splits, "y")
    assert checks["count"].sum() == 0 and set(checks["status"]) == {"pass"}
    # a naive split of the same rows leaks, and the check finds it
    naive = {"train": dup.iloc[:800].assign(row_id=range(800)),
             "val": dup.iloc[800:1000].assign(row_id=range(800, 1000)),
             "test": dup.iloc[1000:].assign(row_id=range(1000, 1200))}
    found = leakage_checks(naive, "y").set_index("check")
    assert found.loc["identical rows: test vs train", "count"] == 200
    assert found.loc["identical rows: test vs train", "status"] == "warn"
    assert "row_ids e.g. [1000, 1001, 1002]" in found.loc["identical rows: test vs train", "detail"]
    report = split_report(naive, "y", (0.67, 0.17, 0.16), "stratified", 0)
    assert report.summary["leakage"] == "warn"


def test_group_and_time_modes(table):
    g = split_frame(table, "y", group="user", seed=0)
    users = [set(g[k]["user"]) for k in ("train", "val", "test")]
    assert not (users[0] & users[1] or users[0] & users[2] or users[1] & users[2])
    t = split_frame(table, "y", time="day")
    assert t["train"]["day"].max() < t["val"]["day"].min() <= t["val"]["day"].max() < t["test"]["day"].min()
    checks = leakage_checks(t, "y", time="day")
    assert (checks.loc[checks["check"].str.startswith("time order"), "status"] == "pass").all()


def test_weak_labels_stay_in_training(table):
    weak = table.assign(label_source=np.where(np.arange(len(table)) < 300, "weak", "gold"))
    splits = split_frame(weak, "y", seed=0)
    assert splits["val"]["label_source"].eq("gold").all() and splits["test"]["label_source"].eq("gold").all()
    assert splits["train"]["label_source"].eq("weak").sum() == 300


@pytest.mark.parametrize("fractions, message", [
    ((0.7, 0.2, 0.2), "Split fractions must sum to 1, got 0.7 + 0.2 + 0.2 = 1.1. Adjust them, e.g. "
                      "--train 0.6 --val 0.2 --test 0.2."),
    ((1.0, 0.0, 0.0), "--train 1.0 must be between 0 and 1 (exclusive)"),
])
def test_bad_fractions(table, fractions, message):
    with pytest.raises(UsageError, match=re.escape(message)):
        split_frame(table, "y", fractions)


def test_bad_split_inputs(table):
    with pytest.raises(DataError, match=re.escape(
            "The target column 'colur' is not in the data. Did you mean: colour? Columns: user, day, x, "
            "colour, y.")):
        split_frame(table, "colur")
    with pytest.raises(DataError, match=re.escape(
            "No row has a value in the target 'y'. Check the target column, or label rows first")):
        split_frame(table.assign(y=None), "y")
    info: dict = {}
    splits = split_frame(table.assign(y=table["y"].where(table.index > 1)), "y", info=info)
    assert sum(map(len, splits.values())) == 998 and info["unlabeled_excluded"] == 2
    assert info["notes"][0] == ("2 rows have no 'y' value (unlabeled, and not labeled by `omg data "
                                "label`): they are kept out of train, val and test.")
    assert not {0, 1} & set(pd.concat(splits.values())["row_id"])  # row ids of the input kept
    rare = table.assign(y=np.where(table.index == 0, "rare", table["y"]))
    info = {}
    splits = split_frame(rare, "y", info=info)
    assert sum(map(len, splits.values())) == 1000
    assert info["notes"] == ["Too few rows to be in every split: 'rare' with 1 (class of y); rare "
                             "classes are stratified together, so a split may miss them."]


def test_smote_rebalances_training_rows_only(table):
    train = split_frame(table, "y", seed=0)["train"]
    report = augment_frame(train, "y", "smote", next_id=5000)
    out = report.value
    counts = report.tables["class counts"].set_index("class")
    assert counts.loc["yes", "after"] == counts.loc["no", "after"] == counts.loc["no", "before"]
    assert report.summary["method"] == "SMOTENC"  # a categorical column is present
    assert out.head(len(train)).equals(train)  # original rows unchanged, first
    new = out.iloc[len(train):]
    assert new["row_id"].tolist() == list(range(5000, 5000 + len(new)))
    assert set(new["colour"]) <= {"red", "green", "blue"} and new["y"].eq("yes").all()
    assert out.dtypes.equals(train.dtypes) and new["user"].dtype == np.int64
    under = augment_frame(train, "y", "random_under").value
    assert under["y"].value_counts().nunique() == 1 and set(under["row_id"]) < set(train["row_id"])


def test_smote_needs_more_rows_than_neighbours(table):
    small = table.head(60).assign(y=["yes"] * 3 + ["no"] * 57)
    with pytest.raises(DataError, match=re.escape(
            "Class 'yes' has 3 row(s) in the training split, but SMOTE needs more than --k-neighbors (5) "
            "rows of every class it oversamples. Lower --k-neighbors to 2, or leave it out (derived "
            "from the smallest class), or use --strategy random_over.")):
        augment_frame(small, "y", k_neighbors=5)
    report = augment_frame(small, "y")  # k derived from the smallest class
    assert report.summary["k_neighbors"] == 2 and report.value["y"].value_counts()["yes"] == 57
    assert "k_neighbors 2 (the smallest class to oversample, 'yes', has 3 rows)." in report.messages


def test_split_and_augment_verbs(demo_project, run_cli):
    code, out, err = run_cli(["data", "split", "--train", "0.6", "--val", "0.2", "--test", "0.2"],
                             cwd=demo_project)
    assert code == 0, err
    processed = demo_project / "data" / "processed"
    manifest = json.loads((processed / "split_manifest.json").read_text())
    assert manifest["mode"] == "stratified" and manifest["fractions"] == {"train": 0.6, "val": 0.2, "test": 0.2}
    test = pd.read_parquet(processed / "test.parquet")
    assert manifest["splits"]["test"]["rows"] == len(test) and "row_id" in test
    code, out, err = run_cli(["data", "augment", "--split", "val"], cwd=demo_project)
    assert code == 2 and "Only the training split can be augmented, not 'val'" in err
    assert not (processed / "train_augmented.parquet").exists()
    code, out, err = run_cli(["data", "augment", "--strategy", "random_over"], cwd=demo_project)
    assert code == 0, err
    aug = pd.read_parquet(processed / "train_augmented.parquet")
    assert aug["row_id"].is_unique and not set(aug["row_id"]) & set(test["row_id"])
    code, out, err = run_cli(["data", "split", "--train", "0.7", "--val", "0.2", "--test", "0.2"],
                             cwd=demo_project)
    assert code == 2 and "Split fractions must sum to 1" in err
    assert json.loads((processed / "split_manifest.json").read_text())["fractions"]["train"] == 0.6

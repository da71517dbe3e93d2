"""Phase 2 (data & features) on tables unlike the demo: missing labels, text dates, rare classes,
regression targets, ids, free text, leaks, odd column names, wide and tiny tables (issue 16)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from omgmagics.dataprep.augment import augment_frame
from omgmagics.dataprep.split import split_frame
from omgmagics.errors import DataError

MATRIX = Path(__file__).parent / "data" / "matrix"
NO_FUNCTIONS = '''import numpy as np
import pandas as pd

from omgmagics.dataprep.labeling import ABSTAIN, labeling_function
'''


def _dated(n: int = 150, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "x value": rng.normal(size=n).round(3),
        "when": pd.date_range("2021-01-01", periods=n, freq="5D").strftime("%d.%m.%Y"),
        "y": rng.choice(["a", "b"], n),
    })


# --- split -----------------------------------------------------------------------------------------
def test_split_keeps_unlabeled_rows_out_and_says_how_many():
    df = _dated().assign(y=lambda d: d["y"].where(d.index % 10 != 0))
    info: dict = {}
    splits = split_frame(df, "y", info=info)
    assert sum(map(len, splits.values())) == 135 and info["unlabeled_excluded"] == 15
    assert info["notes"][0] == ("15 rows have no 'y' value (unlabeled, and not labeled by `omg data "
                                "label`): they are kept out of train, val and test.")
    kept = pd.concat(splits.values())
    assert not set(range(0, 150, 10)) & set(kept["row_id"]) and kept["y"].notna().all()


def test_time_split_reads_day_first_text_dates():
    df = _dated().sample(frac=1, random_state=0)  # shuffled: the order comes from the dates
    splits = split_frame(df, "y", time="when")
    when = {k: pd.to_datetime(v["when"], format="%d.%m.%Y") for k, v in splits.items()}
    assert when["train"].max() < when["val"].min() and when["val"].max() < when["test"].min()
    assert [len(v) for v in splits.values()] == [105, 23, 22]
    with pytest.raises(DataError, match=re.escape(
            "The time column 'x value' is neither numeric nor dates (e.g. 'a'). Convert it first, or "
            "split without it.")):
        split_frame(df.assign(**{"x value": "a"}), "y", time="x value")


def test_weak_labels_never_reach_validation_or_test_in_time_mode():
    df = _dated().assign(label_source=["weak" if i % 4 == 0 else "gold" for i in range(150)])
    info: dict = {}
    splits = split_frame(df, "y", time="when", info=info)
    assert splits["val"]["label_source"].eq("gold").all()
    assert splits["test"]["label_source"].eq("gold").all()
    assert splits["train"]["label_source"].eq("weak").sum() == 27
    assert info["weak_excluded"] == 11 and info["notes"] == [
        "11 weakly labelled rows fell into validation or test and were left out (evaluation uses "
        "real labels only; weak labels train only)."]


@pytest.mark.parametrize("counts", [(70, 76, 2, 2), (140, 9, 1), (12, 3)])
def test_rare_classes_do_not_break_stratification(counts):
    labels = [f"c{i}" for i, k in enumerate(counts) for _ in range(k)]
    df = _dated(len(labels)).assign(y=labels)
    info: dict = {}
    splits = split_frame(df, "y", info=info)
    assert sum(map(len, splits.values())) == len(df) and min(map(len, splits.values())) >= 1
    rare = [f"'c{i}' with {k}" for i, k in enumerate(counts) if k < 3]
    if rare:
        assert info["notes"][0].startswith("Too few rows to be in every split: " + ", ".join(rare))


def test_regression_is_stratified_on_quantile_bins_and_a_tiny_table_splits():
    rng = np.random.default_rng(2)
    df = _dated().assign(y=rng.lognormal(3, 1, 150))  # skewed, 150 rows
    splits = split_frame(df, "y", objective="regression")
    assert [len(v) for v in splits.values()] == [106, 22, 22]
    medians = [v["y"].median() for v in splits.values()]
    assert max(medians) / min(medians) < 1.6  # every split spans the range


# --- augment ---------------------------------------------------------------------------------------
def test_augment_skips_a_regression_target_with_the_reason():
    df = _dated().assign(y=np.random.default_rng(0).lognormal(size=150))
    report = augment_frame(df, "y", objective="regression")
    assert report.value is None and report.summary["status"] == "skipped"
    assert report.title == ("Augmentation skipped: 'y' is a regression target (150 distinct values); "
                            "augmentation rebalances classes of a classification target")
    # judged from the values when the task is not given
    assert augment_frame(df, "y").summary["status"] == "skipped"


def test_augment_says_balanced_classes_need_nothing():
    report = augment_frame(_dated().assign(y=["a", "b", "c"] * 50), "y")
    assert report.value is None and report.title == (
        "Augmentation skipped: the classes are balanced already (smallest/largest 1.00, at least "
        "0.8): nothing needs doing")
    assert report.tables["class counts"]["rows"].tolist() == [50, 50, 50]


def test_smote_on_multiclass_derives_neighbours_from_the_smallest_class():
    df = _dated().assign(y=np.array([0] * 100 + [1] * 46 + [2] * 3 + [3] * 1), row_id=range(150))
    report = augment_frame(df, "y", next_id=1000)
    counts = report.tables["class counts"].set_index("class")["after"].to_dict()
    assert counts == {"0": 100, "1": 100, "2": 100, "3": 1}
    assert report.summary["k_neighbors"] == 2
    assert report.messages[:2] == [
        "Left as is (SMOTE needs at least 2 rows of a class to interpolate): class 3 with 1 row.",
        "k_neighbors 2 (the smallest class to oversample, 2, has 3 rows)."]
    assert not any("np." in m for m in [report.title, *report.messages])
    assert "'when'" in report.messages[2]  # text dates are copied from a row of the class
    new = report.value.iloc[150:]
    assert set(new["when"]) <= set(df["when"]) and new["row_id"].min() == 1000
    only_single = _dated(40).assign(y=["a"] * 39 + ["b"])
    assert augment_frame(only_single, "y").title.startswith(
        "Augmentation skipped: every class to oversample has a single row")


def test_augment_messages_show_plain_numbers():
    df = _dated(60).assign(y=np.array([0] * 57 + [1] * 3))
    with pytest.raises(DataError) as err:
        augment_frame(df, "y", k_neighbors=5)
    assert str(err.value).startswith("Class 1 has 3 row(s) in the training split")


# --- transforms ------------------------------------------------------------------------------------
def test_date_parts_parse_text_dates_the_same_way_in_serving():
    from omgmagics.features.transformers import DateParts

    train = pd.DataFrame({"placed.at": ["2024-01-13 10:00", "2024-02-01 23:30", None]})
    parts = DateParts(("month", "day", "hour")).fit(train)
    assert parts.formats_ == {"placed.at": "%Y-%m-%d %H:%M"}
    out = parts.transform(train)
    assert out.iloc[0].tolist() == [1.0, 13.0, 10.0] and out.iloc[2].isna().all()
    # one raw request record: day 02 must not be read as month 02
    served = parts.transform(pd.DataFrame({"placed.at": ["2024-03-02 08:15"]}))
    assert served.iloc[0].tolist() == [3.0, 2.0, 8.0]
    dotted = DateParts(("year", "month", "day")).fit(pd.DataFrame({"d": ["01.02.2019", "31.12.2021"]}))
    assert dotted.transform(pd.DataFrame({"d": ["05.04.2020"]})).iloc[0].tolist() == [2020, 4, 5]


def test_hashed_text_is_stateless_and_deterministic():
    from omgmagics.features.transformers import HashedText

    h = HashedText(8).fit(pd.DataFrame({"note": ["fragile gift", None]}))
    a = h.transform(pd.DataFrame({"note": ["Fragile GIFT", "gift fragile", None, "never seen"]}))
    assert list(a.columns) == [f"note_h{i}" for i in range(8)]
    assert a.iloc[0].tolist() == a.iloc[1].tolist() and a.iloc[2].abs().sum() == 0
    assert a.iloc[0].abs().sum() == 2 and a.iloc[3].abs().sum() == 2


# --- the verbs on the data-set matrix ----------------------------------------------------------------
def _project(tmp_path: Path, table: str, target: str) -> Path:
    from omgmagics.scaffold import init_project

    init_project("p", parent=tmp_path, data=str(MATRIX / f"{table}.csv"), target=target)
    root = tmp_path / "p"
    (root / "projectlib" / "features.py").write_text(NO_FUNCTIONS)
    return root


def _phase2(run_cli, root: Path, k: str = "40", label: bool = True) -> dict[str, str]:
    """Phase 2's verbs as the notebook runs them; every one must succeed. Their outputs by verb."""
    verbs = {"collect": ["data", "collect"],
             "infer schema": ["data", "validate", "--infer", "--schema", "schema.yaml"],
             "validate": ["data", "validate", "--schema", "schema.yaml", "--strict"],
             "label": ["data", "label", "--strategy", "weak_supervision", "--hide-share", "0"],
             "split": ["data", "split", "--train", "0.7", "--val", "0.15", "--test", "0.15"],
             "augment": ["data", "augment", "--strategy", "smote"],
             "infer features": ["feature", "extract", "--infer"],
             "extract": ["feature", "extract", "--config", "features.yaml"],
             "select": ["feature", "select", "--method", "mutual_info", "--k", k],
             "store": ["feature", "store"]}
    if not label:
        del verbs["label"]
    outs = {}
    for name, args in verbs.items():
        code, out, err = run_cli(args, cwd=root)
        assert code == 0, f"{name}: {err}"
        outs[name] = out
    return outs


def _gate(root: Path):
    from omgmagics.dataprep.gate import phase2_criteria
    from omgmagics.project import Project

    criteria, _ = phase2_criteria(Project.at(root))
    return {c.name: c for c in criteria}


def _serve(root: Path, records: list[dict]):
    """The stored pipeline applied to raw request records, as serving applies it."""
    from omgmagics.deploy.fastpath import frame_from_columns
    from omgmagics.features.store import load_feature_set

    fs = load_feature_set(root / "features", "project_features@latest")
    raw = fs.manifest["raw_columns"]
    cols = {c: [r.get(c) for r in records] for c in raw}
    return fs, fs.load_pipeline().transform(frame_from_columns(cols, raw))


def _records(df: pd.DataFrame) -> list[dict]:
    """Rows as a JSON client sends them (missing values as null)."""
    return json.loads(df.to_json(orient="records", date_format="iso"))


def test_multiclass_with_missing_labels_ids_text_and_a_leak(tmp_path, run_cli):
    root = _project(tmp_path, "shop_orders", "outcome")
    outs = _phase2(run_cli, root)
    assert "Labeling skipped: projectlib.features has no labeling functions" in outs["label"]
    assert "300 rows have no 'outcome' value and stay unlabeled" in outs["label"]
    assert "Time-ordered on brief.time_column 'placed.at'" in outs["split"]
    assert "300 rows have no 'outcome' value (unlabeled, and not labeled" in outs["split"]
    manifest = json.loads((root / "data/processed/split_manifest.json").read_text())
    assert manifest["mode"] == "time" and manifest["time_from_brief"]
    assert manifest["unlabeled_excluded"] == 300
    assert sum(s["rows"] for s in manifest["splits"].values()) == 2200
    assert "Rebalanced the training split with SMOTENC" in outs["augment"]
    config = (root / "features.yaml").read_text(encoding="utf-8")
    spec = _spec(root)
    used = {c: f["transform"] for f in spec["features"] for c in f["columns"]}
    assert not {"order id", "outcome_code", "warehouse"} & set(used)
    assert used["placed.at"] == "date_parts" and used["note"] == "text_hash"
    assert used["région"] == "one_hot" and used["express"] == "one_hot"
    for col in ("order id", "outcome_code", "warehouse"):
        assert f"# '{col}' left out: " in config
    assert "--k 40 keeps every feature" in outs["select"] or "Selected 40 of" in outs["select"]
    gate = _gate(root)
    assert {c.status for c in gate.values()} <= {"pass", "warn"}, gate
    # serving: raw records (text dates, booleans, unicode names, nulls) give the stored features
    val = pd.read_parquet(root / "data/processed/val.parquet").head(20)
    fs, served = _serve(root, _records(val))
    stored = fs.val.set_index("row_id").loc[val["row_id"], fs.feature_columns]
    np.testing.assert_allclose(served.to_numpy(float), stored.to_numpy(float), rtol=1e-9)


def _spec(root: Path) -> dict:
    from omgmagics.features.spec import load_spec

    return load_spec(root / "features.yaml")


def test_regression_with_day_first_dates_skips_smote(tmp_path, run_cli):
    root = _project(tmp_path, "house_prices", "price")
    outs = _phase2(run_cli, root, k="auto")
    assert "Labeling skipped: every row has a 'price' value" in outs["label"]
    assert "Time-ordered on brief.time_column 'sold_on'" in outs["split"]
    assert "Augmentation skipped: 'price' is a regression target" in outs["augment"]
    assert not (root / "data/processed/train_augmented.parquet").exists()
    used = {c: f["transform"] for f in _spec(root)["features"] for c in f["columns"]}
    assert used["sold_on"] == "date_parts" and "parcel" not in used and "price" not in used
    # 1,400 training rows support 140 features: auto keeps every one of the fewer extracted
    assert re.search(r"k (\d+) \(auto: one feature per 10 training rows, at least 10, at most the "
                     r"\1 features; 1400 rows\)", outs["select"])
    gate = _gate(root)
    assert {c.status for c in gate.values()} <= {"pass", "warn"}, gate
    test = pd.read_parquet(root / "data/processed/test.parquet").head(10)
    fs, served = _serve(root, _records(test))
    stored = fs.test.set_index("row_id").loc[test["row_id"], fs.feature_columns]
    np.testing.assert_allclose(served.to_numpy(float), stored.to_numpy(float), rtol=1e-9)


def test_tiny_balanced_table_with_odd_names(tmp_path, run_cli):
    root = _project(tmp_path, "iris", "species")
    outs = _phase2(run_cli, root)
    assert "Augmentation skipped: the classes are balanced already" in outs["augment"]
    assert "--k 40 keeps every feature: there are 4, so nothing is left out." in outs["select"]
    from omgmagics.features.store import load_feature_set

    fs = load_feature_set(root / "features", "project_features@latest")
    assert all("(cm)" in c for c in fs.feature_columns) and len(fs.train) == 106
    gate = _gate(root)
    assert {c.status for c in gate.values()} <= {"pass", "warn"}, gate


def test_weak_labels_from_project_functions_train_only(tmp_path, run_cli):
    root = _project(tmp_path, "sensor_faults", "fault")
    (root / "projectlib" / "features.py").write_text(NO_FUNCTIONS + '''

@labeling_function()
def lf_hot(df):
    return np.where(df["temp_c"] > 50, "fault", ABSTAIN)


@labeling_function()
def lf_calm(df):
    return np.where(df["vibration"] < 1.5, "ok", ABSTAIN)
''')
    outs = _phase2(run_cli, root, k="auto")
    assert "Weak supervision on 'fault'" in outs["label"] and "hidden" not in outs["label"]
    meta = json.loads((root / "data/processed/labeled.json").read_text())
    assert meta["hide_share"] == 0 and "hidden labels" not in meta["summary"]  # --hide-share 0
    for split in ("val", "test"):
        part = pd.read_parquet(root / f"data/processed/{split}.parquet")
        assert part["label_source"].eq("gold").all()
    train = pd.read_parquet(root / "data/processed/train.parquet")
    assert train["label_source"].eq("weak").any()
    gate = _gate(root)
    assert {c.status for c in gate.values()} <= {"pass", "warn"}, gate


def test_no_function_votes_and_hide_share_zero(tmp_path, run_cli):
    root = _project(tmp_path, "sensor_faults", "fault")
    (root / "projectlib" / "features.py").write_text(NO_FUNCTIONS + '''

@labeling_function()
def lf_never(df):
    return np.full(len(df), ABSTAIN)
''')
    for args in (["data", "collect"], ["data", "label", "--hide-share", "0"]):
        code, out, err = run_cli(args, cwd=root)
        assert code == 0, err
    assert "Labeling skipped: none of the 1 labeling functions voted on any row" in out
    meta = json.loads((root / "data/processed/labeled.json").read_text())
    assert meta["status"] == "skipped" and not (root / "data/processed/labeled.parquet").exists()
    shutil.rmtree(root / "projectlib")  # no module at all: skipped too
    code, out, err = run_cli(["data", "label"], cwd=root)
    assert code == 0 and "Labeling skipped: the project has no labeling functions" in out
    code, out, err = run_cli(["data", "label", "--functions", "projectlib.labels"], cwd=root)
    assert code == 1 and "Cannot import the labeling functions module 'projectlib.labels'" in err
    # --time none: stratified although the brief has a time column; unlabeled rows counted
    code, out, err = run_cli(["data", "split", "--time", "none"], cwd=root)
    assert code == 0, err
    manifest = json.loads((root / "data/processed/split_manifest.json").read_text())
    assert manifest["mode"] == "stratified" and manifest["time"] is None
    missing = int(pd.read_csv(MATRIX / "sensor_faults.csv")["fault"].isna().sum())
    assert manifest["unlabeled_excluded"] == missing and "Time-ordered" not in out
    assert f"{missing} rows have no 'fault' value (unlabeled" in out
    # a brief time column that cannot order the split: stratified, with the reason
    yaml = root / "omg.yaml"
    yaml.write_text(yaml.read_text().replace('time_column: "timestamp"', 'time_column: "kind"'))
    code, out, err = run_cli(["data", "split"], cwd=root)
    assert code == 0, err
    assert ("brief.time_column 'kind' cannot order the split (The time column 'kind' is neither "
            "numeric nor dates (e.g. 'pump')") in out
    assert json.loads((root / "data/processed/split_manifest.json").read_text())["mode"] == "stratified"


def test_wide_table_stays_fast(tmp_path, run_cli):
    import time

    root = _project(tmp_path, "wide", "label")
    start = time.perf_counter()
    outs = _phase2(run_cli, root, k="auto")
    assert time.perf_counter() - start < 90
    assert "Selected 28 of 500 features" in outs["select"]
    gate = _gate(root)
    assert {c.status for c in gate.values()} <= {"pass", "warn"}, gate

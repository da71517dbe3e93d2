"""Large data, the data-prep half (issue #9 item 4): `data validate` and `data validate --audit` read a
parquet file or a hive-partitioned parquet folder in bounded batches and give the whole-table result.

Tiny seeded tables, many partitions and row groups, batch sizes forced small."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from omgmagics.dataprep.batched import validate_source
from omgmagics.dataprep.schema import check_schema, find_violations, validate_frame, validate_table
from omgmagics.dataprep.sources import content_sha256
from omgmagics.discovery.audit import audit_data
from omgmagics.discovery.brief import Brief
from omgmagics.errors import DataError
from omgmagics.io.rowsample import RowSample
from omgmagics.io.sources import FrameSource, ParquetSource

SOURCE = {"kind": "file", "location": "/data/big", "sha256": None}


def customers(n: int = 1800, seed: int = 3) -> pd.DataFrame:
    """Customers with planted problems: missing ages, out-of-range values, an unknown plan,
    ids repeated far apart (across batches), a float among ints."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({
        "customer_id": [f"C{i:06d}" for i in range(n)],
        "age": rng.integers(18, 90, n).astype(float),
        "plan": rng.choice(["basic", "pro", "team"], n, p=[0.6, 0.35, 0.05]),
        "spend": np.round(rng.gamma(2.0, 30.0, n), 2),
        "visits": rng.integers(0, 40, n),
        "day": np.repeat(np.arange(6), n // 6),
    })
    df.loc[rng.choice(n, 40, replace=False), "age"] = np.nan
    df.loc[[5, 900, 1700], "customer_id"] = ["C000001", "C000004", "C000001"]  # 3 repeats
    df.loc[[7, 1500], "plan"] = "gold"
    df.loc[[3, 1799], "spend"] = [-1.0, 5000.0]
    df.loc[rng.choice(n, 25, replace=False), "plan"] = None
    return df


def write_folder(df: pd.DataFrame, root: Path, by: str = "day", row_group: int = 47) -> Path:
    """A hive-partitioned folder: one file per value of `by`, small row groups."""
    for value, part in df.groupby(by, sort=True):
        folder = root / f"{by}={value}"
        folder.mkdir(parents=True)
        part.drop(columns=by).to_parquet(folder / "part-0.parquet", index=False,
                                         row_group_size=row_group)
    return root


SCHEMA = {
    "table": {"min_rows": 2000, "allow_extra_columns": False},
    "columns": {
        "customer_id": {"dtype": "str", "unique": True, "regex": r"C\d{6}"},
        "age": {"dtype": "int", "nullable": False, "min": 20, "max": 80},
        "plan": {"dtype": "str", "nullable": True, "allowed": ["basic", "pro", "team"]},
        "spend": {"dtype": "float", "min": 0, "max": 1000},
        "visits": {"dtype": "int", "max": 35, "unique": False},
        "country": {"dtype": "str"},
    },
}


@pytest.mark.parametrize("batch_rows", [41, 10_000])
def test_validation_in_batches_equals_the_whole_table(tmp_path, batch_rows):
    folder = write_folder(customers(), tmp_path / "big")
    schema = check_schema(SCHEMA)
    whole = validate_frame(pd.read_parquet(folder), schema, source="big")
    batched = validate_table(ParquetSource(folder, batch_rows=batch_rows), schema, source="big")
    assert batched.summary == whole.summary
    assert batched.data["violations"] == whole.data["violations"]
    assert batched.messages == whole.messages
    rows = {(r["column"], r["rule"]): (r["count"], r["examples"]) for r in whole.data["violations"]}
    # ids repeated across partitions: every copy counted, examples in table order
    assert rows[("customer_id", "unique")] == (5, ["C000001", "C000004"])
    assert rows[("(table)", "min_rows")] == (1, ["1800 rows"])
    assert rows[("day", "allow_extra_columns")] == (1, ["day"])
    assert rows[("country", "required")] == (1, ["country"])
    assert rows[("plan", "allowed")][0] == 2 and rows[("spend", "min")] == (1, [-1.0])
    # a DataFrame sliced into batches gives the same as find_violations on it
    df = customers()
    pd.testing.assert_frame_equal(
        pd.DataFrame(validate_table(FrameSource(df, batch_rows=batch_rows), schema).data["violations"]),
        find_violations(df, schema))


def test_strict_fails_the_same_way_in_batches(tmp_path):
    folder = write_folder(customers(), tmp_path / "big")
    schema = check_schema({"columns": {"age": {"dtype": "int", "nullable": True, "max": 88}}})
    with pytest.raises(DataError) as whole:
        validate_frame(pd.read_parquet(folder), schema, source="big", strict=True)
    with pytest.raises(DataError, match=re.escape(str(whole.value))):
        validate_table(ParquetSource(folder, batch_rows=29), schema, source="big", strict=True)
    assert str(whole.value).startswith("Strict validation of big failed: 1 violation(s): age: max (")


def test_the_pass_hashes_the_content_and_samples_like_the_whole_table(tmp_path):
    df = customers()
    df["visits"] = df["visits"].where(df.index % 97 != 0)  # ints with missing values -> float64
    df["vip"] = (df.index % 5 == 0).astype(object)
    df.loc[11, "vip"] = None                               # bools with a missing value -> object
    folder = write_folder(df, tmp_path / "big")
    whole = pd.read_parquet(folder)
    src = ParquetSource(folder, batch_rows=61)
    assert {c: str(t) for c, t in src.dtypes().items() if c != "day"} == \
        {c: str(t) for c, t in whole.dtypes.items() if c != "day"}
    schema = check_schema({"columns": {"visits": {"dtype": "int", "nullable": True}}})
    report, sample, digest = validate_source(src, schema, "big", 0, None, hash_content=True)
    assert digest == content_sha256(whole.astype({"day": "category"}))
    assert len(sample) == len(whole)  # below the sample size: the whole table, in order
    assert sample["customer_id"].tolist() == whole["customer_id"].tolist()


def test_row_sample_is_seeded_and_independent_of_the_batch_size():
    df = customers()
    kept = []
    for batch in (7, 100, 5000):
        sample = RowSample(150, seed=9)
        for part in FrameSource(df, batch_rows=batch).frames():
            sample.add(part)
        kept.append(sample.frame())
    pd.testing.assert_frame_equal(kept[0], kept[1])
    pd.testing.assert_frame_equal(kept[0], kept[2])
    assert len(kept[0]) == 150 and kept[0].index.is_monotonic_increasing
    other = RowSample(150, seed=10)
    other.add(df)
    assert not other.frame().index.equals(kept[0].index)


def churn(n: int = 2400, seed: int = 0) -> pd.DataFrame:
    """The audit's test table, with planted missing values, a constant column, duplicates."""
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    plan = rng.choice(["basic", "plus", "pro"], size=n, p=[0.5, 0.3, 0.2])
    logit = 1.2 * x1 - 0.8 * x2 + (plan == "pro") * 0.7
    df = pd.DataFrame({
        "tenure": rng.integers(1, 60, n), "spend": np.round(rng.gamma(3.0, 20.0, n), 2),
        "x1": x1, "x2": x2, "plan": plan, "region": rng.choice(["north", "south", "east"], size=n),
        "group": rng.choice(["a", "b", "c"], size=n), "const": "same",
        "churned": np.where(rng.random(n) < 1 / (1 + np.exp(-logit)), "yes", "no"),
        "part": np.repeat(np.arange(8), n // 8),
    })
    df.loc[rng.choice(n, 300, replace=False), "spend"] = np.nan
    df.iloc[2000:2060] = df.iloc[1850:1910].to_numpy()  # a block loaded twice (one partition)
    return df


def brief() -> Brief:
    return Brief(name="t", task="classification", target="churned", positive_label="yes",
                 metric="roc_auc", threshold=0.7, sensitive=["group"], seed=0)


def _audit(table, tmp_path: Path, name: str, **kw):
    report = audit_data(table, brief(), html_path=None, json_path=tmp_path / f"{name}.json",
                        source=SOURCE, **kw)
    return report, json.loads((tmp_path / f"{name}.json").read_text())


def test_audit_in_batches_equals_the_in_memory_audit(tmp_path):
    folder = write_folder(churn(), tmp_path / "big", by="part", row_group=113)
    whole, doc_whole = _audit(pd.read_parquet(folder), tmp_path, "whole")
    batched, doc = _audit(ParquetSource(folder, batch_rows=50), tmp_path, "batched")
    assert doc["items"] == doc_whole["items"]  # every item, its evidence included
    assert doc["data"]["rows"] == 2400 and doc["details"] == doc_whole["details"]
    pd.testing.assert_frame_equal(batched.tables["columns"], whole.tables["columns"])
    assert batched.summary["verdict"] == whole.summary["verdict"] == "warn"
    evidence = {i["id"]: i["evidence"] for i in doc["items"]}
    assert evidence["quality.duplicates"].startswith("60 rows (2.5%) repeat an earlier row; the largest "
                                                     "block, row positions 2,000-2,059, repeats rows "
                                                     "1,850-1,909")
    assert "1 constant column(s): const" in evidence["quality.constant"]
    # a table that fits one batch is read whole: the in-memory audit
    small, _ = _audit(ParquetSource(folder, batch_rows=10_000), tmp_path, "small")
    assert small.value.equals(whole.value)


def test_audit_above_the_sample_size_keeps_counts_exact_and_is_deterministic(tmp_path):
    folder = write_folder(churn(), tmp_path / "big", by="part", row_group=113)
    _, doc_whole = _audit(pd.read_parquet(folder), tmp_path, "whole")
    one, doc = _audit(ParquetSource(folder, batch_rows=64), tmp_path, "a", profile_rows=700)
    _, again = _audit(ParquetSource(folder, batch_rows=333), tmp_path, "b", profile_rows=700)
    assert again["items"] == doc["items"]  # the same sample whatever the batch size
    exact = ["quality.missing", "quality.duplicates", "quality.constant", "quality.mixed_types",
             "volume.rows", "volume.per_class", "labels.missing", "labels.balance", "labels.target",
             "privacy.personal_data"]
    items = {i["id"]: i for i in doc["items"]}
    whole_items = {i["id"]: i for i in doc_whole["items"]}
    assert {k: items[k] for k in exact} == {k: whole_items[k] for k in exact}
    assert doc["data"]["rows"] == 2400 and doc["target"] == doc_whole["target"]
    assert any(m.startswith("Read in batches: exact on all 2,400 rows: rows, missing values")
               and "on a seeded sample of 700 rows: outliers, single-feature" in m for m in one.messages)


def test_audit_verb_reads_a_partitioned_folder_in_batches(demo_project, run_cli, tmp_path):
    from omgmagics.datasets import load_demo

    df = load_demo().head(3000)
    df["part"] = np.arange(len(df)) % 4
    folder = write_folder(df, tmp_path / "adult", by="part", row_group=200)
    code, out, err = run_cli(["data", "validate", "--audit", "--data", str(folder), "--report",
                              "audit.html"], cwd=demo_project)
    assert code == 0, err
    doc = json.loads((demo_project / "reports" / "audit.json").read_text())
    assert doc["data"]["rows"] == 3000 and doc["data"]["source"]["location"] == str(folder.resolve())
    code, out, err = run_cli(["data", "validate", "--infer", "--data", str(folder)], cwd=demo_project)
    assert code == 0, err
    code, out, err = run_cli(["data", "validate", "--data", str(folder), "--strict"], cwd=demo_project)
    assert code == 0, err
    record = json.loads((demo_project / "reports" / "validation.json").read_text())
    assert record["status"] == "pass" and record["rows"] == 3000
    assert record["data"]["content_sha256"] == content_sha256(pd.read_parquet(folder))


def test_bad_folders_are_clear_data_errors(tmp_path):
    empty = tmp_path / "empty"
    (empty / "day=1").mkdir(parents=True)
    (empty / "day=1" / "notes.txt").write_text("no data here")
    with pytest.raises(DataError, match=re.escape(
            f"{empty} holds no parquet files. Point at a parquet file or a folder of them.")):
        ParquetSource(empty)

    cols = tmp_path / "cols"
    for day, frame in ((1, pd.DataFrame({"a": [1], "b": ["x"]})), (2, pd.DataFrame({"a": [2], "c": [1.0]}))):
        (cols / f"day={day}").mkdir(parents=True)
        frame.to_parquet(cols / f"day={day}" / "p.parquet", index=False)
    with pytest.raises(DataError, match=re.escape(
            f"{cols}/day=2/p.parquet has other columns than {cols}/day=1/p.parquet (missing b; extra c). "
            "Every parquet file of a folder must hold the same columns: rewrite the odd file(s) with "
            "them, or point at a folder of one table.")):
        ParquetSource(cols)

    types = tmp_path / "types"
    for day, frame in ((1, pd.DataFrame({"a": [1]})), (2, pd.DataFrame({"a": ["one"]}))):
        (types / f"day={day}").mkdir(parents=True)
        frame.to_parquet(types / f"day={day}" / "p.parquet", index=False)
    with pytest.raises(DataError, match=re.escape(
            f"Column 'a' is string in {types}/day=2/p.parquet but int64 in {types}/day=1/p.parquet: the "
            "files cannot be read as one table. Rewrite them with one type for the column.")):
        ParquetSource(types)

    corrupt = tmp_path / "corrupt"
    for day in (1, 2):
        (corrupt / f"day={day}").mkdir(parents=True)
        pd.DataFrame({"a": [day]}).to_parquet(corrupt / f"day={day}" / "p.parquet", index=False)
    bad = corrupt / "day=2" / "p.parquet"
    bad.write_bytes(bad.read_bytes()[:20])
    with pytest.raises(DataError, match=re.escape(
            f"{bad} is not a readable parquet file (truncated or corrupt?). Write it again, or move it "
            f"out of {corrupt}.")):
        ParquetSource(corrupt)


def test_widening_types_across_files_are_one_table(tmp_path):
    folder = tmp_path / "wide"
    for day, frame in ((1, pd.DataFrame({"a": np.array([1, 2], dtype="int32")})),
                       (2, pd.DataFrame({"a": [2.5, 3.5]}))):
        (folder / f"day={day}").mkdir(parents=True)
        frame.to_parquet(folder / f"day={day}" / "p.parquet", index=False)
    got = pd.concat(list(ParquetSource(folder, batch_rows=1).frames()), ignore_index=True)
    assert got["a"].tolist() == [1.0, 2.0, 2.5, 3.5]


def test_collect_refuses_a_folder_and_says_to_check_it_in_place(demo_project, run_cli, tmp_path):
    folder = write_folder(customers(), tmp_path / "big")
    code, out, err = run_cli(["data", "collect", "--source", str(folder)], cwd=demo_project)
    assert code == 1
    assert (f"--source {folder} is a folder. `data collect` copies one table file into data/raw, in "
            "memory; check a (partitioned) parquet folder in place instead, read in batches: "
            f"`omg data validate --data {folder}` (add --audit for the audit).") in err
